//! Placing orders (one transaction with the stock and the cart) and reading them back.

use super::cart::CartError;
use super::db::{Conn, Db};
use super::session::change::{begin_session_only, SessionTx, SessionWrites};
use super::session::{AuthUser, RedisSessions, SessionError};
use crate::model::{Cents, OrderDetail, OrderLine, OrderSummary, StoredCart};
use crate::{on_conn, on_db};
use tower_sessions::Session;

/// Places an order for the cart in `tx`: re-checks and decrements stock, writes the order with
/// today's prices, empties the cart. All or nothing, with the session change in the same
/// transaction, so a retried or concurrent checkout can never order the same cart twice.
pub async fn place(tx: &mut SessionTx, user_id: i64) -> Result<i64, CartError> {
    let cart: StoredCart = tx.contents().cart();
    let order_id = place_cart(&mut tx.conn(), user_id, &cart, None).await?;
    tx.contents().set_cart(&StoredCart::default())?;
    Ok(order_id)
}

/// Re-checks and decrements stock and writes the order for `cart` on `conn` (inside the
/// caller's transaction), with the cart's version when the cart is in another store.
async fn place_cart(
    conn: &mut Conn<'_>,
    user_id: i64,
    cart: &StoredCart,
    cart_version: Option<&str>,
) -> Result<i64, CartError> {
    if cart.is_empty() {
        return Err(CartError::Rejected("Your cart is empty.".into()));
    }
    let mut lines = Vec::with_capacity(cart.lines.len());
    let mut total = Cents(0);
    for line in &cart.lines {
        let row: Option<(String, String, i64, i64)> = on_conn!(conn, c =>
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
    let order_id: i64 = on_conn!(conn, c => sqlx::query_scalar(
        "INSERT INTO orders (user_id, total_cents, cart_version) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(user_id)
    .bind(total.0)
    .bind(cart_version)
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
        let updated = on_conn!(conn, c => sqlx::query(
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
        on_conn!(conn, c => sqlx::query(
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
    Ok(order_id)
}

/// How often a checkout on Redis reads the cart again after losing to a concurrent change.
const REDIS_ATTEMPTS: usize = 8;

/// Checkout when the cart is on Redis and the stock and orders are here: no transaction spans
/// both, so the order records the cart's version (new at every change of the cart, unique per
/// session) under a unique index. The order is placed, or found, for that version in one
/// transaction here; then the cart is emptied on Redis by compare-and-swap if it is still that
/// version. So two checkouts of one cart at once place one order (the second finds it, or
/// loses the index and finds it on its next read), and a checkout retried after a crash
/// between the commit and the emptying finds its order instead of placing it again.
///
/// The login must be live: checked in the session read, and again just before the commit.
pub async fn place_on_redis(
    sessions: &SessionWrites,
    session: &Session,
    user: &AuthUser,
) -> Result<i64, CartError> {
    let Some(redis) = sessions.redis() else {
        return Err(CartError::Rejected("Checkout is not available.".into()));
    };
    let mut attempt = 0;
    let (order_id, version) = loop {
        attempt += 1;
        let mut change = begin_session_only(sessions, session, attempt).await?;
        let login = change.contents().login();
        if login.map(|login| login.handle).as_deref() != Some(user.handle.as_str()) {
            change.rollback().await;
            return Err(SessionError::LoginEnded.into());
        }
        let cart = change.contents().cart();
        let Some(version) = change.contents().cart_version() else {
            if cart.is_empty() {
                change.rollback().await;
                return Err(CartError::Rejected("Your cart is empty.".into()));
            }
            // A cart stored before carts had versions: it gets one first.
            change.contents().set_cart(&cart)?;
            match change.commit(session).await {
                Ok(()) => continue,
                Err(SessionError::Conflict) if attempt < REDIS_ATTEMPTS => continue,
                Err(error) => return Err(error.into()),
            }
        };
        change.rollback().await;
        match place_or_find(sessions.db(), redis, user, &cart, &version).await {
            Ok(order_id) => break (order_id, version),
            // A checkout of the same cart committed first: found at the next read.
            Err(CartError::Db(sqlx::Error::Database(error)))
                if error.is_unique_violation() && attempt < REDIS_ATTEMPTS =>
            {
                continue
            }
            Err(error) => return Err(error),
        }
    };
    // Emptied only if still the cart that was ordered (a line added meanwhile stays).
    for attempt in 1..=REDIS_ATTEMPTS {
        let mut change = begin_session_only(sessions, session, attempt).await?;
        if change.contents().cart_version().as_deref() != Some(version.as_str()) {
            change.rollback().await;
            break;
        }
        change.contents().set_cart(&StoredCart::default())?;
        match change.commit(session).await {
            Ok(()) => break,
            Err(SessionError::Conflict) if attempt < REDIS_ATTEMPTS => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Ok(order_id)
}

/// The order already placed from this version of the cart, or a new one (see
/// [`place_on_redis`]).
async fn place_or_find(
    db: &Db,
    redis: &RedisSessions,
    user: &AuthUser,
    cart: &StoredCart,
    version: &str,
) -> Result<i64, CartError> {
    let mut tx = db.begin_write().await?;
    let placed: Option<i64> = on_conn!(&mut tx.conn(), c => sqlx::query_scalar(
        "SELECT id FROM orders WHERE cart_version = $1 AND user_id = $2",
    )
    .bind(version)
    .bind(user.id)
    .fetch_optional(c)
    .await)?;
    if let Some(order_id) = placed {
        tx.rollback().await?;
        return Ok(order_id);
    }
    let order_id = match place_cart(&mut tx.conn(), user.id, cart, Some(version)).await {
        Ok(order_id) => order_id,
        Err(error) => {
            tx.rollback().await?;
            return Err(error);
        }
    };
    let live = redis
        .live_login(&user.handle)
        .await
        .map_err(SessionError::from);
    if live?.is_none() {
        tx.rollback().await?;
        return Err(SessionError::LoginEnded.into());
    }
    tx.commit().await?;
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
