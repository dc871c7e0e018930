//! The session API's keys on `/admin/api-keys`: listed for admins; created and revoked by an
//! admin in sudo mode (a recent password). A new key is shown once, in the answer.

use super::ShopError;
use crate::model::{ActionReply, ApiKeyView};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
#[cfg(feature = "ssr")]
use {
    crate::model::Flash,
    crate::server::{
        api_keys::{self, ApiKeyError},
        request::{context_and_session, flash_for_form, reject, require_sudo, require_user},
        session::clock,
        AppContext,
    },
    http::StatusCode,
    tower_sessions::Session,
};

/// The caller, if they are an admin right now (checked against the database).
#[cfg(feature = "ssr")]
async fn require_admin(ctx: &AppContext, session: &Session) -> Result<(), ShopError> {
    let user = require_user(session).await?;
    match crate::server::users::is_admin(&ctx.db, user.id).await? {
        Some(true) => Ok(()),
        _ => Err(reject(StatusCode::FORBIDDEN, "This page is for shop admins only.").await),
    }
}

#[cfg(feature = "ssr")]
async fn refused(error: ApiKeyError) -> ShopError {
    match error {
        ApiKeyError::Db(e) => ShopError::unavailable(e),
        ApiKeyError::NameTaken(_) => reject(StatusCode::CONFLICT, error.to_string()).await,
        ApiKeyError::Unknown(_) => reject(StatusCode::NOT_FOUND, error.to_string()).await,
        ApiKeyError::BadName | ApiKeyError::AlreadyRevoked(_) => {
            reject(StatusCode::UNPROCESSABLE_ENTITY, error.to_string()).await
        }
    }
}

/// Every key (never a whole one), newest first.
#[server(endpoint = "admin/api-keys", input = GetUrl)]
pub async fn admin_api_keys() -> Result<Vec<ApiKeyView>, ShopError> {
    let (ctx, session) = context_and_session().await?;
    require_admin(&ctx, &session).await?;
    Ok(api_keys::list(&ctx.db).await?)
}

/// `POST /api/admin/api-keys/create` — `name`, optional `read_only` (a ticked checkbox).
#[server(endpoint = "admin/api-keys/create")]
pub async fn create_api_key(
    name: String,
    read_only: Option<String>,
) -> Result<ActionReply, ShopError> {
    let (ctx, session) = context_and_session().await?;
    require_admin(&ctx, &session).await?;
    require_sudo(&ctx, &session).await?;
    let read_only = crate::model::ticked(read_only.as_deref());
    let (key, info) = match api_keys::create(&ctx.db, &name, read_only, clock::now()).await {
        Ok(created) => created,
        Err(error) => return Err(refused(error).await),
    };
    tracing::info!(name = %info.name, read_only, "API key created on the admin page");
    let message = format!(
        "Created the API key \"{}\". Copy it now: it is not shown again. {key}",
        info.name
    );
    flash_for_form(Flash::success(message.clone())).await?;
    Ok(ActionReply::message(message))
}

/// `POST /api/admin/api-keys/revoke` — `name`.
#[server(endpoint = "admin/api-keys/revoke")]
pub async fn revoke_api_key(name: String) -> Result<ActionReply, ShopError> {
    let (ctx, session) = context_and_session().await?;
    require_admin(&ctx, &session).await?;
    require_sudo(&ctx, &session).await?;
    if let Err(error) = api_keys::revoke(&ctx.db, &name, clock::now()).await {
        return Err(refused(error).await);
    }
    tracing::info!(name = %name.trim(), "API key revoked on the admin page");
    let message = format!("Revoked the API key \"{}\".", name.trim());
    flash_for_form(Flash::success(message.clone())).await?;
    Ok(ActionReply::message(message))
}
