//! Entitlements of a company with one package, five add-ons and three overrides (target ≤ 1 µs).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kisum_entitlements::doc::{CatalogDoc, OverrideDoc, SubscriptionDoc};
use kisum_entitlements::{Catalog, CompanyPlans, Timestamp};

fn setup() -> (Catalog, CompanyPlans) {
    let modules: Vec<String> = (0..8).map(|i| format!(r#"{{"id":"m{i}","kind":"addon"}}"#)).collect();
    let features: Vec<String> = (0..8).map(|i| format!(r#"{{"key":"m{i}.f","module":"m{i}"}}"#)).collect();
    let addons: Vec<String> = (1..6)
        .map(|i| {
            format!(
                r#"{{"id":"a{i}","version":1,"requires":["pro"],"modules":["m{i}"],"features":["m{i}.f"],
                   "limits":{{"core.seats":5,"l.max":{i}}}}}"#
            )
        })
        .collect();
    let catalog: CatalogDoc = serde_json::from_str(&format!(
        r#"{{"modules":[{}],"features":[{}],
            "limits":[{{"key":"core.seats","combine":"sum"}},{{"key":"l.max","combine":"max"}},{{"key":"l.other","combine":"sum"}}],
            "packages":[{{"id":"pro","version":1,"modules":["m0","m6"],"features":["m0.f"],"limits":{{"core.seats":10,"l.other":3}}}}],
            "addons":[{}]}}"#,
        modules.join(","),
        features.join(","),
        addons.join(",")
    ))
    .unwrap();
    let catalog = Catalog::from_doc(&catalog).unwrap();
    let mut subs = vec![format!(
        r#"{{"id":"p","plan":{{"package":"pro","version":1}},"status":"active","starts_at":"2026-01-01T00:00:00Z"}}"#
    )];
    subs.extend((1..6).map(|i| {
        format!(
            r#"{{"id":"s{i}","plan":{{"addon":"a{i}","version":1}},"status":"active","starts_at":"2026-01-01T00:00:00Z","quantity":2}}"#
        )
    }));
    let subs: Vec<SubscriptionDoc> = serde_json::from_str(&format!("[{}]", subs.join(","))).unwrap();
    let overrides: Vec<OverrideDoc> = serde_json::from_str(
        r#"[{"effect":"grant","module":"m7","expires_at":"2027-01-01T00:00:00Z","reason":"pilot"},
            {"effect":"revoke","feature":"m2.f","reason":"legal"},
            {"effect":"grant","limit":"l.other","value":40,"reason":"deal"}]"#,
    )
    .unwrap();
    let plans = CompanyPlans::from_docs(&catalog, &subs, &overrides).unwrap();
    (catalog, plans)
}

fn bench(c: &mut Criterion) {
    let (catalog, plans) = setup();
    let at = Timestamp::parse("2026-06-01T00:00:00Z").unwrap();
    let ent = plans.entitlements(&catalog, at);
    assert_eq!(ent.modules().len(), 8);
    c.bench_function("entitlements/1 package + 5 add-ons + 3 overrides", |b| {
        b.iter(|| plans.entitlements(black_box(&catalog), black_box(at)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
