//! Plain types shared by the server and the browser: money, slugs, catalog entries.

mod account;
mod cart;
mod flash;
mod listing;
mod money;
mod order;
mod slug;

pub use account::{
    check_new_password, confirm_path, format_unix, is_same_site_path, safe_next, ApiKeyView,
    AuditEntry, Email, EmailError, Me, PasswordError, SecurityEvent, SecurityEventKind,
    SecurityLogPage, SessionInfo, SessionPage, UserView, CONFIRM_PAGE, MAX_PASSWORD_BYTES,
    MIN_PASSWORD_CHARS,
};
pub use cart::{
    CartLine, CartView, Quantity, QuantityError, StoredCart, StoredLine, MAX_CART_LINES,
    MAX_LINE_QUANTITY,
};
pub use flash::{ActionReply, Flash, FlashKind};
pub use listing::{
    group_thousands, page_count, pager_numbers, CatalogListing, CatalogQuery, CatalogSort,
    PRODUCTS_PER_PAGE,
};
pub use money::Cents;
pub use order::{OrderDetail, OrderLine, OrderSummary};
pub use slug::Slug;

use serde::{Deserialize, Serialize};

/// A product as shown in a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductSummary {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub category: String,
    pub price: Cents,
    pub image: String,
    pub stock: i64,
}

/// A product with everything its own page shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductDetail {
    pub summary: ProductSummary,
    pub description: String,
}

/// A category of the catalog, for the filter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub slug: String,
    pub name: String,
}

/// How many of a product are left, in words a shopper understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StockState {
    SoldOut,
    Low(i64),
    InStock,
}

impl StockState {
    /// At or below this many units the page says "only N left".
    pub const LOW_THRESHOLD: i64 = 5;

    pub fn of(stock: i64) -> Self {
        if stock <= 0 {
            StockState::SoldOut
        } else if stock <= Self::LOW_THRESHOLD {
            StockState::Low(stock)
        } else {
            StockState::InStock
        }
    }

    pub fn label(self) -> String {
        match self {
            StockState::SoldOut => "Sold out".to_string(),
            StockState::Low(n) => format!("Only {n} left"),
            StockState::InStock => "In stock".to_string(),
        }
    }
}

/// Whether a form's checkbox value means "ticked": `on` (what a browser sends), `true` or `1`,
/// in any case. Anything else — absent, empty, `off`, `Off`, `no`, garbage — is not.
pub fn ticked(value: Option<&str>) -> bool {
    value
        .map(str::trim)
        .is_some_and(|v| v.eq_ignore_ascii_case("on") || v.eq_ignore_ascii_case("true") || v == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_on_true_and_1_tick_a_checkbox() {
        for yes in ["on", "ON", "On", "true", "TRUE", "1", " on "] {
            assert!(ticked(Some(yes)), "{yes}");
        }
        for no in [
            "off",
            "Off",
            "OFF",
            "false",
            "False",
            "0",
            "",
            "no",
            "yes please",
            "2",
        ] {
            assert!(!ticked(Some(no)), "{no}");
        }
        assert!(!ticked(None));
    }

    #[test]
    fn stock_state_words() {
        assert_eq!(StockState::of(0).label(), "Sold out");
        assert_eq!(StockState::of(-1), StockState::SoldOut);
        assert_eq!(StockState::of(3).label(), "Only 3 left");
        assert_eq!(StockState::of(5), StockState::Low(5));
        assert_eq!(StockState::of(6).label(), "In stock");
    }
}
