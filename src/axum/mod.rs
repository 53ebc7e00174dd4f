//! axum integration (feature `axum`): handlers speak the contract.
//!
//! - [`ApiError`] is an `IntoResponse`, so a handler returns `Result<_, ApiError>` and `?`
//!   works on every error that converts into one. The error is written by the normalize layer
//!   the response passes through, in the request's dialect and wire: the bulk body on a bulk
//!   route, the coded body on a coded route, problem details when the client asks for them,
//!   trailers-only for a gRPC caller. Outside any contract layer it is the bulk dialect.
//! - [`BulkWrite`](crate::bulk::BulkWrite) and [`BulkRead`](crate::bulk::BulkRead) are
//!   `IntoResponse` (`200 OK`, JSON).
//! - Extractors: the caller's [`Principal`](crate::auth::Principal) (from the auth layer),
//!   the request's [`ErrorFormat`](crate::ErrorFormat), a typed bulk body [`BulkJson`], and
//!   [`Json`] and [`Query`], whose rejections are contract errors directly (the normalize
//!   layer's parser of axum's rejection text stays the fallback for `axum::Json` and
//!   `axum::extract::Query`).
//!
//! ```
//! use axum::{routing::post, Router};
//! use http::{Request, StatusCode};
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_api_errors::{
//!     axum::Json,
//!     dialect::{Bulk, Coded, DialectByPath},
//!     normalize::NormalizeLayer,
//!     ApiError, ErrorCode,
//! };
//!
//! #[derive(serde::Deserialize)]
//! struct Course { name: String }
//!
//! async fn create(Json(course): Json<Course>) -> Result<String, ApiError> {
//!     if course.name.is_empty() {
//!         return Err(ApiError::new(ErrorCode::ValueNotValid).with_detail("name is empty"));
//!     }
//!     Ok(course.name)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Router::new()
//!     .route("/v1/courses", post(create))
//!     .route("/v1/customer/courses", post(create))
//!     .layer(NormalizeLayer::new().dialect(DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new())));
//!
//! let post = |path: &str| {
//!     Request::post(path)
//!         .header("content-type", "application/json")
//!         .body(axum::body::Body::from(r#"{"name": ""}"#))
//! };
//! let response = app.clone().oneshot(post("/v1/courses")?).await?;
//! assert_eq!(response.status(), StatusCode::BAD_REQUEST);
//! assert_eq!(response.into_body().collect().await?.to_bytes(), r#"{"error":"value_not_valid"}"#);
//!
//! let response = app.oneshot(post("/v1/customer/courses")?).await?;
//! assert_eq!(
//!     response.into_body().collect().await?.to_bytes(),
//!     r#"{"code":8,"message":"Value not valid","errors":["name is empty"]}"#
//! );
//! # Ok(())
//! # }
//! ```
//!
//! [`ApiError`]: crate::ApiError

mod bulk_json;
mod extract;
mod response;

pub use self::{
    bulk_json::{BulkJson, BulkJsonConfig},
    extract::{Json, Query},
};
