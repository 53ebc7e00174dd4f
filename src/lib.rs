//! One error contract for every hyper, axum and tonic service.
//!
//! `tower-api-errors` is a set of [Tower] layers that make a whole stack answer errors in one
//! shape, whatever produced them:
//!
//! - [`auth`]: API keys; `unauthorized` (401) and `forbidden` (403);
//! - [`batch_limit`]: bulk requests with too many items get `too_many_items` (400);
//! - [`catch_panic`]: a panic anywhere below becomes `server_error` (500);
//! - [`normalize`]: every other error response is rewritten into the contract's shape.
//!
//! Each layer is usable alone. They share the error model ([`ApiError`], [`ErrorCode`]), the
//! [`dialect`]s that write it on the wire (the bulk dialect `{"error": "too_many_items"}` by
//! default, the numeric [`Coded`](dialect::Coded) dialect, RFC 9457
//! [`ProblemDetails`](dialect::ProblemDetails)), and one rule for answering gRPC calls
//! ([`grpc`]): a trailers-only response with the right `grpc-status`, never JSON.
//!
//! # The contract at a glance
//!
//! | code | HTTP | gRPC | coded dialect |
//! | --- | --- | --- | --- |
//! | `unauthorized` | 401, `WWW-Authenticate: Bearer` | 16 `UNAUTHENTICATED` | 4 Not authenticated |
//! | `forbidden` | 403 | 7 `PERMISSION_DENIED` | 3 Not authorized |
//! | `too_many_items` | 400 | 3 `INVALID_ARGUMENT` | 6 Model not valid |
//! | `server_error` | 500 | 13 `INTERNAL` | 1 Server error |
//!
//! The full table, with the codes for framework errors, is in the [`error`] module.
//!
//! # Rendering an error by hand
//!
//! ```
//! use tower_api_errors::{dialect::{Bulk, ErrorFormat}, ApiError};
//!
//! let request = http::Request::post("/v1/webhooks").body(()).unwrap();
//! let response = ErrorFormat::for_request(&request).render(&Bulk, &ApiError::too_many_items());
//! assert_eq!(response.status(), 400);
//! assert_eq!(response.body().as_bytes(), br#"{"error":"too_many_items"}"#);
//! ```
//!
//! [Tower]: https://docs.rs/tower

pub mod auth;
pub mod batch_limit;
pub mod body;
pub mod bulk;
pub mod catch_panic;
pub mod dialect;
pub mod error;
pub mod grpc;
pub mod normalize;

pub use crate::{
    dialect::{Dialect, ErrorFormat, RenderedError},
    error::{ApiError, ErrorCode, FieldError},
};
