//! Password hashing with argon2id (OWASP parameters), always on a blocking thread and behind
//! a concurrency bound, so a login storm cannot starve the async workers or the memory.

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

fn permits() -> &'static Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    PERMITS.get_or_init(|| {
        // Half the cores at most: a login storm must leave the other half to page rendering
        // (measured by `make bench`: with every core hashing, browse p99 more than doubled).
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Arc::new(Semaphore::new((cores / 2).max(1)))
    })
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordHashError> {
    let _permit = permits()
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| PasswordHashError::Closed)?;
    Ok(tokio::task::spawn_blocking(work).await?)
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
