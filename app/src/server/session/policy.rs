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
    /// How long a password entry (a login, a confirmation, a password change) authorizes
    /// sensitive actions; each sensitive action restarts it (sudo mode).
    pub sudo_timeout: Duration,
    /// How long an account's security log keeps its events.
    pub security_log_retention: Duration,
    /// What a login used from another browser family or network leads to.
    pub binding: Binding,
}

/// Sessions bound to their client (`COATCHECK_SESSION_BINDING`): what happens when a login is
/// used from another browser family or network than it began on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Binding {
    /// Nothing.
    Off,
    /// The login stays, its sudo window ends, and the owner's security log says so (the
    /// default: mobile networks and VPNs change address for honest users too).
    #[default]
    Notice,
    /// The login ends there (the cart stays), and the page says why.
    Strict,
}

impl Binding {
    /// `off`, `notice` or `strict`.
    pub fn parse(text: &str) -> Option<Binding> {
        match text.trim().to_ascii_lowercase().as_str() {
            "off" => Some(Binding::Off),
            "notice" => Some(Binding::Notice),
            "strict" => Some(Binding::Strict),
            _ => None,
        }
    }
}

/// What the login rule needs of a login: its times (Unix seconds) and its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginTimes {
    pub created_at: i64,
    /// The last recorded activity (the login itself, if none since).
    pub last_seen_at: i64,
    /// "Keep me signed in" was ticked.
    pub remembered: bool,
}

/// Where a login stands at a given moment, by [`SessionPolicy::login_state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginState {
    /// Live through `deadline` (Unix seconds): past it, it has timed out.
    Live { deadline: i64 },
    /// Idle for longer than its idle timeout.
    IdleExpired,
    /// Older than its absolute timeout (whatever its activity).
    AbsoluteExpired,
}

/// The oldest times a live login of each kind may have at one moment: the same rule as
/// [`SessionPolicy::login_state`], in the form an SQL filter needs
/// (`last_seen_at >= … AND created_at >= …`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveSince {
    pub browser_seen: i64,
    pub browser_created: i64,
    pub remembered_seen: i64,
    pub remembered_created: i64,
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX / 4)
}

impl SessionPolicy {
    /// **The** login rule, used by everyone who needs the answer (the session layer's login
    /// timeouts, the event streams, the session lists, the live-login gauge, the stored
    /// record's expiry): a login
    /// is live while `now` is at most its last activity plus its idle timeout and at most its
    /// start plus its absolute timeout (both by its kind, see [`Self::login_timeouts`]).
    pub fn login_state(&self, login: LoginTimes, now: i64) -> LoginState {
        let (idle_end, absolute_end) = self.login_ends(login);
        if now > absolute_end {
            LoginState::AbsoluteExpired
        } else if now > idle_end {
            LoginState::IdleExpired
        } else {
            LoginState::Live {
                deadline: idle_end.min(absolute_end),
            }
        }
    }

    /// The last second of a login by its idle timeout, and by its absolute timeout.
    fn login_ends(&self, login: LoginTimes) -> (i64, i64) {
        let (idle, absolute) = self.login_timeouts(login.remembered);
        (
            login.last_seen_at.saturating_add(secs(idle)),
            login.created_at.saturating_add(secs(absolute)),
        )
    }

    /// The last second a login can be live (as of its last recorded activity).
    pub fn login_deadline(&self, login: LoginTimes) -> i64 {
        let (idle_end, absolute_end) = self.login_ends(login);
        idle_end.min(absolute_end)
    }

    /// How long a stored record may be kept after its login's deadline (a login without "Keep
    /// me signed in"): one more login idle timeout (at least 5 minutes), so that a shopper who
    /// comes back a little late still finds the cart and "You were signed out" — then it goes.
    /// (tower-sessions would keep a browser-session record 14 days.)
    /// Whether a password entered at `entered_at` (Unix seconds) still authorizes a sensitive
    /// action at `now` (sudo mode): within `sudo_timeout`, never from the future.
    pub fn sudo_allows(&self, entered_at: Option<i64>, now: i64) -> bool {
        let window = i64::try_from(self.sudo_timeout.as_secs()).unwrap_or(i64::MAX);
        entered_at.is_some_and(|at| at <= now && now.saturating_sub(at) <= window)
    }

    pub fn after_login_grace(&self) -> i64 {
        secs(self.login_idle_timeout.max(Duration::from_secs(300)))
    }

    /// [`Self::login_state`]'s cut-offs at `now`, for SQL.
    pub fn live_since(&self, now: i64) -> LiveSince {
        let (idle, absolute) = self.login_timeouts(false);
        let (kept_idle, kept_absolute) = self.login_timeouts(true);
        LiveSince {
            browser_seen: now.saturating_sub(secs(idle)),
            browser_created: now.saturating_sub(secs(absolute)),
            remembered_seen: now.saturating_sub(secs(kept_idle)),
            remembered_created: now.saturating_sub(secs(kept_absolute)),
        }
    }

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
            sudo_timeout: Duration::from_secs(15 * 60),
            security_log_retention: Duration::from_secs(90 * 24 * 3600),
            binding: Binding::Notice,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> SessionPolicy {
        SessionPolicy {
            login_idle_timeout: Duration::from_secs(30 * 60),
            login_absolute_timeout: Duration::from_secs(12 * 3600),
            ..SessionPolicy::default()
        }
    }

    #[test]
    fn a_login_is_live_until_its_first_deadline() {
        let policy = policy();
        let login = LoginTimes {
            created_at: 1_000_000,
            last_seen_at: 1_000_000,
            remembered: false,
        };
        // The clock is a parameter: 30 minutes pass in a test without sleeping.
        assert_eq!(
            policy.login_state(login, 1_000_000 + 1800),
            LoginState::Live {
                deadline: 1_000_000 + 1800
            }
        );
        assert_eq!(
            policy.login_state(login, 1_000_000 + 1801),
            LoginState::IdleExpired
        );
        // Activity moves the idle deadline, never the absolute one.
        let active = LoginTimes {
            last_seen_at: 1_000_000 + 12 * 3600 - 60,
            ..login
        };
        assert_eq!(
            policy.login_state(active, 1_000_000 + 12 * 3600),
            LoginState::Live {
                deadline: 1_000_000 + 12 * 3600
            }
        );
        assert_eq!(
            policy.login_state(active, 1_000_000 + 12 * 3600 + 1),
            LoginState::AbsoluteExpired
        );
        // A remembered login has the long timeouts.
        let kept = LoginTimes {
            remembered: true,
            ..login
        };
        assert!(matches!(
            policy.login_state(kept, 1_000_000 + 3 * 24 * 3600),
            LoginState::Live { .. }
        ));
    }

    #[test]
    fn the_sql_cut_offs_are_the_same_rule() {
        let policy = policy();
        let now = 5_000_000;
        let since = policy.live_since(now);
        for remembered in [false, true] {
            for (created_back, seen_back) in [
                (0, 0),
                (1800, 1800),
                (1801, 10),
                (43_200, 5),
                (43_201, 5),
                (700_000, 604_800),
                (700_000, 604_801),
                (2_592_001, 0),
            ] {
                let login = LoginTimes {
                    created_at: now - created_back,
                    last_seen_at: now - seen_back,
                    remembered,
                };
                let (seen, created) = if remembered {
                    (since.remembered_seen, since.remembered_created)
                } else {
                    (since.browser_seen, since.browser_created)
                };
                let by_sql = login.last_seen_at >= seen && login.created_at >= created;
                let by_rule = matches!(policy.login_state(login, now), LoginState::Live { .. });
                assert_eq!(by_sql, by_rule, "{login:?}");
            }
        }
    }
}
