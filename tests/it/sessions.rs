//! Session security: the registry, revocation by admins and by owners, password change,
//! login timeouts, the cross-site check, cookie hardening, throttling, headers.
#![cfg(feature = "ssr")]

use crate::common;
use common::{
    admin, logged_in, product_id, sample, spawn_app, spawn_app_with, testid_attr, testid_text,
    Shopper, TestApp, PASSWORD,
};

/// Moves the session clock (this test process's) on by `seconds`: a timeout passes without
/// sleeping through it.
fn advance_seconds(seconds: u64) {
    app::server::session::clock::advance(std::time::Duration::from_secs(seconds));
}

#[tokio::test]
async fn admin_revocation_takes_effect_on_the_next_request() {
    let app = spawn_app().await;
    let mut victim = logged_in(&app, "ann@example.com").await;
    victim
        .add(product_id(&app, "merino-scarf").await, "2")
        .await;
    let mut boss = admin(&app).await;

    let page = boss.get("/admin/sessions").await;
    assert_eq!(page.status, 200);
    let emails = testid_attr(&page.body, "session-row", "data-user-email");
    let handles = testid_attr(&page.body, "session-row", "data-session");
    let current = testid_attr(&page.body, "session-row", "data-current");
    assert_eq!(emails.len(), 2, "{emails:?}");
    let index = emails.iter().position(|e| e == "ann@example.com").unwrap();
    assert_eq!(current[index], "false");
    assert_eq!(current[1 - index], "true", "the admin's own row is marked");
    assert!(page.body.contains("on Linux") || page.body.contains("Unknown device"));
    // The handle is not the session ID and does not work as a cookie.
    let handle = handles[index].clone();
    assert_ne!(Some(handle.as_str()), victim.cookie.as_deref());
    assert!(
        !page.body.contains(victim.cookie.as_deref().unwrap()),
        "no session id on the page"
    );
    let mut forged = victim.with_cookie(Some(handle.clone()));
    assert_eq!(forged.me().await["user"], serde_json::Value::Null);

    let reply = boss
        .post("/api/admin/sessions/revoke", &[("session", &handle)])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        victim.me().await["user"],
        serde_json::Value::Null,
        "logged out at once"
    );
    assert_eq!(
        victim.cart_count().await,
        0,
        "the cart went with the session"
    );
    let page = victim.get("/account").await;
    assert!(page.location.unwrap().starts_with("/login"));

    let page = boss.get("/admin/sessions").await;
    assert_eq!(
        testid_attr(&page.body, "session-row", "data-user-email"),
        ["boss@example.com"]
    );
    assert!(
        testid_text(&page.body, "audit-row").is_some(),
        "the revocation is in the audit log"
    );
    assert!(
        page.body.contains("ann@example.com"),
        "audit names the user"
    );
    let again = boss
        .post("/api/admin/sessions/revoke", &[("session", &handle)])
        .await;
    assert_eq!(again.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn admin_can_revoke_every_session_of_a_user_and_their_own() {
    let app = spawn_app().await;
    let mut phone = logged_in(&app, "ann@example.com").await;
    let mut laptop = Shopper::new(&app);
    laptop.login("ann@example.com", PASSWORD).await;
    let mut boss = admin(&app).await;
    let ann_id: i64 = app::on_db!(&app.db().await, p => sqlx::query_scalar(
        "SELECT id FROM users WHERE email = 'ann@example.com'"
    )
    .fetch_one(p)
    .await)
    .unwrap();
    let reply = boss
        .post(
            "/api/admin/users/revoke-sessions",
            &[("user_id", &ann_id.to_string())],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("Ended 2 session(s)"), "{}", reply.body);
    assert_eq!(phone.me().await["user"], serde_json::Value::Null);
    assert_eq!(laptop.me().await["user"], serde_json::Value::Null);
    assert_eq!(
        boss.post("/api/admin/users/revoke-sessions", &[("user_id", "999")])
            .await
            .status,
        404
    );
    assert_eq!(
        boss.post("/api/admin/users/revoke-sessions", &[("user_id", "x")])
            .await
            .status,
        400
    );

    // An admin revoking their own current session is logged out like any logout.
    let page = boss.get("/admin/sessions").await;
    let own = testid_attr(&page.body, "session-row", "data-session")[0].clone();
    let reply = boss
        .post("/api/admin/sessions/revoke", &[("session", &own)])
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply
        .set_cookie
        .iter()
        .any(|c| c.starts_with("id=") && c.contains("Max-Age=0")));
    assert_eq!(boss.me().await["user"], serde_json::Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn admin_pages_and_actions_check_the_role() {
    let app = spawn_app().await;
    let mut anonymous = Shopper::new(&app);
    let page = anonymous.get("/admin/sessions").await;
    assert_eq!(
        page.location.as_deref(),
        Some("/login?next=/admin/sessions")
    );
    let mut shopper = logged_in(&app, "eve@example.com").await;
    let page = shopper.get("/admin/sessions").await;
    assert_eq!(page.status, 403);
    assert!(testid_attr(&page.body, "session-row", "data-session").is_empty());
    for (path, field) in [
        ("/api/admin/sessions/revoke", "session"),
        ("/api/admin/users/revoke-sessions", "user_id"),
    ] {
        assert_eq!(
            shopper.post(path, &[(field, "1")]).await.status,
            403,
            "{path}"
        );
        assert_eq!(
            anonymous.post(path, &[(field, "1")]).await.status,
            401,
            "{path}"
        );
    }
    assert_eq!(shopper.get("/api/admin/sessions").await.status, 403);
    app.stop().await;
}

#[tokio::test]
async fn owners_see_and_end_their_own_sessions_only() {
    let app = spawn_app().await;
    let mut phone = logged_in(&app, "ann@example.com").await;
    let mut laptop = Shopper::new(&app);
    laptop.login("ann@example.com", PASSWORD).await;
    let mut tablet = Shopper::new(&app);
    tablet.login("ann@example.com", PASSWORD).await;
    let mut eve = logged_in(&app, "eve@example.com").await;

    let page = laptop.get("/account/sessions").await;
    let handles = testid_attr(&page.body, "session-row", "data-session");
    let current = testid_attr(&page.body, "session-row", "data-current");
    assert_eq!(handles.len(), 3);
    assert_eq!(current.iter().filter(|c| *c == "true").count(), 1);

    // Eve cannot end Ann's sessions by handle.
    for handle in &handles {
        assert_eq!(
            eve.post("/api/account/sessions/revoke", &[("session", handle)])
                .await
                .status,
            404
        );
    }
    assert_eq!(phone.me().await["user"]["email"], "ann@example.com");

    // Ann ends the phone from the laptop.
    let phone_handle = {
        let page = phone.get("/account/sessions").await;
        let handles = testid_attr(&page.body, "session-row", "data-session");
        let current = testid_attr(&page.body, "session-row", "data-current");
        handles[current.iter().position(|c| c == "true").unwrap()].clone()
    };
    let reply = laptop
        .post(
            "/api/account/sessions/revoke",
            &[("session", &phone_handle)],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(phone.me().await["user"], serde_json::Value::Null);

    // Sign out everywhere else: the tablet goes, the laptop stays.
    let reply = laptop
        .post("/api/account/sessions/revoke-others", &[])
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(tablet.me().await["user"], serde_json::Value::Null);
    assert_eq!(laptop.me().await["user"]["email"], "ann@example.com");
    assert_eq!(eve.me().await["user"]["email"], "eve@example.com");
    let page = laptop.get("/account/sessions").await;
    assert_eq!(
        testid_attr(&page.body, "session-row", "data-current"),
        ["true"]
    );
    app.stop().await;
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions_and_rotates_this_one() {
    let app = spawn_app().await;
    let mut laptop = logged_in(&app, "ann@example.com").await;
    let mut phone = Shopper::new(&app);
    phone.login("ann@example.com", PASSWORD).await;
    let before = laptop.cookie.clone().unwrap();
    let wrong = laptop
        .post(
            "/api/account/password",
            &[
                ("current", "not my password"),
                ("new", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let short = laptop
        .post(
            "/api/account/password",
            &[("current", PASSWORD), ("new", "short")],
        )
        .await;
    assert_eq!(short.status, 422);
    assert_eq!(
        phone.me().await["user"]["email"],
        "ann@example.com",
        "failed attempts change nothing"
    );

    let reply = laptop
        .post(
            "/api/account/password",
            &[("current", PASSWORD), ("new", "a brand new passphrase")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let after = laptop.cookie.clone().unwrap();
    assert_ne!(before, after, "the current session id is rotated");
    assert_eq!(laptop.me().await["user"]["email"], "ann@example.com");
    assert_eq!(phone.me().await["user"], serde_json::Value::Null);
    assert_eq!(
        laptop.with_cookie(Some(before)).me().await["user"],
        serde_json::Value::Null
    );
    assert_eq!(
        Shopper::new(&app)
            .login("ann@example.com", PASSWORD)
            .await
            .status,
        401
    );
    assert_eq!(
        Shopper::new(&app)
            .login("ann@example.com", "a brand new passphrase")
            .await
            .status,
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn an_idle_login_is_demoted_but_keeps_the_cart() {
    let app = spawn_app_with(|config| {
        // A minute, not seconds: real time passes besides the moved clock, and on a loaded
        // machine a few seconds of it must not end the login before the check that it is live.
        config.policy.login_idle_timeout = std::time::Duration::from_secs(60);
        config.policy.touch_interval = std::time::Duration::from_secs(30);
    })
    .await;
    let mut shopper = logged_in(&app, "ann@example.com").await;
    shopper
        .add(product_id(&app, "merino-scarf").await, "2")
        .await;
    let before = shopper.cookie.clone();
    // Activity within the timeout keeps the login alive (the session clock is moved on, not
    // slept through).
    advance_seconds(30);
    assert_eq!(shopper.me().await["user"]["email"], "ann@example.com");
    advance_seconds(62);
    let page = shopper.get("/").await;
    assert_eq!(testid_text(&page.body, "current-user"), None);
    assert!(testid_text(&page.body, "flash")
        .unwrap()
        .contains("signed out"));
    assert_eq!(shopper.cart_count().await, 2, "the cart is kept");
    assert_ne!(shopper.cookie, before, "the id is rotated on demotion");
    assert_eq!(common::end_reasons(&app.database_url).await, ["timeout"]);
    let metrics = app.scrape().await;
    assert_eq!(
        sample(
            &metrics,
            "coatcheck_session_expiries_total{kind=\"login_idle\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "coatcheck_session_expiries_total{kind=\"login_absolute\"}"
        ),
        0.0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_login_ends_at_the_absolute_timeout_despite_activity() {
    let app = spawn_app_with(|config| {
        config.policy.login_absolute_timeout = std::time::Duration::from_secs(2);
        config.policy.touch_interval = std::time::Duration::from_secs(1);
    })
    .await;
    let mut shopper = logged_in(&app, "ann@example.com").await;
    for _ in 0..3 {
        advance_seconds(1);
        shopper.get("/api/cart").await;
    }
    assert_eq!(shopper.me().await["user"], serde_json::Value::Null);
    let metrics = app.scrape().await;
    assert_eq!(
        sample(
            &metrics,
            "coatcheck_session_expiries_total{kind=\"login_absolute\"}"
        ),
        1.0
    );
    app.stop().await;
}

#[tokio::test]
async fn expired_sessions_are_swept_and_their_rows_closed() {
    let app = spawn_app().await;
    let _shopper = logged_in(&app, "ann@example.com").await;
    let db = app.db().await;
    let past = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    app::on_db!(&db, p => sqlx::query("UPDATE tower_sessions SET expiry_date = $1")
        .bind(past)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .unwrap();
    use tower_sessions::ExpiredDeletion;
    let metrics = app::server::metrics::Metrics::new();
    let store = app::server::session::ShopSessionStore::new(db.clone(), &Default::default())
        .with_metrics(metrics.clone());
    store.delete_expired().await.unwrap();
    let scrape = metrics.scrape(&db, Default::default()).unwrap();
    assert_eq!(
        sample(
            &scrape,
            "coatcheck_session_expiries_total{kind=\"session_idle\"}"
        ),
        1.0
    );
    let live: i64 = app::on_db!(&db, p => sqlx::query_scalar("SELECT COUNT(*) FROM tower_sessions")
        .fetch_one(p)
        .await)
    .unwrap();
    assert_eq!(live, 0);
    let reason: String = app::on_db!(&db, p => sqlx::query_scalar(
        "SELECT end_reason FROM session_registry"
    )
    .fetch_one(p)
    .await)
    .unwrap();
    assert_eq!(reason, "expired");
    app.stop().await;
}

#[tokio::test]
async fn cross_site_posts_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let mut shopper = logged_in(&app, "ann@example.com").await;
    let scarf = product_id(&app, "merino-scarf").await.to_string();
    let cookie = shopper.cookie.clone().unwrap();
    let client = reqwest::Client::new();
    for (header, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("referer", "http://evil.example/x"),
    ] {
        for path in ["/api/cart/add", "/api/logout", "/api/checkout"] {
            let response = client
                .post(app.url(path))
                .header("cookie", format!("id={cookie}"))
                .header(header, value)
                .form(&[("product_id", scarf.as_str()), ("quantity", "1")])
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 403, "{path} with {header}: {value}");
        }
    }
    assert_eq!(shopper.cart_count().await, 0);
    assert_eq!(shopper.me().await["user"]["email"], "ann@example.com");
    // The same request from the site itself works.
    let response = client
        .post(app.url("/api/cart/add"))
        .header("cookie", format!("id={cookie}"))
        .header("origin", app.base.clone())
        .form(&[("product_id", scarf.as_str()), ("quantity", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn secure_cookies_use_the_host_prefix() {
    let app = spawn_app_with(|config| config.cookie_secure = true).await;
    let response = reqwest::Client::new()
        .post(app.url("/api/cart/add"))
        .form(&[("product_id", "1"), ("quantity", "1")])
        .send()
        .await
        .unwrap();
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.starts_with("__Host-id="), "{cookie}");
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} has {attribute}");
    }
    assert!(!cookie.contains("Domain"));
    let id = cookie
        .trim_start_matches("__Host-id=")
        .split(';')
        .next()
        .unwrap();
    assert!(id.len() >= 22, "at least 128 bits of ID");
    // HTTPS only from now on, for as long as configured.
    assert_eq!(
        response.headers()["strict-transport-security"],
        "max-age=31536000"
    );

    // Logout clears the cookie with the attributes it was set with: a `__Host-` cookie
    // without `Secure` would be ignored by the browser, which would keep the dead one.
    let client = reqwest::Client::new();
    let registered = client
        .post(app.url("/api/register"))
        .form(&[("email", "sec@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 200);
    let login = common::first_cookie(&registered);
    let logout = client
        .post(app.url("/api/logout"))
        .header("cookie", &login)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 200);
    let clearing = logout.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(clearing.starts_with("__Host-id=;"), "{clearing}");
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=0"] {
        assert!(clearing.contains(attribute), "{clearing} has {attribute}");
    }
    app.stop().await;

    // Not over plain HTTP (the default on loopback): no HSTS.
    let plain = spawn_app().await;
    let response = reqwest::get(plain.url("/")).await.unwrap();
    assert!(!response.headers().contains_key("strict-transport-security"));
    plain.stop().await;
}

#[tokio::test]
async fn failed_logins_are_throttled_without_locking_out_others() {
    let app = spawn_app().await;
    Shopper::new(&app)
        .register("ann@example.com", PASSWORD)
        .await;
    Shopper::new(&app)
        .register("bob@example.com", PASSWORD)
        .await;
    let mut attacker = Shopper::new(&app);
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            attacker
                .login("ann@example.com", "guess guess guess")
                .await
                .status,
        );
    }
    assert_eq!(&statuses[..5], [401; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let reply = attacker.login("ann@example.com", PASSWORD).await;
    assert_eq!(
        reply.status, 429,
        "a failing client waits even with the right password"
    );
    assert!(reply.body.contains("Too many failed attempts"));
    // Another account from a client that has not been failing on it is not delayed.
    assert_eq!(
        Shopper::new(&app)
            .login("bob@example.com", PASSWORD)
            .await
            .status,
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn pages_carry_security_headers() {
    let app = spawn_app().await;
    let response = reqwest::get(app.url("/")).await.unwrap();
    let headers = response.headers().clone();
    let html = response.text().await.unwrap();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("'wasm-unsafe-eval'"));
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("nonce in CSP");
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "the hydration script carries the nonce"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["cache-control"], "no-store");
    let api = reqwest::get(app.url("/api/cart")).await.unwrap();
    assert_eq!(api.headers()["cache-control"], "no-store");
    app.stop().await;
}

#[tokio::test]
async fn the_admin_list_pages_and_filters_a_thousand_sessions() {
    let app = spawn_app().await;
    let mut boss = admin(&app).await;
    let db = app.db().await;
    let far_future = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    // Live logins (within the default timeouts): started and last seen in the last 1,000 s.
    let start = time::OffsetDateTime::now_utc().unix_timestamp() - 1000;
    app::on_db!(&db, p => {
        let mut tx = p.begin().await.unwrap();
        for i in 0..1000i64 {
            let email = format!("user{i:04}@example.com");
            let user_id: i64 = sqlx::query_scalar(
                "INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id",
            )
            .bind(&email)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            let session_id = format!("session-{i}");
            sqlx::query("INSERT INTO tower_sessions (id, data, expiry_date) VALUES ($1, $2, $3)")
                .bind(&session_id)
                .bind(vec![0x80u8])
                .bind(far_future)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO session_registry (handle, session_id, user_id, created_at, last_seen_at, ip, user_agent, device)
                 VALUES ($1, $2, $3, $4, $5, '127.0.0.1', '', 'Unknown device')",
            )
            .bind(format!("h{i:04}"))
            .bind(&session_id)
            .bind(user_id)
            .bind(start)
            .bind(start + i)
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
    });
    let page = boss.get("/admin/sessions").await;
    assert_eq!(page.status, 200);
    let emails = testid_attr(&page.body, "session-row", "data-user-email");
    assert_eq!(emails.len(), 50);
    assert_eq!(emails[0], "boss@example.com", "newest activity first");
    assert_eq!(emails[1], "user0999@example.com");
    assert!(testid_text(&page.body, "session-total")
        .unwrap()
        .starts_with("1001 live sessions"));
    let last = boss.get("/admin/sessions?page=21").await;
    assert_eq!(
        testid_attr(&last.body, "session-row", "data-user-email"),
        ["user0000@example.com"]
    );
    let filtered = boss.get("/admin/sessions?email=user012").await;
    let emails = testid_attr(&filtered.body, "session-row", "data-user-email");
    assert_eq!(emails.len(), 10);
    assert!(emails.iter().all(|e| e.starts_with("user012")));
    app.stop().await;
}

/// A client with `X-Forwarded-For: forwarded` on every request, as a load balancer sends.
fn behind_proxy(app: &TestApp, forwarded: &'static str) -> Shopper {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        reqwest::header::HeaderValue::from_static(forwarded),
    );
    Shopper::with_client(app, reqwest::Client::builder().default_headers(headers))
}

#[tokio::test]
async fn the_client_address_comes_from_trusted_proxies_only() {
    // Behind a trusted load balancer (the test client's loopback address).
    let app = spawn_app_with(|config| {
        config.trusted_proxies =
            coatcheck::http::proxies::TrustedProxies::parse("127.0.0.0/8").unwrap();
        config.policy.new_sessions_burst = 1;
    })
    .await;
    let mut ann = behind_proxy(&app, "203.0.113.5, 198.51.100.7");
    assert_eq!(ann.register("ann@example.com", PASSWORD).await.status, 200);
    let sessions = ann.get("/api/account/sessions").await.json();
    assert_eq!(
        sessions[0]["ip"], "198.51.100.7",
        "the right-most forwarded address"
    );
    // Budgets are per forwarded client: another client behind the same balancer has its own.
    let scarf = product_id(&app, "merino-scarf").await;
    assert_eq!(
        behind_proxy(&app, "192.0.2.1").add(scarf, "1").await.status,
        200
    );
    assert_eq!(
        behind_proxy(&app, "192.0.2.1").add(scarf, "1").await.status,
        429
    );
    assert_eq!(
        behind_proxy(&app, "192.0.2.2").add(scarf, "1").await.status,
        200
    );
    app.stop().await;

    // Nobody trusted (the default): a forwarded address is a client's claim, ignored.
    let app = spawn_app().await;
    let mut spoofer = behind_proxy(&app, "198.51.100.7");
    assert_eq!(
        spoofer.register("eve@example.com", PASSWORD).await.status,
        200
    );
    let sessions = spoofer.get("/api/account/sessions").await.json();
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    app.stop().await;
}

/// The store and the registry keep SHA-256 of the session ID, never the ID: nothing in the
/// database works as a cookie. Sessions stored the old way are carried over at start-up.
#[tokio::test]
async fn session_ids_are_hashed_at_rest_and_old_sessions_carried_over() {
    use app::server::session::storage_key;
    let app = spawn_app().await;
    let mut ann = Shopper::new(&app);
    assert_eq!(ann.register("ann@example.com", PASSWORD).await.status, 200);
    ann.add(product_id(&app, "merino-scarf").await, "1").await;
    let cookie = ann.cookie.clone().unwrap();
    let id: tower_sessions::session::Id = cookie.parse().unwrap();
    let rows: Vec<(String, Vec<u8>)> = app::on_db!(&app.pool, p => sqlx::query_as(
        "SELECT id, data FROM tower_sessions"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, storage_key(&id), "keyed by the hash");
    assert_eq!(rows[0].0.len(), 64);
    let record: tower_sessions::session::Record = rmp_serde::from_slice(&rows[0].1).unwrap();
    assert_ne!(record.id, id, "no ID inside the stored record");
    let linked: Option<String> = app::on_db!(&app.pool, p => sqlx::query_scalar(
        "SELECT session_id FROM session_registry WHERE ended_at IS NULL"
    )
    .fetch_one(p)
    .await)
    .unwrap();
    assert_eq!(
        linked,
        Some(storage_key(&id)),
        "the registry keeps the hash"
    );
    // A stored key used as a cookie is nobody.
    let mut thief = ann.with_cookie(Some(rows[0].0.clone()));
    assert_eq!(thief.me().await["user"], serde_json::Value::Null);

    // A session stored before the upgrade (keyed by its ID, the ID inside): after a restart on
    // the same database it still works, and is stored the new way. Only SQLite databases
    // predate the hashing (PostgreSQL support came after it): there is nothing to carry over
    // on PostgreSQL.
    if common::on_postgres() {
        eprintln!(
            "carrying over sessions stored unhashed is SQLite only: no PostgreSQL database \
             predates the hashing"
        );
        app.stop().await;
        return;
    }
    let old_id = tower_sessions::session::Id::default();
    let old = tower_sessions::session::Record {
        id: old_id,
        data: [(
            "cart".to_string(),
            serde_json::json!({"lines": [{"product_id": 1, "quantity": 2}]}),
        )]
        .into_iter()
        .collect(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::days(1),
    };
    let file = app.pool.as_sqlite().expect("a SQLite run");
    sqlx::query("INSERT INTO tower_sessions (id, data, expiry_date) VALUES ($1, $2, $3)")
        .bind(old_id.to_string())
        .bind(rmp_serde::to_vec(&old).unwrap())
        .bind(old.expiry_date)
        .execute(file)
        .await
        .unwrap();
    let database_url = app.database_url.clone();
    let dir = tempfile::tempdir().unwrap();
    let restarted = common::spawn_app_with(|config| {
        config.database_url = database_url;
        config.site_root = dir.path().display().to_string();
    })
    .await;
    let mut returning = Shopper::new(&restarted).with_cookie(Some(old_id.to_string()));
    assert_eq!(
        returning.cart_count().await,
        2,
        "the old session survives the upgrade"
    );
    let keys: Vec<String> = app::on_db!(&restarted.pool, p => sqlx::query_scalar(
        "SELECT id FROM tower_sessions"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    assert!(keys.iter().all(|k| k.len() == 64), "{keys:?}");
    assert!(keys.contains(&storage_key(&old_id)));
    restarted.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn admin_revocations_are_confirmed_first_and_the_audit_log_pages() {
    let app = spawn_app().await;
    let mut boss = admin(&app).await;
    let mut victim = logged_in(&app, "victim@example.com").await;

    // Before any revocation, the audit log says it is empty.
    let page = boss.get("/admin/sessions").await;
    assert_eq!(
        testid_text(&page.body, "audit-empty").as_deref(),
        Some("No sessions have been revoked yet.")
    );
    assert!(testid_text(&page.body, "confirm-revocation").is_none());

    // "Revoke" is a link that asks; asking changes nothing.
    let emails = testid_attr(&page.body, "session-row", "data-user-email");
    let handles = testid_attr(&page.body, "session-row", "data-session");
    let index = emails
        .iter()
        .position(|e| e == "victim@example.com")
        .unwrap();
    let ask = format!("/admin/sessions?confirm={}", handles[index]);
    assert!(
        page.body
            .contains(&format!(r#"href="{ask}" data-testid="revoke-session""#)),
        "the Revoke link asks first"
    );
    let question = boss.get(&ask).await;
    assert_eq!(question.status, 200);
    let text = testid_text(&question.body, "confirm-revocation").expect("a confirmation");
    assert!(
        text.contains("Revoke the session of victim@example.com"),
        "{text}"
    );
    assert!(question
        .body
        .contains(r#"href="/admin/sessions">Cancel</a>"#));
    assert_eq!(victim.me().await["user"]["email"], "victim@example.com");
    // Revoke-all asks too, naming the user.
    let user_id = victim.me().await["user"]["id"].as_i64().unwrap();
    let question = boss
        .get(&format!("/admin/sessions?confirm_user={user_id}"))
        .await;
    let text = testid_text(&question.body, "confirm-revocation").expect("a confirmation");
    assert!(
        text.contains("Revoke every session of victim@example.com"),
        "{text}"
    );

    // The confirmation's form, as a plain HTML form: done, and the question is gone.
    let done = boss
        .post_form(
            "/api/admin/sessions/revoke",
            &[("session", &handles[index])],
            &ask,
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(done.location.as_deref(), Some(ask.as_str()));
    assert_eq!(victim.me().await["user"], serde_json::Value::Null);
    let after = boss.get(&ask).await;
    assert!(testid_text(&after.body, "confirm-revocation").is_none());
    assert!(testid_text(&after.body, "flash")
        .unwrap()
        .contains("revoked"));

    // 45 entries: three pages of 20, newest first, with a pager of its own.
    let db = app.db().await;
    for i in 0..44 {
        app::on_db!(&db, p => sqlx::query(
            "INSERT INTO session_audit (at, actor_user_id, actor_email, action, target_user_id, target_email, handle, sessions_ended)
             SELECT $1, id, email, 'revoke session', NULL, $2, NULL, 1 FROM users WHERE email = 'boss@example.com'"
        )
        .bind(1_700_000_000_i64 + i)
        .bind(format!("old{i:02}@example.com"))
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
        .unwrap();
    }
    let first = boss.get("/admin/sessions").await;
    let rows = testid_attr(&first.body, "audit-row", "data-testid");
    assert_eq!(rows.len(), 20);
    assert_eq!(
        testid_text(&first.body, "audit-total").as_deref(),
        Some("45 entries · page 1 of 3")
    );
    assert!(first.body.contains("old43@example.com"), "newest first");
    assert!(first.body.contains(r#"aria-label="Audit log pages""#));
    assert!(first
        .body
        .contains(r#"href="/admin/sessions?audit_page=2" rel="next""#));
    let last = boss.get("/admin/sessions?audit_page=3").await;
    assert_eq!(testid_attr(&last.body, "audit-row", "data-testid").len(), 5);
    assert!(
        last.body.contains("victim@example.com"),
        "the oldest entry last"
    );
    app.stop().await;
}

/// The `id=` cookie a reply set, if any.
fn session_cookie_header(reply: &common::Reply) -> Option<String> {
    reply
        .set_cookie
        .iter()
        .find(|c| c.starts_with("id="))
        .cloned()
}

#[tokio::test]
async fn keep_me_signed_in_chooses_the_cookie_and_the_timeouts() {
    let app = spawn_app_with(|config| {
        // Minutes, not seconds: the session clock is moved forward, but real time passes too,
        // and on a loaded machine a few seconds of it must not end a login early.
        config.policy.login_idle_timeout = std::time::Duration::from_secs(60);
        config.policy.login_absolute_timeout = std::time::Duration::from_secs(120);
        config.policy.remembered_login_timeout = std::time::Duration::from_secs(300);
        config.policy.touch_interval = std::time::Duration::from_secs(30);
    })
    .await;
    let scarf = product_id(&app, "merino-scarf").await;
    for email in ["brief@example.com", "kept@example.com"] {
        let mut shopper = Shopper::new(&app);
        assert_eq!(shopper.register(email, PASSWORD).await.status, 200);
    }

    // Unticked: a cookie that ends with the browser, also when the session changes later.
    let mut brief = Shopper::new(&app);
    let reply = brief.login("brief@example.com", PASSWORD).await;
    let cookie = session_cookie_header(&reply).expect("a new session cookie");
    assert!(
        !cookie.contains("Max-Age") && !cookie.contains("Expires"),
        "{cookie}"
    );
    let reply = brief.add(scarf, "1").await;
    if let Some(cookie) = session_cookie_header(&reply) {
        assert!(
            !cookie.contains("Max-Age") && !cookie.contains("Expires"),
            "{cookie}"
        );
    }

    // Ticked, as a plain HTML form (no JavaScript): a cookie for the session idle timeout.
    let mut kept = Shopper::new(&app);
    let reply = kept
        .post_form(
            "/api/login",
            &[
                ("email", "kept@example.com"),
                ("password", PASSWORD),
                ("remember", "on"),
            ],
            "/login",
        )
        .await;
    assert_eq!(reply.status, 303);
    let cookie = session_cookie_header(&reply).expect("a new session cookie");
    assert!(cookie.contains("Max-Age=604800"), "7 days: {cookie}");

    // The registry says which kind each is (the registration's login is listed too: not kept).
    let kind_of_current = |html: &str| {
        let current = testid_attr(html, "session-row", "data-current");
        let kinds = testid_attr(html, "session-kind", "data-remembered");
        assert_eq!(current.len(), kinds.len());
        current
            .iter()
            .zip(kinds)
            .find(|(current, _)| *current == "true")
            .map(|(_, kind)| kind)
            .expect("the current session is listed")
    };
    let page = kept.get("/account/sessions").await;
    assert_eq!(kind_of_current(&page.body), "true");
    assert!(page.body.contains("Kept signed in"));
    assert!(page.body.contains("Until the browser closes"));
    let page = brief.get("/account/sessions").await;
    assert_eq!(kind_of_current(&page.body), "false");

    // Idle for longer than the login idle timeout (60 s, counted in whole seconds from the
    // last recorded activity): only the remembered login is kept.
    advance_seconds(62);
    assert_eq!(brief.me().await["user"], serde_json::Value::Null);
    // Used again after the touch interval: the persistent cookie is sent again, renewed.
    let reply = kept.get("/api/me").await;
    assert_eq!(reply.json()["user"]["email"], "kept@example.com");
    let renewed = session_cookie_header(&reply).expect("the cookie is renewed with use");
    assert!(renewed.contains("Max-Age=604800"), "{renewed}");
    // Past the short absolute timeout (120 s), the remembered login lasts until the long one
    // (300 s), then ends too.
    advance_seconds(60);
    assert_eq!(kept.me().await["user"]["email"], "kept@example.com");
    advance_seconds(180);
    assert_eq!(kept.me().await["user"], serde_json::Value::Null);
    let metrics = app.scrape().await;
    assert_eq!(
        sample(
            &metrics,
            "coatcheck_session_expiries_total{kind=\"login_idle\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            "coatcheck_session_expiries_total{kind=\"login_absolute\"}"
        ),
        1.0
    );
    app.stop().await;
}

/// The stored records' expiry dates (Unix seconds), newest login last.
async fn stored_expiries(app: &TestApp) -> Vec<i64> {
    let expiries = common::stored_expiries(&app.database_url).await;
    expiries.iter().map(|e| e.unix_timestamp()).collect()
}

#[tokio::test]
async fn a_login_until_the_browser_closes_is_stored_no_longer_than_its_timeouts_allow() {
    // The defaults: a 30-minute login idle timeout, a 7-day session idle timeout.
    let app = spawn_app().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let _brief = logged_in(&app, "brief@example.com").await;
    let expiries = stored_expiries(&app).await;
    assert_eq!(expiries.len(), 1);
    // Its deadline (30 min) and one more idle period for the cart and the message: an hour,
    // not tower-sessions' 14 days for a cookie that ends with the browser.
    let stored_for = expiries[0] - now;
    assert!(
        (3500..=3700).contains(&stored_for),
        "stored for {stored_for} s"
    );

    // "Keep me signed in": the session's idle timeout (7 days).
    let mut kept = Shopper::new(&app);
    let reply = kept
        .post(
            "/api/login",
            &[
                ("email", "brief@example.com"),
                ("password", PASSWORD),
                ("remember", "On"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
    let longest = *stored_expiries(&app).await.last().unwrap() - now;
    assert!(
        (7 * 86_400 - 100..=7 * 86_400 + 100).contains(&longest),
        "a remembered login: {longest} s"
    );
    app.stop().await;
}

#[tokio::test]
async fn timed_out_logins_are_listed_nowhere() {
    let app = spawn_app_with(|config| {
        // A minute, not seconds (see an_idle_login_is_demoted_but_keeps_the_cart).
        config.policy.login_idle_timeout = std::time::Duration::from_secs(60);
        config.policy.touch_interval = std::time::Duration::from_secs(30);
    })
    .await;
    let mut boss = admin(&app).await;
    // A second login of the admin, kept signed in (the long timeouts), which stays active;
    // the first one (until the browser closes) goes idle.
    let mut kept = Shopper::new(&app);
    let reply = kept
        .post(
            "/api/login",
            &[
                ("email", "boss@example.com"),
                ("password", PASSWORD),
                ("remember", "on"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
    let count = |html: &str| testid_attr(html, "session-row", "data-current").len();
    assert_eq!(count(&kept.get("/account/sessions").await.body), 2);
    // Idle for longer than the login idle timeout (counted in whole seconds).
    for _ in 0..4 {
        advance_seconds(20);
        assert_eq!(kept.me().await["user"]["email"], "boss@example.com");
    }
    // Its row is still open (only its own next request ends it), but it is dead: listed
    // nowhere, counted nowhere.
    assert_eq!(common::open_logins(&app.database_url).await, 2);
    assert_eq!(
        count(&kept.get("/account/sessions").await.body),
        1,
        "own list"
    );
    assert_eq!(
        count(&kept.get("/admin/sessions").await.body),
        1,
        "admin list"
    );
    assert_eq!(
        sample(
            &app.scrape().await,
            "coatcheck_sessions_live{kind=\"logged_in\"}"
        ),
        1.0
    );
    // And the idle one is indeed signed out at its next request.
    assert_eq!(boss.me().await["user"], serde_json::Value::Null);
    app.stop().await;
}
