//! A logged-in page hears at once when its login ends — revoked by an admin or on another
//! device, ended by a password change or a logout in another tab, timed out — and says "You
//! were signed out" without waiting for a click: in the browser, one `EventSource` on
//! `/api/session/events` per tab while someone is logged in (see the server's `events`
//! module). Without JavaScript nothing changes: the next page load says it, as always.

use leptos::prelude::*;

/// Whether this page's login ended while it was open.
#[derive(Clone, Copy)]
pub struct SignedOut(pub RwSignal<bool>);

pub fn provide_signed_out() {
    provide_context(SignedOut(RwSignal::new(false)));
}

/// The message, once this page's login has ended.
#[component]
pub fn SignedOutNotice() -> impl IntoView {
    let signed_out = use_context::<SignedOut>();
    move || {
        signed_out.filter(|s| s.0.get()).map(|_| {
            view! {
                <p class="flash flash--error" role="alert" data-testid="signed-out-notice">
                    "You were signed out. " <a href="/login">"Log in again"</a>
                </p>
            }
        })
    }
}

/// Listens for the end of the login of `user_id` (browser only). Keeps one stream per tab: a
/// header that renders again for the same user keeps the stream it has.
pub fn watch(user_id: i64) {
    #[cfg(feature = "hydrate")]
    browser::watch(
        user_id,
        use_context::<SignedOut>(),
        use_context::<crate::components::action::SessionVersion>(),
    );
    #[cfg(not(feature = "hydrate"))]
    let _ = user_id;
}

/// Nobody is logged in (any more): no stream.
pub fn unwatch() {
    #[cfg(feature = "hydrate")]
    browser::close();
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::SignedOut;
    use crate::components::action::SessionVersion;
    use leptos::prelude::*;
    use leptos::wasm_bindgen::closure::Closure;
    use leptos::wasm_bindgen::JsCast;
    use leptos::web_sys::{Event, EventSource};
    use std::cell::RefCell;

    thread_local! {
        // This tab's stream and the user it is for (the browser runs this once per page).
        static OPEN: RefCell<Option<(i64, EventSource)>> = const { RefCell::new(None) };
    }

    pub fn watch(user_id: i64, signed_out: Option<SignedOut>, version: Option<SessionVersion>) {
        let already = OPEN.with(|open| open.borrow().as_ref().map(|(id, _)| *id) == Some(user_id));
        if already {
            return;
        }
        close();
        let Ok(source) = EventSource::new("/api/session/events") else {
            return;
        };
        // Called at most once (the stream is closed in it), and then freed by wasm-bindgen.
        let on_signed_out = Closure::once_into_js(move |_: Event| {
            close();
            if let Some(SignedOut(signal)) = signed_out {
                signal.set(true);
            }
            // The header and the page load again: logged out, the cart as it now is.
            if let Some(SessionVersion(version)) = version {
                version.update(|v| *v += 1);
            }
        });
        if source
            .add_event_listener_with_callback("signed-out", on_signed_out.unchecked_ref())
            .is_err()
        {
            source.close();
            return;
        }
        OPEN.with(|open| *open.borrow_mut() = Some((user_id, source)));
    }

    pub fn close() {
        if let Some((_, source)) = OPEN.with(|open| open.borrow_mut().take()) {
            source.close();
        }
    }
}
