//! The copilot's simulation (issue 20): a 10,000-run Monte Carlo of an event's sales and P&L, side by side
//! with its baseline in the same run — drawing the same number of normals from the same generator, the
//! least any such simulation costs. Run: `cargo bench -p kisum-modules --bench simulation`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn inputs(runs: u32, fx: bool) -> serde_json::Value {
    let mut inputs = json!({
        "capacity": 2000,
        "tiers": [{"name": "GA", "price": 4500, "share": 0.8}, {"name": "VIP", "price": 12000, "share": 0.2}],
        "currency": "EUR",
        "fixed_costs": 6_000_000,
        "variable_cost": 500,
        "sell_through": {"mean": 0.75, "spread": 0.15},
        "curve": "late",
        "days_on_sale": 60,
        "runs": runs,
        "seed": 42
    });
    if fx {
        inputs["fx"] = json!({"currency": "USD", "rate": 1.08, "volatility": 0.05});
    }
    inputs
}

fn simulation(c: &mut Criterion) {
    let mut group = c.benchmark_group("simulation");
    // Two tiers and the event: three normals a run; four with FX.
    group.bench_function("baseline: 40,000 normals from the generator", |b| {
        b.iter(|| kisum_modules::benching::normals(42, 40_000))
    });
    let plain = inputs(10_000, false);
    group.bench_function("10,000 runs, 2 tiers", |b| b.iter(|| kisum_modules::benching::simulate(&plain).unwrap()));
    let fx = inputs(10_000, true);
    group.bench_function("10,000 runs, 2 tiers, FX", |b| b.iter(|| kisum_modules::benching::simulate(&fx).unwrap()));
    group.finish();
}

criterion_group!(benches, simulation);
criterion_main!(benches);
