//! Per-item authorization of bulk JSON bodies.

use std::{
    borrow::Cow,
    fmt,
    future::Future,
    ops::Range,
    pin::Pin,
    sync::Arc,
    task::{ready, Context, Poll},
};

use bytes::{Bytes, BytesMut};
use http::{header, request, HeaderMap, Method, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use serde::{
    de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor},
    Deserialize, Deserializer,
};
use serde_json::value::RawValue;
use tower_layer::Layer;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

use super::Principal;
use crate::{
    batch_limit::{BulkItems, GrpcService},
    body::{read_error, ErrorBody, RequestBody, ResponseBody},
    dialect::{Bulk, Dialect, ErrorFormat},
    error::{ApiError, ErrorCode},
    grpc,
};

/// The largest body [`AuthorizeItems`] reads by default when it has to find the items itself:
/// 1 MiB, the batch limit layer's default cap.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// One item of a bulk body, as an [`ItemPolicy`] sees it.
#[derive(Clone, Copy)]
pub struct Item<'a> {
    index: usize,
    raw: &'a [u8],
}

impl<'a> Item<'a> {
    /// An item at `index` whose JSON is `raw`.
    pub fn new(index: usize, raw: &'a [u8]) -> Self {
        Item { index, raw }
    }

    /// The item's index in the request array (`_idx`).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The item's JSON, exactly as sent.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The item parsed as `T`, or `None` when it is not a `T`; `T` may borrow from the body
    /// (`&str`, or a field of type `Cow<str>` marked `#[serde(borrow)]`, which borrows unless the
    /// string holds escapes), or be `serde_json::Value` for a generic look.
    pub fn parse<T: Deserialize<'a>>(&self) -> Option<T> {
        serde_json::from_slice(self.raw).ok()
    }

    /// Whether the item is a JSON object.
    pub fn is_object(&self) -> bool {
        self.raw.trim_ascii_start().first() == Some(&b'{')
    }
}

impl fmt::Debug for Item<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Item")
            .field("index", &self.index)
            .field("len", &self.raw.len())
            .finish()
    }
}

/// Decides whether a principal may submit one item of a bulk body. If any item is refused the
/// whole request is answered `forbidden` (403) and the inner service is not called.
///
/// Implemented by [`SameAccount`] (the default) and by any `Fn(&Principal, &Item<'_>) -> bool`
/// closure:
///
/// ```
/// use tower_api_errors::auth::{Item, ItemPolicy, Principal};
///
/// // Only writers may set `"role": "owner"`.
/// let policy = |principal: &Principal, item: &Item<'_>| {
///     #[derive(serde::Deserialize)]
///     struct Member<'a> { role: Option<&'a str> }
///     match item.parse::<Member<'_>>() {
///         Some(Member { role: Some("owner") }) => principal.has_role("admin"),
///         _ => true,
///     }
/// };
/// let writer = Principal::new("acct_123").with_roles(["write"]);
/// assert!(policy.allows(&writer, &Item::new(0, br#"{"role": "viewer"}"#)));
/// assert!(!policy.allows(&writer, &Item::new(1, br#"{"role": "owner"}"#)));
/// ```
pub trait ItemPolicy {
    /// Whether `principal` may submit `item`.
    fn allows(&self, principal: &Principal, item: &Item<'_>) -> bool;
}

impl<F> ItemPolicy for F
where
    F: Fn(&Principal, &Item<'_>) -> bool,
{
    fn allows(&self, principal: &Principal, item: &Item<'_>) -> bool {
        self(principal, item)
    }
}

/// The default item policy: an object item that names an account (field `account_id` by
/// default) must name the principal's.
///
/// Items that name no account pass, and so do items that are not objects (the handler answers
/// those with its own validation error). An account field that is not a string, or that
/// appears twice in one item, is refused: the handler could read either value.
///
/// ```
/// use tower_api_errors::auth::{Item, ItemPolicy, Principal, SameAccount};
///
/// let principal = Principal::new("acct_123");
/// let policy = SameAccount::default();
/// assert!(policy.allows(&principal, &Item::new(0, br#"{"url": "https://example.com"}"#)));
/// assert!(policy.allows(&principal, &Item::new(1, br#"{"account_id": "acct_123"}"#)));
/// assert!(!policy.allows(&principal, &Item::new(2, br#"{"account_id": "acct_456"}"#)));
/// assert!(!policy.allows(&principal, &Item::new(3, br#"{"account_id": 123}"#)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SameAccount {
    field: Cow<'static, str>,
}

impl Default for SameAccount {
    fn default() -> Self {
        SameAccount {
            field: Cow::Borrowed("account_id"),
        }
    }
}

impl SameAccount {
    /// Checks the field `field` instead of `account_id`.
    pub fn field(field: impl Into<Cow<'static, str>>) -> Self {
        SameAccount {
            field: field.into(),
        }
    }
}

impl ItemPolicy for SameAccount {
    fn allows(&self, principal: &Principal, item: &Item<'_>) -> bool {
        if !item.is_object() {
            return true;
        }
        let mut deserializer = serde_json::Deserializer::from_slice(item.raw());
        let seed = FieldSeed {
            field: &self.field,
            account: principal.account_id(),
        };
        match seed.deserialize(&mut deserializer) {
            Ok(Named::Absent) => deserializer.end().is_ok(),
            Ok(Named::Once { same_account }) => same_account && deserializer.end().is_ok(),
            Ok(Named::Twice) | Err(_) => false,
        }
    }
}

/// What an object item says about one field.
enum Named {
    Absent,
    Once { same_account: bool },
    Twice,
}

/// Reads an object item for its account field. Keys and the account are compared where they
/// lie in the body (or in serde_json's scratch buffer when escaped): nothing is allocated per
/// key or per item. A value that is not a string is an error, which refuses the item.
struct FieldSeed<'f> {
    field: &'f str,
    account: &'f str,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Named;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Named, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Named;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named, A::Error> {
        let mut named = Named::Absent;
        while let Some(is_field) = map.next_key_seed(StrIs(self.field))? {
            if is_field {
                let same_account = map.next_value_seed(StrIs(self.account))?;
                named = match named {
                    Named::Absent => Named::Once { same_account },
                    Named::Once { .. } | Named::Twice => Named::Twice,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(named)
    }
}

/// Whether a JSON string equals the one given, without copying it; any other value is an
/// error. (`Cow<str>` would not borrow here: serde's impl for it always makes a `String`.)
struct StrIs<'s>(&'s str);

impl<'de> DeserializeSeed<'de> for StrIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E>(self, value: &str) -> Result<bool, E> {
        Ok(value == self.0)
    }
}

/// Refuses a bulk request when any of its items is not allowed for the request's
/// [`Principal`]; see the [module docs](super#per-item-authorization).
///
/// By default it checks `POST`, `PUT`, `PATCH` and `DELETE` bodies with [`SameAccount`] and
/// answers in the [`Bulk`] dialect.
#[derive(Clone, Debug)]
#[must_use]
pub struct AuthorizeItemsLayer<P = SameAccount, D = Bulk> {
    policy: P,
    dialect: D,
    settings: Settings,
}

#[derive(Clone, Debug)]
struct Settings {
    max_bytes: usize,
    array_field: Option<Arc<str>>,
    methods: Arc<[Method]>,
    grpc: Arc<[GrpcService]>,
}

impl Default for AuthorizeItemsLayer {
    fn default() -> Self {
        Self::new(SameAccount::default())
    }
}

impl<P> AuthorizeItemsLayer<P> {
    /// Items are shown to `policy`.
    pub fn new(policy: P) -> Self {
        AuthorizeItemsLayer {
            policy,
            dialect: Bulk,
            settings: Settings {
                max_bytes: DEFAULT_MAX_BODY_BYTES,
                array_field: None,
                methods: Arc::new([Method::POST, Method::PUT, Method::PATCH, Method::DELETE]),
                grpc: Arc::new([]),
            },
        }
    }
}

impl<P, D> AuthorizeItemsLayer<P, D> {
    /// Answers rejections in `dialect` instead of the bulk dialect.
    pub fn dialect<D2>(self, dialect: D2) -> AuthorizeItemsLayer<P, D2> {
        AuthorizeItemsLayer {
            policy: self.policy,
            dialect,
            settings: self.settings,
        }
    }

    /// Reads at most `max_bytes` of a body when finding the items itself (default
    /// [`DEFAULT_MAX_BODY_BYTES`]); a larger body is `payload_too_large` (413).
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.settings.max_bytes = max_bytes;
        self
    }

    /// A top-level object holding the array in `field` (e.g. `{"data": [...]}`) has that
    /// array's elements as items, as the batch limit layer can be told to count them.
    pub fn array_field(mut self, field: impl Into<String>) -> Self {
        self.settings.array_field = Some(Arc::from(field.into()));
        self
    }

    /// The methods whose bodies are checked when the batch limit layer has not already found
    /// the items (default `POST`, `PUT`, `PATCH`, `DELETE`).
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.settings.methods = methods.into_iter().collect();
        self
    }

    /// Declares a gRPC service: calls to its methods with a `Content-Type` in the gRPC family
    /// carry protobuf, whose item checks belong to the handler, and pass unchecked. A gRPC
    /// label on any other route is the client's choice and changes nothing: the body is read
    /// and checked like any other.
    pub fn grpc_service(mut self, service: GrpcService) -> Self {
        let mut all = self.settings.grpc.to_vec();
        all.push(service);
        self.settings.grpc = all.into();
        self
    }
}

impl<S, P: Clone, D: Clone> Layer<S> for AuthorizeItemsLayer<P, D> {
    type Service = AuthorizeItems<S, P, D>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthorizeItems {
            inner,
            config: Arc::new(ItemsConfig {
                policy: self.policy.clone(),
                dialect: self.dialect.clone(),
                settings: self.settings.clone(),
            }),
        }
    }
}

struct ItemsConfig<P, D> {
    policy: P,
    dialect: D,
    settings: Settings,
}

impl<P: fmt::Debug, D: fmt::Debug> fmt::Debug for ItemsConfig<P, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemsConfig")
            .field("policy", &self.policy)
            .field("dialect", &self.dialect)
            .field("settings", &self.settings)
            .finish()
    }
}

/// Why the item layer refused a request, before it is rendered.
#[derive(Debug)]
enum ItemsRefusal {
    Forbidden {
        index: usize,
    },
    NoPrincipal,
    TooLarge,
    /// The body could not be read: the error, by the crate's one rule ([`read_error`]).
    Unreadable(ApiError),
    InvalidJson,
}

impl<P, D> ItemsConfig<P, D> {
    fn speaks_grpc(&self, path: &str) -> bool {
        self.settings
            .grpc
            .iter()
            .any(|service| service.matches(path))
    }
}

impl<P: ItemPolicy, D: Dialect> ItemsConfig<P, D> {
    /// Shows every item to the policy; the first refusal decides.
    fn check(&self, principal: &Principal, items: &BulkItems) -> Result<(), ItemsRefusal> {
        for (index, raw) in items.iter().enumerate() {
            if !self.policy.allows(principal, &Item::new(index, raw)) {
                // The batch layer's counter checks the structure, not the grammar inside items,
                // and a policy cannot tell "not allowed" from "not readable": a client's typo
                // must be `invalid_json`, never `forbidden`, in whichever item it is.
                if !items.iter().all(well_formed) {
                    tracing::debug!(item = index, "invalid_json: an item is not well-formed");
                    return Err(ItemsRefusal::InvalidJson);
                }
                tracing::debug!(
                    key_id = %principal.key_id(),
                    item = index,
                    "forbidden: the key may not submit an item"
                );
                return Err(ItemsRefusal::Forbidden { index });
            }
        }
        Ok(())
    }

    fn refuse(&self, parts: &request::Parts, refusal: ItemsRefusal) -> Response<ErrorBody> {
        let error = match refusal {
            ItemsRefusal::Forbidden { index } => {
                ApiError::forbidden().with_detail(format!("item {index} is not allowed"))
            }
            ItemsRefusal::NoPrincipal => {
                tracing::error!(
                    "per-item authorization without a principal: put the auth layer before it"
                );
                ApiError::server_error()
            }
            ItemsRefusal::TooLarge => ApiError::new(ErrorCode::PayloadTooLarge),
            ItemsRefusal::Unreadable(error) => {
                tracing::debug!(code = %error.code(), "request body could not be read");
                error
            }
            ItemsRefusal::InvalidJson => ApiError::new(ErrorCode::InvalidJson),
        };
        ErrorFormat::for_parts(parts).render(&self.dialect, &error)
    }
}

/// The service made by [`AuthorizeItemsLayer`].
pub struct AuthorizeItems<S, P = SameAccount, D = Bulk> {
    inner: S,
    config: Arc<ItemsConfig<P, D>>,
}

impl<S, P> AuthorizeItems<S, P> {
    /// Wraps `inner`, showing items to `policy`, with the [`AuthorizeItemsLayer`] defaults.
    pub fn new(inner: S, policy: P) -> Self
    where
        P: Clone,
    {
        AuthorizeItemsLayer::new(policy).layer(inner)
    }

    /// An [`AuthorizeItemsLayer`] showing items to `policy`.
    pub fn layer(policy: P) -> AuthorizeItemsLayer<P> {
        AuthorizeItemsLayer::new(policy)
    }
}

impl<S, P, D> AuthorizeItems<S, P, D> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, P, D> Clone for AuthorizeItems<S, P, D> {
    fn clone(&self) -> Self {
        AuthorizeItems {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, P: fmt::Debug, D: fmt::Debug> fmt::Debug for AuthorizeItems<S, P, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeItems")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, P, D, ReqBody, ResBody> Service<Request<ReqBody>> for AuthorizeItems<S, P, D>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Clone,
    P: ItemPolicy,
    D: Dialect,
    ReqBody: Body<Data = Bytes>,
    ReqBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = AuthorizeItemsFuture<S::Future, S, ReqBody, P, D>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let config = &self.config;
        let pass = |inner: &mut S, parts, body| {
            AuthorizeItemsFuture::inner(
                inner.call(Request::from_parts(parts, RequestBody::streaming(body))),
            )
        };
        // gRPC bodies are protobuf: item checks belong to the handler, which has the message.
        // Only on routes the service declared gRPC: elsewhere the label is the client's choice.
        if grpc::is_grpc(&parts.headers) && config.speaks_grpc(parts.uri.path()) {
            return pass(&mut self.inner, parts, body);
        }
        if let Some(items) = parts.extensions.get::<BulkItems>() {
            // The batch limit layer found the items and buffered the body: nothing to read.
            let checked = match parts.extensions.get::<Principal>() {
                Some(principal) => config.check(principal, items),
                None => Err(ItemsRefusal::NoPrincipal),
            };
            return match checked {
                Ok(()) => pass(&mut self.inner, parts, body),
                Err(refusal) => AuthorizeItemsFuture::reject(config.refuse(&parts, refusal)),
            };
        }
        if !config.settings.methods.contains(&parts.method) || body.is_end_stream() {
            return pass(&mut self.inner, parts, body);
        }
        if parts.extensions.get::<Principal>().is_none() {
            return AuthorizeItemsFuture::reject(config.refuse(&parts, ItemsRefusal::NoPrincipal));
        }
        let max = config.settings.max_bytes;
        if declared_length(&parts).is_some_and(|length| length > max as u64)
            || body.size_hint().lower() > max as u64
        {
            return AuthorizeItemsFuture::reject(config.refuse(&parts, ItemsRefusal::TooLarge));
        }
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        AuthorizeItemsFuture {
            state: ItemsState::Reading {
                body,
                buffer: Buffer::default(),
                pending: Some(ItemsPending {
                    inner,
                    parts,
                    config: self.config.clone(),
                }),
            },
        }
    }
}

/// Whether `raw` is one well-formed JSON value.
fn well_formed(raw: &[u8]) -> bool {
    serde_json::from_slice::<IgnoredAny>(raw).is_ok()
}

fn declared_length(parts: &request::Parts) -> Option<u64> {
    parts
        .headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

pin_project! {
    /// The response future of [`AuthorizeItems`].
    pub struct AuthorizeItemsFuture<F, S, B, P, D> {
        #[pin]
        state: ItemsState<F, S, B, P, D>,
    }
}

pin_project! {
    #[project = ItemsStateProj]
    enum ItemsState<F, S, B, P, D> {
        Reading {
            #[pin]
            body: B,
            buffer: Buffer,
            pending: Option<ItemsPending<S, P, D>>,
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

struct ItemsPending<S, P, D> {
    inner: S,
    parts: request::Parts,
    config: Arc<ItemsConfig<P, D>>,
}

impl<F, S, B, P, D> AuthorizeItemsFuture<F, S, B, P, D> {
    fn inner(future: F) -> Self {
        AuthorizeItemsFuture {
            state: ItemsState::Inner { future },
        }
    }

    fn reject(response: Response<ErrorBody>) -> Self {
        AuthorizeItemsFuture {
            state: ItemsState::Reject {
                response: Some(response),
            },
        }
    }
}

impl<F, S, B, P, D> fmt::Debug for AuthorizeItemsFuture<F, S, B, P, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            ItemsState::Reading { .. } => "reading",
            ItemsState::Inner { .. } => "inner",
            ItemsState::Reject { .. } => "reject",
        };
        f.debug_struct("AuthorizeItemsFuture")
            .field("state", &state)
            .finish()
    }
}

impl<F, S, B, P, D, ResBody, E> Future for AuthorizeItemsFuture<F, S, B, P, D>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>, Error = E, Future = F>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    P: ItemPolicy,
    D: Dialect,
{
    type Output = Result<Response<ResponseBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                ItemsStateProj::Reading {
                    mut body,
                    buffer,
                    pending,
                } => {
                    let max = pending
                        .as_ref()
                        .expect("AuthorizeItemsFuture polled after completion")
                        .config
                        .settings
                        .max_bytes;
                    let read = loop {
                        match ready!(body.as_mut().poll_frame(cx)) {
                            None => break Ok(()),
                            Some(Err(error)) => {
                                let error = read_error(&*error.into(), max);
                                break Err(ItemsRefusal::Unreadable(error));
                            }
                            Some(Ok(frame)) => match frame.into_data() {
                                Ok(data) if buffer.len + data.len() > max => {
                                    break Err(ItemsRefusal::TooLarge)
                                }
                                Ok(data) => buffer.push(data),
                                Err(frame) => {
                                    if let Ok(trailers) = frame.into_trailers() {
                                        buffer
                                            .trailers
                                            .get_or_insert_with(HeaderMap::new)
                                            .extend(trailers);
                                    }
                                }
                            },
                        }
                    };
                    let ItemsPending {
                        mut inner,
                        mut parts,
                        config,
                    } = pending
                        .take()
                        .expect("AuthorizeItemsFuture polled after completion");
                    let buffer = std::mem::take(buffer);
                    match read_items(&config, &mut parts, read.map(|()| buffer)) {
                        Ok(body) => {
                            let future = inner.call(Request::from_parts(parts, body));
                            state.set(ItemsState::Inner { future });
                        }
                        Err(refusal) => {
                            let response = config.refuse(&parts, refusal);
                            return Poll::Ready(Ok(response.map(ResponseBody::error)));
                        }
                    }
                }
                ItemsStateProj::Inner { future } => {
                    return future
                        .poll(cx)
                        .map(|result| result.map(|response| response.map(ResponseBody::inner)));
                }
                ItemsStateProj::Reject { response } => {
                    let response = response
                        .take()
                        .expect("AuthorizeItemsFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::error)));
                }
            }
        }
    }
}

/// The bytes of a body read so far: one chunk is kept as it came, more are joined.
#[derive(Default)]
struct Buffer {
    single: Option<Bytes>,
    joined: Option<BytesMut>,
    len: usize,
    trailers: Option<HeaderMap>,
}

impl Buffer {
    fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.len += chunk.len();
        if let Some(joined) = &mut self.joined {
            joined.extend_from_slice(&chunk);
        } else if let Some(first) = self.single.take() {
            let mut joined = BytesMut::with_capacity(first.len() + chunk.len());
            joined.extend_from_slice(&first);
            joined.extend_from_slice(&chunk);
            self.joined = Some(joined);
        } else {
            self.single = Some(chunk);
        }
    }

    fn into_parts(self) -> (Bytes, Option<HeaderMap>) {
        let bytes = match (self.joined, self.single) {
            (Some(joined), _) => joined.freeze(),
            (None, Some(single)) => single,
            (None, None) => Bytes::new(),
        };
        (bytes, self.trailers)
    }
}

/// Finds the items of a body read in full, checks them, and leaves them in the extensions the
/// way the batch limit layer would.
fn read_items<P: ItemPolicy, D: Dialect, B>(
    config: &ItemsConfig<P, D>,
    parts: &mut request::Parts,
    read: Result<Buffer, ItemsRefusal>,
) -> Result<RequestBody<B>, ItemsRefusal> {
    let (bytes, trailers) = read?.into_parts();
    let spans = find_items(&bytes, config.settings.array_field.as_deref()).map_err(|error| {
        tracing::debug!(error = %error, "bulk body is not valid JSON");
        ItemsRefusal::InvalidJson
    })?;
    tracing::trace!(items_found = spans.len(), "read the body to find its items");
    let items = BulkItems::new(bytes.clone(), spans);
    let principal = parts
        .extensions
        .get::<Principal>()
        .ok_or(ItemsRefusal::NoPrincipal)?;
    config.check(principal, &items)?;
    parts.extensions.insert(items);
    Ok(RequestBody::buffered(bytes, trailers))
}

/// The byte span of each item of a JSON body: the elements of a top-level array (or of the
/// array in `array_field` of a top-level object), else the whole value as one item; no items
/// for a body of whitespace only.
///
/// # Errors
///
/// When the body is not one well-formed JSON value.
pub(crate) fn find_items(
    body: &[u8],
    array_field: Option<&str>,
) -> Result<Vec<Range<usize>>, serde_json::Error> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let top = TopSeed { array_field }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    let span_of = |raw: &RawValue| {
        let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
        start..start + raw.get().len()
    };
    Ok(match top {
        Top::Items(items) => items.into_iter().map(span_of).collect(),
        Top::One => {
            let start = body.len() - body.trim_ascii_start().len();
            std::iter::once(start..start + trimmed.len()).collect()
        }
    })
}

enum Top<'de> {
    Items(Vec<&'de RawValue>),
    One,
}

struct TopSeed<'f> {
    array_field: Option<&'f str>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Top<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Top<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(Top::Items(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut array = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if Some(&*key) == self.array_field {
                if array.is_some() {
                    return Err(serde::de::Error::custom(format_args!(
                        "field `{key}` appears twice"
                    )));
                }
                array = Some(map.next_value_seed(TopSeed { array_field: None })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(match array {
            Some(Top::Items(items)) => Top::Items(items),
            _ => Top::One,
        })
    }

    fn visit_bool<E>(self, _: bool) -> Result<Top<'de>, E> {
        Ok(Top::One)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Top<'de>, E> {
        Ok(Top::One)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Top<'de>, E> {
        Ok(Top::One)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Top<'de>, E> {
        Ok(Top::One)
    }

    fn visit_str<E>(self, _: &str) -> Result<Top<'de>, E> {
        Ok(Top::One)
    }

    fn visit_unit<E>(self) -> Result<Top<'de>, E> {
        Ok(Top::One)
    }
}
