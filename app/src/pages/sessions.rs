//! `/account/sessions` (your own sessions), `/account/password` and `/admin/sessions`.

use crate::api::sessions::{
    admin_sessions, my_sessions, AdminRevokeSession, AdminRevokeUserSessions, ChangePassword,
    RevokeMySession, RevokeOtherSessions,
};
use crate::components::pager::Pager;
use crate::components::require_login::RequireLogin;
use crate::model::{format_unix, SessionInfo, SessionPage, MIN_PASSWORD_CHARS};
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
                {session.current.then(|| view! { <strong class="current">" (this device)"</strong> })}
                <br/><span class="hint" data-testid="session-kind"
                    data-remembered=session.remembered.to_string()>
                    {if session.remembered { "Kept signed in" } else { "Until the browser closes" }}
                </span></td>
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
    let sessions = Resource::new(|| (), |_| my_sessions());
    let revoke = ServerAction::<RevokeMySession>::new();
    let revoke_others = ServerAction::<RevokeOtherSessions>::new();
    view! {
        <p>"These are the devices where you are logged in. End any you do not recognise. "
            <a href="/account/password">"Change your password"</a></p>
        <ActionForm action=revoke_others>
            <button type="submit" data-testid="revoke-others">"Sign out everywhere else"</button>
        </ActionForm>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match sessions.await {
                    Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
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
    view! {
        <Title text="Change password"/>
        <h1>"Change your password"</h1>
        <RequireLogin children=move |_user| view! {
            <p>"Changing your password signs you out on every other device."</p>
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

/// The admin list's URL state: filter, pages, and the revocation waiting for confirmation.
#[derive(Clone, Debug, Default, PartialEq)]
struct AdminView {
    email: String,
    page: String,
    audit_page: String,
    /// `?confirm=<handle>`: revoking this session is asked for.
    confirm: String,
    /// `?confirm_user=<id>`: revoking every session of this user is asked for.
    confirm_user: String,
}

impl AdminView {
    /// This view's URL with `change` applied (empty parameters left out).
    fn href(&self, change: impl FnOnce(&mut AdminView)) -> String {
        let mut view = self.clone();
        change(&mut view);
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in [
            ("email", &view.email),
            ("page", &view.page),
            ("audit_page", &view.audit_page),
            ("confirm", &view.confirm),
            ("confirm_user", &view.confirm_user),
        ] {
            if !value.is_empty() {
                query.append_pair(key, value);
            }
        }
        let query = query.finish();
        if query.is_empty() {
            "/admin/sessions".to_string()
        } else {
            format!("/admin/sessions?{query}")
        }
    }

    /// The same list, with no revocation asked for.
    fn cancel(&self) -> String {
        self.href(|v| {
            v.confirm.clear();
            v.confirm_user.clear();
        })
    }
}

#[component]
fn AdminSessions() -> impl IntoView {
    let query = use_query_map();
    let state = Memo::new(move |_| {
        let query = query.read();
        let get = |key: &str| query.get(key).unwrap_or_default();
        AdminView {
            email: get("email"),
            page: get("page"),
            audit_page: get("audit_page"),
            confirm: get("confirm"),
            confirm_user: get("confirm_user"),
        }
    });
    let data = Resource::new(
        move || {
            let s = state.get();
            (s.email, s.page, s.audit_page)
        },
        |(email, page, audit_page)| admin_sessions(Some(email), Some(page), Some(audit_page)),
    );
    let revoke = ServerAction::<AdminRevokeSession>::new();
    let revoke_user = ServerAction::<AdminRevokeUserSessions>::new();
    view! {
        <form method="get" action="/admin/sessions" class="catalog-filter" role="search">
            <label for="session-email">"Email"</label>
            <input id="session-email" type="search" name="email" value=move || state.read().email.clone() maxlength="254"/>
            <button type="submit">"Filter"</button>
        </form>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            // Tracks the URL state too: asking for a confirmation (`?confirm=`) loads nothing
            // new, but must show the question.
            {move || {
                let view_state = state.get();
                Suspend::new(async move {
                match data.await {
                    Err(e) => {
                        crate::pages::set_status(403);
                        view! { <p class="error" data-testid="forbidden">{e.to_string()}</p> }.into_any()
                    }
                    Ok(data) => view! {
                        <AdminList data state=view_state revoke revoke_user/>
                    }.into_any(),
                }
            })}}
        </Suspense>
    }
}

/// The second step of a revocation: the question, and `children` (the form that does it).
#[component]
fn Confirmation(question: String, children: Children) -> impl IntoView {
    view! {
        <div class="confirm" role="group" aria-labelledby="confirm-question" data-testid="confirm-revocation">
            <p id="confirm-question">{question}</p>
            {children()}
        </div>
    }
}

/// The confirmation asked for (if its session or user is on this page), the list, the audit log.
#[component]
fn AdminList(
    data: SessionPage,
    state: AdminView,
    revoke: ServerAction<AdminRevokeSession>,
    revoke_user: ServerAction<AdminRevokeUserSessions>,
) -> impl IntoView {
    // Revoking is two steps, both plain HTML: a link asks (`?confirm=…`), this form does it.
    // Once done, the session is no longer listed, and the question goes with it.
    let cancel = state.cancel();
    let confirmation = if let Some(s) = data
        .sessions
        .iter()
        .find(|s| !state.confirm.is_empty() && s.handle == state.confirm)
    {
        let question = format!(
            "Revoke the session of {} on {} ({}), last active {}?",
            s.email,
            s.device,
            s.ip,
            format_unix(s.last_seen_at)
        );
        let handle = s.handle.clone();
        Some(view! {
            <Confirmation question>
                <ActionForm action=revoke attr:class="confirm__actions">
                    <input type="hidden" name="session" value=handle/>
                    <button type="submit" data-testid="confirm-revoke">"Revoke this session"</button>
                    <a href=cancel.clone()>"Cancel"</a>
                </ActionForm>
            </Confirmation>
        }.into_any())
    } else if let Some(s) = data
        .sessions
        .iter()
        .find(|s| !state.confirm_user.is_empty() && s.user_id.to_string() == state.confirm_user)
    {
        let question = format!(
            "Revoke every session of {}? They are signed out on all their devices.",
            s.email
        );
        let user_id = s.user_id.to_string();
        Some(view! {
            <Confirmation question>
                <ActionForm action=revoke_user attr:class="confirm__actions">
                    <input type="hidden" name="user_id" value=user_id/>
                    <button type="submit" data-testid="confirm-revoke">"Revoke all their sessions"</button>
                    <a href=cancel.clone()>"Cancel"</a>
                </ActionForm>
            </Confirmation>
        }.into_any())
    } else {
        None
    };
    let (page, pages) = (data.page.max(1) as usize, data.pages.max(1) as usize);
    let list_link = {
        let state = state.clone();
        move |p: usize| {
            state.href(|v| {
                v.page = p.to_string();
                v.confirm.clear();
                v.confirm_user.clear();
            })
        }
    };
    let (audit_page, audit_pages) = (
        data.audit_page.max(1) as usize,
        data.audit_pages.max(1) as usize,
    );
    let audit_link = {
        let state = state.clone();
        move |p: usize| {
            state.href(|v| {
                v.audit_page = p.to_string();
                v.confirm.clear();
                v.confirm_user.clear();
            })
        }
    };
    let rows = data.sessions.into_iter().map(|s| {
        let ask_one = state.href(|v| { v.confirm = s.handle.clone(); v.confirm_user.clear(); });
        let ask_all = state.href(|v| { v.confirm_user = s.user_id.to_string(); v.confirm.clear(); });
        let email = s.email.clone();
        view! {
            <SessionRow session=s show_email=true>
                <div class="row-actions">
                    <a href=ask_one data-testid="revoke-session">"Revoke"</a>
                    <a href=ask_all data-testid="revoke-user"
                        aria-label=format!("Revoke all of this user: {email}")>"Revoke all of this user"</a>
                </div>
            </SessionRow>
        }
    }).collect_view();
    let audit = if data.audit_total == 0 {
        view! { <p class="empty" data-testid="audit-empty">"No sessions have been revoked yet."</p> }.into_any()
    } else if data.audit.is_empty() {
        let first = audit_link(1);
        view! {
            <p class="empty" data-testid="audit-empty">
                {format!("The audit log has {audit_pages} pages, not {audit_page}. ")}
                <a href=first>"Go to its first page"</a>
            </p>
        }
        .into_any()
    } else {
        view! {
            <p data-testid="audit-total">{format!("{} entries · page {} of {}", data.audit_total, audit_page, audit_pages)}</p>
            <table>
                <thead><tr><th scope="col">"When"</th><th scope="col">"By"</th><th scope="col">"Action"</th>
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
            <Pager page=audit_page pages=audit_pages link=audit_link label="Audit log pages"/>
        }.into_any()
    };
    view! {
        {confirmation}
        <p data-testid="session-total">{format!("{} live sessions · page {} of {}", data.total, data.page, data.pages)}</p>
        <table class="sessions">
            <thead><tr><th scope="col">"User"</th><th scope="col">"Device"</th><th scope="col">"IP address"</th>
                <th scope="col">"Signed in"</th><th scope="col">"Last active"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
        <Pager page pages link=list_link label="Session list pages"/>
        <h2>"Audit log"</h2>
        {audit}
    }
}

/// `/admin/api-keys`: the session API's keys — listed, created (shown once), revoked. Creating
/// and revoking need a recent password (sudo mode).
#[component]
pub fn AdminApiKeysPage() -> impl IntoView {
    view! {
        <Title text="API keys"/>
        <h1>"API keys"</h1>
        <RequireLogin children=|_user| view! { <AdminApiKeys/> }/>
    }
}

#[component]
fn AdminApiKeys() -> impl IntoView {
    use crate::api::api_keys::{admin_api_keys, CreateApiKey, RevokeApiKey};
    let keys = Resource::new(|| (), |_| admin_api_keys());
    let create = ServerAction::<CreateApiKey>::new();
    let revoke = ServerAction::<RevokeApiKey>::new();
    view! {
        <p>"Keys open the session API ("<code>"/api/v1"</code>") for automation: "
            <a href="/api/v1/openapi.json">"its OpenAPI document"</a>". A key is shown once, when it is created."</p>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match keys.await {
                    Err(e) => {
                        crate::pages::set_status(403);
                        view! { <p class="error" data-testid="forbidden">{e.to_string()}</p> }.into_any()
                    }
                    Ok(keys) => view! {
                        <ActionForm action=create attr:class="stack">
                            <label for="api-key-name">"Name"</label>
                            <input id="api-key-name" type="text" name="name" required=true maxlength="64"
                                pattern="[A-Za-z0-9._\\-]+" aria-describedby="api-key-name-hint"/>
                            <p id="api-key-name-hint" class="hint">"Letters, digits, '-', '_' or '.', for example recovery-desk."</p>
                            <div class="checkbox">
                                <input id="api-key-read-only" type="checkbox" name="read_only" value="on"/>
                                <label for="api-key-read-only">"Read-only (may list sessions, not end them)"</label>
                            </div>
                            <button type="submit">"Create key"</button>
                        </ActionForm>
                        {if keys.is_empty() {
                            view! { <p class="empty" data-testid="api-keys-empty">"No API keys yet."</p> }.into_any()
                        } else {
                            view! {
                                <table>
                                    <thead><tr><th scope="col">"Name"</th><th scope="col">"Key"</th><th scope="col">"Access"</th>
                                        <th scope="col">"Created"</th><th scope="col">"Last used"</th>
                                        <th scope="col"><span class="visually-hidden">"Actions"</span></th></tr></thead>
                                    <tbody>
                                        {keys.into_iter().map(|k| {
                                            let name = k.name.clone();
                                            view! {
                                                <tr data-testid="api-key-row" data-name=k.name.clone()
                                                    data-revoked=k.revoked_at.is_some().to_string()>
                                                    <td>{k.name.clone()}</td>
                                                    <td><code>{format!("{}…", k.prefix)}</code></td>
                                                    <td>{if k.read_only { "Read-only" } else { "Read and revoke" }}</td>
                                                    <td>{format_unix(k.created_at)}</td>
                                                    <td>{k.last_used_at.map_or("Never".to_string(), format_unix)}</td>
                                                    <td>{match k.revoked_at {
                                                        Some(at) => view! { <span>{format!("Revoked {}", format_unix(at))}</span> }.into_any(),
                                                        None => view! {
                                                            <ActionForm action=revoke>
                                                                <input type="hidden" name="name" value=name.clone()/>
                                                                <button type="submit" class="link"
                                                                    aria-label=format!("Revoke the key {name}")>"Revoke"</button>
                                                            </ActionForm>
                                                        }.into_any(),
                                                    }}</td>
                                                </tr>
                                            }
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            }.into_any()
                        }}
                    }.into_any(),
                }
            })}
        </Suspense>
    }
}
