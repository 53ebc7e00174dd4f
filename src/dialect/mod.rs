//! Dialects: how an [`ApiError`] is written on the wire.
//!
//! Every layer of the crate is generic over a [`Dialect`]. Three ship with it:
//!
//! - [`Bulk`] (the default), the bulk API's format: `{"error": "too_many_items"}`;
//! - [`Coded`], the numeric-code format: `{"code": 6, "message": "Model not valid", "errors": […]}`;
//! - [`ProblemDetails`], RFC 9457 `application/problem+json`.
//!
//! [`DialectByPath`] picks one of several by path prefix, so one stack can answer `/v1/customer/…`
//! in the coded dialect and everything else in the bulk dialect.
//!
//! # How a request is answered
//!
//! [`ErrorFormat::for_request`] is the one rule every layer follows, decided from the request
//! head before the request is handed on:
//!
//! 1. `content-type` starting with `application/grpc` → a gRPC trailers-only response
//!    ([`crate::grpc::trailers_only`]), whatever the dialect;
//! 2. otherwise, an `Accept` header that names `application/problem+json` (with a non-zero `q`)
//!    → [`ProblemDetails`]; `*/*` and `application/json` do not count, so browsers and ordinary
//!    clients keep the service's dialect;
//! 3. otherwise the layer's dialect.
//!
//! A `HEAD` request gets the same status and headers (`Content-Length` included) with no body.
//! A 401 gets `WWW-Authenticate: Bearer` unless the error's producer set a more precise one.
//! Every response rendered this way carries a [`RenderedError`] in its extensions, so outer
//! layers recognise it without parsing the body.
//!
//! # A house dialect
//!
//! A service (or a framework) with its own format implements [`Dialect`]:
//!
//! ```
//! use http::{header, HeaderValue, Response};
//! use tower_api_errors::{body::ErrorBody, dialect::{Dialect, ErrorFormat}, ApiError};
//!
//! /// `{"failure": {"kind": "too_many_items", "status": 400}}`
//! #[derive(Clone, Debug)]
//! struct Envelope;
//!
//! impl Dialect for Envelope {
//!     fn render(&self, error: &ApiError, _format: &ErrorFormat) -> Response<ErrorBody> {
//!         let body = serde_json::json!({
//!             "failure": { "kind": error.code(), "status": error.status().as_u16() }
//!         });
//!         let mut response = Response::new(ErrorBody::new(body.to_string()));
//!         *response.status_mut() = error.status();
//!         response
//!             .headers_mut()
//!             .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
//!         response
//!     }
//! }
//!
//! let request = http::Request::get("/v1/things").body(()).unwrap();
//! let response = ErrorFormat::for_request(&request).render(&Envelope, &ApiError::too_many_items());
//! assert_eq!(response.status(), 400);
//! assert_eq!(
//!     response.body().as_bytes(),
//!     br#"{"failure":{"kind":"too_many_items","status":400}}"#
//! );
//! // The same error on a gRPC request is answered the gRPC way, whatever the dialect.
//! let grpc = http::Request::post("/pkg.Svc/Call")
//!     .header("content-type", "application/grpc")
//!     .body(())
//!     .unwrap();
//! let response = ErrorFormat::for_request(&grpc).render(&Envelope, &ApiError::too_many_items());
//! assert_eq!(response.headers()["grpc-status"], "3");
//! ```

mod bulk;
mod coded;
mod problem;
mod routes;

use std::sync::Arc;

use http::{header, request, uri::PathAndQuery, HeaderMap, HeaderValue, Method, Request, Response};

pub use self::{bulk::Bulk, coded::Coded, problem::ProblemDetails, routes::DialectByPath};
use crate::{body::ErrorBody, error::ApiError, grpc};

/// Writes an [`ApiError`] as an HTTP response.
///
/// Implement it for a house format; see the [module docs](self) for an example. gRPC requests,
/// `HEAD`, the `Content-Length` header and the [`RenderedError`] marker are handled by
/// [`ErrorFormat::render`], so an implementation only writes status, headers and body.
pub trait Dialect {
    /// The response for `error`. `format` tells the request's path, for dialects that vary
    /// by route.
    fn render(&self, error: &ApiError, format: &ErrorFormat) -> Response<ErrorBody>;

    /// Whether an error response from elsewhere is already in this dialect, so the normalize
    /// layer leaves it alone. `body` is at most the first few KiB of the body.
    ///
    /// The default says no, so every error response is rewritten.
    fn recognizes(&self, headers: &HeaderMap, body: &[u8], format: &ErrorFormat) -> bool {
        let _ = (headers, body, format);
        false
    }
}

impl<D: Dialect + ?Sized> Dialect for Arc<D> {
    fn render(&self, error: &ApiError, format: &ErrorFormat) -> Response<ErrorBody> {
        (**self).render(error, format)
    }

    fn recognizes(&self, headers: &HeaderMap, body: &[u8], format: &ErrorFormat) -> bool {
        (**self).recognizes(headers, body, format)
    }
}

impl<D: Dialect + ?Sized> Dialect for &D {
    fn render(&self, error: &ApiError, format: &ErrorFormat) -> Response<ErrorBody> {
        (**self).render(error, format)
    }

    fn recognizes(&self, headers: &HeaderMap, body: &[u8], format: &ErrorFormat) -> bool {
        (**self).recognizes(headers, body, format)
    }
}

/// Which family of response a request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Wire {
    /// The layer's dialect.
    Dialect,
    /// RFC 9457 problem details, asked for by `Accept`.
    ProblemDetails,
    /// A gRPC trailers-only response.
    Grpc,
}

impl Wire {
    /// The family of response a request with these headers gets; see the
    /// [module docs](self) for the rule.
    pub fn for_headers(headers: &HeaderMap) -> Self {
        if grpc::is_grpc(headers) {
            Wire::Grpc
        } else if accepts_problem_details(headers) {
            Wire::ProblemDetails
        } else {
            Wire::Dialect
        }
    }
}

/// How an error must be answered for one request: decided from the request head, before the
/// request is handed to the inner service, and kept until the error (if any) happens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorFormat {
    wire: Wire,
    head: bool,
    path: Option<PathAndQuery>,
}

impl ErrorFormat {
    /// The format for a request. See the [module docs](self) for the rule.
    pub fn for_request<B>(request: &Request<B>) -> Self {
        Self::from_parts(request.method(), request.uri(), request.headers())
    }

    /// The format for a request head.
    pub fn for_parts(parts: &request::Parts) -> Self {
        Self::from_parts(&parts.method, &parts.uri, &parts.headers)
    }

    /// The format from a request's method, URI and headers.
    pub fn from_parts(method: &Method, uri: &http::Uri, headers: &HeaderMap) -> Self {
        Self::new(
            Wire::for_headers(headers),
            method,
            uri.path_and_query().cloned(),
        )
    }

    /// The format for a request with `method` and `path`, answered on `wire`.
    ///
    /// For a layer that keeps less of each request than [`ErrorFormat::for_request`] does (the
    /// path is cloned there): it decides the [`Wire`] with [`Wire::for_headers`] up front and
    /// builds the format only when an error happens.
    pub fn new(wire: Wire, method: &Method, path: Option<PathAndQuery>) -> Self {
        ErrorFormat {
            wire,
            head: method == Method::HEAD,
            path,
        }
    }

    /// The format for a plain HTTP client that said nothing about formats: the dialect, with a
    /// body.
    pub fn http() -> Self {
        ErrorFormat {
            wire: Wire::Dialect,
            head: false,
            path: None,
        }
    }

    /// The family of response.
    pub fn wire(&self) -> Wire {
        self.wire
    }

    /// Whether the request is a gRPC call.
    pub fn is_grpc(&self) -> bool {
        self.wire == Wire::Grpc
    }

    /// Whether the request is `HEAD` (headers only).
    pub fn is_head(&self) -> bool {
        self.head
    }

    /// The request's path (without the query), when known.
    pub fn path(&self) -> Option<&str> {
        self.path.as_ref().map(PathAndQuery::path)
    }

    /// The request's query string, when known (the normalize layer quotes refused query
    /// values from it).
    pub fn query(&self) -> Option<&str> {
        self.path.as_ref().and_then(PathAndQuery::query)
    }

    /// The response for `error`: the gRPC form, problem details or `dialect`, as the request
    /// asked; headers-only for `HEAD`; tagged with [`RenderedError`].
    pub fn render<D: Dialect + ?Sized>(
        &self,
        dialect: &D,
        error: &ApiError,
    ) -> Response<ErrorBody> {
        let mut response = self.render_untagged(dialect, error, None);
        RenderedError::mark(&mut response, error);
        response
    }

    /// [`ErrorFormat::render`] for an error the caller owns, which goes into the marker as it
    /// is; `challenge`, when given, is the `WWW-Authenticate` of a 401 in place of whatever
    /// the dialect or the default said. A refusal so writes each header once and clones
    /// nothing (`benches/stack.rs`, `bad_key`).
    pub(crate) fn render_owned<D: Dialect + ?Sized>(
        &self,
        dialect: &D,
        error: ApiError,
        challenge: Option<HeaderValue>,
    ) -> Response<ErrorBody> {
        let mut response = self.render_untagged(dialect, &error, challenge);
        response.extensions_mut().insert(RenderedError(error));
        response
    }

    fn render_untagged<D: Dialect + ?Sized>(
        &self,
        dialect: &D,
        error: &ApiError,
        challenge: Option<HeaderValue>,
    ) -> Response<ErrorBody> {
        let mut response = match self.wire {
            Wire::Grpc => grpc::trailers_only(error),
            Wire::ProblemDetails => ProblemDetails::new().render(error, self),
            Wire::Dialect => dialect.render(error, self),
        };
        if self.wire != Wire::Grpc {
            let length = content_length(response.body().as_bytes().len());
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, length);
            if response.status() == http::StatusCode::UNAUTHORIZED {
                let headers = response.headers_mut();
                match challenge {
                    Some(challenge) => {
                        headers.insert(header::WWW_AUTHENTICATE, challenge);
                    }
                    None => {
                        headers
                            .entry(header::WWW_AUTHENTICATE)
                            .or_insert(DEFAULT_CHALLENGE);
                    }
                }
            }
            if self.head {
                *response.body_mut() = ErrorBody::empty();
            }
        }
        response
    }
}

/// The `WWW-Authenticate` of a 401 whose producer gave none (RFC 6750 §3).
const DEFAULT_CHALLENGE: HeaderValue = HeaderValue::from_static("Bearer");

/// A `Content-Length` value. Error bodies are short: their lengths come from a table built once,
/// so rendering a rejection does not allocate for it (`HeaderValue::from(usize)` does).
fn content_length(length: usize) -> HeaderValue {
    static SHORT: std::sync::OnceLock<Vec<HeaderValue>> = std::sync::OnceLock::new();
    let short = SHORT.get_or_init(|| (0..512_usize).map(HeaderValue::from).collect());
    short
        .get(length)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from(length))
}

/// `Accept` names `application/problem+json` with a non-zero quality.
fn accepts_problem_details(headers: &HeaderMap) -> bool {
    // Every request pays for this check, so the common case is cut short: no header repeated
    // (so at most one `Accept` value) and no `+` in it, which the media type needs.
    if headers.len() == headers.keys_len() {
        match headers.get(header::ACCEPT) {
            Some(value) if value.as_bytes().contains(&b'+') => {}
            _ => return false,
        }
    }
    headers
        .get_all(header::ACCEPT)
        .iter()
        // Most clients never name problem details; a media type without `+` cannot be it, and
        // this check spares every other request the parse below.
        .filter(|value| value.as_bytes().contains(&b'+'))
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut params = range.split(';');
            let media = params.next().unwrap_or_default().trim();
            media.eq_ignore_ascii_case("application/problem+json")
                && params.all(|param| {
                    let param = param.trim();
                    !(param.len() >= 2
                        && param[..2].eq_ignore_ascii_case("q=")
                        && param[2..].trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
                })
        })
}

/// The marker in the extensions of every response the crate renders: outer layers see that a
/// response is already in the contract, and which error it carries, without reading the body.
#[derive(Clone, Debug)]
pub struct RenderedError(ApiError);

impl RenderedError {
    /// Marks a response built by hand (e.g. a custom panic response) as a contract response.
    pub fn mark<B>(response: &mut Response<B>, error: &ApiError) {
        response
            .extensions_mut()
            .insert(RenderedError(error.clone()));
    }

    /// The error the response carries.
    pub fn error(&self) -> &ApiError {
        &self.0
    }
}

/// The marker of a response that carries an error its producer (a handler) could not write for
/// the request, because it does not know the request's route group or wire.
///
/// [`UnrenderedError::response`] writes the error in the default dialect ([`Bulk`], for a plain
/// HTTP client), so the response is right on its own; the normalize layer (alone or inside a
/// whole stack) sees the marker and writes the error again with the request's [`ErrorFormat`]
/// and the layer's dialect: a coded body on a coded route, problem details when asked for,
/// trailers-only for a gRPC caller. The body written by the producer is never read.
///
/// ```
/// use tower_api_errors::{dialect::UnrenderedError, ApiError};
///
/// let response = UnrenderedError::response(ApiError::forbidden());
/// assert_eq!(response.status(), 403);
/// assert_eq!(response.body().as_bytes(), br#"{"error":"forbidden"}"#);
/// let marker = response.extensions().get::<UnrenderedError>().unwrap();
/// assert_eq!(marker.error(), &ApiError::forbidden());
/// ```
#[derive(Clone, Debug)]
pub struct UnrenderedError(ApiError);

impl UnrenderedError {
    /// `error` in the default dialect for a plain HTTP client, marked to be written again by
    /// the contract layer the response passes through.
    pub fn response(error: ApiError) -> Response<ErrorBody> {
        let mut response = ErrorFormat::http().render(&Bulk, &error);
        response.extensions_mut().remove::<RenderedError>();
        response.extensions_mut().insert(UnrenderedError(error));
        response
    }

    /// Marks a response built by hand as carrying `error`, to be written by the contract.
    pub fn mark<B>(response: &mut Response<B>, error: ApiError) {
        response.extensions_mut().remove::<RenderedError>();
        response.extensions_mut().insert(UnrenderedError(error));
    }

    /// The error the response carries.
    pub fn error(&self) -> &ApiError {
        &self.0
    }

    /// The error, by value.
    pub fn into_error(self) -> ApiError {
        self.0
    }
}

/// A JSON response with `status`, `content_type` and `body`.
pub(crate) fn json_response(
    status: http::StatusCode,
    content_type: &'static str,
    body: ErrorBody,
) -> Response<ErrorBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Whether `headers` declare a JSON body of the given media type (parameters ignored).
pub(crate) fn has_content_type(headers: &HeaderMap, media_type: &str) -> bool {
    crate::media::is(headers, media_type)
}

#[cfg(test)]
mod tests;
