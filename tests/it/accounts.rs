//! Accounts and the session's life: registration, login with ID rotation, logout that
//! destroys the session, no user enumeration, no open redirect, the user CLI.
#![cfg(feature = "ssr")]

use crate::common;
use common::{product_id, spawn_app, testid_text, Shopper, PASSWORD};

#[tokio::test]
async fn register_logs_in_with_a_new_session_id_and_keeps_the_cart() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    shopper
        .add(product_id(&app, "merino-scarf").await, "2")
        .await;
    let before = shopper.cookie.clone().expect("cart created a session");

    let reply = shopper
        .register("  New.Shopper@Example.com ", PASSWORD)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let after = shopper.cookie.clone().expect("still has a session");
    assert_ne!(before, after, "the session id is rotated");
    assert_eq!(
        shopper.me().await["user"]["email"],
        "new.shopper@example.com"
    );
    assert_eq!(shopper.cart_count().await, 2, "the cart survives");

    // The old id is dead: replaying it is an anonymous visitor with an empty cart.
    let mut replay = shopper.with_cookie(Some(before));
    assert_eq!(replay.me().await["user"], serde_json::Value::Null);
    assert_eq!(replay.cart_count().await, 0);

    let stored: String = app::on_db!(&app.db().await, p => sqlx::query_scalar(
        "SELECT password_hash FROM users WHERE email = 'new.shopper@example.com'",
    )
    .fetch_one(p)
    .await)
    .unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    app.stop().await;
}

#[tokio::test]
async fn registration_rules() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    let long = "x".repeat(1025);
    for (email, password, status) in [
        ("not-an-email", PASSWORD, 422),
        ("a@example.com", "short", 422),
        ("a@example.com", "elevenchars", 422),
        ("a@example.com", long.as_str(), 422),
    ] {
        let reply = shopper.register(email, password).await;
        assert_eq!(reply.status, status, "{email} {}", reply.body);
    }
    assert_eq!(
        shopper.register("taken@example.com", PASSWORD).await.status,
        200
    );
    let mut other = Shopper::new(&app);
    let reply = other.register("TAKEN@example.com", PASSWORD).await;
    assert_eq!(reply.status, 409);
    assert!(reply.body.contains("already exists"));
    app.stop().await;
}

#[tokio::test]
async fn login_rotates_the_id_and_logout_destroys_the_session() {
    let app = spawn_app().await;
    Shopper::new(&app)
        .register("ada@example.com", PASSWORD)
        .await;

    let mut shopper = Shopper::new(&app);
    shopper
        .add(product_id(&app, "felt-fedora").await, "1")
        .await;
    let anonymous_id = shopper.cookie.clone().unwrap();
    let reply = shopper.login("ADA@example.com", PASSWORD).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let logged_in_id = shopper.cookie.clone().unwrap();
    assert_ne!(anonymous_id, logged_in_id);
    assert_eq!(shopper.cart_count().await, 1, "the cart survives login");
    assert_eq!(
        shopper.with_cookie(Some(anonymous_id)).me().await["user"],
        serde_json::Value::Null
    );

    // The header shows who is logged in.
    let page = shopper.get("/").await;
    assert!(testid_text(&page.body, "current-user")
        .unwrap()
        .contains("ada@example.com"));
    assert!(
        !page.body.contains(&logged_in_id),
        "no session id in a page"
    );

    let reply = shopper.post("/api/logout", &[]).await;
    assert_eq!(reply.status, 200);
    let removal = reply
        .set_cookie
        .iter()
        .find(|c| c.starts_with("id="))
        .expect("cookie cleared");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert!(shopper.cookie.is_none());

    // Replaying the logged-in cookie after logout: anonymous, empty cart.
    let mut replay = shopper.with_cookie(Some(logged_in_id.clone()));
    assert_eq!(replay.me().await["user"], serde_json::Value::Null);
    assert_eq!(replay.cart_count().await, 0);
    let key = app::server::session::storage_key(&logged_in_id.parse().unwrap());
    assert!(
        !common::is_stored(&app.database_url, &key).await,
        "the session is gone from the store"
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_email_and_wrong_password_look_the_same() {
    let app = spawn_app().await;
    Shopper::new(&app)
        .register("ada@example.com", PASSWORD)
        .await;
    let wrong_password = Shopper::new(&app)
        .login("ada@example.com", "not the password at all")
        .await;
    let unknown_email = Shopper::new(&app)
        .login("nobody@example.com", PASSWORD)
        .await;
    let malformed = Shopper::new(&app).login("nobody", PASSWORD).await;
    assert_eq!(wrong_password.status, 401);
    assert_eq!(unknown_email.status, 401);
    assert_eq!(malformed.status, 401);
    assert_eq!(wrong_password.body, unknown_email.body);
    assert_eq!(wrong_password.body, malformed.body);
    assert!(wrong_password.body.contains("Wrong email or password."));
    app.stop().await;
}

#[tokio::test]
async fn next_only_accepts_same_site_paths() {
    let app = spawn_app().await;
    Shopper::new(&app)
        .register("ada@example.com", PASSWORD)
        .await;
    for (next, expected) in [
        ("/checkout", "/checkout"),
        ("//evil.example/phish", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
    ] {
        let mut shopper = Shopper::new(&app);
        let reply = shopper
            .post_form(
                "/api/login",
                &[
                    ("email", "ada@example.com"),
                    ("password", PASSWORD),
                    ("next", next),
                ],
                "/login",
            )
            .await;
        assert_eq!(reply.status, 303, "{next}");
        assert_eq!(reply.location.as_deref(), Some(expected), "{next}");
    }
    app.stop().await;
}

#[tokio::test]
async fn plain_form_login_error_keeps_the_email() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    let reply = shopper
        .post_form(
            "/api/login",
            &[
                ("email", "ada@example.com"),
                ("password", "wrong password!"),
            ],
            "/login?next=/checkout",
        )
        .await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.location.as_deref(), Some("/login?next=/checkout"));
    let page = shopper.get("/login?next=/checkout").await;
    assert_eq!(
        testid_text(&page.body, "flash").as_deref(),
        Some("Wrong email or password.")
    );
    assert!(
        page.body.contains("value=\"ada@example.com\""),
        "the email is refilled"
    );
    app.stop().await;
}

#[tokio::test]
async fn user_create_cli() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::fresh_database_url(&dir).await;
    let run = |args: &[&str], password: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_coatcheck"));
        command
            .args(args)
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "error");
        match password {
            Some(p) => command.env("COATCHECK_PASSWORD", p),
            None => command.env_remove("COATCHECK_PASSWORD"),
        };
        command.stdin(std::process::Stdio::null()).output().unwrap()
    };
    let created = run(
        &["user", "create", "--email", "Boss@Example.com"],
        Some(PASSWORD),
    );
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let again = run(
        &["user", "create", "--email", "boss@example.com"],
        Some(PASSWORD),
    );
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one-line reason: {stderr}"
    );
    assert!(stderr.contains("already exists"));
    let short = run(
        &["user", "create", "--email", "x@example.com"],
        Some("short"),
    );
    assert!(!short.status.success());
    let promoted = run(
        &["user", "create", "--email", "boss@example.com", "--admin"],
        None,
    );
    assert!(
        promoted.status.success(),
        "{}",
        String::from_utf8_lossy(&promoted.stderr)
    );
    let db = app::server::db::connect(&url).await.unwrap();
    let is_admin: bool = app::on_db!(&db, p => sqlx::query_scalar(
        "SELECT is_admin FROM users WHERE email = 'boss@example.com'"
    )
    .fetch_one(p)
    .await)
    .unwrap();
    assert!(is_admin);
}

#[tokio::test]
async fn a_form_is_never_sent_back_to_another_site_through_its_referer() {
    let app = spawn_app().await;
    let scarf = product_id(&app, "merino-scarf").await.to_string();
    for (referer_path, expected) in [
        ("/products/merino-scarf", "/products/merino-scarf"),
        // This host in the Referer, but a path that browsers read as another host.
        ("//evil.test/x", "/"),
        ("/\\evil.test/x", "/"),
    ] {
        let mut shopper = Shopper::new(&app);
        let reply = shopper
            .post_form(
                "/api/cart/add",
                &[("product_id", &scarf), ("quantity", "1")],
                referer_path,
            )
            .await;
        assert_eq!(reply.status, 303, "{referer_path}");
        assert_eq!(reply.location.as_deref(), Some(expected), "{referer_path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn registrations_are_throttled_per_client_address() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    let mut waiting_message = None;
    for i in 0..12 {
        let mut shopper = Shopper::new(&app);
        // Taken and new emails mixed: what an enumeration would send.
        let email = if i % 2 == 0 {
            "taken@example.com".to_string()
        } else {
            format!("new{i}@example.com")
        };
        let reply = shopper.register(&email, PASSWORD).await;
        if reply.status == 429 {
            waiting_message = reply.set_cookie.is_empty().then(|| reply.body.clone());
        }
        statuses.push(reply.status);
    }
    // Ten attempts per address are free; the eleventh must wait, whatever the email.
    assert!(
        statuses[..10].iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(&statuses[10..], &[429, 429], "{statuses:?}");
    assert!(waiting_message.is_some_and(|body| body.contains("wait")));
    // Another address is not affected.
    let mut elsewhere = Shopper::from_address(&app, 3);
    assert_eq!(
        elsewhere
            .register("someone@example.com", PASSWORD)
            .await
            .status,
        200
    );
    app.stop().await;
}
