//! Users: creation, lookup, promotion.

use super::db::Db;
use crate::model::Email;
use crate::on_db;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub is_admin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

pub async fn find_by_email(db: &Db, email: &Email) -> Result<Option<UserRow>, sqlx::Error> {
    on_db!(db, pool => sqlx::query_as(
        "SELECT id, email, password_hash, is_admin FROM users WHERE email = $1",
    )
    .bind(email.as_str())
    .fetch_optional(pool)
    .await)
}

pub async fn create(
    db: &Db,
    email: &Email,
    password_hash: &str,
    is_admin: bool,
) -> Result<UserRow, CreateUserError> {
    let result = on_db!(db, pool => sqlx::query_as(
        "INSERT INTO users (email, password_hash, is_admin) VALUES ($1, $2, $3)
         RETURNING id, email, password_hash, is_admin",
    )
    .bind(email.as_str())
    .bind(password_hash)
    .bind(is_admin)
    .fetch_one(pool)
    .await);
    match result {
        Ok(user) => Ok(user),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(CreateUserError::EmailTaken)
        }
        Err(e) => Err(e.into()),
    }
}

/// Makes an existing user an admin. Returns false when there is no such user.
pub async fn promote_to_admin(db: &Db, email: &Email) -> Result<bool, sqlx::Error> {
    let updated = on_db!(db, pool => sqlx::query("UPDATE users SET is_admin = $1 WHERE email = $2")
        .bind(true)
        .bind(email.as_str())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(updated > 0)
}

/// Whether the user is an admin right now (`None`: no such user).
pub async fn is_admin(db: &Db, user_id: i64) -> Result<Option<bool>, sqlx::Error> {
    on_db!(db, pool => sqlx::query_scalar("SELECT is_admin FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await)
}

pub async fn password_hash(db: &Db, user_id: i64) -> Result<Option<String>, sqlx::Error> {
    on_db!(db, pool => sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await)
}

pub async fn email_of(db: &Db, user_id: i64) -> Result<Option<String>, sqlx::Error> {
    on_db!(db, pool => sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await)
}
