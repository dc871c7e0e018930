//! The session store: tower-sessions-sqlx-store's `SqliteStore`, with one change — saving never
//! brings back a session that was deleted while a request was in flight (logout, revocation).

use async_trait::async_trait;
use sqlx::SqlitePool;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion};
use tower_sessions::SessionStore;
use tower_sessions_sqlx_store::SqliteStore;

use super::session::SESSION_TABLE;

#[derive(Clone, Debug)]
pub struct ShopSessionStore {
    inner: SqliteStore,
    db: SqlitePool,
}

impl ShopSessionStore {
    pub fn new(db: SqlitePool) -> ShopSessionStore {
        ShopSessionStore {
            inner: SqliteStore::new(db.clone()),
            db,
        }
    }

    /// Creates the session table if missing.
    pub async fn migrate(&self) -> sqlx::Result<()> {
        self.inner.migrate().await
    }
}

fn backend(error: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(error.to_string())
}

#[async_trait]
impl SessionStore for ShopSessionStore {
    /// Creates the record and, for a logged-in session, points its registry row at the new
    /// ID: this is where login and every ID rotation meet the registry.
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.inner.create(record).await?;
        let user = record
            .data
            .get(super::session::USER_KEY)
            .and_then(|v| serde_json::from_value::<super::session::AuthUser>(v.clone()).ok());
        if let Some(user) = user {
            super::registry::link_session(&self.db, &user.handle, &record.id.to_string())
                .await
                .map_err(backend)?;
            tracing::info!(handle = %user.handle, "session created for login");
        }
        Ok(())
    }

    /// An UPDATE, not the upsert of `SqliteStore`: a session deleted by logout or revocation
    /// while this request was running stays deleted.
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let sql = format!("UPDATE {SESSION_TABLE} SET data = ?, expiry_date = ? WHERE id = ?");
        let data =
            rmp_serde::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let result = sqlx::query(&sql)
            .bind(data)
            .bind(record.expiry_date)
            .bind(record.id.to_string())
            .execute(&self.db)
            .await
            .map_err(backend)?;
        if result.rows_affected() == 0 {
            tracing::info!("not saving a session that no longer exists");
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.inner.load(id).await
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.inner.delete(id).await
    }
}

#[async_trait]
impl ExpiredDeletion for ShopSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.inner.delete_expired().await?;
        let closed = super::registry::close_orphans(&self.db)
            .await
            .map_err(backend)?;
        if closed > 0 {
            tracing::info!(sessions = closed, "expired sessions removed");
        }
        Ok(())
    }
}
