//! The session API (`/api/v1`, JSON, for automation), in the shape of Ory Kratos's admin API:
//! list the live sessions (keyset-paged), end one, end all of a user's. Authenticated by an API
//! key in `Authorization: Bearer` only (`coatcheck api-key create`): a session cookie never
//! opens it, and it runs outside the session layer (no session is read or made). Failed key
//! attempts are throttled per client network. The OpenAPI document is generated from the
//! handlers and types below (`utoipa`).

use app::model::{SecurityEventKind, SessionInfo};
use app::server::api_keys::{self, ApiCaller};
use app::server::client::{client_addr, ClientNet};
use app::server::session::{clock, end_by_api, end_user_by_api, list_after, security_log};
use app::server::{throttle, AppContext};
use axum::extract::{FromRef, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

/// Sessions per page unless asked otherwise, and at most.
const DEFAULT_PAGE_SIZE: i64 = 100;
const MAX_PAGE_SIZE: i64 = 500;

/// The API's routes, for a router whose state gives the shop's context.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    AppContext: FromRef<S>,
{
    Router::new()
        .route("/api/v1/sessions", get(list_sessions))
        .route("/api/v1/sessions/{handle}", delete(revoke_session))
        .route(
            "/api/v1/users/{user_id}/sessions",
            delete(revoke_user_sessions),
        )
        .route("/api/v1/openapi.json", get(openapi))
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Coatcheck session API",
        description = "List and end the shop's live sessions. Authenticate with an API key \
                       (`coatcheck api-key create`) as `Authorization: Bearer <key>`."
    ),
    paths(list_sessions, revoke_session, revoke_user_sessions),
    components(schemas(ApiSession, SessionList, Revoked, ApiError)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot write the OpenAPI document");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// One live session.
#[derive(Serialize, ToSchema)]
struct ApiSession {
    /// The session's opaque handle (never its ID: it cannot be used as a cookie).
    handle: String,
    user_id: i64,
    email: String,
    /// "Firefox on Linux".
    device: String,
    ip: String,
    /// RFC 3339.
    created_at: String,
    /// RFC 3339.
    last_seen_at: String,
    /// "Keep me signed in" was ticked.
    remembered: bool,
}

/// A page of sessions, oldest first.
#[derive(Serialize, ToSchema)]
struct SessionList {
    sessions: Vec<ApiSession>,
    /// Give it as `page_token` for the next page; null on the last one.
    next_page_token: Option<String>,
}

/// How many sessions were ended.
#[derive(Serialize, ToSchema)]
struct Revoked {
    revoked: usize,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
struct ApiError {
    error: String,
}

#[derive(Deserialize, IntoParams)]
struct ListQuery {
    /// Only this user's sessions.
    user_id: Option<String>,
    /// 1 to 500, 100 unless given.
    page_size: Option<String>,
    /// `next_page_token` of the page before.
    page_token: Option<String>,
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(ApiError {
            error: message.to_string(),
        }),
    )
        .into_response()
}

fn unavailable(cause: impl std::fmt::Display) -> Response {
    tracing::error!(error = %cause, "session API: the database or the session store failed");
    let mut response = error(
        StatusCode::SERVICE_UNAVAILABLE,
        "The database or the session store is unavailable; try again.",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// The caller of a request: a live API key (else the request is answered with 401, or 429
/// while its network has been failing).
struct Caller(ApiCaller);

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    AppContext: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Caller, Response> {
        let context = &AppContext::from_ref(state);
        let presented = bearer(&parts.headers);
        let network = client_addr(&parts.extensions)
            .map(|ip| ClientNet::of(ip).to_string())
            .unwrap_or_else(|| "unknown".to_string());
        let now = clock::now();
        let reserved = throttle::reserve_api_key(&context.db, &network, now)
            .await
            .map_err(unavailable)?;
        let attempt = match reserved {
            throttle::Reserved::Go(attempt) => attempt,
            throttle::Reserved::Wait(wait) => {
                let mut response = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many failed API key attempts from your network; wait and try again.",
                );
                if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                return Err(response);
            }
        };
        let caller = match presented {
            Some(key) => api_keys::authenticate(&context.db, key, now)
                .await
                .map_err(unavailable)?,
            None => None,
        };
        match caller {
            Some(caller) => {
                attempt.succeeded().await.map_err(unavailable)?;
                Ok(Caller(caller))
            }
            None => {
                attempt.failed(now).await.map_err(unavailable)?;
                tracing::warn!("session API: a request without a live API key");
                let mut response = error(
                    StatusCode::UNAUTHORIZED,
                    "An API key is required: Authorization: Bearer <key>.",
                );
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                Err(response)
            }
        }
    }
}

/// The key of `Authorization: Bearer <key>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|key| !key.is_empty())
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

fn api_session(info: SessionInfo) -> ApiSession {
    ApiSession {
        created_at: rfc3339(info.created_at),
        last_seen_at: rfc3339(info.last_seen_at),
        handle: info.handle,
        user_id: info.user_id,
        email: info.email,
        device: info.device,
        ip: info.ip,
        remembered: info.remembered,
    }
}

/// A page token: the last row's creation time and handle, as `<created_at>.<handle>`.
fn page_token(info: &SessionInfo) -> String {
    format!("{}.{}", info.created_at, info.handle)
}

fn parse_token(token: &str) -> Option<(i64, String)> {
    let (created, handle) = token.split_once('.')?;
    let valid_handle = !handle.is_empty()
        && handle.len() <= 64
        && handle.chars().all(|c| c.is_ascii_alphanumeric());
    Some((created.parse().ok()?, handle.to_string())).filter(|_| valid_handle)
}

/// List the live sessions, oldest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of sessions; a `Link: <…>; rel=\"next\"` header while there is more", body = SessionList),
        (status = 400, description = "A parameter out of range or malformed", body = ApiError),
        (status = 401, description = "No key, an unknown or a revoked key", body = ApiError),
        (status = 429, description = "Too many failed key attempts from this network", body = ApiError),
    ),
    security(("api_key" = []))
)]
async fn list_sessions(
    State(context): State<AppContext>,
    Caller(_caller): Caller,
    Query(query): Query<ListQuery>,
) -> Response {
    let user_id = match query.user_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => match text.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => return error(StatusCode::BAD_REQUEST, "user_id must be a user's number"),
        },
    };
    let page_size = match query.page_size.as_deref().map(str::trim) {
        None | Some("") => DEFAULT_PAGE_SIZE,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => return error(StatusCode::BAD_REQUEST, "page_size must be 1 to 500"),
        },
    };
    let after = match query.page_token.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(token) => match parse_token(token) {
            Some(after) => Some(after),
            None => return error(StatusCode::BAD_REQUEST, "page_token is not one of ours"),
        },
    };
    // One more than asked for: whether there is a next page.
    let rows = list_after(
        &context.sessions,
        &context.policy,
        user_id,
        after.as_ref().map(|(c, h)| (*c, h.as_str())),
        page_size + 1,
    )
    .await;
    let mut rows = match rows {
        Ok(rows) => rows,
        Err(e) => return unavailable(e),
    };
    let more = rows.len() > usize::try_from(page_size).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(page_size).unwrap_or(usize::MAX));
    let next = more.then(|| rows.last().map(page_token)).flatten();
    let mut response = Json(SessionList {
        next_page_token: next.clone(),
        sessions: rows.into_iter().map(api_session).collect(),
    })
    .into_response();
    if let Some(token) = next {
        let mut query: String = form_urlencoded_pairs(&[
            ("page_size", Some(page_size.to_string())),
            ("page_token", Some(token)),
            ("user_id", user_id.map(|id| id.to_string())),
        ]);
        query.insert_str(0, "</api/v1/sessions?");
        query.push_str(">; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&query) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    response
}

fn form_urlencoded_pairs(pairs: &[(&str, Option<String>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join("&")
}

fn read_only(caller: &ApiCaller) -> Option<Response> {
    caller.read_only.then(|| {
        error(
            StatusCode::FORBIDDEN,
            "This API key is read-only: it may list sessions, not end them.",
        )
    })
}

/// End one live session.
#[utoipa::path(
    delete,
    path = "/api/v1/sessions/{handle}",
    params(("handle" = String, Path, description = "The session's handle")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "No key, an unknown or a revoked key", body = ApiError),
        (status = 403, description = "A read-only key", body = ApiError),
        (status = 404, description = "No such live session", body = ApiError),
    ),
    security(("api_key" = []))
)]
async fn revoke_session(
    State(context): State<AppContext>,
    Caller(caller): Caller,
    Path(handle): Path<String>,
) -> Response {
    if let Some(refused) = read_only(&caller) {
        return refused;
    }
    let handle = handle.trim();
    if handle.is_empty() || handle.len() > 64 {
        return error(StatusCode::NOT_FOUND, "No such live session.");
    }
    match end_by_api(&context.sessions, &context.policy, handle, &caller.name).await {
        Ok(Some(owner)) => {
            tracing::info!(%handle, key = %caller.name, "session revoked through the API");
            log_for_owner(&context, owner, 1, &caller.name).await;
            StatusCode::NO_CONTENT.into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "No such live session."),
        Err(e) => unavailable(e),
    }
}

/// End every live session of a user.
#[utoipa::path(
    delete,
    path = "/api/v1/users/{user_id}/sessions",
    params(("user_id" = i64, Path, description = "The user's number")),
    responses(
        (status = 200, description = "How many were ended", body = Revoked),
        (status = 401, description = "No key, an unknown or a revoked key", body = ApiError),
        (status = 403, description = "A read-only key", body = ApiError),
        (status = 404, description = "No such user", body = ApiError),
    ),
    security(("api_key" = []))
)]
async fn revoke_user_sessions(
    State(context): State<AppContext>,
    Caller(caller): Caller,
    Path(user_id): Path<String>,
) -> Response {
    if let Some(refused) = read_only(&caller) {
        return refused;
    }
    let Ok(user_id) = user_id.trim().parse::<i64>() else {
        return error(StatusCode::NOT_FOUND, "No such user.");
    };
    match app::server::users::email_of(&context.db, user_id).await {
        Ok(Some(_)) => {}
        Ok(None) => return error(StatusCode::NOT_FOUND, "No such user."),
        Err(e) => return unavailable(e),
    }
    match end_user_by_api(&context.sessions, &context.policy, user_id, &caller.name).await {
        Ok(count) => {
            tracing::info!(user_id, key = %caller.name, sessions = count, "sessions revoked through the API");
            if count > 0 {
                log_for_owner(&context, user_id, count, &caller.name).await;
            }
            Json(Revoked { revoked: count }).into_response()
        }
        Err(e) => unavailable(e),
    }
}

/// The owner's security log: sessions ended by the API, naming the key.
async fn log_for_owner(context: &AppContext, owner: i64, count: usize, key: &str) {
    let sessions = match count {
        1 => "1 session".to_string(),
        n => format!("{n} sessions"),
    };
    let detail = format!("{sessions} ended by the API (key {key})");
    let event = security_log::NewEvent {
        user_id: owner,
        kind: SecurityEventKind::Revoked,
        device: "",
        ip: "",
        detail: &detail,
    };
    security_log::record_after(&context.db, event, clock::now()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_refuse_anything_else() {
        assert_eq!(
            parse_token("1700000000.ab12"),
            Some((1_700_000_000, "ab12".to_string()))
        );
        for bad in ["", "x.ab", "17", "17.", "17.a b", "17.<script>"] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_bearer_keys_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer cck_x"),
        );
        assert_eq!(bearer(&headers), Some("cck_x"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&headers), None);
    }

    #[test]
    fn the_openapi_document_names_every_endpoint() {
        let json = ApiDoc::openapi().to_json().expect("json");
        for path in [
            "/api/v1/sessions",
            "/api/v1/sessions/{handle}",
            "/api/v1/users/{user_id}/sessions",
        ] {
            assert!(json.contains(path), "{path}");
        }
        assert!(json.contains("\"openapi\":\"3."));
    }
}
