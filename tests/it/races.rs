//! Security state under concurrency: a request held open across a revocation or a logout
//! must not bring a login back (the "ghost"), a burst of guesses is throttled like the same
//! guesses in a row, one client's flood does not starve others' logins, and revocations run
//! beside shopper writes without "database is locked".
#![cfg(feature = "ssr")]

use crate::common;
use common::{spawn_app, HeldRequest, Shopper, TestApp, PASSWORD};

const EMAIL: &str = "ann@example.com";
const PASSWORD_FORM: &str = "current=correct+horse+battery+staple&new=correct+horse+battery+staple";

/// Two sessions of one user: `a` and `b` (as two devices).
async fn two_sessions(app: &TestApp) -> (Shopper, Shopper) {
    let mut a = Shopper::new(app);
    assert_eq!(a.register(EMAIL, PASSWORD).await.status, 200);
    let mut b = Shopper::new(app);
    assert_eq!(b.login(EMAIL, PASSWORD).await.status, 200);
    (a, b)
}

/// The handles of the caller's live sessions, and which is the caller's own.
async fn my_sessions(shopper: &mut Shopper) -> Vec<(String, bool)> {
    let list = shopper.get("/api/account/sessions").await.json();
    list.as_array()
        .expect("a list")
        .iter()
        .map(|s| {
            (
                s["handle"].as_str().unwrap().to_string(),
                s["current"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The handle of the caller's own session.
async fn own_handle(shopper: &mut Shopper) -> String {
    my_sessions(shopper)
        .await
        .into_iter()
        .find(|(_, current)| *current)
        .expect("the caller's own session is listed")
        .0
}

/// Stored sessions that carry a login, and live registry rows: after any race, every stored
/// login must have a live row pointing at it, and no live row may point nowhere.
async fn assert_registry_consistent(app: &TestApp) {
    let records = common::stored_records(&app.database_url).await;
    let logins = common::logins(&app.database_url).await;
    for (id, data) in records {
        let record: tower_sessions::session::Record = rmp_serde::from_slice(&data).unwrap();
        if let Some(user) = record.data.get("user") {
            let handle = user["handle"].as_str().unwrap();
            let linked = logins
                .iter()
                .find(|login| login.handle == handle)
                .and_then(|login| login.session.clone());
            assert_eq!(
                linked.as_deref(),
                Some(id.as_str()),
                "a stored login ({handle}) without a live registry row pointing at it"
            );
        }
    }
}

/// `a`'s request to `path` with `form`, held before its last body byte while `b` revokes `a`'s
/// session, then sent: it must be refused as from an ended login (401 "Your session has
/// ended", not a 401 for never having had one).
async fn held_across_own_revocation(
    app: &TestApp,
    a: &Shopper,
    a_handle: &str,
    b: &mut Shopper,
    path: &str,
    form: &str,
) -> common::RawReply {
    let held = HeldRequest::start(app.addr, path, a.cookie.as_deref().unwrap(), form).await;
    let revoked = b
        .post("/api/account/sessions/revoke", &[("session", a_handle)])
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let reply = held.finish().await;
    assert_eq!(
        reply.status, 401,
        "the revoked session acts no more: {}",
        reply.body
    );
    assert!(
        reply.body.contains("Your session has ended"),
        "{}",
        reply.body
    );
    reply
}

#[tokio::test]
async fn a_password_change_held_across_its_revocation_brings_no_ghost_back() {
    let app = spawn_app().await;
    let (mut a, mut b) = two_sessions(&app).await;
    let a_handle = own_handle(&mut a).await;
    let reply = held_across_own_revocation(
        &app,
        &a,
        &a_handle,
        &mut b,
        "/api/account/password",
        PASSWORD_FORM,
    )
    .await;
    for id in &reply.new_ids {
        let mut ghost = a.with_cookie(Some(id.clone()));
        assert_eq!(
            ghost.me().await["user"],
            serde_json::Value::Null,
            "a ghost login"
        );
    }
    // The real owner was not signed out by the revoked session, and sees only itself.
    assert_eq!(b.me().await["user"]["email"], EMAIL);
    assert_eq!(my_sessions(&mut b).await.len(), 1);
    assert_registry_consistent(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_password_change_held_across_a_logout_brings_no_login_back() {
    let app = spawn_app().await;
    let (a, mut b) = two_sessions(&app).await;
    let held = HeldRequest::start(
        app.addr,
        "/api/account/password",
        a.cookie.as_deref().unwrap(),
        PASSWORD_FORM,
    )
    .await;
    // The same browser logs out in another tab meanwhile.
    let mut other_tab = a.clone();
    assert_eq!(other_tab.post("/api/logout", &[]).await.status, 200);
    let reply = held.finish().await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        reply.body.contains("Your session has ended"),
        "{}",
        reply.body
    );
    for id in &reply.new_ids {
        let mut ghost = a.with_cookie(Some(id.clone()));
        assert_eq!(
            ghost.me().await["user"],
            serde_json::Value::Null,
            "a ghost login"
        );
    }
    assert_eq!(b.me().await["user"]["email"], EMAIL, "B untouched");
    assert_registry_consistent(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn sign_out_everywhere_else_held_across_its_revocation_signs_nobody_out() {
    let app = spawn_app().await;
    let (mut a, mut b) = two_sessions(&app).await;
    let a_handle = own_handle(&mut a).await;
    held_across_own_revocation(
        &app,
        &a,
        &a_handle,
        &mut b,
        "/api/account/sessions/revoke-others",
        "x=1",
    )
    .await;
    assert_eq!(b.me().await["user"]["email"], EMAIL, "B was not signed out");
    assert_registry_consistent(&app).await;
    app.stop().await;
}

/// A user's ID.
async fn user_id(app: &TestApp, email: &str) -> i64 {
    app::on_db!(&app.db().await, p => sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(p)
        .await)
    .unwrap()
}

/// Entries in the admin audit log.
async fn audit_entries(app: &TestApp) -> i64 {
    app::on_db!(&app.db().await, p => sqlx::query_scalar("SELECT COUNT(*) FROM session_audit")
        .fetch_one(p)
        .await)
    .unwrap()
}

/// The real admin (`boss`, one session), a second session of the same admin held by a thief
/// (`stolen`, with its handle), and a victim with a login.
async fn admin_thief_and_victim(app: &TestApp) -> (Shopper, Shopper, String, Shopper) {
    let mut boss = common::admin(app).await;
    let mut stolen = Shopper::new(app);
    assert_eq!(stolen.login("boss@example.com", PASSWORD).await.status, 200);
    let stolen_handle = own_handle(&mut stolen).await;
    let victim = common::logged_in(app, "victim@example.com").await;
    assert_eq!(my_sessions(&mut boss).await.len(), 2);
    (boss, stolen, stolen_handle, victim)
}

/// The thief's request, held before its last byte while the real admin revokes the thief's
/// session, then sent: refused as from an ended login, nothing done, nothing audited.
async fn held_admin_action_after_its_revocation(path: &str, form: &str) {
    let app = spawn_app().await;
    let (mut boss, stolen, stolen_handle, mut victim) = admin_thief_and_victim(&app).await;
    let victim_handle = own_handle(&mut victim).await;
    let victim_id = user_id(&app, "victim@example.com").await;
    let form = form
        .replace("{victim_handle}", &victim_handle)
        .replace("{victim_id}", &victim_id.to_string());
    let held = HeldRequest::start(app.addr, path, stolen.cookie.as_deref().unwrap(), &form).await;
    let revoked = boss
        .post("/api/admin/sessions/revoke", &[("session", &stolen_handle)])
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(audit_entries(&app).await, 1);
    let reply = held.finish().await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        reply.body.contains("Your session has ended"),
        "{}",
        reply.body
    );
    assert_eq!(
        victim.me().await["user"]["email"],
        "victim@example.com",
        "the victim was not signed out"
    );
    assert_eq!(
        boss.me().await["user"]["email"],
        "boss@example.com",
        "the real admin was not signed out"
    );
    assert_eq!(
        audit_entries(&app).await,
        1,
        "nothing is attributed to the admin that the admin did not do"
    );
    assert_registry_consistent(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn an_admin_revocation_held_across_the_revocation_of_its_session_does_nothing() {
    held_admin_action_after_its_revocation("/api/admin/sessions/revoke", "session={victim_handle}")
        .await;
}

#[tokio::test]
async fn an_admin_revoke_all_held_across_the_revocation_of_its_session_does_nothing() {
    held_admin_action_after_its_revocation(
        "/api/admin/users/revoke-sessions",
        "user_id={victim_id}",
    )
    .await;
}

#[tokio::test]
async fn an_admin_action_held_across_the_loss_of_the_admin_role_does_nothing() {
    let app = spawn_app().await;
    let (_boss, stolen, _, mut victim) = admin_thief_and_victim(&app).await;
    let victim_id = user_id(&app, "victim@example.com").await;
    let held = HeldRequest::start(
        app.addr,
        "/api/admin/users/revoke-sessions",
        stolen.cookie.as_deref().unwrap(),
        &format!("user_id={victim_id}"),
    )
    .await;
    app::on_db!(&app.db().await, p => sqlx::query("UPDATE users SET is_admin = $1 WHERE email = $2")
        .bind(false)
        .bind("boss@example.com")
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .unwrap();
    let reply = held.finish().await;
    assert_eq!(reply.status, 403, "no longer an admin: {}", reply.body);
    assert_eq!(victim.me().await["user"]["email"], "victim@example.com");
    assert_eq!(audit_entries(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn revoking_one_of_my_sessions_held_across_my_revocation_does_nothing() {
    let app = spawn_app().await;
    let (mut a, mut b) = two_sessions(&app).await;
    let a_handle = own_handle(&mut a).await;
    let b_handle = own_handle(&mut b).await;
    held_across_own_revocation(
        &app,
        &a,
        &a_handle,
        &mut b,
        "/api/account/sessions/revoke",
        &format!("session={b_handle}"),
    )
    .await;
    assert_eq!(b.me().await["user"]["email"], EMAIL, "B was not signed out");
    assert_registry_consistent(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_checkout_held_across_its_revocation_places_no_order() {
    let app = spawn_app().await;
    let (mut a, mut b) = two_sessions(&app).await;
    let a_handle = own_handle(&mut a).await;
    let scarf = common::product_id(&app, "merino-scarf").await;
    assert_eq!(a.add(scarf, "2").await.status, 200);
    let db = app.db().await;
    let stock = || async {
        app::on_db!(&db, p => sqlx::query_scalar::<_, i64>(
            "SELECT stock FROM products WHERE id = $1"
        )
        .bind(scarf)
        .fetch_one(p)
        .await)
        .unwrap()
    };
    let before = stock().await;

    held_across_own_revocation(&app, &a, &a_handle, &mut b, "/api/checkout", "x=1").await;
    let orders: i64 =
        app::on_db!(&app.db().await, p => sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(p)
        .await)
        .unwrap();
    assert_eq!(orders, 0, "no order from an ended login");
    assert_eq!(stock().await, before, "no stock taken");
    assert_registry_consistent(&app).await;
    app.stop().await;
}

/// The store's side of every ID rotation (login, password change, demotion): a record that
/// carries a login is created — or saved — only while that login's registry row is live.
#[tokio::test]
async fn the_store_never_stores_a_login_whose_row_has_ended() {
    use app::server::session::AuthUser;
    use app::server::session::{self, EndReason, NewSession};
    use tower_sessions::session::{Id, Record};
    use tower_sessions::SessionStore;

    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    assert_eq!(shopper.register(EMAIL, PASSWORD).await.status, 200);
    let user_id: i64 = app::on_db!(&app.pool, p => sqlx::query_scalar(
        "SELECT id FROM users WHERE email = $1"
    )
    .bind(EMAIL)
    .fetch_one(p)
    .await)
    .unwrap();
    let store = app.store.clone();
    let record_for = |handle: &str| {
        let mut record = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        };
        let user = AuthUser {
            id: user_id,
            email: EMAIL.into(),
            is_admin: false,
            handle: handle.into(),
            logged_in_at: app::server::session::clock::now(),
            remembered: false,
            client: None,
        };
        record
            .data
            .insert("user".into(), serde_json::to_value(user).unwrap());
        record
            .data
            .insert("cart".into(), serde_json::json!({"lines": []}));
        record
    };
    let login = |handle: &'static str| {
        let sessions = app.sessions.clone();
        async move {
            session::record_login(
                &sessions,
                NewSession {
                    handle,
                    user_id,
                    ip: "192.0.2.1",
                    user_agent: "test",
                    remembered: false,
                },
                EMAIL,
            )
            .await
            .unwrap();
        }
    };
    let stored_user = |id: Id| {
        let store = store.clone();
        async move {
            store
                .load(&id)
                .await
                .unwrap()
                .map(|record| record.data.contains_key("user"))
        }
    };

    // A live login is stored and linked.
    login("live-login").await;
    let mut live = record_for("live-login");
    store.create(&mut live).await.unwrap();
    assert_eq!(stored_user(live.id).await, Some(true));

    // A login revoked before its record is created: stored without the login, cart kept.
    login("revoked-first").await;
    // Revoked by its owner from the live login.
    let owner = session::Actor {
        handle: "live-login",
        user_id,
        admin: false,
    };
    let revoked = session::revoke(&app.sessions, owner, "revoked-first", Some(user_id), None)
        .await
        .unwrap();
    assert_eq!(
        revoked,
        session::Revoked::Ended {
            count: 1,
            owner: Some(user_id)
        }
    );
    let mut late = record_for("revoked-first");
    store.create(&mut late).await.unwrap();
    assert_eq!(stored_user(late.id).await, Some(false), "no ghost");
    let kept = store.load(&late.id).await.unwrap().unwrap();
    assert!(kept.data.contains_key("cart"), "the cart survives");

    // A login ended (logout) after its record was stored: a save of the old copy with the
    // login writes nothing.
    session::end_login(&app.sessions, "live-login", EndReason::Logout)
        .await
        .unwrap();
    assert_eq!(stored_user(live.id).await, None, "deleted with its row");
    store.save(&live).await.unwrap();
    assert_eq!(
        stored_user(live.id).await,
        None,
        "not brought back by a save"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_burst_of_guesses_is_throttled_like_the_same_guesses_in_a_row() {
    let app = spawn_app().await;
    let mut owner = Shopper::new(&app);
    assert_eq!(owner.register(EMAIL, PASSWORD).await.status, 200);
    // 40 wrong guesses from one client in waves of 4 concurrent ones (as many as one client
    // may have hashing at once), each on a connection of its own. Counted only after the
    // check, the first two waves would both see fewer than 5 failures: 8 checked.
    let mut statuses = Vec::new();
    for wave in 0..10 {
        let guesses = (0..4).map(|i| {
            let mut guesser = Shopper::new(&app);
            async move {
                guesser
                    .login(EMAIL, &format!("wrong password number {wave}-{i}"))
                    .await
                    .status
            }
        });
        statuses.extend(futures::future::join_all(guesses).await);
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + throttled, 40, "{statuses:?}");
    // Five free failures per account and client, exactly as in a row: the sixth waits.
    assert_eq!(checked, 5, "{statuses:?}");
    // And all at once: nothing more gets through.
    let burst = (0..40).map(|i| {
        let mut guesser = Shopper::new(&app);
        async move {
            guesser
                .login(EMAIL, &format!("burst guess {i}"))
                .await
                .status
        }
    });
    let burst = futures::future::join_all(burst).await;
    assert!(burst.iter().all(|s| *s == 429), "{burst:?}");
    // The right password from this client now waits too; from another client it does not.
    let mut same_client = Shopper::new(&app);
    assert_eq!(same_client.login(EMAIL, PASSWORD).await.status, 429);
    let mut elsewhere = Shopper::from_address(&app, 7);
    assert_eq!(elsewhere.login(EMAIL, PASSWORD).await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn one_clients_flood_holds_only_its_share_of_the_hashing_queue() {
    let app = spawn_app().await;
    let mut owner = Shopper::new(&app);
    assert_eq!(owner.register(EMAIL, PASSWORD).await.status, 200);
    // A flood of 150 concurrent logins for unknown accounts from one client.
    let flood = (0..150).map(|i| {
        let mut flooder = Shopper::new(&app);
        async move {
            flooder
                .login(&format!("nobody{i}@example.com"), "wrong password here")
                .await
                .status
        }
    });
    let flood = tokio::spawn(futures::future::join_all(flood));
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // Meanwhile a real user logs in from elsewhere: at most the flood's share
    // (`MAX_JOBS_PER_CLIENT`) of hashes is ahead of them, so they are not refused.
    let mut user = Shopper::from_address(&app, 9);
    assert_eq!(user.login(EMAIL, PASSWORD).await.status, 200);
    let statuses = flood.await.unwrap();
    let hashed = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(hashed + refused, 150, "{statuses:?}");
    // The flooding client never had more than its share of jobs queued: most were refused
    // before any hashing (20 failures per IP are free, then it must wait anyway).
    assert!(hashed <= 20, "{hashed} of the flood's guesses were hashed");
    assert!(refused >= 130, "{statuses:?}");
    app.stop().await;
}

/// Two browsers' worth of mixed writes, many times over: shoppers adding to their carts,
/// checking out and logging back in, while an admin lists and revokes their sessions. Every
/// revocation reads the registry and then writes; begun as a reader, it would fail at once
/// with SQLITE_BUSY_SNAPSHOT whenever a cart write committed in between (a 503 to the admin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_among_shopper_writes_never_meet_a_locked_database() {
    let app = spawn_app().await;
    let mut boss = Shopper::from_address(&app, 100);
    assert_eq!(
        boss.register("boss@example.com", PASSWORD).await.status,
        200
    );
    app::on_db!(&app.pool, p => sqlx::query(
        "UPDATE users SET is_admin = $1 WHERE email = 'boss@example.com'"
    )
    .bind(true)
    .execute(p)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    let scarf = common::product_id(&app, "merino-scarf").await;
    let mut shoppers = Vec::new();
    for n in 0..6 {
        let mut shopper = Shopper::from_address(&app, n);
        let email = format!("shopper{n}@example.com");
        assert_eq!(shopper.register(&email, PASSWORD).await.status, 200);
        shoppers.push((shopper, email));
    }
    let user_ids: Vec<i64> = app::on_db!(&app.pool, p => sqlx::query_scalar(
        "SELECT id FROM users WHERE is_admin = $1"
    )
    .bind(false)
    .fetch_all(p)
    .await)
    .unwrap();
    let shopping = shoppers.into_iter().map(|(mut shopper, email)| {
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for step in 0..60 {
                let status = match step % 15 {
                    14 => shopper.post("/api/checkout", &[]).await.status,
                    7 => shopper.login(&email, PASSWORD).await.status,
                    _ => shopper.add(scarf, "1").await.status,
                };
                statuses.push(status);
            }
            statuses
        })
    });
    let shopping: Vec<_> = shopping.collect();
    let mut admin_statuses = Vec::new();
    for round in 0..40 {
        let page = boss.get("/admin/sessions").await;
        admin_statuses.push(page.status);
        let handles = common::testid_attr(&page.body, "session-row", "data-session");
        let emails = common::testid_attr(&page.body, "session-row", "data-user-email");
        if let Some((handle, _)) = handles
            .iter()
            .zip(&emails)
            .find(|(_, email)| *email != "boss@example.com")
        {
            let reply = boss
                .post("/api/admin/sessions/revoke", &[("session", handle)])
                .await;
            admin_statuses.push(reply.status);
        }
        let user_id = user_ids[round % user_ids.len()].to_string();
        let reply = boss
            .post("/api/admin/users/revoke-sessions", &[("user_id", &user_id)])
            .await;
        admin_statuses.push(reply.status);
    }
    let mut all = admin_statuses.clone();
    for task in shopping {
        all.extend(task.await.unwrap());
    }
    assert!(
        all.iter().all(|s| *s < 500),
        "a request failed on the server: {:?}",
        all.iter().filter(|s| **s >= 500).collect::<Vec<_>>()
    );
    // Revocations did happen and were answered (200, or 404 for one ended meanwhile).
    assert!(admin_statuses.iter().filter(|s| **s == 200).count() >= 80);
    app.stop().await;
}

#[tokio::test]
async fn two_sessions_revoking_each_other_at_once_end_one_and_fail_nothing() {
    let app = spawn_app().await;
    for round in 0..5 {
        let email = format!("twins{round}@example.com");
        let mut a = Shopper::new(&app);
        assert_eq!(a.register(&email, PASSWORD).await.status, 200);
        let mut b = Shopper::new(&app);
        assert_eq!(b.login(&email, PASSWORD).await.status, 200);
        let a_handle = own_handle(&mut a).await;
        let b_handle = own_handle(&mut b).await;
        // Each revokes the other, at the same moment.
        let revoke_b = [("session", b_handle.as_str())];
        let revoke_a = [("session", a_handle.as_str())];
        let (a_did, b_did) = tokio::join!(
            a.post("/api/account/sessions/revoke", &revoke_b),
            b.post("/api/account/sessions/revoke", &revoke_a),
        );
        let mut statuses = [a_did.status, b_did.status];
        statuses.sort();
        assert_eq!(
            statuses,
            [200, 401],
            "one wins, the other had ended first (round {round}): {} / {}",
            a_did.body,
            b_did.body
        );
        let a_in = a.me().await["user"] != serde_json::Value::Null;
        let b_in = b.me().await["user"] != serde_json::Value::Null;
        assert!(
            a_in != b_in,
            "exactly one is still logged in (round {round})"
        );
    }
    assert_registry_consistent(&app).await;
    app.stop().await;
}
