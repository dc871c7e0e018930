//! The catalog `/`: search (`?q=`), category filter (`?category=`), sort order (`?sort=`) and
//! page (`?page=`), all in the URL, all plain links and forms that work without JavaScript.

use crate::api::catalog::{list_categories, list_products, MAX_SEARCH_LEN};
use crate::components::pager::Pager;
use crate::components::product_card::ProductCard;
use crate::model::{CatalogListing, CatalogQuery, CatalogSort};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn CatalogPage() -> impl IntoView {
    let params = use_query_map();
    let query = Memo::new(move |_| {
        let params = params.read();
        let get = |key: &str| params.get(key).unwrap_or_default();
        CatalogQuery::from_params(&get("q"), &get("category"), &get("sort"), &get("page"))
    });
    let search = move || query.read().search.clone();
    let category = move || query.read().category.clone();

    let products = Resource::new(
        move || query.get(),
        |query| {
            list_products(
                Some(query.search),
                Some(query.category),
                Some(query.sort.param().to_string()),
                Some(query.page.to_string()),
            )
        },
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
            // A new search keeps the sort order and starts again at page 1.
            {move || {
                let sort = query.read().sort;
                (sort != CatalogSort::Featured)
                    .then(|| view! { <input type="hidden" name="sort" value=sort.param()/> })
            }}
            <button type="submit">"Show"</button>
        </form>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                let query = query.get_untracked();
                match products.await {
                    Ok(listing) => view! { <Listing listing query/> }.into_any(),
                    Err(_) => {
                        crate::pages::set_status(503);
                        view! {
                            <p class="error">"The catalog could not be loaded. Please try again."</p>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// The sort links, the result count, the products of the page and the pager.
#[component]
fn Listing(listing: CatalogListing, query: CatalogQuery) -> impl IntoView {
    // An empty result has one page: any other page of it does not exist (404), like a page
    // past the end of a list with results.
    if listing.total == 0 && listing.found() {
        return view! {
            <p class="empty" data-testid="no-results">
                "No products match your search. " <a href="/">"Show everything"</a>
            </p>
        }
        .into_any();
    }
    if !listing.found() {
        crate::pages::set_status(404);
        let last = query.href(query.sort, listing.pages);
        return view! {
            <p class="empty" data-testid="no-such-page">
                {format!("There is no page {} of this list; it has {}. ", query.page, listing.pages)}
                <a href=last>"Go to the last page"</a>
            </p>
        }
        .into_any();
    }
    let sort_links = CatalogSort::ALL
        .into_iter()
        .map(|sort| {
            let href = query.href(sort, 1);
            let current = sort == query.sort;
            view! {
                <li>
                    <a href=href aria-current=current.then_some("true") data-sort=sort.param()>
                        {sort.label()}
                    </a>
                </li>
            }
        })
        .collect_view();
    let link_query = query.clone();
    view! {
        <div class="catalog-bar">
            <p class="result-count" data-testid="result-count" data-total=listing.total.to_string()>
                {listing.summary()}
            </p>
            <nav class="sort" aria-label="Sort products">
                <span id="sort-label">"Sort by:"</span>
                <ul class="sort__options" aria-labelledby="sort-label">{sort_links}</ul>
            </nav>
        </div>
        <ul class="product-grid">
            {listing.products.into_iter()
                .map(|product| view! { <ProductCard product/> })
                .collect_view()}
        </ul>
        <Pager page=listing.page pages=listing.pages
            link=move |page| link_query.href(link_query.sort, page)/>
    }
    .into_any()
}
