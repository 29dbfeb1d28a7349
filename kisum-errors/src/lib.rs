#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The media type of every error body (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable UPPER_SNAKE spelling used on the wire.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownCode;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownCode { kind: stringify!($name), text: s.to_owned() }),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

string_enum! {
    /// A stable error code (DESIGN.md §6). Each maps to exactly one HTTP status.
    pub enum ErrorCode {
        /// No credentials were presented.
        Unauthenticated = "UNAUTHENTICATED",
        /// The token was valid once but has expired.
        TokenExpired = "TOKEN_EXPIRED",
        /// The token is malformed, forged, not yet valid or not meant for this service.
        TokenInvalid = "TOKEN_INVALID",
        /// The caller is known but may not do this.
        Forbidden = "FORBIDDEN",
        /// The company has not bought the module or feature this needs.
        NotEntitled = "NOT_ENTITLED",
        /// The caller's membership is not active.
        MembershipInactive = "MEMBERSHIP_INACTIVE",
        /// A commercial limit (seats, requests, ...) would be exceeded.
        LimitExceeded = "LIMIT_EXCEEDED",
        /// Nothing is there, or the caller may not learn that something is.
        NotFound = "NOT_FOUND",
        /// The write conflicts with the current state.
        Conflict = "CONFLICT",
        /// The input breaks a rule of the model.
        ValidationFailed = "VALIDATION_FAILED",
        /// Too many requests.
        RateLimited = "RATE_LIMITED",
        /// A bug or an unexpected failure on our side.
        Internal = "INTERNAL",
        /// A service this one depends on cannot be reached.
        UpstreamUnavailable = "UPSTREAM_UNAVAILABLE",
        /// A permission key the catalog does not declare: a programming error, not a deny.
        UnknownPermission = "UNKNOWN_PERMISSION",
        /// A change-feed cursor older than the log's retention: reload everything, then follow again.
        ResyncRequired = "RESYNC_REQUIRED",
        /// The request body is larger than the server accepts.
        PayloadTooLarge = "PAYLOAD_TOO_LARGE",
    }
}

string_enum! {
    /// Why an access decision denied (DESIGN.md §4), in precedence order: when several apply, the first
    /// one in this order is the one reported.
    pub enum DenyReason {
        /// The company does not exist.
        UnknownCompany = "UNKNOWN_COMPANY",
        /// The user has no membership in the company, or the agent is not registered to it.
        NotAMember = "NOT_A_MEMBER",
        /// The membership is invited, suspended or removed.
        MembershipInactive = "MEMBERSHIP_INACTIVE",
        /// The instant is at or after the membership's expiry.
        MembershipExpired = "MEMBERSHIP_EXPIRED",
        /// The resource belongs to another company.
        CrossTenant = "CROSS_TENANT",
        /// The permission's module is not entitled to the company.
        ModuleNotEntitled = "MODULE_NOT_ENTITLED",
        /// The permission's feature is not entitled to the company.
        FeatureNotEntitled = "FEATURE_NOT_ENTITLED",
        /// A restriction of the membership matches the permission.
        Restricted = "RESTRICTED",
        /// No role or valid delegation grants the permission.
        PermissionNotGranted = "PERMISSION_NOT_GRANTED",
    }
}

/// A string that names no [`ErrorCode`] or [`DenyReason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a known {kind}")]
pub struct UnknownCode {
    kind: &'static str,
    text: String,
}

impl ErrorCode {
    /// The HTTP status this code is always answered with.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::Unauthenticated | ErrorCode::TokenExpired | ErrorCode::TokenInvalid => 401,
            ErrorCode::Forbidden
            | ErrorCode::NotEntitled
            | ErrorCode::MembershipInactive
            | ErrorCode::LimitExceeded => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::Conflict => 409,
            ErrorCode::ResyncRequired => 410,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::ValidationFailed => 422,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal | ErrorCode::UnknownPermission => 500,
            ErrorCode::UpstreamUnavailable => 503,
        }
    }

    /// The status as an [`http::StatusCode`] (feature `http`).
    #[cfg(feature = "http")]
    pub fn http_status(self) -> http::StatusCode {
        // INVARIANT: every status returned by `status()` is a valid HTTP status code.
        http::StatusCode::from_u16(self.status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// A short, human-readable summary that does not change from occurrence to occurrence.
    pub const fn title(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "Authentication required",
            ErrorCode::TokenExpired => "Token expired",
            ErrorCode::TokenInvalid => "Token invalid",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::NotEntitled => "Not entitled",
            ErrorCode::MembershipInactive => "Membership inactive",
            ErrorCode::LimitExceeded => "Limit exceeded",
            ErrorCode::NotFound => "Not found",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::ValidationFailed => "Validation failed",
            ErrorCode::RateLimited => "Rate limited",
            ErrorCode::Internal => "Internal error",
            ErrorCode::UpstreamUnavailable => "Upstream unavailable",
            ErrorCode::UnknownPermission => "Unknown permission",
            ErrorCode::ResyncRequired => "Resync required",
            ErrorCode::PayloadTooLarge => "Payload too large",
        }
    }

    /// The problem `type` URI that identifies this code.
    pub const fn type_uri(self) -> &'static str {
        match self {
            ErrorCode::Unauthenticated => "https://kisum.dev/errors/unauthenticated",
            ErrorCode::TokenExpired => "https://kisum.dev/errors/token-expired",
            ErrorCode::TokenInvalid => "https://kisum.dev/errors/token-invalid",
            ErrorCode::Forbidden => "https://kisum.dev/errors/forbidden",
            ErrorCode::NotEntitled => "https://kisum.dev/errors/not-entitled",
            ErrorCode::MembershipInactive => "https://kisum.dev/errors/membership-inactive",
            ErrorCode::LimitExceeded => "https://kisum.dev/errors/limit-exceeded",
            ErrorCode::NotFound => "https://kisum.dev/errors/not-found",
            ErrorCode::Conflict => "https://kisum.dev/errors/conflict",
            ErrorCode::ValidationFailed => "https://kisum.dev/errors/validation-failed",
            ErrorCode::RateLimited => "https://kisum.dev/errors/rate-limited",
            ErrorCode::Internal => "https://kisum.dev/errors/internal",
            ErrorCode::UpstreamUnavailable => "https://kisum.dev/errors/upstream-unavailable",
            ErrorCode::UnknownPermission => "https://kisum.dev/errors/unknown-permission",
            ErrorCode::ResyncRequired => "https://kisum.dev/errors/resync-required",
            ErrorCode::PayloadTooLarge => "https://kisum.dev/errors/payload-too-large",
        }
    }

    /// Whether repeating the same request later may succeed without any change by the caller.
    pub const fn retryable(self) -> bool {
        matches!(self, ErrorCode::RateLimited | ErrorCode::UpstreamUnavailable)
    }
}

impl DenyReason {
    /// The error a deny becomes over HTTP (DESIGN.md §6).
    pub const fn error_code(self) -> ErrorCode {
        match self {
            DenyReason::ModuleNotEntitled | DenyReason::FeatureNotEntitled => ErrorCode::NotEntitled,
            DenyReason::MembershipInactive | DenyReason::MembershipExpired => ErrorCode::MembershipInactive,
            DenyReason::UnknownCompany | DenyReason::NotAMember | DenyReason::CrossTenant => ErrorCode::NotFound,
            DenyReason::Restricted | DenyReason::PermissionNotGranted => ErrorCode::Forbidden,
        }
    }

    /// Whether the caller may learn this reason. The three reasons answered as `NOT_FOUND` are hidden,
    /// so that nobody outside a company learns whether it or its resources exist.
    pub const fn is_disclosed(self) -> bool {
        !matches!(self.error_code(), ErrorCode::NotFound)
    }
}

/// One problem with one input field: where it is, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldError {
    /// A JSON-pointer-like path to the offending item, such as `/companies/0/subscriptions/1/ends_at`.
    pub path: String,
    /// What is wrong, lowercase, without a final period.
    pub message: String,
}

impl FieldError {
    /// A field error at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { path: path.into(), message: message.into() }
    }
}

/// The first three field errors on one line, and how many more there are: for error messages that
/// carry a whole list.
pub fn summarize(errors: &[FieldError]) -> String {
    let mut text = errors.iter().take(3).map(ToString::to_string).collect::<Vec<_>>().join("; ");
    if errors.len() > 3 {
        text.push_str(&format!("; and {} more", errors.len() - 3));
    }
    text
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// An RFC 9457 problem details body with Kisum's extension members.
///
/// Build one from an error with [`Problem::from_error`], from a deny with [`Problem::from_deny`], or from a
/// code with [`Problem::new`]; send it with [`Problem::to_json`] under the [`PROBLEM_JSON`] media type;
/// read a peer's with [`Problem::from_json`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// A URI identifying the problem type; always [`ErrorCode::type_uri`] of `code`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status; always [`ErrorCode::status`] of `code`.
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// A URI identifying this occurrence, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The stable error code.
    pub code: ErrorCode,
    /// The request this answers, for correlation in logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The access deny reason, where the caller may know it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<DenyReason>,
    /// The missing module, feature or permission.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<String>,
    /// Field errors, one per problem found in the input.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Whether the same request may succeed later without change.
    pub retryable: bool,
}

impl Problem {
    /// A problem for `code` with the given detail; everything else derives from the code.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Problem {
            type_uri: code.type_uri().to_owned(),
            title: code.title().to_owned(),
            status: code.status(),
            detail: detail.into(),
            instance: None,
            code,
            request_id: None,
            reason: None,
            required: None,
            errors: Vec::new(),
            retryable: code.retryable(),
        }
    }

    /// The problem an error maps to, through [`KisumError`].
    pub fn from_error<E: KisumError + ?Sized>(error: &E) -> Self {
        let mut problem = Problem::new(error.code(), error.to_string());
        problem.errors = error.field_errors();
        problem.required = error.required();
        problem
    }

    /// The problem an access deny becomes over HTTP (DESIGN.md §6): the reason is kept only where the
    /// caller may know it, and `required` only then too.
    pub fn from_deny(reason: DenyReason, required: Option<String>) -> Self {
        let code = reason.error_code();
        if reason.is_disclosed() {
            let mut problem = Problem::new(code, deny_detail(reason));
            problem.reason = Some(reason);
            problem.required = required;
            problem
        } else {
            Problem::new(code, "the requested resource does not exist")
        }
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Sets the occurrence URI.
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// Sets what is required.
    pub fn with_required(mut self, required: impl Into<String>) -> Self {
        self.required = Some(required.into());
        self
    }

    /// Adds a field error.
    pub fn with_field_error(mut self, error: FieldError) -> Self {
        self.errors.push(error);
        self
    }

    /// The body as compact JSON.
    pub fn to_json(&self) -> String {
        // INVARIANT: every field is a string, number, bool or list of string pairs, so serializing
        // cannot fail; the fallback keeps the function total anyway.
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(r#"{{"type":"about:blank","status":500,"code":"INTERNAL","detail":"{}"}}"#, self.code)
        })
    }

    /// The body as indented JSON, for files and people.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| self.to_json())
    }

    /// Parses a problem body that a peer service sent. Unknown extension members are ignored (RFC 9457
    /// §3.2); `code` is required; `status` must be the code's status; `title` and `type` default from the
    /// code when absent.
    pub fn from_json(body: &[u8]) -> Result<Problem, ProblemParseError> {
        let raw: RawProblem = serde_json::from_slice(body).map_err(|e| ProblemParseError::Malformed(e.to_string()))?;
        let code = raw.code.ok_or(ProblemParseError::MissingMember("code"))?;
        let status = raw.status.ok_or(ProblemParseError::MissingMember("status"))?;
        if status != code.status() {
            return Err(ProblemParseError::StatusMismatch { code, status });
        }
        Ok(Problem {
            type_uri: raw.type_uri.unwrap_or_else(|| code.type_uri().to_owned()),
            title: raw.title.unwrap_or_else(|| code.title().to_owned()),
            status,
            detail: raw.detail.unwrap_or_default(),
            instance: raw.instance,
            code,
            request_id: raw.request_id,
            reason: raw.reason,
            required: raw.required,
            errors: raw.errors.unwrap_or_default(),
            retryable: raw.retryable.unwrap_or_else(|| code.retryable()),
        })
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

fn deny_detail(reason: DenyReason) -> &'static str {
    match reason {
        DenyReason::UnknownCompany | DenyReason::NotAMember | DenyReason::CrossTenant => {
            "the requested resource does not exist"
        }
        DenyReason::MembershipInactive => "the membership is not active",
        DenyReason::MembershipExpired => "the membership has expired",
        DenyReason::ModuleNotEntitled => "the company is not entitled to the module",
        DenyReason::FeatureNotEntitled => "the company is not entitled to the feature",
        DenyReason::Restricted => "the permission is restricted for this membership",
        DenyReason::PermissionNotGranted => "no role or delegation grants the permission",
    }
}

#[derive(Deserialize)]
struct RawProblem {
    #[serde(rename = "type")]
    type_uri: Option<String>,
    title: Option<String>,
    status: Option<u16>,
    detail: Option<String>,
    instance: Option<String>,
    code: Option<ErrorCode>,
    request_id: Option<String>,
    reason: Option<DenyReason>,
    required: Option<String>,
    errors: Option<Vec<FieldError>>,
    retryable: Option<bool>,
}

/// Why a problem body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemParseError {
    /// The body is not JSON, or a member has the wrong type or an unknown code.
    #[error("malformed problem body: {0}")]
    Malformed(String),
    /// A member Kisum requires is absent.
    #[error("problem body lacks `{0}`")]
    MissingMember(&'static str),
    /// The status does not match the code.
    #[error("problem status {status} does not match code `{code}` (expected {})", code.status())]
    StatusMismatch {
        /// The code the body names.
        code: ErrorCode,
        /// The status the body names.
        status: u16,
    },
}

impl KisumError for ProblemParseError {
    fn code(&self) -> ErrorCode {
        ErrorCode::UpstreamUnavailable
    }
}

/// Implemented by each crate's error enum: maps every error to exactly one stable [`ErrorCode`], so a
/// service turns any error into a problem body with `Problem::from_error(&err)`.
pub trait KisumError: std::error::Error {
    /// The stable code of this error.
    fn code(&self) -> ErrorCode;

    /// Field errors, for `VALIDATION_FAILED`-like errors. Defaults to none.
    fn field_errors(&self) -> Vec<FieldError> {
        Vec::new()
    }

    /// The missing module, feature or permission, where one applies. Defaults to none.
    fn required(&self) -> Option<String> {
        None
    }

    /// Shorthand for [`Problem::from_error`].
    fn to_problem(&self) -> Problem {
        Problem::from_error(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_string() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(*code));
        }
        for reason in DenyReason::ALL {
            assert_eq!(reason.as_str().parse::<DenyReason>(), Ok(*reason));
        }
        assert!("NOPE".parse::<ErrorCode>().is_err());
    }

    #[test]
    fn statuses_follow_the_contract() {
        let expected = [
            ("UNAUTHENTICATED", 401),
            ("TOKEN_EXPIRED", 401),
            ("TOKEN_INVALID", 401),
            ("FORBIDDEN", 403),
            ("NOT_ENTITLED", 403),
            ("MEMBERSHIP_INACTIVE", 403),
            ("LIMIT_EXCEEDED", 403),
            ("NOT_FOUND", 404),
            ("CONFLICT", 409),
            ("VALIDATION_FAILED", 422),
            ("RATE_LIMITED", 429),
            ("INTERNAL", 500),
            ("UPSTREAM_UNAVAILABLE", 503),
            ("UNKNOWN_PERMISSION", 500),
            ("RESYNC_REQUIRED", 410),
            ("PAYLOAD_TOO_LARGE", 413),
        ];
        assert_eq!(expected.len(), ErrorCode::ALL.len());
        for (text, status) in expected {
            assert_eq!(text.parse::<ErrorCode>().unwrap().status(), status, "{text}");
        }
    }

    #[test]
    fn denies_map_to_http_errors_and_hide_existence() {
        use DenyReason::*;
        let cases = [
            (UnknownCompany, ErrorCode::NotFound, false),
            (NotAMember, ErrorCode::NotFound, false),
            (CrossTenant, ErrorCode::NotFound, false),
            (MembershipInactive, ErrorCode::MembershipInactive, true),
            (MembershipExpired, ErrorCode::MembershipInactive, true),
            (ModuleNotEntitled, ErrorCode::NotEntitled, true),
            (FeatureNotEntitled, ErrorCode::NotEntitled, true),
            (Restricted, ErrorCode::Forbidden, true),
            (PermissionNotGranted, ErrorCode::Forbidden, true),
        ];
        for (reason, code, disclosed) in cases {
            let problem = Problem::from_deny(reason, Some("finance".into()));
            assert_eq!(problem.code, code);
            assert_eq!(problem.reason.is_some(), disclosed, "{reason}");
            assert_eq!(problem.required.is_some(), disclosed, "{reason}");
        }
        // The three hidden reasons give byte-identical bodies: nothing tells them apart.
        let bodies: Vec<String> = [UnknownCompany, NotAMember, CrossTenant]
            .into_iter()
            .map(|r| Problem::from_deny(r, None).to_json())
            .collect();
        assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    }

    #[test]
    fn a_full_problem_round_trips() {
        let problem = Problem::new(ErrorCode::ValidationFailed, "the world has 2 problems")
            .with_request_id("req-1")
            .with_instance("/worlds/1")
            .with_required("finance")
            .with_field_error(FieldError::new("/companies/0/id", "bad id `A`"));
        let parsed = Problem::from_json(problem.to_json().as_bytes()).unwrap();
        assert_eq!(parsed, problem);
    }

    #[test]
    fn peer_bodies_are_read_leniently_but_checked() {
        let minimal = br#"{"status":404,"code":"NOT_FOUND","x-extension":1}"#;
        let parsed = Problem::from_json(minimal).unwrap();
        assert_eq!(parsed.code, ErrorCode::NotFound);
        assert_eq!(parsed.title, "Not found");

        assert!(matches!(Problem::from_json(b"{"), Err(ProblemParseError::Malformed(_))));
        assert_eq!(Problem::from_json(br#"{"status":404}"#), Err(ProblemParseError::MissingMember("code")));
        assert!(matches!(
            Problem::from_json(br#"{"status":500,"code":"NOT_FOUND"}"#),
            Err(ProblemParseError::StatusMismatch { .. })
        ));
        assert!(matches!(Problem::from_json(br#"{"status":404,"code":"WHAT"}"#), Err(ProblemParseError::Malformed(_))));
        assert!(matches!(
            Problem::from_json(br#"{"status":"404","code":"NOT_FOUND"}"#),
            Err(ProblemParseError::Malformed(_))
        ));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("seat limit reached")]
    struct Seats;
    impl KisumError for Seats {
        fn code(&self) -> ErrorCode {
            ErrorCode::LimitExceeded
        }
        fn required(&self) -> Option<String> {
            Some("core.seats".into())
        }
    }

    #[test]
    fn crate_errors_become_problems_in_one_line() {
        let problem = Seats.to_problem();
        assert_eq!(problem.status, 403);
        assert_eq!(problem.detail, "seat limit reached");
        assert_eq!(problem.required.as_deref(), Some("core.seats"));
    }

    /// Golden files: one per code under `tests/golden/`, compared byte for byte. Run with
    /// `KISUM_BLESS=1` to rewrite them after an intended change of the wire format.
    #[test]
    fn golden_problem_bodies() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
        let bless = std::env::var_os("KISUM_BLESS").is_some();
        for code in ErrorCode::ALL {
            let mut problem = Problem::new(*code, format!("example of {code}")).with_request_id("req-0001");
            match code {
                ErrorCode::NotEntitled => {
                    problem.reason = Some(DenyReason::ModuleNotEntitled);
                    problem.required = Some("finance".into());
                }
                ErrorCode::Forbidden => problem.reason = Some(DenyReason::PermissionNotGranted),
                ErrorCode::MembershipInactive => problem.reason = Some(DenyReason::MembershipExpired),
                ErrorCode::ValidationFailed => {
                    problem.errors.push(FieldError::new("/users/0/id", "`Bob` is not a valid id"));
                }
                ErrorCode::UnknownPermission => problem.required = Some("finance:invoice:explode".into()),
                _ => {}
            }
            let body = problem.to_json_pretty() + "\n";
            let path = dir.join(format!("{code}.json"));
            if bless {
                std::fs::write(&path, &body).unwrap();
            }
            let golden = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("missing golden file {}: {e}", path.display()));
            assert_eq!(body, golden, "golden mismatch for {code}");
            assert_eq!(Problem::from_json(golden.as_bytes()).unwrap(), problem);
        }
    }
}
