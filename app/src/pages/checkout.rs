//! Checkout `/checkout`: review the cart and place the order (login required).

use crate::api::cart::get_cart;
use crate::api::orders::Checkout;
use crate::components::require_login::RequireLogin;
use crate::model::Cents;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn CheckoutPage() -> impl IntoView {
    view! {
        <Title text="Checkout"/>
        <h1>"Checkout"</h1>
        <RequireLogin children=|user| view! { <CheckoutReview email=user.email/> }/>
    }
}

#[component]
fn CheckoutReview(email: String) -> impl IntoView {
    let cart = Resource::new(|| (), |_| get_cart());
    let place = ServerAction::<Checkout>::new();
    view! {
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || {
                let email = email.clone();
                Suspend::new(async move {
                    match cart.await {
                        Err(_) => view! { <p class="error">"Your cart could not be loaded."</p> }.into_any(),
                        Ok(cart) if cart.lines.is_empty() => view! {
                            <p class="empty">"Your cart is empty. " <a href="/">"Browse the catalog"</a></p>
                        }.into_any(),
                        Ok(cart) => view! {
                            <p>"Ordering as " <strong>{email}</strong></p>
                            <table class="cart">
                                <thead><tr><th scope="col">"Product"</th><th scope="col">"Quantity"</th>
                                    <th scope="col">"Price"</th><th scope="col">"Subtotal"</th></tr></thead>
                                <tbody>
                                    {cart.lines.into_iter().map(|line| view! {
                                        <tr data-testid="checkout-line" data-product-id=line.product_id.to_string()
                                            data-quantity=line.quantity.to_string()>
                                            <td>{line.name.clone()}</td>
                                            <td>{line.quantity}</td>
                                            <td>{Cents(line.unit_price_cents).to_string()}</td>
                                            <td>{line.line_total().to_string()}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <p class="cart-total">"Total: "
                                <strong data-testid="cart-total" data-cents=cart.total_cents.to_string()>
                                    {Cents(cart.total_cents).to_string()}
                                </strong>
                            </p>
                            <p class="note">"No payment is taken: the order is placed at once."</p>
                            <ActionForm action=place>
                                <button type="submit" data-testid="place-order">"Place order"</button>
                            </ActionForm>
                        }.into_any(),
                    }
                })
            }}
        </Suspense>
    }
}
