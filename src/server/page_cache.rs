//! The anonymous page cache. A visitor without a session cookie sees pages that depend only on
//! the URL and the catalog (no cart, no login, no message), so the rendered HTML is kept per
//! URL and served again until the catalog changes. Each copy gets a fresh CSP nonce: the page
//! is stored with the nonce it was rendered with, and every occurrence of that token (in the
//! policy header and the page's script tags) is replaced with a new random one on each hit.
//!
//! Validity: entries carry the catalog version they were rendered at. The version is read at
//! most once per [`VERSION_CHECK_INTERVAL`] (changes by another process show within that
//! time); changes made by this process (checkout) mark it stale at once.

use super::guard::{fresh_nonce, page_csp, PageNonce};
use app::server::catalog::CatalogCache;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sqlx::SqlitePool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How many distinct URLs are kept (search terms make URLs unbounded).
const MAX_ENTRIES: usize = 512;
/// Longer URLs are rendered every time rather than cached.
const MAX_KEY_LEN: usize = 256;
/// The largest page kept.
const MAX_PAGE_BYTES: usize = 512 * 1024;

#[derive(Clone)]
pub struct PageCache {
    inner: Arc<Mutex<Pages>>,
    catalog: CatalogCache,
    db: SqlitePool,
}

#[derive(Default)]
struct Pages {
    version: Option<i64>,
    entries: HashMap<String, Page>,
}

struct Page {
    status: StatusCode,
    content_type: HeaderValue,
    /// The nonce the page was rendered with.
    token: String,
    body: String,
}

impl PageCache {
    pub fn new(db: SqlitePool, catalog: CatalogCache) -> PageCache {
        PageCache {
            inner: Default::default(),
            catalog,
            db,
        }
    }

    fn lookup(&self, key: &str, version: i64) -> Option<Response> {
        let mut pages = self.inner.lock().ok()?;
        if pages.version != Some(version) {
            pages.entries.clear();
            pages.version = Some(version);
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
            if pages.version == Some(version) && pages.entries.len() < MAX_ENTRIES {
                pages.entries.insert(key, page);
            }
        }
    }
}

/// Whether the request may be answered from (and stored in) the cache: a page GET from a
/// visitor with no cookie at all.
fn cacheable(request: &Request) -> Option<String> {
    if request.method() != Method::GET {
        return None;
    }
    let headers = request.headers();
    if headers.contains_key(header::COOKIE) || headers.contains_key(header::AUTHORIZATION) {
        return None;
    }
    let uri = request.uri();
    let path = uri.path();
    if path.starts_with("/api/") || path == "/healthz" || super::guard::is_static(path) {
        return None;
    }
    let key = uri.path_and_query().map_or(path, |pq| pq.as_str());
    (key.len() <= MAX_KEY_LEN).then(|| key.to_string())
}

pub async fn serve(State(cache): State<PageCache>, request: Request, next: Next) -> Response {
    let Some(key) = cacheable(&request) else {
        return next.run(request).await;
    };
    // The nonce this render will use (chosen by `guard::page_nonce`, outside this layer).
    let Some(PageNonce(token)) = request.extensions().get::<PageNonce>().cloned() else {
        return next.run(request).await;
    };
    let version = match cache.catalog.recent_version(&cache.db).await {
        Ok(version) => version,
        Err(_) => return next.run(request).await,
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
    let (parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_PAGE_BYTES).await {
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
    fn only_cookieless_page_gets_are_cached() {
        let get = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
        assert_eq!(cacheable(&get("/?q=wool")), Some("/?q=wool".into()));
        assert_eq!(cacheable(&get("/api/cart")), None);
        assert_eq!(cacheable(&get("/pkg/coatcheck.js")), None);
        let mut with_cookie = get("/");
        with_cookie
            .headers_mut()
            .insert(header::COOKIE, HeaderValue::from_static("id=x"));
        assert_eq!(cacheable(&with_cookie), None);
        let post = Request::post("/").body(Body::empty()).unwrap();
        assert_eq!(cacheable(&post), None);
    }
}
