//! [`ServiceBuilderExt`]: the crate's layers as [`ServiceBuilder`] methods, so a stack reads as
//! one chain.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_api_errors::{
//!     auth::{InMemoryKeyStore, KeySet, Principal},
//!     body::RequestBody,
//!     ServiceBuilderExt,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = KeySet::new().with_key("demo_admin", Principal::new("acct_123").with_roles(["write"]))?;
//! let service = ServiceBuilder::new()
//!     .catch_api_panics()
//!     .normalize_api_errors()
//!     .authenticate_api_keys(InMemoryKeyStore::new(keys))
//!     .limit_batch_items()
//!     .authorize_bulk_items()
//!     .service_fn(|_: Request<RequestBody<RequestBody<Full<Bytes>>>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
//!     });
//!
//! let request = Request::post("/v1/webhooks")
//!     .header("authorization", "Bearer demo_admin")
//!     .body(Full::from("[1,2,3,4,5,6]"))?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), 400);
//! # Ok(())
//! # }
//! ```
//!
//! Each method adds the layer with its defaults (the bulk dialect among them); to configure
//! one, add it with [`ServiceBuilder::layer`] instead.

use tower::{layer::util::Stack, ServiceBuilder};

use crate::{
    auth::{AuthLayer, AuthorizeItemsLayer},
    batch_limit::BatchLimitLayer,
    catch_panic::CatchPanicLayer,
    normalize::NormalizeLayer,
};

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// The crate's layers as [`ServiceBuilder`] methods. Add them outermost first, in this order.
pub trait ServiceBuilderExt<L>: sealed::Sealed + Sized {
    /// Adds [`CatchPanicLayer::new`]: a panic below becomes `server_error`.
    fn catch_api_panics(self) -> ServiceBuilder<Stack<CatchPanicLayer, L>>;

    /// Adds [`NormalizeLayer::new`]: every other error response gets the contract's shape.
    fn normalize_api_errors(self) -> ServiceBuilder<Stack<NormalizeLayer, L>>;

    /// Adds [`AuthLayer::new`] over `store`: `unauthorized` and `forbidden`.
    fn authenticate_api_keys<K>(self, store: K) -> ServiceBuilder<Stack<AuthLayer<K>, L>>;

    /// Adds [`BatchLimitLayer::new`]: `too_many_items` past 5 items (10 for `GET`).
    fn limit_batch_items(self) -> ServiceBuilder<Stack<BatchLimitLayer, L>>;

    /// Adds the default [`AuthorizeItemsLayer`]: every item of a bulk body must belong to the
    /// key's account.
    fn authorize_bulk_items(self) -> ServiceBuilder<Stack<AuthorizeItemsLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn catch_api_panics(self) -> ServiceBuilder<Stack<CatchPanicLayer, L>> {
        self.layer(CatchPanicLayer::new())
    }

    fn normalize_api_errors(self) -> ServiceBuilder<Stack<NormalizeLayer, L>> {
        self.layer(NormalizeLayer::new())
    }

    fn authenticate_api_keys<K>(self, store: K) -> ServiceBuilder<Stack<AuthLayer<K>, L>> {
        self.layer(AuthLayer::new(store))
    }

    fn limit_batch_items(self) -> ServiceBuilder<Stack<BatchLimitLayer, L>> {
        self.layer(BatchLimitLayer::new())
    }

    fn authorize_bulk_items(self) -> ServiceBuilder<Stack<AuthorizeItemsLayer, L>> {
        self.layer(AuthorizeItemsLayer::default())
    }
}
