//! Keys of the session API: `coatcheck api-key create | list | revoke`, stored as hashes only.
#![cfg(feature = "ssr")]

use crate::common;

#[tokio::test]
async fn keys_are_shown_once_listed_without_the_key_stored_as_hashes_and_revoked_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = common::fresh_database_url(&dir).await;
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_coatcheck"))
            .arg("api-key")
            .args(args)
            .env("DATABASE_URL", &url)
            .env("RUST_LOG", "error")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("the binary runs");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
        )
    };
    let (ok, out, err) = run(&["create", "--name", "recovery-desk"]);
    assert!(ok, "{err}");
    let key = out
        .trim_end()
        .lines()
        .last()
        .expect("a last line")
        .to_string();
    assert!(
        key.starts_with("cck_") && key.len() == 68,
        "the key alone: {key:?}"
    );
    let (ok, out, _) = run(&["create", "--name", "fraud-rule", "--read-only"]);
    assert!(ok);
    let read_only = out.trim_end().lines().last().unwrap().to_string();
    assert_ne!(key, read_only);
    let (ok, _, err) = run(&["create", "--name", "recovery-desk"]);
    assert!(!ok);
    assert!(
        err.contains("already exists") && err.trim().lines().count() == 1,
        "{err}"
    );
    let (ok, _, err) = run(&["create", "--name", "two words"]);
    assert!(!ok, "{err}");

    let (ok, list, _) = run(&["list"]);
    assert!(ok);
    assert!(
        list.contains("recovery-desk") && list.contains("fraud-rule"),
        "{list}"
    );
    assert!(list.contains(&key[..12]), "the prefix is shown: {list}");
    assert!(
        !list.contains(&key) && !list.contains(&read_only),
        "never a whole key: {list}"
    );
    assert!(list.contains("read-only"), "{list}");

    // In the database: hashes, never a key.
    let db = app::server::db::connect(&url).await.expect("database");
    let rows: Vec<(String, String)> = app::on_db!(&db, p => sqlx::query_as(
        "SELECT prefix, key_hash FROM api_keys"
    )
    .fetch_all(p)
    .await)
    .expect("rows");
    assert_eq!(rows.len(), 2);
    for (prefix, hash) in &rows {
        assert!(!key.contains(hash.as_str()) && hash.len() == 64);
        assert!(prefix.len() == 12 && !rows.iter().any(|(_, h)| h == &key));
    }
    let now = app::server::session::clock::now();
    let caller = app::server::api_keys::authenticate(&db, &key, now)
        .await
        .expect("checked");
    assert_eq!(caller.map(|c| c.name), Some("recovery-desk".to_string()));

    let (ok, _, err) = run(&["revoke", "recovery-desk"]);
    assert!(ok, "{err}");
    let caller = app::server::api_keys::authenticate(&db, &key, now)
        .await
        .expect("checked");
    assert_eq!(caller, None, "a revoked key opens nothing");
    let (ok, _, err) = run(&["revoke", "recovery-desk"]);
    assert!(!ok && err.contains("already revoked"), "{err}");
    let (ok, _, err) = run(&["revoke", "nobody"]);
    assert!(!ok && err.contains("no API key"), "{err}");
    let (_, list, _) = run(&["list"]);
    assert!(list.contains("revoked"), "{list}");
}
