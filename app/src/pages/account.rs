//! The account `/account`: who you are and your order history.

use crate::api::orders::my_orders;
use crate::components::action::session_version;
use crate::components::require_login::RequireLogin;
use crate::model::Cents;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn AccountPage() -> impl IntoView {
    view! {
        <Title text="Your account"/>
        <h1>"Your account"</h1>
        <RequireLogin children=|user| view! {
            <p>"Logged in as " <strong>{user.email}</strong></p>
            <p><a href="/account/sessions">"Your sessions"</a>" · "<a href="/account/password">"Change password"</a>
                {user.is_admin.then(|| view! { " · " <a href="/admin/sessions">"All sessions (admin)"</a> })}</p>
            <OrderHistory/>
        }/>
    }
}

#[component]
fn OrderHistory() -> impl IntoView {
    let orders = Resource::new(session_version, |_| my_orders());
    view! {
        <h2>"Your orders"</h2>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match orders.await {
                    Ok(Some(orders)) if !orders.is_empty() => view! {
                        <table>
                            <thead><tr><th scope="col">"Order"</th><th scope="col">"Placed"</th>
                                <th scope="col">"Items"</th><th scope="col">"Total"</th><th scope="col">"Status"</th></tr></thead>
                            <tbody>
                                {orders.into_iter().map(|o| view! {
                                    <tr data-testid="order-row" data-order-id=o.id.to_string()>
                                        <td><a href=format!("/orders/{}", o.id)>{format!("#{}", o.id)}</a></td>
                                        <td>{o.placed_at.replace('T', " ").replace('Z', " UTC")}</td>
                                        <td>{o.item_count}</td>
                                        <td>{Cents(o.total_cents).to_string()}</td>
                                        <td>{o.status}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                    Ok(_) => view! { <p class="empty">"No orders yet."</p> }.into_any(),
                    Err(_) => view! { <p class="error">"Your orders could not be loaded."</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}
