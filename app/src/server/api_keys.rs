//! Keys of the session API (`/api/v1`, for automation): created, listed and revoked by admins
//! (`coatcheck api-key …`). A key is `cck_` and 43 characters of 256 random bits; the database
//! keeps its SHA-256 and its first characters only, so a leaked database opens nothing. Keys
//! are checked against the database on every request: a revoked key stops at its next one, on
//! every instance.

use crate::model::ApiKeyView;
use crate::on_db;
use crate::server::db::Db;
use sha2::{Digest, Sha256};

/// What every key starts with (so that secret scanners and people can tell one).
pub const KEY_PREFIX: &str = "cck_";

/// Characters of a key kept and shown in lists: the marker and 8 of the random part.
const SHOWN_CHARS: usize = KEY_PREFIX.len() + 8;

/// Longest key name.
pub const MAX_NAME_CHARS: usize = 64;

/// A key that authenticated a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiCaller {
    pub name: String,
    pub read_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("a key name is 1 to {MAX_NAME_CHARS} characters: letters, digits, '-', '_' or '.'")]
    BadName,
    #[error("an API key named {0:?} already exists")]
    NameTaken(String),
    #[error("no API key is named {0:?}")]
    Unknown(String),
    #[error("the API key {0:?} is already revoked")]
    AlreadyRevoked(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Creates a key named `name`; returns it (the only time it exists outside the caller's hands)
/// with what lists will show.
pub async fn create(
    db: &Db,
    name: &str,
    read_only: bool,
    now: i64,
) -> Result<(String, ApiKeyView), ApiKeyError> {
    let name = name.trim();
    if !valid_name(name) {
        return Err(ApiKeyError::BadName);
    }
    let random: [u8; 32] = rand::random();
    let body: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let key = format!("{KEY_PREFIX}{body}");
    let prefix: String = key.chars().take(SHOWN_CHARS).collect();
    let inserted = on_db!(db, pool => sqlx::query(
        "INSERT INTO api_keys (name, prefix, key_hash, read_only, created_at)
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(name)
    .bind(&prefix)
    .bind(hash(&key))
    .bind(read_only)
    .bind(now)
    .execute(pool)
    .await
    .map(drop));
    match inserted {
        Ok(()) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Err(ApiKeyError::NameTaken(name.to_string()))
        }
        Err(e) => return Err(e.into()),
    }
    let info = ApiKeyView {
        name: name.to_string(),
        prefix,
        read_only,
        created_at: now,
        last_used_at: None,
        revoked_at: None,
    };
    Ok((key, info))
}

/// Every key, newest first (revoked ones too, marked).
pub async fn list(db: &Db) -> Result<Vec<ApiKeyView>, sqlx::Error> {
    type Row = (String, String, bool, i64, Option<i64>, Option<i64>);
    let rows: Vec<Row> = on_db!(db, pool => sqlx::query_as(
        "SELECT name, prefix, read_only, created_at, last_used_at, revoked_at
         FROM api_keys ORDER BY id DESC",
    )
    .fetch_all(pool)
    .await)?;
    Ok(rows
        .into_iter()
        .map(
            |(name, prefix, read_only, created_at, last_used_at, revoked_at)| ApiKeyView {
                name,
                prefix,
                read_only,
                created_at,
                last_used_at,
                revoked_at,
            },
        )
        .collect())
}

/// Revokes the key named `name`: it stops working at its next request.
pub async fn revoke(db: &Db, name: &str, now: i64) -> Result<(), ApiKeyError> {
    let name = name.trim();
    let revoked = on_db!(db, pool => sqlx::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(name)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    if revoked == 1 {
        return Ok(());
    }
    let exists: Option<i64> = on_db!(db, pool => sqlx::query_scalar(
        "SELECT id FROM api_keys WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await)?;
    Err(match exists {
        Some(_) => ApiKeyError::AlreadyRevoked(name.to_string()),
        None => ApiKeyError::Unknown(name.to_string()),
    })
}

/// The live key `presented` (the whole key as sent), marking its use; `None` for anything
/// else (unknown, revoked, malformed).
pub async fn authenticate(
    db: &Db,
    presented: &str,
    now: i64,
) -> Result<Option<ApiCaller>, sqlx::Error> {
    if !presented.starts_with(KEY_PREFIX) || presented.len() > 128 {
        return Ok(None);
    }
    let row: Option<(String, bool)> = on_db!(db, pool => sqlx::query_as(
        "UPDATE api_keys SET last_used_at = $1
         WHERE key_hash = $2 AND revoked_at IS NULL
         RETURNING name, read_only",
    )
    .bind(now)
    .bind(hash(presented))
    .fetch_optional(pool)
    .await)?;
    Ok(row.map(|(name, read_only)| ApiCaller { name, read_only }))
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names_are_short_and_plain() {
        assert!(valid_name("recovery-desk"));
        assert!(valid_name("fraud_rule.v2"));
        assert!(!valid_name(""));
        assert!(!valid_name("two words"));
        assert!(!valid_name(&"x".repeat(65)));
        assert!(!valid_name("naïve"));
    }
}
