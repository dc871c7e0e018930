//! The SQLite pool: connection options tuned for one writer and many readers, and migrations.

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::time::Duration;

/// How long a connection waits for another writer before giving up with "database is locked".
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid DATABASE_URL {url:?}: {source}")]
    BadUrl { url: String, source: sqlx::Error },
    #[error("cannot create the database directory {dir}: {source}")]
    CreateDir { dir: String, source: std::io::Error },
    #[error("DATABASE_URL {0:?} is not supported: use sqlite://path/to/file.db")]
    Unsupported(String),
    #[error("cannot open the database {file}: {source}")]
    Open { file: String, source: sqlx::Error },
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Opens (creating if missing) the SQLite database at `url` with WAL and a busy timeout.
pub async fn connect(url: &str) -> Result<SqlitePool, DbError> {
    // sqlx reads anything else as a file name ("postgres://…" would create a directory).
    if !url.starts_with("sqlite:") {
        return Err(DbError::Unsupported(url.to_string()));
    }
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
    SqlitePoolOptions::new()
        .max_connections(8)
        // An in-process SQLite connection cannot go stale: no ping round trip to the
        // connection's worker thread on every acquire.
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(|source| DbError::Open { file, source })
}

/// Applies the migrations under `migrations/` (embedded at compile time).
pub async fn migrate(pool: &SqlitePool) -> Result<(), DbError> {
    sqlx::migrate!("../migrations").run(pool).await?;
    Ok(())
}
