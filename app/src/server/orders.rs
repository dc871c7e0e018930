//! Placing orders (one transaction with the stock and the cart) and reading them back.

use super::cart::CartError;
use super::session::SessionTx;
use crate::model::{Cents, OrderDetail, OrderLine, OrderSummary, StoredCart};
use sqlx::SqlitePool;

/// Places an order for the cart in `tx`: re-checks and decrements stock, writes the order with
/// today's prices, empties the cart. All or nothing, with the session change in the same
/// transaction, so a retried or concurrent checkout can never order the same cart twice.
pub async fn place(tx: &mut SessionTx, user_id: i64) -> Result<i64, CartError> {
    let cart: StoredCart = tx.cart();
    if cart.is_empty() {
        return Err(CartError::Rejected("Your cart is empty.".into()));
    }
    let mut lines = Vec::with_capacity(cart.lines.len());
    let mut total = Cents(0);
    for line in &cart.lines {
        let row: Option<(String, String, i64, i64)> =
            sqlx::query_as("SELECT name, slug, price_cents, stock FROM products WHERE id = ?")
                .bind(line.product_id)
                .fetch_optional(tx.conn())
                .await?;
        let Some((name, slug, price_cents, stock)) = row else {
            return Err(CartError::Rejected(
                "A product in your cart is no longer available. Please review your cart.".into(),
            ));
        };
        let quantity = line.quantity.get();
        if i64::from(quantity) > stock {
            let message = if stock <= 0 {
                format!("Sorry, {name} just sold out. Please update your cart.")
            } else {
                format!("Sorry, only {stock} of {name} left. Please update your cart.")
            };
            return Err(CartError::Rejected(message));
        }
        let line_total = Cents(price_cents)
            .times(quantity)
            .ok_or_else(|| CartError::Rejected("That order is too large.".into()))?;
        total = total
            .plus(line_total)
            .ok_or_else(|| CartError::Rejected("That order is too large.".into()))?;
        lines.push(OrderLine {
            product_id: line.product_id,
            name,
            slug,
            quantity,
            unit_price_cents: price_cents,
        });
    }
    let order_id: i64 =
        sqlx::query_scalar("INSERT INTO orders (user_id, total_cents) VALUES (?, ?) RETURNING id")
            .bind(user_id)
            .bind(total.0)
            .fetch_one(tx.conn())
            .await?;
    for line in &lines {
        // The stock condition repeats the check above inside the write, as a last guard.
        let updated =
            sqlx::query("UPDATE products SET stock = stock - ?1 WHERE id = ?2 AND stock >= ?1")
                .bind(i64::from(line.quantity))
                .bind(line.product_id)
                .execute(tx.conn())
                .await?;
        if updated.rows_affected() != 1 {
            return Err(CartError::Rejected(format!(
                "Sorry, {} just sold out.",
                line.name
            )));
        }
        sqlx::query(
            "INSERT INTO order_lines (order_id, product_id, name, slug, quantity, unit_price_cents)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(order_id)
        .bind(line.product_id)
        .bind(&line.name)
        .bind(&line.slug)
        .bind(i64::from(line.quantity))
        .bind(line.unit_price_cents)
        .execute(tx.conn())
        .await?;
    }
    tx.set_cart(&StoredCart::default())?;
    Ok(order_id)
}

const SUMMARY: &str = "SELECT o.id, o.placed_at, o.total_cents, o.status,
        COALESCE((SELECT SUM(quantity) FROM order_lines l WHERE l.order_id = o.id), 0) AS item_count
     FROM orders o";

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: i64,
    placed_at: String,
    total_cents: i64,
    status: String,
    item_count: i64,
}

impl From<SummaryRow> for OrderSummary {
    fn from(r: SummaryRow) -> Self {
        OrderSummary {
            id: r.id,
            placed_at: r.placed_at,
            item_count: r.item_count,
            total_cents: r.total_cents,
            status: r.status,
        }
    }
}

/// The user's orders, newest first.
pub async fn list_for_user(
    db: &SqlitePool,
    user_id: i64,
) -> Result<Vec<OrderSummary>, sqlx::Error> {
    let sql = format!("{SUMMARY} WHERE o.user_id = ? ORDER BY o.id DESC LIMIT 200");
    let rows: Vec<SummaryRow> = sqlx::query_as(&sql).bind(user_id).fetch_all(db).await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// One order, only if it belongs to `user_id`.
pub async fn get_for_user(
    db: &SqlitePool,
    user_id: i64,
    order_id: i64,
) -> Result<Option<OrderDetail>, sqlx::Error> {
    let sql = format!("{SUMMARY} WHERE o.id = ? AND o.user_id = ?");
    let Some(row) = sqlx::query_as::<_, SummaryRow>(&sql)
        .bind(order_id)
        .bind(user_id)
        .fetch_optional(db)
        .await?
    else {
        return Ok(None);
    };
    let lines: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(
        "SELECT product_id, name, slug, quantity, unit_price_cents FROM order_lines WHERE order_id = ? ORDER BY rowid",
    )
    .bind(order_id)
    .fetch_all(db)
    .await?;
    Ok(Some(OrderDetail {
        summary: row.into(),
        lines: lines
            .into_iter()
            .map(
                |(product_id, name, slug, quantity, unit_price_cents)| OrderLine {
                    product_id,
                    name,
                    slug,
                    quantity: u32::try_from(quantity).unwrap_or(0),
                    unit_price_cents,
                },
            )
            .collect(),
    }))
}
