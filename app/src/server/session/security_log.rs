//! Each account's own security log (`/account/security`): what happened to its logins, for
//! its owner to read — logins, failed and throttled logins, changes of client, revocations (by
//! whom), password changes, confirmations, logouts. Kept in the shop's database (on every
//! session store), pruned after the policy's retention and past [`MAX_EVENTS_PER_ACCOUNT`].
//!
//! Budget: one failure (or change of client) repeated from one address within [`REPEAT_WINDOW_SECS`] is one row with
//! a count, so a flood of guesses (throttled anyway) grows the log by at most a row per
//! address and minute; the cap per account bounds the rest.

use crate::model::{SecurityEvent, SecurityEventKind};
use crate::on_conn;
use crate::on_db;
use crate::server::db::Db;

/// Rows kept per account at most (the newest); older ones go at the next prune.
pub const MAX_EVENTS_PER_ACCOUNT: i64 = 1_000;

/// The same failure from the same address within this many seconds adds to the last row.
pub const REPEAT_WINDOW_SECS: i64 = 60;

/// One event to record: its kind, where it came from, and what more to say.
#[derive(Clone, Debug)]
pub struct NewEvent<'a> {
    pub user_id: i64,
    pub kind: SecurityEventKind,
    /// "Firefox on Linux" (see `login_rows::describe_device`); empty when not from a browser.
    pub device: &'a str,
    /// The client's address; empty when not from a client (an admin's or the API's act).
    pub ip: &'a str,
    pub detail: &'a str,
}

/// Records `event` at `now` (Unix seconds). A failed login or a change of client repeating one
/// of this account's from the same address within a minute only counts on that row (a session
/// used by turns from two clients changes at every turn).
pub async fn record(db: &Db, event: NewEvent<'_>, now: i64) -> Result<(), sqlx::Error> {
    let kind = event.kind.as_str();
    let mut tx = db.begin_write().await?;
    on_conn!(&mut tx.conn(), c => {
        let mut merged = 0;
        if matches!(
            event.kind,
            SecurityEventKind::LoginFailed | SecurityEventKind::ClientChanged
        ) {
            merged = sqlx::query(
                "UPDATE security_events SET repeats = repeats + 1, at = $1
                 WHERE id = (SELECT id FROM security_events
                             WHERE user_id = $2 AND kind = $3 AND ip = $4 AND detail = $5
                               AND at >= $6
                             ORDER BY id DESC LIMIT 1)",
            )
            .bind(now)
            .bind(event.user_id)
            .bind(kind)
            .bind(event.ip)
            .bind(event.detail)
            .bind(now - REPEAT_WINDOW_SECS)
            .execute(&mut *c)
            .await?
            .rows_affected();
        }
        if merged == 0 {
            sqlx::query(
                "INSERT INTO security_events (user_id, at, kind, device, ip, detail)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(event.user_id)
            .bind(now)
            .bind(kind)
            .bind(event.device)
            .bind(event.ip)
            .bind(event.detail)
            .execute(&mut *c)
            .await?;
        }
    });
    tx.commit().await
}

/// As [`record`], for an action that has already happened: a failure to record is logged, not
/// turned into a failure of the action.
pub async fn record_after(db: &Db, event: NewEvent<'_>, now: i64) {
    let kind = event.kind.as_str();
    if let Err(error) = record(db, event, now).await {
        tracing::error!(%error, kind, "cannot record a security event");
    }
}

/// One page of `user_id`'s events, newest first, and how many there are.
pub async fn page(
    db: &Db,
    user_id: i64,
    page: i64,
    per_page: i64,
) -> Result<(Vec<SecurityEvent>, i64), sqlx::Error> {
    let total: i64 = on_db!(db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM security_events WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await)?;
    type Row = (i64, String, String, String, String, i64);
    let rows: Vec<Row> = on_db!(db, pool => sqlx::query_as(
        "SELECT at, kind, device, ip, detail, repeats FROM security_events
         WHERE user_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
    )
    .bind(user_id)
    .bind(per_page)
    .bind((page.max(1) - 1).saturating_mul(per_page))
    .fetch_all(pool)
    .await)?;
    let events = rows
        .into_iter()
        .filter_map(|(at, kind, device, ip, detail, repeats)| {
            Some(SecurityEvent {
                at,
                kind: SecurityEventKind::parse(&kind)?,
                device,
                ip,
                detail,
                repeats,
            })
        })
        .collect();
    Ok((events, total))
}

/// Deletes the events older than `retention` seconds before `now`, and every account's past
/// its newest [`MAX_EVENTS_PER_ACCOUNT`]. Returns how many went.
pub async fn prune(db: &Db, retention_secs: i64, now: i64) -> Result<u64, sqlx::Error> {
    let old = on_db!(db, pool => sqlx::query("DELETE FROM security_events WHERE at < $1")
        .bind(now.saturating_sub(retention_secs))
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    let excess = on_db!(db, pool => sqlx::query(
        "DELETE FROM security_events WHERE id IN (
             SELECT id FROM (
                 SELECT id, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY id DESC) AS n
                 FROM security_events
             ) AS ranked WHERE n > $1
         )",
    )
    .bind(MAX_EVENTS_PER_ACCOUNT)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(old + excess)
}

/// Prunes every `period`, for ever (a failed pass is logged; the next comes at its time).
pub async fn prune_forever(db: Db, retention_secs: i64, period: std::time::Duration) {
    super::store::repeat_forever(period, "pruning the security log", || async {
        let pruned = prune(&db, retention_secs, super::clock::now()).await?;
        if pruned > 0 {
            tracing::info!(events = pruned, "old security events pruned");
        }
        Ok::<(), sqlx::Error>(())
    })
    .await
}
