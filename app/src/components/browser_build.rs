//! The script that loads the browser build (the JS glue and the wasm) and hydrates the page's
//! islands — only where JavaScript runs.
//!
//! Not Leptos's `HydrationScripts`: its `<link rel="preload">` tags for the two files were
//! followed by a browser with JavaScript off too (it downloaded wasm for a page it would never
//! hydrate), and a preload from the `<head>` makes the wasm compete with what the first paint
//! needs (Lighthouse then counts its download into the largest paint: bench/README.md, "First
//! load"). A module script runs once the page is parsed; it then fetches the glue and the wasm
//! (133 KB on the wire) and hands each `<leptos-island>` to the function of its component, in
//! document order, as Leptos's islands loader (`island_script.js`) does — each in a task of
//! its own, so that no long task keeps the page from answering input — and then marks the
//! page as interactive (`data-hydrated` on the body, for tests and CSS).

use leptos::prelude::*;

/// The hydration script of the page's `<head>` (see the module docs).
#[component]
pub fn BrowserBuild(options: LeptosOptions) -> impl IntoView {
    let (js, wasm) = file_names(&options);
    let pkg = format!("/{}", options.site_pkg_dir);
    let nonce = use_nonce();
    let hydrate = format!(
        "import('{pkg}/{js}.js').then(function(m){{\
         return m.default({{module_or_path:'{pkg}/{wasm}.wasm'}}).then(function(){{m.hydrate();\
         document.querySelectorAll('leptos-island').forEach(function(el){{setTimeout(function(){{\
         var f=m[el.dataset.component];if(f){{f(el);}}else{{console.warn('no island '+el.dataset.component);}}}});}});\
         setTimeout(function(){{document.body.setAttribute('data-hydrated','true');}});}});}});"
    );
    view! { <script type="module" nonce=nonce>{hydrate}</script> }
}

/// The JS and wasm file names without extension: content-hashed in a release build
/// (cargo-leptos `hash-files` writes the hashes beside the server binary), else plain.
fn file_names(options: &LeptosOptions) -> (String, String) {
    let name = options.output_name.to_string();
    let hashes = hashes(options);
    match hashes {
        Some((js, wasm)) => (format!("{name}.{js}"), format!("{name}.{wasm}")),
        // Unhashed (a debug build): wasm-bindgen's `_bg` suffix, unless cargo-leptos set the
        // output name at compile time (then it names both files alike).
        None if std::option_env!("LEPTOS_OUTPUT_NAME").is_none() => {
            (name.clone(), format!("{name}_bg"))
        }
        None => (name.clone(), name),
    }
}

/// The (js, wasm) hashes of this build, read once.
#[cfg(feature = "ssr")]
fn hashes(options: &LeptosOptions) -> Option<(String, String)> {
    use std::sync::OnceLock;
    static HASHES: OnceLock<Option<(String, String)>> = OnceLock::new();
    if !options.hash_files {
        return None;
    }
    HASHES
        .get_or_init(|| {
            let exe = std::env::current_exe().ok()?;
            let text =
                std::fs::read_to_string(exe.parent()?.join(options.hash_file.as_ref())).ok()?;
            let hash = |kind: &str| {
                text.lines()
                    .filter_map(|line| line.split_once(':'))
                    .find(|(k, _)| k.trim() == kind)
                    .map(|(_, hash)| hash.trim().to_string())
            };
            Some((hash("js")?, hash("wasm")?))
        })
        .clone()
}

/// The shell is rendered on the server only.
#[cfg(not(feature = "ssr"))]
fn hashes(_: &LeptosOptions) -> Option<(String, String)> {
    None
}
