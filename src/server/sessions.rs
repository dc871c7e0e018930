//! The session layer, configured in one place: cookie name and attributes, expiry.

use app::server::session_store::ShopSessionStore;
use tower_sessions::cookie::{time::Duration, SameSite};
use tower_sessions::{Expiry, SessionManagerLayer};

/// The cookie name: `__Host-` pins a secure cookie to this exact host and path `/`.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-id"
    } else {
        "id"
    }
}

/// The session middleware: HttpOnly, SameSite=Lax, Path=/, no Domain, `Secure` as configured.
/// `idle_timeout`: a session nobody used for this long is gone, cart included.
pub fn layer(
    store: ShopSessionStore,
    secure: bool,
    idle_timeout: std::time::Duration,
) -> SessionManagerLayer<ShopSessionStore> {
    let idle = Duration::try_from(idle_timeout).unwrap_or(Duration::days(7));
    SessionManagerLayer::new(store)
        .with_name(cookie_name(secure))
        .with_secure(secure)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(idle))
}
