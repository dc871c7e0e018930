//! Middleware around every request: refusals of what cannot be served, the cross-site check
//! for state-changing requests, the page's CSP nonce and the security headers.

pub use app::server::request::busy;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The session event stream a page opens by itself (see `events`): not the user's activity.
pub(super) const EVENTS_PATH: &str = "/api/session/events";

/// Static files: no session work, and they may be cached.
pub(super) fn is_static(path: &str) -> bool {
    path.starts_with("/pkg/") || path.starts_with("/images/") || path == "/favicon.svg"
}

/// The authority (`host[:port]`) of an `Origin` or `Referer` value.
fn authority_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    Some(rest.split('/').next().unwrap_or(rest))
}

fn origin_of(url: &str) -> Option<String> {
    let scheme = if url.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    authority_of(url).map(|authority| format!("{scheme}://{authority}"))
}

/// Whether a state-changing request comes from this site. Browsers send `Origin` on every
/// POST; `Referer` is the fallback; a request with neither (not a browser) is allowed, as the
/// SameSite=Lax cookie already keeps it out of cross-site browser requests.
///
/// An `Origin` or `Referer` that is not plain visible ASCII (no browser sends one; a URL's
/// non-ASCII parts are percent-encoded) cannot be compared, so it is refused, never waved
/// through as "absent".
pub fn is_same_site(headers: &HeaderMap, public_origin: Option<&str>) -> bool {
    let Some(value) = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
    else {
        return true;
    };
    let Ok(source) = value.to_str() else {
        return false;
    };
    match public_origin {
        Some(expected) => origin_of(source).is_some_and(|o| o.eq_ignore_ascii_case(expected)),
        None => {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
            match (authority_of(source), host) {
                (Some(authority), Some(host)) => authority.eq_ignore_ascii_case(host),
                _ => false,
            }
        }
    }
}

/// The longest request target (path and query) served: every URL of the shop is far shorter,
/// and browsers and proxies commonly stop at 8 KB.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// Requests no route of the shop can serve, refused before anything else runs: `CONNECT` (this
/// is not a proxy) with 405, a request target over [`MAX_URI_BYTES`] with 414. Both are the
/// client's doing: a 4xx, never an error in the log.
pub async fn refuse_unservable(request: Request, next: Next) -> Response {
    if request.method() == Method::CONNECT {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [
                (header::ALLOW, "GET, HEAD, POST"),
                (header::CONNECTION, "close"),
            ],
            "This is not a proxy.",
        )
            .into_response();
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if target > MAX_URI_BYTES {
        return (StatusCode::URI_TOO_LONG, "That address is too long.").into_response();
    }
    next.run(request).await
}

/// What the guards need, cheap to clone (axum clones a middleware's state for every request).
#[derive(Clone)]
pub struct GuardState {
    pub public_origin: Option<std::sync::Arc<str>>,
}

pub async fn cross_site_check(
    State(state): State<GuardState>,
    request: Request,
    next: Next,
) -> Response {
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if !safe && !is_same_site(request.headers(), state.public_origin.as_deref()) {
        tracing::warn!(path = %request.uri().path(), "refused a cross-site request");
        return (
            StatusCode::FORBIDDEN,
            "Cross-site requests are not allowed.",
        )
            .into_response();
    }
    next.run(request).await
}

/// This request's CSP nonce, chosen before the page renders (see [`page_nonce`]).
#[derive(Clone, Debug)]
pub struct PageNonce(pub String);

/// 128 random bits, hex (a valid CSP nonce).
pub fn fresh_nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A page's Content-Security-Policy: only our own scripts and the inline scripts carrying this
/// response's nonce; wasm may be compiled; no framing.
pub fn page_csp(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// Chooses the page's nonce before rendering (Leptos takes it from the request, see the
/// router's page context) and sets the page policy with it on every HTML answer that has
/// none. The policy does not depend on the render reaching its response options.
pub async fn page_nonce(mut request: Request<Body>, next: Next) -> Response {
    let nonce = fresh_nonce();
    request.extensions_mut().insert(PageNonce(nonce.clone()));
    let mut response = next.run(request).await;
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html
        && !response
            .headers()
            .contains_key(header::CONTENT_SECURITY_POLICY)
    {
        if let Ok(value) = HeaderValue::from_str(&page_csp(&nonce)) {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, value);
        }
    }
    response
}

/// The strictest policy, for everything that is not a page (pages set their own, with the
/// nonce of their hydration script).
const DEFAULT_CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'";

/// `Strict-Transport-Security` for a site served over HTTPS (cookies `Secure`): browsers then
/// never try plain HTTP again, where a cookie-less first request could be intercepted.
pub fn hsts(secure: bool, max_age: std::time::Duration) -> Option<HeaderValue> {
    secure
        .then(|| HeaderValue::from_str(&format!("max-age={}", max_age.as_secs())).ok())
        .flatten()
}

/// What [`security_headers`] adds besides its fixed headers.
#[derive(Clone, Debug)]
pub struct HeaderState {
    pub hsts: Option<HeaderValue>,
    /// How long each static file may be cached.
    pub assets: super::assets::StaticAssets,
}

pub async fn security_headers(
    State(state): State<HeaderState>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let static_path = is_static(request.uri().path()).then(|| request.uri().path().to_string());
    let static_file = static_path.is_some();
    let mut response = next.run(request).await;
    if let Some(path) = static_path {
        state.assets.set_cache_control(&path, &mut response);
    }
    let hsts = state.hsts;
    let headers = response.headers_mut();
    if let Some(hsts) = hsts {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DEFAULT_CSP),
        );
    }
    if !static_file {
        // Pages show who is logged in and the cart: never store them in a shared cache.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn same_site_by_host() {
        assert!(is_same_site(
            &headers(&[("host", "a.test:3000"), ("origin", "http://a.test:3000")]),
            None
        ));
        assert!(!is_same_site(
            &headers(&[("host", "a.test:3000"), ("origin", "http://evil.test")]),
            None
        ));
        assert!(!is_same_site(
            &headers(&[("host", "a.test"), ("origin", "null")]),
            None
        ));
        assert!(is_same_site(
            &headers(&[("host", "a.test"), ("referer", "https://a.test/cart")]),
            None
        ));
        assert!(!is_same_site(
            &headers(&[("host", "a.test"), ("referer", "https://a.test.evil/x")]),
            None
        ));
        assert!(is_same_site(&headers(&[("host", "a.test")]), None));
    }

    #[test]
    fn a_non_ascii_origin_is_refused() {
        let mut map = headers(&[("host", "a.test")]);
        map.insert(
            header::ORIGIN,
            HeaderValue::from_bytes("http://a.test\u{e9}".as_bytes()).unwrap(),
        );
        assert!(!is_same_site(&map, None));
        let mut map = headers(&[("host", "a.test")]);
        map.insert(
            header::REFERER,
            HeaderValue::from_bytes("http://\u{e9}vil.test/".as_bytes()).unwrap(),
        );
        assert!(!is_same_site(&map, Some("http://a.test")));
    }

    #[test]
    fn same_site_by_public_origin() {
        let origin = Some("https://shop.example");
        assert!(is_same_site(
            &headers(&[("host", "10.0.0.1"), ("origin", "https://shop.example")]),
            origin
        ));
        assert!(!is_same_site(
            &headers(&[("host", "shop.example"), ("origin", "http://shop.example")]),
            origin
        ));
    }
}
