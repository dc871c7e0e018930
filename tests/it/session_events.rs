//! An open page of a login hears at once that the login ended (the `/api/session/events`
//! stream): revoked by an admin, by its owner elsewhere, by a password change, a logout in
//! another tab, a timeout; on another instance too; bounded, and closed at shutdown.
#![cfg(feature = "ssr")]

use crate::common;
use common::{
    admin, fresh_database_url, logged_in, spawn_app, spawn_app_with, testid_attr, EventStream,
    ServerProcess, Shopper, TestApp, PASSWORD,
};
use std::time::{Duration, Instant};

/// "Within 2 seconds" of the issue, for the page; the server's part must fit well inside it.
const AT_ONCE: Duration = Duration::from_secs(2);

/// A second login of the same user (another device).
async fn second_device(app: &TestApp, email: &str) -> Shopper {
    let mut other = Shopper::new(app);
    assert_eq!(other.login(email, PASSWORD).await.status, 200);
    other
}

async fn expect_signed_out(stream: &mut EventStream, what: &str) {
    let started = Instant::now();
    let event = stream.next(AT_ONCE).await;
    assert_eq!(
        event.as_ref().map(|(name, _)| name.as_str()),
        Some("signed-out"),
        "{what}: {event:?} after {:?}",
        started.elapsed()
    );
    // Then the stream ends.
    assert_eq!(
        stream.next(Duration::from_secs(1)).await,
        Some((String::new(), String::new())),
        "{what}: the stream closes"
    );
}

#[tokio::test]
async fn every_way_a_login_ends_reaches_its_open_pages_at_once() {
    let app = spawn_app().await;
    let mut boss = admin(&app).await;

    // An admin revokes it.
    let victim = logged_in(&app, "one@example.com").await;
    let mut stream = EventStream::open(&app.base, victim.cookie.as_deref().unwrap()).await;
    assert_eq!(
        stream.next(Duration::from_millis(700)).await,
        None,
        "nothing while live"
    );
    let page = boss.get("/admin/sessions?email=one%40example.com").await;
    let handle = testid_attr(&page.body, "session-row", "data-session").remove(0);
    let reply = boss
        .post("/api/admin/sessions/revoke", &[("session", &handle)])
        .await;
    assert_eq!(reply.status, 200);
    expect_signed_out(&mut stream, "admin revocation").await;

    // Its owner signs out everywhere else.
    let mut owner = logged_in(&app, "two@example.com").await;
    let other = second_device(&app, "two@example.com").await;
    let mut theirs = EventStream::open(&app.base, other.cookie.as_deref().unwrap()).await;
    let mut mine = EventStream::open(&app.base, owner.cookie.as_deref().unwrap()).await;
    let reply = owner.post("/api/account/sessions/revoke-others", &[]).await;
    assert_eq!(reply.status, 200);
    expect_signed_out(&mut theirs, "sign out other devices").await;
    assert_eq!(
        mine.next(Duration::from_millis(700)).await,
        None,
        "this device stays"
    );

    // A password change ends the other device's login.
    let other = second_device(&app, "two@example.com").await;
    let mut theirs = EventStream::open(&app.base, other.cookie.as_deref().unwrap()).await;
    let reply = owner
        .post(
            "/api/account/password",
            &[("current", PASSWORD), ("new", "a brand new passphrase")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    expect_signed_out(&mut theirs, "password change").await;

    // A logout in another tab of the same browser (same cookie).
    let mut tabs = logged_in(&app, "three@example.com").await;
    let mut other_tab = EventStream::open(&app.base, tabs.cookie.as_deref().unwrap()).await;
    assert_eq!(tabs.post("/api/logout", &[]).await.status, 200);
    expect_signed_out(&mut other_tab, "logout in another tab").await;

    // A session without a login hears it at once.
    let mut anonymous = Shopper::new(&app);
    anonymous
        .add(common::product_id(&app, "merino-scarf").await, "1")
        .await;
    let mut stream = EventStream::open(&app.base, anonymous.cookie.as_deref().unwrap()).await;
    assert_eq!(
        stream.next(AT_ONCE).await,
        Some(("signed-out".to_string(), "none".to_string()))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_login_that_times_out_tells_its_page() {
    let app = spawn_app_with(|config| {
        config.policy.login_idle_timeout = Duration::from_secs(2);
        config.policy.touch_interval = Duration::from_secs(1);
    })
    .await;
    let shopper = logged_in(&app, "idle@example.com").await;
    let started = Instant::now();
    let mut stream = EventStream::open(&app.base, shopper.cookie.as_deref().unwrap()).await;
    // Due once more than 2 s have passed since the last activity (whole seconds): 3-4 s.
    let event = stream.next(Duration::from_secs(6)).await;
    assert_eq!(
        event,
        Some(("signed-out".to_string(), "timed-out".to_string()))
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(2),
        "not before the timeout: {waited:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_logins_streams_are_capped_and_a_new_one_replaces_the_oldest() {
    let app = spawn_app().await;
    let shopper = logged_in(&app, "tabs@example.com").await;
    let cookie = shopper.cookie.clone().unwrap();
    let per_login = app::server::session::StreamLimits::default().per_login;
    let mut open = Vec::new();
    for _ in 0..per_login {
        open.push(EventStream::open(&app.base, &cookie).await);
    }
    // One more (a page opened while the browser's last one may still count): it is served,
    // and the oldest ends, so the login never holds more than its share.
    let mut newest = EventStream::open(&app.base, &cookie).await;
    assert_eq!(
        open[0].next(AT_ONCE).await,
        Some((String::new(), String::new())),
        "the oldest stream was closed"
    );
    assert_eq!(
        open[1].next(Duration::from_millis(300)).await,
        None,
        "the others go on"
    );
    assert_eq!(newest.next(Duration::from_millis(300)).await, None);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let metrics = app.scrape().await;
    assert_eq!(
        common::sample(&metrics, "coatcheck_session_event_streams_open"),
        per_login as f64
    );
    drop(open);
    app.stop().await;
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[tokio::test]
async fn two_hundred_open_streams_cost_little_and_all_close_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    // 40 accounts from one address: the registration and new-session budgets lifted.
    let mut server = ServerProcess::start_with(&url, |command| {
        command
            .env("COATCHECK_REGISTRATIONS_PER_ADDRESS", "1000")
            .env("COATCHECK_NEW_SESSIONS_BURST", "1000");
    })
    .await;
    // 40 logins × 5 pages = 200 streams, from 40 client addresses (each within its limits).
    let mut cookies = Vec::new();
    for i in 0..40 {
        let mut shopper = server.shopper();
        let reply = shopper
            .register(&format!("many{i}@example.com"), PASSWORD)
            .await;
        assert_eq!(reply.status, 200);
        cookies.push(shopper.cookie.unwrap());
    }
    // One stream first, so that what is measured is the cost of the 199 others.
    let mut streams = vec![EventStream::open_as(&server.base, &cookies[0], 0).await];
    let before = rss_kib(server.pid());
    for i in 1..200 {
        streams.push(EventStream::open_as(&server.base, &cookies[i % 40], i % 40).await);
    }
    let after = rss_kib(server.pid());
    let grown = after.saturating_sub(before);
    eprintln!("RSS {before} KiB with 1 stream, {after} KiB with 200 (+{grown} KiB)");
    assert!(
        grown < 16 * 1024,
        "199 more streams cost {grown} KiB (at most 16 MiB expected)"
    );

    let stopping = Instant::now();
    server.signal("TERM");
    for stream in &mut streams {
        assert_eq!(
            stream.next(Duration::from_secs(5)).await,
            Some((String::new(), String::new())),
            "every stream ends at shutdown"
        );
    }
    let status = server
        .wait_exit(coatcheck::http::DRAIN_TIMEOUT)
        .await
        .expect("the server exits within the drain limit");
    assert!(status.success());
    eprintln!(
        "200 streams closed and the server exited in {:?}",
        stopping.elapsed()
    );
}

#[tokio::test]
async fn a_revocation_on_one_instance_reaches_the_page_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    let a = ServerProcess::start(&url).await;
    let b = ServerProcess::start(&url).await;
    let mut laptop = a.shopper();
    assert_eq!(
        laptop
            .register("roaming@example.com", PASSWORD)
            .await
            .status,
        200
    );
    let mut phone = b.shopper();
    assert_eq!(
        phone.login("roaming@example.com", PASSWORD).await.status,
        200
    );
    let mut stream = EventStream::open(&a.base, laptop.cookie.as_deref().unwrap()).await;
    assert_eq!(stream.next(Duration::from_millis(700)).await, None);
    let started = Instant::now();
    let reply = phone.post("/api/account/sessions/revoke-others", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    expect_signed_out(&mut stream, "revoked on the other instance").await;
    eprintln!(
        "heard on A {:?} after the revocation on B",
        started.elapsed()
    );
    let _ = laptop.me().await;
}

#[tokio::test]
async fn reopening_the_stream_does_not_keep_an_idle_login_alive() {
    let app = spawn_app_with(|config| {
        config.policy.login_idle_timeout = Duration::from_secs(2);
        config.policy.touch_interval = Duration::from_secs(1);
    })
    .await;
    let mut shopper = logged_in(&app, "tab@example.com").await;
    let cookie = shopper.cookie.clone().unwrap();
    // A tab that opens its stream again and again (as a page reconnecting would), and nothing
    // else, once per touch interval for longer than the idle timeout (the session clock is
    // moved on, not slept through).
    for _ in 0..4 {
        let stream = EventStream::open(&app.base, &cookie).await;
        app::server::session::clock::advance(Duration::from_secs(1));
        drop(stream);
    }
    assert_eq!(
        shopper.me().await["user"],
        serde_json::Value::Null,
        "the streams did not count as activity: the login timed out"
    );
    app.stop().await;
}

#[tokio::test]
async fn streams_are_capped_per_client_network_whatever_the_login() {
    let app = spawn_app_with(|config| {
        config.streams.per_client = 4;
    })
    .await;
    let mut cookies = Vec::new();
    for email in ["one@example.com", "two@example.com"] {
        cookies.push(logged_in(&app, email).await.cookie.unwrap());
    }
    // Client address 1: two logins, two streams each — its share.
    let mut open = Vec::new();
    for i in 0..4 {
        open.push(EventStream::open_as(&app.base, &cookies[i % 2], 1).await);
    }
    let same_address = reqwest::Client::builder()
        .local_address(common::client_ip(1))
        .build()
        .unwrap();
    let refused = EventStream::try_open(&app.base, &cookies[0], &same_address).await;
    assert_eq!(refused.status(), 429, "the address has its share open");
    assert!(refused.headers().contains_key("retry-after"));
    // The same login from another address is not refused.
    let _elsewhere = EventStream::open_as(&app.base, &cookies[0], 2).await;
    drop(open);
    app.stop().await;
}

#[tokio::test]
async fn a_stream_ends_after_its_lifetime_and_the_page_may_open_another() {
    let app = spawn_app_with(|config| {
        config.streams.lifetime = Duration::from_secs(1);
    })
    .await;
    let shopper = logged_in(&app, "long@example.com").await;
    let cookie = shopper.cookie.unwrap();
    let started = Instant::now();
    let mut stream = EventStream::open(&app.base, &cookie).await;
    assert_eq!(
        stream.next(Duration::from_secs(5)).await,
        Some((String::new(), String::new())),
        "closed by the server"
    );
    let lived = started.elapsed();
    assert!(
        lived >= Duration::from_millis(850) && lived < Duration::from_secs(3),
        "about its lifetime (1 s, give or take a tenth): {lived:?}"
    );
    let _next = EventStream::open(&app.base, &cookie).await;
    assert_eq!(
        common::sample(&app.scrape().await, "coatcheck_session_event_streams_open"),
        1.0,
        "the old stream is gone, the new one open"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_stream_whose_page_went_away_is_closed_at_once() {
    let app = spawn_app().await;
    let shopper = logged_in(&app, "gone@example.com").await;
    let cookie = shopper.cookie.unwrap();
    let stream = EventStream::open(&app.base, &cookie).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        common::sample(&app.scrape().await, "coatcheck_session_event_streams_open"),
        1.0
    );
    // The page goes away (its connection closes): the server notices without waiting for the
    // next heartbeat.
    drop(stream);
    let started = Instant::now();
    loop {
        let open = common::sample(&app.scrape().await, "coatcheck_session_event_streams_open");
        if open == 0.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still counted {:?} after the page went away",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("closed {:?} after the page went away", started.elapsed());
    app.stop().await;
}
