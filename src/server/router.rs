//! The axum router: pages, server functions, static files, health check, tower layers.

use super::{sessions, Config};
use app::server::AppContext;
use app::{shell, App};
use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::trace::TraceLayer;
use tower_sessions_sqlx_store::SqliteStore;

/// The axum state: what the handlers outside Leptos need.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub context: AppContext,
}

/// Builds the complete router for `config`.
pub fn build(config: &Config, context: AppContext, store: SqliteStore) -> Router {
    let leptos_options = LeptosOptions::builder()
        .output_name("coatcheck")
        .site_root(config.site_root.as_str())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .env(leptos::config::Env::PROD)
        .build();
    let state = AppState { leptos_options: leptos_options.clone(), context: context.clone() };
    let routes = generate_route_list(App);

    let page_context = {
        let context = context.clone();
        move || provide_context(context.clone())
    };
    let fallback_context = page_context.clone();

    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/{*fn_name}", get(server_fn_handler).post(server_fn_handler))
        .leptos_routes_with_context(&state, routes, page_context, {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(fallback_context, shell))
        .layer(sessions::layer(store, config.cookie_secure))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Runs a Leptos server function with the application context.
async fn server_fn_handler(State(state): State<AppState>, request: Request<Body>) -> Response {
    let context = state.context.clone();
    leptos_axum::handle_server_fns_with_context(move || provide_context(context.clone()), request)
        .await
        .into_response()
}

/// 200 with `{"status":"ok"}` when the database answers, 503 otherwise.
async fn healthz(State(state): State<AppState>) -> Response {
    match sqlx::query_scalar::<_, i64>("SELECT 1").fetch_one(&state.context.db).await {
        Ok(_) => Json(serde_json::json!({ "status": "ok", "database": "ok" })).into_response(),
        Err(error) => {
            tracing::error!(%error, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::RETRY_AFTER, "5")],
                Json(serde_json::json!({ "status": "error", "database": "unavailable" })),
            )
                .into_response()
        }
    }
}
