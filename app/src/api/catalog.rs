//! Reading the catalog.

use super::ShopError;
#[cfg(feature = "ssr")]
use crate::model::CatalogQuery;
use crate::model::{CatalogListing, Category, ProductDetail};
#[cfg(feature = "ssr")]
use crate::server::app_context;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;

/// The longest search term we look for; longer input is cut, not rejected.
pub const MAX_SEARCH_LEN: usize = 100;

/// One page of the products matching an optional search term and category, in a sort order
/// (`sort`: `price-asc`, `price-desc`, `name`, `newest`; anything else is the shop's order).
/// `page` is 1-based; a page that does not exist comes back empty with `page` > `pages`.
#[server(endpoint = "catalog/products", input = GetUrl)]
pub async fn list_products(
    q: Option<String>,
    category: Option<String>,
    sort: Option<String>,
    page: Option<String>,
) -> Result<CatalogListing, ShopError> {
    let ctx = app_context()?;
    let mut query = CatalogQuery::from_params(
        q.as_deref().unwrap_or_default(),
        category.as_deref().unwrap_or_default(),
        sort.as_deref().unwrap_or_default(),
        page.as_deref().unwrap_or_default(),
    );
    // Longer search input is cut, not rejected.
    query.search = query.search.chars().take(MAX_SEARCH_LEN).collect();
    let catalog = ctx.catalog.get(&ctx.db).await?;
    Ok(catalog.page(&query))
}

/// One product by slug; `None` when there is no such product.
#[server(endpoint = "catalog/product", input = GetUrl)]
pub async fn get_product(slug: String) -> Result<Option<ProductDetail>, ShopError> {
    let ctx = app_context()?;
    let Ok(slug) = crate::model::Slug::parse(&slug) else {
        return Ok(None);
    };
    let catalog = ctx.catalog.get(&ctx.db).await?;
    Ok(catalog.by_slug(slug.as_str()))
}

/// All categories, for the filter.
#[server(endpoint = "catalog/categories", input = GetUrl)]
pub async fn list_categories() -> Result<Vec<Category>, ShopError> {
    let ctx = app_context()?;
    let catalog = ctx.catalog.get(&ctx.db).await?;
    Ok(catalog.categories())
}
