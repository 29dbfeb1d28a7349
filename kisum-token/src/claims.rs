//! Access-token claims (RFC 9068, with RFC 8693 `act`) and the verified form a service acts on.

use kisum_access::{Acting, AgentId, CompanyId, Principal, ServiceId, UserId};
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

/// Who a token speaks for, parsed from its claims once, when it is verified (or signed): holding a
/// `Caller` from [`VerifiedClaims::caller`] means every id in it was valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A user token: a user in a company session, or an agent acting for one (RFC 8693 `act`).
    #[non_exhaustive]
    User {
        /// Whose access the token carries: the current actor — the outermost `act.sub` (RFC 8693 §4.1;
        /// nested `act` objects name prior actors) — when `act` is present, so that access is evaluated
        /// for the actor through its delegations and never exceeds them; else the subject.
        principal: Principal,
        /// The user the token was issued for (`sub`).
        subject: UserId,
        /// The company the token is for (`cid`).
        company: CompanyId,
        /// The session (`sid`).
        sid: String,
        /// The principal's access version when the token was issued (`ver`).
        ver: u64,
        /// With `act`: the agents acting for the subject, whose access is what the subject delegated to
        /// each of them (DESIGN.md §5); `None` for a user acting for itself.
        acting: Option<Acting>,
    },
    /// A service token, issued to a registered service by client credentials.
    #[non_exhaustive]
    Service {
        /// The service (`client_id`).
        client: ServiceId,
        /// The permission patterns granted to the service (`scope`, split on whitespace).
        scopes: Vec<String>,
    },
}

impl Caller {
    /// User or service token.
    pub fn kind(&self) -> TokenKind {
        match self {
            Caller::User { .. } => TokenKind::User,
            Caller::Service { .. } => TokenKind::Service,
        }
    }

    /// The principal of a user token (see [`Caller::User`]); `None` only for a service token.
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::User { principal, .. } => Some(principal),
            Caller::Service { .. } => None,
        }
    }

    /// The agents acting for the subject of a user token with `act`; `None` otherwise.
    pub fn acting(&self) -> Option<&Acting> {
        match self {
            Caller::User { acting, .. } => acting.as_ref(),
            Caller::Service { .. } => None,
        }
    }

    /// The company of a user token; `None` only for a service token.
    pub fn company(&self) -> Option<&CompanyId> {
        match self {
            Caller::User { company, .. } => Some(company),
            Caller::Service { .. } => None,
        }
    }

    /// The service of a service token; `None` only for a user token.
    pub fn client(&self) -> Option<&ServiceId> {
        match self {
            Caller::Service { client, .. } => Some(client),
            Caller::User { .. } => None,
        }
    }

    /// The scope patterns of a service token; none for a user token.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        let scopes: &[String] = match self {
            Caller::Service { scopes, .. } => scopes,
            Caller::User { .. } => &[],
        };
        scopes.iter().map(String::as_str)
    }
}

/// An actor of `act.sub`: `agent:ID` (API.md §2).
fn actor(sub: &str) -> Result<AgentId, &'static str> {
    sub.strip_prefix("agent:").and_then(|id| AgentId::parse(id).ok()).ok_or("act.sub is not `agent:` and an agent id")
}

impl Claims {
    /// Checks the shape rules every token obeys, whether being signed or verified: a user token has
    /// `cid`, `sid` and `ver` and no service claims; a service token has `client_id` and `scope` and no
    /// user claims; `0 < exp − iat ≤ 15 min`; `act` at most 3 deep; a user token's subject, company and
    /// actors, and a service token's client, are valid ids; `act.sub` is `agent:ID`; a service token's `sub` is
    /// `service:` and its `client_id`.
    pub fn kind(&self) -> Result<TokenKind, &'static str> {
        self.caller().map(|caller| caller.kind())
    }

    /// [`Claims::kind`], keeping what it parsed.
    pub(crate) fn caller(&self) -> Result<Caller, &'static str> {
        match (&self.cid, &self.sid, self.ver, &self.client_id, &self.scope) {
            (Some(cid), Some(sid), Some(ver), None, None) => {
                self.check_lifetime_and_act()?;
                let subject = UserId::parse(&self.sub).map_err(|_| "sub is not a user id")?;
                let company = CompanyId::parse(cid).map_err(|_| "cid is not a company id")?;
                let acting = match &self.act {
                    Some(act) => {
                        // A chain with a malformed link is refused whole.
                        let mut acting = Acting::new(subject.clone(), actor(&act.sub)?);
                        let mut prior = act.act.as_deref();
                        while let Some(act) = prior {
                            acting.prior.push(actor(&act.sub)?);
                            prior = act.act.as_deref();
                        }
                        Some(acting)
                    }
                    None => None,
                };
                let principal = match &acting {
                    Some(acting) => acting.principal(),
                    None => Principal::User(subject.clone()),
                };
                Ok(Caller::User { principal, subject, company, sid: sid.clone(), ver, acting })
            }
            (None, None, None, Some(client_id), Some(scope)) => {
                self.check_lifetime_and_act()?;
                let client = ServiceId::parse(client_id).map_err(|_| "client_id is not a client id")?;
                if self.sub.strip_prefix("service:") != Some(client_id.as_str()) {
                    return Err("a service token's sub is `service:` followed by its client_id");
                }
                let scopes = scope.split_ascii_whitespace().map(str::to_owned).collect();
                Ok(Caller::Service { client, scopes })
            }
            _ => Err("neither a user token (cid, sid, ver) nor a service token (client_id, scope)"),
        }
    }

    fn check_lifetime_and_act(&self) -> Result<(), &'static str> {
        let lifetime = self.exp.checked_sub(self.iat).ok_or("exp and iat out of range")?;
        if lifetime <= 0 || lifetime > MAX_LIFETIME_SECONDS {
            return Err("exp must be after iat and at most 15 minutes later");
        }
        if self.act.as_ref().is_some_and(|a| a.depth() > MAX_ACT_DEPTH) {
            return Err("act is nested more than 3 deep");
        }
        Ok(())
    }

    pub(crate) fn check_for_signing(&self) -> Result<TokenKind, TokenError> {
        self.kind().map_err(|e| TokenError::Claims(e.to_owned()))
    }
}

/// Claims whose token passed every check, with the caller parsed from them. Only
/// [`Verifier`](crate::Verifier) makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedClaims {
    claims: Claims,
    caller: Caller,
}

impl VerifiedClaims {
    /// Parses the caller out of `claims`, refusing them as [`Claims::kind`] does.
    pub(crate) fn new(claims: Claims) -> Result<VerifiedClaims, &'static str> {
        let caller = claims.caller()?;
        Ok(VerifiedClaims { claims, caller })
    }

    /// The raw claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }

    /// Who the token speaks for, with every id parsed.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// User or service token.
    pub fn kind(&self) -> TokenKind {
        self.caller.kind()
    }

    /// Whose access a user token carries: the current actor — the outermost `act.sub` (RFC 8693 §4.1) —
    /// when `act` is present, else the subject (see [`Caller::User`]). Parsed at verification, so `None`
    /// means a service token and nothing else.
    pub fn principal(&self) -> Option<&Principal> {
        self.caller.principal()
    }

    /// The company of a user token (`cid`), parsed at verification; `None` only for a service token.
    pub fn company(&self) -> Option<&CompanyId> {
        self.caller.company()
    }

    /// The service of a service token (`client_id`), parsed at verification; `None` only for a user
    /// token.
    pub fn client(&self) -> Option<&ServiceId> {
        self.caller.client()
    }

    /// The scope patterns of a service token; none for a user token.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.caller.scopes()
    }

    /// Whether a service token's scopes match permission `key` (patterns `*`, `m:*`, `m:r:*` or the key
    /// itself, as everywhere in Kisum). Always `false` for user tokens, whose access comes from the
    /// company's model instead.
    pub fn scope_allows(&self, key: &str) -> bool {
        self.scopes().any(|pattern| pattern_matches(pattern, key))
    }
}

/// Whether a scope matches a permission key under the one pattern grammar of Kisum (a scope that is not
/// a pattern matches nothing).
fn pattern_matches(pattern: &str, key: &str) -> bool {
    kisum_access::Pattern::parse(pattern).is_ok_and(|p| p.matches(key))
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
            "iss": "i", "sub": "service:billing", "aud": "finance", "exp": 100, "iat": 50, "jti": "j",
            "client_id": "billing", "scope": "finance:invoice:* core:company:read" }))
        .unwrap();
        let verified = VerifiedClaims::new(service).unwrap();
        assert!(verified.scope_allows("finance:invoice:approve"));
        assert!(verified.scope_allows("core:company:read"));
        assert!(!verified.scope_allows("core:company:update"));
    }
}
