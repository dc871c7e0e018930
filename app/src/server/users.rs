//! Users: creation, lookup, promotion.

use crate::model::Email;
use sqlx::SqlitePool;

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

pub async fn find_by_email(db: &SqlitePool, email: &Email) -> Result<Option<UserRow>, sqlx::Error> {
    sqlx::query_as("SELECT id, email, password_hash, is_admin FROM users WHERE email = ?")
        .bind(email.as_str())
        .fetch_optional(db)
        .await
}

pub async fn create(
    db: &SqlitePool,
    email: &Email,
    password_hash: &str,
    is_admin: bool,
) -> Result<UserRow, CreateUserError> {
    let result = sqlx::query_as(
        "INSERT INTO users (email, password_hash, is_admin) VALUES (?, ?, ?)
         RETURNING id, email, password_hash, is_admin",
    )
    .bind(email.as_str())
    .bind(password_hash)
    .bind(is_admin)
    .fetch_one(db)
    .await;
    match result {
        Ok(user) => Ok(user),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(CreateUserError::EmailTaken)
        }
        Err(e) => Err(e.into()),
    }
}

/// Makes an existing user an admin. Returns false when there is no such user.
pub async fn promote_to_admin(db: &SqlitePool, email: &Email) -> Result<bool, sqlx::Error> {
    let result = sqlx::query("UPDATE users SET is_admin = 1 WHERE email = ?")
        .bind(email.as_str())
        .execute(db)
        .await?;
    Ok(result.rows_affected() > 0)
}
