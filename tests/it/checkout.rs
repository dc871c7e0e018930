//! Checkout and orders: login required, one transaction, the stock race, owner-only orders.
#![cfg(feature = "ssr")]

use crate::common;
use common::{product_id, spawn_app, testid_attr, Shopper, PASSWORD};

#[tokio::test]
async fn checkout_needs_a_login_and_keeps_the_cart_through_it() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    shopper
        .add(product_id(&app, "merino-scarf").await, "2")
        .await;
    let page = shopper.get("/checkout").await;
    assert!(matches!(page.status, 302 | 303 | 307), "{}", page.status);
    assert_eq!(page.location.as_deref(), Some("/login?next=/checkout"));
    assert_eq!(shopper.post("/api/checkout", &[]).await.status, 401);
    for path in ["/account", "/orders/1"] {
        let page = shopper.get(path).await;
        assert!(
            page.location
                .as_deref()
                .unwrap_or("")
                .starts_with("/login?next="),
            "{path}"
        );
    }
    shopper.register("ada@example.com", PASSWORD).await;
    let page = shopper.get("/checkout").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        testid_attr(&page.body, "checkout-line", "data-quantity"),
        ["2"]
    );
    app.stop().await;
}

#[tokio::test]
async fn placing_an_order_takes_stock_records_prices_and_empties_the_cart() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    shopper.register("ada@example.com", PASSWORD).await;
    let scarf = product_id(&app, "merino-scarf").await;
    let hat = product_id(&app, "knit-beanie").await;
    shopper.add(scarf, "2").await;
    shopper.add(hat, "3").await;
    let reply = shopper.post("/api/checkout", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let target = reply.json()["redirect_to"].as_str().unwrap().to_string();
    assert!(target.starts_with("/orders/"));
    assert_eq!(
        shopper.cart_count().await,
        0,
        "the cart is empty after the order"
    );

    let db = app.db().await;
    let stock: Vec<i64> = app::on_db!(&db, p => sqlx::query_scalar(
        "SELECT stock FROM products WHERE id IN ($1, $2) ORDER BY id"
    )
    .bind(scarf)
    .bind(hat)
    .fetch_all(p)
    .await)
    .unwrap();
    assert_eq!(stock, [78, 97]);
    // Later price changes do not change the order.
    app::on_db!(&db, p => sqlx::query("UPDATE products SET price_cents = 1 WHERE id = $1")
        .bind(scarf)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .unwrap();

    let page = shopper.get(&target).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        testid_attr(&page.body, "order-total", "data-cents"),
        [(2 * 4900 + 3 * 2400).to_string()]
    );
    assert_eq!(
        testid_attr(&page.body, "order-line", "data-quantity"),
        ["2", "3"]
    );
    let account = shopper.get("/account").await;
    let order_id = target.trim_start_matches("/orders/").to_string();
    assert_eq!(
        testid_attr(&account.body, "order-row", "data-order-id"),
        [order_id]
    );

    // Someone else's order is a 404, as is an unknown one.
    let mut other = Shopper::new(&app);
    other.register("eve@example.com", PASSWORD).await;
    assert_eq!(other.get(&target).await.status, 404);
    assert_eq!(shopper.get("/orders/99999").await.status, 404);
    assert_eq!(shopper.get("/orders/abc").await.status, 404);

    // An empty cart cannot be ordered.
    let reply = shopper.post("/api/checkout", &[]).await;
    assert_eq!(reply.status, 409);
    assert!(reply.body.contains("Your cart is empty."));
    app.stop().await;
}

#[tokio::test]
async fn two_shoppers_race_for_the_last_item() {
    let app = spawn_app().await;
    let fedora = product_id(&app, "felt-fedora").await;
    let mut shoppers = Vec::new();
    for name in ["ann", "bob", "cid", "dee"] {
        let mut shopper = Shopper::new(&app);
        shopper
            .register(&format!("{name}@example.com"), PASSWORD)
            .await;
        assert_eq!(shopper.add(fedora, "1").await.status, 200);
        shoppers.push(shopper);
    }
    app::on_db!(&app.db().await, p => sqlx::query("UPDATE products SET stock = 1 WHERE id = $1")
        .bind(fedora)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .unwrap();
    let attempts = shoppers.into_iter().map(|mut shopper| {
        tokio::spawn(async move {
            let reply = shopper.post("/api/checkout", &[]).await;
            (reply.status, reply.body, shopper.cart_count().await)
        })
    });
    let results: Vec<(u16, String, u64)> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let winners: Vec<_> = results
        .iter()
        .filter(|(status, _, _)| *status == 200)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(winners[0].2, 0, "the winner's cart is empty");
    for (status, body, cart) in results.iter().filter(|(status, _, _)| *status != 200) {
        assert_eq!(*status, 409);
        assert!(body.contains("just sold out"), "{body}");
        assert_eq!(*cart, 1, "a loser keeps the cart");
    }
    let db = app.db().await;
    let stock: i64 = app::on_db!(&db, p => sqlx::query_scalar(
        "SELECT stock FROM products WHERE id = $1"
    )
    .bind(fedora)
    .fetch_one(p)
    .await)
    .unwrap();
    assert_eq!(stock, 0);
    let orders: i64 = app::on_db!(&db, p => sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(p)
        .await)
    .unwrap();
    assert_eq!(orders, 1);
    app.stop().await;
}

#[tokio::test]
async fn plain_form_checkout_lands_on_the_order() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    shopper.register("ada@example.com", PASSWORD).await;
    shopper
        .add(product_id(&app, "merino-scarf").await, "1")
        .await;
    let reply = shopper.post_form("/api/checkout", &[], "/checkout").await;
    assert_eq!(reply.status, 303);
    let location = reply.location.unwrap();
    assert!(location.starts_with("/orders/"), "{location}");
    let page = shopper.get(&location).await;
    assert_eq!(page.status, 200);
    assert!(common::testid_text(&page.body, "flash")
        .unwrap()
        .contains("is placed"));
    app.stop().await;
}
