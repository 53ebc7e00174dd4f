use http::{HeaderMap, Response};
use serde::Deserialize;

use super::{has_content_type, json_response, Dialect, ErrorFormat};
use crate::{body::ErrorBody, error::ApiError};

/// The bulk API's dialect (the default): `{"error": "<code>"}`.
///
/// An error about one item of the body adds `_idx`, and a `validation_errors` error adds its
/// `[{"field", "error"}]` list. Human-readable details are not shown: this dialect has no
/// place for them.
///
/// ```
/// use tower_api_errors::{dialect::{Bulk, ErrorFormat}, ApiError};
///
/// let response = ErrorFormat::http().render(&Bulk, &ApiError::forbidden());
/// assert_eq!(response.status(), 403);
/// assert_eq!(response.headers()["content-type"], "application/json");
/// assert_eq!(response.body().as_bytes(), br#"{"error":"forbidden"}"#);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bulk;

impl Dialect for Bulk {
    fn render(&self, error: &ApiError, _format: &ErrorFormat) -> Response<ErrorBody> {
        let body = serde_json::to_vec(error).expect("an ApiError always serializes");
        json_response(error.status(), "application/json", body)
    }

    fn recognizes(&self, headers: &HeaderMap, body: &[u8], _format: &ErrorFormat) -> bool {
        #[derive(Deserialize)]
        struct Shape<'a> {
            #[serde(borrow)]
            error: &'a str,
        }
        has_content_type(headers, "application/json")
            && serde_json::from_slice::<Shape<'_>>(body).is_ok_and(|shape| !shape.error.is_empty())
    }
}
