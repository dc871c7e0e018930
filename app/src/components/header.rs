//! The site header: brand, search, cart badge.

use leptos::prelude::*;

#[component]
pub fn Header() -> impl IntoView {
    view! {
        <header class="site-header">
            <a class="brand" href="/">"Coatcheck"</a>
            <nav class="site-nav">
                <a class="cart-link" href="/cart">
                    "Cart "
                    <span class="badge" data-testid="cart-count">"0"</span>
                </a>
            </nav>
        </header>
    }
}
