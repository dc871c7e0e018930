//! The browser's static files and how long they may be cached. A release build names the
//! wasm, JS and CSS by their content (cargo-leptos `hash-files`: `coatcheck.<hash>.wasm`) and
//! writes the hashes to `hash.txt` next to the server binary; those exact files never change,
//! so they are cached for a year without revalidation. Pages keep their own rules
//! (`guard::security_headers`: `no-store`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

/// The file cargo-leptos writes the hashes to, beside the server binary (where Leptos's
/// `HydrationScripts` and `HashedStylesheet` read it).
pub const HASH_FILE: &str = "hash.txt";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Public files (favicon, product images) keep their names when they change: a day, then a
/// revalidation (`Last-Modified`).
const PUBLIC_FILE: &str = "public, max-age=86400";
/// Unhashed build output (a debug build): always revalidated.
const REVALIDATE: &str = "no-cache";

/// The content-hashed asset paths of this build (empty when it has none).
#[derive(Clone, Debug, Default)]
pub struct StaticAssets {
    immutable: Arc<HashSet<String>>,
}

impl StaticAssets {
    /// The hashes the build wrote beside the running binary, if it wrote any.
    pub fn of_this_build(output_name: &str, pkg_dir: &str) -> StaticAssets {
        let hash_file = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join(HASH_FILE)));
        match hash_file {
            Some(path) => StaticAssets::read(&path, output_name, pkg_dir),
            None => StaticAssets::default(),
        }
    }

    fn read(path: &Path, output_name: &str, pkg_dir: &str) -> StaticAssets {
        match std::fs::read_to_string(path) {
            Ok(text) => StaticAssets::parse(&text, output_name, pkg_dir),
            Err(_) => StaticAssets::default(),
        }
    }

    /// `hash.txt`: lines `js: <hash>`, `wasm: <hash>`, `css: <hash>`.
    fn parse(text: &str, output_name: &str, pkg_dir: &str) -> StaticAssets {
        let immutable = text
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(kind, hash)| (kind.trim(), hash.trim()))
            .filter(|(kind, hash)| {
                matches!(*kind, "js" | "wasm" | "css")
                    && !hash.is_empty()
                    && hash
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .map(|(kind, hash)| format!("/{pkg_dir}/{output_name}.{hash}.{kind}"))
            .collect::<HashSet<_>>();
        StaticAssets {
            immutable: Arc::new(immutable),
        }
    }

    /// Whether the build's browser files have content-hashed names.
    pub fn hashed(&self) -> bool {
        !self.immutable.is_empty()
    }

    fn cache_control(&self, path: &str) -> &'static str {
        if self.immutable.contains(path) {
            IMMUTABLE
        } else if path.starts_with("/pkg/") {
            REVALIDATE
        } else {
            PUBLIC_FILE
        }
    }

    /// Sets `Cache-Control` on the successful answer for the static file at `path` (called by
    /// `guard::security_headers`, which knows which paths are static files).
    pub fn set_cache_control(&self, path: &str, response: &mut Response) {
        if matches!(response.status(), StatusCode::OK | StatusCode::NOT_MODIFIED) {
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(self.cache_control(path)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_hashed_files_of_this_build_are_immutable() {
        let assets = StaticAssets::parse(
            "js: AbC-1_x\nwasm: Zz9\ncss: Q1\nmanifest: M\nbogus line\njs: ../../etc\n",
            "coatcheck",
            "pkg",
        );
        assert!(assets.hashed());
        assert_eq!(assets.cache_control("/pkg/coatcheck.AbC-1_x.js"), IMMUTABLE);
        assert_eq!(assets.cache_control("/pkg/coatcheck.Zz9.wasm"), IMMUTABLE);
        assert_eq!(assets.cache_control("/pkg/coatcheck.Q1.css"), IMMUTABLE);
        assert_eq!(assets.cache_control("/pkg/coatcheck.M.json"), REVALIDATE);
        assert_eq!(assets.cache_control("/pkg/coatcheck.css"), REVALIDATE);
        assert_eq!(assets.cache_control("/images/scarf.svg"), PUBLIC_FILE);
        assert!(!StaticAssets::parse("", "coatcheck", "pkg").hashed());
        assert!(
            !StaticAssets::read(Path::new("/nonexistent/hash.txt"), "coatcheck", "pkg").hashed()
        );
    }
}
