//! `IntoResponse` for the crate's errors and bulk responses.

use ::axum::{
    body::Body,
    response::{IntoResponse, Response},
};
use bytes::Bytes;
use http::{header, HeaderValue};
use serde::Serialize;

use crate::{
    bulk::{BulkRead, BulkWrite},
    dialect::UnrenderedError,
    error::ApiError,
};

/// The error in the default dialect, marked as an [`UnrenderedError`]: the normalize layer it
/// passes through writes it again in the request's dialect and wire.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        UnrenderedError::response(self).map(Body::new)
    }
}

/// `200 OK`, the entries as a JSON array.
impl<T: Serialize> IntoResponse for BulkWrite<T> {
    fn into_response(self) -> Response {
        json(&self)
    }
}

/// `200 OK`, `{"data": [...], "error": [...]}`.
impl<T: Serialize> IntoResponse for BulkRead<T> {
    fn into_response(self) -> Response {
        json(&self)
    }
}

/// A JSON `200 OK`; a value that cannot be serialized is the service's fault, `server_error`.
pub(super) fn json<T: Serialize + ?Sized>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = Response::new(Body::from(Bytes::from(body)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "response could not be serialized");
            ApiError::server_error().into_response()
        }
    }
}
