//! The session: everything about a shopper's session and login, in one place.
//!
//! The surface is what is re-exported here (the submodules the shop's own server functions
//! reach into are crate-private): the typed operations on a request's
//! session (its login, its cart, its flash message: [`contents`]), the policy of timeouts
//! ([`SessionPolicy`]), the atomic writes ([`SessionWrites`], [`SessionTx`]), the store
//! ([`ShopSessionStore`]), the hub that tells open pages that their login ended
//! ([`SessionEvents`]) and the session error ([`SessionError`]). Inside:
//!
//! - `contents`: what a session holds, behind typed operations (the keys are private);
//! - `change`: atomic changes of a stored session (a transaction with a row lock on
//!   PostgreSQL, compare-and-swap on SQLite);
//! - `record`: a stored record's key (its ID's hash) and encoding, on every backend;
//! - `login_rows`: a login's handle, start, end reason and actor, and its SQL registry row's
//!   links and locks (used inside the store's, the changes' and the timeouts' transactions);
//! - `store`: tower-sessions' `SessionStore`, hashed IDs, the registry-guarded save, the sweep;
//! - `redis`: the same on Redis or Valkey (records, registry entries, scripts);
//! - `registry`: the logins of a user or of the shop, listed and ended (revocation, logout,
//!   password change, the API) on either backend, with the audit log;
//! - `clock`: the one clock all of it reads (movable in tests);
//! - `policy`: the login timeouts and the one rule that says what state a login is in;
//! - `timeouts`: that rule applied to every request (demotion, activity);
//! - `events`: the hub of open pages waiting to hear that their login ended;
//! - `budget`: the new-session budget per client network;
//! - `layer`: the session layer, which runs all of it around a request, in order;
//! - `security_log`: each account's own log of what happened to its logins;
//! - `writer`: the SQLite session writer (a cart change in one hand-off, batched).

mod budget;
pub(crate) mod change;
pub mod clock;
mod contents;
pub(crate) mod events;
mod gauges;
mod layer;
mod login_rows;
pub(crate) mod policy;
mod record;
mod redis;
pub(crate) mod registry;
pub mod security_log;
pub(crate) mod store;
mod timeouts;
mod writer;

pub use change::{SessionTx, SessionWrites};
pub use contents::*;
pub use events::{
    login_row, LoginRow, SessionEvents, StreamLimits, SubscribeError, Subscription, Wake,
};
pub use gauges::live_sessions;
pub use layer::{cookie_name, SessionLayer};
pub use login_rows::{describe_device, new_handle, Actor, EndReason, NewSession};
pub use policy::{Binding, LoginState, LoginTimes, SessionPolicy};
pub use record::storage_key;
pub use redis::{
    redacted, Ended, EndedLogins, EndedNotice, LiveLogin, Liveness, RedisSessions, StartError,
};
pub use registry::{
    end_by_api, end_login, end_user_by_api, list_after, record_login, revoke, Revoked,
};
pub use store::{sweep_expired_forever, ShopSessionStore};
