//! The pager of every paged list (the catalog, the admin's session list): previous and next,
//! and numbered links around the current page, all plain links that work without JavaScript.

use crate::model::pager_numbers;
use leptos::prelude::*;

/// Links to the pages of a list; nothing when it fits on one page. `link(n)` is the URL of
/// page `n` (1-based).
#[component]
pub fn Pager(
    page: usize,
    pages: usize,
    link: impl Fn(usize) -> String + 'static,
    /// The navigation's name, unique on its page (a page may have two pagers).
    #[prop(default = "Pages")]
    label: &'static str,
) -> impl IntoView {
    if pages <= 1 {
        return ().into_any();
    }
    let previous = (page > 1 && page <= pages).then(|| link(page - 1));
    let next = (page < pages).then(|| link(page + 1));
    let numbers: Vec<_> = pager_numbers(page.clamp(1, pages), pages)
        .into_iter()
        .map(|n| n.map(|n| (n, link(n))))
        .collect();
    view! {
        <nav class="pager" aria-label=label data-testid="pager">
            {previous.map(|href| view! { <a href=href rel="prev">"← Previous"</a> })}
            <ul class="pager__pages">
                {numbers.into_iter().map(|entry| match entry {
                    Some((n, _)) if n == page => view! {
                        <li><span aria-current="page" class="pager__current">{n}</span></li>
                    }.into_any(),
                    Some((n, href)) => view! {
                        <li><a href=href aria-label=format!("Page {n}")>{n}</a></li>
                    }.into_any(),
                    None => view! { <li aria-hidden="true">"…"</li> }.into_any(),
                }).collect_view()}
            </ul>
            {next.map(|href| view! { <a href=href rel="next">"Next →"</a> })}
        </nav>
    }
    .into_any()
}
