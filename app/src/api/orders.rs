//! Checkout and order history.

use super::ShopError;
use crate::model::{ActionReply, OrderDetail, OrderSummary};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
#[cfg(feature = "ssr")]
use {
    crate::model::Flash,
    crate::server::{
        cart::CartError,
        metrics::CheckoutOutcome,
        orders,
        request::{
            context_and_session, form_redirect, is_form_post, login_ended, reject, require_user,
        },
        session::SessionError,
        session::SessionTx,
    },
    http::StatusCode,
};

/// `POST /api/checkout` — places the order for the session's cart.
#[server(endpoint = "checkout")]
pub async fn checkout() -> Result<ActionReply, ShopError> {
    let (ctx, session) = context_and_session().await?;
    let user = require_user(&session).await?;
    if ctx.sessions.redis().is_some() {
        return checkout_on_redis(&ctx, &session, &user).await;
    }
    let actor = crate::server::session::Actor {
        handle: &user.handle,
        user_id: user.id,
        admin: false,
    };
    let mut tx = match SessionTx::begin_as(&ctx.sessions, &session, actor).await {
        Ok(tx) => tx,
        Err(SessionError::LoginEnded) => return Err(login_ended(&session).await),
        Err(error) => return Err(error.into()),
    };
    match orders::place(&mut tx, user.id).await {
        Ok(order_id) => {
            let message = format!("Thank you! Your order #{order_id} is placed.");
            if is_form_post() {
                tx.contents().set_flash(&Flash::success(message.clone()))?;
            }
            tx.commit(&session).await?;
            Ok(order_placed(&ctx, user.id, order_id, message))
        }
        Err(CartError::Rejected(message)) => {
            tx.rollback().await;
            ctx.metrics.checkout(CheckoutOutcome::Rejected);
            Err(reject(StatusCode::CONFLICT, message).await)
        }
        Err(other) => {
            tx.rollback().await;
            ctx.metrics.checkout(CheckoutOutcome::Failed);
            Err(other.into())
        }
    }
}

/// The answer once order `order_id` is placed (and the session changed): cached pages learn
/// that stock moved, the order page is where a plain form lands.
#[cfg(feature = "ssr")]
fn order_placed(
    ctx: &crate::server::AppContext,
    user_id: i64,
    order_id: i64,
    message: String,
) -> ActionReply {
    // Stock moved: cached pages must show it now.
    ctx.catalog.mark_changed();
    tracing::info!(order_id, user_id, "order placed");
    ctx.metrics.checkout(CheckoutOutcome::Placed);
    let target = format!("/orders/{order_id}");
    form_redirect(&target);
    ActionReply {
        message,
        redirect_to: Some(target),
    }
}

/// Checkout with the cart on Redis (`orders::place_on_redis`).
#[cfg(feature = "ssr")]
async fn checkout_on_redis(
    ctx: &crate::server::AppContext,
    session: &tower_sessions::Session,
    user: &crate::server::session::AuthUser,
) -> Result<ActionReply, ShopError> {
    match orders::place_on_redis(&ctx.sessions, session, user).await {
        Ok(order_id) => {
            let message = format!("Thank you! Your order #{order_id} is placed.");
            if is_form_post() {
                crate::server::session::change::set_flash(
                    &ctx.sessions,
                    session,
                    &Flash::success(message.clone()),
                )
                .await?;
            }
            Ok(order_placed(ctx, user.id, order_id, message))
        }
        Err(CartError::Rejected(message)) => {
            ctx.metrics.checkout(CheckoutOutcome::Rejected);
            Err(reject(StatusCode::CONFLICT, message).await)
        }
        Err(CartError::Session(SessionError::LoginEnded)) => Err(login_ended(session).await),
        Err(other) => {
            ctx.metrics.checkout(CheckoutOutcome::Failed);
            Err(other.into())
        }
    }
}

/// The logged-in user's orders, newest first; `None` when nobody is logged in.
#[server(endpoint = "orders", input = GetUrl)]
pub async fn my_orders() -> Result<Option<Vec<OrderSummary>>, ShopError> {
    let (ctx, session) = context_and_session().await?;
    let Some(user) = crate::server::session::current_user(&session).await? else {
        return Ok(None);
    };
    orders::list_for_user(&ctx.db, user.id)
        .await
        .map(Some)
        .map_err(ShopError::from)
}

/// One of the logged-in user's orders; `Ok(None)` for someone else's or an unknown one.
#[server(endpoint = "order", input = GetUrl)]
pub async fn my_order(id: String) -> Result<Option<OrderDetail>, ShopError> {
    let (ctx, session) = context_and_session().await?;
    let Some(user) = crate::server::session::current_user(&session).await? else {
        return Ok(None);
    };
    let Ok(order_id) = id.trim().parse::<i64>() else {
        return Ok(None);
    };
    orders::get_for_user(&ctx.db, user.id, order_id)
        .await
        .map_err(ShopError::from)
}
