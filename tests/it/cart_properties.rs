//! Property: any sequence of cart operations, sent to the real server, leaves the cart exactly
//! as a reference model of the rules predicts, and always within the invariants (quantities
//! 1..=min(stock, 99), count = Σ quantities, total = Σ quantity × unit price).

use crate::common;

use common::{spawn_app_with, Shopper, TestApp};
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
enum Op {
    Add(usize, i64),
    Update(usize, i64),
    Clear,
}

/// Products by index: (id, stock, price). Index 15 does not exist in the catalog.
type Catalog = Vec<(i64, i64, i64)>;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..16, -2i64..120).prop_map(|(p, q)| Op::Add(p, q)),
        3 => (0usize..16, -2i64..120).prop_map(|(p, q)| Op::Update(p, q)),
        1 => Just(Op::Clear),
    ]
}

/// The rules, as the shop states them: what the cart must be after `op`.
fn apply(model: &mut BTreeMap<i64, i64>, catalog: &Catalog, op: &Op) -> bool {
    let product = |index: usize| catalog.get(index).copied();
    match *op {
        Op::Add(index, quantity) => {
            let Some((id, stock, _)) = product(index) else {
                return false;
            };
            let have = model.get(&id).copied().unwrap_or(0);
            let limit = stock.min(99);
            if !(1..=99).contains(&quantity) || stock <= 0 || have + quantity > limit {
                return false;
            }
            model.insert(id, have + quantity);
            true
        }
        Op::Update(index, quantity) => {
            let Some((id, stock, _)) = product(index) else {
                return false;
            };
            if !model.contains_key(&id) || !(0..=99).contains(&quantity) || quantity > stock.min(99)
            {
                return false;
            }
            if quantity == 0 {
                model.remove(&id);
            } else {
                model.insert(id, quantity);
            }
            true
        }
        Op::Clear => {
            model.clear();
            true
        }
    }
}

async fn run(app: &TestApp, catalog: &Catalog, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut shopper = Shopper::new(app);
    let mut model = BTreeMap::new();
    for op in ops {
        let accepted = apply(&mut model, catalog, op);
        let (path, id, quantity) = match *op {
            Op::Add(i, q) => ("/api/cart/add", catalog.get(i).map_or(9999, |p| p.0), q),
            Op::Update(i, q) => ("/api/cart/update", catalog.get(i).map_or(9999, |p| p.0), q),
            Op::Clear => ("/api/cart/clear", 0, 0),
        };
        let reply = shopper
            .post(
                path,
                &[
                    ("product_id", &id.to_string()),
                    ("quantity", &quantity.to_string()),
                ],
            )
            .await;
        if accepted {
            prop_assert_eq!(reply.status, 200, "{:?} refused: {}", op, reply.body);
        } else {
            prop_assert!(
                (400..500).contains(&reply.status),
                "{:?} answered {}",
                op,
                reply.status
            );
        }
        let cart = shopper.cart().await;
        let lines = cart["lines"].as_array().cloned().unwrap_or_default();
        let mut actual = BTreeMap::new();
        let mut count = 0;
        let mut total = 0;
        for line in &lines {
            let id = line["product_id"].as_i64().unwrap();
            let quantity = line["quantity"].as_i64().unwrap();
            let price = line["unit_price_cents"].as_i64().unwrap();
            let stock = catalog.iter().find(|p| p.0 == id).map(|p| p.1).unwrap();
            prop_assert!(quantity >= 1 && quantity <= stock.min(99), "line {}", line);
            actual.insert(id, quantity);
            count += quantity;
            total += quantity * price;
        }
        prop_assert_eq!(cart["count"].as_i64(), Some(count));
        prop_assert_eq!(cart["total_cents"].as_i64(), Some(total));
        prop_assert_eq!(&actual, &model, "after {:?}", op);
    }
    Ok(())
}

#[test]
fn any_sequence_of_cart_operations_keeps_the_invariants() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, catalog) = runtime.block_on(async {
        // Every sequence is a new visitor from the same address: a budget of new sessions
        // per address that they all fit in (the budget has its own tests).
        let app = spawn_app_with(|config| config.policy.new_sessions_burst = 1_000_000).await;
        // One product sold out, one with little stock, so the stock rules are exercised.
        for sql in [
            "UPDATE products SET stock = 0 WHERE slug = 'cashmere-wrap'",
            "UPDATE products SET stock = 3 WHERE slug = 'felt-fedora'",
        ] {
            app::on_db!(&app.pool, p => sqlx::query(sql)
                .execute(p)
                .await
                .map(|r| r.rows_affected()))
            .unwrap();
        }
        let catalog: Catalog = app::on_db!(&app.pool, p => sqlx::query_as(
            "SELECT id, stock, price_cents FROM products ORDER BY id"
        )
        .fetch_all(p)
        .await)
        .unwrap();
        (app, catalog)
    });
    // 32 sequences in `make test`; `make soak` sets PROPTEST_CASES.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let config = ProptestConfig::with_cases(cases);
    proptest!(config, |(ops in proptest::collection::vec(op(), 1..25))| {
        runtime.block_on(run(&app, &catalog, &ops))?;
    });
    runtime.block_on(app.stop());
}
