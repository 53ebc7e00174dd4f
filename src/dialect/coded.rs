use std::{borrow::Cow, sync::Arc};

use http::{HeaderMap, Response};
use serde::{Deserialize, Serialize};

use super::{has_content_type, json_response, Dialect, ErrorFormat};
use crate::{
    body::ErrorBody,
    error::{ApiError, CodedNumber},
};

/// The numeric-code dialect: `{"code": 6, "message": "Model not valid", "errors": ["…"]}`.
///
/// `errors` is always present: each field error's message (or `field: error`), then the
/// error's details; when that would be empty and the contract code has no number of its own
/// below, the contract code's name, so a client can tell a 405 from a 413.
///
/// | number | message | contract codes |
/// | --- | --- | --- |
/// | 1 | Server error | `server_error`, any other 5xx |
/// | 2 | Server not available | `service_unavailable`, `request_timeout`, `too_many_requests` |
/// | 3 | Not authorized | `forbidden` |
/// | 4 | Not authenticated | `unauthorized` |
/// | 5 | Model not provided | `model_not_provided` |
/// | 6 | Model not valid | `model_not_valid`, `invalid_json`, `validation_errors`, `too_many_items`, any other 400 |
/// | 7 | Value not provided | `value_not_provided` |
/// | 8 | Value not valid | `value_not_valid`, `method_not_allowed`, `not_acceptable`, `payload_too_large`, `unsupported_media_type`, any other 4xx |
/// | 9 | Record not provided | `record_not_provided` |
/// | 10 | Record not found | `record_not_found`, `object_not_found`, `not_found` |
/// | 11 | Record not active | `record_not_active` (409) |
/// | 12 | Record not valid | `record_not_valid` (422) |
///
/// The HTTP status is the error's own (a 405 stays a 405). A service's own codes get their
/// number from their status, or from [`Coded::with_number`].
///
/// ```
/// use tower_api_errors::{dialect::{Coded, ErrorFormat}, ApiError, ErrorCode, FieldError};
///
/// let error = ApiError::new(ErrorCode::ModelNotValid).with_field_error(
///     FieldError::new("page_size", "not_valid")
///         .with_message("page_size: The value 'X' is not valid for 'page_size'."),
/// );
/// let response = ErrorFormat::http().render(&Coded::new(), &error);
/// assert_eq!(response.status(), 400);
/// assert_eq!(
///     response.body().as_bytes(),
///     br#"{"code":6,"message":"Model not valid","errors":["page_size: The value 'X' is not valid for 'page_size'."]}"#
/// );
/// ```
#[derive(Clone, Debug, Default)]
pub struct Coded {
    // `None` until a number is added, so cloning the default dialect (once per request in
    // some layers) touches no reference count.
    numbers: Option<Arc<[CodeNumber]>>,
}

impl Coded {
    /// The dialect with the table above.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers the contract code named `code` with `number` (1 to 12), e.g. a service's own
    /// `object_locked` as 11.
    ///
    /// # Panics
    ///
    /// If `number` is not between 1 and 12: the seed defines no other numbers.
    #[must_use]
    pub fn with_number(self, code: impl Into<Cow<'static, str>>, number: u8) -> Self {
        assert!(
            (1..=12).contains(&number),
            "the coded dialect has numbers 1 to 12, not {number}"
        );
        let mut numbers = self.numbers.as_deref().unwrap_or_default().to_vec();
        numbers.push((code.into(), number));
        Coded {
            numbers: Some(numbers.into()),
        }
    }

    /// The number an error is answered with.
    pub fn number(&self, error: &ApiError) -> u8 {
        let code = error.code();
        let numbers = self.numbers.as_deref().unwrap_or_default();
        if let Some((_, number)) = numbers.iter().find(|(name, _)| name == code.as_str()) {
            return *number;
        }
        match code.coded_number() {
            Some(coded) => coded.number(),
            // A custom code's number follows its status.
            None => match error.status().as_u16() {
                503 => 2,
                400 => 6,
                401 => 4,
                403 => 3,
                404 => 10,
                409 => 11,
                422 => 12,
                402..=499 => 8,
                _ => 1,
            },
        }
    }
}

/// A contract code answered with a number of the caller's choice.
type CodeNumber = (Cow<'static, str>, u8);

const MESSAGES: [&str; 12] = [
    "Server error",
    "Server not available",
    "Not authorized",
    "Not authenticated",
    "Model not provided",
    "Model not valid",
    "Value not provided",
    "Value not valid",
    "Record not provided",
    "Record not found",
    "Record not active",
    "Record not valid",
];

#[derive(Serialize)]
struct CodedBody<'a> {
    code: u8,
    message: &'a str,
    errors: Vec<Cow<'a, str>>,
}

impl Dialect for Coded {
    fn render(&self, error: &ApiError, _format: &ErrorFormat) -> Response<ErrorBody> {
        let code = self.number(error);
        let mut errors: Vec<Cow<'_, str>> = error
            .validation_errors()
            .iter()
            .map(|field| Cow::Owned(field.describe()))
            .chain(
                error
                    .details()
                    .iter()
                    .map(|detail| Cow::Borrowed(detail.as_str())),
            )
            .collect();
        if errors.is_empty() && !error.code().coded_number().is_some_and(CodedNumber::is_own) {
            errors.push(Cow::Borrowed(error.code().as_str()));
        }
        let body = CodedBody {
            code,
            message: MESSAGES[usize::from(code - 1)],
            errors,
        };
        let body = serde_json::to_vec(&body).expect("a coded error always serializes");
        json_response(error.status(), "application/json", ErrorBody::new(body))
    }

    fn recognizes(&self, headers: &HeaderMap, body: &[u8], _format: &ErrorFormat) -> bool {
        #[derive(Deserialize)]
        struct Shape<'a> {
            code: u8,
            #[serde(borrow)]
            #[allow(dead_code)]
            message: Cow<'a, str>,
        }
        has_content_type(headers, "application/json")
            && serde_json::from_slice::<Shape<'_>>(body)
                .is_ok_and(|shape| (1..=12).contains(&shape.code))
    }
}
