//! The QA scenario runner (`scenarios/README.md`): loads each file's world, runs its checks, entitlements
//! and `world_error` expectations, and reports every failure with its file, index, expected and got.
//!
//! Behind the `scenario` feature (off by default); the `kisum` CLI enables it.

use std::path::{Path, PathBuf};

use kisum_entitlements::{CompanyId, Timestamp};
use kisum_errors::{ErrorCode, KisumError};
use serde::Deserialize;
use serde_json::Value;

use crate::company::resource_ref;
use crate::doc::{PrincipalDoc, ResourceDoc, WorldDoc};
use crate::eval::Decision;
use crate::ids::{AgentId, Principal, UserId};
use crate::query::Access;
use crate::world::World;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioDoc {
    #[allow(dead_code)]
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    world: Value,
    #[serde(default)]
    checks: Vec<CheckDoc>,
    #[serde(default)]
    entitlements: Vec<EntitlementsCheckDoc>,
    #[serde(default)]
    world_error: Option<String>,
}

/// One access check of a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckDoc {
    /// Who asks.
    pub principal: PrincipalDoc,
    /// In which company.
    pub company: String,
    /// The permission key.
    pub permission: String,
    /// The resource, if any.
    #[serde(default)]
    pub resource: Option<ResourceDoc>,
    /// When.
    pub at: Timestamp,
    /// `allow`, a deny reason, or an error code.
    pub expect: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntitlementsCheckDoc {
    company: String,
    at: Timestamp,
    expect: Value,
}

/// One expectation that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The scenario file.
    pub file: PathBuf,
    /// `checks`, `entitlements`, `world_error` or `file`.
    pub section: &'static str,
    /// The index within the section, from 0.
    pub index: usize,
    /// What the scenario expects.
    pub expected: String,
    /// What happened.
    pub got: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}[{}]: expected {}, got {}",
            self.file.display(),
            self.section,
            self.index,
            self.expected,
            self.got
        )
    }
}

/// The outcome of running scenarios.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Expectations that held.
    pub passed: usize,
    /// Expectations that did not.
    pub failures: Vec<Failure>,
}

impl Report {
    /// Adds another report's counts.
    pub fn merge(&mut self, other: Report) {
        self.passed += other.passed;
        self.failures.extend(other.failures);
    }
}

/// The outcome of one check, as a scenario spells it: `allow`, a deny reason, or an error code.
pub fn outcome(world: &World, check: &CheckDoc) -> String {
    let permission = match world.permission(&check.permission) {
        Ok(p) => p,
        Err(e) => return e.code().to_string(),
    };
    let resource = match check.resource.as_ref().map(resource_ref).transpose() {
        Ok(r) => r,
        Err(_) => return ErrorCode::ValidationFailed.to_string(),
    };
    // An id that does not parse names nothing that exists: not a member, or an unknown company.
    let principal = match &check.principal {
        PrincipalDoc::User(u) => UserId::parse(u).map(Principal::User),
        PrincipalDoc::Agent(a) => AgentId::parse(a).map(Principal::Agent),
    };
    let Ok(principal) = principal else { return kisum_errors::DenyReason::NotAMember.to_string() };
    let Ok(company) = CompanyId::parse(&check.company) else {
        return kisum_errors::DenyReason::UnknownCompany.to_string();
    };
    match world.check(&principal, &company, permission, resource.as_ref(), check.at) {
        Decision::Allow(_) => "allow".to_owned(),
        Decision::Deny(reason) => reason.to_string(),
    }
}

/// Runs one scenario file.
pub fn run_file(path: &Path) -> Report {
    let fail = |section, index, expected: &str, got: String| Failure {
        file: path.to_path_buf(),
        section,
        index,
        expected: expected.to_owned(),
        got,
    };
    let mut report = Report::default();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            report.failures.push(fail("file", 0, "a readable scenario file", e.to_string()));
            return report;
        }
    };
    let scenario: ScenarioDoc = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            report.failures.push(fail("file", 0, "a scenario", format!("malformed scenario: {e}")));
            return report;
        }
    };
    let world = serde_json::from_value::<WorldDoc>(scenario.world)
        .map_err(|e| crate::AccessError::Malformed(e.to_string()))
        .and_then(|doc| World::from_doc(&doc));
    if let Some(expected) = &scenario.world_error {
        match &world {
            Err(e) if e.code().as_str() == expected => report.passed += 1,
            Err(e) => report.failures.push(fail("world_error", 0, expected, e.code().to_string())),
            Ok(_) => report.failures.push(fail("world_error", 0, expected, "a valid world".to_owned())),
        }
    }
    let world = match world {
        Ok(w) => w,
        Err(e) => {
            let got = format!("world rejected: {e}");
            for (i, c) in scenario.checks.iter().enumerate() {
                report.failures.push(fail("checks", i, &c.expect, got.clone()));
            }
            for (i, c) in scenario.entitlements.iter().enumerate() {
                report.failures.push(fail("entitlements", i, &c.expect.to_string(), got.clone()));
            }
            return report;
        }
    };
    for (i, check) in scenario.checks.iter().enumerate() {
        let got = outcome(&world, check);
        if got == check.expect {
            report.passed += 1;
        } else {
            report.failures.push(fail("checks", i, &check.expect, got));
        }
    }
    for (i, e) in scenario.entitlements.iter().enumerate() {
        let summary = CompanyId::parse(&e.company).ok().and_then(|c| world.entitlements(&c, e.at));
        let got = match summary {
            Some(summary) => {
                let mut v = serde_json::to_value(&summary).unwrap_or(Value::Null);
                if let Some(map) = v.as_object_mut() {
                    map.remove("provenance");
                }
                v
            }
            None => Value::String(kisum_errors::DenyReason::UnknownCompany.to_string()),
        };
        if got == e.expect {
            report.passed += 1;
        } else {
            report.failures.push(fail("entitlements", i, &e.expect.to_string(), got.to_string()));
        }
    }
    report
}

/// The `*.json` files of a folder (not recursively), sorted; a file path is returned as is.
pub fn scenario_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let p = entry?.path();
        if p.is_file() && p.extension().is_some_and(|x| x == "json") {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}
