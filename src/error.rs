//! The error model: what went wrong, independent of how it is written on the wire.
//!
//! [`ErrorCode`] names the failure (`unauthorized`, `too_many_items`, …) and knows its default
//! HTTP status and gRPC status; [`ApiError`] is one occurrence of it, with the optional detail
//! a dialect may show (field-level [`FieldError`]s, the `_idx` of the offending item, human
//! text). Item errors inside bulk responses live in [`crate::bulk`].
//!
//! The error model depends on nothing else in the crate (the dialects render it, the layers
//! produce it): [`GrpcStatus`] and [`BoxError`] live here too.
//!
//! # Codes
//!
//! The codes are generated from one table in the crate's source (`src/error/codes.rs`): a
//! code's name, HTTP status, gRPC status and coded-dialect number are one row there, and a
//! test keeps the table below equal to it. [`ErrorCode::ALL`] lists them.
//!
//! | code | HTTP | gRPC | coded dialect |
//! | --- | --- | --- | --- |
//! | `unauthorized` | 401 | 16 `UNAUTHENTICATED` | 4 |
//! | `forbidden` | 403 | 7 `PERMISSION_DENIED` | 3 |
//! | `too_many_items` | 400 | 3 `INVALID_ARGUMENT` | 6 |
//! | `server_error` | 500 | 13 `INTERNAL` | 1 |
//! | `not_found` | 404 | 12 `UNIMPLEMENTED` (no such route) | 10 |
//! | `method_not_allowed` | 405 | 12 `UNIMPLEMENTED` | 8 |
//! | `not_acceptable` | 406 | 3 `INVALID_ARGUMENT` | 8 |
//! | `request_timeout` | 408 | 4 `DEADLINE_EXCEEDED` | 2 |
//! | `payload_too_large` | 413 | 8 `RESOURCE_EXHAUSTED` | 8 |
//! | `unsupported_media_type` | 415 | 3 `INVALID_ARGUMENT` | 8 |
//! | `invalid_json` | 400 | 3 `INVALID_ARGUMENT` | 6 |
//! | `validation_errors` | 400 (or 422 as produced) | 3 `INVALID_ARGUMENT` | 6 |
//! | `too_many_requests` | 429 | 8 `RESOURCE_EXHAUSTED` | 2 |
//! | `service_unavailable` | 503 | 14 `UNAVAILABLE` | 2 |
//! | `object_not_found` | 404 | 5 `NOT_FOUND` | 10 |
//! | `model_not_provided` | 400 | 3 `INVALID_ARGUMENT` | 5 |
//! | `model_not_valid` | 400 | 3 `INVALID_ARGUMENT` | 6 |
//! | `value_not_provided` | 400 | 3 `INVALID_ARGUMENT` | 7 |
//! | `value_not_valid` | 400 | 3 `INVALID_ARGUMENT` | 8 |
//! | `record_not_provided` | 400 | 3 `INVALID_ARGUMENT` | 9 |
//! | `record_not_found` | 404 | 5 `NOT_FOUND` | 10 |
//! | `record_not_active` | 409 | 9 `FAILED_PRECONDITION` | 11 |
//! | `record_not_valid` | 422 | 3 `INVALID_ARGUMENT` | 12 |
//!
//! Any other status maps to the snake_case of its canonical reason phrase
//! ([`ErrorCode::from_status`]: 409 → `conflict`, 422 → `unprocessable_entity`), and a service's
//! own codes are [`ErrorCode::custom`]. Their gRPC status follows the status (AIP-193 mapping:
//! 400 → 3, 401 → 16, 403 → 7, 404 → 5, 409 → 10, 412 → 9, 429 → 8, 501 → 12, 503 → 14,
//! 504 → 4, other 4xx → 3, other 5xx → 13).
//!
//! `record_not_active` is 409 Conflict: the record exists, but its state forbids the action.
//! `record_not_valid` is 422: the record is well-formed but breaks a rule of the service.

mod codes;
mod grpc_status;

use std::{borrow::Cow, fmt};

use http::StatusCode;
use serde::{ser::SerializeMap, Serialize, Serializer};

pub(crate) use self::codes::{for_each_code, CodedNumber};
pub use self::{
    codes::{CustomCode, ErrorCode},
    grpc_status::GrpcStatus,
};

/// A type-erased error, as tower's middleware and bodies produce them: what the layers accept
/// from an inner service or a body. The crate's one alias for it (also at
/// `normalize::BoxError`).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One field-level validation failure: `{"field": "email", "error": "must_be_unique"}`.
///
/// `field` is the attribute that failed, or `"object"` when the failure concerns the item as a
/// whole. An optional human-readable message is shown only by dialects with a place for text
/// (the coded dialect's `errors`, problem details' `detail`); it is never serialized here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    field: Cow<'static, str>,
    error: Cow<'static, str>,
    message: Option<String>,
}

impl FieldError {
    /// A failure of `field` with the validation code `error`.
    pub fn new(field: impl Into<Cow<'static, str>>, error: impl Into<Cow<'static, str>>) -> Self {
        FieldError {
            field: field.into(),
            error: error.into(),
            message: None,
        }
    }

    /// A failure of the item as a whole (`"field": "object"`).
    pub fn object(error: impl Into<Cow<'static, str>>) -> Self {
        FieldError::new("object", error)
    }

    /// Adds human-readable text, shown where the dialect has a place for it.
    #[must_use]
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// The failing attribute, or `"object"`.
    pub fn field(&self) -> &str {
        &self.field
    }

    /// The validation code.
    pub fn error(&self) -> &str {
        &self.error
    }

    /// The human-readable text, if any.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The text a dialect with room for prose shows: the message, or `field: error`.
    pub fn describe(&self) -> String {
        match &self.message {
            Some(message) => message.clone(),
            None => format!("{}: {}", self.field, self.error),
        }
    }
}

impl Serialize for FieldError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("field", &self.field)?;
        map.serialize_entry("error", &self.error)?;
        map.end()
    }
}

/// An error that fails a whole request, in any dialect.
///
/// Serializes as the bulk dialect's universal error: `{"error": "<code>"}`, plus `_idx` and
/// `validation_errors` when the error concerns one item of a bulk body.
///
/// ```
/// use tower_api_errors::{ApiError, ErrorCode};
///
/// let error = ApiError::new(ErrorCode::TooManyItems).with_detail("at most 5 items per request");
/// assert_eq!(error.status(), 400);
/// assert_eq!(serde_json::to_string(&error).unwrap(), r#"{"error":"too_many_items"}"#);
///
/// let response: http::Response<_> = ApiError::unauthorized().into();
/// assert_eq!(response.status(), 401);
/// assert_eq!(response.headers()["www-authenticate"], "Bearer");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    code: ErrorCode,
    status: StatusCode,
    index: Option<usize>,
    validation_errors: Vec<FieldError>,
    details: Vec<String>,
}

impl ApiError {
    /// An error with `code` and the code's default status.
    pub fn new(code: ErrorCode) -> Self {
        let status = code.status();
        ApiError {
            code,
            status,
            index: None,
            validation_errors: Vec::new(),
            details: Vec::new(),
        }
    }

    /// `unauthorized` (401).
    pub fn unauthorized() -> Self {
        ApiError::new(ErrorCode::Unauthorized)
    }

    /// `forbidden` (403).
    pub fn forbidden() -> Self {
        ApiError::new(ErrorCode::Forbidden)
    }

    /// `too_many_items` (400).
    pub fn too_many_items() -> Self {
        ApiError::new(ErrorCode::TooManyItems)
    }

    /// `server_error` (500).
    pub fn server_error() -> Self {
        ApiError::new(ErrorCode::ServerError)
    }

    /// The contract error for a bare error status (see [`ErrorCode::from_status`]), keeping
    /// the status itself.
    pub fn from_status(status: StatusCode) -> Self {
        ApiError::new(ErrorCode::from_status(status)).with_status(status)
    }

    /// Answers with `status` instead of the code's default (e.g. `validation_errors` as 422).
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// Adds human-readable text, shown only where the dialect has a place for it.
    ///
    /// Never put internals (panic messages, store errors, keys) here: it reaches the client.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.details.push(detail.into());
        self
    }

    /// Adds a field-level failure.
    #[must_use]
    pub fn with_field_error(mut self, error: FieldError) -> Self {
        self.validation_errors.push(error);
        self
    }

    /// Names the item of a bulk body the error is about (`_idx`).
    #[must_use]
    pub fn with_index(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }

    /// The code.
    pub fn code(&self) -> &ErrorCode {
        &self.code
    }

    /// The HTTP status the error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The gRPC status the error is answered with.
    pub fn grpc_status(&self) -> GrpcStatus {
        self.code.grpc_status()
    }

    /// The index of the bulk item the error is about, if any.
    pub fn index(&self) -> Option<usize> {
        self.index
    }

    /// The field-level failures.
    pub fn validation_errors(&self) -> &[FieldError] {
        &self.validation_errors
    }

    /// The human-readable details.
    pub fn details(&self) -> &[String] {
        &self.details
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        ApiError::new(code)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code, self.status.as_u16())?;
        if let Some(index) = self.index {
            write!(f, " at item {index}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl Serialize for ApiError {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("error", &self.code)?;
        if let Some(index) = self.index {
            map.serialize_entry("_idx", &index)?;
        }
        if self.code == ErrorCode::ValidationErrors {
            map.serialize_entry("validation_errors", &self.validation_errors)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_map_to_reason_phrases() {
        assert_eq!(
            ErrorCode::from_status(StatusCode::CONFLICT).as_str(),
            "conflict"
        );
        assert_eq!(
            ErrorCode::from_status(StatusCode::UNPROCESSABLE_ENTITY).as_str(),
            "unprocessable_entity"
        );
        assert_eq!(
            ErrorCode::from_status(StatusCode::IM_A_TEAPOT).as_str(),
            "im_a_teapot"
        );
        assert_eq!(
            ErrorCode::from_status(StatusCode::from_u16(599).unwrap()).as_str(),
            "server_error"
        );
        assert_eq!(
            ErrorCode::from_status(StatusCode::NOT_FOUND),
            ErrorCode::NotFound
        );
        assert_eq!(
            ErrorCode::from_status(StatusCode::GATEWAY_TIMEOUT).grpc_status(),
            GrpcStatus::DeadlineExceeded
        );
    }

    #[test]
    fn every_table_code_keeps_its_status() {
        let table = [
            (ErrorCode::Unauthorized, 401, 16),
            (ErrorCode::Forbidden, 403, 7),
            (ErrorCode::TooManyItems, 400, 3),
            (ErrorCode::ServerError, 500, 13),
            (ErrorCode::NotFound, 404, 12),
            (ErrorCode::MethodNotAllowed, 405, 12),
            (ErrorCode::NotAcceptable, 406, 3),
            (ErrorCode::RequestTimeout, 408, 4),
            (ErrorCode::PayloadTooLarge, 413, 8),
            (ErrorCode::UnsupportedMediaType, 415, 3),
            (ErrorCode::InvalidJson, 400, 3),
            (ErrorCode::ValidationErrors, 400, 3),
            (ErrorCode::TooManyRequests, 429, 8),
            (ErrorCode::ServiceUnavailable, 503, 14),
        ];
        for (code, status, grpc) in table {
            assert_eq!(code.status().as_u16(), status, "{code}");
            assert_eq!(code.grpc_status().code(), grpc, "{code}");
            assert_eq!(
                ErrorCode::from_status(code.status()).status(),
                code.status()
            );
        }
    }

    #[test]
    fn validation_errors_only_serialize_for_their_code() {
        let error = ApiError::new(ErrorCode::InvalidJson)
            .with_field_error(FieldError::new("email", "required"));
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            serde_json::json!({"error": "invalid_json"})
        );
        let error = ApiError::new(ErrorCode::ValidationErrors)
            .with_index(1)
            .with_field_error(FieldError::new("email", "required").with_message("hidden"));
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            serde_json::json!({"error": "validation_errors", "_idx": 1,
                "validation_errors": [{"field": "email", "error": "required"}]})
        );
    }
}
