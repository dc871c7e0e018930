//! The catalog: read from the database into memory, listed a page at a time with search,
//! category filter and sort order.

use super::db::Conn;
use super::db::Db;
use crate::model::{
    page_count, CatalogListing, CatalogQuery, CatalogSort, Category, Cents, ProductDetail,
    ProductSummary, PRODUCTS_PER_PAGE,
};
use crate::{on_conn, on_db};
use sqlx::FromRow;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, FromRow)]
struct ProductRow {
    id: i64,
    slug: String,
    name: String,
    category: String,
    price_cents: i64,
    image: String,
    stock: i64,
    description: String,
}

impl ProductRow {
    fn summary(self) -> ProductSummary {
        ProductSummary {
            id: self.id,
            slug: self.slug,
            name: self.name,
            category: self.category,
            price: Cents(self.price_cents),
            image: self.image,
            stock: self.stock,
        }
    }
}

const SELECT_PRODUCT: &str = "SELECT p.id, p.slug, p.name, c.slug AS category, p.price_cents, p.image, p.stock, p.description
     FROM products p JOIN categories c ON c.id = p.category_id";

/// The catalog in memory. Every page shows it and it rarely changes, so it is read from the
/// database once and then only checked: one indexed read of `catalog_version` (kept by
/// triggers, whichever process changes the catalog) per use, and a reload when it moved.
#[derive(Clone, Debug, Default)]
pub struct CatalogCache {
    current: Arc<RwLock<Option<Arc<Catalog>>>>,
    /// The last version read and when, for [`CatalogCache::recent_version`].
    probe: Arc<Mutex<Option<(Instant, i64)>>>,
}

/// How old the version seen by [`CatalogCache::recent_version`] may be.
pub const VERSION_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// One consistent copy of the catalog.
#[derive(Debug)]
pub struct Catalog {
    pub version: i64,
    products: Vec<ProductRow>,
    categories: Vec<Category>,
}

/// Reads the catalog's change counter.
pub const SELECT_VERSION: &str = "SELECT version FROM catalog_version WHERE id = 1";

/// The catalog's change counter.
pub async fn version(db: &Db) -> Result<i64, sqlx::Error> {
    on_db!(db, pool => sqlx::query_scalar(SELECT_VERSION).fetch_one(pool).await)
}

/// [`version`] on the caller's connection (inside its transaction).
pub async fn version_in(conn: &mut Conn<'_>) -> Result<i64, sqlx::Error> {
    on_conn!(conn, c => sqlx::query_scalar(SELECT_VERSION).fetch_one(c).await)
}

impl CatalogCache {
    /// The current catalog: the cached copy if the database has not changed since it was read.
    pub async fn get(&self, db: &Db) -> Result<Arc<Catalog>, sqlx::Error> {
        let version = version(db).await?;
        self.get_at(db, version).await
    }

    /// The catalog at `version`, just read from the database by the caller: the cached copy
    /// if it is that version, otherwise read again.
    pub async fn get_at(&self, db: &Db, version: i64) -> Result<Arc<Catalog>, sqlx::Error> {
        if let Some(catalog) = self.cached().filter(|c| c.version == version) {
            return Ok(catalog);
        }
        let mut conn = db.acquire().await?;
        self.get_at_in(&mut conn.conn(), version).await
    }

    /// [`CatalogCache::get_at`] on the caller's connection (one inside a transaction that
    /// holds a lock: taking a second connection from the pool there could wait for ever on
    /// connections held by transactions that wait for that lock).
    pub async fn get_at_in(
        &self,
        conn: &mut Conn<'_>,
        version: i64,
    ) -> Result<Arc<Catalog>, sqlx::Error> {
        if let Some(catalog) = self.cached().filter(|c| c.version == version) {
            return Ok(catalog);
        }
        // Read after the version: the rows are at least that new, so a change that lands in
        // between only causes one more reload.
        let (products, categories) = on_conn!(conn, c => {
            let products: Vec<ProductRow> =
                sqlx::query_as(&format!("{SELECT_PRODUCT} ORDER BY c.id, p.id"))
                    .fetch_all(&mut *c)
                    .await?;
            let categories: Vec<(String, String)> =
                sqlx::query_as("SELECT slug, name FROM categories ORDER BY id")
                    .fetch_all(&mut *c)
                    .await?;
            (products, categories)
        });
        let categories = categories
            .into_iter()
            .map(|(slug, name)| Category { slug, name })
            .collect();
        let catalog = Arc::new(Catalog {
            version,
            products,
            categories,
        });
        if let Ok(mut current) = self.current.write() {
            if current.as_ref().is_none_or(|c| c.version <= version) {
                *current = Some(catalog.clone());
            }
        }
        Ok(catalog)
    }

    /// The catalog version as read at most [`VERSION_CHECK_INTERVAL`] ago (or just now, after
    /// [`CatalogCache::mark_changed`]): for caches that may trail another process's change by
    /// that much.
    pub async fn recent_version(&self, db: &Db) -> Result<i64, sqlx::Error> {
        let seen = self.probe.lock().ok().and_then(|p| *p);
        if let Some((at, version)) = seen {
            if at.elapsed() < VERSION_CHECK_INTERVAL {
                return Ok(version);
            }
        }
        let version = version(db).await?;
        if let Ok(mut probe) = self.probe.lock() {
            *probe = Some((Instant::now(), version));
        }
        Ok(version)
    }

    /// This process changed the catalog: the next [`CatalogCache::recent_version`] reads it.
    pub fn mark_changed(&self) {
        if let Ok(mut probe) = self.probe.lock() {
            *probe = None;
        }
    }

    /// The copy read last, of whatever version, without asking the database.
    pub fn cached(&self) -> Option<Arc<Catalog>> {
        self.current.read().ok().and_then(|c| c.clone())
    }
}

/// SQLite's `LIKE` without wildcards: a substring match, case-insensitive for ASCII letters.
fn matches_term(text: &str, term_lower: &str) -> bool {
    text.to_ascii_lowercase().contains(term_lower)
}

impl Catalog {
    /// One page of the products matching `query` (search term in name or description,
    /// category slug), in its sort order. Only the page's products are copied; a page past
    /// the end (or page 0) comes back empty, with the page count to link to.
    pub fn page(&self, query: &CatalogQuery) -> CatalogListing {
        let term = Some(query.search.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_ascii_lowercase);
        let category = Some(query.category.as_str()).filter(|c| !c.is_empty());
        let mut matching: Vec<&ProductRow> = self
            .products
            .iter()
            .filter(|p| category.is_none_or(|c| p.category == c))
            .filter(|p| {
                term.as_deref()
                    .is_none_or(|t| matches_term(&p.name, t) || matches_term(&p.description, t))
            })
            .collect();
        // Stable sorts with the name and then the id as tie-breakers: every URL always shows
        // the same products in the same order (pages neither overlap nor skip one).
        match query.sort {
            CatalogSort::Featured => {}
            CatalogSort::PriceAscending => matching.sort_by(|a, b| {
                (a.price_cents, &a.name, a.id).cmp(&(b.price_cents, &b.name, b.id))
            }),
            CatalogSort::PriceDescending => matching.sort_by(|a, b| {
                (b.price_cents, &a.name, a.id).cmp(&(a.price_cents, &b.name, b.id))
            }),
            CatalogSort::Name => matching.sort_by_cached_key(|p| (p.name.to_lowercase(), p.id)),
            CatalogSort::Newest => matching.sort_by_key(|p| std::cmp::Reverse(p.id)),
        }
        let total = matching.len();
        let pages = page_count(total, PRODUCTS_PER_PAGE);
        let products = if (1..=pages).contains(&query.page) {
            matching
                .into_iter()
                .skip((query.page - 1) * PRODUCTS_PER_PAGE)
                .take(PRODUCTS_PER_PAGE)
                .map(|p| p.clone().summary())
                .collect()
        } else {
            Vec::new()
        };
        CatalogListing {
            products,
            total,
            page: query.page,
            pages,
        }
    }

    /// One product by its slug.
    pub fn by_slug(&self, slug: &str) -> Option<ProductDetail> {
        let row = self.products.iter().find(|p| p.slug == slug)?.clone();
        let description = row.description.clone();
        Some(ProductDetail {
            summary: row.summary(),
            description,
        })
    }

    /// One product by id.
    pub fn by_id(&self, id: i64) -> Option<ProductSummary> {
        self.products
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.clone().summary())
    }

    /// All categories, in catalog order.
    pub fn categories(&self) -> Vec<Category> {
        self.categories.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::matches_term;

    #[test]
    fn search_is_a_literal_ascii_case_insensitive_substring() {
        assert!(matches_term("Merino Scarf", "scarf"));
        assert!(matches_term("100% wool", "100%"));
        assert!(!matches_term("100 wool", "100%"));
        assert!(!matches_term("wool", "w_ol"));
    }
}
