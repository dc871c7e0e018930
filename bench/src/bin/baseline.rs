//! The baselines Coatcheck is measured against, in the same run on the same machine:
//!
//! - `baseline bare ADDR HTML_FILE`: a bare axum handler answering `GET /` with the catalog
//!   HTML Coatcheck rendered (the same bytes), and nothing else.
//! - `baseline sessions ADDR HTML_FILE DB_FILE`: axum + tower-sessions with the SQLite store of
//!   tower-sessions-sqlx-store, no Leptos. `GET /` reads the cart from the session and answers
//!   the same HTML; `POST /api/cart/add` (form) reads, changes and saves the cart. It does the
//!   usual read-modify-write through the session layer, which loses concurrent updates of one
//!   session — the cost of not doing so is what Coatcheck pays on top.

use axum::body::Bytes;
use axum::extract::{Form, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;
use tower_sessions::{Expiry, Session, SessionManagerLayer};
use tower_sessions_sqlx_store::SqliteStore;

type Page = Bytes;
type Cart = Vec<(i64, i64)>;
const CART_KEY: &str = "cart";

#[derive(Deserialize)]
struct AddForm {
    product_id: i64,
    quantity: i64,
}

async fn bare(State(page): State<Page>) -> Html<Page> {
    Html(page)
}

async fn browse(State(page): State<Page>, session: Session) -> Response {
    match session.get::<Cart>(CART_KEY).await {
        Ok(cart) => {
            let count: i64 = cart.unwrap_or_default().iter().map(|(_, q)| q).sum();
            ([("x-cart-count", count.to_string())], Html(page)).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn add(session: Session, Form(form): Form<AddForm>) -> Response {
    if !(1..=99).contains(&form.quantity) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let mut cart: Cart = match session.get(CART_KEY).await {
        Ok(cart) => cart.unwrap_or_default(),
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    match cart.iter_mut().find(|(id, _)| *id == form.product_id) {
        Some((_, quantity)) => *quantity += form.quantity,
        None => cart.push((form.product_id, form.quantity)),
    }
    if session.insert(CART_KEY, cart).await.is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
}

async fn run(args: &[String]) -> Result<(), String> {
    let (mode, addr, html) = match args {
        [mode, addr, html, ..] => (mode.as_str(), addr, html),
        _ => return Err("usage: baseline bare|sessions ADDR HTML_FILE [DB_FILE]".into()),
    };
    let page: Page = std::fs::read(html)
        .map_err(|e| format!("cannot read {html}: {e}"))?
        .into();
    let router = match mode {
        "bare" => Router::new().route("/", get(bare)).with_state(page),
        "sessions" => {
            let db = args.get(3).ok_or("sessions needs DB_FILE")?;
            let options = SqliteConnectOptions::from_str(&format!("sqlite://{db}"))
                .map_err(|e| e.to_string())?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10));
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await
                .map_err(|e| e.to_string())?;
            let store = SqliteStore::new(pool);
            store.migrate().await.map_err(|e| e.to_string())?;
            let layer = SessionManagerLayer::new(store)
                .with_secure(false)
                .with_expiry(Expiry::OnInactivity(
                    tower_sessions::cookie::time::Duration::days(7),
                ));
            Router::new()
                .route("/", get(browse))
                .route("/api/cart/add", post(add))
                .layer(layer)
                .with_state(page)
        }
        other => return Err(format!("unknown baseline {other:?}")),
    };
    let listener = tokio::net::TcpListener::bind(addr.as_str())
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    axum::serve(listener, router)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("baseline: {message}");
            ExitCode::FAILURE
        }
    }
}
