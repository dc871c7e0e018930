//! The axum router: pages, server functions, static files, health check, tower layers.

use super::{guard, Config};
use app::server::AppContext;
use app::{shell, App};
use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

const REQUEST_ID_HEADER: http::HeaderName =
    http::HeaderName::from_static(super::proxies::REQUEST_ID);

/// The browser build's name (`output-name` in Cargo.toml) and the folder of its files.
const OUTPUT_NAME: &str = "coatcheck";
const PKG_DIR: &str = "pkg";

/// The largest request body accepted: every form here is tiny.
const MAX_BODY_BYTES: usize = 16 * 1024;
use app::server::session::{SessionLayer, ShopSessionStore};

/// The axum state: what the handlers outside Leptos need.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub context: AppContext,
}

/// Builds the complete router for `config`.
pub fn build(config: &Config, context: AppContext, store: ShopSessionStore) -> Router {
    let assets = super::assets::StaticAssets::of_this_build(OUTPUT_NAME, PKG_DIR);
    let leptos_options = LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_root(config.site_root.as_str())
        .site_pkg_dir(PKG_DIR)
        .hash_files(assets.hashed())
        .hash_file(super::assets::HASH_FILE.into())
        .site_addr(config.addr)
        .env(leptos::config::Env::PROD)
        .build();
    let state = AppState {
        leptos_options: leptos_options.clone(),
        context: context.clone(),
    };
    let routes = routes();

    let page_context = {
        let context = context.clone();
        move || {
            provide_context(context.clone());
            // The nonce chosen by `guard::page_nonce`, which also sets the policy header.
            let nonce = use_context::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<guard::PageNonce>().cloned());
            if let Some(guard::PageNonce(nonce)) = nonce {
                provide_context(leptos::nonce::Nonce::from_value(nonce));
            }
        }
    };
    let fallback_context = page_context.clone();
    let page_cache = super::page_cache::PageCache::new(context.db.clone(), context.catalog.clone());

    // Everything that has a session: the pages, the server functions, the event stream, the
    // 404 page. Inside the session layer, around the handlers: the per-viewer page cache (after
    // the login timeouts: a demoted or expired login is seen before the lookup) and the shaping
    // of server-function answers.
    let with_session = Router::new()
        .route(guard::EVENTS_PATH, get(super::event_stream::session_events))
        .leptos_routes_with_context(&state, routes, page_context, {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<
            AppState,
            _,
        >(fallback_context, shell))
        .layer(
            ServiceBuilder::new()
                .layer(
                    SessionLayer::new(store, context.clone(), config.cookie_secure)
                        .with_passive_path(guard::EVENTS_PATH),
                )
                .layer(axum::middleware::from_fn_with_state(
                    page_cache.clone(),
                    super::page_cache::serve_personal,
                ))
                .layer(axum::middleware::from_fn(shape_server_fn_responses)),
        );

    // Outside the session layer: the health check and the static files never touch a session,
    // and the session API is opened by API keys only (a cookie is not even read).
    let site = std::path::Path::new(config.site_root.as_str());
    Router::new()
        .route("/healthz", get(healthz))
        .merge(super::session_api::routes())
        .nest_service("/pkg", ServeDir::new(site.join(PKG_DIR)))
        .nest_service("/images", ServeDir::new(site.join("images")))
        .route_service("/favicon.svg", ServeFile::new(site.join("favicon.svg")))
        .merge(with_session)
        // Read top to bottom: each layer runs around the ones below it.
        .layer(
            ServiceBuilder::new()
                // Everything that counts, limits or logs clients sees the resolved address.
                .layer(axum::middleware::from_fn_with_state(
                    config.trusted_proxies.clone(),
                    super::proxies::resolve_client,
                ))
                // Keeps the ID a trusted proxy sent (`resolve_client` drops any other), else
                // makes one; the answer carries it, for a user's bug report or a proxy's log.
                .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
                // Counted and timed by route template, whatever answered (cache, page, limit).
                .layer(axum::middleware::from_fn_with_state(
                    context.metrics.clone(),
                    super::metrics_listener::count_requests,
                ))
                // Every log line of a request carries its ID and its client's address (never
                // a session ID); one line per request says how it ended.
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(request_span)
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                        .on_failure(log_failure),
                )
                // CONNECT and overlong addresses: refused before anything else runs.
                .layer(axum::middleware::from_fn(guard::refuse_unservable))
                // gzip for clients that ask: pages shrink about 6×, the wasm about 3×.
                .layer(CompressionLayer::new())
                // Security headers; content-hashed wasm, JS and CSS cached for a year.
                .layer(axum::middleware::from_fn_with_state(
                    guard::HeaderState {
                        hsts: guard::hsts(config.cookie_secure, config.hsts_max_age),
                        assets,
                    },
                    guard::security_headers,
                ))
                .layer(axum::middleware::from_fn_with_state(
                    guard::GuardState {
                        public_origin: config.public_origin.as_deref().map(Into::into),
                    },
                    guard::cross_site_check,
                ))
                .layer(axum::middleware::from_fn(guard::page_nonce))
                // A cached anonymous page costs no session work.
                .layer(axum::middleware::from_fn_with_state(
                    page_cache,
                    super::page_cache::serve_anonymous,
                ))
                // Bodies of at most MAX_BODY_BYTES (413 past it), for every handler below.
                .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES)),
        )
        .with_state(state)
}

/// The app's routes, generated once per process, before its first server is built.
///
/// Leptos generates them by rendering the app with a *process-wide* flag raised that keeps
/// every `Resource` from loading (`leptos_server`'s `IS_SUPPRESSING_RESOURCE_LOAD`); a page
/// whose data first loads anywhere in the process during that window waits forever (upstream:
/// leptos-rs/leptos#4773). Generating them once means the flag is never raised while any server
/// of this process serves. (It hung the parallel test suite, where every test starts a server;
/// one production process builds one router, before it listens.) The list is derived from the
/// code alone, the same for every server.
fn routes() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

/// A failed request's log line: a 503 (busy, a refused stream: each with `Retry-After`, and
/// something anyone can cause at will) at WARN; any other server error at ERROR.
fn log_failure(
    failure: tower_http::classify::ServerErrorsFailureClass,
    latency: std::time::Duration,
    _span: &tracing::Span,
) {
    use tower_http::classify::ServerErrorsFailureClass;
    let latency_ms = latency.as_millis() as u64;
    match failure {
        ServerErrorsFailureClass::StatusCode(StatusCode::SERVICE_UNAVAILABLE) => {
            tracing::warn!(latency_ms, "answered 503: busy");
        }
        failure => tracing::error!(%failure, latency_ms, "request failed"),
    }
}

/// How much of a request's address its log lines show (a client chooses it, up to 8 KB).
const LOGGED_URI_BYTES: usize = 256;

/// The request's address for its log lines, cut at [`LOGGED_URI_BYTES`].
fn logged_uri(uri: &http::Uri) -> String {
    let text = uri.to_string();
    if text.len() <= LOGGED_URI_BYTES {
        return text;
    }
    let mut end = LOGGED_URI_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}

/// The span of one request's log lines: its ID, method, path and query, the client's address.
fn request_span(request: &Request<Body>) -> tracing::Span {
    let client = request
        .extensions()
        .get::<app::server::client::ClientIp>()
        .map(|client| client.0.to_string())
        .unwrap_or_default();
    let id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    // INFO: with the default filter, every warning or error of a request names it.
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        uri = %logged_uri(request.uri()),
        client = %client,
    )
}

/// Shapes server-function answers (Leptos registers their routes itself): a plain HTML form
/// gets a 303 back to its page (or to where the action sends it). (Their statuses are the
/// error's: `app::api::ShopError::status`.)
async fn shape_server_fn_responses(request: Request<Body>, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let form_post = super::forms::is_form_post(request.headers());
    let back_to = app::server::request::same_site_referer(request.headers());
    let response = next.run(request).await;
    if form_post {
        super::forms::redirect_form(response, back_to)
    } else {
        super::forms::strip_internal_headers(response)
    }
}

/// 200 with `{"status":"ok"}` when the database answers, 503 otherwise.
async fn healthz(State(state): State<AppState>) -> Response {
    let answered = app::on_db!(&state.context.db, pool => sqlx::query_scalar::<_, i32>("SELECT 1")
        .fetch_one(pool)
        .await);
    match answered {
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
