//! The cart `/cart`: lines priced from today's catalog, change quantity, remove, clear.

use crate::api::cart::{get_cart, ClearCart, UpdateCart};
use crate::model::{CartLine, Cents};
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn CartPage() -> impl IntoView {
    let cart = Resource::new(|| (), |_| get_cart());
    let update = ServerAction::<UpdateCart>::new();
    let clear = ServerAction::<ClearCart>::new();

    view! {
        <Title text="Your cart"/>
        <h1>"Your cart"</h1>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match cart.await {
                    Err(_) => view! { <p class="error">"Your cart could not be loaded."</p> }.into_any(),
                    Ok(cart) if cart.lines.is_empty() => view! {
                        <p class="empty" data-testid="cart-empty">"Your cart is empty. "
                            <a href="/">"Browse the catalog"</a></p>
                        <p hidden=true data-testid="cart-total" data-cents="0">"$0.00"</p>
                    }.into_any(),
                    Ok(cart) => {
                        let total = Cents(cart.total_cents);
                        view! {
                            <table class="cart">
                                <thead><tr>
                                    <th scope="col">"Product"</th>
                                    <th scope="col">"Price"</th>
                                    <th scope="col">"Quantity"</th>
                                    <th scope="col">"Subtotal"</th>
                                    <th scope="col"><span class="visually-hidden">"Remove"</span></th>
                                </tr></thead>
                                <tbody>
                                    {cart.lines.into_iter().map(|line| view! { <CartRow line update/> }).collect_view()}
                                </tbody>
                            </table>
                            <p class="cart-total">"Total: "
                                <strong data-testid="cart-total" data-cents=cart.total_cents.to_string()>
                                    {total.to_string()}
                                </strong>
                            </p>
                            <div class="cart-actions">
                                <a class="button" href="/checkout">"Proceed to checkout"</a>
                                <ActionForm action=clear>
                                    <button type="submit" class="secondary">"Empty the cart"</button>
                                </ActionForm>
                            </div>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn CartRow(line: CartLine, update: ServerAction<UpdateCart>) -> impl IntoView {
    let input_id = format!("quantity-{}", line.product_id);
    let max = line.stock.clamp(1, crate::model::MAX_LINE_QUANTITY);
    let quantity_label = format!("Quantity of {}", line.name);
    let remove_label = format!("Remove {}", line.name);
    let subtotal = line.line_total().to_string();
    view! {
        <tr data-testid="cart-line" data-product-id=line.product_id.to_string()
            data-quantity=line.quantity.to_string()>
            <td><a href=format!("/products/{}", line.slug)>{line.name.clone()}</a></td>
            <td>{Cents(line.unit_price_cents).to_string()}</td>
            <td>
                <ActionForm action=update attr:class="inline-form">
                    <input type="hidden" name="product_id" value=line.product_id.to_string()/>
                    <label for=input_id.clone() class="visually-hidden">
                        {quantity_label}
                    </label>
                    <input id=input_id type="number" name="quantity" min="0" max=max.to_string()
                        value=line.quantity.to_string() required=true inputmode="numeric"/>
                    <button type="submit">"Update"</button>
                </ActionForm>
            </td>
            <td>{subtotal}</td>
            <td>
                <ActionForm action=update attr:class="inline-form">
                    <input type="hidden" name="product_id" value=line.product_id.to_string()/>
                    <input type="hidden" name="quantity" value="0"/>
                    <button type="submit" class="link" aria-label=remove_label>"Remove"</button>
                </ActionForm>
            </td>
        </tr>
    }
}
