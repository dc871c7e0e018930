//! Several instances, one database: separate `coatcheck serve` *processes* (not two apps in one
//! test process, whose shared process-wide state would hide the races) on one shared database —
//! PostgreSQL in the PostgreSQL run, one SQLite file in the SQLite run. Every session guarantee
//! must hold across them: one browser's requests land on any instance.
#![cfg(feature = "ssr")]

use crate::common;
use common::{
    cookieless_add, fresh_database_url, testid_attr, testid_text, ServerProcess, Shopper, PASSWORD,
};

/// Instances on one fresh database; the first one migrates and seeds it.
async fn instances(n: usize) -> (tempfile::TempDir, String, Vec<ServerProcess>) {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    let mut servers = Vec::new();
    for _ in 0..n {
        servers.push(ServerProcess::start(&url).await);
    }
    (dir, url, servers)
}

/// A shopper without a session yet, whose requests go to `server` until moved with [`on`].
fn shopper(server: &ServerProcess) -> Shopper {
    server.shopper()
}

/// The same shopper (same cookie), now talking to `server`.
fn on<'a>(shopper: &'a mut Shopper, server: &ServerProcess) -> &'a mut Shopper {
    shopper.base = server.base.clone();
    shopper
}

async fn product(url: &str, slug: &str) -> i64 {
    let db = app::server::db::connect(url).await.unwrap();
    let id = app::on_db!(&db, p => sqlx::query_scalar("SELECT id FROM products WHERE slug = $1")
        .bind(slug)
        .fetch_one(p)
        .await)
    .unwrap();
    db.close().await;
    id
}

async fn execute(url: &str, sql: &str, id: i64) {
    let db = app::server::db::connect(url).await.unwrap();
    app::on_db!(&db, p => sqlx::query(sql).bind(id).execute(p).await.map(|r| r.rows_affected()))
        .unwrap();
    db.close().await;
}

fn quantity_of(cart: &serde_json::Value, product: i64) -> u64 {
    cart["lines"]
        .as_array()
        .expect("cart lines")
        .iter()
        .find(|line| line["product_id"] == product)
        .map_or(0, |line| line["quantity"].as_u64().unwrap())
}

#[tokio::test]
async fn a_cart_follows_its_shopper_across_instances_and_concurrent_adds_on_both_all_count() {
    let (_dir, url, servers) = instances(2).await;
    let (a, b) = (&servers[0], &servers[1]);
    let scarf = product(&url, "merino-scarf").await;
    let beanie = product(&url, "knit-beanie").await;

    let mut shopper = shopper(a);
    assert_eq!(shopper.add(scarf, "2").await.status, 200);
    let cart = on(&mut shopper, b).cart().await;
    assert_eq!(
        quantity_of(&cart, scarf),
        2,
        "the cart built on A, read on B"
    );

    // 32 + 32 concurrent adds on one session, half on each instance.
    let adds = (0..64).map(|i| {
        let mut one = shopper.clone();
        one.base = servers[i % 2].base.clone();
        tokio::spawn(async move { one.add(beanie, "1").await.status })
    });
    let statuses: Vec<u16> = futures::future::join_all(adds)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    for server in [a, b] {
        let cart = on(&mut shopper, server).cart().await;
        assert_eq!(quantity_of(&cart, beanie), 64, "no add lost");
        assert_eq!(quantity_of(&cart, scarf), 2, "the first line kept");
    }
}

#[tokio::test]
async fn a_login_on_another_instance_rotates_the_id_everywhere_and_keeps_the_cart() {
    let (_dir, url, servers) = instances(2).await;
    let (a, b) = (&servers[0], &servers[1]);
    let scarf = product(&url, "merino-scarf").await;
    let mut account = shopper(b);
    assert_eq!(
        account.register("ann@example.com", PASSWORD).await.status,
        200
    );

    let mut visitor = shopper(a);
    assert_eq!(visitor.add(scarf, "3").await.status, 200);
    let before = visitor
        .cookie
        .clone()
        .expect("a session after a cart write");
    let login = on(&mut visitor, b).login("ann@example.com", PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let after = visitor.cookie.clone().expect("a new session cookie");
    assert_ne!(before, after, "the ID changed on login");

    for server in [a, b] {
        let mut old = visitor.with_cookie(Some(before.clone()));
        let me = on(&mut old, server).me().await;
        assert_eq!(me["user"], serde_json::Value::Null, "the old ID is nobody");
        assert_eq!(old.cart_count().await, 0, "the old ID has no cart");
    }
    let mut new = visitor.with_cookie(Some(after));
    let me = on(&mut new, a).me().await;
    assert_eq!(me["user"]["email"], "ann@example.com", "logged in on A");
    assert_eq!(quantity_of(&new.cart().await, scarf), 3, "with the cart");
}

#[tokio::test]
async fn a_revocation_through_one_instance_ends_the_session_on_the_other_at_once() {
    let (_dir, url, servers) = instances(2).await;
    let (a, b) = (&servers[0], &servers[1]);
    let scarf = product(&url, "merino-scarf").await;

    let mut boss = shopper(b);
    assert_eq!(
        boss.register("boss@example.com", PASSWORD).await.status,
        200
    );
    {
        let db = app::server::db::connect(&url).await.unwrap();
        app::on_db!(&db, p => sqlx::query("UPDATE users SET is_admin = $1 WHERE email = $2")
            .bind(true)
            .bind("boss@example.com")
            .execute(p)
            .await
            .map(|r| r.rows_affected()))
        .unwrap();
        db.close().await;
    }
    assert_eq!(boss.login("boss@example.com", PASSWORD).await.status, 200);

    let mut victim = shopper(a);
    assert_eq!(
        victim.register("ann@example.com", PASSWORD).await.status,
        200
    );
    assert_eq!(victim.add(scarf, "1").await.status, 200);
    let cookie = victim.cookie.clone().unwrap();

    let page = boss.get("/admin/sessions").await;
    assert_eq!(page.status, 200);
    let emails = testid_attr(&page.body, "session-row", "data-user-email");
    let handles = testid_attr(&page.body, "session-row", "data-session");
    let index = emails.iter().position(|e| e == "ann@example.com").unwrap();

    // A slow request of the victim's is running on A (its session loaded, its body not yet
    // complete) while the admin revokes the session through B.
    let held = common::HeldRequest::start(
        a.base.trim_start_matches("http://").parse().unwrap(),
        "/api/cart/add",
        &cookie,
        &format!("product_id={scarf}&quantity=1"),
    )
    .await;
    let revoked = boss
        .post(
            "/api/admin/sessions/revoke",
            &[("session", &handles[index])],
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);

    // The very next request on A is anonymous, with no cart.
    let mut next = victim.with_cookie(Some(cookie.clone()));
    assert_eq!(on(&mut next, a).me().await["user"], serde_json::Value::Null);
    assert_eq!(next.cart_count().await, 0);

    // The held request finishes after the revocation: it may not bring the session back.
    let reply = held.finish().await;
    assert!(reply.status < 500, "{} {}", reply.status, reply.body);
    for server in [a, b] {
        let mut again = victim.with_cookie(Some(cookie.clone()));
        let me = on(&mut again, server).me().await;
        assert_eq!(me["user"], serde_json::Value::Null, "still revoked");
        for id in &reply.new_ids {
            let mut other = victim.with_cookie(Some(id.clone()));
            assert_eq!(
                on(&mut other, server).me().await["user"],
                serde_json::Value::Null,
                "no login under a new ID either"
            );
        }
    }
    let page = boss.get("/admin/sessions").await;
    assert_eq!(
        testid_attr(&page.body, "session-row", "data-user-email"),
        ["boss@example.com"],
        "the victim's session is not listed again"
    );
}

/// How long a change made on one instance may take to show on another's pages: the catalog
/// version is checked on every catalog read, and the page caches check it at most every
/// `VERSION_CHECK_INTERVAL`.
const STALENESS_BOUND: std::time::Duration = app::server::catalog::VERSION_CHECK_INTERVAL;

#[tokio::test]
async fn catalog_changes_and_the_last_item_are_the_same_on_every_instance() {
    let (_dir, url, servers) = instances(2).await;
    let (a, b) = (&servers[0], &servers[1]);
    let scarf = product(&url, "merino-scarf").await;
    let fedora = product(&url, "felt-fedora").await;

    // B has everything cached: the catalog, the product page, a cart with the scarf.
    let mut on_b = shopper(b);
    assert_eq!(on_b.add(scarf, "1").await.status, 200);
    let page = on_b.get("/products/merino-scarf").await;
    assert!(page.body.contains("$49.00"), "the seeded price");
    let anonymous = reqwest::Client::new();
    let catalog = anonymous.get(format!("{}/", b.base)).send().await.unwrap();
    assert!(catalog.text().await.unwrap().contains("$49.00"));

    // A price change, in the database every instance shares.
    execute(
        &url,
        "UPDATE products SET price_cents = 1234 WHERE id = $1",
        scarf,
    )
    .await;
    tokio::time::sleep(STALENESS_BOUND * 2).await;
    let page = on_b.get("/products/merino-scarf").await;
    assert!(page.body.contains("$12.34"), "B's product page follows");
    let catalog = anonymous.get(format!("{}/", b.base)).send().await.unwrap();
    let catalog = catalog.text().await.unwrap();
    assert!(
        catalog.contains("$12.34"),
        "B's (cached) catalog page follows"
    );
    let cart = on_b.cart().await;
    let line = &cart["lines"][0];
    assert_eq!(line["unit_price_cents"], 1234, "B's cart follows: {cart}");

    // The last fedora: a sell-out through checkouts on A and B racing for it.
    execute(&url, "UPDATE products SET stock = 1 WHERE id = $1", fedora).await;
    let mut buyers = Vec::new();
    for (i, name) in ["ann", "bob", "cid", "dee"].iter().enumerate() {
        let mut buyer = shopper(&servers[i % 2]);
        let email = format!("{name}@example.com");
        assert_eq!(buyer.register(&email, PASSWORD).await.status, 200);
        assert_eq!(buyer.add(fedora, "1").await.status, 200);
        buyers.push(buyer);
    }
    let attempts = buyers.into_iter().map(|mut buyer| {
        tokio::spawn(async move { buyer.post("/api/checkout", &[]).await.status })
    });
    let statuses: Vec<u16> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "sold exactly once: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );

    // Sold out on both instances' pages, made by a checkout on whichever won.
    tokio::time::sleep(STALENESS_BOUND * 2).await;
    for server in [a, b] {
        let page = reqwest::Client::new()
            .get(format!("{}/products/felt-fedora", server.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let stock = testid_text(&page, "stock").unwrap_or_default();
        assert!(stock.to_lowercase().contains("sold out"), "{stock}");
    }
}

/// A shopper on a client address of its own (per-address budgets count each apart).
fn shopper_from(server: &ServerProcess, n: usize) -> Shopper {
    Shopper {
        base: server.base.clone(),
        client: reqwest::Client::builder()
            .local_address(common::client_ip(n))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap(),
        cookie: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_instance_under_load_loses_nothing_acknowledged_and_the_other_serves_on() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (_dir, url, servers) = instances(2).await;
    // Four products, at most 15 of each per cart: no add is refused for stock or the line limit.
    let mut products = Vec::new();
    for slug in [
        "merino-scarf",
        "knit-beanie",
        "felt-fedora",
        "leather-gloves",
    ] {
        products.push(product(&url, slug).await);
    }
    let (a, b) = (servers[0].base.clone(), servers[1].base.clone());
    let killed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for n in 0..8 {
        let mut shopper = shopper_from(&servers[1], 100 + n);
        let (a, b, products) = (a.clone(), b.clone(), products.clone());
        let (killed, stop) = (killed.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            // (acknowledged adds, attempted adds, failures on B)
            let (mut acknowledged, mut attempted, mut failures_on_b) = (0u64, 0u64, Vec::new());
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                // Before the kill, every other request goes to A; after it, all go to B (the
                // load balancer's part: it takes a dead instance out).
                let to_a = i.is_multiple_of(2) && !killed.load(Ordering::SeqCst);
                shopper.base = if to_a { a.clone() } else { b.clone() };
                if i.is_multiple_of(3) || attempted == 60 {
                    let page = shopper
                        .client
                        .get(format!("{}/", shopper.base))
                        .send()
                        .await;
                    match page {
                        Ok(r) if r.status() == 200 => {}
                        other if !to_a => {
                            failures_on_b.push(format!("GET /: {:?}", other.map(|r| r.status())))
                        }
                        _ => {}
                    }
                    continue;
                }
                let product = products[attempted as usize % products.len()];
                attempted += 1;
                let form = [
                    ("product_id", product.to_string()),
                    ("quantity", "1".into()),
                ];
                let mut request = shopper
                    .client
                    .post(format!("{}/api/cart/add", shopper.base))
                    .header("accept", "application/json")
                    .form(&form);
                if let Some(cookie) = &shopper.cookie {
                    request = request.header("cookie", format!("id={cookie}"));
                }
                match request.send().await {
                    Ok(response) if response.status() == 200 => {
                        if shopper.cookie.is_none() {
                            let cookie = common::first_cookie(&response);
                            shopper.cookie = cookie.strip_prefix("id=").map(str::to_string);
                        }
                        acknowledged += 1;
                    }
                    other if !to_a => {
                        failures_on_b.push(format!("add: {:?}", other.map(|r| r.status())))
                    }
                    _ => {}
                }
            }
            shopper.base = b.clone();
            let in_cart = if shopper.cookie.is_some() {
                shopper.cart_count().await
            } else {
                0
            };
            (acknowledged, attempted, failures_on_b, in_cart)
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    servers[0].signal("KILL");
    killed.store(true, Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(800)).await;
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for task in tasks {
        let (acknowledged, attempted, failures_on_b, in_cart) = task.await.unwrap();
        assert!(failures_on_b.is_empty(), "B failed: {failures_on_b:?}");
        assert!(
            acknowledged <= in_cart && in_cart <= attempted,
            "acknowledged {acknowledged} ≤ in the cart {in_cart} ≤ attempted {attempted}"
        );
        total += acknowledged;
    }
    assert!(total > 16, "the load ran: {total} adds acknowledged");
}

/// A GET with a session cookie: the status and the Retry-After header.
async fn status_and_retry(base: &str, path: &str, cookie: &str) -> (u16, Option<String>) {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("cookie", format!("id={cookie}"))
        .timeout(std::time::Duration::from_secs(20))
        .send()
        .await
        .unwrap();
    let retry = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (response.status().as_u16(), retry)
}

#[tokio::test]
async fn a_database_server_restart_is_503_meanwhile_and_full_service_after() {
    if !common::on_postgres() {
        eprintln!(
            "PostgreSQL only: it restarts the database server (an unavailable SQLite database \
             is tested in reliability.rs)"
        );
        return;
    }
    let postgres = common::PrivatePostgres::start();
    let servers = [
        ServerProcess::start(&postgres.url()).await,
        ServerProcess::start(&postgres.url()).await,
    ];
    let scarf = product(&postgres.url(), "merino-scarf").await;
    let mut shopper = shopper(&servers[0]);
    assert_eq!(shopper.add(scarf, "2").await.status, 200);
    let cookie = shopper.cookie.clone().unwrap();

    postgres.stop();
    let during = futures::future::join_all([
        status_and_retry(&servers[0].base, "/api/cart", &cookie),
        status_and_retry(&servers[1].base, "/api/cart", &cookie),
        status_and_retry(&servers[1].base, "/healthz", &cookie),
    ])
    .await;
    for (status, retry) in &during {
        assert_eq!(*status, 503, "{during:?}");
        assert!(retry.is_some(), "Retry-After: {during:?}");
    }
    // Cookie-less catalog pages too, within the documented time (the pool's 5 s wait for a
    // connection, once), not once per query of the page.
    for path in ["/", "/?q=wool", "/products/merino-scarf"] {
        let started = std::time::Instant::now();
        let page = reqwest::get(format!("{}{path}", servers[1].base))
            .await
            .unwrap();
        let waited = started.elapsed();
        assert_eq!(page.status(), 503, "{path}");
        assert!(page.headers().contains_key("retry-after"), "{path}");
        assert!(
            waited < std::time::Duration::from_millis(7500),
            "{path}: answered after {waited:?}, documented: about 5 s"
        );
        eprintln!("{path}: 503 after {waited:?} with the database down");
    }

    postgres.start_again();
    for server in &servers {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let (status, _) = status_and_retry(&server.base, "/healthz", &cookie).await;
            if status == 200 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no service after the restart"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    // Everything acknowledged before is there, and writes work again, on both instances.
    assert_eq!(
        quantity_of(&on(&mut shopper, &servers[1]).cart().await, scarf),
        2
    );
    assert_eq!(
        on(&mut shopper, &servers[0]).add(scarf, "1").await.status,
        200
    );
    assert_eq!(
        quantity_of(&on(&mut shopper, &servers[1]).cart().await, scarf),
        3
    );
}

#[tokio::test]
async fn instances_starting_together_on_an_empty_database_migrate_and_seed_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    let servers = futures::future::join_all((0..3).map(|_| ServerProcess::start(&url))).await;
    let db = app::server::db::connect(&url).await.unwrap();
    let (applied, products): (i64, i64) = app::on_db!(&db, p => sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM _sqlx_migrations WHERE success),
                (SELECT COUNT(*) FROM products)"
    )
    .fetch_one(p)
    .await)
    .unwrap();
    let expected = match db.kind() {
        app::server::db::Kind::Sqlite => std::fs::read_dir("migrations/sqlite").unwrap().count(),
        app::server::db::Kind::Postgres => {
            std::fs::read_dir("migrations/postgres").unwrap().count()
        }
    };
    assert_eq!(applied, expected as i64, "every migration applied, once");
    assert_eq!(products, 15, "the demo catalog seeded once");
    for server in &servers {
        let page = reqwest::get(format!("{}/", server.base)).await.unwrap();
        assert_eq!(page.status(), 200);
    }
    db.close().await;
}

#[tokio::test]
async fn two_instances_give_one_client_the_new_session_budget_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    let budgeted = |command: &mut std::process::Command| {
        command.env("COATCHECK_NEW_SESSIONS_BURST", "8");
    };
    let servers = [
        ServerProcess::start_with(&url, budgeted).await,
        ServerProcess::start_with(&url, budgeted).await,
    ];
    let scarf = product(&url, "merino-scarf").await;
    // 40 cookie-less add-to-carts from one address, 8 at a time, alternating instances.
    let mut statuses = Vec::new();
    let mut retry_after = Vec::new();
    for wave in 0..5 {
        let requests = (0..8).map(|i| {
            cookieless_add(
                format!("{}/api/cart/add", servers[(wave + i) % 2].base),
                scarf,
            )
        });
        for (status, wait) in futures::future::join_all(requests).await {
            statuses.push(status);
            if status == 429 {
                retry_after.push(wait.expect("429 comes with Retry-After"));
            }
        }
    }
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(accepted + refused, statuses.len(), "{statuses:?}");
    // The budget of one instance (8; one more if a refill came due meanwhile), not of two.
    assert!(
        (8..=9).contains(&accepted),
        "{accepted} accepted: {statuses:?}"
    );
    assert!(
        retry_after.iter().all(|s| (1..=30).contains(s)),
        "{retry_after:?}"
    );
    let stored = common::stored_count(&url).await;
    assert_eq!(
        stored as usize, accepted,
        "a session stored for each accepted request, none for the refused"
    );
}
