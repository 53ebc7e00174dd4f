//! Refuse bulk requests with too many items, counting them while the body streams.
//!
//! [`BatchLimitLayer`] answers `too_many_items` (400; `{"error":"too_many_items"}` in the bulk
//! dialect) when a request carries more items than its method allows: by default 5 for
//! `POST`, `PUT`, `PATCH` and `DELETE`, and 10 for `GET`. Methods without a limit pass
//! untouched. The body is counted chunk by chunk as it arrives, and refused the moment the
//! first byte of the item past the limit shows up: a client that sends six items and then
//! stalls gets its 400 at once, and the inner service never sees the request.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_api_errors::{batch_limit::{BatchLimitLayer, BulkItems}, body::RequestBody};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let service = ServiceBuilder::new()
//!     .layer(BatchLimitLayer::new())
//!     .service_fn(|request: Request<RequestBody<Full<Bytes>>>| async move {
//!         // What the layer learned, without parsing the body again.
//!         let items = request.extensions().get::<BulkItems>().map_or(0, BulkItems::len);
//!         Ok::<_, std::convert::Infallible>(Response::new(format!("{items} items")))
//!     });
//!
//! let body = |n: usize| {
//!     let items: Vec<String> = (0..n).map(|i| format!(r#"{{"url":"https://example.com/{i}"}}"#)).collect();
//!     Full::new(Bytes::from(format!("[{}]", items.join(","))))
//! };
//! let response = service.clone().oneshot(Request::post("/v1/webhooks").body(body(5))?).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.into_body().collect().await?.to_bytes(), "5 items");
//!
//! let response = service.clone().oneshot(Request::post("/v1/webhooks").body(body(6))?).await?;
//! assert_eq!(response.status(), StatusCode::BAD_REQUEST);
//! assert_eq!(response.into_body().collect().await?.to_bytes(), r#"{"error":"too_many_items"}"#);
//!
//! // For GET, the ids in the query count: `ids=a,b` and `ids=a&ids=b` alike.
//! let ids: Vec<String> = (0..11).map(|i| format!("web_{i}")).collect();
//! let request = Request::get(format!("/v1/webhooks?ids={}", ids.join(","))).body(Full::default())?;
//! assert_eq!(service.oneshot(request).await?.status(), StatusCode::BAD_REQUEST);
//! # Ok(())
//! # }
//! ```
//!
//! Customised: other limits, the items in a field, the coded dialect (which shows the limit),
//! a smaller byte cap, and a gRPC method:
//!
//! ```
//! use bytes::Bytes;
//! use http::{Method, Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_api_errors::{
//!     batch_limit::{BatchLimitLayer, GrpcItems},
//!     body::RequestBody,
//!     dialect::Coded,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = BatchLimitLayer::new()
//!     .limit(Method::POST, 100)
//!     .no_limit(&Method::DELETE)
//!     .json_field("data")
//!     .max_body_bytes(256 * 1024)
//!     .grpc(GrpcItems::new("/webhooks.v1.Webhooks/CreateWebhooks", 1)?)
//!     .dialect(Coded::new());
//! let service = ServiceBuilder::new()
//!     .layer(layer)
//!     .service_fn(|_: Request<RequestBody<Full<Bytes>>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::<Bytes>::default()))
//!     });
//!
//! let items = vec![serde_json::json!({"id": 1}); 101];
//! let body = serde_json::to_vec(&serde_json::json!({"data": items}))?;
//! let request = Request::post("/v1/courses").body(Full::new(Bytes::from(body)))?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::BAD_REQUEST);
//! assert_eq!(
//!     response.into_body().collect().await?.to_bytes(),
//!     r#"{"code":6,"message":"Model not valid","errors":["too_many_items: at most 100 items per POST request"]}"#
//! );
//! # Ok(())
//! # }
//! ```
//!
//! With axum, add it to the router; put it after authentication, so that a rejected key never
//! costs a body read, and before the per-item authorization, which reuses what it counted:
//! catch panic → normalize → auth → **batch limit** → per-item authorization → handler.
//!
//! ```
//! use axum::{routing::post, Router};
//! use tower_api_errors::batch_limit::BatchLimitLayer;
//!
//! let app: Router = Router::new()
//!     .route("/v1/webhooks", post(|body: String| async move { body }))
//!     .layer(BatchLimitLayer::new());
//! ```
//!
//! # Where the items are
//!
//! The [`DefaultCounter`] decides, from the request:
//!
//! - A JSON body: the elements of a top-level array; any other top-level value (an object, a
//!   string, a number) is one item. With [`BatchLimitLayer::json_field`], the array may
//!   instead be the value of a field of a top-level object (`{"data": [...]}`).
//! - The ids in the query parameter `ids` (rename it with [`BatchLimitLayer::query_param`]),
//!   comma-separated and/or repeated, percent-decoded as a query parser decodes them; they add
//!   to the body's items. Counted for every limited method (`HEAD` is held to `GET`'s limit,
//!   since routers answer it with the `GET` handler); GET requests usually have nothing
//!   else. A request over the limit by its query alone is refused before its body is read.
//! - A body that is not declared JSON (`application/json` or `application/*+json`) or gRPC is
//!   still counted as JSON by default, so a mislabelled body cannot slip past the limit; a
//!   body without `Content-Type` is JSON. [`OtherBodies`] lets such bodies pass uncounted
//!   (for stacks whose handlers refuse them anyway, like axum's `Json`, or routes that take
//!   uploads) or be refused with `unsupported_media_type` (415).
//! - An empty body is no body: nothing is read, nothing is counted.
//! - A `Content-Type` in the gRPC family (any spelling: `application/grpc`, `+proto`, `+json`,
//!   `-web`, `-web-text`, any case, with parameters; see [`crate::media`]) is believed only on
//!   a route the service declared gRPC, with [`BatchLimitLayer::grpc`] (one method, counted on
//!   the wire) or [`BatchLimitLayer::grpc_service`] (every method of a service; those without
//!   items pass uncounted). Anywhere else the label is the client's choice, and the body is
//!   counted, capped and limited like any other body ([`OtherBodies`]).
//!
//! Anything else can be plugged in: a [`CountItems`] implementation, or a closure given the
//! whole body (see [`CountItems`]).
//!
//! # What passes, and what the layer leaves behind
//!
//! A request under the limit reaches the inner service with its head untouched (headers,
//! `Content-Length` included) and a [`RequestBody`](crate::body::RequestBody) replaying the
//! exact bytes (and trailers) the client sent. A counted body's [`BulkItems`] goes into the
//! request extensions: the bytes and each item's span, so the per-item authorization and the
//! handler need not parse to find the items. Requests the layer does not read (methods
//! without a limit, empty bodies, passed media types, declared gRPC methods without items) go on with
//! their body streaming, untouched.
//!
//! # Errors
//!
//! Every refusal is a response in the layer's dialect (or the gRPC form, or problem details
//! when asked for), made by [`ErrorFormat`](crate::dialect::ErrorFormat); the inner service
//! is not called.
//!
//! | code | status | when |
//! | --- | --- | --- |
//! | `too_many_items` | 400 | the item past the limit begins; the coded dialect adds `"too_many_items: at most 5 items per POST request"` |
//! | `invalid_json` | 400 | the body is not JSON where the count depends on it (see [`ItemCounter`] for exactly what is checked), is cut short, or nests deeper than [`MAX_DEPTH`] |
//! | `payload_too_large` | 413 | `Content-Length` over the byte cap (refused before any byte is read), or a body that grows past it |
//! | `unsupported_media_type` | 415 | with [`OtherBodies::Refuse`]; a compressed or grpc-web-text gRPC message |
//! | `model_not_valid` | 400 | a gRPC message that is not well-formed protobuf |
//! | `bad_request` | 400 | the body could not be read (the client went away); `payload_too_large` when an outer length limit stopped it |
//! | `request_timeout` | 408 | an outer body timeout stopped the read (tower-http's `RequestBodyTimeoutLayer`, tower's `Elapsed`, an I/O `TimedOut`) |
//!
//! # Slow clients
//!
//! A client that stops sending before it has reached the limit keeps its request open: the
//! layer cannot tell a slow body from a stalled one. Put a timeout around it to bound that
//! time: with tower-http's `RequestBodyTimeoutLayer` the layer answers `request_timeout` (408)
//! itself when the body stops arriving; with tower-http's whole-request `TimeoutLayer` inside
//! the normalize layer, the normalize layer turns its empty 408 into `request_timeout`. Either
//! way the inner service never sees the partial body.
//!
//! # gRPC
//!
//! For the methods named with [`BatchLimitLayer::grpc`], the items are the occurrences of a
//! top-level field of the request message (a `repeated` field), counted by scanning the
//! protobuf wire format ([`FieldScanner`]; no schema needed) as the message arrives. A call
//! over the limit is answered `INVALID_ARGUMENT` (`grpc-message: too_many_items`) as a
//! trailers-only response. Compressed messages cannot be scanned and are refused.
//!
//! The layer reads the whole request body before calling the service. That fits unary calls
//! (and server-streaming ones, whose request is one message). A client-streaming or
//! bidirectional method would be held until the client closes its stream, so do not name
//! those: calls to methods not named pass untouched and uncounted. When a body holds several
//! messages, the limit applies to each.
//!
//! # Memory
//!
//! The layer holds at most one request body, and never more than the byte cap
//! ([`BatchLimitLayer::max_body_bytes`], 1 MiB by default) of it: a body that would grow past
//! the cap is refused at the chunk that would cross it. A body that arrives in one frame is
//! kept as is; one that arrives in several is copied once into one buffer, sized up front from
//! `Content-Length` when the client sent it. The count itself needs a few hundred bytes plus
//! one span per item (16 bytes), and the counter stops at the first item past the limit, so a
//! body of tiny items cannot grow the spans past the limit either.

pub(crate) mod classify;
mod count;
mod future;
mod inspect;
pub(crate) mod json;
mod layer;
mod query;
mod service;
#[cfg(target_arch = "x86_64")]
pub(crate) mod simd;
mod spans;
mod wire;

use std::{borrow::Cow, fmt, ops::Range};

pub use self::{
    count::{
        too_many_items, CountItems, DefaultCount, DefaultCounter, GrpcItems, GrpcService,
        OtherBodies, Start,
    },
    future::ResponseFuture,
    inspect::InspectItems,
    json::{CountError, CountErrorKind, ItemCounter, Progress, MAX_DEPTH},
    layer::{BatchLimitLayer, DEFAULT_MAX_BODY_BYTES},
    service::BatchLimit,
    wire::{field_spans, FieldScanner, Packed, WireError, WireErrorKind},
};

/// A configuration the batch limit layer cannot work with, reported when it is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    reason: Cow<'static, str>,
}

impl ConfigError {
    pub(crate) fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        ConfigError {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests;

use bytes::Bytes;

use self::spans::Spans;

/// What the batch limit layer learned about a bulk body, left in the request extensions so the
/// per-item authorization and the handler can use it without parsing the body again.
///
/// `body` is exactly the bytes the inner service receives; each span is the byte range of one
/// item within it, in request order: the raw JSON of a top-level array element (whitespace
/// around it excluded), or, for a gRPC call, the encoded value of one occurrence of the field
/// (an embedded message's bytes). The layer inserts it for every request whose body it counted
/// and passed; a request it did not read (no limit, no body, not counted) has none.
///
/// ```
/// use bytes::Bytes;
/// use tower_api_errors::batch_limit::BulkItems;
///
/// let items = BulkItems::new(Bytes::from_static(br#"[{"a":1}, 2]"#), vec![1..8, 10..11]);
/// assert_eq!(items.len(), 2);
/// assert_eq!(items.get(0), Some(&br#"{"a":1}"#[..]));
/// assert_eq!(items.iter().last(), Some(&b"2"[..]));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkItems {
    body: Bytes,
    spans: Spans,
    protobuf: bool,
}

impl BulkItems {
    /// The items of `body`, one span each.
    ///
    /// # Panics
    ///
    /// If a span is out of `body`'s bounds.
    pub fn new(body: Bytes, spans: Vec<Range<usize>>) -> Self {
        Self::from_spans(body, Spans::from(spans))
    }

    /// [`BulkItems::new`] with the spans as the counter keeps them.
    pub(crate) fn from_spans(body: Bytes, spans: Spans) -> Self {
        assert!(
            spans
                .as_slice()
                .iter()
                .all(|span| span.start <= span.end && span.end <= body.len()),
            "item spans must lie within the body"
        );
        BulkItems {
            body,
            spans,
            protobuf: false,
        }
    }

    /// The items of a gRPC message: each span is the encoded value of one occurrence of the
    /// counted field, not JSON.
    pub(crate) fn protobuf(body: Bytes, spans: Vec<Range<usize>>) -> Self {
        BulkItems {
            protobuf: true,
            ..BulkItems::new(body, spans)
        }
    }

    /// Whether the items are protobuf (a gRPC message's field occurrences) rather than JSON.
    pub fn is_protobuf(&self) -> bool {
        self.protobuf
    }

    /// How many items the body holds.
    pub fn len(&self) -> usize {
        self.spans().len()
    }

    /// Whether the body holds no item.
    pub fn is_empty(&self) -> bool {
        self.spans().is_empty()
    }

    /// The whole body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The byte range of each item within [`BulkItems::body`].
    pub fn spans(&self) -> &[Range<usize>] {
        self.spans.as_slice()
    }

    /// The raw JSON of item `index`.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.spans().get(index).map(|span| &self.body[span.clone()])
    }

    /// The raw JSON of each item, in request order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.spans().iter().map(|span| &self.body[span.clone()])
    }
}
