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
//! Each layer is usable alone, and [`Contract`] is all of them as one layer. They share the error model ([`ApiError`], [`ErrorCode`]), the
//! [`dialect`]s that write it on the wire (the bulk dialect `{"error": "too_many_items"}` by
//! default, the numeric [`Coded`](dialect::Coded) dialect, RFC 9457
//! [`ProblemDetails`](dialect::ProblemDetails)), and one rule for answering gRPC calls
//! ([`grpc`]): a trailers-only response with the right `grpc-status`, never JSON. Every layer
//! reads `Content-Type` the same way ([`media`]), so no client-chosen spelling of a media type
//! switches a check off (see `SECURITY.md`).
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
//! # The whole contract, one layer
//!
//! [`Contract`] holds the whole configuration — the dialect, named once (here `/v1/customer/…`
//! in the coded dialect, everything else in the bulk one), the key store and route policy, the
//! batch limits, the per-item policy — and is one layer applying it in the one right order:
//! catch panic, normalize, auth (headers only, so a bad key never costs a body read), batch
//! limit with per-item authorization (one pass over the body), the application.
//!
//! ```
//! use axum::{body::Body, routing::post, Router};
//! use http::{HeaderName, Request};
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_api_errors::{
//!     auth::{AuthLayer, AuthorizeItemsLayer, InMemoryKeyStore, KeyExtractor, KeySet, Principal, RoleTable},
//!     batch_limit::BatchLimitLayer,
//!     dialect::{Bulk, Coded, DialectByPath},
//!     Contract,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = KeySet::new()
//!     .with_key("demo_admin", Principal::new("acct_123").with_roles(["read", "write"]))?;
//! let contract = Contract::new(DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new()))
//!     .auth(
//!         AuthLayer::new(InMemoryKeyStore::new(keys))
//!             .keys(KeyExtractor::bearer_or_header(HeaderName::from_static("x-api-key")))
//!             .route_policy(RoleTable::read_write()),
//!     )
//!     .batch_limit(BatchLimitLayer::new())
//!     .authorize_items(AuthorizeItemsLayer::default());
//! let app = Router::new()
//!     .route("/v1/webhooks", post(|body: String| async move { body }))
//!     .layer(contract);
//! // Serve it with `axum::serve(listener, app)`.
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
//! The [`contract`] module shows the same value on a tonic server, in a
//! [`tower::ServiceBuilder`] and on a bare hyper 1 server. Each layer is also usable alone;
//! the contract is made of them.
//!
//! The same layers work on a bare hyper 1 server and on a tonic 0.14 server, where every error
//! is a gRPC status instead (see the crate's `examples/`). [`ServiceBuilderExt`] adds the
//! contract, or one layer in a given dialect, as a [`tower::ServiceBuilder`] method.
//!
//! # Features
//!
//! All off by default: the core (every layer, the dialects, the gRPC answers, key issuance)
//! depends on no web framework and no database.
//!
//! - **`axum`**: handlers speak the contract. [`ApiError`] and the [`bulk`] builders are
//!   `IntoResponse` (the error is written by the normalize layer in the request's dialect and
//!   wire); extractors for the caller's [`Principal`](auth::Principal), the request's
//!   [`ErrorFormat`], a typed bulk body (`axum::BulkJson`, each item a `T` or its item error
//!   with the serde path of the failing field), and `axum::Json` / `axum::Query` whose
//!   rejections are contract errors.
//! - **`tonic`**: `From<ApiError> for tonic::Status`, with the contract's gRPC status, the
//!   code as the message and the field errors as rich error details (`google.rpc.BadRequest`,
//!   `google.rpc.ErrorInfo`, through `tonic-types`); `tonic::RequestExt::principal` for the
//!   caller of a tonic method.
//! - **`sqlite`**: `auth::SqliteKeyStore`, issued keys (digests only) in an SQLite file, for
//!   one instance; every lookup reads the file, so a key disabled by another process is refused
//!   on the next request. Brings in rusqlite (bundled SQLite) and tokio.
//! - **`postgres`**: `auth::PostgresKeyStore`, issued keys in PostgreSQL, for many instances,
//!   and `auth::RevocationWatch`, which brings each change to every instance's `CachedKeyStore`
//!   through `LISTEN`/`NOTIFY` within milliseconds. Brings in tokio-postgres, deadpool-postgres
//!   and tokio.
//!
//! Key issuance itself ([`auth::KeyFormat`], [`auth::NewKey`]) is in the core: prefixed keys
//! of 256 random bits with a checksum. Without a feature, the contract's rules hold through
//! plain `http` types: an `http::Response<ErrorBody>` made from an [`ApiError`] carries an
//! [`UnrenderedError`](dialect::UnrenderedError), written again by the normalize layer; the
//! layers' gRPC answers carry the rich details ([`grpc::status_details`]); a
//! [`RoleTable`](auth::RoleTable) keys roles by gRPC method path
//! ([`RoleTable::grpc_method`](auth::RoleTable::grpc_method)).
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
#[cfg(feature = "axum")]
pub mod axum;
pub mod batch_limit;
pub mod body;
pub mod builder;
pub mod bulk;
pub mod catch_panic;
pub mod contract;
mod deserialize;
pub mod dialect;
pub mod error;
pub mod grpc;
pub mod media;
pub mod normalize;
#[cfg(feature = "tonic")]
pub mod tonic;

mod macros;
mod path_prefix;

/// The README's examples, compiled and run as doc tests so they cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use crate::{
    builder::ServiceBuilderExt,
    contract::Contract,
    dialect::{Dialect, ErrorFormat, RenderedError},
    error::{ApiError, ErrorCode, FieldError},
};
