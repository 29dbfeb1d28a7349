#![forbid(unsafe_code)]
//! The same multi-tenant world expressed for kisum, Cedar and casbin-rs, a query set every engine can
//! express, and the agreement check that must pass before anything is timed.
//!
//! What each peer is given, and why (see BENCHMARKS.md for the discussion):
//! - the world at one instant: memberships active at that instant, entitlements materialised from the
//!   subscriptions at that instant (neither peer models subscription windows, trials or add-on
//!   requirements; kisum derives them itself);
//! - no delegations (neither peer models attenuating chains): queries are only asked of users who
//!   receive no delegation, and never of agents;
//! - no resources: queries name a company, not a resource in it.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;

use kisum_access::doc::{MembershipStatus, PrincipalDoc, WorldDoc};
use kisum_access::synth::{self, Rng, Spec};
use kisum_access::{Access, CompanyId, Directory, PermissionId, Principal, Snapshot, Timestamp, World};

/// Any error of a translation: the benchmark stops on it.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The instant every engine decides at.
pub fn instant() -> Timestamp {
    Timestamp::from_unix(1_773_964_800) // 2026-03-20T00:00:00Z, inside every synthetic delegation window
}

/// One check every engine can express.
#[derive(Debug, Clone)]
pub struct Query {
    /// The user.
    pub user: String,
    /// The company.
    pub company: String,
    /// The permission key.
    pub permission: String,
    /// The permission's module.
    pub module: String,
    /// The permission's feature, if it requires one.
    pub feature: Option<String>,
    /// The permission, interned for kisum.
    pub id: PermissionId,
    /// The user as a kisum principal.
    pub principal: Principal,
    /// The company as a kisum id.
    pub company_id: CompanyId,
    /// kisum's answer.
    pub expected: bool,
}

/// The synthetic world of `companies` × 20 members.
pub fn world(companies: usize) -> WorldDoc {
    synth::world(Spec { companies, members: 20, seed: 42 })
}

fn active(m: &kisum_access::doc::MembershipDoc, at: Timestamp) -> bool {
    m.status == MembershipStatus::Active && m.expires_at.is_none_or(|e| at < e)
}

/// `count` queries, about half allowed, over users who receive no delegation (a peer cannot express
/// what a delegation confers); 1 in 10 asks in a company the user is not a member of.
pub fn queries(doc: &WorldDoc, world: &Directory, count: usize, seed: u64) -> Result<Vec<Query>, Error> {
    let at = instant();
    let delegated: HashSet<(&str, &str)> = doc
        .delegations
        .iter()
        .filter_map(|d| match &d.to {
            PrincipalDoc::User(u) => Some((u.as_str(), d.company.as_str())),
            PrincipalDoc::Agent(_) => None,
        })
        .collect();
    let users: Vec<(&str, &str)> = doc
        .memberships
        .iter()
        .map(|m| (m.user.as_str(), m.company.as_str()))
        .filter(|pair| !delegated.contains(pair))
        .collect();
    let companies: Vec<&str> = doc.companies.iter().map(|c| c.id.as_str()).collect();
    let permissions: Vec<(String, PermissionId)> =
        world.catalog().permission_ids().map(|p| (world.catalog().key(p).to_owned(), p)).collect();
    let mut rng = Rng::new(seed);
    let (mut allows, mut denies, mut out) = (0, 0, Vec::with_capacity(count));
    let mut attempts = 0usize;
    while out.len() < count {
        attempts += 1;
        if attempts > count * 200 {
            return Err("could not balance allows and denies".into());
        }
        let (user, home) = rng.pick(&users, ("", ""));
        let company = if rng.chance(10) { rng.pick(&companies, home) } else { home };
        if delegated.contains(&(user, company)) {
            continue;
        }
        let Some((key, id)) = permissions.get(rng.below(permissions.len())).cloned() else { break };
        let principal = Principal::parse(&format!("user:{user}"))?;
        let company_id = CompanyId::parse(company)?;
        let expected = world.check(&principal, &company_id, id, None, at).is_allowed();
        if (expected && allows >= count / 2) || (!expected && denies >= count - count / 2) {
            continue;
        }
        if expected {
            allows += 1
        } else {
            denies += 1
        }
        let catalog = world.catalog();
        let def = catalog.permission_def(id).ok_or("unknown permission")?;
        out.push(Query {
            user: user.to_owned(),
            company: company.to_owned(),
            module: def.module().to_string(),
            feature: def.feature().map(ToString::to_string),
            permission: key,
            id,
            principal,
            company_id,
            expected,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------- kisum

/// kisum, two ways: direct evaluation through the directory, and precompiled snapshots.
pub struct Kisum {
    /// The directory.
    pub directory: Directory,
    snapshots: HashMap<(String, String), Snapshot>,
}

impl Kisum {
    /// Loads the world into a directory.
    pub fn new(doc: &WorldDoc) -> Result<Kisum, Error> {
        Ok(Kisum { directory: Directory::new(World::from_doc(doc)?), snapshots: HashMap::new() })
    }

    /// Compiles a snapshot for every (user, company) of `queries`.
    pub fn prepare(&mut self, queries: &[Query]) {
        for q in queries {
            let directory = &self.directory;
            self.snapshots
                .entry((q.user.clone(), q.company.clone()))
                .or_insert_with(|| directory.snapshot(&q.principal, &q.company_id, instant()));
        }
    }

    /// Direct evaluation.
    #[inline]
    pub fn check(&self, q: &Query) -> bool {
        self.directory.check(&q.principal, &q.company_id, q.id, None, instant()).is_allowed()
    }

    /// The snapshot of the query's principal, looked up outside the timed check.
    pub fn snapshot(&self, q: &Query) -> Option<&Snapshot> {
        self.snapshots.get(&(q.user.clone(), q.company.clone()))
    }
}

// ---------------------------------------------------------------- shared translation facts

/// The facts both peers are built from: roles with their grants and parents, active memberships,
/// restrictions, and entitlements at the instant.
struct Facts {
    /// Role name → (grant patterns, inherited role names). System roles are `sys:ID`, custom `custom:ID`.
    roles: BTreeMap<String, (Vec<String>, Vec<String>)>,
    /// (user, company, role names of an active membership).
    members: Vec<(String, String, Vec<String>)>,
    /// (user, company, restriction patterns of an active membership).
    restrictions: Vec<(String, String, Vec<String>)>,
    /// Company → (entitled modules, entitled features).
    entitled: BTreeMap<String, (Vec<String>, Vec<String>)>,
}

fn facts(doc: &WorldDoc, world: &Directory) -> Result<Facts, Error> {
    let at = instant();
    let mut roles = BTreeMap::new();
    for r in &doc.catalog.roles {
        let parents = r.inherits.iter().map(|p| format!("sys:{p}")).collect();
        roles.insert(format!("sys:{}", r.id), (r.grants.clone(), parents));
    }
    // Custom roles: the synthetic worlds give every company the same ones; a translation of differing
    // custom roles would need per-company policies, which these worlds do not exercise.
    let first = doc.companies.first().map(|c| &c.roles);
    for c in &doc.companies {
        if Some(&c.roles) != first {
            return Err(format!("company `{}` has custom roles unlike the first company's", c.id).into());
        }
    }
    let custom: BTreeSet<&str> = first.into_iter().flatten().map(|r| r.id.as_str()).collect();
    let name = |id: &str| if custom.contains(id) { format!("custom:{id}") } else { format!("sys:{id}") };
    for r in first.into_iter().flatten() {
        let parents = r.inherits.iter().map(|p| name(p)).collect();
        roles.insert(format!("custom:{}", r.id), (r.grants.clone(), parents));
    }
    let mut members = Vec::new();
    let mut restrictions = Vec::new();
    for m in doc.memberships.iter().filter(|m| active(m, at)) {
        members.push((m.user.clone(), m.company.clone(), m.roles.iter().map(|r| name(r)).collect()));
        if !m.restrictions.is_empty() {
            restrictions.push((m.user.clone(), m.company.clone(), m.restrictions.clone()));
        }
    }
    let mut entitled = BTreeMap::new();
    for c in &doc.companies {
        let summary = world.entitlements(&CompanyId::parse(&c.id)?, at).ok_or("company vanished")?;
        entitled.insert(c.id.clone(), (summary.modules, summary.features));
    }
    Ok(Facts { roles, members, restrictions, entitled })
}

// ---------------------------------------------------------------- Cedar

/// Cedar 4: users in per-company role groups, companies carrying their entitled modules and features and
/// pointing at their role groups; one `permit` per role over its action groups, one `forbid` per module
/// and per feature the company is not entitled to, one `forbid` per restriction pattern.
pub struct Cedar {
    policies: cedar_policy::PolicySet,
    entities: cedar_policy::Entities,
    authorizer: cedar_policy::Authorizer,
}

fn uid(ty: &str, id: &str) -> Result<cedar_policy::EntityUid, Error> {
    Ok(cedar_policy::EntityUid::from_type_name_and_id(
        cedar_policy::EntityTypeName::from_str(ty)?,
        cedar_policy::EntityId::new(id),
    ))
}

/// The action groups a permission key belongs to: `*`, `m:*`, `m:r:*`, and its feature group.
fn action_groups(key: &str, feature: Option<&str>) -> Vec<String> {
    let mut groups = vec!["*".to_owned()];
    let mut parts = key.split(':');
    if let (Some(m), Some(r)) = (parts.next(), parts.next()) {
        groups.push(format!("{m}:*"));
        groups.push(format!("{m}:{r}:*"));
    }
    if let Some(f) = feature {
        groups.push(format!("feature:{f}"));
    }
    groups
}

/// Per-request entity slices, built before timing (Cedar's recommended configuration for speed).
pub struct CedarSlices {
    requests: Vec<cedar_policy::Request>,
    slices: Vec<cedar_policy::Entities>,
}

impl Cedar {
    /// Translates the world.
    pub fn new(doc: &WorldDoc, world: &Directory) -> Result<Cedar, Error> {
        use cedar_policy::{Entity, RestrictedExpression};
        let facts = facts(doc, world)?;
        let role_names: Vec<&String> = facts.roles.keys().collect();
        let role_attr = |name: &str| role_names.iter().position(|r| *r == name).map(|i| format!("r{i}"));
        let patterns: Vec<String> = facts
            .restrictions
            .iter()
            .flat_map(|(_, _, p)| p.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut text = String::new();
        for (name, (grants, _)) in &facts.roles {
            if grants.is_empty() {
                continue;
            }
            let actions: Vec<String> = grants.iter().map(|g| format!("Action::\"{g}\"")).collect();
            let attr = role_attr(name).ok_or("role")?;
            text.push_str(&format!(
                "permit(principal, action in [{}], resource is Company) when {{ principal in resource.{attr} }};\n",
                actions.join(", ")
            ));
        }
        for (k, p) in patterns.iter().enumerate() {
            text.push_str(&format!(
                "forbid(principal, action in Action::\"{p}\", resource is Company) when {{ principal in resource.x{k} }};\n"
            ));
        }
        let catalog = world.catalog();
        let commercial = catalog.commercial();
        for m in commercial.modules() {
            text.push_str(&format!(
                "forbid(principal, action in Action::\"{0}:*\", resource is Company) unless {{ resource.modules.contains(\"{0}\") }};\n",
                m.id
            ));
        }
        for f in commercial.features() {
            text.push_str(&format!(
                "forbid(principal, action in Action::\"feature:{0}\", resource is Company) unless {{ resource.features.contains(\"{0}\") }};\n",
                f.key
            ));
        }
        let policies = cedar_policy::PolicySet::from_str(&text)?;

        let mut entities: Vec<Entity> = Vec::new();
        // Actions and their groups.
        let mut groups: BTreeSet<String> = BTreeSet::new();
        for p in catalog.permission_ids() {
            let def = catalog.permission_def(p).ok_or("permission")?;
            let feature = def.feature().map(ToString::to_string);
            let key = catalog.key(p);
            let parents = action_groups(key, feature.as_deref());
            let mut parent_uids = HashSet::new();
            for g in &parents {
                parent_uids.insert(uid("Action", g)?);
                groups.insert(g.clone());
            }
            entities.push(Entity::new_no_attrs(uid("Action", key)?, parent_uids));
        }
        for g in &groups {
            let mut parents = HashSet::new();
            let segments: Vec<&str> = g.split(':').collect();
            if segments.len() == 3 {
                parents.insert(uid("Action", &format!("{}:*", segments[0]))?);
            }
            if g != "*" {
                parents.insert(uid("Action", "*")?);
            }
            entities.push(Entity::new_no_attrs(uid("Action", g)?, parents));
        }
        // Companies with their role groups and restriction groups.
        for (company, (modules, features)) in &facts.entitled {
            let mut attrs = HashMap::new();
            attrs.insert(
                "modules".to_owned(),
                RestrictedExpression::new_set(modules.iter().map(|m| RestrictedExpression::new_string(m.clone()))),
            );
            attrs.insert(
                "features".to_owned(),
                RestrictedExpression::new_set(features.iter().map(|f| RestrictedExpression::new_string(f.clone()))),
            );
            for (name, (_, parents)) in &facts.roles {
                let group = uid("RoleGroup", &format!("{company}/{name}"))?;
                attrs.insert(role_attr(name).ok_or("role")?, RestrictedExpression::new_entity_uid(group.clone()));
                let mut parent_uids = HashSet::new();
                for p in parents {
                    parent_uids.insert(uid("RoleGroup", &format!("{company}/{p}"))?);
                }
                entities.push(Entity::new_no_attrs(group, parent_uids));
            }
            for (k, _) in patterns.iter().enumerate() {
                let group = uid("Restricted", &format!("{company}/{k}"))?;
                attrs.insert(format!("x{k}"), RestrictedExpression::new_entity_uid(group.clone()));
                entities.push(Entity::new_no_attrs(group, HashSet::new()));
            }
            entities.push(Entity::new(uid("Company", company)?, attrs, HashSet::new())?);
        }
        // Users, in the groups of their active memberships (a user may belong to several companies).
        let mut parents: BTreeMap<&str, HashSet<cedar_policy::EntityUid>> = BTreeMap::new();
        for (user, company, roles) in &facts.members {
            let set = parents.entry(user.as_str()).or_default();
            for r in roles {
                set.insert(uid("RoleGroup", &format!("{company}/{r}"))?);
            }
        }
        for (user, company, restricted) in &facts.restrictions {
            let set = parents.entry(user.as_str()).or_default();
            for p in restricted {
                let k = patterns.iter().position(|x| x == p).ok_or("pattern")?;
                set.insert(uid("Restricted", &format!("{company}/{k}"))?);
            }
        }
        for u in &doc.users {
            let set = parents.remove(u.id.as_str()).unwrap_or_default();
            entities.push(Entity::new_no_attrs(uid("User", &u.id)?, set));
        }
        let entities = cedar_policy::Entities::from_entities(entities, None)?;
        Ok(Cedar { policies, entities, authorizer: cedar_policy::Authorizer::new() })
    }

    /// The request of a query.
    pub fn request(&self, q: &Query) -> Result<cedar_policy::Request, Error> {
        Ok(cedar_policy::Request::new(
            uid("User", &q.user)?,
            uid("Action", &q.permission)?,
            uid("Company", &q.company)?,
            cedar_policy::Context::empty(),
            None,
        )?)
    }

    /// Decides a prepared request against the whole entity store.
    #[inline]
    pub fn check(&self, request: &cedar_policy::Request) -> bool {
        self.authorizer.is_authorized(request, &self.policies, &self.entities).decision()
            == cedar_policy::Decision::Allow
    }

    /// Decides a prepared request against its own entity slice.
    #[inline]
    pub fn check_slice(&self, request: &cedar_policy::Request, slice: &cedar_policy::Entities) -> bool {
        self.authorizer.is_authorized(request, &self.policies, slice).decision() == cedar_policy::Decision::Allow
    }

    /// Decides a query, failing on any evaluation error (which would mean a broken translation).
    pub fn decide(&self, q: &Query) -> Result<bool, Error> {
        let response = self.authorizer.is_authorized(&self.request(q)?, &self.policies, &self.entities);
        if let Some(e) = response.diagnostics().errors().next() {
            return Err(format!("cedar evaluation error on {q:?}: {e}").into());
        }
        Ok(response.decision() == cedar_policy::Decision::Allow)
    }

    /// The entities a request can reach: the user and its ancestors, the company and the groups it
    /// points to, the action and its ancestors.
    fn slice(&self, q: &Query) -> Result<cedar_policy::Entities, Error> {
        let mut wanted: Vec<cedar_policy::EntityUid> =
            vec![uid("User", &q.user)?, uid("Company", &q.company)?, uid("Action", &q.permission)?];
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        while let Some(next) = wanted.pop() {
            if !seen.insert(next.clone()) {
                continue;
            }
            let Some(entity) = self.entities.get(&next) else { continue };
            wanted.extend(self.entities.ancestors(&next).into_iter().flatten().cloned());
            out.push(entity.clone());
        }
        Ok(cedar_policy::Entities::from_entities(out, None)?)
    }

    /// Requests and slices for `queries`, built ahead of timing.
    pub fn slices(&self, queries: &[Query]) -> Result<CedarSlices, Error> {
        let mut requests = Vec::with_capacity(queries.len());
        let mut slices = Vec::with_capacity(queries.len());
        for q in queries {
            requests.push(self.request(q)?);
            slices.push(self.slice(q)?);
        }
        Ok(CedarSlices { requests, slices })
    }
}

impl CedarSlices {
    /// The prepared request `i` (modulo the count) and its slice.
    #[inline]
    pub fn get(&self, i: usize) -> Option<(&cedar_policy::Request, &cedar_policy::Entities)> {
        let i = i % self.requests.len().max(1);
        Some((self.requests.get(i)?, self.slices.get(i)?))
    }

    /// The prepared requests.
    pub fn requests(&self) -> &[cedar_policy::Request] {
        &self.requests
    }
}

// ---------------------------------------------------------------- casbin

const CASBIN_MODEL: &str = r#"
[request_definition]
r = sub, dom, act, obj, feat

[policy_definition]
p = sub, dom, act, eft

[role_definition]
g = _, _, _
g2 = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = g(r.sub, p.sub, r.dom) && keyMatch(r.act, p.act) && g2(r.dom, r.obj) && (r.feat == "-" || g2(r.dom, r.feat))
"#;

/// casbin-rs 2: RBAC with domains (`g = user, role, company`), a grouping of company → entitled module
/// and feature (`g2`), allow policies per role pattern and deny policies per restriction pattern
/// (restricted users get a per-pattern role).
pub struct Casbin {
    /// The plain enforcer.
    pub enforcer: casbin::Enforcer,
    /// The caching enforcer.
    pub cached: casbin::CachedEnforcer,
}

/// The policy lines of the casbin translation.
struct CasbinLines {
    p: Vec<Vec<String>>,
    g: Vec<Vec<String>>,
    g2: Vec<Vec<String>>,
}

fn casbin_lines(doc: &WorldDoc, world: &Directory) -> Result<CasbinLines, Error> {
    let facts = facts(doc, world)?;
    let mut p = Vec::new();
    for (name, (grants, _)) in &facts.roles {
        for g in grants {
            p.push(vec![name.clone(), "*".into(), g.clone(), "allow".into()]);
        }
    }
    let mut g = Vec::new();
    let mut patterns = BTreeSet::new();
    for (user, company, roles) in &facts.members {
        for r in roles {
            g.push(vec![user.clone(), r.clone(), company.clone()]);
        }
    }
    for (user, company, restricted) in &facts.restrictions {
        for pattern in restricted {
            g.push(vec![user.clone(), format!("restricted:{pattern}"), company.clone()]);
            patterns.insert(pattern.clone());
        }
    }
    for pattern in patterns {
        p.push(vec![format!("restricted:{pattern}"), "*".into(), pattern, "deny".into()]);
    }
    let mut g2 = Vec::new();
    for (company, (modules, features)) in &facts.entitled {
        for (name, (_, parents)) in &facts.roles {
            for parent in parents {
                g.push(vec![name.clone(), parent.clone(), company.clone()]);
            }
        }
        g2.extend(modules.iter().map(|m| vec![company.clone(), m.clone()]));
        g2.extend(features.iter().map(|f| vec![company.clone(), f.clone()]));
    }
    Ok(CasbinLines { p, g, g2 })
}

impl Casbin {
    /// Translates the world into both enforcers.
    pub fn new(doc: &WorldDoc, world: &Directory) -> Result<Casbin, Error> {
        use casbin::{CoreApi, DefaultModel, MemoryAdapter, MgmtApi};
        let CasbinLines { p, g, g2 } = casbin_lines(doc, world)?;
        let runtime = tokio::runtime::Builder::new_current_thread().build()?;
        runtime.block_on(async {
            let mut enforcer =
                casbin::Enforcer::new(DefaultModel::from_str(CASBIN_MODEL).await?, MemoryAdapter::default()).await?;
            let mut cached =
                casbin::CachedEnforcer::new(DefaultModel::from_str(CASBIN_MODEL).await?, MemoryAdapter::default())
                    .await?;
            enforcer.add_policies(p.clone()).await?;
            enforcer.add_named_grouping_policies("g", g.clone()).await?;
            enforcer.add_named_grouping_policies("g2", g2.clone()).await?;
            cached.add_policies(p).await?;
            cached.add_named_grouping_policies("g", g).await?;
            cached.add_named_grouping_policies("g2", g2).await?;
            Ok::<_, Error>(Casbin { enforcer, cached })
        })
    }

    /// Decides a query with the plain enforcer.
    #[inline]
    pub fn check(&self, q: &Query) -> Result<bool, Error> {
        use casbin::CoreApi;
        let feature = q.feature.as_deref().unwrap_or("-");
        Ok(self.enforcer.enforce((&q.user, &q.company, &q.permission, &q.module, feature))?)
    }

    /// Decides a query with the caching enforcer.
    #[inline]
    pub fn check_cached(&self, q: &Query) -> Result<bool, Error> {
        use casbin::CoreApi;
        let feature = q.feature.as_deref().unwrap_or("-");
        Ok(self.cached.enforce((&q.user, &q.company, &q.permission, &q.module, feature))?)
    }
}

// ---------------------------------------------------------------- agreement

/// Every engine must answer every query as kisum does; the first disagreements are returned.
pub fn disagreements(kisum: &Kisum, cedar: &Cedar, casbin: &Casbin, queries: &[Query]) -> Result<Vec<String>, Error> {
    let slices = cedar.slices(queries)?;
    let mut out = Vec::new();
    for (i, q) in queries.iter().enumerate() {
        let snapshot = kisum.snapshot(q).map(|s| s.allows(q.id, None));
        let (request, slice) = slices.get(i).ok_or("slice")?;
        let answers = [
            ("kisum directory", kisum.check(q)),
            ("kisum snapshot", snapshot.unwrap_or(!q.expected)),
            ("cedar", cedar.decide(q)?),
            ("cedar slice", cedar.check_slice(request, slice)),
            ("casbin", casbin.check(q)?),
            ("casbin cached", casbin.check_cached(q)?),
        ];
        for (engine, got) in answers {
            if got != q.expected && out.len() < 20 {
                out.push(format!("{engine} says {got} for {} {} {}", q.user, q.company, q.permission));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The translations agree with kisum on a small world (CI runs this; the benchmark runs it at size).
    #[test]
    fn every_engine_agrees_with_kisum() {
        let doc = world(50);
        let mut kisum = Kisum::new(&doc).unwrap();
        let queries = queries(&doc, &kisum.directory, 2_000, 1).unwrap();
        let allows = queries.iter().filter(|q| q.expected).count();
        assert_eq!(allows, 1_000);
        kisum.prepare(&queries);
        let cedar = Cedar::new(&doc, &kisum.directory).unwrap();
        let casbin = Casbin::new(&doc, &kisum.directory).unwrap();
        let wrong = disagreements(&kisum, &cedar, &casbin, &queries).unwrap();
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}
