#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod bitset;
mod catalog;
pub mod doc;
mod error;
mod id;
mod lifecycle;
mod plans;
mod time;

pub use bitset::BitSet;
pub use catalog::{Catalog, FeatureDef, LimitDef, ModuleDef, PlanDef, PlanKind};
pub use doc::{Combine, Effect, LimitValue, ModuleKind, PlanDoc, SubscriptionStatus};
pub use error::{EntitlementsError, Issues};
pub use id::{
    CompanyId, FeatureKey, ID_RULE, IdError, Idx, KEY_RULE, LimitKey, ModuleId, OverrideId, PlanId, SEGMENT_RULE,
    SubscriptionId, is_id, is_key, is_segment,
};
pub use lifecycle::SubscriptionPatch;
pub use plans::{
    CompanyPlans, Entitlements, EntitlementsSummary, Item, MAX_QUANTITY, Override, OverrideTarget, Source, Subscription,
};
pub use time::{Clock, ManualClock, SystemClock, TimeError, Timestamp};
