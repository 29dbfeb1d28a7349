//! The access catalog: the commercial catalog plus declared permissions (interned to dense ids), patterns
//! compiled to permission bitsets, and system roles with their inheritance closed.

use std::collections::HashMap;
use std::sync::Arc;

use kisum_entitlements::{BitSet, Catalog, FeatureKey, Idx, Issues, ModuleId, PlanDoc, is_segment};

use crate::doc::{AccessCatalogDoc, RoleDoc};
use crate::error::AccessError;
use crate::ids::RoleId;
use crate::pattern::Pattern;

/// A declared permission, interned: checks take this id, never a string.
///
/// An id is meaningful only with the catalog that issued it (a snapshot or a check given an id of another
/// catalog denies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PermissionId(u32);

impl PermissionId {
    /// The dense index of the permission in its catalog: `0..`[`permission_count`](AccessCatalog::permission_count),
    /// in declaration order. For callers that keep their own bitsets or tables over permissions (a
    /// benchmark's baseline, a cache keyed by permission); the crate's own bitsets stay private.
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The id at a dense index taken from one of the crate's own permission bitsets.
    pub(crate) fn from_index(index: usize) -> PermissionId {
        PermissionId(u32_of(index))
    }
}

/// A declared permission.
#[derive(Debug, Clone)]
pub struct PermissionDef {
    key: Arc<str>,
    module: ModuleId,
    feature: Option<FeatureKey>,
    delegable: bool,
    /// The module, interned in the commercial catalog.
    pub(crate) module_ix: Idx,
    /// The feature, interned in the commercial catalog.
    pub(crate) feature_ix: Option<Idx>,
}

impl PermissionDef {
    /// The key, `module:resource:action`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The module (the key's first segment).
    pub fn module(&self) -> &ModuleId {
        &self.module
    }

    /// The feature it requires besides its module, if any.
    pub fn feature(&self) -> Option<&FeatureKey> {
        self.feature.as_ref()
    }

    /// Whether delegations may confer it.
    pub fn is_delegable(&self) -> bool {
        self.delegable
    }
}

/// A role of a company, as an allow names it ([`Grant::Role`](crate::Grant::Role)): an opaque handle,
/// meaningful only against the company partition the decision was taken on. Resolve it to a [`RoleId`]
/// with [`Company::granted_by`](crate::Company::granted_by).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoleRef(pub(crate) RoleIx);

/// A role inside a company: one of the catalog's system roles or one of the company's custom roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum RoleIx {
    /// A system role, by index in the catalog.
    System(u32),
    /// A custom role, by index in its company.
    Custom(u32),
}

/// A compiled role.
#[derive(Debug, Clone)]
pub(crate) struct Role {
    /// Its id.
    pub id: RoleId,
    /// The roles it inherits.
    pub inherits: Vec<RoleIx>,
    /// What its own grants match.
    pub direct: BitSet,
    /// What it grants with everything it inherits.
    pub closure: BitSet,
}

/// The compiled catalog. Immutable; shared by `Arc` between the world, the directory and snapshots.
#[derive(Debug, Clone)]
pub struct AccessCatalog {
    commercial: Catalog,
    doc: AccessCatalogDoc,
    permissions: Vec<PermissionDef>,
    permission_ix: HashMap<Arc<str>, PermissionId>,
    delegable: BitSet,
    system_roles: Vec<Role>,
    system_ix: HashMap<RoleId, u32>,
    /// Every wildcard pattern that matches something (`*`, `m:*`, `m:r:*` over the declared keys) with
    /// what it matches: compiling a grant or a restriction is then one lookup, not a scan of every key
    /// (a world of 100k companies compiles millions of patterns).
    wildcards: HashMap<String, BitSet>,
    fingerprint: String,
}

fn fingerprint(doc: &AccessCatalogDoc) -> String {
    // What a snapshot's wire form is read against: modules, features and permissions. Plans and roles
    // are left out, so that publishing a plan does not invalidate snapshots. The documents serialize
    // their fields in declaration order, so equal catalogs give equal text.
    let text = serde_json::to_string(&(&doc.modules, &doc.features, &doc.permissions)).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("fnv1a64:{h:016x}")
}

fn u32_of(i: usize) -> u32 {
    // INVARIANT: catalogs and companies are far smaller than 2^32 items.
    u32::try_from(i).unwrap_or(u32::MAX)
}

impl AccessCatalog {
    /// Validates and compiles a catalog on its own (paths under `/catalog`).
    pub fn from_doc(doc: &AccessCatalogDoc) -> Result<AccessCatalog, AccessError> {
        let mut issues = Issues::new();
        let catalog = AccessCatalog::compile(doc, &mut issues);
        if issues.is_empty() { Ok(catalog) } else { Err(AccessError::Validation(issues.into_vec())) }
    }

    /// This catalog with one more plan published (see [`Catalog::with_plan`]): the permissions, roles and
    /// every existing plan keep their places, so partitions compiled against this catalog evaluate the
    /// same against the new one, and the [`fingerprint`](AccessCatalog::fingerprint) does not change.
    pub fn with_plan(&self, plan: &PlanDoc) -> Result<AccessCatalog, AccessError> {
        let commercial = self.commercial.with_plan(plan)?;
        let mut next = self.clone();
        match plan {
            PlanDoc::Package(p) => next.doc.packages.push(p.clone()),
            PlanDoc::Addon(a) => next.doc.addons.push(a.clone()),
        }
        next.commercial = commercial;
        Ok(next)
    }

    pub(crate) fn compile(doc: &AccessCatalogDoc, issues: &mut Issues) -> AccessCatalog {
        let commercial = Catalog::compile(&doc.commercial(), "/catalog", issues);
        let mut cat = AccessCatalog {
            commercial,
            doc: doc.clone(),
            permissions: Vec::new(),
            permission_ix: HashMap::new(),
            delegable: BitSet::new(0),
            system_roles: Vec::new(),
            system_ix: HashMap::new(),
            wildcards: HashMap::new(),
            fingerprint: fingerprint(doc),
        };
        for (i, p) in doc.permissions.iter().enumerate() {
            let at = format!("/catalog/permissions/{i}");
            let segments: Vec<&str> = p.key.split(':').collect();
            let [module, _, _] = segments.as_slice() else {
                issues.push(format!("{at}/key"), format!("`{}` is not a key module:resource:action", clip(&p.key)));
                continue;
            };
            if !segments.iter().all(|s| is_segment(s)) {
                issues.push(format!("{at}/key"), format!("`{}` has a segment outside [a-z0-9_]+", clip(&p.key)));
                continue;
            }
            let Some((module_ix, module_def)) =
                cat.commercial.module_index(module).and_then(|m| Some((m, cat.commercial.module(m)?)))
            else {
                issues.push(format!("{at}/key"), format!("unknown module `{module}`"));
                continue;
            };
            let module_id = module_def.id.clone();
            let feature = match &p.feature {
                None => None,
                Some(f) => match cat.commercial.feature_index(f).and_then(|fi| Some((fi, cat.commercial.feature(fi)?)))
                {
                    Some((fi, def)) if def.module == module_ix => Some((fi, def.key.clone())),
                    Some(_) => {
                        issues.push(format!("{at}/feature"), format!("feature `{f}` is not of module `{module}`"));
                        continue;
                    }
                    None => {
                        issues.push(format!("{at}/feature"), format!("unknown feature `{}`", clip(f)));
                        continue;
                    }
                },
            };
            let key: Arc<str> = Arc::from(p.key.as_str());
            if cat.permission_ix.contains_key(&key) {
                issues.push(format!("{at}/key"), format!("duplicate permission `{key}`"));
                continue;
            }
            cat.permission_ix.insert(key.clone(), PermissionId(u32_of(cat.permissions.len())));
            cat.permissions.push(PermissionDef {
                key,
                module: module_id,
                feature: feature.as_ref().map(|(_, key)| key.clone()),
                delegable: p.delegable != Some(false),
                module_ix,
                feature_ix: feature.map(|(ix, _)| ix),
            });
        }
        cat.delegable = BitSet::new(cat.permissions.len());
        let n = cat.permissions.len();
        for (i, p) in cat.permissions.iter().enumerate() {
            if p.delegable {
                cat.delegable.insert(i);
            }
            let mut prefixes = vec!["*".to_owned()];
            if let Some((m, rest)) = p.key.split_once(':') {
                prefixes.push(format!("{m}:*"));
                if let Some((r, _)) = rest.split_once(':') {
                    prefixes.push(format!("{m}:{r}:*"));
                }
            }
            for prefix in prefixes {
                cat.wildcards.entry(prefix).or_insert_with(|| BitSet::new(n)).insert(i);
            }
        }
        cat.system_roles = compile_roles(&cat, &doc.roles, "/catalog/roles", None, issues);
        cat.system_ix = cat.system_roles.iter().enumerate().map(|(i, r)| (r.id.clone(), u32_of(i))).collect();
        cat
    }

    /// The commercial catalog.
    pub fn commercial(&self) -> &Catalog {
        &self.commercial
    }

    /// The document this catalog was compiled from.
    pub fn doc(&self) -> &AccessCatalogDoc {
        &self.doc
    }

    /// A fingerprint of what snapshots are read against — the modules, features and permissions
    /// (`fnv1a64:` and 16 hex digits over their JSON) — so that a snapshot built against one catalog is
    /// never read against a different one; publishing a plan leaves it unchanged. It detects mistakes,
    /// not forgeries: snapshots travel over authenticated channels.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Resolves a permission key, or `UNKNOWN_PERMISSION` if the catalog does not declare it.
    pub fn permission(&self, key: &str) -> Result<PermissionId, AccessError> {
        self.permission_ix.get(key).copied().ok_or_else(|| AccessError::UnknownPermission(clip(key)))
    }

    /// The declaration of a permission.
    pub fn permission_def(&self, id: PermissionId) -> Option<&PermissionDef> {
        self.permissions.get(id.index())
    }

    /// The key of a permission (empty for an id of another catalog).
    pub fn key(&self, id: PermissionId) -> &str {
        self.permissions.get(id.index()).map_or("", |p| &p.key)
    }

    /// The number of permissions: every [`PermissionId::index`] of this catalog is below it.
    pub fn permission_count(&self) -> usize {
        self.permissions.len()
    }

    /// Every permission id, in declaration order.
    pub fn permission_ids(&self) -> impl Iterator<Item = PermissionId> + '_ {
        (0..self.permissions.len()).map(|i| PermissionId(u32_of(i)))
    }

    /// The permission at dense index `index`.
    pub(crate) fn permission_at(&self, index: usize) -> Option<PermissionId> {
        (index < self.permissions.len()).then(|| PermissionId(u32_of(index)))
    }

    /// The permissions delegations may confer.
    pub(crate) fn delegable(&self) -> &BitSet {
        &self.delegable
    }

    /// The system roles.
    pub(crate) fn system_roles(&self) -> &[Role] {
        &self.system_roles
    }

    /// A system role by id.
    pub(crate) fn system_role(&self, id: &str) -> Option<(u32, &Role)> {
        let ix = *self.system_ix.get(id)?;
        Some((ix, self.system_roles.get(ix as usize)?))
    }

    /// Compiles a pattern (`*`, `m:*`, `m:r:*` or a declared key) to the permissions it matches.
    pub(crate) fn pattern(&self, text: &str) -> Result<BitSet, String> {
        // The common cases first: a declared key or a wildcard that matches something.
        if let Some(id) = self.permission_ix.get(text) {
            let mut bits = BitSet::new(self.permissions.len());
            bits.insert(id.index());
            return Ok(bits);
        }
        if let Some(bits) = self.wildcards.get(text) {
            return Ok(bits.clone());
        }
        let pattern = Pattern::parse(text).map_err(|e| e.to_string())?;
        if pattern.is_key() {
            let id = self.permission_ix.get(text).ok_or_else(|| format!("unknown permission `{}`", clip(text)))?;
            let mut bits = BitSet::new(self.permissions.len());
            bits.insert(id.index());
            return Ok(bits);
        }
        if let Some(m) = pattern.module()
            && self.commercial.module_index(m).is_none()
        {
            return Err(format!("unknown module `{}`", clip(m)));
        }
        let mut bits = BitSet::new(self.permissions.len());
        for (i, p) in self.permissions.iter().enumerate() {
            if pattern.matches(&p.key) {
                bits.insert(i);
            }
        }
        Ok(bits)
    }

    /// Compiles a list of patterns, recording problems under `path/{i}`.
    pub(crate) fn patterns(&self, texts: &[String], path: &dyn std::fmt::Display, issues: &mut Issues) -> BitSet {
        let mut bits = BitSet::new(self.permissions.len());
        for (i, text) in texts.iter().enumerate() {
            match self.pattern(text) {
                Ok(b) => bits.union_with(&b),
                Err(e) => issues.push(format!("{path}/{i}"), e),
            }
        }
        bits
    }
}

/// Echoes at most 80 characters of untrusted input.
pub(crate) fn clip(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Compiles a set of roles (the system roles, or one company's custom roles when `system` is given):
/// patterns, references (custom first, then system), and the inheritance closure; a cycle is a problem.
pub(crate) fn compile_roles(
    cat: &AccessCatalog,
    docs: &[RoleDoc],
    path: &str,
    system: Option<&[Role]>,
    issues: &mut Issues,
) -> Vec<Role> {
    // In the system set, references between its own roles are `System`; in a custom set they are `Custom`.
    let local_ref = |ix: u32| if system.is_some() { RoleIx::Custom(ix) } else { RoleIx::System(ix) };
    let mut roles: Vec<Role> = Vec::with_capacity(docs.len());
    let mut local: HashMap<&str, u32> = HashMap::new();
    let mut doc_index: Vec<usize> = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let at = format!("{path}/{i}");
        let id = match RoleId::parse(&doc.id) {
            Ok(id) => id,
            Err(e) => {
                issues.push(format!("{at}/id"), e.to_string());
                continue;
            }
        };
        if system.is_some() && cat.system_role(&doc.id).is_some() {
            issues.push(format!("{at}/id"), format!("custom role `{id}` reuses a system role's id"));
            continue;
        }
        if local.contains_key(doc.id.as_str()) {
            issues.push_conflict(format!("{at}/id"), format!("duplicate role `{id}`"));
            continue;
        }
        let direct = cat.patterns(&doc.grants, &format!("{at}/grants"), issues);
        local.insert(doc.id.as_str(), u32_of(roles.len()));
        roles.push(Role { id, inherits: Vec::new(), direct, closure: BitSet::new(0) });
        doc_index.push(i);
    }
    for (role, &i) in roles.iter_mut().zip(&doc_index) {
        let Some(doc) = docs.get(i) else { continue };
        for (j, parent) in doc.inherits.iter().enumerate() {
            if let Some(&ix) = local.get(parent.as_str()) {
                role.inherits.push(local_ref(ix));
            } else if let Some((ix, _)) = system.and_then(|_| cat.system_role(parent)) {
                role.inherits.push(RoleIx::System(ix));
            } else {
                issues.push(format!("{path}/{i}/inherits/{j}"), format!("unknown role `{}`", clip(parent)));
            }
        }
    }
    let mut walk = Closure { roles: &roles, system, state: vec![0; roles.len()], closures: vec![None; roles.len()] };
    let mut cycles = Vec::new();
    for start in 0..roles.len() {
        walk.close(start, &mut cycles);
    }
    let closures = walk.closures;
    for i in cycles {
        let id = roles.get(i).map_or("?", |r| r.id.as_str());
        let at = doc_index.get(i).map_or_else(|| path.to_owned(), |d| format!("{path}/{d}/inherits"));
        issues.push(at, format!("role inheritance has a cycle through `{id}`"));
    }
    for (role, closure) in roles.iter_mut().zip(closures) {
        role.closure = closure.unwrap_or_else(|| role.direct.clone());
    }
    roles
}

/// Depth-first closure of role inheritance over one set of roles.
struct Closure<'a> {
    roles: &'a [Role],
    system: Option<&'a [Role]>,
    /// 0 = unvisited, 1 = on the stack, 2 = done.
    state: Vec<u8>,
    closures: Vec<Option<BitSet>>,
}

impl Closure<'_> {
    fn close(&mut self, i: usize, cycles: &mut Vec<usize>) -> Option<BitSet> {
        match self.state.get(i).copied() {
            Some(2) => return self.closures.get(i).cloned().flatten(),
            Some(1) => {
                cycles.push(i);
                return None;
            }
            Some(_) => {}
            None => return None,
        }
        let role = self.roles.get(i)?;
        if let Some(s) = self.state.get_mut(i) {
            *s = 1;
        }
        let mut closure = role.direct.clone();
        for parent in &role.inherits {
            let inherited = match (*parent, self.system) {
                (RoleIx::System(p), None) | (RoleIx::Custom(p), Some(_)) => self.close(p as usize, cycles),
                (RoleIx::System(p), Some(system)) => system.get(p as usize).map(|r| r.closure.clone()),
                (RoleIx::Custom(_), None) => None,
            };
            if let Some(c) = inherited {
                closure.union_with(&c);
            }
        }
        if let Some(s) = self.state.get_mut(i) {
            *s = 2;
        }
        if let Some(c) = self.closures.get_mut(i) {
            *c = Some(closure.clone());
        }
        Some(closure)
    }
}
