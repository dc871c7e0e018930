//! Placing orders (one transaction with the stock and the cart) and reading them back.

use super::cart::CartError;
use super::db::Db;
use super::session::change::SessionTx;
use crate::model::{Cents, OrderDetail, OrderLine, OrderSummary, StoredCart};
use crate::{on_conn, on_db};

/// Places an order for the cart in `tx`: re-checks and decrements stock, writes the order with
/// today's prices, empties the cart. All or nothing, with the session change in the same
/// transaction, so a retried or concurrent checkout can never order the same cart twice.
pub async fn place(tx: &mut SessionTx, user_id: i64) -> Result<i64, CartError> {
    let cart: StoredCart = tx.contents().cart();
    if cart.is_empty() {
        return Err(CartError::Rejected("Your cart is empty.".into()));
    }
    let mut lines = Vec::with_capacity(cart.lines.len());
    let mut total = Cents(0);
    for line in &cart.lines {
        let row: Option<(String, String, i64, i64)> = on_conn!(&mut tx.conn(), c =>
            sqlx::query_as("SELECT name, slug, price_cents, stock FROM products WHERE id = $1")
                .bind(line.product_id)
                .fetch_optional(c)
                .await)?;
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
    let order_id: i64 = on_conn!(&mut tx.conn(), c => sqlx::query_scalar(
        "INSERT INTO orders (user_id, total_cents) VALUES ($1, $2) RETURNING id",
    )
    .bind(user_id)
    .bind(total.0)
    .fetch_one(c)
    .await)?;
    // Stock first, in product order: concurrent checkouts lock the product rows they share in
    // the same order, so they wait for each other instead of deadlocking (PostgreSQL).
    let mut by_product: Vec<&OrderLine> = lines.iter().collect();
    by_product.sort_by_key(|line| line.product_id);
    for line in by_product {
        // The stock condition repeats the check above inside the write, as a last guard (on
        // PostgreSQL also against a concurrent checkout that read the same stock: this UPDATE
        // waits for it and then sees what it left).
        let updated = on_conn!(&mut tx.conn(), c => sqlx::query(
            "UPDATE products SET stock = stock - $1 WHERE id = $2 AND stock >= $1",
        )
        .bind(i64::from(line.quantity))
        .bind(line.product_id)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        if updated != 1 {
            return Err(CartError::Rejected(format!(
                "Sorry, {} just sold out.",
                line.name
            )));
        }
    }
    for (position, line) in (0_i64..).zip(&lines) {
        on_conn!(&mut tx.conn(), c => sqlx::query(
            "INSERT INTO order_lines (order_id, product_id, name, slug, quantity, unit_price_cents, position)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(order_id)
        .bind(line.product_id)
        .bind(&line.name)
        .bind(&line.slug)
        .bind(i64::from(line.quantity))
        .bind(line.unit_price_cents)
        .bind(position)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    tx.contents().set_cart(&StoredCart::default())?;
    Ok(order_id)
}

// The sum is cast: PostgreSQL's SUM of a BIGINT is a NUMERIC.
const SUMMARY: &str = "SELECT o.id, o.placed_at, o.total_cents, o.status,
        CAST(COALESCE((SELECT SUM(quantity) FROM order_lines l WHERE l.order_id = o.id), 0) AS BIGINT)
          AS item_count
     FROM orders o";

#[derive(sqlx::FromRow)]
struct SummaryRow {
    id: i64,
    /// RFC 3339 text on SQLite, timestamptz on PostgreSQL: both read as a time.
    placed_at: time::OffsetDateTime,
    total_cents: i64,
    status: String,
    item_count: i64,
}

impl From<SummaryRow> for OrderSummary {
    fn from(r: SummaryRow) -> Self {
        OrderSummary {
            id: r.id,
            placed_at: utc_seconds(r.placed_at),
            item_count: r.item_count,
            total_cents: r.total_cents,
            status: r.status,
        }
    }
}

/// `2026-11-28T08:30:00Z`, as orders have always shown their time.
fn utc_seconds(at: time::OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The user's orders, newest first.
pub async fn list_for_user(db: &Db, user_id: i64) -> Result<Vec<OrderSummary>, sqlx::Error> {
    let sql = format!("{SUMMARY} WHERE o.user_id = $1 ORDER BY o.id DESC LIMIT 200");
    let rows: Vec<SummaryRow> =
        on_db!(db, pool => sqlx::query_as(&sql).bind(user_id).fetch_all(pool).await)?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// One order, only if it belongs to `user_id`.
pub async fn get_for_user(
    db: &Db,
    user_id: i64,
    order_id: i64,
) -> Result<Option<OrderDetail>, sqlx::Error> {
    let sql = format!("{SUMMARY} WHERE o.id = $1 AND o.user_id = $2");
    let Some(row) = on_db!(db, pool => sqlx::query_as::<_, SummaryRow>(&sql)
        .bind(order_id)
        .bind(user_id)
        .fetch_optional(pool)
        .await)?
    else {
        return Ok(None);
    };
    let lines: Vec<(i64, String, String, i64, i64)> = on_db!(db, pool => sqlx::query_as(
        "SELECT product_id, name, slug, quantity, unit_price_cents FROM order_lines
         WHERE order_id = $1 ORDER BY position, product_id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await)?;
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
