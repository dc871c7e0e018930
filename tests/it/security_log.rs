//! Each account's own security log (`/account/security`).
#![cfg(feature = "ssr")]

use crate::common;
use common::{admin, spawn_app, testid_attr, testid_text, Shopper, PASSWORD};

/// The `data-kind`s of the caller's security log, newest first, and the page's text.
async fn security_log(shopper: &mut Shopper) -> (Vec<String>, String) {
    let page = shopper.get("/account/security").await;
    assert_eq!(page.status, 200, "{}", page.body);
    (
        testid_attr(&page.body, "security-event", "data-kind"),
        page.body,
    )
}

fn advance_minutes(minutes: u64) {
    app::server::session::clock::advance(std::time::Duration::from_secs(minutes * 60));
}

#[tokio::test]
async fn the_log_shows_an_accounts_own_events_newest_first_with_who_ended_its_sessions() {
    let app = spawn_app().await;
    let mut phone = Shopper::new(&app);
    assert_eq!(
        phone.register("ann@example.com", PASSWORD).await.status,
        200
    );
    assert_eq!(phone.post("/api/logout", &[]).await.status, 200);
    // Someone else's failures and logins are in their own log only.
    let mut bob = Shopper::new(&app);
    assert_eq!(bob.register("bob@example.com", PASSWORD).await.status, 200);
    let mut guesser = Shopper::from_address(&app, 5);
    for _ in 0..2 {
        assert_eq!(
            guesser
                .login("ann@example.com", "not her password")
                .await
                .status,
            401
        );
        assert_eq!(
            guesser
                .login("bob@example.com", "not his password")
                .await
                .status,
            401
        );
    }
    let reply = phone
        .post(
            "/api/login",
            &[
                ("email", "ann@example.com"),
                ("password", PASSWORD),
                ("remember", "on"),
            ],
        )
        .await;
    assert_eq!(reply.status, 200);
    let mut laptop = Shopper::new(&app);
    assert_eq!(laptop.login("ann@example.com", PASSWORD).await.status, 200);
    let reply = phone.post("/api/account/sessions/revoke-others", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    advance_minutes(16);
    let reply = phone
        .post("/api/account/confirm", &[("password", PASSWORD)])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = phone
        .post(
            "/api/account/password",
            &[("current", PASSWORD), ("new", "another good password")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // An admin ends ann's session.
    let mut boss = admin(&app).await;
    let page = boss.get("/admin/sessions?email=ann%40example.com").await;
    let handle = testid_attr(&page.body, "session-row", "data-session")[0].clone();
    let reply = boss
        .post("/api/admin/sessions/revoke", &[("session", &handle)])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut desk = Shopper::new(&app);
    assert_eq!(
        desk.login("ann@example.com", "another good password")
            .await
            .status,
        200
    );

    let (kinds, body) = security_log(&mut desk).await;
    assert_eq!(
        kinds,
        [
            "login",            // on the desk
            "revoked",          // the phone's, by an admin
            "password_changed", // on the phone
            "confirmed",
            "revoked",      // the laptop's, by "sign out everywhere else"
            "login",        // the laptop
            "login",        // the phone again, kept signed in
            "login_failed", // two guesses from one address: one row
            "logout",
            "login", // the registration
        ],
        "{body}"
    );
    for text in [
        "ended by an admin",
        "ended by you (sign out everywhere else)",
        "Kept signed in",
        "Account created",
        "Wrong password (2 times)",
    ] {
        assert!(body.contains(text), "{text:?} in {body}");
    }
    assert!(!body.contains("bob@example.com"));
    let (bobs, _) = security_log(&mut bob).await;
    assert_eq!(bobs, ["login_failed", "login"], "bob sees his own only");

    // Anonymous visitors are sent to log in.
    let mut anonymous = Shopper::new(&app);
    let page = anonymous.get("/account/security").await;
    assert_eq!(
        page.location.as_deref(),
        Some("/login?next=/account/security")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_flood_of_guesses_adds_a_row_a_minute_and_old_events_are_pruned() {
    let app = spawn_app().await;
    let mut ann = Shopper::new(&app);
    assert_eq!(ann.register("ann@example.com", PASSWORD).await.status, 200);
    let mut guesser = Shopper::from_address(&app, 5);
    let mut statuses = Vec::new();
    for i in 0..30 {
        statuses.push(
            guesser
                .login("ann@example.com", &format!("guess number {i}"))
                .await
                .status,
        );
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        5,
        "{statuses:?}"
    );
    let (kinds, body) = security_log(&mut ann).await;
    assert_eq!(kinds, ["login_failed", "login_failed", "login"], "{body}");
    assert!(body.contains("Wrong password (5 times)"), "{body}");
    assert!(
        body.contains("too many failed attempts (25 times)"),
        "{body}"
    );

    // Past the retention (90 days), the next prune takes them all.
    let later = app::server::session::clock::now() + 91 * 24 * 3600;
    let pruned = app::server::session::security_log::prune(&app.db().await, 90 * 24 * 3600, later)
        .await
        .expect("pruned");
    assert_eq!(pruned, 3);
    let page = ann.get("/account/security").await;
    assert!(
        testid_text(&page.body, "security-empty").is_some(),
        "{}",
        page.body
    );
    app.stop().await;
}
