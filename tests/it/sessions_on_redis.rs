//! The Redis session store on a private Redis server: what it refuses at start-up, what it
//! keeps at rest, and each guarantee of the SQL store kept by its scripts — hashed keys, no
//! save over a deleted session, a login stored only while its entry is live, ending a login in
//! one step, compare-and-swap under concurrent writers on two instances, expiry by Redis's own
//! TTL, scripts reloaded after a flush, and no acknowledged write lost across a SIGKILL.

use crate::common::{free_port, PrivateRedis};
use app::server::session::{
    storage_key, AuthUser, EndReason, Ended, Liveness, NewSession, RedisSessions, SessionPolicy,
    StartError,
};
use fred::interfaces::{ClientLike, HashesInterface, KeysInterface, SortedSetsInterface};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::SessionStore;

async fn store(redis: &PrivateRedis) -> RedisSessions {
    RedisSessions::connect(&redis.url(), &SessionPolicy::default())
        .await
        .expect("the store connects to a noeviction Redis")
}

fn record(data: HashMap<String, Value>) -> Record {
    Record {
        id: Id::default(),
        data,
        expiry_date: OffsetDateTime::now_utc() + time::Duration::hours(1),
    }
}

fn with_cart(items: u32) -> HashMap<String, Value> {
    HashMap::from([(
        "cart".to_string(),
        json!({ "lines": [{ "product_id": 1, "quantity": items }] }),
    )])
}

fn login(handle: &str, user_id: i64) -> AuthUser {
    AuthUser {
        id: user_id,
        email: "shopper@example.com".into(),
        is_admin: false,
        handle: handle.into(),
        logged_in_at: app::server::session::clock::now(),
        remembered: false,
        client: None,
    }
}

fn with_login(user: &AuthUser) -> HashMap<String, Value> {
    let mut data = with_cart(2);
    data.insert("user".into(), serde_json::to_value(user).expect("json"));
    data
}

async fn register(store: &RedisSessions, handle: &str, user_id: i64) {
    store
        .record_login(
            NewSession {
                handle,
                user_id,
                ip: "192.0.2.7",
                user_agent:
                    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                remembered: false,
            },
            &format!("User{user_id}@Example.com"),
        )
        .await
        .expect("entry recorded");
}

/// A login recorded and its session stored with it: the session's ID.
async fn logged_in(store: &RedisSessions, handle: &str, user_id: i64) -> Id {
    register(store, handle, user_id).await;
    let mut session = record(with_login(&login(handle, user_id)));
    store.create(&mut session).await.expect("created");
    assert!(session.data.contains_key("user"), "stored with its login");
    session.id
}

/// Every key and every value in the server, as bytes.
async fn everything_stored(store: &RedisSessions) -> Vec<Vec<u8>> {
    let client = store.pool().next();
    let keys: Vec<String> = client
        .custom(
            fred::types::CustomCommand::new_static("KEYS", None, false),
            vec!["*"],
        )
        .await
        .expect("KEYS");
    let mut all = Vec::new();
    for key in keys {
        let kind: String = client.r#type(&key).await.expect("TYPE");
        match kind.as_str() {
            "string" => all.push(client.get::<Vec<u8>, _>(&key).await.expect("GET")),
            "hash" => {
                let fields: HashMap<String, String> = client.hgetall(&key).await.expect("HGETALL");
                for (field, value) in fields {
                    all.push(field.into_bytes());
                    all.push(value.into_bytes());
                }
            }
            "zset" => {
                let members: Vec<String> = client
                    .zrange(&key, 0, -1, None, false, None, false)
                    .await
                    .expect("ZRANGE");
                all.extend(members.into_iter().map(String::into_bytes));
            }
            other => panic!("unexpected {other} at {key}"),
        }
        all.push(key.into_bytes());
    }
    all
}

/// One increment of the record's `count` by compare-and-swap: the new count, or `None` when
/// another writer got there first (read again and redo).
async fn increment(
    store: &RedisSessions,
    id: &Id,
) -> tower_sessions::session_store::Result<Option<i64>> {
    use tower_sessions::session_store::Error;
    let (mut record, bytes) = store
        .load_bytes(id)
        .await?
        .ok_or_else(|| Error::Backend("the session is gone".into()))?;
    let count = record.data["count"]
        .as_i64()
        .ok_or_else(|| Error::Decode("no count".into()))?
        + 1;
    record.data.insert("count".into(), json!(count));
    Ok(store.swap(&record, &bytes).await?.then_some(count))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_redis_that_may_evict_keys_is_refused_at_start() {
    let redis = PrivateRedis::start_with_eviction("allkeys-lru");
    let error = RedisSessions::connect(&redis.url(), &SessionPolicy::default())
        .await
        .expect_err("an evicting Redis is refused");
    let line = error.to_string();
    assert!(matches!(error, StartError::Evicting { .. }), "{line}");
    assert!(
        line.contains("noeviction") && line.contains("allkeys-lru"),
        "{line}"
    );
    assert!(
        line.contains(&format!("127.0.0.1:{}", redis.port())),
        "names the store: {line}"
    );
    assert!(!line.contains('\n'), "one line: {line}");
}

#[tokio::test]
async fn an_unreachable_redis_is_one_line_that_never_shows_its_password() {
    let port = free_port();
    let url = format!("redis://shop:s3cret-pass@127.0.0.1:{port}/0");
    let error = RedisSessions::connect(&url, &SessionPolicy::default())
        .await
        .expect_err("nothing listens there");
    let line = error.to_string();
    assert!(matches!(error, StartError::Unreachable { .. }), "{line}");
    assert!(
        line.contains(&format!("redis://shop:***@127.0.0.1:{port}/0")),
        "{line}"
    );
    assert!(!line.contains("s3cret"), "no password: {line}");
    assert!(!line.contains('\n'), "one line: {line}");

    let error = RedisSessions::connect("http://127.0.0.1/", &SessionPolicy::default())
        .await
        .expect_err("not a Redis URL");
    assert!(matches!(error, StartError::Url { .. }), "{error}");
}

#[tokio::test]
async fn session_ids_are_hashed_at_rest_on_redis() {
    let redis = PrivateRedis::start();
    let store = store(&redis).await;
    register(&store, "h-hashed", 7).await;
    let mut anonymous = record(with_cart(3));
    store.create(&mut anonymous).await.expect("created");
    let mut logged_in = record(with_login(&login("h-hashed", 7)));
    store.create(&mut logged_in).await.expect("created");

    let stored = everything_stored(&store).await;
    assert!(
        stored.len() > 4,
        "the records, the entry and its indexes are there"
    );
    for id in [anonymous.id, logged_in.id] {
        let cookie = id.to_string();
        let raw = id.0.to_le_bytes();
        for value in &stored {
            assert!(
                !contains(value, cookie.as_bytes()),
                "the cookie's ID is stored"
            );
            assert!(!contains(value, &raw), "the ID's bytes are stored");
        }
        assert!(
            stored
                .iter()
                .any(|v| contains(v, storage_key(&id).as_bytes())),
            "stored under the ID's hash"
        );
    }
    let loaded = store
        .load(&anonymous.id)
        .await
        .expect("load")
        .expect("there");
    assert_eq!(loaded.id, anonymous.id);
    assert_eq!(loaded.data, anonymous.data, "the cart read back");
    assert_eq!(
        store.load(&Id::default()).await.expect("load"),
        None,
        "unknown ID"
    );
}

#[tokio::test]
async fn a_save_never_brings_back_a_deleted_session() {
    let redis = PrivateRedis::start();
    let store = store(&redis).await;
    let mut session = record(with_cart(1));
    store.create(&mut session).await.expect("created");
    store.delete(&session.id).await.expect("deleted (logout)");
    // The request that was running meanwhile ends and saves its copy.
    session.data = with_cart(5);
    store
        .save(&session)
        .await
        .expect("a save of a gone session is no error");
    assert_eq!(store.load(&session.id).await.expect("load"), None);
}

#[tokio::test]
async fn a_login_is_stored_only_while_its_entry_is_live_and_ending_it_is_one_step() {
    let redis = PrivateRedis::start();
    let store = store(&redis).await;
    let user = login("h-live", 42);
    register(&store, "h-live", 42).await;

    let mut session = record(with_login(&user));
    store.create(&mut session).await.expect("created");
    let loaded = store
        .load(&session.id)
        .await
        .expect("load")
        .expect("stored");
    assert!(loaded.data.contains_key("user"), "the login is stored");
    let client = store.pool().next();
    let entry: HashMap<String, String> = client
        .hgetall("coatcheck:login:h-live")
        .await
        .expect("entry");
    assert_eq!(entry.get("session"), Some(&storage_key(&session.id)));
    assert_eq!(
        entry.get("device").map(String::as_str),
        Some("Firefox on Linux")
    );

    // A request in flight read the record before the logout.
    let (_, read_before) = store
        .load_bytes(&session.id)
        .await
        .expect("load")
        .expect("stored");

    assert!(store
        .end_login("h-live", EndReason::Logout)
        .await
        .expect("ended"));
    assert!(
        !store
            .end_login("h-live", EndReason::Revoked)
            .await
            .expect("no error"),
        "ended once"
    );
    assert_eq!(
        store.load(&session.id).await.expect("load"),
        None,
        "session deleted"
    );
    let entry: HashMap<String, String> = client
        .hgetall("coatcheck:login:h-live")
        .await
        .expect("entry");
    assert_eq!(entry.get("reason").map(String::as_str), Some("logout"));
    assert!(!entry.contains_key("session"));
    let listed: Vec<String> = client
        .zrange("coatcheck:logins", 0, -1, None, false, None, false)
        .await
        .expect("index");
    assert!(
        listed.is_empty(),
        "an ended login is listed nowhere: {listed:?}"
    );

    // The request in flight cannot bring the login back: not by a save, not by a swap, not by
    // storing it under a new ID (a rotation).
    store.save(&session).await.expect("no error");
    assert!(!store.swap(&session, &read_before).await.expect("no error"));
    assert_eq!(store.load(&session.id).await.expect("load"), None);
    let mut rotated = record(with_login(&user));
    store
        .create(&mut rotated)
        .await
        .expect("stored, without the login");
    let stored = store.load(&rotated.id).await.expect("load").expect("kept");
    assert!(!stored.data.contains_key("user"), "no login");
    assert!(stored.data.contains_key("cart"), "the cart is kept");
    assert!(
        !rotated.data.contains_key("user"),
        "the caller's copy says so too"
    );

    // A login of another user cannot take this entry over either.
    register(&store, "h-other", 43).await;
    let mut forged = record(with_login(&login("h-other", 42)));
    store
        .create(&mut forged)
        .await
        .expect("stored, without the login");
    assert!(!forged.data.contains_key("user"));
}

#[tokio::test]
async fn concurrent_writers_on_two_instances_lose_no_update() {
    let redis = PrivateRedis::start();
    let first = store(&redis).await;
    let second = store(&redis).await;
    let mut session = record(HashMap::from([("count".to_string(), json!(0))]));
    first.create(&mut session).await.expect("created");
    let id = session.id;

    let writers = 8;
    let increments = 25;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let store = if writer % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut retries = 0;
            for _ in 0..increments {
                while increment(&store, &id).await.expect("increment").is_none() {
                    retries += 1;
                }
            }
            retries
        }));
    }
    let mut retries = 0;
    for task in tasks {
        retries += task.await.expect("writer");
    }
    let stored = first.load(&id).await.expect("load").expect("there");
    assert_eq!(
        stored.data["count"],
        json!(writers * increments),
        "every increment kept ({retries} swaps lost a race and were redone)"
    );
}

#[tokio::test]
async fn redis_forgets_an_idle_session_by_itself() {
    let redis = PrivateRedis::start();
    let store = store(&redis).await;
    let client = store.pool().next();

    // A new anonymous session is kept no longer than the first-idle timeout, by Redis's own
    // clock: the key expires exactly when the record does.
    let mut session = record(with_cart(1));
    session.expiry_date = OffsetDateTime::now_utc() + time::Duration::days(14);
    store.create(&mut session).await.expect("created");
    let key = format!("coatcheck:session:{}", storage_key(&session.id));
    let expires: i64 = client.pexpire_time(&key).await.expect("PEXPIRETIME");
    let first_idle = SessionPolicy::default().anonymous_first_idle_timeout;
    let latest = (OffsetDateTime::now_utc() + first_idle).unix_timestamp_nanos() / 1_000_000;
    assert_eq!(
        i128::from(expires),
        session.expiry_date.unix_timestamp_nanos() / 1_000_000,
        "the key expires with the record"
    );
    assert!(
        i128::from(expires) <= latest,
        "within the first-idle timeout ({expires} > {latest})"
    );

    // Each save moves it to the record's expiry; once past it, the session is gone without
    // any sweep.
    session.expiry_date = OffsetDateTime::now_utc() + time::Duration::milliseconds(300);
    store.save(&session).await.expect("saved");
    assert!(store.load(&session.id).await.expect("load").is_some());
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(store.load(&session.id).await.expect("load"), None);
    let exists: i64 = client.exists(&key).await.expect("EXISTS");
    assert_eq!(exists, 0, "the key left Redis");
}

#[tokio::test]
async fn scripts_flushed_from_the_server_are_loaded_again() {
    let redis = PrivateRedis::start();
    let store = store(&redis).await;
    let mut session = record(with_cart(1));
    store.create(&mut session).await.expect("created");
    let _: () = store
        .pool()
        .next()
        .custom(
            fred::types::CustomCommand::new_static("SCRIPT", None, false),
            vec!["FLUSH"],
        )
        .await
        .expect("SCRIPT FLUSH");
    session.data = with_cart(4);
    store.save(&session).await.expect("saved after NOSCRIPT");
    let stored = store.load(&session.id).await.expect("load").expect("there");
    assert_eq!(stored.data, with_cart(4));
}

#[tokio::test]
async fn no_acknowledged_write_is_lost_when_redis_is_killed_and_comes_back() {
    let mut redis = PrivateRedis::start();
    let store = store(&redis).await;
    let mut session = record(HashMap::from([("count".to_string(), json!(0))]));
    store.create(&mut session).await.expect("created");
    let id = session.id;

    // A client adding to its cart, one acknowledged write after another, until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let recovered = std::sync::Arc::new(tokio::sync::Notify::new());
    let writer = {
        let (store, stop, recovered) = (store.clone(), stop.clone(), recovered.clone());
        tokio::spawn(async move {
            let mut acknowledged = 0_i64;
            let mut failures = 0;
            let mut after_failures = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match increment(&store, &id).await {
                    Ok(Some(count)) => {
                        acknowledged = count;
                        if failures > 0 {
                            after_failures += 1;
                            recovered.notify_one();
                        }
                    }
                    Ok(None) => {}
                    Err(_) => {
                        failures += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            (acknowledged, failures, after_failures)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.kill();
    // Down for longer than a command may wait (2 s): the writes sent meanwhile fail, whether or
    // not one was on the wire when the server died.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    redis.start_again();
    // Back within a reconnection period (0.5 s); a deadline well inside the test's limit.
    let _ = tokio::time::timeout(Duration::from_secs(10), recovered.notified()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (acknowledged, failures, after_failures) = writer.await.expect("writer");

    assert!(failures > 0, "writes failed while Redis was down");
    assert!(
        after_failures > 0,
        "writes succeeded again once Redis was back, without a new store"
    );
    let stored = store
        .load(&id)
        .await
        .expect("the store reconnected by itself")
        .expect("the session survived the kill");
    assert_eq!(
        stored.data["count"],
        json!(acknowledged),
        "every acknowledged write is there ({failures} failed while Redis was down)"
    );
}

#[tokio::test]
async fn lists_show_live_logins_only_most_recent_first_paged_and_filtered() {
    let redis = PrivateRedis::start();
    let store = store(&redis).await;
    let now = app::server::session::clock::now();
    let a1 = logged_in(&store, "a1", 1).await;
    logged_in(&store, "a2", 1).await;
    logged_in(&store, "b1", 2).await;
    logged_in(&store, "b2", 2).await;
    logged_in(&store, "c1", 3).await;
    register(&store, "never-stored", 3).await;
    store.touch("a2", 1, now + 5).await.expect("touch");
    store.touch("b1", 2, now + 3).await.expect("touch");
    store
        .end_login("b2", EndReason::Logout)
        .await
        .expect("ended");
    // a1's session leaves Redis (its TTL, or a delete): its login is listed no more.
    store.delete(&a1).await.expect("deleted");

    let (page, total) = store.list_live(None, 1, 2, Some("b1")).await.expect("list");
    assert_eq!(total, 3, "a2, b1, c1");
    let handles: Vec<&str> = page.iter().map(|i| i.handle.as_str()).collect();
    assert_eq!(handles, ["a2", "b1"], "most recent activity first");
    assert!(page[1].current && !page[0].current);
    assert_eq!(page[0].email, "user1@example.com");
    assert_eq!(page[0].device, "Firefox on Linux");
    let (page, _) = store.list_live(None, 2, 2, None).await.expect("list");
    assert_eq!(
        page.iter().map(|i| i.handle.as_str()).collect::<Vec<_>>(),
        ["c1"]
    );
    let (page, total) = store
        .list_live(Some("USER2@"), 1, 10, None)
        .await
        .expect("list");
    assert_eq!((page.len(), total), (1, 1), "b1 only");

    let own = store.list_for_user(1, None).await.expect("own list");
    assert_eq!(
        own.iter().map(|i| i.handle.as_str()).collect::<Vec<_>>(),
        ["a2"]
    );

    // The ended login left the indexes; so did the one whose session went away.
    let listed: Vec<String> = store
        .pool()
        .next()
        .zrange("coatcheck:logins", 0, -1, None, false, None, false)
        .await
        .expect("index");
    assert!(!listed.contains(&"b2".to_string()), "{listed:?}");

    // An idle login past its idle timeout is listed nowhere, though its entry is still there.
    app::server::session::clock::advance(SessionPolicy::default().login_idle_timeout * 2);
    let (page, total) = store.list_live(None, 1, 10, None).await.expect("list");
    assert!(page.is_empty() && total == 0, "{page:?}");
}

#[tokio::test]
async fn a_revocation_needs_a_live_actor_and_the_right_owner() {
    let redis = PrivateRedis::start();
    let store = store(&redis).await;
    let admin = logged_in(&store, "admin", 1).await;
    let victim = logged_in(&store, "victim", 2).await;
    let other = logged_in(&store, "other", 3).await;

    // A user's own list: another user's login is not theirs to end.
    let outcome = store
        .revoke(
            Some("victim"),
            "other",
            Some(2),
            EndReason::Revoked,
            Liveness::Any,
        )
        .await
        .expect("revoke");
    assert_eq!(outcome, Ended::Count(0));
    assert!(store.load(&other).await.expect("load").is_some());

    assert_eq!(
        store
            .revoke(
                Some("admin"),
                "victim",
                None,
                EndReason::Revoked,
                Liveness::Any
            )
            .await
            .expect("revoke"),
        Ended::Count(1)
    );
    assert_eq!(store.load(&victim).await.expect("load"), None);

    // The admin's own login ends; a request of theirs still in flight can do nothing.
    store
        .end_login("admin", EndReason::Logout)
        .await
        .expect("logout");
    assert_eq!(store.load(&admin).await.expect("load"), None);
    let late = store
        .revoke(
            Some("admin"),
            "other",
            None,
            EndReason::Revoked,
            Liveness::Any,
        )
        .await
        .expect("revoke");
    assert_eq!(late, Ended::ActorEnded);
    let late_all = store
        .end_user_logins(Some("admin"), 3, None, EndReason::Revoked, Liveness::Any)
        .await
        .expect("end all");
    assert_eq!(late_all, Ended::ActorEnded);
    assert!(
        store.load(&other).await.expect("load").is_some(),
        "nothing done"
    );
}

#[tokio::test]
async fn two_devices_signing_each_other_out_at_once_leave_exactly_one() {
    let redis = PrivateRedis::start();
    let first = store(&redis).await;
    let second = store(&redis).await;
    for round in 0..30 {
        let user = 100 + round;
        let (one, two) = (format!("one-{round}"), format!("two-{round}"));
        let one_id = logged_in(&first, &one, user).await;
        let two_id = logged_in(&first, &two, user).await;
        let (a, b) = tokio::join!(
            first.end_user_logins(
                Some(&one),
                user,
                Some(&one),
                EndReason::Revoked,
                Liveness::Any
            ),
            second.end_user_logins(
                Some(&two),
                user,
                Some(&two),
                EndReason::Revoked,
                Liveness::Any
            ),
        );
        let outcomes = [a.expect("one"), b.expect("two")];
        assert!(
            outcomes.contains(&Ended::Count(1)) && outcomes.contains(&Ended::ActorEnded),
            "round {round}: {outcomes:?}"
        );
        let left = [
            first.load(&one_id).await.expect("load").is_some(),
            first.load(&two_id).await.expect("load").is_some(),
        ];
        assert_eq!(
            left.iter().filter(|l| **l).count(),
            1,
            "round {round}: {left:?}"
        );
        assert_eq!(
            first.list_for_user(user, None).await.expect("list").len(),
            1
        );
    }
}

#[tokio::test]
async fn two_instances_share_one_new_session_budget_per_client() {
    let redis = PrivateRedis::start();
    let policy = SessionPolicy {
        new_sessions_burst: 8,
        new_session_interval: Duration::from_secs(60),
        ..SessionPolicy::default()
    };
    let first = RedisSessions::connect(&redis.url(), &policy)
        .await
        .expect("store");
    let second = RedisSessions::connect(&redis.url(), &policy)
        .await
        .expect("store");
    let client = "198.51.100.7";

    // Both instances at once, each trying for the whole budget.
    let takes = (0..16).map(|n| {
        let store = if n % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        async move { store.take_new_session(client).await.expect("take") }
    });
    let outcomes = futures::future::join_all(takes).await;
    let granted = outcomes.iter().filter(|o| o.is_ok()).count();
    assert_eq!(granted, 8, "the budget of one instance: {outcomes:?}");
    for outcome in &outcomes {
        if let Err(wait) = outcome {
            assert!(
                *wait > Duration::ZERO && *wait <= Duration::from_secs(60),
                "a wait until the next token: {wait:?}"
            );
        }
    }

    // Another client is not affected; a token given back can be taken again.
    assert!(first
        .take_new_session("2001:db8:1:2::")
        .await
        .expect("take")
        .is_ok());
    first
        .give_back_new_session(client)
        .await
        .expect("give back");
    assert!(second.take_new_session(client).await.expect("take").is_ok());
    assert!(second
        .take_new_session(client)
        .await
        .expect("take")
        .is_err());

    // The bucket leaves Redis once it would be full again (no sweep needed).
    let ttl: i64 = first
        .pool()
        .next()
        .pttl(format!("coatcheck:budget:new-sessions:{client}"))
        .await
        .expect("PTTL");
    assert!(
        ttl > 0 && ttl <= 8 * 60_000,
        "expires when refilled: {ttl} ms"
    );

    // A minute later one more token has come.
    app::server::session::clock::advance(Duration::from_secs(61));
    assert!(first.take_new_session(client).await.expect("take").is_ok());
    assert!(first.take_new_session(client).await.expect("take").is_err());
}

#[tokio::test]
async fn every_instance_hears_an_ended_login_even_after_redis_restarts() {
    let mut redis = PrivateRedis::start();
    let first = store(&redis).await;
    let second = store(&redis).await;
    let mut heard = second.ended_logins().await.expect("subscribed");
    let within = Duration::from_secs(2);

    logged_in(&first, "tab-1", 9).await;
    logged_in(&first, "tab-2", 9).await;
    logged_in(&first, "tab-3", 9).await;
    first
        .end_login("tab-1", EndReason::Logout)
        .await
        .expect("logout");
    let handle = tokio::time::timeout(within, heard.next())
        .await
        .expect("heard in time");
    assert_eq!(handle.as_deref(), Some("tab-1"));

    // A password change ends every other login at once: each is heard.
    first
        .end_user_logins(
            Some("tab-3"),
            9,
            Some("tab-3"),
            EndReason::PasswordChange,
            Liveness::Any,
        )
        .await
        .expect("ended");
    let handle = tokio::time::timeout(within, heard.next())
        .await
        .expect("heard in time");
    assert_eq!(handle.as_deref(), Some("tab-2"));

    // Redis goes away and comes back: the subscription is made again by itself.
    redis.kill();
    redis.start_again();
    let started = std::time::Instant::now();
    loop {
        // Until the store's own connections are back (the kill lost nothing: appendfsync always).
        if first.list_for_user(9, None).await.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the store reconnects"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ended = false;
    while started.elapsed() < Duration::from_secs(10) && !ended {
        // The subscriber may reconnect a moment after the store: the revocation is published
        // once, so the test ends a fresh login each round until one is heard.
        let handle = format!("after-{}", started.elapsed().as_millis());
        logged_in(&first, &handle, 10).await;
        first
            .end_login(&handle, EndReason::Revoked)
            .await
            .expect("ended");
        if let Ok(Some(got)) = tokio::time::timeout(Duration::from_millis(500), heard.next()).await
        {
            assert!(got.starts_with("after-"), "{got}");
            ended = true;
        }
    }
    assert!(ended, "a revocation after the restart is heard");
}

/// A shop whose sessions are on `redis`.
async fn shop_on(redis: &PrivateRedis) -> crate::common::TestApp {
    let url = redis.url();
    crate::common::spawn_app_with(|config| config.session_store_url = Some(url)).await
}

/// A cart write with the session `cookie`: its status and `Retry-After`.
async fn add_with(
    app: &crate::common::TestApp,
    cookie: &str,
    product: i64,
) -> (u16, Option<String>) {
    let response = reqwest::Client::new()
        .post(app.url("/api/cart/add"))
        .header("accept", "application/json")
        .header("cookie", format!("id={cookie}"))
        .form(&[
            ("product_id", product.to_string()),
            ("quantity", "1".into()),
        ])
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("an answer, not a hang");
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (response.status().as_u16(), retry_after)
}

#[tokio::test]
async fn while_redis_is_down_the_shop_answers_503_and_comes_back_by_itself() {
    let mut redis = PrivateRedis::start();
    let app = shop_on(&redis).await;
    let scarf = crate::common::product_id(&app, "merino-scarf").await;
    let mut shopper = crate::common::Shopper::new(&app);
    assert_eq!(shopper.add(scarf, "1").await.status, 200);
    let cookie = shopper.cookie.clone().expect("a session");

    redis.kill();
    let (status, retry_after) = add_with(&app, &cookie, scarf).await;
    assert_eq!(status, 503, "a cart write while Redis is down");
    let seconds: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&seconds), "Retry-After: {seconds}");
    // A page that reads the session, too; the catalog (in the SQL database) is still served
    // to a visitor without one.
    let page = reqwest::Client::new()
        .get(app.url("/cart"))
        .header("cookie", format!("id={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 503);
    let anonymous = reqwest::get(app.url("/products/merino-scarf"))
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 200);

    // Back on the same port with its data: full service again, without a restart of the shop
    // (the client reconnects every half second), and the acknowledged line is still there.
    redis.start_again();
    let mut status = 0;
    for _ in 0..100 {
        status = add_with(&app, &cookie, scarf).await.0;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200, "service is back");
    assert_eq!(shopper.cart_count().await, 2, "no acknowledged write lost");
    app.stop().await;
}

#[tokio::test]
async fn checkouts_of_one_cart_on_redis_place_one_order_even_after_a_crash_before_the_cart_is_emptied(
) {
    let redis = PrivateRedis::start();
    let app = shop_on(&redis).await;
    let scarf = crate::common::product_id(&app, "merino-scarf").await;
    let stock = || async {
        app::on_db!(&app.pool, p => sqlx::query_scalar::<_, i64>(
            "SELECT stock FROM products WHERE slug = 'merino-scarf'"
        )
        .fetch_one(p)
        .await)
        .unwrap()
    };
    let orders = || async {
        app::on_db!(&app.pool, p => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM orders")
            .fetch_one(p)
            .await)
        .unwrap()
    };
    let before = stock().await;
    let mut shopper = crate::common::Shopper::new(&app);
    assert_eq!(
        shopper
            .register("buyer@example.com", crate::common::PASSWORD)
            .await
            .status,
        200
    );
    assert_eq!(shopper.add(scarf, "2").await.status, 200);
    // The cart as stored before the checkout, to put back below.
    let client = store(&redis).await;
    let keys: Vec<String> = client
        .pool()
        .next()
        .custom(
            fred::types::CustomCommand::new_static("KEYS", None, false),
            vec!["coatcheck:session:*"],
        )
        .await
        .expect("KEYS");
    assert_eq!(keys.len(), 1);
    let stored: Vec<u8> = client.pool().next().get(&keys[0]).await.expect("GET");

    // Four checkouts of the cart at once: one order, the stock taken once.
    let checkouts = (0..4).map(|_| {
        let mut shopper = shopper.with_cookie(shopper.cookie.clone());
        tokio::spawn(async move { shopper.post("/api/checkout", &[]).await })
    });
    let replies: Vec<(u16, String)> = futures::future::join_all(checkouts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .map(|reply| (reply.status, reply.body))
        .collect();
    let placed: Vec<&str> = replies
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body.as_str())
        .collect();
    assert!(!placed.is_empty(), "{replies:?}");
    assert!(
        placed.iter().all(|body| body.contains("order #1 ")),
        "every success names the one order: {placed:?}"
    );
    assert!(
        replies
            .iter()
            .all(|(status, body)| *status == 200 || (*status == 409 && body.contains("empty"))),
        "{replies:?}"
    );
    assert_eq!(orders().await, 1);
    assert_eq!(stock().await, before - 2);
    assert_eq!(shopper.cart_count().await, 0);

    // A crash between the order's commit and the cart's emptying: the cart is still there as
    // it was. The checkout tried again finds its order instead of placing another.
    let _: () = client
        .pool()
        .next()
        .set(
            &keys[0],
            stored.as_slice(),
            Some(fred::types::Expiration::KEEPTTL),
            None,
            false,
        )
        .await
        .expect("SET");
    assert_eq!(
        shopper.cart_count().await,
        2,
        "the cart as before the checkout"
    );
    let again = shopper.post("/api/checkout", &[]).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(again.body.contains("order #1 "), "{}", again.body);
    assert_eq!(orders().await, 1, "not placed twice");
    assert_eq!(stock().await, before - 2);
    assert_eq!(shopper.cart_count().await, 0, "emptied now");
    app.stop().await;
}
