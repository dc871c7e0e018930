//! The SQLite session writer: one thread with its own connection that runs changes of a
//! session's data alone (the cart) — each one a read, the change and a write inside one write
//! transaction, taken a batch at a time.
//!
//! Through sqlx, a compare-and-swap costs three statements, each a hand-off between the async
//! runtime and a connection's thread (the session layer's read, the swap's read, its
//! `UPDATE`): on a cart write the kernel's futex and scheduling time outweighed SQLite's own
//! work (bench/README.md, "Where a cart write's time goes"). Here a change is handed over once,
//! with the code that makes it; the thread reads the record and the catalog version, applies
//! the change and writes the result in the same transaction (`BEGIN IMMEDIATE`, which other
//! processes on the file wait for), so it cannot conflict and needs no retry. Changes that
//! arrive while a transaction runs are queued and share the next one (a group commit): under
//! load the thread takes them as fast as SQLite commits, with no wake-up between them.
//!
//! The thread takes this server's single-writer gate for each transaction, as every other
//! write of it does, so it never waits in SQLite's busy handler for this server's own writes.
//!
//! Checkpoints (copying the write-ahead log into the database file, and its fsyncs) run on a
//! thread of their own, never on the writer's: SQLite would run one on the connection whose
//! commit passed 1,000 pages of log, which here holds every queued change (and the gate) for
//! as long as the disk takes to flush, a stall of hundreds of milliseconds on a busy disk. A
//! passive checkpoint does not stop writers, so the writer keeps committing meanwhile. But a
//! passive checkpoint alone never lets the log start over while writes keep coming (SQLite
//! starts it over when a write begins with every page of it copied): under a steady load it
//! grew by 20 MB a second. So once the log passes [`RESTART_FRAMES`], right after the
//! checkpoint thread's pass, the writer copies the few pages written since then itself; its
//! next transaction then starts the log over, unless a read still uses the log (then at the
//! next pass). That small copy is the only checkpoint work left on the writer: once per 16 MB
//! of log instead of a full one per 4 MB. Past [`FORCE_FRAMES`] (64 MB), the writer's copy
//! waits up to [`FORCE_WAIT`] for the reads and starts the log over itself (a restarting
//! checkpoint): the log's bound.

use super::contents::{cart_items_of, stored_expiry, Contents, SessionError};
use super::login_rows::SESSIONS;
use super::policy::SessionPolicy;
use super::record::{decode_record, encode_stored, storage_key};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::{oneshot, Mutex};
use tower_sessions::session::{Id, Record};

/// The most changes one transaction takes.
const MAX_BATCH: usize = 64;

/// How long the writer's connection waits for another process's write lock (as sqlx's).
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often, at most, the checkpoint thread copies the write-ahead log into the database
/// (only after commits): under load, a few hundred milliseconds of writes each time.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// The size of the write-ahead log, in pages, past which the writer has it start over
/// (16 MB of 4 KiB pages).
const RESTART_FRAMES: i64 = 4096;

/// The size of the log, in pages, past which the writer waits for reads to start it over
/// (64 MB).
const FORCE_FRAMES: i64 = 4 * RESTART_FRAMES;

/// How long the writer's restarting checkpoint waits for reads still using the log.
const FORCE_WAIT: Duration = Duration::from_millis(100);

/// What the writer does after its next commit, set by the checkpoint thread.
const NOTHING: u8 = 0;
const COPY_REST: u8 = 1;
const RESTART_LOG: u8 = 2;

/// What a change sees: the catalog version and the session's contents, as of its read inside
/// the transaction.
pub(super) struct Found<'a> {
    pub catalog_version: i64,
    pub contents: &'a mut Contents,
}

/// A change, run on the writer thread: whether to write the contents as it left them.
type Apply = Box<dyn FnOnce(Found<'_>) -> bool + Send>;

/// The contents after a change, and whether they were written (false: no stored, unexpired
/// record — a logout, a revocation, an expiry — or the change said not to write).
pub(super) type Changed = (Contents, bool);

struct Job {
    key: String,
    id: Id,
    /// Now, as stored expiry dates are compared (RFC 3339, as sqlx writes them).
    now: String,
    /// The expiry the session layer would give the record (see `stored_expiry`).
    expiry: OffsetDateTime,
    apply: Apply,
    done: oneshot::Sender<Result<Changed, SessionError>>,
}

enum Message {
    Change(Job),
    /// Close the connection (at shutdown, before the pool, whose last connection checkpoints
    /// the write-ahead log).
    Close(oneshot::Sender<()>),
}

/// The gate this server's SQLite writes take turns on (see `change::SqliteWrites`).
pub(super) type Gate<T> = Arc<Mutex<T>>;

/// The handle of the writer thread (started on first use; it ends when the last handle goes).
#[derive(Clone, Debug)]
pub(super) struct SessionWriter {
    jobs: Arc<std::sync::Mutex<Option<mpsc::Sender<Message>>>>,
    file: PathBuf,
    policy: SessionPolicy,
}

impl SessionWriter {
    pub fn new(file: PathBuf, policy: SessionPolicy) -> SessionWriter {
        SessionWriter {
            jobs: Default::default(),
            file,
            policy,
        }
    }

    fn sender<T: Send + 'static>(
        &self,
        gate: &Gate<T>,
    ) -> Result<mpsc::Sender<Message>, SessionError> {
        let mut jobs = self
            .jobs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(jobs) = jobs.as_ref() {
            return Ok(jobs.clone());
        }
        let (tx, rx) = mpsc::channel();
        let (file, gate, policy) = (self.file.clone(), gate.clone(), self.policy);
        std::thread::Builder::new()
            .name("session-writer".into())
            .spawn(move || run(&file, &gate, policy, rx))
            .map_err(|error| SessionError::Writer(format!("starting its thread: {error}")))?;
        *jobs = Some(tx.clone());
        Ok(tx)
    }

    /// Runs `change` on the stored record of `id` (as of a read in the same transaction, with
    /// the catalog version) and saves the result, in one write transaction.
    pub async fn change<T: Send + 'static>(
        &self,
        gate: &Gate<T>,
        id: Id,
        session_expiry: OffsetDateTime,
        change: impl FnOnce(Found<'_>) -> bool + Send + 'static,
    ) -> Result<Changed, SessionError> {
        let (done, outcome) = oneshot::channel();
        let job = Job {
            key: storage_key(&id),
            id,
            now: rfc3339(super::clock::now_utc())?,
            expiry: session_expiry,
            apply: Box::new(change),
            done,
        };
        if self.sender(gate)?.send(Message::Change(job)).is_err() {
            // The thread is gone: the next change starts another.
            *self.jobs.lock().unwrap_or_else(|p| p.into_inner()) = None;
            return Err(SessionError::Writer("its thread has stopped".into()));
        }
        outcome
            .await
            .map_err(|_| SessionError::Writer("its thread has stopped".into()))?
    }

    /// Closes the writer's connection, if open (a later change opens it again).
    pub async fn close(&self) {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(jobs) = jobs {
            let (tx, rx) = oneshot::channel();
            if jobs.send(Message::Close(tx)).is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
            }
        }
    }
}

fn rfc3339(at: OffsetDateTime) -> Result<String, SessionError> {
    at.format(&time::format_description::well_known::Rfc3339)
        .map_err(|error| SessionError::Writer(format!("formatting a date: {error}")))
}

fn open(file: &Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let conn = rusqlite::Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

/// What the writer tells its checkpoint thread.
enum Note {
    /// A transaction committed: the log has grown.
    Committed,
    /// Close the connection (the writer's is closing).
    Close(mpsc::SyncSender<()>),
}

/// Starts the checkpoint thread of a writer; it ends when the returned sender is dropped.
/// `restart`: what the writer is to do, by the log's size after a pass ([`COPY_REST`],
/// [`RESTART_LOG`]).
fn start_checkpoints(file: &Path, restart: Arc<AtomicU8>) -> Option<mpsc::SyncSender<Note>> {
    let (notes, rx) = mpsc::sync_channel(4);
    let file = file.to_path_buf();
    match std::thread::Builder::new()
        .name("session-checkpoint".into())
        .spawn(move || checkpoints(&file, &restart, rx))
    {
        Ok(_) => Some(notes),
        Err(error) => {
            // SQLite's own automatic checkpoints then run on the writer's connection.
            tracing::warn!(%error, "starting the checkpoint thread");
            None
        }
    }
}

/// The checkpoint thread: a passive checkpoint at most every [`CHECKPOINT_EVERY`], when
/// something was committed since the last one.
fn checkpoints(file: &Path, restart: &AtomicU8, notes: mpsc::Receiver<Note>) {
    let mut conn: Option<rusqlite::Connection> = None;
    let mut last: Option<Instant> = None;
    let mut pending = false;
    loop {
        let wait = match (pending, last) {
            (false, _) => None,
            (true, None) => Some(Duration::ZERO),
            (true, Some(at)) => Some(CHECKPOINT_EVERY.saturating_sub(at.elapsed())),
        };
        let note = match wait {
            None => notes.recv().map(Some).map_err(|_| ()),
            Some(wait) => match notes.recv_timeout(wait) {
                Ok(note) => Ok(Some(note)),
                Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
                Err(mpsc::RecvTimeoutError::Disconnected) => Err(()),
            },
        };
        match note {
            Err(()) => return,
            Ok(Some(Note::Committed)) => pending = true,
            Ok(Some(Note::Close(done))) => {
                conn = None;
                pending = false;
                let _ = done.send(());
                continue;
            }
            Ok(None) => {}
        }
        if pending && last.is_none_or(|at| at.elapsed() >= CHECKPOINT_EVERY) {
            pending = false;
            last = Some(Instant::now());
            let outcome = match conn.take() {
                Some(c) => Ok(c),
                None => open(file),
            }
            .and_then(|c| {
                // (busy, pages in the log, pages copied)
                c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                    row.get::<_, i64>(1)
                })
                .map(|log| (c, log))
            });
            match outcome {
                Ok((c, log)) => {
                    conn = Some(c);
                    if log > FORCE_FRAMES {
                        restart.store(RESTART_LOG, Ordering::Relaxed);
                    } else if log > RESTART_FRAMES {
                        restart.store(COPY_REST, Ordering::Relaxed);
                    }
                }
                // The next commit tries again, on a new connection.
                Err(error) => tracing::warn!(%error, "a checkpoint of the session database"),
            }
        }
    }
}

/// The writer thread: a batch of changes per transaction, until every handle is gone.
fn run<T>(file: &Path, gate: &Gate<T>, policy: SessionPolicy, jobs: mpsc::Receiver<Message>) {
    let mut conn: Option<rusqlite::Connection> = None;
    let restart = Arc::new(AtomicU8::new(NOTHING));
    let checkpoint = start_checkpoints(file, restart.clone());
    while let Ok(first) = jobs.recv() {
        let mut batch = Vec::new();
        let mut close = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Change(job) => batch.push(job),
                Message::Close(done) => close.push(done),
            }
            next = if batch.len() < MAX_BATCH {
                jobs.try_recv().ok()
            } else {
                None
            };
        }
        if !batch.is_empty() {
            // This server's other writers queue on the same gate.
            let _gate = gate.blocking_lock();
            let outcome = match conn.take() {
                Some(c) => Ok(c),
                None => open(file).and_then(|c| {
                    if checkpoint.is_some() {
                        // The checkpoint thread's work, not this connection's.
                        c.pragma_update(None, "wal_autocheckpoint", 0)?;
                    }
                    Ok(c)
                }),
            }
            .and_then(|mut c| {
                run_batch(&mut c, policy, batch.as_mut_slice()).map(|done| (c, done))
            });
            match outcome {
                Ok((c, done)) => {
                    conn = Some(c);
                    if let Some(checkpoint) = &checkpoint {
                        // Full: the thread already has a commit to look at.
                        let _ = checkpoint.try_send(Note::Committed);
                    }
                    let due = restart.swap(NOTHING, Ordering::Relaxed);
                    if let (Some(c), true) = (&conn, due != NOTHING) {
                        if let Err(error) = restart_log(c, due == RESTART_LOG) {
                            tracing::warn!(%error, "a checkpoint of the session database");
                        }
                    }
                    for (job, result) in batch.into_iter().zip(done) {
                        let _ = job.done.send(result);
                    }
                }
                Err(error) => {
                    // The connection is dropped (closed, rolling back), whatever its state;
                    // the next batch opens another.
                    tracing::error!(%error, "a batch of session changes failed");
                    for job in batch {
                        let _ = job.done.send(Err(SessionError::Writer(error.to_string())));
                    }
                }
            }
        }
        for done in close {
            conn = None;
            if let Some(checkpoint) = &checkpoint {
                let (closed, wait) = mpsc::sync_channel(1);
                if checkpoint.send(Note::Close(closed)).is_ok() {
                    let _ = wait.recv_timeout(Duration::from_secs(1));
                }
            }
            let _ = done.send(());
        }
    }
}

/// On the writer's connection, between transactions: copies the pages written since the
/// checkpoint thread's pass, so that the next transaction starts the log over; `force`: waits
/// (up to [`FORCE_WAIT`]) for reads still using the log and starts it over now.
fn restart_log(conn: &rusqlite::Connection, force: bool) -> rusqlite::Result<()> {
    if !force {
        return conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
    conn.busy_timeout(FORCE_WAIT)?;
    let done = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
    conn.busy_timeout(BUSY_TIMEOUT)?;
    done
}

/// One transaction: each job's read, change and write, in turn; then one commit. Each job's
/// own outcome, or the error that failed the whole transaction (nothing written).
fn run_batch(
    conn: &mut rusqlite::Connection,
    policy: SessionPolicy,
    batch: &mut [Job],
) -> rusqlite::Result<Vec<Result<Changed, SessionError>>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut done = Vec::with_capacity(batch.len());
    {
        let mut read = tx.prepare_cached(&format!(
            "SELECT ({}), (SELECT data FROM {SESSIONS} WHERE id = ?1 AND expiry_date > ?2)",
            crate::server::catalog::SELECT_VERSION
        ))?;
        let mut write = tx.prepare_cached(&format!(
            "UPDATE {SESSIONS} SET data = ?1, expiry_date = ?2, cart_items = ?3 WHERE id = ?4"
        ))?;
        for job in batch.iter_mut() {
            let (catalog_version, bytes): (i64, Option<Vec<u8>>) =
                read.query_row((&job.key, &job.now), |row| Ok((row.get(0)?, row.get(1)?)))?;
            let apply = std::mem::replace(&mut job.apply, Box::new(|_| false));
            let outcome = change_one(job.id, catalog_version, bytes, apply, policy, job.expiry);
            done.push(match outcome {
                Ok((contents, Some(write_out))) => {
                    let WriteOut {
                        data,
                        expiry,
                        cart_items,
                    } = write_out;
                    let written = write.execute((&data, &expiry, cart_items, &job.key))?;
                    Ok((contents, written > 0))
                }
                Ok((contents, None)) => Ok((contents, false)),
                Err(error) => Err(error),
            });
        }
    }
    tx.commit()?;
    Ok(done)
}

/// A record's columns to write.
struct WriteOut {
    data: Vec<u8>,
    expiry: String,
    cart_items: i64,
}

/// One job's change of the record read: the contents after it, and what to write (`None`:
/// nothing — no record, or the change said not to).
fn change_one(
    id: Id,
    catalog_version: i64,
    bytes: Option<Vec<u8>>,
    apply: Apply,
    policy: SessionPolicy,
    proposed_expiry: OffsetDateTime,
) -> Result<(Contents, Option<WriteOut>), SessionError> {
    let stored = match bytes {
        Some(bytes) => Some(decode_record(id, &bytes)?.data),
        None => None,
    };
    let exists = stored.is_some();
    let mut contents = Contents::stored(stored);
    let write = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        apply(Found {
            catalog_version,
            contents: &mut contents,
        })
    }))
    .map_err(|_| SessionError::Writer("a session change panicked".into()))?;
    if !(write && exists) {
        return Ok((contents, None));
    }
    let Some(data) = contents.take_data() else {
        return Ok((contents, None));
    };
    let expiry_date = stored_expiry(&policy, &data, proposed_expiry);
    let cart_items = cart_items_of(&data);
    let encoded = encode_stored(Record {
        id: Id(0),
        data,
        expiry_date,
    })?;
    Ok((
        contents,
        Some(WriteOut {
            data: encoded,
            expiry: rfc3339(expiry_date)?,
            cart_items,
        }),
    ))
}
