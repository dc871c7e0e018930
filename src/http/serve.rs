//! The accept loop: HTTP/1.1 connections served by hyper, every one of them bounded, and a
//! graceful shutdown. (axum's `serve` sets no timer on hyper and no limit at all.)
//!
//! What one client can hold, and for how long (README: "Connections"):
//! - **headers**: `header_read_timeout` to send a request's headers, which is also how long an
//!   idle keep-alive connection is kept (a client trickling its headers — slowloris — is cut
//!   off);
//! - **body**: `body_timeout` for the whole request body from the end of its headers; then 408
//!   and the connection closed (a request held open before its last byte cannot wait for
//!   long);
//! - **answer**: `send_timeout` for any write of the answer to make progress; a client that does
//!   not read what it asked for loses the connection;
//! - **connections**: `per_client` open at once per client network (IPv4 address, IPv6 /64; the
//!   TCP peer — a trusted proxy's own address is not limited), past which a new one gets 429
//!   and is closed; and `total` open at once, after which the loop stops accepting until one
//!   closes (new connections wait in the kernel's backlog), so the process never runs out of
//!   file descriptors ([`max_connections_for_this_process`]);
//! - an `accept` error (out of descriptors, say) pauses the loop with a growing back-off and
//!   is logged at most once every ten seconds, never in a spin.

use super::proxies::TrustedProxies;
use app::server::client::ClientNet;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::Sleep;
use tower::ServiceExt;

/// The bounds of every connection (see the module docs).
#[derive(Clone, Debug)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_timeout: Duration,
    pub send_timeout: Duration,
    pub per_client: usize,
    pub total: usize,
    /// Peers not limited per client (the load balancer in front, which carries everyone).
    pub exempt: TrustedProxies,
}

/// File descriptors kept out of the connection budget: the database pool, the listeners, the
/// log and whatever the runtime needs.
const RESERVED_DESCRIPTORS: u64 = 128;

/// The most connections this process can hold: its open-file limit (raised to the hard limit
/// first, as far as the system allows), less [`RESERVED_DESCRIPTORS`] — and never more than
/// `wanted`. At least 16.
pub fn max_connections_for_this_process(wanted: Option<usize>) -> usize {
    let soft = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024),
    };
    let derived = connections_for_descriptors(soft);
    match wanted {
        Some(wanted) if wanted <= derived => wanted,
        Some(wanted) => {
            tracing::warn!(
                wanted,
                allowed = derived,
                open_file_limit = soft,
                "COATCHECK_MAX_CONNECTIONS is above what the open-file limit allows; using the lower"
            );
            derived
        }
        None => derived,
    }
}

/// [`max_connections_for_this_process`] for an open-file limit of `descriptors`.
fn connections_for_descriptors(descriptors: u64) -> usize {
    let usable = descriptors
        .saturating_sub(RESERVED_DESCRIPTORS)
        .max(descriptors / 2);
    usize::try_from(usable).unwrap_or(usize::MAX).max(16)
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting, lets every
/// connection finish its request in flight, and returns when all are closed.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    // Every connection task holds a clone; when all are dropped, every connection is done.
    let (open_tx, open_rx) = watch::channel(());
    let mut stop = stop_rx.clone();
    let slots = Arc::new(Semaphore::new(limits.total.max(1)));
    let clients = ClientConnections::default();
    let mut accept_errors = AcceptErrors::default();
    let mut refusals = Refusals::default();
    loop {
        // A free slot first: at the total, new connections wait in the kernel's backlog.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = stopped(&mut stop) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut stop) => break,
        };
        let (stream, remote) = match accepted {
            Ok(connection) => connection,
            Err(error) => {
                drop(slot);
                accept_errors.pause(&error, &mut stop).await;
                continue;
            }
        };
        accept_errors.reset();
        let place = if limits.exempt.trusts(remote.ip()) {
            None
        } else {
            match clients.enter(ClientNet::of(remote.ip()), limits.per_client) {
                Some(place) => Some(place),
                None => {
                    refusals.refused(ClientNet::of(remote.ip()));
                    // The refusal holds its slot until its socket is closed: refused connections
                    // count towards the total too.
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(slot);
                    });
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let mut stop = stop_rx.clone();
        let open = open_rx.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let body_timeout = limits.body_timeout;
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let expired = Arc::new(AtomicBool::new(false));
                let mut request = request
                    .map(|body| Body::new(DeadlineBody::new(body, body_timeout, expired.clone())));
                request.extensions_mut().insert(ConnectInfo(remote));
                let answer = router.clone().oneshot(request);
                async move {
                    let response = answer.await;
                    if expired.load(Ordering::Acquire) {
                        tracing::info!(client = %ClientNet::of(remote.ip()), "request body not sent in time: 408");
                        return Ok::<_, std::convert::Infallible>(request_timeout());
                    }
                    response
                }
            });
            let mut builder = Builder::new(TokioExecutor::new());
            // HTTP/1.1 only: browsers speak HTTP/2 only over TLS, which a proxy in front ends,
            // and sniffing for a cleartext HTTP/2 preface would wait on a slow client with no
            // timeout at all.
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let builder = builder.http1_only();
            let io = TokioIo::new(SendDeadline::new(stream, limits.send_timeout));
            let connection = builder.serve_connection(io, service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
                _ = stopped(&mut stop) => {
                    // Finish the request in flight (if any), then close.
                    connection.as_mut().graceful_shutdown();
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
            }
            drop(place);
            drop(slot);
            drop(open);
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}

/// Resolves once the shutdown signal has come (at once if it already has).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped at once: it must not live across an await.
    let _ = stop.wait_for(|stopped| *stopped).await.map(drop);
}

/// 408, and the connection closed: the rest of the body may still be on its way.
fn request_timeout() -> Response {
    (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONNECTION, HeaderValue::from_static("close"))],
        "The request took too long to arrive.",
    )
        .into_response()
}

/// The answer to a connection over its client's limit.
const REFUSAL_BODY: &str = "Too many connections from you.\r\n";

/// Answers a connection over its client's limit with a 429 (if its socket takes it at once)
/// and closes it: its side of the connection shut first, then what the client sent read and
/// dropped for a moment (closing with unread data would reset the connection, and the client
/// could lose the answer), bounded in time.
async fn refuse(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\nretry-after: 5\r\nconnection: close\r\n\
         content-type: text/plain\r\ncontent-length: {}\r\n\r\n{REFUSAL_BODY}",
        REFUSAL_BODY.len()
    );
    let _ = stream.try_write(answer.as_bytes());
    let _ = stream.shutdown().await;
    let drain = async {
        let mut sink = [0u8; 1024];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(Duration::from_millis(500), drain).await;
}

/// Open connections per client network, shared by the accept loop and the connections.
#[derive(Clone, Default)]
struct ClientConnections(Arc<Mutex<HashMap<ClientNet, usize>>>);

/// A connection's place in its client's count, given back when dropped.
struct Place {
    clients: ClientConnections,
    client: ClientNet,
}

impl ClientConnections {
    fn enter(&self, client: ClientNet, limit: usize) -> Option<Place> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(client).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Place {
            clients: self.clone(),
            client,
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// How often a repeated condition of the accept loop is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// A condition that repeats (a refused connection, a failed accept), logged at most once every
/// [`LOG_EVERY`] with how many times it happened since the last line.
#[derive(Default)]
struct SparseLog {
    logged_at: Option<Instant>,
    since: u64,
}

impl SparseLog {
    /// Counts one more; `Some(count)` when it is time for a line.
    fn happened(&mut self) -> Option<u64> {
        self.since += 1;
        if self.logged_at.is_some_and(|at| at.elapsed() < LOG_EVERY) {
            return None;
        }
        self.logged_at = Some(Instant::now());
        Some(std::mem::take(&mut self.since))
    }
}

/// Refused connections, logged sparingly.
#[derive(Default)]
struct Refusals(SparseLog);

impl Refusals {
    fn refused(&mut self, client: ClientNet) {
        if let Some(refused) = self.0.happened() {
            tracing::warn!(%client, refused, "connections over the per-client limit refused");
        }
    }
}

/// Failed accepts: a pause that doubles (10 ms up to 1 s) while they keep failing, and a log
/// line every [`LOG_EVERY`] at most.
#[derive(Default)]
struct AcceptErrors {
    pause: Option<Duration>,
    log: SparseLog,
}

impl AcceptErrors {
    async fn pause(&mut self, error: &std::io::Error, stop: &mut watch::Receiver<bool>) {
        if let Some(failed) = self.log.happened() {
            tracing::warn!(%error, failed, "accept failed; pausing");
        }
        let pause = self.pause.map_or(Duration::from_millis(10), |p| {
            (p * 2).min(Duration::from_secs(1))
        });
        self.pause = Some(pause);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped(stop) => {}
        }
    }

    fn reset(&mut self) {
        self.pause = None;
    }
}

/// A request body that must arrive whole within a deadline: past it, reading fails and
/// `expired` is raised (the connection then answers 408 and closes).
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration, expired: Arc<AtomicBool>) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            expired,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyDeadline;

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|r| r.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Release);
            return Poll::Ready(Some(Err(BodyDeadline.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

/// A connection whose writes must make progress within `timeout`: a client that stops reading
/// its answers (its receive window full) gets its connection closed.
struct SendDeadline<T> {
    inner: T,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> SendDeadline<T> {
    fn new(inner: T, timeout: Duration) -> SendDeadline<T> {
        SendDeadline {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// After a write that could not proceed: pending until the deadline, then an error.
    fn stall<R>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<R>> {
        let timeout = self.timeout;
        let deadline = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client does not read its answer",
            )));
        }
        Poll::Pending
    }

    fn progress<R>(
        &mut self,
        result: Poll<std::io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<R>> {
        match result {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.stall(cx),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.progress(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.progress(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.progress(result, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_budget_leaves_room_for_everything_else() {
        assert_eq!(connections_for_descriptors(1024), 896);
        assert_eq!(connections_for_descriptors(65_536), 65_408);
        assert_eq!(connections_for_descriptors(200), 100);
        assert_eq!(connections_for_descriptors(10), 16);
    }

    #[test]
    fn one_client_network_has_its_share_and_gets_it_back() {
        let clients = ClientConnections::default();
        let a = ClientNet::of("2001:db8:0:1::1".parse().unwrap());
        let a_too = ClientNet::of("2001:db8:0:1::2".parse().unwrap());
        let b = ClientNet::of("192.0.2.1".parse().unwrap());
        let first = clients.enter(a, 2).unwrap();
        let _second = clients.enter(a_too, 2).unwrap();
        assert!(clients.enter(a, 2).is_none(), "the /64 is full");
        assert!(clients.enter(b, 2).is_some(), "another client is not");
        drop(first);
        assert!(
            clients.enter(a_too, 2).is_some(),
            "a closed connection frees its place"
        );
    }
}
