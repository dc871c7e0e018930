//! Coatcheck's application: the HTML shell, the routes, pages, components and server functions.

pub mod api;
pub mod components;
pub mod model;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod server;

use components::browser_build::BrowserBuild;
use components::flash::{provide_page_flash, PageFlashMessage};
use components::header::Header;
use components::session_watch::SignedOutNotice;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, Link, Meta, MetaTags, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path, SsrMode,
};
use pages::sessions::{AccountSessionsPage, AdminApiKeysPage, AdminSessionsPage, PasswordPage};
use pages::{
    account::{AccountPage, ConfirmPage, SecurityLogPage},
    cart::CartPage,
    catalog::CatalogPage,
    checkout::CheckoutPage,
    login::{LoginPage, RegisterPage},
    not_found::NotFound,
    order::OrderPage,
    product::ProductPage,
};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                // The stylesheet by its content-hashed name in a release build (cargo-leptos
                // `hash-files`), so that browsers may cache it for good.
                <HashedStylesheet options=options.clone() id="leptos"/>
                // Not Leptos's `HydrationScripts`: no preloads, which JavaScript-less browsers
                // follow too and which delay the first paint (see `browser_build`).
                <BrowserBuild options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_page_flash();

    view! {
        <Link rel="icon" type_="image/svg+xml" href="/favicon.svg"/>
        <Meta name="description" content="Coatcheck: coats, scarves, hats and gloves."/>
        <Title formatter=|title| format!("{title} · Coatcheck")/>
        <Router>
            <a class="skip-link" href="#content">"Skip to content"</a>
            <Header/>
            <main class="page" id="content" tabindex="-1">
                <SignedOutNotice/>
                <PageFlashMessage/>
                // Async SSR: every page is complete HTML before it is sent, so it reads
                // correctly without JavaScript and can set its own status code.
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=CatalogPage ssr=SsrMode::Async/>
                    <Route path=path!("/products/:slug") view=ProductPage ssr=SsrMode::Async/>
                    <Route path=path!("/cart") view=CartPage ssr=SsrMode::Async/>
                    <Route path=path!("/checkout") view=CheckoutPage ssr=SsrMode::Async/>
                    <Route path=path!("/orders/:id") view=OrderPage ssr=SsrMode::Async/>
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async/>
                    <Route path=path!("/register") view=RegisterPage ssr=SsrMode::Async/>
                    <Route path=path!("/account") view=AccountPage ssr=SsrMode::Async/>
                    <Route path=path!("/account/sessions") view=AccountSessionsPage ssr=SsrMode::Async/>
                    <Route path=path!("/account/confirm") view=ConfirmPage ssr=SsrMode::Async/>
                    <Route path=path!("/account/security") view=SecurityLogPage ssr=SsrMode::Async/>
                    <Route path=path!("/account/password") view=PasswordPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/sessions") view=AdminSessionsPage ssr=SsrMode::Async/>
                    <Route path=path!("/admin/api-keys") view=AdminApiKeysPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
    }
}
