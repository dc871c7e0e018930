//! Coatcheck: the browser entry point (`hydrate`) and, on the server, the application assembly.

#[cfg(feature = "ssr")]
pub mod http;

/// Called by the generated JavaScript once the wasm has loaded: hydrates the server's HTML.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
