//! The live-session gauges' counts, read from the store and the registry when metrics are
//! scraped (on Redis, from its index of logins).

use crate::on_db;
use crate::server::metrics::LiveSessions;

use super::change::SessionWrites;
use super::contents::SessionError;
use super::policy::SessionPolicy;

/// Live logins (registry rows not ended, and within their idle and absolute timeouts: a login
/// that timed out is only ended by its next request) and stored anonymous sessions with a
/// cart, across every instance sharing the database.
pub async fn live_sessions(
    sessions: &SessionWrites,
    policy: &SessionPolicy,
) -> Result<LiveSessions, SessionError> {
    if let Some(redis) = sessions.redis() {
        let (_, logged_in) = redis.list_live(None, 1, 1, None).await?;
        return Ok(LiveSessions {
            logged_in,
            anonymous_with_cart: None,
        });
    }
    let db = sessions.db();
    let since = policy.live_since(super::clock::now());
    let logged_in: i64 = on_db!(db, pool => sqlx::query_scalar(
        "SELECT COUNT(*) FROM session_registry WHERE ended_at IS NULL AND (
            (remembered = $1 AND last_seen_at >= $2 AND created_at >= $3)
         OR (remembered = $4 AND last_seen_at >= $5 AND created_at >= $6))"
    )
    .bind(false)
    .bind(since.browser_seen)
    .bind(since.browser_created)
    .bind(true)
    .bind(since.remembered_seen)
    .bind(since.remembered_created)
    .fetch_one(pool)
    .await)?;
    let anonymous_with_cart = super::store::count_anonymous_with_cart(db).await?;
    Ok(LiveSessions {
        logged_in,
        anonymous_with_cart: Some(anonymous_with_cart),
    })
}
