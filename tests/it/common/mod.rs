//! Test helpers: spawn the real server on a random port with a fresh database (zero2prod's
//! `spawn_app`), and small HTTP conveniences.
#![allow(dead_code)]

mod stored;
pub use stored::*;

use coatcheck::http::{Application, Config};
use std::net::SocketAddr;
use tempfile::TempDir;

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub database_url: String,
    /// Keeps the database directory alive as long as the app.
    pub dir: TempDir,
    pub shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<()>>,
    /// The server's own pool (closing it takes the database away from the server).
    pub pool: app::server::db::Db,
    /// The operators' metrics listener (every test server has one).
    pub metrics: Option<SocketAddr>,
    /// The server's session store and session writes (on Redis when the run is).
    pub store: app::server::session::ShopSessionStore,
    pub sessions: app::server::session::SessionWrites,
}

impl TestApp {
    /// A client with its own cookie jar, which does not follow redirects (so tests see them).
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client builds")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get_text(&self, client: &reqwest::Client, path: &str) -> (u16, String) {
        let response = client
            .get(self.url(path))
            .send()
            .await
            .expect("request succeeds");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body is text"))
    }

    /// The server's metrics, scraped from its metrics listener.
    pub async fn scrape(&self) -> String {
        let addr = self
            .metrics
            .expect("the test server has a metrics listener");
        let response = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("the metrics listener answers");
        assert_eq!(response.status(), 200);
        response.text().await.expect("metrics are text")
    }

    /// A second connection pool on the same database, for checking what is stored.
    pub async fn db(&self) -> app::server::db::Db {
        app::server::db::connect(&self.database_url)
            .await
            .expect("database opens")
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

/// Whether this run is on PostgreSQL: `COATCHECK_TEST_DATABASE=postgres`, with
/// `COATCHECK_TEST_POSTGRES_URL` naming a server on which the tests may create databases
/// (`make test` starts a throw-away one). Otherwise SQLite. A PostgreSQL run without a server
/// fails; it never falls back to SQLite.
pub fn on_postgres() -> bool {
    match std::env::var("COATCHECK_TEST_DATABASE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("COATCHECK_TEST_DATABASE={other:?}: use sqlite or postgres"),
    }
}

/// Whether this run keeps the sessions on Redis: `COATCHECK_TEST_REDIS_URL` names a server
/// (`.ci/with-redis` starts a throw-away one) on which each test server takes a logical
/// database of its own. Otherwise the sessions are in the SQL database.
pub fn on_redis() -> bool {
    test_redis_server().is_some()
}

fn test_redis_server() -> Option<String> {
    std::env::var("COATCHECK_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// The session store URL for the servers on `database_url` in a Redis run: one logical
/// database per SQL database (so every server of a test that shares a database shares its
/// sessions, and tests never see each other's), numbered by `INCR` on database 0.
pub fn session_store_url_for(database_url: &str) -> Option<String> {
    use std::io::{BufRead, Write};
    static CHOSEN: std::sync::Mutex<Option<std::collections::HashMap<String, String>>> =
        std::sync::Mutex::new(None);
    let server = test_redis_server()?;
    let mut chosen = CHOSEN.lock().unwrap_or_else(|e| e.into_inner());
    let chosen = chosen.get_or_insert_with(Default::default);
    if let Some(url) = chosen.get(database_url) {
        return Some(url.clone());
    }
    let address = server
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut stream = std::net::TcpStream::connect(&address)
        .unwrap_or_else(|e| panic!("cannot reach the test Redis server at {address}: {e}"));
    let key = "coatcheck-test:databases";
    write!(stream, "*2\r\n$4\r\nINCR\r\n${}\r\n{key}\r\n", key.len()).expect("INCR sent");
    let mut line = String::new();
    std::io::BufReader::new(&stream)
        .read_line(&mut line)
        .expect("INCR answered");
    let number: u32 = line
        .trim()
        .strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("INCR answered {line:?}"));
    assert!(
        number < 4096,
        "the test Redis server has 4096 databases (.ci/with-redis); this run wants more"
    );
    let url = format!("{}/{number}", server.trim_end_matches('/'));
    chosen.insert(database_url.to_string(), url.clone());
    Some(url)
}

/// The URL of a fresh, empty database of this run's kind: a file in `dir` (SQLite), or a new
/// database on the test server (PostgreSQL; `CREATE DATABASE` takes about 0.1 s).
pub async fn fresh_database_url(dir: &TempDir) -> String {
    if !on_postgres() {
        return format!("sqlite://{}", dir.path().join("coatcheck.db").display());
    }
    use sqlx::{Connection, Executor};
    let server = std::env::var("COATCHECK_TEST_POSTGRES_URL").expect(
        "COATCHECK_TEST_DATABASE=postgres needs COATCHECK_TEST_POSTGRES_URL (make test sets both)",
    );
    let name = format!("coatcheck_test_{:016x}", rand_u64());
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL server: {e}"));
    admin
        .execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("test database is created");
    let _ = admin.close().await;
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server.as_str(), String::new()),
    };
    let prefix = match base.rsplit_once('/') {
        Some((prefix, _)) if prefix.ends_with('/') => base,
        Some((prefix, _)) => prefix,
        None => base,
    };
    format!("{}/{name}{query}", prefix.trim_end_matches('/'))
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    hasher.finish()
}

pub fn test_config(dir: &TempDir) -> Config {
    let db_path = dir.path().join("coatcheck.db");
    Config::from_lookup(|key| match key {
        "LEPTOS_SITE_ADDR" => Some("127.0.0.1:0".to_string()),
        "DATABASE_URL" => Some(format!("sqlite://{}", db_path.display())),
        "LEPTOS_SITE_ROOT" => Some(dir.path().join("site").display().to_string()),
        "COATCHECK_METRICS_ADDR" => Some("127.0.0.1:0".to_string()),
        _ => None,
    })
    .expect("test configuration is valid")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// `COATCHECK_TEST_LOG=<filter>`: the servers' logs on standard error (all tests of a binary).
pub fn init_test_logs() {
    if let Ok(filter) = std::env::var("COATCHECK_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_thread_names(true)
            .with_writer(std::io::stderr)
            .try_init();
    }
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    init_test_logs();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(&dir);
    config.database_url = fresh_database_url(&dir).await;
    adjust(&mut config);
    if config.session_store_url.is_none() {
        config.session_store_url = session_store_url_for(&config.database_url);
    }
    let database_url = config.database_url.clone();
    let app = Application::build(config).await.expect("app builds");
    let addr = app.local_addr().expect("bound");
    let metrics = app.metrics_addr();
    let pool = app.pool();
    let (store, sessions) = app.sessions();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .expect("server runs");
    });
    TestApp {
        addr,
        base: format!("http://{addr}"),
        database_url,
        dir,
        shutdown: Some(tx),
        server: Some(server),
        pool,
        metrics,
        store,
        sessions,
    }
}

/// A client address of its own on the loopback network (all of 127.0.0.0/8 reaches this host):
/// tests that play many different clients bind to one each, as per-IP budgets (login and
/// registration throttling, the hashing queue, new sessions) would otherwise count them as one.
pub fn client_ip(n: usize) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(
        127,
        1,
        (n / 250 % 250) as u8,
        (n % 250 + 1) as u8,
    ))
}

/// A cart write by a new visitor (no cookie) to `url` (`…/api/cart/add`): its status and
/// `Retry-After` in seconds, if any.
pub async fn cookieless_add(url: String, product_id: i64) -> (u16, Option<u64>) {
    let response = reqwest::Client::new()
        .post(url)
        .form(&[
            ("product_id", product_id.to_string()),
            ("quantity", "1".into()),
        ])
        .send()
        .await
        .unwrap();
    let wait = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    (response.status().as_u16(), wait)
}

/// The values of `attribute` on every element carrying `data-testid="test_id"`, in order.
pub fn testid_attr(html: &str, test_id: &str, attribute: &str) -> Vec<String> {
    let marker = format!("data-testid=\"{test_id}\"");
    let mut values = Vec::new();
    for (start, _) in html.match_indices(&marker) {
        // The element's opening tag spans from the last '<' before the marker to the next '>'.
        let tag_start = html[..start].rfind('<').unwrap_or(0);
        let tag_end = html[start..]
            .find('>')
            .map(|i| start + i)
            .unwrap_or(html.len());
        let tag = &html[tag_start..tag_end];
        let needle = format!(" {attribute}=\"");
        if let Some(i) = tag.find(&needle) {
            let rest = &tag[i + needle.len()..];
            if let Some(end) = rest.find('"') {
                values.push(rest[..end].to_string());
            }
        }
    }
    values
}

/// The text content directly inside the first element with `data-testid="test_id"`.
pub fn testid_text(html: &str, test_id: &str) -> Option<String> {
    let marker = format!("data-testid=\"{test_id}\"");
    let start = html.find(&marker)?;
    let open_end = start + html[start..].find('>')? + 1;
    let close = open_end + html[open_end..].find("</")?;
    Some(
        html[open_end..close]
            .replace("<!-- -->", "")
            .trim()
            .to_string(),
    )
}

/// A shopper with a hand-held session cookie, so tests can read, keep and replay its value.
#[derive(Clone)]
pub struct Shopper {
    pub base: String,
    pub client: reqwest::Client,
    pub cookie: Option<String>,
}

pub struct Reply {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookie: Vec<String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("JSON body, got {:?}", self.body))
    }
}

impl Shopper {
    pub fn new(app: &TestApp) -> Shopper {
        Shopper::with_client(app, reqwest::Client::builder())
    }

    /// A shopper on client address number `n` (see [`client_ip`]).
    pub fn from_address(app: &TestApp, n: usize) -> Shopper {
        Shopper::with_client(app, reqwest::Client::builder().local_address(client_ip(n)))
    }

    /// A shopper on client address number `n`, for the server at `base`.
    pub fn from_address_of(base: &str, n: usize) -> Shopper {
        Shopper {
            base: base.to_string(),
            client: reqwest::Client::builder()
                .local_address(client_ip(n))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client builds"),
            cookie: None,
        }
    }

    /// A shopper on a client made by `builder` (redirects are never followed).
    pub fn with_client(app: &TestApp, builder: reqwest::ClientBuilder) -> Shopper {
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client builds");
        Shopper {
            base: app.base.clone(),
            client,
            cookie: None,
        }
    }

    pub fn with_cookie(&self, cookie: Option<String>) -> Shopper {
        Shopper {
            cookie,
            ..self.clone()
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Reply {
        let request = match &self.cookie {
            Some(value) => request.header("cookie", format!("id={value}")),
            None => request,
        };
        let response = request.send().await.expect("request succeeds");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let set_cookie: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        for header in &set_cookie {
            if let Some(rest) = header.strip_prefix("id=") {
                let value = rest.split(';').next().unwrap_or("").to_string();
                let removed = header.contains("Max-Age=0") || value.is_empty();
                self.cookie = if removed { None } else { Some(value) };
            }
        }
        let body = response.text().await.unwrap_or_default();
        Reply {
            status,
            location,
            set_cookie,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        let request = self.client.get(format!("{}{}", self.base, path));
        self.send(request).await
    }

    /// A server-function call as the hydrated app makes it (fetch, JSON answer).
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Reply {
        let request = self
            .client
            .post(format!("{}{}", self.base, path))
            .header("accept", "application/json")
            .form(form);
        self.send(request).await
    }

    /// The same call as a plain HTML form without JavaScript makes it.
    pub async fn post_form(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        referer_path: &str,
    ) -> Reply {
        let request = self
            .client
            .post(format!("{}{}", self.base, path))
            .header("accept", "text/html,application/xhtml+xml")
            .header("referer", format!("{}{}", self.base, referer_path))
            .form(form);
        self.send(request).await
    }

    pub async fn cart(&mut self) -> serde_json::Value {
        let reply = self.get("/api/cart").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    pub async fn cart_count(&mut self) -> u64 {
        self.cart().await["count"].as_u64().expect("count")
    }

    pub async fn add(&mut self, product_id: i64, quantity: &str) -> Reply {
        self.post(
            "/api/cart/add",
            &[
                ("product_id", &product_id.to_string()),
                ("quantity", quantity),
            ],
        )
        .await
    }

    pub async fn register(&mut self, email: &str, password: &str) -> Reply {
        self.post("/api/register", &[("email", email), ("password", password)])
            .await
    }

    pub async fn login(&mut self, email: &str, password: &str) -> Reply {
        self.post("/api/login", &[("email", email), ("password", password)])
            .await
    }

    pub async fn me(&mut self) -> serde_json::Value {
        self.get("/api/me").await.json()
    }
}

/// A logged-in shopper (registered, or logged in when the email is taken).
pub async fn logged_in(app: &TestApp, email: &str) -> Shopper {
    let mut shopper = Shopper::new(app);
    let reply = shopper.register(email, PASSWORD).await;
    if reply.status == 409 {
        assert_eq!(shopper.login(email, PASSWORD).await.status, 200);
    }
    shopper
}

/// Makes the user with `email` an admin (their next login reads it).
pub async fn make_admin(app: &TestApp, email: &str) {
    app::on_db!(&app.db().await, p => sqlx::query("UPDATE users SET is_admin = $1 WHERE email = $2")
        .bind(true)
        .bind(email)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .unwrap();
}

/// A logged-in admin with exactly one session.
pub async fn admin(app: &TestApp) -> Shopper {
    let mut boss = Shopper::new(app);
    assert_eq!(
        boss.register("boss@example.com", PASSWORD).await.status,
        200
    );
    make_admin(app, "boss@example.com").await;
    boss
}

/// The value of one sample (`name{labels}`) in a Prometheus text scrape.
pub fn sample(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|value| value.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no sample {series} in:\n{scrape}"))
}

/// The id of a seeded product by slug.
pub async fn product_id(app: &TestApp, slug: &str) -> i64 {
    app::on_db!(&app.db().await, pool => sqlx::query_scalar("SELECT id FROM products WHERE slug = $1")
        .bind(slug)
        .fetch_one(pool)
        .await)
    .expect("product exists")
}

pub const PASSWORD: &str = "correct horse battery staple";

/// The first cookie an answer sets, as `name=value` (for a `Cookie` header).
pub fn first_cookie(response: &reqwest::Response) -> String {
    response.headers()["set-cookie"]
        .to_str()
        .expect("a text header")
        .split(';')
        .next()
        .expect("name=value")
        .to_string()
}

/// `GET url` with the `Cookie` header `cookie` (`id=…`), answered with JSON.
pub async fn get_json(client: &reqwest::Client, url: &str, cookie: &str) -> serde_json::Value {
    client
        .get(url)
        .header("cookie", cookie)
        .send()
        .await
        .expect("request succeeds")
        .json()
        .await
        .expect("a JSON answer")
}

/// The real `coatcheck` binary in its own process, stopped when dropped.
pub struct ServerProcess {
    pub base: String,
    child: std::process::Child,
}

impl ServerProcess {
    pub async fn start(database_url: &str) -> ServerProcess {
        ServerProcess::start_with(database_url, |_| {}).await
    }

    /// Like `start`, with `adjust` setting more of the command (environment, standard output).
    pub async fn start_with(
        database_url: &str,
        adjust: impl FnOnce(&mut std::process::Command),
    ) -> ServerProcess {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            listener.local_addr().expect("addr").port()
        };
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_coatcheck"));
        command
            .arg("serve")
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env("RUST_LOG", "warn")
            .envs(
                session_store_url_for(database_url).map(|url| ("COATCHECK_SESSION_STORE_URL", url)),
            )
            .stdout(std::process::Stdio::null());
        adjust(&mut command);
        let mut child = command.spawn().expect("server starts");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(response) = client.get(format!("{base}/healthz")).send().await {
                if response.status() == 200 {
                    return ServerProcess { base, child };
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("server at {base} did not become healthy");
    }
}

/// An open `GET /api/session/events` stream, read event by event.
pub struct EventStream {
    response: reqwest::Response,
    buffer: String,
}

impl EventStream {
    /// Opens the stream of the session `cookie` (the `id` cookie's value) at `base`.
    pub async fn open(base: &str, cookie: &str) -> EventStream {
        EventStream::open_from(base, cookie, reqwest::Client::new()).await
    }

    /// [`EventStream::open`] from client address number `n` (see [`client_ip`]).
    pub async fn open_as(base: &str, cookie: &str, n: usize) -> EventStream {
        let client = reqwest::Client::builder()
            .local_address(client_ip(n))
            .build()
            .expect("client builds");
        EventStream::open_from(base, cookie, client).await
    }

    /// The answer to opening the stream of `cookie` from `client`, whatever it is.
    pub async fn try_open(base: &str, cookie: &str, client: &reqwest::Client) -> reqwest::Response {
        client
            .get(format!("{base}/api/session/events"))
            .header("cookie", format!("id={cookie}"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("the server answers")
    }

    async fn open_from(base: &str, cookie: &str, client: reqwest::Client) -> EventStream {
        let response = client
            .get(format!("{base}/api/session/events"))
            .header("cookie", format!("id={cookie}"))
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("the stream opens");
        assert_eq!(response.status(), 200, "event stream");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        EventStream {
            response,
            buffer: String::new(),
        }
    }

    /// The next event's (name, data) within `limit` (comments are skipped); `None` if none
    /// came in time; `Some(("", ""))` when the server closed the stream.
    pub async fn next(&mut self, limit: std::time::Duration) -> Option<(String, String)> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_string();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data = value.trim().to_string();
                    }
                }
                if name.is_empty() && data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((name, data));
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Err(_) => return None,
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) => return Some((String::new(), String::new())),
            }
        }
    }
}

impl ServerProcess {
    /// A shopper without a session yet, whose requests go to this server.
    pub fn shopper(&self) -> Shopper {
        Shopper {
            base: self.base.clone(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client builds"),
            cookie: None,
        }
    }

    /// The server's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`"TERM"`, `"KILL"`) to the server process.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the process to exit; its status, or `None` if still running.
    pub async fn wait_exit(
        &mut self,
        limit: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        None
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A form POST sent over a raw connection with the last bytes of its body held back: the
/// server has the headers (and has loaded the session) but cannot run the action until
/// [`HeldRequest::finish`]. For racing a slow request against something else.
pub struct HeldRequest {
    stream: tokio::net::TcpStream,
    rest: Vec<u8>,
}

/// What came back on a raw connection.
pub struct RawReply {
    pub status: u16,
    /// The session IDs set by `Set-Cookie: id=…` (empty values, i.e. clearing, left out).
    pub new_ids: Vec<String>,
    pub body: String,
}

impl HeldRequest {
    pub async fn start(addr: SocketAddr, path: &str, cookie: &str, body: &str) -> HeldRequest {
        HeldRequest::start_from([127, 0, 0, 1], addr, path, cookie, body).await
    }

    /// [`HeldRequest::start`] from the client address `from` (a loopback address).
    pub async fn start_from(
        from: [u8; 4],
        addr: SocketAddr,
        path: &str,
        cookie: &str,
        body: &str,
    ) -> HeldRequest {
        use tokio::io::AsyncWriteExt;
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind(SocketAddr::from((from, 0)))
            .expect("binds to the client address");
        let mut stream = socket.connect(addr).await.expect("connects");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: id={cookie}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let split = body.len().saturating_sub(3);
        stream.write_all(head.as_bytes()).await.expect("writes");
        stream
            .write_all(&body.as_bytes()[..split])
            .await
            .expect("writes");
        stream.flush().await.expect("flushes");
        // Let the server read the headers and run everything that comes before the body (the
        // login-timeout guard loads the session). Tests check that it did: a request whose
        // session was never loaded is refused with a different message.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        HeldRequest {
            stream,
            rest: body.as_bytes()[split..].to_vec(),
        }
    }

    pub async fn finish(mut self) -> RawReply {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.stream.write_all(&self.rest).await.expect("writes");
        let mut raw = Vec::new();
        self.stream
            .read_to_end(&mut raw)
            .await
            .expect("reads the answer");
        let text = String::from_utf8_lossy(&raw).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let new_ids = head
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("set-cookie")
                    .then_some(value.trim())
            })
            .filter_map(|value| value.strip_prefix("id="))
            .map(|value| value.split(';').next().unwrap_or("").to_string())
            .filter(|id| !id.is_empty())
            .collect();
        RawReply {
            status,
            new_ids,
            body: body.to_string(),
        }
    }
}

/// A PostgreSQL server of one test's own, for tests that stop and start the database server
/// (the run's shared server must stay up for the other tests). Like `.ci/with-postgres`:
/// initdb in a temp dir (as the `postgres` user when run as root), fsync off, a free port.
/// Stopped when dropped.
pub struct PrivatePostgres {
    dir: TempDir,
    bindir: std::path::PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    pub fn start() -> PrivatePostgres {
        let bindir = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server is installed (make postgres)")
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .max_by_key(|bin| bin.display().to_string())
            .expect("an initdb under /usr/lib/postgresql");
        let dir = tempfile::tempdir().expect("temp dir");
        // initdb refuses root: as root, the server runs as the `postgres` user.
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        if root {
            let status = std::process::Command::new("chown")
                .arg("postgres:")
                .arg(dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown postgres: {}", dir.path().display());
        }
        let port = free_port();
        let server = PrivatePostgres {
            dir,
            bindir,
            port,
            as_postgres: root,
        };
        let data = server.dir.path().join("data");
        server.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        server.start_again();
        server
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bindir.join(tool);
        let mut command = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let output = command.args(args).output().expect("PostgreSQL tool runs");
        assert!(
            output.status.success(),
            "{tool} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.path().join("data").display().to_string();
        let mut all = vec!["-D", &data];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    /// Starts the (stopped) server again, on the same port with the same data.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log").display().to_string();
        self.pg_ctl(&["-l", &log, "-w", "-t", "30", "-o", &options, "start"]);
    }

    /// Stops the server (fast: open connections are cut).
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    /// The URL of the server's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let program = self.bindir.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            std::process::Command::new(&program)
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
    }
}

/// A private Redis server for one test: Debian's `redis-server` (installed by `make redis`) on a
/// free port with its data in a temp dir, durable as the README says a shop's must be
/// (`appendonly yes`, `appendfsync always`), killed when dropped. Never a shared or a
/// pre-existing server.
pub struct PrivateRedis {
    dir: TempDir,
    port: u16,
    eviction: String,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    pub fn start() -> PrivateRedis {
        PrivateRedis::start_with_eviction("noeviction")
    }

    /// With this `maxmemory-policy` (a shop must refuse any but `noeviction`).
    pub fn start_with_eviction(policy: &str) -> PrivateRedis {
        let mut server = PrivateRedis {
            dir: tempfile::tempdir().expect("temp dir"),
            port: free_port(),
            eviction: policy.to_string(),
            child: None,
        };
        server.start_again();
        server
    }

    /// Starts the (killed) server again on the same port with the same data.
    pub fn start_again(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args(["--maxmemory-policy", &self.eviction])
            .args(["--logfile", "redis.log"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server runs (make redis installs it)");
        self.child = Some(child);
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "redis-server answers on port {}",
                self.port
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// SIGKILL: no chance to write anything it has not written already.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port()
}
