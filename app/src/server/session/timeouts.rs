//! Run on every request that carries a session: enforces the login timeouts (demoting the
//! session to anonymous: login removed, ID rotated, cart kept, a message for the shopper) and
//! records activity at most once per `touch_interval`.

use super::change::{SessionTx, SessionWrites};
use super::contents::{self as session, SessionError};
use super::policy::{LoginState, LoginTimes, SessionPolicy};
use super::registry::{self, EndReason};
use crate::model::Flash;
use crate::server::metrics::{Expiry, Metrics};
use tower_sessions::Session;

/// Whether [`enforce`] recorded the session's activity (its "last seen", written at most
/// once per touch interval).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    Recorded,
    Unchanged,
}

/// `counts_as_activity`: false for requests that are not the user's doing (the event stream a
/// page opens and reopens by itself): the timeouts are enforced, nothing is recorded, so an
/// open tab never keeps an idle login alive.
pub async fn enforce(
    db: &SessionWrites,
    policy: &SessionPolicy,
    metrics: &Metrics,
    session: &Session,
    counts_as_activity: bool,
) -> Result<Activity, SessionError> {
    if session.id().is_none() {
        return Ok(Activity::Unchanged);
    }
    let now = super::clock::now();
    let user = session::current_user(session).await?;
    let seen = session::last_seen(session).await?;
    if let Some(user) = &user {
        let login = LoginTimes {
            created_at: user.logged_in_at,
            last_seen_at: seen.unwrap_or(user.logged_in_at),
            remembered: user.remembered,
        };
        let expiry = match policy.login_state(login, now) {
            LoginState::Live { .. } => None,
            LoginState::IdleExpired => Some(Expiry::LoginIdle),
            LoginState::AbsoluteExpired => Some(Expiry::LoginAbsolute),
        };
        if let Some(expiry) = expiry {
            // Counted once: of the page's parallel requests that saw the stale login, only the
            // one that ended its row.
            let ended_here = demote(db, session, &user.handle, now).await?;
            if ended_here {
                metrics.expired(expiry, 1);
            }
            return Ok(Activity::Unchanged);
        }
    }
    let due = counts_as_activity
        && seen.is_none_or(|seen| now - seen >= policy.touch_interval.as_secs() as i64);
    if due {
        let mut tx = match &user {
            Some(user) => SessionTx::begin_for_login(db, session, &user.handle).await?,
            None => SessionTx::begin(db, session).await?,
        };
        if !tx.contents().exists() {
            tx.rollback().await;
            return Ok(Activity::Unchanged);
        }
        tx.contents().mark_seen(now)?;
        // Only the row locked first (a login changed meanwhile is touched by its next request).
        let stored = tx.contents().login().map(|login| login.handle);
        if let (Some(stored), Some(user)) = (stored, &user) {
            if stored == user.handle {
                registry::touch(&mut tx.conn(), &stored, now).await?;
            }
        }
        tx.commit(session).await?;
        return Ok(Activity::Recorded);
    }
    Ok(Activity::Unchanged)
}

/// Drops the login but keeps the cart, with a new session ID.
async fn demote(
    db: &SessionWrites,
    session: &Session,
    handle: &str,
    now: i64,
) -> Result<bool, SessionError> {
    let mut tx = SessionTx::begin_for_login(db, session, handle).await?;
    tx.contents().sign_out(&Flash::error(
        "You were signed out after a period of inactivity. Please log in again.",
    ))?;
    tx.contents().mark_seen(now)?;
    // The row ends in the same transaction that removes the login from the stored record.
    let ended = registry::end_in(&mut tx.conn(), handle, EndReason::Timeout).await?;
    tx.commit(session).await?;
    session.cycle_id().await?;
    tracing::info!(%handle, "session demoted: login timed out");
    Ok(ended)
}
