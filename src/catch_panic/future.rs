use crate::catch_panic::hook::{catching, take_handed_on};
use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http::Response;
use pin_project_lite::pin_project;

use super::{
    answer, body::BodyContext, drop_guarded, head::RequestHead, OnPanic, PanicStage, ResponseBody,
    ResponseForPanic,
};
use crate::{body::ErrorBody, dialect::Dialect};

/// What a response future needs to answer a panic, and hands on to the body.
pub(super) struct PanicContext<D, R, P> {
    pub(super) head: RequestHead,
    pub(super) dialect: D,
    pub(super) response_for_panic: R,
    pub(super) on_panic: P,
}

pin_project! {
    /// Response future of [`CatchPanic`](super::CatchPanic).
    ///
    /// # Panics
    ///
    /// If polled after it completed, like any future.
    pub struct ResponseFuture<F, D, R, P> {
        #[pin]
        kind: Kind<F, D, R, P>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, D, R, P> {
        Waiting {
            #[pin]
            future: F,
            context: Option<PanicContext<D, R, P>>,
        },
        // `call` panicked and the response is ready.
        Answered {
            response: Option<Response<ErrorBody>>,
        },
        // The inner future panicked; it is dropped so it is never polled again.
        Done,
    }
}

impl<F, D, R, P> ResponseFuture<F, D, R, P> {
    /// A future to [`wait`](Self::wait) on the inner future with, once there is one.
    #[inline]
    pub(super) fn placeholder() -> Self {
        ResponseFuture { kind: Kind::Done }
    }

    /// Waits on `future`, written in place (see `CatchPanic::call_on`).
    #[inline]
    pub(super) fn wait(&mut self, future: F, context: PanicContext<D, R, P>) {
        self.kind = Kind::Waiting {
            future,
            context: Some(context),
        };
    }

    pub(super) fn answered(response: Response<ErrorBody>) -> Self {
        ResponseFuture {
            kind: Kind::Answered {
                response: Some(response),
            },
        }
    }
}

impl<F, D, R, P, B, E> Future for ResponseFuture<F, D, R, P>
where
    F: Future<Output = Result<Response<B>, E>>,
    D: Dialect,
    R: ResponseForPanic<D>,
    P: OnPanic,
{
    type Output = Result<Response<ResponseBody<B, P>>, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut kind = self.project().kind;
        let polled = match kind.as_mut().project() {
            KindProj::Waiting { future, context } => {
                // The output lands in this frame rather than going through `catch_unwind`'s
                // return value, which would copy the response once more on every request.
                let mut polled = Poll::Pending;
                let caught = catching(|| polled = future.poll(cx));
                match caught.map(|()| polled) {
                    // Pending may be a panic caught deeper in a contract (see `hook::hand_on`).
                    Ok(Poll::Pending) => match take_handed_on() {
                        None => return Poll::Pending,
                        Some(payload) => (payload, context.take()),
                    },
                    Ok(Poll::Ready(output)) => {
                        let context = context.take().expect("future polled after completion");
                        let body_context = BodyContext {
                            head: context.head,
                            on_panic: context.on_panic,
                        };
                        return Poll::Ready(output.map(|response| {
                            response.map(|body| ResponseBody::inner(body, body_context))
                        }));
                    }
                    Err(payload) => (payload, context.take()),
                }
            }
            KindProj::Answered { response } => {
                let response = response.take().expect("future polled after completion");
                return Poll::Ready(Ok(response.map(ResponseBody::error)));
            }
            KindProj::Done => panic!("future polled after completion"),
        };
        let (payload, context) = polled;
        drop_guarded(|| kind.set(Kind::Done));
        let mut context = context.expect("future polled after completion");
        let response = answer(
            payload,
            &context.head,
            PanicStage::ResponseFuture,
            &context.dialect,
            &mut context.response_for_panic,
            &mut context.on_panic,
        );
        Poll::Ready(Ok(response.map(ResponseBody::error)))
    }
}

impl<F, D, R, P> fmt::Debug for ResponseFuture<F, D, R, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Waiting { .. } => "Waiting",
            Kind::Answered { .. } => "Answered",
            Kind::Done => "Done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
