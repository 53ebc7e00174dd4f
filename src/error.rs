//! The error model: what went wrong, independent of how it is written on the wire.
//!
//! [`ErrorCode`] names the failure (`unauthorized`, `too_many_items`, …) and knows its default
//! HTTP status and gRPC status; [`ApiError`] is one occurrence of it, with the optional detail
//! a dialect may show (field-level [`FieldError`]s, the `_idx` of the offending item, human
//! text). Item errors inside bulk responses live in [`crate::bulk`].
//!
//! # Codes
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

use std::{borrow::Cow, fmt};

use http::StatusCode;
use serde::{ser::SerializeMap, Serialize, Serializer};

use crate::grpc::GrpcStatus;

/// What went wrong, by name. See the [module docs](self) for the table of codes.
///
/// Serializes as its snake_case name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No API key, an unknown key or a disabled key (401).
    Unauthorized,
    /// The key lacks the role for one or more of the requested actions (403).
    Forbidden,
    /// A bulk request has more items than allowed (400).
    TooManyItems,
    /// A panic, an inner-service error, any 5xx without a contract body (500).
    ServerError,
    /// No route matched (404).
    NotFound,
    /// The route exists, the method does not (405).
    MethodNotAllowed,
    /// Content negotiation failed (406).
    NotAcceptable,
    /// The request took too long (408).
    RequestTimeout,
    /// The body is larger than allowed (413).
    PayloadTooLarge,
    /// The body's media type is not accepted (415).
    UnsupportedMediaType,
    /// The body is not well-formed JSON (400).
    InvalidJson,
    /// Well-formed input failed validation (400, or 422 when produced so).
    ValidationErrors,
    /// A rate limit was hit (429).
    TooManyRequests,
    /// The service cannot take the request now (503).
    ServiceUnavailable,
    /// The object named by an item or id does not exist (404; mostly an item error).
    ObjectNotFound,
    /// Coded dialect 5: a required body was not sent (400).
    ModelNotProvided,
    /// Coded dialect 6: the body is not valid for the action (400).
    ModelNotValid,
    /// Coded dialect 7: a required value was not sent (400).
    ValueNotProvided,
    /// Coded dialect 8: a value is not valid (400).
    ValueNotValid,
    /// Coded dialect 9: a required record was not named (400).
    RecordNotProvided,
    /// Coded dialect 10: the record does not exist (404).
    RecordNotFound,
    /// Coded dialect 11: the record is not active (409).
    RecordNotActive,
    /// Coded dialect 12: the record is not valid for the action (422).
    RecordNotValid,
    /// A code of the service's own, or one derived from a status with no row in the table.
    Custom(CustomCode),
}

/// A code outside the crate's table: a name, an HTTP status and a gRPC status.
///
/// Made by [`ErrorCode::custom`] and [`ErrorCode::from_status`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CustomCode {
    name: Cow<'static, str>,
    status: StatusCode,
    grpc: GrpcStatus,
}

impl CustomCode {
    /// The code's name as written on the wire.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl ErrorCode {
    /// A service's own code. The gRPC status follows `status` (see the [module docs](self));
    /// override it with [`ErrorCode::with_grpc_status`].
    ///
    /// ```
    /// use tower_api_errors::ErrorCode;
    /// let locked = ErrorCode::custom("object_locked", http::StatusCode::CONFLICT);
    /// assert_eq!(locked.as_str(), "object_locked");
    /// assert_eq!(locked.grpc_status().code(), 10);
    /// ```
    pub fn custom(name: impl Into<Cow<'static, str>>, status: StatusCode) -> Self {
        ErrorCode::Custom(CustomCode {
            name: name.into(),
            status,
            grpc: GrpcStatus::from_http(status),
        })
    }

    /// Sets the gRPC status of a custom code; the crate's own codes keep theirs.
    #[must_use]
    pub fn with_grpc_status(self, grpc: GrpcStatus) -> Self {
        match self {
            ErrorCode::Custom(custom) => ErrorCode::Custom(CustomCode { grpc, ..custom }),
            other => other,
        }
    }

    /// The contract code for a bare error status: the table's code where it has a row, else the
    /// snake_case of the status's canonical reason phrase (409 → `conflict`), else
    /// `client_error` / `server_error` by class.
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => ErrorCode::custom("bad_request", status),
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            406 => ErrorCode::NotAcceptable,
            408 => ErrorCode::RequestTimeout,
            413 => ErrorCode::PayloadTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            429 => ErrorCode::TooManyRequests,
            500 => ErrorCode::ServerError,
            503 => ErrorCode::ServiceUnavailable,
            _ => match status.canonical_reason() {
                Some(reason) => ErrorCode::custom(snake_case(reason), status),
                None if status.is_server_error() => ErrorCode::custom("server_error", status),
                None => ErrorCode::custom("client_error", status),
            },
        }
    }

    /// The code's name as written on the wire, e.g. `"too_many_items"`.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::TooManyItems => "too_many_items",
            ErrorCode::ServerError => "server_error",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::NotAcceptable => "not_acceptable",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::ValidationErrors => "validation_errors",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::ServiceUnavailable => "service_unavailable",
            ErrorCode::ObjectNotFound => "object_not_found",
            ErrorCode::ModelNotProvided => "model_not_provided",
            ErrorCode::ModelNotValid => "model_not_valid",
            ErrorCode::ValueNotProvided => "value_not_provided",
            ErrorCode::ValueNotValid => "value_not_valid",
            ErrorCode::RecordNotProvided => "record_not_provided",
            ErrorCode::RecordNotFound => "record_not_found",
            ErrorCode::RecordNotActive => "record_not_active",
            ErrorCode::RecordNotValid => "record_not_valid",
            ErrorCode::Custom(custom) => &custom.name,
        }
    }

    /// The HTTP status this code is answered with by default.
    pub fn status(&self) -> StatusCode {
        match self {
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::TooManyItems
            | ErrorCode::InvalidJson
            | ErrorCode::ValidationErrors
            | ErrorCode::ModelNotProvided
            | ErrorCode::ModelNotValid
            | ErrorCode::ValueNotProvided
            | ErrorCode::ValueNotValid
            | ErrorCode::RecordNotProvided => StatusCode::BAD_REQUEST,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::NotFound | ErrorCode::ObjectNotFound | ErrorCode::RecordNotFound => {
                StatusCode::NOT_FOUND
            }
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::RecordNotActive => StatusCode::CONFLICT,
            ErrorCode::RecordNotValid => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Custom(custom) => custom.status,
        }
    }

    /// The gRPC status this code is answered with.
    pub fn grpc_status(&self) -> GrpcStatus {
        match self {
            ErrorCode::Unauthorized => GrpcStatus::Unauthenticated,
            ErrorCode::Forbidden => GrpcStatus::PermissionDenied,
            ErrorCode::ServerError => GrpcStatus::Internal,
            ErrorCode::NotFound | ErrorCode::MethodNotAllowed => GrpcStatus::Unimplemented,
            ErrorCode::RequestTimeout => GrpcStatus::DeadlineExceeded,
            ErrorCode::PayloadTooLarge | ErrorCode::TooManyRequests => {
                GrpcStatus::ResourceExhausted
            }
            ErrorCode::ServiceUnavailable => GrpcStatus::Unavailable,
            ErrorCode::ObjectNotFound | ErrorCode::RecordNotFound => GrpcStatus::NotFound,
            ErrorCode::RecordNotActive => GrpcStatus::FailedPrecondition,
            ErrorCode::TooManyItems
            | ErrorCode::NotAcceptable
            | ErrorCode::UnsupportedMediaType
            | ErrorCode::InvalidJson
            | ErrorCode::ValidationErrors
            | ErrorCode::ModelNotProvided
            | ErrorCode::ModelNotValid
            | ErrorCode::ValueNotProvided
            | ErrorCode::ValueNotValid
            | ErrorCode::RecordNotProvided
            | ErrorCode::RecordNotValid => GrpcStatus::InvalidArgument,
            ErrorCode::Custom(custom) => custom.grpc,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

fn snake_case(reason: &str) -> String {
    let mut name = String::with_capacity(reason.len());
    // "I'm a teapot" → `im_a_teapot`: apostrophes join, other punctuation separates.
    let letters = reason.chars().filter(|&c| c != '\'');
    for word in letters
        .collect::<String>()
        .split(|c: char| !c.is_ascii_alphanumeric())
    {
        if word.is_empty() {
            continue;
        }
        if !name.is_empty() {
            name.push('_');
        }
        name.extend(word.chars().map(|c| c.to_ascii_lowercase()));
    }
    name
}

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

/// Renders the error in the bulk dialect for a plain HTTP client, marked as an
/// [`UnrenderedError`](crate::dialect::UnrenderedError): a contract layer it passes through
/// writes it again in the request's dialect and wire.
impl From<ApiError> for http::Response<crate::body::ErrorBody> {
    fn from(error: ApiError) -> Self {
        crate::dialect::UnrenderedError::response(error)
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
