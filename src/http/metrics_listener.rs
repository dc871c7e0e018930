//! Prometheus: the operators' listener (`COATCHECK_METRICS_ADDR`, serving `GET /metrics`) and
//! the middleware that counts and times the shop's requests by route template.

use app::server::metrics::Metrics;
use app::server::AppContext;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The metrics listener's router: `/metrics`, nothing else.
pub fn router(context: AppContext) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(context)
}

async fn scrape(State(context): State<AppContext>) -> Response {
    let metrics = &context.metrics;
    metrics.set_open_streams(context.events.open_streams());
    let scraped = app::server::session::live_sessions(&context.sessions, &context.policy)
        .await
        .map_err(|error| error.to_string())
        .and_then(|live| {
            metrics
                .scrape(&context.db, live)
                .map_err(|error| error.to_string())
        });
    match scraped {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "metrics: the database did not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database did not answer\n",
            )
                .into_response()
        }
    }
}

/// Counts and times every request of the shop by its route template (`/products/{slug}`);
/// static files are `/pkg/*` or `/*` (public files), and anything that matched no route is
/// `unmatched`, so neither a crawler nor an attacker can make series without bound.
pub async fn count_requests(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = match request.extensions().get::<MatchedPath>() {
        Some(path) => path.as_str().to_string(),
        None if request.uri().path().starts_with("/pkg/") => "/pkg/*".to_string(),
        None => String::new(),
    };
    let method = request.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let route = match route.as_str() {
        "" if response.status() == StatusCode::NOT_FOUND => "unmatched",
        "" => "/*",
        route => route,
    };
    metrics.http_request(route, &method, response.status(), started.elapsed());
    response
}
