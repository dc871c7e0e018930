//! Login throttling: exponential back-off on failed attempts only, per account-and-client and
//! per client IP. A client that has not been failing is never slowed, so an attacker cannot
//! lock a real user out; the back-off is capped and failures are forgotten an hour after the
//! last one. An attempt is counted *before* its password is checked, as in flight
//! ([`Attempt`]): the check sees the failures and the attempts still in flight together, so a
//! burst of concurrent guesses is limited exactly like the same guesses one by one. When the
//! check is done the attempt becomes a failure ([`Attempt::failed`]; also when the request is
//! dropped before it says) or is given back ([`Attempt::succeeded`]) without touching the
//! failures or their time. Registrations are throttled per IP the same way (every attempt
//! counts as a failure).

use super::db::Db;
use crate::on_conn;

/// Failures allowed before back-off starts, per (account, IP) and per IP.
const ACCOUNT_FREE_FAILURES: i64 = 5;
const IP_FREE_FAILURES: i64 = 20;
/// Failed API key attempts one client network may make before it must wait (also the most
/// API calls one network may have in flight at once).
const API_KEY_FREE_FAILURES: i64 = 10;
/// The longest wait, and how long failures (and attempts in flight) are remembered.
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

/// One counter as stored: its failures and the time of the last, its attempts in flight and
/// the time of the last reservation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, sqlx::FromRow)]
struct Counter {
    failures: i64,
    last_failed_at: i64,
    pending: i64,
    reserved_at: i64,
}

/// Seconds still to wait for one counter (0 when it allows another attempt): attempts in
/// flight count as failures made at their reservation.
fn wait_for(counter: Option<Counter>, free: i64, now: i64) -> i64 {
    let Some(c) = counter else { return 0 };
    let failures = if now - c.last_failed_at < FORGET_AFTER_SECS {
        c.failures
    } else {
        0
    };
    let pending = if now - c.reserved_at < FORGET_AFTER_SECS {
        c.pending.max(0)
    } else {
        0
    };
    let last = match (failures > 0, pending > 0) {
        (true, true) => c.last_failed_at.max(c.reserved_at),
        (true, false) => c.last_failed_at,
        (false, true) => c.reserved_at,
        (false, false) => return 0,
    };
    (backoff(failures + pending, free) - (now - last)).max(0)
}

/// How [`reserve`] counts an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Counted {
    /// In flight, until it is known to have failed or not.
    InFlight,
    /// A failure at once (a registration: every attempt counts).
    Failure,
}

/// Counts a failure on `key` at `now` (a failure forgotten by now starts again at 1).
const FAIL: &str = "failures = CASE WHEN $2 - login_failures.last_failed_at > $3 THEN 1
                                    ELSE login_failures.failures + 1 END,
                    last_failed_at = $2";

/// Takes one attempt from every counter in `keys` (key, free attempts), atomically: in one
/// write transaction that reads the counters, and either counts the attempt on all of them
/// or, when any of them says wait, on none. N concurrent attempts are therefore limited
/// exactly like N sequential ones: the (free + 1)th sees the first `free` already counted.
/// Returns the seconds to wait (0: go ahead, the attempt is counted).
async fn reserve(
    db: &Db,
    keys: &[(String, i64)],
    now: i64,
    counted: Counted,
) -> Result<i64, sqlx::Error> {
    // A write transaction (read-then-write; see `registry::end_where`), in which each counter
    // is locked before it is read: on PostgreSQL an advisory lock on the key (a counter that
    // does not exist yet has no row to lock), always in the order of `keys`.
    let mut tx = db.begin_write().await?;
    let mut wait = 0;
    for (key, free) in keys {
        let mut conn = tx.conn();
        conn.lock_key(&format!("login_failures:{key}")).await?;
        let counter: Option<Counter> = on_conn!(&mut conn, c => sqlx::query_as(
            "SELECT failures, last_failed_at, pending, reserved_at FROM login_failures
             WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(c)
        .await)?;
        wait = wait.max(wait_for(counter, *free, now));
    }
    if wait > 0 {
        tx.rollback().await?;
        return Ok(wait);
    }
    let sql = match counted {
        // Attempts in flight longer ago than failures are remembered were never settled (a
        // crash): they start again.
        Counted::InFlight => {
            "INSERT INTO login_failures (key, failures, last_failed_at, pending, reserved_at)
             VALUES ($1, 0, 0, 1, $2)
             ON CONFLICT (key) DO UPDATE SET
               pending = CASE WHEN $2 - login_failures.reserved_at > $3 THEN 1
                              ELSE login_failures.pending + 1 END,
               reserved_at = $2"
                .to_string()
        }
        Counted::Failure => format!(
            "INSERT INTO login_failures (key, failures, last_failed_at, pending, reserved_at)
             VALUES ($1, 1, $2, 0, 0)
             ON CONFLICT (key) DO UPDATE SET {FAIL}"
        ),
    };
    for (key, _) in keys {
        on_conn!(&mut tx.conn(), c => sqlx::query(&sql)
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

/// Settles attempts in flight on `keys`: each a failure at `now` (`failed`), or given back.
async fn settle(db: &Db, keys: &[String], failed: bool, now: i64) -> Result<(), sqlx::Error> {
    let fail = if failed {
        format!(", {FAIL}")
    } else {
        String::new()
    };
    let sql = format!(
        "UPDATE login_failures SET
           pending = CASE WHEN login_failures.pending > 0 THEN login_failures.pending - 1 ELSE 0 END
           {fail}
         WHERE key = $1"
    );
    let mut tx = db.begin_write().await?;
    for key in keys {
        on_conn!(&mut tx.conn(), c => sqlx::query(&sql)
            .bind(key)
            .bind(now)
            .bind(FORGET_AFTER_SECS)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
    }
    tx.commit().await
}

/// The outcome of a reservation: wait (seconds; nothing was counted), or go ahead with the
/// attempt in flight.
#[derive(Debug)]
pub enum Reserved {
    Wait(i64),
    Go(Attempt),
}

/// An attempt counted in flight on its counters. Say how it ended: [`Attempt::failed`] or
/// [`Attempt::succeeded`]. Dropped without either (the request was cancelled, or failed on
/// the way), it counts as a failure.
#[derive(Debug)]
pub struct Attempt {
    db: Db,
    keys: Vec<String>,
    /// For a login: the account-and-client counter, forgotten on success.
    forget_on_success: Option<String>,
    settled: bool,
}

impl Attempt {
    /// The password or key was wrong: a failure now.
    pub async fn failed(mut self, now: i64) -> Result<(), sqlx::Error> {
        self.settled = true;
        settle(&self.db, &self.keys, true, now).await
    }

    /// It was right: the attempt is given back (and a login forgets this client's failures on
    /// the account).
    pub async fn succeeded(mut self) -> Result<(), sqlx::Error> {
        self.settled = true;
        if let Some(key) = &self.forget_on_success {
            on_conn!(&mut self.db.acquire().await?.conn(), c => sqlx::query(
                "DELETE FROM login_failures WHERE key = $1",
            )
            .bind(key)
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        }
        let keys: Vec<String> = self
            .keys
            .iter()
            .filter(|k| Some(*k) != self.forget_on_success.as_ref())
            .cloned()
            .collect();
        settle(&self.db, &keys, false, 0).await
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let (db, keys) = (self.db.clone(), std::mem::take(&mut self.keys));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let now = crate::server::session::clock::now();
                if let Err(error) = settle(&db, &keys, true, now).await {
                    tracing::error!(%error, "cannot settle a cancelled attempt");
                }
            });
        }
    }
}

/// Reserves an attempt in flight on `keys`.
async fn reserve_attempt(
    db: &Db,
    keys: &[(String, i64)],
    forget_on_success: Option<String>,
    now: i64,
) -> Result<Reserved, sqlx::Error> {
    let wait = reserve(db, keys, now, Counted::InFlight).await?;
    if wait > 0 {
        return Ok(Reserved::Wait(wait));
    }
    Ok(Reserved::Go(Attempt {
        db: db.clone(),
        keys: keys.iter().map(|(key, _)| key.clone()).collect(),
        forget_on_success,
        settled: false,
    }))
}

/// Before a password is checked: counts this attempt in flight for this client on this
/// account and from this IP, unless the client must wait first (then the seconds to wait, and
/// nothing is counted or checked).
pub async fn reserve_login(
    db: &Db,
    email: &str,
    ip: &str,
    now: i64,
) -> Result<Reserved, sqlx::Error> {
    let account = account_key(email, ip);
    let keys = [
        (account.clone(), ACCOUNT_FREE_FAILURES),
        (ip_key(ip), IP_FREE_FAILURES),
    ];
    reserve_attempt(db, &keys, Some(account), now).await
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
    reserve(db, &[(register_key(ip), free)], now, Counted::Failure).await
}

fn api_key_key(network: &str) -> String {
    format!("api-key:{network}")
}

/// An API key attempt from `network` (an IPv4 address, an IPv6 /64): counted in flight before
/// the key is checked, like a login (so concurrent guesses count like sequential ones).
pub async fn reserve_api_key(db: &Db, network: &str, now: i64) -> Result<Reserved, sqlx::Error> {
    let keys = [(api_key_key(network), API_KEY_FREE_FAILURES)];
    reserve_attempt(db, &keys, None, now).await
}

#[cfg(test)]
mod tests {
    use super::{backoff, wait_for, Counter};

    fn failures(failures: i64, last_failed_at: i64) -> Option<Counter> {
        Some(Counter {
            failures,
            last_failed_at,
            ..Counter::default()
        })
    }

    #[test]
    fn counters_forget_after_an_hour() {
        assert_eq!(wait_for(None, 5, 1000), 0);
        assert_eq!(wait_for(failures(4, 1000), 5, 1000), 0);
        assert_eq!(wait_for(failures(5, 1000), 5, 1010), 20);
        assert_eq!(wait_for(failures(50, 1000), 5, 1000 + 3600), 0);
    }

    #[test]
    fn attempts_in_flight_count_as_failures_made_when_they_were_reserved() {
        let in_flight = |failures, last_failed_at, pending, reserved_at| {
            Some(Counter {
                failures,
                last_failed_at,
                pending,
                reserved_at,
            })
        };
        // Five in flight, none settled: the sixth waits as after five failures just now.
        assert_eq!(wait_for(in_flight(0, 0, 5, 1000), 5, 1000), 30);
        // Old failures and successes since: the successes (settled, pending 0) do not make
        // the failures recent, so they are forgotten an hour after the last one.
        assert_eq!(wait_for(in_flight(9, 1000, 0, 4000), 5, 4700), 0);
        assert_eq!(wait_for(in_flight(9, 1000, 1, 4700), 5, 4700), 0);
        assert_eq!(wait_for(in_flight(4, 4000, 1, 4500), 5, 4510), 20);
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
