//! What the session store holds, read the same way whichever store the run keeps sessions in
//! (the SQL database, or Redis in a `.ci/with-redis` run): so the tests that look at what is
//! stored check the store the server really used.

use super::session_store_url_for;
use fred::interfaces::{ClientLike, HashesInterface, KeysInterface};
use std::collections::HashMap;

const SESSIONS: &str = "coatcheck:session:";
const LOGINS: &str = "coatcheck:login:";

/// A client of the Redis database of `database_url`'s servers, in a Redis run.
async fn redis(database_url: &str) -> Option<fred::clients::Client> {
    let url = session_store_url_for(database_url)?;
    let config = fred::prelude::Config::from_url(&url).expect("a Redis URL");
    let client = fred::prelude::Builder::from_config(config)
        .build()
        .expect("client");
    client.init().await.expect("the test Redis answers");
    Some(client)
}

async fn keys(client: &fred::clients::Client, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = client
        .custom(
            fred::types::CustomCommand::new_static("KEYS", None, false),
            vec![format!("{prefix}*")],
        )
        .await
        .expect("KEYS");
    keys.sort();
    keys
}

/// Every stored session record: its key (the hash of its ID) and its bytes, by key.
pub async fn stored_records(database_url: &str) -> Vec<(String, Vec<u8>)> {
    if let Some(client) = redis(database_url).await {
        let mut records = Vec::new();
        for key in keys(&client, SESSIONS).await {
            let bytes: Option<Vec<u8>> = client.get(&key).await.expect("GET");
            if let Some(bytes) = bytes {
                records.push((key[SESSIONS.len()..].to_string(), bytes));
            }
        }
        let _ = client.quit().await;
        return records;
    }
    let db = app::server::db::connect(database_url).await.expect("db");
    let records = app::on_db!(&db, p => sqlx::query_as(
        "SELECT id, data FROM tower_sessions ORDER BY id"
    )
    .fetch_all(p)
    .await)
    .expect("records");
    db.close().await;
    records
}

/// How many session records are stored.
pub async fn stored_count(database_url: &str) -> i64 {
    stored_records(database_url).await.len() as i64
}

/// How many stored records carry no login.
pub async fn anonymous_count(database_url: &str) -> i64 {
    stored_records(database_url)
        .await
        .iter()
        .filter(|(_, bytes)| {
            let record: tower_sessions::session::Record =
                rmp_serde::from_slice(bytes).expect("a record");
            !record.data.contains_key("user")
        })
        .count() as i64
}

/// Whether the record under this key (`session::storage_key`) is stored.
pub async fn is_stored(database_url: &str, key: &str) -> bool {
    stored_records(database_url)
        .await
        .iter()
        .any(|(stored, _)| stored == key)
}

/// The stored records' expiry times, earliest first.
pub async fn stored_expiries(database_url: &str) -> Vec<time::OffsetDateTime> {
    if let Some(client) = redis(database_url).await {
        let mut expiries = Vec::new();
        for key in keys(&client, SESSIONS).await {
            let ms: i64 = client
                .custom(
                    fred::types::CustomCommand::new_static("PEXPIRETIME", None, false),
                    vec![key],
                )
                .await
                .expect("PEXPIRETIME");
            expiries.push(
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
                    .expect("a time"),
            );
        }
        let _ = client.quit().await;
        expiries.sort();
        return expiries;
    }
    let db = app::server::db::connect(database_url).await.expect("db");
    let expiries = app::on_db!(&db, p => sqlx::query_scalar(
        "SELECT expiry_date FROM tower_sessions ORDER BY expiry_date"
    )
    .fetch_all(p)
    .await)
    .expect("expiries");
    db.close().await;
    expiries
}

/// One login's registry entry: its session's key while it is live, its end reason once ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Login {
    pub handle: String,
    pub session: Option<String>,
    pub end_reason: Option<String>,
}

/// Every login in the registry (live and ended), by handle.
pub async fn logins(database_url: &str) -> Vec<Login> {
    if let Some(client) = redis(database_url).await {
        let mut logins = Vec::new();
        for key in keys(&client, LOGINS).await {
            let fields: HashMap<String, String> = client.hgetall(&key).await.expect("HGETALL");
            let ended = fields.contains_key("ended");
            logins.push(Login {
                handle: key[LOGINS.len()..].to_string(),
                session: fields.get("session").filter(|_| !ended).cloned(),
                end_reason: fields.get("reason").filter(|_| ended).cloned(),
            });
        }
        let _ = client.quit().await;
        return logins;
    }
    let db = app::server::db::connect(database_url).await.expect("db");
    type Row = (String, Option<String>, Option<i64>, Option<String>);
    let rows: Vec<Row> = app::on_db!(&db, p => sqlx::query_as(
        "SELECT handle, session_id, ended_at, end_reason FROM session_registry ORDER BY handle"
    )
    .fetch_all(p)
    .await)
    .expect("registry");
    db.close().await;
    rows.into_iter()
        .map(|(handle, session, ended_at, end_reason)| Login {
            handle,
            session: session.filter(|_| ended_at.is_none()),
            end_reason: end_reason.filter(|_| ended_at.is_some()),
        })
        .collect()
}

/// How many logins have not ended (timed-out ones included: only their next request ends them).
pub async fn open_logins(database_url: &str) -> i64 {
    logins(database_url)
        .await
        .iter()
        .filter(|login| login.end_reason.is_none())
        .count() as i64
}

/// The end reasons of the ended logins.
pub async fn end_reasons(database_url: &str) -> Vec<String> {
    logins(database_url)
        .await
        .into_iter()
        .filter_map(|login| login.end_reason)
        .collect()
}
