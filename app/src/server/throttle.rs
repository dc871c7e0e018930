//! Login throttling: exponential back-off on failed attempts only, per account-and-client and
//! per client IP. A client that has not been failing is never slowed, so an attacker cannot
//! lock a real user out; the back-off is capped and failures are forgotten after an hour.

use sqlx::SqlitePool;

/// Failures allowed before back-off starts, per (account, IP) and per IP.
const ACCOUNT_FREE_FAILURES: i64 = 5;
const IP_FREE_FAILURES: i64 = 20;
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

/// How many seconds this client must still wait before trying this account again.
pub async fn wait_seconds(
    db: &SqlitePool,
    email: &str,
    ip: &str,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let mut wait = 0;
    for (key, free) in [
        (account_key(email, ip), ACCOUNT_FREE_FAILURES),
        (ip_key(ip), IP_FREE_FAILURES),
    ] {
        let row: Option<(i64, i64)> =
            sqlx::query_as("SELECT failures, last_failed_at FROM login_failures WHERE key = ?")
                .bind(&key)
                .fetch_optional(db)
                .await?;
        if let Some((failures, last)) = row {
            if now - last < FORGET_AFTER_SECS {
                wait = wait.max(backoff(failures, free) - (now - last));
            }
        }
    }
    Ok(wait.max(0))
}

pub async fn record_failure(
    db: &SqlitePool,
    email: &str,
    ip: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    for key in [account_key(email, ip), ip_key(ip)] {
        sqlx::query(
            "INSERT INTO login_failures (key, failures, last_failed_at) VALUES (?1, 1, ?2)
             ON CONFLICT (key) DO UPDATE SET
               failures = CASE WHEN ?2 - last_failed_at > ?3 THEN 1 ELSE failures + 1 END,
               last_failed_at = ?2",
        )
        .bind(&key)
        .bind(now)
        .bind(FORGET_AFTER_SECS)
        .execute(db)
        .await?;
    }
    Ok(())
}

/// A successful login clears this client's failures for the account.
pub async fn record_success(db: &SqlitePool, email: &str, ip: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM login_failures WHERE key = ?")
        .bind(account_key(email, ip))
        .execute(db)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0, 5), 0);
        assert_eq!(backoff(4, 5), 0);
        assert_eq!(backoff(5, 5), 30);
        assert_eq!(backoff(7, 5), 120);
        assert_eq!(backoff(100, 5), 900);
    }
}
