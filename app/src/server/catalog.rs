//! Catalog queries: listing with search and category filter, one product by slug or id.

use crate::model::{Category, Cents, ProductDetail, ProductSummary};
use sqlx::{FromRow, SqlitePool};

#[derive(FromRow)]
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

/// Escapes `%`, `_` and `\` so a search term matches literally inside a LIKE pattern.
fn like_pattern(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len() + 2);
    escaped.push('%');
    for ch in term.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(ch);
    }
    escaped.push('%');
    escaped
}

/// Products matching the optional search term (name or description, case-insensitive)
/// and the optional category slug, in a stable order.
pub async fn list_products(
    db: &SqlitePool,
    search: Option<&str>,
    category: Option<&str>,
) -> Result<Vec<ProductSummary>, sqlx::Error> {
    let sql = format!(
        "{SELECT_PRODUCT}
         WHERE (?1 IS NULL OR p.name LIKE ?1 ESCAPE '\\' OR p.description LIKE ?1 ESCAPE '\\')
           AND (?2 IS NULL OR c.slug = ?2)
         ORDER BY c.id, p.id"
    );
    let rows: Vec<ProductRow> = sqlx::query_as(&sql)
        .bind(search.map(like_pattern))
        .bind(category)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(ProductRow::summary).collect())
}

/// One product by its slug.
pub async fn product_by_slug(
    db: &SqlitePool,
    slug: &str,
) -> Result<Option<ProductDetail>, sqlx::Error> {
    let sql = format!("{SELECT_PRODUCT} WHERE p.slug = ?");
    let row: Option<ProductRow> = sqlx::query_as(&sql).bind(slug).fetch_optional(db).await?;
    Ok(row.map(|row| {
        let description = row.description.clone();
        ProductDetail {
            summary: row.summary(),
            description,
        }
    }))
}

/// Products by id, for rendering a cart. Unknown ids are simply absent from the result.
pub async fn products_by_ids(
    db: &SqlitePool,
    ids: &[i64],
) -> Result<Vec<ProductSummary>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = vec!["?"; ids.len()].join(", ");
    let sql = format!("{SELECT_PRODUCT} WHERE p.id IN ({placeholders})");
    let mut query = sqlx::query_as::<_, ProductRow>(&sql);
    for id in ids {
        query = query.bind(id);
    }
    Ok(query
        .fetch_all(db)
        .await?
        .into_iter()
        .map(ProductRow::summary)
        .collect())
}

/// All categories, in catalog order.
pub async fn categories(db: &SqlitePool) -> Result<Vec<Category>, sqlx::Error> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT slug, name FROM categories ORDER BY id")
            .fetch_all(db)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(slug, name)| Category { slug, name })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_wildcards_are_literal() {
        assert_eq!(like_pattern("wool"), "%wool%");
        assert_eq!(like_pattern("100%_a\\"), "%100\\%\\_a\\\\%");
    }
}
