//! The one-time message left for the next page by a plain-form action.

use super::ShopError;
use crate::model::Flash;
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;

/// Takes (and removes) the pending flash message, if any.
#[server(endpoint = "flash", input = GetUrl)]
pub async fn take_flash() -> Result<Option<Flash>, ShopError> {
    use crate::server::{request::context_and_session, session::change};
    let (ctx, session) = context_and_session().await?;
    change::take_flash(&ctx.sessions, &session)
        .await
        .map_err(ShopError::from)
}
