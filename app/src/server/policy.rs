//! Session timeouts and limits, configurable, with OWASP-style defaults (README: "Sessions").

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// The whole session (cart included) is gone after this long without activity.
    pub idle_timeout: Duration,
    /// An anonymous session that never comes back after the request that created it is gone
    /// after this long (its second request gives it the full `idle_timeout`).
    pub anonymous_first_idle_timeout: Duration,
    /// The most anonymous sessions kept; past it, the least recently used ones are evicted
    /// (never a logged-in one).
    pub max_anonymous_sessions: u64,
    /// New sessions one client address may start at once (the token bucket's size)...
    pub new_sessions_burst: u32,
    /// ...and how often it gets one more.
    pub new_session_interval: Duration,
    /// Registration attempts one client address may make (within an hour) before it must
    /// wait, with a wait that doubles with each further attempt.
    pub registrations_per_address: i64,
    /// A login is dropped after this long without activity (the cart stays).
    pub login_idle_timeout: Duration,
    /// A login is dropped this long after it began, whatever the activity.
    pub login_absolute_timeout: Duration,
    /// The same for a login with "Keep me signed in", whose idle timeout is the session's
    /// (`idle_timeout`) and whose cookie outlives the browser.
    pub remembered_login_timeout: Duration,
    /// "Last seen" is written at most this often per session.
    pub touch_interval: Duration,
}

impl SessionPolicy {
    /// The idle and absolute timeouts of a login, by whether it is remembered.
    pub fn login_timeouts(&self, remembered: bool) -> (Duration, Duration) {
        if remembered {
            (self.idle_timeout, self.remembered_login_timeout)
        } else {
            (self.login_idle_timeout, self.login_absolute_timeout)
        }
    }
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle_timeout: Duration::from_secs(7 * 24 * 3600),
            anonymous_first_idle_timeout: Duration::from_secs(24 * 3600),
            max_anonymous_sessions: 100_000,
            new_sessions_burst: 20,
            new_session_interval: Duration::from_secs(30),
            registrations_per_address: 10,
            login_idle_timeout: Duration::from_secs(30 * 60),
            login_absolute_timeout: Duration::from_secs(12 * 3600),
            remembered_login_timeout: Duration::from_secs(30 * 24 * 3600),
            touch_interval: Duration::from_secs(60),
        }
    }
}
