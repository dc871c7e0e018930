//! The session API (`/api/v1`): keyset paging under concurrent logins, revocation, every
//! authentication failure, the OpenAPI document.
#![cfg(feature = "ssr")]

use crate::common;
use common::{
    admin, logged_in, spawn_app, spawn_app_with, testid_attr, Shopper, TestApp, PASSWORD,
};
use serde_json::Value;
use std::collections::HashSet;

async fn key(app: &TestApp, name: &str, read_only: bool) -> String {
    let now = app::server::session::clock::now();
    app::server::api_keys::create(&app.db().await, name, read_only, now)
        .await
        .expect("key created")
        .0
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("JSON: {}", self.body))
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_string())
    }
}

async fn call(
    client: &reqwest::Client,
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
) -> Answer {
    let mut request = client.request(method, app.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("answered");
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap_or_default(),
    }
}

#[tokio::test]
async fn pages_have_no_duplicates_or_gaps_while_logins_happen() {
    // Dozens of registrations from one address: budgets that fit them.
    let app = spawn_app_with(|c| {
        c.policy.new_sessions_burst = 1_000;
        c.policy.registrations_per_address = 1_000;
    })
    .await;
    let client = reqwest::Client::new();
    let key = key(&app, "ops", true).await;
    let mut before = HashSet::new();
    for i in 0..8 {
        let _ = logged_in(&app, &format!("user{i}@example.com")).await;
    }
    let all = call(
        &client,
        &app,
        reqwest::Method::GET,
        "/api/v1/sessions",
        Some(&key),
    )
    .await;
    assert_eq!(all.status, 200, "{}", all.body);
    for session in all.json()["sessions"].as_array().expect("sessions") {
        before.insert(session["handle"].as_str().expect("handle").to_string());
        for field in [
            "user_id",
            "email",
            "device",
            "ip",
            "created_at",
            "last_seen_at",
            "remembered",
        ] {
            assert!(!session[field].is_null(), "{field} in {session}");
        }
        assert!(
            session["created_at"].as_str().unwrap().contains('T'),
            "RFC 3339"
        );
    }
    assert_eq!(before.len(), 8);
    assert!(all.json()["next_page_token"].is_null());

    // Three a page, with two logins between pages: every session there at the start comes
    // exactly once, and nothing twice.
    let mut seen = Vec::new();
    let mut path = "/api/v1/sessions?page_size=3".to_string();
    let mut pages = 0;
    loop {
        let page = call(&client, &app, reqwest::Method::GET, &path, Some(&key)).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let json = page.json();
        let sessions = json["sessions"].as_array().expect("sessions");
        assert!(sessions.len() <= 3);
        seen.extend(
            sessions
                .iter()
                .map(|s| s["handle"].as_str().unwrap().to_string()),
        );
        pages += 1;
        for n in 0..2 {
            let _ = logged_in(&app, &format!("late{pages}-{n}@example.com")).await;
        }
        match json["next_page_token"].as_str() {
            Some(token) => {
                let link = page
                    .header("link")
                    .expect("a Link header while there is more");
                assert!(link.ends_with("rel=\"next\""), "{link}");
                assert!(link.contains(token), "{link}");
                path = format!("/api/v1/sessions?page_size=3&page_token={token}");
            }
            None => {
                assert!(page.header("link").is_none());
                break;
            }
        }
        assert!(pages < 50, "the walk ends");
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicates: {seen:?}");
    assert!(before.is_subset(&unique), "no gaps");

    // One user's only; bad parameters are 400.
    let one = call(
        &client,
        &app,
        reqwest::Method::GET,
        "/api/v1/sessions?user_id=1",
        Some(&key),
    )
    .await;
    assert_eq!(one.status, 200);
    assert!(one.json()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["user_id"] == 1));
    for bad in [
        "page_size=0",
        "page_size=501",
        "page_size=x",
        "page_token=nonsense",
        "user_id=x",
    ] {
        let answer = call(
            &client,
            &app,
            reqwest::Method::GET,
            &format!("/api/v1/sessions?{bad}"),
            Some(&key),
        )
        .await;
        assert_eq!(answer.status, 400, "{bad}: {}", answer.body);
    }
    app.stop().await;
}

#[tokio::test]
async fn revocations_through_the_api_end_sessions_and_say_which_key_did_it() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let key = key(&app, "recovery-desk", false).await;
    let mut ann = logged_in(&app, "ann@example.com").await;
    let mut laptop = Shopper::new(&app);
    assert_eq!(laptop.login("ann@example.com", PASSWORD).await.status, 200);
    let mut bob = logged_in(&app, "bob@example.com").await;
    let list = call(
        &client,
        &app,
        reqwest::Method::GET,
        "/api/v1/sessions",
        Some(&key),
    )
    .await;
    let sessions = list.json()["sessions"].as_array().unwrap().clone();
    let bobs = sessions
        .iter()
        .find(|s| s["email"] == "bob@example.com")
        .expect("bob's");
    let handle = bobs["handle"].as_str().unwrap().to_string();
    let path = format!("/api/v1/sessions/{handle}");
    let answer = call(&client, &app, reqwest::Method::DELETE, &path, Some(&key)).await;
    assert_eq!(answer.status, 204, "{}", answer.body);
    assert!(bob.me().await["user"].is_null(), "ended at once");
    let again = call(&client, &app, reqwest::Method::DELETE, &path, Some(&key)).await;
    assert_eq!(again.status, 404);
    let unknown = call(
        &client,
        &app,
        reqwest::Method::DELETE,
        "/api/v1/sessions/0123456789abcdef",
        Some(&key),
    )
    .await;
    assert_eq!(unknown.status, 404);

    let ann_id = sessions
        .iter()
        .find(|s| s["email"] == "ann@example.com")
        .unwrap()["user_id"]
        .as_i64()
        .unwrap();
    let path = format!("/api/v1/users/{ann_id}/sessions");
    let answer = call(&client, &app, reqwest::Method::DELETE, &path, Some(&key)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["revoked"], 2);
    assert!(ann.me().await["user"].is_null());
    assert!(laptop.me().await["user"].is_null());
    let nobody = call(
        &client,
        &app,
        reqwest::Method::DELETE,
        "/api/v1/users/99999/sessions",
        Some(&key),
    )
    .await;
    assert_eq!(nobody.status, 404);

    // The owner reads it in their log; the admin in the audit log.
    assert_eq!(ann.login("ann@example.com", PASSWORD).await.status, 200);
    let page = ann.get("/account/security").await;
    assert!(
        page.body
            .contains("2 sessions ended by the API (key recovery-desk)"),
        "{}",
        page.body
    );
    let mut boss = admin(&app).await;
    let page = boss.get("/admin/sessions").await;
    assert_eq!(testid_attr(&page.body, "audit-row", "data-testid").len(), 2);
    assert!(
        page.body.contains("the API (key recovery-desk)"),
        "{}",
        page.body
    );
    app.stop().await;
}

#[tokio::test]
async fn a_login_past_its_idle_timeout_is_not_revoked_or_counted_by_the_api() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let key = key(&app, "recovery-desk", false).await;
    let mut old = logged_in(&app, "ann@example.com").await;
    let list = call(
        &client,
        &app,
        reqwest::Method::GET,
        "/api/v1/sessions",
        Some(&key),
    )
    .await;
    let sessions = list.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 1);
    let old_handle = sessions[0]["handle"].as_str().unwrap().to_string();
    let ann_id = sessions[0]["user_id"].as_i64().unwrap();

    // Past the login idle timeout (30 minutes) — its record is still stored a while — and
    // Ann signs in again elsewhere.
    app::server::session::clock::advance(std::time::Duration::from_secs(31 * 60));
    let mut fresh = Shopper::new(&app);
    assert_eq!(fresh.login("ann@example.com", PASSWORD).await.status, 200);
    let list = call(
        &client,
        &app,
        reqwest::Method::GET,
        "/api/v1/sessions",
        Some(&key),
    )
    .await;
    let handles: Vec<String> = list.json()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["handle"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!handles.contains(&old_handle), "not listed: {handles:?}");
    assert_eq!(handles.len(), 1);

    // Not listed, so not there to revoke: 404, and the count is of the live one only.
    let path = format!("/api/v1/sessions/{old_handle}");
    let answer = call(&client, &app, reqwest::Method::DELETE, &path, Some(&key)).await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    let path = format!("/api/v1/users/{ann_id}/sessions");
    let answer = call(&client, &app, reqwest::Method::DELETE, &path, Some(&key)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["revoked"], 1);
    assert!(fresh.me().await["user"].is_null(), "the live one ended");
    assert!(
        old.me().await["user"].is_null(),
        "the idle one had ended by its timeout"
    );
    app.stop().await;
}

#[tokio::test]
async fn only_a_live_key_opens_the_api_and_failures_are_throttled() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let read_only = key(&app, "reporting", true).await;
    let revoked = key(&app, "old", false).await;
    let now = app::server::session::clock::now();
    app::server::api_keys::revoke(&app.db().await, "old", now)
        .await
        .expect("revoked");

    let get = reqwest::Method::GET;
    let answer = call(&client, &app, get.clone(), "/api/v1/sessions", None).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("www-authenticate").as_deref(), Some("Bearer"));
    for bad in ["cck_unknown", revoked.as_str(), "not even a key"] {
        let answer = call(&client, &app, get.clone(), "/api/v1/sessions", Some(bad)).await;
        assert_eq!(answer.status, 401, "{bad}");
        assert_eq!(answer.header("www-authenticate").as_deref(), Some("Bearer"));
    }
    // An admin's session cookie is not a key.
    let boss = admin(&app).await;
    let answer = client
        .get(app.url("/api/v1/sessions"))
        .header("cookie", format!("id={}", boss.cookie.as_deref().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 401);
    // Read-only: lists, never ends.
    let answer = call(
        &client,
        &app,
        get.clone(),
        "/api/v1/sessions",
        Some(&read_only),
    )
    .await;
    assert_eq!(answer.status, 200);
    let answer = call(
        &client,
        &app,
        reqwest::Method::DELETE,
        "/api/v1/users/1/sessions",
        Some(&read_only),
    )
    .await;
    assert_eq!(answer.status, 403);
    assert!(boss.clone().me().await["user"]["email"] == "boss@example.com");

    // The OpenAPI document, generated from the handlers.
    let doc = call(&client, &app, get.clone(), "/api/v1/openapi.json", None).await;
    assert_eq!(doc.status, 200);
    let doc = doc.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/api/v1/sessions"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/users/{user_id}/sessions"]["delete"].is_object());

    // Guessing keys: ten failures from one network are free (four were made above), then it
    // waits, and even a right key waits there.
    let mut statuses = Vec::new();
    for i in 0..10 {
        let guess = format!("cck_guess{i}");
        statuses.push(
            call(&client, &app, get.clone(), "/api/v1/sessions", Some(&guess))
                .await
                .status,
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    let answer = call(
        &client,
        &app,
        get.clone(),
        "/api/v1/sessions",
        Some(&read_only),
    )
    .await;
    assert_eq!(answer.status, 429);
    assert!(answer.header("retry-after").is_some());
    app.stop().await;
}

#[tokio::test]
async fn the_admin_page_shows_a_new_key_once_and_its_changes_need_a_recent_password() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let mut boss = admin(&app).await;
    let reply = boss
        .post(
            "/api/admin/api-keys/create",
            &[("name", "desk"), ("read_only", "on")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let start = reply.body.find("cck_").expect("the key in the answer");
    let key: String = reply.body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    assert_eq!(key.len(), 68, "{key}");
    let page = boss.get("/admin/api-keys").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        testid_attr(&page.body, "api-key-row", "data-name"),
        ["desk"]
    );
    assert!(
        page.body.contains(&key[..12]) && !page.body.contains(&key),
        "shown once"
    );
    let list = call(
        &client,
        &app,
        reqwest::Method::GET,
        "/api/v1/sessions",
        Some(&key),
    )
    .await;
    assert_eq!(list.status, 200);

    // Not for shoppers.
    let mut shopper = logged_in(&app, "ann@example.com").await;
    assert_eq!(shopper.get("/admin/api-keys").await.status, 403);
    let reply = shopper
        .post("/api/admin/api-keys/create", &[("name", "mine")])
        .await;
    assert_eq!(reply.status, 403);

    // Past the sudo window, nothing is created or revoked until the password is entered.
    app::server::session::clock::advance(std::time::Duration::from_secs(16 * 60));
    let reply = boss
        .post("/api/admin/api-keys/create", &[("name", "late")])
        .await;
    assert_eq!(reply.status, 403);
    assert!(reply.body.contains("/account/confirm"), "{}", reply.body);
    let reply = boss
        .post("/api/admin/api-keys/revoke", &[("name", "desk")])
        .await;
    assert_eq!(reply.status, 403);
    let list = call(
        &client,
        &app,
        reqwest::Method::GET,
        "/api/v1/sessions",
        Some(&key),
    )
    .await;
    assert_eq!(list.status, 200, "the key still works");
    let reply = boss
        .post("/api/account/confirm", &[("password", PASSWORD)])
        .await;
    assert_eq!(reply.status, 200);
    let reply = boss
        .post("/api/admin/api-keys/revoke", &[("name", "desk")])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let list = call(
        &client,
        &app,
        reqwest::Method::GET,
        "/api/v1/sessions",
        Some(&key),
    )
    .await;
    assert_eq!(list.status, 401, "revoked at its next request");
    let page = boss.get("/admin/api-keys").await;
    assert_eq!(
        testid_attr(&page.body, "api-key-row", "data-revoked"),
        ["true"]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_network_that_failed_once_is_not_held_back_for_good_by_its_own_successes() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let key = key(&app, "reporting", true).await;
    let get = reqwest::Method::GET;
    // Ten wrong keys are free; the eleventh waits 30 s.
    for i in 0..10 {
        let guess = format!("cck_wrong{i}");
        let answer = call(&client, &app, get.clone(), "/api/v1/sessions", Some(&guess)).await;
        assert_eq!(answer.status, 401);
    }
    let answer = call(
        &client,
        &app,
        get.clone(),
        "/api/v1/sessions",
        Some("cck_x"),
    )
    .await;
    assert_eq!(answer.status, 429);
    // After the wait, the right key works — and keeps working call after call: a right key
    // does not make the old failures recent again (it did: every call then waited 30 s).
    app::server::session::clock::advance(std::time::Duration::from_secs(31));
    for _ in 0..5 {
        let answer = call(&client, &app, get.clone(), "/api/v1/sessions", Some(&key)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    // A wrong key is still held back until an hour after the last failure.
    let answer = call(
        &client,
        &app,
        get.clone(),
        "/api/v1/sessions",
        Some("cck_y"),
    )
    .await;
    assert_eq!(answer.status, 401);
    let answer = call(
        &client,
        &app,
        get.clone(),
        "/api/v1/sessions",
        Some("cck_z"),
    )
    .await;
    assert_eq!(answer.status, 429);
    app.stop().await;
}
