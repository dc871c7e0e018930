//! Cart rules, applied to a session's [`Contents`] inside an atomic change, so each change is
//! atomic with its checks.

use super::catalog::{Catalog, CatalogCache};
use super::db::Db;
use super::session::{Contents, SessionError};
use crate::model::{CartLine, CartView, Quantity, StoredCart, MAX_CART_LINES, MAX_LINE_QUANTITY};

/// A change the shopper asked for that the rules do not allow. The message is for the shopper.
#[derive(Debug, thiserror::Error)]
pub enum CartError {
    #[error("{0}")]
    Rejected(String),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

fn rejected(message: impl Into<String>) -> CartError {
    CartError::Rejected(message.into())
}

#[derive(Clone, Debug)]
pub struct ProductStock {
    name: String,
    stock: i64,
}

/// A product's name and stock, from the catalog as of the change's read of the session
/// ([`SessionChange::catalog`](super::session::change::SessionChange::catalog)): the product is checked against the same moment's catalog and the
/// write then holds the single-writer gate for one statement only. Checkout re-checks stock in
/// its own transaction, so a change in between cannot oversell.
pub fn product_stock(catalog: &Catalog, product_id: i64) -> Option<ProductStock> {
    catalog.by_id(product_id).map(|p| ProductStock {
        name: p.name,
        stock: p.stock,
    })
}

/// How many of a product one line may hold: the stock, but never more than 99.
fn line_limit(stock: i64) -> i64 {
    stock.min(MAX_LINE_QUANTITY)
}

fn over_limit_message(name: &str, stock: i64, in_cart: u32) -> String {
    let limit = line_limit(stock);
    if stock <= MAX_LINE_QUANTITY {
        if in_cart > 0 {
            format!("Only {stock} of {name} available, and {in_cart} already in your cart.")
        } else {
            format!("Only {stock} of {name} available.")
        }
    } else {
        format!("At most {limit} of {name} per order.")
    }
}

/// Adds `quantity` of a product. Returns the product's name for the confirmation message.
pub fn add(
    tx: &mut Contents,
    product: Option<ProductStock>,
    product_id: i64,
    quantity: Quantity,
) -> Result<String, CartError> {
    let Some(product) = product else {
        return Err(rejected("That product does not exist."));
    };
    if product.stock <= 0 {
        return Err(rejected(format!("{} is sold out.", product.name)));
    }
    let mut cart = tx.cart();
    let in_cart = cart.quantity_of(product_id);
    let wanted = i64::from(in_cart) + i64::from(quantity.get());
    if wanted > line_limit(product.stock) {
        return Err(rejected(over_limit_message(
            &product.name,
            product.stock,
            in_cart,
        )));
    }
    if in_cart == 0 && cart.lines.len() >= MAX_CART_LINES {
        return Err(rejected(format!(
            "A cart holds at most {MAX_CART_LINES} different products."
        )));
    }
    let new_quantity = Quantity::new(wanted).map_err(|e| rejected(e.to_string()))?;
    cart.set(product_id, new_quantity);
    tx.set_cart(&cart)?;
    Ok(product.name)
}

/// Sets the quantity of a line; `None` (quantity 0) removes it.
pub fn update(
    tx: &mut Contents,
    product: Option<ProductStock>,
    product_id: i64,
    quantity: Option<Quantity>,
) -> Result<String, CartError> {
    let mut cart = tx.cart();
    let Some(quantity) = quantity else {
        if cart.quantity_of(product_id) == 0 {
            return Err(rejected("That product is not in your cart."));
        }
        cart.remove(product_id);
        tx.set_cart(&cart)?;
        return Ok(product
            .map(|p| p.name)
            .unwrap_or_else(|| "The product".to_string()));
    };
    let Some(product) = product else {
        return Err(rejected("That product does not exist."));
    };
    if cart.quantity_of(product_id) == 0 {
        return Err(rejected(format!("{} is not in your cart.", product.name)));
    }
    if i64::from(quantity.get()) > line_limit(product.stock) {
        return Err(rejected(over_limit_message(
            &product.name,
            product.stock,
            0,
        )));
    }
    cart.set(product_id, quantity);
    tx.set_cart(&cart)?;
    Ok(product.name)
}

/// Renders stored lines with today's names and prices; lines whose product is gone are dropped.
pub async fn view(
    db: &Db,
    catalog: &CatalogCache,
    cart: &StoredCart,
) -> Result<CartView, sqlx::Error> {
    if cart.lines.is_empty() {
        return Ok(CartView::from_lines(Vec::new()));
    }
    let catalog = catalog.get(db).await?;
    let lines = cart
        .lines
        .iter()
        .filter_map(|line| {
            let product = catalog.by_id(line.product_id)?;
            Some(CartLine {
                product_id: product.id,
                slug: product.slug.clone(),
                name: product.name.clone(),
                quantity: line.quantity.get(),
                unit_price_cents: product.price.0,
                image: product.image.clone(),
                stock: product.stock,
            })
        })
        .collect();
    Ok(CartView::from_lines(lines))
}
