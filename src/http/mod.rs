//! The server: configuration, the router with its tower layers, start-up and graceful shutdown.

mod assets;
pub mod config;
mod event_stream;
mod forms;
mod guard;
mod metrics_listener;
mod page_cache;
pub mod proxies;
pub mod router;
mod serve;
mod session_api;

pub use config::{Config, ConfigError};

use app::server::session::ShopSessionStore;
use app::server::{db, seed, AppContext};
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// How long a shutdown waits for in-flight requests.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

/// How often expired sessions are deleted from the store.
const EXPIRED_SESSION_SWEEP: std::time::Duration = std::time::Duration::from_secs(60);
/// How often old events leave the security log.
const SECURITY_LOG_PRUNE: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("cannot prepare the session store: {0}")]
    SessionStore(sqlx::Error),
    #[error(transparent)]
    Redis(#[from] app::server::session::StartError),
    #[error("cannot seed the catalog: {0}")]
    Seed(sqlx::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A migrated database with its session store, ready to serve.
pub struct Application {
    listener: TcpListener,
    /// The operators' listener for `/metrics` (`COATCHECK_METRICS_ADDR`), when configured.
    metrics_listener: Option<TcpListener>,
    router: axum::Router,
    store: ShopSessionStore,
    pool: db::Db,
    sessions: app::server::session::SessionWrites,
    /// The services the router's requests share (the metrics listener and the event feed too).
    context: AppContext,
    /// The bounds of every connection of the shop's listener.
    limits: serve::Limits,
}

/// Opens the database and applies migrations (the shop's and the session store's).
pub async fn open_database(config: &Config) -> Result<(db::Db, ShopSessionStore), StartError> {
    let pool = db::connect(&config.database_url).await?;
    db::migrate(&pool).await?;
    let store = ShopSessionStore::new(pool.clone(), &config.policy);
    store.migrate().await.map_err(StartError::SessionStore)?;
    Ok((pool, store))
}

impl Application {
    /// Migrates, seeds an empty catalog, binds the listener. Port 0 picks a free port.
    pub async fn build(config: Config) -> Result<Application, StartError> {
        // Sessions on Redis when configured: checked first (reachable, never evicting), so a
        // misconfigured store stops the start before anything else is done.
        let redis = match &config.session_store_url {
            Some(url) => {
                Some(app::server::session::RedisSessions::connect(url, &config.policy).await?)
            }
            None => None,
        };
        let (pool, store) = open_database(&config).await?;
        let store = match &redis {
            Some(redis) => store.with_redis(redis.clone()),
            None => store,
        };
        // The store's count of anonymous sessions starts from the database (the sweeper's
        // first pass is a minute away); only a server needs it, not `migrate` or `user create`.
        store
            .evict_anonymous()
            .await
            .map_err(StartError::SessionStore)?;
        let seeded = seed::seed_if_empty(&pool).await.map_err(StartError::Seed)?;
        if seeded > 0 {
            tracing::info!(products = seeded, "seeded the demo catalog");
        }
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        let listener = bind(config.addr).await?;
        let metrics_listener = match config.metrics_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        let metrics = app::server::metrics::Metrics::new();
        let store = store.with_metrics(metrics.clone());
        let max_connections = serve::max_connections_for_this_process(config.max_connections);
        // Streams never take more than half the connections: the shop stays reachable.
        let streams = app::server::session::StreamLimits {
            total: config.streams.total.min(max_connections / 2).max(1),
            ..config.streams
        };
        let context = AppContext::new(app::server::Services {
            events: app::server::session::SessionEvents::new(streams),
            metrics,
            db: pool.clone(),
            sessions: {
                let writes = app::server::session::SessionWrites::new(pool.clone(), config.policy);
                match redis {
                    Some(redis) => writes.with_redis(redis),
                    None => writes,
                }
            },
            passwords: app::server::passwords::PasswordHasher::new(),
            policy: config.policy,
            catalog: Default::default(),
        });
        let sessions = context.sessions.clone();
        let router = router::build(&config, context.clone(), store.clone());
        Ok(Application {
            listener,
            metrics_listener,
            router,
            store,
            pool,
            sessions,
            context,
            limits: serve::Limits {
                header_read_timeout: config.header_read_timeout,
                body_timeout: config.body_timeout,
                send_timeout: config.send_timeout,
                per_client: config.max_connections_per_client,
                total: max_connections,
                exempt: config.trusted_proxies.clone(),
            },
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The metrics listener's address, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    }

    /// The server's connection pool (closing it makes the database unavailable to the server).
    pub fn pool(&self) -> db::Db {
        self.pool.clone()
    }

    /// The server's session store and session writes (for tests that act on them directly).
    pub fn sessions(&self) -> (ShopSessionStore, app::server::session::SessionWrites) {
        (self.store.clone(), self.sessions.clone())
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish — for at most
    /// [`DRAIN_TIMEOUT`], so a stuck client cannot hold up a deploy.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let sweeper = tokio::spawn(app::server::session::sweep_expired_forever(
            self.store.clone(),
            EXPIRED_SESSION_SWEEP,
        ));
        let pruner = tokio::spawn(app::server::session::security_log::prune_forever(
            self.pool.clone(),
            i64::try_from(self.context.policy.security_log_retention.as_secs()).unwrap_or(i64::MAX),
            SECURITY_LOG_PRUNE,
        ));
        // Raised once `shutdown` resolves: every listener stops, and the drain limit starts.
        let (signal, signalled) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = signal.send(true);
        });
        let stopping = move || {
            let mut signalled = signalled.clone();
            async move {
                let _ = signalled.wait_for(|stop| *stop).await.map(drop);
            }
        };
        // Open pages hear of ended logins from the database's feed; at shutdown their streams
        // end at once, so that they do not hold up the drain.
        let feed = tokio::spawn(self.context.events.clone().follow(self.sessions.clone()));
        let events_stop = {
            let events = self.context.events.clone();
            let stop = stopping();
            tokio::spawn(async move {
                stop.await;
                events.shut_down();
            })
        };
        let metrics = self.metrics_listener.map(|listener| {
            let router = metrics_listener::router(self.context.clone());
            // Operators only: a few connections are plenty.
            let limits = serve::Limits {
                per_client: 16,
                total: 64,
                ..self.limits.clone()
            };
            tokio::spawn(serve::serve(listener, router, limits, stopping()))
        });
        let serve = serve::serve(self.listener, self.router, self.limits, stopping());
        let drain_limit = stopping();
        let result = tokio::select! {
            _ = serve => Ok(()),
            _ = async {
                drain_limit.await;
                tokio::time::sleep(DRAIN_TIMEOUT).await;
            } => {
                tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; stopping anyway");
                Ok(())
            }
        };
        sweeper.abort();
        pruner.abort();
        feed.abort();
        events_stop.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        self.sessions.close_writer().await;
        self.pool.close().await;
        result
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
