use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::{
    body::ResponseBody,
    catch_panic::{self, CatchPanic, DefaultResponseForPanic, RequestHead},
    dialect::{Dialect, Wire},
    error::BoxError,
    normalize::{self, DefaultClassifyError, Normalize},
};

/// The outer two parts of the contract, around the configured ones.
type Outer<S, D> = CatchPanic<Normalize<S, Arc<D>>, Arc<D>>;

/// The service made by [`Contract`](super::Contract): the whole contract around `S`, whose own
/// inner service is the application.
///
/// Its error type is [`Infallible`] (every error is a response) and its response body is one
/// type, [`ContractBody`], whatever the configuration.
pub struct ContractService<S, D> {
    inner: Outer<S, D>,
}

impl<S, D> ContractService<S, D> {
    pub(super) fn new(inner: Outer<S, D>) -> Self {
        ContractService { inner }
    }

    /// The configured parts around the application.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref().get_ref()
    }

    /// The configured parts around the application, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        self.inner.get_mut().get_mut()
    }

    /// Unwraps the configured parts around the application.
    pub fn into_inner(self) -> S {
        self.inner.into_inner().into_inner()
    }
}

impl<S: Clone, D> Clone for ContractService<S, D> {
    fn clone(&self) -> Self {
        ContractService {
            inner: self.inner.clone(),
        }
    }
}

impl<S: fmt::Debug, D: fmt::Debug> fmt::Debug for ContractService<S, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContractService")
            .field("inner", &self.inner)
            .finish()
    }
}

/// The response future of the outer two parts, around the configured parts' future `F`
/// whose body is `B`.
type OuterFuture<F, B, D> = catch_panic::ResponseFuture<
    normalize::ResponseFuture<F, B, Arc<D>, DefaultClassifyError>,
    Arc<D>,
    DefaultResponseForPanic,
    (),
>;

/// The response body of the outer two parts, around the configured parts' body `B`.
type OuterBody<B> = catch_panic::ResponseBody<ResponseBody<B>, ()>;

// The bounds are those of the two outer parts' `Service` impls, spelled out: `call` hands
// them the request with its wire decided once.
impl<S, D, ReqBody, ResBody> Service<Request<ReqBody>> for ContractService<S, D>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
    D: Dialect,
{
    type Response = Response<ContractBody<OuterBody<ResBody>>>;
    type Error = Infallible;
    type Future = ResponseFuture<OuterFuture<S::Future, ResBody, D>>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Decided once for the catch-panic part and the normalize part, which would otherwise
        // each read `Content-Type` and `Accept` (`benches/stack.rs`, every row).
        let wire = Wire::for_headers(request.headers());
        let head = RequestHead::capture_on(&request, wire);
        ResponseFuture {
            inner: self.inner.call_on(request, head, |normalize, request| {
                normalize.call_on(request, wire)
            }),
        }
    }
}

pin_project! {
    /// The response future of [`ContractService`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
    }
}

impl<F, B> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, Infallible>>,
{
    type Output = Result<Response<ContractBody<B>>, Infallible>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = ready!(self.project().inner.poll(cx))?;
        Poll::Ready(Ok(response.map(|inner| ContractBody { inner })))
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

pin_project! {
    /// The response body of [`ContractService`]: the application's body as it was sent, or a
    /// contract error body; a panic while it streams ends it as the catch-panic part says.
    pub struct ContractBody<B> {
        #[pin]
        inner: B,
    }
}

impl<B: Body> Body for ContractBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> fmt::Debug for ContractBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContractBody").finish_non_exhaustive()
    }
}
