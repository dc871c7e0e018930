//! What a session holds, and the only code that knows how: the keys are private, and everything
//! else reads and changes a session through the typed operations here — on the request's copy
//! of the session ([`current_user`], [`cart`], [`last_seen`], [`cycle_session_on_login`], …), on
//! a stored record being changed atomically ([`Contents`], inside a
//! [`change`](super::change)), and on a record in the store
//! ([`login_of`], [`sign_out_record`]).
//!
//! How records are encoded and stored is the store's business (`store`); how a change
//! is made atomic, the change types' (`change`).

use crate::model::{Flash, StoredCart};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::HashMap;
use tower_sessions::Session;

/// The cart (`StoredCart`).
const CART: &str = "cart";
/// The login (`AuthUser`).
const USER: &str = "user";
/// A message for the next page (`Flash`), shown once.
const FLASH: &str = "flash";
/// Unix seconds of the last recorded activity (updated at most once per touch interval).
const SEEN: &str = "seen";
/// Unix seconds of the last password entry (a login, a confirmation, a password change) or
/// sensitive action: the sudo window runs from it (`SessionPolicy::sudo_allows`). It lives and
/// dies with the login, in the session, on every store.
const SUDO: &str = "sudo";
/// The cart's version: new at each change of the cart (random, so unique per session too).
/// An order placed from a cart in another store records it (`orders::place_on_redis`).
const CART_VERSION: &str = "cart_version";

/// The login stored in the session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthUser {
    pub id: i64,
    pub email: String,
    pub is_admin: bool,
    /// The registry handle of this login (opaque; never the session ID).
    pub handle: String,
    /// Unix seconds of the login, for the absolute timeout.
    pub logged_in_at: i64,
    /// "Keep me signed in": a persistent cookie and the long timeouts. Logins stored before
    /// the choice existed read as not remembered (the short timeouts they always had).
    #[serde(default)]
    pub remembered: bool,
    /// The client the login is bound to (see `SessionPolicy::binding`); logins stored before
    /// binding existed have none and are not checked.
    #[serde(default)]
    pub client: Option<BoundClient>,
}

/// What a login is bound to: the browser family (a version change is not a change) and the
/// network (IPv4 /16, IPv6 /48) of the client address, as resolved through trusted proxies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundClient {
    pub browser: String,
    pub network: String,
}

impl BoundClient {
    /// The client of a request with `user_agent` from `ip`.
    pub fn of(user_agent: &str, ip: Option<std::net::IpAddr>) -> BoundClient {
        let browser = woothee::parser::Parser::new()
            .parse(user_agent)
            .map(|ua| ua.name)
            .filter(|name| *name != "UNKNOWN")
            .unwrap_or("Unknown browser")
            .to_string();
        let network = match ip.map(|ip| ip.to_canonical()) {
            Some(std::net::IpAddr::V4(v4)) => {
                let [a, b, _, _] = v4.octets();
                format!("{a}.{b}.0.0/16")
            }
            Some(std::net::IpAddr::V6(v6)) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
            None => "unknown network".to_string(),
        };
        BoundClient { browser, network }
    }
}

impl std::fmt::Display for BoundClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {}", self.browser, self.network)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store: {0}")]
    Store(#[from] tower_sessions::session::Error),
    #[error("session database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("session record encoding: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("session record decoding: {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("session value: {0}")]
    Value(#[from] serde_json::Error),
    #[error("timed out waiting to write the session")]
    Busy,
    /// The SQLite session writer's connection failed (`writer`).
    #[error("session writer: {0}")]
    Writer(String),
    /// A compare-and-swap found the record changed between its read and its write.
    #[error("the session changed while it was being written")]
    Conflict,
    /// The login an action was to run for has ended (revoked, logged out, timed out).
    #[error("the login has ended")]
    LoginEnded,
}

impl From<tower_sessions::session_store::Error> for SessionError {
    fn from(error: tower_sessions::session_store::Error) -> SessionError {
        SessionError::Store(tower_sessions::session::Error::Store(error))
    }
}

// ---- the request's copy ----------------------------------------------------------------------

/// Reads a typed value from the request's session; a malformed value reads as absent.
async fn read<T: DeserializeOwned>(
    session: &Session,
    key: &str,
) -> Result<Option<T>, SessionError> {
    match session.get_value(key).await? {
        None => Ok(None),
        Some(value) => Ok(serde_json::from_value(value).ok()),
    }
}

pub async fn current_user(session: &Session) -> Result<Option<AuthUser>, SessionError> {
    read(session, USER).await
}

pub async fn cart(session: &Session) -> Result<StoredCart, SessionError> {
    Ok(read(session, CART).await?.unwrap_or_default())
}

/// Unix seconds of the session's last recorded activity.
pub async fn last_seen(session: &Session) -> Result<Option<i64>, SessionError> {
    read(session, SEEN).await
}

/// Whether a flash message waits in the request's copy.
pub async fn has_flash(session: &Session) -> Result<bool, SessionError> {
    Ok(session.get_value(FLASH).await?.is_some())
}

/// What a catalog or product page shows of the session — the login and the cart, exactly as
/// stored — as text, for a page-cache key. `None` while a flash message waits (a page that
/// shows one is never cached).
pub async fn page_view_key(session: &Session) -> Result<Option<String>, SessionError> {
    if has_flash(session).await? {
        return Ok(None);
    }
    let mut key = String::new();
    for name in [USER, CART] {
        key.push('\n');
        if let Some(value) = session.get_value(name).await? {
            key.push_str(&value.to_string());
        }
    }
    Ok(Some(key))
}

/// Logs a user in: a new session ID (the old one is deleted from the store at once, so a
/// fixated or stolen pre-login ID is useless), the cart kept.
pub async fn cycle_session_on_login(
    session: &Session,
    user: &AuthUser,
) -> Result<(), SessionError> {
    session.cycle_id().await?;
    session.insert(USER, user).await?;
    session.insert(SEEN, user.logged_in_at).await?;
    session.insert(SUDO, user.logged_in_at).await?;
    Ok(())
}

/// Rotates the session ID, keeping everything (after a password change).
pub async fn rotate_id(session: &Session) -> Result<(), SessionError> {
    session.cycle_id().await?;
    Ok(())
}

/// Starts the sudo window at `now` in the request's copy only: for a session whose ID was just
/// rotated (after a password change), which exists only in this request.
pub async fn enter_sudo_in_memory(session: &Session, now: i64) -> Result<(), SessionError> {
    session.insert(SUDO, now).await?;
    Ok(())
}

/// Logs out: deletes the session from the store and clears the cookie.
pub async fn destroy_session(session: &Session) -> Result<(), SessionError> {
    session.flush().await?;
    Ok(())
}

/// Takes the flash message out of the request's copy only: for a session that exists only in
/// this request (its ID just rotated, or not stored yet), which nobody else can write to.
pub async fn take_flash_in_memory(session: &Session) -> Option<Flash> {
    session.remove::<Flash>(FLASH).await.ok().flatten()
}

// ---- a stored record -------------------------------------------------------------------------

type Data = HashMap<String, serde_json::Value>;

/// The login a stored record carries, if any.
pub fn login_of(data: &Data) -> Option<AuthUser> {
    data.get(USER)
        .and_then(|v| serde_json::from_value::<AuthUser>(v.clone()).ok())
}

/// The expiry a record is stored with: `proposed` (the session's own, by its idle timeout),
/// but for a login without "Keep me signed in" no later than that login's deadline (by the
/// login rule) plus [`SessionPolicy::after_login_grace`] — never tower-sessions' 14 days for a
/// cookie that ends with the browser.
pub fn stored_expiry(
    policy: &super::policy::SessionPolicy,
    data: &Data,
    proposed: time::OffsetDateTime,
) -> time::OffsetDateTime {
    let Some(user) = login_of(data).filter(|user| !user.remembered) else {
        return proposed;
    };
    let seen = data
        .get(SEEN)
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(user.logged_in_at);
    let deadline = policy.login_deadline(super::policy::LoginTimes {
        created_at: user.logged_in_at,
        last_seen_at: seen.max(user.logged_in_at),
        remembered: false,
    });
    match time::OffsetDateTime::from_unix_timestamp(
        deadline.saturating_add(policy.after_login_grace()),
    ) {
        Ok(latest) => proposed.min(latest),
        Err(_) => proposed,
    }
}

/// The expiry a new record is stored with: [`stored_expiry`], and for an anonymous session no
/// later than the first-idle timeout from now (its next request gives it the full idle timeout).
pub fn created_expiry(
    policy: &super::policy::SessionPolicy,
    data: &Data,
    proposed: time::OffsetDateTime,
) -> time::OffsetDateTime {
    let expiry = stored_expiry(policy, data, proposed);
    if login_of(data).is_some() {
        return expiry;
    }
    let first_idle = time::Duration::try_from(policy.anonymous_first_idle_timeout)
        .unwrap_or(time::Duration::DAY);
    expiry.min(super::clock::now_utc() + first_idle)
}

/// The number of items in a stored record's cart (0 without a cart or with one unreadable).
pub fn cart_items_of(data: &Data) -> i64 {
    data.get(CART)
        .and_then(|v| serde_json::from_value::<StoredCart>(v.clone()).ok())
        .map(|cart| i64::from(cart.item_count()))
        .unwrap_or(0)
}

/// Removes from a record being stored a login that ended meanwhile (revoked, logged out,
/// ended by a password change), with the message that says so (the cart stays).
pub fn sign_out_ended_login(data: &mut Data) {
    sign_out_record(
        data,
        &Flash::error("You were signed out. Please log in again."),
    );
}

/// Removes the login from a stored record, with a message for the shopper (the cart stays).
pub fn sign_out_record(data: &mut Data, flash: &Flash) {
    data.remove(USER);
    data.remove(SUDO);
    if let Ok(value) = serde_json::to_value(flash) {
        data.insert(FLASH.to_string(), value);
    }
}

// ---- a record being changed ------------------------------------------------------------------

/// A session's stored data while a change holds it: the record as read, or — for a visitor
/// without a stored session — the values to store.
#[derive(Debug, Default)]
pub struct Contents {
    /// The stored data, or `None` when this visitor has no stored session yet.
    data: Option<Data>,
    /// Values to write when there is no stored record yet (a brand-new session, which no
    /// other request can know about, so the session layer may create it).
    pending: Vec<(String, serde_json::Value)>,
    /// The stored data was taken out to be saved ([`Contents::take_data`]).
    saved: bool,
}

impl Contents {
    pub(super) fn stored(data: Option<Data>) -> Contents {
        Contents {
            data,
            pending: Vec::new(),
            saved: false,
        }
    }

    /// Takes the changed stored data out, for saving; `None` when there is no stored record.
    /// What remains is only good for [`Contents::into_request_copy`].
    pub(super) fn take_data(&mut self) -> Option<Data> {
        let data = self.data.take();
        self.saved = data.is_some();
        data
    }

    fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let pending = self
            .pending
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v);
        let value = pending.or_else(|| self.data.as_ref().and_then(|d| d.get(key)))?;
        serde_json::from_value(value.clone()).ok()
    }

    fn set<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), SessionError> {
        let value = serde_json::to_value(value)?;
        match self.data.as_mut() {
            Some(data) => {
                data.insert(key.to_string(), value);
            }
            None => self.pending.push((key.to_string(), value)),
        }
        Ok(())
    }

    fn remove(&mut self, key: &str) {
        if let Some(data) = self.data.as_mut() {
            data.remove(key);
        }
        self.pending.retain(|(k, _)| k != key);
    }

    /// Whether the session has a stored record (an anonymous visitor may not).
    pub fn exists(&self) -> bool {
        self.data.is_some()
    }

    pub fn cart(&self) -> StoredCart {
        self.get(CART).unwrap_or_default()
    }

    pub fn set_cart(&mut self, cart: &StoredCart) -> Result<(), SessionError> {
        self.set(CART_VERSION, &super::login_rows::new_handle())?;
        self.set(CART, cart)
    }

    /// The cart's version (`None`: a cart stored before carts had one, or no cart).
    pub fn cart_version(&self) -> Option<String> {
        self.get(CART_VERSION)
    }

    pub fn set_flash(&mut self, flash: &Flash) -> Result<(), SessionError> {
        self.set(FLASH, flash)
    }

    pub fn take_flash(&mut self) -> Option<Flash> {
        let flash = self.get(FLASH);
        self.remove(FLASH);
        flash
    }

    pub fn login(&self) -> Option<AuthUser> {
        self.get(USER)
    }

    pub fn set_login(&mut self, login: &AuthUser) -> Result<(), SessionError> {
        self.set(USER, login)
    }

    /// Drops the login (the cart stays), with a message for the shopper.
    pub fn sign_out(&mut self, flash: &Flash) -> Result<(), SessionError> {
        self.remove(USER);
        self.remove(SUDO);
        self.set_flash(flash)
    }

    /// When the password was last entered (or a sensitive action done) in this login.
    pub fn sudo_since(&self) -> Option<i64> {
        self.get(SUDO)
    }

    /// Starts (or restarts) the sudo window at `now`.
    pub fn enter_sudo(&mut self, now: i64) -> Result<(), SessionError> {
        self.set(SUDO, &now)
    }

    /// Ends the sudo window: the next sensitive action asks for the password.
    pub fn end_sudo(&mut self) {
        self.remove(SUDO);
    }

    pub fn mark_seen(&mut self, now: i64) -> Result<(), SessionError> {
        self.set(SEEN, &now)
    }

    /// After the change is stored: the request's copy follows it. With a stored record, the
    /// copy is reloaded from the store without being marked modified (the stored record is the
    /// truth; the session layer has nothing stale to write back) — unless `always` is false
    /// and the copy is not empty (the change was the last thing the request does with its
    /// session). Without one, the pending values go into the copy, and the session layer
    /// creates the record.
    /// Makes these contents the request's copy, to be stored by the session layer at the end
    /// of the request (under a new ID after `cycle_id`): for a record deleted meanwhile whose
    /// data must live on (a timed-out login's cart, on Redis).
    pub(super) async fn replace_request_copy(self, session: &Session) -> Result<(), SessionError> {
        session.clear().await;
        for (key, value) in self
            .data
            .unwrap_or_default()
            .into_iter()
            .chain(self.pending)
        {
            session.insert_value(&key, value).await?;
        }
        Ok(())
    }

    pub(super) async fn into_request_copy(
        self,
        session: &Session,
        always: bool,
    ) -> Result<(), SessionError> {
        if self.saved || self.data.is_some() {
            if always || session.is_empty().await {
                session.load().await?;
            }
        } else {
            for (key, value) in self.pending {
                session.insert_value(&key, value).await?;
            }
        }
        Ok(())
    }
}
