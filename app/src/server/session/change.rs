//! Atomic changes of a session's stored data.
//!
//! tower-sessions loads a record at the start of a request and writes the whole record back at
//! the end, so two concurrent requests on one session would overwrite each other's changes.
//! Writes that must not be lost (the cart, flash messages, the login's activity) therefore
//! re-read the stored record, change it ([`Contents`]) and save it atomically, then reload the
//! request's copy *without* marking it modified, so the session layer has nothing stale to
//! write back. Two kinds of change:
//!
//! - [`SessionTx`], a database transaction holding the session: for changes that must be
//!   atomic with other tables (checkout, the registry), and on PostgreSQL for every change. On
//!   SQLite it is a write transaction (`BEGIN IMMEDIATE`, which also excludes other processes
//!   on the file) behind this server's single-writer gate; on PostgreSQL a transaction that
//!   locks the session's row (`SELECT … FOR UPDATE`), so concurrent changes of one session — on
//!   any instance — queue on that row, and unrelated sessions never wait for each other.
//! - [`SessionCas`], a compare-and-swap (SQLite only): for changes of the session's data alone
//!   (cart, flash). The record is re-read under this session's lock (this server's requests on
//!   it take turns) and written back, on the writer connection behind the gate, only if it is
//!   still byte-for-byte what was read; a change by anyone else (another process on the file,
//!   a checkout) is never overwritten: the caller retries on [`SessionError::Conflict`], and
//!   that retry is a [`SessionTx`], which another process cannot overtake.
//!
//! [`begin_session_only`] picks the right one for the database behind a [`SessionChange`].

use super::contents::{stored_expiry, BoundClient, Contents, SessionError};
use super::policy::{Binding, SessionPolicy};
use super::redis::RedisSessions;
use super::store::{load, load_in, load_with_catalog_version, save_in, Update};
use super::writer::{Found, SessionWriter};
use crate::model::Flash;
use crate::server::catalog::{Catalog, CatalogCache};
use crate::server::db::{Db, WriteTx};
use async_trait::async_trait;
use sqlx::{SqliteConnection, SqlitePool};
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tower_sessions::session::Id;
use tower_sessions::Session;

/// How long a session write waits for its turn before giving up (a 503, never a hang).
const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// How many session locks one SQLite server has (IDs that hash alike share one).
const SESSION_LOCK_STRIPES: usize = 4096;

/// One server's coordination of session writes on its database. On PostgreSQL there is none
/// (the database's row locks do it, across instances); on SQLite, [`SqliteWrites`].
///
/// It belongs to the server (in [`AppContext`](super::AppContext)), never to the process: two
/// servers in one process — tests, or one binary serving two databases — share nothing.
#[derive(Clone, Debug)]
pub struct SessionWrites {
    db: Db,
    sqlite: Option<SqliteWrites>,
    /// The timeouts, for the expiry a record is saved with (`session::stored_expiry`).
    policy: SessionPolicy,
    /// The sessions' store when it is Redis (`COATCHECK_SESSION_STORE_URL`): session changes
    /// are its compare-and-swaps, the registry its entries; `db` keeps the shop's data.
    redis: Option<(RedisSessions, Turns)>,
}

/// A SQLite server's coordination of session writes: a lock per session ID (striped), so this
/// server's requests on one session take turns instead of conflicting, and the single-writer
/// gate with the connection the compare-and-swaps use (SQLite has one writer at a time, so the
/// writer whose turn it is has its connection at once instead of queueing for a pooled one
/// behind every reader). Other processes on the same file are excluded by SQLite itself.
#[derive(Clone, Debug)]
struct SqliteWrites {
    pool: SqlitePool,
    turns: Turns,
    gate: Arc<Mutex<Writer>>,
    /// The session writer thread, for changes made in one step ([`change_session_only`]).
    writer: SessionWriter,
}

/// A lock per session ID (striped: IDs that hash alike share one), so that this server's
/// requests on one session take turns instead of conflicting.
#[derive(Clone, Debug)]
struct Turns(Arc<[Arc<Mutex<()>>]>);

impl Turns {
    fn new() -> Turns {
        Turns(
            (0..SESSION_LOCK_STRIPES)
                .map(|_| Default::default())
                .collect(),
        )
    }

    /// This session's turn among this server's requests.
    async fn take(&self, id: &Id) -> Result<OwnedMutexGuard<()>, SessionError> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut hasher);
        let lock = self.0[(hasher.finish() as usize) % self.0.len()].clone();
        tokio::time::timeout(WRITE_WAIT, lock.lock_owned())
            .await
            .map_err(|_| SessionError::Busy)
    }
}

impl SessionWrites {
    pub fn new(db: Db, policy: SessionPolicy) -> SessionWrites {
        let sqlite = db.as_sqlite().map(|pool| SqliteWrites {
            pool: pool.clone(),
            turns: Turns::new(),
            gate: Default::default(),
            writer: SessionWriter::new(pool.connect_options().get_filename().to_owned(), policy),
        });
        SessionWrites {
            db,
            sqlite,
            policy,
            redis: None,
        }
    }

    /// Sessions on Redis: every session change is a compare-and-swap there.
    pub fn with_redis(mut self, redis: RedisSessions) -> SessionWrites {
        self.redis = Some((redis, Turns::new()));
        self
    }

    /// The Redis store, when the sessions live there.
    pub fn redis(&self) -> Option<&RedisSessions> {
        self.redis.as_ref().map(|(redis, _)| redis)
    }

    /// The shop's database (where the sessions live too, unless on Redis).
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Closes the SQLite writer connection, if open (at shutdown, before the pool: the last
    /// connection to close checkpoints the write-ahead log). A later write opens it again.
    pub async fn close_writer(&self) {
        use sqlx::Connection;
        let Some(sqlite) = &self.sqlite else {
            return;
        };
        sqlite.writer.close().await;
        // A write still running after the drain keeps its connection; it closes with the
        // process.
        let Ok(mut writer) =
            tokio::time::timeout(std::time::Duration::from_secs(1), sqlite.gate.lock()).await
        else {
            return;
        };
        if let Some(conn) = writer.conn.take() {
            if let Err(error) = conn.close().await {
                tracing::warn!(%error, "closing the session writer connection");
            }
        }
    }
}

impl SqliteWrites {
    /// This session's turn among this server's requests.
    async fn session_turn(&self, id: &Id) -> Result<OwnedMutexGuard<()>, SessionError> {
        self.turns.take(id).await
    }

    /// The single-writer gate.
    async fn writer(&self) -> Result<OwnedMutexGuard<Writer>, SessionError> {
        tokio::time::timeout(WRITE_WAIT, self.gate.clone().lock_owned())
            .await
            .map_err(|_| SessionError::Busy)
    }
}

/// The connection of the compare-and-swaps, owned by the gate.
#[derive(Default, Debug)]
struct Writer {
    conn: Option<SqliteConnection>,
}

impl Writer {
    /// Runs one compare-and-swap on the writer connection (opened on first use, and again
    /// after a failure or a cancelled statement, which may have left it in any state).
    async fn save(
        &mut self,
        pool: &SqlitePool,
        update: Update<'_>,
        expected: &[u8],
    ) -> Result<bool, SessionError> {
        use sqlx::ConnectOptions;
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => pool.connect_options().connect().await?,
        };
        let saved = save_in(
            &mut crate::server::db::Conn::Sqlite(&mut conn),
            update,
            Some(expected),
        )
        .await;
        if saved.is_ok() {
            self.conn = Some(conn);
        }
        saved
    }
}

/// A change of a session's data alone: a [`SessionCas`] on SQLite, a [`SessionTx`] on
/// PostgreSQL (see the module docs).
#[async_trait]
pub trait SessionChange: Send {
    fn contents(&mut self) -> &mut Contents;

    /// The catalog as of this change's read of the session.
    async fn catalog(&mut self, cache: &CatalogCache) -> Result<Arc<Catalog>, sqlx::Error>;

    /// Saves the change; the request's copy follows it (see [`Contents`]). For a change that
    /// is the last thing the request does with its session: the copy is not read again unless
    /// empty (then it must be, or the session layer would drop the cookie).
    async fn commit_last(self: Box<Self>, session: &Session) -> Result<(), SessionError>;

    /// Saves the change and reloads the request's copy.
    async fn commit(self: Box<Self>, session: &Session) -> Result<(), SessionError> {
        self.commit_stored(session).await.map(drop)
    }

    /// [`commit`](SessionChange::commit), and whether the record read was written over:
    /// false when it was deleted meanwhile (a logout, a revocation), so nothing was saved.
    async fn commit_stored(self: Box<Self>, session: &Session) -> Result<bool, SessionError>;

    async fn rollback(self: Box<Self>);
}

/// The most a retry after a conflict waits before it reads again (Redis), in milliseconds:
/// the ceiling of its random wait, doubling per attempt from 2 ms.
const RETRY_BACKOFF_CAP_MS: u64 = 64;

/// Begins a change of the session's data alone (cart, flash), of the kind the database calls
/// for, as the `attempt`-th try (from 1): later tries follow conflicts, when earlier ones lost
/// a compare-and-swap to another process's write of the same session. This server's own
/// requests never conflict (they take turns); another instance on the same database or store
/// can keep winning while a retry queues behind this server's other requests, so a retry must
/// not simply try its luck again:
///
/// - SQLite: a retry is a [`SessionTx`] (read and write in one `BEGIN IMMEDIATE`
///   transaction, which excludes every other process on the file), so it cannot conflict.
/// - Redis (no lock across instances): a retry first waits a random time, up to twice as
///   long as the last, so the instances' writes stop colliding in step.
/// - PostgreSQL: every change already holds the session's row; nothing changes.
pub async fn begin_session_only(
    writes: &SessionWrites,
    session: &Session,
    attempt: usize,
) -> Result<Box<dyn SessionChange>, SessionError> {
    if let Some((redis, turns)) = &writes.redis {
        if attempt > 1 {
            tokio::time::sleep(retry_backoff(attempt)).await;
        }
        return Ok(Box::new(
            RedisCas::begin(writes, redis, turns, session).await?,
        ));
    }
    Ok(match &writes.sqlite {
        Some(sqlite) if attempt <= 1 => Box::new(SessionCas::begin(writes, sqlite, session).await?),
        _ => Box::new(SessionTx::start(writes, session, true, First::Nothing).await?),
    })
}

/// A change of the session's data alone made in one step, where the database allows it:
/// on SQLite, the session writer runs `change` on the record as read inside its write
/// transaction (with the catalog version read there too) and writes what it leaves, so it
/// cannot conflict (see `writer`). `change` returns `Ok` to write, `Err` to write nothing.
/// The request's copy follows the change as after [`SessionChange::commit_last`].
///
/// `None` when this is not SQLite, or the session is not stored yet: then the caller makes
/// the change through [`begin_session_only`].
pub async fn change_session_only<T, E>(
    writes: &SessionWrites,
    session: &Session,
    change: impl FnOnce(i64, &mut Contents) -> Result<T, E> + Send + 'static,
) -> Option<Result<Result<T, E>, SessionError>>
where
    T: Send + 'static,
    E: Send + 'static,
{
    let sqlite = writes.sqlite.as_ref().filter(|_| writes.redis.is_none())?;
    let id = session.id()?;
    Some(
        async move {
            let (result_tx, result_rx) = tokio::sync::oneshot::channel();
            let changed = sqlite.writer.change(
                &sqlite.gate,
                id,
                session.expiry_date(),
                move |found: Found<'_>| {
                    let result = change(found.catalog_version, found.contents);
                    let write = result.is_ok();
                    let _ = result_tx.send(result);
                    write
                },
            );
            // Bounded like every session write (a 503, never a hang).
            let (contents, _stored) = tokio::time::timeout(WRITE_WAIT, changed)
                .await
                .map_err(|_| SessionError::Busy)??;
            let result = result_rx
                .await
                .map_err(|_| SessionError::Writer("the change did not run".into()))?;
            if result.is_ok() {
                contents.into_request_copy(session, false).await?;
            }
            Ok(result)
        }
        .await,
    )
}

/// A random wait before the `attempt`-th try (full jitter, exponential ceiling).
fn retry_backoff(attempt: usize) -> std::time::Duration {
    use rand::Rng;
    let shift = attempt.saturating_sub(1).min(6) as u32;
    let ceiling = (1u64 << shift).saturating_mul(2).min(RETRY_BACKOFF_CAP_MS);
    std::time::Duration::from_micros(rand::thread_rng().gen_range(0..=ceiling * 1000))
}

/// What a [`SessionTx`] locks before the session's row.
#[derive(Clone, Copy)]
enum First<'a> {
    Nothing,
    /// A login's registry row.
    Login(&'a str),
    /// The acting login's registry row, which must be live.
    Actor(super::login_rows::Actor<'a>),
}

/// A change of the session inside a database transaction. See the module docs.
pub struct SessionTx {
    contents: Contents,
    /// The stored record's ID (`None`: no stored record).
    id: Option<Id>,
    /// The catalog version, read in the same statement as the record (session-only changes).
    catalog_version: Option<i64>,
    /// The transaction (cancellation-safe, see [`WriteTx`]): `Some` until it ends.
    tx: Option<WriteTx>,
    /// SQLite: the single-writer gate and this session's turn, held until the end.
    gate: Option<OwnedMutexGuard<Writer>>,
    turn: Option<OwnedMutexGuard<()>>,
    policy: SessionPolicy,
}

impl SessionTx {
    /// Begins a transaction holding the session, for changes that must be atomic with other
    /// tables ([`SessionTx::conn`]).
    pub async fn begin(
        writes: &SessionWrites,
        session: &Session,
    ) -> Result<SessionTx, SessionError> {
        SessionTx::start(writes, session, false, First::Nothing).await
    }

    /// [`SessionTx::begin`] for a change that also writes the registry row of the login
    /// `handle` (the activity touch, a timed-out login's demotion): that row is locked first,
    /// as every transaction that touches both locks them (registry row, then session row), so
    /// that none waits for another in a cycle (PostgreSQL).
    pub async fn begin_for_login(
        writes: &SessionWrites,
        session: &Session,
        handle: &str,
    ) -> Result<SessionTx, SessionError> {
        SessionTx::start(writes, session, false, First::Login(handle)).await
    }

    /// [`SessionTx::begin`] for an action on behalf of the login `actor`: its registry row is
    /// checked live (and locked) first in the same transaction (`login_rows::lock_live_actor`),
    /// before the session's own row. [`SessionError::LoginEnded`]: it has ended; nothing done.
    pub async fn begin_as(
        writes: &SessionWrites,
        session: &Session,
        actor: super::login_rows::Actor<'_>,
    ) -> Result<SessionTx, SessionError> {
        SessionTx::start(writes, session, false, First::Actor(actor)).await
    }

    async fn start(
        writes: &SessionWrites,
        session: &Session,
        with_catalog_version: bool,
        first: First<'_>,
    ) -> Result<SessionTx, SessionError> {
        let mut tx = SessionTx {
            contents: Contents::default(),
            id: None,
            catalog_version: None,
            tx: None,
            gate: None,
            turn: None,
            policy: writes.policy,
        };
        if let Some(sqlite) = &writes.sqlite {
            if let Some(id) = session.id() {
                tx.turn = Some(sqlite.session_turn(&id).await?);
            }
            // SQLite has one writer at a time. Queueing here, before taking a pooled
            // connection, keeps waiting writers from holding every connection (which would
            // starve the readers and the commit's own reload); BEGIN IMMEDIATE still excludes
            // other processes.
            tx.gate = Some(sqlite.writer().await?);
        }
        // A write transaction whose connection is closed, not pooled, if this request is
        // cancelled (its client went away) before it ends: left open in the pool, it would
        // hold the write lock (SQLite) or the session's row (PostgreSQL).
        tx.tx = Some(writes.db.begin_write().await?);
        // The registry row before the session's: the order revocations lock them in
        // (PostgreSQL), so the two wait for each other instead of deadlocking.
        let checked = match first {
            First::Nothing => Ok(true),
            First::Login(handle) => super::login_rows::lock_row(&mut tx.conn(), handle)
                .await
                .map(|_| true),
            First::Actor(actor) => super::login_rows::lock_live_actor(&mut tx.conn(), actor).await,
        };
        match checked {
            Ok(true) => {}
            Ok(false) => {
                tx.rollback().await;
                return Err(SessionError::LoginEnded);
            }
            Err(error) => {
                tx.rollback().await;
                return Err(error.into());
            }
        }
        if let Some(id) = session.id() {
            let loaded = if with_catalog_version {
                load_with_catalog_version(&mut tx.conn(), &id, true)
                    .await
                    .map(|(version, stored)| (Some(version), stored))
            } else {
                load_in(&mut tx.conn(), &id, true).await.map(|r| (None, r))
            };
            match loaded {
                Ok((version, stored)) => {
                    tx.catalog_version = version;
                    if let Some((record, _)) = stored {
                        tx.id = Some(record.id);
                        tx.contents = Contents::stored(Some(record.data));
                    }
                }
                Err(error) => {
                    tx.rollback().await;
                    return Err(error);
                }
            }
        }
        Ok(tx)
    }

    /// The transaction's connection, for queries that must be atomic with the session change.
    pub fn conn(&mut self) -> crate::server::db::Conn<'_> {
        // Invariant: `tx` is present from `start` until the transaction ends (which consumes
        // this value), so nothing runs a query after that.
        self.tx
            .as_mut()
            .expect("transaction open until it ends")
            .conn()
    }

    pub fn contents(&mut self) -> &mut Contents {
        &mut self.contents
    }

    /// Saves the record, commits, and reloads the request's copy of the session.
    pub async fn commit(self, session: &Session) -> Result<(), SessionError> {
        self.finish(session, true).await.map(drop)
    }

    /// Whether the record was written (see [`SessionChange::commit_stored`]).
    async fn finish(mut self, session: &Session, always: bool) -> Result<bool, SessionError> {
        let mut stored = true;
        if let (Some(id), Some(data)) = (self.id, self.contents.take_data()) {
            let update = Update {
                id: &id,
                expiry_date: stored_expiry(&self.policy, &data, session.expiry_date()),
                data,
            };
            // The row is held by this transaction: the save cannot conflict; it writes nothing
            // only when the record is gone (logged out or revoked before this began).
            match save_in(&mut self.conn(), update, None).await {
                Ok(saved) => stored = saved,
                Err(error) => {
                    self.rollback().await;
                    return Err(error);
                }
            }
        }
        // Committed, the connection goes back to the pool before the reload, which needs one
        // of its own.
        if let Some(tx) = self.tx.take() {
            tx.commit().await?;
        }
        drop(self.gate.take());
        drop(self.turn.take());
        std::mem::take(&mut self.contents)
            .into_request_copy(session, always)
            .await?;
        Ok(stored)
    }

    /// Abandons every change.
    pub async fn rollback(mut self) {
        if let Some(tx) = self.tx.take() {
            if let Err(error) = tx.rollback().await {
                // The transaction, not finished, closed its connection.
                tracing::error!(%error, "rollback failed; the connection is closed");
            }
        }
    }
}

#[async_trait]
impl SessionChange for SessionTx {
    fn contents(&mut self) -> &mut Contents {
        &mut self.contents
    }

    async fn catalog(&mut self, cache: &CatalogCache) -> Result<Arc<Catalog>, sqlx::Error> {
        // Read on this transaction's connection: taking a second one from the pool while
        // holding the session's row could wait for ever on connections held by transactions
        // that wait for that row.
        let version = match self.catalog_version {
            Some(version) => version,
            None => crate::server::catalog::version_in(&mut self.conn()).await?,
        };
        cache.get_at_in(&mut self.conn(), version).await
    }

    async fn commit_last(self: Box<Self>, session: &Session) -> Result<(), SessionError> {
        self.finish(session, false).await.map(drop)
    }

    async fn commit_stored(self: Box<Self>, session: &Session) -> Result<bool, SessionError> {
        self.finish(session, true).await
    }

    async fn rollback(self: Box<Self>) {
        SessionTx::rollback(*self).await
    }
}

/// A compare-and-swap change of the session's data (SQLite). See the module docs.
pub struct SessionCas {
    contents: Contents,
    /// The stored record's ID and bytes as read (`None`: no stored record).
    read: Option<(Id, Vec<u8>)>,
    /// The catalog version, read in the same statement as the record.
    catalog_version: Option<i64>,
    /// This session's turn among this server's requests, held until the end.
    turn: Option<OwnedMutexGuard<()>>,
    db: Db,
    sqlite: SqliteWrites,
    policy: SessionPolicy,
}

impl SessionCas {
    async fn begin(
        writes: &SessionWrites,
        sqlite: &SqliteWrites,
        session: &Session,
    ) -> Result<SessionCas, SessionError> {
        let mut cas = SessionCas {
            contents: Contents::default(),
            read: None,
            catalog_version: None,
            turn: None,
            db: writes.db.clone(),
            sqlite: sqlite.clone(),
            policy: writes.policy,
        };
        if let Some(id) = session.id() {
            cas.turn = Some(sqlite.session_turn(&id).await?);
            let mut conn = writes.db.acquire().await?;
            let (version, stored) = load_with_catalog_version(&mut conn.conn(), &id, false).await?;
            cas.catalog_version = Some(version);
            if let Some((record, bytes)) = stored {
                cas.read = Some((record.id, bytes));
                cas.contents = Contents::stored(Some(record.data));
            }
        }
        Ok(cas)
    }

    async fn finish(mut self, session: &Session, always: bool) -> Result<bool, SessionError> {
        let mut stored = true;
        if let (Some((id, original)), Some(data)) = (&self.read, self.contents.take_data()) {
            let update = Update {
                id,
                expiry_date: stored_expiry(&self.policy, &data, session.expiry_date()),
                data,
            };
            // The gate, with the writer connection: waiting writers hold no connection.
            let mut writer = self.sqlite.writer().await?;
            let saved = writer.save(&self.sqlite.pool, update, original).await?;
            drop(writer);
            // Not the record that was read: changed by someone else (a conflict: the caller
            // tries again), or deleted (logout, revocation: nothing to save).
            if !saved && load(&self.db, id).await?.is_some() {
                return Err(SessionError::Conflict);
            }
            stored = saved;
        }
        drop(self.turn.take());
        std::mem::take(&mut self.contents)
            .into_request_copy(session, always)
            .await?;
        Ok(stored)
    }
}

#[async_trait]
impl SessionChange for SessionCas {
    fn contents(&mut self) -> &mut Contents {
        &mut self.contents
    }

    async fn catalog(&mut self, cache: &CatalogCache) -> Result<Arc<Catalog>, sqlx::Error> {
        match self.catalog_version {
            Some(version) => cache.get_at(&self.db, version).await,
            None => cache.get(&self.db).await,
        }
    }

    async fn commit_last(self: Box<Self>, session: &Session) -> Result<(), SessionError> {
        self.finish(session, false).await.map(drop)
    }

    async fn commit_stored(self: Box<Self>, session: &Session) -> Result<bool, SessionError> {
        self.finish(session, true).await
    }

    async fn rollback(self: Box<Self>) {}
}

/// A compare-and-swap change of the session's data on Redis: read, changed, written back by
/// a script only if the stored bytes are still those read (and its login still live).
pub struct RedisCas {
    contents: Contents,
    /// The stored record's ID and bytes as read (`None`: no stored record).
    read: Option<(Id, Vec<u8>)>,
    /// This session's turn among this server's requests, held until the end (so only
    /// other instances' writes can conflict).
    turn: Option<OwnedMutexGuard<()>>,
    redis: RedisSessions,
    db: Db,
}

impl RedisCas {
    async fn begin(
        writes: &SessionWrites,
        redis: &RedisSessions,
        turns: &Turns,
        session: &Session,
    ) -> Result<RedisCas, SessionError> {
        let mut cas = RedisCas {
            contents: Contents::default(),
            read: None,
            turn: None,
            redis: redis.clone(),
            db: writes.db.clone(),
        };
        if let Some(id) = session.id() {
            cas.turn = Some(turns.take(&id).await?);
            if let Some((record, bytes)) = redis.load_bytes(&id).await? {
                cas.read = Some((record.id, bytes));
                cas.contents = Contents::stored(Some(record.data));
            }
        }
        Ok(cas)
    }

    async fn finish(mut self, session: &Session, always: bool) -> Result<bool, SessionError> {
        let mut stored = true;
        if let (Some((id, original)), Some(data)) = (&self.read, self.contents.take_data()) {
            // The script stores it with the policy's expiry (`session::stored_expiry`).
            let record = tower_sessions::session::Record {
                id: *id,
                data,
                expiry_date: session.expiry_date(),
            };
            // Not written: changed by someone else (a conflict: the caller tries again), or
            // deleted (logout, revocation, expiry: nothing to save).
            let saved = self.redis.swap(&record, original).await?;
            if !saved && self.redis.load_bytes(id).await?.is_some() {
                return Err(SessionError::Conflict);
            }
            stored = saved;
        }
        drop(self.turn.take());
        std::mem::take(&mut self.contents)
            .into_request_copy(session, always)
            .await?;
        Ok(stored)
    }
}

#[async_trait]
impl SessionChange for RedisCas {
    fn contents(&mut self) -> &mut Contents {
        &mut self.contents
    }

    async fn catalog(&mut self, cache: &CatalogCache) -> Result<Arc<Catalog>, sqlx::Error> {
        cache.get(&self.db).await
    }

    async fn commit_last(self: Box<Self>, session: &Session) -> Result<(), SessionError> {
        self.finish(session, false).await.map(drop)
    }

    async fn commit_stored(self: Box<Self>, session: &Session) -> Result<bool, SessionError> {
        self.finish(session, true).await
    }

    async fn rollback(self: Box<Self>) {}
}

/// Takes the flash message out of the session (atomically, so it cannot undo a cart write).
pub async fn take_flash(
    writes: &SessionWrites,
    session: &Session,
) -> Result<Option<Flash>, SessionError> {
    // Most requests have no flash: check the in-memory copy before taking a write lock.
    if !super::contents::has_flash(session).await? {
        return Ok(None);
    }
    // A session whose ID was just rotated (or that is not stored yet) exists only in this
    // request: nobody else can write to it, so the in-memory copy is the truth.
    if session.id().is_none() {
        return Ok(super::contents::take_flash_in_memory(session).await);
    }
    let mut attempt = 1;
    loop {
        let mut change = begin_session_only(writes, session, attempt).await?;
        let flash = change.contents().take_flash();
        match change.commit(session).await {
            Ok(()) => return Ok(flash),
            Err(SessionError::Conflict) if attempt < FLASH_ATTEMPTS => attempt += 1,
            Err(error) => return Err(error),
        }
    }
}

/// Attempts of a flash change that lost to concurrent changes of the same session.
const FLASH_ATTEMPTS: usize = 8;

/// Sets a flash message atomically.
pub async fn set_flash(
    writes: &SessionWrites,
    session: &Session,
    flash: &Flash,
) -> Result<(), SessionError> {
    let mut attempt = 1;
    loop {
        let mut change = begin_session_only(writes, session, attempt).await?;
        change.contents().set_flash(flash)?;
        match change.commit(session).await {
            Err(SessionError::Conflict) if attempt < FLASH_ATTEMPTS => attempt += 1,
            done => return done,
        }
    }
}

/// Attempts of a sudo change that lost to concurrent changes of the same session.
const SUDO_ATTEMPTS: usize = 8;

/// Sudo mode, before a sensitive action: whether the login's password was entered (or a
/// sensitive action done) within the policy's window, by the stored record; if so, the window
/// restarts at `now`; [`SessionError::LoginEnded`] when the stored record no longer carries a
/// login. One atomic change: a window ended meanwhile by another request (a change
/// of client, a sign-out) is seen, and two actions cannot both extend a window that one ended.
///
/// `client`: this request's. Under a binding, a login now bound to another client (another
/// request moved it there after this one passed the session layer: a request held open
/// before its last body byte, say) has no window for this request.
pub async fn take_sudo(
    writes: &SessionWrites,
    session: &Session,
    client: &BoundClient,
    now: i64,
) -> Result<bool, SessionError> {
    open_sudo(writes, session, client, now, true).await
}

/// Starts the sudo window at `now`: the password was just entered (a confirmation, a password
/// change). Only on a session that carries a login.
pub async fn enter_sudo(
    writes: &SessionWrites,
    session: &Session,
    client: &BoundClient,
    now: i64,
) -> Result<bool, SessionError> {
    open_sudo(writes, session, client, now, false).await
}

/// (Re)starts the sudo window at `now` on the stored record that carries a login — only if it
/// is still open when `within_window`, and only while the login is bound to `client` (under a
/// binding); false when not. Retried on a conflict. [`SessionError::LoginEnded`] also when
/// the record was deleted between the read and the write.
async fn open_sudo(
    writes: &SessionWrites,
    session: &Session,
    client: &BoundClient,
    now: i64,
    within_window: bool,
) -> Result<bool, SessionError> {
    for attempt in 1..=SUDO_ATTEMPTS {
        let mut change = begin_session_only(writes, session, attempt).await?;
        let contents = change.contents();
        let Some(login) = contents.login() else {
            // Revoked, logged out or timed out since this request's copy was read.
            change.rollback().await;
            return Err(SessionError::LoginEnded);
        };
        let elsewhere = writes.policy.binding != Binding::Off
            && login.client.as_ref().is_some_and(|bound| bound != client);
        if elsewhere || (within_window && !writes.policy.sudo_allows(contents.sudo_since(), now)) {
            change.rollback().await;
            return Ok(false);
        }
        contents.enter_sudo(now)?;
        match change.commit_stored(session).await {
            Ok(true) => return Ok(true),
            Ok(false) => return Err(SessionError::LoginEnded),
            Err(SessionError::Conflict) if attempt < SUDO_ATTEMPTS => continue,
            Err(error) => return Err(error),
        }
    }
    Err(SessionError::Conflict)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::session::store::ShopSessionStore;
    use std::time::Duration;

    /// A fresh SQLite database (migrated) in its own directory, and a stored session on it.
    async fn shop() -> (std::path::PathBuf, Db, Arc<ShopSessionStore>, Session) {
        let dir = std::env::temp_dir().join(format!(
            "coatcheck-change-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/shop.db", dir.display());
        let db = crate::server::db::connect(&url).await.unwrap();
        crate::server::db::migrate(&db).await.unwrap();
        let store = Arc::new(ShopSessionStore::new(db.clone(), &SessionPolicy::default()));
        let session = Session::new(None, store.clone(), None);
        session.insert("seen", 1).await.unwrap();
        session.save().await.unwrap();
        (dir, db, store, session)
    }

    /// The end of a test on [`shop`]: the writers' connections closed, then the pool's (which
    /// checkpoints the log), then the files removed.
    async fn finish(dir: std::path::PathBuf, db: Db, writers: &[SessionWrites]) {
        for writes in writers {
            writes.close_writer().await;
        }
        db.close().await;
        std::fs::remove_dir_all(&dir).ok();
    }

    /// A one-step change (the SQLite session writer): the number in the flash, plus one.
    async fn increment(writes: &SessionWrites, session: &Session) -> Result<(), SessionError> {
        change_session_only(writes, session, |_, contents| {
            let next = contents
                .take_flash()
                .map_or(0, |flash| flash.message.parse::<u32>().unwrap_or(0))
                + 1;
            contents.set_flash(&Flash::success(next.to_string()))
        })
        .await
        .expect("SQLite changes in one step")?
    }

    /// Two servers on one file, each sending 40 one-step changes of one session at once (they
    /// share a transaction when they queue on the writer): none is lost and none conflicts.
    #[tokio::test]
    async fn one_step_changes_at_once_from_two_servers_all_land() {
        let (dir, db, store, session) = shop().await;
        let id = session.id().unwrap();
        let policy = SessionPolicy::default();
        let servers = [
            SessionWrites::new(db.clone(), policy),
            SessionWrites::new(db.clone(), policy),
        ];
        let changes: Vec<_> = (0..80)
            .map(|i| {
                let writes = servers[i % 2].clone();
                let session = Session::new(Some(id), store.clone(), None);
                tokio::spawn(async move { increment(&writes, &session).await })
            })
            .collect();
        for change in changes {
            change.await.unwrap().expect("no change fails or conflicts");
        }
        assert_eq!(stored_flash(&db, &id).await.as_deref(), Some("80"));

        // A request's copy not read yet follows the change (the layer must not see it empty).
        let request = Session::new(Some(id), store.clone(), None);
        increment(&servers[0], &request).await.unwrap();
        assert!(crate::server::session::contents::has_flash(&request)
            .await
            .unwrap());
        assert_eq!(stored_flash(&db, &id).await.as_deref(), Some("81"));
        finish(dir, db, &servers).await;
    }

    /// A change that refuses writes nothing; a change sees the catalog version of its read;
    /// a record deleted meanwhile (a revocation) is not brought back.
    #[tokio::test]
    async fn a_refused_one_step_change_writes_nothing_and_a_deleted_record_stays_deleted() {
        let (dir, db, store, session) = shop().await;
        let id = session.id().unwrap();
        let writes = SessionWrites::new(db.clone(), SessionPolicy::default());
        increment(&writes, &session).await.unwrap();
        let version = crate::server::catalog::version(&db).await.unwrap();
        let refused = change_session_only(&writes, &session, move |seen, contents| {
            assert_eq!(seen, version, "the catalog version of the read");
            contents.set_flash(&Flash::success("not this"))?;
            Err::<(), SessionError>(SessionError::LoginEnded)
        })
        .await
        .unwrap()
        .unwrap();
        assert!(matches!(refused, Err(SessionError::LoginEnded)));
        assert_eq!(stored_flash(&db, &id).await.as_deref(), Some("1"));

        tower_sessions::SessionStore::delete(store.as_ref(), &id)
            .await
            .unwrap();
        increment(&writes, &session).await.unwrap();
        let gone = load(&db, &id).await.unwrap();
        assert!(gone.is_none(), "a deleted record is not written again");
        finish(dir, db, &[writes]).await;
    }

    /// The session writer's commits reach the database file itself, without another write:
    /// the checkpoint thread copies the write-ahead log in (the writer's own connection never
    /// does; SQLite alone would wait for 1,000 pages of log).
    #[tokio::test]
    async fn the_writers_changes_reach_the_database_file_through_the_checkpoint_thread() {
        let (dir, db, _store, session) = shop().await;
        let id = session.id().unwrap();
        let writes = SessionWrites::new(db.clone(), SessionPolicy::default());
        for _ in 0..20 {
            increment(&writes, &session).await.unwrap();
        }
        let key = super::super::record::storage_key(&id);
        let live: Vec<u8> = sqlx::query_scalar(&format!(
            "SELECT data FROM {} WHERE id = ?",
            super::super::login_rows::SESSIONS
        ))
        .bind(&key)
        .fetch_one(db.as_sqlite().unwrap())
        .await
        .unwrap();
        // A copy of the database file alone (no log) holds what the file holds.
        let in_file = || -> Option<Vec<u8>> {
            let copy = dir.join("copy");
            std::fs::create_dir_all(&copy).ok()?;
            std::fs::copy(dir.join("shop.db"), copy.join("shop.db")).ok()?;
            let conn = rusqlite::Connection::open(copy.join("shop.db")).ok()?;
            let data = conn
                .query_row(
                    &format!(
                        "SELECT data FROM {} WHERE id = ?1",
                        super::super::login_rows::SESSIONS
                    ),
                    [&key],
                    |row| row.get(0),
                )
                .ok();
            drop(conn);
            std::fs::remove_dir_all(&copy).ok();
            data
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut found = in_file();
        while found.as_ref() != Some(&live) && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            found = in_file();
        }
        assert!(
            found.as_ref() == Some(&live),
            "the database file holds the last change (without the log)"
        );
        assert_eq!(stored_flash(&db, &id).await.as_deref(), Some("20"));
        finish(dir, db, &[writes]).await;
    }

    /// Under writes that never pause, the write-ahead log still starts over: it stays near
    /// the writer's restart size instead of growing with every write (a passive checkpoint
    /// alone never lets it start over while writes keep coming).
    #[tokio::test]
    async fn the_write_ahead_log_starts_over_under_writes_that_never_pause() {
        let (dir, db, _store, session) = shop().await;
        let writes = SessionWrites::new(db.clone(), SessionPolicy::default());
        let wal = dir.join("shop.db-wal");
        let mut largest = 0;
        let started = std::time::Instant::now();
        let mut changes = 0;
        // Until the log would pass 48 MB without restarts.
        while started.elapsed() < std::time::Duration::from_secs(20) && changes < 40_000 {
            let mut batch = tokio::task::JoinSet::new();
            for _ in 0..16 {
                let (writes, session) = (writes.clone(), session.clone());
                batch.spawn(async move { increment(&writes, &session).await });
            }
            while let Some(outcome) = batch.join_next().await {
                outcome.unwrap().unwrap();
            }
            changes += 16;
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        }
        eprintln!(
            "{changes} changes in {:?}, log at most {largest} bytes",
            started.elapsed()
        );
        assert!(
            largest < 24 << 20,
            "the log stays near 16 MB (at most {largest} bytes after {changes} changes)"
        );
        finish(dir, db, &[writes]).await;
    }

    /// The flash stored for the session `id`, read straight from the database.
    async fn stored_flash(db: &Db, id: &Id) -> Option<String> {
        let (record, _) = load_in(&mut db.acquire().await.unwrap().conn(), id, false)
            .await
            .unwrap()
            .expect("the record");
        let mut contents = Contents::stored(Some(record.data));
        contents.take_flash().map(|flash| flash.message)
    }

    /// Two servers on one SQLite file (two instances: they share no turns). A change that lost
    /// its compare-and-swap to the other one is retried holding the file's write lock from its
    /// read, so the other server's write cannot land between its read and its write again: the
    /// retry wins, and the other's write, which read before it, is the one that conflicts.
    #[tokio::test]
    async fn a_retry_after_a_conflict_on_sqlite_cannot_lose_to_another_process_again() {
        let (dir, db, store, session) = shop().await;
        let policy = SessionPolicy::default();
        let id = session.id().expect("a stored session");
        let (here, there) = (
            SessionWrites::new(db.clone(), policy),
            SessionWrites::new(db.clone(), policy),
        );
        let flash = |text: &str| Flash::success(text.to_string());

        // The first try is a compare-and-swap: the other server's write between its read and
        // its write wins, and it conflicts.
        let mut first = begin_session_only(&here, &session, 1).await.unwrap();
        first.contents().set_flash(&flash("here")).unwrap();
        let theirs = Session::new(Some(id), store.clone(), None);
        let mut other = begin_session_only(&there, &theirs, 1).await.unwrap();
        other.contents().set_flash(&flash("there")).unwrap();
        other.commit(&theirs).await.unwrap();
        assert!(matches!(
            first.commit(&session).await,
            Err(SessionError::Conflict)
        ));
        assert_eq!(stored_flash(&db, &id).await.as_deref(), Some("there"));

        // The retry: the other server's next write waits for it instead of overtaking it.
        let mut retry = begin_session_only(&here, &session, 2).await.unwrap();
        retry.contents().set_flash(&flash("here")).unwrap();
        let other_write = tokio::spawn(async move {
            let mut change = begin_session_only(&there, &theirs, 1).await?;
            change.contents().set_flash(&flash("there again"))?;
            change.commit(&theirs).await
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !other_write.is_finished(),
            "the other server's write waits for the retry's"
        );
        retry
            .commit(&session)
            .await
            .expect("the retry cannot conflict");
        assert!(matches!(
            other_write.await.unwrap(),
            Err(SessionError::Conflict)
        ));
        assert_eq!(stored_flash(&db, &id).await.as_deref(), Some("here"));
        finish(dir, db, &[]).await;
    }
}
