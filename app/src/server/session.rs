//! Every session key is spelled here, and every write to a session's data goes through here.
//!
//! tower-sessions loads a record at the start of a request and writes the whole record back
//! at the end, so two concurrent requests on one session would overwrite each other's changes.
//! Writes that must not be lost (the cart, flash messages) therefore go through
//! [`SessionTx`]: an SQLite write transaction (`BEGIN IMMEDIATE`, which also excludes other
//! processes on the same file) that re-reads the stored record, changes it, saves it, and then
//! reloads the request's in-memory copy *without* marking it modified, so the middleware has
//! nothing stale to write back.

use crate::model::{Flash, StoredCart};
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
    /// Always `Some` until dropped.
    conn: Option<sqlx::pool::PoolConnection<sqlx::Sqlite>>,
    /// The stored record, or `None` when this visitor has no stored session yet.
    record: Option<Record>,
    /// Values to write when there is no stored record yet (a brand-new session, which no
    /// other request can know about, so the middleware may create it).
    pending: Vec<(String, serde_json::Value)>,
    finished: bool,
    /// Held from `begin` until commit or rollback.
    gate: Option<tokio::sync::OwnedMutexGuard<Writer>>,
    /// An SQLite transaction is open (`begin`), or not (`begin_session_only`).
    transaction: bool,
    /// The stored bytes as read, for the compare-and-swap of `begin_session_only`.
    original: Option<Vec<u8>>,
    /// Held from `begin` until commit or rollback: one writer per session in this process.
    session_lock: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// `begin_session_only`: the catalog version, read in the same statement as the record.
    catalog_version: Option<i64>,
    writes: SessionWrites,
}

/// How many session locks one server has (IDs that hash alike share one).
const SESSION_LOCK_STRIPES: usize = 4096;

/// One server's coordination of session writes on one database: a lock per session ID
/// (striped), so this server's requests on one session take turns instead of conflicting, and
/// the single-writer gate with the connection the session-only writes use (SQLite has one
/// writer at a time, so the writer whose turn it is has its connection at once instead of
/// queueing for a pooled one behind every reader).
///
/// It belongs to the server (in [`AppContext`](super::AppContext)), never to the process:
/// two servers in one process — tests, or one binary serving two databases — share nothing.
/// Other processes on the same file are excluded by SQLite itself (`BEGIN IMMEDIATE`, and the
/// compare-and-swap of session-only writes).
#[derive(Clone, Debug)]
pub struct SessionWrites {
    db: SqlitePool,
    locks: std::sync::Arc<[std::sync::Arc<tokio::sync::Mutex<()>>]>,
    gate: std::sync::Arc<tokio::sync::Mutex<Writer>>,
}

impl SessionWrites {
    pub fn new(db: SqlitePool) -> SessionWrites {
        SessionWrites {
            db,
            locks: (0..SESSION_LOCK_STRIPES)
                .map(|_| Default::default())
                .collect(),
            gate: Default::default(),
        }
    }

    fn session_lock(&self, id: &Id) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        id.hash(&mut hasher);
        self.locks[(hasher.finish() as usize) % self.locks.len()].clone()
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
        let saved = save_record(&mut conn, record, expected).await;
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

    /// For changes to the session's data alone (cart, flash): no SQLite transaction, and the
    /// single-writer gate held for one `UPDATE` only. The record is re-read (under this
    /// session's lock, so this process's requests on it take turns) and written back only if
    /// it is still byte-for-byte what was read (compare-and-swap): a change by anyone else —
    /// another process on the same file, a checkout — is never overwritten, the caller retries.
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
        let db = &writes.db;
        let session_lock = match session.id() {
            Some(id) => Some(
                tokio::time::timeout(WRITE_WAIT, writes.session_lock(&id).lock_owned())
                    .await
                    .map_err(|_| SessionError::Busy)?,
            ),
            None => None,
        };
        if !transaction {
            let mut tx = SessionTx {
                conn: None,
                record: None,
                pending: Vec::new(),
                finished: false,
                gate: None,
                transaction,
                original: None,
                session_lock,
                catalog_version: None,
                writes: writes.clone(),
            };
            if let Some(id) = session.id() {
                let mut conn = db.acquire().await?;
                let (version, stored) = load_record_and_catalog_version(&mut conn, &id).await?;
                tx.catalog_version = Some(version);
                if let Some((record, bytes)) = stored {
                    tx.record = Some(record);
                    tx.original = Some(bytes);
                }
            }
            return Ok(tx);
        }
        // SQLite has one writer at a time. Queueing here, before taking a pooled connection,
        // keeps waiting writers from holding every connection (which would starve the readers
        // and the commit's own reload); BEGIN IMMEDIATE still excludes other processes.
        let gate = tokio::time::timeout(WRITE_WAIT, writes.gate.clone().lock_owned())
            .await
            .map_err(|_| SessionError::Busy)?;
        let conn = db.acquire().await?;
        // The guard owns the connection before BEGIN runs: if this request is cancelled (the
        // client went away) while BEGIN waits or after it succeeded, `Drop` closes the
        // connection instead of returning it to the pool inside an open write transaction,
        // where it would hold SQLite's write lock and stall every other writer.
        let mut tx = SessionTx {
            conn: Some(conn),
            record: None,
            pending: Vec::new(),
            finished: false,
            gate: Some(gate),
            transaction,
            original: None,
            session_lock,
            catalog_version: None,
            writes: writes.clone(),
        };
        sqlx::query("BEGIN IMMEDIATE").execute(tx.conn()).await?;
        if let Some(id) = session.id() {
            match load_record(tx.conn(), &id).await {
                Ok(Some((record, bytes))) => {
                    tx.record = Some(record);
                    tx.original = Some(bytes);
                }
                Ok(None) => {}
                Err(error) => {
                    tx.rollback().await;
                    return Err(error);
                }
            }
        }
        Ok(tx)
    }

    /// The transaction's connection, for queries that must be atomic with the session change.
    /// Only for [`SessionTx::begin`]: a session-only change holds no connection.
    pub fn conn(&mut self) -> &mut SqliteConnection {
        // Invariant: `begin` holds `conn` until the transaction is finished; nothing calls
        // this on a `begin_session_only` change.
        self.conn
            .as_deref_mut()
            .expect("connection present until drop")
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
    /// is that version).
    pub async fn catalog(
        &self,
        cache: &super::catalog::CatalogCache,
    ) -> Result<std::sync::Arc<super::catalog::Catalog>, sqlx::Error> {
        match self.catalog_version {
            Some(version) => cache.get_at(&self.writes.db, version).await,
            None => cache.get(&self.writes.db).await,
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
                save_record(self.conn(), &record, original.as_deref()).await
            } else {
                // The gate, with the writer connection: waiting writers hold no connection.
                let mut writer =
                    tokio::time::timeout(WRITE_WAIT, self.writes.gate.clone().lock_owned())
                        .await
                        .map_err(|_| SessionError::Busy)?;
                writer
                    .save(&self.writes.db, &record, original.as_deref())
                    .await
            };
            self.record = Some(record);
            match saved {
                Ok(true) => {}
                // Not the record that was read: changed by someone else, or deleted (logout,
                // revocation) — then there is nothing to save.
                Ok(false) => {
                    let id = self.record.as_ref().map(|r| r.id);
                    let exists = match (id, self.transaction) {
                        (Some(id), true) => {
                            load_record(self.conn(), &id).await.map(|r| r.is_some())
                        }
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
            sqlx::query("COMMIT").execute(self.conn()).await?;
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
        if !self.finished && self.transaction {
            // `finished` only once ROLLBACK has run: cancelled halfway, `Drop` closes the
            // connection.
            if let Err(error) = sqlx::query("ROLLBACK").execute(self.conn()).await {
                tracing::error!(%error, "rollback failed; closing the connection");
                if let Some(conn) = self.conn.take() {
                    drop(conn.detach());
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
                drop(conn.detach());
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

/// The stored record and its bytes.
pub(crate) async fn load_record<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Sqlite>,
    id: &Id,
) -> Result<Option<(Record, Vec<u8>)>, SessionError> {
    let sql = format!("SELECT data FROM {SESSION_TABLE} WHERE id = ? AND expiry_date > ?");
    let row: Option<(Vec<u8>,)> = sqlx::query_as(&sql)
        .bind(storage_key(id))
        .bind(OffsetDateTime::now_utc())
        .fetch_optional(executor)
        .await?;
    match row {
        None => Ok(None),
        Some((bytes,)) => Ok(Some((decode_record(*id, &bytes)?, bytes))),
    }
}

/// The catalog version and the stored record with its bytes, in one statement (one round
/// trip to the database's thread instead of two).
async fn load_record_and_catalog_version(
    conn: &mut SqliteConnection,
    id: &Id,
) -> Result<(i64, Option<(Record, Vec<u8>)>), SessionError> {
    let sql = format!(
        "SELECT (SELECT version FROM catalog_version WHERE id = 1), \
                (SELECT data FROM {SESSION_TABLE} WHERE id = ?1 AND expiry_date > ?2)"
    );
    let (version, bytes): (i64, Option<Vec<u8>>) = sqlx::query_as(&sql)
        .bind(storage_key(id))
        .bind(OffsetDateTime::now_utc())
        .fetch_one(&mut *conn)
        .await?;
    match bytes {
        None => Ok((version, None)),
        Some(bytes) => Ok((version, Some((decode_record(*id, &bytes)?, bytes)))),
    }
}

/// Writes the record; with `expected`, only over exactly those stored bytes. Whether a row
/// was written.
async fn save_record(
    conn: &mut SqliteConnection,
    record: &Record,
    expected: Option<&[u8]>,
) -> Result<bool, SessionError> {
    let sql = format!(
        "UPDATE {SESSION_TABLE} SET data = ?1, expiry_date = ?2 WHERE id = ?3 AND (?4 IS NULL OR data = ?4)"
    );
    let result = sqlx::query(&sql)
        .bind(encode_record(record)?)
        .bind(record.expiry_date)
        .bind(storage_key(&record.id))
        .bind(expected)
        .execute(&mut *conn)
        .await?;
    Ok(result.rows_affected() > 0)
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
