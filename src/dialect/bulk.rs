use http::{HeaderMap, Response};
use serde::Deserialize;

use super::{has_content_type, json_response, Dialect, ErrorFormat};
use crate::{
    body::ErrorBody,
    error::{for_each_code, ApiError, ErrorCode},
};

/// `{"error":"<code>"}` for the crate's own codes, written once: most rejections (a bad key,
/// too many items) are answered without serializing anything.
fn universal_body(code: &ErrorCode) -> Option<&'static [u8]> {
    macro_rules! bodies {
        ($(
            $(#[$doc:meta])*
            $variant:ident: $name:literal, $status:ident, $grpc:ident, $coded:ident($number:literal);
        )*) => {
            match code {
                $(ErrorCode::$variant => Some(concat!(r#"{"error":""#, $name, r#""}"#).as_bytes()),)*
                // A custom code has no static name.
                ErrorCode::Custom(_) => None,
            }
        };
    }
    // `validation_errors` carries its list.
    if matches!(code, ErrorCode::ValidationErrors) {
        return None;
    }
    for_each_code!(bodies)
}

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
        if error.index().is_none() {
            if let Some(body) = universal_body(error.code()) {
                return json_response(
                    error.status(),
                    "application/json",
                    ErrorBody::from_static(body),
                );
            }
        }
        let body = serde_json::to_vec(error).expect("an ApiError always serializes");
        json_response(error.status(), "application/json", ErrorBody::new(body))
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

/// Renders the error in the bulk dialect for a plain HTTP client, marked as an
/// [`UnrenderedError`](super::UnrenderedError): a contract layer it passes through writes it
/// again in the request's dialect and wire.
///
/// It lives with its renderer, not in the error model, which depends on nothing.
impl From<ApiError> for Response<ErrorBody> {
    fn from(error: ApiError) -> Self {
        super::UnrenderedError::response(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_bodies_match_serialization() {
        let codes = [
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::TooManyItems,
            ErrorCode::ServerError,
            ErrorCode::NotFound,
            ErrorCode::MethodNotAllowed,
            ErrorCode::NotAcceptable,
            ErrorCode::RequestTimeout,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::InvalidJson,
            ErrorCode::TooManyRequests,
            ErrorCode::ServiceUnavailable,
            ErrorCode::ObjectNotFound,
        ];
        for code in codes {
            let error = ApiError::new(code.clone());
            assert_eq!(
                universal_body(&code).unwrap(),
                serde_json::to_vec(&error).unwrap().as_slice(),
                "{code}"
            );
        }
        assert!(universal_body(&ErrorCode::ValidationErrors).is_none());
    }

    #[test]
    fn every_table_code_has_its_static_body() {
        for code in ErrorCode::ALL {
            let error = ApiError::new(code.clone());
            match universal_body(code) {
                Some(body) => assert_eq!(body, serde_json::to_vec(&error).unwrap(), "{code}"),
                None => assert_eq!(code, &ErrorCode::ValidationErrors),
            }
        }
        let custom = ErrorCode::custom("object_locked", http::StatusCode::CONFLICT);
        assert!(universal_body(&custom).is_none());
    }
}
