//! Reading the catalog.

use crate::model::{Category, ProductDetail, ProductSummary};
#[cfg(feature = "ssr")]
use crate::server::{app_context, internal};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;

/// The longest search term we look for; longer input is cut, not rejected.
pub const MAX_SEARCH_LEN: usize = 100;

/// Products matching an optional search term and category.
#[server(endpoint = "catalog/products", input = GetUrl)]
pub async fn list_products(
    q: Option<String>,
    category: Option<String>,
) -> Result<Vec<ProductSummary>, ServerFnError> {
    let ctx = app_context()?;
    let term: Option<String> = q
        .map(|q| q.trim().chars().take(MAX_SEARCH_LEN).collect::<String>())
        .filter(|q| !q.is_empty());
    let category = category.filter(|c| !c.trim().is_empty());
    let catalog = ctx.catalog.get(&ctx.db).await.map_err(internal)?;
    Ok(catalog.list(term.as_deref(), category.as_deref()))
}

/// One product by slug; `None` when there is no such product.
#[server(endpoint = "catalog/product", input = GetUrl)]
pub async fn get_product(slug: String) -> Result<Option<ProductDetail>, ServerFnError> {
    let ctx = app_context()?;
    let Ok(slug) = crate::model::Slug::parse(&slug) else {
        return Ok(None);
    };
    let catalog = ctx.catalog.get(&ctx.db).await.map_err(internal)?;
    Ok(catalog.by_slug(slug.as_str()))
}

/// All categories, for the filter.
#[server(endpoint = "catalog/categories", input = GetUrl)]
pub async fn list_categories() -> Result<Vec<Category>, ServerFnError> {
    let ctx = app_context()?;
    let catalog = ctx.catalog.get(&ctx.db).await.map_err(internal)?;
    Ok(catalog.categories())
}
