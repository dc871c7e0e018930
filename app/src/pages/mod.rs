//! One file per page.

pub mod account;
pub mod cart;
pub mod catalog;
pub mod checkout;
pub mod login;
pub mod not_found;
pub mod order;
pub mod product;
pub mod sessions;

/// Sets the HTTP status of the page being rendered on the server (no-op in the browser).
pub fn set_status(status: u16) {
    #[cfg(feature = "ssr")]
    if let (Some(options), Ok(code)) = (
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
        http::StatusCode::from_u16(status),
    ) {
        options.set_status(code);
    }
    #[cfg(not(feature = "ssr"))]
    let _ = status;
}

/// Answers the page being rendered on the server with a redirect (303) to `path`, whatever
/// the client's Accept header (pages render on the server only: the browser build is islands).
pub fn redirect_page(path: &str) {
    #[cfg(feature = "ssr")]
    if let (Some(options), Ok(value)) = (
        leptos::prelude::use_context::<leptos_axum::ResponseOptions>(),
        http::HeaderValue::from_str(path),
    ) {
        options.set_status(http::StatusCode::SEE_OTHER);
        options.insert_header(http::header::LOCATION, value);
    }
    #[cfg(not(feature = "ssr"))]
    let _ = path;
}
