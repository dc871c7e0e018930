//! A product in a listing.

use crate::model::{ProductSummary, StockState};
use leptos::prelude::*;

#[component]
pub fn ProductCard(product: ProductSummary) -> impl IntoView {
    let href = format!("/products/{}", product.slug);
    let stock = StockState::of(product.stock);
    view! {
        <li class="product-card" data-testid="product-card"
            data-product-id=product.id.to_string() data-slug=product.slug.clone()>
            <a href=href.clone() class="product-card__image">
                <img src=product.image.clone() alt="" width="400" height="300" loading="lazy"/>
            </a>
            <div class="product-card__body">
                <h2 class="product-card__name"><a href=href>{product.name.clone()}</a></h2>
                <p class="product-card__price">{product.price.to_string()}</p>
                <p class="stock" class:stock--low=matches!(stock, StockState::Low(_))
                    class:stock--out=matches!(stock, StockState::SoldOut)>{stock.label()}</p>
            </div>
        </li>
    }
}
