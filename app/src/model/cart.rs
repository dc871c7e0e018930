//! The cart as stored in the session (ids and quantities only) and as shown (lines with prices).

use super::Cents;
use serde::{Deserialize, Serialize};

/// The most of one product a single cart line may hold.
pub const MAX_LINE_QUANTITY: i64 = 99;
/// The most distinct products a cart may hold, so a session cannot be bloated.
pub const MAX_CART_LINES: usize = 50;

/// A quantity of one product in a cart line: 1 to 99. Cannot be built invalid.
///
/// ```
/// use app::model::Quantity;
/// assert_eq!(Quantity::new(3).unwrap().get(), 3);
/// assert!(Quantity::new(0).is_err());
/// assert!(Quantity::new(100).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Quantity(u32);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("Quantity must be at least 1.")]
    TooSmall,
    #[error("Quantity can be at most {MAX_LINE_QUANTITY} per product.")]
    TooLarge,
    #[error("Quantity must be a whole number.")]
    NotANumber,
}

impl Quantity {
    pub fn new(value: i64) -> Result<Quantity, QuantityError> {
        if value < 1 {
            Err(QuantityError::TooSmall)
        } else if value > MAX_LINE_QUANTITY {
            Err(QuantityError::TooLarge)
        } else {
            Ok(Quantity(value as u32))
        }
    }

    /// Parses form input: surrounding spaces allowed, anything but an integer rejected.
    pub fn parse(input: &str) -> Result<Quantity, QuantityError> {
        let value: i64 = input.trim().parse().map_err(|_| {
            // A huge number of digits is still a number, just too large.
            let t = input.trim();
            if !t.is_empty()
                && t.trim_start_matches('-')
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            {
                if t.starts_with('-') {
                    QuantityError::TooSmall
                } else {
                    QuantityError::TooLarge
                }
            } else {
                QuantityError::NotANumber
            }
        })?;
        Quantity::new(value)
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<i64> for Quantity {
    type Error = QuantityError;
    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Quantity::new(value)
    }
}

impl From<Quantity> for i64 {
    fn from(q: Quantity) -> i64 {
        i64::from(q.0)
    }
}

/// One line as stored in the session: which product and how many. No names, no prices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLine {
    pub product_id: i64,
    pub quantity: Quantity,
}

/// The cart as stored in the session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCart {
    pub lines: Vec<StoredLine>,
}

impl StoredCart {
    pub fn quantity_of(&self, product_id: i64) -> u32 {
        self.lines
            .iter()
            .find(|l| l.product_id == product_id)
            .map(|l| l.quantity.get())
            .unwrap_or(0)
    }

    /// Sets the quantity of a product: replaces its line or appends a new one.
    pub fn set(&mut self, product_id: i64, quantity: Quantity) {
        match self.lines.iter_mut().find(|l| l.product_id == product_id) {
            Some(line) => line.quantity = quantity,
            None => self.lines.push(StoredLine {
                product_id,
                quantity,
            }),
        }
    }

    pub fn remove(&mut self, product_id: i64) {
        self.lines.retain(|l| l.product_id != product_id);
    }

    pub fn item_count(&self) -> u32 {
        self.lines.iter().map(|l| l.quantity.get()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// One line as shown to the shopper, priced from the catalog at read time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    pub product_id: i64,
    pub slug: String,
    pub name: String,
    pub quantity: u32,
    pub unit_price_cents: i64,
    /// Not part of the JSON contract's required fields, but useful to render the line.
    pub image: String,
    pub stock: i64,
}

impl CartLine {
    pub fn line_total(&self) -> Cents {
        Cents(self.unit_price_cents)
            .times(self.quantity)
            .unwrap_or(Cents(i64::MAX))
    }
}

/// The cart as `GET /api/cart` returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartView {
    pub lines: Vec<CartLine>,
    pub count: u32,
    pub total_cents: i64,
}

impl CartView {
    /// Builds the view from priced lines, computing the count and total.
    pub fn from_lines(lines: Vec<CartLine>) -> CartView {
        let count = lines.iter().map(|l| l.quantity).sum();
        let total_cents = lines
            .iter()
            .map(CartLine::line_total)
            .try_fold(Cents(0), Cents::plus)
            .unwrap_or(Cents(i64::MAX))
            .0;
        CartView {
            lines,
            count,
            total_cents,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_bounds() {
        assert!(Quantity::new(1).is_ok());
        assert!(Quantity::new(99).is_ok());
        assert_eq!(Quantity::new(0), Err(QuantityError::TooSmall));
        assert_eq!(Quantity::new(-5), Err(QuantityError::TooSmall));
        assert_eq!(Quantity::new(100), Err(QuantityError::TooLarge));
        assert_eq!(Quantity::new(i64::MAX), Err(QuantityError::TooLarge));
    }

    #[test]
    fn quantity_parse() {
        assert_eq!(Quantity::parse(" 7 ").unwrap().get(), 7);
        assert_eq!(Quantity::parse("abc"), Err(QuantityError::NotANumber));
        assert_eq!(Quantity::parse("1.5"), Err(QuantityError::NotANumber));
        assert_eq!(Quantity::parse(""), Err(QuantityError::NotANumber));
        assert_eq!(
            Quantity::parse("99999999999999999999999"),
            Err(QuantityError::TooLarge)
        );
        assert_eq!(
            Quantity::parse("-99999999999999999999999"),
            Err(QuantityError::TooSmall)
        );
    }

    #[test]
    fn quantity_deserialization_validates() {
        assert!(serde_json::from_str::<Quantity>("0").is_err());
        assert!(serde_json::from_str::<Quantity>("100").is_err());
        assert_eq!(serde_json::from_str::<Quantity>("3").unwrap().get(), 3);
    }

    #[test]
    fn stored_cart_operations() {
        let mut cart = StoredCart::default();
        cart.set(1, Quantity::new(2).unwrap());
        cart.set(2, Quantity::new(1).unwrap());
        cart.set(1, Quantity::new(5).unwrap());
        assert_eq!(cart.quantity_of(1), 5);
        assert_eq!(cart.item_count(), 6);
        cart.remove(1);
        assert_eq!(cart.quantity_of(1), 0);
        assert_eq!(cart.lines.len(), 1);
    }

    #[test]
    fn view_totals() {
        let line = |id, q, price| CartLine {
            product_id: id,
            slug: format!("p{id}"),
            name: format!("P{id}"),
            quantity: q,
            unit_price_cents: price,
            image: String::new(),
            stock: 50,
        };
        let view = CartView::from_lines(vec![line(1, 2, 250), line(2, 3, 1000)]);
        assert_eq!(view.count, 5);
        assert_eq!(view.total_cents, 3500);
    }
}
