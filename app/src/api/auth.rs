//! Accounts: register, log in, log out, who am I.

use crate::model::{ActionReply, Me};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
#[cfg(feature = "ssr")]
use {
    crate::model::{check_new_password, safe_next, Email, Flash, UserView},
    crate::server::{
        internal, passwords,
        request::{context_and_session, flash_for_form, form_redirect, reject_with},
        session::{self, AuthUser},
        users,
    },
    http::StatusCode,
};

#[cfg(feature = "ssr")]
async fn reject_keeping_email(status: StatusCode, message: String, email: &str) -> ServerFnError {
    let mut flash = Flash::error(message);
    flash.email = Some(email.chars().take(254).collect());
    reject_with(status, flash).await
}

/// One message for an unknown email and a wrong password, so neither can be told apart.
#[cfg(feature = "ssr")]
const LOGIN_FAILED: &str = "Wrong email or password.";

/// Logs `user` in on this session and answers with where to go next.
#[cfg(feature = "ssr")]
async fn complete_login(
    user: AuthUser,
    next: &str,
    message: String,
) -> Result<ActionReply, ServerFnError> {
    let (_, session) = context_and_session().await?;
    session::cycle_session_on_login(&session, &user)
        .await
        .map_err(internal)?;
    tracing::info!(user_id = user.id, "session rotated on login");
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
) -> Result<ActionReply, ServerFnError> {
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
    let hash = passwords::hash_password(password).await.map_err(internal)?;
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
        Err(e) => return Err(internal(e)),
    };
    let auth = AuthUser {
        id: user.id,
        email: user.email.clone(),
        is_admin: user.is_admin,
    };
    complete_login(
        auth,
        next.as_deref().unwrap_or("/"),
        format!("Welcome, {}! Your account is ready.", user.email),
    )
    .await
}

/// `POST /api/login` — `email`, `password`, optional `next`.
#[server(endpoint = "login")]
pub async fn login(
    email: String,
    password: String,
    next: Option<String>,
) -> Result<ActionReply, ServerFnError> {
    let (ctx, _) = context_and_session().await?;
    if password.len() > crate::model::MAX_PASSWORD_BYTES {
        return Err(
            reject_keeping_email(StatusCode::UNAUTHORIZED, LOGIN_FAILED.into(), &email).await,
        );
    }
    let user = match Email::parse(&email) {
        Ok(parsed) => users::find_by_email(&ctx.db, &parsed)
            .await
            .map_err(internal)?,
        Err(_) => None,
    };
    // Verify against a dummy hash when there is no such user, so timing tells nothing.
    let stored = user.as_ref().map(|u| u.password_hash.clone());
    let valid = passwords::verify_password(password, stored)
        .await
        .map_err(internal)?;
    match user {
        Some(user) if valid => {
            let auth = AuthUser {
                id: user.id,
                email: user.email.clone(),
                is_admin: user.is_admin,
            };
            complete_login(
                auth,
                next.as_deref().unwrap_or("/"),
                format!("Logged in as {}.", user.email),
            )
            .await
        }
        _ => Err(reject_keeping_email(StatusCode::UNAUTHORIZED, LOGIN_FAILED.into(), &email).await),
    }
}

/// `POST /api/logout` — destroys the session on the server and clears the cookie.
#[server(endpoint = "logout")]
pub async fn logout() -> Result<ActionReply, ServerFnError> {
    let (_, session) = context_and_session().await?;
    session::destroy_session(&session).await.map_err(internal)?;
    tracing::info!("session destroyed on logout");
    form_redirect("/");
    Ok(ActionReply {
        message: "You are logged out.".into(),
        redirect_to: Some("/".into()),
    })
}

/// `GET /api/me`.
#[server(name = GetMe, endpoint = "me", input = GetUrl)]
pub async fn me() -> Result<Me, ServerFnError> {
    let (_, session) = context_and_session().await?;
    let user = session::current_user(&session).await.map_err(internal)?;
    Ok(Me {
        user: user.map(|u| UserView {
            id: u.id,
            email: u.email,
            is_admin: u.is_admin,
        }),
    })
}
