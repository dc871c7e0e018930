//! Configuration from the environment, with the defaults of the contract.

use std::net::SocketAddr;

pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";
pub const DEFAULT_SITE_ROOT: &str = "target/site";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/coatcheck.db";

/// Everything the server needs to know to start.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub site_root: String,
    pub database_url: String,
    /// Where the sessions, their registry and the per-client budgets live, when not in
    /// `database_url` (`COATCHECK_SESSION_STORE_URL`: `redis://…` or `rediss://…`).
    pub session_store_url: Option<String>,
    /// Whether the session cookie carries `Secure` (and is then named `__Host-id`).
    pub cookie_secure: bool,
    /// The site's public origin (`https://shop.example`), when behind a proxy.
    pub public_origin: Option<String>,
    /// Session and login timeouts.
    pub policy: app::server::session::SessionPolicy,
    /// How long a client may take to send a request's headers; also how long an idle
    /// keep-alive connection is kept (`COATCHECK_HEADER_READ_TIMEOUT`, default 15 s).
    pub header_read_timeout: std::time::Duration,
    /// The whole request body must arrive within this (`COATCHECK_BODY_TIMEOUT`, default 20 s).
    pub body_timeout: std::time::Duration,
    /// Each write of an answer must make progress within this (`COATCHECK_SEND_TIMEOUT`,
    /// default 30 s): a client that does not read is disconnected.
    pub send_timeout: std::time::Duration,
    /// Open connections per client network (`COATCHECK_MAX_CONNECTIONS_PER_CLIENT`, default 256).
    pub max_connections_per_client: usize,
    /// Open connections in all (`COATCHECK_MAX_CONNECTIONS`; default and ceiling: what the
    /// process's open-file limit allows, see `serve::max_connections_for_this_process`).
    pub max_connections: Option<usize>,
    /// The bounds of the session event streams.
    pub streams: app::server::session::StreamLimits,
    /// Load balancers whose `X-Forwarded-For` gives the client's address
    /// (`COATCHECK_TRUSTED_PROXIES`, default none).
    pub trusted_proxies: super::proxies::TrustedProxies,
    /// `Strict-Transport-Security` max-age, sent when cookies are `Secure`
    /// (`COATCHECK_HSTS_MAX_AGE`, default 365 days).
    pub hsts_max_age: std::time::Duration,
    /// Where Prometheus metrics are served (`COATCHECK_METRICS_ADDR`, default: nowhere). Not
    /// the shop's address: the metrics are for operators, not the public.
    pub metrics_addr: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("LEPTOS_SITE_ADDR {0:?} is not an address like 127.0.0.1:3000")]
    Addr(String),
    #[error(
        "COATCHECK_METRICS_ADDR {0:?} is not an address like 127.0.0.1:9100, or is the shop's own"
    )]
    MetricsAddr(String),
    #[error("COATCHECK_COOKIE_SECURE {0:?} must be auto, true or false")]
    CookieSecure(String),
    #[error("COATCHECK_PUBLIC_ORIGIN {0:?} must look like https://shop.example")]
    PublicOrigin(String),
    #[error("{0} {1:?} must be a duration like 30m, 12h or 7d")]
    Duration(&'static str, String),
    #[error("COATCHECK_SESSION_BINDING {0:?} must be notice, strict or off")]
    Binding(String),
    #[error("{0} {1:?} must be a whole number above zero")]
    Number(&'static str, String),
    #[error("COATCHECK_TRUSTED_PROXIES {1:?}: {0:?} is not an address or network like 10.0.0.0/8")]
    TrustedProxies(String, String),
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads configuration through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let addr_text = lookup("LEPTOS_SITE_ADDR").unwrap_or_else(|| DEFAULT_ADDR.to_string());
        let addr: SocketAddr = addr_text
            .parse()
            .map_err(|_| ConfigError::Addr(addr_text.clone()))?;
        let cookie_secure = match lookup("COATCHECK_COOKIE_SECURE").as_deref().map(str::trim) {
            None | Some("") | Some("auto") => !addr.ip().is_loopback(),
            Some("true") | Some("1") | Some("yes") => true,
            Some("false") | Some("0") | Some("no") => false,
            Some(other) => return Err(ConfigError::CookieSecure(other.to_string())),
        };
        let public_origin = match lookup("COATCHECK_PUBLIC_ORIGIN").filter(|o| !o.trim().is_empty())
        {
            None => None,
            Some(origin) => {
                let origin = origin.trim().trim_end_matches('/').to_string();
                let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
                    && !origin
                        .split_once("://")
                        .map(|(_, rest)| rest.contains('/'))
                        .unwrap_or(true);
                if !valid {
                    return Err(ConfigError::PublicOrigin(origin));
                }
                Some(origin)
            }
        };
        let duration = |key: &'static str, default: std::time::Duration| match lookup(key) {
            None => Ok(default),
            Some(text) => humantime::parse_duration(text.trim())
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or(ConfigError::Duration(key, text)),
        };
        fn number<T: std::str::FromStr + PartialOrd + Default>(
            key: &'static str,
            default: T,
            lookup: &impl Fn(&str) -> Option<String>,
        ) -> Result<T, ConfigError> {
            match lookup(key) {
                None => Ok(default),
                Some(text) => text
                    .trim()
                    .parse::<T>()
                    .ok()
                    .filter(|n| *n > T::default())
                    .ok_or(ConfigError::Number(key, text)),
            }
        }
        let defaults = app::server::session::SessionPolicy::default();
        let policy = app::server::session::SessionPolicy {
            idle_timeout: duration("COATCHECK_SESSION_IDLE_TIMEOUT", defaults.idle_timeout)?,
            login_idle_timeout: duration(
                "COATCHECK_LOGIN_IDLE_TIMEOUT",
                defaults.login_idle_timeout,
            )?,
            login_absolute_timeout: duration(
                "COATCHECK_LOGIN_ABSOLUTE_TIMEOUT",
                defaults.login_absolute_timeout,
            )?,
            remembered_login_timeout: duration(
                "COATCHECK_REMEMBERED_LOGIN_TIMEOUT",
                defaults.remembered_login_timeout,
            )?,
            anonymous_first_idle_timeout: duration(
                "COATCHECK_ANONYMOUS_FIRST_IDLE_TIMEOUT",
                defaults.anonymous_first_idle_timeout,
            )?,
            max_anonymous_sessions: number(
                "COATCHECK_MAX_ANONYMOUS_SESSIONS",
                defaults.max_anonymous_sessions,
                &lookup,
            )?,
            new_sessions_burst: number(
                "COATCHECK_NEW_SESSIONS_BURST",
                defaults.new_sessions_burst,
                &lookup,
            )?,
            registrations_per_address: number(
                "COATCHECK_REGISTRATIONS_PER_ADDRESS",
                defaults.registrations_per_address,
                &lookup,
            )?,
            new_session_interval: duration(
                "COATCHECK_NEW_SESSION_INTERVAL",
                defaults.new_session_interval,
            )?,
            touch_interval: defaults.touch_interval,
            sudo_timeout: duration("COATCHECK_SUDO_TIMEOUT", defaults.sudo_timeout)?,
            binding: match lookup("COATCHECK_SESSION_BINDING") {
                None => defaults.binding,
                Some(text) => {
                    app::server::session::Binding::parse(&text).ok_or(ConfigError::Binding(text))?
                }
            },
            security_log_retention: duration(
                "COATCHECK_SECURITY_LOG_RETENTION",
                defaults.security_log_retention,
            )?,
        };
        let header_read_timeout = duration(
            "COATCHECK_HEADER_READ_TIMEOUT",
            std::time::Duration::from_secs(15),
        )?;
        let body_timeout = duration("COATCHECK_BODY_TIMEOUT", std::time::Duration::from_secs(20))?;
        let send_timeout = duration("COATCHECK_SEND_TIMEOUT", std::time::Duration::from_secs(30))?;
        let max_connections_per_client =
            number("COATCHECK_MAX_CONNECTIONS_PER_CLIENT", 256usize, &lookup)?;
        let max_connections = match lookup("COATCHECK_MAX_CONNECTIONS") {
            None => None,
            Some(_) => Some(number("COATCHECK_MAX_CONNECTIONS", 1usize, &lookup)?),
        };
        let stream_defaults = app::server::session::StreamLimits::default();
        let streams = app::server::session::StreamLimits {
            per_login: number(
                "COATCHECK_MAX_STREAMS_PER_LOGIN",
                stream_defaults.per_login,
                &lookup,
            )?,
            per_client: number(
                "COATCHECK_MAX_STREAMS_PER_CLIENT",
                stream_defaults.per_client,
                &lookup,
            )?,
            total: number("COATCHECK_MAX_STREAMS", stream_defaults.total, &lookup)?,
            // At most a day: a page reconnects long before anything could overflow.
            lifetime: duration("COATCHECK_STREAM_LIFETIME", stream_defaults.lifetime)?
                .min(std::time::Duration::from_secs(24 * 3600)),
        };
        let hsts_max_age = duration(
            "COATCHECK_HSTS_MAX_AGE",
            std::time::Duration::from_secs(365 * 24 * 3600),
        )?;
        let metrics_addr = match lookup("COATCHECK_METRICS_ADDR").filter(|a| !a.trim().is_empty()) {
            None => None,
            Some(text) => match text.trim().parse::<SocketAddr>() {
                Ok(metrics) if metrics != addr || metrics.port() == 0 => Some(metrics),
                _ => return Err(ConfigError::MetricsAddr(text)),
            },
        };
        let trusted_proxies = match lookup("COATCHECK_TRUSTED_PROXIES") {
            None => Default::default(),
            Some(text) => super::proxies::TrustedProxies::parse(&text)
                .map_err(|entry| ConfigError::TrustedProxies(entry, text.clone()))?,
        };
        Ok(Config {
            metrics_addr,
            policy,
            trusted_proxies,
            header_read_timeout,
            body_timeout,
            send_timeout,
            max_connections_per_client,
            max_connections,
            streams,
            hsts_max_age,
            addr,
            site_root: lookup("LEPTOS_SITE_ROOT").unwrap_or_else(|| DEFAULT_SITE_ROOT.to_string()),
            database_url: lookup("DATABASE_URL")
                .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string()),
            session_store_url: lookup("COATCHECK_SESSION_STORE_URL")
                .map(|url| url.trim().to_string())
                .filter(|url| !url.is_empty()),
            cookie_secure,
            public_origin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|key| map.get(key).cloned())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = config(&[]).unwrap();
        assert_eq!(config.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(config.site_root, "target/site");
        assert_eq!(config.database_url, "sqlite://data/coatcheck.db");
        assert!(!config.cookie_secure, "loopback is not secure by default");
        assert_eq!(config.public_origin, None);
        assert_eq!(
            config.metrics_addr, None,
            "no metrics listener unless asked"
        );
    }

    #[test]
    fn metrics_listen_on_an_address_of_their_own() {
        let metrics = config(&[("COATCHECK_METRICS_ADDR", "127.0.0.1:9100")]).unwrap();
        assert_eq!(metrics.metrics_addr.unwrap().to_string(), "127.0.0.1:9100");
        assert!(config(&[("COATCHECK_METRICS_ADDR", "9100")]).is_err());
        assert!(config(&[("COATCHECK_METRICS_ADDR", "127.0.0.1:3000")]).is_err());
    }

    #[test]
    fn secure_cookie_auto_depends_on_loopback() {
        assert!(
            config(&[("LEPTOS_SITE_ADDR", "0.0.0.0:8080")])
                .unwrap()
                .cookie_secure
        );
        assert!(
            !config(&[("LEPTOS_SITE_ADDR", "[::1]:8080")])
                .unwrap()
                .cookie_secure
        );
        assert!(
            config(&[("COATCHECK_COOKIE_SECURE", "true")])
                .unwrap()
                .cookie_secure
        );
        assert!(
            !config(&[
                ("LEPTOS_SITE_ADDR", "0.0.0.0:80"),
                ("COATCHECK_COOKIE_SECURE", "false")
            ])
            .unwrap()
            .cookie_secure
        );
        assert!(config(&[("COATCHECK_COOKIE_SECURE", "maybe")]).is_err());
    }

    #[test]
    fn timeouts_are_configurable() {
        let config = config(&[
            ("COATCHECK_LOGIN_IDLE_TIMEOUT", "2s"),
            ("COATCHECK_SESSION_IDLE_TIMEOUT", "1day"),
        ])
        .unwrap();
        assert_eq!(config.policy.login_idle_timeout.as_secs(), 2);
        assert_eq!(config.policy.idle_timeout.as_secs(), 86_400);
        assert_eq!(config.policy.login_absolute_timeout.as_secs(), 12 * 3600);
        assert!(super::Config::from_lookup(
            |k| (k == "COATCHECK_LOGIN_IDLE_TIMEOUT").then(|| "soon".to_string())
        )
        .is_err());
    }

    #[test]
    fn trusted_proxies_are_a_list_of_networks() {
        assert_eq!(config(&[]).unwrap().trusted_proxies, Default::default());
        let config_ok = config(&[("COATCHECK_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1")]);
        assert_ne!(config_ok.unwrap().trusted_proxies, Default::default());
        assert!(config(&[("COATCHECK_TRUSTED_PROXIES", "10.0.0.0/8, lb.internal")]).is_err());
    }

    #[test]
    fn rejects_bad_values() {
        assert!(config(&[("LEPTOS_SITE_ADDR", "localhost")]).is_err());
        assert!(config(&[("COATCHECK_PUBLIC_ORIGIN", "shop.example")]).is_err());
        assert!(config(&[("COATCHECK_PUBLIC_ORIGIN", "https://shop.example/path")]).is_err());
        assert_eq!(
            config(&[("COATCHECK_PUBLIC_ORIGIN", "https://shop.example/")])
                .unwrap()
                .public_origin,
            Some("https://shop.example".to_string())
        );
    }
}
