//! `/login` and `/register`: one form shape, two actions.

use crate::api::auth::{Login, Register};
use crate::components::flash::PageFlash;
use crate::model::{safe_next, MIN_PASSWORD_CHARS};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// Renders `form` with the email to refill after a rejected plain-form attempt (carried by
/// the page's flash), once that is known, so the server-rendered HTML already has it.
#[component]
fn WithRefilledEmail<F, V>(form: F) -> impl IntoView
where
    F: Fn(String) -> V + Send + Sync + Clone + 'static,
    V: IntoView + 'static,
{
    let flash = use_context::<PageFlash>();
    view! {
        <Suspense fallback=|| ()>
            {move || {
                let form = form.clone();
                Suspend::new(async move {
                    let email = match flash {
                        Some(PageFlash(resource)) => resource.await.and_then(|f| f.email),
                        None => None,
                    };
                    form(email.unwrap_or_default())
                })
            }}
        </Suspense>
    }
}

fn next_param() -> Signal<String> {
    let query = use_query_map();
    Signal::derive(move || safe_next(&query.read().get("next").unwrap_or_default()))
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let next = next_param();
    view! {
        <Title text="Log in"/>
        <h1>"Log in"</h1>
        <WithRefilledEmail form=move |email: String| view! {
            <ActionForm action=login attr:class="stack">
                <input type="hidden" name="next" value=move || next.get()/>
                <label for="login-email">"Email"</label>
                <input id="login-email" type="email" name="email" autocomplete="username" required=true
                    maxlength="254" value=email/>
                <label for="login-password">"Password"</label>
                <input id="login-password" type="password" name="password" autocomplete="current-password"
                    required=true maxlength="1024"/>
                <div class="checkbox">
                    <input id="login-remember" type="checkbox" name="remember" value="on"
                        aria-describedby="login-remember-hint"/>
                    <label for="login-remember">"Keep me signed in"</label>
                </div>
                <p id="login-remember-hint" class="hint">
                    "Unticked, you are signed out when the browser closes. Not on a shared computer."
                </p>
                <button type="submit">"Log in"</button>
            </ActionForm>
        }/>
        <p>"New here? " <a href=move || format!("/register?next={}", next.get())>"Create an account"</a></p>
    }
}

#[component]
pub fn RegisterPage() -> impl IntoView {
    let register = ServerAction::<Register>::new();
    let next = next_param();
    view! {
        <Title text="Create an account"/>
        <h1>"Create an account"</h1>
        <WithRefilledEmail form=move |email: String| view! {
            <ActionForm action=register attr:class="stack">
                <input type="hidden" name="next" value=move || next.get()/>
                <label for="register-email">"Email"</label>
                <input id="register-email" type="email" name="email" autocomplete="email" required=true
                    maxlength="254" value=email/>
                <label for="register-password">"Password"</label>
                <input id="register-password" type="password" name="password" autocomplete="new-password"
                    required=true minlength=MIN_PASSWORD_CHARS.to_string() maxlength="1024"
                    aria-describedby="password-rules"/>
                <p id="password-rules" class="hint">{format!("At least {MIN_PASSWORD_CHARS} characters.")}</p>
                <button type="submit">"Create account"</button>
            </ActionForm>
        }/>
        <p>"Already have an account? " <a href=move || format!("/login?next={}", next.get())>"Log in"</a></p>
    }
}
