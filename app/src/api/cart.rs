//! The cart: add, update, clear, read. Every change is one atomic session transaction.

use crate::model::{ActionReply, CartView};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
#[cfg(feature = "ssr")]
use {
    crate::model::{Flash, Quantity},
    crate::server::{
        cart::{self, CartError},
        internal,
        request::{context_and_session, is_form_post, reject},
        session::{self, SessionTx},
    },
    http::StatusCode,
};

#[cfg(feature = "ssr")]
async fn parse_product_id(input: &str) -> Result<i64, ServerFnError> {
    match input.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(reject(StatusCode::BAD_REQUEST, "That product does not exist.").await),
    }
}

#[cfg(feature = "ssr")]
async fn lookup(product_id: i64) -> Result<Option<cart::ProductStock>, ServerFnError> {
    let ctx = crate::server::app_context()?;
    cart::product_stock(&ctx.db, &ctx.catalog, product_id)
        .await
        .map_err(internal)
}

#[cfg(feature = "ssr")]
async fn cart_failure(error: CartError) -> ServerFnError {
    match error {
        CartError::Rejected(message) => reject(StatusCode::UNPROCESSABLE_ENTITY, message).await,
        other => internal(other),
    }
}

/// Runs one cart change atomically; on success records a flash for plain-form callers.
#[cfg(feature = "ssr")]
async fn change_cart<F>(change: F) -> Result<ActionReply, ServerFnError>
where
    F: for<'a> FnOnce(
        &'a mut SessionTx,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<String, CartError>> + Send + 'a>,
    >,
{
    let (ctx, session) = context_and_session().await?;
    let mut tx = SessionTx::begin_session_only(&ctx.db, &session)
        .await
        .map_err(internal)?;
    match change(&mut tx).await {
        Ok(message) => {
            if is_form_post() {
                tx.set_flash(&Flash::success(message.clone()))
                    .map_err(internal)?;
            }
            tx.commit(&session).await.map_err(internal)?;
            Ok(ActionReply::message(message))
        }
        Err(error) => {
            tx.rollback().await;
            Err(cart_failure(error).await)
        }
    }
}

/// `POST /api/cart/add` — `product_id`, `quantity`.
#[server(endpoint = "cart/add")]
pub async fn add_to_cart(
    product_id: String,
    quantity: String,
) -> Result<ActionReply, ServerFnError> {
    let product_id = parse_product_id(&product_id).await?;
    let quantity = match Quantity::parse(&quantity) {
        Ok(q) => q,
        Err(e) => return Err(reject(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).await),
    };
    let product = lookup(product_id).await?;
    change_cart(move |tx| {
        Box::pin(async move {
            let name = cart::add(tx, product, product_id, quantity)?;
            Ok(format!("Added {} × {name} to your cart.", quantity.get()))
        })
    })
    .await
}

/// `POST /api/cart/update` — `product_id`, `quantity` (0 removes the line).
#[server(endpoint = "cart/update")]
pub async fn update_cart(
    product_id: String,
    quantity: String,
) -> Result<ActionReply, ServerFnError> {
    let product_id = parse_product_id(&product_id).await?;
    let quantity = match quantity.trim() {
        "0" => None,
        other => match Quantity::parse(other) {
            Ok(q) => Some(q),
            Err(e) => return Err(reject(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).await),
        },
    };
    let product = lookup(product_id).await?;
    change_cart(move |tx| {
        Box::pin(async move {
            let name = cart::update(tx, product, product_id, quantity)?;
            Ok(match quantity {
                Some(q) => format!("{name}: quantity set to {}.", q.get()),
                None => format!("Removed {name} from your cart."),
            })
        })
    })
    .await
}

/// `POST /api/cart/clear`.
#[server(endpoint = "cart/clear")]
pub async fn clear_cart() -> Result<ActionReply, ServerFnError> {
    change_cart(|tx| {
        Box::pin(async move {
            tx.set_cart(&crate::model::StoredCart::default())?;
            Ok("Your cart is empty now.".to_string())
        })
    })
    .await
}

/// `GET /api/cart` — the cart priced from today's catalog.
#[server(endpoint = "cart", input = GetUrl)]
pub async fn get_cart() -> Result<CartView, ServerFnError> {
    let (ctx, session) = context_and_session().await?;
    let stored = session::cart(&session).await.map_err(internal)?;
    cart::view(&ctx.db, &ctx.catalog, &stored).await.map_err(internal)
}
