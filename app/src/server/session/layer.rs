//! The session layer: one tower [`Layer`] that owns everything a request does with its
//! session, in this order (outside in):
//!
//! 1. the cookie and the stored record (tower-sessions' `SessionManager`: the record is loaded
//!    when first read and saved, with its cookie, when changed); a clearing cookie is sent with
//!    the attributes of the cookie it clears;
//! 2. the login timeouts: a login past its idle or absolute timeout is demoted before anything
//!    reads it, and the user's activity is recorded (`timeouts`);
//! 3. the new-session budget: a client past it gets 429 before anything runs (`budget`);
//! 4. the request itself;
//! 5. the budget settled (a token given back when no session was started after all), and the
//!    cookie's lifetime (a login "until the browser closes" gets a session cookie; a used
//!    persistent cookie is sent again with a fresh `Max-Age`).
//!
//! Static files are routed outside this layer: they never touch a session.

use super::budget::NewSessionBudget;
use super::contents::{current_user, BoundClient};
use super::store::ShopSessionStore;
use super::timeouts::{self, Activity};
use crate::server::client::{client_addr, ClientNet};
use crate::server::request::busy;
use crate::server::AppContext;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer, Service, ServiceExt};
use tower_sessions::cookie::{time::Duration, Cookie, SameSite};
use tower_sessions::{Expiry, Session, SessionManagerLayer};

/// tower-sessions' manager (its cookie manager around it) around the checked request.
type Managed<S> = <SessionManagerLayer<ShopSessionStore> as Layer<Checked<S>>>::Service;

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

/// The session layer; see the module's documentation for what it does, in which order.
#[derive(Clone)]
pub struct SessionLayer {
    manager: SessionManagerLayer<ShopSessionStore>,
    checks: Checks,
}

/// What the layer does around the request, inside tower-sessions' manager (cheap to clone:
/// its parts share their state).
#[derive(Clone)]
struct Checks {
    context: AppContext,
    cookie: CookiePolicy,
    budget: NewSessionBudget,
    /// Requests that are not the user's doing (the event stream a page opens by itself): the
    /// timeouts are enforced, no activity is recorded.
    passive_path: Option<&'static str>,
}

impl SessionLayer {
    /// Sessions in `store`; the timeouts, budget and writes of `context`; a `Secure` cookie
    /// (named `__Host-id`) when `secure`. The cookie is HttpOnly, SameSite=Lax, Path=/, no
    /// Domain; a session nobody used for the policy's `idle_timeout` is gone, cart included.
    pub fn new(store: ShopSessionStore, context: AppContext, secure: bool) -> SessionLayer {
        let policy = &context.policy;
        let idle = Duration::try_from(policy.idle_timeout).unwrap_or(Duration::days(7));
        let manager = SessionManagerLayer::new(store)
            .with_name(cookie_name(secure))
            .with_secure(secure)
            .with_http_only(true)
            .with_same_site(SameSite::Lax)
            .with_path("/")
            .with_expiry(Expiry::OnInactivity(idle));
        let checks = Checks {
            cookie: CookiePolicy {
                secure,
                idle_timeout: policy.idle_timeout,
            },
            budget: NewSessionBudget::new(
                context.db.clone(),
                context.sessions.redis().cloned(),
                policy.new_sessions_burst,
                policy.new_session_interval,
            ),
            context,
            passive_path: None,
        };
        SessionLayer { manager, checks }
    }

    /// Requests to `path` are not the user's activity: they never keep an idle login alive.
    pub fn with_passive_path(mut self, path: &'static str) -> SessionLayer {
        self.checks.passive_path = Some(path);
        self
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> SessionService<S> {
        SessionService {
            manager: self.manager.layer(Checked {
                inner,
                checks: Arc::new(self.checks.clone()),
            }),
            secure: self.checks.cookie.secure,
        }
    }
}

/// The service of [`SessionLayer`].
#[derive(Clone)]
pub struct SessionService<S> {
    manager: Managed<S>,
    secure: bool,
}

impl<S> Service<Request> for SessionService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.manager.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Answer {
        let answer = self.manager.call(request);
        let secure = self.secure;
        Box::pin(async move {
            let mut response = answer.await?;
            clear_with_the_same_attributes(secure, &mut response);
            Ok(response)
        })
    }
}

/// The request inside tower-sessions' manager, with the layer's checks around it.
#[derive(Clone)]
pub struct Checked<S> {
    inner: S,
    checks: Arc<Checks>,
}

impl<S> Service<Request> for Checked<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Answer {
        // The clone that was not polled ready stays; the ready one serves this request.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let checks = self.checks.clone();
        Box::pin(async move { Ok(checks.around(request, ready).await) })
    }
}

impl Checks {
    async fn around<S>(&self, request: Request, inner: S) -> Response
    where
        S: Service<Request, Response = Response, Error = Infallible> + Send,
        S::Future: Send,
    {
        let Some(session) = request.extensions().get::<Session>().cloned() else {
            // Not under tower-sessions' manager: a wiring bug, not the client's doing.
            tracing::error!("the session layer found no session");
            return busy();
        };
        let context = &self.context;
        let passive = self.passive_path == Some(request.uri().path());
        // The login timeouts and the binding first: everything after sees a demoted or
        // expired login as gone.
        let user_agent = request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let client = BoundClient::of(user_agent, client_addr(request.extensions()));
        let activity = match timeouts::enforce(
            &context.sessions,
            &context.policy,
            &context.metrics,
            &session,
            !passive,
            &client,
        )
        .await
        {
            Ok(activity) => activity,
            Err(error) => {
                tracing::error!(%error, "session check failed");
                return busy();
            }
        };
        // A request without a stored session (the timeouts loaded it: the ID is set only if
        // it is stored) that may start one takes a token first; only a state-changing request
        // can start one, and such a request waits its turn.
        let client = client_addr(request.extensions())
            .map(ClientNet::of)
            .filter(|_| session.id().is_none());
        let may_start = !matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        );
        if let (Some(client), true) = (client, may_start) {
            match self.budget.take(client).await {
                Ok(Ok(())) => {}
                Ok(Err(wait)) => {
                    tracing::warn!(%client, "new-session budget exhausted");
                    return too_many_new_sessions(wait);
                }
                Err(error) => {
                    tracing::error!(%error, "new-session budget: the store did not answer");
                    return busy();
                }
            }
        }
        let mut response = match inner.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        if let Some(client) = client {
            // The manager stores a session that has no ID yet and holds data.
            let starts = session.id().is_none() && !session.is_empty().await;
            let settled = match (may_start, starts) {
                (true, false) => self.budget.give_back(client).await,
                (false, true) => self.budget.charge(client).await,
                _ => Ok(()),
            };
            if let Err(error) = settled {
                tracing::warn!(%error, "new-session budget: could not settle a token");
            }
        }
        set_cookie_lifetime(self.cookie, &session, activity, &mut response).await;
        response
    }
}

/// 429 with `Retry-After`: this client network started too many sessions lately.
fn too_many_new_sessions(wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs().max(1);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(
            header::RETRY_AFTER,
            HeaderValue::from_str(&seconds.to_string()).unwrap_or(HeaderValue::from_static("30")),
        )],
        format!("Too many new visits from your network. Please try again in {seconds} seconds."),
    )
        .into_response()
}

/// The cookie name: `__Host-` pins a secure cookie to this exact host and path `/`.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-id"
    } else {
        "id"
    }
}

/// What the session cookie's lifetime depends on.
#[derive(Clone, Copy, Debug)]
struct CookiePolicy {
    secure: bool,
    /// The session idle timeout: a persistent cookie's `Max-Age`.
    idle_timeout: std::time::Duration,
}

/// A login without "Keep me signed in" gets a cookie that ends with the browser (no `Max-Age`,
/// no `Expires`); every other session a persistent one (`Max-Age` = the idle timeout),
/// renewed with use. Called once the request is done, with the activity the login timeouts
/// recorded:
/// - when the layer is about to save the session (and send its cookie), the expiry is set
///   from what the session holds now — a login made, ended or kept during this very request;
/// - the session's own transactions (cart writes, the activity touch) leave the layer nothing
///   to save, so it sends no cookie: when the request recorded activity (the touch, at most
///   once per touch interval), the persistent cookie is sent again here, with a fresh
///   `Max-Age`, so a session in use never loses its cookie.
async fn set_cookie_lifetime(
    policy: CookiePolicy,
    session: &tower_sessions::Session,
    activity: Activity,
    response: &mut Response,
) {
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
fn clear_with_the_same_attributes(secure: bool, response: &mut Response) {
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
        return;
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
