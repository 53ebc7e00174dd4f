use std::{fmt, sync::Arc};

use http::Method;
use tower_layer::Layer;

use super::{
    count::{DefaultCounter, GrpcItems, GrpcService, OtherBodies},
    inspect::InspectItems,
    BatchLimit,
};
use crate::dialect::Bulk;

/// The seed's limits: 5 items for `POST`, `PUT`, `PATCH` and `DELETE`, 10 for `GET`.
const DEFAULT_LIMITS: [(Method, usize); 5] = [
    (Method::GET, 10),
    (Method::POST, 5),
    (Method::PUT, 5),
    (Method::PATCH, 5),
    (Method::DELETE, 5),
];

/// The default byte cap: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Applies [`BatchLimit`] to a service: refuses bulk requests with too many items.
///
/// See the [module docs](super) for what it does and examples.
#[derive(Clone)]
#[must_use]
pub struct BatchLimitLayer<D = Bulk, C = DefaultCounter, I = ()> {
    limits: Vec<(Method, usize)>,
    max_body_bytes: usize,
    dialect: D,
    counter: C,
    inspect: I,
}

impl BatchLimitLayer {
    /// The seed's limits (5 items for `POST`, `PUT`, `PATCH`, `DELETE`; 10 for `GET`), a
    /// 1 MiB byte cap, the bulk dialect and the [`DefaultCounter`].
    pub fn new() -> Self {
        BatchLimitLayer {
            limits: DEFAULT_LIMITS.to_vec(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            dialect: Bulk,
            counter: DefaultCounter::new(),
            inspect: (),
        }
    }

    /// No item limit on any method: for a layer that only reads and checks items (see
    /// [`InspectItems`]).
    pub(crate) fn unlimited() -> Self {
        BatchLimitLayer {
            limits: Vec::new(),
            ..Self::new()
        }
    }
}

impl Default for BatchLimitLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<D, C, I> BatchLimitLayer<D, C, I> {
    /// At most `max_items` items per request with `method` (replacing its limit, if any).
    ///
    /// `HEAD` always has `GET`'s limit (routers answer `HEAD` with the `GET` handler), so a
    /// limit set for `HEAD` itself has no effect.
    pub fn limit(mut self, method: Method, max_items: usize) -> Self {
        self.limits.retain(|(existing, _)| *existing != method);
        self.limits.push((method, max_items));
        self
    }

    /// Requests with `method` pass untouched (for `GET`, `HEAD` too).
    pub fn no_limit(mut self, method: &Method) -> Self {
        self.limits.retain(|(existing, _)| existing != method);
        self
    }

    /// The largest body the layer reads, in bytes (1 MiB by default). A request declaring a
    /// larger `Content-Length` is refused before any byte is read; one whose body grows past
    /// it is refused when it does. Either way: `payload_too_large` (413).
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// Answers in `dialect` instead.
    pub fn dialect<D2>(self, dialect: D2) -> BatchLimitLayer<D2, C, I> {
        BatchLimitLayer {
            limits: self.limits,
            max_body_bytes: self.max_body_bytes,
            dialect,
            counter: self.counter,
            inspect: self.inspect,
        }
    }

    /// Runs `inspect` on the items of every body the layer reads, before the inner service is
    /// called; the methods it names are read even where no item limit applies.
    pub(crate) fn inspect<I2: InspectItems>(self, inspect: I2) -> BatchLimitLayer<D, C, I2> {
        let mut limits = self.limits;
        for method in inspect.methods() {
            if !limits.iter().any(|(limited, _)| limited == method) {
                limits.push((method.clone(), usize::MAX));
            }
        }
        BatchLimitLayer {
            limits,
            max_body_bytes: self.max_body_bytes,
            dialect: self.dialect,
            counter: self.counter,
            inspect,
        }
    }

    /// The item check of this layer.
    pub(crate) fn inspection(&self) -> &I {
        &self.inspect
    }

    /// Counts items with `counter` instead: a [`CountItems`](super::CountItems)
    /// implementation or a closure.
    pub fn counter<C2>(self, counter: C2) -> BatchLimitLayer<D, C2, I> {
        BatchLimitLayer {
            limits: self.limits,
            max_body_bytes: self.max_body_bytes,
            dialect: self.dialect,
            counter,
            inspect: self.inspect,
        }
    }
}

impl<D, I> BatchLimitLayer<D, DefaultCounter, I> {
    /// See [`DefaultCounter::json_field`].
    pub fn json_field(self, name: impl Into<String>) -> Self {
        self.map_counter(|counter| counter.json_field(name))
    }

    /// See [`DefaultCounter::query_param`].
    pub fn query_param(self, name: impl Into<String>) -> Self {
        self.map_counter(|counter| counter.query_param(name))
    }

    /// See [`DefaultCounter::no_query_param`].
    pub fn no_query_param(self) -> Self {
        self.map_counter(DefaultCounter::no_query_param)
    }

    /// See [`DefaultCounter::strict_json`].
    pub fn strict_json(self, strict: bool) -> Self {
        self.map_counter(|counter| counter.strict_json(strict))
    }

    /// See [`DefaultCounter::other_bodies`].
    pub fn other_bodies(self, other: OtherBodies) -> Self {
        self.map_counter(|counter| counter.other_bodies(other))
    }

    /// See [`DefaultCounter::grpc`].
    pub fn grpc(self, items: GrpcItems) -> Self {
        self.map_counter(|counter| counter.grpc(items))
    }

    /// See [`DefaultCounter::grpc_service`].
    pub fn grpc_service(self, service: GrpcService) -> Self {
        self.map_counter(|counter| counter.grpc_service(service))
    }

    fn map_counter(mut self, f: impl FnOnce(DefaultCounter) -> DefaultCounter) -> Self {
        self.counter = f(self.counter);
        self
    }
}

impl<S, D: Clone, C: Clone, I: Clone> Layer<S> for BatchLimitLayer<D, C, I> {
    type Service = BatchLimit<S, D, C, I>;

    fn layer(&self, inner: S) -> Self::Service {
        BatchLimit::from_shared(
            inner,
            Arc::new(Shared {
                limits: self.limits.clone().into(),
                max_body_bytes: self.max_body_bytes,
                dialect: self.dialect.clone(),
                counter: self.counter.clone(),
                inspect: self.inspect.clone(),
                hand_on_panics: false,
            }),
        )
    }
}

impl<D: fmt::Debug, C: fmt::Debug, I: fmt::Debug> fmt::Debug for BatchLimitLayer<D, C, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchLimitLayer")
            .field("limits", &self.limits)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("dialect", &self.dialect)
            .field("counter", &self.counter)
            .field("inspect", &self.inspect)
            .finish()
    }
}

/// The configuration shared by a service's clones and its futures.
#[derive(Debug)]
pub(crate) struct Shared<D, C, I = ()> {
    pub(crate) limits: Box<[(Method, usize)]>,
    pub(crate) max_body_bytes: usize,
    pub(crate) dialect: D,
    pub(crate) counter: C,
    pub(crate) inspect: I,
    /// Inside a [`Contract`](crate::Contract): the application's panics are caught around it
    /// and handed to the contract's catch-panic part (`catch_panic::hand_on`).
    pub(crate) hand_on_panics: bool,
}

impl<D, C, I> Shared<D, C, I> {
    /// The limit for `method`. `HEAD` is held to `GET`'s: routers answer `HEAD` with the `GET`
    /// handler, so a client must not be able to lift the limit by choosing `HEAD`.
    pub(crate) fn limit(&self, method: &Method) -> Option<usize> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.limits
            .iter()
            .find(|(limited, _)| limited == method)
            .map(|&(_, max)| max)
    }
}

impl Shared<Bulk, DefaultCounter> {
    pub(crate) fn new() -> Self {
        Shared {
            limits: DEFAULT_LIMITS.to_vec().into(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            dialect: Bulk,
            counter: DefaultCounter::new(),
            inspect: (),
            hand_on_panics: false,
        }
    }
}
