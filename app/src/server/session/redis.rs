//! Sessions on Redis (or Valkey), through `fred`: the session records and the logins' registry
//! entries, under hashed keys, changed only by Lua scripts that check and write in one step.
//!
//! What it keeps of tower-sessions-redis-store: `SET … NX` on create (an ID is never given
//! twice) and an absolute expiry (`PXAT`) on every write, so Redis itself forgets an idle
//! session. What it adds, as the SQL store does: the key is the SHA-256 of the ID, never the ID
//! (neither as the key nor inside the value); a save never recreates a session deleted while
//! its request ran; a record carries a login only while that login's registry entry is live and
//! points at it (checked in the script that writes it); ending a login deletes its session and
//! ends its entry in one script; and a compare-and-swap save for changes that must not lose a
//! concurrent write (one script, not WATCH on a shared pool).
//!
//! Keys (`coatcheck:` prefix):
//!
//! - `session:<sha256 of the ID>`: the record (MessagePack, its ID blanked), expiring at its
//!   expiry date;
//! - `login:<handle>`: a hash, the login's registry entry (`user`, `session`, `created`,
//!   `seen`, `remembered`, `ip`, `device`, `email`; `ended` and `reason` once ended), expiring with its
//!   session;
//! - `logins` and `logins:user:<id>`: the live entries' handles, by last activity;
//! - `anonymous`: the anonymous records' hashes, by expiry, for the ceiling of anonymous
//!   sessions (`COATCHECK_MAX_ANONYMOUS_SESSIONS`: past it the soonest to expire are evicted);
//! - `budget:new-sessions:<client network>`: a client's new-session token bucket;
//! - channel `coatcheck:ended`: the handle of each login ended, published by the script that
//!   ends it, so every instance's open pages hear it.
//!
//! One standalone server (or a primary with replicas): the scripts touch keys they compute
//! (a login's session, a user's logins), which Redis Cluster's slots do not allow.

use async_trait::async_trait;
use fred::clients::Pool;
use fred::interfaces::{ClientLike, KeysInterface};
use fred::prelude::{Builder, Config, ReconnectPolicy};
use fred::types::scripts::Script;
use fred::types::InfoKind;
use std::sync::LazyLock;
use std::time::Duration;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store;
use tower_sessions::SessionStore;

use super::clock;
use super::contents::{created_expiry, login_of, sign_out_ended_login, stored_expiry, AuthUser};
use super::login_rows::{EndReason, NewSession};
use super::policy::{LoginState, LoginTimes, SessionPolicy};
use super::record::{decode_record, encode, storage_key};
use crate::model::SessionInfo;

/// Every key this store writes starts with this.
pub const PREFIX: &str = "coatcheck:";

fn session_key(hash: &str) -> String {
    format!("{PREFIX}session:{hash}")
}

fn login_key(handle: &str) -> String {
    format!("{PREFIX}login:{handle}")
}

const ALL_LOGINS: &str = "coatcheck:logins";
/// The anonymous records' hashes, by expiry: the ceiling's index (`evict_anonymous`).
const ANONYMOUS: &str = "coatcheck:anonymous";
const USER_LOGINS: &str = "coatcheck:logins:user:";

/// How long one command may take before the request that sent it fails (and gets a 503).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting may take, at start-up and on each reconnection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections kept to Redis by one instance (commands are pipelined on each).
const POOL_SIZE: usize = 4;

/// Why the store could not start. Each is one line that names the store (its address, never its
/// password) and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("session store {store}: not a usable Redis URL ({reason})")]
    Url { store: String, reason: String },
    #[error("session store {store} is unreachable: {reason}")]
    Unreachable { store: String, reason: String },
    #[error(
        "session store {store} may evict keys (maxmemory-policy {policy}): carts would be lost \
         under memory pressure; set maxmemory-policy noeviction"
    )]
    Evicting { store: String, policy: String },
}

/// `url` as it may be shown: its password replaced by `***`.
pub fn redacted(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return "(unparsable URL)".to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let shown = match userinfo.find(':') {
        Some(colon) => format!("{}:***", &userinfo[..colon]),
        None if userinfo.is_empty() => String::new(),
        // `redis://secret@host`: a lone user part is a password to Redis.
        None => "***".to_string(),
    };
    format!("{}{}@{}", &url[..scheme_end], shown, &rest[at + 1..])
}

/// The sessions on one Redis server.
#[derive(Clone)]
pub struct RedisSessions {
    pool: Pool,
    /// For the subscriber connection of [`RedisSessions::ended_logins`].
    config: Config,
    policy: SessionPolicy,
    /// Anonymous records, as last counted plus those this server created since: past the
    /// ceiling, the index is counted again and evicted from.
    anonymous: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for RedisSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessions").finish_non_exhaustive()
    }
}

/// The client settings: short timeouts (a request gets its 503 within a couple of seconds when
/// Redis is gone) and reconnection for ever.
fn builder(config: Config) -> Builder {
    let mut builder = Builder::from_config(config);
    builder
        .with_connection_config(|c| {
            c.connection_timeout = CONNECT_TIMEOUT;
            c.internal_command_timeout = CONNECT_TIMEOUT;
            // A command whose connection dropped fails at once instead of being sent again
            // after the reconnection: the request gets its 503, and a script never runs twice.
            c.max_command_attempts = 1;
        })
        .with_performance_config(|c| c.default_command_timeout = COMMAND_TIMEOUT)
        // Every half second (and a little jitter): service resumes by itself when the server
        // is back.
        .set_policy(ReconnectPolicy::new_constant(0, 500));
    builder
}

/// The handles of the logins ended on any instance (a logout, a revocation, a password
/// change), as the script that ended each one published it.
pub struct EndedLogins {
    client: fred::clients::SubscriberClient,
    messages: tokio::sync::broadcast::Receiver<fred::types::Message>,
    /// The connection's reconnections (the first connection's included, already past).
    reconnects: tokio::sync::broadcast::Receiver<fred::types::config::Server>,
    resubscribe: tokio::task::JoinHandle<()>,
}

/// What [`EndedLogins::next_notice`] heard.
#[derive(Debug, PartialEq, Eq)]
pub enum EndedNotice {
    /// This login ended.
    Ended(String),
    /// Messages may have been missed (the connection was lost and is back, or the reader
    /// lagged): whoever waits for a login should look at it again.
    Gap,
}

impl EndedLogins {
    /// The next ended login's handle. `None`: the subscription is closed. Messages published
    /// while the connection was down are not delivered (Redis keeps none): the hub's own
    /// periodic check of open pages covers those.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            match self.next_notice().await? {
                EndedNotice::Ended(handle) => return Some(handle),
                EndedNotice::Gap => {}
            }
        }
    }

    /// The next ended login, or a gap in what was heard. `None`: the subscription is closed.
    pub async fn next_notice(&mut self) -> Option<EndedNotice> {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            tokio::select! {
                message = self.messages.recv() => match message {
                    Ok(message) => {
                        if let Some(handle) = message.value.as_string() {
                            return Some(EndedNotice::Ended(handle));
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "ended-login messages missed (the hub re-checks)");
                        return Some(EndedNotice::Gap);
                    }
                    Err(RecvError::Closed) => return None,
                },
                reconnected = self.reconnects.recv() => match reconnected {
                    Ok(_) | Err(RecvError::Lagged(_)) => return Some(EndedNotice::Gap),
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}

impl Drop for EndedLogins {
    fn drop(&mut self) {
        self.resubscribe.abort();
        let client = self.client.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = client.quit().await;
            });
        }
    }
}

/// A store error from a Redis error (the message never holds a key: keys are hashes anyway).
fn backend(error: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(format!("redis: {error}"))
}

/// A script argument of raw bytes.
fn bytes(value: &[u8]) -> fred::types::Value {
    fred::types::Value::from(value)
}

/// The keys a record's scripts take: the record's, the anonymous index, and its login's entry
/// if it has one.
fn record_keys(hash: &str, login: Option<&AuthUser>) -> Vec<String> {
    let mut keys = vec![session_key(hash), ANONYMOUS.to_string()];
    if let Some(user) = login {
        keys.push(login_key(&user.handle));
    }
    keys
}

/// Stores a new record unless its key is taken (0); with a login (KEYS[3]), stores it with the
/// login only if the login's entry is live and of that user, and points the entry at it (1),
/// else stores the record without the login (2). An anonymous record goes into the anonymous
/// index (KEYS[2]).
/// ARGV: the record, its expiry (ms), the record without its login, the user, the key's hash.
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if #KEYS == 3 then
  if redis.call('HGET', KEYS[3], 'user') == ARGV[4]
     and redis.call('HEXISTS', KEYS[3], 'ended') == 0 then
    redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
    redis.call('HSET', KEYS[3], 'session', ARGV[5])
    if redis.call('PEXPIRETIME', KEYS[3]) < tonumber(ARGV[2]) then
      redis.call('PEXPIREAT', KEYS[3], ARGV[2])
    end
    return 1
  end
  redis.call('SET', KEYS[1], ARGV[3], 'PXAT', ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
  return 2
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[5])
return 1
"#,
    )
});

/// Writes a record over the stored one, never creating it (0 when it is gone); with ARGV[3]
/// not empty, only over exactly those stored bytes (a compare-and-swap); with a login
/// (KEYS[3]), only while the login's entry is live and points at this record. An anonymous
/// record's place in the anonymous index (KEYS[2]) follows its expiry; a record with a login
/// leaves it.
/// ARGV: the record, its expiry (ms), the expected bytes or '', the key's hash.
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
if ARGV[3] ~= '' and current ~= ARGV[3] then return 0 end
if #KEYS == 3 then
  if redis.call('HGET', KEYS[3], 'session') ~= ARGV[4]
     or redis.call('HEXISTS', KEYS[3], 'ended') == 1 then
    return 0
  end
  if redis.call('PEXPIRETIME', KEYS[3]) < tonumber(ARGV[2]) then
    redis.call('PEXPIREAT', KEYS[3], ARGV[2])
  end
  redis.call('ZREM', KEYS[2], ARGV[4])
else
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return 1
"#,
    )
});

/// The ceiling of anonymous sessions: forgets the index's expired members; past ARGV[2]
/// members, deletes the records of the soonest to expire down to ARGV[3]. Returns how many
/// are left. KEYS[1]: the anonymous index. ARGV: now (ms), the ceiling, the target, the
/// records' key prefix.
static EVICT: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n <= tonumber(ARGV[2]) then return n end
local popped = redis.call('ZPOPMIN', KEYS[1], n - tonumber(ARGV[3]))
for i = 1, #popped, 2 do
  redis.call('DEL', ARGV[4] .. popped[i])
end
return redis.call('ZCARD', KEYS[1])
"#,
    )
});

/// Records a login's registry entry (KEYS[1]) and indexes it (KEYS[2]: every login, KEYS[3]:
/// its user's). ARGV: handle, user, now (s), remembered, ip, device, expiry (ms), email.
static REGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
redis.call('HSET', KEYS[1], 'user', ARGV[2], 'created', ARGV[3], 'seen', ARGV[3],
  'remembered', ARGV[4], 'ip', ARGV[5], 'device', ARGV[6], 'email', ARGV[8])
redis.call('PEXPIREAT', KEYS[1], ARGV[7])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return 1
"#,
    )
});

/// Which logins an end script may end: every one not ended yet, or only those within their
/// timeouts by the login rule at the script's `now` (those the lists show).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    Any,
    WithinTimeouts,
}

/// Lua: whether the login whose entry is at `key` is live (its entry there, not ended).
const LIVE: &str = r#"
local function live(key)
  return redis.call('EXISTS', key) == 1 and redis.call('HEXISTS', key, 'ended') == 0
end
"#;

/// Lua: ends the live login whose entry is at `key` (its session deleted, the entry marked
/// ended, out of both indexes). 0: it had ended already, or never existed, or (with `cut`, the
/// four cut-offs of `LiveSince` as a comma-separated string; '' for none) it is past its
/// timeouts: a login no list shows is not ended or counted here (its next request ends it).
const END_ONE: &str = r#"
local function within(key, cut)
  if cut == '' then return true end
  local c = {}
  for n in string.gmatch(cut, '[^,]+') do c[#c + 1] = tonumber(n) end
  local f = redis.call('HMGET', key, 'created', 'seen', 'remembered')
  local created, seen = tonumber(f[1]) or 0, tonumber(f[2]) or 0
  if f[3] == '1' then return seen >= c[3] and created >= c[4] end
  return seen >= c[1] and created >= c[2]
end
local function end_one(key, handle, now, reason, sessions, all, users, cut)
  if not live(key) or not within(key, cut) then return 0 end
  local session = redis.call('HGET', key, 'session')
  if session then redis.call('DEL', sessions .. session) end
  local user = redis.call('HGET', key, 'user')
  redis.call('HDEL', key, 'session')
  redis.call('HSET', key, 'ended', now, 'reason', reason)
  redis.call('ZREM', all, handle)
  redis.call('ZREM', users .. user, handle)
  redis.call('PUBLISH', 'coatcheck:ended', handle)
  return 1
end
"#;

/// Ends one login (KEYS[1], handle ARGV[1]) in one step, so no request in flight can store it
/// again. With an actor (ARGV[6], its entry KEYS[2]): only while the actor's own login is live
/// (-1: it has ended, nothing done). With an owner (ARGV[7]): only a login of that user.
/// ARGV: handle, now (s), reason, session key prefix, login key prefix, actor or '', owner or
/// '', cut-offs or '' (see `END_ONE`). 1: ended; 0: nothing to end.
static END: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        "{LIVE}{END_ONE}{}",
        r#"
if ARGV[6] ~= '' and not live(KEYS[2]) then return -1 end
if ARGV[7] ~= '' and redis.call('HGET', KEYS[1], 'user') ~= ARGV[7] then return 0 end
return end_one(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], KEYS[3], KEYS[4], ARGV[8])
"#
    ))
});

/// Ends every live login of a user (their index, KEYS[1]) but one (ARGV[6], '' for none), only
/// while the actor's login (KEYS[2], ARGV[5]; '' for none) is live: -1 if it is not, else how
/// many were ended. ARGV: now (s), reason, session key prefix, login key prefix, actor, kept,
/// cut-offs or '' (see `END_ONE`).
/// KEYS[3]: every login's index; KEYS[4]: the users' index prefix.
static END_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        "{LIVE}{END_ONE}{}",
        r#"
if ARGV[5] ~= '' and not live(KEYS[2]) then return -1 end
local ended = 0
for _, handle in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if handle ~= ARGV[6] then
    ended = ended + end_one(ARGV[4] .. handle, handle, ARGV[1], ARGV[2], ARGV[3], KEYS[3], KEYS[4],
      ARGV[7])
  end
end
return ended
"#
    ))
});

/// Records activity on a live login (KEYS[1]): its `seen` and its place in both indexes
/// (KEYS[2], KEYS[3]). ARGV: handle, now (s).
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(format!(
        "{LIVE}{}",
        r#"
if not live(KEYS[1]) then return 0 end
redis.call('HSET', KEYS[1], 'seen', ARGV[2])
redis.call('ZADD', KEYS[2], 'XX', ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], 'XX', ARGV[2], ARGV[1])
return 1
"#
    ))
});

/// The entries in an index (KEYS[1]), most recent activity first, that are live and whose
/// session is stored: {handle, user, email, device, ip, created, seen, remembered} each.
/// Handles whose entry has expired or ended leave the index on the way. ARGV: login key
/// prefix, session key prefix, every login's index, the users' index prefix.
static LIST: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local out = {}
for _, handle in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. handle
  local f = redis.call('HMGET', key, 'user', 'email', 'device', 'ip', 'created', 'seen',
    'remembered', 'session', 'ended')
  if not f[1] or f[9] then
    redis.call('ZREM', KEYS[1], handle)
    redis.call('ZREM', ARGV[3], handle)
    if f[1] then redis.call('ZREM', ARGV[4] .. f[1], handle) end
  elseif f[8] and redis.call('EXISTS', ARGV[2] .. f[8]) == 1 then
    table.insert(out, {handle, f[1], f[2] or '', f[3] or '', f[4] or '', f[5], f[6], f[7]})
  end
end
return out
"#,
    )
});

/// A client network's new-session token bucket (KEYS[1]: a hash of `tokens` and `at`, in ms),
/// refilled up to now, then changed by ARGV[4]: `take` one token (or, with none, the wait in ms
/// until there is one, as a positive number), `charge` one whatever the balance, `give` one
/// back. It expires once it would be full again: a quiet client's bucket leaves by itself.
/// ARGV: now (ms), burst, interval (ms), the change. 0: done.
static BUDGET: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        r#"
local now, burst, interval = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local stored = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = burst
if stored[1] then
  local elapsed = math.max(0, now - tonumber(stored[2]))
  tokens = math.min(burst, tonumber(stored[1]) + elapsed / interval)
end
if ARGV[4] == 'take' then
  if tokens < 1 then return math.ceil(interval * (1 - tokens)) end
  tokens = tokens - 1
elseif ARGV[4] == 'charge' then
  tokens = math.max(0, tokens - 1)
else
  tokens = math.min(burst, tokens + 1)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((burst - tokens) * interval)))
return 0
"#,
    )
});

/// A login's entry that has not ended (its timeouts may have passed: see `login_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveLogin {
    pub user_id: i64,
    pub times: LoginTimes,
}

/// What an action on other logins did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The acting login had ended before it could act: nothing was done.
    ActorEnded,
    /// This many logins were ended.
    Count(u64),
}

fn ended(result: i64) -> Ended {
    match u64::try_from(result) {
        Ok(count) => Ended::Count(count),
        Err(_) => Ended::ActorEnded,
    }
}

impl RedisSessions {
    /// Connects to the Redis server at `url` (`redis://` or `rediss://`) and checks that it
    /// keeps what it is given: a server whose `maxmemory-policy` may evict keys is refused.
    pub async fn connect(url: &str, policy: &SessionPolicy) -> Result<RedisSessions, StartError> {
        let store = redacted(url);
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return Err(StartError::Url {
                store,
                reason: "expected redis:// or rediss://".to_string(),
            });
        }
        let config = Config::from_url(url).map_err(|e| StartError::Url {
            store: store.clone(),
            reason: e.details().to_string(),
        })?;
        let pool = builder(config.clone())
            .build_pool(POOL_SIZE)
            .map_err(|e| StartError::Url {
                store: store.clone(),
                reason: e.details().to_string(),
            })?;
        let unreachable = |e: fred::error::Error| StartError::Unreachable {
            store: store.clone(),
            reason: e.details().to_string(),
        };
        pool.init().await.map_err(unreachable)?;
        let info: String = pool
            .next()
            .info(Some(InfoKind::Memory))
            .await
            .map_err(unreachable)?;
        let eviction = info
            .lines()
            .find_map(|line| line.strip_prefix("maxmemory_policy:"))
            .map(str::trim)
            .unwrap_or("unknown")
            .to_string();
        if eviction != "noeviction" {
            let _ = pool.quit().await;
            return Err(StartError::Evicting {
                store,
                policy: eviction,
            });
        }
        Ok(RedisSessions {
            pool,
            config,
            policy: *policy,
            // The first anonymous record created counts and evicts (past the ceiling).
            anonymous: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX / 2)),
        })
    }

    /// Subscribes to the logins ended on every instance (one connection of its own, subscribed
    /// again after each reconnection).
    pub async fn ended_logins(&self) -> session_store::Result<EndedLogins> {
        use fred::interfaces::{EventInterface, PubsubInterface};
        let client = builder(self.config.clone())
            .build_subscriber_client()
            .map_err(backend)?;
        client.init().await.map_err(backend)?;
        let messages = client.message_rx();
        let reconnects = client.reconnect_rx();
        let resubscribe = client.manage_subscriptions();
        client.subscribe("coatcheck:ended").await.map_err(backend)?;
        Ok(EndedLogins {
            client,
            messages,
            reconnects,
            resubscribe,
        })
    }

    /// The connections (for the tests' inspection of what is stored).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Records a new login's registry entry (before its session is stored with it).
    pub async fn record_login(
        &self,
        new: NewSession<'_>,
        email: &str,
    ) -> Result<(), session_store::Error> {
        let now = clock::now();
        let (_, device) = new.user_agent_and_device();
        let (_, timeout) = self.policy.login_timeouts(new.remembered);
        let expiry = (now.saturating_add(i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX)))
            .saturating_add(self.policy.after_login_grace())
            .saturating_mul(1000);
        let user = new.user_id.to_string();
        let _: i64 = REGISTER
            .evalsha_with_reload(
                self.pool.next(),
                vec![
                    login_key(new.handle),
                    ALL_LOGINS.to_string(),
                    format!("{USER_LOGINS}{user}"),
                ],
                vec![
                    new.handle.to_string(),
                    user,
                    now.to_string(),
                    u8::from(new.remembered).to_string(),
                    new.ip.to_string(),
                    device,
                    expiry.to_string(),
                    email.to_lowercase(),
                ],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Ends one login: its session deleted and its entry ended, in one script. Whether this call
    /// ended it (false: it had ended already).
    pub async fn end_login(&self, handle: &str, reason: EndReason) -> session_store::Result<bool> {
        Ok(self
            .revoke(None, handle, None, reason, Liveness::Any)
            .await?
            == Ended::Count(1))
    }

    /// Ends the login `handle` on behalf of `actor` (whose own login must still be live, checked
    /// in the same script); with `owner`, only if it is a login of that user.
    pub async fn revoke(
        &self,
        actor: Option<&str>,
        handle: &str,
        owner: Option<i64>,
        reason: EndReason,
        liveness: Liveness,
    ) -> session_store::Result<Ended> {
        let result: i64 = END
            .evalsha_with_reload(
                self.pool.next(),
                vec![
                    login_key(handle),
                    login_key(actor.unwrap_or("")),
                    ALL_LOGINS.to_string(),
                    USER_LOGINS.to_string(),
                ],
                vec![
                    handle.to_string(),
                    clock::now().to_string(),
                    reason.as_str().to_string(),
                    format!("{PREFIX}session:"),
                    format!("{PREFIX}login:"),
                    actor.unwrap_or("").to_string(),
                    owner.map(|o| o.to_string()).unwrap_or_default(),
                    self.cut_offs(liveness),
                ],
            )
            .await
            .map_err(backend)?;
        Ok(ended(result))
    }

    /// Ends every live login of `user_id` except `keep`, on behalf of `actor` (whose own login
    /// must still be live, checked in the same script): an admin's "end all", "sign out my other
    /// devices", a password change.
    pub async fn end_user_logins(
        &self,
        actor: Option<&str>,
        user_id: i64,
        keep: Option<&str>,
        reason: EndReason,
        liveness: Liveness,
    ) -> session_store::Result<Ended> {
        let result: i64 = END_USER
            .evalsha_with_reload(
                self.pool.next(),
                vec![
                    format!("{USER_LOGINS}{user_id}"),
                    login_key(actor.unwrap_or("")),
                    ALL_LOGINS.to_string(),
                    USER_LOGINS.to_string(),
                ],
                vec![
                    clock::now().to_string(),
                    reason.as_str().to_string(),
                    format!("{PREFIX}session:"),
                    format!("{PREFIX}login:"),
                    actor.unwrap_or("").to_string(),
                    keep.unwrap_or("").to_string(),
                    self.cut_offs(liveness),
                ],
            )
            .await
            .map_err(backend)?;
        Ok(ended(result))
    }

    /// The cut-offs argument of `END_ONE` for `liveness`.
    fn cut_offs(&self, liveness: Liveness) -> String {
        match liveness {
            Liveness::Any => String::new(),
            Liveness::WithinTimeouts => {
                let since = self.policy.live_since(clock::now());
                format!(
                    "{},{},{},{}",
                    since.browser_seen,
                    since.browser_created,
                    since.remembered_seen,
                    since.remembered_created
                )
            }
        }
    }

    /// Records activity on a live login (its "last seen" and its place in the lists).
    pub async fn touch(&self, handle: &str, user_id: i64, at: i64) -> session_store::Result<()> {
        let _: i64 = TOUCH
            .evalsha_with_reload(
                self.pool.next(),
                vec![
                    login_key(handle),
                    ALL_LOGINS.to_string(),
                    format!("{USER_LOGINS}{user_id}"),
                ],
                vec![handle.to_string(), at.to_string()],
            )
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// The live logins in an index, most recent activity first, by the login rule at `now`.
    async fn list(
        &self,
        index: String,
        current: Option<&str>,
    ) -> session_store::Result<Vec<SessionInfo>> {
        type Row = (String, i64, String, String, String, i64, i64, i64);
        let rows: Vec<Row> = LIST
            .evalsha_with_reload(
                self.pool.next(),
                vec![index],
                vec![
                    format!("{PREFIX}login:"),
                    format!("{PREFIX}session:"),
                    ALL_LOGINS.to_string(),
                    USER_LOGINS.to_string(),
                ],
            )
            .await
            .map_err(backend)?;
        let now = clock::now();
        let mut live: Vec<SessionInfo> = rows
            .into_iter()
            .map(
                |(handle, user_id, email, device, ip, created_at, last_seen_at, remembered)| {
                    SessionInfo {
                        current: current == Some(handle.as_str()),
                        handle,
                        user_id,
                        email,
                        device,
                        ip,
                        created_at,
                        last_seen_at,
                        remembered: remembered == 1,
                    }
                },
            )
            .filter(|info| {
                matches!(
                    self.policy.login_state(
                        LoginTimes {
                            created_at: info.created_at,
                            last_seen_at: info.last_seen_at,
                            remembered: info.remembered,
                        },
                        now,
                    ),
                    LoginState::Live { .. }
                )
            })
            .collect();
        live.sort_by(|a, b| {
            (b.last_seen_at, b.created_at, &a.handle).cmp(&(
                a.last_seen_at,
                a.created_at,
                &b.handle,
            ))
        });
        Ok(live)
    }

    /// A user's live logins (their own list), most recent activity first.
    pub async fn list_for_user(
        &self,
        user_id: i64,
        current: Option<&str>,
    ) -> session_store::Result<Vec<SessionInfo>> {
        self.list(format!("{USER_LOGINS}{user_id}"), current).await
    }

    /// One page of every live login (the admin list), optionally those whose email contains
    /// `email_filter` (case-insensitive), and how many there are in all.
    pub async fn list_live(
        &self,
        email_filter: Option<&str>,
        page: i64,
        per_page: i64,
        current: Option<&str>,
    ) -> session_store::Result<(Vec<SessionInfo>, i64)> {
        let filter = email_filter.map(str::to_lowercase);
        let matching: Vec<SessionInfo> = self
            .list(ALL_LOGINS.to_string(), current)
            .await?
            .into_iter()
            .filter(|info| {
                filter
                    .as_ref()
                    .is_none_or(|f| info.email.contains(f.as_str()))
            })
            .collect();
        let total = i64::try_from(matching.len()).unwrap_or(i64::MAX);
        let per_page = usize::try_from(per_page.max(1)).unwrap_or(1);
        let skip = usize::try_from(page.saturating_sub(1).max(0))
            .unwrap_or(0)
            .saturating_mul(per_page);
        Ok((
            matching.into_iter().skip(skip).take(per_page).collect(),
            total,
        ))
    }

    /// Takes a new-session token of `client` (its network: an IPv4 address, an IPv6 /64), or
    /// says how long until it has one — one bucket for every instance that uses this Redis.
    pub async fn take_new_session(
        &self,
        client: &str,
    ) -> session_store::Result<Result<(), Duration>> {
        let wait = self.budget(client, "take").await?;
        Ok(match u64::try_from(wait) {
            Ok(0) | Err(_) => Ok(()),
            Ok(ms) => Err(Duration::from_millis(ms)),
        })
    }

    /// Takes a token whatever the balance (a session was started by a request that was not
    /// expected to start one).
    pub async fn charge_new_session(&self, client: &str) -> session_store::Result<()> {
        self.budget(client, "charge").await.map(|_| ())
    }

    /// Gives back a token taken by a request that started no session after all.
    pub async fn give_back_new_session(&self, client: &str) -> session_store::Result<()> {
        self.budget(client, "give").await.map(|_| ())
    }

    async fn budget(&self, client: &str, change: &str) -> session_store::Result<i64> {
        let interval = self.policy.new_session_interval.as_millis().max(1);
        BUDGET
            .evalsha_with_reload(
                self.pool.next(),
                vec![format!("{PREFIX}budget:new-sessions:{client}")],
                vec![
                    clock::now_ms().to_string(),
                    self.policy.new_sessions_burst.max(1).to_string(),
                    interval.to_string(),
                    change.to_string(),
                ],
            )
            .await
            .map_err(backend)
    }

    /// The login `handle`'s registry entry, while it has not ended: its user and its times
    /// (`None`: ended, or gone with its session).
    pub async fn live_login(&self, handle: &str) -> session_store::Result<Option<LiveLogin>> {
        use fred::interfaces::HashesInterface;
        let fields: Vec<Option<String>> = self
            .pool
            .next()
            .hmget(
                login_key(handle),
                vec!["user", "created", "seen", "remembered", "ended"],
            )
            .await
            .map_err(backend)?;
        let number = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.as_deref())
                .and_then(|v| v.parse::<i64>().ok())
        };
        let ended = fields.get(4).is_some_and(|v| v.is_some());
        match (ended, number(0), number(1), number(2)) {
            (false, Some(user_id), Some(created_at), Some(last_seen_at)) => Ok(Some(LiveLogin {
                user_id,
                times: LoginTimes {
                    created_at,
                    last_seen_at,
                    remembered: number(3) == Some(1),
                },
            })),
            _ => Ok(None),
        }
    }

    /// Counts an anonymous record just created; past the ceiling
    /// (`SessionPolicy::max_anonymous_sessions`), evicts the soonest to expire down to 90 % of
    /// it, as the SQL store does. A failed eviction is tried again by the next creation.
    async fn count_anonymous_created(&self) {
        use std::sync::atomic::Ordering;
        let max = self.policy.max_anonymous_sessions.max(1);
        if self.anonymous.fetch_add(1, Ordering::Relaxed) < max {
            return;
        }
        match self.evict_anonymous().await {
            Ok(left) => self.anonymous.store(left, Ordering::Relaxed),
            Err(error) => tracing::error!(%error, "evicting anonymous sessions failed"),
        }
    }

    /// Forgets expired anonymous records from the index and, past the ceiling, evicts down to
    /// 90 % of it; how many anonymous records are left.
    pub async fn evict_anonymous(&self) -> session_store::Result<u64> {
        let max = self.policy.max_anonymous_sessions.max(1);
        let target = max - max / 10;
        let left: i64 = EVICT
            .evalsha_with_reload(
                self.pool.next(),
                vec![ANONYMOUS.to_string()],
                vec![
                    clock::now_ms().to_string(),
                    max.to_string(),
                    target.to_string(),
                    format!("{PREFIX}session:"),
                ],
            )
            .await
            .map_err(backend)?;
        Ok(u64::try_from(left).unwrap_or(0))
    }

    /// The stored record and its bytes (for [`RedisSessions::swap`]).
    pub async fn load_bytes(&self, id: &Id) -> session_store::Result<Option<(Record, Vec<u8>)>> {
        let bytes: Option<Vec<u8>> = self
            .pool
            .next()
            .get(session_key(&storage_key(id)))
            .await
            .map_err(backend)?;
        match bytes {
            None => Ok(None),
            Some(bytes) => {
                let record = decode_record(*id, &bytes)
                    .map_err(|e| session_store::Error::Decode(e.to_string()))?;
                Ok(Some((record, bytes)))
            }
        }
    }

    /// Writes `record` over the stored one only if that is still exactly `expected` (as read
    /// by [`RedisSessions::load_bytes`]), and while its login (if any) is live. Whether it was
    /// written: false means someone else wrote or deleted it first — read again and redo.
    pub async fn swap(&self, record: &Record, expected: &[u8]) -> session_store::Result<bool> {
        self.write(record, Some(expected)).await
    }

    async fn write(&self, record: &Record, expected: Option<&[u8]>) -> session_store::Result<bool> {
        let hash = storage_key(&record.id);
        let expiry = stored_expiry(&self.policy, &record.data, record.expiry_date);
        let keys = record_keys(&hash, login_of(&record.data).as_ref());
        let args: Vec<fred::types::Value> = vec![
            bytes(&encode(record)?),
            clock::millis(expiry).into(),
            bytes(expected.unwrap_or_default()),
            hash.into(),
        ];
        let written: i64 = SAVE
            .evalsha_with_reload(self.pool.next(), keys, args)
            .await
            .map_err(backend)?;
        Ok(written == 1)
    }
}

#[async_trait]
impl SessionStore for RedisSessions {
    /// Stores a new record under a fresh ID (`SET … NX`); a login only while its entry is live
    /// (else the record is stored without it, cart included, with a message for the shopper).
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        record.expiry_date = created_expiry(&self.policy, &record.data, record.expiry_date);
        let login = login_of(&record.data);
        // What is stored instead if the login has ended meanwhile.
        let signed_out = login.as_ref().map(|_| {
            let mut data = record.data.clone();
            sign_out_ended_login(&mut data);
            data
        });
        let signed_out_bytes = match &signed_out {
            Some(data) => encode(&Record {
                id: record.id,
                data: data.clone(),
                expiry_date: record.expiry_date,
            })?,
            None => Vec::new(),
        };
        // The ID is not in the stored bytes: a new ID after a collision stores the same ones.
        let stored = encode(record)?;
        loop {
            let hash = storage_key(&record.id);
            let args: Vec<fred::types::Value> = vec![
                bytes(&stored),
                clock::millis(record.expiry_date).into(),
                bytes(&signed_out_bytes),
                login.as_ref().map(|u| u.id).unwrap_or(0).to_string().into(),
                hash.clone().into(),
            ];
            let created: i64 = CREATE
                .evalsha_with_reload(self.pool.next(), record_keys(&hash, login.as_ref()), args)
                .await
                .map_err(backend)?;
            let anonymous = match created {
                0 => {
                    record.id = Id::default();
                    continue;
                }
                2 => {
                    if let (Some(user), Some(data)) = (&login, signed_out) {
                        tracing::warn!(handle = %user.handle, "not storing a login whose session has ended");
                        record.data = data;
                    }
                    true
                }
                _ => login.is_none(),
            };
            if anonymous {
                self.count_anonymous_created().await;
            }
            return Ok(());
        }
    }

    /// Never recreates a record deleted while its request ran (logout, revocation, expiry).
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        if !self.write(record, None).await? {
            tracing::info!("not saving a session that no longer exists");
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.load_bytes(id).await?.map(|(record, _)| record))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        use fred::interfaces::SortedSetsInterface;
        let hash = storage_key(id);
        let client = self.pool.next();
        let _: i64 = client.del(session_key(&hash)).await.map_err(backend)?;
        // A member left behind (the connection lost in between) goes with the next eviction.
        let _: i64 = client.zrem(ANONYMOUS, hash).await.map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn a_shown_url_never_holds_the_password() {
        assert_eq!(
            redacted("redis://:s3cret@cache.internal:6380/2"),
            "redis://:***@cache.internal:6380/2"
        );
        assert_eq!(
            redacted("rediss://shop:s3cret@cache.internal"),
            "rediss://shop:***@cache.internal"
        );
        assert_eq!(redacted("redis://s3cret@host"), "redis://***@host");
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redacted("redis://u:p@ss@host/0"),
            "redis://u:***@host/0",
            "the last @ ends the user part"
        );
        assert!(!redacted("not a url s3cret").contains("s3cret"));
    }
}
