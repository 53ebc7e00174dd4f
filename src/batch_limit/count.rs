//! Where the items are: the [`CountItems`] trait and the default counter.

use std::{fmt, sync::Arc};

use bytes::Bytes;
use http::{request, Method};

use super::{
    json::{CountError, CountErrorKind, ItemCounter},
    query,
    wire::{FieldScanner, GrpcMessages, Packed, WireError, WireErrorKind},
    BulkItems, ConfigError,
};
use crate::{
    error::{ApiError, ErrorCode},
    media::{GrpcFlavor, MediaType},
};

/// What a counter decides from the request head, before any byte of the body is read.
#[derive(Debug)]
#[non_exhaustive]
pub enum Start<C> {
    /// Hand the request on untouched, its body unread and uncounted.
    Pass,
    /// Read the body, feeding each chunk to this count.
    Count(C),
    /// Refuse the request with this error; its body is not read.
    Refuse(ApiError),
}

/// Counts the items of a request: where they are and how to count them.
///
/// The layer calls [`CountItems::start`] with the request head and the limit for its method,
/// then, unless told to pass or refuse, [`CountItems::feed`] with each chunk of the body as it
/// arrives (the layer stops reading at the first error), then [`CountItems::finish`] with the
/// whole body. A body that is empty is not read: `finish` gets empty bytes and the request goes
/// on with its body untouched.
///
/// [`DefaultCounter`] counts JSON bodies, query ids and gRPC messages. A closure
/// `Fn(&request::Parts, &Bytes) -> Result<usize, ApiError>` is a counter too: it is given the
/// whole body (read up to the byte cap) and returns the number of items, which the layer
/// compares with the limit. A closure gives a number, not spans, so it leaves no
/// [`BulkItems`] in the extensions; implement the trait to stream, or to leave them.
///
/// ```
/// use bytes::Bytes;
/// use tower_api_errors::{batch_limit::BatchLimitLayer, ApiError, ErrorCode};
///
/// // Newline-delimited JSON: one item per non-empty line.
/// let layer = BatchLimitLayer::new().counter(|_: &http::request::Parts, body: &Bytes| {
///     let text = std::str::from_utf8(body)
///         .map_err(|_| ApiError::new(ErrorCode::InvalidJson))?;
///     Ok::<_, ApiError>(text.lines().filter(|line| !line.trim().is_empty()).count())
/// });
/// # let _ = layer;
/// ```
pub trait CountItems {
    /// The state of one request's count.
    type Count;

    /// Decides, from the head, whether and how the body is counted. `max_items` is the limit
    /// for the request's method; `max_bytes` the layer's byte cap.
    fn start(
        &self,
        head: &request::Parts,
        max_items: usize,
        max_bytes: usize,
    ) -> Start<Self::Count>;

    /// Counts the next chunk of the body.
    ///
    /// # Errors
    ///
    /// The error to answer the request with, e.g. [`too_many_items`] as soon as the item past
    /// the limit begins.
    fn feed(
        &self,
        count: &mut Self::Count,
        head: &request::Parts,
        chunk: &[u8],
    ) -> Result<(), ApiError>;

    /// Ends the count. What it returns goes into the request extensions.
    ///
    /// # Errors
    ///
    /// The error to answer the request with.
    fn finish(
        &self,
        count: Self::Count,
        head: &request::Parts,
        body: &Bytes,
    ) -> Result<Option<BulkItems>, ApiError>;
}

impl<F> CountItems for F
where
    F: Fn(&request::Parts, &Bytes) -> Result<usize, ApiError>,
{
    type Count = usize;

    fn start(&self, _head: &request::Parts, max_items: usize, _max_bytes: usize) -> Start<usize> {
        Start::Count(max_items)
    }

    fn feed(
        &self,
        _max: &mut usize,
        _head: &request::Parts,
        _chunk: &[u8],
    ) -> Result<(), ApiError> {
        Ok(())
    }

    fn finish(
        &self,
        max_items: usize,
        head: &request::Parts,
        body: &Bytes,
    ) -> Result<Option<BulkItems>, ApiError> {
        let items = self(head, body)?;
        if items > max_items {
            return Err(too_many_items(&head.method, max_items));
        }
        Ok(None)
    }
}

/// The `too_many_items` error for a request with method `method` over `limit`, with a detail
/// naming the limit (shown by the coded dialect: `"too_many_items: at most 5 items per POST
/// request"`).
pub fn too_many_items(method: &Method, limit: usize) -> ApiError {
    let noun = if limit == 1 { "item" } else { "items" };
    ApiError::too_many_items().with_detail(format!(
        "too_many_items: at most {limit} {noun} per {method} request"
    ))
}

/// What to do with a body whose `Content-Type` is not JSON (nor gRPC on a route declared gRPC):
/// a gRPC label on a route that does not speak gRPC is one of these bodies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OtherBodies {
    /// Count it as JSON anyway (the default): a client cannot slip a bulk body past the limit
    /// by labelling it `text/plain`, since many handlers parse what they get. A body that is
    /// not JSON is answered `invalid_json`.
    #[default]
    Count,
    /// Hand it on untouched and uncounted: for stacks whose handlers refuse other media types
    /// themselves (axum's `Json` answers 415), or routes that take uploads.
    Pass,
    /// Refuse it with `unsupported_media_type` (415), body unread.
    Refuse,
}

/// The items of one gRPC method: a top-level repeated field of its request message.
///
/// ```
/// use tower_api_errors::batch_limit::{GrpcItems, Packed};
///
/// // `rpc CreateWebhooks(CreateWebhooksRequest)`, `repeated Webhook webhooks = 1;`
/// let create = GrpcItems::new("/webhooks.v1.Webhooks/CreateWebhooks", 1).unwrap();
/// // `rpc GetWebhooks(GetWebhooksRequest)`, `repeated int64 ids = 1;` (packed), up to 10.
/// let get = GrpcItems::new("/webhooks.v1.Webhooks/GetWebhooks", 1)
///     .unwrap()
///     .packed(Packed::Varint)
///     .limit(10);
/// assert!(GrpcItems::new("CreateWebhooks", 1).is_err());
/// # let _ = (create, get);
/// ```
#[derive(Clone, Debug)]
pub struct GrpcItems {
    path: Arc<str>,
    scanner: FieldScanner,
    limit: Option<usize>,
}

impl GrpcItems {
    /// Requests to the gRPC method at `path` (`/package.Service/Method`) have their items in
    /// the top-level field number `field` of the request message.
    ///
    /// # Errors
    ///
    /// If `path` is not a gRPC method path or `field` not a protobuf field number.
    pub fn new(path: impl Into<String>, field: u32) -> Result<Self, ConfigError> {
        let path = path.into();
        let well_formed = path
            .strip_prefix('/')
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(service, method)| {
                !service.is_empty() && !method.is_empty() && !method.contains('/')
            });
        if !well_formed {
            return Err(ConfigError::new(format!(
                "{path:?} is not a gRPC method path (/package.Service/Method)"
            )));
        }
        Ok(GrpcItems {
            path: path.into(),
            scanner: FieldScanner::new(field)?,
            limit: None,
        })
    }

    /// The field is a packed repeated number; count its elements.
    #[must_use]
    pub fn packed(mut self, packed: Packed) -> Self {
        self.scanner = self.scanner.packed(packed);
        self
    }

    /// At most `max_items` per message for this method, instead of the layer's `POST` limit.
    #[must_use]
    pub fn limit(mut self, max_items: usize) -> Self {
        self.limit = Some(max_items);
        self
    }
}

/// A gRPC service whose methods all speak gRPC, declared by its full name
/// (`package.Service`).
///
/// A `Content-Type` in the gRPC family is the client's choice; the layers believe it only on
/// the routes a service declared gRPC, with [`GrpcItems`] (one method, counted) or with this
/// (every method of the service). Elsewhere a gRPC-labelled body is counted, checked and
/// limited like any other body.
///
/// ```
/// use tower_api_errors::batch_limit::GrpcService;
///
/// let webhooks = GrpcService::new("webhooks.v1.Webhooks").unwrap();
/// assert!(webhooks.matches("/webhooks.v1.Webhooks/GetWebhooks"));
/// assert!(!webhooks.matches("/v1/webhooks"));
/// assert!(GrpcService::new("/webhooks.v1.Webhooks/GetWebhooks").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcService {
    /// `/package.Service/`.
    prefix: Arc<str>,
}

impl GrpcService {
    /// The service `name` (`package.Service`, no slashes).
    ///
    /// # Errors
    ///
    /// If `name` is empty or holds a `/` or whitespace.
    pub fn new(name: impl AsRef<str>) -> Result<Self, ConfigError> {
        let name = name.as_ref();
        if name.is_empty() || name.contains('/') || name.contains(char::is_whitespace) {
            return Err(ConfigError::new(format!(
                "{name:?} is not a gRPC service name (package.Service)"
            )));
        }
        Ok(GrpcService {
            prefix: format!("/{name}/").into(),
        })
    }

    /// Whether `path` is one of the service's methods.
    pub fn matches(&self, path: &str) -> bool {
        path.strip_prefix(&*self.prefix)
            .is_some_and(|method| !method.is_empty() && !method.contains('/'))
    }
}

/// The counter the layer uses unless told otherwise.
///
/// - **JSON bodies**: the elements of a top-level array, or one item for any other value
///   ([`ItemCounter`]); or the elements of the array in a field of a top-level object, with
///   [`DefaultCounter::json_field`]. Bodies without `Content-Type` are JSON; bodies of other
///   types follow [`DefaultCounter::other_bodies`] (counted as JSON by default).
/// - **Query ids**: the ids in the query parameter `ids` (comma-separated and/or repeated,
///   percent-decoded as a handler's query parser decodes them), added to the body's items, for
///   every method with a limit; [`DefaultCounter::query_param`] renames or removes it.
/// - **gRPC**: the requests to the methods named with [`DefaultCounter::grpc`] are counted on
///   the wire; calls to the other methods of a service declared with
///   [`DefaultCounter::grpc_service`] pass uncounted. A gRPC label anywhere else is a body like
///   any other (see [`OtherBodies`]).
///
/// What a counted body held goes into the request extensions as [`BulkItems`].
#[derive(Clone, Debug)]
pub struct DefaultCounter {
    field: Option<Arc<str>>,
    query: Option<Arc<str>>,
    strict: bool,
    other: OtherBodies,
    grpc: Arc<[GrpcItems]>,
    services: Arc<[GrpcService]>,
}

impl Default for DefaultCounter {
    fn default() -> Self {
        DefaultCounter {
            field: None,
            query: Some(Arc::from("ids")),
            strict: false,
            other: OtherBodies::Count,
            grpc: Arc::new([]),
            services: Arc::new([]),
        }
    }
}

impl DefaultCounter {
    /// The default counter: top-level JSON arrays and the `ids` query parameter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also finds the items in the array value of this field of a top-level JSON object,
    /// e.g. `"data"` for `{"data": [...]}`. See [`ItemCounter::with_field`].
    #[must_use]
    pub fn json_field(mut self, name: impl Into<String>) -> Self {
        self.field = Some(Arc::from(name.into()));
        self
    }

    /// Counts the ids in the query parameter `name` instead of `ids`.
    #[must_use]
    pub fn query_param(mut self, name: impl Into<String>) -> Self {
        self.query = Some(Arc::from(name.into()));
        self
    }

    /// Counts no query parameter.
    #[must_use]
    pub fn no_query_param(mut self) -> Self {
        self.query = None;
        self
    }

    /// Checks the whole JSON grammar, inside the items too. See [`ItemCounter::strict`].
    #[must_use]
    pub fn strict_json(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// What to do with bodies that are declared neither JSON nor gRPC.
    #[must_use]
    pub fn other_bodies(mut self, other: OtherBodies) -> Self {
        self.other = other;
        self
    }

    /// Counts the items of a gRPC method.
    #[must_use]
    pub fn grpc(mut self, items: GrpcItems) -> Self {
        let mut all = self.grpc.to_vec();
        all.retain(|existing| existing.path != items.path);
        all.push(items);
        self.grpc = all.into();
        self
    }

    /// Declares that every method of a gRPC service speaks gRPC: calls to its methods that
    /// have no [`GrpcItems`] pass uncounted (their messages hold no bulk items), instead of
    /// being counted as any other body.
    #[must_use]
    pub fn grpc_service(mut self, service: GrpcService) -> Self {
        let mut all = self.services.to_vec();
        all.push(service);
        self.services = all.into();
        self
    }

    /// Whether the service declared that the route at `path` speaks gRPC.
    fn speaks_grpc(&self, path: &str) -> bool {
        self.grpc.iter().any(|items| *items.path == *path)
            || self.services.iter().any(|service| service.matches(path))
    }
}

/// The state of one request's count by [`DefaultCounter`].
pub struct DefaultCount {
    kind: CountKind,
    limit: usize,
}

// The JSON counter stays inline: boxing it would cost an allocation on every counted request.
#[allow(clippy::large_enum_variant)]
enum CountKind {
    Json { counter: ItemCounter },
    // Boxed: gRPC counts are rarer, and the JSON count moves around a future.
    Grpc { messages: Box<GrpcMessages> },
}

impl fmt::Debug for DefaultCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("DefaultCount");
        match &self.kind {
            CountKind::Json { counter } => debug.field("json", counter),
            CountKind::Grpc { messages } => debug.field("grpc", messages),
        };
        debug.field("limit", &self.limit).finish()
    }
}

impl CountItems for DefaultCounter {
    type Count = DefaultCount;

    fn start(
        &self,
        head: &request::Parts,
        max_items: usize,
        max_bytes: usize,
    ) -> Start<DefaultCount> {
        let media = MediaType::of(&head.headers);
        // A gRPC label is believed only on a route the service declared gRPC: anywhere else it
        // is a body like any other, so a client cannot switch the count off by choosing it.
        let declared = media.is_grpc() && self.speaks_grpc(head.uri.path());
        match media {
            MediaType::Grpc(flavor) if declared => {
                let Some(items) = self
                    .grpc
                    .iter()
                    .find(|items| *items.path == *head.uri.path())
                else {
                    // A declared service's method without items: the handler has the message.
                    return Start::Pass;
                };
                if flavor == GrpcFlavor::WebText {
                    return Start::Refuse(
                        ApiError::new(ErrorCode::UnsupportedMediaType).with_detail(
                            "unsupported_media_type: grpc-web-text bodies are not counted",
                        ),
                    );
                }
                let limit = items.limit.unwrap_or(max_items);
                let scanner = items.scanner.clone().with_limit(limit);
                return Start::Count(DefaultCount {
                    kind: CountKind::Grpc {
                        messages: Box::new(GrpcMessages::new(scanner, max_bytes)),
                    },
                    limit,
                });
            }
            MediaType::Json | MediaType::Missing => {}
            _ => match self.other {
                OtherBodies::Count => {}
                OtherBodies::Pass => return Start::Pass,
                OtherBodies::Refuse => {
                    return Start::Refuse(ApiError::new(ErrorCode::UnsupportedMediaType))
                }
            },
        }
        let in_query = match (&self.query, head.uri.query()) {
            (Some(name), Some(query)) => query::count_ids(query, name),
            _ => 0,
        };
        if in_query > max_items {
            return Start::Refuse(too_many_items(&head.method, max_items));
        }
        let mut counter = ItemCounter::new()
            .with_limit(max_items - in_query)
            .strict(self.strict);
        if let Some(field) = &self.field {
            counter = counter.with_field(field);
        }
        Start::Count(DefaultCount {
            kind: CountKind::Json { counter },
            limit: max_items,
        })
    }

    fn feed(
        &self,
        count: &mut DefaultCount,
        head: &request::Parts,
        chunk: &[u8],
    ) -> Result<(), ApiError> {
        match &mut count.kind {
            CountKind::Json { counter } => counter
                .feed(chunk)
                .map(drop)
                .map_err(|error| json_error(&error, &head.method, count.limit)),
            CountKind::Grpc { messages } => messages
                .feed(chunk)
                .map_err(|error| wire_error(&error, &head.method, count.limit)),
        }
    }

    fn finish(
        &self,
        count: DefaultCount,
        head: &request::Parts,
        body: &Bytes,
    ) -> Result<Option<BulkItems>, ApiError> {
        Ok(Some(match count.kind {
            // No body: the query held all the items there are.
            CountKind::Json { counter } if counter.bytes_fed() == 0 => return Ok(None),
            CountKind::Json { counter } => BulkItems::from_spans(
                body.clone(),
                counter
                    .finish_spans()
                    .map_err(|error| json_error(&error, &head.method, count.limit))?,
            ),
            CountKind::Grpc { messages } => BulkItems::protobuf(
                body.clone(),
                messages
                    .finish()
                    .map_err(|error| wire_error(&error, &head.method, count.limit))?,
            ),
        }))
    }
}

fn json_error(error: &CountError, method: &Method, limit: usize) -> ApiError {
    match error.kind() {
        CountErrorKind::TooManyItems => too_many_items(method, limit),
        _ => ApiError::new(ErrorCode::InvalidJson).with_detail(format!("invalid_json: {error}")),
    }
}

fn wire_error(error: &WireError, method: &Method, limit: usize) -> ApiError {
    match error.kind() {
        WireErrorKind::TooManyItems => too_many_items(method, limit),
        WireErrorKind::Compressed => ApiError::new(ErrorCode::UnsupportedMediaType)
            .with_detail("unsupported_media_type: compressed messages are not counted"),
        WireErrorKind::TooLarge => ApiError::new(ErrorCode::PayloadTooLarge)
            .with_detail(format!("payload_too_large: {error}")),
        _ => ApiError::new(ErrorCode::ModelNotValid)
            .with_detail(format!("model_not_valid: not a protobuf message: {error}")),
    }
}
