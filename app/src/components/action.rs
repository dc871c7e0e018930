//! Glue between server actions and the page: session refresh after a change, the message a
//! finished action shows, and full navigation after a change of login.

use crate::api::ShopError;
use crate::model::{ActionReply, FlashKind};
use leptos::prelude::*;
use leptos::server::ServerAction;
use leptos::server_fn::ServerFn;

/// Bumped after every action that changed the session, so the header and pages refetch.
#[derive(Clone, Copy)]
pub struct SessionVersion(pub RwSignal<u32>);

pub fn provide_session_version() {
    provide_context(SessionVersion(RwSignal::new(0)));
}

/// The current session version (0 when no context, e.g. in isolated tests).
pub fn session_version() -> u32 {
    use_context::<SessionVersion>()
        .map(|v| v.0.get())
        .unwrap_or(0)
}

/// After an action finishes successfully: refresh session-dependent data, and when the
/// action says so (login, logout, checkout), load the target page in full. An action refused
/// for want of a recent password goes to the confirmation page.
pub fn refresh_after<S>(action: ServerAction<S>)
where
    S: ServerFn<Output = ActionReply, Error = ShopError> + Clone + Send + Sync + 'static,
{
    let version = use_context::<SessionVersion>();
    Effect::new(move |_| {
        let Some(result) = action.value().get() else {
            return;
        };
        // A sensitive action outside the sudo window: to the confirmation page, which comes
        // back here once the password is entered.
        if let Err(ShopError::ConfirmFirst { to }) = &result {
            let _ = window().location().set_href(to);
            return;
        }
        if let Ok(reply) = result {
            if let Some(target) = reply.redirect_to {
                let _ = window().location().set_href(&target);
                return;
            }
            if let Some(version) = version {
                version.0.update(|v| *v += 1);
            }
        }
    });
}

/// Shows the outcome of an action: the success message or the readable error.
#[component]
pub fn ActionMessage<S>(action: ServerAction<S>) -> impl IntoView
where
    S: ServerFn<Output = ActionReply, Error = ShopError> + Clone + Send + Sync + 'static,
{
    move || {
        action.value().get().map(|result| {
            let (kind, message) = match result {
                Ok(reply) => (FlashKind::Success, reply.message),
                Err(error) => (FlashKind::Error, error.to_string()),
            };
            view! { <crate::components::flash::FlashBox kind message/> }
        })
    }
}
