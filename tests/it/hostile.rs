//! Hostile input, table-driven: every malformed request gets a 4xx (never a 5xx, never a hang)
//! and the database is byte-for-byte what it was before.

use crate::common;

use common::{product_id, spawn_app, Shopper, PASSWORD};
use std::io::{Read, Write};

/// Everything a request could damage: stock and prices, users, orders, sessions and their data
/// (in the store the server keeps them in), and the logins' registry.
async fn snapshot(app: &common::TestApp) -> String {
    let db = &app.pool;
    let mut out = String::new();
    let products: Vec<(i64, i64, i64)> = app::on_db!(db, p => sqlx::query_as(
        "SELECT id, price_cents, stock FROM products ORDER BY id"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    out.push_str(&format!("{products:?}\n"));
    for table in [
        "users",
        "orders",
        "order_lines",
        "session_registry",
        "session_audit",
        "categories",
    ] {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let n: i64 = app::on_db!(db, p => sqlx::query_scalar(&sql).fetch_one(p).await).unwrap();
        out.push_str(&format!("{table}: {n}\n"));
    }
    let sessions = common::stored_records(&app.database_url).await;
    out.push_str(&format!("{sessions:?}\n"));
    out.push_str(&format!("{:?}\n", common::logins(&app.database_url).await));
    out
}

/// Sends raw bytes and returns the status code of the answer (0 if the connection was closed
/// without one).
fn raw_status(addr: std::net::SocketAddr, request: &[u8]) -> u16 {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Option<Vec<u8>>,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    /// Send the shopper's session cookie.
    cookie: bool,
    /// An exact status, when one is the only right answer.
    expect: Option<u16>,
}

fn case(name: &'static str, method: &'static str, path: &str) -> Case {
    Case {
        name,
        method,
        path: path.to_string(),
        body: None,
        content_type: "application/x-www-form-urlencoded",
        headers: Vec::new(),
        cookie: true,
        expect: None,
    }
}

fn post(name: &'static str, path: &str, body: &str) -> Case {
    Case {
        body: Some(body.as_bytes().to_vec()),
        ..case(name, "POST", path)
    }
}

impl Case {
    fn expect(mut self, status: u16) -> Case {
        self.expect = Some(status);
        self
    }
    fn anonymous(mut self) -> Case {
        self.cookie = false;
        self
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Case {
        self.headers.push((name, value.into()));
        self
    }
    fn raw_body(mut self, body: Vec<u8>) -> Case {
        self.body = Some(body);
        self
    }
    fn content_type(mut self, value: &'static str) -> Case {
        self.content_type = value;
        self
    }
}

#[tokio::test]
async fn hostile_requests_get_a_4xx_and_change_nothing() {
    let app = spawn_app().await;
    let mut shopper = Shopper::new(&app);
    let scarf = product_id(&app, "merino-scarf").await;
    let wrap = product_id(&app, "cashmere-wrap").await;
    app::on_db!(&app.pool, p => sqlx::query("UPDATE products SET stock = 0 WHERE id = $1")
        .bind(wrap)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .unwrap();
    // A second shopper with an account, whose order history and password must survive.
    let mut member = Shopper::new(&app);
    assert_eq!(
        member.register("member@example.com", PASSWORD).await.status,
        200
    );
    assert_eq!(shopper.add(scarf, "2").await.status, 200);
    shopper.get("/api/cart").await; // records the session's first activity
    let cookie = shopper.cookie.clone().expect("a session");
    let before = snapshot(&app).await;

    let s = scarf.to_string();
    let w = wrap.to_string();
    let add = "/api/cart/add";
    let update = "/api/cart/update";
    let big = "9".repeat(40);
    let cases = vec![
        // Quantities: zero, negative, too many, not numbers.
        post("quantity 0", add, &format!("product_id={s}&quantity=0")),
        post("quantity -1", add, &format!("product_id={s}&quantity=-1")),
        post("quantity 100", add, &format!("product_id={s}&quantity=100")),
        post(
            "quantity over i64",
            add,
            &format!("product_id={s}&quantity={big}"),
        ),
        post(
            "quantity i64 min",
            add,
            &format!("product_id={s}&quantity=-9223372036854775808"),
        ),
        post(
            "quantity text",
            add,
            &format!("product_id={s}&quantity=abc"),
        ),
        post(
            "quantity fraction",
            add,
            &format!("product_id={s}&quantity=1.5"),
        ),
        post(
            "quantity exponent",
            add,
            &format!("product_id={s}&quantity=1e3"),
        ),
        post(
            "quantity hex",
            add,
            &format!("product_id={s}&quantity=0x10"),
        ),
        post("quantity empty", add, &format!("product_id={s}&quantity=")),
        post(
            "quantity blank",
            add,
            &format!("product_id={s}&quantity=%20"),
        ),
        post(
            "quantity arabic digit",
            add,
            &format!("product_id={s}&quantity=%D9%A1"),
        ),
        post("quantity NaN", add, &format!("product_id={s}&quantity=NaN")),
        post(
            "quantity over the stock",
            add,
            &format!("product_id={s}&quantity=79"),
        ),
        // Products: unknown, malformed, sold out.
        post("product 0", add, "product_id=0&quantity=1"),
        post("product negative", add, "product_id=-3&quantity=1"),
        post("product unknown", add, "product_id=999999&quantity=1"),
        post(
            "product over i64",
            add,
            &format!("product_id={big}&quantity=1"),
        ),
        post("product text", add, "product_id=scarf&quantity=1"),
        post("product empty", add, "product_id=&quantity=1"),
        post("product sql", add, "product_id=1%20OR%201%3D1&quantity=1"),
        post(
            "product sold out",
            add,
            &format!("product_id={w}&quantity=1"),
        ),
        // Missing, duplicated, malformed fields and bodies.
        post("no quantity", add, &format!("product_id={s}")),
        post("no product", add, "quantity=1"),
        post("empty body", add, ""),
        post(
            "invalid UTF-8 in a field",
            add,
            &format!("product_id={s}&quantity=%FF%FE"),
        ),
        post("JSON body", add, r#"{"product_id":1,"quantity":1}"#).content_type("application/json"),
        post("multipart body", add, "--x\r\n\r\n--x--")
            .content_type("multipart/form-data; boundary=x"),
        post("2 MB body", add, "")
            .raw_body(
                format!("product_id={s}&quantity={}", "1".repeat(2 * 1024 * 1024)).into_bytes(),
            )
            .expect(413),
        post("raw invalid UTF-8 body", add, "")
            .raw_body(b"product_id=\xff\xfe&quantity=\xc3\x28".to_vec()),
        // Updates.
        post(
            "update negative",
            update,
            &format!("product_id={s}&quantity=-1"),
        ),
        post(
            "update too many",
            update,
            &format!("product_id={s}&quantity=100"),
        ),
        post("update not in cart", update, "product_id=2&quantity=1"),
        post("remove not in cart", update, "product_id=2&quantity=0"),
        post(
            "update unknown product",
            update,
            "product_id=424242&quantity=1",
        ),
        post(
            "update text",
            update,
            &format!("product_id={s}&quantity=lots"),
        ),
        // Accounts.
        post("checkout anonymous", "/api/checkout", "").expect(401),
        post(
            "login without password",
            "/api/login",
            "email=member%40example.com",
        ),
        post(
            "login wrong password",
            "/api/login",
            "email=member%40example.com&password=wrong-password-here",
        ),
        post(
            "login 12 KB email",
            "/api/login",
            &format!("email={}&password=x", "a".repeat(12 * 1024)),
        ),
        post(
            "register bad email",
            "/api/register",
            &format!("email=not-an-email&password={}", "p".repeat(20)),
        ),
        post(
            "register short password",
            "/api/register",
            "email=new%40example.com&password=short",
        ),
        post(
            "register 2 KB password",
            "/api/register",
            &format!("email=new%40example.com&password={}", "p".repeat(2048)),
        ),
        post(
            "register taken email",
            "/api/register",
            &format!("email=member%40example.com&password={}", "p".repeat(20)),
        ),
        post(
            "password change anonymous",
            "/api/account/password",
            "current=a&new=b",
        ),
        // Sessions and admin actions without the right to them.
        post(
            "revoke unknown handle anonymous",
            "/api/account/sessions/revoke",
            "session=nope",
        ),
        post(
            "revoke others anonymous",
            "/api/account/sessions/revoke-others",
            "",
        ),
        post(
            "admin revoke anonymous",
            "/api/admin/sessions/revoke",
            "session=abc",
        ),
        post(
            "admin revoke user anonymous",
            "/api/admin/users/revoke-sessions",
            "user_id=1",
        ),
        post(
            "admin revoke user text id",
            "/api/admin/users/revoke-sessions",
            "user_id=abc",
        ),
        // Cross-site and wrong methods.
        post("cross-site add", add, &format!("product_id={s}&quantity=1"))
            .header("origin", "https://evil.example")
            .expect(403),
        case("GET on an action", "GET", add),
        case("PUT on an action", "PUT", add),
        case("DELETE on an action", "DELETE", "/api/cart/clear"),
        case("PATCH a page", "PATCH", "/"),
        post("POST a page", "/", "a=b"),
        post("unknown action", "/api/cart/explode", ""),
        // Paths: traversal and junk.
        case("traversal", "GET", "/pkg/../../Cargo.toml").expect(404),
        case("encoded traversal", "GET", "/pkg/%2e%2e/%2e%2e/Cargo.toml"),
        case(
            "encoded slash traversal",
            "GET",
            "/images/..%2f..%2fCargo.toml",
        ),
        case("backslash traversal", "GET", "/pkg/..%5c..%5cCargo.toml"),
        case("NUL in a path", "GET", "/products/%00"),
        case("markup as a slug", "GET", "/products/%3Cscript%3E").expect(404),
        case("unknown page", "GET", "/wp-admin.php").expect(404),
        case("unknown static file", "GET", "/pkg/nothing.wasm").expect(404),
        // Cookies: malformed and oversized, on requests that must be refused anyway.
        post("8 KB cookie on checkout", "/api/checkout", "")
            .anonymous()
            .header("cookie", format!("id={}", "A".repeat(8 * 1024)))
            .expect(401),
        post("malformed cookie on checkout", "/api/checkout", "")
            .anonymous()
            .header("cookie", "id=%%%;;==; id=")
            .expect(401),
        post(
            "foreign cookie on admin",
            "/api/admin/sessions/revoke",
            "session=x",
        )
        .anonymous()
        .header("cookie", "id=AAAAAAAAAAAAAAAAAAAAAA"),
    ];
    assert!(cases.len() >= 50, "{} cases", cases.len());

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut failures = Vec::new();
    for case in &cases {
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let mut request = client
            .request(method, app.url(&case.path))
            .header("accept", "application/json");
        if case.cookie {
            request = request.header("cookie", format!("id={cookie}"));
        }
        for (name, value) in &case.headers {
            request = request.header(*name, value);
        }
        if let Some(body) = &case.body {
            request = request
                .header("content-type", case.content_type)
                .body(body.clone());
        }
        let status = request.send().await.map(|r| r.status().as_u16());
        let ok = match (status.as_ref(), case.expect) {
            (Ok(s), Some(expected)) => *s == expected,
            (Ok(s), None) => (400..500).contains(s),
            (Err(_), _) => false,
        };
        if !ok {
            failures.push(format!(
                "{}: {:?}",
                case.name,
                status.map_err(|e| e.to_string())
            ));
        }
    }

    // Bytes no HTTP client library would send.
    let raw: Vec<(&str, Vec<u8>)> = vec![
        ("invalid UTF-8 in the path", b"GET /products/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("NUL in the cookie", b"POST /api/checkout HTTP/1.1\r\nHost: x\r\nCookie: id=\0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()),
        ("binary cookie", b"POST /api/checkout HTTP/1.1\r\nHost: x\r\nCookie: id=\xff\xfe\xfd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()),
        ("garbage request line", b"HELLO\r\n\r\n".to_vec()),
        ("body longer than announced", b"POST /api/cart/add HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 99999999\r\nConnection: close\r\n\r\nproduct_id=1".to_vec()),
    ];
    for (name, bytes) in &raw {
        let addr = app.addr;
        let bytes = bytes.clone();
        let status = tokio::task::spawn_blocking(move || raw_status(addr, &bytes))
            .await
            .unwrap();
        if !(400..500).contains(&status) {
            failures.push(format!("{name}: {status}"));
        }
    }

    assert!(failures.is_empty(), "not a 4xx:\n{}", failures.join("\n"));
    assert_eq!(snapshot(&app).await, before, "the database changed");
    // The shopper's cart and the member's login still work.
    assert_eq!(shopper.cart_count().await, 2);
    let mut again = Shopper::new(&app);
    assert_eq!(
        again.login("member@example.com", PASSWORD).await.status,
        200
    );
    app.stop().await;
}
