//! `/account/sessions` (your own sessions), `/account/password` and `/admin/sessions`.

use crate::api::sessions::{
    admin_sessions, my_sessions, AdminRevokeSession, AdminRevokeUserSessions, ChangePassword,
    RevokeMySession, RevokeOtherSessions,
};
use crate::components::action::{refresh_after, session_version, ActionMessage};
use crate::components::pager::Pager;
use crate::components::require_login::RequireLogin;
use crate::model::{error_message, format_unix, SessionInfo, MIN_PASSWORD_CHARS};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
fn SessionRow(
    session: SessionInfo,
    /// The revoke form of this row, if any.
    children: Children,
    #[prop(default = false)] show_email: bool,
) -> impl IntoView {
    view! {
        <tr data-testid="session-row" data-session=session.handle.clone()
            data-user-email=session.email.clone() data-current=session.current.to_string()>
            {show_email.then(|| view! { <td>{session.email.clone()}</td> })}
            <td>{session.device.clone()}
                {session.current.then(|| view! { <strong class="current">" (this device)"</strong> })}</td>
            <td>{session.ip.clone()}</td>
            <td>{format_unix(session.created_at)}</td>
            <td>{format_unix(session.last_seen_at)}</td>
            <td>{children()}</td>
        </tr>
    }
}

#[component]
pub fn AccountSessionsPage() -> impl IntoView {
    view! {
        <Title text="Your sessions"/>
        <h1>"Your sessions"</h1>
        <RequireLogin children=|_user| view! { <MySessions/> }/>
    }
}

#[component]
fn MySessions() -> impl IntoView {
    let sessions = Resource::new(session_version, |_| my_sessions());
    let revoke = ServerAction::<RevokeMySession>::new();
    let revoke_others = ServerAction::<RevokeOtherSessions>::new();
    refresh_after(revoke);
    refresh_after(revoke_others);
    view! {
        <p>"These are the devices where you are logged in. End any you do not recognise. "
            <a href="/account/password">"Change your password"</a></p>
        <ActionMessage action=revoke/>
        <ActionMessage action=revoke_others/>
        <ActionForm action=revoke_others>
            <button type="submit" data-testid="revoke-others">"Sign out everywhere else"</button>
        </ActionForm>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match sessions.await {
                    Err(e) => view! { <p class="error">{error_message(&e)}</p> }.into_any(),
                    Ok(sessions) => view! {
                        <table>
                            <thead><tr><th scope="col">"Device"</th><th scope="col">"IP address"</th>
                                <th scope="col">"Signed in"</th><th scope="col">"Last active"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                            <tbody>
                                {sessions.into_iter().map(|s| {
                                    let handle = s.handle.clone();
                                    let current = s.current;
                                    view! {
                                        <SessionRow session=s>
                                            {(!current).then(|| view! {
                                                <ActionForm action=revoke>
                                                    <input type="hidden" name="session" value=handle.clone()/>
                                                    <button type="submit" class="link">"End this session"</button>
                                                </ActionForm>
                                            })}
                                        </SessionRow>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
pub fn PasswordPage() -> impl IntoView {
    let change = ServerAction::<ChangePassword>::new();
    refresh_after(change);
    view! {
        <Title text="Change password"/>
        <h1>"Change your password"</h1>
        <RequireLogin children=move |_user| view! {
            <p>"Changing your password signs you out on every other device."</p>
            <ActionMessage action=change/>
            <ActionForm action=change attr:class="stack">
                <label for="current-password">"Current password"</label>
                <input id="current-password" type="password" name="current" autocomplete="current-password"
                    required=true maxlength="1024"/>
                <label for="new-password">"New password"</label>
                <input id="new-password" type="password" name="new" autocomplete="new-password" required=true
                    minlength=MIN_PASSWORD_CHARS.to_string() maxlength="1024"/>
                <button type="submit">"Change password"</button>
            </ActionForm>
        }/>
    }
}

#[component]
pub fn AdminSessionsPage() -> impl IntoView {
    view! {
        <Title text="All sessions"/>
        <h1>"All sessions"</h1>
        <RequireLogin children=|_user| view! { <AdminSessions/> }/>
    }
}

#[component]
fn AdminSessions() -> impl IntoView {
    let query = use_query_map();
    let email = move || query.read().get("email").unwrap_or_default();
    let page = move || query.read().get("page").unwrap_or_default();
    let data = Resource::new(
        move || (email(), page(), session_version()),
        |(email, page, _)| admin_sessions(Some(email), Some(page)),
    );
    let revoke = ServerAction::<AdminRevokeSession>::new();
    let revoke_user = ServerAction::<AdminRevokeUserSessions>::new();
    refresh_after(revoke);
    refresh_after(revoke_user);
    view! {
        <ActionMessage action=revoke/>
        <ActionMessage action=revoke_user/>
        <form method="get" action="/admin/sessions" class="catalog-filter" role="search">
            <label for="session-email">"Email"</label>
            <input id="session-email" type="search" name="email" value=email maxlength="254"/>
            <button type="submit">"Filter"</button>
        </form>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Err(e) => {
                        crate::pages::set_status(403);
                        view! { <p class="error" data-testid="forbidden">{error_message(&e)}</p> }.into_any()
                    }
                    Ok(data) => {
                        let filter = email();
                        let link = move |p: usize| {
                            let mut query = form_urlencoded::Serializer::new(String::new());
                            if !filter.is_empty() {
                                query.append_pair("email", &filter);
                            }
                            query.append_pair("page", &p.to_string());
                            format!("/admin/sessions?{}", query.finish())
                        };
                        let (page, pages) = (data.page.max(1) as usize, data.pages.max(1) as usize);
                        view! {
                            <p data-testid="session-total">{format!("{} live sessions · page {} of {}", data.total, data.page, data.pages)}</p>
                            <table>
                                <thead><tr><th scope="col">"User"</th><th scope="col">"Device"</th><th scope="col">"IP address"</th>
                                    <th scope="col">"Signed in"</th><th scope="col">"Last active"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                                <tbody>
                                    {data.sessions.into_iter().map(|s| {
                                        let handle = s.handle.clone();
                                        let user_id = s.user_id.to_string();
                                        let email = s.email.clone();
                                        view! {
                                            <SessionRow session=s show_email=true>
                                                <ActionForm action=revoke>
                                                    <input type="hidden" name="session" value=handle.clone()/>
                                                    <button type="submit" class="link" data-testid="revoke-session">"Revoke"</button>
                                                </ActionForm>
                                                <ActionForm action=revoke_user>
                                                    <input type="hidden" name="user_id" value=user_id.clone()/>
                                                    <button type="submit" class="link"
                                                        aria-label=format!("Revoke all of this user: {email}")>"Revoke all of this user"</button>
                                                </ActionForm>
                                            </SessionRow>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <Pager page pages link/>
                            <h2>"Audit log"</h2>
                            <table>
                                <thead><tr><th scope="col">"When"</th><th scope="col">"Admin"</th><th scope="col">"Action"</th>
                                    <th scope="col">"User"</th><th scope="col">"Sessions ended"</th></tr></thead>
                                <tbody>
                                    {data.audit.into_iter().map(|a| view! {
                                        <tr data-testid="audit-row">
                                            <td>{format_unix(a.at)}</td><td>{a.actor_email}</td><td>{a.action}</td>
                                            <td>{a.target_email.unwrap_or_default()}</td><td>{a.sessions_ended}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any()
                    }
                }
            })}
        </Suspense>
    }
}
