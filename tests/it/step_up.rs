//! Step-up security: sudo mode (a recent password for sensitive actions).
#![cfg(feature = "ssr")]

use crate::common;
use common::{admin, logged_in, product_id, spawn_app, testid_attr, Shopper, TestApp, PASSWORD};
use serde_json::Value;

/// Moves the session clock (this test process's) on by `minutes`.
fn advance_minutes(minutes: u64) {
    app::server::session::clock::advance(std::time::Duration::from_secs(minutes * 60));
}

/// The handle of `email`'s only live session, as the admin list shows it.
async fn handle_of(boss: &mut Shopper, email: &str) -> String {
    let page = boss.get("/admin/sessions").await;
    let emails = testid_attr(&page.body, "session-row", "data-user-email");
    let handles = testid_attr(&page.body, "session-row", "data-session");
    let index = emails
        .iter()
        .position(|e| e == email)
        .unwrap_or_else(|| panic!("{email} is listed: {emails:?}"));
    handles[index].clone()
}

async fn user_id(app: &TestApp, email: &str) -> i64 {
    app::on_db!(&app.db().await, p => sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(p)
        .await)
    .expect("the user exists")
}

fn signed_in(me: &Value) -> bool {
    !me["user"].is_null()
}

#[tokio::test]
async fn revoking_other_peoples_sessions_needs_a_recent_password_and_each_one_restarts_the_window()
{
    let app = spawn_app().await;
    let mut ann = logged_in(&app, "ann@example.com").await;
    let mut boss = admin(&app).await;

    // A fresh login counts as a password entry.
    let handle = handle_of(&mut boss, "ann@example.com").await;
    let reply = boss
        .post("/api/admin/sessions/revoke", &[("session", &handle)])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(!signed_in(&ann.me().await));

    // Sixteen minutes later (the window is fifteen), nothing is done, in either kind of call.
    ann.login("ann@example.com", PASSWORD).await;
    advance_minutes(16);
    let handle = handle_of(&mut boss, "ann@example.com").await;
    let reply = boss
        .post("/api/admin/sessions/revoke", &[("session", &handle)])
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply.body.contains("/account/confirm?next="),
        "the hydrated page is told where to go: {}",
        reply.body
    );
    let back = format!("/admin/sessions?confirm={handle}");
    let reply = boss
        .post_form("/api/admin/sessions/revoke", &[("session", &handle)], &back)
        .await;
    assert_eq!(reply.status, 303);
    let confirm = reply.location.expect("sent to confirm");
    assert_eq!(
        confirm,
        format!("/account/confirm?next=%2Fadmin%2Fsessions%3Fconfirm%3D{handle}"),
        "back to the page the form was on, afterwards"
    );
    let id = user_id(&app, "ann@example.com").await.to_string();
    let reply = boss
        .post_form(
            "/api/admin/users/revoke-sessions",
            &[("user_id", &id)],
            "/admin/sessions",
        )
        .await;
    assert_eq!(reply.status, 303);
    assert_eq!(
        reply.location.as_deref(),
        Some("/account/confirm?next=%2Fadmin%2Fsessions")
    );
    assert!(signed_in(&ann.me().await), "nothing was done");

    // The confirmation page, then a wrong password: still nothing.
    let page = boss.get(&confirm).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-testid=\"confirm-password\""));
    let reply = boss
        .post_form(
            "/api/account/confirm",
            &[("password", "not the password"), ("next", &back)],
            &confirm,
        )
        .await;
    assert_eq!(reply.status, 303);
    assert_eq!(
        reply.location.as_deref(),
        Some(confirm.as_str()),
        "back to the question"
    );
    let page = boss.get(&confirm).await;
    assert!(
        page.body.contains("That is not your password."),
        "{}",
        page.body
    );
    let reply = boss
        .post("/api/admin/sessions/revoke", &[("session", &handle)])
        .await;
    assert_eq!(reply.status, 403);
    assert!(signed_in(&ann.me().await));

    // The right one: back to the page, and the revocation goes through.
    let reply = boss
        .post_form(
            "/api/account/confirm",
            &[("password", PASSWORD), ("next", &back)],
            &confirm,
        )
        .await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.location.as_deref(), Some(back.as_str()));
    let reply = boss
        .post("/api/admin/sessions/revoke", &[("session", &handle)])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(!signed_in(&ann.me().await));

    // Each sensitive action restarts the window: 10 + 10 minutes after the confirmation, with
    // an action in between, still allowed; 16 minutes after the last one, not.
    ann.login("ann@example.com", PASSWORD).await;
    advance_minutes(10);
    let handle = handle_of(&mut boss, "ann@example.com").await;
    let reply = boss
        .post("/api/admin/sessions/revoke", &[("session", &handle)])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    ann.login("ann@example.com", PASSWORD).await;
    advance_minutes(10);
    let reply = boss
        .post("/api/admin/users/revoke-sessions", &[("user_id", &id)])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(!signed_in(&ann.me().await));
    ann.login("ann@example.com", PASSWORD).await;
    advance_minutes(16);
    let reply = boss
        .post("/api/admin/users/revoke-sessions", &[("user_id", &id)])
        .await;
    assert_eq!(reply.status, 403);
    assert!(signed_in(&ann.me().await));
    app.stop().await;
}

#[tokio::test]
async fn shopping_checkout_and_a_users_own_sessions_never_ask_for_the_password_again() {
    let app = spawn_app().await;
    let mut phone = logged_in(&app, "ann@example.com").await;
    let mut laptop = Shopper::new(&app);
    assert_eq!(laptop.login("ann@example.com", PASSWORD).await.status, 200);
    advance_minutes(20);
    let scarf = product_id(&app, "merino-scarf").await;
    assert_eq!(phone.add(scarf, "2").await.status, 200);
    let reply = phone.post("/api/checkout", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = phone.post("/api/account/sessions/revoke-others", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.body.contains("Signed out of 1 other session"),
        "{}",
        reply.body
    );
    assert!(!signed_in(&laptop.me().await));
    app.stop().await;
}

#[tokio::test]
async fn a_password_change_counts_as_an_entry_and_a_new_login_starts_a_new_window() {
    let app = spawn_app().await;
    let mut ann = logged_in(&app, "ann@example.com").await;
    let mut boss = admin(&app).await;
    advance_minutes(16);
    let handle = handle_of(&mut boss, "ann@example.com").await;
    let revoke = [("session", handle.as_str())];
    assert_eq!(
        boss.post("/api/admin/sessions/revoke", &revoke)
            .await
            .status,
        403
    );
    let new_password = "a brand new password";
    let reply = boss
        .post(
            "/api/account/password",
            &[("current", PASSWORD), ("new", new_password)],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = boss.post("/api/admin/sessions/revoke", &revoke).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(!signed_in(&ann.me().await));

    // A new login on another device has its own fresh window; the old device's has run out.
    ann.login("ann@example.com", PASSWORD).await;
    advance_minutes(16);
    let mut desk = Shopper::new(&app);
    assert_eq!(
        desk.login("boss@example.com", new_password).await.status,
        200
    );
    let handle = handle_of(&mut desk, "ann@example.com").await;
    let revoke = [("session", handle.as_str())];
    assert_eq!(
        boss.post("/api/admin/sessions/revoke", &revoke)
            .await
            .status,
        403
    );
    assert_eq!(
        desk.post("/api/admin/sessions/revoke", &revoke)
            .await
            .status,
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn confirming_needs_a_login_and_goes_back_only_to_a_page_of_this_site() {
    let app = spawn_app().await;
    let mut anonymous = Shopper::new(&app);
    let page = anonymous
        .get("/account/confirm?next=%2Fadmin%2Fsessions")
        .await;
    assert_eq!(
        page.location.as_deref(),
        Some("/login?next=/account/confirm%3Fnext%3D%252Fadmin%252Fsessions"),
        "to the login page first"
    );
    let reply = anonymous
        .post("/api/account/confirm", &[("password", PASSWORD)])
        .await;
    assert_eq!(reply.status, 401);

    let mut ann = logged_in(&app, "ann@example.com").await;
    for (next, expected) in [
        ("https://evil.test/", "/"),
        ("//evil.test/x", "/"),
        ("/account/confirm?next=/", "/"),
        ("/account/sessions", "/account/sessions"),
    ] {
        let reply = ann
            .post_form(
                "/api/account/confirm",
                &[("password", PASSWORD), ("next", next)],
                "/account/confirm",
            )
            .await;
        assert_eq!(reply.status, 303, "{next}");
        assert_eq!(reply.location.as_deref(), Some(expected), "{next}");
    }
    app.stop().await;
}

#[tokio::test]
async fn wrong_confirmations_are_throttled_like_failed_logins_even_all_at_once() {
    let app = spawn_app().await;
    let boss = admin(&app).await;
    advance_minutes(16);
    // 40 wrong passwords from one client, in waves of 4 concurrent ones (its share of the
    // hashing queue): five failures per account and client are free, as for logins.
    let mut statuses = Vec::new();
    for wave in 0..10 {
        let guesses = (0..4).map(|i| {
            let mut guesser = boss.clone();
            async move {
                guesser
                    .post(
                        "/api/account/confirm",
                        &[("password", &format!("wrong password {wave}-{i}"))],
                    )
                    .await
                    .status
            }
        });
        statuses.extend(futures::future::join_all(guesses).await);
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + throttled, 40, "{statuses:?}");
    assert_eq!(checked, 5, "{statuses:?}");
    // The right password now waits too, and so does a login to the account from this client:
    // the same count.
    let mut boss = boss;
    let reply = boss
        .post("/api/account/confirm", &[("password", PASSWORD)])
        .await;
    assert_eq!(reply.status, 429);
    let mut again = Shopper::new(&app);
    assert_eq!(again.login("boss@example.com", PASSWORD).await.status, 429);
    // Another client is not affected.
    let mut elsewhere = Shopper::from_address(&app, 7);
    assert_eq!(
        elsewhere.login("boss@example.com", PASSWORD).await.status,
        200
    );
    app.stop().await;
}

#[tokio::test]
async fn wrong_current_passwords_in_a_password_change_are_throttled_like_failed_logins() {
    let app = spawn_app().await;
    let ann = logged_in(&app, "ann@example.com").await;
    // A stolen cookie guessing the password through the password change, in waves of 4
    // concurrent guesses: five failures per account and client are free, as for logins.
    let mut statuses = Vec::new();
    for wave in 0..5 {
        let guesses = (0..4).map(|i| {
            let mut guesser = ann.clone();
            async move {
                guesser
                    .post(
                        "/api/account/password",
                        &[
                            ("current", format!("wrong password {wave}-{i}").as_str()),
                            ("new", "a brand new password for ann"),
                        ],
                    )
                    .await
                    .status
            }
        });
        statuses.extend(futures::future::join_all(guesses).await);
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + throttled, 20, "{statuses:?}");
    assert_eq!(checked, 5, "{statuses:?}");
    // The right password waits too (nothing changed), and so does a login from this client.
    let mut ann = ann;
    let reply = ann
        .post(
            "/api/account/password",
            &[
                ("current", PASSWORD),
                ("new", "a brand new password for ann"),
            ],
        )
        .await;
    assert_eq!(reply.status, 429);
    let mut again = Shopper::new(&app);
    assert_eq!(again.login("ann@example.com", PASSWORD).await.status, 429);
    let mut elsewhere = Shopper::from_address(&app, 7);
    assert_eq!(
        elsewhere.login("ann@example.com", PASSWORD).await.status,
        200,
        "the old password still works: nothing was changed"
    );
    // The owner sees the guesses in the security log.
    let page = elsewhere.get("/account/security").await;
    let kinds = testid_attr(&page.body, "security-event", "data-kind");
    assert!(
        kinds.iter().filter(|k| *k == "login_failed").count() >= 2,
        "{kinds:?}"
    );
    assert!(
        page.body.contains("Wrong password, changing the password"),
        "{}",
        page.body
    );
    app.stop().await;
}
