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
}
