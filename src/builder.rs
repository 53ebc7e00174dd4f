//! [`ServiceBuilderExt`]: the contract, or one of its layers, as a [`ServiceBuilder`] method,
//! so a stack reads as one chain.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_api_errors::{
//!     auth::{AuthLayer, AuthorizeItemsLayer, InMemoryKeyStore, KeySet, Principal},
//!     batch_limit::BatchLimitLayer,
//!     body::RequestBody,
//!     dialect::Coded,
//!     Contract, ServiceBuilderExt,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = KeySet::new().with_key("demo_admin", Principal::new("acct_123").with_roles(["write"]))?;
//! let contract = Contract::new(Coded::new())
//!     .auth(AuthLayer::new(InMemoryKeyStore::new(keys)))
//!     .batch_limit(BatchLimitLayer::new())
//!     .authorize_items(AuthorizeItemsLayer::default());
//! let service = ServiceBuilder::new()
//!     .api_contract(contract)
//!     .service_fn(|_: Request<RequestBody<Full<Bytes>>>| async {
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
//! A stack that takes one layer alone names its dialect: [`Contract::dialect`] hands the
//! contract's to a layer added beside it, so the two cannot disagree.
//!
//! ```
//! use tower::ServiceBuilder;
//! use tower_api_errors::{dialect::Coded, ServiceBuilderExt};
//!
//! let layers = ServiceBuilder::new()
//!     .catch_api_panics(Coded::new())
//!     .normalize_api_errors(Coded::new());
//! # let _ = layers;
//! ```

use tower::{layer::util::Stack, ServiceBuilder};

use crate::{
    auth::{AuthLayer, AuthorizeItemsLayer, SameAccount},
    batch_limit::BatchLimitLayer,
    catch_panic::CatchPanicLayer,
    contract::Contract,
    dialect::Dialect,
    normalize::NormalizeLayer,
};

mod sealed {
    pub trait Sealed {}

    impl<L> Sealed for tower::ServiceBuilder<L> {}
}

/// The crate's layers as [`ServiceBuilder`] methods; see the [module docs](self).
///
/// Each method takes what its layer cannot do without: the contract, or the dialect it answers
/// in (and the key store for auth). Configure a layer further with [`ServiceBuilder::layer`].
pub trait ServiceBuilderExt<L>: sealed::Sealed + Sized {
    /// Adds the whole contract: one [`Contract`], its parts in the one right order.
    fn api_contract<D, A, C, I>(
        self,
        contract: Contract<D, A, C, I>,
    ) -> ServiceBuilder<Stack<Contract<D, A, C, I>, L>>;

    /// Adds [`CatchPanicLayer`] answering in `dialect`: a panic becomes `server_error`.
    fn catch_api_panics<D: Dialect + Clone>(
        self,
        dialect: D,
    ) -> ServiceBuilder<Stack<CatchPanicLayer<D>, L>>;

    /// Adds [`NormalizeLayer`] answering in `dialect`: every error response in the contract's
    /// shape.
    fn normalize_api_errors<D: Dialect + Clone>(
        self,
        dialect: D,
    ) -> ServiceBuilder<Stack<NormalizeLayer<D>, L>>;

    /// Adds [`AuthLayer`] over `store`, answering in `dialect`: `unauthorized` and `forbidden`.
    fn authenticate_api_keys<K, D>(
        self,
        store: K,
        dialect: D,
    ) -> ServiceBuilder<Stack<AuthLayer<K, crate::auth::Authenticated, D>, L>>;

    /// Adds [`BatchLimitLayer`] answering in `dialect`: `too_many_items` past 5 items (10 for
    /// `GET`).
    fn limit_batch_items<D>(self, dialect: D) -> ServiceBuilder<Stack<BatchLimitLayer<D>, L>>;

    /// Adds the default [`AuthorizeItemsLayer`] answering in `dialect`: every item of a bulk
    /// body must belong to the key's account.
    fn authorize_bulk_items<D>(
        self,
        dialect: D,
    ) -> ServiceBuilder<Stack<AuthorizeItemsLayer<SameAccount, D>, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn api_contract<D, A, C, I>(
        self,
        contract: Contract<D, A, C, I>,
    ) -> ServiceBuilder<Stack<Contract<D, A, C, I>, L>> {
        self.layer(contract)
    }

    fn catch_api_panics<D: Dialect + Clone>(
        self,
        dialect: D,
    ) -> ServiceBuilder<Stack<CatchPanicLayer<D>, L>> {
        self.layer(CatchPanicLayer::new().dialect(dialect))
    }

    fn normalize_api_errors<D: Dialect + Clone>(
        self,
        dialect: D,
    ) -> ServiceBuilder<Stack<NormalizeLayer<D>, L>> {
        self.layer(NormalizeLayer::new().dialect(dialect))
    }

    fn authenticate_api_keys<K, D>(
        self,
        store: K,
        dialect: D,
    ) -> ServiceBuilder<Stack<AuthLayer<K, crate::auth::Authenticated, D>, L>> {
        self.layer(AuthLayer::new(store).dialect(dialect))
    }

    fn limit_batch_items<D>(self, dialect: D) -> ServiceBuilder<Stack<BatchLimitLayer<D>, L>> {
        self.layer(BatchLimitLayer::new().dialect(dialect))
    }

    fn authorize_bulk_items<D>(
        self,
        dialect: D,
    ) -> ServiceBuilder<Stack<AuthorizeItemsLayer<SameAccount, D>, L>> {
        self.layer(AuthorizeItemsLayer::default().dialect(dialect))
    }
}
