//! The cart in the session: rules, bad input, atomicity under concurrency (also across
//! two server processes), and agreement between the JSON, the badge and the cart page.
#![cfg(feature = "ssr")]

use crate::common;
use common::{product_id, spawn_app, testid_attr, testid_text, Shopper};

#[tokio::test]
async fn add_update_remove_clear() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    let scarf = product_id(&app, "merino-scarf").await;
    let hat = product_id(&app, "knit-beanie").await;

    assert_eq!(shopper.add(scarf, "2").await.status, 200);
    assert_eq!(shopper.add(hat, "1").await.status, 200);
    assert_eq!(shopper.add(scarf, "3").await.status, 200);
    let cart = shopper.cart().await;
    assert_eq!(cart["count"], 6);
    assert_eq!(cart["total_cents"], 5 * 4900 + 2400);
    let first = &cart["lines"][0];
    for field in ["product_id", "slug", "name", "quantity", "unit_price_cents"] {
        assert!(!first[field].is_null(), "line has {field}");
    }
    assert_eq!(first["quantity"], 5);

    let reply = shopper
        .post(
            "/api/cart/update",
            &[("product_id", &scarf.to_string()), ("quantity", "1")],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(shopper.cart_count().await, 2);

    let reply = shopper
        .post(
            "/api/cart/update",
            &[("product_id", &scarf.to_string()), ("quantity", "0")],
        )
        .await;
    assert_eq!(reply.status, 200);
    let cart = shopper.cart().await;
    assert_eq!(cart["lines"].as_array().unwrap().len(), 1);
    assert_eq!(cart["lines"][0]["slug"], "knit-beanie");

    assert_eq!(shopper.post("/api/cart/clear", &[]).await.status, 200);
    assert_eq!(shopper.cart().await["count"], 0);
    app.stop().await;
}

#[tokio::test]
async fn json_badge_and_cart_page_agree() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    shopper
        .add(product_id(&app, "merino-scarf").await, "2")
        .await;
    shopper
        .add(product_id(&app, "felt-fedora").await, "1")
        .await;
    let cart = shopper.cart().await;
    let page = shopper.get("/cart").await;
    assert_eq!(page.status, 200);
    assert_eq!(testid_text(&page.body, "cart-count").as_deref(), Some("3"));
    assert_eq!(
        testid_attr(&page.body, "cart-total", "data-cents"),
        [cart["total_cents"].to_string()]
    );
    let quantities = testid_attr(&page.body, "cart-line", "data-quantity");
    assert_eq!(quantities, ["2", "1"]);
    let ids = testid_attr(&page.body, "cart-line", "data-product-id");
    assert_eq!(
        ids,
        [
            cart["lines"][0]["product_id"].to_string(),
            cart["lines"][1]["product_id"].to_string()
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn price_changes_show_at_once() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    let scarf = product_id(&app, "merino-scarf").await;
    shopper.add(scarf, "2").await;
    app::on_db!(&app.db().await, p => sqlx::query(
        "UPDATE products SET price_cents = 1000 WHERE id = $1"
    )
    .bind(scarf)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    let cart = shopper.cart().await;
    assert_eq!(cart["lines"][0]["unit_price_cents"], 1000);
    assert_eq!(cart["total_cents"], 2000);
    app.stop().await;
}

#[tokio::test]
async fn bad_input_is_rejected_and_changes_nothing() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    let scarf = product_id(&app, "merino-scarf").await;
    let parka = product_id(&app, "alpine-down-parka").await; // stock 30
    let hat = product_id(&app, "knit-beanie").await; // stock 100: limited by 99 per line
    app::on_db!(&app.db().await, p => sqlx::query(
        "UPDATE products SET stock = 0 WHERE slug = 'cashmere-wrap'"
    )
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    let sold_out = product_id(&app, "cashmere-wrap").await;
    shopper.add(scarf, "2").await;
    let before = shopper.cart().await;

    let scarf_id = scarf.to_string();
    let parka_id = parka.to_string();
    let hat_id = hat.to_string();
    let sold_out_id = sold_out.to_string();
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "/api/cart/add",
            vec![("product_id", &scarf_id), ("quantity", "0")],
        ),
        (
            "/api/cart/add",
            vec![("product_id", &scarf_id), ("quantity", "-1")],
        ),
        (
            "/api/cart/add",
            vec![("product_id", &scarf_id), ("quantity", "100")],
        ),
        (
            "/api/cart/add",
            vec![("product_id", &scarf_id), ("quantity", "abc")],
        ),
        (
            "/api/cart/add",
            vec![("product_id", &scarf_id), ("quantity", "1.5")],
        ),
        (
            "/api/cart/add",
            vec![
                ("product_id", &scarf_id),
                ("quantity", "99999999999999999999999"),
            ],
        ),
        (
            "/api/cart/add",
            vec![("product_id", &scarf_id), ("quantity", "")],
        ),
        (
            "/api/cart/add",
            vec![("product_id", "999999"), ("quantity", "1")],
        ),
        (
            "/api/cart/add",
            vec![("product_id", "-3"), ("quantity", "1")],
        ),
        (
            "/api/cart/add",
            vec![("product_id", "scarf"), ("quantity", "1")],
        ),
        (
            "/api/cart/add",
            vec![("product_id", &sold_out_id), ("quantity", "1")],
        ),
        (
            "/api/cart/add",
            vec![("product_id", &parka_id), ("quantity", "31")],
        ),
        (
            "/api/cart/add",
            vec![("product_id", &scarf_id), ("quantity", "98")],
        ),
        (
            "/api/cart/add",
            vec![("product_id", &hat_id), ("quantity", "99")],
        ),
        ("/api/cart/add", vec![("product_id", &scarf_id)]),
        ("/api/cart/add", vec![]),
        (
            "/api/cart/update",
            vec![("product_id", &scarf_id), ("quantity", "-1")],
        ),
        (
            "/api/cart/update",
            vec![("product_id", &scarf_id), ("quantity", "81")],
        ),
        (
            "/api/cart/update",
            vec![("product_id", &parka_id), ("quantity", "1")],
        ),
        (
            "/api/cart/update",
            vec![("product_id", "999999"), ("quantity", "1")],
        ),
        (
            "/api/cart/update",
            vec![("product_id", "999999"), ("quantity", "0")],
        ),
    ];
    for (path, form) in &cases {
        let reply = shopper.post(path, form).await;
        // The hat case is the only one that is valid: 99 of a product with stock 100.
        if form.iter().any(|(_, v)| *v == hat_id.as_str()) {
            assert_eq!(reply.status, 200, "{path} {form:?}: {}", reply.body);
            shopper
                .post(
                    "/api/cart/update",
                    &[("product_id", &hat_id), ("quantity", "0")],
                )
                .await;
            continue;
        }
        assert!(
            (400..500).contains(&reply.status),
            "{path} {form:?} -> {} {}",
            reply.status,
            reply.body
        );
        assert!(!reply.body.contains("panicked"), "{}", reply.body);
        assert_eq!(
            shopper.cart().await,
            before,
            "{path} {form:?} left the cart unchanged"
        );
    }
    // A readable message, not an internal error.
    let reply = shopper.add(parka, "31").await;
    assert!(
        reply
            .body
            .contains("Only 30 of Alpine Down Parka available"),
        "{}",
        reply.body
    );
    app.stop().await;
}

#[tokio::test]
async fn browsing_creates_no_session_but_the_first_cart_write_does() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    shopper.get("/").await;
    shopper.get("/cart").await;
    assert_eq!(shopper.get("/api/cart").await.set_cookie.len(), 0);
    assert!(shopper.cookie.is_none());
    let reply = shopper
        .add(product_id(&app, "merino-scarf").await, "1")
        .await;
    assert_eq!(reply.status, 200);
    let cookie = reply
        .set_cookie
        .iter()
        .find(|c| c.starts_with("id="))
        .expect("session cookie set");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie} has {attribute}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert!(
        !reply.body.contains(shopper.cookie.as_deref().unwrap()),
        "no session id in the body"
    );
    assert_eq!(common::stored_count(&app.database_url).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_adds_on_one_session_are_all_kept() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    let hat = product_id(&app, "knit-beanie").await; // stock 100
    shopper.add(hat, "1").await;
    let cookie = shopper.cookie.clone();
    let adds = (0..25).map(|_| {
        let mut shopper = shopper.with_cookie(cookie.clone());
        tokio::spawn(async move { shopper.add(hat, "1").await.status })
    });
    let statuses: Vec<u16> = futures::future::join_all(adds)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        shopper.cart_count().await,
        26,
        "every one of 1 + 25 adds counted"
    );
    app.stop().await;
}

/// A cart write held open after its session was loaded, while another write of the same
/// session lands: neither overwrites the other (the held change reads the record under the
/// session's turn and swaps only over exactly what it read).
#[tokio::test]
async fn a_cart_write_held_open_while_another_lands_keeps_both() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    let hat = product_id(&app, "knit-beanie").await;
    let scarf = product_id(&app, "merino-scarf").await;
    shopper.add(hat, "1").await;
    let cookie = shopper.cookie.clone().expect("a session");
    let held = common::HeldRequest::start(
        app.addr,
        "/api/cart/add",
        &cookie,
        &format!("product_id={scarf}&quantity=2"),
    )
    .await;
    assert_eq!(shopper.add(hat, "3").await.status, 200);
    let reply = held.finish().await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        shopper.cart_count().await,
        6,
        "1 + 3 beanies and 2 scarves: neither write lost"
    );
    app.stop().await;
}

#[tokio::test]
async fn plain_form_add_redirects_back_with_a_flash() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    let scarf = product_id(&app, "merino-scarf").await.to_string();
    let reply = shopper
        .post_form(
            "/api/cart/add",
            &[("product_id", &scarf), ("quantity", "2")],
            "/products/merino-scarf",
        )
        .await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.location.as_deref(), Some("/products/merino-scarf"));
    let page = shopper.get("/products/merino-scarf").await;
    assert_eq!(
        testid_text(&page.body, "flash").as_deref(),
        Some("Added 2 × Merino Scarf to your cart.")
    );
    assert_eq!(testid_text(&page.body, "cart-count").as_deref(), Some("2"));
    // Shown once.
    let page = shopper.get("/products/merino-scarf").await;
    assert_eq!(testid_text(&page.body, "flash"), None);

    // A rejected input comes back as a readable message, not an error page.
    let reply = shopper
        .post_form(
            "/api/cart/add",
            &[("product_id", &scarf), ("quantity", "abc")],
            "/products/merino-scarf",
        )
        .await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.location.as_deref(), Some("/products/merino-scarf"));
    let page = shopper.get("/products/merino-scarf").await;
    assert_eq!(
        testid_text(&page.body, "flash").as_deref(),
        Some("Quantity must be a whole number.")
    );
    assert_eq!(testid_text(&page.body, "cart-count").as_deref(), Some("2"));
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_and_malformed_cookies_are_client_errors() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    let big = "x".repeat(2 * 1024 * 1024);
    let reply = shopper
        .post("/api/cart/add", &[("product_id", "1"), ("quantity", &big)])
        .await;
    assert_eq!(reply.status, 413);
    for cookie in [
        "not-a-session",
        "%%%",
        &"A".repeat(4000),
        "AAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let mut forged = shopper.with_cookie(Some(cookie.to_string()));
        let reply = forged.get("/api/cart").await;
        assert_eq!(reply.status, 200, "cookie {cookie:.20}");
        assert_eq!(reply.json()["count"], 0);
        let reply = forged.add(1, "1").await;
        assert_eq!(reply.status, 200);
        assert_ne!(
            forged.cookie.as_deref(),
            Some(cookie),
            "a forged id is never adopted"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_stored_session_without_data_keeps_its_cookie_and_its_first_cart_line() {
    use tower_sessions::session::{Id, Record};
    use tower_sessions::SessionStore;
    let app = spawn_app().await;
    let scarf = product_id(&app, "merino-scarf").await;
    // A session whose stored data is empty (what a store may hold after its last value went),
    // stored by the server's own store.
    let mut record = Record {
        id: Id::default(),
        data: Default::default(),
        expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
    };
    app.store.create(&mut record).await.unwrap();
    assert_eq!(common::stored_count(&app.database_url).await, 1);
    let cookie = record.id.to_string();
    let mut shopper = Shopper::new(&app).with_cookie(Some(cookie.clone()));

    let reply = shopper.add(scarf, "1").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.set_cookie.iter().all(|c| !c.contains("Max-Age=0")),
        "the cookie is kept: {:?}",
        reply.set_cookie
    );
    assert_eq!(shopper.cookie.as_deref(), Some(cookie.as_str()));
    assert_eq!(shopper.cart_count().await, 1);
    app.stop().await;
}
