//! `GET /api/session/events`: a server-sent-events stream per open page of a logged-in
//! session, authenticated by its cookie. It sends one `signed-out` event when the login ends
//! (revoked, logged out elsewhere, replaced by a password change, timed out), then closes;
//! `: keep-alive` comments every 15 s keep proxies from closing it; it ends when the server
//! stops (the page reconnects, to another instance behind a load balancer). A session without
//! a login gets the `signed-out` event at once. See `app::server::session_events`.

use super::router::AppState;
use app::server::session_events::{login_state, LoginState, Subscription, Wake};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::time::Duration;
use tokio::time::Instant;
use tower_sessions::Session;

/// How often an idle stream sends a comment (nginx closes a proxied connection silent for 60 s).
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The longest a stream goes without reading its login's row (the feed is the fast path).
const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// When the database does not answer, when to try again.
const RETRY_CHECK: Duration = Duration::from_secs(5);

struct Watch {
    subscription: Subscription,
    state: AppState,
    handle: String,
}

/// The one event a stream ever sends.
fn signed_out(reason: &'static str) -> Event {
    Event::default().event("signed-out").data(reason)
}

pub async fn session_events(State(state): State<AppState>, session: Session) -> Response {
    let user = match app::server::session::current_user(&session).await {
        Ok(user) => user,
        Err(error) => {
            tracing::error!(%error, "session events: cannot read the session");
            return super::guard::busy();
        }
    };
    let Some(user) = user else {
        let once = futures_util::stream::once(async { Ok::<_, Infallible>(signed_out("none")) });
        return sse(Sse::new(once).into_response());
    };
    let subscription = match state.context.events.subscribe(&user.handle) {
        Ok(subscription) => subscription,
        Err(error) => return refused(&error.to_string()),
    };
    let watch = Watch {
        subscription,
        state,
        handle: user.handle,
    };
    let stream = futures_util::stream::unfold(Some(watch), |watch| async move {
        let mut watch = watch?;
        // First read the row: the login may have ended between the request's session check
        // and the subscription.
        let mut check = true;
        let mut check_at = Instant::now() + MAX_CHECK_INTERVAL;
        loop {
            if check {
                let context = &watch.state.context;
                check_at = match login_state(&context.db, &context.policy, &watch.handle).await {
                    Ok(LoginState::Live { due_in_secs }) => {
                        Instant::now() + Duration::from_secs(due_in_secs).min(MAX_CHECK_INTERVAL)
                    }
                    Ok(LoginState::Ended) => return Some((Ok(signed_out("ended")), None)),
                    Ok(LoginState::TimedOut) => return Some((Ok(signed_out("timed-out")), None)),
                    Err(error) => {
                        tracing::warn!(%error, "session events: cannot read the registry");
                        Instant::now() + RETRY_CHECK
                    }
                };
            }
            match watch.subscription.next(check_at).await {
                Wake::Ended => return Some((Ok::<_, Infallible>(signed_out("ended")), None)),
                Wake::Check => check = true,
                Wake::Missed => {
                    // Every stream hears this at once: spread their reads over two seconds
                    // rather than queue thousands on the pool in the same instant.
                    let pause = Duration::from_millis(rand::random::<u64>() % 2000);
                    if watch.subscription.pause(pause).await {
                        return None;
                    }
                    check = true;
                }
                Wake::Shutdown => return None,
            }
        }
    });
    sse(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response())
}

/// Proxies must pass each event on at once (nginx buffers proxied answers unless told).
fn sse(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// A stream over the limits (or asked for during shutdown): 503, to be tried again later.
fn refused(message: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        message.to_string(),
    )
        .into_response()
}
