//! Tells a login's open pages at once that it ended — revoked by an admin or by its owner on
//! another device, ended by a password change or a logout in another tab, or timed out.
//!
//! One hub per server. Its feed is the database's shared notification, so a login ended on
//! any instance reaches the streams of every instance: on PostgreSQL a trigger on the
//! registry `NOTIFY`s the handle of every row that ends (`LISTEN` here); SQLite has no
//! notification across processes, so the hub polls the registry's recently ended rows twice a
//! second. Either way each open page's stream (an SSE response, see the server's `events`
//! module) learns of it well within 2 seconds. A stream also re-checks its login's row when
//! the login's next timeout is due and whenever the feed may have missed something (a
//! dropped listener connection, a slow stream that lagged behind).

use super::change::SessionWrites;
use super::contents::SessionError;
use super::policy::SessionPolicy;
use super::redis::{EndedNotice, RedisSessions};
use crate::on_db;
use crate::server::client::ClientNet;
use crate::server::db::Db;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch, Notify};

/// The PostgreSQL channel the registry's trigger notifies (migrations/postgres/0004).
pub const CHANNEL: &str = "coatcheck_session_ended";

/// How often SQLite's registry is polled for ended logins.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The bounds of the event streams (README: "A revoked tab knows at once").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Open streams per login: a browser keeps one per visible tab and allows six HTTP/1.1
    /// connections per host, so more than six is never one person's browser
    /// (`COATCHECK_MAX_STREAMS_PER_LOGIN`). A new stream past it replaces the login's oldest
    /// (which ends): a page the browser left a moment ago still counts until its stream's next
    /// write fails, and the page being opened is the one to tell.
    pub per_login: usize,
    /// Open streams per client network (IPv4 address, IPv6 /64), whatever its logins: a
    /// household or an office behind one address (`COATCHECK_MAX_STREAMS_PER_CLIENT`).
    pub per_client: usize,
    /// Open streams per server (`COATCHECK_MAX_STREAMS`; never more than half the connections
    /// the server accepts, so streams cannot take every connection).
    pub total: usize,
    /// A stream ends after this long (give or take a tenth, so pages do not reconnect all at
    /// once); the page opens a new one at once, which is checked like any request
    /// (`COATCHECK_STREAM_LIFETIME`).
    pub lifetime: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        StreamLimits {
            per_login: 6,
            per_client: 32,
            total: 10_000,
            lifetime: Duration::from_secs(300),
        }
    }
}

/// What the feed says: this login ended, or "check yours" (something may have been missed).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Notice {
    Ended(Arc<str>),
    CheckAll,
}

/// The hub of one server. Cheap to clone (shared).
#[derive(Clone)]
pub struct SessionEvents(Arc<Inner>);

struct Inner {
    notices: broadcast::Sender<Notice>,
    shutdown: watch::Sender<bool>,
    limits: StreamLimits,
    open: Mutex<Open>,
}

/// Open streams, per login handle (oldest first, each with the means to end it) and per
/// client network.
#[derive(Default)]
struct Open {
    total: usize,
    per_login: HashMap<Arc<str>, VecDeque<LoginStream>>,
    per_client: HashMap<ClientNet, usize>,
    next_id: u64,
}

/// One open stream of a login: its ID, its client network, and the signal that ends it.
type LoginStream = (u64, ClientNet, Arc<Notify>);

/// Takes one from a count, forgetting it at zero.
fn leave<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

impl std::fmt::Debug for SessionEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionEvents({} open)", self.open_streams())
    }
}

impl Default for SessionEvents {
    fn default() -> Self {
        Self::new(StreamLimits::default())
    }
}

/// Why a stream may not open.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("too many open pages from your network")]
    PerClient,
    #[error("too many open pages")]
    Server,
    #[error("the server is shutting down")]
    ShuttingDown,
}

/// What a stream learns next.
#[derive(Debug, PartialEq, Eq)]
pub enum Wake {
    /// Its login ended.
    Ended,
    /// Its login's next timeout is due: read its row again.
    Check,
    /// The feed may have missed its end (a lost listener connection, a stream that fell
    /// behind): read its row again — after a random pause, as every stream gets this at once.
    Missed,
    /// The server is stopping: end the stream (the page reconnects to another instance).
    Shutdown,
    /// A newer stream of the same login took this one's place: end it.
    Replaced,
}

impl SessionEvents {
    pub fn new(limits: StreamLimits) -> SessionEvents {
        let (notices, _) = broadcast::channel(1024);
        let (shutdown, _) = watch::channel(false);
        SessionEvents(Arc::new(Inner {
            notices,
            shutdown,
            limits,
            open: Mutex::new(Open::default()),
        }))
    }

    /// The limits this hub keeps.
    pub fn limits(&self) -> StreamLimits {
        self.0.limits
    }

    /// A stream for the login `handle` of a client on `client`, counted until dropped. Every
    /// limit is checked and the stream counted under one lock: concurrent opens cannot pass
    /// a limit together.
    pub fn subscribe(
        &self,
        handle: &str,
        client: ClientNet,
    ) -> Result<Subscription, SubscribeError> {
        if *self.0.shutdown.borrow() {
            return Err(SubscribeError::ShuttingDown);
        }
        let handle: Arc<str> = handle.into();
        let (id, replaced) = {
            let limits = &self.0.limits;
            let mut open = self.0.open.lock().unwrap_or_else(|e| e.into_inner());
            // A login at its own limit gives up its oldest stream for this one: if that one is
            // from the same network, the network's count does not grow.
            let replaces_own = open.per_login.get(&handle).is_some_and(|streams| {
                streams.len() >= limits.per_login.max(1)
                    && streams.front().is_some_and(|(_, from, _)| *from == client)
            });
            if open.per_client.get(&client).copied().unwrap_or(0) >= limits.per_client
                && !replaces_own
            {
                return Err(SubscribeError::PerClient);
            }
            if open.total >= limits.total {
                return Err(SubscribeError::Server);
            }
            open.total += 1;
            *open.per_client.entry(client).or_default() += 1;
            open.next_id += 1;
            let id = open.next_id;
            let replaced = Arc::new(Notify::new());
            let mine = open.per_login.entry(handle.clone()).or_default();
            while mine.len() >= limits.per_login.max(1) {
                if let Some((_, _, oldest)) = mine.pop_front() {
                    // Ends when it next waits (a permit is kept if it is not waiting now).
                    oldest.notify_one();
                }
            }
            mine.push_back((id, client, replaced.clone()));
            (id, replaced)
        };
        Ok(Subscription {
            notices: self.0.notices.subscribe(),
            shutdown: self.0.shutdown.subscribe(),
            handle,
            client,
            id,
            replaced,
            hub: self.clone(),
        })
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.0.open.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Ends every stream (at shutdown: open pages reconnect elsewhere) and refuses new ones.
    pub fn shut_down(&self) {
        let _ = self.0.shutdown.send(true);
    }

    fn ended(&self, handle: &str) {
        let _ = self.0.notices.send(Notice::Ended(handle.into()));
    }

    fn check_all(&self) {
        let _ = self.0.notices.send(Notice::CheckAll);
    }

    /// Feeds the hub from the database until the server stops (spawned by the server).
    pub async fn follow(self, sessions: SessionWrites) {
        if let Some(redis) = sessions.redis() {
            return self.subscribe_to(redis.clone()).await;
        }
        match sessions.db().clone() {
            Db::Postgres(pool) => self.listen(pool).await,
            db @ Db::Sqlite(_) => self.poll(db).await,
        }
    }

    /// Redis: the channel its scripts publish each ended login on. After a gap (the
    /// connection lost and back) every stream checks its login.
    async fn subscribe_to(self, redis: RedisSessions) {
        let mut shutdown = self.0.shutdown.subscribe();
        loop {
            let mut ended = match redis.ended_logins().await {
                Ok(ended) => ended,
                Err(error) => {
                    tracing::warn!(%error, "session events: cannot subscribe");
                    if wait_or_stop(&mut shutdown, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            // Anything that ended while no subscriber was connected.
            self.check_all();
            loop {
                tokio::select! {
                    notice = ended.next_notice() => match notice {
                        Some(EndedNotice::Ended(handle)) => self.ended(&handle),
                        Some(EndedNotice::Gap) => self.check_all(),
                        None => {
                            self.check_all();
                            break;
                        }
                    },
                    _ = stopping(&mut shutdown) => return,
                }
            }
        }
    }

    /// PostgreSQL: `LISTEN`. A lost connection may have lost notifications: every stream then
    /// checks its row once the listener is back.
    async fn listen(self, pool: sqlx::PgPool) {
        let mut shutdown = self.0.shutdown.subscribe();
        loop {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, "session events: cannot connect the listener");
                    if wait_or_stop(&mut shutdown, Duration::from_secs(1)).await {
                        return;
                    }
                    continue;
                }
            };
            if let Err(error) = listener.listen(CHANNEL).await {
                tracing::warn!(%error, "session events: cannot LISTEN");
                if wait_or_stop(&mut shutdown, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
            // Anything that ended while no listener was connected.
            self.check_all();
            loop {
                tokio::select! {
                    received = listener.try_recv() => match received {
                        Ok(Some(notification)) => self.ended(notification.payload()),
                        // The connection was lost (the next call reconnects): check everything.
                        Ok(None) => self.check_all(),
                        Err(error) => {
                            tracing::warn!(%error, "session events: the listener failed");
                            self.check_all();
                            break;
                        }
                    },
                    _ = stopping(&mut shutdown) => return,
                }
            }
        }
    }

    /// SQLite: the rows that ended since the last look (with a second of overlap, as the
    /// registry keeps whole seconds; a handle already announced is not announced again).
    async fn poll(self, db: Db) {
        let mut shutdown = self.0.shutdown.subscribe();
        let mut since = super::clock::now() - 1;
        let mut announced: HashMap<String, i64> = HashMap::new();
        loop {
            if wait_or_stop(&mut shutdown, POLL_INTERVAL).await {
                return;
            }
            let now = super::clock::now();
            let ended: Result<Vec<String>, sqlx::Error> = on_db!(&db, pool => sqlx::query_scalar(
                "SELECT handle FROM session_registry WHERE ended_at >= $1"
            )
            .bind(since - 1)
            .fetch_all(pool)
            .await);
            match ended {
                Ok(handles) => {
                    for handle in handles {
                        if announced.insert(handle.clone(), now).is_none() {
                            self.ended(&handle);
                        }
                    }
                    announced.retain(|_, at| *at >= now - 5);
                    since = now;
                }
                Err(error) => tracing::warn!(%error, "session events: cannot read the registry"),
            }
        }
    }
}

/// Resolves once the server is stopping (the guard `wait_for` returns is dropped at once).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.map(drop);
}

/// Sleeps for `period`; true if the server is stopping.
async fn wait_or_stop(shutdown: &mut watch::Receiver<bool>, period: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(period) => *shutdown.borrow(),
        _ = stopping(shutdown) => true,
    }
}

/// One open page's view of the hub.
pub struct Subscription {
    notices: broadcast::Receiver<Notice>,
    shutdown: watch::Receiver<bool>,
    handle: Arc<str>,
    client: ClientNet,
    /// This stream's place among its login's, and the signal that a newer one replaced it.
    id: u64,
    replaced: Arc<Notify>,
    hub: SessionEvents,
}

impl Subscription {
    /// Waits for what concerns this login, or until `check_at` (a timeout may be due).
    pub async fn next(&mut self, check_at: tokio::time::Instant) -> Wake {
        loop {
            tokio::select! {
                notice = self.notices.recv() => match notice {
                    Ok(Notice::Ended(handle)) if handle == self.handle => return Wake::Ended,
                    Ok(Notice::Ended(_)) => continue,
                    Ok(Notice::CheckAll) => return Wake::Missed,
                    // Fell behind the feed: what was missed may have been ours.
                    Err(broadcast::error::RecvError::Lagged(_)) => return Wake::Missed,
                    Err(broadcast::error::RecvError::Closed) => return Wake::Shutdown,
                },
                _ = stopping(&mut self.shutdown) => return Wake::Shutdown,
                _ = self.replaced.notified() => return Wake::Replaced,
                _ = tokio::time::sleep_until(check_at) => return Wake::Check,
            }
        }
    }
}

impl Subscription {
    /// Waits `period`; true if the server began stopping meanwhile.
    pub async fn pause(&mut self, period: Duration) -> bool {
        wait_or_stop(&mut self.shutdown, period).await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut open = self.hub.0.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total -= 1;
        leave(&mut open.per_client, &self.client);
        if let Some(streams) = open.per_login.get_mut(&self.handle) {
            streams.retain(|(id, _, _)| *id != self.id);
            if streams.is_empty() {
                open.per_login.remove(&self.handle);
            }
        }
    }
}

/// Where a login stands, from its registry row (the rule itself: `SessionPolicy::login_state`).
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRow {
    /// Live; its next timeout is due in this many seconds (from now).
    Live { due_in_secs: u64 },
    /// Ended (logged out, revoked, replaced by a password change).
    Ended,
    /// Past its idle or absolute timeout (its next request will sign it out).
    TimedOut,
}

/// Reads the login `handle`'s registry row: live, ended, or timed out by `policy`.
pub async fn login_row(
    sessions: &SessionWrites,
    policy: &SessionPolicy,
    handle: &str,
) -> Result<LoginRow, SessionError> {
    let login = match sessions.redis() {
        Some(redis) => redis.live_login(handle).await?.map(|live| live.times),
        None => registry_times(sessions.db(), handle).await?,
    };
    let Some(login) = login else {
        return Ok(LoginRow::Ended);
    };
    let now = super::clock::now();
    match policy.login_state(login, now) {
        // The guard signs a login out once its deadline has passed: check just after it.
        super::policy::LoginState::Live { deadline } => Ok(LoginRow::Live {
            due_in_secs: u64::try_from(deadline + 1 - now).unwrap_or(1).max(1),
        }),
        _ => Ok(LoginRow::TimedOut),
    }
}

/// A login's times from its registry row, unless it has ended.
async fn registry_times(
    db: &Db,
    handle: &str,
) -> Result<Option<super::policy::LoginTimes>, sqlx::Error> {
    let row: Option<(Option<i64>, i64, i64, bool)> = on_db!(db, pool => sqlx::query_as(
        "SELECT ended_at, created_at, last_seen_at, remembered FROM session_registry WHERE handle = $1"
    )
    .bind(handle)
    .fetch_optional(pool)
    .await)?;
    Ok(match row {
        Some((None, created_at, last_seen_at, remembered)) => Some(super::policy::LoginTimes {
            created_at,
            last_seen_at,
            remembered,
        }),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn soon_again() -> tokio::time::Instant {
        tokio::time::Instant::now() + Duration::from_millis(20)
    }

    fn net(ip: &str) -> ClientNet {
        ClientNet::of(ip.parse().unwrap())
    }

    #[tokio::test]
    async fn streams_are_counted_capped_and_woken_for_their_own_login_only() {
        let hub = SessionEvents::new(StreamLimits {
            per_login: 3,
            per_client: 5,
            total: 9,
            ..StreamLimits::default()
        });
        let home = net("192.0.2.1");
        let mut mine = hub.subscribe("a", home).unwrap();
        let mut other = hub.subscribe("b", net("192.0.2.2")).unwrap();
        assert_eq!(hub.open_streams(), 2);
        hub.ended("a");
        let later = tokio::time::Instant::now() + Duration::from_secs(5);
        assert_eq!(mine.next(later).await, Wake::Ended);
        let soon = tokio::time::Instant::now() + Duration::from_millis(50);
        assert_eq!(
            other.next(soon).await,
            Wake::Check,
            "b only waits for its check"
        );
        drop(mine);
        assert_eq!(hub.open_streams(), 1);

        // Per login: a fourth stream replaces the oldest, which ends.
        let mut held: Vec<_> = (0..3).map(|_| hub.subscribe("c", home).unwrap()).collect();
        let newest = hub.subscribe("c", home).unwrap();
        assert_eq!(held[0].next(later).await, Wake::Replaced);
        assert_eq!(
            held[1].next(soon_again()).await,
            Wake::Check,
            "the others go on"
        );
        drop(held.remove(0));
        held.push(newest);
        // Per client network, whatever the login (an IPv6 client by its /64).
        let v6: Vec<_> = (1..=5)
            .map(|i| {
                hub.subscribe(&format!("v6-{i}"), net(&format!("2001:db8:0:7::{i}")))
                    .unwrap()
            })
            .collect();
        assert_eq!(
            hub.subscribe("v6-6", net("2001:db8:0:7:ffff::1")).err(),
            Some(SubscribeError::PerClient)
        );
        // In all: 1 + 3 + 5 = 9, the server's limit.
        assert_eq!(hub.open_streams(), 9);
        assert_eq!(
            hub.subscribe("d", net("198.51.100.1")).err(),
            Some(SubscribeError::Server)
        );
        drop(v6);
        drop(held);
        assert_eq!(hub.open_streams(), 1);
        assert!(hub.subscribe("c", home).is_ok());

        hub.shut_down();
        assert_eq!(other.next(later).await, Wake::Shutdown);
        assert_eq!(
            hub.subscribe("d", home).err(),
            Some(SubscribeError::ShuttingDown)
        );
    }
}
