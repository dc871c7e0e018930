//! One order `/orders/{id}`: only its owner sees it; everyone else gets a 404.

use crate::api::orders::my_order;
use crate::components::require_login::RequireLogin;
use crate::model::{Cents, OrderDetail};
use crate::pages::not_found::NotFound;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

#[component]
pub fn OrderPage() -> impl IntoView {
    view! { <RequireLogin children=|_user| view! { <OrderLoader/> }/> }
}

#[component]
fn OrderLoader() -> impl IntoView {
    let params = use_params_map();
    let order = Resource::new(
        move || params.read().get("id").unwrap_or_default(),
        my_order,
    );
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match order.await {
                    Ok(Some(order)) => view! { <OrderView order/> }.into_any(),
                    Ok(None) => view! { <NotFound/> }.into_any(),
                    Err(_) => view! { <p class="error">"This order could not be loaded."</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn OrderView(order: OrderDetail) -> impl IntoView {
    let OrderDetail { summary, lines } = order;
    view! {
        <Title text=format!("Order #{}", summary.id)/>
        <h1 data-testid="order-id" data-order-id=summary.id.to_string()>{format!("Order #{}", summary.id)}</h1>
        <p>"Placed " <time datetime=summary.placed_at.clone()>{summary.placed_at.replace('T', " ").replace('Z', " UTC")}</time>
            " · status: " <strong>{summary.status.clone()}</strong></p>
        <table class="cart">
            <thead><tr><th scope="col">"Product"</th><th scope="col">"Quantity"</th>
                <th scope="col">"Price"</th><th scope="col">"Subtotal"</th></tr></thead>
            <tbody>
                {lines.into_iter().map(|line| {
                    let subtotal = Cents(line.unit_price_cents).times(line.quantity).unwrap_or_default();
                    view! {
                        <tr data-testid="order-line" data-product-id=line.product_id.to_string()
                            data-quantity=line.quantity.to_string()>
                            <td><a href=format!("/products/{}", line.slug)>{line.name}</a></td>
                            <td>{line.quantity}</td>
                            <td>{Cents(line.unit_price_cents).to_string()}</td>
                            <td>{subtotal.to_string()}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        <p class="cart-total">"Total: " <strong data-testid="order-total" data-cents=summary.total_cents.to_string()>
            {Cents(summary.total_cents).to_string()}</strong></p>
        <p><a href="/account">"All your orders"</a></p>
    }
}
