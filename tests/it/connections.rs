//! Every connection is bounded (README: "Connections"): a body that never arrives is cut off,
//! an answer nobody reads does not hold its connection, one client network cannot hold more
//! than its share of connections while others are served, and past the total the server
//! stops accepting instead of running out of file descriptors.
#![cfg(feature = "ssr")]

use crate::common;
use common::{client_ip, spawn_app_with, Shopper};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A raw connection to the app from client address number `n` (see `client_ip`).
async fn connect_from(addr: std::net::SocketAddr, n: usize) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::new(client_ip(n), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// Everything the server sends until it closes the connection (or `limit` passes).
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return (String::from_utf8_lossy(&raw).to_string(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&raw).to_string(), true),
            Ok(Ok(n)) => raw.extend_from_slice(&buffer[..n]),
        }
    }
}

#[tokio::test]
async fn a_body_that_never_arrives_is_cut_off_with_408() {
    let app = spawn_app_with(|config| {
        config.body_timeout = Duration::from_secs(1);
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    // 100 bytes declared, 10 sent, the rest never.
    let head = format!(
        "POST /api/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 100\r\n\r\nemail=ann%",
        app.addr
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let waited = started.elapsed();
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "408 for a body that never came: {answer:?}"
    );
    assert!(closed, "and the connection is closed");
    assert!(
        waited >= Duration::from_millis(900),
        "not before the deadline: {waited:?}"
    );
    eprintln!("cut off after {waited:?} (deadline 1 s)");
    // The server is fine, and a body that arrives in time is served.
    let mut shopper = Shopper::new(&app);
    assert_eq!(shopper.get("/").await.status, 200);
    app.stop().await;
}

#[tokio::test]
async fn an_answer_the_client_never_reads_does_not_hold_its_connection() {
    let app = spawn_app_with(|config| {
        config.send_timeout = Duration::from_secs(1);
    })
    .await;
    // A small receive buffer, and many pipelined requests for a page, never read: the
    // answers fill the socket's buffers, and the server's writes stop making progress.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(app.addr).await.unwrap();
    const REQUESTS: usize = 400;
    let request = format!(
        "GET /?q=wool HTTP/1.1\r\nHost: {}\r\nAccept-Encoding: identity\r\n\r\n",
        app.addr
    );
    let pipelined = request.repeat(REQUESTS);
    let (mut reader, mut writer) = stream.split();
    let write = async {
        // The server stops reading requests while its answers cannot be sent: a write that
        // cannot finish is fine; the connection is cut either way.
        let _ = writer.write_all(pipelined.as_bytes()).await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(4), write).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Now read everything there is: the server gave up on this connection.
    let mut raw = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buffer)).await {
            Err(_) => break false,
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => raw.extend_from_slice(&buffer[..n]),
        }
    };
    let answered = String::from_utf8_lossy(&raw)
        .matches("HTTP/1.1 200")
        .count();
    eprintln!("{answered} of {REQUESTS} answers delivered before the connection was closed");
    assert!(closed, "the connection was closed");
    assert!(
        answered < REQUESTS,
        "the server stopped writing to a client that does not read"
    );
    app.stop().await;
}

#[tokio::test]
async fn one_client_cannot_hold_more_than_its_share_of_connections() {
    let app = spawn_app_with(|config| {
        config.max_connections_per_client = 8;
    })
    .await;
    // Eight idle connections from client 1: its share.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(connect_from(app.addr, 1).await);
    }
    // A short moment for the server to count them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The ninth is answered 429 and closed.
    let mut ninth = connect_from(app.addr, 1).await;
    let (answer, closed) = read_until_closed(&mut ninth, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 429"),
        "a connection past the client's share is refused: {answer:?}"
    );
    assert!(answer.to_lowercase().contains("retry-after"), "{answer}");
    assert!(closed);
    // Another client is served meanwhile.
    let mut other = Shopper::from_address(&app, 2);
    assert_eq!(other.get("/").await.status, 200);
    // Once client 1 closes one, it may open one again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = Shopper::from_address(&app, 1);
    assert_eq!(again.get("/healthz").await.status, 200);
    drop(held);
    app.stop().await;
}

#[tokio::test]
async fn past_the_total_the_server_stops_accepting_until_a_connection_closes() {
    let app = spawn_app_with(|config| {
        config.max_connections = Some(16);
    })
    .await;
    // Sixteen connections from sixteen clients: the total.
    let mut held = Vec::new();
    for n in 0..16 {
        held.push(connect_from(app.addr, 10 + n).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The seventeenth waits in the kernel's backlog: not accepted, not answered, not an error.
    let mut waiting = connect_from(app.addr, 40).await;
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        app.addr
    );
    waiting.write_all(request.as_bytes()).await.unwrap();
    let (answer, closed) = read_until_closed(&mut waiting, Duration::from_millis(700)).await;
    assert_eq!(
        (answer.as_str(), closed),
        ("", false),
        "not served while full"
    );
    // One closes: the waiting one is served.
    drop(held.pop());
    let (answer, _) = read_until_closed(&mut waiting, Duration::from_secs(5)).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "served once there was room: {answer:?}"
    );
    drop(held);
    app.stop().await;
}

#[tokio::test]
async fn under_a_low_open_file_limit_the_server_never_runs_out_of_descriptors() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let url = common::fresh_database_url(&dir).await;
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let errors = log.try_clone().unwrap();
    // 200 descriptors, soft and hard (the server cannot raise it): at most 100 connections.
    let server = common::ServerProcess::start_with(&url, |command| {
        command.env("RUST_LOG", "warn").stdout(log).stderr(errors);
        // SAFETY: between fork and exec only setrlimit(2) runs, which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                rlimit::setrlimit(rlimit::Resource::NOFILE, 200, 200).map_err(std::io::Error::other)
            });
        }
    })
    .await;
    let addr: std::net::SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    // 200 connections from 200 clients: more than the process has descriptors left for.
    let mut held = Vec::new();
    let connecting = Instant::now();
    for n in 0..200 {
        held.push(connect_from(addr, 100 + n).await);
    }
    eprintln!("200 connected in {:?}", connecting.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Once they close, a new client is served at once: the listener never failed.
    drop(held);
    let mut shopper = Shopper::from_address_of(&server.base, 1);
    let started = Instant::now();
    assert_eq!(shopper.get("/").await.status, 200);
    eprintln!(
        "served {:?} after 200 connections closed",
        started.elapsed()
    );
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !text.contains("Too many open files") && !text.contains("accept failed"),
        "the listener ran out of descriptors:\n{}",
        text.lines().take(20).collect::<Vec<_>>().join("\n")
    );
}
