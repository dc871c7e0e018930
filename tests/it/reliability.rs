//! Load, faults and crashes: concurrent writers, an unavailable database, SIGTERM under load,
//! kill -9 under load, and start-up errors.

use crate::common;

use common::{spawn_app, ServerProcess, Shopper, PASSWORD};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn sixty_four_concurrent_writers_never_see_a_locked_database() {
    let app = spawn_app().await;
    let products: Vec<i64> = app::on_db!(&app.pool, p => sqlx::query_scalar(
        "SELECT id FROM products ORDER BY id"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    let mut tasks = Vec::new();
    for writer in 0..64usize {
        // 64 shoppers, each on an address of its own (one address may start only a few).
        let mut shopper = Shopper::from_address(&app, writer);
        let products = products.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for i in 0..8usize {
                let product = products[(writer + i) % products.len()];
                let reply = shopper.add(product, "1").await;
                statuses.push((reply.status, reply.body));
            }
            let count = shopper.cart_count().await;
            (statuses, count)
        }));
    }
    for task in tasks {
        let (statuses, count) = task.await.unwrap();
        for (status, body) in &statuses {
            assert_eq!(*status, 200, "{body}");
            assert!(!body.contains("locked"), "{body}");
        }
        assert_eq!(count, 8, "every acknowledged write is in the cart");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_unavailable_database_answers_503_with_retry_after() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    assert_eq!(shopper.add(1, "1").await.status, 200);
    let mut anonymous = Shopper::new(&app);
    assert_eq!(anonymous.get("/").await.status, 200);

    // The server's pool is closed under it: no query can run any more.
    app.pool.close().await;
    // The anonymous page cache trusts its last look at the catalog for this long.
    tokio::time::sleep(app::server::catalog::VERSION_CHECK_INTERVAL * 2).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = format!("id={}", shopper.cookie.clone().unwrap());
    let requests = [
        ("GET", "/", None, false),
        ("GET", "/?q=wool", None, false),
        ("GET", "/products/merino-scarf", None, false),
        ("GET", "/", Some(&cookie), false),
        ("GET", "/cart", Some(&cookie), false),
        ("GET", "/api/cart", Some(&cookie), false),
        ("POST", "/api/cart/add", Some(&cookie), false),
        ("POST", "/api/cart/add", Some(&cookie), true),
        ("POST", "/api/cart/add", None, false),
        ("GET", "/healthz", None, false),
    ];
    for (method, path, cookie, form) in requests {
        let mut request = client.request(method.parse().unwrap(), app.url(path));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie.as_str());
        }
        if method == "POST" {
            request = request
                .header(
                    "accept",
                    if form {
                        "text/html"
                    } else {
                        "application/json"
                    },
                )
                .form(&[("product_id", "2"), ("quantity", "1")]);
        }
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            503,
            "{method} {path} cookie={}",
            cookie.is_some()
        );
        assert!(
            response.headers().contains_key("retry-after"),
            "{method} {path}: Retry-After"
        );
    }
    app.stop().await;
}

/// Logs a new user in on a fresh client (client number `n`, with an address of its own) and
/// returns it.
async fn member(base: &str, n: usize, email: &str) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .local_address(common::client_ip(n))
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    registered(&client, base, email).await;
    client
}

/// Rounds of the crash and shutdown tests: 1 in `make test`, more in `make soak`.
fn rounds() -> usize {
    std::env::var("SOAK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

#[tokio::test]
async fn sigterm_under_load_finishes_accepted_requests_and_exits_zero() {
    for _ in 0..rounds() {
        sigterm_round().await;
    }
}

/// Requests sent this shortly before SIGTERM may not have been accepted yet.
const ACCEPT_GRACE: Duration = Duration::from_millis(100);

async fn sigterm_round() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::fresh_database_url(&dir).await;
    let mut server = ServerProcess::start(&url).await;
    let base = server.base.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let signalled_at: Arc<std::sync::Mutex<Option<Instant>>> = Default::default();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let client = member(&base, i, &format!("load{i}@example.com")).await;
        let (base, stop, signalled_at) = (base.clone(), stop.clone(), signalled_at.clone());
        tasks.push(tokio::spawn(async move {
            let mut answered = 0;
            let mut late_failures = 0;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                // Logins (argon2, slow) and cart writes: requests that are mid-way when the
                // signal comes.
                let request = if answered % 4 == 0 {
                    client.post(format!("{base}/api/login")).form(&[
                        ("email", format!("load{i}@example.com")),
                        ("password", PASSWORD.into()),
                    ])
                } else {
                    client
                        .post(format!("{base}/api/cart/add"))
                        .form(&[("product_id", "1"), ("quantity", "1")])
                };
                match request.header("accept", "application/json").send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response.text().await;
                        assert!(body.is_ok(), "an accepted request lost its answer");
                        assert!(status == 200 || status == 422, "status {status}");
                        answered += 1;
                    }
                    Err(error) => {
                        // The listener closes at the signal: a request whose connection it
                        // had not accepted yet may fail. One sent 100 ms or more before the
                        // signal was accepted (logins queue for the hashing thread much
                        // longer), and must be answered.
                        let signalled = *signalled_at.lock().unwrap();
                        match signalled {
                            Some(at) if started + ACCEPT_GRACE >= at => late_failures += 1,
                            _ => panic!("a request sent well before the signal failed: {error}"),
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (answered, late_failures)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    *signalled_at.lock().unwrap() = Some(Instant::now());
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(10)).await;
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for task in tasks {
        answered += task.await.unwrap().0;
    }
    assert!(answered > 16, "the load ran ({answered} answers)");
    let status = status.expect("the server exits within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status}");
}

/// What one shopper's cart may hold after the crash: the acknowledged state, or the state of
/// the one request in flight when the server died (it may have committed without answering).
#[derive(Clone, Debug, Default)]
struct Expected {
    acknowledged: u64,
    in_flight: Option<u64>,
    orders: Vec<i64>,
}

/// Registers (and so logs in) a user on a cookieless client; returns the session cookie.
async fn registered(client: &reqwest::Client, base: &str, email: &str) -> String {
    let reply = client
        .post(format!("{base}/api/register"))
        .header("accept", "application/json")
        .form(&[("email", email), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    reply
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("id="))
        .and_then(|v| v.split(';').next())
        .map(|v| format!("id={v}"))
        .expect("a session cookie")
}

#[tokio::test]
async fn kill_9_under_write_load_loses_nothing_acknowledged() {
    for _ in 0..rounds() {
        crash_round().await;
    }
}

async fn crash_round() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::fresh_database_url(&dir).await;
    let server = ServerProcess::start(&url).await;
    let base = server.base.clone();
    let pool = app::server::db::connect(&url).await.unwrap();
    // Plenty of stock: nothing may be refused during the run.
    app::on_db!(&pool, p => sqlx::query("UPDATE products SET stock = 100000")
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .unwrap();
    let initial: HashMap<i64, i64> = app::on_db!(&pool, p => sqlx::query_as(
        "SELECT id, stock FROM products"
    )
    .fetch_all(p)
    .await)
    .unwrap()
    .into_iter()
    .collect();
    let expected: Arc<std::sync::Mutex<HashMap<usize, Expected>>> = Default::default();
    let mut cookies = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..12usize {
        // Twelve shoppers, each from an address of its own.
        let client = reqwest::Client::builder()
            .local_address(common::client_ip(i))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let cookie = registered(&client, &base, &format!("crash{i}@example.com")).await;
        cookies.push(cookie.clone());
        let (client, base, expected) = (client.clone(), base.clone(), expected.clone());
        tasks.push(tokio::spawn(async move {
            let mut count = 0u64;
            for step in 0usize.. {
                let checkout = step % 4 == 3;
                let after = if checkout { 0 } else { count + 1 };
                expected.lock().unwrap().entry(i).or_default().in_flight = Some(after);
                let request = if checkout {
                    client.post(format!("{base}/api/checkout"))
                } else {
                    let product = ((i + step) % 15 + 1).to_string();
                    client
                        .post(format!("{base}/api/cart/add"))
                        .form(&[("product_id", product.as_str()), ("quantity", "1")])
                };
                let sent = request
                    .header("accept", "application/json")
                    .header("cookie", &cookie)
                    .send()
                    .await;
                let Ok(response) = sent else { return };
                assert_eq!(
                    response.status(),
                    200,
                    "before the crash every write succeeds"
                );
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    return;
                };
                count = after;
                let mut all = expected.lock().unwrap();
                let mine = all.entry(i).or_default();
                mine.acknowledged = count;
                mine.in_flight = None;
                if checkout {
                    let target = body["redirect_to"].as_str().unwrap_or_default();
                    let id = target
                        .trim_start_matches("/orders/")
                        .parse()
                        .expect("order id");
                    mine.orders.push(id);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2000)).await;
    server.signal("KILL");
    for task in tasks {
        task.await.expect("no writer failed before the crash");
    }
    drop(server);

    // The file survived the crash intact (PostgreSQL's server was never killed: no file of
    // its own to check).
    if let Some(file) = pool.as_sqlite() {
        let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(file)
            .await
            .unwrap();
        assert_eq!(integrity, "ok");
    }
    // No order is half-written: each has lines, and its total is the sum of its lines.
    let broken: i64 = app::on_db!(&pool, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM orders o WHERE total_cents != COALESCE(
             (SELECT CAST(SUM(quantity * unit_price_cents) AS BIGINT)
                FROM order_lines l WHERE l.order_id = o.id), -1)",
    )
    .fetch_one(p)
    .await)
    .unwrap();
    assert_eq!(
        broken, 0,
        "orders without their lines or with a wrong total"
    );
    // Stock is the initial stock minus everything ordered.
    let ordered: HashMap<i64, i64> = app::on_db!(&pool, p => sqlx::query_as(
        "SELECT product_id, CAST(SUM(quantity) AS BIGINT) FROM order_lines GROUP BY product_id"
    )
    .fetch_all(p)
    .await)
    .unwrap()
    .into_iter()
    .collect();
    let stock: Vec<(i64, i64)> = app::on_db!(&pool, p => sqlx::query_as(
        "SELECT id, stock FROM products"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    for (id, now) in stock {
        let sold = ordered.get(&id).copied().unwrap_or(0);
        assert_eq!(now, initial[&id] - sold, "stock of product {id}");
    }
    pool.close().await;

    // After a restart, with the same cookies: every acknowledged order is there, and every
    // cart holds what was acknowledged (or what the request in flight at the crash made it).
    let server = ServerProcess::start(&url).await;
    let client = reqwest::Client::new();
    let expected = expected.lock().unwrap().clone();
    let mut orders_seen = 0;
    for (i, cookie) in cookies.iter().enumerate() {
        let mine = expected.get(&i).cloned().unwrap_or_default();
        for order in &mine.orders {
            let url = format!("{}/api/order?id={order}", server.base);
            let body = common::get_json(&client, &url, cookie).await;
            assert_eq!(
                body["summary"]["id"].as_i64(),
                Some(*order),
                "order {order}: {body}"
            );
            orders_seen += 1;
        }
        let cart = common::get_json(&client, &format!("{}/api/cart", server.base), cookie).await;
        let count = cart["count"].as_u64().expect("count");
        assert!(
            count == mine.acknowledged || Some(count) == mine.in_flight,
            "shopper {i}: cart {count}, acknowledged {}, in flight {:?}",
            mine.acknowledged,
            mine.in_flight
        );
    }
    assert!(orders_seen > 0, "the load placed orders before the crash");
    drop(server);
}

/// Runs the server binary in `dir` (a start-up that goes wrong must not leave files in the
/// repository).
fn run_binary(dir: &std::path::Path, envs: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_coatcheck"))
        .current_dir(dir)
        .arg("serve")
        .env("RUST_LOG", "warn")
        .envs(envs.iter().copied())
        .output()
        .expect("the binary runs")
}

#[tokio::test]
async fn start_up_errors_are_one_line_and_a_failing_exit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    // A database that cannot be opened: on SQLite a file under a file, on PostgreSQL a server
    // that is not there (a port nothing listens on).
    let (unopenable_case, unopenable) = if common::on_postgres() {
        let closed_port = common::free_port();
        (
            "unreachable database server",
            format!("postgres://coatcheck@127.0.0.1:{closed_port}/shop"),
        )
    } else {
        (
            "unwritable database path",
            format!("sqlite://{}/shop.db", file.display()),
        )
    };
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_addr = taken.local_addr().unwrap().to_string();
    let good_db = common::fresh_database_url(&dir).await;
    let cases = [
        (
            unopenable_case,
            vec![
                ("DATABASE_URL", unopenable.as_str()),
                ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
            ],
            "database",
        ),
        (
            "bad DATABASE_URL",
            vec![
                ("DATABASE_URL", "postgres//nowhere"),
                ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
            ],
            "DATABASE_URL",
        ),
        (
            "unsupported database",
            vec![
                ("DATABASE_URL", "mysql://localhost/shop"),
                ("LEPTOS_SITE_ADDR", "127.0.0.1:0"),
            ],
            "DATABASE_URL",
        ),
        (
            "taken port",
            vec![
                ("DATABASE_URL", good_db.as_str()),
                ("LEPTOS_SITE_ADDR", taken_addr.as_str()),
            ],
            "listen",
        ),
        (
            "bad listen address",
            vec![
                ("DATABASE_URL", good_db.as_str()),
                ("LEPTOS_SITE_ADDR", "localhost:http"),
            ],
            "LEPTOS_SITE_ADDR",
        ),
    ];
    for (name, envs, mentions) in cases {
        let output = run_binary(dir.path(), &envs);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            !output.status.success(),
            "{name}: exit status {}",
            output.status
        );
        assert_eq!(lines.len(), 1, "{name}: one line on stderr, got {stderr:?}");
        assert!(
            lines[0].contains(mentions),
            "{name}: {:?} should mention {mentions}",
            lines[0]
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{name}: {stderr}"
        );
    }
    drop(taken);
}

/// Leptos raises a process-wide "suppress resource loads" flag while it generates a router's
/// route list; a page whose data first loads inside that window waits forever. A second
/// server starting in the same process (tests, or one binary with two databases) must not
/// hang pages of the first: the route list is generated once per process, before any server
/// of it can serve (`router::routes`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_keep_rendering_while_other_servers_start_in_the_same_process() {
    let app = spawn_app().await;
    let starts = std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            for _ in 0..25 {
                let dir = tempfile::tempdir().unwrap();
                let mut config = common::test_config(&dir);
                config.database_url = common::fresh_database_url(&dir).await;
                let started = coatcheck::http::Application::build(config).await;
                assert!(started.is_ok(), "another server starts");
            }
        })
    });
    let client = reqwest::Client::builder()
        // A hang, not a slow page: no page here takes more than a fraction of a second.
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut renders = 0;
    while !starts.is_finished() {
        // A new search each time: rendered, not served from the page cache.
        let pages = (0..4).map(|i| {
            let url = app.url(&format!("/?q=wool{renders}x{i}"));
            let client = client.clone();
            async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
        });
        for result in futures::future::join_all(pages).await {
            match result {
                Ok(status) => assert_eq!(status, 200),
                Err(error) => panic!("a page never finished rendering: {error}"),
            }
        }
        renders += 4;
    }
    starts.join().unwrap();
    assert!(renders >= 8, "pages were rendered meanwhile ({renders})");
    app.stop().await;
}

/// Slowloris: a client that sends its headers a byte at a time must not hold a connection
/// (and its memory) for ever; nor may an idle keep-alive connection.
#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = common::spawn_app_with(|config| {
        config.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let started = Instant::now();
    let mut trickle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = b"GET / HTTP/1.1\r\nHost: shop.test\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut closed = false;
    for byte in request {
        if trickle.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    if !closed {
        // The server gave up on us: it answers with nothing (or an error) and closes.
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(3), trickle.read_to_end(&mut rest)).await;
        closed = matches!(read, Ok(Ok(_)) | Ok(Err(_)));
        if let Ok(Ok(_)) = read {
            let text = String::from_utf8_lossy(&rest);
            assert!(
                !text.contains("200 OK"),
                "the trickled request was served: {text}"
            );
        }
    }
    assert!(closed, "a connection trickling its headers is still open");

    // A keep-alive connection with nothing more to say is closed after the same limit.
    let mut idle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        read.is_ok(),
        "an idle keep-alive connection is still open after 5 s"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_write_transaction_cancelled_while_it_waits_for_the_lock_leaves_no_pooled_connection_inside_it(
) {
    if common::on_postgres() {
        eprintln!("SQLite only: on PostgreSQL, BEGIN never waits for a lock");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = app::server::db::connect(&common::fresh_database_url(&dir).await)
        .await
        .unwrap();
    app::server::db::migrate(&db).await.unwrap();
    // One write transaction holds SQLite's write lock; another waits for it in BEGIN IMMEDIATE
    // and is cancelled there (as a request is when its client goes away).
    let holder = db.begin_write().await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_millis(300), db.begin_write()).await;
    assert!(
        waiting.is_err(),
        "the second transaction waited for the lock"
    );
    holder.rollback().await.unwrap();
    // Whatever the cancelled BEGIN goes on to do, it has done it by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Every connection the pool hands out is outside any transaction: each can begin (and
    // end) a write transaction of its own at once.
    let mut pooled = Vec::new();
    for _ in 0..8 {
        pooled.push(db.acquire().await.unwrap());
    }
    for conn in &mut pooled {
        let began = tokio::time::timeout(Duration::from_secs(3), async {
            app::on_conn!(&mut conn.conn(), c => {
                sqlx::query("BEGIN IMMEDIATE").execute(&mut *c).await?;
                sqlx::query("ROLLBACK").execute(&mut *c).await.map(|_| ())
            })
        })
        .await;
        assert!(
            matches!(began, Ok(Ok(()))),
            "a pooled connection was left inside the cancelled transaction: {began:?}"
        );
    }
}
