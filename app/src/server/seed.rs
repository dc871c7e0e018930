//! The demo catalog, inserted when the catalog is empty.

use super::db::Db;
use crate::on_conn;

struct SeedProduct {
    slug: &'static str,
    name: &'static str,
    price_cents: i64,
    stock: i64,
    description: &'static str,
}

const CATALOG: &[(&str, &str, &[SeedProduct])] = &[
    ("coats", "Coats", &[
        SeedProduct { slug: "harbour-wool-coat", name: "Harbour Wool Coat", price_cents: 24900, stock: 40, description: "A double-breasted coat in dense boiled wool that shrugs off harbour wind and drizzle." },
        SeedProduct { slug: "alpine-down-parka", name: "Alpine Down Parka", price_cents: 32900, stock: 30, description: "Responsibly sourced down in a hooded parka rated for long, cold mountain evenings." },
        SeedProduct { slug: "city-trench-coat", name: "City Trench Coat", price_cents: 19900, stock: 35, description: "The classic belted trench in water-repellent cotton gabardine." },
        SeedProduct { slug: "storm-rain-shell", name: "Storm Rain Shell", price_cents: 12900, stock: 50, description: "A light, packable shell with taped seams for sudden downpours." },
    ]),
    ("scarves", "Scarves", &[
        SeedProduct { slug: "merino-scarf", name: "Merino Scarf", price_cents: 4900, stock: 80, description: "Soft extra-fine merino that keeps warm without the itch." },
        SeedProduct { slug: "cashmere-wrap", name: "Cashmere Wrap", price_cents: 11900, stock: 25, description: "A generous wrap of pure cashmere, light enough to wear all year." },
        SeedProduct { slug: "tartan-scarf", name: "Tartan Scarf", price_cents: 3900, stock: 60, description: "Lambswool woven in a traditional tartan with fringed ends." },
        SeedProduct { slug: "silk-neckerchief", name: "Silk Neckerchief", price_cents: 2900, stock: 45, description: "A small square of printed silk for a touch of colour at the collar." },
    ]),
    ("hats", "Hats", &[
        SeedProduct { slug: "felt-fedora", name: "Felt Fedora", price_cents: 6900, stock: 30, description: "Wool felt fedora with a grosgrain band and a pinched crown." },
        SeedProduct { slug: "knit-beanie", name: "Knit Beanie", price_cents: 2400, stock: 100, description: "A ribbed beanie knitted from recycled wool, in a warm rust colour." },
        SeedProduct { slug: "wool-flat-cap", name: "Wool Flat Cap", price_cents: 3900, stock: 40, description: "Herringbone flat cap with a quilted lining." },
        SeedProduct { slug: "waxed-bucket-hat", name: "Waxed Bucket Hat", price_cents: 4500, stock: 35, description: "Waxed cotton bucket hat that sheds rain and packs flat." },
    ]),
    ("gloves", "Gloves", &[
        SeedProduct { slug: "leather-gloves", name: "Leather Gloves", price_cents: 5900, stock: 40, description: "Lambskin gloves lined with cashmere, cut close to the hand." },
        SeedProduct { slug: "touchscreen-gloves", name: "Touchscreen Gloves", price_cents: 2900, stock: 70, description: "Knit gloves with conductive fingertips for using a phone outdoors." },
        SeedProduct { slug: "shearling-mittens", name: "Shearling Mittens", price_cents: 7900, stock: 25, description: "Sheepskin mittens with the fleece turned inside for the coldest days." },
    ]),
];

/// Inserts the demo catalog in one transaction if there are no products yet.
/// Returns the number of products inserted (0 when the catalog already had some).
pub async fn seed_if_empty(db: &Db) -> Result<usize, sqlx::Error> {
    // A write transaction (read, then write): two servers starting on one database at once
    // must not both seed. On PostgreSQL the seeding is serialised by an advisory lock.
    let mut tx = db.begin_write().await?;
    tx.conn().lock_key("seed").await?;
    let inserted = on_conn!(&mut tx.conn(), c => {
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products")
            .fetch_one(&mut *c)
            .await?;
        if existing > 0 {
            0
        } else {
            let mut inserted = 0;
            for (category_slug, category_name, products) in CATALOG {
                let category_id: i64 = sqlx::query_scalar(
                    "INSERT INTO categories (slug, name) VALUES ($1, $2) RETURNING id",
                )
                .bind(category_slug)
                .bind(category_name)
                .fetch_one(&mut *c)
                .await?;
                for product in *products {
                    sqlx::query(
                        "INSERT INTO products (slug, name, description, price_cents, stock, image, category_id)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(product.slug)
                    .bind(product.name)
                    .bind(product.description)
                    .bind(product.price_cents)
                    .bind(product.stock)
                    .bind(format!("/images/{}.svg", product.slug))
                    .bind(category_id)
                    .execute(&mut *c)
                    .await?;
                    inserted += 1;
                }
            }
            inserted
        }
    });
    tx.commit().await?;
    Ok(inserted)
}

/// Words the generated assortment is made of: varied names for the sort by name, materials
/// for searches that hit a few hundred products, prices spread over two orders of magnitude.
const ADJECTIVES: &[&str] = &[
    "Arctic", "Breton", "Coastal", "Dune", "Ember", "Fjord", "Glen", "Harbour", "Island",
    "Juniper", "Kestrel", "Loch", "Moor", "Northern", "Orchard", "Pine", "Quarry", "River",
    "Summit", "Tundra",
];
const MATERIALS: &[&str] = &[
    "wool", "linen", "cotton", "cashmere", "alpaca", "tweed", "leather", "silk", "fleece",
    "canvas", "corduroy",
];
/// An item, and the demo image it is shown with.
const ITEMS: &[(&str, &str)] = &[
    ("Coat", "harbour-wool-coat"),
    ("Parka", "alpine-down-parka"),
    ("Scarf", "merino-scarf"),
    ("Wrap", "cashmere-wrap"),
    ("Beanie", "knit-beanie"),
    ("Cap", "wool-flat-cap"),
    ("Gloves", "leather-gloves"),
    ("Mittens", "shearling-mittens"),
];

/// The category the generated products go to (after the demo categories, so the demo
/// catalog's first page is unchanged).
pub const ASSORTMENT_CATEGORY: &str = "assortment";

/// Tops the generated assortment up to `target` products (for load tests, paging demos and
/// the paging tests: `coatcheck assortment --products 5000`). Returns how many were added.
pub async fn add_assortment(db: &Db, target: usize) -> Result<usize, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    tx.conn().lock_key("seed").await?;
    let added = on_conn!(&mut tx.conn(), c => {
        let category_id: Option<i64> = sqlx::query_scalar("SELECT id FROM categories WHERE slug = $1")
            .bind(ASSORTMENT_CATEGORY)
            .fetch_optional(&mut *c)
            .await?;
        let category_id = match category_id {
            Some(id) => id,
            None => sqlx::query_scalar("INSERT INTO categories (slug, name) VALUES ($1, $2) RETURNING id")
                .bind(ASSORTMENT_CATEGORY)
                .bind("Assortment")
                .fetch_one(&mut *c)
                .await?,
        };
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products WHERE category_id = $1")
            .bind(category_id)
            .fetch_one(&mut *c)
            .await?;
        let existing = usize::try_from(existing).unwrap_or(0);
        // Several rows per statement: 5,000 products in ten round trips, not 5,000. The values
        // are generated here from fixed words and numbers, never from input.
        for chunk_start in (existing..target).step_by(500) {
            let rows: Vec<String> = (chunk_start..target.min(chunk_start + 500))
                .map(|i| {
                    let n = i + 1;
                    let adjective = ADJECTIVES[i % ADJECTIVES.len()];
                    let material = MATERIALS[(i / ADJECTIVES.len()) % MATERIALS.len()];
                    let (item, image) = ITEMS[(i * 7) % ITEMS.len()];
                    let price_cents = 900 + (i * 7919) % 49_100;
                    format!(
                        "('assortment-{n:05}', '{adjective} {material} {item} No. {n}', \
                         'Number {n} of the assortment: a {material} {} made in small batches.', \
                         {price_cents}, {}, '/images/{image}.svg', {category_id})",
                        item.to_lowercase(),
                        10 + i % 90,
                    )
                })
                .collect();
            sqlx::query(&format!(
                "INSERT INTO products (slug, name, description, price_cents, stock, image, category_id) VALUES {}",
                rows.join(", ")
            ))
            .execute(&mut *c)
            .await?;
        }
        target.saturating_sub(existing)
    });
    tx.commit().await?;
    Ok(added)
}
