//! Rewrite every error response produced below the layer into the contract's shape.
//!
//! Routers answer an unknown route with an empty 404 and a wrong method with an empty 405,
//! extractors reject a request with a line of plain text, middleware answer 408 or 413 with
//! nothing at all, and services fail with errors that never become responses. [`Normalize`]
//! turns all of them into one error format, in the layer's [`Dialect`] (or problem details, or
//! the gRPC form, as the request asked), whatever framework produced them.
//!
//! Place it outside everything it should normalise: around a whole axum `Router` (with
//! `Router::layer`, which covers the fallback too), a tonic `Server` (with `Server::layer`),
//! or any hyper service. Its error type is [`Infallible`](std::convert::Infallible), so axum
//! needs no `HandleErrorLayer` around fallible middleware such as `tower::timeout`.
//!
//! # Example
//!
//! An axum `Json<Vec<T>>` rejection, plain text, becomes the bulk dialect's error:
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{header, Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_api_errors::normalize::NormalizeLayer;
//!
//! async fn create_users(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     // What axum answers when item 1 of the array lacks `email`.
//!     Ok(Response::builder()
//!         .status(StatusCode::UNPROCESSABLE_ENTITY)
//!         .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
//!         .body(Full::from(
//!             "Failed to deserialize the JSON body into the target type: \
//!              [1]: missing field `email` at line 1 column 30",
//!         ))
//!         .unwrap())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let service = ServiceBuilder::new()
//!     .layer(NormalizeLayer::new())
//!     .service_fn(create_users);
//!
//! let request = Request::post("/v1/users").body(Full::default()).unwrap();
//! let response = service.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 422);
//! assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(
//!     body,
//!     r#"{"error":"validation_errors","_idx":1,"validation_errors":[{"field":"email","error":"required"}]}"#
//! );
//! # }
//! ```
//!
//! The coded dialect on one route group, and a classifier of the service's own errors:
//!
//! ```
//! use std::{convert::Infallible, fmt};
//!
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_api_errors::{
//!     dialect::{Bulk, Coded, DialectByPath},
//!     normalize::{BoxError, ClassifyError, DefaultClassifyError, NormalizeLayer},
//!     ApiError, ErrorCode,
//! };
//!
//! #[derive(Debug)]
//! struct QuotaExceeded;
//! impl fmt::Display for QuotaExceeded {
//!     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
//!         f.write_str("quota exceeded")
//!     }
//! }
//! impl std::error::Error for QuotaExceeded {}
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let layer = NormalizeLayer::new()
//!     .dialect(DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new()))
//!     .classify_error(|error: BoxError| {
//!         if error.is::<QuotaExceeded>() {
//!             ApiError::new(ErrorCode::TooManyRequests)
//!         } else {
//!             DefaultClassifyError.classify_error(error)
//!         }
//!     });
//!
//! // What axum's `Query<T>` answers for `page_size=X`.
//! let courses = ServiceBuilder::new().layer(layer.clone()).service_fn(|_: Request<()>| async {
//!     Ok::<_, Infallible>(
//!         Response::builder()
//!             .status(StatusCode::BAD_REQUEST)
//!             .body(Full::<Bytes>::from(
//!                 "Failed to deserialize query string: page_size: invalid digit found in string",
//!             ))
//!             .unwrap(),
//!     )
//! });
//! let request = Request::get("/v1/customer/courses?page=1&page_size=X").body(()).unwrap();
//! let response = courses.oneshot(request).await.unwrap();
//! assert_eq!(response.status(), 400);
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(
//!     body,
//!     r#"{"code":6,"message":"Model not valid","errors":["page_size: The value 'X' is not valid for 'page_size'."]}"#
//! );
//!
//! // An error of the service itself, on a bulk route.
//! let quota = ServiceBuilder::new()
//!     .layer(layer)
//!     .service(service_fn(|_: Request<()>| async {
//!         Err::<Response<Full<Bytes>>, _>(QuotaExceeded)
//!     }));
//! let response = quota.oneshot(Request::get("/v1/webhooks").body(()).unwrap()).await.unwrap();
//! assert_eq!(response.status(), 429);
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, r#"{"error":"too_many_requests"}"#);
//! # }
//! ```
//!
//! # What passes untouched
//!
//! - Every response with a status below 400: its body is handed on as it is, never buffered or
//!   copied.
//! - Responses carrying a [`RenderedError`](crate::RenderedError) marker (those of the crate's
//!   other layers and of [`ErrorFormat::render`](crate::ErrorFormat::render)): not parsed at
//!   all.
//! - Responses that already carry `grpc-status` (tonic's own statuses, trailers-only).
//! - Error bodies already in the request's dialect ([`Dialect::recognizes`]), e.g. a handler's
//!   own `{"error": "object_not_found"}` on a bulk route: the same bytes and headers.
//!
//! # A handler's own error
//!
//! A response carrying an [`UnrenderedError`](crate::dialect::UnrenderedError) (what
//! `http::Response::from(ApiError)` and, with the `axum` feature, a handler's `Err(ApiError)`
//! produce) is written again from the error it carries, with the request's format and the
//! layer's dialect, as the layers' own errors are: its body is never read, its headers other
//! than those of the body are kept.
//!
//! # What is rewritten
//!
//! Every other response with a status of 400 or more. The status is kept as produced; the
//! code comes from the body when the layer understands it ([`parse_rejection`]), else from the
//! status ([`ErrorCode::from_status`](crate::ErrorCode::from_status): 404 → `not_found`,
//! 405 → `method_not_allowed`, 408 → `request_timeout`, 413 → `payload_too_large`, …).
//!
//! | body produced below | code | field errors |
//! | --- | --- | --- |
//! | empty, or text that is not one of the rows below | the status's | none |
//! | axum: ``Expected request with `Content-Type: application/json` `` (415) | `unsupported_media_type` | none |
//! | axum: `Failed to parse the request body as JSON: …` (400) | `invalid_json` | none |
//! | axum: `Failed to deserialize the JSON body into the target type: …` (422) | `validation_errors` | one, `_idx` when the path starts with an index |
//! | axum: `Failed to deserialize query string: …`, `… form: …`, `… form body: …` (400, 422) | `validation_errors` | one |
//! | axum: `Invalid URL: Cannot parse …` (`Path`, 400) | `validation_errors` | one |
//! | JSON in a contract dialect (`{"error": "<code>"}`, problem details' `code`, the coded dialect's number) | that code, with its `_idx` and field errors | as given |
//! | any other body of a 5xx | the status's (`server_error` for 500) | none |
//!
//! A field error names the field by its path below the item (`email`, `address.zip`,
//! `tags[1]`; `object` when the item itself has the wrong shape; for `Path`, the parameter, or
//! `path` when axum does not name it). When serde's path starts with an array index (`[1].email`,
//! an item of a `Json<Vec<T>>` body), the index becomes the error's `_idx`. What went wrong is
//! one of these validation codes:
//!
//! | validation code | serde's message |
//! | --- | --- |
//! | `required` | ``missing field `email` `` |
//! | `invalid_type` | `invalid type: string "x", expected u32` |
//! | `invalid_value` | `invalid value: …`, `invalid length …`, ``unknown variant …``, and a type's own messages (`invalid digit found in string`) |
//! | `unknown_field` | ``unknown field `bogus`, expected …`` |
//! | `duplicate_field` | ``duplicate field `email` `` |
//!
//! ## Human text
//!
//! Dialects with room for prose (the coded dialect's `errors`, problem details' `detail`) also
//! get a sentence written by the layer, never the producer's own text: serde's messages name
//! Rust types (`expected struct User`) and a type's own messages may say anything. The
//! sentence starts with serde's full path (`[1].email: A value is required for 'email'.`), and
//! quotes a refused value only when it comes from the request's own query string or path, is
//! at most 64 characters and printable (`page_size: The value 'X' is not valid for
//! 'page_size'.`). A JSON syntax error keeps serde_json's description and position, which
//! point into the client's own body (`The body is not valid JSON: expected value at line 1
//! column 9.`); serde_json's syntax messages are a closed set, so nothing else can slip in.
//! Unrecognised text, and any body of a 5xx, is never shown.
//!
//! # Errors of the inner service
//!
//! An `Err` from the inner service (or from its `poll_ready`) becomes a response too, by a
//! [`ClassifyError`]: [`DefaultClassifyError`] answers `tower::timeout`'s `Elapsed` with
//! `request_timeout` (408), `tower::load_shed`'s `Overloaded` with `service_unavailable` (503)
//! and anything else with `server_error` (500), logging the error with `tracing` (never
//! showing it). A `poll_ready` error is answered by the call that follows, without reaching the
//! inner service.
//!
//! # Which format
//!
//! The format is decided from the request before it is handed on
//! ([`ErrorFormat::for_request`](crate::ErrorFormat::for_request)):
//!
//! 1. `content-type: application/grpc…` → a gRPC trailers-only response (HTTP 200,
//!    `grpc-status`, the code as `grpc-message`), e.g. a 413 from a body limit becomes
//!    `grpc-status: 8`; the body of such an error is never read;
//! 2. an `Accept` naming `application/problem+json` with a non-zero `q` → RFC 9457 problem
//!    details (`*/*` and `application/json` do not count);
//! 3. otherwise the layer's dialect, which may pick one per route group
//!    ([`DialectByPath`](crate::dialect::DialectByPath)).
//!
//! `HEAD` gets the status and headers (with the `Content-Length` the body would have had) and
//! no body; its error body is never read.
//!
//! # Headers
//!
//! A rewritten response keeps the original's headers that carry meaning (`Allow`,
//! `WWW-Authenticate`, `Retry-After`, `Cache-Control`, `Vary`, CORS headers, `Set-Cookie`, and
//! any other) and drops those that describe the replaced body (`Content-Type`,
//! `Content-Length`, `Content-Encoding`, `Content-Language`, `Content-Location`,
//! `Content-Range`, `Content-Disposition`, the digests, `Transfer-Encoding`, `Trailer`, `ETag`,
//! `Last-Modified`, `Accept-Ranges`); the new body sets `Content-Type` and `Content-Length`.
//! A 401 without `WWW-Authenticate` gets `WWW-Authenticate: Bearer`.
//!
//! # Bounded work
//!
//! At most [`DEFAULT_BODY_LIMIT`] bytes (4 KiB; see [`NormalizeLayer::body_limit`]) of an error
//! body are read. A body whose `Content-Length` or size hint is larger is dropped unread; one
//! that turns out larger (every frame counting as at least one byte) is dropped as soon as it
//! passes the budget; both get the status's code. Framework rejections and contract bodies are
//! far smaller. A body left alone after reading is handed on as the same bytes (trailers of an
//! error body are not kept).

mod classify;
mod future;
mod layer;
mod rejection;
mod service;

#[cfg(feature = "axum")]
pub(crate) use self::rejection::data_error_at;
pub(crate) use self::rejection::deserialize_error;
pub use self::{
    classify::{BoxError, ClassifyError, DefaultClassifyError},
    future::ResponseFuture,
    layer::NormalizeLayer,
    rejection::{parse_rejection, parse_rejection_with_query},
    service::Normalize,
};
#[cfg(doc)]
use crate::dialect::Dialect;

/// How many bytes of an error body the layer reads at most, by default: 4 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 4 * 1024;

#[cfg(test)]
mod tests;
