use std::{
    error::Error,
    fmt,
    future::Future,
    mem,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http::{request, HeaderMap, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::{count::CountItems, inspect::InspectItems, layer::Shared, service::payload_too_large};
use crate::{
    body::{read_error, ErrorBody, RequestBody, ResponseBody},
    dialect::{Dialect, ErrorFormat},
    error::ApiError,
};

pin_project! {
    /// Response future of [`BatchLimit`](super::BatchLimit): reads and counts the body, then
    /// calls the inner service, or answers with the contract error.
    pub struct ResponseFuture<S, B, D, C, I = ()>
    where
        S: Service<Request<RequestBody<B>>>,
        C: CountItems,
    {
        #[pin]
        state: State<S, S::Future, B, C::Count>,
        shared: Option<Arc<Shared<D, C, I>>>,
        // `Shared::hand_on_panics`, for the states that do not keep `shared`.
        hand_on: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, B, K> {
        Reading { #[pin] body: B, job: Option<Job<S, K>> },
        Calling { #[pin] future: F },
        Answering { response: Option<Response<ErrorBody>> },
        // The application panicked and the panic was handed on (`catch_panic::hand_on`): the
        // contract's catch-panic part answers it and drops this future unpolled.
        HandedOn,
    }
}

/// What a request being read needs: the ready service to call, the head, the count, the bytes.
pub(crate) struct Job<S, K> {
    service: S,
    head: request::Parts,
    count: K,
    buffer: Buffer,
    // Boxed: rare, and the job moves with the future.
    trailers: Option<Box<HeaderMap>>,
    received: usize,
    expected: usize,
}

impl<S, K> Job<S, K> {
    pub(crate) fn new(service: S, head: request::Parts, count: K, expected: usize) -> Self {
        Job {
            service,
            head,
            count,
            buffer: Buffer::Empty,
            trailers: None,
            received: 0,
            expected,
        }
    }
}

/// The body read so far: one frame is kept as it came (no copy); more are copied into one
/// contiguous buffer, sized by `Content-Length` when it is known.
enum Buffer {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Buffer {
    fn push(&mut self, data: Bytes, expected: usize) {
        *self = match mem::replace(self, Buffer::Empty) {
            Buffer::Empty => Buffer::One(data),
            Buffer::One(first) => {
                let mut all = BytesMut::with_capacity(expected.max(first.len() + data.len()));
                all.extend_from_slice(&first);
                all.extend_from_slice(&data);
                Buffer::Many(all)
            }
            Buffer::Many(mut all) => {
                all.extend_from_slice(&data);
                Buffer::Many(all)
            }
        }
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Buffer::Empty => Bytes::new(),
            Buffer::One(data) => data,
            Buffer::Many(all) => all.freeze(),
        }
    }
}

impl<S, B, D, C, I> ResponseFuture<S, B, D, C, I>
where
    S: Service<Request<RequestBody<B>>>,
    C: CountItems,
{
    pub(crate) fn calling(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            shared: None,
            hand_on: false,
        }
    }

    /// Calls `service` with `request`; with `hand_on`, a panic in the call is handed on.
    #[inline]
    pub(crate) fn call(service: &mut S, request: Request<RequestBody<B>>, hand_on: bool) -> Self {
        ResponseFuture {
            state: call(service, request, hand_on),
            shared: None,
            hand_on,
        }
    }

    pub(crate) fn reading(body: B, job: Job<S, C::Count>, shared: Arc<Shared<D, C, I>>) -> Self {
        ResponseFuture {
            hand_on: shared.hand_on_panics,
            state: State::Reading {
                body,
                job: Some(job),
            },
            shared: Some(shared),
        }
    }

    pub(crate) fn refused(head: &request::Parts, dialect: &D, error: &ApiError) -> Self
    where
        D: Dialect,
    {
        ResponseFuture {
            state: State::Answering {
                response: Some(refuse(head, dialect, error)),
            },
            shared: None,
            hand_on: false,
        }
    }
}

/// The state calling `service` leaves: its future, or `HandedOn` after a panic handed on.
#[inline]
fn call<S, B, K>(
    service: &mut S,
    request: Request<RequestBody<B>>,
    hand_on: bool,
) -> State<S, S::Future, B, K>
where
    S: Service<Request<RequestBody<B>>>,
{
    if !hand_on {
        return State::Calling {
            future: service.call(request),
        };
    }
    // The future lands in this frame rather than going through `catch_unwind`'s return value.
    let mut future = None;
    if crate::catch_panic::hand_on(|| future = Some(service.call(request))) {
        return State::HandedOn;
    }
    match future {
        Some(future) => State::Calling { future },
        None => unreachable!("the call returned"),
    }
}

fn refuse<D: Dialect>(head: &request::Parts, dialect: &D, error: &ApiError) -> Response<ErrorBody> {
    tracing::debug!(
        method = %head.method,
        path = head.uri.path(),
        code = %error.code(),
        "batch limit refused a request"
    );
    ErrorFormat::for_parts(head).render(dialect, error)
}

impl<S, B, D, C, I, ResBody> Future for ResponseFuture<S, B, D, C, I>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn Error + Send + Sync>>,
    D: Dialect,
    C: CountItems,
    I: InspectItems,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let polled = if *this.hand_on {
                        // The output lands in this frame rather than going through
                        // `catch_unwind`'s return value, which would copy it once more.
                        let mut polled = Poll::Pending;
                        if crate::catch_panic::hand_on(|| polled = future.poll(cx)) {
                            this.state.set(State::HandedOn);
                            return Poll::Pending;
                        }
                        polled
                    } else {
                        future.poll(cx)
                    };
                    let response = ready!(polled)?;
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                // Never polled: the catch-panic part around answers the panic, and drops this.
                StateProj::HandedOn => return Poll::Pending,
                StateProj::Answering { response } => {
                    let response = response.take().expect("polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::error)));
                }
                StateProj::Reading { mut body, job } => {
                    let shared = this
                        .shared
                        .as_ref()
                        .expect("a reading future has its config");
                    let next = loop {
                        let Some(current) = job.as_mut() else {
                            panic!("polled after completion");
                        };
                        match ready!(body.as_mut().poll_frame(cx)) {
                            Some(Ok(frame)) => match frame.into_data() {
                                Ok(data) => {
                                    if data.is_empty() {
                                        continue;
                                    }
                                    if data.len() > shared.max_body_bytes - current.received {
                                        break Err(payload_too_large(shared.max_body_bytes));
                                    }
                                    current.received += data.len();
                                    if let Err(error) = shared.counter.feed(
                                        &mut current.count,
                                        &current.head,
                                        &data,
                                    ) {
                                        break Err(error);
                                    }
                                    current.buffer.push(data, current.expected);
                                }
                                Err(frame) => {
                                    if let Ok(trailers) = frame.into_trailers() {
                                        match &mut current.trailers {
                                            Some(all) => all.extend(trailers),
                                            None => current.trailers = Some(Box::new(trailers)),
                                        }
                                    }
                                }
                            },
                            Some(Err(error)) => {
                                break Err(read_error(&*error.into(), shared.max_body_bytes))
                            }
                            None => break Ok(()),
                        }
                    };
                    let Job {
                        mut service,
                        head,
                        count,
                        buffer,
                        trailers,
                        ..
                    } = job.take().expect("polled after completion");
                    let next = next.and_then(|()| {
                        let body = buffer.into_bytes();
                        let mut items = shared.counter.finish(count, &head, &body)?;
                        shared.inspect.inspect(&head, &body, &mut items)?;
                        Ok((body, items))
                    });
                    match next {
                        Ok((body, items)) => {
                            let mut request = Request::from_parts(
                                head,
                                RequestBody::buffered_boxed(body, trailers),
                            );
                            if let Some(items) = items {
                                request.extensions_mut().insert(items);
                            }
                            this.state.set(call(&mut service, request, *this.hand_on));
                        }
                        Err(error) => {
                            let response = refuse(&head, &shared.dialect, &error);
                            this.state.set(State::Answering {
                                response: Some(response),
                            });
                        }
                    }
                }
            }
        }
    }
}

impl<S, B, D, C, I> fmt::Debug for ResponseFuture<S, B, D, C, I>
where
    S: Service<Request<RequestBody<B>>>,
    C: CountItems,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Reading { .. } => "reading",
            State::Calling { .. } => "calling",
            State::Answering { .. } => "answering",
            State::HandedOn => "handed on",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish_non_exhaustive()
    }
}
