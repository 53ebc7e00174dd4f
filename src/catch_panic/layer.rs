use std::fmt;

use tower_layer::Layer;

use super::{CatchPanic, DefaultResponseForPanic, OnPanic, ResponseForPanic, TypeName};
use crate::dialect::{Bulk, Dialect};

/// Applies [`CatchPanic`]: a panic in the inner service becomes `server_error`.
///
/// `D` is the dialect of the panic response, `R` builds it ([`ResponseForPanic`]) and `P`
/// observes every caught panic ([`OnPanic`]). See the [module docs](super) for examples.
#[must_use]
#[derive(Clone, Copy)]
pub struct CatchPanicLayer<D = Bulk, R = DefaultResponseForPanic, P = ()> {
    dialect: D,
    response_for_panic: R,
    on_panic: P,
}

impl CatchPanicLayer {
    /// Answers panics with `server_error` in the bulk dialect and observes nothing beyond the
    /// log line.
    pub fn new() -> Self {
        CatchPanicLayer {
            dialect: Bulk,
            response_for_panic: DefaultResponseForPanic,
            on_panic: (),
        }
    }
}

impl Default for CatchPanicLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<D, R, P> CatchPanicLayer<D, R, P> {
    /// Renders panic responses in `dialect`, e.g. [`Coded`](crate::dialect::Coded) for
    /// `{"code":1,"message":"Server error","errors":[]}` or a
    /// [`DialectByPath`](crate::dialect::DialectByPath).
    pub fn dialect<D2>(self, dialect: D2) -> CatchPanicLayer<D2, R, P>
    where
        D2: Dialect,
    {
        CatchPanicLayer {
            dialect,
            response_for_panic: self.response_for_panic,
            on_panic: self.on_panic,
        }
    }

    /// Builds panic responses with `response_for_panic` instead of rendering `server_error`.
    ///
    /// A closure must name its argument's type, `|panic: &CaughtPanic<'_>| …`, for Rust to
    /// accept it for every lifetime.
    pub fn response_for_panic<R2>(self, response_for_panic: R2) -> CatchPanicLayer<D, R2, P>
    where
        R2: ResponseForPanic<D>,
    {
        CatchPanicLayer {
            dialect: self.dialect,
            response_for_panic,
            on_panic: self.on_panic,
        }
    }

    /// Calls `on_panic` for every caught panic, wherever it happened.
    ///
    /// A closure must name its argument's type, `|panic: &CaughtPanic<'_>| …`, for Rust to
    /// accept it for every lifetime.
    pub fn on_panic<P2>(self, on_panic: P2) -> CatchPanicLayer<D, R, P2>
    where
        P2: OnPanic,
    {
        CatchPanicLayer {
            dialect: self.dialect,
            response_for_panic: self.response_for_panic,
            on_panic,
        }
    }
}

impl<S, D, R, P> Layer<S> for CatchPanicLayer<D, R, P>
where
    D: Clone,
    R: Clone,
    P: Clone,
{
    type Service = CatchPanic<S, D, R, P>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic::from_parts(
            inner,
            self.dialect.clone(),
            self.response_for_panic.clone(),
            self.on_panic.clone(),
        )
    }
}

impl<D, R, P> fmt::Debug for CatchPanicLayer<D, R, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CatchPanicLayer")
            .field("dialect", &TypeName::<D>::new())
            .field("response_for_panic", &TypeName::<R>::new())
            .field("on_panic", &TypeName::<P>::new())
            .finish()
    }
}
