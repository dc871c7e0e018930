//! Login throttling: exponential back-off on failed attempts only, per account-and-client and
//! per client IP. A client that has not been failing is never slowed, so an attacker cannot
//! lock a real user out; the back-off is capped and failures are forgotten after an hour.
//! An attempt is counted *before* its password is checked (and given back when it was right),
//! so a burst of concurrent guesses is limited exactly like the same guesses one by one.
//! Registrations are throttled per IP the same way (every attempt counts).

use super::db::Db;
use crate::on_conn;

/// Failures allowed before back-off starts, per (account, IP) and per IP.
const ACCOUNT_FREE_FAILURES: i64 = 5;
const IP_FREE_FAILURES: i64 = 20;
/// Failed API key attempts one client network may make before it must wait.
const API_KEY_FREE_FAILURES: i64 = 10;
/// The longest wait, and how long failures are remembered.
const MAX_WAIT_SECS: i64 = 15 * 60;
const FORGET_AFTER_SECS: i64 = 3600;

pub fn account_key(email: &str, ip: &str) -> String {
    format!("acct:{}|ip:{ip}", email.trim().to_lowercase())
}

pub fn ip_key(ip: &str) -> String {
    format!("ip:{ip}")
}

/// The first wait once the free failures are used up; it doubles with each further failure.
const FIRST_WAIT_SECS: i64 = 30;

/// Seconds to wait after `failures` failures, `free` of them without penalty.
pub fn backoff(failures: i64, free: i64) -> i64 {
    if failures < free {
        return 0;
    }
    let exponent = (failures - free).min(10) as u32;
    (FIRST_WAIT_SECS * 2_i64.pow(exponent)).min(MAX_WAIT_SECS)
}

pub fn register_key(ip: &str) -> String {
    format!("register:{ip}")
}

/// Seconds still to wait for one counter (0 when it allows another attempt).
fn wait_for(row: Option<(i64, i64)>, free: i64, now: i64) -> i64 {
    match row {
        Some((failures, last)) if now - last < FORGET_AFTER_SECS => {
            (backoff(failures, free) - (now - last)).max(0)
        }
        _ => 0,
    }
}

/// Takes one attempt from every counter in `keys` (key, free attempts), atomically: in one
/// write transaction that reads the counters, and either counts the attempt on all of them
/// or, when any of them says wait, on none. N concurrent attempts are therefore limited
/// exactly like N sequential ones: the (free + 1)th sees the first `free` already counted.
/// Returns the seconds to wait (0: go ahead, the attempt is counted).
async fn reserve(db: &Db, keys: &[(String, i64)], now: i64) -> Result<i64, sqlx::Error> {
    // A write transaction (read-then-write; see `registry::end_where`), in which each counter
    // is locked before it is read: on PostgreSQL an advisory lock on the key (a counter that
    // does not exist yet has no row to lock), always in the order of `keys`.
    let mut tx = db.begin_write().await?;
    let mut wait = 0;
    for (key, free) in keys {
        let mut conn = tx.conn();
        conn.lock_key(&format!("login_failures:{key}")).await?;
        let row: Option<(i64, i64)> = on_conn!(&mut conn, c => sqlx::query_as(
            "SELECT failures, last_failed_at FROM login_failures WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(c)
        .await)?;
        wait = wait.max(wait_for(row, *free, now));
    }
    if wait > 0 {
        tx.rollback().await?;
        return Ok(wait);
    }
    for (key, _) in keys {
        on_conn!(&mut tx.conn(), c => sqlx::query(
            "INSERT INTO login_failures (key, failures, last_failed_at) VALUES ($1, 1, $2)
             ON CONFLICT (key) DO UPDATE SET
               failures = CASE WHEN $2 - login_failures.last_failed_at > $3 THEN 1
                               ELSE login_failures.failures + 1 END,
               last_failed_at = $2",
        )
        .bind(key)
        .bind(now)
        .bind(FORGET_AFTER_SECS)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    tx.commit().await?;
    Ok(0)
}

/// Before a password is checked: counts this login attempt as a failure of this client on
/// this account and from this IP, unless the client must wait first (then the seconds to
/// wait, and nothing is counted or checked). A correct password gives the count back with
/// [`release_login`]; a wrong one leaves it.
pub async fn reserve_login(db: &Db, email: &str, ip: &str, now: i64) -> Result<i64, sqlx::Error> {
    let keys = [
        (account_key(email, ip), ACCOUNT_FREE_FAILURES),
        (ip_key(ip), IP_FREE_FAILURES),
    ];
    reserve(db, &keys, now).await
}

/// A successful login: forgets this client's failures on the account and gives back the
/// attempt reserved on the IP.
pub async fn release_login(db: &Db, email: &str, ip: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    on_conn!(&mut tx.conn(), c => {
        sqlx::query("DELETE FROM login_failures WHERE key = $1")
            .bind(account_key(email, ip))
            .execute(&mut *c)
            .await?;
        sqlx::query(
            "UPDATE login_failures SET failures = failures - 1 WHERE key = $1 AND failures > 0",
        )
        .bind(ip_key(ip))
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())
    })?;
    tx.commit().await?;
    Ok(())
}

/// Before a registration is tried: counts it for this IP, unless the IP must wait first.
/// Every attempt counts, whether the email was free or taken (a taken email is what would
/// enumerate accounts); `free` attempts an hour, then back-off.
pub async fn reserve_registration(
    db: &Db,
    ip: &str,
    free: i64,
    now: i64,
) -> Result<i64, sqlx::Error> {
    reserve(db, &[(register_key(ip), free)], now).await
}

fn api_key_key(network: &str) -> String {
    format!("api-key:{network}")
}

/// An API key attempt from `network` (an IPv4 address, an IPv6 /64): counted before the key is
/// checked, like a login (so concurrent guesses count like sequential ones); the wait in
/// seconds when the network has been failing, else 0.
pub async fn reserve_api_key(db: &Db, network: &str, now: i64) -> Result<i64, sqlx::Error> {
    reserve(db, &[(api_key_key(network), API_KEY_FREE_FAILURES)], now).await
}

/// A key that was right: the attempt reserved for it is given back.
pub async fn release_api_key(db: &Db, network: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.begin_write().await?;
    on_conn!(&mut tx.conn(), c => sqlx::query(
        "UPDATE login_failures SET failures = failures - 1 WHERE key = $1 AND failures > 0",
    )
    .bind(api_key_key(network))
    .execute(&mut *c)
    .await
    .map(drop))?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::{backoff, wait_for};

    #[test]
    fn counters_forget_after_an_hour() {
        assert_eq!(wait_for(None, 5, 1000), 0);
        assert_eq!(wait_for(Some((4, 1000)), 5, 1000), 0);
        assert_eq!(wait_for(Some((5, 1000)), 5, 1010), 20);
        assert_eq!(wait_for(Some((50, 1000)), 5, 1000 + 3600), 0);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0, 5), 0);
        assert_eq!(backoff(4, 5), 0);
        assert_eq!(backoff(5, 5), 30);
        assert_eq!(backoff(7, 5), 120);
        assert_eq!(backoff(100, 5), 900);
    }
}
