//! The budget of new sessions per client address: a token bucket per client network (IPv4
//! address, IPv6 /64: `ClientNet`). Every visitor that
//! adds to a cart without a session gets one stored for days, so without a bound one client
//! could fill the disk (wrk from one address: 45,662 sessions in 10 s). A client past its
//! budget gets 429 with `Retry-After`, before anything runs, and nothing is stored.
//!
//! Hand-written rather than `governor`'s keyed limiter: a request that turns out not to
//! start a session (a rejected input) gives its token back, which `governor` cannot do.
//! Taken and given back by the session layer (`layer`).

use crate::server::request::ClientNet;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Buckets kept at most; past it, full ones (clients that have been quiet) are dropped.
const MAX_CLIENTS: usize = 100_000;

/// One server's new-session budgets.
#[derive(Clone)]
pub struct NewSessionBudget {
    buckets: Arc<Mutex<HashMap<ClientNet, Bucket>>>,
    burst: f64,
    interval: Duration,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl NewSessionBudget {
    /// `burst` new sessions at once, one more every `interval`.
    pub fn new(burst: u32, interval: Duration) -> NewSessionBudget {
        NewSessionBudget {
            buckets: Default::default(),
            burst: f64::from(burst.max(1)),
            interval: interval.max(Duration::from_millis(1)),
        }
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
    pub(super) fn take(&self, client: ClientNet) -> Result<(), Duration> {
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
    pub(super) fn charge(&self, client: ClientNet) {
        self.with_bucket(client, |bucket| {
            bucket.tokens = (bucket.tokens - 1.0).max(0.0)
        });
    }

    /// Gives back a token taken by a request that started no session after all.
    pub(super) fn give_back(&self, client: ClientNet) {
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
        let budget = NewSessionBudget::new(3, Duration::from_secs(3600));
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
        let v6 = NewSessionBudget::new(2, Duration::from_secs(3600));
        assert!(v6.take(net("2001:db8:0:1::1")).is_ok());
        assert!(v6.take(net("2001:db8:0:1::2")).is_ok());
        assert!(v6.take(net("2001:db8:0:1:ffff::3")).is_err());
        assert!(v6.take(net("2001:db8:0:2::1")).is_ok(), "another /64");
        let fast = NewSessionBudget::new(1, Duration::from_millis(20));
        assert!(fast.take(one).is_ok());
        assert!(fast.take(one).is_err());
        std::thread::sleep(Duration::from_millis(30));
        assert!(fast.take(one).is_ok(), "refilled after the interval");
    }
}
