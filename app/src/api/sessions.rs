//! Sessions: a user's own (list, end one, end all others, change password) and the admin's
//! view of everyone's (list, revoke one, revoke all of a user, audit log). Every function
//! checks who is asking itself: a hidden button is not authorization.

use super::ShopError;
use crate::model::{ActionReply, SecurityLogPage, SessionInfo, SessionPage};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
#[cfg(feature = "ssr")]
use {
    crate::model::{check_new_password, Flash, SecurityEventKind as Event},
    crate::server::{
        metrics::{Revocation, Rotation},
        request::{
            client_network, context_and_session, flash_for_form, form_redirect, log_security_event,
            log_security_event_by_other, login_ended, reject, require_sudo, require_user, too_many,
        },
        session::registry,
        session::EndReason,
        session::{self, AuthUser},
        throttle, AppContext,
    },
    http::StatusCode,
    tower_sessions::Session,
};

/// Rows per page on the admin list.
pub const SESSIONS_PER_PAGE: i64 = 50;

/// Entries per page of the audit log.
pub const AUDIT_PER_PAGE: i64 = 20;

/// "1 session", "3 sessions".
#[cfg(feature = "ssr")]
fn sessions(count: usize) -> String {
    match count {
        1 => "1 session".to_string(),
        n => format!("{n} sessions"),
    }
}

/// The caller, if they are an admin right now (checked against the database, not the session).
#[cfg(feature = "ssr")]
async fn require_admin(ctx: &AppContext, session: &Session) -> Result<AuthUser, ShopError> {
    let user = require_user(session).await?;
    let is_admin = crate::server::users::is_admin(&ctx.db, user.id).await?;
    if is_admin == Some(true) {
        Ok(user)
    } else {
        Err(reject(StatusCode::FORBIDDEN, "This page is for shop admins only.").await)
    }
}

/// The caller's login as the actor of an action (see `session::Actor`).
#[cfg(feature = "ssr")]
fn actor(me: &AuthUser, admin: bool) -> session::Actor<'_> {
    session::Actor {
        handle: &me.handle,
        user_id: me.id,
        admin,
    }
}

/// The caller's answer when a revocation of one session did not end it: 401 if the caller's
/// own login had ended first (nothing was done), 404 if no such live session matched.
#[cfg(feature = "ssr")]
async fn one_session_ended(revoked: registry::Revoked, session: &Session) -> Result<(), ShopError> {
    match revoked {
        registry::Revoked::ActorEnded => Err(login_ended(session).await),
        registry::Revoked::Ended { count: 0, .. } => Err(reject(
            StatusCode::NOT_FOUND,
            "That session does not exist or has already ended.",
        )
        .await),
        registry::Revoked::Ended { .. } => Ok(()),
    }
}

/// The answer after a revocation. When the caller's own session was among those ended, they
/// are logged out properly (store record gone, cookie cleared) and sent home; otherwise they
/// get `message`.
#[cfg(feature = "ssr")]
async fn reply_after_revocation(
    ctx: &AppContext,
    session: &Session,
    me: &AuthUser,
    message: String,
) -> Result<ActionReply, ShopError> {
    let still_live = registry::owner_of(&ctx.sessions, &me.handle)
        .await?
        .is_some();
    if !still_live {
        session::destroy_session(session).await?;
        form_redirect("/");
        return Ok(ActionReply {
            message: "You are logged out.".into(),
            redirect_to: Some("/".into()),
        });
    }
    flash_for_form(Flash::success(message.clone())).await?;
    Ok(ActionReply::message(message))
}

/// Events per page of an account's security log.
pub const SECURITY_EVENTS_PER_PAGE: i64 = 25;

/// One page of the caller's own security log, newest first.
#[server(endpoint = "account/security", input = GetUrl)]
pub async fn my_security_log(page: Option<String>) -> Result<SecurityLogPage, ShopError> {
    let (ctx, session) = context_and_session().await?;
    let me = require_user(&session).await?;
    let page = page
        .and_then(|p| p.trim().parse::<i64>().ok())
        .unwrap_or(1)
        .clamp(1, 1_000_000);
    let (events, total) =
        crate::server::session::security_log::page(&ctx.db, me.id, page, SECURITY_EVENTS_PER_PAGE)
            .await?;
    let pages = ((total + SECURITY_EVENTS_PER_PAGE - 1) / SECURITY_EVENTS_PER_PAGE).max(1);
    Ok(SecurityLogPage {
        events,
        total,
        page,
        pages,
    })
}

/// The caller's live sessions, the current one marked.
#[server(endpoint = "account/sessions", input = GetUrl)]
pub async fn my_sessions() -> Result<Vec<SessionInfo>, ShopError> {
    let (ctx, session) = context_and_session().await?;
    let me = require_user(&session).await?;
    registry::list_for_user(&ctx.sessions, &ctx.policy, me.id, Some(&me.handle))
        .await
        .map_err(ShopError::from)
}

/// `POST /api/account/sessions/revoke` — `session` (a handle of one of the caller's sessions).
#[server(endpoint = "account/sessions/revoke")]
pub async fn revoke_my_session(session: String) -> Result<ActionReply, ShopError> {
    let handle = session;
    let (ctx, session) = context_and_session().await?;
    let me = require_user(&session).await?;
    // The owner condition is part of the revocation itself: a guessed handle of someone
    // else's session matches nothing.
    let revoked = registry::revoke(
        &ctx.sessions,
        actor(&me, false),
        handle.trim(),
        Some(me.id),
        None,
    )
    .await?;
    one_session_ended(revoked, &session).await?;
    tracing::info!(handle = %handle.trim(), by = %me.handle, "session revoked by its owner");
    log_security_event(&ctx, me.id, Event::Revoked, "1 session ended by you").await;
    ctx.metrics.revoked(Revocation::SelfService, 1);
    let message = "The session was ended.".to_string();
    reply_after_revocation(&ctx, &session, &me, message).await
}

/// `POST /api/account/sessions/revoke-others` — sign out everywhere else.
#[server(endpoint = "account/sessions/revoke-others")]
pub async fn revoke_other_sessions() -> Result<ActionReply, ShopError> {
    let (ctx, session) = context_and_session().await?;
    let me = require_user(&session).await?;
    let ended =
        registry::end_other_sessions(&ctx.sessions, actor(&me, false), EndReason::Revoked, None)
            .await?;
    let Some(ended) = ended else {
        return Err(login_ended(&session).await);
    };
    tracing::info!(by = %me.handle, sessions = ended, "signed out everywhere else");
    if ended > 0 {
        let detail = format!(
            "{} ended by you (sign out everywhere else)",
            sessions(ended)
        );
        log_security_event(&ctx, me.id, Event::Revoked, &detail).await;
    }
    ctx.metrics.revoked(Revocation::SelfService, ended);
    let message = match ended {
        0 => "There were no other sessions.".to_string(),
        1 => "Signed out of 1 other session.".to_string(),
        n => format!("Signed out of {n} other sessions."),
    };
    flash_for_form(Flash::success(message.clone())).await?;
    Ok(ActionReply::message(message))
}

/// `POST /api/account/password` — `current`, `new`: ends every other session, rotates this ID.
#[server(endpoint = "account/password")]
pub async fn change_password(current: String, new: String) -> Result<ActionReply, ShopError> {
    let (ctx, session) = context_and_session().await?;
    let me = require_user(&session).await?;
    let wrong = "Your current password is not right.";
    if current.len() > crate::model::MAX_PASSWORD_BYTES {
        return Err(reject(StatusCode::UNAUTHORIZED, wrong).await);
    }
    let slot = crate::server::request::hashing_slot(&ctx, None).await?;
    // A password check like a login's: wrong passwords count in the same throttle (per account
    // and client network), or a stolen cookie could guess the password here without limit.
    let ip = client_network();
    let now = session::clock::now();
    let attempt = match throttle::reserve_login(&ctx.db, &me.email, &ip, now).await? {
        throttle::Reserved::Go(attempt) => attempt,
        throttle::Reserved::Wait(wait) => {
            log_security_event(&ctx, me.id, Event::LoginFailed, super::auth::THROTTLED).await;
            return Err(too_many(wait, "failed attempts", None).await);
        }
    };
    let stored = crate::server::users::password_hash(&ctx.db, me.id).await?;
    if !ctx.passwords.verify(current, stored).await? {
        attempt.failed(now).await?;
        let detail = "Wrong password, changing the password";
        log_security_event(&ctx, me.id, Event::LoginFailed, detail).await;
        return Err(reject(StatusCode::UNAUTHORIZED, wrong).await);
    }
    attempt.succeeded().await?;
    if let Err(e) = check_new_password(&new) {
        return Err(reject(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).await);
    }
    let hash = ctx.passwords.hash(new).await?;
    drop(slot);
    // The password, the other sessions and the check that this login is still live: one
    // transaction. The new ID is linked to the registry by the store, which refuses a login
    // whose row has ended meanwhile (see `session::store`).
    let ended = registry::end_other_sessions(
        &ctx.sessions,
        actor(&me, false),
        EndReason::PasswordChange,
        Some(&hash),
    )
    .await?;
    let Some(ended) = ended else {
        return Err(login_ended(&session).await);
    };
    session::rotate_id(&session).await?;
    // The current password was just entered: that opens the sudo window too.
    session::enter_sudo_in_memory(&session, session::clock::now()).await?;
    tracing::info!(handle = %me.handle, other_sessions_ended = ended, "password changed; session rotated");
    log_security_event(&ctx, me.id, Event::PasswordChanged, "").await;
    if ended > 0 {
        let detail = format!("{} ended by the password change", sessions(ended));
        log_security_event(&ctx, me.id, Event::Revoked, &detail).await;
    }
    ctx.metrics.revoked(Revocation::PasswordChange, ended);
    ctx.metrics.rotation(Rotation::PasswordChange);
    let message = "Your password is changed, and every other session is signed out.".to_string();
    flash_for_form(Flash::success(message.clone())).await?;
    form_redirect("/account/sessions");
    Ok(ActionReply::message(message))
}

/// One page of every live session, filtered by email; with one page of the audit log.
#[server(endpoint = "admin/sessions", input = GetUrl)]
pub async fn admin_sessions(
    email: Option<String>,
    page: Option<String>,
    audit_page: Option<String>,
) -> Result<SessionPage, ShopError> {
    let (ctx, session) = context_and_session().await?;
    let me = require_admin(&ctx, &session).await?;
    let filter = email
        .map(|e| e.trim().chars().take(254).collect::<String>())
        .filter(|e| !e.is_empty());
    let page = page
        .and_then(|p| p.trim().parse::<i64>().ok())
        .unwrap_or(1)
        .clamp(1, 1_000_000);
    let (sessions, total) = registry::list_live(
        &ctx.sessions,
        &ctx.policy,
        filter.as_deref(),
        page,
        SESSIONS_PER_PAGE,
        Some(&me.handle),
    )
    .await?;
    let audit_page = audit_page
        .and_then(|p| p.trim().parse::<i64>().ok())
        .unwrap_or(1)
        .clamp(1, 1_000_000);
    let (audit, audit_total) = registry::audit_page(&ctx.db, audit_page, AUDIT_PER_PAGE).await?;
    let pages = ((total + SESSIONS_PER_PAGE - 1) / SESSIONS_PER_PAGE).max(1);
    let audit_pages = ((audit_total + AUDIT_PER_PAGE - 1) / AUDIT_PER_PAGE).max(1);
    Ok(SessionPage {
        sessions,
        total,
        page,
        pages,
        audit,
        audit_total,
        audit_page,
        audit_pages,
    })
}

/// `POST /api/admin/sessions/revoke` — `session` (handle).
#[server(endpoint = "admin/sessions/revoke")]
pub async fn admin_revoke_session(session: String) -> Result<ActionReply, ShopError> {
    let handle = session.trim().to_string();
    let (ctx, session) = context_and_session().await?;
    let me = require_admin(&ctx, &session).await?;
    require_sudo(&ctx, &session).await?;
    let revoked = registry::revoke(
        &ctx.sessions,
        actor(&me, true),
        &handle,
        None,
        Some(&me.email),
    )
    .await?;
    let owner = match revoked {
        registry::Revoked::Ended { owner, .. } => owner,
        registry::Revoked::ActorEnded => None,
    };
    one_session_ended(revoked, &session).await?;
    tracing::info!(%handle, by = %me.handle, "session revoked by an admin");
    if let Some(owner) = owner {
        log_security_event_by_other(&ctx, owner, Event::Revoked, "1 session ended by an admin")
            .await;
    }
    ctx.metrics.revoked(Revocation::AdminOne, 1);
    let message = "The session was revoked.".to_string();
    reply_after_revocation(&ctx, &session, &me, message).await
}

/// `POST /api/admin/users/revoke-sessions` — `user_id`.
#[server(endpoint = "admin/users/revoke-sessions")]
pub async fn admin_revoke_user_sessions(user_id: String) -> Result<ActionReply, ShopError> {
    let (ctx, session) = context_and_session().await?;
    let me = require_admin(&ctx, &session).await?;
    let Ok(user_id) = user_id.trim().parse::<i64>() else {
        return Err(reject(StatusCode::BAD_REQUEST, "That user does not exist.").await);
    };
    let email = crate::server::users::email_of(&ctx.db, user_id).await?;
    let Some(email) = email else {
        return Err(reject(StatusCode::NOT_FOUND, "That user does not exist.").await);
    };
    require_sudo(&ctx, &session).await?;
    let revoked =
        registry::revoke_user_sessions(&ctx.sessions, actor(&me, true), &me.email, user_id).await?;
    let ended = match revoked {
        registry::Revoked::ActorEnded => return Err(login_ended(&session).await),
        registry::Revoked::Ended { count, .. } => count,
    };
    tracing::info!(user_id, by = %me.handle, sessions = ended, "all sessions of a user revoked by an admin");
    if ended > 0 {
        let detail = format!("{} ended by an admin", sessions(ended));
        log_security_event_by_other(&ctx, user_id, Event::Revoked, &detail).await;
    }
    ctx.metrics.revoked(Revocation::AdminAll, ended);
    let message = format!("Ended {ended} session(s) of {email}.");
    reply_after_revocation(&ctx, &session, &me, message).await
}
