//! A login as every backend describes it (its handle, how it began, why it ended, the actor of
//! an action) and its row in the SQL registry (`session_registry`): the links, locks and end
//! marks that the store, the atomic changes and the timeouts make inside their own
//! transactions. The registry's operations over whole logins (listing, revoking, auditing)
//! are `registry`'s, on top of these.

use super::clock::now;
use crate::on_conn;
use crate::on_db;
use crate::server::db::{Conn, Db};

/// Why a session ended, as recorded in the registry and the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    Logout,
    Revoked,
    Timeout,
    Expired,
    PasswordChange,
    /// Used from another browser family or network, under strict binding.
    ClientChanged,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::Revoked => "revoked",
            EndReason::Timeout => "timeout",
            EndReason::Expired => "expired",
            EndReason::PasswordChange => "password-change",
            EndReason::ClientChanged => "client-changed",
        }
    }
}

/// The table of stored session records (tower-sessions-sqlx-store's layout, created by our
/// migrations; its rows are the store's, see `store`). Named here because a revocation deletes
/// the records of the logins it ends in the same transaction.
pub const SESSIONS: &str = "tower_sessions";

/// A new random handle: 128 bits, URL-safe, unrelated to any session ID.
pub fn new_handle() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// "Firefox on Linux", from a User-Agent header, by the woothee parser.
pub fn describe_device(user_agent: &str) -> String {
    match woothee::parser::Parser::new().parse(user_agent) {
        Some(ua) if ua.name != "UNKNOWN" && ua.os != "UNKNOWN" => {
            format!("{} on {}", ua.name, ua.os)
        }
        Some(ua) if ua.name != "UNKNOWN" => ua.name.to_string(),
        _ => "Unknown device".to_string(),
    }
}

pub struct NewSession<'a> {
    pub handle: &'a str,
    pub user_id: i64,
    pub ip: &'a str,
    pub user_agent: &'a str,
    /// "Keep me signed in" was ticked.
    pub remembered: bool,
}

impl NewSession<'_> {
    /// The User-Agent as stored (at most 512 characters) and the device it describes.
    pub fn user_agent_and_device(&self) -> (String, String) {
        let user_agent: String = self.user_agent.chars().take(512).collect();
        let device = describe_device(&user_agent);
        (user_agent, device)
    }
}

/// Points the live registry row of `handle` (a login of `user_id`) at the session's new ID,
/// inside the caller's write transaction (the store's `create`). False when the row has ended
/// or does not exist: the login must then not be stored.
pub async fn link_session(
    conn: &mut Conn<'_>,
    handle: &str,
    user_id: i64,
    session_id: &str,
) -> Result<bool, sqlx::Error> {
    let result = on_conn!(conn, c => sqlx::query(
        "UPDATE session_registry SET session_id = $1
         WHERE handle = $2 AND user_id = $3 AND ended_at IS NULL",
    )
    .bind(session_id)
    .bind(handle)
    .bind(user_id)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(result > 0)
}

/// Locks the registry row of `handle` until the transaction ends (PostgreSQL; SQLite's write
/// transaction holds everything already), whatever its state: for a transaction that will
/// also lock the login's session row, which must come second (see `SessionTx::begin_for_login`).
pub async fn lock_row(conn: &mut Conn<'_>, handle: &str) -> Result<(), sqlx::Error> {
    if conn.kind() == crate::server::db::Kind::Sqlite {
        return Ok(());
    }
    let sql = format!(
        "SELECT handle FROM session_registry WHERE handle = $1{}",
        conn.kind().for_update()
    );
    on_conn!(conn, c => sqlx::query_scalar::<_, String>(&sql)
        .bind(handle)
        .fetch_optional(c)
        .await)?;
    Ok(())
}

pub async fn touch(conn: &mut Conn<'_>, handle: &str, at: i64) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "UPDATE session_registry SET last_seen_at = $1 WHERE handle = $2 AND ended_at IS NULL",
    )
    .bind(at)
    .bind(handle)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Marks a session's row ended inside the caller's transaction, which also removes the login
/// from the stored record (see `timeouts::demote`).
/// Whether this call ended it (false: it had ended already).
pub async fn end_in(
    conn: &mut Conn<'_>,
    handle: &str,
    reason: EndReason,
) -> Result<bool, sqlx::Error> {
    let ended = on_conn!(conn, c => sqlx::query(
        "UPDATE session_registry SET ended_at = $1, end_reason = $2, session_id = NULL
         WHERE handle = $3 AND ended_at IS NULL",
    )
    .bind(now())
    .bind(reason.as_str())
    .bind(handle)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(ended > 0)
}

/// The login on whose behalf an action runs: every action (a revocation, the password change,
/// checkout) runs in a write transaction that first checks, with [`lock_live_actor`], that this
/// login is still live — so a request that was in flight while its own login was revoked or
/// logged out (held open before its last body byte, say) does nothing when it finally arrives.
#[derive(Clone, Copy, Debug)]
pub struct Actor<'a> {
    pub handle: &'a str,
    pub user_id: i64,
    /// The action is for shop admins: the user must (still) be one.
    pub admin: bool,
}

/// Inside the caller's write transaction: whether `actor`'s login is live (and, for an admin
/// action, its user still an admin). On PostgreSQL its row is locked until the transaction
/// ends, so a revocation of the actor running at the same time either ended it first (then
/// this sees it ended) or waits for this transaction; on SQLite the write transaction
/// (`BEGIN IMMEDIATE`) excludes every other writer already.
pub async fn lock_live_actor(conn: &mut Conn<'_>, actor: Actor<'_>) -> Result<bool, sqlx::Error> {
    let admin = if actor.admin {
        " AND EXISTS (SELECT 1 FROM users u WHERE u.id = r.user_id AND u.is_admin)"
    } else {
        ""
    };
    let sql = format!(
        "SELECT r.handle FROM session_registry r
         WHERE r.handle = $1 AND r.user_id = $2 AND r.ended_at IS NULL{admin}{}",
        conn.kind().for_update()
    );
    let live: Option<String> = on_conn!(conn, c => sqlx::query_scalar(&sql)
        .bind(actor.handle)
        .bind(actor.user_id)
        .fetch_optional(c)
        .await)?;
    Ok(live.is_some())
}

/// Closes the rows of sessions whose store record is gone (expired and swept).
pub async fn close_orphans(db: &Db) -> Result<u64, sqlx::Error> {
    let sql = format!(
        "UPDATE session_registry SET ended_at = $1, end_reason = 'expired', session_id = NULL
         WHERE ended_at IS NULL AND session_id IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM {SESSIONS} s WHERE s.id = session_registry.session_id)"
    );
    on_db!(db, pool => sqlx::query(&sql)
    .bind(now())
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_readable() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        assert_eq!(describe_device(firefox), "Firefox on Linux");
        assert_eq!(describe_device(""), "Unknown device");
        assert_eq!(new_handle().len(), 32);
        assert_ne!(new_handle(), new_handle());
    }
}
