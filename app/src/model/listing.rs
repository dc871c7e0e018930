//! A page of the catalog: its sort orders, its page numbers and the links between them.

use super::ProductSummary;
use serde::{Deserialize, Serialize};

/// Products per catalog page.
pub const PRODUCTS_PER_PAGE: usize = 24;

/// How the catalog is ordered (`?sort=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogSort {
    /// The shop's own order (by category, then as the shop arranged them).
    #[default]
    Featured,
    PriceAscending,
    PriceDescending,
    Name,
    /// The most recently added first.
    Newest,
}

impl CatalogSort {
    pub const ALL: [CatalogSort; 5] = [
        Self::Featured,
        Self::PriceAscending,
        Self::PriceDescending,
        Self::Name,
        Self::Newest,
    ];

    /// The `sort` parameter; an unknown value is the default order.
    pub fn parse(text: &str) -> CatalogSort {
        Self::ALL
            .into_iter()
            .find(|sort| sort.param() == text.trim())
            .unwrap_or_default()
    }

    /// The value in the URL (`""` for the default, which is left out).
    pub fn param(self) -> &'static str {
        match self {
            Self::Featured => "",
            Self::PriceAscending => "price-asc",
            Self::PriceDescending => "price-desc",
            Self::Name => "name",
            Self::Newest => "newest",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Featured => "Featured",
            Self::PriceAscending => "Price: low to high",
            Self::PriceDescending => "Price: high to low",
            Self::Name => "Name",
            Self::Newest => "Newest",
        }
    }
}

/// What the catalog shows for one URL.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogQuery {
    pub search: String,
    pub category: String,
    pub sort: CatalogSort,
    pub page: usize,
}

impl CatalogQuery {
    /// From the URL's parameters. `page` is 1-based; a missing one is 1, and one that is not a
    /// positive number is 0, a page that does not exist.
    pub fn from_params(search: &str, category: &str, sort: &str, page: &str) -> CatalogQuery {
        let page = match page.trim() {
            "" => 1,
            text => text.parse::<usize>().unwrap_or(0),
        };
        CatalogQuery {
            search: search.trim().to_string(),
            category: category.trim().to_string(),
            sort: CatalogSort::parse(sort),
            page,
        }
    }

    /// The catalog URL of this query with `sort` and `page` changed; parameters at their
    /// defaults are left out, so each view has one URL (and one page-cache entry).
    pub fn href(&self, sort: CatalogSort, page: usize) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !self.search.is_empty() {
            query.append_pair("q", &self.search);
        }
        if !self.category.is_empty() {
            query.append_pair("category", &self.category);
        }
        if sort != CatalogSort::Featured {
            query.append_pair("sort", sort.param());
        }
        if page > 1 {
            query.append_pair("page", &page.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            "/".to_string()
        } else {
            format!("/?{query}")
        }
    }
}

/// One page of matching products.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogListing {
    pub products: Vec<ProductSummary>,
    /// Products matching the search and category, on all pages.
    pub total: usize,
    /// The page asked for (1-based).
    pub page: usize,
    /// How many pages there are (at least 1).
    pub pages: usize,
}

impl CatalogListing {
    /// Whether the page asked for exists (page 1 always does, even with nothing on it).
    pub fn found(&self) -> bool {
        (1..=self.pages).contains(&self.page)
    }

    /// "25–48 of 5,015 products" (the positions of this page's products).
    pub fn summary(&self) -> String {
        let noun = if self.total == 1 {
            "product"
        } else {
            "products"
        };
        if self.products.is_empty() {
            return format!("{} {noun}", group_thousands(self.total));
        }
        let first = (self.page - 1) * PRODUCTS_PER_PAGE + 1;
        let last = first + self.products.len() - 1;
        format!(
            "{}–{} of {} {noun}",
            group_thousands(first),
            group_thousands(last),
            group_thousands(self.total)
        )
    }
}

/// The number of pages `total` items fill (at least 1: an empty list is one empty page).
pub fn page_count(total: usize, per_page: usize) -> usize {
    total.div_ceil(per_page.max(1)).max(1)
}

/// `5015` → `5,015`.
pub fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The page numbers a pager shows around `page` of `pages`: the first, the last and two on
/// each side of the current one; `None` marks a gap.
pub fn pager_numbers(page: usize, pages: usize) -> Vec<Option<usize>> {
    let mut numbers = Vec::new();
    let mut last_shown = 0;
    for n in 1..=pages {
        let near = n + 2 >= page && n <= page + 2;
        if n == 1 || n == pages || near {
            if n > last_shown + 1 {
                numbers.push(None);
            }
            numbers.push(Some(n));
            last_shown = n;
        }
    }
    numbers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_the_filters_and_leave_out_defaults() {
        let query = CatalogQuery::from_params(" wool & silk ", "hats", "price-desc", "3");
        assert_eq!(query.page, 3);
        assert_eq!(query.sort, CatalogSort::PriceDescending);
        assert_eq!(
            query.href(CatalogSort::PriceDescending, 4),
            "/?q=wool+%26+silk&category=hats&sort=price-desc&page=4"
        );
        assert_eq!(
            query.href(CatalogSort::Featured, 1),
            "/?q=wool+%26+silk&category=hats"
        );
        assert_eq!(CatalogQuery::default().href(CatalogSort::Featured, 1), "/");
    }

    #[test]
    fn bad_pages_and_sorts() {
        assert_eq!(CatalogQuery::from_params("", "", "", "").page, 1);
        assert_eq!(CatalogQuery::from_params("", "", "", "0").page, 0);
        assert_eq!(CatalogQuery::from_params("", "", "", "-2").page, 0);
        assert_eq!(CatalogQuery::from_params("", "", "", "two").page, 0);
        assert_eq!(
            CatalogQuery::from_params("", "", "", "99999999999999999999999").page,
            0
        );
        assert_eq!(CatalogSort::parse("cheapest"), CatalogSort::Featured);
        assert_eq!(page_count(0, 24), 1);
        assert_eq!(page_count(24, 24), 1);
        assert_eq!(page_count(25, 24), 2);
        assert_eq!(page_count(5015, 24), 209);
    }

    #[test]
    fn summaries_and_pager_numbers() {
        let listing = CatalogListing {
            products: vec![Default::default(); 24],
            total: 5015,
            page: 2,
            pages: 209,
        };
        assert_eq!(listing.summary(), "25–48 of 5,015 products");
        assert!(listing.found());
        assert!(!CatalogListing {
            page: 210,
            ..listing.clone()
        }
        .found());
        assert!(!CatalogListing { page: 0, ..listing }.found());
        assert_eq!(
            pager_numbers(1, 209),
            vec![Some(1), Some(2), Some(3), None, Some(209)]
        );
        assert_eq!(
            pager_numbers(100, 209),
            vec![
                Some(1),
                None,
                Some(98),
                Some(99),
                Some(100),
                Some(101),
                Some(102),
                None,
                Some(209)
            ]
        );
        assert_eq!(pager_numbers(1, 1), vec![Some(1)]);
        assert_eq!(
            pager_numbers(4, 5),
            vec![Some(1), Some(2), Some(3), Some(4), Some(5)]
        );
    }
}
