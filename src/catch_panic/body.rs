use crate::catch_panic::hook::catching;
use std::{
    error::Error,
    fmt,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::{drop_guarded, head::RequestHead, observe, OnPanic, TypeName};
use crate::{
    body::ErrorBody,
    error::{ApiError, BoxError},
    grpc,
};

/// What a body needs to report a panic and end the response the way its protocol expects.
pub(super) struct BodyContext<P> {
    pub(super) head: RequestHead,
    pub(super) on_panic: P,
}

pin_project! {
    /// Response body of [`CatchPanic`](super::CatchPanic): the inner service's body, each poll
    /// guarded, or the body of a panic response.
    ///
    /// When the inner body panics, the panic is logged and observed, the inner body is dropped
    /// and never polled again, and the body ends the way the request's protocol reads as a
    /// failure: a gRPC call gets a trailers frame with `grpc-status: 13` and
    /// `grpc-message: server_error` and then the end of the body; any other request gets a
    /// [`BodyPanicked`] error, on which hyper aborts the response.
    pub struct ResponseBody<B, P = ()> {
        #[pin]
        kind: Kind<B>,
        context: Option<BodyContext<P>>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner {
            #[pin]
            body: B,
        },
        Error {
            body: ErrorBody,
        },
        // After a panic of the inner body, which has been dropped.
        Done,
    }
}

impl<B, P> ResponseBody<B, P> {
    pub(super) fn inner(body: B, context: BodyContext<P>) -> Self {
        ResponseBody {
            kind: Kind::Inner { body },
            context: Some(context),
        }
    }

    pub(super) fn error(body: ErrorBody) -> Self {
        ResponseBody {
            kind: Kind::Error { body },
            context: None,
        }
    }

    /// Whether this is the body of a panic response rather than the inner service's.
    pub fn is_panic_response(&self) -> bool {
        matches!(self.kind, Kind::Error { .. })
    }
}

impl<B, P> Body for ResponseBody<B, P>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    P: OnPanic,
{
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let mut kind = this.kind;
        let payload = match kind.as_mut().project() {
            KindProj::Inner { body } => match catching(|| body.poll_frame(cx)) {
                Ok(polled) => return polled.map_err(Into::into),
                Err(payload) => payload,
            },
            KindProj::Error { body } => {
                return Pin::new(body)
                    .poll_frame(cx)
                    .map_err(|never| match never {});
            }
            KindProj::Done => return Poll::Ready(None),
        };
        drop_guarded(|| kind.set(Kind::Done));
        let grpc = match this.context.take() {
            Some(mut context) => {
                observe(payload, &context.head, &mut context.on_panic);
                context.head.is_grpc()
            }
            None => false,
        };
        if grpc {
            let mut trailers = HeaderMap::with_capacity(2);
            grpc::write_status(&mut trailers, &ApiError::server_error());
            Poll::Ready(Some(Ok(Frame::trailers(trailers))))
        } else {
            Poll::Ready(Some(Err(Box::new(BodyPanicked(())))))
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Error { body } => body.is_end_stream(),
            Kind::Done => true,
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Error { body } => body.size_hint(),
            Kind::Done => SizeHint::with_exact(0),
        }
    }
}

impl<B, P> fmt::Debug for ResponseBody<B, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f
                .debug_struct("ResponseBody::Inner")
                .field("body", &TypeName::<B>::new())
                .finish_non_exhaustive(),
            Kind::Error { body } => f.debug_tuple("ResponseBody::Error").field(body).finish(),
            Kind::Done => f.write_str("ResponseBody::Panicked"),
        }
    }
}

/// The error a [`ResponseBody`] ends with when the inner body panicked during a plain HTTP
/// response: the head has gone out, so the only honest answer left is to abort the response.
///
/// Carries nothing of the panic; the panic itself is logged by the layer.
pub struct BodyPanicked(());

impl fmt::Debug for BodyPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodyPanicked")
    }
}

impl fmt::Display for BodyPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the response body panicked")
    }
}

impl Error for BodyPanicked {}
