//! The site header: brand, navigation, who is logged in, the cart badge.
//!
//! Rendered on the server; the part that can change while the page is open — who is logged
//! in and the cart badge, when the login ends — is an island ([`SessionNav`]).

use crate::api::auth::me;
use crate::api::cart::get_cart;
use crate::components::session_watch;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[component]
pub fn Header() -> impl IntoView {
    let user = Resource::new(|| (), |_| me());
    let cart = Resource::new(|| (), |_| get_cart());

    view! {
        <header class="site-header">
            <a class="brand" href="/">"Coatcheck"</a>
            <nav class="site-nav" aria-label="Main">
                <a href="/">"Catalog"</a>
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        let user = user
                            .await
                            .ok()
                            .and_then(|me| me.user)
                            .map(|user| HeaderUser { id: user.id, email: user.email });
                        let cart_count = cart.await.map(|c| c.count).unwrap_or(0);
                        view! { <SessionNav user cart_count/> }
                    })}
                </Suspense>
            </nav>
        </header>
    }
}

/// Who is logged in, as the header shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeaderUser {
    pub id: i64,
    pub email: String,
}

/// Who is logged in (with the logout button) and the cart badge. In the browser it listens
/// for the end of the login (`session_watch`) and then shows nobody logged in and no cart.
#[island]
fn SessionNav(user: Option<HeaderUser>, cart_count: u32) -> impl IntoView {
    let signed_out = session_watch::signed_out();
    let watched = user.as_ref().map(|user| user.id);
    // Effects only run in the browser.
    Effect::new(move |_| {
        if let Some(id) = watched {
            session_watch::watch(id);
        }
    });
    let ended = signed_out.clone();
    let shown = move || user.clone().filter(|_| !ended.get());
    view! {
        {move || match shown() {
            Some(user) => view! {
                <a href="/account" data-testid="current-user">{user.email}</a>
                <form method="post" action="/api/logout">
                    <button type="submit" class="link">"Log out"</button>
                </form>
            }
            .into_any(),
            None => view! {
                <a href="/login">"Log in"</a>
                <a href="/register">"Register"</a>
            }
            .into_any(),
        }}
        <a class="cart-link" href="/cart">
            "Cart "
            <span class="badge" data-testid="cart-count">
                {move || if signed_out.get() { 0 } else { cart_count }}
            </span>
        </a>
    }
}
