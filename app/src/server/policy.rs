//! Session timeouts, configurable, with OWASP-style defaults.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// The whole session (cart included) is gone after this long without activity.
    pub idle_timeout: Duration,
    /// A login is dropped after this long without activity (the cart stays).
    pub login_idle_timeout: Duration,
    /// A login is dropped this long after it began, whatever the activity.
    pub login_absolute_timeout: Duration,
    /// "Last seen" is written at most this often per session.
    pub touch_interval: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            idle_timeout: Duration::from_secs(7 * 24 * 3600),
            login_idle_timeout: Duration::from_secs(30 * 60),
            login_absolute_timeout: Duration::from_secs(12 * 3600),
            touch_interval: Duration::from_secs(60),
        }
    }
}
