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
//! # A whole stack
//!
//! Outermost first: catch panic, normalize, auth (headers only, so a bad key never costs a
//! body read), batch limit (counts the items while the body streams), per-item authorization
//! (reuses what the batch layer found), the application. Each layer takes the same dialect;
//! here `/v1/customer/…` answers in the coded dialect and everything else in the bulk one.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use axum::{body::Body, routing::post, Router};
//! use http::{HeaderName, Request, Response};
//! use http_body_util::BodyExt;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_api_errors::{
//!     auth::{AuthLayer, AuthorizeItemsLayer, InMemoryKeyStore, KeyExtractor, KeySet, Principal, RoleTable},
//!     batch_limit::BatchLimitLayer,
//!     catch_panic::CatchPanicLayer,
//!     dialect::{Bulk, Coded, DialectByPath},
//!     normalize::NormalizeLayer,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = KeySet::new()
//!     .with_key("demo_admin", Principal::new("acct_123").with_roles(["read", "write"]))?;
//! let dialect = DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new());
//! let router = Router::new().route("/v1/webhooks", post(|body: String| async move { body }));
//!
//! let app = ServiceBuilder::new()
//!     .layer(CatchPanicLayer::new().dialect(dialect.clone()))
//!     .layer(NormalizeLayer::new().dialect(dialect.clone()))
//!     .layer(
//!         AuthLayer::new(InMemoryKeyStore::new(keys))
//!             .keys(KeyExtractor::bearer_or_header(HeaderName::from_static("x-api-key")))
//!             .route_policy(RoleTable::read_write())
//!             .dialect(dialect.clone()),
//!     )
//!     .layer(BatchLimitLayer::new().dialect(dialect.clone()))
//!     .layer(AuthorizeItemsLayer::default().dialect(dialect))
//!     .service(router);
//! // Serve it with `axum::serve(listener, axum::ServiceExt::into_make_service(app))`.
//!
//! let six = Request::post("/v1/webhooks")
//!     .header("x-api-key", "demo_admin")
//!     .body(Body::from("[{},{},{},{},{},{}]"))?;
//! let response = app.clone().oneshot(six).await?;
//! assert_eq!(response.status(), 400);
//! let body = response.into_body().collect().await.expect("a contract body");
//! assert_eq!(body.to_bytes(), r#"{"error":"too_many_items"}"#);
//!
//! let unknown = Request::get("/v1/customer/nothing")
//!     .header("x-api-key", "demo_admin")
//!     .body(Body::empty())?;
//! let response = app.oneshot(unknown).await?;
//! assert_eq!(response.status(), 404);
//! assert_eq!(
//!     response.into_body().collect().await.expect("a contract body").to_bytes(),
//!     r#"{"code":10,"message":"Record not found","errors":["not_found"]}"#
//! );
//! # Ok(())
//! # }
//! ```
//!
//! The same layers work on a bare hyper 1 server and on a tonic 0.14 server, where every error
//! is a gRPC status instead (see the crate's `examples/`). [`ServiceBuilderExt`] adds each
//! layer with its defaults as a [`tower::ServiceBuilder`] method.
//!
//! # Features
//!
//! All off by default: the core depends on no web framework and no database.
//!
//! | feature | adds | brings in |
//! | --- | --- | --- |
//! | `sqlite` | `auth::SqliteKeyStore`: issued keys (digests only) in an SQLite file, for one instance; every lookup reads the file, so a key disabled by another process is refused on the next request | rusqlite (bundled SQLite), tokio |
//! | `postgres` | `auth::PostgresKeyStore`: issued keys in PostgreSQL, for many instances, and `auth::RevocationWatch`, which brings each change to every instance's `CachedKeyStore` through `LISTEN`/`NOTIFY` within milliseconds | tokio-postgres, deadpool-postgres, tokio |
//!
//! Key issuance itself ([`auth::KeyFormat`], [`auth::NewKey`]) is in the core: prefixed keys
//! of 256 random bits with a checksum.
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
pub mod builder;
pub mod bulk;
pub mod catch_panic;
pub mod dialect;
pub mod error;
pub mod grpc;
pub mod normalize;

pub use crate::{
    builder::ServiceBuilderExt,
    dialect::{Dialect, ErrorFormat, RenderedError},
    error::{ApiError, ErrorCode, FieldError},
};
