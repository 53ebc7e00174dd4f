//! gRPC status codes and the trailers-only error response, without depending on tonic.
//!
//! A request whose `content-type` is in the gRPC family (`application/grpc`, `+proto`, `-web`,
//! `-web-text`, …, any case, parameters ignored: [`crate::media`]) is a gRPC call
//! ([`is_grpc`]). Its errors are answered as a *trailers-only* response: HTTP 200,
//! `content-type: application/grpc`, `grpc-status` and a percent-encoded `grpc-message`
//! in the headers, and no body, which every gRPC client reads as the call's final status.

use http::{header, HeaderMap, HeaderValue, Response};
use percent_encoding::{AsciiSet, CONTROLS};

// The status enum is part of the error model; it is re-exported here, where it was first.
pub use crate::error::GrpcStatus;
use crate::{body::ErrorBody, error::ApiError};

mod details;

use self::details::details_header;
pub use self::details::{status_details, GRPC_STATUS_DETAILS};

/// The `grpc-status` header (and trailer) name.
pub const GRPC_STATUS: &str = "grpc-status";
/// The `grpc-message` header (and trailer) name.
pub const GRPC_MESSAGE: &str = "grpc-message";

/// The gRPC spec: percent-encode everything outside printable ASCII, and `%` itself.
const GRPC_MESSAGE_ESCAPES: &AsciiSet = &CONTROLS.add(b'%');

/// Whether the request headers announce a gRPC call: a `Content-Type` in the gRPC family, in
/// any case, parameters ignored ([`MediaType`](crate::media::MediaType)).
///
/// This decides how an error is *answered*; whether a layer believes the label enough to skip
/// a check is the layer's decision (see `SECURITY.md`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    crate::media::MediaType::of(headers).is_grpc()
}

/// Whether a response already carries a gRPC status (in its headers: trailers-only).
pub fn has_grpc_status(headers: &HeaderMap) -> bool {
    headers.contains_key(GRPC_STATUS)
}

/// Percent-encodes a message for the `grpc-message` header or trailer.
pub fn encode_message(message: &str) -> HeaderValue {
    let encoded = percent_encoding::utf8_percent_encode(message, GRPC_MESSAGE_ESCAPES).to_string();
    HeaderValue::try_from(encoded).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Writes `grpc-status`, `grpc-message` and `grpc-status-details-bin` for `error` into
/// `headers` (used for trailers too). The details are the standard rich error details (see
/// [`status_details`]), so a client reading them (`tonic_types::StatusExt`) gets the code and
/// the field errors.
pub fn write_status(headers: &mut HeaderMap, error: &ApiError) {
    headers.insert(GRPC_STATUS, error.grpc_status().header_value());
    headers.insert(GRPC_MESSAGE, encode_message(error.code().as_str()));
    headers.insert(GRPC_STATUS_DETAILS, details_header(error));
}

/// The trailers-only gRPC response for `error`: HTTP 200, `content-type: application/grpc`,
/// `grpc-status`, the contract code as `grpc-message`, and the rich error details in
/// `grpc-status-details-bin`.
///
/// ```
/// use tower_api_errors::{grpc, ApiError};
///
/// let response = grpc::trailers_only(&ApiError::too_many_items());
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["grpc-status"], "3");
/// assert_eq!(response.headers()["grpc-message"], "too_many_items");
/// ```
pub fn trailers_only(error: &ApiError) -> Response<ErrorBody> {
    let mut response = Response::new(ErrorBody::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    write_status(headers, error);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(encode_message("too_many_items"), "too_many_items");
        assert_eq!(encode_message("50% done"), "50%25 done");
        assert_eq!(encode_message("caf\u{e9}\n"), "caf%C3%A9%0A");
    }

    #[test]
    fn grpc_requests_are_recognised_by_content_type() {
        let mut headers = HeaderMap::new();
        assert!(!is_grpc(&headers));
        headers.insert(
            header::CONTENT_TYPE,
            "application/grpc+proto".parse().unwrap(),
        );
        assert!(is_grpc(&headers));
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(!is_grpc(&headers));
    }

    #[test]
    fn header_values_match_codes() {
        for status in [
            GrpcStatus::Ok,
            GrpcStatus::Internal,
            GrpcStatus::Unauthenticated,
        ] {
            assert_eq!(status.header_value(), status.code().to_string().as_str());
        }
    }
}
