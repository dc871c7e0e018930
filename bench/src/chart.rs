//! The SVG chart `make bench` writes next to bench/RESULTS.md: requests per second and p99 per
//! scenario and setup, each scenario beside its baseline, drawn with plotters.

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use std::path::Path;

/// One bar pair of the chart: a scenario on one setup (or on its baseline).
pub struct Bar {
    pub scenario: &'static str,
    pub setup: String,
    pub rps: f64,
    pub p99_ms: f64,
    pub baseline: bool,
}

/// The colour of a setup: one per store setup, grey for the baselines.
fn colour(bar: &Bar) -> RGBColor {
    if bar.baseline {
        return RGBColor(120, 120, 120);
    }
    let setup = bar.setup.as_str();
    match () {
        _ if setup.starts_with("SQLite + Redis everysec") => RGBColor(240, 150, 40),
        _ if setup.starts_with("SQLite + Redis") => RGBColor(200, 50, 50),
        _ if setup.starts_with("PostgreSQL + Redis") => RGBColor(130, 70, 170),
        _ if setup.starts_with("PostgreSQL, 2") => RGBColor(40, 150, 90),
        _ if setup.starts_with("PostgreSQL") => RGBColor(30, 160, 170),
        _ => RGBColor(40, 90, 180),
    }
}

const ROW: u32 = 24;
/// Caption and axis of one scenario's panels.
const PANEL_EXTRA: u32 = 70;
const TITLE: u32 = 40;
const LABEL_WIDTH: u32 = 330;
const PANEL_WIDTH: u32 = 420;

/// Draws `bars` to `path` as SVG: for each scenario (in the order first seen), its bars' requests
/// per second on the left and their p99 on the right, each panel on a scale of its own.
pub fn draw(bars: &[Bar], title: &str, path: &Path) -> Result<(), String> {
    if bars.is_empty() {
        return Err("no figures to draw".into());
    }
    let mut scenarios: Vec<(&str, Vec<&Bar>)> = Vec::new();
    for bar in bars {
        match scenarios.iter_mut().find(|(name, _)| *name == bar.scenario) {
            Some((_, group)) => group.push(bar),
            None => scenarios.push((bar.scenario, vec![bar])),
        }
    }
    let heights: Vec<u32> = scenarios
        .iter()
        .map(|(_, group)| group.len() as u32 * ROW + PANEL_EXTRA)
        .collect();
    let height = TITLE + heights.iter().sum::<u32>();
    let width = LABEL_WIDTH + 2 * PANEL_WIDTH + 20;
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| format!("chart: {e}");
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut rest = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| fail(&e))?;
    for ((scenario, group), height) in scenarios.iter().zip(heights) {
        let (area, below) = rest.split_vertically(height);
        rest = below;
        let (left, right) = area.split_horizontally(LABEL_WIDTH + PANEL_WIDTH);
        panel(
            &left,
            group,
            &format!("{scenario}: requests per second (higher is better)"),
            LABEL_WIDTH,
            |b| b.rps,
            |v| format!("{v:.0}"),
        )?;
        panel(
            &right,
            group,
            &format!("{scenario}: p99 latency, ms (lower is better)"),
            0,
            |b| b.p99_ms,
            |v| format!("{v:.1}"),
        )?;
    }
    root.present().map_err(|e| fail(&e))
}

/// One panel: a horizontal bar per row, its value written at its end; the row labels on the
/// left when `label_width` is not 0.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    bars: &[&Bar],
    caption: &str,
    label_width: u32,
    value: impl Fn(&Bar) -> f64,
    show: impl Fn(f64) -> String,
) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let fail = |e: &dyn std::fmt::Display| format!("chart: {e}");
    let rows = bars.len() as u32;
    let max = bars
        .iter()
        .map(|b| value(b))
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.2;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 17))
        .margin_right(20)
        .x_label_area_size(30)
        .y_label_area_size(label_width)
        .build_cartesian_2d(0.0..max, (0..rows).into_segmented())
        .map_err(|e| fail(&e))?;
    let label = |v: &SegmentValue<u32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => rows
            .checked_sub(i + 1)
            .and_then(|row| bars.get(row as usize))
            .map(|b| b.setup.clone())
            .unwrap_or_default(),
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .y_labels(rows as usize)
        .y_label_formatter(&label)
        .y_label_style(("sans-serif", 15))
        .x_labels(6)
        .x_label_formatter(&|v| show(*v))
        .draw()
        .map_err(|e| fail(&e))?;
    // Row 0 is at the bottom: draw the first bar in the top row.
    chart
        .draw_series(bars.iter().enumerate().map(|(i, bar)| {
            let row = rows - 1 - i as u32;
            let mut rect = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(row)),
                    (value(bar), SegmentValue::Exact(row + 1)),
                ],
                colour(bar).filled(),
            );
            rect.set_margin(3, 3, 0, 0);
            rect
        }))
        .map_err(|e| fail(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, bar)| {
            let row = rows - 1 - i as u32;
            Text::new(
                show(value(bar)),
                (value(bar) + max * 0.01, SegmentValue::CenterOf(row)),
                ("sans-serif", 14).into_font().color(&BLACK).pos(
                    plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Left,
                        plotters::style::text_anchor::VPos::Center,
                    ),
                ),
            )
        }))
        .map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bar_is_drawn_with_its_label_and_value() {
        let bars = vec![
            Bar {
                scenario: "cart write",
                setup: "SQLite, 1 instance".into(),
                rps: 3458.0,
                p99_ms: 31.23,
                baseline: false,
            },
            Bar {
                scenario: "cart write",
                setup: "baseline: axum + tower-sessions".into(),
                rps: 5639.0,
                p99_ms: 18.81,
                baseline: true,
            },
        ];
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chart.svg");
        draw(&bars, "test chart", &path).expect("drawn");
        let svg = std::fs::read_to_string(&path).expect("written");
        assert!(svg.starts_with("<svg"), "{svg}");
        for text in [
            "test chart",
            "cart write: requests per second (higher is better)",
            "SQLite, 1 instance",
            "baseline: axum + tower-sessions",
            "3458",
            "5639",
            "31.2",
            "18.8",
        ] {
            // plotters writes each text on a line of its own between its tags.
            assert!(
                svg.lines().any(|line| line.trim() == text),
                "no {text:?} in the chart"
            );
        }
        // The baseline's bar is grey, the SQLite bar blue.
        assert!(svg.contains("#787878"), "no grey baseline bar");
        assert!(svg.contains("#285AB4"), "no blue SQLite bar");
        assert!(draw(&[], "empty", &path).is_err());
    }
}
