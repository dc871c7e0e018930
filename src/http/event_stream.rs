//! `GET /api/session/events`: a server-sent-events stream per open page of a logged-in
//! session, authenticated by its cookie. It sends one `signed-out` event when the login ends
//! (revoked, logged out elsewhere, replaced by a password change, timed out), then closes;
//! `: keep-alive` comments every 15 s keep proxies from closing it; it ends when the server
//! stops (the page reconnects, to another instance behind a load balancer) and after its
//! lifetime (the page reconnects; the new stream is checked like any request). A session
//! without a login gets the `signed-out` event at once. Opening a stream is not activity: it
//! never keeps an idle login alive (see the guard). Limits per login, per client network and
//! per server: `app::server::session::StreamLimits`. See `app::server::session::SessionEvents`.

use app::server::client::ClientNet;
use app::server::session::{login_row, LoginRow, SubscribeError, Subscription, Wake};
use app::server::AppContext;
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
    context: AppContext,
    handle: String,
    /// The end of the stream's lifetime: it closes then, and the page opens a new one.
    ends_at: Instant,
}

/// The one event a stream ever sends.
fn signed_out(reason: &'static str) -> Event {
    Event::default().event("signed-out").data(reason)
}

pub async fn session_events(
    State(context): State<AppContext>,
    session: Session,
    request: axum::extract::Request,
) -> Response {
    let client = app::server::client::client_addr(request.extensions())
        .map(ClientNet::of)
        .unwrap_or(ClientNet::of(std::net::Ipv4Addr::UNSPECIFIED.into()));
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
    let subscription = match context.events.subscribe(&user.handle, client) {
        Ok(subscription) => subscription,
        Err(error) => return refused(error, client),
    };
    // The stream's end: its lifetime, give or take a tenth (pages do not all reconnect at once).
    let lifetime = context.events.limits().lifetime;
    let spread = lifetime.as_millis() as u64 / 10;
    let jitter = if spread > 0 {
        rand::random::<u64>() % (2 * spread)
    } else {
        0
    };
    let ends_at =
        Instant::now() + lifetime - Duration::from_millis(spread) + Duration::from_millis(jitter);
    let watch = Watch {
        subscription,
        context,
        handle: user.handle,
        ends_at,
    };
    let stream = futures_util::stream::unfold(Some(watch), |watch| async move {
        let mut watch = watch?;
        // First read the row: the login may have ended between the request's session check
        // and the subscription.
        let mut check = true;
        let mut check_at = Instant::now() + MAX_CHECK_INTERVAL;
        loop {
            if check {
                let context = &watch.context;
                check_at = match login_row(&context.sessions, &context.policy, &watch.handle).await
                {
                    Ok(LoginRow::Live { due_in_secs }) => {
                        Instant::now() + Duration::from_secs(due_in_secs).min(MAX_CHECK_INTERVAL)
                    }
                    Ok(LoginRow::Ended) => return Some((Ok(signed_out("ended")), None)),
                    Ok(LoginRow::TimedOut) => return Some((Ok(signed_out("timed-out")), None)),
                    Err(error) => {
                        tracing::warn!(%error, "session events: cannot read the registry");
                        Instant::now() + RETRY_CHECK
                    }
                };
            }
            if Instant::now() >= watch.ends_at {
                return None;
            }
            match watch.subscription.next(check_at.min(watch.ends_at)).await {
                Wake::Ended => return Some((Ok::<_, Infallible>(signed_out("ended")), None)),
                Wake::Check => check = Instant::now() >= check_at,
                Wake::Missed => {
                    // Every stream hears this at once: spread their reads over two seconds
                    // rather than queue thousands on the pool in the same instant.
                    let pause = Duration::from_millis(rand::random::<u64>() % 2000);
                    if watch.subscription.pause(pause).await {
                        return None;
                    }
                    check = true;
                }
                Wake::Shutdown | Wake::Replaced => return None,
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

/// A stream refused: 429 when the client network has its share open already (the client's
/// doing: logged at INFO), 503 when the server is full or stopping; `Retry-After` either way.
/// (A login's own streams are never refused: a new one replaces its oldest.)
fn refused(error: SubscribeError, client: ClientNet) -> Response {
    let status = match error {
        SubscribeError::PerClient => {
            tracing::info!(%client, %error, "event stream refused");
            StatusCode::TOO_MANY_REQUESTS
        }
        SubscribeError::Server | SubscribeError::ShuttingDown => {
            tracing::warn!(%client, %error, "event stream refused");
            StatusCode::SERVICE_UNAVAILABLE
        }
    };
    (status, [(header::RETRY_AFTER, "5")], error.to_string()).into_response()
}
