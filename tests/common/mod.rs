//! Test helpers: spawn the real server on a random port with a fresh database (zero2prod's
//! `spawn_app`), and small HTTP conveniences.
#![allow(dead_code)]

use coatcheck::server::{Application, Config};
use std::net::SocketAddr;
use tempfile::TempDir;

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub database_url: String,
    /// Keeps the database directory alive as long as the app.
    pub dir: TempDir,
    pub shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    /// A client with its own cookie jar, which does not follow redirects (so tests see them).
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client builds")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get_text(&self, client: &reqwest::Client, path: &str) -> (u16, String) {
        let response = client.get(self.url(path)).send().await.expect("request succeeds");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body is text"))
    }

    /// A second connection pool on the same database, for checking what is stored.
    pub async fn db(&self) -> sqlx::SqlitePool {
        app::server::db::connect(&self.database_url).await.expect("database opens")
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

pub fn test_config(dir: &TempDir) -> Config {
    let db_path = dir.path().join("coatcheck.db");
    Config::from_lookup(|key| match key {
        "LEPTOS_SITE_ADDR" => Some("127.0.0.1:0".to_string()),
        "DATABASE_URL" => Some(format!("sqlite://{}", db_path.display())),
        "LEPTOS_SITE_ROOT" => Some(dir.path().join("site").display().to_string()),
        _ => None,
    })
    .expect("test configuration is valid")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = test_config(&dir);
    adjust(&mut config);
    let database_url = config.database_url.clone();
    let app = Application::build(config).await.expect("app builds");
    let addr = app.local_addr().expect("bound");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .expect("server runs");
    });
    TestApp {
        addr,
        base: format!("http://{addr}"),
        database_url,
        dir,
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// The values of `attribute` on every element carrying `data-testid="test_id"`, in order.
pub fn testid_attr(html: &str, test_id: &str, attribute: &str) -> Vec<String> {
    let marker = format!("data-testid=\"{test_id}\"");
    let mut values = Vec::new();
    for (start, _) in html.match_indices(&marker) {
        // The element's opening tag spans from the last '<' before the marker to the next '>'.
        let tag_start = html[..start].rfind('<').unwrap_or(0);
        let tag_end = html[start..].find('>').map(|i| start + i).unwrap_or(html.len());
        let tag = &html[tag_start..tag_end];
        let needle = format!(" {attribute}=\"");
        if let Some(i) = tag.find(&needle) {
            let rest = &tag[i + needle.len()..];
            if let Some(end) = rest.find('"') {
                values.push(rest[..end].to_string());
            }
        }
    }
    values
}

/// The text content directly inside the first element with `data-testid="test_id"`.
pub fn testid_text(html: &str, test_id: &str) -> Option<String> {
    let marker = format!("data-testid=\"{test_id}\"");
    let start = html.find(&marker)?;
    let open_end = start + html[start..].find('>')? + 1;
    let close = open_end + html[open_end..].find("</")?;
    Some(html[open_end..close].replace("<!-- -->", "").trim().to_string())
}
