//! The permission-pattern grammar (DESIGN.md §4), in one place: grants, restrictions, delegations and
//! service-token scopes all use it.

use std::fmt;

use kisum_entitlements::is_segment;

/// A permission pattern: a key `module:resource:action`, or one with a trailing whole-segment `*` —
/// `module:resource:*`, `module:*`, `*`. Nothing else is a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    text: Box<str>,
    /// The part a matching key starts with (`""` for `*`), or `None` for an exact key.
    prefix: Option<usize>,
}

/// Text that is not a pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a pattern (`*`, `m:*`, `m:r:*` or a declared key)")]
pub struct PatternError {
    text: String,
}

impl Pattern {
    /// Parses a pattern; segments follow the key grammar `[a-z0-9_]+`.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let segments: Vec<&str> = text.split(':').collect();
        let prefix = match segments.as_slice() {
            ["*"] => Some(0),
            [m, "*"] if is_segment(m) => Some(text.len() - 1),
            [m, r, "*"] if is_segment(m) && is_segment(r) => Some(text.len() - 1),
            [m, r, a] if is_segment(m) && is_segment(r) && is_segment(a) => None,
            _ => return Err(PatternError { text: crate::catalog::clip(text) }),
        };
        Ok(Pattern { text: text.into(), prefix })
    }

    /// Whether the pattern matches permission key `key`.
    pub fn matches(&self, key: &str) -> bool {
        match self.prefix {
            Some(n) => key.starts_with(self.text.get(..n).unwrap_or_default()),
            None => *self.text == *key,
        }
    }

    /// Whether the pattern is a single key rather than a wildcard.
    pub fn is_key(&self) -> bool {
        self.prefix.is_none()
    }

    /// The module the pattern is about (`None` for `*`).
    pub fn module(&self) -> Option<&str> {
        match self.prefix {
            Some(0) => None,
            _ => self.text.split(':').next(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Pattern {
    type Err = PatternError;
    fn from_str(text: &str) -> Result<Pattern, PatternError> {
        Pattern::parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grammar_and_nothing_else() {
        for good in ["*", "finance:*", "finance:invoice:*", "finance:invoice:read", "a_1:b:c"] {
            assert_eq!(Pattern::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", "**", "fin*", "finance:inv*", "finance:*:read", "finance", "a:b:c:d", "a:b:c:*", "A:b:c", ":*"]
        {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matching_is_by_whole_segments() {
        let m = |p: &str, k: &str| Pattern::parse(p).unwrap().matches(k);
        assert!(m("*", "finance:invoice:read"));
        assert!(m("finance:*", "finance:invoice:read"));
        assert!(!m("finance:*", "financex:invoice:read"));
        assert!(m("finance:invoice:*", "finance:invoice:read"));
        assert!(!m("finance:invoice:*", "finance:invoices:read"));
        assert!(m("finance:invoice:read", "finance:invoice:read"));
        assert!(!m("finance:invoice:read", "finance:invoice:readx"));
        assert_eq!(Pattern::parse("finance:invoice:*").unwrap().module(), Some("finance"));
        assert_eq!(Pattern::parse("*").unwrap().module(), None);
    }
}
