//! The database: embedded SQLite (the default) or PostgreSQL, chosen at run time by the
//! scheme of `DATABASE_URL`, with both sqlx drivers compiled in.
//!
//! Not `sqlx::Any`: it sends `?` placeholders to PostgreSQL unchanged and has no timestamp
//! type. Instead [`Db`] is an enum of the two pools, and [`on_db!`](crate::on_db) /
//! [`on_conn!`](crate::on_conn) run one piece of query code against whichever it holds (the code
//! is written once and type-checked once per driver). The SQL is shared wherever it means the
//! same on both — `$1`-style placeholders, which SQLite reads too — and differs only where the
//! databases do: locking, and a few functions (see [`Kind`]).

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool};
use std::str::FromStr;
use std::time::Duration;

/// How long a connection waits for another writer before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request waits for a pooled PostgreSQL connection (or for a new one to open)
/// before it is answered 503: a database that is down must not hold requests for long.
const PG_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid DATABASE_URL {url:?}: {source}")]
    BadUrl { url: String, source: sqlx::Error },
    #[error("cannot create the database directory {dir}: {source}")]
    CreateDir { dir: String, source: std::io::Error },
    #[error(
        "DATABASE_URL {0:?} is not supported: use sqlite://path/to/file.db or postgres://user@host/database"
    )]
    Unsupported(String),
    #[error("cannot open the database {file}: {source}")]
    Open { file: String, source: sqlx::Error },
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot take the migrations lock beside the database: {source}")]
    MigrationLock { source: std::io::Error },
}

/// Which database a [`Db`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// The shop's database: a pool of one driver or the other.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the pool of whichever database `$db` (a `&Db`) is.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::server::db::Db::Sqlite($pool) => $body,
            $crate::server::db::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the `&mut` connection of whichever database `$c` (a
/// `&mut Conn`) is on; use it as `&mut *$conn`.
#[macro_export]
macro_rules! on_conn {
    ($c:expr, $conn:ident => $body:expr) => {
        match $c {
            $crate::server::db::Conn::Sqlite($conn) => {
                let $conn: &mut ::sqlx::SqliteConnection = &mut **$conn;
                $body
            }
            $crate::server::db::Conn::Postgres($conn) => {
                let $conn: &mut ::sqlx::PgConnection = &mut **$conn;
                $body
            }
        }
    };
}

/// A connection of either database, borrowed (from a transaction or a pooled connection).
pub enum Conn<'c> {
    Sqlite(&'c mut SqliteConnection),
    Postgres(&'c mut PgConnection),
}

impl Conn<'_> {
    pub fn kind(&self) -> Kind {
        match self {
            Conn::Sqlite(_) => Kind::Sqlite,
            Conn::Postgres(_) => Kind::Postgres,
        }
    }

    /// Within a write transaction ([`Db::begin_write`]): serialises this transaction with every
    /// other one that locks the same `key`, until it ends. SQLite has a single writer, so its
    /// write transactions are serialised already; PostgreSQL takes a transaction-scoped
    /// advisory lock on the key's hash (a hash collision only makes two keys wait for each
    /// other).
    pub async fn lock_key(&mut self, key: &str) -> sqlx::Result<()> {
        if let Conn::Postgres(conn) = self {
            sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                .bind(key)
                .execute(&mut **conn)
                .await?;
        }
        Ok(())
    }
}

impl Kind {
    /// The locking clause for a read whose rows the transaction goes on to change: PostgreSQL
    /// locks them (a concurrent change waits, then sees this one's result); SQLite's write
    /// transaction holds the one write lock already, and has no such clause.
    pub fn for_update(self) -> &'static str {
        match self {
            Kind::Sqlite => "",
            Kind::Postgres => " FOR UPDATE",
        }
    }
}

/// A write transaction: `BEGIN IMMEDIATE` on SQLite (the write lock taken at once, so a read
/// followed by a write cannot fail halfway with a stale snapshot); on PostgreSQL a
/// read-committed transaction, in which what is read in order to be changed is locked
/// ([`Kind::for_update`], [`Conn::lock_key`]).
///
/// Cancellation-safe: the connection is owned by this guard *before* `BEGIN` is sent, and a
/// transaction not finished by [`WriteTx::commit`] or [`WriteTx::rollback`] — because an error
/// returned early, or because the request was cancelled (its client went away) while `BEGIN`
/// waited for SQLite's write lock or at any point after — closes its connection instead of
/// returning it to the pool, so no pooled connection is ever left inside a transaction (which
/// on SQLite would hold the write lock and stall every writer).
pub struct WriteTx {
    conn: Option<Pooled>,
    kind: Kind,
    finished: bool,
}

impl WriteTx {
    pub fn conn(&mut self) -> Conn<'_> {
        // Invariant: `conn` is present until the transaction is finished, and a finished
        // transaction is consumed.
        self.conn
            .as_mut()
            .expect("connection present until the transaction ends")
            .conn()
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    async fn run(&mut self, statement: &'static str) -> sqlx::Result<()> {
        on_conn!(&mut self.conn(), c => sqlx::query(statement).execute(c).await.map(|_| ()))
    }

    pub async fn commit(mut self) -> sqlx::Result<()> {
        self.run("COMMIT").await?;
        self.finished = true;
        Ok(())
    }

    pub async fn rollback(mut self) -> sqlx::Result<()> {
        self.run("ROLLBACK").await?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if !self.finished {
            if let Some(conn) = self.conn.take() {
                // Closed, the connection's transaction is rolled back by the database.
                conn.detach();
            }
        }
    }
}

/// A connection taken from the pool of either database.
pub enum Pooled {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
}

impl Pooled {
    pub fn conn(&mut self) -> Conn<'_> {
        match self {
            Pooled::Sqlite(conn) => Conn::Sqlite(&mut *conn),
            Pooled::Postgres(conn) => Conn::Postgres(&mut *conn),
        }
    }

    /// Takes the connection out of the pool for good: dropped, it closes (for a connection that
    /// may be inside an unfinished transaction).
    pub fn detach(self) {
        match self {
            Pooled::Sqlite(conn) => drop(conn.detach()),
            Pooled::Postgres(conn) => drop(conn.detach()),
        }
    }
}

/// A snapshot of a pool's connections (see [`Db::pool_use`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolUse {
    pub in_use: u32,
    pub idle: u32,
}

impl Db {
    pub fn kind(&self) -> Kind {
        match self {
            Db::Sqlite(_) => Kind::Sqlite,
            Db::Postgres(_) => Kind::Postgres,
        }
    }

    /// Begins a write transaction (see [`WriteTx`]).
    pub async fn begin_write(&self) -> sqlx::Result<WriteTx> {
        let mut tx = WriteTx {
            conn: Some(self.acquire().await?),
            kind: self.kind(),
            finished: false,
        };
        tx.run(match self.kind() {
            Kind::Sqlite => "BEGIN IMMEDIATE",
            Kind::Postgres => "BEGIN",
        })
        .await?;
        Ok(tx)
    }

    pub async fn acquire(&self) -> sqlx::Result<Pooled> {
        Ok(match self {
            Db::Sqlite(pool) => Pooled::Sqlite(pool.acquire().await?),
            Db::Postgres(pool) => Pooled::Postgres(pool.acquire().await?),
        })
    }

    pub async fn close(&self) {
        on_db!(self, pool => pool.close().await)
    }

    /// How many of the pool's connections are open, and how many of those wait idle.
    pub fn pool_use(&self) -> PoolUse {
        let (size, idle) = on_db!(self, pool => (pool.size(), pool.num_idle()));
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        PoolUse {
            in_use: size - idle,
            idle,
        }
    }

    /// The SQLite pool, when this is SQLite.
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Db::Sqlite(pool) => Some(pool),
            Db::Postgres(_) => None,
        }
    }
}

/// Opens the database named by `url`: `sqlite://…` (created if missing, WAL, a busy timeout)
/// or `postgres://…` / `postgresql://…`. Any other scheme is refused with a message naming the
/// two supported ones.
pub async fn connect(url: &str) -> Result<Db, DbError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return connect_postgres(url).await.map(Db::Postgres);
    }
    // sqlx reads anything else as a file name ("mysql://…" would create a directory).
    if !url.starts_with("sqlite:") {
        return Err(DbError::Unsupported(url.to_string()));
    }
    connect_sqlite(url).await.map(Db::Sqlite)
}

async fn connect_sqlite(url: &str) -> Result<SqlitePool, DbError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|source| DbError::BadUrl {
            url: url.to_string(),
            source,
        })?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL is durable across process crashes under WAL; only an OS crash can lose the
        // last transactions, never corrupt the file.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    let file = options.get_filename().display().to_string();
    if let Some(parent) = options.get_filename().parent() {
        if !parent.as_os_str().is_empty() && !parent.exists() {
            std::fs::create_dir_all(parent).map_err(|source| DbError::CreateDir {
                dir: parent.display().to_string(),
                source,
            })?;
        }
    }
    // Instances starting together on a new file: switching it to WAL takes a lock for which
    // SQLite may answer "database is locked" at once, without waiting (to avoid a deadlock
    // between two readers that both want to write). Try again within the busy timeout.
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        let opened = SqlitePoolOptions::new()
            .max_connections(8)
            // An in-process SQLite connection cannot go stale: no ping round trip to the
            // connection's worker thread on every acquire.
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await;
        match opened {
            Err(error) if is_busy(&error) && started.elapsed() + pause < BUSY_TIMEOUT => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            other => return other.map_err(|source| DbError::Open { file, source }),
        }
    }
}

/// SQLite's "database is locked" (`SQLITE_BUSY`, with any extended code).
fn is_busy(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|error| error.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}

async fn connect_postgres(url: &str) -> Result<PgPool, DbError> {
    let options = PgConnectOptions::from_str(url).map_err(|source| DbError::BadUrl {
        url: redact(url),
        source,
    })?;
    let name = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("")
    );
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(PG_ACQUIRE_TIMEOUT)
        // A connection to a server that restarted is found broken on its next use; the ping
        // before handing one out keeps that use from being a request's.
        .test_before_acquire(true)
        .connect_with(options)
        .await
        .map_err(|source| DbError::Open { file: name, source })
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Applies the migrations of this database (`migrations/sqlite/` or `migrations/postgres/`,
/// embedded at compile time). On PostgreSQL sqlx's migrator holds an advisory lock while it
/// runs, so instances starting together apply each migration exactly once.
///
/// sqlx's SQLite migrator has no such lock (two processes would both apply the first
/// migration, and the second fail), so on SQLite the migrations run under an exclusive lock
/// on a file beside the database (`<database>.migrate-lock`), held from the check of what is
/// applied to the last migration.
pub async fn migrate(db: &Db) -> Result<(), DbError> {
    match db {
        Db::Sqlite(pool) => {
            let _lock = lock_sqlite_migrations(pool).await?;
            sqlx::migrate!("../migrations/sqlite").run(pool).await?;
        }
        Db::Postgres(pool) => sqlx::migrate!("../migrations/postgres").run(pool).await?,
    }
    Ok(())
}

/// The exclusive lock on `<database>.migrate-lock` (none for an in-memory database), released
/// when the file is dropped.
async fn lock_sqlite_migrations(pool: &SqlitePool) -> Result<Option<std::fs::File>, DbError> {
    let file = pool.connect_options().get_filename().to_path_buf();
    if file.as_os_str().is_empty() || file.as_os_str() == ":memory:" {
        return Ok(None);
    }
    let mut name = file.into_os_string();
    name.push(".migrate-lock");
    let path = std::path::PathBuf::from(name);
    let locked = tokio::task::spawn_blocking(move || {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        lock.lock()?;
        Ok::<_, std::io::Error>(lock)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|locked| locked)
    .map_err(|source| DbError::MigrationLock { source })?;
    Ok(Some(locked))
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_repeated_in_messages() {
        assert_eq!(
            super::redact("postgres://shop:s3cret@db:5432/shop"),
            "postgres://shop:***@db:5432/shop"
        );
        assert_eq!(super::redact("postgres://db/shop"), "postgres://db/shop");
    }
}
