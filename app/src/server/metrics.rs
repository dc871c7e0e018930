//! The server's Prometheus metrics: one registry per running server (two servers in one test
//! process never share counts), counters moved where things happen, and gauges read from the
//! database when scraped. Labels come from the enums below, so a label value is spelled once.

use super::db::Db;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::Arc;

/// The live sessions of every instance sharing the database, counted when scraped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveSessions {
    /// Logins whose registry row is open and within its timeouts.
    pub logged_in: i64,
    /// Stored anonymous sessions whose cart holds something (`None`: not counted, on Redis,
    /// which keeps no index of anonymous sessions; the gauge is then left out).
    pub anonymous_with_cart: Option<i64>,
}

/// How a login attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginOutcome {
    Succeeded,
    Failed,
    /// Refused before the password was checked (too many failures, or the hashing queue full).
    Throttled,
}

impl LoginOutcome {
    const ALL: [LoginOutcome; 3] = [Self::Succeeded, Self::Failed, Self::Throttled];
    fn label(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Throttled => "throttled",
        }
    }
}

/// Why a session's ID was replaced by a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    Login,
    Registration,
    PasswordChange,
}

impl Rotation {
    const ALL: [Rotation; 3] = [Self::Login, Self::Registration, Self::PasswordChange];
    fn label(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Registration => "registration",
            Self::PasswordChange => "password_change",
        }
    }
}

/// Who ended sessions that were not their own request's (counted per session ended).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revocation {
    /// An admin revoked one session.
    AdminOne,
    /// An admin revoked every session of a user.
    AdminAll,
    /// A user ended one of their other sessions, or all of them ("sign out other devices").
    SelfService,
    /// A password change ended the user's other sessions.
    PasswordChange,
}

impl Revocation {
    const ALL: [Revocation; 4] = [
        Self::AdminOne,
        Self::AdminAll,
        Self::SelfService,
        Self::PasswordChange,
    ];
    fn label(self) -> &'static str {
        match self {
            Self::AdminOne => "admin_one",
            Self::AdminAll => "admin_all",
            Self::SelfService => "self_service",
            Self::PasswordChange => "password_change",
        }
    }
}

/// Which timeout ended a login or a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// A login unused for the login idle timeout (the session and its cart stay).
    LoginIdle,
    /// A login older than its absolute timeout.
    LoginAbsolute,
    /// A stored session past its expiry, deleted by the sweeper.
    SessionIdle,
}

impl Expiry {
    const ALL: [Expiry; 3] = [Self::LoginIdle, Self::LoginAbsolute, Self::SessionIdle];
    fn label(self) -> &'static str {
        match self {
            Self::LoginIdle => "login_idle",
            Self::LoginAbsolute => "login_absolute",
            Self::SessionIdle => "session_idle",
        }
    }
}

/// How a checkout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckoutOutcome {
    Placed,
    /// Refused with a reason for the shopper (empty cart, out of stock, prices changed).
    Rejected,
    /// Failed on our side (database unavailable).
    Failed,
}

impl CheckoutOutcome {
    const ALL: [CheckoutOutcome; 3] = [Self::Placed, Self::Rejected, Self::Failed];
    fn label(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }
}

/// The metrics of one server. Cheap to clone (shared).
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    logins: IntCounterVec,
    rotations: IntCounterVec,
    logouts: IntCounter,
    revocations: IntCounterVec,
    expiries: IntCounterVec,
    write_conflicts: IntCounter,
    write_retries: IntCounter,
    checkouts: IntCounterVec,
    sessions_live: IntGaugeVec,
    pool_connections: IntGaugeVec,
    streams_open: prometheus::IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Request latency buckets, in seconds: from a cached page (under a millisecond) to a login
/// waiting for its password hash (hundreds of milliseconds) and beyond.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("coatcheck".into()), None)
            .unwrap_or_else(|_| Registry::new());
        // Each metric below has a fixed, valid name and label set: registering can only fail
        // on a programming error (a duplicate name), which the unit test below catches.
        fn register<M: prometheus::core::Collector + Clone + 'static>(
            registry: &Registry,
            metric: prometheus::Result<M>,
        ) -> M {
            let metric = metric.unwrap_or_else(|e| panic!("metric definition: {e}"));
            registry
                .register(Box::new(metric.clone()))
                .unwrap_or_else(|e| panic!("metric registration: {e}"));
            metric
        }
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            register(&registry, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let counter = |name: &str, help: &str| register(&registry, IntCounter::new(name, help));
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            register(&registry, IntGaugeVec::new(Opts::new(name, help), labels))
        };
        let inner = Inner {
            http_requests: counter_vec(
                "http_requests_total",
                "HTTP requests answered, by route template, method and status class.",
                &["route", "method", "status"],
            ),
            http_duration: register(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "http_request_duration_seconds",
                        "Time to answer an HTTP request (to its response head), by route template.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["route"],
                ),
            ),
            logins: counter_vec(
                "logins_total",
                "Login attempts, by outcome.",
                &["outcome"],
            ),
            rotations: counter_vec(
                "session_id_rotations_total",
                "Session IDs replaced by a new one, by reason.",
                &["reason"],
            ),
            logouts: counter("logouts_total", "Logins ended by their user logging out."),
            revocations: counter_vec(
                "session_revocations_total",
                "Sessions ended by someone else's request, by kind.",
                &["kind"],
            ),
            expiries: counter_vec(
                "session_expiries_total",
                "Logins and sessions ended by a timeout, by kind.",
                &["kind"],
            ),
            write_conflicts: counter(
                "session_write_conflicts_total",
                "Session writes that found the session changed since it was read.",
            ),
            write_retries: counter(
                "session_write_retries_total",
                "Session changes run again after a conflict.",
            ),
            checkouts: counter_vec(
                "checkouts_total",
                "Checkouts, by outcome.",
                &["outcome"],
            ),
            sessions_live: gauge_vec(
                "sessions_live",
                "Live sessions in the database (all instances): logged in, and anonymous with a cart.",
                &["kind"],
            ),
            pool_connections: gauge_vec(
                "db_pool_connections",
                "This server's database connections, in use and idle.",
                &["state"],
            ),
            streams_open: register(
                &registry,
                prometheus::IntGauge::new(
                    "session_event_streams_open",
                    "Open pages of logged-in sessions waiting to hear that their login ended (this instance).",
                ),
            ),
            registry,
        };
        // Every known label value from the start: a rate over a series that appears late
        // misses its first increase.
        for outcome in LoginOutcome::ALL {
            inner.logins.with_label_values(&[outcome.label()]);
        }
        for reason in Rotation::ALL {
            inner.rotations.with_label_values(&[reason.label()]);
        }
        for kind in Revocation::ALL {
            inner.revocations.with_label_values(&[kind.label()]);
        }
        for kind in Expiry::ALL {
            inner.expiries.with_label_values(&[kind.label()]);
        }
        for outcome in CheckoutOutcome::ALL {
            inner.checkouts.with_label_values(&[outcome.label()]);
        }
        Metrics(Arc::new(inner))
    }

    /// One answered request. `route` is the route's template (`/products/{slug}`), never the
    /// path itself, so the number of series stays bounded.
    pub fn http_request(
        &self,
        route: &str,
        method: &http::Method,
        status: http::StatusCode,
        elapsed: std::time::Duration,
    ) {
        let method = match *method {
            http::Method::GET => "GET",
            http::Method::HEAD => "HEAD",
            http::Method::POST => "POST",
            _ => "other",
        };
        let status = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.0
            .http_requests
            .with_label_values(&[route, method, status])
            .inc();
        self.0
            .http_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    pub fn login(&self, outcome: LoginOutcome) {
        self.0.logins.with_label_values(&[outcome.label()]).inc();
    }

    pub fn rotation(&self, reason: Rotation) {
        self.0.rotations.with_label_values(&[reason.label()]).inc();
    }

    pub fn logout(&self) {
        self.0.logouts.inc();
    }

    /// `sessions` sessions ended by a revocation of `kind`.
    pub fn revoked(&self, kind: Revocation, sessions: usize) {
        self.0
            .revocations
            .with_label_values(&[kind.label()])
            .inc_by(u64::try_from(sessions).unwrap_or(u64::MAX));
    }

    pub fn expired(&self, kind: Expiry, sessions: u64) {
        self.0
            .expiries
            .with_label_values(&[kind.label()])
            .inc_by(sessions);
    }

    pub fn write_conflict(&self) {
        self.0.write_conflicts.inc();
    }

    pub fn write_retry(&self) {
        self.0.write_retries.inc();
    }

    pub fn checkout(&self, outcome: CheckoutOutcome) {
        self.0.checkouts.with_label_values(&[outcome.label()]).inc();
    }

    /// The number of open session-event streams (read from the hub when scraped).
    pub fn set_open_streams(&self, open: usize) {
        self.0
            .streams_open
            .set(i64::try_from(open).unwrap_or(i64::MAX));
    }

    /// Every metric in the Prometheus text format, with the live sessions counted just before
    /// (`session::live_sessions`) and the connection pool's use read from `db`.
    pub fn scrape(&self, db: &Db, live: LiveSessions) -> Result<String, prometheus::Error> {
        let pool = db.pool_use();
        self.0
            .pool_connections
            .with_label_values(&["in_use"])
            .set(i64::from(pool.in_use));
        self.0
            .pool_connections
            .with_label_values(&["idle"])
            .set(i64::from(pool.idle));
        let LiveSessions {
            logged_in,
            anonymous_with_cart,
        } = live;
        self.0
            .sessions_live
            .with_label_values(&["logged_in"])
            .set(logged_in);
        match anonymous_with_cart {
            Some(count) => self
                .0
                .sessions_live
                .with_label_values(&["anonymous_with_cart"])
                .set(count),
            None => {
                let _ = self
                    .0
                    .sessions_live
                    .remove_label_values(&["anonymous_with_cart"]);
            }
        }
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.0.registry.gather(), &mut text)?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_starts_at_zero() {
        let metrics = Metrics::new();
        let families = metrics.0.registry.gather();
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        for expected in [
            "coatcheck_logins_total",
            "coatcheck_session_id_rotations_total",
            "coatcheck_session_revocations_total",
            "coatcheck_session_expiries_total",
            "coatcheck_checkouts_total",
        ] {
            assert!(names.contains(&expected), "{expected} in {names:?}");
        }
        metrics.login(LoginOutcome::Failed);
        metrics.revoked(Revocation::AdminAll, 3);
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&metrics.0.registry.gather(), &mut text)
            .unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("coatcheck_logins_total{outcome=\"failed\"} 1"));
        assert!(text.contains("coatcheck_logins_total{outcome=\"succeeded\"} 0"));
        assert!(text.contains("coatcheck_session_revocations_total{kind=\"admin_all\"} 3"));
    }
}
