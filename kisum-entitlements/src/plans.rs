//! One company's subscriptions and overrides, and what they entitle it to at an instant.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, PlanKind};
use crate::doc::{Combine, Effect, LimitValue, MAX_LIMIT, OverrideDoc, SubscriptionDoc, SubscriptionStatus};
use crate::error::{EntitlementsError, Issues};
use crate::id::{Idx, SubscriptionId};
use crate::{BitSet, Timestamp};

/// The largest subscription quantity.
pub const MAX_QUANTITY: u64 = 1_000_000;

/// A validated subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Unique within the company.
    pub id: SubscriptionId,
    /// The plan version, in the catalog.
    pub plan: Idx,
    /// Package or add-on.
    pub kind: PlanKind,
    /// Status.
    pub status: SubscriptionStatus,
    /// Start (inclusive).
    pub starts_at: Timestamp,
    /// End (exclusive).
    pub ends_at: Option<Timestamp>,
    /// Trial end (exclusive), kept only while `trialing`.
    pub trial_ends_at: Option<Timestamp>,
    /// Grace end (exclusive), kept only while `past_due`.
    pub grace_until: Option<Timestamp>,
    /// Multiplies `sum` limits.
    pub quantity: u64,
    window: Option<(Timestamp, Option<Timestamp>)>,
}

impl Subscription {
    /// The half-open window `[start, end)` in which the subscription is effective, or `None` if it
    /// never is (canceled, expired, paused, or an empty window). `None` as end means open-ended.
    pub fn effective_window(&self) -> Option<(Timestamp, Option<Timestamp>)> {
        self.window
    }

    /// Whether the subscription is effective at `t` (DESIGN.md §3).
    pub fn is_effective_at(&self, t: Timestamp) -> bool {
        self.window.is_some_and(|(start, end)| start <= t && end.is_none_or(|end| t < end))
    }

    fn compute_window(&self) -> Option<(Timestamp, Option<Timestamp>)> {
        let status_end = match self.status {
            SubscriptionStatus::Active => None,
            SubscriptionStatus::Trialing => Some(self.trial_ends_at?),
            SubscriptionStatus::PastDue => Some(self.grace_until?),
            SubscriptionStatus::Canceled | SubscriptionStatus::Expired | SubscriptionStatus::Paused => return None,
        };
        let end = match (self.ends_at, status_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match end {
            Some(end) if end <= self.starts_at => None,
            _ => Some((self.starts_at, end)),
        }
    }
}

/// What an override grants or revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideTarget {
    /// A module.
    Module(Idx),
    /// A feature.
    Feature(Idx),
    /// A limit, with the value of a grant.
    Limit(Idx, Option<LimitValue>),
}

/// A validated override.
#[derive(Debug, Clone)]
pub struct Override {
    /// Its id, if it has one.
    pub id: Option<String>,
    /// Grant or revoke.
    pub effect: Effect,
    /// The item.
    pub target: OverrideTarget,
    /// Expiry (exclusive).
    pub expires_at: Option<Timestamp>,
    /// Why.
    pub reason: String,
}

impl Override {
    /// Whether the override applies at `t`.
    pub fn is_active_at(&self, t: Timestamp) -> bool {
        self.expires_at.is_none_or(|end| t < end)
    }
}

/// A company's validated subscriptions and overrides.
#[derive(Debug, Clone, Default)]
pub struct CompanyPlans {
    subscriptions: Vec<Subscription>,
    overrides: Vec<Override>,
}

/// An entitled item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Item {
    /// A module.
    Module(Idx),
    /// A feature.
    Feature(Idx),
    /// A limit.
    Limit(Idx),
}

/// Where an entitlement comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The subscription at this index of the company's subscriptions.
    Subscription(u32),
    /// The override at this index of the company's overrides.
    Override(u32),
}

/// What a company is entitled to at one instant, with the provenance of every item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entitlements {
    modules: BitSet,
    features: BitSet,
    limits: Vec<Option<LimitValue>>,
    provenance: Vec<(Item, Source)>,
}

impl CompanyPlans {
    /// Validates and compiles a company's subscriptions and overrides against `catalog`.
    pub fn from_docs(
        catalog: &Catalog,
        subscriptions: &[SubscriptionDoc],
        overrides: &[OverrideDoc],
    ) -> Result<CompanyPlans, EntitlementsError> {
        let mut issues = Issues::new();
        let plans = CompanyPlans::compile(catalog, subscriptions, overrides, "", &mut issues);
        issues.finish(plans)
    }

    /// Compiles, recording every problem in `issues` with paths under `path` (`{path}/subscriptions/0/…`);
    /// items with problems are left out. Overlapping packages and duplicate ids are recorded as conflicts.
    pub fn compile(
        catalog: &Catalog,
        subscriptions: &[SubscriptionDoc],
        overrides: &[OverrideDoc],
        path: &str,
        issues: &mut Issues,
    ) -> CompanyPlans {
        let mut plans = CompanyPlans::default();
        let mut ids = HashSet::new();
        for (i, s) in subscriptions.iter().enumerate() {
            let at = format!("{path}/subscriptions/{i}");
            if let Some(sub) = compile_subscription(catalog, s, &at, &mut ids, issues) {
                plans.subscriptions.push(sub);
            }
        }
        let packages: Vec<(usize, &Subscription)> =
            plans.subscriptions.iter().enumerate().filter(|(_, s)| s.kind == PlanKind::Package).collect();
        for (n, (_, a)) in packages.iter().enumerate() {
            for (_, b) in packages.iter().skip(n + 1) {
                if windows_overlap(a.window, b.window) {
                    issues.push_conflict(
                        format!("{path}/subscriptions"),
                        format!("package subscriptions `{}` and `{}` are effective at the same time", a.id, b.id),
                    );
                }
            }
        }
        let mut override_ids = HashSet::new();
        for (i, o) in overrides.iter().enumerate() {
            let at = format!("{path}/overrides/{i}");
            if let Some(id) = &o.id {
                if let Err(e) = crate::id::OverrideId::parse(id) {
                    issues.push(format!("{at}/id"), e.to_string());
                } else if !override_ids.insert(id.as_str()) {
                    issues.push_conflict(format!("{at}/id"), format!("duplicate override `{id}`"));
                }
            }
            if let Some(o) = compile_override(catalog, o, &at, issues) {
                plans.overrides.push(o);
            }
        }
        plans
    }

    /// The subscriptions, in document order.
    pub fn subscriptions(&self) -> &[Subscription] {
        &self.subscriptions
    }

    /// The overrides, in document order.
    pub fn overrides(&self) -> &[Override] {
        &self.overrides
    }

    /// Every instant at which the entitlements may change: starts and ends of effective windows and
    /// override expiries, unsorted, possibly repeated.
    pub fn boundaries(&self) -> impl Iterator<Item = Timestamp> + '_ {
        let subs = self
            .subscriptions
            .iter()
            .filter_map(|s| s.window)
            .flat_map(|(start, end)| std::iter::once(start).chain(end));
        subs.chain(self.overrides.iter().filter_map(|o| o.expires_at))
    }

    /// The first instant after `t` at which the entitlements may change.
    pub fn next_change_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.boundaries().filter(|b| *b > t).min()
    }

    /// Entitlements(c, t) (DESIGN.md §3): what effective subscriptions and grant overrides give, minus
    /// revoke overrides; a feature counts only while its module is entitled.
    pub fn entitlements(&self, catalog: &Catalog, t: Timestamp) -> Entitlements {
        let mut ent = Entitlements {
            modules: BitSet::new(catalog.module_count()),
            features: BitSet::new(catalog.feature_count()),
            limits: vec![None; catalog.limit_count()],
            provenance: Vec::with_capacity(16),
        };
        for (si, sub) in self.subscriptions.iter().enumerate() {
            if !sub.is_effective_at(t) {
                continue;
            }
            let Some(plan) = catalog.plan(sub.plan) else { continue };
            if plan.kind == PlanKind::Addon && !self.has_effective_package(catalog, &plan.requires, t) {
                continue;
            }
            let source = Source::Subscription(index_u32(si));
            ent.modules.union_with(&plan.modules);
            ent.features.union_with(&plan.features);
            ent.provenance.extend(plan.modules.iter().map(|m| (Item::Module(Idx(index_u32(m))), source)));
            ent.provenance.extend(plan.features.iter().map(|f| (Item::Feature(Idx(index_u32(f))), source)));
            for &(li, value) in &plan.limits {
                let combine = catalog.limit(li).map_or(Combine::Max, |l| l.combine);
                let Some(slot) = ent.limits.get_mut(li.get()) else { continue };
                *slot = Some(combine_limit(*slot, value, combine, sub.quantity));
                ent.provenance.push((Item::Limit(li), source));
            }
        }
        let mut limit_grants: Vec<Option<LimitValue>> = Vec::new();
        for (oi, o) in self.overrides.iter().enumerate() {
            if o.effect != Effect::Grant || !o.is_active_at(t) {
                continue;
            }
            let source = Source::Override(index_u32(oi));
            match o.target {
                OverrideTarget::Module(m) => ent.modules.insert(m.get()),
                OverrideTarget::Feature(f) => ent.features.insert(f.get()),
                OverrideTarget::Limit(l, value) => {
                    if limit_grants.is_empty() {
                        limit_grants = vec![None; catalog.limit_count()];
                    }
                    if let (Some(slot), Some(value)) = (limit_grants.get_mut(l.get()), value) {
                        *slot = Some(slot.map_or(value, |v| v.max(value)));
                    }
                    // A grant replaces what subscriptions gave: drop their provenance.
                    ent.provenance
                        .retain(|(item, src)| !(*item == Item::Limit(l) && matches!(src, Source::Subscription(_))));
                }
            }
            let item = match o.target {
                OverrideTarget::Module(m) => Item::Module(m),
                OverrideTarget::Feature(f) => Item::Feature(f),
                OverrideTarget::Limit(l, _) => Item::Limit(l),
            };
            ent.provenance.push((item, source));
        }
        for (slot, grant) in ent.limits.iter_mut().zip(&limit_grants) {
            if grant.is_some() {
                *slot = *grant;
            }
        }
        for o in &self.overrides {
            if o.effect != Effect::Revoke || !o.is_active_at(t) {
                continue;
            }
            match o.target {
                OverrideTarget::Module(m) => ent.modules.remove(m.get()),
                OverrideTarget::Feature(f) => ent.features.remove(f.get()),
                OverrideTarget::Limit(l, _) => {
                    if let Some(slot) = ent.limits.get_mut(l.get()) {
                        *slot = None;
                    }
                }
            }
        }
        for (fi, feature) in catalog.features().iter().enumerate() {
            if !ent.modules.contains(feature.module.get()) {
                ent.features.remove(fi);
            }
        }
        let (modules, features, limits) = (&ent.modules, &ent.features, &ent.limits);
        ent.provenance.retain(|(item, _)| match item {
            Item::Module(m) => modules.contains(m.get()),
            Item::Feature(f) => features.contains(f.get()),
            Item::Limit(l) => limits.get(l.get()).is_some_and(Option::is_some),
        });
        ent
    }

    fn has_effective_package(&self, catalog: &Catalog, requires: &[crate::PlanId], t: Timestamp) -> bool {
        self.subscriptions.iter().any(|s| {
            s.kind == PlanKind::Package
                && s.is_effective_at(t)
                && catalog.plan(s.plan).is_some_and(|p| requires.contains(&p.id))
        })
    }
}

fn index_u32(i: usize) -> u32 {
    // INVARIANT: indices of catalogs and per-company lists stay far below 2^32.
    u32::try_from(i).unwrap_or(u32::MAX)
}

fn combine_limit(current: Option<LimitValue>, value: LimitValue, combine: Combine, quantity: u64) -> LimitValue {
    match combine {
        Combine::Max => current.map_or(value, |c| c.max(value)),
        Combine::Sum => {
            let scaled = match value {
                LimitValue::Finite(n) => LimitValue::Finite(n.saturating_mul(quantity)),
                LimitValue::Unlimited => LimitValue::Unlimited,
            };
            match (current, scaled) {
                (None, v) => v,
                (Some(LimitValue::Finite(a)), LimitValue::Finite(b)) => LimitValue::Finite(a.saturating_add(b)),
                _ => LimitValue::Unlimited,
            }
        }
    }
}

fn windows_overlap(a: Option<(Timestamp, Option<Timestamp>)>, b: Option<(Timestamp, Option<Timestamp>)>) -> bool {
    match (a, b) {
        (Some((sa, ea)), Some((sb, eb))) => eb.is_none_or(|eb| sa < eb) && ea.is_none_or(|ea| sb < ea),
        _ => false,
    }
}

fn compile_subscription(
    catalog: &Catalog,
    s: &SubscriptionDoc,
    at: &str,
    ids: &mut HashSet<String>,
    issues: &mut Issues,
) -> Option<Subscription> {
    let mut ok = true;
    let id = match SubscriptionId::parse(&s.id) {
        Ok(id) => Some(id),
        Err(e) => {
            issues.push(format!("{at}/id"), e.to_string());
            None
        }
    };
    if !ids.insert(s.id.clone()) {
        issues.push_conflict(format!("{at}/id"), format!("duplicate subscription `{}`", s.id));
        ok = false;
    }
    let plan = match (&s.plan.package, &s.plan.addon) {
        (Some(p), None) => Some((PlanKind::Package, p)),
        (None, Some(a)) => Some((PlanKind::Addon, a)),
        _ => {
            issues.push(format!("{at}/plan"), "a plan names exactly one of `package` and `addon`");
            None
        }
    };
    let plan = plan.and_then(|(kind, id)| match catalog.plan_index(kind, id, s.plan.version) {
        Some(ix) => Some((kind, ix)),
        None => {
            let what = kind.as_str();
            issues.push(format!("{at}/plan"), format!("unknown {what} `{id}` version {}", s.plan.version));
            None
        }
    });
    if s.ends_at.is_some_and(|end| end <= s.starts_at) {
        issues.push(format!("{at}/ends_at"), "`ends_at` must be after `starts_at`");
        ok = false;
    }
    let trialing = s.status == SubscriptionStatus::Trialing;
    let past_due = s.status == SubscriptionStatus::PastDue;
    if trialing && s.trial_ends_at.is_none() {
        issues.push(format!("{at}/trial_ends_at"), "a trialing subscription needs `trial_ends_at`");
        ok = false;
    }
    if past_due && s.grace_until.is_none() {
        issues.push(format!("{at}/grace_until"), "a past_due subscription needs `grace_until`");
        ok = false;
    }
    let quantity = s.quantity.unwrap_or(1);
    if !(1..=MAX_QUANTITY).contains(&quantity) {
        issues.push(format!("{at}/quantity"), format!("quantity {quantity} is outside 1..=1000000"));
        ok = false;
    }
    let (id, (kind, plan)) = (id?, plan?);
    if !ok {
        return None;
    }
    let mut sub = Subscription {
        id,
        plan,
        kind,
        status: s.status,
        starts_at: s.starts_at,
        ends_at: s.ends_at,
        trial_ends_at: s.trial_ends_at.filter(|_| trialing),
        grace_until: s.grace_until.filter(|_| past_due),
        quantity,
        window: None,
    };
    sub.window = sub.compute_window();
    Some(sub)
}

fn compile_override(catalog: &Catalog, o: &OverrideDoc, at: &str, issues: &mut Issues) -> Option<Override> {
    let mut ok = true;
    if o.reason.trim().is_empty() {
        issues.push(format!("{at}/reason"), "an override needs a reason");
        ok = false;
    }
    let named = [o.module.is_some(), o.feature.is_some(), o.limit.is_some()];
    if named.iter().filter(|n| **n).count() != 1 {
        issues.push(at.to_owned(), "an override names exactly one of `module`, `feature`, `limit`");
        return None;
    }
    let is_limit_grant = o.limit.is_some() && o.effect == Effect::Grant;
    if is_limit_grant != o.value.is_some() {
        let message = if is_limit_grant { "a limit grant needs a `value`" } else { "only a limit grant has a `value`" };
        issues.push(format!("{at}/value"), message);
        ok = false;
    }
    if let Some(LimitValue::Finite(n)) = o.value
        && n > MAX_LIMIT
    {
        issues.push(format!("{at}/value"), format!("limit value {n} is above 10^12"));
        ok = false;
    }
    let target = if let Some(m) = &o.module {
        catalog.module_index(m).map(OverrideTarget::Module).ok_or(("module", m))
    } else if let Some(f) = &o.feature {
        catalog.feature_index(f).map(OverrideTarget::Feature).ok_or(("feature", f))
    } else if let Some(l) = &o.limit {
        catalog.limit_index(l).map(|ix| OverrideTarget::Limit(ix, o.value)).ok_or(("limit", l))
    } else {
        return None;
    };
    match target {
        Ok(target) if ok => Some(Override {
            id: o.id.clone(),
            effect: o.effect,
            target,
            expires_at: o.expires_at,
            reason: o.reason.clone(),
        }),
        Ok(_) => None,
        Err((what, name)) => {
            issues.push(format!("{at}/{what}"), format!("unknown {what} `{name}`"));
            None
        }
    }
}

impl Entitlements {
    /// Whether module `ix` is entitled.
    #[inline]
    pub fn has_module(&self, ix: Idx) -> bool {
        self.modules.contains(ix.get())
    }

    /// Whether feature `ix` is entitled.
    #[inline]
    pub fn has_feature(&self, ix: Idx) -> bool {
        self.features.contains(ix.get())
    }

    /// The entitled modules.
    pub fn modules(&self) -> &BitSet {
        &self.modules
    }

    /// The entitled features.
    pub fn features(&self) -> &BitSet {
        &self.features
    }

    /// The value of limit `ix`, `None` when absent (which means capacity 0).
    pub fn limit(&self, ix: Idx) -> Option<LimitValue> {
        self.limits.get(ix.get()).copied().flatten()
    }

    /// Every (item, source) pair: which subscriptions or overrides entitle each present item.
    pub fn provenance(&self) -> &[(Item, Source)] {
        &self.provenance
    }

    /// The sources of one item, in the order they were applied.
    pub fn sources(&self, item: Item) -> impl Iterator<Item = Source> + '_ {
        self.provenance.iter().filter(move |(i, _)| *i == item).map(|(_, s)| *s)
    }

    /// Checks that `requested` more units of limit `key` fit on top of `used` (an absent limit has
    /// capacity 0); `LimitExceeded` with the numbers otherwise.
    pub fn check_limit(
        &self,
        catalog: &Catalog,
        key: &str,
        used: u64,
        requested: u64,
    ) -> Result<(), EntitlementsError> {
        let ix =
            catalog.limit_index(key).ok_or_else(|| EntitlementsError::UnknownLimit(key.chars().take(80).collect()))?;
        let limit = self.limit(ix).unwrap_or(LimitValue::Finite(0));
        if limit.allows(used, requested) {
            Ok(())
        } else {
            Err(EntitlementsError::LimitExceeded { key: key.to_owned(), limit, used, requested })
        }
    }

    /// The entitlements by name, sorted, in the shape of a scenario's `expect` (and of
    /// `kisum entitlements`), with provenance by item.
    pub fn summary(&self, catalog: &Catalog, plans: &CompanyPlans) -> EntitlementsSummary {
        let mut modules: Vec<String> =
            self.modules.iter().filter_map(|m| catalog.module(Idx(index_u32(m)))).map(|m| m.id.to_string()).collect();
        let mut features: Vec<String> = self
            .features
            .iter()
            .filter_map(|f| catalog.feature(Idx(index_u32(f))))
            .map(|f| f.key.to_string())
            .collect();
        modules.sort();
        features.sort();
        let limits = catalog
            .limits()
            .iter()
            .enumerate()
            .filter_map(|(i, def)| Some((def.key.to_string(), self.limit(Idx(index_u32(i)))?)))
            .collect();
        let mut provenance: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (item, source) in &self.provenance {
            let name = match item {
                Item::Module(m) => catalog.module(*m).map(|d| format!("module:{}", d.id)),
                Item::Feature(f) => catalog.feature(*f).map(|d| format!("feature:{}", d.key)),
                Item::Limit(l) => catalog.limit(*l).map(|d| format!("limit:{}", d.key)),
            };
            if let Some(name) = name {
                let entry = provenance.entry(name).or_default();
                let text = plans.describe_source(*source);
                if !entry.contains(&text) {
                    entry.push(text);
                }
            }
        }
        EntitlementsSummary { modules, features, limits, provenance }
    }
}

impl CompanyPlans {
    /// A source named for people: `subscription:a1` or `override:2 (pilot)`.
    pub fn describe_source(&self, source: Source) -> String {
        match source {
            Source::Subscription(i) => match self.subscriptions.get(i as usize) {
                Some(s) => format!("subscription:{}", s.id),
                None => format!("subscription#{i}"),
            },
            Source::Override(i) => match self.overrides.get(i as usize) {
                Some(Override { id: Some(id), reason, .. }) => format!("override:{id} ({reason})"),
                Some(o) => format!("override:{i} ({})", o.reason),
                None => format!("override#{i}"),
            },
        }
    }
}

/// Entitlements by name: sorted modules and features, limits by key, and where each item comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntitlementsSummary {
    /// Entitled modules, sorted.
    pub modules: Vec<String>,
    /// Entitled features, sorted.
    pub features: Vec<String>,
    /// Present limits by key.
    pub limits: BTreeMap<String, LimitValue>,
    /// `module:x` / `feature:x` / `limit:x` → the subscriptions or overrides that entitle it.
    #[serde(default)]
    pub provenance: BTreeMap<String, Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{CatalogDoc, PlanRefDoc};
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn catalog() -> Catalog {
        let doc: CatalogDoc = serde_json::from_str(
            r#"{
            "modules": [{"id":"core","kind":"base"},{"id":"finance","kind":"addon"},{"id":"ai","kind":"addon"}],
            "features": [{"key":"finance.approvals","module":"finance"},{"key":"ai.copilot","module":"ai"}],
            "limits": [{"key":"core.seats","combine":"sum"},{"key":"finance.currencies","combine":"max"}],
            "packages": [
                {"id":"pro","version":1,"modules":["core"],"limits":{"core.seats":10,"finance.currencies":2}},
                {"id":"pro","version":2,"modules":["core"],"limits":{"core.seats":15}},
                {"id":"big","version":1,"modules":["core","ai"],"features":["ai.copilot"],"limits":{"core.seats":"unlimited"}}
            ],
            "addons": [
                {"id":"finance","version":1,"requires":["pro"],"modules":["finance"],"features":["finance.approvals"],
                 "limits":{"finance.currencies":5,"core.seats":3}},
                {"id":"ai","version":1,"requires":["pro","big"],"modules":["ai"],"features":["ai.copilot"]}
            ]}"#,
        )
        .unwrap();
        Catalog::from_doc(&doc).unwrap()
    }

    fn sub(id: &str, plan: (&str, &str, u32), status: SubscriptionStatus, start: &str) -> SubscriptionDoc {
        let (kind, name, version) = plan;
        SubscriptionDoc {
            id: id.into(),
            plan: PlanRefDoc {
                package: (kind == "package").then(|| name.into()),
                addon: (kind == "addon").then(|| name.into()),
                version,
            },
            status,
            starts_at: ts(start),
            ends_at: None,
            trial_ends_at: None,
            grace_until: None,
            quantity: None,
        }
    }

    fn over(effect: Effect, target: &str, value: Option<LimitValue>, expires: Option<&str>) -> OverrideDoc {
        let (kind, name) = target.split_once(':').unwrap();
        OverrideDoc {
            id: None,
            effect,
            module: (kind == "module").then(|| name.into()),
            feature: (kind == "feature").then(|| name.into()),
            limit: (kind == "limit").then(|| name.into()),
            value,
            expires_at: expires.map(ts),
            reason: "test".into(),
        }
    }

    fn summary(cat: &Catalog, subs: &[SubscriptionDoc], overs: &[OverrideDoc], at: &str) -> EntitlementsSummary {
        let plans = CompanyPlans::from_docs(cat, subs, overs).unwrap();
        plans.entitlements(cat, ts(at)).summary(cat, &plans)
    }

    const T0: &str = "2026-01-01T00:00:00Z";
    use SubscriptionStatus::*;

    #[test]
    fn every_window_is_half_open() {
        let cat = catalog();
        let mut trial = sub("t", ("package", "pro", 1), Trialing, T0);
        trial.trial_ends_at = Some(ts("2026-02-01T00:00:00Z"));
        let mut grace = sub("g", ("package", "pro", 1), PastDue, T0);
        grace.grace_until = Some(ts("2026-02-01T00:00:00Z"));
        let mut ending = sub("e", ("package", "pro", 1), Active, T0);
        ending.ends_at = Some(ts("2026-02-01T00:00:00Z"));
        for s in [trial, grace, ending] {
            let subs = [s];
            assert_eq!(summary(&cat, &subs, &[], "2025-12-31T23:59:59Z").modules.len(), 0, "before start");
            assert_eq!(summary(&cat, &subs, &[], T0).modules, ["core"], "at start");
            assert_eq!(summary(&cat, &subs, &[], "2026-01-31T23:59:59.999999999Z").modules, ["core"]);
            assert!(summary(&cat, &subs, &[], "2026-02-01T00:00:00Z").modules.is_empty(), "at end");
        }
        let over_module = [over(Effect::Grant, "module:ai", None, Some("2026-02-01T00:00:00Z"))];
        assert_eq!(summary(&cat, &[], &over_module, "2026-01-31T23:59:59Z").modules, ["ai"]);
        assert!(summary(&cat, &[], &over_module, "2026-02-01T00:00:00Z").modules.is_empty());
    }

    #[test]
    fn statuses_that_never_count() {
        let cat = catalog();
        for status in [Canceled, Expired, Paused] {
            let subs = [sub("x", ("package", "pro", 1), status, T0)];
            assert!(summary(&cat, &subs, &[], "2026-06-01T00:00:00Z").modules.is_empty());
        }
        // A trial's end date is ignored once the subscription is active.
        let mut active = sub("a", ("package", "pro", 1), Active, T0);
        active.trial_ends_at = Some(ts("2026-01-02T00:00:00Z"));
        assert_eq!(summary(&cat, &[active], &[], "2026-06-01T00:00:00Z").modules, ["core"]);
    }

    #[test]
    fn addons_need_an_effective_package_and_limits_combine() {
        let cat = catalog();
        let mut fin = sub("f", ("addon", "finance", 1), Active, T0);
        fin.quantity = Some(2);
        let s = summary(&cat, std::slice::from_ref(&fin), &[], "2026-01-15T00:00:00Z");
        assert!(s.modules.is_empty() && s.limits.is_empty());
        let subs = [sub("p", ("package", "pro", 1), Active, T0), fin];
        let s = summary(&cat, &subs, &[], "2026-01-15T00:00:00Z");
        assert_eq!(s.modules, ["core", "finance"]);
        assert_eq!(s.features, ["finance.approvals"]);
        assert_eq!(s.limits["core.seats"], LimitValue::Finite(16));
        assert_eq!(s.limits["finance.currencies"], LimitValue::Finite(5));
        assert_eq!(s.provenance["module:finance"], ["subscription:f"]);
        assert_eq!(s.provenance["limit:core.seats"], ["subscription:p", "subscription:f"]);
    }

    #[test]
    fn overrides_grant_replace_and_revoke() {
        let cat = catalog();
        let subs = [sub("p", ("package", "pro", 1), Active, T0)];
        let overs = [
            over(Effect::Grant, "limit:core.seats", Some(LimitValue::Finite(40)), None),
            over(Effect::Grant, "limit:core.seats", Some(LimitValue::Finite(30)), None),
            over(Effect::Grant, "feature:finance.approvals", None, None),
            over(Effect::Revoke, "limit:finance.currencies", None, Some("2026-02-01T00:00:00Z")),
            over(Effect::Grant, "module:ai", None, None),
            over(Effect::Revoke, "module:ai", None, None),
        ];
        let s = summary(&cat, &subs, &overs, "2026-01-15T00:00:00Z");
        assert_eq!(s.limits["core.seats"], LimitValue::Finite(40), "the largest grant replaces the sum");
        assert_eq!(s.provenance["limit:core.seats"].len(), 2, "only the overrides remain as sources");
        assert!(!s.limits.contains_key("finance.currencies"), "revoked");
        assert!(s.features.is_empty(), "a feature without its module does not count");
        assert_eq!(s.modules, ["core"], "a revoke wins over a grant");
        let s = summary(&cat, &subs, &overs, "2026-02-01T00:00:00Z");
        assert_eq!(s.limits["finance.currencies"], LimitValue::Finite(2), "the revoke expired");
    }

    #[test]
    fn check_limit_reports_the_numbers() {
        let cat = catalog();
        let subs = [sub("p", ("package", "pro", 1), Active, T0)];
        let plans = CompanyPlans::from_docs(&cat, &subs, &[]).unwrap();
        let ent = plans.entitlements(&cat, ts(T0));
        assert!(ent.check_limit(&cat, "core.seats", 9, 1).is_ok());
        assert_eq!(
            ent.check_limit(&cat, "core.seats", 9, 2),
            Err(EntitlementsError::LimitExceeded {
                key: "core.seats".into(),
                limit: LimitValue::Finite(10),
                used: 9,
                requested: 2
            })
        );
        assert!(ent.check_limit(&cat, "core.seats", u64::MAX, 1).is_err(), "no overflow");
        assert!(matches!(ent.check_limit(&cat, "no.such", 0, 0), Err(EntitlementsError::UnknownLimit(_))));
        let empty = CompanyPlans::default().entitlements(&cat, ts(T0));
        assert!(empty.check_limit(&cat, "core.seats", 0, 0).is_ok());
        assert!(empty.check_limit(&cat, "core.seats", 0, 1).is_err(), "absent means capacity 0");
    }

    #[test]
    fn validation_names_every_problem() {
        let cat = catalog();
        let mut bad_trial = sub("a", ("package", "pro", 1), Trialing, T0);
        bad_trial.quantity = Some(0);
        let mut bad_end = sub("b", ("package", "nope", 1), Active, T0);
        bad_end.ends_at = Some(ts(T0));
        let dup = sub("a", ("addon", "finance", 1), Active, T0);
        let mut no_grace = sub("c", ("package", "pro", 2), PastDue, T0);
        no_grace.plan.addon = Some("ai".into());
        let overs = [
            OverrideDoc { reason: " ".into(), ..over(Effect::Grant, "module:ai", None, None) },
            over(Effect::Grant, "limit:core.seats", None, None),
            over(Effect::Revoke, "module:ai", Some(LimitValue::Finite(1)), None),
            over(Effect::Grant, "module:nope", None, None),
            OverrideDoc { feature: Some("ai.copilot".into()), ..over(Effect::Grant, "module:ai", None, None) },
        ];
        let Err(EntitlementsError::Validation(errors)) =
            CompanyPlans::from_docs(&cat, &[bad_trial, bad_end, dup, no_grace], &overs)
        else {
            panic!("expected validation errors")
        };
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/subscriptions/0/trial_ends_at",
                "/subscriptions/0/quantity",
                "/subscriptions/1/plan",
                "/subscriptions/1/ends_at",
                "/subscriptions/2/id",
                "/subscriptions/3/plan",
                "/subscriptions/3/grace_until",
                "/overrides/0/reason",
                "/overrides/1/value",
                "/overrides/2/value",
                "/overrides/3/module",
                "/overrides/4",
            ]
        );
    }

    #[test]
    fn overlapping_packages_conflict_on_effective_windows() {
        let cat = catalog();
        let a = sub("a", ("package", "pro", 1), Active, T0);
        let b = sub("b", ("package", "pro", 2), Active, "2026-03-01T00:00:00Z");
        let mut issues = Issues::new();
        CompanyPlans::compile(&cat, &[a.clone(), b.clone()], &[], "", &mut issues);
        assert!(issues.has_conflict());
        // A plan change: the first ends exactly when the second starts.
        let mut a_ends = a.clone();
        a_ends.ends_at = Some(ts("2026-03-01T00:00:00Z"));
        assert!(CompanyPlans::from_docs(&cat, &[a_ends, b.clone()], &[]).is_ok());
        // A canceled plan overlaps nothing.
        let canceled = SubscriptionDoc { status: Canceled, ..a };
        assert!(CompanyPlans::from_docs(&cat, &[canceled, b], &[]).is_ok());
    }

    #[test]
    fn boundaries_cover_every_change() {
        let cat = catalog();
        let mut trial = sub("t", ("package", "pro", 1), Trialing, T0);
        trial.trial_ends_at = Some(ts("2026-02-01T00:00:00Z"));
        trial.ends_at = Some(ts("2026-03-01T00:00:00Z"));
        let overs = [over(Effect::Grant, "module:ai", None, Some("2026-01-10T00:00:00Z"))];
        let plans = CompanyPlans::from_docs(&cat, &[trial], &overs).unwrap();
        assert_eq!(plans.next_change_after(ts("2025-01-01T00:00:00Z")), Some(ts(T0)));
        assert_eq!(plans.next_change_after(ts(T0)), Some(ts("2026-01-10T00:00:00Z")));
        assert_eq!(plans.next_change_after(ts("2026-01-10T00:00:00Z")), Some(ts("2026-02-01T00:00:00Z")));
        assert_eq!(plans.next_change_after(ts("2026-02-01T00:00:00Z")), None);
    }

    // ---- properties ----

    fn instant(day: u8) -> Timestamp {
        Timestamp::from_unix(1_767_225_600 + i64::from(day) * 86_400)
    }

    fn arb_sub(id: usize) -> impl Strategy<Value = SubscriptionDoc> {
        let plans = prop_oneof![
            Just(("package", "pro", 1)),
            Just(("package", "pro", 2)),
            Just(("package", "big", 1)),
            Just(("addon", "finance", 1)),
            Just(("addon", "ai", 1)),
        ];
        let statuses =
            prop_oneof![Just(Trialing), Just(Active), Just(PastDue), Just(Canceled), Just(Expired), Just(Paused)];
        (plans, statuses, 0u8..40, proptest::option::of(1u8..40), 1u8..40, 1u64..5).prop_map(
            move |(plan, status, start, len, extra, quantity)| {
                let mut s = sub(&format!("s{id}"), plan, status, "2026-01-01T00:00:00Z");
                s.starts_at = instant(start);
                s.ends_at = len.map(|l| instant(start + l));
                s.trial_ends_at = Some(instant(start + extra));
                s.grace_until = Some(instant(start + extra));
                s.quantity = Some(quantity);
                s
            },
        )
    }

    fn arb_override() -> impl Strategy<Value = OverrideDoc> {
        let targets = prop_oneof![
            Just("module:ai"),
            Just("module:finance"),
            Just("feature:ai.copilot"),
            Just("limit:core.seats"),
            Just("limit:finance.currencies"),
        ];
        let effect = prop_oneof![Just(Effect::Grant), Just(Effect::Revoke)];
        (targets, effect, proptest::option::of(0u8..40), 0u64..50).prop_map(|(target, effect, exp, v)| {
            let value = (effect == Effect::Grant && target.starts_with("limit:")).then_some(LimitValue::Finite(v));
            over(effect, target, value, None).with_expiry(exp.map(instant))
        })
    }

    impl OverrideDoc {
        fn with_expiry(mut self, at: Option<Timestamp>) -> Self {
            self.expires_at = at;
            self
        }
    }

    /// Valid subscription lists: later package subscriptions that would overlap are dropped.
    fn arb_plans() -> impl Strategy<Value = (Vec<SubscriptionDoc>, Vec<OverrideDoc>)> {
        let subs = proptest::collection::vec(0usize..1, 0..7)
            .prop_flat_map(|v| v.iter().enumerate().map(|(i, _)| arb_sub(i)).collect::<Vec<_>>());
        (subs, proptest::collection::vec(arb_override(), 0..4)).prop_map(|(subs, overs)| {
            let cat = catalog();
            let mut kept: Vec<SubscriptionDoc> = Vec::new();
            for s in subs {
                let mut candidate = kept.clone();
                candidate.push(s.clone());
                if CompanyPlans::from_docs(&cat, &candidate, &[]).is_ok() {
                    kept.push(s);
                }
            }
            (kept, overs)
        })
    }

    proptest! {
        #[test]
        fn an_addon_entitles_nothing_without_its_package((subs, _) in arb_plans(), day in 0u8..80) {
            let cat = catalog();
            let addons_only: Vec<SubscriptionDoc> = subs.into_iter().filter(|s| s.plan.addon.is_some()).collect();
            let s = summary(&cat, &addons_only, &[], &instant(day).to_string());
            prop_assert!(s.modules.is_empty() && s.features.is_empty() && s.limits.is_empty());
        }

        #[test]
        fn ineffective_additions_change_nothing((subs, overs) in arb_plans(), day in 0u8..80, extra in arb_sub(99)) {
            let cat = catalog();
            let t = instant(day);
            let base = CompanyPlans::from_docs(&cat, &subs, &overs).unwrap();
            let mut more_subs = subs.clone();
            let mut more_overs = overs.clone();
            // Make the extra subscription and an extra override ineffective at t.
            let mut extra = extra;
            extra.starts_at = t.checked_add_seconds(1).unwrap();
            extra.ends_at = None;
            extra.plan = PlanRefDoc { package: None, addon: Some("finance".into()), version: 1 };
            more_subs.push(extra);
            more_overs.push(over(Effect::Revoke, "module:core", None, Some(&t.to_string())));
            let more = CompanyPlans::from_docs(&cat, &more_subs, &more_overs).unwrap();
            let (a, b) = (base.entitlements(&cat, t), more.entitlements(&cat, t));
            prop_assert_eq!(a.summary(&cat, &base).limits, b.summary(&cat, &more).limits);
            prop_assert_eq!(a.modules(), b.modules());
            prop_assert_eq!(a.features(), b.features());
        }

        #[test]
        fn sum_limits_scale_with_quantity_and_unlimited_absorbs(q in 1u64..=MAX_QUANTITY, n in 0u64..1000) {
            let cat = catalog();
            let mut fin = sub("f", ("addon", "finance", 1), Active, T0);
            fin.quantity = Some(q);
            let s = summary(&cat, &[sub("p", ("package", "pro", 1), Active, T0), fin.clone()], &[], T0);
            prop_assert_eq!(s.limits["core.seats"], LimitValue::Finite(10 + 3 * q));
            prop_assert_eq!(s.limits["finance.currencies"], LimitValue::Finite(5), "max ignores quantity");
            let overs = [over(Effect::Grant, "limit:finance.currencies", Some(LimitValue::Finite(n)), None)];
            let s = summary(&cat, &[sub("b", ("package", "big", 1), Active, T0)], &overs, T0);
            prop_assert_eq!(s.limits["core.seats"], LimitValue::Unlimited);
            prop_assert_eq!(s.limits["finance.currencies"], LimitValue::Finite(n));
        }

        #[test]
        fn a_revoke_always_wins((subs, overs) in arb_plans(), day in 0u8..80, which in 0usize..5) {
            let cat = catalog();
            let target = ["module:ai", "module:finance", "feature:ai.copilot", "limit:core.seats", "limit:finance.currencies"][which];
            let mut overs = overs;
            overs.push(over(Effect::Revoke, target, None, None));
            let s = summary(&cat, &subs, &overs, &instant(day).to_string());
            let (kind, name) = target.split_once(':').unwrap();
            let present = match kind {
                "module" => s.modules.iter().any(|m| m == name),
                "feature" => s.features.iter().any(|f| f == name),
                _ => s.limits.contains_key(name),
            };
            prop_assert!(!present);
        }
    }
}
