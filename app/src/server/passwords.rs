//! Password hashing with argon2id (OWASP parameters), never on the async workers: on a few
//! dedicated threads of lower CPU priority, behind a concurrency bound, so a login storm can
//! neither starve the pages of CPU nor run the memory up.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString,
};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// m = 19 MiB, t = 2, p = 1: OWASP's recommended minimum for argon2id.
fn hasher() -> Result<Argon2<'static>, argon2::Error> {
    let params = Params::new(19 * 1024, 2, 1, None)?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordHashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("password hashing is shutting down")]
    Closed,
    /// This client already has its share of the hashing queue.
    #[error("too many password checks at once from this client")]
    Busy,
}

/// Half the cores at most: a login storm must leave the rest to page rendering (measured by
/// `make bench`: with every core hashing, browse p99 more than doubled).
fn hashing_threads() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    (cores / 2).max(1)
}

type Job = Box<dyn FnOnce() + Send>;

/// How much less CPU share a hashing thread gets than the rest (Linux nice value): with the
/// cores busy, pages come first and logins take longer; with idle cores, hashing runs at full
/// speed. Measured by `make bench` (browse p99 during a login storm).
const HASHING_NICE: i32 = 10;

/// How many hashing jobs one client (IP address) may have queued or running at once. A flood
/// from one client then holds at most this many places in the queue, so everybody else's
/// login waits behind a few hashes, not behind the flood (150 concurrent bad logins from one
/// client used to delay a real user's login from 20 ms to 1.7 s). Four covers a double
/// click and a few people behind one address.
pub const MAX_JOBS_PER_CLIENT: usize = 4;

/// One server's password hashing: a few dedicated threads of lower priority, a FIFO queue in
/// front of them, and a bound per client. Owned by the server (in
/// [`AppContext`](super::AppContext)); the threads end when the last clone is dropped.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` when no hashing thread could be started (then hashing uses tokio's blocking pool).
    queue: Option<std::sync::Mutex<std::sync::mpsc::Sender<Job>>>,
    /// One permit per hashing thread, handed out in arrival order.
    permits: Arc<Semaphore>,
    /// Jobs queued or running, per client.
    per_client: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("threads", &self.inner.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl Default for PasswordHasher {
    fn default() -> Self {
        PasswordHasher::new()
    }
}

/// A client's place in the hashing queue, given back when dropped.
pub struct ClientSlot {
    inner: Arc<Inner>,
    client: String,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self
            .inner
            .per_client
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = counts.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

impl PasswordHasher {
    /// Starts the hashing threads (half the cores, at least one).
    pub fn new() -> PasswordHasher {
        let threads = hashing_threads();
        let (sender, receiver) = std::sync::mpsc::channel::<Job>();
        let receiver = Arc::new(std::sync::Mutex::new(receiver));
        let mut started = 0;
        for i in 0..threads {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    lower_this_threads_priority();
                    loop {
                        let job = match receiver.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            // Every sender is gone: the server has stopped.
                            Err(_) => return,
                        }
                    }
                });
            match spawned {
                Ok(_) => started += 1,
                Err(error) => {
                    tracing::error!(%error, "cannot start a password hashing thread");
                    break;
                }
            }
        }
        PasswordHasher {
            inner: Arc::new(Inner {
                queue: (started > 0).then(|| std::sync::Mutex::new(sender)),
                permits: Arc::new(Semaphore::new(started.max(1))),
                per_client: Default::default(),
            }),
        }
    }

    /// A place in the queue for `client`, or [`PasswordHashError::Busy`] when that client
    /// already has [`MAX_JOBS_PER_CLIENT`] jobs queued or running. Hold it while hashing.
    pub fn client_slot(&self, client: &str) -> Result<ClientSlot, PasswordHashError> {
        let mut counts = self
            .inner
            .per_client
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = counts.entry(client.to_string()).or_insert(0);
        if *count >= MAX_JOBS_PER_CLIENT {
            return Err(PasswordHashError::Busy);
        }
        *count += 1;
        Ok(ClientSlot {
            inner: self.inner.clone(),
            client: client.to_string(),
        })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordHashError> {
        let _permit = self
            .inner
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PasswordHashError::Closed)?;
        let Some(queue) = &self.inner.queue else {
            return Ok(tokio::task::spawn_blocking(work).await?);
        };
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        queue
            .lock()
            .map_err(|_| PasswordHashError::Closed)?
            .send(job)
            .map_err(|_| PasswordHashError::Closed)?;
        result.await.map_err(|_| PasswordHashError::Closed)
    }

    /// Hashes a new password (PHC string, argon2id).
    pub async fn hash(&self, password: String) -> Result<String, PasswordHashError> {
        self.run(move || hash_sync(password.as_bytes())).await?
    }

    /// Verifies `password` against `stored` (or against a dummy hash when there is no user,
    /// which always fails but costs the same time).
    pub async fn verify(
        &self,
        password: String,
        stored: Option<String>,
    ) -> Result<bool, PasswordHashError> {
        self.run(move || {
            let exists = stored.is_some();
            let stored = stored.unwrap_or_else(|| dummy_hash().to_string());
            let Ok(parsed) = PasswordHash::new(&stored) else {
                return false;
            };
            let Ok(hasher) = hasher() else {
                return false;
            };
            hasher.verify_password(password.as_bytes(), &parsed).is_ok() && exists
        })
        .await
    }
}

#[cfg(target_os = "linux")]
fn lower_this_threads_priority() {
    // SAFETY: no pointers; on Linux PRIO_PROCESS with id 0 sets the calling thread's nice value.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, HASHING_NICE) };
    if result != 0 {
        tracing::warn!("cannot lower the priority of the password hashing thread");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority() {}

fn hash_sync(password: &[u8]) -> Result<String, PasswordHashError> {
    let salt = SaltString::generate(&mut OsRng);
    let hasher = hasher().map_err(|e| PasswordHashError::Hash(e.to_string()))?;
    hasher
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordHashError::Hash(e.to_string()))
}

/// A hash of a random password, so that logins for unknown emails take as long as real ones.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let random: [u8; 16] = rand::random();
        // Falls back to a fixed valid hash string only if hashing itself is broken.
        hash_sync(&random).unwrap_or_else(|_| {
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ZWR0ZXN0aGFzaGVkdmFsdWVmb3JkdW1teQ".to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let hasher = PasswordHasher::new();
        let hash = hasher.hash("correct horse battery".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher
            .verify("correct horse battery".into(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!hasher
            .verify("wrong horse battery".into(), Some(hash))
            .await
            .unwrap());
        assert!(!hasher.verify("anything at all".into(), None).await.unwrap());
    }

    #[test]
    fn each_client_has_a_bounded_share_of_the_queue() {
        let hasher = PasswordHasher::new();
        let slots: Vec<ClientSlot> = (0..MAX_JOBS_PER_CLIENT)
            .map(|_| hasher.client_slot("192.0.2.1").unwrap())
            .collect();
        assert!(matches!(
            hasher.client_slot("192.0.2.1"),
            Err(PasswordHashError::Busy)
        ));
        // Another client is not affected, and a slot given back is free again.
        assert!(hasher.client_slot("192.0.2.2").is_ok());
        drop(slots);
        assert!(hasher.client_slot("192.0.2.1").is_ok());
        assert!(hasher.inner.per_client.lock().unwrap().is_empty());
    }
}
