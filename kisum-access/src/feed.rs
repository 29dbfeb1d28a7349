//! The wire types of Auth's change feed (API.md §2, §5), one definition for Auth, which writes them, and
//! for every follower (`kisum-client`, the console), which read them. Golden files in
//! `tests/golden/feed/` pin their JSON.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// One event of the feed: a committed change, as `GET /v1/changes` sends it (the SSE `data:`, or an
/// element of the JSON array). Unknown fields are ignored, so that a newer Auth can add some.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FeedEvent {
    /// The change's sequence (the SSE `id`).
    pub seq: u64,
    /// The company written to (`null` for platform-wide changes: users, plans, keys).
    pub company: Option<String>,
    /// The principals whose decisions may have changed (`user:ID`, `agent:ID`).
    #[serde(default)]
    pub principals: Vec<String>,
    /// Their access version after the change (the sequence), for `access` events of a company.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// `access`, `session_revoked` or `keys`.
    pub kind: String,
    /// For `access`: every principal of the company may be affected (a subscription, an override, a
    /// role), not only `principals`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub company_wide: bool,
    /// For `session_revoked`: the session whose tokens are refused; `null` when every session of
    /// `principals` is (a user disabled, or its password changed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// For `session_revoked`: until when its tokens must be refused (when the last has expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// For `session_revoked` without `sid` after a password change: only tokens issued at or before this
    /// instant are refused (the user's later sign-ins are not). Absent: every token (a user disabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_through: Option<Timestamp>,
    /// The change's own kind (`put_membership`, `revoke_session`…), for logs.
    #[serde(default)]
    pub change: String,
    /// The instant the change was written at: a follower's lag is the time from it to the event's arrival.
    /// Absent from an Auth older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<Timestamp>,
}

impl FeedEvent {
    /// The kind of an event that may change decisions.
    pub const ACCESS: &'static str = "access";
    /// The kind of an event that revokes sessions.
    pub const SESSION_REVOKED: &'static str = "session_revoked";
    /// The kind of an event that changes the signing keys.
    pub const KEYS: &'static str = "keys";
}

/// Every revocation still in force, with the sequence it is current at (`GET /v1/revocations`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevocationList {
    /// Follow the feed from here (`?after=` or `Last-Event-ID`): every revocation committed later is in it.
    pub seq: u64,
    /// Sessions whose tokens are refused, each until its last token has expired.
    pub sessions: Vec<RevokedSession>,
}

/// One revoked session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokedSession {
    /// The session (`sid` in its tokens).
    pub sid: String,
    /// Its user.
    pub user: String,
    /// Until when its tokens are refused.
    pub until: Timestamp,
}
