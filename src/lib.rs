//! Coatcheck: the browser entry point (`hydrate`) and, on the server, the application assembly.

#[cfg(feature = "ssr")]
pub mod http;

// The islands' entry points (`#[island]`: one wasm export each) are in `app`: linked in, they
// are exported from this browser build.
#[cfg(feature = "hydrate")]
#[allow(unused_imports)]
use app::*;

/// Called by the generated JavaScript once the wasm has loaded: sets up the islands, which
/// the loader (`app::components::browser_build`) then hydrates one by one.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
