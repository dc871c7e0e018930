//! The budget of new sessions per client address: a token bucket per client network (IPv4
//! address, IPv6 /64: `ClientNet`). Every visitor that
//! adds to a cart without a session gets one stored for days, so without a bound one client
//! could fill the disk (wrk from one address: 45,662 sessions in 10 s). A client past its
//! budget gets 429 with `Retry-After`, before anything runs, and nothing is stored.
//!
//! Two buckets of the same size per client: this instance's, in memory, a pre-check that keeps
//! a flood from reaching the database; and the one every instance shares, a row in the
//! database (`new_session_budgets`), taken in one write transaction with the client's key
//! locked (the refill, the check and the take are atomic, across instances). So two instances
//! give a client the budget of one, not twice it.
//!
//! Hand-written rather than `governor`'s keyed limiter: a request that turns out not to
//! start a session (a rejected input) gives its token back, which `governor` cannot do.
//! Taken and given back by the session layer (`layer`).

use crate::on_conn;
use crate::server::client::ClientNet;
use crate::server::db::Db;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::clock::now_ms;
use super::contents::SessionError;
use super::redis::RedisSessions;

/// This instance's and the shared new-session budgets.
#[derive(Clone)]
pub struct NewSessionBudget {
    local: LocalBudget,
    db: Db,
    /// When the sessions are on Redis, the shared buckets are there (one script each).
    redis: Option<RedisSessions>,
}

impl NewSessionBudget {
    /// `burst` new sessions at once, one more every `interval`, per client network, counted in
    /// `db` for every instance that uses it.
    pub fn new(
        db: Db,
        redis: Option<RedisSessions>,
        burst: u32,
        interval: Duration,
    ) -> NewSessionBudget {
        NewSessionBudget {
            local: LocalBudget::new(burst, interval),
            db,
            redis,
        }
    }

    /// Takes a token, or says how long until there is one.
    pub(super) async fn take(
        &self,
        client: ClientNet,
    ) -> Result<Result<(), Duration>, SessionError> {
        if let Err(wait) = self.local.take(client) {
            return Ok(Err(wait));
        }
        let local = &self.local;
        let taken = match &self.redis {
            Some(redis) => redis
                .take_new_session(&client.to_string())
                .await
                .map_err(SessionError::from),
            None => self
                .shared(client, |tokens| {
                    if tokens >= 1.0 {
                        Ok(tokens - 1.0)
                    } else {
                        Err(local.interval.mul_f64(1.0 - tokens))
                    }
                })
                .await
                .map_err(SessionError::from),
        };
        if !matches!(taken, Ok(Ok(()))) {
            self.local.give_back(client);
        }
        taken
    }

    /// Takes a token whatever the balance (a session was started by a request that was not
    /// expected to start one).
    pub(super) async fn charge(&self, client: ClientNet) -> Result<(), SessionError> {
        self.local.charge(client);
        if let Some(redis) = &self.redis {
            return Ok(redis.charge_new_session(&client.to_string()).await?);
        }
        // Never refused (the change always succeeds).
        let _ = self
            .shared(client, |tokens| Ok::<_, Duration>((tokens - 1.0).max(0.0)))
            .await?;
        Ok(())
    }

    /// Gives back a token taken by a request that started no session after all.
    pub(super) async fn give_back(&self, client: ClientNet) -> Result<(), SessionError> {
        self.local.give_back(client);
        if let Some(redis) = &self.redis {
            return Ok(redis.give_back_new_session(&client.to_string()).await?);
        }
        let burst = self.local.burst;
        let _ = self
            .shared(client, |tokens| {
                Ok::<_, Duration>((tokens + 1.0).min(burst))
            })
            .await?;
        Ok(())
    }

    /// Runs `change` on `client`'s shared bucket (refilled up to now; a new client's is full)
    /// with the client's key locked, and stores what it returns; `Err` leaves it unchanged.
    async fn shared(
        &self,
        client: ClientNet,
        change: impl FnOnce(f64) -> Result<f64, Duration>,
    ) -> Result<Result<(), Duration>, sqlx::Error> {
        let key = client.to_string();
        let now = now_ms();
        let mut tx = self.db.begin_write().await?;
        let mut conn = tx.conn();
        conn.lock_key(&format!("new_sessions:{key}")).await?;
        let row: Option<(f64, i64)> = on_conn!(&mut conn, c => sqlx::query_as(
            "SELECT tokens, at_ms FROM new_session_budgets WHERE client = $1",
        )
        .bind(&key)
        .fetch_optional(c)
        .await)?;
        let tokens = match row {
            Some((tokens, at)) => self.local.refill(tokens, now.saturating_sub(at)),
            None => self.local.burst,
        };
        let tokens = match change(tokens) {
            Ok(tokens) => tokens,
            Err(wait) => {
                tx.rollback().await?;
                return Ok(Err(wait));
            }
        };
        on_conn!(&mut tx.conn(), c => sqlx::query(
            "INSERT INTO new_session_budgets (client, tokens, at_ms) VALUES ($1, $2, $3)
             ON CONFLICT (client) DO UPDATE SET tokens = $2, at_ms = $3",
        )
        .bind(&key)
        .bind(tokens)
        .bind(now)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Forgets the shared buckets that have refilled (clients quiet for a whole burst's time):
    /// a new bucket starts full anyway. Run by the expired-session sweep.
    pub async fn forget_refilled(
        db: &Db,
        burst: u32,
        interval: Duration,
    ) -> Result<u64, sqlx::Error> {
        let full_after = interval.mul_f64(f64::from(burst.max(1)));
        let cutoff =
            now_ms().saturating_sub(i64::try_from(full_after.as_millis()).unwrap_or(i64::MAX));
        crate::on_db!(db, pool => sqlx::query("DELETE FROM new_session_budgets WHERE at_ms < $1")
            .bind(cutoff)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))
    }
}

/// Buckets kept at most; past it, full ones (clients that have been quiet) are dropped.
const MAX_CLIENTS: usize = 100_000;

/// This instance's new-session budgets (the pre-check).
#[derive(Clone)]
struct LocalBudget {
    buckets: Arc<Mutex<HashMap<ClientNet, Bucket>>>,
    burst: f64,
    interval: Duration,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl LocalBudget {
    /// `burst` new sessions at once, one more every `interval`.
    fn new(burst: u32, interval: Duration) -> LocalBudget {
        LocalBudget {
            buckets: Default::default(),
            burst: f64::from(burst.max(1)),
            interval: interval.max(Duration::from_millis(1)),
        }
    }

    /// `tokens` after `elapsed_ms` of refilling.
    fn refill(&self, tokens: f64, elapsed_ms: i64) -> f64 {
        let earned = (elapsed_ms.max(0) as f64 / 1000.0) / self.interval.as_secs_f64();
        (tokens + earned).min(self.burst)
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> Bucket {
        let earned = now.duration_since(bucket.at).as_secs_f64() / self.interval.as_secs_f64();
        Bucket {
            tokens: (bucket.tokens + earned).min(self.burst),
            at: now,
        }
    }

    /// Runs `change` on `client`'s bucket, refilled up to now (a new client's is full).
    fn with_bucket<T>(&self, client: ClientNet, change: impl FnOnce(&mut Bucket) -> T) -> T {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_CLIENTS {
            buckets.retain(|_, bucket| self.refilled(*bucket, now).tokens < self.burst);
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        *bucket = self.refilled(*bucket, now);
        change(bucket)
    }

    /// Takes a token, or says how long until there is one.
    fn take(&self, client: ClientNet) -> Result<(), Duration> {
        self.with_bucket(client, |bucket| {
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                Ok(())
            } else {
                Err(self.interval.mul_f64(1.0 - bucket.tokens))
            }
        })
    }

    /// Takes a token whatever the balance (a session was started by a request that was not
    /// expected to start one).
    fn charge(&self, client: ClientNet) {
        self.with_bucket(client, |bucket| {
            bucket.tokens = (bucket.tokens - 1.0).max(0.0)
        });
    }

    /// Gives back a token taken by a request that started no session after all.
    fn give_back(&self, client: ClientNet) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = buckets.get_mut(&client) {
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_empties_refills_and_belongs_to_one_client() {
        let budget = LocalBudget::new(3, Duration::from_secs(3600));
        let net = |ip: &str| ClientNet::of(ip.parse().unwrap());
        let one = net("192.0.2.1");
        let two = net("192.0.2.2");
        for _ in 0..3 {
            assert!(budget.take(one).is_ok());
        }
        let wait = budget.take(one).unwrap_err();
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        assert!(
            budget.take(two).is_ok(),
            "another client has its own budget"
        );
        budget.give_back(one);
        assert!(
            budget.take(one).is_ok(),
            "a token given back can be taken again"
        );
        // One IPv6 /64 is one client, whichever of its addresses it uses.
        let v6 = LocalBudget::new(2, Duration::from_secs(3600));
        assert!(v6.take(net("2001:db8:0:1::1")).is_ok());
        assert!(v6.take(net("2001:db8:0:1::2")).is_ok());
        assert!(v6.take(net("2001:db8:0:1:ffff::3")).is_err());
        assert!(v6.take(net("2001:db8:0:2::1")).is_ok(), "another /64");
        let fast = LocalBudget::new(1, Duration::from_millis(20));
        assert!(fast.take(one).is_ok());
        assert!(fast.take(one).is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(fast.take(one).is_ok(), "refilled after the interval");
    }
}
