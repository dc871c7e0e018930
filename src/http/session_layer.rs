//! The session layer, configured in one place: cookie name and attributes, expiry.

use app::server::session::store::ShopSessionStore;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tower_sessions::cookie::{time::Duration, Cookie, SameSite};
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

/// What the session cookie's lifetime depends on.
#[derive(Clone, Copy, Debug)]
pub struct CookiePolicy {
    pub secure: bool,
    /// The session idle timeout: a persistent cookie's `Max-Age`.
    pub idle_timeout: std::time::Duration,
}

/// A login without "Keep me signed in" gets a cookie that ends with the browser (no `Max-Age`,
/// no `Expires`); every other session a persistent one (`Max-Age` = the idle timeout),
/// renewed with use. Called by the session guard (`guard::session_timeouts`, inside the session
/// layer) once the request is done, with the activity the guard recorded:
/// - when the layer is about to save the session (and send its cookie), the expiry is set
///   from what the session holds now — a login made, ended or kept during this very request;
/// - the session's own transactions (cart writes, the activity touch) leave the layer nothing
///   to save, so it sends no cookie: when the request recorded activity (the touch, at most
///   once per touch interval), the persistent cookie is sent again here, with a fresh
///   `Max-Age`, so a session in use never loses its cookie.
pub async fn set_cookie_lifetime(
    policy: CookiePolicy,
    session: &tower_sessions::Session,
    activity: app::server::session::timeouts::Activity,
    response: &mut Response,
) {
    use app::server::session::current_user;
    use app::server::session::timeouts::Activity;
    // Nothing is saved after a server error (and the session may not even be readable).
    if response.status().is_server_error() {
        return;
    }
    let touched = activity == Activity::Recorded;
    if !session.is_modified() && !touched {
        return;
    }
    // Read from the copy the request already loaded: no database access.
    let browser_session = current_user(session)
        .await
        .ok()
        .flatten()
        .is_some_and(|user| !user.remembered);
    if session.is_modified() {
        // Otherwise the expiry stays the layer's (set afresh on every request).
        if browser_session {
            session.set_expiry(Some(Expiry::OnSessionEnd));
        }
        return;
    }
    if let (Some(id), true, false) = (session.id(), touched, browser_session) {
        let max_age = Duration::try_from(policy.idle_timeout).unwrap_or(Duration::days(7));
        let cookie = Cookie::build((cookie_name(policy.secure), id.to_string()))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(policy.secure)
            .max_age(max_age)
            .build();
        if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
}

/// The cookie that clears the session cookie, with the attributes it was set with.
fn clearing_cookie(secure: bool) -> String {
    Cookie::build((cookie_name(secure), ""))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(Duration::ZERO)
        .expires(tower_sessions::cookie::time::OffsetDateTime::UNIX_EPOCH)
        .build()
        .to_string()
}

/// tower-sessions clears the cookie with its name and path only (`__Host-id=; Path=/;
/// Max-Age=0`). Browsers ignore a `__Host-` cookie without `Secure` — the dead cookie would
/// stay — so the clearing cookie is sent with the same attributes as the one it clears.
/// Runs around the session layer.
pub async fn clear_with_the_same_attributes(
    State(secure): State<bool>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let clearing_prefix = format!("{}=;", cookie_name(secure));
    let is_clearing = |value: &HeaderValue| {
        value.to_str().is_ok_and(|v| {
            v.starts_with(&clearing_prefix) || v == clearing_prefix.trim_end_matches(';')
        })
    };
    if !response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(is_clearing)
    {
        return response;
    }
    let values: Vec<HeaderValue> = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    response.headers_mut().remove(header::SET_COOKIE);
    for value in values {
        let value = if is_clearing(&value) {
            HeaderValue::from_str(&clearing_cookie(secure)).unwrap_or(value)
        } else {
            value
        };
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clearing_cookie_has_the_attributes_of_the_cookie() {
        let secure = clearing_cookie(true);
        assert!(secure.starts_with("__Host-id=;"), "{secure}");
        for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=0"] {
            assert!(secure.contains(attribute), "{secure} has {attribute}");
        }
        let plain = clearing_cookie(false);
        assert!(
            plain.starts_with("id=;") && !plain.contains("Secure"),
            "{plain}"
        );
    }
}
