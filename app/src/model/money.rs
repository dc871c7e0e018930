//! `Cents`: money as an integer number of cents, formatted only at the edge.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An amount of money in integer cents (US dollars). Never a float.
///
/// ```
/// use app::model::Cents;
/// assert_eq!(Cents(123456).to_string(), "$1,234.56");
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Cents(pub i64);

impl Cents {
    /// `self * quantity`, or `None` on overflow.
    pub fn times(self, quantity: u32) -> Option<Cents> {
        self.0.checked_mul(i64::from(quantity)).map(Cents)
    }

    /// `self + other`, or `None` on overflow.
    pub fn plus(self, other: Cents) -> Option<Cents> {
        self.0.checked_add(other.0).map(Cents)
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let dollars = (abs / 100).to_string();
        let cents = abs % 100;
        // Group the dollars in thousands: 1234567 -> 1,234,567.
        let mut grouped = String::with_capacity(dollars.len() + dollars.len() / 3);
        for (i, ch) in dollars.chars().enumerate() {
            if i > 0 && (dollars.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(ch);
        }
        write!(f, "{sign}${grouped}.{cents:02}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_and_fractional_amounts() {
        assert_eq!(Cents(0).to_string(), "$0.00");
        assert_eq!(Cents(5).to_string(), "$0.05");
        assert_eq!(Cents(1999).to_string(), "$19.99");
        assert_eq!(Cents(100_000).to_string(), "$1,000.00");
        assert_eq!(Cents(123_456_789).to_string(), "$1,234,567.89");
        assert_eq!(Cents(-250).to_string(), "-$2.50");
        assert_eq!(Cents(i64::MIN).to_string(), "-$92,233,720,368,547,758.08");
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Cents(250).times(3), Some(Cents(750)));
        assert_eq!(Cents(i64::MAX).times(2), None);
        assert_eq!(Cents(1).plus(Cents(2)), Some(Cents(3)));
        assert_eq!(Cents(i64::MAX).plus(Cents(1)), None);
    }
}
