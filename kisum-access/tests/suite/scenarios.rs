//! Every QA scenario in the workspace's `tests/scenarios/`, found at run time, so a new file is tested
//! without a code change. CI also runs the shared copy beside the project with `kisum scenario`.

use std::path::Path;

use kisum_access::scenario::{Report, run_file, scenario_files};

fn run_dir(dir: &Path) -> Report {
    let files = scenario_files(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    assert!(!files.is_empty(), "no scenario files in {}", dir.display());
    let mut report = Report::default();
    for file in files {
        report.merge(run_file(&file));
    }
    report
}

#[test]
fn project_scenarios_all_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    let report = run_dir(&dir);
    let failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert!(failures.is_empty(), "{} failed:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(report.passed, expectations(&dir), "every expectation must have run");
}

/// Counts the expectations of a folder independently of the runner: each check, each entitlements
/// entry and each `world_error` once.
fn expectations(dir: &Path) -> usize {
    scenario_files(dir)
        .unwrap()
        .iter()
        .map(|f| {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            let len = |k: &str| v.get(k).and_then(|x| x.as_array()).map_or(0, Vec::len);
            len("checks") + len("entitlements") + usize::from(v.get("world_error").is_some())
        })
        .sum()
}
