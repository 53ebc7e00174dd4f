use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{service::Config, Lookup, RoutePolicy, ShortDigest, StoreError};
use crate::{
    body::{ErrorBody, ResponseBody},
    dialect::Dialect,
};

pin_project! {
    /// The response future of [`Auth`](super::Auth).
    pub struct ResponseFuture<F, L, S, B, P, D> {
        #[pin]
        state: State<F, L, S, B, P, D>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, L, S, B, P, D> {
        Lookup {
            #[pin]
            lookup: L,
            pending: Option<Pending<S, B, P, D>>,
        },
        Inner {
            #[pin]
            future: F,
        },
        Reject {
            response: Option<Response<ErrorBody>>,
        },
    }
}

/// What the future needs once the lookup is done.
struct Pending<S, B, P, D> {
    inner: S,
    request: Request<B>,
    config: Arc<Config<P, D>>,
    digest: ShortDigest,
}

impl<F, L, S, B, P, D> ResponseFuture<F, L, S, B, P, D> {
    pub(crate) fn inner(future: F) -> Self {
        ResponseFuture {
            state: State::Inner { future },
        }
    }

    pub(crate) fn reject(response: Response<ErrorBody>) -> Self {
        ResponseFuture {
            state: State::Reject {
                response: Some(response),
            },
        }
    }

    pub(crate) fn lookup(
        lookup: L,
        inner: S,
        request: Request<B>,
        config: Arc<Config<P, D>>,
        digest: ShortDigest,
    ) -> Self {
        ResponseFuture {
            state: State::Lookup {
                lookup,
                pending: Some(Pending {
                    inner,
                    request,
                    config,
                    digest,
                }),
            },
        }
    }
}

impl<F, L, S, B, P, D> fmt::Debug for ResponseFuture<F, L, S, B, P, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Lookup { .. } => "lookup",
            State::Inner { .. } => "inner",
            State::Reject { .. } => "reject",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, L, S, B, P, D, ResBody, E> Future for ResponseFuture<F, L, S, B, P, D>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    L: Future<Output = Result<Lookup, StoreError>>,
    S: Service<Request<B>, Response = Response<ResBody>, Error = E, Future = F>,
    P: RoutePolicy,
    D: Dialect,
{
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                StateProj::Lookup { lookup, pending } => {
                    let result = ready!(lookup.poll(cx));
                    let Pending {
                        mut inner,
                        mut request,
                        config,
                        digest,
                    } = pending
                        .take()
                        .expect("auth ResponseFuture polled after completion");
                    match config.decide(&mut request, result, digest) {
                        Ok(()) => {
                            let future = inner.call(request);
                            state.set(State::Inner { future });
                        }
                        Err(refusal) => {
                            let response = config.refuse(&request, refusal);
                            return Poll::Ready(Ok(response.map(ResponseBody::error)));
                        }
                    }
                }
                StateProj::Inner { future } => {
                    return future
                        .poll(cx)
                        .map(|result| result.map(|response| response.map(ResponseBody::inner)));
                }
                StateProj::Reject { response } => {
                    let response = response
                        .take()
                        .expect("auth ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::error)));
                }
            }
        }
    }
}
