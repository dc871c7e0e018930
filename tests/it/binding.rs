//! Sessions bound to their client (`COATCHECK_SESSION_BINDING`): the browser family and the
//! network (IPv4 /16, IPv6 /48) a login began on.
#![cfg(feature = "ssr")]

use crate::common;
use app::server::session::Binding;
use common::{
    admin, product_id, spawn_app, spawn_app_with, testid_attr, Shopper, TestApp, PASSWORD,
};

const FIREFOX_120: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
const FIREFOX_121: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0";
const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                      Chrome/120.0.0.0 Safari/537.36";

/// A browser with `user_agent` on `address` (127.x.y.z: 127.0/16 and 127.1/16 are two
/// networks), holding `cookie`.
fn browser(app: &TestApp, user_agent: &str, address: [u8; 4], cookie: Option<String>) -> Shopper {
    let builder = reqwest::Client::builder()
        .user_agent(user_agent)
        .local_address(std::net::IpAddr::from(address));
    let mut shopper = Shopper::with_client(app, builder);
    shopper.cookie = cookie;
    shopper
}

/// Ann, logged in from Firefox 120 on 127.0.0.1, with two scarves in her cart.
async fn ann(app: &TestApp) -> Shopper {
    let mut ann = browser(app, FIREFOX_120, [127, 0, 0, 1], None);
    let scarf = product_id(app, "merino-scarf").await;
    assert_eq!(ann.add(scarf, "2").await.status, 200);
    assert_eq!(ann.register("ann@example.com", PASSWORD).await.status, 200);
    ann
}

fn signed_in(me: &serde_json::Value) -> bool {
    !me["user"].is_null()
}

async fn kinds_and_page(shopper: &mut Shopper) -> (Vec<String>, String) {
    let page = shopper.get("/account/security").await;
    (
        testid_attr(&page.body, "security-event", "data-kind"),
        page.body,
    )
}

#[tokio::test]
async fn strict_a_browser_update_and_a_move_within_the_network_keep_the_login() {
    let app = spawn_app_with(|c| c.policy.binding = Binding::Strict).await;
    let ann = ann(&app).await;
    let mut updated = browser(&app, FIREFOX_121, [127, 0, 3, 7], ann.cookie.clone());
    assert!(signed_in(&updated.me().await));
    assert_eq!(updated.cart_count().await, 2);
    let (kinds, body) = kinds_and_page(&mut updated).await;
    assert!(!kinds.iter().any(|k| k == "client_changed"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn strict_another_browser_ends_the_login_there_and_keeps_the_cart() {
    let app = spawn_app_with(|c| c.policy.binding = Binding::Strict).await;
    let ann = ann(&app).await;
    let mut thief = browser(&app, CHROME, [127, 0, 0, 1], ann.cookie.clone());
    let page = thief.get("/cart").await;
    assert!(
        page.body.contains("used from another browser or network"),
        "the page says why: {}",
        page.body
    );
    let page = thief.get("/account").await;
    assert!(
        page.location
            .as_deref()
            .is_some_and(|l| l.starts_with("/login")),
        "sent to log in: {:?}",
        page.location
    );
    assert_eq!(thief.cart_count().await, 2, "the cart stays");
    // The login is over for the owner's copy of the cookie too (it was the same session).
    let mut owner = browser(&app, FIREFOX_120, [127, 0, 0, 1], ann.cookie.clone());
    assert!(!signed_in(&owner.me().await));
    // The owner logs in again and reads why.
    assert_eq!(owner.login("ann@example.com", PASSWORD).await.status, 200);
    let (kinds, body) = kinds_and_page(&mut owner).await;
    assert_eq!(kinds[1], "client_changed", "{body}");
    assert!(body.contains("Chrome"), "the new browser is named: {body}");
    assert!(
        body.contains("to Chrome, 127.0.0.0/16: signed out"),
        "{body}"
    );
    // The registry entry ended for that reason (in whichever store holds it).
    assert_eq!(
        common::end_reasons(&app.database_url).await,
        ["client-changed"]
    );
    // The admin list no longer shows that login (only the owner's new one), and the audit log
    // says why it ended.
    let mut boss = admin(&app).await;
    let page = boss.get("/admin/sessions").await;
    let emails = testid_attr(&page.body, "session-row", "data-user-email");
    assert_eq!(
        emails.iter().filter(|e| *e == "ann@example.com").count(),
        1,
        "{emails:?}"
    );
    let audit: Vec<&str> = page
        .body
        .split("data-testid=\"audit-row\"")
        .skip(1)
        .map(|row| row.split("</tr>").next().unwrap_or_default())
        .collect();
    assert_eq!(audit.len(), 1, "{}", page.body);
    assert!(
        audit[0].contains("strict session binding")
            && audit[0].contains("used from another browser or network")
            && audit[0].contains("ann@example.com"),
        "{audit:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn strict_another_network_ends_the_login() {
    let app = spawn_app_with(|c| c.policy.binding = Binding::Strict).await;
    let ann = ann(&app).await;
    let mut elsewhere = browser(&app, FIREFOX_120, [127, 1, 0, 1], ann.cookie.clone());
    assert!(!signed_in(&elsewhere.me().await));
    assert_eq!(elsewhere.cart_count().await, 2);
    app.stop().await;
}

#[tokio::test]
async fn notice_another_client_keeps_the_login_but_ends_its_sudo_window_and_tells_the_owner() {
    let app = spawn_app_with(|c| c.policy.binding = Binding::Notice).await;
    let victim = {
        let mut victim = Shopper::new(&app);
        assert_eq!(
            victim.register("vic@example.com", PASSWORD).await.status,
            200
        );
        victim
    };
    let _ = victim;
    let mut boss = admin(&app).await;
    let page = boss.get("/admin/sessions?email=vic%40example.com").await;
    let handle = testid_attr(&page.body, "session-row", "data-session")[0].clone();
    // The admin's cookie, replayed from another browser on another network.
    let mut thief = browser(&app, CHROME, [127, 1, 0, 9], boss.cookie.clone());
    assert!(signed_in(&thief.me().await), "notice keeps the login");
    let reply = thief
        .post("/api/admin/sessions/revoke", &[("session", &handle)])
        .await;
    assert_eq!(reply.status, 403, "the sudo window ended: {}", reply.body);
    // Logged once while the session stays on the new client, with the old and the new one.
    for _ in 0..3 {
        thief.get("/").await;
    }
    let (kinds, body) = kinds_and_page(&mut thief).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "client_changed").count(),
        1,
        "{body}"
    );
    assert!(
        body.contains("Chrome, 127.1.0.0/16") && body.contains("127.0.0.0/16"),
        "{body}"
    );
    // Back on the owner's browser (a change again): still no window there either, as it is
    // one session; the owner's own password brings it back.
    let reply = boss
        .post("/api/admin/sessions/revoke", &[("session", &handle)])
        .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let reply = boss
        .post("/api/account/confirm", &[("password", PASSWORD)])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = boss
        .post("/api/admin/sessions/revoke", &[("session", &handle)])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    app.stop().await;
}

#[tokio::test]
async fn off_binds_nothing() {
    let app = spawn_app_with(|c| c.policy.binding = Binding::Off).await;
    let mut boss = admin(&app).await;
    let page = boss.get("/admin/sessions").await;
    let handle = testid_attr(&page.body, "session-row", "data-session")[0].clone();
    let mut thief = browser(&app, CHROME, [127, 1, 0, 9], boss.cookie.clone());
    assert!(signed_in(&thief.me().await));
    let (kinds, _) = kinds_and_page(&mut thief).await;
    assert!(!kinds.iter().any(|k| k == "client_changed"));
    // The window is intact (the admin's own session, revoked from the other client).
    let reply = thief
        .post("/api/admin/sessions/revoke", &[("session", &handle)])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    app.stop().await;
}

#[tokio::test]
async fn a_request_held_open_on_another_network_gets_no_sudo_window_the_owner_opens_meanwhile() {
    use common::HeldRequest;
    let app = spawn_app().await;
    let mut boss = admin(&app).await;
    let cookie = boss.cookie.clone().unwrap();
    // A thief on another network sends "create an API key" with the admin's cookie and holds
    // it before its last body byte: the session layer has moved the login to the thief's
    // network (notice binding) and ended its sudo window.
    let held = HeldRequest::start_from(
        [127, 1, 0, 1],
        app.addr,
        "/api/admin/api-keys/create",
        &cookie,
        "name=thief",
    )
    .await;
    // The admin comes back (the login moves back to their network) and confirms the password:
    // a window opens, for the admin's client.
    assert!(!boss.me().await["user"].is_null());
    let confirm = boss
        .post("/api/account/confirm", &[("password", PASSWORD)])
        .await;
    assert!(
        confirm.status == 200 || confirm.status == 303,
        "{} {}",
        confirm.status,
        confirm.body
    );
    // The thief's request finishes inside that window, from the other network: refused.
    let reply = held.finish().await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let keys = app::server::api_keys::list(&app.db().await).await.unwrap();
    assert!(keys.iter().all(|k| k.name != "thief"), "no key was created");
    // The admin's own sensitive action, inside the window, works.
    let reply = boss
        .post("/api/admin/api-keys/create", &[("name", "desk")])
        .await;
    assert!(reply.status == 200 || reply.status == 303, "{}", reply.body);
    app.stop().await;
}
