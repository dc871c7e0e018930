//! The session store: tower-sessions' `SessionStore` on the table layout of
//! tower-sessions-sqlx-store (`tower_sessions`: id, data, expiry_date; plus our `cart_items`),
//! on SQLite or PostgreSQL. Its `create` and `save` keep one invariant together with the
//! session registry: **a stored record carries a login only while that login's registry row
//! is live and points at the record.** Revocation ends the row and deletes the record in one
//! write transaction (`registry::end_where`); `create` and `save` check the row in the same
//! transaction or statement as their write. So whichever of the two commits first, a revoked
//! login can never be stored again — not by an ID rotation, a login, a password change or a
//! slow request that finishes after a logout.

use crate::server::db::Db;
use crate::{on_conn, on_db};
use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion};
use tower_sessions::SessionStore;

use super::contents::{
    cart_items_of, created_expiry, login_of, sign_out_ended_login, stored_expiry, SessionError,
};
use crate::server::db::{Conn, Kind};
use time::OffsetDateTime;

/// The session table (tower-sessions-sqlx-store's layout, created by our migrations).
pub use super::login_rows::SESSIONS as TABLE;
pub use super::record::storage_key;
use super::record::{decode_record, encode, encode_record, encode_stored};

/// A session's data to save over its stored record (see [`save_in`]).
pub(crate) struct Update<'a> {
    pub id: &'a Id,
    pub data: std::collections::HashMap<String, serde_json::Value>,
    pub expiry_date: OffsetDateTime,
}

/// Reads a stored, unexpired record's bytes; with `lock`, the row is locked until the
/// transaction ends (PostgreSQL: `FOR UPDATE`; SQLite's write transaction holds the whole
/// database already).
fn select_record(lock: bool, kind: Kind) -> String {
    let lock = if lock { kind.for_update() } else { "" };
    format!("SELECT data FROM {TABLE} WHERE id = $1 AND expiry_date > $2{lock}")
}

fn decoded(id: &Id, bytes: Option<Vec<u8>>) -> Result<Option<(Record, Vec<u8>)>, SessionError> {
    match bytes {
        None => Ok(None),
        Some(bytes) => Ok(Some((decode_record(*id, &bytes)?, bytes))),
    }
}

/// The stored record and its bytes.
pub(crate) async fn load(db: &Db, id: &Id) -> Result<Option<(Record, Vec<u8>)>, SessionError> {
    load_in(&mut db.acquire().await?.conn(), id, false).await
}

/// [`load`] on the caller's connection, with the row locked if `lock` (see [`select_record`]).
pub(crate) async fn load_in(
    conn: &mut Conn<'_>,
    id: &Id,
    lock: bool,
) -> Result<Option<(Record, Vec<u8>)>, SessionError> {
    let sql = select_record(lock, conn.kind());
    let bytes: Option<Vec<u8>> = on_conn!(conn, c => sqlx::query_scalar(&sql)
        .bind(storage_key(id))
        .bind(super::clock::now_utc())
        .fetch_optional(c)
        .await)?;
    decoded(id, bytes)
}

/// The catalog version and [`load_in`]'s record, in one statement (one round trip, not two).
pub(crate) async fn load_with_catalog_version(
    conn: &mut Conn<'_>,
    id: &Id,
    lock: bool,
) -> Result<(i64, Option<(Record, Vec<u8>)>), SessionError> {
    let sql = format!(
        "SELECT ({}), ({})",
        crate::server::catalog::SELECT_VERSION,
        select_record(lock, conn.kind())
    );
    let (version, bytes): (i64, Option<Vec<u8>>) = on_conn!(conn, c => sqlx::query_as(&sql)
        .bind(storage_key(id))
        .bind(super::clock::now_utc())
        .fetch_one(c)
        .await)?;
    Ok((version, decoded(id, bytes)?))
}

/// Writes the data over the stored record (never creating it); with `expected`, only over
/// exactly those stored bytes (a compare-and-swap). Whether a row was written.
pub(crate) async fn save_in(
    conn: &mut Conn<'_>,
    update: Update<'_>,
    expected: Option<&[u8]>,
) -> Result<bool, SessionError> {
    let sql = format!(
        "UPDATE {TABLE} SET data = $1, expiry_date = $2, cart_items = $5
         WHERE id = $3 AND ($4 IS NULL OR data = $4)"
    );
    let key = storage_key(update.id);
    let expiry_date = update.expiry_date;
    let cart_items = cart_items_of(&update.data);
    let data = encode_stored(Record {
        id: Id(0),
        data: update.data,
        expiry_date,
    })?;
    let updated = on_conn!(conn, c => sqlx::query(&sql)
        .bind(&data)
        .bind(expiry_date)
        .bind(&key)
        .bind(expected)
        .bind(cart_items)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(updated > 0)
}

#[derive(Clone, Debug)]
pub struct ShopSessionStore {
    db: Db,
    /// The most anonymous sessions kept.
    max_anonymous: u64,
    /// Anonymous sessions stored, as last counted plus those this server created since: when
    /// it passes `max_anonymous`, the store counts again and evicts.
    anonymous: Arc<AtomicU64>,
    /// Where the sweeper counts the sessions it deletes.
    metrics: crate::server::metrics::Metrics,
    /// The timeouts, for the expiry a record is stored with (`session::stored_expiry`).
    policy: super::policy::SessionPolicy,
    /// When the sessions are on Redis, every call goes there (and Redis expires them itself).
    redis: Option<super::redis::RedisSessions>,
}

/// Anonymous sessions: stored records that no live registry row points at.
fn anonymous() -> String {
    format!(
        "FROM {TABLE} s WHERE NOT EXISTS
         (SELECT 1 FROM session_registry r WHERE r.session_id = s.id AND r.ended_at IS NULL)"
    )
}

/// Live anonymous sessions whose cart holds something (every instance's).
pub async fn count_anonymous_with_cart(db: &Db) -> sqlx::Result<i64> {
    let sql = format!(
        "SELECT COUNT(*) {} AND s.cart_items > 0 AND s.expiry_date > $1",
        anonymous()
    );
    on_db!(db, pool => sqlx::query_scalar(&sql)
        .bind(super::clock::now_utc())
        .fetch_one(pool)
        .await)
}

impl ShopSessionStore {
    pub fn new(db: Db, policy: &super::policy::SessionPolicy) -> ShopSessionStore {
        ShopSessionStore {
            db,
            max_anonymous: policy.max_anonymous_sessions.max(1),
            anonymous: Default::default(),
            metrics: Default::default(),
            policy: *policy,
            redis: None,
        }
    }

    /// Sessions on Redis instead of `db`.
    pub fn with_redis(mut self, redis: super::redis::RedisSessions) -> ShopSessionStore {
        self.redis = Some(redis);
        self
    }

    /// Counts the expired sessions this store deletes in `metrics` (the server's).
    pub fn with_metrics(mut self, metrics: crate::server::metrics::Metrics) -> ShopSessionStore {
        self.metrics = metrics;
        self
    }

    /// Re-keys sessions stored before IDs were hashed at rest (see [`storage_key`]): each is
    /// stored again under the hash of its ID, without the ID inside, and its registry row
    /// follows — so an upgrade signs nobody out. (Only SQLite databases can hold such
    /// sessions; the session table itself is created by our migrations, on both databases —
    /// never by the store's own `migrate`, which on PostgreSQL may return without creating
    /// it when another instance starting at the same time wins the `CREATE SCHEMA` race.)
    pub async fn migrate(&self) -> sqlx::Result<()> {
        let Db::Sqlite(pool) = &self.db else {
            return Ok(());
        };
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        // A hashed key is 64 hex digits; an ID as it was stored is 22 base64 characters.
        let old: Vec<(String, Vec<u8>)> = sqlx::query_as(&format!(
            "SELECT id, data FROM {TABLE} WHERE length(id) <> 64"
        ))
        .fetch_all(&mut *tx)
        .await?;
        for (key, bytes) in &old {
            let decoded = key
                .parse::<Id>()
                .ok()
                .and_then(|id| decode_record(id, bytes).ok());
            let Some(record) = decoded else {
                // Not a session this store ever wrote: unusable, so removed.
                sqlx::query(&format!("DELETE FROM {TABLE} WHERE id = $1"))
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                continue;
            };
            let hashed = storage_key(&record.id);
            let data = encode_record(&record).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
            sqlx::query(&format!(
                "UPDATE {TABLE} SET id = $1, data = $2 WHERE id = $3"
            ))
            .bind(&hashed)
            .bind(data)
            .bind(key)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE session_registry SET session_id = $1 WHERE session_id = $2")
                .bind(&hashed)
                .bind(key)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if !old.is_empty() {
            tracing::info!(sessions = old.len(), "session IDs hashed at rest");
        }
        Ok(())
    }

    /// Counts the stored anonymous sessions and, past the ceiling, evicts the least recently
    /// used of them — down to 90 % of the ceiling, so that a steady stream of new sessions
    /// at the ceiling costs one count per tenth of it, not one per session. A logged-in
    /// session is never evicted (the count and the eviction skip every session a live
    /// registry row points at, in the same write transaction as the delete).
    pub async fn evict_anonymous(&self) -> sqlx::Result<u64> {
        if self.redis.is_some() {
            return Ok(0);
        }
        let anonymous = anonymous();
        let count_sql = format!("SELECT COUNT(*) {anonymous}");
        // Counted first without the write lock: under the ceiling (the usual case), writers
        // are never held up by the count.
        let count: i64 =
            on_db!(&self.db, pool => sqlx::query_scalar(&count_sql).fetch_one(pool).await)?;
        if u64::try_from(count).unwrap_or(0) <= self.max_anonymous {
            self.anonymous
                .store(u64::try_from(count).unwrap_or(0), Ordering::Relaxed);
            return Ok(0);
        }
        let mut tx = self.db.begin_write().await?;
        // One eviction at a time on PostgreSQL too (instances share the ceiling).
        tx.conn().lock_key("evict_anonymous").await?;
        let count: i64 =
            on_conn!(&mut tx.conn(), c => sqlx::query_scalar(&count_sql).fetch_one(c).await)?;
        let count = u64::try_from(count).unwrap_or(0);
        let mut evicted = 0;
        if count > self.max_anonymous {
            let keep = self.max_anonymous - self.max_anonymous / 10;
            let excess = i64::try_from(count - keep).unwrap_or(i64::MAX);
            let sql = format!(
                "DELETE FROM {TABLE} WHERE id IN
                   (SELECT s.id {anonymous} ORDER BY s.expiry_date LIMIT $1)"
            );
            evicted = on_conn!(&mut tx.conn(), c => sqlx::query(&sql)
                .bind(excess)
                .execute(c)
                .await
                .map(|r| r.rows_affected()))?;
        }
        tx.commit().await?;
        self.anonymous
            .store(count.saturating_sub(evicted), Ordering::Relaxed);
        if evicted > 0 {
            tracing::warn!(
                evicted,
                ceiling = self.max_anonymous,
                "evicted the least recently used anonymous sessions"
            );
        }
        Ok(evicted)
    }
}

fn backend(error: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

#[async_trait]
impl SessionStore for ShopSessionStore {
    /// Inserts a new record (a first cart write, a login, an ID rotation) and, for a login,
    /// points its registry row at the new ID — in one write transaction. A login whose row has
    /// ended meanwhile (revoked, logged out, ended by a password change) is not stored: the
    /// record is kept without it (cart included), with a message for the shopper.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        if let Some(redis) = &self.redis {
            return redis.create(record).await;
        }
        record.expiry_date = created_expiry(&self.policy, &record.data, record.expiry_date);
        let anonymous = login_of(&record.data).is_none();
        let mut tx = self.db.begin_write().await.map_err(backend)?;
        let insert = format!(
            "INSERT INTO {TABLE} (id, data, expiry_date, cart_items) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO NOTHING"
        );
        loop {
            let data = encode(record)?;
            let inserted = on_conn!(&mut tx.conn(), c => sqlx::query(&insert)
                .bind(storage_key(&record.id))
                .bind(data)
                .bind(record.expiry_date)
                .bind(cart_items_of(&record.data))
                .execute(c)
                .await
                .map(|r| r.rows_affected()))
            .map_err(backend)?;
            if inserted == 1 {
                break;
            }
            record.id = Id::default();
        }
        if let Some(user) = login_of(&record.data) {
            let linked = super::login_rows::link_session(
                &mut tx.conn(),
                &user.handle,
                user.id,
                &storage_key(&record.id),
            )
            .await
            .map_err(backend)?;
            if linked {
                tracing::info!(handle = %user.handle, "session created for login");
            } else {
                sign_out_ended_login(&mut record.data);
                let update = format!("UPDATE {TABLE} SET data = $1 WHERE id = $2");
                let data = encode(record)?;
                on_conn!(&mut tx.conn(), c => sqlx::query(&update)
                    .bind(data)
                    .bind(storage_key(&record.id))
                    .execute(c)
                    .await
                    .map(|r| r.rows_affected()))
                .map_err(backend)?;
                tracing::warn!(handle = %user.handle, "not storing a login whose session has ended");
            }
        }
        tx.commit().await.map_err(backend)?;
        if anonymous && self.anonymous.fetch_add(1, Ordering::Relaxed) + 1 > self.max_anonymous {
            // The new session is stored either way; a failed eviction is tried again by the
            // next creation or the sweeper.
            if let Err(error) = self.evict_anonymous().await {
                tracing::error!(%error, "evicting anonymous sessions failed");
            }
        }
        Ok(())
    }

    /// An UPDATE, not the upsert of `SqliteStore`: a session deleted by logout or revocation
    /// while this request was running stays deleted. A record with a login is written only
    /// while its registry row is live and points at it (checked in the same statement).
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        if let Some(redis) = &self.redis {
            return redis.save(record).await;
        }
        let sql = format!(
            "UPDATE {TABLE} SET data = $1, expiry_date = $2, cart_items = $5 WHERE id = $3
               AND ($4 IS NULL OR EXISTS (SELECT 1 FROM session_registry
                    WHERE handle = $4 AND session_id = $3 AND ended_at IS NULL))"
        );
        let handle = login_of(&record.data).map(|user| user.handle);
        let expiry_date = stored_expiry(&self.policy, &record.data, record.expiry_date);
        let data = encode(record)?;
        let updated = on_db!(&self.db, pool => sqlx::query(&sql)
            .bind(data)
            .bind(expiry_date)
            .bind(storage_key(&record.id))
            .bind(handle)
            .bind(cart_items_of(&record.data))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(backend)?;
        if updated == 0 {
            tracing::info!("not saving a session that no longer exists");
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        if let Some(redis) = &self.redis {
            return redis.load(id).await;
        }
        let stored = load(&self.db, id).await.map_err(backend)?;
        Ok(stored.map(|(record, _)| record))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        if let Some(redis) = &self.redis {
            return redis.delete(id).await;
        }
        let sql = format!("DELETE FROM {TABLE} WHERE id = $1");
        on_db!(&self.db, pool => sqlx::query(&sql)
            .bind(storage_key(id))
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(backend)?;
        Ok(())
    }
}

/// Deletes expired sessions every `period` (the first pass at once), for as long as it runs
/// (the server aborts it at shutdown). Unlike tower-sessions' `continuously_delete_expired`,
/// which returns at the first error — one failed pass (the database busy or briefly gone, an
/// eviction or orphan cleanup failing once) stopped every later cleanup until a restart — a
/// failed pass is logged and the next one runs as usual.
pub async fn sweep_expired_forever<S: ExpiredDeletion>(store: S, period: std::time::Duration) {
    repeat_forever(period, "deleting expired sessions", || {
        store.delete_expired()
    })
    .await
}

/// Runs `pass` every `period`, for ever: a failed pass is logged (as `what`) and the next one
/// comes at its time, so one failure never stops a cleanup until the next restart.
pub async fn repeat_forever<F, Fut, E>(period: std::time::Duration, what: &str, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = pass().await {
            tracing::warn!(%error, "{what} failed; trying again at the next pass");
        }
    }
}

#[async_trait]
impl ExpiredDeletion for ShopSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        // Redis forgets an expired session, its entry and a refilled budget by itself (TTL).
        if self.redis.is_some() {
            return Ok(());
        }
        // Our own DELETE rather than the inner store's: its count is a metric. "Expired" as
        // every load here sees it (an expiry date not after now).
        let sql = format!("DELETE FROM {TABLE} WHERE expiry_date <= $1");
        let deleted = on_db!(&self.db, pool => sqlx::query(&sql)
            .bind(super::clock::now_utc())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
        .map_err(backend)?;
        self.metrics
            .expired(crate::server::metrics::Expiry::SessionIdle, deleted);
        // Counted afresh now and then: other processes create sessions too.
        self.evict_anonymous().await.map_err(backend)?;
        let closed = super::login_rows::close_orphans(&self.db)
            .await
            .map_err(backend)?;
        if closed > 0 {
            tracing::info!(sessions = closed, "expired sessions removed");
        }
        super::budget::NewSessionBudget::forget_refilled(
            &self.db,
            self.policy.new_sessions_burst,
            self.policy.new_session_interval,
        )
        .await
        .map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod sweep_tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A store whose first two passes fail.
    #[derive(Clone, Debug, Default)]
    struct Flaky(Arc<AtomicUsize>);

    #[async_trait]
    impl ExpiredDeletion for Flaky {
        async fn delete_expired(&self) -> session_store::Result<()> {
            let pass = self.0.fetch_add(1, Ordering::SeqCst);
            if pass < 2 {
                return Err(session_store::Error::Backend("the database is gone".into()));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl SessionStore for Flaky {
        async fn save(&self, _: &Record) -> session_store::Result<()> {
            Ok(())
        }
        async fn load(&self, _: &Id) -> session_store::Result<Option<Record>> {
            Ok(None)
        }
        async fn delete(&self, _: &Id) -> session_store::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failed_sweep_does_not_stop_the_next_ones() {
        let store = Flaky::default();
        let sweeper = tokio::spawn(sweep_expired_forever(
            store.clone(),
            std::time::Duration::from_millis(10),
        ));
        // The two failures, then good passes (tower-sessions' sweep stopped at the first).
        let started = std::time::Instant::now();
        while store.0.load(Ordering::SeqCst) < 5 {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "the sweep stopped after {} passes",
                store.0.load(Ordering::SeqCst)
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(!sweeper.is_finished(), "still sweeping after failures");
        sweeper.abort();
    }
}
