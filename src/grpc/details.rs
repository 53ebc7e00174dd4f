//! The rich error details of a gRPC status (`grpc-status-details-bin`): a `google.rpc.Status`
//! holding a `google.rpc.ErrorInfo` (the contract code as its reason, `_idx` in its metadata)
//! and, when the error has field errors, a `google.rpc.BadRequest` with one field violation
//! each, the same details `tonic_types::StatusExt` writes and reads.
//!
//! Encoded by hand rather than with prost: the core must not depend on tonic, the four messages
//! are fixed and tiny (strings, one varint, repeated embedded messages), and the protobuf rules
//! they need fit in a screen (a field is a varint key `tag << 3 | wire type`, then a varint or a
//! length-prefixed payload; proto3 leaves out empty strings and zero numbers). A test under the
//! `tonic` feature checks the bytes against tonic-types' own encoding.

use base64::{engine::general_purpose::STANDARD_NO_PAD, Engine as _};
use http::HeaderValue;

use crate::error::ApiError;

/// The `grpc-status-details-bin` header (and trailer) name.
pub const GRPC_STATUS_DETAILS: &str = "grpc-status-details-bin";

const ERROR_INFO: &str = "type.googleapis.com/google.rpc.ErrorInfo";
const BAD_REQUEST: &str = "type.googleapis.com/google.rpc.BadRequest";

/// Protobuf wire types.
const VARINT: u8 = 0;
const LENGTH_DELIMITED: u8 = 2;

/// The encoded `google.rpc.Status` for `error`, the rich error details of its gRPC answer: its
/// gRPC status, the code as message, a `google.rpc.ErrorInfo` whose reason is the code (with
/// `_idx` in its metadata when the error names an item), and, when the error has field errors,
/// a `google.rpc.BadRequest` with one field violation each (`field`, the validation code as
/// `reason`, the message or the code as `description`). These are the bytes
/// `tonic_types::StatusExt` writes for the same details and reads back.
///
/// ```
/// use tower_api_errors::{grpc, ApiError};
///
/// let response = grpc::trailers_only(&ApiError::forbidden());
/// assert!(response.headers().contains_key(grpc::GRPC_STATUS_DETAILS));
/// let details = grpc::status_details(&ApiError::forbidden());
/// assert_eq!(&details[..2], [0x08, 7]); // code: 7 PERMISSION_DENIED
/// ```
pub fn status_details(error: &ApiError) -> Vec<u8> {
    let code = error.code().as_str();
    let mut info = Vec::new();
    string(&mut info, 1, code);
    if let Some(index) = error.index() {
        let mut entry = Vec::new();
        string(&mut entry, 1, "_idx");
        string(&mut entry, 2, &index.to_string());
        message(&mut info, 3, &entry);
    }
    let mut details = Vec::new();
    any(&mut details, ERROR_INFO, &info);
    if !error.validation_errors().is_empty() {
        let mut bad_request = Vec::new();
        for field in error.validation_errors() {
            let mut violation = Vec::new();
            string(&mut violation, 1, field.field());
            string(&mut violation, 2, field.message().unwrap_or(field.error()));
            string(&mut violation, 3, field.error());
            message(&mut bad_request, 1, &violation);
        }
        any(&mut details, BAD_REQUEST, &bad_request);
    }
    let mut status = Vec::with_capacity(details.len() + code.len() + 8);
    let number = error.grpc_status().code();
    if number != 0 {
        key(&mut status, 1, VARINT);
        varint(&mut status, u64::from(number));
    }
    string(&mut status, 2, code);
    status.extend_from_slice(&details);
    status
}

/// [`status_details`] as a `grpc-status-details-bin` value: base64 without padding, as tonic
/// writes it (readers accept it with or without).
pub(crate) fn details_header(error: &ApiError) -> HeaderValue {
    let encoded = STANDARD_NO_PAD.encode(status_details(error));
    HeaderValue::try_from(encoded).expect("base64 is a valid header value")
}

/// A `google.protobuf.Any` as field 3 of `google.rpc.Status`.
fn any(buf: &mut Vec<u8>, type_url: &str, value: &[u8]) {
    let mut any = Vec::with_capacity(type_url.len() + value.len() + 6);
    string(&mut any, 1, type_url);
    if !value.is_empty() {
        message(&mut any, 2, value);
    }
    message(buf, 3, &any);
}

fn string(buf: &mut Vec<u8>, tag: u32, value: &str) {
    if !value.is_empty() {
        message(buf, tag, value.as_bytes());
    }
}

/// A length-delimited field, written even when empty (an element of a repeated field).
fn message(buf: &mut Vec<u8>, tag: u32, payload: &[u8]) {
    key(buf, tag, LENGTH_DELIMITED);
    varint(buf, payload.len() as u64);
    buf.extend_from_slice(payload);
}

fn key(buf: &mut Vec<u8>, tag: u32, wire_type: u8) {
    varint(buf, u64::from(tag << 3 | u32::from(wire_type)));
}

fn varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorCode, FieldError};

    #[test]
    fn varints_and_fields_follow_the_wire_format() {
        let mut buf = Vec::new();
        varint(&mut buf, 300);
        assert_eq!(buf, [0xac, 0x02]);
        let mut buf = Vec::new();
        string(&mut buf, 2, "hi");
        string(&mut buf, 3, "");
        assert_eq!(buf, [0x12, 2, b'h', b'i']);
    }

    #[test]
    fn a_status_carries_its_code_and_message() {
        let details = status_details(&ApiError::too_many_items());
        // code 3, message "too_many_items", then one Any.
        assert_eq!(&details[..4], [0x08, 3, 0x12, 14]);
        assert_eq!(&details[4..18], b"too_many_items");
        assert_eq!(details[18], 0x1a);
        let error = ApiError::new(ErrorCode::ValidationErrors)
            .with_field_error(FieldError::new("email", "required"));
        let details = status_details(&error);
        let text = String::from_utf8_lossy(&details);
        assert!(text.contains("google.rpc.BadRequest"), "{text}");
        assert!(text.contains("email"), "{text}");
    }
}
