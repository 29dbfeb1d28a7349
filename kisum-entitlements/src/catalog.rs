//! The compiled commercial catalog: modules, features and limits interned to dense indices, and every
//! version of every package and add-on with its grants as bitsets.

use std::collections::{HashMap, HashSet};

use crate::BitSet;
use crate::doc::{AddonDoc, CatalogDoc, Combine, LimitValue, MAX_LIMIT, ModuleKind, PlanDoc};
use crate::error::{EntitlementsError, Issues};
use crate::id::{FeatureKey, Idx, LimitKey, ModuleId, PlanId};

/// A declared module.
#[derive(Debug, Clone)]
pub struct ModuleDef {
    /// Its id.
    pub id: ModuleId,
    /// Base or add-on (descriptive only).
    pub kind: ModuleKind,
}

/// A declared feature.
#[derive(Debug, Clone)]
pub struct FeatureDef {
    /// Its key.
    pub key: FeatureKey,
    /// Its module.
    pub module: Idx,
}

/// A declared limit.
#[derive(Debug, Clone)]
pub struct LimitDef {
    /// Its key.
    pub key: LimitKey,
    /// How grants combine.
    pub combine: Combine,
}

/// Package or add-on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PlanKind {
    /// A package: at most one is effective per company at any instant.
    Package,
    /// An add-on: counts only while one of its required packages is effective.
    Addon,
}

impl PlanKind {
    /// `package` or `addon`.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanKind::Package => "package",
            PlanKind::Addon => "addon",
        }
    }
}

/// One version of a package or add-on.
#[derive(Debug, Clone)]
pub struct PlanDef {
    /// Package or add-on.
    pub kind: PlanKind,
    /// Its id.
    pub id: PlanId,
    /// Its version.
    pub version: u32,
    /// Granted modules.
    pub modules: BitSet,
    /// Granted features.
    pub features: BitSet,
    /// Granted limit values.
    pub limits: Vec<(Idx, LimitValue)>,
    /// For add-ons: package ids, any of which must be effective.
    pub requires: Vec<PlanId>,
}

/// The compiled commercial catalog. Immutable once built; share it by `Arc`.
#[derive(Debug, Clone)]
pub struct Catalog {
    doc: CatalogDoc,
    modules: Vec<ModuleDef>,
    features: Vec<FeatureDef>,
    limits: Vec<LimitDef>,
    plans: Vec<PlanDef>,
    module_ix: HashMap<ModuleId, Idx>,
    feature_ix: HashMap<FeatureKey, Idx>,
    limit_ix: HashMap<LimitKey, Idx>,
    plan_ix: HashMap<(PlanKind, PlanId, u32), Idx>,
}

/// An add-on's required packages, each checked against `is_package`.
fn addon_requires(a: &AddonDoc, is_package: impl Fn(&str) -> bool, at: &str, issues: &mut Issues) -> Vec<PlanId> {
    if a.requires.is_empty() {
        issues.push(format!("{at}/requires"), "an add-on requires at least one package");
    }
    let mut requires = Vec::new();
    for (j, r) in a.requires.iter().enumerate() {
        match PlanId::parse(r) {
            Ok(id) if is_package(r) => requires.push(id),
            Ok(_) => issues.push(format!("{at}/requires/{j}"), format!("unknown package `{r}`")),
            Err(e) => issues.push(format!("{at}/requires/{j}"), e.to_string()),
        }
    }
    requires
}

fn idx(n: usize) -> Idx {
    // INVARIANT: catalogs are far smaller than 2^32 items.
    Idx(u32::try_from(n).unwrap_or(u32::MAX))
}

impl Catalog {
    /// Validates and compiles a catalog, naming every problem (paths under `/catalog`).
    pub fn from_doc(doc: &CatalogDoc) -> Result<Catalog, EntitlementsError> {
        let mut issues = Issues::new();
        let catalog = Catalog::compile(doc, "/catalog", &mut issues);
        issues.finish(catalog)
    }

    /// Compiles a catalog, recording problems in `issues` under `path`; items with problems are left out.
    pub fn compile(doc: &CatalogDoc, path: &str, issues: &mut Issues) -> Catalog {
        let mut cat = Catalog {
            doc: doc.clone(),
            modules: Vec::new(),
            features: Vec::new(),
            limits: Vec::new(),
            plans: Vec::new(),
            module_ix: HashMap::new(),
            feature_ix: HashMap::new(),
            limit_ix: HashMap::new(),
            plan_ix: HashMap::new(),
        };
        for (i, m) in doc.modules.iter().enumerate() {
            let at = format!("{path}/modules/{i}/id");
            match ModuleId::parse(&m.id) {
                Ok(id) if cat.module_ix.contains_key(&id) => issues.push(at, format!("duplicate module `{id}`")),
                Ok(id) => {
                    cat.module_ix.insert(id.clone(), idx(cat.modules.len()));
                    cat.modules.push(ModuleDef { id, kind: m.kind });
                }
                Err(e) => issues.push(at, e.to_string()),
            }
        }
        for (i, f) in doc.features.iter().enumerate() {
            let at = format!("{path}/features/{i}");
            let key = match FeatureKey::parse(&f.key) {
                Ok(key) => key,
                Err(e) => {
                    issues.push(format!("{at}/key"), e.to_string());
                    continue;
                }
            };
            let Some(&module) = cat.module_ix.get(f.module.as_str()) else {
                issues.push(format!("{at}/module"), format!("unknown module `{}`", f.module));
                continue;
            };
            if key.module_segment() != f.module {
                issues.push(
                    format!("{at}/key"),
                    format!("feature `{key}` does not start with its module `{}`", f.module),
                );
            } else if cat.feature_ix.contains_key(&key) {
                issues.push(format!("{at}/key"), format!("duplicate feature `{key}`"));
            } else {
                cat.feature_ix.insert(key.clone(), idx(cat.features.len()));
                cat.features.push(FeatureDef { key, module });
            }
        }
        for (i, l) in doc.limits.iter().enumerate() {
            let at = format!("{path}/limits/{i}/key");
            match LimitKey::parse(&l.key) {
                Ok(key) if cat.limit_ix.contains_key(&key) => issues.push(at, format!("duplicate limit `{key}`")),
                Ok(key) => {
                    cat.limit_ix.insert(key.clone(), idx(cat.limits.len()));
                    cat.limits.push(LimitDef { key, combine: l.combine });
                }
                Err(e) => issues.push(at, e.to_string()),
            }
        }
        let package_ids: HashSet<&str> = doc.packages.iter().map(|p| p.id.as_str()).collect();
        for (i, p) in doc.packages.iter().enumerate() {
            let at = format!("{path}/packages/{i}");
            let grants = (&p.modules, &p.features, &p.limits);
            cat.add_plan(PlanKind::Package, &p.id, p.version, grants, Vec::new(), &at, issues);
        }
        for (i, a) in doc.addons.iter().enumerate() {
            let at = format!("{path}/addons/{i}");
            let requires = addon_requires(a, |r| package_ids.contains(r), &at, issues);
            let grants = (&a.modules, &a.features, &a.limits);
            cat.add_plan(PlanKind::Addon, &a.id, a.version, grants, requires, &at, issues);
        }
        cat
    }

    /// This catalog with one more plan published: a new, immutable `(id, version)` of a package or an
    /// add-on. Every plan already here keeps its place, so what was compiled against this catalog stays
    /// valid against the new one. An existing `(id, version)` is a conflict; anything else wrong is a
    /// validation error naming every problem (paths under `/plan`).
    pub fn with_plan(&self, plan: &PlanDoc) -> Result<Catalog, EntitlementsError> {
        let (kind, id, version) = match plan {
            PlanDoc::Package(p) => (PlanKind::Package, p.id.as_str(), p.version),
            PlanDoc::Addon(a) => (PlanKind::Addon, a.id.as_str(), a.version),
        };
        if let Ok(plan_id) = PlanId::parse(id)
            && self.plan_ix.contains_key(&(kind, plan_id, version))
        {
            return Err(EntitlementsError::Conflict(format!("{} `{id}` version {version} exists", kind.as_str())));
        }
        let mut cat = self.clone();
        let mut issues = Issues::new();
        let at = "/plan";
        match plan {
            PlanDoc::Package(p) => {
                cat.add_plan(kind, id, version, (&p.modules, &p.features, &p.limits), Vec::new(), at, &mut issues);
                cat.doc.packages.push(p.clone());
            }
            PlanDoc::Addon(a) => {
                let is_package = |r: &str| self.doc.packages.iter().any(|p| p.id == r);
                let requires = addon_requires(a, is_package, at, &mut issues);
                cat.add_plan(kind, id, version, (&a.modules, &a.features, &a.limits), requires, at, &mut issues);
                cat.doc.addons.push(a.clone());
            }
        }
        issues.finish(cat)
    }

    #[allow(clippy::too_many_arguments)]
    fn add_plan(
        &mut self,
        kind: PlanKind,
        id: &str,
        version: u32,
        (modules, features, limits): (&Vec<String>, &Vec<String>, &std::collections::BTreeMap<String, LimitValue>),
        requires: Vec<PlanId>,
        at: &str,
        issues: &mut Issues,
    ) {
        let id = match PlanId::parse(id) {
            Ok(id) => id,
            Err(e) => return issues.push(format!("{at}/id"), e.to_string()),
        };
        let key = (kind, id.clone(), version);
        if self.plan_ix.contains_key(&key) {
            return issues
                .push(format!("{at}/version"), format!("duplicate {} `{id}` version {version}", kind.as_str()));
        }
        let mut plan = PlanDef {
            kind,
            id,
            version,
            modules: BitSet::new(self.modules.len()),
            features: BitSet::new(self.features.len()),
            limits: Vec::new(),
            requires,
        };
        for (j, m) in modules.iter().enumerate() {
            match self.module_ix.get(m.as_str()) {
                Some(ix) => plan.modules.insert(ix.get()),
                None => issues.push(format!("{at}/modules/{j}"), format!("unknown module `{m}`")),
            }
        }
        for (j, f) in features.iter().enumerate() {
            match self.feature_ix.get(f.as_str()) {
                Some(ix) => plan.features.insert(ix.get()),
                None => issues.push(format!("{at}/features/{j}"), format!("unknown feature `{f}`")),
            }
        }
        for (key, value) in limits {
            match self.limit_ix.get(key.as_str()) {
                Some(_) if matches!(value, LimitValue::Finite(n) if *n > MAX_LIMIT) => {
                    issues.push(format!("{at}/limits/{key}"), format!("limit value {value} is above 10^12"));
                }
                Some(ix) => plan.limits.push((*ix, *value)),
                None => issues.push(format!("{at}/limits/{key}"), format!("unknown limit `{key}`")),
            }
        }
        self.plan_ix.insert(key, idx(self.plans.len()));
        self.plans.push(plan);
    }

    /// The document this catalog was compiled from.
    pub fn doc(&self) -> &CatalogDoc {
        &self.doc
    }

    /// The number of modules (the capacity of module bitsets).
    pub fn module_count(&self) -> usize {
        self.modules.len()
    }

    /// The number of features (the capacity of feature bitsets).
    pub fn feature_count(&self) -> usize {
        self.features.len()
    }

    /// The number of limits.
    pub fn limit_count(&self) -> usize {
        self.limits.len()
    }

    /// The module at `ix`.
    pub fn module(&self, ix: Idx) -> Option<&ModuleDef> {
        self.modules.get(ix.get())
    }

    /// The feature at `ix`.
    pub fn feature(&self, ix: Idx) -> Option<&FeatureDef> {
        self.features.get(ix.get())
    }

    /// The limit at `ix`.
    pub fn limit(&self, ix: Idx) -> Option<&LimitDef> {
        self.limits.get(ix.get())
    }

    /// The plan at `ix`.
    pub fn plan(&self, ix: Idx) -> Option<&PlanDef> {
        self.plans.get(ix.get())
    }

    /// The index of module `id`.
    pub fn module_index(&self, id: &str) -> Option<Idx> {
        self.module_ix.get(id).copied()
    }

    /// The index of feature `key`.
    pub fn feature_index(&self, key: &str) -> Option<Idx> {
        self.feature_ix.get(key).copied()
    }

    /// The index of limit `key`.
    pub fn limit_index(&self, key: &str) -> Option<Idx> {
        self.limit_ix.get(key).copied()
    }

    /// The index of a plan version.
    pub fn plan_index(&self, kind: PlanKind, id: &str, version: u32) -> Option<Idx> {
        let id = PlanId::parse(id).ok()?;
        self.plan_ix.get(&(kind, id, version)).copied()
    }

    /// Every module, in declaration order.
    pub fn modules(&self) -> &[ModuleDef] {
        &self.modules
    }

    /// Every feature, in declaration order.
    pub fn features(&self) -> &[FeatureDef] {
        &self.features
    }

    /// Every limit, in declaration order.
    pub fn limits(&self) -> &[LimitDef] {
        &self.limits
    }
}
