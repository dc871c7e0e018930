//! Server-only code: database access, the session, the request context.
//! Compiled with the `ssr` feature only; nothing here reaches the wasm build.

pub mod api_keys;
pub mod cart;
pub mod catalog;
pub mod client;
pub mod db;
pub mod metrics;
pub mod orders;
pub mod passwords;
pub mod request;
pub mod seed;
pub mod session;
pub mod throttle;
pub mod users;

use crate::api::ShopError;
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
pub fn app_context() -> Result<AppContext, ShopError> {
    use_context::<AppContext>()
        .ok_or_else(|| ShopError::internal("the application context is missing"))
}
