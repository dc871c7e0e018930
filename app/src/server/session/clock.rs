//! The session code's one clock: every timestamp it writes (a login's start and activity, a
//! row's end, an audit entry, a stored record's expiry) and every "now" it compares them with
//! (the login timeouts, the event streams, the lists, the gauge, the sweep) come from here.
//!
//! In tests (the `test-clock` feature, which only the test suites turn on) it can be moved
//! forward, so a timeout passes without sleeping through it. The offset is per process: the
//! suites run under nextest, one process per test.

#[cfg(feature = "test-clock")]
use std::sync::atomic::{AtomicI64, Ordering};
use time::OffsetDateTime;

#[cfg(feature = "test-clock")]
static OFFSET_SECONDS: AtomicI64 = AtomicI64::new(0);

fn offset() -> i64 {
    #[cfg(feature = "test-clock")]
    {
        OFFSET_SECONDS.load(Ordering::Relaxed)
    }
    #[cfg(not(feature = "test-clock"))]
    {
        0
    }
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    now_utc().unix_timestamp()
}

/// Now, as a date and time.
pub fn now_utc() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::seconds(offset())
}

/// `at` in Unix milliseconds.
pub fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    millis(now_utc())
}

/// Moves this process's clock forward by `by` (whole seconds): for tests of timeouts.
#[cfg(feature = "test-clock")]
pub fn advance(by: std::time::Duration) {
    let seconds = i64::try_from(by.as_secs()).unwrap_or(i64::MAX / 4);
    OFFSET_SECONDS.fetch_add(seconds, Ordering::Relaxed);
}

#[cfg(all(test, feature = "test-clock"))]
mod tests {
    #[test]
    fn the_clock_moves_forward_when_told() {
        let before = super::now();
        super::advance(std::time::Duration::from_secs(3600));
        let after = super::now();
        assert!(
            (3600..3610).contains(&(after - before)),
            "{before} → {after}"
        );
    }
}
