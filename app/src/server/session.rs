//! Every session key is spelled here, and every write to a session's data goes through here.
//!
//! tower-sessions loads a record at the start of a request and writes the whole record back
//! at the end, so two concurrent requests on one session would overwrite each other's changes.
//! Writes that must not be lost (the cart, flash messages) therefore go through
//! [`SessionTx`]: an SQLite write transaction (`BEGIN IMMEDIATE`, which also excludes other
//! processes on the same file) that re-reads the stored record, changes it, saves it, and then
//! reloads the request's in-memory copy *without* marking it modified, so the middleware has
//! nothing stale to write back.

use super::db::{Conn, Db, Kind, Pooled};
use crate::model::{Flash, StoredCart};
use crate::{on_conn, on_db};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sqlx::{SqliteConnection, SqlitePool};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::Session;

pub const CART_KEY: &str = "cart";
pub const USER_KEY: &str = "user";
pub const FLASH_KEY: &str = "flash";
/// Unix seconds of the last recorded activity (updated at most once a minute).
pub const SEEN_KEY: &str = "seen";

/// The session table of tower-sessions-sqlx-store.
pub const SESSION_TABLE: &str = "tower_sessions";

/// The key a session is stored under: SHA-256 of its ID (hex). The store and the registry
/// keep only this — never the ID, neither as the key nor inside the stored record — so a
/// leaked database or backup holds no cookie that works.
pub fn storage_key(id: &Id) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(id.to_string().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A record as stored: its ID blanked (the key is the ID's hash).
pub fn encode_record(record: &Record) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec(&Record {
        id: Id(0),
        data: record.data.clone(),
        expiry_date: record.expiry_date,
    })
}

/// A stored record, given back the ID it was looked up with.
pub fn decode_record(id: Id, bytes: &[u8]) -> Result<Record, rmp_serde::decode::Error> {
    let mut record: Record = rmp_serde::from_slice(bytes)?;
    record.id = id;
    Ok(record)
}

/// The login stored in the session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthUser {
    pub id: i64,
    pub email: String,
    pub is_admin: bool,
    /// The registry handle of this login (opaque; never the session ID).
    pub handle: String,
    /// Unix seconds of the login, for the absolute timeout.
    pub logged_in_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store: {0}")]
    Store(#[from] tower_sessions::session::Error),
    #[error("session database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("session record encoding: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("session record decoding: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("session value: {0}")]
    Value(#[from] serde_json::Error),
    #[error("timed out waiting to write the session")]
    Busy,
    /// `begin_session_only`: the record changed between read and write (another process).
    #[error("the session changed while it was being written")]
    Conflict,
}

/// Reads a typed value from the request's session; a malformed value reads as absent.
async fn read<T: DeserializeOwned>(
    session: &Session,
    key: &str,
) -> Result<Option<T>, SessionError> {
    match session.get_value(key).await? {
        None => Ok(None),
        Some(value) => Ok(serde_json::from_value(value).ok()),
    }
}

pub async fn current_user(session: &Session) -> Result<Option<AuthUser>, SessionError> {
    read(session, USER_KEY).await
}

pub async fn cart(session: &Session) -> Result<StoredCart, SessionError> {
    Ok(read(session, CART_KEY).await?.unwrap_or_default())
}

/// Logs a user in: a new session ID (the old one is deleted from the store at once, so a
/// fixated or stolen pre-login ID is useless), the cart kept.
pub async fn cycle_session_on_login(
    session: &Session,
    user: &AuthUser,
) -> Result<(), SessionError> {
    session.cycle_id().await?;
    session.insert(USER_KEY, user).await?;
    session.insert(SEEN_KEY, user.logged_in_at).await?;
    Ok(())
}

/// Rotates the session ID, keeping everything (after a password change).
pub async fn rotate_id(session: &Session) -> Result<(), SessionError> {
    session.cycle_id().await?;
    Ok(())
}

/// Logs out: deletes the session from the store and clears the cookie.
pub async fn destroy_session(session: &Session) -> Result<(), SessionError> {
    session.flush().await?;
    Ok(())
}

/// An atomic read-modify-write of one session's stored data. See the module docs.
pub struct SessionTx {
    /// A transaction's connection (`transaction`): `Some` until finished or dropped.
    conn: Option<Pooled>,
    /// The stored record, or `None` when this visitor has no stored session yet.
    record: Option<Record>,
    /// Values to write when there is no stored record yet (a brand-new session, which no
    /// other request can know about, so the middleware may create it).
    pending: Vec<(String, serde_json::Value)>,
    finished: bool,
    /// SQLite: held from `begin` until commit or rollback.
    gate: Option<tokio::sync::OwnedMutexGuard<Writer>>,
    /// A database transaction is open on `conn` (always on PostgreSQL; on SQLite for `begin`,
    /// not for `begin_session_only`).
    transaction: bool,
    /// The stored bytes as read, for the compare-and-swap of `begin_session_only`.
    original: Option<Vec<u8>>,
    /// SQLite: held from `begin` until commit or rollback: one writer per session in this
    /// process.
    session_lock: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// The catalog version, read in the same statement as the record (`begin_session_only`).
    catalog_version: Option<i64>,
    writes: SessionWrites,
}

/// How many session locks one server has (IDs that hash alike share one).
const SESSION_LOCK_STRIPES: usize = 4096;

/// One server's coordination of session writes on one database.
///
/// On SQLite: a lock per session ID (striped), so this server's requests on one session take
/// turns instead of conflicting, and the single-writer gate with the connection the
/// session-only writes use (SQLite has one writer at a time, so the writer whose turn it is has
/// its connection at once instead of queueing for a pooled one behind every reader). Other
/// processes on the same file are excluded by SQLite itself (`BEGIN IMMEDIATE`, and the
/// compare-and-swap of session-only writes).
///
/// On PostgreSQL there is no process-wide coordination at all (it would only serialise
/// unrelated sessions, and could not see other instances): every change runs in a transaction
/// that locks the session's row (`SELECT … FOR UPDATE`), so concurrent changes of one session —
/// on any instance — wait for each other, and unrelated sessions never do.
///
/// It belongs to the server (in [`AppContext`](super::AppContext)), never to the process:
/// two servers in one process — tests, or one binary serving two databases — share nothing.
#[derive(Clone, Debug)]
pub struct SessionWrites {
    db: Db,
    locks: std::sync::Arc<[std::sync::Arc<tokio::sync::Mutex<()>>]>,
    gate: std::sync::Arc<tokio::sync::Mutex<Writer>>,
}

impl SessionWrites {
    pub fn new(db: Db) -> SessionWrites {
        let stripes = match db.kind() {
            Kind::Sqlite => SESSION_LOCK_STRIPES,
            Kind::Postgres => 0,
        };
        SessionWrites {
            db,
            locks: (0..stripes).map(|_| Default::default()).collect(),
            gate: Default::default(),
        }
    }

    fn sqlite(&self) -> bool {
        self.db.kind() == Kind::Sqlite
    }

    /// This session's lock (SQLite only).
    fn session_lock(&self, id: &Id) -> Option<std::sync::Arc<tokio::sync::Mutex<()>>> {
        use std::hash::{Hash, Hasher};
        if self.locks.is_empty() {
            return None;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut hasher);
        Some(self.locks[(hasher.finish() as usize) % self.locks.len()].clone())
    }

    /// Closes the writer connection, if open (at shutdown, before the pool: the last
    /// connection to close checkpoints the write-ahead log). A later write opens it again.
    pub async fn close_writer(&self) {
        use sqlx::Connection;
        // A write still running after the drain keeps its connection; it closes with the
        // process.
        let Ok(mut writer) =
            tokio::time::timeout(std::time::Duration::from_secs(1), self.gate.lock()).await
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

#[derive(Default, Debug)]
struct Writer {
    conn: Option<SqliteConnection>,
}

impl Writer {
    /// Runs one compare-and-swap on the writer connection (opened on first use, and again
    /// after a failure or a cancelled statement, which may have left it in any state).
    async fn save(
        &mut self,
        db: &SqlitePool,
        record: &Record,
        expected: Option<&[u8]>,
    ) -> Result<bool, SessionError> {
        use sqlx::ConnectOptions;
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => db.connect_options().connect().await?,
        };
        let saved = save_record(&mut Conn::Sqlite(&mut conn), record, expected).await;
        if saved.is_ok() {
            self.conn = Some(conn);
        }
        saved
    }
}

/// How long a session write waits for its turn before giving up (a 503, never a hang).
const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

impl SessionTx {
    /// Starts a write transaction and re-reads the session's stored record: for changes that
    /// must be atomic with other tables (checkout, the registry).
    pub async fn begin(
        writes: &SessionWrites,
        session: &Session,
    ) -> Result<SessionTx, SessionError> {
        SessionTx::start(writes, session, true).await
    }

    /// For changes to the session's data alone (cart, flash). On SQLite: no transaction, and
    /// the single-writer gate held for one `UPDATE` only. The record is re-read (under this
    /// session's lock, so this process's requests on it take turns) and written back only if
    /// it is still byte-for-byte what was read (compare-and-swap): a change by anyone else —
    /// another process on the same file, a checkout — is never overwritten, the caller retries.
    /// On PostgreSQL: a transaction holding the session's row (see [`SessionWrites`]), with the
    /// catalog version read in the same statement.
    pub async fn begin_session_only(
        writes: &SessionWrites,
        session: &Session,
    ) -> Result<SessionTx, SessionError> {
        SessionTx::start(writes, session, false).await
    }

    async fn start(
        writes: &SessionWrites,
        session: &Session,
        transaction: bool,
    ) -> Result<SessionTx, SessionError> {
        let session_lock = match session.id().and_then(|id| writes.session_lock(&id)) {
            Some(lock) => Some(
                tokio::time::timeout(WRITE_WAIT, lock.lock_owned())
                    .await
                    .map_err(|_| SessionError::Busy)?,
            ),
            None => None,
        };
        let mut tx = SessionTx {
            conn: None,
            record: None,
            pending: Vec::new(),
            finished: false,
            gate: None,
            transaction: transaction || !writes.sqlite(),
            original: None,
            session_lock,
            catalog_version: None,
            writes: writes.clone(),
        };
        if !tx.transaction {
            if let Some(id) = session.id() {
                let mut conn = writes.db.acquire().await?;
                let (version, stored) =
                    load_record_and_catalog_version(&mut conn.conn(), &id, false).await?;
                tx.catalog_version = Some(version);
                if let Some((record, bytes)) = stored {
                    tx.record = Some(record);
                    tx.original = Some(bytes);
                }
            }
            return Ok(tx);
        }
        if writes.sqlite() {
            // SQLite has one writer at a time. Queueing here, before taking a pooled
            // connection, keeps waiting writers from holding every connection (which would
            // starve the readers and the commit's own reload); BEGIN IMMEDIATE still excludes
            // other processes.
            tx.gate = Some(
                tokio::time::timeout(WRITE_WAIT, writes.gate.clone().lock_owned())
                    .await
                    .map_err(|_| SessionError::Busy)?,
            );
        }
        // The guard owns the connection before BEGIN runs: if this request is cancelled (the
        // client went away) while BEGIN waits or after it succeeded, `Drop` closes the
        // connection instead of returning it to the pool inside an open write transaction,
        // where it would hold the write lock (SQLite) or the session's row (PostgreSQL).
        tx.conn = Some(writes.db.acquire().await?);
        let begin = match writes.db.kind() {
            Kind::Sqlite => "BEGIN IMMEDIATE",
            Kind::Postgres => "BEGIN",
        };
        on_conn!(&mut tx.conn(), c => sqlx::query(begin).execute(c).await.map(|r| r.rows_affected()))?;
        if let Some(id) = session.id() {
            let loaded = if transaction {
                load_record_in(&mut tx.conn(), &id, true)
                    .await
                    .map(|r| (None, r))
            } else {
                load_record_and_catalog_version(&mut tx.conn(), &id, true)
                    .await
                    .map(|(version, r)| (Some(version), r))
            };
            match loaded {
                Ok((version, stored)) => {
                    tx.catalog_version = version;
                    if let Some((record, bytes)) = stored {
                        tx.record = Some(record);
                        tx.original = Some(bytes);
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
    /// Only for [`SessionTx::begin`]: a session-only change may hold no connection.
    pub fn conn(&mut self) -> Conn<'_> {
        // Invariant: `begin` holds `conn` until the transaction is finished; nothing calls
        // this on a `begin_session_only` change.
        self.conn
            .as_mut()
            .expect("connection present until drop")
            .conn()
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let pending = self
            .pending
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v);
        let value = pending.or_else(|| self.record.as_ref().and_then(|r| r.data.get(key)))?;
        serde_json::from_value(value.clone()).ok()
    }

    /// The catalog as of this change's read: for a session-only change, at the version read
    /// in the same statement as the session (no round trip of its own when the copy in memory
    /// is that version). Inside a transaction, read on its connection.
    pub async fn catalog(
        &mut self,
        cache: &super::catalog::CatalogCache,
    ) -> Result<std::sync::Arc<super::catalog::Catalog>, sqlx::Error> {
        let version = match self.catalog_version {
            Some(version) => version,
            None if self.conn.is_some() => on_conn!(&mut self.conn(), c => sqlx::query_scalar(
                "SELECT version FROM catalog_version WHERE id = 1"
            )
            .fetch_one(c)
            .await)?,
            None => return cache.get(&self.writes.db).await,
        };
        if self.conn.is_some() {
            cache.get_at_in(&mut self.conn(), version).await
        } else {
            cache.get_at(&self.writes.db, version).await
        }
    }

    /// Whether the session has a stored record (an anonymous visitor may not).
    pub fn exists(&self) -> bool {
        self.record.is_some()
    }

    pub fn cart(&self) -> StoredCart {
        self.get(CART_KEY).unwrap_or_default()
    }

    pub fn set<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), SessionError> {
        let value = serde_json::to_value(value)?;
        match self.record.as_mut() {
            Some(record) => {
                record.data.insert(key.to_string(), value);
            }
            None => self.pending.push((key.to_string(), value)),
        }
        Ok(())
    }

    pub fn remove(&mut self, key: &str) {
        if let Some(record) = self.record.as_mut() {
            record.data.remove(key);
        }
        self.pending.retain(|(k, _)| k != key);
    }

    pub fn set_cart(&mut self, cart: &StoredCart) -> Result<(), SessionError> {
        self.set(CART_KEY, cart)
    }

    pub fn set_flash(&mut self, flash: &Flash) -> Result<(), SessionError> {
        self.set(FLASH_KEY, flash)
    }

    /// Saves the record, commits, and refreshes the request's copy of the session.
    pub async fn commit(self, session: &Session) -> Result<(), SessionError> {
        self.finish(session, Refresh::Always).await
    }

    /// Like [`SessionTx::commit`], for a change that is the last thing the request does with
    /// its session (a cart action): the request's copy is not read again, which saves a
    /// database round trip. It stays as it was, unmodified, so the session layer writes
    /// nothing back — unless it is empty: then it is refreshed, since the session layer
    /// would otherwise take the visitor for one without a session and remove the cookie.
    pub async fn commit_last(self, session: &Session) -> Result<(), SessionError> {
        self.finish(session, Refresh::IfEmpty).await
    }

    async fn finish(mut self, session: &Session, refresh: Refresh) -> Result<(), SessionError> {
        if let Some(mut record) = self.record.take() {
            record.expiry_date = session.expiry_date();
            let original = self.original.take();
            let saved = if self.transaction {
                save_record(&mut self.conn(), &record, original.as_deref()).await
            } else {
                match self.writes.db.as_sqlite() {
                    Some(pool) => {
                        // The gate, with the writer connection: waiting writers hold no
                        // connection.
                        let mut writer =
                            tokio::time::timeout(WRITE_WAIT, self.writes.gate.clone().lock_owned())
                                .await
                                .map_err(|_| SessionError::Busy)?;
                        writer.save(pool, &record, original.as_deref()).await
                    }
                    None => {
                        let mut conn = self.writes.db.acquire().await?;
                        save_record(&mut conn.conn(), &record, original.as_deref()).await
                    }
                }
            };
            self.record = Some(record);
            match saved {
                Ok(true) => {}
                // Not the record that was read: changed by someone else, or deleted (logout,
                // revocation) — then there is nothing to save.
                Ok(false) => {
                    let id = self.record.as_ref().map(|r| r.id);
                    let exists = match (id, self.transaction) {
                        (Some(id), true) => load_record_in(&mut self.conn(), &id, false)
                            .await
                            .map(|r| r.is_some()),
                        (Some(id), false) => {
                            load_record(&self.writes.db, &id).await.map(|r| r.is_some())
                        }
                        (None, _) => Ok(false),
                    };
                    if !matches!(exists, Ok(false)) {
                        self.rollback().await;
                        return Err(SessionError::Conflict);
                    }
                }
                Err(error) => {
                    self.rollback().await;
                    return Err(error);
                }
            }
        }
        if self.transaction {
            on_conn!(&mut self.conn(), c => sqlx::query("COMMIT").execute(c).await.map(|r| r.rows_affected()))?;
        }
        self.finished = true;
        // Give the connection back before the reload, which needs one of its own.
        drop(self.conn.take());
        drop(self.gate.take());
        drop(self.session_lock.take());
        if self.record.is_some() {
            // Reload without marking modified: the stored record is now the truth.
            if refresh == Refresh::Always || session.is_empty().await {
                session.load().await?;
            }
        } else {
            for (key, value) in std::mem::take(&mut self.pending) {
                session.insert_value(&key, value).await?;
            }
        }
        Ok(())
    }

    /// Abandons every change.
    pub async fn rollback(mut self) {
        self.rollback_in_place().await;
    }

    async fn rollback_in_place(&mut self) {
        if !self.finished && self.transaction && self.conn.is_some() {
            // `finished` only once ROLLBACK has run: cancelled halfway, `Drop` closes the
            // connection.
            let rolled_back = on_conn!(&mut self.conn(), c => sqlx::query("ROLLBACK").execute(c).await.map(|r| r.rows_affected()));
            if let Err(error) = rolled_back {
                tracing::error!(%error, "rollback failed; closing the connection");
                if let Some(conn) = self.conn.take() {
                    conn.detach();
                }
            }
        }
        self.finished = true;
    }
}

impl Drop for SessionTx {
    fn drop(&mut self) {
        if !self.finished && self.transaction {
            // An early return (`?`) left the transaction open: the connection must not go
            // back to the pool like that. Detached, it is closed, which rolls back.
            if let Some(conn) = self.conn.take() {
                conn.detach();
            }
        }
    }
}

/// Whether [`SessionTx`] refreshes the request's copy of the session after saving.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Refresh {
    Always,
    IfEmpty,
}

/// Reads a stored record: its key, and the bytes as stored.
fn select_record(lock: Kind) -> String {
    format!(
        "SELECT data FROM {SESSION_TABLE} WHERE id = $1 AND expiry_date > $2{}",
        lock.for_update()
    )
}

fn decoded(id: &Id, bytes: Option<Vec<u8>>) -> Result<Option<(Record, Vec<u8>)>, SessionError> {
    match bytes {
        None => Ok(None),
        Some(bytes) => Ok(Some((decode_record(*id, &bytes)?, bytes))),
    }
}

/// The stored record and its bytes.
pub(crate) async fn load_record(
    db: &Db,
    id: &Id,
) -> Result<Option<(Record, Vec<u8>)>, SessionError> {
    let sql = select_record(Kind::Sqlite);
    let bytes: Option<Vec<u8>> = on_db!(db, pool => sqlx::query_scalar(&sql)
        .bind(storage_key(id))
        .bind(OffsetDateTime::now_utc())
        .fetch_optional(pool)
        .await)?;
    decoded(id, bytes)
}

/// [`load_record`] on the caller's connection; with `lock`, the row is locked until the
/// transaction ends (PostgreSQL; SQLite's write transaction holds the whole database).
async fn load_record_in(
    conn: &mut Conn<'_>,
    id: &Id,
    lock: bool,
) -> Result<Option<(Record, Vec<u8>)>, SessionError> {
    let sql = select_record(if lock { conn.kind() } else { Kind::Sqlite });
    let bytes: Option<Vec<u8>> = on_conn!(conn, c => sqlx::query_scalar(&sql)
        .bind(storage_key(id))
        .bind(OffsetDateTime::now_utc())
        .fetch_optional(c)
        .await)?;
    decoded(id, bytes)
}

/// The catalog version and the stored record with its bytes, in one statement (one round
/// trip instead of two); with `lock`, the session's row is locked as in [`load_record_in`].
async fn load_record_and_catalog_version(
    conn: &mut Conn<'_>,
    id: &Id,
    lock: bool,
) -> Result<(i64, Option<(Record, Vec<u8>)>), SessionError> {
    let sql = format!(
        "SELECT (SELECT version FROM catalog_version WHERE id = 1), ({})",
        select_record(if lock { conn.kind() } else { Kind::Sqlite })
    );
    let (version, bytes): (i64, Option<Vec<u8>>) = on_conn!(conn, c => sqlx::query_as(&sql)
        .bind(storage_key(id))
        .bind(OffsetDateTime::now_utc())
        .fetch_one(c)
        .await)?;
    Ok((version, decoded(id, bytes)?))
}

/// Writes the record; with `expected`, only over exactly those stored bytes. Whether a row
/// was written.
async fn save_record(
    conn: &mut Conn<'_>,
    record: &Record,
    expected: Option<&[u8]>,
) -> Result<bool, SessionError> {
    let sql = format!(
        "UPDATE {SESSION_TABLE} SET data = $1, expiry_date = $2
         WHERE id = $3 AND ($4 IS NULL OR data = $4)"
    );
    let data = encode_record(record)?;
    let key = storage_key(&record.id);
    let updated = on_conn!(conn, c => sqlx::query(&sql)
        .bind(&data)
        .bind(record.expiry_date)
        .bind(&key)
        .bind(expected)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(updated > 0)
}

/// Takes the flash message out of the session (atomically, so it cannot undo a cart write).
pub async fn take_flash(
    writes: &SessionWrites,
    session: &Session,
) -> Result<Option<Flash>, SessionError> {
    // Most requests have no flash: check the in-memory copy before taking a write lock.
    if session.get_value(FLASH_KEY).await?.is_none() {
        return Ok(None);
    }
    // A session whose ID was just rotated (or that is not stored yet) exists only in this
    // request: nobody else can write to it, so the in-memory copy is the truth.
    if session.id().is_none() {
        return Ok(session.remove::<Flash>(FLASH_KEY).await.ok().flatten());
    }
    let mut tx = SessionTx::begin_session_only(writes, session).await?;
    let flash: Option<Flash> = tx.get(FLASH_KEY);
    tx.remove(FLASH_KEY);
    tx.commit(session).await?;
    Ok(flash)
}

/// Sets a flash message atomically.
pub async fn set_flash(
    writes: &SessionWrites,
    session: &Session,
    flash: &Flash,
) -> Result<(), SessionError> {
    let mut tx = SessionTx::begin_session_only(writes, session).await?;
    tx.set_flash(flash)?;
    tx.commit(session).await
}
