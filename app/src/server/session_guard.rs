//! Run on every request that carries a session: enforces the login timeouts (demoting the
//! session to anonymous: login removed, ID rotated, cart kept, a message for the shopper) and
//! records activity at most once per `touch_interval`.

use super::metrics::{Expiry, Metrics};
use super::policy::SessionPolicy;
use super::registry::{self, EndReason};
use super::session::{self, SessionError};
use super::session_change::{SessionTx, SessionWrites};
use crate::model::Flash;
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
    let now = registry::now();
    let user = session::current_user(session).await?;
    let seen = session::last_seen(session).await?;
    if let Some(user) = &user {
        let last_active = seen.unwrap_or(user.logged_in_at);
        let (idle_limit, absolute_limit) = policy.login_timeouts(user.remembered);
        let idle = now - last_active > idle_limit.as_secs() as i64;
        let expired = now - user.logged_in_at > absolute_limit.as_secs() as i64;
        if idle || expired {
            // Counted once: of the page's parallel requests that saw the stale login, only the
            // one that ended its row.
            let ended_here = demote(db, session, &user.handle, now).await?;
            if !ended_here {
                return Ok(Activity::Unchanged);
            }
            metrics.expired(
                if expired {
                    Expiry::LoginAbsolute
                } else {
                    Expiry::LoginIdle
                },
                1,
            );
            return Ok(Activity::Unchanged);
        }
    }
    let due = counts_as_activity
        && seen.is_none_or(|seen| now - seen >= policy.touch_interval.as_secs() as i64);
    if due {
        let mut tx = SessionTx::begin(db, session).await?;
        if !tx.contents().exists() {
            tx.rollback().await;
            return Ok(Activity::Unchanged);
        }
        tx.contents().mark_seen(now)?;
        if let Some(user) = tx.contents().login() {
            registry::touch(&mut tx.conn(), &user.handle, now).await?;
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
    let mut tx = SessionTx::begin(db, session).await?;
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
