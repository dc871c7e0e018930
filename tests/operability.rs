//! What an operator relies on: request IDs on every log line (JSON logs), no session ID in the
//! logs, and the Prometheus metrics listener.

mod common;

use common::{client_ip, fresh_database_url, ServerProcess};
use serde_json::Value;

/// The server's JSON log lines so far.
fn log_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("the log file is readable")
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
        })
        .collect()
}

/// The request span of a log line (its outermost span), if it was written inside one.
fn request_span(line: &Value) -> Option<&Value> {
    line["spans"]
        .as_array()
        .and_then(|spans| spans.iter().find(|span| span["name"] == "request"))
}

fn request_id_of(line: &Value) -> Option<&str> {
    request_span(line).and_then(|span| span["request_id"].as_str())
}

#[tokio::test]
async fn every_log_line_of_a_request_carries_its_id_and_never_the_session_id() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    let log_path = dir.path().join("server.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    // The load balancer is 127.0.0.1; clients come from other loopback addresses.
    let mut server = ServerProcess::start_with(&url, |command| {
        command
            .env("COATCHECK_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("COATCHECK_TRUSTED_PROXIES", "127.0.0.1")
            .stdout(log_file);
    })
    .await;
    let shopper = reqwest::Client::builder()
        .local_address(client_ip(7))
        .cookie_store(true)
        .build()
        .unwrap();
    let balancer = reqwest::Client::builder()
        .local_address("127.0.0.1".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();

    // A client cannot choose its request ID: it gets a fresh one, echoed in the answer.
    let spoofed = shopper
        .get(format!("{}/api/me", server.base))
        .header("x-request-id", "planted-id")
        .send()
        .await
        .unwrap();
    let generated = spoofed.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(generated, "planted-id");
    assert_eq!(generated.len(), 36, "a UUID: {generated}");

    // The trusted proxy's ID is kept and echoed; an insane one is replaced.
    let forwarded = balancer
        .get(format!("{}/api/me", server.base))
        .header("x-request-id", "lb-4f2a:17")
        .send()
        .await
        .unwrap();
    assert_eq!(forwarded.headers()["x-request-id"], "lb-4f2a:17");
    let insane = balancer
        .get(format!("{}/api/me", server.base))
        .header("x-request-id", "two words")
        .send()
        .await
        .unwrap();
    assert_ne!(insane.headers()["x-request-id"], "two words");

    // Registering and logging in: the login's own log lines name its request.
    let register = shopper
        .post(format!("{}/api/register", server.base))
        .header("accept", "application/json")
        .form(&[
            ("email", "logs@example.com"),
            ("password", "a long enough secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), 200);
    let login = shopper
        .post(format!("{}/api/login", server.base))
        .header("accept", "application/json")
        .form(&[
            ("email", "logs@example.com"),
            ("password", "a long enough secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let login_id = login.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let session_cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("id="))
        .expect("the login sets a new session cookie");
    let session_id = session_cookie["id=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(session_id.len() >= 16);
    server.signal("TERM");
    assert!(server
        .wait_exit(std::time::Duration::from_secs(10))
        .await
        .is_some());
    let lines = log_lines(&log_path);
    let raw = std::fs::read_to_string(&log_path).unwrap();
    assert!(!raw.contains(&session_id), "a session ID reached the logs");

    let of_login: Vec<&Value> = lines
        .iter()
        .filter(|line| request_id_of(line) == Some(login_id.as_str()))
        .collect();
    let messages: Vec<&str> = of_login
        .iter()
        .filter_map(|line| line["message"].as_str())
        .collect();
    assert!(
        messages.contains(&"session rotated on login"),
        "the login's lines: {messages:?}"
    );
    assert!(messages.contains(&"finished processing request"));
    for line in &of_login {
        let span = request_span(line).unwrap();
        assert_eq!(span["uri"], "/api/login");
        assert_eq!(span["client"], client_ip(7).to_string());
    }
    // Every line written while serving a request names one.
    for line in &lines {
        if line["target"] == "tower_http::trace::on_response" {
            assert!(
                request_id_of(line).is_some_and(|id| !id.is_empty()),
                "{line}"
            );
        }
    }
    for id in [generated.as_str(), "lb-4f2a:17"] {
        assert!(
            lines.iter().any(|line| request_id_of(line) == Some(id)),
            "no log line for request {id}"
        );
    }
    assert!(!raw.contains("planted-id") && !raw.contains("two words"));
}
