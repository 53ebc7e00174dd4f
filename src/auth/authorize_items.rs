//! The per-item authorization layer: the batch limit layer's reader with an item check.
//!
//! There is one body reader in the crate ([`BatchLimit`]); this layer is that reader with no
//! item limit and an [`ItemsCheck`], so a body is read, counted and checked in one pass, and
//! a body error means the same thing here as under the batch limit layer.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{request, Method, Request, Response};
use http_body::Body;
use tower_layer::Layer;
use tower_service::Service;

use super::{
    items::{find_items, Item, ItemPolicy, SameAccount, DEFAULT_MAX_BODY_BYTES},
    Principal,
};
use crate::{
    batch_limit::{
        BatchLimit, BatchLimitLayer, BulkItems, DefaultCounter, GrpcService, InspectItems,
        ResponseFuture,
    },
    body::{RequestBody, ResponseBody},
    dialect::{Bulk, Dialect},
    error::{ApiError, ErrorCode},
    grpc,
};

/// The methods whose items are checked by default.
const DEFAULT_METHODS: [Method; 4] = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

/// Refuses a bulk request when any of its items is not allowed for the request's
/// [`Principal`]; see the [module docs](super#per-item-authorization).
///
/// By default it checks `POST`, `PUT`, `PATCH` and `DELETE` bodies with [`SameAccount`] and
/// answers in the [`Bulk`] dialect.
#[derive(Clone, Debug)]
#[must_use]
pub struct AuthorizeItemsLayer<P = SameAccount, D = Bulk> {
    check: ItemsCheck<P>,
    dialect: D,
    max_bytes: usize,
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
            check: ItemsCheck::new(policy),
            dialect: Bulk,
            max_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl<P, D> AuthorizeItemsLayer<P, D> {
    /// Answers rejections in `dialect` instead of the bulk dialect.
    pub fn dialect<D2>(self, dialect: D2) -> AuthorizeItemsLayer<P, D2> {
        AuthorizeItemsLayer {
            check: self.check,
            dialect,
            max_bytes: self.max_bytes,
        }
    }

    /// Reads at most `max_bytes` of a body when finding the items itself (default
    /// [`DEFAULT_MAX_BODY_BYTES`]); a larger body is `payload_too_large` (413).
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// A top-level object holding the array in `field` (e.g. `{"data": [...]}`) has that
    /// array's elements as items, as the batch limit layer can be told to count them.
    pub fn array_field(mut self, field: impl Into<String>) -> Self {
        self.check.array_field = Some(Arc::from(field.into()));
        self
    }

    /// The methods whose bodies are checked (default `POST`, `PUT`, `PATCH`, `DELETE`), whether
    /// this layer or the batch limit layer above it found the items.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.check.methods = methods.into_iter().collect();
        self
    }

    /// Declares a gRPC service: calls to its methods with a `Content-Type` in the gRPC family
    /// carry protobuf, whose item checks belong to the handler, and pass unchecked. A gRPC
    /// label on any other route is the client's choice and changes nothing: the body is read
    /// and checked like any other.
    pub fn grpc_service(mut self, service: GrpcService) -> Self {
        let mut all = self.check.grpc.to_vec();
        all.push(service);
        self.check.grpc = all.into();
        self
    }
}

impl<P, D> AuthorizeItemsLayer<P, D> {
    /// The item check this layer runs, for the one-layer contract.
    pub(crate) fn into_check(self) -> ItemsCheck<P> {
        self.check
    }
}

impl<S, P: ItemPolicy + Clone, D: Clone> Layer<S> for AuthorizeItemsLayer<P, D> {
    type Service = AuthorizeItems<S, P, D>;

    fn layer(&self, inner: S) -> Self::Service {
        let mut reader = BatchLimitLayer::unlimited()
            .max_body_bytes(self.max_bytes)
            .dialect(self.dialect.clone());
        if let Some(field) = &self.check.array_field {
            reader = reader.json_field(&**field);
        }
        // The reader must not take a declared gRPC call's protobuf for JSON either.
        for service in self.check.grpc.iter() {
            reader = reader.grpc_service(service.clone());
        }
        AuthorizeItems {
            reader: reader.inspect(self.check.clone()).layer(inner),
        }
    }
}

/// The item check: which methods, which policy, where the array is.
///
/// Made by [`AuthorizeItemsLayer`] and [`Contract::authorize_items`](crate::Contract::authorize_items);
/// it runs inside the batch limit layer's pass over the body (see [`InspectItems`]).
#[derive(Clone, Debug)]
pub struct ItemsCheck<P> {
    policy: P,
    methods: Arc<[Method]>,
    array_field: Option<Arc<str>>,
    grpc: Arc<[GrpcService]>,
}

impl<P> ItemsCheck<P> {
    pub(crate) fn new(policy: P) -> Self {
        ItemsCheck {
            policy,
            methods: Arc::new(DEFAULT_METHODS),
            array_field: None,
            grpc: Arc::new([]),
        }
    }

    /// The gRPC services declared on this check.
    pub(crate) fn grpc_services(&self) -> &[GrpcService] {
        &self.grpc
    }

    /// Whether the request's items are this check's to see: one of its methods, and not a call
    /// to a declared gRPC service (whose protobuf items belong to the handler). A gRPC label on
    /// any other route is the client's choice and changes nothing.
    fn applies_to(&self, head: &request::Parts) -> bool {
        // The declared services first: most checks have none, and then the `Content-Type`
        // lookup is not needed (`benches/stack.rs`, per-item check).
        self.methods.contains(&head.method)
            && !(self
                .grpc
                .iter()
                .any(|service| service.matches(head.uri.path()))
                && grpc::is_grpc(&head.headers))
    }
}

impl<P: ItemPolicy> ItemsCheck<P> {
    fn check(&self, head: &request::Parts, items: &BulkItems) -> Result<(), ApiError> {
        let Some(principal) = head.extensions.get::<Principal>() else {
            tracing::error!(
                "per-item authorization without a principal: put the auth layer before it"
            );
            return Err(ApiError::server_error());
        };
        for (index, raw) in items.iter().enumerate() {
            if !self.policy.allows(principal, &Item::new(index, raw)) {
                // The batch layer's counter checks the structure, not the grammar inside items,
                // and a policy cannot tell "not allowed" from "not readable": a client's typo
                // must be `invalid_json`, never `forbidden`, in whichever item it is.
                if !items.iter().all(well_formed) {
                    tracing::debug!(item = index, "invalid_json: an item is not well-formed");
                    return Err(ApiError::new(ErrorCode::InvalidJson));
                }
                tracing::debug!(
                    key_id = %principal.key_id(),
                    item = index,
                    "forbidden: the key may not submit an item"
                );
                return Err(
                    ApiError::forbidden().with_detail(format!("item {index} is not allowed"))
                );
            }
        }
        Ok(())
    }
}

impl<P: ItemPolicy> InspectItems for ItemsCheck<P> {
    fn methods(&self) -> &[Method] {
        &self.methods
    }

    fn inspect(
        &self,
        head: &request::Parts,
        body: &Bytes,
        items: &mut Option<BulkItems>,
    ) -> Result<(), ApiError> {
        if !self.applies_to(head) {
            return Ok(());
        }
        tracing::trace!(
            items_found = items.as_ref().map_or(0, BulkItems::len),
            "read the body to find its items"
        );
        match items {
            // A gRPC message's items are protobuf: item checks belong to the handler, which
            // has the message type.
            Some(found) if found.is_protobuf() => Ok(()),
            Some(found) => self.check(head, found),
            None if body.trim_ascii().is_empty() => Ok(()),
            None => {
                // A counter that leaves no items (a closure): find them once, for the
                // handler too.
                let spans = find_items(body, self.array_field.as_deref()).map_err(|error| {
                    tracing::debug!(error = %error, "bulk body is not valid JSON");
                    ApiError::new(ErrorCode::InvalidJson)
                })?;
                self.check(head, items.insert(BulkItems::new(body.clone(), spans)))
            }
        }
    }
}

/// Whether `raw` is one well-formed JSON value.
fn well_formed(raw: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(raw).is_ok()
}

/// The service made by [`AuthorizeItemsLayer`].
pub struct AuthorizeItems<S, P = SameAccount, D = Bulk> {
    reader: BatchLimit<S, D, DefaultCounter, ItemsCheck<P>>,
}

impl<S, P> AuthorizeItems<S, P> {
    /// Wraps `inner`, showing items to `policy`, with the [`AuthorizeItemsLayer`] defaults.
    pub fn new(inner: S, policy: P) -> Self
    where
        P: ItemPolicy + Clone,
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
        self.reader.get_ref()
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        self.reader.get_mut()
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.reader.into_inner()
    }
}

impl<S: Clone, P, D> Clone for AuthorizeItems<S, P, D> {
    fn clone(&self) -> Self {
        AuthorizeItems {
            reader: self.reader.clone(),
        }
    }
}

impl<S: fmt::Debug, P: fmt::Debug, D: fmt::Debug> fmt::Debug for AuthorizeItems<S, P, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizeItems")
            .field("reader", &self.reader)
            .finish()
    }
}

/// The response future of [`AuthorizeItems`]: the batch limit layer's, which reads, counts and
/// checks the body in one pass.
pub type AuthorizeItemsFuture<S, B, P, D> = ResponseFuture<S, B, D, DefaultCounter, ItemsCheck<P>>;

impl<S, P, D, ReqBody, ResBody> Service<Request<ReqBody>> for AuthorizeItems<S, P, D>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>> + Clone,
    P: ItemPolicy,
    D: Dialect,
    ReqBody: Body<Data = Bytes>,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = AuthorizeItemsFuture<S, ReqBody, P, D>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.reader.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (head, body) = request.into_parts();
        let shared = self.reader.shared();
        if let Some(items) = head.extensions.get::<BulkItems>() {
            // The batch limit layer above found the items in its pass and buffered the body:
            // check them, nothing to read again.
            let check = &shared.inspect;
            if check.applies_to(&head) && !items.is_protobuf() {
                if let Err(error) = check.check(&head, items) {
                    return ResponseFuture::refused(&head, &shared.dialect, &error);
                }
            }
            let request = Request::from_parts(head, RequestBody::streaming(body));
            return ResponseFuture::calling(self.reader.get_mut().call(request));
        }
        self.reader.call(Request::from_parts(head, body))
    }
}
