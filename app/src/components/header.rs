//! The site header: brand, navigation, who is logged in, the cart badge.

use crate::api::auth::{me, Logout};
use crate::api::cart::get_cart;
use crate::components::action::{refresh_after, session_version};
use crate::components::session_watch;
use leptos::prelude::*;

#[component]
pub fn Header() -> impl IntoView {
    let user = Resource::new(session_version, |_| me());
    let cart = Resource::new(session_version, |_| get_cart());
    let logout = ServerAction::<Logout>::new();
    refresh_after(logout);

    view! {
        <header class="site-header">
            <a class="brand" href="/">"Coatcheck"</a>
            <nav class="site-nav" aria-label="Main">
                <a href="/">"Catalog"</a>
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        match user.await.ok().and_then(|me| me.user) {
                            Some(user) => {
                                let id = user.id;
                                // Browser only: hear at once if this login ends.
                                Effect::new(move |_| session_watch::watch(id));
                                view! {
                                <a href="/account" data-testid="current-user">{user.email}</a>
                                <ActionForm action=logout>
                                    <button type="submit" class="link">"Log out"</button>
                                </ActionForm>
                            }.into_any()
                            }
                            None => {
                                Effect::new(|_| session_watch::unwatch());
                                view! {
                                <a href="/login">"Log in"</a>
                                <a href="/register">"Register"</a>
                            }.into_any()
                            }
                        }
                    })}
                </Suspense>
                <a class="cart-link" href="/cart">
                    "Cart "
                    <Suspense fallback=|| view! { <span class="badge" data-testid="cart-count">"0"</span> }>
                        {move || Suspend::new(async move {
                            let count = cart.await.map(|c| c.count).unwrap_or(0);
                            view! { <span class="badge" data-testid="cart-count">{count}</span> }
                        })}
                    </Suspense>
                </a>
            </nav>
        </header>
    }
}
