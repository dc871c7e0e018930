//! The catalog `/`: search (`?q=`) and category filter (`?category=`), both in the URL.

use crate::api::catalog::{list_categories, list_products, MAX_SEARCH_LEN};
use crate::components::product_card::ProductCard;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn CatalogPage() -> impl IntoView {
    let query = use_query_map();
    let search = move || query.read().get("q").unwrap_or_default();
    let category = move || query.read().get("category").unwrap_or_default();

    let products = Resource::new(
        move || (search(), category()),
        |(q, category)| list_products(Some(q), Some(category)),
    );
    let categories = Resource::new(|| (), |_| list_categories());

    view! {
        <Title text="Catalog"/>
        <h1>"Catalog"</h1>
        <form class="catalog-filter" method="get" action="/" role="search">
            <label for="catalog-q">"Search"</label>
            <input id="catalog-q" type="search" name="q" maxlength=MAX_SEARCH_LEN.to_string()
                value=search placeholder="wool, silk, rain…"/>
            <label for="catalog-category">"Category"</label>
            <Suspense fallback=|| view! { <select id="catalog-category" name="category"></select> }>
                {move || Suspend::new(async move {
                    let categories = categories.await.unwrap_or_default();
                    let selected = category();
                    view! {
                        <select id="catalog-category" name="category">
                            <option value="" selected=selected.is_empty()>"All"</option>
                            {categories.into_iter().map(|c| {
                                let is_selected = c.slug == selected;
                                view! { <option value=c.slug selected=is_selected>{c.name}</option> }
                            }).collect_view()}
                        </select>
                    }
                })}
            </Suspense>
            <button type="submit">"Show"</button>
        </form>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match products.await {
                    Ok(products) if products.is_empty() => view! {
                        <p class="empty" data-testid="no-results">
                            "No products match your search. " <a href="/">"Show everything"</a>
                        </p>
                    }.into_any(),
                    Ok(products) => view! {
                        <ul class="product-grid">
                            {products.into_iter()
                                .map(|product| view! { <ProductCard product/> })
                                .collect_view()}
                        </ul>
                    }.into_any(),
                    Err(_) => view! {
                        <p class="error">"The catalog could not be loaded. Please try again."</p>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
