//! Body types used by the crate's layers.
//!
//! [`ErrorBody`] is the small, fully buffered body of a contract error. [`ResponseBody`] is
//! either the inner service's body, passed through untouched, or an [`ErrorBody`]; layers that
//! may answer early return it, so no body is boxed on the hot path. [`RequestBody`] is what a
//! layer that had to read a request body hands on: the bytes it read, byte for byte, with any
//! trailers, or the original body untouched when it did not need to read it. All are the
//! crate's own types, so the body crates used inside can change without a breaking release.

use std::{
    convert::Infallible,
    error::Error,
    fmt, mem,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::error::{ApiError, ErrorCode};

/// The body of a contract error response: at most one chunk of bytes, never failing.
#[derive(Clone)]
pub struct ErrorBody {
    data: Data,
}

/// The bytes of an [`ErrorBody`]. Most refusals are one of the dialects' static bodies, kept
/// as a bare slice so that [`ResponseBody::error`] can hold them without a box; `Static(b"")`
/// is the empty body.
#[derive(Clone)]
enum Data {
    Static(&'static [u8]),
    Shared(Bytes),
}

impl ErrorBody {
    /// A body with no bytes (HEAD answers, gRPC trailers-only responses).
    pub fn empty() -> Self {
        ErrorBody {
            data: Data::Static(b""),
        }
    }

    /// A body holding `data`.
    pub fn new(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        if data.is_empty() {
            return ErrorBody::empty();
        }
        ErrorBody {
            data: Data::Shared(data),
        }
    }

    /// A body holding bytes that live as long as the program: a dialect's body written once.
    pub(crate) const fn from_static(data: &'static [u8]) -> Self {
        ErrorBody {
            data: Data::Static(data),
        }
    }

    /// The bytes not yet polled.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.data {
            Data::Static(data) => data,
            Data::Shared(data) => data,
        }
    }
}

impl Default for ErrorBody {
    fn default() -> Self {
        ErrorBody::empty()
    }
}

impl fmt::Debug for ErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ErrorBody")
            .field(&String::from_utf8_lossy(self.as_bytes()))
            .finish()
    }
}

impl Body for ErrorBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let data = match mem::replace(&mut self.data, Data::Static(b"")) {
            Data::Static(b"") => return Poll::Ready(None),
            Data::Static(data) => Bytes::from_static(data),
            Data::Shared(data) => data,
        };
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.as_bytes().is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.as_bytes().len() as u64)
    }
}

pin_project! {
    /// The inner service's body, untouched, or a contract error body.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        // A static body (the common refusal: a bad key, too many items) inline, as two words:
        // no allocation per refusal (`benches/stack.rs`, `bad_key`).
        Static { data: &'static [u8] },
        // Boxed: an inline `ErrorBody` (four words) would make every response carrying an inner
        // body that much larger, and responses are moved several times on their way out.
        Error { body: Box<ErrorBody> },
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body.
    pub fn inner(body: B) -> Self {
        ResponseBody {
            kind: Kind::Inner { body },
        }
    }

    /// A contract error body.
    pub fn error(body: ErrorBody) -> Self {
        let kind = match body.data {
            Data::Static(data) => Kind::Static { data },
            Data::Shared(_) => Kind::Error {
                body: Box::new(body),
            },
        };
        ResponseBody { kind }
    }

    /// Whether this is a contract error body rather than the inner service's.
    pub fn is_error(&self) -> bool {
        !matches!(self.kind, Kind::Inner { .. })
    }
}

impl<B> From<ErrorBody> for ResponseBody<B> {
    fn from(body: ErrorBody) -> Self {
        ResponseBody::error(body)
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("ResponseBody::Inner(..)"),
            Kind::Static { data } => f
                .debug_tuple("ResponseBody::Error")
                .field(&ErrorBody::from_static(data))
                .finish(),
            Kind::Error { body } => f.debug_tuple("ResponseBody::Error").field(&**body).finish(),
        }
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Static { data } => Poll::Ready(
                (!data.is_empty()).then(|| Ok(Frame::data(Bytes::from_static(mem::take(data))))),
            ),
            KindProj::Error { body } => Pin::new(&mut **body)
                .poll_frame(cx)
                .map(|frame| frame.map(|result| result.map_err(|never| match never {}))),
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Static { data } => data.is_empty(),
            Kind::Error { body } => body.is_end_stream(),
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Static { data } => SizeHint::with_exact(data.len() as u64),
            Kind::Error { body } => body.size_hint(),
        }
    }
}

pin_project! {
    /// A request body handed on by a layer: the original body, untouched, or the bytes (and
    /// trailers) a layer read from it, replayed exactly.
    pub struct RequestBody<B> {
        #[pin]
        kind: RequestKind<B>,
    }
}

pin_project! {
    #[project = RequestKindProj]
    enum RequestKind<B> {
        Streaming { #[pin] body: B },
        // The trailers boxed: rare, and every future of the application holds this body (often
        // twice: the request, and the future reading it), moved on every request
        // (`benches/stack.rs`, `valid_5_items full_stack`).
        Buffered { data: Option<Bytes>, trailers: Option<Box<HeaderMap>> },
    }
}

impl<B> RequestBody<B> {
    /// The original body, passed on without being read.
    pub fn streaming(body: B) -> Self {
        RequestBody {
            kind: RequestKind::Streaming { body },
        }
    }

    /// Bytes a layer read, with the trailers that followed them, if any.
    pub fn buffered(data: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self::buffered_boxed(data, trailers.map(Box::new))
    }

    /// [`RequestBody::buffered`] with trailers a layer already keeps boxed.
    #[inline]
    pub(crate) fn buffered_boxed(data: Bytes, trailers: Option<Box<HeaderMap>>) -> Self {
        RequestBody {
            kind: RequestKind::Buffered {
                data: (!data.is_empty()).then_some(data),
                trailers,
            },
        }
    }

    /// The buffered bytes not yet polled, or `None` for a streaming body.
    pub fn buffered_bytes(&self) -> Option<&[u8]> {
        match &self.kind {
            RequestKind::Buffered { data, .. } => Some(data.as_deref().unwrap_or_default()),
            RequestKind::Streaming { .. } => None,
        }
    }
}

impl<B> fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            RequestKind::Streaming { .. } => f.write_str("RequestBody::Streaming(..)"),
            RequestKind::Buffered { data, .. } => f
                .debug_struct("RequestBody::Buffered")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish_non_exhaustive(),
        }
    }
}

impl<B> Body for RequestBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().kind.project() {
            RequestKindProj::Streaming { body } => body.poll_frame(cx),
            RequestKindProj::Buffered { data, trailers } => Poll::Ready(
                data.take()
                    .map(Frame::data)
                    .or_else(|| trailers.take().map(|trailers| Frame::trailers(*trailers)))
                    .map(Ok),
            ),
        }
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        match &self.kind {
            RequestKind::Streaming { body } => body.is_end_stream(),
            RequestKind::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
        }
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            RequestKind::Streaming { body } => body.size_hint(),
            RequestKind::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, Bytes::len) as u64)
            }
        }
    }
}

/// The length a request's or a response's `Content-Length` declares: the one place the crate
/// reads the header.
///
/// Only ASCII digits count (RFC 9110 §8.6: `1*DIGIT`); a missing, empty, signed or otherwise
/// malformed value, one too large for a `u64`, or repeated values that disagree declare
/// nothing, and the caller relies on the body's own size hint and byte limit instead.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let first = parse_length(values.next()?.as_bytes())?;
    values
        .all(|value| parse_length(value.as_bytes()) == Some(first))
        .then_some(first)
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0_u64, |length, &digit| {
        if !digit.is_ascii_digit() {
            return None;
        }
        length.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// The one rule for a request body that could not be read, shared by every layer that reads
/// one: `payload_too_large` (413) when an outer length limit stopped it, `request_timeout`
/// (408) when an outer body timeout did (tower's `Elapsed`, an I/O `TimedOut`, tower-http's
/// `TimeoutBody`), else `bad_request` (400: the client is most likely gone). The error's whole
/// `source` chain is searched.
///
/// ```
/// use tower_api_errors::{body::read_error, ErrorCode};
///
/// let timeout = std::io::Error::from(std::io::ErrorKind::TimedOut);
/// assert_eq!(read_error(&timeout, 1024).code(), &ErrorCode::RequestTimeout);
/// let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
/// assert_eq!(read_error(&reset, 1024).status(), 400);
/// ```
pub fn read_error(error: &(dyn Error + 'static), max_body_bytes: usize) -> ApiError {
    let mut source = Some(error);
    while let Some(error) = source {
        if error.is::<http_body_util::LengthLimitError>() {
            return payload_too_large(max_body_bytes);
        }
        if is_timeout(error) {
            return ApiError::new(ErrorCode::RequestTimeout)
                .with_detail("request_timeout: the request body did not arrive in time");
        }
        source = error.source();
    }
    ApiError::from_status(http::StatusCode::BAD_REQUEST)
        .with_detail("bad_request: the request body could not be read")
}

/// `payload_too_large` (413), naming the cap.
pub(crate) fn payload_too_large(max_body_bytes: usize) -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge).with_detail(format!(
        "payload_too_large: at most {max_body_bytes} bytes per request body"
    ))
}

/// The message of tower-http's `TimeoutBody` and `DeadlineBody` error (`timeout::TimeoutError`),
/// known by its text since the crate does not depend on tower-http.
const TOWER_HTTP_BODY_TIMEOUT: &str = "data was not received within the designated timeout";

fn is_timeout(error: &(dyn Error + 'static)) -> bool {
    error.is::<tower::timeout::error::Elapsed>()
        || error
            .downcast_ref::<std::io::Error>()
            .is_some_and(|error| error.kind() == std::io::ErrorKind::TimedOut)
        || error.to_string() == TOWER_HTTP_BODY_TIMEOUT
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test]
    async fn inner_bodies_pass_through() {
        let body = ResponseBody::inner(Full::new(Bytes::from_static(b"hello")));
        assert_eq!(body.size_hint().exact(), Some(5));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes, "hello");
    }

    #[tokio::test]
    async fn error_bodies_yield_their_bytes_once() {
        let body: ResponseBody<Full<Bytes>> = ErrorBody::new(r#"{"error":"x"}"#).into();
        assert!(body.is_error());
        assert!(!body.is_end_stream());
        assert_eq!(body.collect().await.unwrap().to_bytes(), r#"{"error":"x"}"#);
        assert!(ErrorBody::empty().is_end_stream());
        assert!(ErrorBody::new(Bytes::new()).is_end_stream());
    }

    #[test]
    fn wrapping_an_inner_body_costs_one_word() {
        use http_body_util::combinators::UnsyncBoxBody;
        type Boxed = UnsyncBoxBody<Bytes, std::io::Error>;
        assert!(
            std::mem::size_of::<ResponseBody<Boxed>>()
                <= std::mem::size_of::<Boxed>() + std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn a_request_body_is_small_whatever_its_trailers() {
        type Inner = Full<Bytes>;
        assert!(
            std::mem::size_of::<RequestBody<Inner>>()
                <= std::mem::size_of::<Inner>() + 2 * std::mem::size_of::<usize>()
        );
    }

    #[tokio::test]
    async fn buffered_request_bodies_replay_data_and_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-checksum", "abc".parse().unwrap());
        let body: RequestBody<Full<Bytes>> =
            RequestBody::buffered(Bytes::from_static(b"[1,2]"), Some(trailers.clone()));
        assert_eq!(body.buffered_bytes(), Some(&b"[1,2]"[..]));
        assert_eq!(body.size_hint().exact(), Some(5));
        let collected = body.collect().await.unwrap();
        assert_eq!(collected.trailers(), Some(&trailers));
        assert_eq!(collected.to_bytes(), "[1,2]");
    }

    #[test]
    fn content_length_is_digits_only() {
        let declared = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(http::header::CONTENT_LENGTH, value.parse().unwrap());
            }
            declared_length(&headers)
        };
        assert_eq!(declared(&[]), None);
        assert_eq!(declared(&["0"]), Some(0));
        assert_eq!(declared(&["17"]), Some(17));
        assert_eq!(declared(&["18446744073709551615"]), Some(u64::MAX));
        assert_eq!(declared(&["18446744073709551616"]), None);
        for malformed in ["", "+5", "-1", " 5", "5 ", "0x10", "1e3", "5,5"] {
            assert_eq!(declared(&[malformed]), None, "{malformed:?}");
        }
        assert_eq!(declared(&["5", "5"]), Some(5));
        assert_eq!(declared(&["5", "6"]), None);
    }

    #[derive(Debug)]
    struct Message(&'static str);

    impl fmt::Display for Message {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Message {}

    #[derive(Debug)]
    struct Wrapped(Box<dyn Error + Send + Sync>);

    impl fmt::Display for Wrapped {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("body error")
        }
    }

    impl Error for Wrapped {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn a_body_timeout_is_a_request_timeout() {
        let timeouts: [Box<dyn Error + Send + Sync>; 3] = [
            Box::new(Message(TOWER_HTTP_BODY_TIMEOUT)),
            Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)),
            Box::new(tower::timeout::error::Elapsed::new()),
        ];
        for timeout in timeouts {
            let error = read_error(&Wrapped(timeout), 1024);
            assert_eq!(error.code(), &ErrorCode::RequestTimeout);
            assert_eq!(error.status(), 408);
        }
        let gone = read_error(&Message("connection reset"), 1024);
        assert_eq!(gone.code().as_str(), "bad_request");
    }
}
