//! The account `/account`: who you are and your order history; `/account/confirm`: the
//! password again before a sensitive action (sudo mode).

use crate::api::auth::ConfirmPassword;
use crate::api::orders::my_orders;
use crate::api::sessions::my_security_log;
use crate::components::pager::Pager;
use crate::components::require_login::RequireLogin;
use crate::model::{format_unix, Cents};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn AccountPage() -> impl IntoView {
    view! {
        <Title text="Your account"/>
        <h1>"Your account"</h1>
        <RequireLogin children=|user| view! {
            <p>"Logged in as " <strong>{user.email}</strong></p>
            <p><a href="/account/sessions">"Your sessions"</a>" · "<a href="/account/security">"Security log"</a>
                " · "<a href="/account/password">"Change password"</a>
                {user.is_admin.then(|| view! { " · " <a href="/admin/sessions">"All sessions (admin)"</a>
                    " · " <a href="/admin/api-keys">"API keys (admin)"</a> })}</p>
            <OrderHistory/>
        }/>
    }
}

#[component]
fn OrderHistory() -> impl IntoView {
    let orders = Resource::new(|| (), |_| my_orders());
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

/// `/account/confirm?next=…`: a sensitive action (revoking other people's sessions, API keys)
/// needs a password entered in the last few minutes; this asks for it, then goes back.
#[component]
pub fn ConfirmPage() -> impl IntoView {
    let confirm = ServerAction::<ConfirmPassword>::new();
    let query = use_query_map();
    let next = Signal::derive(move || {
        crate::model::safe_next(&query.read().get("next").unwrap_or_default())
    });
    view! {
        <Title text="Confirm your password"/>
        <h1>"Confirm your password"</h1>
        <RequireLogin children=move |_user| view! {
            <p>"You are about to do something that needs your password again, as it has been a while since you last entered it. "
                "You will not be asked again for a few minutes."</p>
            <ActionForm action=confirm attr:class="stack">
                <input type="hidden" name="next" value=move || next.get()/>
                <label for="confirm-password">"Password"</label>
                <input id="confirm-password" type="password" name="password" autocomplete="current-password"
                    required=true maxlength="1024" autofocus=true/>
                <button type="submit" data-testid="confirm-password">"Confirm"</button>
            </ActionForm>
            <p><a href=move || next.get()>"Cancel"</a></p>
        }/>
    }
}

/// `/account/security`: the account's own security log, newest first, paged.
#[component]
pub fn SecurityLogPage() -> impl IntoView {
    view! {
        <Title text="Security log"/>
        <h1>"Security log"</h1>
        <RequireLogin children=|_user| view! { <SecurityLog/> }/>
    }
}

#[component]
fn SecurityLog() -> impl IntoView {
    let query = use_query_map();
    let page = Signal::derive(move || query.read().get("page").unwrap_or_default());
    let log = Resource::new(move || page.get(), |page| my_security_log(Some(page)));
    view! {
        <p>"What happened to your logins: where you logged in, failed attempts, sessions ended and by whom. "
            "Something you do not recognise? Change your password, which signs out every other device."</p>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match log.await {
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    Ok(log) if log.events.is_empty() => view! {
                        <p class="empty" data-testid="security-empty">"Nothing here yet."</p>
                    }.into_any(),
                    Ok(log) => {
                        let (page, pages) = (log.page.max(1) as usize, log.pages.max(1) as usize);
                        view! {
                            <table>
                                <thead><tr><th scope="col">"When"</th><th scope="col">"What"</th>
                                    <th scope="col">"Browser"</th><th scope="col">"IP address"</th><th scope="col">"Details"</th></tr></thead>
                                <tbody>
                                    {log.events.into_iter().map(|e| {
                                        let detail = if e.repeats > 1 {
                                            format!("{} ({} times)", e.detail, e.repeats)
                                        } else {
                                            e.detail.clone()
                                        };
                                        view! {
                                            <tr data-testid="security-event" data-kind=e.kind.as_str()>
                                                <td>{format_unix(e.at)}</td>
                                                <td>{e.kind.label()}</td>
                                                <td>{e.device}</td>
                                                <td>{e.ip}</td>
                                                <td>{detail}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <Pager page pages link=|p| format!("/account/security?page={p}") label="Security log pages"/>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
