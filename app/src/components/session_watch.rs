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
    //! One stream per tab, and only while the tab is visible: browsers allow six HTTP/1.1
    //! connections per host, and a hidden tab's stream would hold one of them. A tab that
    //! becomes visible again opens a new stream, whose first check says at once whether the
    //! login ended meanwhile.
    use super::SignedOut;
    use crate::components::action::SessionVersion;
    use leptos::prelude::*;
    use leptos::wasm_bindgen::closure::Closure;
    use leptos::wasm_bindgen::JsCast;
    use leptos::web_sys::{Event, EventSource};
    use std::cell::RefCell;

    #[derive(Default)]
    struct Watcher {
        /// The logged-in user this tab watches for (`None`: nobody).
        user_id: Option<i64>,
        hooks: Option<(Option<SignedOut>, Option<SessionVersion>)>,
        source: Option<EventSource>,
        /// The listeners of `source`, kept as long as it is (dropped only after it closed).
        listeners: Vec<Closure<dyn FnMut(Event)>>,
        visibility_hooked: bool,
    }

    thread_local! {
        static WATCHER: RefCell<Watcher> = RefCell::new(Watcher::default());
    }

    pub fn watch(user_id: i64, signed_out: Option<SignedOut>, version: Option<SessionVersion>) {
        // Logged in (again): no message from an earlier login stays up.
        if let Some(SignedOut(signal)) = signed_out {
            if signal.get_untracked() {
                signal.set(false);
            }
        }
        let hook_visibility = WATCHER.with(|w| {
            let mut w = w.borrow_mut();
            if w.user_id != Some(user_id) {
                close_source(&mut w);
            }
            w.user_id = Some(user_id);
            w.hooks = Some((signed_out, version));
            !std::mem::replace(&mut w.visibility_hooked, true)
        });
        if hook_visibility {
            let on_visibility = Closure::<dyn FnMut(Event)>::new(|_: Event| {
                if hidden() {
                    WATCHER.with(|w| close_source(&mut w.borrow_mut()));
                } else {
                    open();
                }
            });
            let _ = document().add_event_listener_with_callback(
                "visibilitychange",
                on_visibility.as_ref().unchecked_ref(),
            );
            // For the page's life.
            on_visibility.forget();
        }
        if !hidden() {
            open();
        }
    }

    pub fn close() {
        WATCHER.with(|w| {
            let mut w = w.borrow_mut();
            w.user_id = None;
            close_source(&mut w);
        });
    }

    fn hidden() -> bool {
        document().hidden()
    }

    fn close_source(w: &mut Watcher) {
        if let Some(source) = w.source.take() {
            source.close();
        }
        w.listeners.clear();
    }

    /// Opens the stream if someone is logged in and none is open (or the last one gave up).
    fn open() {
        WATCHER.with(|w| {
            let mut w = w.borrow_mut();
            if w.user_id.is_none() {
                return;
            }
            if let Some(source) = &w.source {
                if source.ready_state() != EventSource::CLOSED {
                    return;
                }
            }
            close_source(&mut w);
            let Ok(source) = EventSource::new("/api/session/events") else {
                return;
            };
            // (A refused stream — 503: too many, or the database busy — gives up for good and
            // is CLOSED: the next header render or visibility change opens a new one, above.)
            let on_signed_out = Closure::<dyn FnMut(Event)>::new(|_: Event| signed_out());
            if source
                .add_event_listener_with_callback(
                    "signed-out",
                    on_signed_out.as_ref().unchecked_ref(),
                )
                .is_err()
            {
                source.close();
                return;
            }
            w.source = Some(source);
            w.listeners = vec![on_signed_out];
        });
    }

    /// The server says this tab's login ended. Asks who is logged in now before saying so: a
    /// new login in another tab of this browser ends the old one too, and then this tab is
    /// logged in again, not out.
    fn signed_out() {
        let hooks = WATCHER.with(|w| {
            let w = w.borrow();
            // Closed now; the listeners go once this event has been handled.
            if let Some(source) = &w.source {
                source.close();
            }
            w.hooks
        });
        let Some((signed_out, version)) = hooks else {
            return;
        };
        leptos::task::spawn_local(async move {
            let logged_in = matches!(crate::api::auth::me().await, Ok(me) if me.user.is_some());
            if !logged_in {
                if let Some(SignedOut(signal)) = signed_out {
                    signal.set(true);
                }
            }
            // The header and the page load again: who is logged in, the cart as it now is
            // (and, logged in again, the header watches the new login).
            if let Some(SessionVersion(version)) = version {
                version.update(|v| *v += 1);
            }
        });
    }
}
