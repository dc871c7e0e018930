//! Session floods: one client cannot fill the disk with sessions, anonymous sessions that
//! never come back go sooner, and past a ceiling the least recently used anonymous sessions
//! are evicted — never a logged-in one.
#![cfg(feature = "ssr")]

use crate::common;
use common::{cookieless_add, product_id, spawn_app, spawn_app_with, Shopper, TestApp, PASSWORD};

async fn stored_sessions(app: &TestApp) -> i64 {
    common::stored_count(&app.database_url).await
}

#[tokio::test]
async fn a_flood_of_new_sessions_from_one_client_stores_only_its_budget() {
    let app = spawn_app().await;
    let scarf = product_id(&app, "merino-scarf").await;
    // 200 cookie-less add-to-carts from one address, 16 at a time (what wrk did).
    let mut statuses = Vec::new();
    let mut retry_after = Vec::new();
    for _ in 0..(200 / 16 + 1) {
        let wave = (0..16).map(|_| cookieless_add(app.url("/api/cart/add"), scarf));
        for (status, wait) in futures::future::join_all(wave).await {
            statuses.push(status);
            if status == 429 {
                retry_after.push(wait.expect("429 comes with Retry-After"));
            }
        }
    }
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(accepted + refused, statuses.len(), "{statuses:?}");
    // The default budget: 20 at once, then one every 30 s.
    assert_eq!(accepted, 20, "{statuses:?}");
    assert!(
        retry_after.iter().all(|s| (1..=30).contains(s)),
        "{retry_after:?}"
    );
    assert_eq!(
        stored_sessions(&app).await,
        20,
        "nothing stored for the refused"
    );

    // A shopper elsewhere is not affected.
    let mut shopper = Shopper::from_address(&app, 1);
    assert_eq!(shopper.add(scarf, "2").await.status, 200);
    assert_eq!(shopper.cart_count().await, 2);
    // Nor are the flooding client's existing sessions: a request with a session of its own
    // is not a new session.
    assert_eq!(stored_sessions(&app).await, 21);
    app.stop().await;
}

#[tokio::test]
async fn an_ipv6_client_is_budgeted_by_its_64_whichever_address_it_uses() {
    // Behind a trusted proxy (the test's loopback), the client's address is the forwarded one.
    let app = spawn_app_with(|config| {
        config.trusted_proxies =
            coatcheck::http::proxies::TrustedProxies::parse("127.0.0.1").unwrap();
    })
    .await;
    let scarf = product_id(&app, "merino-scarf").await;
    let add_from = |forwarded: String| {
        let client = reqwest::Client::new();
        let url = app.url("/api/cart/add");
        async move {
            client
                .post(url)
                .header("x-forwarded-for", forwarded)
                .form(&[("product_id", scarf.to_string()), ("quantity", "1".into())])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // 60 new sessions, each from another address of one /64.
    let mut accepted = 0;
    for i in 0..60u32 {
        let address = format!("2001:db8:17:64:{:x}:{:x}::1", i * 7 + 1, i + 3);
        if add_from(address).await == 200 {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 20, "one /64 gets one client's budget");
    // Another /64 has its own; an IPv4 client too.
    assert_eq!(add_from("2001:db8:17:65::1".into()).await, 200);
    assert_eq!(add_from("198.51.100.7".into()).await, 200);
    assert_eq!(stored_sessions(&app).await, 22);
    app.stop().await;
}

#[tokio::test]
async fn a_rejected_request_gives_its_new_session_back() {
    let app = spawn_app().await;
    let scarf = product_id(&app, "merino-scarf").await.to_string();
    for _ in 0..30 {
        let mut visitor = Shopper::new(&app);
        let reply = visitor
            .post(
                "/api/cart/add",
                &[("product_id", &scarf), ("quantity", "-4")],
            )
            .await;
        assert_eq!(reply.status, 422, "{}", reply.body);
    }
    assert_eq!(stored_sessions(&app).await, 0);
    // Thirty rejected inputs started no session and used none of the budget.
    for _ in 0..20 {
        let mut visitor = Shopper::new(&app);
        assert_eq!(
            visitor
                .post(
                    "/api/cart/add",
                    &[("product_id", &scarf), ("quantity", "1")]
                )
                .await
                .status,
            200
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn past_the_ceiling_the_least_recently_used_anonymous_sessions_go_never_a_login() {
    let app = spawn_app_with(|config| {
        config.policy.max_anonymous_sessions = 20;
        config.policy.new_sessions_burst = 1_000;
    })
    .await;
    let scarf = product_id(&app, "merino-scarf").await;
    let mut member = Shopper::new(&app);
    assert_eq!(
        member.register("ann@example.com", PASSWORD).await.status,
        200
    );
    member.add(scarf, "1").await;
    let mut first = Shopper::new(&app);
    assert_eq!(first.add(scarf, "1").await.status, 200);
    let mut visitors = Vec::new();
    for _ in 0..60 {
        let mut visitor = Shopper::new(&app);
        assert_eq!(visitor.add(scarf, "1").await.status, 200);
        visitors.push(visitor);
    }
    let anonymous = common::anonymous_count(&app.database_url).await;
    assert!(anonymous <= 20, "{anonymous} anonymous sessions stored");
    // The login was never evicted, and still has its cart.
    assert_eq!(member.me().await["user"]["email"], "ann@example.com");
    assert_eq!(member.cart_count().await, 1);
    // The newest visitor keeps its cart; the oldest one was evicted.
    assert_eq!(visitors.last_mut().unwrap().cart_count().await, 1);
    assert_eq!(first.cart_count().await, 0);
    app.stop().await;
}

#[tokio::test]
async fn an_anonymous_session_that_never_comes_back_goes_sooner() {
    let app = spawn_app().await;
    let scarf = product_id(&app, "merino-scarf").await;
    let mut visitor = Shopper::new(&app);
    assert_eq!(visitor.add(scarf, "1").await.status, 200);
    let expiry = || async {
        let expiries = common::stored_expiries(&app.database_url).await;
        assert_eq!(expiries.len(), 1);
        expiries[0] - time::OffsetDateTime::now_utc()
    };
    let first = expiry().await;
    assert!(
        first <= time::Duration::hours(24) && first > time::Duration::hours(23),
        "kept {first} after its first request"
    );
    // It comes back: now it has the full idle timeout.
    assert_eq!(visitor.cart_count().await, 1);
    let after = expiry().await;
    assert!(
        after > time::Duration::days(6),
        "kept {after} after coming back"
    );
    app.stop().await;
}
