//! Accounts: register, log in, log out, who am I.

use super::ShopError;
use crate::model::{ActionReply, Me};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
#[cfg(feature = "ssr")]
use {
    crate::model::{
        check_new_password, safe_next, Email, Flash, SecurityEventKind as Event, UserView,
    },
    crate::server::{
        metrics::{LoginOutcome, Rotation},
        request::{
            client_ip, client_network, context_and_session, flash_for_form, form_redirect,
            hashing_slot, log_security_event, reject_with, too_many, user_agent,
        },
        session::{self, AuthUser},
        users,
    },
    http::StatusCode,
};

#[cfg(feature = "ssr")]
async fn reject_keeping_email(status: StatusCode, message: String, email: &str) -> ShopError {
    let mut flash = Flash::error(message);
    flash.email = Some(email.chars().take(254).collect());
    reject_with(status, flash).await
}

/// The security log's word for an attempt refused unchecked, after too many failures.
#[cfg(feature = "ssr")]
pub(super) const THROTTLED: &str = "Refused unchecked: too many failed attempts";

/// One message for an unknown email and a wrong password, so neither can be told apart.
#[cfg(feature = "ssr")]
const LOGIN_FAILED: &str = "Wrong email or password.";

/// Logs the user in on this session (new registry handle, new session ID, cart kept) and
/// answers with where to go next.
#[cfg(feature = "ssr")]
async fn complete_login(
    user: &users::UserRow,
    next: &str,
    message: String,
    reason: Rotation,
    remembered: bool,
) -> Result<ActionReply, ShopError> {
    use crate::server::session::registry;
    let (ctx, session) = context_and_session().await?;
    if let Some(previous) = session::current_user(&session).await? {
        // The previous login's stored record goes with its row; this request's copy (cart
        // included) is stored again under the new ID below.
        registry::end_login(&ctx.sessions, &previous.handle, session::EndReason::Logout).await?;
    }
    let handle = session::new_handle();
    let ip = client_ip();
    registry::record_login(
        &ctx.sessions,
        session::NewSession {
            handle: &handle,
            user_id: user.id,
            ip: &ip,
            user_agent: &user_agent(),
            remembered,
        },
        &user.email,
    )
    .await?;
    let auth = AuthUser {
        id: user.id,
        email: user.email.clone(),
        is_admin: user.is_admin,
        handle: handle.clone(),
        logged_in_at: crate::server::session::clock::now(),
        remembered,
        client: Some(crate::server::request::bound_client()),
    };
    session::cycle_session_on_login(&session, &auth).await?;
    tracing::info!(%handle, user_id = user.id, "session rotated on login");
    let detail = match (reason, remembered) {
        (Rotation::Registration, _) => "Account created",
        (_, true) => "Kept signed in",
        (_, false) => "Until the browser closes",
    };
    log_security_event(&ctx, user.id, Event::Login, detail).await;
    ctx.metrics.rotation(reason);
    let next = safe_next(next);
    flash_for_form(Flash::success(message.clone())).await?;
    form_redirect(&next);
    Ok(ActionReply {
        message,
        redirect_to: Some(next),
    })
}

/// `POST /api/register` — `email`, `password`. Logs the new user in.
#[server(endpoint = "register")]
pub async fn register(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<ActionReply, ShopError> {
    use crate::server::throttle;
    let (ctx, _) = context_and_session().await?;
    let parsed = match Email::parse(&email) {
        Ok(e) => e,
        Err(e) => {
            return Err(reject_keeping_email(
                StatusCode::UNPROCESSABLE_ENTITY,
                e.to_string(),
                &email,
            )
            .await)
        }
    };
    if let Err(e) = check_new_password(&password) {
        return Err(
            reject_keeping_email(StatusCode::UNPROCESSABLE_ENTITY, e.to_string(), &email).await,
        );
    }
    // Every attempt that could tell whether an email is taken is counted per IP, before the
    // answer (README: "Registration and account enumeration").
    let ip = client_network();
    let slot = hashing_slot(&ctx, Some(&email)).await?;
    let free = ctx.policy.registrations_per_address;
    let wait =
        throttle::reserve_registration(&ctx.db, &ip, free, crate::server::session::clock::now())
            .await?;
    if wait > 0 {
        return Err(too_many(wait, "registrations from your network", Some(&email)).await);
    }
    let hash = ctx.passwords.hash(password).await?;
    drop(slot);
    let user = match users::create(&ctx.db, &parsed, &hash, false).await {
        Ok(user) => user,
        Err(users::CreateUserError::EmailTaken) => {
            return Err(reject_keeping_email(
                StatusCode::CONFLICT,
                "An account with this email already exists. Try logging in.".into(),
                &email,
            )
            .await)
        }
        Err(e) => return Err(ShopError::unavailable(e)),
    };
    let message = format!("Welcome, {}! Your account is ready.", user.email);
    complete_login(
        &user,
        next.as_deref().unwrap_or("/"),
        message,
        Rotation::Registration,
        false,
    )
    .await
}

/// `POST /api/login` — `email`, `password`, optional `next`, optional `remember` ("Keep me
/// signed in": `on`, `true` or `1`, in any case, tick it; a checkbox sends `on`; anything else
/// leaves it unticked).
#[server(endpoint = "login")]
pub async fn login(
    email: String,
    password: String,
    next: Option<String>,
    remember: Option<String>,
) -> Result<ActionReply, ShopError> {
    let remembered = crate::model::ticked(remember.as_deref());
    use crate::server::throttle;
    let (ctx, _) = context_and_session().await?;
    let ip = client_network();
    if password.len() > crate::model::MAX_PASSWORD_BYTES {
        ctx.metrics.login(LoginOutcome::Failed);
        return Err(
            reject_keeping_email(StatusCode::UNAUTHORIZED, LOGIN_FAILED.into(), &email).await,
        );
    }
    let slot = hashing_slot(&ctx, Some(&email)).await.inspect_err(|_| {
        ctx.metrics.login(LoginOutcome::Throttled);
    })?;
    // The attempt is counted before the password is checked (and given back if it was right):
    // concurrent guesses are throttled exactly like sequential ones. Only clients that have
    // been failing wait; the check costs no password hashing.
    let now = crate::server::session::clock::now();
    let reserved = throttle::reserve_login(&ctx.db, &email, &ip, now).await?;
    let user = match Email::parse(&email) {
        Ok(parsed) => users::find_by_email(&ctx.db, &parsed).await?,
        Err(_) => None,
    };
    let attempt = match reserved {
        throttle::Reserved::Go(attempt) => attempt,
        throttle::Reserved::Wait(wait) => {
            ctx.metrics.login(LoginOutcome::Throttled);
            if let Some(user) = &user {
                log_security_event(&ctx, user.id, Event::LoginFailed, THROTTLED).await;
            }
            return Err(too_many(wait, "failed attempts", Some(&email)).await);
        }
    };
    // Verify against a dummy hash when there is no such user, so timing tells nothing.
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let valid = ctx.passwords.verify(password, stored).await?;
    drop(slot);
    match user {
        Some(user) if valid => {
            attempt.succeeded().await?;
            let message = format!("Logged in as {}.", user.email);
            let reply = complete_login(
                &user,
                next.as_deref().unwrap_or("/"),
                message,
                Rotation::Login,
                remembered,
            )
            .await?;
            ctx.metrics.login(LoginOutcome::Succeeded);
            Ok(reply)
        }
        _ => {
            attempt.failed(now).await?;
            ctx.metrics.login(LoginOutcome::Failed);
            if let Some(user) = &user {
                log_security_event(&ctx, user.id, Event::LoginFailed, "Wrong password").await;
            }
            Err(reject_keeping_email(StatusCode::UNAUTHORIZED, LOGIN_FAILED.into(), &email).await)
        }
    }
}

/// `POST /api/logout` — destroys the session on the server and clears the cookie.
#[server(endpoint = "logout")]
pub async fn logout() -> Result<ActionReply, ShopError> {
    let (ctx, session) = context_and_session().await?;
    if let Some(user) = session::current_user(&session).await? {
        // Row ended and stored session deleted together: a logout cancelled halfway can leave
        // no stored login behind.
        crate::server::session::registry::end_login(
            &ctx.sessions,
            &user.handle,
            crate::server::session::EndReason::Logout,
        )
        .await?;
        tracing::info!(handle = %user.handle, "session destroyed on logout");
        log_security_event(&ctx, user.id, Event::Logout, "").await;
        ctx.metrics.logout();
    }
    session::destroy_session(&session).await?;
    form_redirect("/");
    Ok(ActionReply {
        message: "You are logged out.".into(),
        redirect_to: Some("/".into()),
    })
}

/// `POST /api/account/confirm` — `password`, optional `next` (a same-site path): the password
/// entered again opens the sudo window for sensitive actions, then back to `next`. Wrong
/// passwords count like failed logins (per account and client network; throttled alike).
#[server(endpoint = "account/confirm")]
pub async fn confirm_password(
    password: String,
    next: Option<String>,
) -> Result<ActionReply, ShopError> {
    use crate::server::request::{login_ended, reject, require_user};
    use crate::server::session::{change::enter_sudo, SessionError};
    use crate::server::throttle;
    let (ctx, session) = context_and_session().await?;
    let me = require_user(&session).await?;
    let ip = client_network();
    let wrong = "That is not your password.";
    if password.len() > crate::model::MAX_PASSWORD_BYTES {
        return Err(reject(StatusCode::UNAUTHORIZED, wrong).await);
    }
    let slot = hashing_slot(&ctx, None).await?;
    let now = crate::server::session::clock::now();
    let attempt = match throttle::reserve_login(&ctx.db, &me.email, &ip, now).await? {
        throttle::Reserved::Go(attempt) => attempt,
        throttle::Reserved::Wait(wait) => {
            log_security_event(&ctx, me.id, Event::LoginFailed, THROTTLED).await;
            return Err(too_many(wait, "failed attempts", None).await);
        }
    };
    let stored = users::password_hash(&ctx.db, me.id).await?;
    let valid = ctx.passwords.verify(password, stored).await?;
    drop(slot);
    if !valid {
        attempt.failed(now).await?;
        tracing::info!(handle = %me.handle, "password confirmation failed");
        log_security_event(
            &ctx,
            me.id,
            Event::LoginFailed,
            "Wrong password, confirming",
        )
        .await;
        return Err(reject(StatusCode::UNAUTHORIZED, wrong).await);
    }
    attempt.succeeded().await?;
    let client = crate::server::request::bound_client();
    match enter_sudo(&ctx.sessions, &session, &client, now).await {
        Ok(true) => {}
        // Another request moved the login to another client meanwhile (see `take_sudo`).
        Ok(false) => {
            return Err(reject(
                StatusCode::CONFLICT,
                "This session was just used from another browser or network. Please confirm \
                 again.",
            )
            .await)
        }
        Err(SessionError::LoginEnded) => return Err(login_ended(&session).await),
        Err(error) => return Err(error.into()),
    }
    tracing::info!(handle = %me.handle, "password confirmed: sudo window opened");
    log_security_event(&ctx, me.id, Event::Confirmed, "").await;
    let next = safe_next(next.as_deref().unwrap_or("/"));
    let message = "Password confirmed.".to_string();
    flash_for_form(Flash::success(message.clone())).await?;
    form_redirect(&next);
    Ok(ActionReply {
        message,
        redirect_to: Some(next),
    })
}

/// `GET /api/me`.
#[server(name = GetMe, endpoint = "me", input = GetUrl)]
pub async fn me() -> Result<Me, ShopError> {
    let (_, session) = context_and_session().await?;
    let user = session::current_user(&session).await?;
    Ok(Me {
        user: user.map(|u| UserView {
            id: u.id,
            email: u.email,
            is_admin: u.is_admin,
        }),
    })
}
