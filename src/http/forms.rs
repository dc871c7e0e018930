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
    fn detects_plain_forms() {
        assert!(is_form_post(&headers(&[(
            "accept",
            "text/html,application/xhtml+xml"
        )])));
        assert!(!is_form_post(&headers(&[("accept", "application/json")])));
        assert!(!is_form_post(&headers(&[])));
    }
}
