use std::{fmt, sync::Arc};

use tower_layer::{Identity, Layer};

use super::ContractService;
use crate::{
    auth::{AuthLayer, AuthorizeItemsLayer, ItemPolicy, ItemsCheck},
    batch_limit::{BatchLimit, BatchLimitLayer, DefaultCounter, InspectItems},
    catch_panic::CatchPanicLayer,
    dialect::{Bulk, Dialect},
    normalize::NormalizeLayer,
};

/// The whole contract as one configuration value and one [`Layer`]: catch panic, normalize,
/// auth, batch limit and per-item authorization, in that order, all answering in one dialect.
///
/// Parts that are not configured are not applied: without [`Contract::auth`] there is no key
/// check, without [`Contract::batch_limit`] no item limit. Catch panic and normalize are the
/// contract itself and always apply. See the [module docs](super) for examples.
#[must_use]
pub struct Contract<D = Bulk, A = Identity, C = DefaultCounter, I = ()> {
    dialect: Arc<D>,
    auth: A,
    body: BatchLimitLayer<Arc<D>, C, I>,
    catch_panic: CatchPanicLayer<Arc<D>>,
    normalize: NormalizeLayer<Arc<D>>,
}

impl Contract {
    /// The contract in the bulk dialect, with nothing but catch panic and normalize.
    pub fn bulk() -> Self {
        Contract::new(Bulk)
    }
}

impl Default for Contract {
    fn default() -> Self {
        Contract::bulk()
    }
}

impl<D: Dialect> Contract<D> {
    /// The contract answering in `dialect` (for example a
    /// [`DialectByPath`](crate::dialect::DialectByPath)), with nothing but catch panic and
    /// normalize. The dialect is named here once; every part answers in it.
    pub fn new(dialect: D) -> Self {
        let dialect = Arc::new(dialect);
        Contract {
            auth: Identity::new(),
            body: BatchLimitLayer::unlimited().dialect(Arc::clone(&dialect)),
            catch_panic: CatchPanicLayer::new().dialect(Arc::clone(&dialect)),
            normalize: NormalizeLayer::new().dialect(Arc::clone(&dialect)),
            dialect,
        }
    }
}

impl<D, A, C, I> Contract<D, A, C, I> {
    /// The contract's dialect, to hand to a layer added beside it.
    pub fn dialect(&self) -> &Arc<D> {
        &self.dialect
    }
}

impl<D, C, I> Contract<D, Identity, C, I> {
    /// Authenticates API keys and authorizes routes as `auth` is configured (its key store, key
    /// extractor and route policy); its own dialect is replaced by the contract's.
    pub fn auth<K, P, X>(
        self,
        auth: AuthLayer<K, P, X>,
    ) -> Contract<D, AuthLayer<K, P, Arc<D>>, C, I> {
        Contract {
            auth: auth.dialect(Arc::clone(&self.dialect)),
            body: self.body,
            catch_panic: self.catch_panic,
            normalize: self.normalize,
            dialect: self.dialect,
        }
    }
}

impl<D, A, C, I: InspectItems + Clone> Contract<D, A, C, I> {
    /// Limits the items of bulk requests as `limit` is configured (limits per method, where the
    /// items are, the byte cap); its own dialect is replaced by the contract's. The per-item
    /// authorization, when configured, runs in the same pass over the body.
    pub fn batch_limit<C2, X>(self, limit: BatchLimitLayer<X, C2>) -> Contract<D, A, C2, I> {
        let items = self.body.inspection().clone();
        Contract {
            body: limit.dialect(Arc::clone(&self.dialect)).inspect(items),
            auth: self.auth,
            catch_panic: self.catch_panic,
            normalize: self.normalize,
            dialect: self.dialect,
        }
    }
}

impl<D, K, P> Contract<D, AuthLayer<K, P, Arc<D>>, DefaultCounter, ()> {
    /// Shows every item of a bulk body to the policy of `items` (which methods, where the array
    /// is) before the handler runs; one item refused refuses the whole request (`forbidden`).
    ///
    /// Only a contract with [`Contract::auth`] has this method: the policy needs the caller's
    /// [`Principal`](crate::auth::Principal). The items are found in the batch limit's pass
    /// over the body, whose byte cap applies; gRPC services declared on `items` (see
    /// [`AuthorizeItemsLayer::grpc_service`]) are declared to that pass too.
    pub fn authorize_items<Q, X>(
        self,
        items: AuthorizeItemsLayer<Q, X>,
    ) -> Contract<D, AuthLayer<K, P, Arc<D>>, DefaultCounter, ItemsCheck<Q>>
    where
        Q: ItemPolicy + Clone,
    {
        let check = items.into_check();
        let mut body = self.body;
        for service in check.grpc_services() {
            body = body.grpc_service(service.clone());
        }
        Contract {
            body: body.inspect(check),
            auth: self.auth,
            catch_panic: self.catch_panic,
            normalize: self.normalize,
            dialect: self.dialect,
        }
    }
}

impl<S, D, A, C, I> Layer<S> for Contract<D, A, C, I>
where
    A: Layer<BatchLimit<S, Arc<D>, C, I>>,
    C: Clone,
    I: Clone,
{
    type Service = ContractService<A::Service, D>;

    fn layer(&self, inner: S) -> Self::Service {
        let body = self.body.layer(inner).hand_on_panics();
        let auth = self.auth.layer(body);
        ContractService::new(self.catch_panic.layer(self.normalize.layer(auth)))
    }
}

impl<D, A: Clone, C: Clone, I: Clone> Clone for Contract<D, A, C, I> {
    fn clone(&self) -> Self {
        Contract {
            dialect: Arc::clone(&self.dialect),
            auth: self.auth.clone(),
            body: self.body.clone(),
            catch_panic: self.catch_panic.clone(),
            normalize: self.normalize.clone(),
        }
    }
}

impl<D: fmt::Debug, A: fmt::Debug, C: fmt::Debug, I: fmt::Debug> fmt::Debug
    for Contract<D, A, C, I>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contract")
            .field("dialect", &self.dialect)
            .field("auth", &self.auth)
            .field("body", &self.body)
            .finish_non_exhaustive()
    }
}
