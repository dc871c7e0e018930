//! How server-function answers are shaped for their two kinds of callers.

use app::model::is_same_site_path;
use app::server::request::FORM_LOCATION_HEADER;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;

/// A plain HTML form (no JavaScript) asks for HTML; the hydrated app's fetch asks for JSON.
pub fn is_form_post(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// The path and query of the Referer when it is a URL of this site, for sending a form back.
pub fn same_site_referer(headers: &HeaderMap) -> Option<String> {
    let referer = headers.get(header::REFERER)?.to_str().ok()?;
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let rest = referer
        .strip_prefix("http://")
        .or_else(|| referer.strip_prefix("https://"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if !authority.eq_ignore_ascii_case(host) {
        return None;
    }
    // `http://host//evil.test/x` has this host, and the path `//evil.test/x`, which a browser
    // would follow to evil.test.
    let path = strip_error_query(path);
    is_same_site_path(&path).then_some(path)
}

/// Leptos appends the error of a failed form call to the URL; our pages show it as a flash.
fn strip_error_query(path: &str) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            !pair.is_empty() && !pair.starts_with("__err") && !pair.starts_with("__path")
        })
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

/// Turns a server function's answer into a 303 for a plain form: to the place the action
/// chose, else back to the page the form was on. Failures stay failures when they are ours.
pub fn redirect_form(response: Response, back_to: Option<String>) -> Response {
    let status = response.status();
    if status.is_server_error() || status == StatusCode::PAYLOAD_TOO_LARGE {
        return strip_internal_headers(response);
    }
    let chosen = response
        .headers()
        .get(FORM_LOCATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_same_site_path(v))
        .map(str::to_string);
    let target = chosen.or(back_to).unwrap_or_else(|| "/".to_string());
    let (mut parts, _) = response.into_parts();
    parts.status = StatusCode::SEE_OTHER;
    parts.headers.remove(FORM_LOCATION_HEADER);
    parts.headers.remove(header::CONTENT_TYPE);
    parts.headers.remove(header::CONTENT_LENGTH);
    match HeaderValue::from_str(&target) {
        Ok(value) => {
            parts.headers.insert(header::LOCATION, value);
        }
        Err(_) => {
            parts
                .headers
                .insert(header::LOCATION, HeaderValue::from_static("/"));
        }
    }
    Response::from_parts(parts, Body::empty())
}

pub fn strip_internal_headers(mut response: Response) -> Response {
    response.headers_mut().remove(FORM_LOCATION_HEADER);
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
    fn referer_must_be_this_site() {
        let h = headers(&[
            ("host", "shop.test:3000"),
            ("referer", "http://shop.test:3000/cart?x=1&__err=abc"),
        ]);
        assert_eq!(same_site_referer(&h).as_deref(), Some("/cart?x=1"));
        let h = headers(&[
            ("host", "shop.test:3000"),
            ("referer", "http://evil.test/cart"),
        ]);
        assert_eq!(same_site_referer(&h), None);
        let h = headers(&[("host", "shop.test"), ("referer", "https://shop.test")]);
        assert_eq!(same_site_referer(&h).as_deref(), Some("/"));
        // This host, but a path a browser reads as another host.
        for referer in [
            "http://shop.test//evil.test/x",
            "http://shop.test/\\evil.test/x",
        ] {
            let h = headers(&[("host", "shop.test"), ("referer", referer)]);
            assert_eq!(same_site_referer(&h), None, "{referer}");
        }
    }

    #[test]
    fn detects_plain_forms() {
        assert!(is_form_post(&headers(&[(
            "accept",
            "text/html,application/xhtml+xml"
        )])));
        assert!(!is_form_post(&headers(&[("accept", "application/json")])));
        assert!(!is_form_post(&headers(&[])));
    }
}
