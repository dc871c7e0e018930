//! The walking skeleton through real HTTP: catalog, product pages, 404, health check.
#![cfg(feature = "ssr")]

use crate::common;
use common::{spawn_app, testid_attr, testid_text};

#[tokio::test]
async fn catalog_lists_the_seeded_products() {
    let app = spawn_app().await;
    let client = app.client();
    let (status, html) = app.get_text(&client, "/").await;
    assert_eq!(status, 200);
    let slugs = testid_attr(&html, "product-card", "data-slug");
    assert!(
        slugs.len() >= 12,
        "at least 12 products, got {}",
        slugs.len()
    );
    assert!(slugs.contains(&"merino-scarf".to_string()));
    let ids = testid_attr(&html, "product-card", "data-product-id");
    assert_eq!(ids.len(), slugs.len(), "every card carries its product id");
    assert_eq!(testid_text(&html, "cart-count").as_deref(), Some("0"));
    // The page is complete without JavaScript: no streamed <template> placeholders.
    assert!(
        !html.contains("<template"),
        "content must not wait for JavaScript"
    );
    app.stop().await;
}

#[tokio::test]
async fn seeded_catalog_has_categories_prices_stock_and_images() {
    let app = spawn_app().await;
    let db = app.db().await;
    let categories: i64 = app::on_db!(&db, p => sqlx::query_scalar(
        "SELECT COUNT(DISTINCT category_id) FROM products"
    )
    .fetch_one(p)
    .await)
    .unwrap();
    assert!(categories >= 3);
    let rows: Vec<(String, i64, i64, String)> = app::on_db!(&db, p => sqlx::query_as(
        "SELECT slug, price_cents, stock, image FROM products"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    for (slug, price, stock, image) in rows {
        assert!(price > 0, "{slug} has a price");
        assert!(stock >= 25, "{slug} has stock");
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("public")
            .join(image.trim_start_matches('/'));
        assert!(file.exists(), "{slug}'s image {} exists", file.display());
    }
    app.stop().await;
}

#[tokio::test]
async fn search_and_category_filter_narrow_the_listing() {
    let app = spawn_app().await;
    let client = app.client();
    let (_, html) = app.get_text(&client, "/?category=hats").await;
    let slugs = testid_attr(&html, "product-card", "data-slug");
    assert_eq!(
        slugs,
        [
            "felt-fedora",
            "knit-beanie",
            "wool-flat-cap",
            "waxed-bucket-hat"
        ]
    );

    let (_, html) = app.get_text(&client, "/?q=SILK").await;
    let slugs = testid_attr(&html, "product-card", "data-slug");
    assert!(
        slugs.contains(&"silk-neckerchief".to_string()),
        "case-insensitive: {slugs:?}"
    );

    let (_, html) = app.get_text(&client, "/?q=wool&category=hats").await;
    let slugs = testid_attr(&html, "product-card", "data-slug");
    assert_eq!(slugs, ["felt-fedora", "knit-beanie", "wool-flat-cap"]);

    let (status, html) = app.get_text(&client, "/?q=%25").await;
    assert_eq!(status, 200);
    assert!(
        testid_attr(&html, "product-card", "data-slug").is_empty(),
        "% is literal"
    );
    assert!(html.contains("No products match"));
    app.stop().await;
}

#[tokio::test]
async fn product_page_shows_the_product() {
    let app = spawn_app().await;
    let client = app.client();
    let (status, html) = app.get_text(&client, "/products/merino-scarf").await;
    assert_eq!(status, 200);
    assert!(html.contains("Merino Scarf"));
    assert!(html.contains("$49.00"));
    assert!(html.contains("/images/merino-scarf.svg"));
    assert!(html.contains("data-testid=\"add-to-cart\""));
    app.stop().await;
}

#[tokio::test]
async fn unknown_product_and_unknown_page_are_404() {
    let app = spawn_app().await;
    let client = app.client();
    for path in [
        "/products/no-such-thing",
        "/products/..%2F..%2Fetc",
        "/no/such/page",
    ] {
        let (status, html) = app.get_text(&client, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(html.contains("Page not found"), "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn healthz_reports_the_database() {
    let app = spawn_app().await;
    let response = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
    app.stop().await;
}

#[tokio::test]
async fn browsing_creates_no_session() {
    let app = spawn_app().await;
    let client = app.client();
    for path in ["/", "/products/merino-scarf", "/?q=wool"] {
        let response = client.get(app.url(path)).send().await.unwrap();
        assert!(
            response.headers().get("set-cookie").is_none(),
            "{path} sets no cookie"
        );
    }
    assert_eq!(common::stored_count(&app.database_url).await, 0);
    app.stop().await;
}

/// The text between the first `open` in `text` and the next `close` after it.
fn between(text: &str, open: &str, close: char) -> String {
    let start = text.find(open).expect("the opening text") + open.len();
    let end = start + text[start..].find(close).expect("the closing character");
    text[start..end].to_string()
}

/// The nonce of a page's Content-Security-Policy.
fn csp_nonce(response: &reqwest::Response) -> String {
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    between(csp, "'nonce-", '\'')
}

#[tokio::test]
async fn anonymous_pages_are_cached_with_fresh_nonces_and_follow_the_catalog() {
    let app = spawn_app().await;
    let anonymous = reqwest::Client::new();
    let page = |path: &'static str| {
        let request = anonymous.get(app.url(path));
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert!(response.headers().get("set-cookie").is_none());
            let nonce = csp_nonce(&response);
            (nonce, response.text().await.unwrap())
        }
    };
    let (first_nonce, first) = page("/products/merino-scarf").await;
    let (second_nonce, second) = page("/products/merino-scarf").await;
    assert_ne!(first_nonce, second_nonce, "every answer has its own nonce");
    assert!(second.contains(&format!("nonce=\"{second_nonce}\"")));
    assert!(!second.contains(&first_nonce));
    assert_eq!(
        first.replace(&first_nonce, "N"),
        second.replace(&second_nonce, "N"),
        "the same page otherwise"
    );

    // A change made outside this server shows within the cache's check interval.
    app::on_db!(&app.pool, p => sqlx::query(
        "UPDATE products SET price_cents = 1234, stock = 2 WHERE slug = 'merino-scarf'"
    )
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    tokio::time::sleep(app::server::catalog::VERSION_CHECK_INTERVAL * 2).await;
    let (_, changed) = page("/products/merino-scarf").await;
    assert!(changed.contains("$12.34"), "the new price shows");
    let two_left = testid_text(&changed, "stock").unwrap();

    // A checkout on this server shows at once.
    let mut shopper = common::Shopper::new(&app);
    assert_eq!(
        shopper
            .register("cache@example.com", common::PASSWORD)
            .await
            .status,
        200
    );
    let scarf = common::product_id(&app, "merino-scarf").await;
    assert_eq!(shopper.add(scarf, "1").await.status, 200);
    assert_eq!(shopper.post("/api/checkout", &[]).await.status, 200);
    let (_, after) = page("/products/merino-scarf").await;
    let one_left = testid_text(&after, "stock").unwrap();
    assert_ne!(one_left, two_left, "the stock shown moved with the order");
    assert!(one_left.contains('1'), "{one_left}");
    app.stop().await;
}

/// The nonce of a page's script tags.
fn body_nonce(html: &str) -> String {
    between(html, "nonce=\"", '"')
}

#[tokio::test]
async fn pages_with_a_session_are_kept_per_viewer_and_follow_login_cart_and_catalog() {
    let app = spawn_app().await;
    let scarf = common::product_id(&app, "merino-scarf").await;
    let mut alice = common::Shopper::new(&app);
    assert_eq!(
        alice
            .register("alice@example.com", common::PASSWORD)
            .await
            .status,
        200
    );
    assert_eq!(alice.add(scarf, "2").await.status, 200);

    let first = alice.get("/").await;
    let second = alice.get("/").await;
    assert_eq!((first.status, second.status), (200, 200));
    let (n1, n2) = (body_nonce(&first.body), body_nonce(&second.body));
    assert_ne!(n1, n2, "every answer has its own nonce");
    assert_eq!(
        first.body.replace(&n1, "N"),
        second.body.replace(&n2, "N"),
        "the same page otherwise"
    );
    assert_eq!(
        testid_text(&second.body, "cart-count").as_deref(),
        Some("2")
    );
    assert_eq!(
        testid_text(&second.body, "current-user").as_deref(),
        Some("alice@example.com")
    );

    // A cart change shows on the very next page.
    assert_eq!(alice.add(scarf, "1").await.status, 200);
    let page = alice.get("/").await;
    assert_eq!(testid_text(&page.body, "cart-count").as_deref(), Some("3"));

    // Another viewer with the same cart never gets Alice's page.
    let mut bob = common::Shopper::new(&app);
    assert_eq!(
        bob.register("bob@example.com", common::PASSWORD)
            .await
            .status,
        200
    );
    assert_eq!(bob.add(scarf, "3").await.status, 200);
    let page = bob.get("/").await;
    assert_eq!(testid_text(&page.body, "cart-count").as_deref(), Some("3"));
    assert_eq!(
        testid_text(&page.body, "current-user").as_deref(),
        Some("bob@example.com")
    );
    assert!(!page.body.contains("alice@example.com"));

    // A flash message is shown once, then gone (such pages are never kept).
    let reply = bob
        .post_form(
            "/api/cart/add",
            &[("product_id", &scarf.to_string()), ("quantity", "1")],
            "/",
        )
        .await;
    assert_eq!(reply.status, 303);
    let with_message = bob.get("/").await;
    assert!(testid_text(&with_message.body, "flash").is_some());
    let after = bob.get("/").await;
    assert!(testid_text(&after.body, "flash").is_none());
    assert_eq!(testid_text(&after.body, "cart-count").as_deref(), Some("4"));

    // A catalog change made outside this server shows within the check interval.
    let kept_cookie = alice.cookie.clone();
    app::on_db!(&app.pool, p => sqlx::query(
        "UPDATE products SET price_cents = 4321 WHERE slug = 'merino-scarf'"
    )
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    tokio::time::sleep(app::server::catalog::VERSION_CHECK_INTERVAL * 2).await;
    let page = alice.get("/products/merino-scarf").await;
    assert!(page.body.contains("$43.21"), "the new price shows");

    // Logged out: the very next page is anonymous, also when the old cookie is replayed.
    assert_eq!(alice.post("/api/logout", &[]).await.status, 200);
    let mut replay = alice.with_cookie(kept_cookie);
    for page in [alice.get("/").await, replay.get("/").await] {
        assert!(testid_text(&page.body, "current-user").is_none());
        assert_eq!(testid_text(&page.body, "cart-count").as_deref(), Some("0"));
        assert!(!page.body.contains("alice@example.com"));
    }
    app.stop().await;
}

/// The catalog API's listing for `query` (`sort=…&page=…`), as JSON.
async fn listing(app: &common::TestApp, query: &str) -> serde_json::Value {
    let response = reqwest::get(app.url(&format!("/api/catalog/products?{query}")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.unwrap()
}

fn prices(listing: &serde_json::Value) -> Vec<i64> {
    listing["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["price"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_large_assortment_is_paged_sorted_and_searched_in_small_pages() {
    let app = spawn_app().await;
    let added = app::server::seed::add_assortment(&app.db().await, 5000)
        .await
        .unwrap();
    assert_eq!(added, 5000);
    let client = app.client();

    let (status, first) = app.get_text(&client, "/").await;
    assert_eq!(status, 200);
    let first_slugs = testid_attr(&first, "product-card", "data-slug");
    assert_eq!(first_slugs.len(), 24);
    assert!(
        first_slugs.contains(&"merino-scarf".to_string()),
        "the demo catalog first"
    );
    assert_eq!(testid_attr(&first, "result-count", "data-total"), ["5015"]);
    assert_eq!(
        testid_text(&first, "result-count").as_deref(),
        Some("1–24 of 5,015 products")
    );
    assert!(
        first.len() < 60_000,
        "a catalog page of a 5,015-product shop is {} bytes",
        first.len()
    );
    assert!(first.contains(r#"href="/?page=2" rel="next""#));
    assert!(first.contains(r#"href="/?page=209""#));

    let (_, second) = app.get_text(&client, "/?page=2").await;
    let second_slugs = testid_attr(&second, "product-card", "data-slug");
    assert_eq!(second_slugs.len(), 24);
    assert!(second_slugs.iter().all(|s| !first_slugs.contains(s)));
    assert!(second.contains(r#"href="/" rel="prev""#));
    let (status, last) = app.get_text(&client, "/?page=209").await;
    assert_eq!(status, 200);
    assert_eq!(
        testid_attr(&last, "product-card", "data-slug").len(),
        5015 - 208 * 24
    );

    // Pages that do not exist: 404 with a way back, never a 5xx.
    for page in ["210", "0", "-1", "two", "99999999999999999999999"] {
        let (status, html) = app.get_text(&client, &format!("/?page={page}")).await;
        assert_eq!(status, 404, "page={page}");
        assert!(testid_text(&html, "no-such-page").is_some(), "page={page}");
        assert!(
            html.contains(r#"href="/?page=209""#),
            "a link to the last page"
        );
    }
    let (status, _) = app.get_text(&client, "/?category=hats&page=2").await;
    assert_eq!(status, 404, "four hats fill one page");
    // An empty search has one page, which says so; any other page of it does not exist.
    let (status, html) = app.get_text(&client, "/?q=no-such-thing-anywhere").await;
    assert_eq!(status, 200);
    assert!(testid_text(&html, "no-results").is_some());
    for page in ["2", "7"] {
        let (status, html) = app
            .get_text(&client, &format!("/?q=no-such-thing-anywhere&page={page}"))
            .await;
        assert_eq!(status, 404, "page {page} of an empty search");
        assert!(testid_text(&html, "no-such-page").is_some());
    }

    // Every sort order holds across a page boundary; the API agrees with the page.
    let ascending: Vec<i64> = [
        prices(&listing(&app, "sort=price-asc").await),
        prices(&listing(&app, "sort=price-asc&page=2").await),
    ]
    .concat();
    assert!(ascending.windows(2).all(|w| w[0] <= w[1]), "{ascending:?}");
    let descending: Vec<i64> = [
        prices(&listing(&app, "sort=price-desc").await),
        prices(&listing(&app, "sort=price-desc&page=2").await),
    ]
    .concat();
    assert!(
        descending.windows(2).all(|w| w[0] >= w[1]),
        "{descending:?}"
    );
    let names: Vec<String> = listing(&app, "sort=name").await["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_lowercase())
        .collect();
    assert!(names.windows(2).all(|w| w[0] <= w[1]), "{names:?}");
    let newest = listing(&app, "sort=newest").await;
    assert_eq!(newest["products"][0]["slug"], "assortment-05000");

    // A search over the whole assortment, sorted and paged; the links keep all of it.
    let linen = listing(&app, "q=linen&sort=price-asc").await;
    let total = linen["total"].as_u64().unwrap();
    assert!(total > 24 && total < 1000, "{total} linen products");
    let (status, html) = app
        .get_text(
            &client,
            "/?q=linen&category=assortment&sort=price-asc&page=2",
        )
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("q=linen&amp;category=assortment&amp;sort=price-asc&amp;page=3"));
    assert!(html.contains(r#"href="/?q=linen&amp;category=assortment&amp;sort=name""#));
    let slugs = testid_attr(&html, "product-card", "data-slug");
    assert_eq!(slugs.len(), 24);
    assert!(slugs.iter().all(|s| s.starts_with("assortment-")));
    app.stop().await;
}
