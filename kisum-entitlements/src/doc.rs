//! The wire form of the commercial parts of a world file (`scenarios/README.md`): plain serde types that
//! reject unknown fields. Ids stay text here; [`Catalog::from_doc`](crate::Catalog::from_doc) and
//! [`CompanyPlans::compile`](crate::CompanyPlans::compile) parse them, naming every problem at once.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Timestamp;

/// Deserializes an optional list (or map): absent and `null` both mean empty.
pub fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The largest finite limit value.
pub const MAX_LIMIT: u64 = 1_000_000_000_000;

/// A limit value: a capacity, or `unlimited`, which is above every number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitValue {
    /// A finite capacity.
    Finite(u64),
    /// No limit.
    Unlimited,
}

impl LimitValue {
    /// Whether `used + requested` units fit.
    pub fn allows(self, used: u64, requested: u64) -> bool {
        match self {
            LimitValue::Unlimited => true,
            LimitValue::Finite(cap) => used.checked_add(requested).is_some_and(|total| total <= cap),
        }
    }
}

impl fmt::Display for LimitValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitValue::Finite(n) => write!(f, "{n}"),
            LimitValue::Unlimited => f.write_str("unlimited"),
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for LimitValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let finite = ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(MAX_LIMIT));
        let unlimited = ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["unlimited"]));
        OneOfBuilder::new()
            .item(finite)
            .item(unlimited)
            .description(Some("a capacity in 0..=10^12, or `\"unlimited\"`"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for LimitValue {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("LimitValue")
    }
}

impl Serialize for LimitValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LimitValue::Finite(n) => s.serialize_u64(*n),
            LimitValue::Unlimited => s.serialize_str("unlimited"),
        }
    }
}

impl<'de> Deserialize<'de> for LimitValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = LimitValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative integer or \"unlimited\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<LimitValue, E> {
                Ok(LimitValue::Finite(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<LimitValue, E> {
                u64::try_from(v).map(LimitValue::Finite).map_err(|_| E::custom("limit values are not negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<LimitValue, E> {
                if v == "unlimited" {
                    Ok(LimitValue::Unlimited)
                } else {
                    Err(E::custom(format!("expected an integer or \"unlimited\", got {v:?}")))
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Whether a module is sold as part of packages or as an add-on. Descriptive only: it changes no rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ModuleKind {
    /// A module packages grant.
    Base,
    /// A module sold as an add-on.
    Addon,
}

/// How the grants of several plans to one limit combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Combine {
    /// Capacities add up (add-ons add capacity); each is multiplied by its subscription's quantity.
    Sum,
    /// The largest capacity wins.
    Max,
}

/// A module declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModuleDoc {
    /// `[a-z0-9_]+`.
    pub id: String,
    /// Base or add-on.
    pub kind: ModuleKind,
}

/// A feature declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeatureDoc {
    /// `module.name`.
    pub key: String,
    /// The module the feature belongs to; the key's first segment.
    pub module: String,
}

/// A limit declaration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LimitDoc {
    /// `a.b`.
    pub key: String,
    /// How grants combine.
    pub combine: Combine,
}

/// A package (one version of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PackageDoc {
    /// The package id.
    pub id: String,
    /// The version; every version is kept.
    pub version: u32,
    /// Granted modules.
    #[serde(default, deserialize_with = "nullable")]
    pub modules: Vec<String>,
    /// Granted features.
    #[serde(default, deserialize_with = "nullable")]
    pub features: Vec<String>,
    /// Granted limit values.
    #[serde(default, deserialize_with = "nullable")]
    pub limits: BTreeMap<String, LimitValue>,
}

/// An add-on (one version of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AddonDoc {
    /// The add-on id.
    pub id: String,
    /// The version; every version is kept.
    pub version: u32,
    /// Package ids, any of which must be effective for the add-on to count.
    #[serde(default, deserialize_with = "nullable")]
    pub requires: Vec<String>,
    /// Granted modules.
    #[serde(default, deserialize_with = "nullable")]
    pub modules: Vec<String>,
    /// Granted features.
    #[serde(default, deserialize_with = "nullable")]
    pub features: Vec<String>,
    /// Granted limit values.
    #[serde(default, deserialize_with = "nullable")]
    pub limits: BTreeMap<String, LimitValue>,
}

/// The commercial catalog: what can be sold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CatalogDoc {
    /// Modules.
    #[serde(default, deserialize_with = "nullable")]
    pub modules: Vec<ModuleDoc>,
    /// Features.
    #[serde(default, deserialize_with = "nullable")]
    pub features: Vec<FeatureDoc>,
    /// Limits.
    #[serde(default, deserialize_with = "nullable")]
    pub limits: Vec<LimitDoc>,
    /// Packages, every version.
    #[serde(default, deserialize_with = "nullable")]
    pub packages: Vec<PackageDoc>,
    /// Add-ons, every version.
    #[serde(default, deserialize_with = "nullable")]
    pub addons: Vec<AddonDoc>,
}

/// Subscription status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SubscriptionStatus {
    /// Effective until `trial_ends_at`.
    Trialing,
    /// Effective.
    Active,
    /// Effective until `grace_until`.
    PastDue,
    /// Never effective.
    Canceled,
    /// Never effective.
    Expired,
    /// Never effective.
    Paused,
}

/// What a subscription subscribes to: `{ "package": id, "version": n }` or `{ "addon": id, "version": n }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanRefDoc {
    /// A package id (exactly one of `package` and `addon`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// An add-on id (exactly one of `package` and `addon`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addon: Option<String>,
    /// The plan version.
    pub version: u32,
}

/// A subscription of a company to one version of a package or add-on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriptionDoc {
    /// Unique within the company.
    pub id: String,
    /// The plan.
    pub plan: PlanRefDoc,
    /// Status.
    pub status: SubscriptionStatus,
    /// Start (inclusive).
    pub starts_at: Timestamp,
    /// End (exclusive), if any.
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
    /// Trial end (exclusive); required while `trialing`, ignored otherwise.
    #[serde(default)]
    pub trial_ends_at: Option<Timestamp>,
    /// Grace end (exclusive); required while `past_due`, ignored otherwise.
    #[serde(default)]
    pub grace_until: Option<Timestamp>,
    /// 1..=10^6, default 1; multiplies `sum` limits.
    #[serde(default)]
    pub quantity: Option<u64>,
}

/// Grant or revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Effect {
    /// Adds the item (a limit grant replaces the computed value).
    Grant,
    /// Removes the item; wins over any grant.
    Revoke,
}

/// A platform-admin override for one company: exactly one of `module`, `feature`, `limit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OverrideDoc {
    /// An id unique within the company, if it has one (the Admin API assigns one to every override it
    /// creates; world files may leave it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Grant or revoke.
    pub effect: Effect,
    /// A module id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// A feature key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    /// A limit key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// The value of a limit grant (and of nothing else).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<LimitValue>,
    /// Expiry (exclusive), if any.
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    /// Why; mandatory and not empty.
    pub reason: String,
}

/// A plan to publish into a catalog: a package or an add-on document, tagged with its kind
/// (`{"package": {…}}` or `{"addon": {…}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum PlanDoc {
    /// A package.
    Package(PackageDoc),
    /// An add-on.
    Addon(AddonDoc),
}

impl PlanDoc {
    /// The plan's id.
    pub fn id(&self) -> &str {
        match self {
            PlanDoc::Package(p) => &p.id,
            PlanDoc::Addon(a) => &a.id,
        }
    }

    /// The plan's version.
    pub fn version(&self) -> u32 {
        match self {
            PlanDoc::Package(p) => p.version,
            PlanDoc::Addon(a) => a.version,
        }
    }
}
