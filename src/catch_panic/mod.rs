//! Turns a panic anywhere in the inner service into the contract's `server_error`, and keeps
//! the server serving.
//!
//! [`CatchPanicLayer`] catches a panic raised while the inner service's `call` runs, while its
//! response future is polled, and while its response body is polled, which is where a
//! streaming handler usually fails. What the client sees depends on whether the response head
//! has gone out:
//!
//! | the panic happens | HTTP client | gRPC client |
//! | --- | --- | --- |
//! | in `call` or the response future | 500 with `server_error` in the layer's [dialect](crate::dialect) (`{"error":"server_error"}` by default) | trailers-only, `grpc-status: 13`, `grpc-message: server_error` |
//! | while the body is streamed | the body ends with an error ([`BodyPanicked`]), so hyper aborts the response: HTTP/1 closes the connection, HTTP/2 resets the stream, and the client's read fails instead of ending like a complete, truncated 200 | the stream ends with trailers `grpc-status: 13`, `grpc-message: server_error` (`Status::internal` for a tonic client), not with a clean end |
//!
//! The response in the first row follows [`ErrorFormat::for_request`], decided from the request
//! head before the request is handed on: gRPC calls get the gRPC form, an `Accept` of
//! `application/problem+json` gets problem details, `HEAD` gets the headers alone, and the
//! response carries the [`RenderedError`](crate::RenderedError) marker. After a panic the inner
//! future or body is dropped and never polled again; the connection stays up where the protocol
//! allows it, and the next request is served as usual.
//!
//! # Logging
//!
//! Every caught panic is logged through [`tracing`] at error level with the request's method,
//! its path (without the query string, which may carry credentials), the stage
//! ([`PanicStage`]) and a fingerprint of the panic message — its length and the first bytes of
//! its SHA-256, e.g. `panic=<41 bytes, sha256:3f2a9c1e>` — never the message in clear: the
//! contract promises that no panic payload reaches a response or a log line, since messages
//! often carry the data being processed (a key, a customer's record). The fingerprint lets an
//! operator match the line with the message where it is allowed to go: an [`OnPanic`] observer
//! is handed the payload itself ([`CaughtPanic::message`]). A payload that is neither `&str` nor
//! `String` is logged as `<non-string panic payload>`.
//!
//! Rust's panic hook runs before the layer catches the panic, and the default hook prints the
//! message (and, with `RUST_BACKTRACE`, a backtrace) to stderr. Call [`install_quiet_hook`] once
//! at startup: panics inside request handling (the layer's `call`, future and body polls) are
//! then reported through `tracing` with the fingerprint and the `panic!`'s source location
//! only, and every other panic still goes to the previous hook. The crate's examples and demo
//! install it.
//!
//! The layer keeps the first 123 bytes of the path (fewer after an extension method's name):
//! a longer path is logged cut, marked with `…`, and a route-dependent dialect such as
//! [`DialectByPath`](crate::dialect::DialectByPath) chooses by those bytes, which only matters
//! for a prefix that long.
//!
//! # Cost
//!
//! Nothing is boxed and nothing reference-counted is cloned per request. A request that does not
//! panic pays for what a panic response would need, taken before the request is handed on (the
//! [`Wire`](crate::dialect::Wire), from two header lookups; the method and the path, copied into
//! 128 bytes that need no drop), and for a `catch_unwind` around `call` and around each poll of
//! the future and of the body; the [`ErrorFormat`] itself is built only when a panic happens.
//! `BENCHMARKS.md` has the figures.
//!
//! The dialect, the [`ResponseForPanic`] and the [`OnPanic`] are cloned into each response
//! future (the observer into each body too), so they should be cheap to clone: the defaults are
//! zero-sized; [`Coded`](crate::dialect::Coded) and [`DialectByPath`](crate::dialect::DialectByPath)
//! clone an `Arc`, as does a closure that captures one. A dialect built once at startup can be
//! passed as a `&'static` reference (from `Box::leak`), which clones for free.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_api_errors::catch_panic::CatchPanicLayer;
//!
//! async fn handle(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     panic!("the connection pool is gone")
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let service = ServiceBuilder::new()
//!     .layer(CatchPanicLayer::new())
//!     .service_fn(handle);
//!
//! let response = service.oneshot(Request::new(Full::default())).await.unwrap();
//! assert_eq!(response.status(), 500);
//! assert_eq!(response.headers()["content-type"], "application/json");
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, r#"{"error":"server_error"}"#);
//! # }
//! ```
//!
//! Answering in the coded dialect and counting panics, e.g. for a metric:
//!
//! ```
//! use std::{
//!     convert::Infallible,
//!     sync::{
//!         atomic::{AtomicUsize, Ordering},
//!         Arc,
//!     },
//! };
//!
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_api_errors::{
//!     catch_panic::{CatchPanicLayer, CaughtPanic, PanicStage},
//!     dialect::Coded,
//! };
//!
//! # async fn handle(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
//! #     panic!("the connection pool is gone")
//! # }
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let panics = Arc::new(AtomicUsize::new(0));
//! let counter = Arc::clone(&panics);
//! let layer = CatchPanicLayer::new()
//!     .dialect(Coded::new())
//!     .on_panic(move |panic: &CaughtPanic<'_>| {
//!         assert_eq!(panic.stage(), PanicStage::ResponseFuture);
//!         counter.fetch_add(1, Ordering::Relaxed);
//!     });
//! let service = ServiceBuilder::new().layer(layer).service_fn(handle);
//!
//! let response = service.oneshot(Request::new(Full::default())).await.unwrap();
//! assert_eq!(response.status(), 500);
//! let body = response.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(body, r#"{"code":1,"message":"Server error","errors":[]}"#);
//! assert_eq!(panics.load(Ordering::Relaxed), 1);
//! # }
//! ```
//!
//! # Where to put it
//!
//! Outside every layer whose panics it should turn into responses, so that a panic in the
//! crate's other layers is caught too. A service that keeps state across requests may find it
//! half-updated after a panic (a `Mutex` is poisoned, for instance); like tower-http's
//! `CatchPanic`, the layer keeps calling the inner service, so such state must survive a panic.

mod body;
mod future;
mod head;
mod hook;
mod layer;
mod service;

use crate::catch_panic::hook::catching;
pub(crate) use crate::catch_panic::hook::hand_on;
use std::{any::Any, fmt};

use http::{Method, Response};

pub(crate) use self::head::RequestHead;
pub use self::{
    body::{BodyPanicked, ResponseBody},
    future::ResponseFuture,
    hook::install_quiet_hook,
    layer::CatchPanicLayer,
    service::CatchPanic,
};
use crate::{
    body::ErrorBody,
    dialect::{Bulk, Dialect, ErrorFormat},
    error::ApiError,
};

/// Where a caught panic happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PanicStage {
    /// In the inner service's `call`, before it returned a future.
    Call,
    /// While the inner service's response future was polled.
    ResponseFuture,
    /// While the response body was polled, after the response head was handed on.
    ResponseBody,
}

impl PanicStage {
    /// The stage's name as logged: `call`, `response_future` or `response_body`.
    pub fn as_str(self) -> &'static str {
        match self {
            PanicStage::Call => "call",
            PanicStage::ResponseFuture => "response_future",
            PanicStage::ResponseBody => "response_body",
        }
    }

    /// Whether the response head had already been handed on, so the panic can no longer be
    /// answered with a response of its own.
    pub fn is_after_head(self) -> bool {
        self == PanicStage::ResponseBody
    }
}

impl fmt::Display for PanicStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A panic the layer caught, with what is known of the request it happened in.
///
/// Given to [`OnPanic`] for every caught panic and to [`ResponseForPanic`] for a panic before
/// the response head. Its `Debug` output leaves the payload out.
pub struct CaughtPanic<'a> {
    payload: &'a (dyn Any + Send),
    method: &'a Method,
    format: &'a ErrorFormat,
    stage: PanicStage,
    path_cut: bool,
}

/// Logged in place of a payload that is neither a `&str` nor a `String`.
const NON_STRING_PAYLOAD: &str = "<non-string panic payload>";

impl<'a> CaughtPanic<'a> {
    pub(crate) fn new(
        payload: &'a (dyn Any + Send),
        method: &'a Method,
        format: &'a ErrorFormat,
        stage: PanicStage,
    ) -> Self {
        CaughtPanic {
            payload,
            method,
            format,
            stage,
            path_cut: false,
        }
    }

    fn with_path_cut(mut self, path_cut: bool) -> Self {
        self.path_cut = path_cut;
        self
    }

    /// The panic payload, as given to `panic!` or `std::panic::panic_any`.
    ///
    /// It may hold internals of the service; never put it in a response.
    pub fn payload(&self) -> &(dyn Any + Send) {
        self.payload
    }

    /// The panic message, when the payload is a `&str` or a `String` (what `panic!` produces).
    pub fn message(&self) -> Option<&str> {
        if let Some(message) = self.payload.downcast_ref::<&'static str>() {
            Some(message)
        } else {
            self.payload.downcast_ref::<String>().map(String::as_str)
        }
    }

    /// The request's method.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// The request's path, without the query string.
    ///
    /// The layer keeps at most 123 bytes of it (fewer after an extension method's name), which
    /// route-dependent dialects and the log line see; a longer path is cut, and marked with `…`
    /// in the log line.
    pub fn path(&self) -> Option<&str> {
        self.format.path()
    }

    /// How an error is answered for this request ([`ErrorFormat::render`] gives the
    /// contract response for it).
    pub fn format(&self) -> &ErrorFormat {
        self.format
    }

    /// Where the panic happened.
    pub fn stage(&self) -> PanicStage {
        self.stage
    }
}

impl fmt::Debug for CaughtPanic<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaughtPanic")
            .field("method", self.method)
            .field("path", &self.path())
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

/// Builds the response for a panic raised before the response head existed.
///
/// Implemented for closures `FnMut(&CaughtPanic<'_>) -> Response<ErrorBody>` (which ignore the
/// layer's dialect) and by [`DefaultResponseForPanic`]. A panic in the response body cannot be
/// answered with a response of its own and never reaches this trait; see the
/// [module docs](self).
///
/// A custom response that is a contract error should carry the
/// [`RenderedError`](crate::RenderedError) marker, as every response rendered by
/// [`ErrorFormat::render`] does: mark one built by hand with
/// [`RenderedError::mark`](crate::RenderedError::mark), so outer layers know it is already in
/// the contract. Should a custom response itself panic, the layer answers with `server_error`
/// in the bulk dialect rather than let the panic through.
///
/// # Example
///
/// A 503 with `Retry-After`, for a service that panics only while a dependency restarts:
///
/// ```
/// use http::{header, HeaderValue, Response, StatusCode};
/// use tower_api_errors::{
///     body::ErrorBody,
///     catch_panic::{CatchPanicLayer, CaughtPanic},
///     dialect::Bulk,
///     ApiError, ErrorCode,
/// };
///
/// let layer = CatchPanicLayer::new().response_for_panic(|panic: &CaughtPanic<'_>| {
///     let error = ApiError::new(ErrorCode::ServiceUnavailable);
///     // `render` handles gRPC, HEAD and Content-Length, and marks the response.
///     let mut response = panic.format().render(&Bulk, &error);
///     response
///         .headers_mut()
///         .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
///     response
/// });
/// # let _ = layer;
///
/// // Built by hand instead: mark it, so outer layers know it is a contract response.
/// fn teapot(_: &CaughtPanic<'_>) -> Response<ErrorBody> {
///     let error = ApiError::from_status(StatusCode::IM_A_TEAPOT);
///     let mut response = Response::new(ErrorBody::new(r#"{"error":"im_a_teapot"}"#));
///     *response.status_mut() = error.status();
///     tower_api_errors::RenderedError::mark(&mut response, &error);
///     response
/// }
/// let layer = CatchPanicLayer::new().response_for_panic(teapot);
/// # let _ = layer;
/// ```
pub trait ResponseForPanic<D: ?Sized> {
    /// The response for `panic`; `dialect` is the layer's.
    fn response_for_panic(&mut self, panic: &CaughtPanic<'_>, dialect: &D) -> Response<ErrorBody>;
}

impl<F, D> ResponseForPanic<D> for F
where
    F: FnMut(&CaughtPanic<'_>) -> Response<ErrorBody>,
    D: ?Sized,
{
    fn response_for_panic(&mut self, panic: &CaughtPanic<'_>, _dialect: &D) -> Response<ErrorBody> {
        self(panic)
    }
}

/// The default [`ResponseForPanic`]: `server_error` in the layer's dialect, rendered by
/// [`ErrorFormat::render`] for the request (500 `{"error":"server_error"}` in the bulk dialect,
/// `grpc-status: 13` for a gRPC call).
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct DefaultResponseForPanic;

impl<D> ResponseForPanic<D> for DefaultResponseForPanic
where
    D: Dialect + ?Sized,
{
    fn response_for_panic(&mut self, panic: &CaughtPanic<'_>, dialect: &D) -> Response<ErrorBody> {
        panic
            .format()
            .render_owned(dialect, ApiError::server_error(), None)
    }
}

/// Observes every caught panic, wherever it happened, after it was logged: to count panics in a
/// metric, say.
///
/// Implemented for closures `FnMut(&CaughtPanic<'_>)`, and by `()`, which does nothing (the
/// default). A panic inside the observer is caught and logged, and changes nothing for the
/// client.
pub trait OnPanic {
    /// Called once for each caught panic.
    fn on_panic(&mut self, panic: &CaughtPanic<'_>);
}

impl OnPanic for () {
    #[inline]
    fn on_panic(&mut self, _panic: &CaughtPanic<'_>) {}
}

impl<F> OnPanic for F
where
    F: FnMut(&CaughtPanic<'_>),
{
    fn on_panic(&mut self, panic: &CaughtPanic<'_>) {
        self(panic)
    }
}

/// Logs a panic raised before the response head, tells the observer, and builds the
/// response. Kept out of line: the path of a request that does not panic stays small.
#[cold]
#[inline(never)]
fn answer<D, R, P>(
    payload: Box<dyn Any + Send>,
    head: &RequestHead,
    stage: PanicStage,
    dialect: &D,
    response_for_panic: &mut R,
    on_panic: &mut P,
) -> Response<ErrorBody>
where
    D: Dialect,
    R: ResponseForPanic<D>,
    P: OnPanic,
{
    let (format, method) = (head.format(), head.method());
    let panic = CaughtPanic::new(&*payload, &method, &format, stage).with_path_cut(head.path_cut());
    report(on_panic, &panic);
    // A custom response that panics falls back to the bulk dialect, which cannot.
    catching(|| response_for_panic.response_for_panic(&panic, dialect)).unwrap_or_else(|_| {
        tracing::error!(
            stage = stage.as_str(),
            "the panic response panicked; answering in the bulk dialect"
        );
        format.render(&Bulk, &ApiError::server_error())
    })
}

/// Logs a panic raised while the body was polled and tells the observer.
#[cold]
#[inline(never)]
fn observe<P: OnPanic>(payload: Box<dyn Any + Send>, head: &RequestHead, on_panic: &mut P) {
    let (format, method) = (head.format(), head.method());
    let panic = CaughtPanic::new(&*payload, &method, &format, PanicStage::ResponseBody)
        .with_path_cut(head.path_cut());
    report(on_panic, &panic);
}

/// Logs a caught panic and tells the observer.
fn report<P: OnPanic>(on_panic: &mut P, panic: &CaughtPanic<'_>) {
    tracing::error!(
        method = %panic.method(),
        path = %LoggedPath(panic),
        stage = panic.stage().as_str(),
        panic = %PayloadFingerprint(panic.message()),
        "service panicked",
    );
    if catching(|| on_panic.on_panic(panic)).is_err() {
        tracing::error!(
            stage = panic.stage().as_str(),
            "the panic observer panicked"
        );
    }
}

/// What is logged of a panic message: its length and a digest prefix, never its text.
struct PayloadFingerprint<'a>(Option<&'a str>);

impl fmt::Display for PayloadFingerprint<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use sha2::Digest;
        let Some(message) = self.0 else {
            return f.write_str(NON_STRING_PAYLOAD);
        };
        let digest = sha2::Sha256::digest(message.as_bytes());
        write!(f, "<{} bytes, sha256:", message.len())?;
        for byte in &digest[..4] {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(">")
    }
}

/// The path as logged: marked with `…` when it was cut.
struct LoggedPath<'a>(&'a CaughtPanic<'a>);

impl fmt::Display for LoggedPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.path().unwrap_or_default())?;
        if self.0.path_cut {
            f.write_str("…")?;
        }
        Ok(())
    }
}

/// Runs `f`, which drops a panicked future or body; a panic in its destructor is logged, not
/// let through, since the panic it follows has already been answered.
fn drop_guarded(f: impl FnOnce()) {
    if catching(f).is_err() {
        tracing::error!("dropping a panicked future or body panicked");
    }
}

/// Writes a type's name for `Debug` output of closures and other opaque parameters.
struct TypeName<T: ?Sized>(std::marker::PhantomData<T>);

impl<T: ?Sized> TypeName<T> {
    fn new() -> Self {
        TypeName(std::marker::PhantomData)
    }
}

impl<T: ?Sized> fmt::Debug for TypeName<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::any::type_name::<T>())
    }
}

#[cfg(test)]
pub(crate) mod tests;
