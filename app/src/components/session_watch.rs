//! A logged-in page hears at once when its login ends — revoked by an admin or on another
//! device, ended by a password change or a logout in another tab, timed out — and says "You
//! were signed out" without waiting for a click: in the browser, one `EventSource` on
//! `/api/session/events` per tab while someone is logged in (see the server's `events`
//! module). Without JavaScript nothing changes: the next page load says it, as always.

use leptos::prelude::*;

/// Whether this page's login ended while it was open: one flag per page, shared by the
/// islands that show it (the header's links and badge, the notice). Islands hydrate apart, so
/// it cannot be a context: it lives beside them in the browser (and is never set on the
/// server, where each call gets its own).
pub fn signed_out() -> ArcRwSignal<bool> {
    #[cfg(feature = "hydrate")]
    {
        thread_local! {
            static SIGNED_OUT: ArcRwSignal<bool> = ArcRwSignal::new(false);
        }
        SIGNED_OUT.with(Clone::clone)
    }
    #[cfg(not(feature = "hydrate"))]
    ArcRwSignal::new(false)
}

/// The message, once this page's login has ended (an island: it appears without a reload).
#[island]
pub fn SignedOutNotice() -> impl IntoView {
    let signed_out = signed_out();
    move || {
        signed_out.get().then(|| {
            view! {
                <p class="flash flash--error" role="alert" data-testid="signed-out-notice">
                    "You were signed out. " <a href="/login">"Log in again"</a>
                </p>
            }
        })
    }
}

/// Listens for the end of the login of `user_id` (browser only; one stream per tab).
pub fn watch(user_id: i64) {
    #[cfg(feature = "hydrate")]
    browser::watch(user_id);
    #[cfg(not(feature = "hydrate"))]
    let _ = user_id;
}

#[cfg(feature = "hydrate")]
mod browser {
    //! One stream per tab, and only while the tab is visible: browsers allow six HTTP/1.1
    //! connections per host, and a hidden tab's stream would hold one of them. A tab that
    //! becomes visible again opens a new stream, whose first check says at once whether the
    //! login ended meanwhile.
    use leptos::prelude::*;
    use leptos::wasm_bindgen::closure::Closure;
    use leptos::wasm_bindgen::JsCast;
    use leptos::web_sys::{Event, EventSource};
    use std::cell::RefCell;

    #[derive(Default)]
    struct Watcher {
        /// The logged-in user this tab watches for (`None`: nobody).
        user_id: Option<i64>,
        source: Option<EventSource>,
        /// The listeners of `source`, kept as long as it is (dropped only after it closed).
        listeners: Vec<Closure<dyn FnMut(Event)>>,
        visibility_hooked: bool,
    }

    thread_local! {
        static WATCHER: RefCell<Watcher> = RefCell::new(Watcher::default());
    }

    pub fn watch(user_id: i64) {
        let hook_visibility = WATCHER.with(|w| {
            let mut w = w.borrow_mut();
            if w.user_id != Some(user_id) {
                close_source(&mut w);
            }
            w.user_id = Some(user_id);
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
    /// logged in again, not out: it loads again, as that login.
    fn signed_out() {
        WATCHER.with(|w| {
            let mut w = w.borrow_mut();
            // Closed now; the listeners go once this event has been handled.
            if let Some(source) = &w.source {
                source.close();
            }
            w.user_id = None;
        });
        leptos::task::spawn_local(async move {
            match crate::api::auth::me().await {
                Ok(me) if me.user.is_some() => {
                    let _ = window().location().reload();
                }
                _ => super::signed_out().set(true),
            }
        });
    }
}
