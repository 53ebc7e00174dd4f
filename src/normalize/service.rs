use std::{
    convert::Infallible,
    fmt,
    task::{ready, Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::{
    classify::{BoxError, ClassifyError, DefaultClassifyError},
    NormalizeLayer, ResponseFuture, DEFAULT_BODY_LIMIT,
};
use crate::{
    body::ResponseBody,
    dialect::{Bulk, Dialect, ErrorFormat, Wire},
};

/// Middleware that answers every error produced below it in the contract's shape.
///
/// See the [module docs](super) for an example.
pub struct Normalize<S, D = Bulk, C = DefaultClassifyError> {
    inner: S,
    dialect: D,
    classify: C,
    limit: usize,
    // An error from the inner service's `poll_ready`, answered by the next `call`.
    not_ready: Option<BoxError>,
}

impl<S> Normalize<S> {
    /// Wraps `inner` with the defaults of [`NormalizeLayer::new`].
    pub fn new(inner: S) -> Self {
        Self::from_parts(inner, Bulk, DefaultClassifyError, DEFAULT_BODY_LIMIT)
    }

    /// A [`NormalizeLayer`] with the defaults, to configure.
    pub fn layer() -> NormalizeLayer {
        NormalizeLayer::new()
    }
}

impl<S, D, C> Normalize<S, D, C> {
    pub(super) fn from_parts(inner: S, dialect: D, classify: C, limit: usize) -> Self {
        Normalize {
            inner,
            dialect,
            classify,
            limit,
            not_ready: None,
        }
    }

    crate::macros::define_inner_service_accessors!();
}

impl<S, D, C> Clone for Normalize<S, D, C>
where
    S: Clone,
    D: Clone,
    C: Clone,
{
    fn clone(&self) -> Self {
        // A pending `poll_ready` error belongs to the call that follows it, not to the clone.
        Self::from_parts(
            self.inner.clone(),
            self.dialect.clone(),
            self.classify.clone(),
            self.limit,
        )
    }
}

impl<S, D, C> fmt::Debug for Normalize<S, D, C>
where
    S: fmt::Debug,
    D: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Normalize")
            .field("inner", &self.inner)
            .field("dialect", &self.dialect)
            .field("classify", &std::any::type_name::<C>())
            .field("body_limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<S, D, C, ReqBody, ResBody> Service<Request<ReqBody>> for Normalize<S, D, C>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
    D: Dialect + Clone,
    C: ClassifyError + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future, ResBody, D, C>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The layer is infallible: an inner service that cannot become ready gets its error
        // answered as a response by the next call, which does not reach it.
        if self.not_ready.is_none() {
            if let Err(error) = ready!(self.inner.poll_ready(cx)) {
                self.not_ready = Some(error.into());
            }
        }
        Poll::Ready(Ok(()))
    }

    #[inline]
    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Decided now: the request is gone once the inner service has it.
        let wire = Wire::for_headers(request.headers());
        self.call_on(request, wire)
    }
}

impl<S, D, C> Normalize<S, D, C>
where
    D: Clone,
    C: Clone,
{
    /// `call` for a request whose [`Wire`] was decided already: the contract decides it once
    /// for its catch-panic part and this one (`ContractService::call`).
    #[inline]
    pub(crate) fn call_on<ReqBody, ResBody>(
        &mut self,
        request: Request<ReqBody>,
        wire: Wire,
    ) -> ResponseFuture<S::Future, ResBody, D, C>
    where
        S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    {
        let format = ErrorFormat::new(
            wire,
            request.method(),
            request.uri().path_and_query().cloned(),
        );
        let dialect = self.dialect.clone();
        let classify = self.classify.clone();
        match self.not_ready.take() {
            None => ResponseFuture::new(
                self.inner.call(request),
                format,
                dialect,
                classify,
                self.limit,
            ),
            Some(error) => ResponseFuture::not_ready(error, format, dialect, classify, self.limit),
        }
    }
}
