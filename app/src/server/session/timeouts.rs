//! Run on every request that carries a session: enforces the login timeouts and the binding
//! of a login to its client (demoting the session to anonymous: login removed, ID rotated, cart
//! kept, a message for the shopper; or, under `notice`, ending the sudo window) and records
//! activity at most once per `touch_interval`.

use super::change::{begin_session_only, SessionTx, SessionWrites};
use super::contents::{self as session, AuthUser, BoundClient, Contents, SessionError};
use super::login_rows::{self, EndReason};
use super::policy::{Binding, LoginState, LoginTimes, SessionPolicy};
use super::registry;
use super::security_log::{self, NewEvent};
use crate::model::Flash;
use crate::model::SecurityEventKind;
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
/// open tab never keeps an idle login alive. `client`: the request's, for the binding.
pub async fn enforce(
    db: &SessionWrites,
    policy: &SessionPolicy,
    metrics: &Metrics,
    session: &Session,
    counts_as_activity: bool,
    client: &BoundClient,
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
            let ended_here = demote(
                db,
                session,
                &user.handle,
                now,
                EndReason::Timeout,
                &timed_out(),
            )
            .await?;
            if ended_here {
                metrics.expired(expiry, 1);
            }
            return Ok(Activity::Unchanged);
        }
        if let Some(bound) = user.client.as_ref().filter(|bound| *bound != client) {
            match policy.binding {
                Binding::Off => {}
                Binding::Notice => {
                    if rebind(db, session, user, client).await? {
                        let detail = format!(
                            "From {bound} to {client}: still signed in; the password is asked \
                             again for sensitive actions"
                        );
                        client_changed(db, user, client, &detail, now).await;
                    }
                }
                Binding::Strict => {
                    let flash = Flash::error(
                        "You were signed out: this session was used from another browser or \
                         network. Please log in again.",
                    );
                    let reason = EndReason::ClientChanged;
                    if demote(db, session, &user.handle, now, reason, &flash).await? {
                        let detail = format!("From {bound} to {client}: signed out");
                        client_changed(db, user, client, &detail, now).await;
                        registry::audit_client_changed(db.db(), user.id, &user.handle).await;
                    }
                    return Ok(Activity::Unchanged);
                }
            }
        }
    }
    let due = counts_as_activity
        && seen.is_none_or(|seen| now - seen >= policy.touch_interval.as_secs() as i64);
    if due && db.redis().is_some() {
        return touch_on_redis(db, session, user.as_ref(), now).await;
    }
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
                login_rows::touch(&mut tx.conn(), &stored, now).await?;
            }
        }
        tx.commit(session).await?;
        return Ok(Activity::Recorded);
    }
    Ok(Activity::Unchanged)
}

/// Notice binding: the login follows its new client, and its sudo window ends (one atomic
/// change). False when another request had already done it (so it is logged once).
async fn rebind(
    db: &SessionWrites,
    session: &Session,
    user: &AuthUser,
    client: &BoundClient,
) -> Result<bool, SessionError> {
    for attempt in 1..=TOUCH_ATTEMPTS {
        let mut change = begin_session_only(db, session, attempt).await?;
        let contents = change.contents();
        let Some(mut login) = contents.login().filter(|login| login.handle == user.handle) else {
            change.rollback().await;
            return Ok(false);
        };
        if login.client.as_ref() == Some(client) {
            change.rollback().await;
            return Ok(false);
        }
        login.client = Some(client.clone());
        contents.set_login(&login)?;
        contents.end_sudo();
        match change.commit(session).await {
            Ok(()) => return Ok(true),
            Err(SessionError::Conflict) if attempt < TOUCH_ATTEMPTS => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(false)
}

/// The owner's security log: their login was used from `client`.
async fn client_changed(
    db: &SessionWrites,
    user: &AuthUser,
    client: &BoundClient,
    detail: &str,
    now: i64,
) {
    let event = NewEvent {
        user_id: user.id,
        kind: SecurityEventKind::ClientChanged,
        device: &client.browser,
        ip: &client.network,
        detail,
    };
    security_log::record_after(db.db(), event, now).await;
    tracing::info!(handle = %user.handle, "a login was used from another browser or network");
}

/// Drops the login but keeps the cart, with a new session ID and `flash` for the shopper.
async fn demote(
    db: &SessionWrites,
    session: &Session,
    handle: &str,
    now: i64,
    reason: EndReason,
    flash: &Flash,
) -> Result<bool, SessionError> {
    if let Some(redis) = db.redis() {
        // One script deletes the record and ends the entry; the record as read, signed out
        // with its cart, becomes the request's copy, stored under a new ID at the end of the
        // request.
        let Some(id) = session.id() else {
            return Ok(false);
        };
        let mut contents = match redis.load_bytes(&id).await? {
            Some((record, _)) => Contents::stored(Some(record.data)),
            None => Contents::default(),
        };
        contents.sign_out(flash)?;
        contents.mark_seen(now)?;
        let ended = redis.end_login(handle, reason).await?;
        contents.replace_request_copy(session).await?;
        session.cycle_id().await?;
        tracing::info!(%handle, reason = reason.as_str(), "session demoted");
        return Ok(ended);
    }
    let mut tx = SessionTx::begin_for_login(db, session, handle).await?;
    tx.contents().sign_out(flash)?;
    tx.contents().mark_seen(now)?;
    // The row ends in the same transaction that removes the login from the stored record.
    let ended = login_rows::end_in(&mut tx.conn(), handle, reason).await?;
    tx.commit(session).await?;
    session.cycle_id().await?;
    tracing::info!(%handle, reason = reason.as_str(), "session demoted");
    Ok(ended)
}

fn timed_out() -> Flash {
    Flash::error("You were signed out after a period of inactivity. Please log in again.")
}

/// How often a session's activity is written again after losing to a concurrent change.
const TOUCH_ATTEMPTS: usize = 8;

/// The activity touch on Redis: the record's "last seen" by compare-and-swap (again after a
/// concurrent change), then the entry's (its script checks that the login is live).
async fn touch_on_redis(
    db: &SessionWrites,
    session: &Session,
    user: Option<&super::contents::AuthUser>,
    now: i64,
) -> Result<Activity, SessionError> {
    let mut attempt = 0;
    let stored = loop {
        attempt += 1;
        let mut change = begin_session_only(db, session, attempt).await?;
        if !change.contents().exists() {
            change.rollback().await;
            return Ok(Activity::Unchanged);
        }
        change.contents().mark_seen(now)?;
        let stored = change.contents().login();
        match change.commit(session).await {
            Ok(()) => break stored,
            Err(SessionError::Conflict) if attempt < TOUCH_ATTEMPTS => continue,
            // Others are writing this session right now (on other instances): the activity
            // is theirs to record; this request goes on.
            Err(SessionError::Conflict) => return Ok(Activity::Unchanged),
            Err(error) => return Err(error),
        }
    };
    if let (Some(redis), Some(stored), Some(user)) = (db.redis(), stored, user) {
        if stored.handle == user.handle {
            redis.touch(&stored.handle, stored.id, now).await?;
        }
    }
    Ok(Activity::Recorded)
}
