//! What a server function needs from the request: the session, the caller's kind (plain HTML
//! form or hydrated page), and the ways to answer a rejection or a redirect.

use super::client::{client_addr, ClientNet};
use super::{app_context, session, AppContext};
use crate::api::ShopError;
use crate::model::Flash;
use http::StatusCode;
use leptos::prelude::*;
use tower_sessions::Session;

/// Internal response header: where a plain-form caller should be sent (see the server's
/// server-function handler, which turns it into a 303 and removes it).
pub const FORM_LOCATION_HEADER: &str = "x-coatcheck-location";

pub async fn session() -> Result<Session, ShopError> {
    leptos_axum::extract::<Session>()
        .await
        .map_err(ShopError::unavailable)
}

/// The application context and the session, which almost every server function needs.
pub async fn context_and_session() -> Result<(AppContext, Session), ShopError> {
    Ok((app_context()?, session().await?))
}

/// True when the caller is a plain HTML form (no JavaScript), which expects a redirect.
pub fn is_form_post() -> bool {
    use_context::<http::request::Parts>()
        .and_then(|parts| {
            parts
                .headers
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .map(|accept| accept.contains("text/html"))
        })
        .unwrap_or(false)
}

fn response_options() -> Option<leptos_axum::ResponseOptions> {
    use_context::<leptos_axum::ResponseOptions>()
}

/// Sends a plain-form caller to `path` (a same-site path) after the action.
pub fn form_redirect(path: &str) {
    if let (Some(options), Ok(value)) = (response_options(), http::HeaderValue::from_str(path)) {
        options.insert_header(http::HeaderName::from_static(FORM_LOCATION_HEADER), value);
    }
}

/// Answers a client that must wait: 429 with `Retry-After` and a readable message (with
/// `email` refilled into a plain form's login or register page).
pub async fn too_many(wait_seconds: i64, what: &str, email: Option<&str>) -> ShopError {
    set_retry_after(wait_seconds);
    let wait = match wait_seconds {
        1 => "a second".to_string(),
        n => format!("{n} seconds"),
    };
    let mut flash = Flash::error(format!(
        "Too many {what}. Please wait {wait} and try again."
    ));
    flash.email = email.map(|email| email.chars().take(254).collect());
    reject_with(StatusCode::TOO_MANY_REQUESTS, flash).await
}

/// A place in this server's password hashing queue for the caller's address, or a 429 when
/// the address already has its share queued (see `passwords::MAX_JOBS_PER_CLIENT`). Hold it
/// while hashing.
pub async fn hashing_slot(
    ctx: &AppContext,
    email: Option<&str>,
) -> Result<super::passwords::ClientSlot, ShopError> {
    match ctx.passwords.client_slot(&client_network()) {
        Ok(slot) => Ok(slot),
        Err(_) => Err(too_many(1, "attempts at once", email).await),
    }
}

/// Tells the caller when to try again (`Retry-After`, seconds).
pub fn set_retry_after(seconds: i64) {
    if let (Some(options), Ok(value)) = (
        response_options(),
        http::HeaderValue::from_str(&seconds.max(1).to_string()),
    ) {
        options.insert_header(http::header::RETRY_AFTER, value);
    }
}

/// A rejected input or action: a 4xx with a readable message. A plain-form caller also gets
/// the message as a flash on the page it is sent back to.
pub async fn reject(status: StatusCode, message: impl Into<String>) -> ShopError {
    reject_with(status, Flash::error(message)).await
}

/// As [`reject`], with a flash that may carry the rejected input back to the form.
pub async fn reject_with(status: StatusCode, flash: Flash) -> ShopError {
    if is_form_post() {
        if let Ok((ctx, session)) = context_and_session().await {
            if let Err(error) =
                super::session::change::set_flash(&ctx.sessions, &session, &flash).await
            {
                tracing::error!(%error, "cannot store the flash message");
            }
        }
    }
    ShopError::refused(status, flash.message)
}

/// Tells a plain-form caller what happened, on the page it is sent back to.
pub async fn flash_for_form(flash: Flash) -> Result<(), ShopError> {
    if is_form_post() {
        let (ctx, session) = context_and_session().await?;
        super::session::change::set_flash(&ctx.sessions, &session, &flash).await?;
    }
    Ok(())
}

/// The answer to a request whose own login ended while it was in flight (revoked, logged out):
/// nothing was done; the session is cleared and the caller told to log in again.
pub async fn login_ended(session: &Session) -> ShopError {
    if let Err(error) = session::destroy_session(session).await {
        tracing::error!(%error, "cannot clear an ended session");
    }
    reject(
        StatusCode::UNAUTHORIZED,
        "Your session has ended. Please log in again.",
    )
    .await
}

/// The logged-in user, or a 401 rejection.
pub async fn require_user(session: &Session) -> Result<session::AuthUser, ShopError> {
    match session::current_user(session).await? {
        Some(user) => Ok(user),
        None => Err(reject(StatusCode::UNAUTHORIZED, "Please log in first.").await),
    }
}

/// Sudo mode, before a sensitive action: passes (and restarts the window) when the password
/// was entered recently enough; otherwise nothing is done and the caller is sent to
/// `/account/confirm?next=<the page it came from>` (a plain form by a 303, a hydrated page by
/// the error, which it follows).
pub async fn require_sudo(ctx: &AppContext, session: &Session) -> Result<(), ShopError> {
    let now = session::clock::now();
    match session::change::take_sudo(&ctx.sessions, session, &bound_client(), now).await {
        Ok(true) => return Ok(()),
        Ok(false) => {}
        Err(session::SessionError::LoginEnded) => return Err(login_ended(session).await),
        Err(error) => return Err(error.into()),
    }
    let back = use_context::<http::request::Parts>()
        .and_then(|parts| same_site_referer(&parts.headers))
        .unwrap_or_else(|| "/".to_string());
    let to = crate::model::confirm_path(&back);
    form_redirect(&to);
    Err(ShopError::confirm_first(to))
}

/// Records a security event of `user_id` done from this request's client (its browser and
/// address are on the row). A failure to record is logged; the action stands.
pub async fn log_security_event(
    ctx: &AppContext,
    user_id: i64,
    kind: crate::model::SecurityEventKind,
    detail: &str,
) {
    let device = session::describe_device(&user_agent());
    let event = session::security_log::NewEvent {
        user_id,
        kind,
        device: &device,
        ip: &client_ip(),
        detail,
    };
    session::security_log::record_after(&ctx.db, event, session::clock::now()).await;
}

/// Records a security event of `user_id` done by someone else (an admin, the API): the
/// actor's browser and address are not the owner's business, and are left out.
pub async fn log_security_event_by_other(
    ctx: &AppContext,
    user_id: i64,
    kind: crate::model::SecurityEventKind,
    detail: &str,
) {
    let event = session::security_log::NewEvent {
        user_id,
        kind,
        device: "",
        ip: "",
        detail,
    };
    session::security_log::record_after(&ctx.db, event, session::clock::now()).await;
}

/// The current request's client as a login is bound to it (browser family, network).
pub fn bound_client() -> session::BoundClient {
    session::BoundClient::of(&user_agent(), current_client_addr())
}

/// The client's address of the current request (see [`client_addr`]).
fn current_client_addr() -> Option<std::net::IpAddr> {
    use_context::<http::request::Parts>().and_then(|parts| client_addr(&parts.extensions))
}

/// The client network of the current request ([`ClientNet`]), as the key of its budgets.
pub fn client_network() -> String {
    current_client_addr()
        .map(|ip| ClientNet::of(ip).to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The client's IP address of the current request (see [`client_addr`]).
pub fn client_ip() -> String {
    current_client_addr()
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

pub fn user_agent() -> String {
    use_context::<http::request::Parts>()
        .and_then(|parts| {
            parts
                .headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// The path and query of the Referer when it is a URL of this site, for sending a form back.
pub fn same_site_referer(headers: &http::HeaderMap) -> Option<String> {
    let referer = headers.get(http::header::REFERER)?.to_str().ok()?;
    let host = headers.get(http::header::HOST)?.to_str().ok()?;
    let rest = referer
        .strip_prefix("http://")
        .or_else(|| referer.strip_prefix("https://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if !authority.eq_ignore_ascii_case(host) {
        return None;
    }
    // `http://host//evil.test/x` has this host, and the path `//evil.test/x`, which a browser
    // would follow to evil.test.
    let path = strip_error_query(path);
    crate::model::is_same_site_path(&path).then_some(path)
}

/// Leptos appends the error of a failed form call to the URL; our pages show it as a flash.
fn strip_error_query(path: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            !pair.is_empty() && !pair.starts_with("__err") && !pair.starts_with("__path")
        })
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// 503 with `Retry-After`: the database (or the session store on it) did not answer; the same
/// request may well succeed in a moment.
pub fn busy() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(http::header::RETRY_AFTER, "5")],
        "The shop is busy. Please try again in a moment.",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::ClientNet;

    fn net(ip: &str) -> String {
        ClientNet::of(ip.parse().unwrap()).to_string()
    }

    #[test]
    fn ipv6_clients_are_their_64_and_ipv4_clients_their_address() {
        assert_eq!(net("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            net("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            net("2001:db8:1:2::7")
        );
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("192.0.2.7"), "192.0.2.7");
        assert_ne!(net("192.0.2.7"), net("192.0.2.8"));
        assert_eq!(net("::ffff:192.0.2.7"), "192.0.2.7");
    }

    use super::same_site_referer;
    use http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn referer_must_be_this_site() {
        let h = headers(&[
            ("host", "shop.test:3000"),
            ("referer", "http://shop.test:3000/cart?x=1&__err=abc"),
        ]);
        assert_eq!(same_site_referer(&h).as_deref(), Some("/cart?x=1"));
        let h = headers(&[
            ("host", "shop.test:3000"),
            ("referer", "http://evil.test/cart"),
        ]);
        assert_eq!(same_site_referer(&h), None);
        let h = headers(&[("host", "shop.test"), ("referer", "https://shop.test")]);
        assert_eq!(same_site_referer(&h).as_deref(), Some("/"));
        // This host, but a path a browser reads as another host.
        for referer in [
            "http://shop.test//evil.test/x",
            "http://shop.test/\\evil.test/x",
        ] {
            let h = headers(&[("host", "shop.test"), ("referer", referer)]);
            assert_eq!(same_site_referer(&h), None, "{referer}");
        }
    }
}
