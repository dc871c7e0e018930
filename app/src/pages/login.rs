//! `/login` and `/register`: one form shape, two actions.

use crate::api::auth::{Login, Register};
use crate::components::action::{refresh_after, ActionMessage};
use crate::components::flash::PageFlash;
use crate::model::{safe_next, MIN_PASSWORD_CHARS};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// The email to refill after a rejected plain-form attempt (carried by the flash).
fn refill_email() -> Signal<String> {
    let flash = use_context::<PageFlash>();
    Signal::derive(move || {
        flash
            .and_then(|PageFlash(resource)| resource.get().flatten())
            .and_then(|f| f.email)
            .unwrap_or_default()
    })
}

fn next_param() -> Signal<String> {
    let query = use_query_map();
    Signal::derive(move || safe_next(&query.read().get("next").unwrap_or_default()))
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    refresh_after(login);
    let next = next_param();
    let email = refill_email();
    view! {
        <Title text="Log in"/>
        <h1>"Log in"</h1>
        <ActionMessage action=login/>
        <ActionForm action=login attr:class="stack">
            <input type="hidden" name="next" prop:value=move || next.get()/>
            <label for="login-email">"Email"</label>
            <input id="login-email" type="email" name="email" autocomplete="username" required=true
                maxlength="254" prop:value=move || email.get()/>
            <label for="login-password">"Password"</label>
            <input id="login-password" type="password" name="password" autocomplete="current-password"
                required=true maxlength="1024"/>
            <button type="submit">"Log in"</button>
        </ActionForm>
        <p>"New here? " <a href=move || format!("/register?next={}", next.get())>"Create an account"</a></p>
    }
}

#[component]
pub fn RegisterPage() -> impl IntoView {
    let register = ServerAction::<Register>::new();
    refresh_after(register);
    let next = next_param();
    let email = refill_email();
    view! {
        <Title text="Create an account"/>
        <h1>"Create an account"</h1>
        <ActionMessage action=register/>
        <ActionForm action=register attr:class="stack">
            <input type="hidden" name="next" prop:value=move || next.get()/>
            <label for="register-email">"Email"</label>
            <input id="register-email" type="email" name="email" autocomplete="email" required=true
                maxlength="254" prop:value=move || email.get()/>
            <label for="register-password">"Password"</label>
            <input id="register-password" type="password" name="password" autocomplete="new-password"
                required=true minlength=MIN_PASSWORD_CHARS.to_string() maxlength="1024"
                aria-describedby="password-rules"/>
            <p id="password-rules" class="hint">{format!("At least {MIN_PASSWORD_CHARS} characters.")}</p>
            <button type="submit">"Create account"</button>
        </ActionForm>
        <p>"Already have an account? " <a href=move || format!("/login?next={}", next.get())>"Log in"</a></p>
    }
}
