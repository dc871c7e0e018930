//! Server-only code: database access, the session, the request context.
//! Compiled with the `ssr` feature only; nothing here reaches the wasm build.

pub mod cart;
pub mod catalog;
pub mod db;
pub mod metrics;
pub mod orders;
pub mod passwords;
pub mod request;
pub mod seed;
pub mod session;
pub mod throttle;
pub mod users;

use leptos::prelude::*;

/// What every server function and page on the server can reach, provided as Leptos context.
/// One shared allocation: every request clones it several times (router layers, the page's
/// context), and one reference count is cheaper to move between cores than one per field.
#[derive(Clone, Debug)]
pub struct AppContext(std::sync::Arc<Services>);

impl AppContext {
    pub fn new(services: Services) -> AppContext {
        AppContext(std::sync::Arc::new(services))
    }
}

impl std::ops::Deref for AppContext {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The parts of an [`AppContext`].
#[derive(Debug)]
pub struct Services {
    pub db: db::Db,
    /// This server's coordination of session writes on `db` (see `session::change`).
    pub sessions: session::SessionWrites,
    /// This server's password hashing threads and per-client limits.
    pub passwords: passwords::PasswordHasher,
    pub policy: session::SessionPolicy,
    pub catalog: catalog::CatalogCache,
    /// This server's Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// This server's hub of open pages waiting to hear that their login ended.
    pub events: session::SessionEvents,
}

/// The request's `AppContext`. A missing context is a wiring bug, reported as a server error.
pub fn app_context() -> Result<AppContext, ServerFnError> {
    use_context::<AppContext>()
        .ok_or_else(|| ServerFnError::new("the application context is missing"))
}

/// Logs an internal error with its cause and returns a message that shows nothing internal.
/// What fails here is the database or the session store (unavailable, busy, full disk): the
/// answer is 503 with `Retry-After`, as the same request may well succeed in a moment.
pub fn internal(error: impl std::fmt::Display) -> ServerFnError {
    tracing::error!(%error, "request failed");
    if let Some(options) = use_context::<leptos_axum::ResponseOptions>() {
        options.set_status(http::StatusCode::SERVICE_UNAVAILABLE);
        options.insert_header(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("5"),
        );
    }
    ServerFnError::new("Something went wrong on our side. Please try again.")
}
