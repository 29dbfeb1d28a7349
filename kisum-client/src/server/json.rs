//! Strict JSON request bodies (API.md §1): over 64 KiB is `PAYLOAD_TOO_LARGE`; a body that is not JSON,
//! not of the expected shape, or has an unknown field is `VALIDATION_FAILED` with the place it failed.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, Request};
use axum::http::header;
use kisum_errors::ErrorCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The largest request body a server reads: 64 KiB.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON request body of type `T` (whose serde form should deny unknown fields).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
            let mime = v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        });
        if !json {
            return Err(ApiError::invalid("", "the body must be JSON (`Content-Type: application/json`)"));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                ApiError::new(ErrorCode::PayloadTooLarge, format!("the body is larger than {MAX_BODY_BYTES} bytes"))
            }
            other => ApiError::invalid("", other.body_text()),
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: none at all (an empty body) is `None`; anything else is read as [`ApiJson`]
/// reads it.
impl<T: DeserializeOwned, S: Send + Sync> axum::extract::OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let declared_empty =
            req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|v| v.trim() == "0");
        let no_body = [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::TRANSFER_ENCODING]
            .iter()
            .all(|h| !req.headers().contains_key(h));
        if declared_empty || no_body {
            return Ok(None);
        }
        <ApiJson<T> as FromRequest<S>>::from_request(req, state).await.map(Some)
    }
}

/// Parses a JSON body, naming the place where it stops making sense. Every request body of the API is a
/// JSON object, and so is every object nested in it: serde would also read a struct from an array of its
/// fields, which no client means ([`super::strict`]).
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::invalid("", "the body must be a JSON object"));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        let path = format!("line {} column {}", e.line(), e.column());
        ApiError::invalid("", format!("{e} ({path})"))
    })?;
    // A struct is read only from an object, at every depth (serde would take an array of its fields).
    super::strict::from_value(value).map_err(|e| ApiError::invalid(&e.path, e.message))
}

/// Query parameters of type `T` (whose serde form should deny unknown fields): a query that does not fit
/// is `422 VALIDATION_FAILED`, not axum's plain-text 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(e) => Err(ApiError::invalid("?", e.body_text())),
        }
    }
}

/// Path parameters of type `T`: a path that does not decode names nothing (`404 NOT_FOUND`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(e) => Err(ApiError::not_found(e.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        id: String,
    }

    #[test]
    fn only_objects_of_the_expected_shape() {
        assert_eq!(parse::<Body>(br#" {"id":"a"}"#).unwrap(), Body { id: "a".into() });
        for bad in [&br#"["a"]"#[..], b"null", b"", br#"{"id":"a","x":1}"#, br#"{"id":7}"#, b"{"] {
            let e = parse::<Body>(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::ValidationFailed, "{}", String::from_utf8_lossy(bad));
        }
    }
}
