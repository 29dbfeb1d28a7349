//! Access-token claims (RFC 9068, with RFC 8693 `act`) and the verified form a service acts on.

use kisum_access::{AgentId, Principal, UserId};
use serde::{Deserialize, Serialize};

use crate::error::TokenError;

/// The longest an access token lives: `exp − iat` ≤ 15 minutes.
pub const MAX_LIFETIME_SECONDS: i64 = 15 * 60;
/// The deepest `act` nesting accepted (the delegation chain limit).
pub const MAX_ACT_DEPTH: usize = 3;

/// `aud`: one audience or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `aud` names `audience`.
    pub fn contains(&self, audience: &str) -> bool {
        match self {
            Audience::One(a) => a == audience,
            Audience::Many(all) => all.iter().any(|a| a == audience),
        }
    }
}

/// An actor (RFC 8693 §4.1): who acts for the subject, possibly itself acting for someone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Act {
    /// The actor.
    pub sub: String,
    /// The actor's own actor, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Act>>,
}

impl Act {
    /// The number of nested `act` objects, this one included.
    pub fn depth(&self) -> usize {
        1 + self.act.as_ref().map_or(0, |a| a.depth())
    }
}

/// The claims of an access token. Unknown claims are ignored; a claim of the wrong JSON type refuses
/// the token. Times are integer seconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user (user tokens) or the service (service tokens).
    pub sub: String,
    /// Audience: the module or service the token is for.
    pub aud: Audience,
    /// Expiry (exclusive).
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Token id.
    pub jti: String,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Company (user tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
    /// Session (user tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Access version (user tokens): compare with the directory's principal version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ver: Option<u64>,
    /// The actor, when someone acts for the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Act>,
    /// The registered service (service tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Space-separated permission patterns granted to the service (service tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// User or service token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Issued to a user in a company session: carries `cid`, `sid`, `ver`.
    User,
    /// Issued to a registered service (client credentials): carries `client_id` and `scope`.
    Service,
}

impl Claims {
    /// Checks the shape rules every token obeys, whether being signed or verified: a user token has
    /// `cid`, `sid` and `ver` and no service claims; a service token has `client_id` and `scope` and no
    /// user claims; `0 < exp − iat ≤ 15 min`; `act` at most 3 deep; a user token's subject, company and
    /// actors are valid ids.
    pub fn kind(&self) -> Result<TokenKind, &'static str> {
        let user = (self.cid.is_some(), self.sid.is_some(), self.ver.is_some());
        let service = (self.client_id.is_some(), self.scope.is_some());
        let kind = match (user, service) {
            ((true, true, true), (false, false)) => TokenKind::User,
            ((false, false, false), (true, true)) => TokenKind::Service,
            _ => return Err("neither a user token (cid, sid, ver) nor a service token (client_id, scope)"),
        };
        let lifetime = self.exp.checked_sub(self.iat).ok_or("exp and iat out of range")?;
        if lifetime <= 0 || lifetime > MAX_LIFETIME_SECONDS {
            return Err("exp must be after iat and at most 15 minutes later");
        }
        if self.act.as_ref().is_some_and(|a| a.depth() > MAX_ACT_DEPTH) {
            return Err("act is nested more than 3 deep");
        }
        if kind == TokenKind::User {
            UserId::parse(&self.sub).map_err(|_| "sub is not a user id")?;
            kisum_access::CompanyId::parse(self.cid.as_deref().unwrap_or_default())
                .map_err(|_| "cid is not a company id")?;
            let mut act = self.act.as_ref();
            while let Some(a) = act {
                AgentId::parse(&a.sub).map_err(|_| "act.sub is not an agent id")?;
                act = a.act.as_deref();
            }
        }
        Ok(kind)
    }

    pub(crate) fn check_for_signing(&self) -> Result<TokenKind, TokenError> {
        self.kind().map_err(|e| TokenError::Claims(e.to_owned()))
    }
}

/// Claims whose token passed every check. Only [`Verifier`](crate::Verifier) makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    claims: Claims,
    kind: TokenKind,
}

impl VerifiedClaims {
    pub(crate) fn new(claims: Claims, kind: TokenKind) -> VerifiedClaims {
        VerifiedClaims { claims, kind }
    }

    /// The claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// User or service token.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// Whose access a user token carries: the current actor — the outermost `act.sub` (RFC 8693 §4.1;
    /// nested `act` objects name prior actors) — when `act` is present, so that access is evaluated for
    /// the actor through its delegations and never exceeds them; else the subject. `None` for service
    /// tokens.
    pub fn principal(&self) -> Option<Principal> {
        if self.kind != TokenKind::User {
            return None;
        }
        match &self.claims.act {
            Some(act) => AgentId::parse(&act.sub).ok().map(Principal::Agent),
            None => UserId::parse(&self.claims.sub).ok().map(Principal::User),
        }
    }

    /// The company of a user token.
    pub fn company(&self) -> Option<&str> {
        self.claims.cid.as_deref()
    }

    /// The scope patterns of a service token.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.claims.scope.as_deref().unwrap_or_default().split_ascii_whitespace()
    }

    /// Whether a service token's scopes match permission `key` (patterns `*`, `m:*`, `m:r:*` or the key
    /// itself, as everywhere in Kisum). Always `false` for user tokens, whose access comes from the
    /// company's model instead.
    pub fn scope_allows(&self, key: &str) -> bool {
        self.kind == TokenKind::Service && self.scopes().any(|pattern| pattern_matches(pattern, key))
    }
}

/// Whether a Kisum pattern matches a permission key: `*`, a whole-segment prefix ending in `:*`, or the
/// key itself. Nothing else is a pattern.
fn pattern_matches(pattern: &str, key: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) if prefix.ends_with(':') && !prefix.contains('*') && prefix.matches(':').count() <= 2 => {
            key.starts_with(prefix)
        }
        Some(_) => false,
        None => pattern == key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_match_like_every_kisum_pattern() {
        for (pattern, key, matches) in [
            ("*", "finance:invoice:read", true),
            ("finance:*", "finance:invoice:read", true),
            ("finance:invoice:*", "finance:invoice:read", true),
            ("finance:invoice:read", "finance:invoice:read", true),
            ("finance:*", "financex:invoice:read", false),
            ("fin*", "finance:invoice:read", false),
            ("finance:*:read", "finance:invoice:read", false),
            ("finance:invoice:read:*", "finance:invoice:read", false),
            ("finance:invoice", "finance:invoice:read", false),
        ] {
            assert_eq!(pattern_matches(pattern, key), matches, "{pattern} {key}");
        }
        let service: Claims = serde_json::from_value(serde_json::json!({
            "iss": "i", "sub": "billing", "aud": "finance", "exp": 100, "iat": 50, "jti": "j",
            "client_id": "billing", "scope": "finance:invoice:* core:company:read" }))
        .unwrap();
        let verified = VerifiedClaims::new(service.clone(), service.kind().unwrap());
        assert!(verified.scope_allows("finance:invoice:approve"));
        assert!(verified.scope_allows("core:company:read"));
        assert!(!verified.scope_allows("core:company:update"));
    }
}
