//! The cart: add, update, clear, read. Every change is one atomic session transaction.

use super::ShopError;
use crate::model::{ActionReply, CartView};
use leptos::prelude::*;
use leptos::server_fn::codec::GetUrl;
#[cfg(feature = "ssr")]
use {
    crate::model::{Flash, Quantity},
    crate::server::{
        cart::{self, CartError},
        request::{context_and_session, is_form_post, reject},
        session::change,
        session::{self, Contents},
    },
    http::StatusCode,
};

#[cfg(feature = "ssr")]
async fn parse_product_id(input: &str) -> Result<i64, ShopError> {
    match input.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(reject(StatusCode::BAD_REQUEST, "That product does not exist.").await),
    }
}

#[cfg(feature = "ssr")]
async fn cart_failure(error: CartError) -> ShopError {
    match error {
        CartError::Rejected(message) => reject(StatusCode::UNPROCESSABLE_ENTITY, message).await,
        other => other.into(),
    }
}

/// How often a cart change is tried again when another process changed the session between
/// its read and its write.
#[cfg(feature = "ssr")]
const CONFLICT_RETRIES: usize = 8;

/// Why a cart change made in one step wrote nothing.
#[cfg(feature = "ssr")]
enum NotWritten {
    /// The catalog changed since the copy the change was given: again with this version.
    StaleCatalog(i64),
    Cart(CartError),
}

/// Runs one cart change atomically; on success records a flash for plain-form callers.
/// `product`: the product the change is about, looked up in the catalog as of the session
/// read and handed to `change` (`None` when there is no such product).
///
/// On SQLite the change runs in one step on the session writer (read, check and write in one
/// transaction: `change::change_session_only`); elsewhere it is a read, the check and a
/// compare-and-swap (or a row-locked transaction), again on a conflict.
#[cfg(feature = "ssr")]
async fn change_cart<F>(product: Option<i64>, change: F) -> Result<ActionReply, ShopError>
where
    F: Fn(&mut Contents, Option<cart::ProductStock>) -> Result<String, CartError>
        + Send
        + Sync
        + 'static,
{
    let (ctx, session) = context_and_session().await?;
    let form = is_form_post();
    let change = std::sync::Arc::new(change);
    // The catalog as last read; the change says if the database has a newer one.
    let mut catalog = ctx.catalog.cached();
    for _ in 0..CONFLICT_RETRIES {
        let (known, change) = (catalog.clone(), change.clone());
        let one_step = change::change_session_only(&ctx.sessions, &session, move |version, tx| {
            let stock = match product {
                None => None,
                Some(id) => match known.as_ref().filter(|known| known.version == version) {
                    Some(known) => cart::product_stock(known, id),
                    None => return Err(NotWritten::StaleCatalog(version)),
                },
            };
            let message = change(tx, stock).map_err(NotWritten::Cart)?;
            if form {
                tx.set_flash(&Flash::success(message.clone()))
                    .map_err(|error| NotWritten::Cart(error.into()))?;
            }
            Ok(message)
        });
        let Some(outcome) = one_step.await else {
            break;
        };
        match outcome? {
            Ok(message) => return Ok(ActionReply::message(message)),
            Err(NotWritten::Cart(error)) => return Err(cart_failure(error).await),
            Err(NotWritten::StaleCatalog(version)) => {
                catalog = Some(
                    ctx.catalog
                        .get_at(&ctx.db, version)
                        .await
                        .map_err(ShopError::unavailable)?,
                );
            }
        }
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut tx = change::begin_session_only(&ctx.sessions, &session, attempt).await?;
        let stock = match product {
            Some(id) => match tx.catalog(&ctx.catalog).await {
                Ok(catalog) => cart::product_stock(&catalog, id),
                Err(error) => {
                    tx.rollback().await;
                    return Err(ShopError::unavailable(error));
                }
            },
            None => None,
        };
        let message = match change(tx.contents(), stock) {
            Ok(message) => message,
            Err(error) => {
                tx.rollback().await;
                return Err(cart_failure(error).await);
            }
        };
        if form {
            tx.contents().set_flash(&Flash::success(message.clone()))?;
        }
        match tx.commit_last(&session).await {
            Ok(()) => return Ok(ActionReply::message(message)),
            Err(session::SessionError::Conflict) => {
                ctx.metrics.write_conflict();
                if attempt < CONFLICT_RETRIES {
                    ctx.metrics.write_retry();
                    continue;
                }
                return Err(ShopError::conflict());
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// `POST /api/cart/add` — `product_id`, `quantity`.
#[server(endpoint = "cart/add")]
pub async fn add_to_cart(product_id: String, quantity: String) -> Result<ActionReply, ShopError> {
    let product_id = parse_product_id(&product_id).await?;
    let quantity = match Quantity::parse(&quantity) {
        Ok(q) => q,
        Err(e) => return Err(reject(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).await),
    };
    change_cart(Some(product_id), move |tx, product| {
        let name = cart::add(tx, product, product_id, quantity)?;
        Ok(format!("Added {} × {name} to your cart.", quantity.get()))
    })
    .await
}

/// `POST /api/cart/update` — `product_id`, `quantity` (0 removes the line).
#[server(endpoint = "cart/update")]
pub async fn update_cart(product_id: String, quantity: String) -> Result<ActionReply, ShopError> {
    let product_id = parse_product_id(&product_id).await?;
    let quantity = match quantity.trim() {
        "0" => None,
        other => match Quantity::parse(other) {
            Ok(q) => Some(q),
            Err(e) => return Err(reject(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()).await),
        },
    };
    change_cart(Some(product_id), move |tx, product| {
        let name = cart::update(tx, product, product_id, quantity)?;
        Ok(match quantity {
            Some(q) => format!("{name}: quantity set to {}.", q.get()),
            None => format!("Removed {name} from your cart."),
        })
    })
    .await
}

/// `POST /api/cart/clear`.
#[server(endpoint = "cart/clear")]
pub async fn clear_cart() -> Result<ActionReply, ShopError> {
    change_cart(None, |tx, _| {
        tx.set_cart(&crate::model::StoredCart::default())?;
        Ok("Your cart is empty now.".to_string())
    })
    .await
}

/// `GET /api/cart` — the cart priced from today's catalog.
#[server(endpoint = "cart", input = GetUrl)]
pub async fn get_cart() -> Result<CartView, ShopError> {
    let (ctx, session) = context_and_session().await?;
    let stored = session::cart(&session).await?;
    cart::view(&ctx.db, &ctx.catalog, &stored)
        .await
        .map_err(ShopError::from)
}
