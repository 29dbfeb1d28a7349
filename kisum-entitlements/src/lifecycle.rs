//! The subscription lifecycle (API.md §3): which updates a subscription may take, from which status.
//!
//! | from | to |
//! | --- | --- |
//! | `trialing` | `active` (the trial converts), `canceled`, `expired` |
//! | `active` | `past_due` (with `grace_until`), `paused`, `canceled`, `expired` |
//! | `past_due` | `active` (payment recovered), `canceled`, `expired` |
//! | `paused` | `active` (resumed), `canceled`, `expired` |
//! | `canceled`, `expired` | nothing: they are final |
//!
//! Besides its status, a subscription that is not final may have its `ends_at` set (cancel at period end)
//! or cleared, its `quantity` changed, its `trial_ends_at` moved while trialing, its `grace_until` moved
//! while past due, and its plan changed to another plan of the same kind (a package for a package, an
//! add-on for an add-on; an add-on whose required package is gone simply stops counting). A transition the
//! lifecycle does not allow is a conflict; what the result must satisfy (windows, plan existence,
//! quantity bounds, no overlapping packages) is checked by the model when the company is compiled.

use serde::{Deserialize, Deserializer, Serialize};

use crate::Timestamp;
use crate::doc::{PlanRefDoc, SubscriptionDoc, SubscriptionStatus};
use crate::error::EntitlementsError;

/// The fields of a subscription an update changes; absent fields stay as they are. `ends_at: null`
/// clears the end (a cancellation at period end is withdrawn).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriptionPatch {
    /// The new status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SubscriptionStatus>,
    /// The end of the grace period (with `past_due`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_until: Option<Timestamp>,
    /// The end of the subscription (`null` clears it).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Option<Timestamp>>,
    /// The end of the trial (while trialing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_ends_at: Option<Timestamp>,
    /// The quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u64>,
    /// Another plan of the same kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanRefDoc>,
}

/// A field that is present (even as `null`) deserializes to `Some`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl SubscriptionStatus {
    /// Whether no update may change a subscription in this status.
    pub fn is_final(self) -> bool {
        matches!(self, SubscriptionStatus::Canceled | SubscriptionStatus::Expired)
    }

    /// Whether the lifecycle allows going from this status to `to` (staying is always allowed).
    pub fn may_become(self, to: SubscriptionStatus) -> bool {
        use SubscriptionStatus::*;
        self == to
            || match (self, to) {
                (Canceled | Expired, _) => false,
                (_, Canceled | Expired) => true,
                (Trialing, Active) | (PastDue, Active) | (Paused, Active) => true,
                (Active, PastDue) | (Active, Paused) => true,
                _ => false,
            }
    }

    fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Trialing => "trialing",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::PastDue => "past_due",
            SubscriptionStatus::Canceled => "canceled",
            SubscriptionStatus::Expired => "expired",
            SubscriptionStatus::Paused => "paused",
        }
    }
}

impl SubscriptionDoc {
    /// This subscription with `patch` applied, or a conflict naming the transition the lifecycle does
    /// not allow. The result still has to pass the model's rules when its company is compiled.
    pub fn patched(&self, patch: &SubscriptionPatch) -> Result<SubscriptionDoc, EntitlementsError> {
        let from = self.status;
        let to = patch.status.unwrap_or(from);
        let refuse = |what: String| Err(EntitlementsError::Conflict(format!("subscription `{}`: {what}", self.id)));
        if from.is_final() {
            return refuse(format!("it is {} and cannot change", from.as_str()));
        }
        if !from.may_become(to) {
            return refuse(format!("a {} subscription cannot become {}", from.as_str(), to.as_str()));
        }
        if patch.trial_ends_at.is_some() && to != SubscriptionStatus::Trialing {
            return refuse("only a trialing subscription has a trial end to move".into());
        }
        if patch.grace_until.is_some() && to != SubscriptionStatus::PastDue {
            return refuse("only a past-due subscription has a grace period".into());
        }
        if to == SubscriptionStatus::PastDue && from != to && patch.grace_until.is_none() {
            return refuse("becoming past due needs `grace_until`".into());
        }
        let mut next = self.clone();
        next.status = to;
        if let Some(plan) = &patch.plan {
            if plan.package.is_some() != self.plan.package.is_some() {
                return refuse("a plan change keeps the kind of plan (package or add-on)".into());
            }
            next.plan = plan.clone();
        }
        if let Some(ends_at) = patch.ends_at {
            next.ends_at = ends_at;
        }
        if let Some(t) = patch.trial_ends_at {
            next.trial_ends_at = Some(t);
        }
        if let Some(t) = patch.grace_until {
            next.grace_until = Some(t);
        }
        if let Some(q) = patch.quantity {
            next.quantity = Some(q);
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SubscriptionStatus::*;

    fn sub(status: SubscriptionStatus) -> SubscriptionDoc {
        SubscriptionDoc {
            id: "s1".into(),
            plan: PlanRefDoc { package: Some("pro".into()), addon: None, version: 1 },
            status,
            starts_at: Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
            ends_at: None,
            trial_ends_at: (status == Trialing).then(|| Timestamp::parse("2026-02-01T00:00:00Z").unwrap()),
            grace_until: None,
            quantity: None,
        }
    }

    fn to(status: SubscriptionStatus) -> SubscriptionPatch {
        SubscriptionPatch { status: Some(status), ..SubscriptionPatch::default() }
    }

    #[test]
    fn every_transition_of_the_table() {
        let all = [Trialing, Active, PastDue, Canceled, Expired, Paused];
        let allowed = |from, to| match (from, to) {
            _ if from == to && !matches!(from, Canceled | Expired) => true,
            (Trialing, Active | Canceled | Expired) => true,
            (Active, PastDue | Paused | Canceled | Expired) => true,
            (PastDue | Paused, Active | Canceled | Expired) => true,
            _ => false,
        };
        let grace = Timestamp::parse("2026-03-01T00:00:00Z").unwrap();
        for from in all {
            for status in all {
                let mut patch = to(status);
                if status == PastDue {
                    patch.grace_until = Some(grace);
                }
                let result = sub(from).patched(&patch);
                assert_eq!(result.is_ok(), allowed(from, status), "{from:?} -> {status:?}: {result:?}");
                if let Err(e) = result {
                    assert!(matches!(e, EntitlementsError::Conflict(_)), "{e}");
                }
            }
        }
    }

    #[test]
    fn fields_follow_the_status() {
        let grace = Timestamp::parse("2026-03-01T00:00:00Z").unwrap();
        assert!(sub(Active).patched(&to(PastDue)).is_err(), "past due needs a grace period");
        let late = sub(Active).patched(&SubscriptionPatch { grace_until: Some(grace), ..to(PastDue) }).unwrap();
        assert_eq!((late.status, late.grace_until), (PastDue, Some(grace)));
        assert!(sub(Active).patched(&SubscriptionPatch { grace_until: Some(grace), ..Default::default() }).is_err());
        let trial = SubscriptionPatch { trial_ends_at: Some(grace), ..Default::default() };
        assert_eq!(sub(Trialing).patched(&trial).unwrap().trial_ends_at, Some(grace));
        assert!(sub(Active).patched(&trial).is_err());
        // Cancel at period end, then withdraw it.
        let cancel: SubscriptionPatch = serde_json::from_str(r#"{"ends_at":"2026-06-01T00:00:00Z"}"#).unwrap();
        let canceled = sub(Active).patched(&cancel).unwrap();
        assert_eq!((canceled.status, canceled.ends_at.is_some()), (Active, true));
        let withdraw: SubscriptionPatch = serde_json::from_str(r#"{"ends_at":null}"#).unwrap();
        assert_eq!(canceled.patched(&withdraw).unwrap().ends_at, None);
        let untouched: SubscriptionPatch = serde_json::from_str("{}").unwrap();
        assert_eq!(canceled.patched(&untouched).unwrap(), canceled);
        // A plan change keeps the kind.
        let addon = SubscriptionPatch {
            plan: Some(PlanRefDoc { package: None, addon: Some("x".into()), version: 1 }),
            ..Default::default()
        };
        assert!(sub(Active).patched(&addon).is_err());
        let upgrade = SubscriptionPatch {
            plan: Some(PlanRefDoc { package: Some("max".into()), addon: None, version: 2 }),
            quantity: Some(3),
            ..Default::default()
        };
        let up = sub(Active).patched(&upgrade).unwrap();
        assert_eq!((up.plan.package.as_deref(), up.plan.version, up.quantity), (Some("max"), 2, Some(3)));
        assert!(serde_json::from_str::<SubscriptionPatch>(r#"{"colour":"red"}"#).is_err());
    }
}
