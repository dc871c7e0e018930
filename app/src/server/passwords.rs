//! Password hashing with argon2id (OWASP parameters), never on the async workers: on a few
//! dedicated threads of lower CPU priority, behind a concurrency bound, so a login storm can
//! neither starve the pages of CPU nor run the memory up.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
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
}

/// Half the cores at most: a login storm must leave the rest to page rendering (measured by
/// `make bench`: with every core hashing, browse p99 more than doubled).
fn hashing_threads() -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    (cores / 2).max(1)
}

fn permits() -> &'static Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    PERMITS.get_or_init(|| Arc::new(Semaphore::new(hashing_threads())))
}

type Job = Box<dyn FnOnce() + Send>;

/// How much less CPU share a hashing thread gets than the rest (Linux nice value): with the
/// cores busy, pages come first and logins take longer; with idle cores, hashing runs at full
/// speed. Measured by `make bench` (browse p99 during a login storm).
const HASHING_NICE: i32 = 10;

/// The hashing threads, one per permit, started on first use.
fn hashing_queue() -> Option<&'static std::sync::mpsc::Sender<Job>> {
    static QUEUE: OnceLock<Option<std::sync::mpsc::Sender<Job>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (sender, receiver) = std::sync::mpsc::channel::<Job>();
            let receiver = Arc::new(std::sync::Mutex::new(receiver));
            for i in 0..hashing_threads() {
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
                                Err(_) => return,
                            }
                        }
                    });
                if let Err(error) = spawned {
                    tracing::error!(%error, "cannot start a password hashing thread");
                    return None;
                }
            }
            Some(sender)
        })
        .as_ref()
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

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordHashError> {
    let _permit = permits()
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| PasswordHashError::Closed)?;
    let Some(queue) = hashing_queue() else {
        return Ok(tokio::task::spawn_blocking(work).await?);
    };
    let (done, result) = tokio::sync::oneshot::channel();
    queue
        .send(Box::new(move || {
            let _ = done.send(work());
        }))
        .map_err(|_| PasswordHashError::Closed)?;
    result.await.map_err(|_| PasswordHashError::Closed)
}

fn hash_sync(password: &[u8]) -> Result<String, PasswordHashError> {
    let salt = SaltString::generate(&mut OsRng);
    let hasher = hasher().map_err(|e| PasswordHashError::Hash(e.to_string()))?;
    hasher
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordHashError::Hash(e.to_string()))
}

/// Hashes a new password (PHC string, argon2id).
pub async fn hash_password(password: String) -> Result<String, PasswordHashError> {
    run_blocking(move || hash_sync(password.as_bytes())).await?
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

/// Verifies `password` against `stored` (or against a dummy hash when there is no user, which
/// always fails but costs the same time).
pub async fn verify_password(
    password: String,
    stored: Option<String>,
) -> Result<bool, PasswordHashError> {
    run_blocking(move || {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(
            verify_password("correct horse battery".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong horse battery".into(), Some(hash))
            .await
            .unwrap());
        assert!(!verify_password("anything at all".into(), None)
            .await
            .unwrap());
    }
}
