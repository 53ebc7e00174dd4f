//! The whole contract in one layer: one configuration, one dialect.
//!
//! [`Contract`] is one value holding everything the contract needs — the dialect (or
//! per-route dialects), the key store and route policy, the batch limits, the per-item policy
//! — and one [`Layer`](tower_layer::Layer) applying all of it in the one right order:
//!
//! catch panic → normalize → auth → batch limit with per-item authorization → your service.
//!
//! The dialect is named once. Parts not configured are not applied (no [`Contract::auth`]: no
//! key check). [`Contract::authorize_items`] exists only once [`Contract::auth`] is set, so a
//! per-item policy without a caller to check is a compile error, not a 500. The body is read
//! once, by the batch limit's reader, and the per-item policy sees the items it found in the
//! same pass; the handler gets one request body type,
//! [`RequestBody<B>`](crate::body::RequestBody), and one response body type,
//! [`ContractBody`], leaves the stack.
//!
//! Without auth, there is no `authorize_items` to call:
//!
//! ```compile_fail
//! use tower_api_errors::{auth::AuthorizeItemsLayer, Contract};
//!
//! let contract = Contract::bulk().authorize_items(AuthorizeItemsLayer::default());
//! ```
//!
//! # axum
//!
//! Add it with `Router::layer`, and serve the router as it is:
//!
//! ```
//! use axum::{routing::post, Router};
//! use http::HeaderName;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
//! let router = Router::new()
//!     .route("/v1/webhooks", post(|body: String| async move { body }))
//!     .layer(contract);
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move { axum::serve(listener, router).await });
//!
//! let mut client = tokio::net::TcpStream::connect(addr).await?;
//! let body = "[{},{},{},{},{},{}]";
//! client
//!     .write_all(
//!         format!(
//!             "POST /v1/webhooks HTTP/1.1\r\nhost: x\r\nx-api-key: demo_admin\r\n\
//!              connection: close\r\ncontent-length: {}\r\n\r\n{body}",
//!             body.len()
//!         )
//!         .as_bytes(),
//!     )
//!     .await?;
//! let mut answer = String::new();
//! client.read_to_string(&mut answer).await?;
//! assert!(answer.starts_with("HTTP/1.1 400"));
//! assert!(answer.ends_with(r#"{"error":"too_many_items"}"#));
//! # Ok(())
//! # }
//! ```
//!
//! # tower::ServiceBuilder and a bare hyper 1 server
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use hyper_util::{rt::{TokioExecutor, TokioIo}, server::conn::auto, service::TowerToHyperService};
//! use tower::ServiceBuilder;
//! use tower_api_errors::{batch_limit::BatchLimitLayer, body::RequestBody, Contract};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let service = ServiceBuilder::new()
//!     .layer(Contract::bulk().batch_limit(BatchLimitLayer::new()))
//!     .service_fn(|request: Request<RequestBody<hyper::body::Incoming>>| async move {
//!         let body = request.into_body().collect().await.map(|body| body.to_bytes());
//!         Ok::<_, Infallible>(Response::new(Full::new(body.unwrap_or_default())))
//!     });
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     while let Ok((stream, _)) = listener.accept().await {
//!         let service = TowerToHyperService::new(service.clone());
//!         tokio::spawn(async move {
//!             let _ = auto::Builder::new(TokioExecutor::new())
//!                 .serve_connection(TokioIo::new(stream), service)
//!                 .await;
//!         });
//!     }
//! });
//!
//! let stream = TokioIo::new(tokio::net::TcpStream::connect(addr).await?);
//! let (mut sender, connection) = hyper::client::conn::http1::handshake(stream).await?;
//! tokio::spawn(connection);
//! let request = Request::post("/v1/webhooks").header("host", "x").body(Full::<Bytes>::from("[1,2,3,4,5,6]"))?;
//! let response = sender.send_request(request).await?;
//! assert_eq!(response.status(), 400);
//! assert_eq!(response.into_body().collect().await?.to_bytes(), r#"{"error":"too_many_items"}"#);
//! # Ok(())
//! # }
//! ```
//!
//! # tonic
//!
//! The same value, cloned, goes on a tonic server, where every error is a gRPC status:
//!
//! ```
//! use tonic::{service::Routes, transport::Server};
//! use tower_api_errors::{batch_limit::BatchLimitLayer, Contract};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let contract = Contract::bulk().batch_limit(BatchLimitLayer::new());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
//! Server::builder()
//!     .layer(contract.clone())
//!     .add_routes(Routes::default())
//!     .serve_with_incoming_shutdown(incoming, async {})
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! # What each part takes from its layer
//!
//! Each part is configured with the builder of its separate layer ([`AuthLayer`](crate::auth::AuthLayer),
//! [`BatchLimitLayer`](crate::batch_limit::BatchLimitLayer),
//! [`AuthorizeItemsLayer`](crate::auth::AuthorizeItemsLayer)), so a setting has one name
//! whether the layer is used alone or in the contract; the part's own dialect is replaced by
//! the contract's. The separate layers stay usable alone and are the same code: the contract
//! is those layers, sharing one dialect and one pass over the body.
//!
//! - The per-item policy runs inside the batch limit's pass, so the body cap is the batch
//!   limit's ([`BatchLimitLayer::max_body_bytes`](crate::batch_limit::BatchLimitLayer::max_body_bytes),
//!   1 MiB by default); the methods it checks are read even where no item limit applies.
//! - Catch panic and normalize take their defaults; a stack that needs a custom
//!   [`ResponseForPanic`](crate::catch_panic::ResponseForPanic) or
//!   [`ClassifyError`](crate::normalize::ClassifyError) composes the separate layers, with
//!   [`Contract::dialect`] for the dialect.
//! - A panic of your service is caught right around it and answered by the catch-panic part
//!   as if it had unwound that far (the same response, log line and stage), so the unwinding
//!   does not cross the other parts; a panic in the contract's own parts, in a key store or in
//!   a per-item policy unwinds to the catch-panic part as before.

mod layer;
mod service;

pub use self::{
    layer::Contract,
    service::{ContractBody, ContractService, ResponseFuture},
};

#[cfg(test)]
mod tests;
