//! The scripts that load the browser build (the JS glue and the wasm) and hydrate the page —
//! only where JavaScript runs. Leptos's `HydrationScripts` also writes `<link rel="preload">`
//! tags for the two files, and a browser with JavaScript off follows those too: it downloaded
//! the whole wasm for a page it would never hydrate. Here an inline script (run only with
//! JavaScript) adds the same preloads at the same point of the `<head>`, so the download still
//! starts before the page body is parsed, and the module script then hydrates the page's
//! islands as Leptos's islands loader does.

use leptos::prelude::*;

/// The hydration scripts of the page's `<head>` (see the module docs).
#[component]
pub fn BrowserBuild(options: LeptosOptions) -> impl IntoView {
    let (js, wasm) = file_names(&options);
    let pkg = format!("/{}", options.site_pkg_dir);
    let nonce = use_nonce();
    // Same-origin fetches in CORS mode (`crossorigin=""`), as the module import and
    // wasm-bindgen's `fetch` make them, so the preloaded responses are the ones used.
    let preload = format!(
        "(function(){{var h=document.head;\
         function p(rel,href,as,type){{var l=document.createElement('link');l.rel=rel;l.href=href;\
         if(as)l.as=as;if(type)l.type=type;l.crossOrigin='';h.appendChild(l);}}\
         p('modulepreload','{pkg}/{js}.js');p('preload','{pkg}/{wasm}.wasm','fetch','application/wasm');}})();"
    );
    // Islands (Leptos's own loader, `island_script.js`, without its wait for an idle moment):
    // each `<leptos-island>` is handed to the function of its component, in document order.
    let hydrate = format!(
        "import('{pkg}/{js}.js').then(function(m){{\
         return m.default({{module_or_path:'{pkg}/{wasm}.wasm'}}).then(function(){{m.hydrate();\
         document.querySelectorAll('leptos-island').forEach(function(el){{\
         var f=m[el.dataset.component];if(f){{f(el);}}else{{console.warn('no island '+el.dataset.component);}}}});}});}});"
    );
    view! {
        <script nonce=nonce.clone()>{preload}</script>
        <script type="module" nonce=nonce>{hydrate}</script>
    }
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
