//! What an operator relies on: request IDs on every log line (JSON logs), no session ID in the
//! logs, and the Prometheus metrics listener.

use crate::common;

use common::{
    admin, client_ip, fresh_database_url, product_id, sample, spawn_app, ServerProcess, Shopper,
    PASSWORD,
};
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
    let credentials = [
        ("email", "logs@example.com"),
        ("password", "a long enough secret"),
    ];
    let call = |path: &str| {
        shopper
            .post(format!("{}{path}", server.base))
            .header("accept", "application/json")
            .form(&credentials)
            .send()
    };
    assert_eq!(call("/api/register").await.unwrap().status(), 200);
    let login = call("/api/login").await.unwrap();
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

#[tokio::test]
async fn a_short_journey_moves_the_right_counters() {
    let app = spawn_app().await;
    let before = app.scrape().await;
    for outcome in ["succeeded", "failed", "throttled"] {
        assert_eq!(
            sample(
                &before,
                &format!("coatcheck_logins_total{{outcome=\"{outcome}\"}}")
            ),
            0.0
        );
    }
    // The shop's own address serves no metrics.
    let mut visitor = Shopper::new(&app);
    assert_eq!(visitor.get("/metrics").await.status, 404);

    // An anonymous cart, a product page, a registration, a logout, a wrong and a right
    // password, a checkout, an admin's revocation.
    let scarf = product_id(&app, "merino-scarf").await;
    let mut shopper = Shopper::new(&app);
    assert_eq!(shopper.add(scarf, "2").await.status, 200);
    assert_eq!(shopper.get("/products/merino-scarf").await.status, 200);
    let cart_only = app.scrape().await;
    let anonymous_with_cart = "coatcheck_sessions_live{kind=\"anonymous_with_cart\"}";
    if common::on_redis() {
        // Redis keeps no index of anonymous sessions: the gauge is left out, not made up.
        assert!(!cart_only.contains(anonymous_with_cart), "{cart_only}");
    } else {
        assert_eq!(sample(&cart_only, anonymous_with_cart), 1.0);
    }
    assert_eq!(
        sample(&cart_only, "coatcheck_sessions_live{kind=\"logged_in\"}"),
        0.0
    );
    assert_eq!(
        shopper
            .register("metrics@example.com", PASSWORD)
            .await
            .status,
        200
    );
    assert_eq!(shopper.post("/api/logout", &[]).await.status, 200);
    assert_eq!(
        shopper
            .login("metrics@example.com", "not the password")
            .await
            .status,
        401
    );
    assert_eq!(
        shopper.login("metrics@example.com", PASSWORD).await.status,
        200
    );
    assert_eq!(shopper.add(scarf, "1").await.status, 200);
    assert_eq!(shopper.post("/api/checkout", &[]).await.status, 200);
    let mut boss = admin(&app).await;
    let after_login = app.scrape().await;
    assert_eq!(
        sample(&after_login, "coatcheck_sessions_live{kind=\"logged_in\"}"),
        2.0,
        "the shopper and the admin"
    );
    let rows = boss.get("/admin/sessions").await.body;
    let emails = common::testid_attr(&rows, "session-row", "data-user-email");
    let handles = common::testid_attr(&rows, "session-row", "data-session");
    let victim = emails
        .iter()
        .position(|email| email == "metrics@example.com")
        .expect("the shopper's session is listed");
    let revoke = boss
        .post(
            "/api/admin/sessions/revoke",
            &[("session", &handles[victim])],
        )
        .await;
    assert_eq!(revoke.status, 200, "{}", revoke.body);

    let after = app.scrape().await;
    let count = |series: &str| sample(&after, series);
    assert_eq!(count("coatcheck_logins_total{outcome=\"succeeded\"}"), 1.0);
    assert_eq!(count("coatcheck_logins_total{outcome=\"failed\"}"), 1.0);
    assert_eq!(count("coatcheck_logins_total{outcome=\"throttled\"}"), 0.0);
    assert_eq!(
        count("coatcheck_session_id_rotations_total{reason=\"login\"}"),
        1.0
    );
    assert_eq!(
        count("coatcheck_session_id_rotations_total{reason=\"registration\"}"),
        2.0,
        "the shopper's and the admin's"
    );
    assert_eq!(count("coatcheck_logouts_total"), 1.0);
    assert_eq!(count("coatcheck_checkouts_total{outcome=\"placed\"}"), 1.0);
    assert_eq!(
        count("coatcheck_session_revocations_total{kind=\"admin_one\"}"),
        1.0
    );
    assert_eq!(
        count("coatcheck_session_revocations_total{kind=\"admin_all\"}"),
        0.0
    );
    assert_eq!(count("coatcheck_sessions_live{kind=\"logged_in\"}"), 1.0);
    // By route template, never by path; statuses by class.
    assert_eq!(
        count("coatcheck_http_requests_total{method=\"POST\",route=\"/api/login\",status=\"2xx\"}"),
        1.0
    );
    assert_eq!(
        count("coatcheck_http_requests_total{method=\"POST\",route=\"/api/login\",status=\"4xx\"}"),
        1.0
    );
    assert!(
        count("coatcheck_http_request_duration_seconds_count{route=\"/products/{slug}\"}") >= 1.0
    );
    assert!(!after.contains("merino-scarf"), "a path became a label");
    assert_eq!(
        count("coatcheck_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"4xx\"}"),
        1.0,
        "the shop's /metrics: not found"
    );
    assert!(count("coatcheck_db_pool_connections{state=\"idle\"}") >= 0.0);
    app.stop().await;
}

#[tokio::test]
async fn throttled_logins_are_counted_apart_from_failures() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    assert_eq!(
        shopper
            .register("guessed@example.com", PASSWORD)
            .await
            .status,
        200
    );
    let mut guesser = Shopper::from_address(&app, 3);
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            guesser
                .login("guessed@example.com", "a wrong guess")
                .await
                .status,
        );
    }
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    let failed = statuses.iter().filter(|s| **s == 401).count();
    assert!(throttled >= 1, "{statuses:?}");
    let scrape = app.scrape().await;
    assert_eq!(
        sample(&scrape, "coatcheck_logins_total{outcome=\"failed\"}"),
        failed as f64
    );
    assert_eq!(
        sample(&scrape, "coatcheck_logins_total{outcome=\"throttled\"}"),
        throttled as f64
    );
    assert_eq!(
        sample(&scrape, "coatcheck_logins_total{outcome=\"succeeded\"}"),
        0.0
    );
    app.stop().await;
}

/// What a client can send wrong or ask too much of: answered with a 4xx, counted as a 4xx, and
/// logged below ERROR, every line of it short.
#[tokio::test]
async fn what_a_client_gets_wrong_is_a_4xx_never_an_error_line() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(&dir).await;
    let log_path = dir.path().join("server.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let metrics_port = common::free_port();
    let server = ServerProcess::start_with(&url, |command| {
        command
            .env("COATCHECK_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("COATCHECK_MAX_STREAMS_PER_CLIENT", "1")
            .env(
                "COATCHECK_METRICS_ADDR",
                format!("127.0.0.1:{metrics_port}"),
            )
            .stdout(log_file);
    })
    .await;
    let client = reqwest::Client::new();

    // A 32 KB address: 414, and its log line cut short.
    let long = format!("{}/?q={}", server.base, "a".repeat(32 * 1024));
    let status = client.get(&long).send().await.map(|r| r.status().as_u16());
    assert!(
        matches!(status, Ok(414)),
        "{:?}",
        status.map_err(|e| e.is_builder())
    );
    // CONNECT: this is not a proxy.
    let addr = server.base.trim_start_matches("http://").to_string();
    let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
    raw.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), raw.read(&mut answer))
        .await
        .expect("CONNECT is answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    // A cross-site check that cannot read its Origin: refused.
    let mut shopper = server.shopper();
    assert_eq!(
        shopper.register("wrong@example.com", PASSWORD).await.status,
        200
    );
    let cookie = shopper.cookie.clone().unwrap();
    let non_ascii = client
        .post(format!("{}/api/logout", server.base))
        .header("cookie", format!("id={cookie}"))
        .header(
            "origin",
            reqwest::header::HeaderValue::from_bytes("http://\u{e9}vil.test".as_bytes()).unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(non_ascii.status(), 403);
    assert_eq!(shopper.me().await["user"]["email"], "wrong@example.com");
    // A stream past the client network's share: 429.
    let _open = common::EventStream::open(&server.base, &cookie).await;
    let refused = common::EventStream::try_open(&server.base, &cookie, &client).await;
    assert_eq!(refused.status(), 429);

    let scrape = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let server_errors: f64 = scrape
        .lines()
        .filter(|line| {
            line.starts_with("coatcheck_http_requests_total") && line.contains("status=\"5xx\"")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(server_errors, 0.0, "no 5xx counted:\n{scrape}");

    // Give the last lines a moment to be written.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(&log_path).unwrap();
    let longest = text.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 4096, "a log line of {longest} bytes");
    let errors: Vec<&str> = text
        .lines()
        .filter(|line| line.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(
        errors.is_empty(),
        "ERROR lines for client mistakes: {errors:#?}"
    );
    assert!(
        text.contains("bytes)"),
        "the long address is logged cut, with its length"
    );
}
