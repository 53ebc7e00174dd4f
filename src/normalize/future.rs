use std::{
    convert::Infallible,
    fmt,
    future::Future,
    mem,
    pin::Pin,
    task::{ready, Context, Poll},
};

use bytes::Bytes;
use http::{header, response, HeaderMap, HeaderName, Response};
use http_body::Body;
use pin_project_lite::pin_project;

use super::{
    classify::{BoxError, ClassifyError},
    rejection::parse_rejection_with_query,
};
use crate::{
    body::{declared_length, ErrorBody, ResponseBody},
    dialect::{Dialect, ErrorFormat, ProblemDetails, RenderedError, UnrenderedError, Wire},
    error::ApiError,
    grpc,
};

pin_project! {
    /// Response future for [`Normalize`](super::Normalize).
    pub struct ResponseFuture<F, B, D, C> {
        #[pin]
        state: State<F, B>,
        format: ErrorFormat,
        dialect: D,
        classify: C,
        limit: usize,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        // Waiting on the inner service.
        Inner {
            #[pin]
            future: F,
        },
        // Reading the first bytes of an error body to understand it. The rest of what reading
        // needs is boxed: it would otherwise more than double the size of every future, success
        // or not, for the sake of the rare error whose body is read.
        Reading {
            #[pin]
            body: B,
            read: Option<Box<Read>>,
        },
        // The inner service was not ready: answer without calling it.
        NotReady {
            error: Option<BoxError>,
        },
        Done,
    }
}

/// An error body being read: the response head to answer with, and the bytes so far.
struct Read {
    parts: response::Parts,
    buf: Vec<u8>,
    // Bytes read, counting every frame as at least one, so that a body of endless empty frames
    // cannot keep the layer busy.
    spent: usize,
}

impl<F, B, D, C> ResponseFuture<F, B, D, C> {
    pub(super) fn new(
        future: F,
        format: ErrorFormat,
        dialect: D,
        classify: C,
        limit: usize,
    ) -> Self {
        ResponseFuture {
            state: State::Inner { future },
            format,
            dialect,
            classify,
            limit,
        }
    }

    pub(super) fn not_ready(
        error: BoxError,
        format: ErrorFormat,
        dialect: D,
        classify: C,
        limit: usize,
    ) -> Self {
        ResponseFuture {
            state: State::NotReady { error: Some(error) },
            format,
            dialect,
            classify,
            limit,
        }
    }
}

impl<F, B, D, C> fmt::Debug for ResponseFuture<F, B, D, C>
where
    D: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "waiting on the inner service",
            State::Reading { .. } => "reading an error body",
            State::NotReady { .. } => "answering an error of `poll_ready`",
            State::Done => "done",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("format", &self.format)
            .field("dialect", &self.dialect)
            .field("classify", &std::any::type_name::<C>())
            .field("body_limit", &self.limit)
            .finish()
    }
}

impl<F, B, E, D, C> Future for ResponseFuture<F, B, D, C>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Body<Data = Bytes>,
    D: Dialect,
    C: ClassifyError,
{
    type Output = Result<Response<ResponseBody<B>>, Infallible>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let StateProj::Inner { future } = this.state.as_mut().project() {
            match ready!(future.poll(cx)) {
                Ok(response) if passes(&response) => {
                    this.state.set(State::Done);
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                outcome => {
                    let answered = on_error(
                        outcome,
                        this.state.as_mut(),
                        this.format,
                        this.dialect,
                        this.classify,
                        *this.limit,
                    );
                    if let Some(response) = answered {
                        return Poll::Ready(Ok(response));
                    }
                }
            }
        }
        poll_error(
            this.state,
            cx,
            this.format,
            this.dialect,
            this.classify,
            *this.limit,
        )
    }
}

/// An `Err` or an error response from the inner service: answered at once, or `None` once the
/// state is set to read the body. Kept out of `poll` so the success path stays small.
#[cold]
#[inline(never)]
fn on_error<F, B, E, D, C>(
    outcome: Result<Response<B>, E>,
    mut state: Pin<&mut State<F, B>>,
    format: &ErrorFormat,
    dialect: &D,
    classify: &mut C,
    limit: usize,
) -> Option<Response<ResponseBody<B>>>
where
    E: Into<BoxError>,
    B: Body<Data = Bytes>,
    D: Dialect,
    C: ClassifyError,
{
    let response = match outcome {
        Ok(response) => response,
        Err(error) => {
            let error = classify.classify_error(error.into());
            state.set(State::Done);
            return Some(render(format, dialect, &error));
        }
    };
    let (parts, body) = response.into_parts();
    let parts = match render_unrendered(parts, format, dialect) {
        Ok(response) => {
            state.set(State::Done);
            return Some(response);
        }
        Err(parts) => parts,
    };
    if !worth_reading(&parts, &body, format, limit) {
        state.set(State::Done);
        let error = understand(&parts, b"", format);
        return Some(rewrite(parts, &error, format, dialect));
    }
    state.set(State::Reading {
        body,
        read: Some(Box::new(Read {
            parts,
            buf: Vec::new(),
            spent: 0,
        })),
    });
    None
}

/// Every state but waiting on the inner service: reading an error body, answering a
/// `poll_ready` error.
#[cold]
#[inline(never)]
fn poll_error<F, B, D, C>(
    mut state: Pin<&mut State<F, B>>,
    cx: &mut Context<'_>,
    format: &ErrorFormat,
    dialect: &D,
    classify: &mut C,
    limit: usize,
) -> Poll<Result<Response<ResponseBody<B>>, Infallible>>
where
    B: Body<Data = Bytes>,
    D: Dialect,
    C: ClassifyError,
{
    match state.as_mut().project() {
        StateProj::Reading { mut body, read } => {
            let progress = read.as_mut().expect("future polled after completion");
            let complete = loop {
                match ready!(body.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        // Trailers of an error body say nothing about the error.
                        let data = frame.into_data().unwrap_or_default();
                        progress.spent += data.len().max(1);
                        if progress.spent > limit {
                            break false;
                        }
                        progress.buf.extend_from_slice(&data);
                    }
                    Some(Err(_)) => {
                        tracing::debug!("error body could not be read; replaced");
                        break false;
                    }
                    None => break true,
                }
            };
            let Read { parts, buf, .. } = *read.take().expect("kept while reading");
            state.set(State::Done);
            let data = complete.then(|| Bytes::from(buf));
            Poll::Ready(Ok(finish(parts, data, format, dialect)))
        }
        StateProj::NotReady { error } => {
            let error = error.take().expect("future polled after completion");
            let error = classify.classify_error(error);
            state.set(State::Done);
            Poll::Ready(Ok(render(format, dialect, &error)))
        }
        StateProj::Inner { .. } | StateProj::Done => panic!("future polled after completion"),
    }
}

/// Responses left exactly as they are: successes, the crate's own, and gRPC statuses.
#[inline]
fn passes<B>(response: &Response<B>) -> bool {
    response.status().as_u16() < 400
        || response.extensions().get::<RenderedError>().is_some()
        || grpc::has_grpc_status(response.headers())
}

/// Whether the body can tell more than the status, within the byte budget.
fn worth_reading<B: Body>(
    parts: &response::Parts,
    body: &B,
    format: &ErrorFormat,
    limit: usize,
) -> bool {
    // A gRPC answer carries only a status, and a HEAD answer no body at all.
    if limit == 0 || format.is_grpc() || format.is_head() || body.is_end_stream() {
        return false;
    }
    let declared = declared_length(&parts.headers)
        .unwrap_or(0)
        .max(body.size_hint().lower());
    declared <= limit as u64
}

/// The response for a body read to its end (`Some`) or given up on (`None`).
fn finish<B, D>(
    parts: response::Parts,
    data: Option<Bytes>,
    format: &ErrorFormat,
    dialect: &D,
) -> Response<ResponseBody<B>>
where
    D: Dialect,
{
    if let Some(data) = data.as_ref() {
        let recognized = match format.wire() {
            Wire::Dialect => dialect.recognizes(&parts.headers, data, format),
            Wire::ProblemDetails => ProblemDetails::new().recognizes(&parts.headers, data, format),
            Wire::Grpc => false,
        };
        if recognized {
            // The same bytes, so the original `Content-Length` still holds.
            return Response::from_parts(parts, ResponseBody::error(ErrorBody::new(data.clone())));
        }
    }
    let error = understand(&parts, data.as_deref().unwrap_or_default(), format);
    rewrite(parts, &error, format, dialect)
}

/// The one rule for a handler's own error: a response carrying an
/// [`UnrenderedError`](crate::dialect::UnrenderedError) is written again with the request's
/// `format` and the layer's `dialect`, keeping the producer's headers (but not its body, which
/// is dropped unread). Any other response is handed back.
pub(crate) fn render_unrendered<B, D: Dialect>(
    mut parts: response::Parts,
    format: &ErrorFormat,
    dialect: &D,
) -> Result<Response<ResponseBody<B>>, response::Parts> {
    match parts.extensions.remove::<UnrenderedError>() {
        Some(unrendered) => Ok(rewrite(parts, unrendered.error(), format, dialect)),
        None => Err(parts),
    }
}

fn understand(parts: &response::Parts, body: &[u8], format: &ErrorFormat) -> ApiError {
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    parse_rejection_with_query(parts.status, content_type, body, format.query())
}

fn render<B, D: Dialect>(
    format: &ErrorFormat,
    dialect: &D,
    error: &ApiError,
) -> Response<ResponseBody<B>> {
    format.render(dialect, error).map(ResponseBody::error)
}

/// The contract response for `error`, keeping what the original response's headers say about
/// anything but its old body.
fn rewrite<B, D: Dialect>(
    original: response::Parts,
    error: &ApiError,
    format: &ErrorFormat,
    dialect: &D,
) -> Response<ResponseBody<B>> {
    tracing::trace!(status = %original.status, code = %error.code(), "error response normalized");
    let (mut parts, body) = format.render(dialect, error).into_parts();
    merge_headers(original.headers, &mut parts.headers);
    let mut extensions = original.extensions;
    extensions.extend(mem::take(&mut parts.extensions));
    parts.extensions = extensions;
    parts.version = original.version;
    Response::from_parts(parts, ResponseBody::error(body))
}

/// Copies `original` into `rendered`, the original winning (a precise `WWW-Authenticate` over
/// the default one), except for headers that describe the replaced body or the gRPC status.
fn merge_headers(original: HeaderMap, rendered: &mut HeaderMap) {
    let mut current: Option<HeaderName> = None;
    for (name, value) in original {
        // `None` continues the values of the previous name.
        if let Some(name) = name {
            current = is_kept(&name).then(|| {
                rendered.remove(&name);
                name
            });
        }
        if let Some(name) = &current {
            rendered.append(name.clone(), value);
        }
    }
}

fn is_kept(name: &HeaderName) -> bool {
    !matches!(
        name.as_str(),
        "content-type"
            | "content-length"
            | "content-encoding"
            | "content-language"
            | "content-location"
            | "content-range"
            | "content-disposition"
            | "content-md5"
            | "content-digest"
            | "repr-digest"
            | "digest"
            | "transfer-encoding"
            | "trailer"
            | "etag"
            | "last-modified"
            | "accept-ranges"
            | "grpc-status"
            | "grpc-message"
            | "grpc-status-details-bin"
    )
}
