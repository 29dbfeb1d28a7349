//! Identifier newtypes. Every external id is parsed here, at the boundary, and nothing inward takes a raw
//! `String` where an id is meant.

use std::fmt;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a valid {kind}: {rule}")]
pub struct IdError {
    kind: &'static str,
    text: String,
    rule: &'static str,
}

impl IdError {
    /// An error for `text`, which should have been a `kind` following `rule`.
    pub fn new(kind: &'static str, text: &str, rule: &'static str) -> Self {
        // Echo at most 80 characters of untrusted input.
        let text: String = text.chars().take(80).collect();
        IdError { kind, text, rule }
    }
}

/// The rule of external ids: `[a-z0-9][a-z0-9_.-]{0,63}`.
pub const ID_RULE: &str = "expected [a-z0-9][a-z0-9_.-]{0,63}";
/// The rule of module ids and permission segments: `[a-z0-9_]+`, at most 64 characters.
pub const SEGMENT_RULE: &str = "expected [a-z0-9_]+ (at most 64 characters)";
/// The rule of feature and limit keys: two segments joined by `.`.
pub const KEY_RULE: &str = "expected two [a-z0-9_]+ segments joined by `.`";

/// Whether `s` is an external id: `[a-z0-9][a-z0-9_.-]{0,63}`.
pub fn is_id(s: &str) -> bool {
    let bytes = s.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            rest.len() <= 63
                && (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b'-'))
        }
        None => false,
    }
}

/// Whether `s` is a segment: `[a-z0-9_]+`, at most 64 characters.
pub fn is_segment(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Whether `s` is a two-segment key `a.b`.
pub fn is_key(s: &str) -> bool {
    match s.split_once('.') {
        Some((a, b)) => is_segment(a) && is_segment(b),
        None => false,
    }
}

/// Defines an id newtype over `Arc<str>` (cheap to clone), parsed with a validity predicate.
///
/// Used by the Kisum crates for every kind of id; exported so that crates building on this one define
/// their ids the same way.
#[macro_export]
macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $check:path, $rule:path) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(::std::sync::Arc<str>);

        impl $name {
            /// Parses `text`, or says why it is not a valid id of this kind.
            pub fn parse(text: &str) -> ::std::result::Result<Self, $crate::IdError> {
                if $check(text) {
                    Ok($name(::std::sync::Arc::from(text)))
                } else {
                    Err($crate::IdError::new($kind, text, $rule))
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::IdError;
            fn from_str(text: &str) -> ::std::result::Result<Self, Self::Err> {
                $name::parse(text)
            }
        }

        impl ::std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        #[cfg(feature = "openapi")]
        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                ::utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(::utoipa::openapi::schema::Type::String)
                    .description(Some(concat!("a ", $kind)))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl ::utoipa::ToSchema for $name {
            fn name() -> ::std::borrow::Cow<'static, str> {
                ::std::borrow::Cow::Borrowed(stringify!($name))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                $name::parse(&text).map_err(::serde::de::Error::custom)
            }
        }
    };
}

define_id!(
    /// A company (tenant) id, such as `acme`.
    CompanyId, "company id", crate::id::is_id, crate::id::ID_RULE
);
define_id!(
    /// A subscription id, unique within its company.
    SubscriptionId, "subscription id", crate::id::is_id, crate::id::ID_RULE
);
define_id!(
    /// An override id, unique within its company.
    OverrideId, "override id", crate::id::is_id, crate::id::ID_RULE
);
define_id!(
    /// A package or add-on id, such as `pro`; with a version it names one plan.
    PlanId, "plan id", crate::id::is_id, crate::id::ID_RULE
);
define_id!(
    /// A module id, such as `finance`.
    ModuleId, "module id", crate::id::is_segment, crate::id::SEGMENT_RULE
);
define_id!(
    /// A feature key `module.name`, such as `finance.multi_currency`.
    FeatureKey, "feature key", crate::id::is_key, crate::id::KEY_RULE
);
define_id!(
    /// A limit key `a.b`, such as `core.seats`.
    LimitKey, "limit key", crate::id::is_key, crate::id::KEY_RULE
);

impl FeatureKey {
    /// The module segment of the key (`finance` for `finance.approvals`).
    pub fn module_segment(&self) -> &str {
        self.as_str().split('.').next().unwrap_or_default()
    }
}

/// Dense index of an interned catalog item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Idx(pub u32);

impl Idx {
    /// The index as `usize`.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Idx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_grammar() {
        for ok in ["acme", "a", "0", "a-b_c.d", &"a".repeat(64)] {
            assert!(CompanyId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Acme", "-a", "_a", ".a", "a b", "a/b", "é", &"a".repeat(65)] {
            assert!(CompanyId::parse(bad).is_err(), "{bad}");
        }
        assert!(ModuleId::parse("finance_x").is_ok());
        assert!(ModuleId::parse("fin-ance").is_err());
        assert!(FeatureKey::parse("finance.approvals").is_ok());
        assert!(FeatureKey::parse("finance").is_err());
        assert!(FeatureKey::parse("a.b.c").is_err());
        assert_eq!(FeatureKey::parse("finance.x").unwrap().module_segment(), "finance");
    }

    #[test]
    fn errors_truncate_untrusted_input() {
        let err = CompanyId::parse(&"X".repeat(10_000)).unwrap_err();
        assert!(err.to_string().len() < 200);
    }
}
