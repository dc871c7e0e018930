//! Server-only code: database access, the session, the request context.
//! Compiled with the `ssr` feature only; nothing here reaches the wasm build.

pub mod cart;
pub mod catalog;
pub mod db;
pub mod orders;
pub mod passwords;
pub mod policy;
pub mod registry;
pub mod request;
pub mod seed;
pub mod session;
pub mod session_guard;
pub mod session_store;
pub mod throttle;
pub mod users;

use leptos::prelude::*;
use sqlx::SqlitePool;

/// What every server function and page on the server can reach, provided as Leptos context.
#[derive(Clone, Debug)]
pub struct AppContext {
    pub db: SqlitePool,
    pub policy: policy::SessionPolicy,
    pub catalog: catalog::CatalogCache,
}

/// The request's `AppContext`. A missing context is a wiring bug, reported as a server error.
pub fn app_context() -> Result<AppContext, ServerFnError> {
    use_context::<AppContext>()
        .ok_or_else(|| ServerFnError::new("the application context is missing"))
}

/// Logs an internal error with its cause and returns a message that shows nothing internal.
pub fn internal(error: impl std::fmt::Display) -> ServerFnError {
    tracing::error!(%error, "request failed");
    ServerFnError::new("Something went wrong on our side. Please try again.")
}
