//! The page cache. A catalog page (`/`, `/products/…`) is a function of its URL, the catalog
//! and, for a visitor with a session, of just two session values: the login and the cart.
//! Rendering it with Leptos costs far more than anything else in a page view, so the rendered
//! HTML is kept and served again while those inputs are unchanged:
//!
//! - **anonymous** ([`serve_anonymous`], outside the session layer): no cookie at all; any
//!   page URL; key = the URL;
//! - **per viewer** ([`serve_personal`], inside it, after the login timeouts ran): catalog and
//!   product pages; key = the URL plus the stored login and cart, byte for byte (no hash, so two
//!   viewers can never share a page unless it is the same page). A session with a pending flash
//!   message is rendered every time (the render shows it once and removes it). The key is taken
//!   again after the render and the page kept only if it did not change meanwhile.
//!
//! Each copy gets a fresh CSP nonce: the page is stored with the nonce it was rendered with, and
//! every occurrence of that token (in the policy header and the page's script tags) is replaced
//! with a new random one on each hit.
//!
//! Validity: entries carry the catalog version they were rendered at. The version is read at
//! most once per [`VERSION_CHECK_INTERVAL`](app::server::catalog::VERSION_CHECK_INTERVAL)
//! (changes by another process show within that time); changes made by this process
//! (checkout) mark it stale at once. A change of login or cart is a different key, seen on the
//! very next request, because the session is read from the store on every request. Memory is
//! bounded by entry count and bytes; the oldest entries go first.

use super::guard::{fresh_nonce, page_csp, PageNonce};
use app::server::catalog::CatalogCache;
use app::server::db::Db;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tower_sessions::Session;

/// How many pages are kept (search terms and carts make keys unbounded).
const MAX_ENTRIES: usize = 1024;
/// How many bytes of pages are kept, all entries together.
const MAX_TOTAL_BYTES: usize = 24 * 1024 * 1024;
/// Longer URLs are rendered every time rather than cached.
const MAX_URL_LEN: usize = 256;
/// Longer keys (a very large cart) are rendered every time.
const MAX_KEY_LEN: usize = 4096;
/// The largest page kept.
const MAX_PAGE_BYTES: usize = 512 * 1024;
/// The most of a rendered page read into memory to keep it (far more than any page here).
const MAX_READ_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone)]
pub struct PageCache {
    inner: Arc<Mutex<Pages>>,
    catalog: CatalogCache,
    db: Db,
}

#[derive(Default)]
struct Pages {
    version: Option<i64>,
    entries: HashMap<String, Page>,
    /// Keys in the order they were stored, for eviction.
    order: VecDeque<String>,
    bytes: usize,
}

struct Page {
    status: StatusCode,
    content_type: HeaderValue,
    /// The nonce the page was rendered with.
    token: String,
    body: String,
}

impl Pages {
    fn clear(&mut self, version: i64) {
        self.entries.clear();
        self.order.clear();
        self.bytes = 0;
        self.version = Some(version);
    }

    fn insert(&mut self, key: String, page: Page) {
        let size = key.len() + page.body.len();
        if size > MAX_TOTAL_BYTES {
            return;
        }
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= key.len() + old.body.len();
            self.order.retain(|k| k != &key);
        }
        while self.entries.len() >= MAX_ENTRIES || self.bytes + size > MAX_TOTAL_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(old) = self.entries.remove(&oldest) {
                self.bytes -= oldest.len() + old.body.len();
            }
        }
        self.bytes += size;
        self.order.push_back(key.clone());
        self.entries.insert(key, page);
    }
}

impl PageCache {
    pub fn new(db: Db, catalog: CatalogCache) -> PageCache {
        PageCache {
            inner: Default::default(),
            catalog,
            db,
        }
    }

    fn lookup(&self, key: &str, version: i64) -> Option<Response> {
        let mut pages = self.inner.lock().ok()?;
        if pages.version != Some(version) {
            pages.clear(version);
            return None;
        }
        let page = pages.entries.get(key)?;
        let nonce = fresh_nonce();
        let body = page.body.replace(&page.token, &nonce);
        let csp = page_csp(&nonce);
        let mut response = (page.status, Body::from(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, page.content_type.clone());
        if let Ok(csp) = HeaderValue::from_str(&csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        Some(response)
    }

    fn store(&self, key: String, version: i64, page: Page) {
        if let Ok(mut pages) = self.inner.lock() {
            if pages.version == Some(version) {
                pages.insert(key, page);
            }
        }
    }
}

/// The URL part of a key: a page GET (not a server function, static file or health check)
/// with a URL short enough to keep.
fn page_url(request: &Request) -> Option<String> {
    if request.method() != Method::GET || request.headers().contains_key(header::AUTHORIZATION) {
        return None;
    }
    let uri = request.uri();
    let path = uri.path();
    if path.starts_with("/api/") || path == "/healthz" || super::guard::is_static(path) {
        return None;
    }
    let url = uri.path_and_query().map_or(path, |pq| pq.as_str());
    (url.len() <= MAX_URL_LEN).then(|| url.to_string())
}

/// The anonymous key: a page GET from a visitor with no cookie at all.
fn anonymous_key(request: &Request) -> Option<String> {
    if request.headers().contains_key(header::COOKIE) {
        return None;
    }
    page_url(request)
}

/// The pages whose render reads nothing of the session but the login and the cart.
fn viewer_page(path: &str) -> bool {
    path == "/" || path.starts_with("/products/")
}

/// The per-viewer key: URL, then the stored login and cart exactly as stored. `None` when the
/// page is not one of [`viewer_page`], the session cannot be read, or a flash message waits.
async fn viewer_key(url: &str, session: &Session) -> Option<String> {
    let view = app::server::session::page_view_key(session).await.ok()??;
    let key = format!("{url}{view}");
    (key.len() <= MAX_KEY_LEN).then_some(key)
}

pub async fn serve_anonymous(
    State(cache): State<PageCache>,
    request: Request,
    next: Next,
) -> Response {
    let Some(key) = anonymous_key(&request) else {
        return next.run(request).await;
    };
    through(cache, key, request, next, None).await
}

pub async fn serve_personal(
    State(cache): State<PageCache>,
    request: Request,
    next: Next,
) -> Response {
    let url = page_url(&request).filter(|_| viewer_page(request.uri().path()));
    let session = request.extensions().get::<Session>().cloned();
    let (Some(url), Some(session)) = (url, session) else {
        return next.run(request).await;
    };
    let Some(key) = viewer_key(&url, &session).await else {
        return next.run(request).await;
    };
    through(cache, key, request, next, Some((url, session))).await
}

/// Answers from the cache, or renders and keeps the page. `viewer`: the URL and session the
/// key was taken from, to take it again after the render.
async fn through(
    cache: PageCache,
    key: String,
    request: Request,
    next: Next,
    viewer: Option<(String, Session)>,
) -> Response {
    // The nonce this render will use (chosen by `guard::page_nonce`, outside this layer).
    let Some(PageNonce(token)) = request.extensions().get::<PageNonce>().cloned() else {
        return next.run(request).await;
    };
    let version = match cache.catalog.recent_version(&cache.db).await {
        Ok(version) => version,
        // The database did not answer within its acquire timeout: the render would ask it
        // several more times, each waiting as long. Busy now, within the documented time.
        Err(error) => {
            tracing::warn!(%error, "page cache: the database did not answer");
            return super::guard::busy();
        }
    };
    if let Some(response) = cache.lookup(&key, version) {
        return response;
    }
    let response = next.run(request).await;
    if !matches!(response.status(), StatusCode::OK | StatusCode::NOT_FOUND)
        || response.headers().contains_key(header::SET_COOKIE)
    {
        return response;
    }
    if let Some((url, session)) = viewer {
        if viewer_key(&url, &session).await.as_deref() != Some(key.as_str()) {
            return response;
        }
    }
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_READ_BYTES).await {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(%error, "page body could not be read");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    if let Some(page) = page_of(&parts.headers, parts.status, &bytes, token) {
        cache.store(key, version, page);
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn page_of(headers: &HeaderMap, status: StatusCode, bytes: &Bytes, token: String) -> Option<Page> {
    if bytes.len() > MAX_PAGE_BYTES {
        return None;
    }
    let content_type = headers.get(header::CONTENT_TYPE)?.clone();
    if !content_type.to_str().ok()?.starts_with("text/html") {
        return None;
    }
    let body = std::str::from_utf8(bytes).ok()?.to_string();
    // Only a page rendered with this request's nonce can have it replaced.
    if !body.contains(&format!("nonce=\"{token}\"")) {
        return None;
    }
    Some(Page {
        status,
        content_type,
        token,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_differ() {
        let (a, b) = (fresh_nonce(), fresh_nonce());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn only_page_gets_have_keys() {
        let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
        assert_eq!(anonymous_key(&get("/?q=wool")), Some("/?q=wool".into()));
        assert_eq!(anonymous_key(&get("/api/cart")), None);
        assert_eq!(anonymous_key(&get("/pkg/coatcheck.js")), None);
        assert_eq!(
            anonymous_key(&get(&format!("/?q={}", "a".repeat(300)))),
            None
        );
        let mut with_cookie = get("/");
        with_cookie
            .headers_mut()
            .insert(header::COOKIE, HeaderValue::from_static("id=x"));
        assert_eq!(anonymous_key(&with_cookie), None);
        assert_eq!(page_url(&with_cookie), Some("/".into()));
        let post = Request::post("/").body(Body::empty()).unwrap();
        assert_eq!(page_url(&post), None);
        assert!(viewer_page("/") && viewer_page("/products/merino-scarf"));
        assert!(!viewer_page("/cart") && !viewer_page("/account/sessions"));
    }

    fn page(body: &str) -> Page {
        Page {
            status: StatusCode::OK,
            content_type: HeaderValue::from_static("text/html"),
            token: "t".into(),
            body: body.into(),
        }
    }

    #[test]
    fn the_oldest_pages_go_first_and_bytes_stay_bounded() {
        let mut pages = Pages::default();
        pages.clear(1);
        for i in 0..MAX_ENTRIES + 10 {
            pages.insert(format!("/{i}"), page("x"));
        }
        assert_eq!(pages.entries.len(), MAX_ENTRIES);
        assert!(!pages.entries.contains_key("/0"));
        assert!(pages.entries.contains_key(&format!("/{}", MAX_ENTRIES + 9)));

        let big = "x".repeat(MAX_TOTAL_BYTES / 3);
        for i in 0..4 {
            pages.insert(format!("/big{i}"), page(&big));
        }
        assert!(pages.bytes <= MAX_TOTAL_BYTES);
        assert!(pages.entries.contains_key("/big3") && !pages.entries.contains_key("/big0"));
        let counted: usize = pages
            .entries
            .iter()
            .map(|(k, p)| k.len() + p.body.len())
            .sum();
        assert_eq!(counted, pages.bytes);

        pages.insert("/big3".into(), page("small"));
        let counted: usize = pages
            .entries
            .iter()
            .map(|(k, p)| k.len() + p.body.len())
            .sum();
        assert_eq!(
            counted, pages.bytes,
            "replacing an entry keeps the count right"
        );
        pages.clear(2);
        assert_eq!((pages.entries.len(), pages.bytes), (0, 0));
    }
}
