use std::{
    fmt, mem,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::{
    count::{CountItems, DefaultCounter, Start},
    future::{Job, ResponseFuture},
    inspect::InspectItems,
    layer::Shared,
    BatchLimitLayer,
};
use crate::{
    body::{declared_length, RequestBody, ResponseBody},
    dialect::{Bulk, Dialect},
};

/// Refuses bulk requests with more items than allowed, counting them as the body arrives.
///
/// Made by [`BatchLimitLayer`]; see the [module docs](super).
pub struct BatchLimit<S, D = Bulk, C = DefaultCounter, I = ()> {
    inner: S,
    shared: Arc<Shared<D, C, I>>,
}

impl<S> BatchLimit<S> {
    /// Wraps `inner` with the default configuration (see [`BatchLimitLayer::new`]).
    pub fn new(inner: S) -> Self {
        Self::from_shared(inner, Arc::new(Shared::new()))
    }

    /// A [`BatchLimitLayer`] with the default configuration, to configure further.
    pub fn layer() -> BatchLimitLayer {
        BatchLimitLayer::new()
    }
}

impl<S, D, C, I> BatchLimit<S, D, C, I> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<D, C, I>>) -> Self {
        BatchLimit { inner, shared }
    }

    pub(crate) fn shared(&self) -> &Shared<D, C, I> {
        &self.shared
    }

    /// Catches the application's panics around it and hands them to the contract's
    /// catch-panic part (`catch_panic::hand_on`); only the contract, which has that part
    /// around this one, asks for it.
    pub(crate) fn hand_on_panics(mut self) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("asked of a service just made")
            .hand_on_panics = true;
        self
    }

    crate::macros::define_inner_service_accessors!();
}

impl<S: Clone, D, C, I> Clone for BatchLimit<S, D, C, I> {
    fn clone(&self) -> Self {
        BatchLimit {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<S: fmt::Debug, D: fmt::Debug, C: fmt::Debug, I: fmt::Debug> fmt::Debug
    for BatchLimit<S, D, C, I>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchLimit")
            .field("inner", &self.inner)
            .field("limits", &self.shared.limits)
            .field("max_body_bytes", &self.shared.max_body_bytes)
            .field("dialect", &self.shared.dialect)
            .field("counter", &self.shared.counter)
            .field("inspect", &self.shared.inspect)
            .finish()
    }
}

impl<S, B, ResBody, D, C, I> Service<Request<B>> for BatchLimit<S, D, C, I>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>> + Clone,
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    D: Dialect,
    C: CountItems,
    I: InspectItems,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, D, C, I>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let shared = &self.shared;
        let Some(max_items) = shared.limit(request.method()) else {
            return ResponseFuture::call(
                &mut self.inner,
                request.map(RequestBody::streaming),
                shared.hand_on_panics,
            );
        };
        let (head, body) = request.into_parts();
        let count = match shared
            .counter
            .start(&head, max_items, shared.max_body_bytes)
        {
            Start::Count(count) => count,
            Start::Pass => {
                let request = Request::from_parts(head, RequestBody::streaming(body));
                return ResponseFuture::call(&mut self.inner, request, shared.hand_on_panics);
            }
            Start::Refuse(error) => return ResponseFuture::refused(&head, &shared.dialect, &error),
        };
        if body.is_end_stream() {
            let empty = Bytes::new();
            let found = shared
                .counter
                .finish(count, &head, &empty)
                .and_then(|mut items| {
                    shared.inspect.inspect(&head, &empty, &mut items)?;
                    Ok(items)
                });
            return match found {
                Ok(items) => {
                    let mut request = Request::from_parts(head, RequestBody::streaming(body));
                    if let Some(items) = items {
                        request.extensions_mut().insert(items);
                    }
                    ResponseFuture::call(&mut self.inner, request, shared.hand_on_panics)
                }
                Err(error) => ResponseFuture::refused(&head, &shared.dialect, &error),
            };
        }
        let declared = declared_length(&head.headers).or_else(|| body.size_hint().exact());
        if declared.is_some_and(|length| length > shared.max_body_bytes as u64) {
            let error = payload_too_large(shared.max_body_bytes);
            return ResponseFuture::refused(&head, &shared.dialect, &error);
        }
        // The ready service goes into the future; this one gets a clone, which is polled ready
        // before its next call.
        let clone = self.inner.clone();
        let service = mem::replace(&mut self.inner, clone);
        let expected = declared.map_or(0, |length| length as usize);
        ResponseFuture::reading(
            body,
            Job::new(service, head, count, expected),
            Arc::clone(shared),
        )
    }
}

pub(crate) use crate::body::payload_too_large;
