//! A product page `/products/{slug}`: image, description, price, stock, quantity and add-to-cart.

use crate::api::cart::AddToCart;
use crate::api::catalog::get_product;
use crate::components::quantity_picker::QuantityPicker;
use crate::model::{ProductDetail, StockState};
use crate::pages::not_found::NotFound;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[component]
pub fn ProductPage() -> impl IntoView {
    let params = use_params_map();
    let product = Resource::new(
        move || params.read().get("slug").unwrap_or_default(),
        get_product,
    );
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match product.await {
                    Ok(Some(product)) => view! { <ProductView product/> }.into_any(),
                    Ok(None) => view! { <NotFound/> }.into_any(),
                    Err(_) => {
                        super::set_status(503);
                        view! { <p class="error">"This product could not be loaded."</p> }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn ProductView(product: ProductDetail) -> impl IntoView {
    let ProductDetail {
        summary,
        description,
    } = product;
    let stock = StockState::of(summary.stock);
    let max = summary.stock.min(crate::model::MAX_LINE_QUANTITY);
    let add = ServerAction::<AddToCart>::new();
    view! {
        <Title text=summary.name.clone()/>
        <article class="product" data-product-id=summary.id.to_string() data-slug=summary.slug.clone()>
            <img class="product__image" src=summary.image.clone() alt=summary.name.clone()
                width="400" height="300"/>
            <div class="product__info">
                <p class="product__category"><a href=format!("/?category={}", summary.category)>
                    {summary.category.clone()}
                </a></p>
                <h1>{summary.name.clone()}</h1>
                <p class="product__price">{summary.price.to_string()}</p>
                <p class="stock" class:stock--low=matches!(stock, StockState::Low(_))
                    class:stock--out=matches!(stock, StockState::SoldOut)
                    data-testid="stock">{stock.label()}</p>
                <p class="product__description">{description}</p>
                {if stock == StockState::SoldOut {
                    view! { <p class="sold-out">"This product is sold out."</p> }.into_any()
                } else {
                    view! {
                        <ActionForm action=add attr:class="add-to-cart" attr:data-testid="add-to-cart">
                            <input type="hidden" name="product_id" value=summary.id.to_string()/>
                            <label for="quantity">"Quantity"</label>
                            <QuantityPicker id="quantity".to_string() name="quantity".to_string() max=max/>
                            <button type="submit">"Add to cart"</button>
                        </ActionForm>
                    }.into_any()
                }}
            </div>
        </article>
    }
}
