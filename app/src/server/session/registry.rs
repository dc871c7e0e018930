//! The session registry: one row per authenticated session, kept in step with the store, so
//! sessions can be listed by user and revoked by an opaque handle. With the sessions on Redis
//! (`SessionWrites::redis`), the same operations go to its entries (`redis`); the audit log
//! and an admin's rights stay in the database.

use super::change::SessionWrites;
use super::clock::now;
use super::contents::SessionError;
use super::login_rows::{lock_live_actor, Actor, EndReason, NewSession, SESSIONS};
use super::policy::{LiveSince, SessionPolicy};
use super::redis::{Ended, Liveness};
use crate::model::{AuditEntry, SessionInfo};
use crate::server::db::{Conn, Db, WriteTx};
use crate::{on_conn, on_db};

/// Records a new login (before its session is stored with it); `email` is shown in the lists.
pub async fn record_login(
    sessions: &SessionWrites,
    new: NewSession<'_>,
    email: &str,
) -> Result<(), SessionError> {
    if let Some(redis) = sessions.redis() {
        return Ok(redis.record_login(new, email).await?);
    }
    let db = sessions.db();
    let now = now();
    let (user_agent, device) = new.user_agent_and_device();
    on_db!(db, pool => sqlx::query(
        "INSERT INTO session_registry (handle, user_id, created_at, last_seen_at, ip, user_agent, device, remembered)
         VALUES ($1, $2, $3, $3, $4, $5, $6, $7)",
    )
    .bind(new.handle)
    .bind(new.user_id)
    .bind(now)
    .bind(new.ip)
    .bind(&user_agent)
    .bind(&device)
    .bind(new.remembered)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Ends one login: its row closed and its stored session deleted, in one transaction (logout,
/// a new login on the same browser).
pub async fn end_login(
    sessions: &SessionWrites,
    handle: &str,
    reason: EndReason,
) -> Result<(), SessionError> {
    if let Some(redis) = sessions.redis() {
        redis.end_login(handle, reason).await?;
        return Ok(());
    }
    end_where(
        sessions.db(),
        "handle = $1",
        &[SqlParam::Text(handle)],
        reason,
    )
    .await?;
    Ok(())
}

/// Ends the live sessions matching `filter` (an SQL condition on the registry row, with
/// `$1`… parameters `params`): deletes them from the store and closes their rows, in one
/// transaction. Returns the handles ended.
async fn end_where(
    db: &Db,
    condition: &str,
    params: &[SqlParam<'_>],
    reason: EndReason,
) -> Result<Vec<String>, sqlx::Error> {
    // A write transaction: this one reads, then writes. On SQLite, begun deferred, it would
    // hold a read snapshot, and if any other connection committed in between, its first write
    // would fail at once with SQLITE_BUSY_SNAPSHOT ("database is locked", code 517), which no
    // busy timeout can wait out. On PostgreSQL the rows read are locked (`FOR UPDATE`): a
    // concurrent re-link of one of them (the store's `create`) waits, or is seen.
    let mut tx = db.begin_write().await?;
    let ended = end_where_in(&mut tx.conn(), condition, params, reason).await?;
    tx.commit().await?;
    Ok(ended)
}

/// [`end_where`] inside the caller's write transaction.
async fn end_where_in(
    conn: &mut Conn<'_>,
    condition: &str,
    params: &[SqlParam<'_>],
    reason: EndReason,
) -> Result<Vec<String>, sqlx::Error> {
    let sql = format!(
        "SELECT handle, session_id FROM session_registry WHERE ended_at IS NULL AND {condition}
         ORDER BY handle{}",
        conn.kind().for_update()
    );
    let now = now();
    let rows = on_conn!(conn, c => {
        let mut query = sqlx::query_as::<_, (String, Option<String>)>(&sql);
        for param in params {
            query = match param {
                SqlParam::Int(v) => query.bind(*v),
                SqlParam::Text(v) => query.bind(*v),
                SqlParam::Time(v) => query.bind(*v),
            };
        }
        let rows = query.fetch_all(&mut *c).await?;
        for (handle, session_id) in &rows {
            if let Some(session_id) = session_id {
                let sql = format!("DELETE FROM {SESSIONS} WHERE id = $1");
                sqlx::query(&sql).bind(session_id).execute(&mut *c).await?;
            }
            sqlx::query(
                "UPDATE session_registry SET ended_at = $1, end_reason = $2, session_id = NULL
                 WHERE handle = $3",
            )
            .bind(now)
            .bind(reason.as_str())
            .bind(handle)
            .execute(&mut *c)
            .await?;
        }
        rows
    });
    Ok(rows.into_iter().map(|(handle, _)| handle).collect())
}

/// A write transaction on behalf of `actor`, begun only if its login is live
/// ([`lock_live_actor`]). `None`: the login has ended, and nothing may be done.
///
/// `targets`: the rows the action will end. On PostgreSQL they are locked together with the
/// actor's, in one statement in handle order, so two actions on each other's logins (two
/// devices revoking each other at once) queue instead of deadlocking; the loser then finds its
/// own login ended.
pub async fn begin_as(
    db: &Db,
    actor: Actor<'_>,
    targets: Targets<'_>,
) -> Result<Option<WriteTx>, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    if tx.kind() == crate::server::db::Kind::Postgres {
        let (condition, param) = match targets {
            Targets::Handle(handle) => ("handle = $2", SqlParam::Text(handle)),
            Targets::User(user_id) => ("user_id = $2", SqlParam::Int(user_id)),
        };
        let sql = format!(
            "SELECT handle FROM session_registry WHERE handle = $1 OR {condition}
             ORDER BY handle FOR UPDATE"
        );
        on_conn!(&mut tx.conn(), c => {
            let query = sqlx::query_scalar::<_, String>(&sql).bind(actor.handle);
            let query = match param {
                SqlParam::Int(v) => query.bind(v),
                SqlParam::Text(v) => query.bind(v),
                SqlParam::Time(v) => query.bind(v),
            };
            query.fetch_all(c).await
        })?;
    }
    if lock_live_actor(&mut tx.conn(), actor).await? {
        Ok(Some(tx))
    } else {
        tx.rollback().await?;
        Ok(None)
    }
}

/// The registry rows an action will end (see [`begin_as`]).
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    Handle(&'a str),
    User(i64),
}

/// Ends every other live session of `actor`'s user — and, with `new_password_hash`, changes
/// the password — *only if the acting login is itself still live*, checked in the same write
/// transaction. A request that was in flight while its own session was revoked or logged out
/// can then neither sign the real owner out elsewhere nor change the password.
/// `None`: the actor's login has ended, nothing was done.
///
/// On Redis the logins end in one script that checks the actor first; the password, in the
/// database, changes after it (so a login ended meanwhile changes nothing), and the other
/// logins are ended once more after the change, for any begun with the old password between
/// the two.
pub async fn end_other_sessions(
    sessions: &SessionWrites,
    actor: Actor<'_>,
    reason: EndReason,
    new_password_hash: Option<&str>,
) -> Result<Option<usize>, SessionError> {
    let db = sessions.db();
    let Some(redis) = sessions.redis() else {
        return Ok(again_after_deadlock(|| {
            end_other_sessions_once(db, actor, reason, new_password_hash)
        })
        .await?);
    };
    let others = || {
        redis.end_user_logins(
            Some(actor.handle),
            actor.user_id,
            Some(actor.handle),
            reason,
            Liveness::Any,
        )
    };
    let Ended::Count(mut ended) = others().await? else {
        return Ok(None);
    };
    if let Some(hash) = new_password_hash {
        set_password(&mut db.acquire().await?.conn(), actor.user_id, hash).await?;
        if let Ended::Count(more) = others().await? {
            ended += more;
        }
    }
    Ok(Some(usize::try_from(ended).unwrap_or(usize::MAX)))
}

async fn set_password(conn: &mut Conn<'_>, user_id: i64, hash: &str) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(user_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

async fn end_other_sessions_once(
    db: &Db,
    actor: Actor<'_>,
    reason: EndReason,
    new_password_hash: Option<&str>,
) -> Result<Option<usize>, sqlx::Error> {
    let Some(mut tx) = begin_as(db, actor, Targets::User(actor.user_id)).await? else {
        return Ok(None);
    };
    if let Some(hash) = new_password_hash {
        set_password(&mut tx.conn(), actor.user_id, hash).await?;
    }
    let ended = end_where_in(
        &mut tx.conn(),
        "user_id = $1 AND handle <> $2",
        &[SqlParam::Int(actor.user_id), SqlParam::Text(actor.handle)],
        reason,
    )
    .await?;
    tx.commit().await?;
    Ok(Some(ended.len()))
}

enum SqlParam<'a> {
    Int(i64),
    Text(&'a str),
    Time(time::OffsetDateTime),
}

/// Whether an action on behalf of a login should run again: PostgreSQL aborted its transaction
/// because it and another one each held a row the other wanted (SQLSTATE 40P01). Actions lock
/// their actor's and their targets' rows in one ordered statement ([`begin_as`]), so this is
/// the safety net for what no order can foresee (a row re-linked between two statements); run
/// again, the one aborted sees what the other did. At most three times.
async fn again_after_deadlock<T, F, Fut>(mut action: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut attempt = 0;
    loop {
        match action().await {
            Err(sqlx::Error::Database(e))
                if e.code().as_deref() == Some("40P01") && attempt < 3 =>
            {
                attempt += 1;
                tracing::info!(attempt, "two actions waited for each other; running again");
            }
            result => return result,
        }
    }
}

/// What a revocation did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// The acting login had ended before it could act: nothing was done.
    ActorEnded,
    /// This many sessions were ended (none: nothing matched), of this user (when one matched).
    Ended { count: usize, owner: Option<i64> },
}

/// Revokes one session by handle on behalf of `actor`; with `owner`, only if it belongs to
/// that user (a user's own sessions). With `audit`, the admin audit log records it in the same
/// transaction.
///
/// On Redis the actor's check and the end are one script; an admin's rights and the audit
/// entry are in the database, checked before and written after it.
pub async fn revoke(
    sessions: &SessionWrites,
    actor: Actor<'_>,
    handle: &str,
    owner: Option<i64>,
    audit: Option<&str>,
) -> Result<Revoked, SessionError> {
    let db = sessions.db();
    let Some(redis) = sessions.redis() else {
        return Ok(again_after_deadlock(|| revoke_once(db, actor, handle, owner, audit)).await?);
    };
    if actor.admin && !is_admin(db, actor.user_id).await? {
        return Ok(Revoked::ActorEnded);
    }
    let target = redis.live_login(handle).await?.map(|login| login.user_id);
    let count = match redis
        .revoke(
            Some(actor.handle),
            handle,
            owner,
            EndReason::Revoked,
            Liveness::Any,
        )
        .await?
    {
        Ended::ActorEnded => return Ok(Revoked::ActorEnded),
        Ended::Count(count) => usize::try_from(count).unwrap_or(usize::MAX),
    };
    if let (Some(actor_email), true) = (audit, count > 0) {
        audit_in(
            &mut db.acquire().await?.conn(),
            AuditRecord::revoked_one(actor, actor_email, target, handle),
        )
        .await?;
    }
    Ok(Revoked::Ended {
        count,
        owner: target,
    })
}

/// Whether the user is (still) a shop admin.
async fn is_admin(db: &Db, user_id: i64) -> Result<bool, sqlx::Error> {
    Ok(crate::server::users::is_admin(db, user_id).await? == Some(true))
}

async fn revoke_once(
    db: &Db,
    actor: Actor<'_>,
    handle: &str,
    owner: Option<i64>,
    audit: Option<&str>,
) -> Result<Revoked, sqlx::Error> {
    let Some(mut tx) = begin_as(db, actor, Targets::Handle(handle)).await? else {
        return Ok(Revoked::ActorEnded);
    };
    let target: Option<i64> = on_conn!(&mut tx.conn(), c => sqlx::query_scalar(
        "SELECT user_id FROM session_registry WHERE handle = $1 AND ended_at IS NULL",
    )
    .bind(handle)
    .fetch_optional(c)
    .await)?;
    let handles = match owner {
        Some(user_id) => {
            end_where_in(
                &mut tx.conn(),
                "handle = $1 AND user_id = $2",
                &[SqlParam::Text(handle), SqlParam::Int(user_id)],
                EndReason::Revoked,
            )
            .await?
        }
        None => {
            end_where_in(
                &mut tx.conn(),
                "handle = $1",
                &[SqlParam::Text(handle)],
                EndReason::Revoked,
            )
            .await?
        }
    };
    if let (Some(actor_email), false) = (audit, handles.is_empty()) {
        audit_in(
            &mut tx.conn(),
            AuditRecord::revoked_one(actor, actor_email, target, handle),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Revoked::Ended {
        count: handles.len(),
        owner: target,
    })
}

/// Ends every live session of a user (an admin's "revoke all") on behalf of `actor`, recorded
/// in the audit log as done by `actor_email`, in one transaction.
pub async fn revoke_user_sessions(
    sessions: &SessionWrites,
    actor: Actor<'_>,
    actor_email: &str,
    user_id: i64,
) -> Result<Revoked, SessionError> {
    let db = sessions.db();
    let Some(redis) = sessions.redis() else {
        return Ok(again_after_deadlock(|| {
            revoke_user_sessions_once(db, actor, actor_email, user_id)
        })
        .await?);
    };
    if actor.admin && !is_admin(db, actor.user_id).await? {
        return Ok(Revoked::ActorEnded);
    }
    let count = match redis
        .end_user_logins(
            Some(actor.handle),
            user_id,
            None,
            EndReason::Revoked,
            Liveness::Any,
        )
        .await?
    {
        Ended::ActorEnded => return Ok(Revoked::ActorEnded),
        Ended::Count(count) => usize::try_from(count).unwrap_or(usize::MAX),
    };
    audit_in(
        &mut db.acquire().await?.conn(),
        AuditRecord::revoked_all(
            actor,
            actor_email,
            user_id,
            i64::try_from(count).unwrap_or(i64::MAX),
        ),
    )
    .await?;
    Ok(Revoked::Ended {
        count,
        owner: Some(user_id),
    })
}

async fn revoke_user_sessions_once(
    db: &Db,
    actor: Actor<'_>,
    actor_email: &str,
    user_id: i64,
) -> Result<Revoked, sqlx::Error> {
    let Some(mut tx) = begin_as(db, actor, Targets::User(user_id)).await? else {
        return Ok(Revoked::ActorEnded);
    };
    let handles = end_where_in(
        &mut tx.conn(),
        "user_id = $1",
        &[SqlParam::Int(user_id)],
        EndReason::Revoked,
    )
    .await?;
    audit_in(
        &mut tx.conn(),
        AuditRecord::revoked_all(actor, actor_email, user_id, handles.len() as i64),
    )
    .await?;
    tx.commit().await?;
    Ok(Revoked::Ended {
        count: handles.len(),
        owner: Some(user_id),
    })
}

#[derive(sqlx::FromRow)]
struct InfoRow {
    handle: String,
    user_id: i64,
    email: String,
    device: String,
    ip: String,
    created_at: i64,
    last_seen_at: i64,
    remembered: bool,
}

impl InfoRow {
    fn into_info(self, current: Option<&str>) -> SessionInfo {
        let is_current = current == Some(self.handle.as_str());
        SessionInfo {
            handle: self.handle,
            user_id: self.user_id,
            email: self.email,
            device: self.device,
            ip: self.ip,
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            current: is_current,
            remembered: self.remembered,
        }
    }
}

/// Live sessions: a live registry row whose stored session has not expired (`$1`: now) and
/// whose login is within its timeouts by the login rule (`SessionPolicy::login_state`, as
/// cut-offs: `$first`… the four values of [`LiveSince`], bound by [`bind_live`]). A login past
/// its idle or absolute timeout is listed nowhere, though its own next request is what ends
/// its row.
fn live(first: usize) -> String {
    let timeouts = within_timeouts("r", first);
    format!(
        "FROM session_registry r JOIN users u ON u.id = r.user_id
         JOIN {SESSIONS} s ON s.id = r.session_id
         WHERE r.ended_at IS NULL AND s.expiry_date > $1 AND {timeouts}"
    )
}

/// [`live`]'s timeout condition on the registry row named `row`: `$first`… the cut-offs.
fn within_timeouts(row: &str, first: usize) -> String {
    let [a, b, c, d] = [first, first + 1, first + 2, first + 3];
    format!(
        "(({row}.remembered = FALSE AND {row}.last_seen_at >= ${a} AND {row}.created_at >= ${b})
          OR ({row}.remembered = TRUE AND {row}.last_seen_at >= ${c} AND {row}.created_at >= ${d}))"
    )
}

/// For [`end_where`]: the login is live by [`live`]'s rule (its record stored and unexpired,
/// within its timeouts), with `$first` now and the cut-offs after it; and the parameters.
fn live_condition(policy: &SessionPolicy, first: usize) -> (String, [SqlParam<'static>; 5]) {
    let condition = format!(
        "EXISTS (SELECT 1 FROM {SESSIONS} s
                 WHERE s.id = session_registry.session_id AND s.expiry_date > ${first})
         AND {}",
        within_timeouts("session_registry", first + 1)
    );
    let [a, b, c, d] = live_cutoffs(policy.live_since(now()));
    let params = [
        SqlParam::Time(super::clock::now_utc()),
        SqlParam::Int(a),
        SqlParam::Int(b),
        SqlParam::Int(c),
        SqlParam::Int(d),
    ];
    (condition, params)
}

/// The values of [`live`]'s cut-offs, in order.
fn live_cutoffs(since: LiveSince) -> [i64; 4] {
    [
        since.browser_seen,
        since.browser_created,
        since.remembered_seen,
        since.remembered_created,
    ]
}

/// A user's live sessions, most recently active first.
pub async fn list_for_user(
    sessions: &SessionWrites,
    policy: &SessionPolicy,
    user_id: i64,
    current: Option<&str>,
) -> Result<Vec<SessionInfo>, SessionError> {
    if let Some(redis) = sessions.redis() {
        return Ok(redis.list_for_user(user_id, current).await?);
    }
    let db = sessions.db();
    let live = live(3);
    let sql = format!(
        "SELECT r.handle, r.user_id, u.email, r.device, r.ip, r.created_at, r.last_seen_at, r.remembered {live}
         AND r.user_id = $2 ORDER BY r.last_seen_at DESC, r.created_at DESC LIMIT 500"
    );
    let cutoffs = live_cutoffs(policy.live_since(now()));
    let rows: Vec<InfoRow> = on_db!(db, pool => {
        let mut query = sqlx::query_as(&sql)
            .bind(super::clock::now_utc())
            .bind(user_id);
        for cutoff in cutoffs {
            query = query.bind(cutoff);
        }
        query.fetch_all(pool).await
    })?;
    Ok(rows.into_iter().map(|r| r.into_info(current)).collect())
}

/// One page of all live sessions, optionally filtered by (part of) the email.
pub async fn list_live(
    sessions: &SessionWrites,
    policy: &SessionPolicy,
    email_filter: Option<&str>,
    page: i64,
    per_page: i64,
    current: Option<&str>,
) -> Result<(Vec<SessionInfo>, i64), SessionError> {
    if let Some(redis) = sessions.redis() {
        return Ok(redis
            .list_live(email_filter, page, per_page, current)
            .await?);
    }
    let db = sessions.db();
    let pattern = email_filter.map(|f| {
        let escaped: String = f
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        format!("%{}%", escaped.to_lowercase())
    });
    let now_at = super::clock::now_utc();
    let cutoffs = live_cutoffs(policy.live_since(now()));
    let live_count = live(3);
    let count_sql =
        format!("SELECT COUNT(*) {live_count} AND ($2 IS NULL OR u.email LIKE $2 ESCAPE '\\')");
    let total: i64 = on_db!(db, pool => {
        let mut query = sqlx::query_scalar(&count_sql)
            .bind(now_at)
            .bind(pattern.as_deref());
        for cutoff in cutoffs {
            query = query.bind(cutoff);
        }
        query.fetch_one(pool).await
    })?;
    let live_list = live(5);
    let list_sql = format!(
        "SELECT r.handle, r.user_id, u.email, r.device, r.ip, r.created_at, r.last_seen_at, r.remembered {live_list}
         AND ($2 IS NULL OR u.email LIKE $2 ESCAPE '\\')
         ORDER BY r.last_seen_at DESC, r.created_at DESC, r.handle LIMIT $3 OFFSET $4"
    );
    let rows: Vec<InfoRow> = on_db!(db, pool => {
        let mut query = sqlx::query_as(&list_sql)
            .bind(now_at)
            .bind(pattern.as_deref())
            .bind(per_page)
            .bind(page.saturating_sub(1).saturating_mul(per_page));
        for cutoff in cutoffs {
            query = query.bind(cutoff);
        }
        query.fetch_all(pool).await
    })?;
    Ok((
        rows.into_iter().map(|r| r.into_info(current)).collect(),
        total,
    ))
}

pub struct AuditRecord<'a> {
    /// `None`: not a user (the session API, its key named in `actor_email`; strict binding).
    pub actor_user_id: Option<i64>,
    pub actor_email: &'a str,
    pub action: &'a str,
    pub target_user_id: Option<i64>,
    pub handle: Option<&'a str>,
    pub sessions_ended: i64,
}

impl<'a> AuditRecord<'a> {
    /// An admin's revocation of the session `handle` (of user `target`, when known).
    fn revoked_one(
        actor: Actor<'_>,
        actor_email: &'a str,
        target: Option<i64>,
        handle: &'a str,
    ) -> AuditRecord<'a> {
        AuditRecord {
            actor_user_id: Some(actor.user_id),
            actor_email,
            action: "revoke session",
            target_user_id: target,
            handle: Some(handle),
            sessions_ended: 1,
        }
    }

    /// An admin's revocation of every session of `user_id` (`ended` of them).
    fn revoked_all(
        actor: Actor<'_>,
        actor_email: &'a str,
        user_id: i64,
        ended: i64,
    ) -> AuditRecord<'a> {
        AuditRecord {
            actor_user_id: Some(actor.user_id),
            actor_email,
            action: "revoke all sessions",
            target_user_id: Some(user_id),
            handle: None,
            sessions_ended: ended,
        }
    }
}

/// Writes an audit entry inside the caller's transaction (with the action it records).
async fn audit_in(conn: &mut Conn<'_>, record: AuditRecord<'_>) -> Result<(), sqlx::Error> {
    on_conn!(conn, c => sqlx::query(
        "INSERT INTO session_audit (at, actor_user_id, actor_email, action, target_user_id, target_email, handle, sessions_ended)
         VALUES ($1, $2, $3, $4, $5, (SELECT email FROM users WHERE id = $5), $6, $7)",
    )
    .bind(now())
    .bind(record.actor_user_id)
    .bind(record.actor_email)
    .bind(record.action)
    .bind(record.target_user_id)
    .bind(record.handle)
    .bind(record.sessions_ended)
    .execute(c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// One page of live logins for the session API, in a fixed order (oldest first: by creation
/// time, then handle), those after the key `after` (a `(created_at, handle)` from the last
/// page) — keyset paging: a login made meanwhile comes after every existing one, so no page
/// shifts under a client walking the pages. `limit` rows at most; of `user_id` only if given.
pub async fn list_after(
    sessions: &SessionWrites,
    policy: &SessionPolicy,
    user_id: Option<i64>,
    after: Option<(i64, &str)>,
    limit: i64,
) -> Result<Vec<SessionInfo>, SessionError> {
    let limit_rows = usize::try_from(limit.max(0)).unwrap_or(0);
    if let Some(redis) = sessions.redis() {
        let mut live = match user_id {
            Some(user_id) => redis.list_for_user(user_id, None).await?,
            None => redis.list_live(None, 1, i64::MAX, None).await?.0,
        };
        live.sort_by(|a, b| (a.created_at, &a.handle).cmp(&(b.created_at, &b.handle)));
        return Ok(live
            .into_iter()
            .filter(|info| {
                after.is_none_or(|(created, handle)| {
                    (info.created_at, info.handle.as_str()) > (created, handle)
                })
            })
            .take(limit_rows)
            .collect());
    }
    let (after_created, after_handle) = after.unwrap_or((i64::MIN, ""));
    let live = live(6);
    let sql = format!(
        "SELECT r.handle, r.user_id, u.email, r.device, r.ip, r.created_at, r.last_seen_at, r.remembered {live}
         AND ($2 IS NULL OR r.user_id = $2)
         AND (r.created_at > $3 OR (r.created_at = $3 AND r.handle > $4))
         ORDER BY r.created_at, r.handle LIMIT $5"
    );
    let cutoffs = live_cutoffs(policy.live_since(now()));
    let rows: Vec<InfoRow> = on_db!(sessions.db(), pool => {
        let mut query = sqlx::query_as(&sql)
            .bind(super::clock::now_utc())
            .bind(user_id)
            .bind(after_created)
            .bind(after_handle)
            .bind(limit);
        for cutoff in cutoffs {
            query = query.bind(cutoff);
        }
        query.fetch_all(pool).await
    })?;
    Ok(rows.into_iter().map(|r| r.into_info(None)).collect())
}

/// Ends the live session `handle` for the session API (no acting login), audited as by the
/// key `key_name`. Returns its owner, or `None` when no live session matched.
pub async fn end_by_api(
    sessions: &SessionWrites,
    policy: &SessionPolicy,
    handle: &str,
    key_name: &str,
) -> Result<Option<i64>, SessionError> {
    let db = sessions.db();
    let owner = match sessions.redis() {
        Some(redis) => {
            let owner = redis.live_login(handle).await?.map(|login| login.user_id);
            let within = Liveness::WithinTimeouts;
            match redis
                .revoke(None, handle, None, EndReason::Revoked, within)
                .await?
            {
                Ended::Count(count) if count > 0 => owner,
                _ => None,
            }
        }
        None => {
            let owner: Option<i64> = on_db!(db, pool => sqlx::query_scalar(
                "SELECT user_id FROM session_registry WHERE handle = $1",
            )
            .bind(handle)
            .fetch_optional(pool)
            .await)?;
            // Only a live login (as listed): one past its timeouts is reported unknown, like
            // one that ended, though its row is closed by its next request or the sweep.
            let (live, [now_at, a, b, c, d]) = live_condition(policy, 2);
            let ended = end_where(
                db,
                &format!("handle = $1 AND {live}"),
                &[SqlParam::Text(handle), now_at, a, b, c, d],
                EndReason::Revoked,
            )
            .await?;
            owner.filter(|_| !ended.is_empty())
        }
    };
    if owner.is_some() {
        let actor = format!("the API (key {key_name})");
        let record = AuditRecord {
            actor_user_id: None,
            actor_email: &actor,
            action: "revoke session",
            target_user_id: owner,
            handle: Some(handle),
            sessions_ended: 1,
        };
        audit_in(&mut db.acquire().await?.conn(), record).await?;
    }
    Ok(owner)
}

/// The audit log's row for a login that strict binding ended (`timeouts`): the admin list no
/// longer shows it, and this says why. Logged, not returned, when it cannot be written: the
/// login has ended either way.
pub async fn audit_client_changed(db: &Db, user_id: i64, handle: &str) {
    let record = AuditRecord {
        actor_user_id: None,
        actor_email: "strict session binding",
        action: "end session: used from another browser or network",
        target_user_id: Some(user_id),
        handle: Some(handle),
        sessions_ended: 1,
    };
    let written = match db.acquire().await {
        Ok(mut conn) => audit_in(&mut conn.conn(), record).await,
        Err(error) => Err(error),
    };
    if let Err(error) = written {
        tracing::error!(%error, "cannot write the audit row of a client change");
    }
}

/// Ends every live session of `user_id` for the session API, audited as by the key
/// `key_name`. Returns how many ended.
pub async fn end_user_by_api(
    sessions: &SessionWrites,
    policy: &SessionPolicy,
    user_id: i64,
    key_name: &str,
) -> Result<usize, SessionError> {
    let db = sessions.db();
    let count = match sessions.redis() {
        Some(redis) => match redis
            .end_user_logins(
                None,
                user_id,
                None,
                EndReason::Revoked,
                Liveness::WithinTimeouts,
            )
            .await?
        {
            Ended::Count(count) => usize::try_from(count).unwrap_or(usize::MAX),
            Ended::ActorEnded => 0,
        },
        None => {
            // Only live logins, so the count is of sessions that could still be used (as
            // listed); see `end_by_api`.
            let (live, [now_at, a, b, c, d]) = live_condition(policy, 2);
            end_where(
                db,
                &format!("user_id = $1 AND {live}"),
                &[SqlParam::Int(user_id), now_at, a, b, c, d],
                EndReason::Revoked,
            )
            .await?
            .len()
        }
    };
    let actor = format!("the API (key {key_name})");
    let record = AuditRecord {
        actor_user_id: None,
        actor_email: &actor,
        action: "revoke all sessions",
        target_user_id: Some(user_id),
        handle: None,
        sessions_ended: i64::try_from(count).unwrap_or(i64::MAX),
    };
    audit_in(&mut db.acquire().await?.conn(), record).await?;
    Ok(count)
}

/// Page `page` (1-based) of the audit log, newest first, `per_page` entries a page; and how
/// many entries there are in all.
pub async fn audit_page(
    db: &Db,
    page: i64,
    per_page: i64,
) -> Result<(Vec<AuditEntry>, i64), sqlx::Error> {
    let total: i64 = on_db!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM session_audit")
        .fetch_one(pool)
        .await)?;
    let rows: Vec<(i64, String, String, Option<String>, i64)> = on_db!(db, pool => sqlx::query_as(
        "SELECT at, actor_email, action, target_email, sessions_ended FROM session_audit
         ORDER BY id DESC LIMIT $1 OFFSET $2",
    )
    .bind(per_page)
    .bind((page.max(1) - 1).saturating_mul(per_page))
    .fetch_all(pool)
    .await)?;
    let entries = rows
        .into_iter()
        .map(
            |(at, actor_email, action, target_email, sessions_ended)| AuditEntry {
                at,
                actor_email,
                action,
                target_email,
                sessions_ended,
            },
        )
        .collect();
    Ok((entries, total))
}

/// The owner of a live session handle.
pub async fn owner_of(sessions: &SessionWrites, handle: &str) -> Result<Option<i64>, SessionError> {
    if let Some(redis) = sessions.redis() {
        return Ok(redis.live_login(handle).await?.map(|login| login.user_id));
    }
    Ok(on_db!(sessions.db(), pool => sqlx::query_scalar(
        "SELECT user_id FROM session_registry WHERE handle = $1 AND ended_at IS NULL",
    )
    .bind(handle)
    .fetch_optional(pool)
    .await)?)
}
