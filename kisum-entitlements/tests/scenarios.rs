//! Runs the commercial half of every QA scenario in the workspace's `tests/scenarios/`: each
//! `entitlements` expectation, and each `world_error` whose cause is in the catalog or subscriptions
//! (the access half, and the other world errors, are checked by kisum-access's scenario test).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::Path;

use kisum_entitlements::doc::{
    AddonDoc, CatalogDoc, FeatureDoc, LimitDoc, ModuleDoc, OverrideDoc, PackageDoc, SubscriptionDoc,
};
use kisum_entitlements::{Catalog, CompanyPlans, Issues, Timestamp};
use serde_json::Value;

fn field<T: serde::de::DeserializeOwned + Default>(v: &Value, key: &str) -> T {
    match v.get(key) {
        None | Some(Value::Null) => T::default(),
        Some(x) => serde_json::from_value(x.clone()).unwrap_or_else(|e| panic!("`{key}`: {e}")),
    }
}

/// Builds the catalog and each company's plans, returning the problems found.
fn load(world: &Value) -> (Catalog, Vec<(String, CompanyPlans)>, Issues) {
    let c = &world["catalog"];
    let doc = CatalogDoc {
        modules: field::<Vec<ModuleDoc>>(c, "modules"),
        features: field::<Vec<FeatureDoc>>(c, "features"),
        limits: field::<Vec<LimitDoc>>(c, "limits"),
        packages: field::<Vec<PackageDoc>>(c, "packages"),
        addons: field::<Vec<AddonDoc>>(c, "addons"),
    };
    let mut issues = Issues::new();
    let catalog = Catalog::compile(&doc, "/catalog", &mut issues);
    let mut companies = Vec::new();
    for (i, company) in world["companies"].as_array().cloned().unwrap_or_default().iter().enumerate() {
        let subs: Vec<SubscriptionDoc> = field(company, "subscriptions");
        let overs: Vec<OverrideDoc> = field(company, "overrides");
        let plans = CompanyPlans::compile(&catalog, &subs, &overs, &format!("/companies/{i}"), &mut issues);
        companies.push((company["id"].as_str().unwrap().to_owned(), plans));
    }
    (catalog, companies, issues)
}

#[test]
fn scenario_entitlements_and_commercial_world_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenario files in {}", dir.display());
    let (mut checked, mut failures) = (0, Vec::new());
    for file in &files {
        let scenario: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let name = file.file_name().unwrap().to_string_lossy();
        let (catalog, companies, issues) = load(&scenario["world"]);
        if scenario.get("world_error").is_some() {
            // Only worlds whose commercial half is invalid are this crate's to reject.
            if !issues.is_empty() {
                checked += 1;
            }
            continue;
        }
        assert!(issues.is_empty(), "{name}: {:?}", issues.into_vec());
        for (i, e) in scenario["entitlements"].as_array().cloned().unwrap_or_default().iter().enumerate() {
            checked += 1;
            let company = e["company"].as_str().unwrap();
            let at = Timestamp::parse(e["at"].as_str().unwrap()).unwrap();
            let (_, plans) = companies.iter().find(|(id, _)| id == company).unwrap();
            let summary = plans.entitlements(&catalog, at).summary(&catalog, plans);
            let mut got = serde_json::to_value(&summary).unwrap();
            got.as_object_mut().unwrap().remove("provenance");
            if got != e["expect"] {
                failures.push(format!("{name} entitlements[{i}]: expected {} got {got}", e["expect"]));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 0, "no expectation was checked");
}
