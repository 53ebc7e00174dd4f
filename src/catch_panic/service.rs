use crate::catch_panic::hook::{catching, take_handed_on};
use std::{
    fmt,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::{
    answer, drop_guarded, future::PanicContext, head::RequestHead, CatchPanicLayer,
    DefaultResponseForPanic, OnPanic, PanicStage, ResponseBody, ResponseForPanic, ResponseFuture,
    TypeName,
};
use crate::{
    dialect::{Bulk, Dialect},
    error::BoxError,
};

/// Turns panics of the inner service into `server_error`; see the [module docs](super).
///
/// Made by [`CatchPanicLayer`], or by [`CatchPanic::new`] with the defaults.
#[derive(Clone, Copy)]
pub struct CatchPanic<S, D = Bulk, R = DefaultResponseForPanic, P = ()> {
    inner: S,
    dialect: D,
    response_for_panic: R,
    on_panic: P,
}

impl<S> CatchPanic<S> {
    /// Wraps `inner`, answering its panics with `server_error` in the bulk dialect.
    pub fn new(inner: S) -> Self {
        CatchPanic::from_parts(inner, Bulk, DefaultResponseForPanic, ())
    }

    /// A [`CatchPanicLayer`] with the defaults, to customise.
    pub fn layer() -> CatchPanicLayer {
        CatchPanicLayer::new()
    }
}

impl<S, D, R, P> CatchPanic<S, D, R, P> {
    pub(super) fn from_parts(inner: S, dialect: D, response_for_panic: R, on_panic: P) -> Self {
        CatchPanic {
            inner,
            dialect,
            response_for_panic,
            on_panic,
        }
    }

    crate::macros::define_inner_service_accessors!();
}

impl<S, D, R, P, ReqBody, ResBody> Service<Request<ReqBody>> for CatchPanic<S, D, R, P>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<BoxError>,
    D: Dialect + Clone,
    R: ResponseForPanic<D> + Clone,
    P: OnPanic + Clone,
{
    type Response = Response<ResponseBody<ResBody, P>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, D, R, P>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    #[inline]
    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Captured now: once the request is handed on, a panic leaves nothing to read it from.
        let head = RequestHead::capture(&request);
        self.call_on(request, head, S::call)
    }
}

impl<S, D, R, P> CatchPanic<S, D, R, P>
where
    D: Dialect + Clone,
    R: ResponseForPanic<D> + Clone,
    P: OnPanic + Clone,
{
    /// `call` for a request whose head is `head`, handing it to the inner service with
    /// `call_inner`: the contract decides the request's wire once for this part and the next
    /// (`ContractService::call`).
    #[inline]
    pub(crate) fn call_on<Req, F>(
        &mut self,
        request: Req,
        head: RequestHead,
        call_inner: impl FnOnce(&mut S, Req) -> F,
    ) -> ResponseFuture<F, D, R, P> {
        // The request stays in this frame rather than going through `catch_unwind`'s closure,
        // and the inner future is written straight into the response future rather than
        // through `catch_unwind`'s return value and this frame, each of which would copy it
        // once more (`benches/stack.rs`, `valid_5_items full_stack`).
        let mut request = Some(request);
        let mut future = ResponseFuture::placeholder();
        let context = PanicContext {
            head,
            dialect: self.dialect.clone(),
            response_for_panic: self.response_for_panic.clone(),
            on_panic: self.on_panic.clone(),
        };
        let inner = &mut self.inner;
        let caught = catching(|| {
            if let Some(request) = request.take() {
                future.wait(call_inner(inner, request), context);
            }
        });
        // A panic caught deeper in a contract (see `hook::hand_on`) is answered as if it had
        // unwound to here; the future it left is dropped unpolled.
        if let Err(payload) = caught.and_then(|()| take_handed_on().map_or(Ok(()), Err)) {
            drop_guarded(|| drop(future));
            return ResponseFuture::answered(answer(
                payload,
                &head,
                PanicStage::Call,
                &self.dialect,
                &mut self.response_for_panic,
                &mut self.on_panic,
            ));
        }
        future
    }
}

impl<S, D, R, P> fmt::Debug for CatchPanic<S, D, R, P>
where
    S: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CatchPanic")
            .field("inner", &self.inner)
            .field("dialect", &TypeName::<D>::new())
            .field("response_for_panic", &TypeName::<R>::new())
            .field("on_panic", &TypeName::<P>::new())
            .finish()
    }
}
