//! API keys: `unauthorized` (401) and `forbidden` (403).
//!
//! [`AuthLayer`] reads the request's API key (`Authorization: Bearer <key>`, or a header such as
//! `X-Api-Key`), looks it up in a [`KeyStore`], checks the route against a [`RoutePolicy`], and
//! hands the request on with its [`Principal`] (account id, roles, a key id safe to log) in the
//! request extensions. It never reads the body, so a bad key is refused cheaply.
//! [`AuthorizeItemsLayer`] then shows each item of a bulk JSON body to an [`ItemPolicy`], and
//! refuses the whole request if any one item is not allowed.
//!
//! | what | answer |
//! | --- | --- |
//! | no key, unknown key, disabled key, malformed key headers | `unauthorized` (401), `WWW-Authenticate: Bearer` (with `error="invalid_token"` when a key was presented) |
//! | the route needs a role the key lacks | `forbidden` (403) |
//! | an item of the body is not allowed | `forbidden` (403); the inner service is not called |
//! | the store failed | `server_error` (500) |
//! | the store said it is down ([`StoreError::unavailable`]) | `service_unavailable` (503) |
//!
//! A store error is never read as "no such key" and never lets a request through. gRPC requests
//! (`content-type: application/grpc…`) read the key from the `authorization` metadata the same
//! way and are answered trailers-only: `UNAUTHENTICATED` (16), `PERMISSION_DENIED` (7),
//! `INTERNAL` (13) or `UNAVAILABLE` (14). Every answer is rendered by
//! [`ErrorFormat::render`](crate::dialect::ErrorFormat::render) in the layer's dialect.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_api_errors::auth::{AuthLayer, InMemoryKeyStore, KeySet, Principal};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = KeySet::new().with_key(
//!     "demo_admin",
//!     Principal::new("acct_123").with_key_id("key_admin").with_roles(["read", "write"]),
//! )?;
//! let service = ServiceBuilder::new()
//!     .layer(AuthLayer::new(InMemoryKeyStore::new(keys)))
//!     .service_fn(|request: Request<Full<Bytes>>| async move {
//!         // The principal is in the extensions (in axum: the `Principal` extractor of feature
//!         // `axum`, or `Extension<Principal>`; in tonic: `RequestExt::principal`, feature `tonic`).
//!         let principal = request.extensions().get::<Principal>().unwrap();
//!         let body = Full::from(principal.account_id().to_owned());
//!         Ok::<_, std::convert::Infallible>(Response::new(body))
//!     });
//!
//! let request = Request::get("/v1/webhooks")
//!     .header("authorization", "Bearer demo_admin")
//!     .body(Full::default())?;
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//!
//! let request = Request::get("/v1/webhooks")
//!     .header("authorization", "Bearer not_a_key")
//!     .body(Full::default())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), 401);
//! assert_eq!(response.headers()["www-authenticate"], r#"Bearer error="invalid_token""#);
//! # use http_body_util::BodyExt;
//! assert_eq!(response.into_body().collect().await?.to_bytes(), r#"{"error":"unauthorized"}"#);
//! # Ok(())
//! # }
//! ```
//!
//! # Roles, items, dialects, key headers
//!
//! A reader (`read`) may `GET`, a writer (`write`) may change things, every item of a bulk
//! write must belong to the key's account, `/v1/customer/…` answers in the coded dialect, and
//! keys come as `Authorization: Bearer` or `X-Api-Key`:
//!
//! ```
//! use bytes::Bytes;
//! use http::{HeaderName, Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_api_errors::{
//!     auth::{AuthLayer, AuthorizeItemsLayer, InMemoryKeyStore, KeyExtractor, KeySet, Principal, RoleTable},
//!     body::RequestBody,
//!     dialect::{Bulk, Coded, DialectByPath},
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let keys = KeySet::new()
//!     .with_key("demo_admin", Principal::new("acct_123").with_roles(["read", "write"]))?
//!     .with_key("demo_reader", Principal::new("acct_123").with_roles(["read"]))?;
//! let dialect = DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new());
//! let service = ServiceBuilder::new()
//!     .layer(
//!         AuthLayer::new(InMemoryKeyStore::new(keys))
//!             .keys(KeyExtractor::bearer_or_header(HeaderName::from_static("x-api-key")))
//!             .route_policy(RoleTable::read_write())
//!             .dialect(dialect.clone()),
//!     )
//!     .layer(AuthorizeItemsLayer::default().dialect(dialect))
//!     .service_fn(|request: Request<RequestBody<Full<Bytes>>>| async move {
//!         let body = request.into_body().collect().await?.to_bytes();
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(body)))
//!     });
//!
//! // A reader writing: 403, in the coded dialect under /v1/customer.
//! let request = Request::post("/v1/customer/courses")
//!     .header("x-api-key", "demo_reader")
//!     .body(Full::from(r#"{"title": "Rust"}"#))?;
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), 403);
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(body, r#"{"code":3,"message":"Not authorized","errors":[]}"#);
//!
//! // A writer sending an item of another account: 403 for the whole request.
//! let request = Request::post("/v1/webhooks")
//!     .header("authorization", "Bearer demo_admin")
//!     .body(Full::from(r#"[{"url": "https://a.example"}, {"account_id": "acct_456"}]"#))?;
//! let response = service.clone().oneshot(request).await?;
//! assert_eq!(response.status(), 403);
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(body, r#"{"error":"forbidden"}"#);
//!
//! // Items of the key's own account: the handler gets the body byte for byte.
//! let sent = r#"[{"url": "https://a.example", "account_id": "acct_123"}]"#;
//! let request = Request::post("/v1/webhooks")
//!     .header("authorization", "Bearer demo_admin")
//!     .body(Full::from(sent))?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.into_body().collect().await?.to_bytes(), sent);
//! # Ok(())
//! # }
//! ```
//!
//! # Where it goes in a stack
//!
//! [`Contract`](crate::Contract) puts every part in its place; composed by hand, outermost
//! first:
//!
//! 1. [`catch_panic`](crate::catch_panic) — a panic anywhere below becomes `server_error`;
//! 2. [`normalize`](crate::normalize) — every other error response gets the contract's shape;
//! 3. [`AuthLayer`] — authentication and per-route roles, from the headers alone, so a bad key
//!    costs a hash and a lookup, never a body read;
//! 4. [`batch_limit`](crate::batch_limit) — counts the items of a bulk body, refuses too many,
//!    and leaves what it found ([`BulkItems`](crate::batch_limit::BulkItems)) in the request
//!    extensions;
//! 5. [`AuthorizeItemsLayer`] — shows each item to the [`ItemPolicy`], reusing `BulkItems`
//!    (in the contract, the policy runs inside the batch limit's pass instead);
//! 6. the handler.
//!
//! # Per-item authorization
//!
//! [`AuthorizeItemsLayer`] needs the [`Principal`] that [`AuthLayer`] put in the extensions (a
//! request that reaches it without one is answered `server_error`: the stack is wrong; with
//! [`Contract::authorize_items`](crate::Contract::authorize_items) that stack does not
//! compile). It checks `POST`, `PUT`, `PATCH` and `DELETE` bodies (see
//! [`AuthorizeItemsLayer::methods`]; the setting holds whoever found the items), and finds the
//! items in one of two ways:
//!
//! - when the batch limit layer ran first, its [`BulkItems`](crate::batch_limit::BulkItems)
//!   are in the extensions: the items are shown to the policy straight from them, the body is
//!   not read or parsed again, and it is handed on untouched;
//! - otherwise it reads the body itself, with the batch limit layer's own reader (there is one
//!   body reader in the crate, so a body error means the same thing through either layer:
//!   `request_timeout` (408) when an outer body timeout stopped it, `payload_too_large` past the
//!   cap, `bad_request` when the client went away), up to
//!   [`DEFAULT_MAX_BODY_BYTES`] ([`AuthorizeItemsLayer::max_bytes`]; more is
//!   `payload_too_large`, 413, refused on `Content-Length` before any byte is read), finds the
//!   items (the elements of a top-level array, or of the array in
//!   [`AuthorizeItemsLayer::array_field`]; any other value is one item), and hands on the same
//!   bytes and trailers, with the `BulkItems` it found in the extensions for the handler. A body
//!   that is not JSON is `invalid_json` (400), whatever its `Content-Type`: items that cannot be
//!   seen cannot be authorized. An empty body has no items and passes. The read is bounded in
//!   bytes, not in time: put a timeout (e.g. `tower_http::timeout`) outside the stack for
//!   clients that send slowly; a body stopped by it is `request_timeout` (408), by the same
//!   rule as the batch layer's ([`crate::body::read_error`]).
//!
//! If any item is refused, the answer is `forbidden` for the whole request (the seed's "Not
//! authorized": nothing is applied), with `item <index> is not allowed` as a detail for dialects
//! that show details — unless an item of the body is not well-formed JSON (the batch layer's
//! counter checks the structure, not the grammar inside items): that is the client's typo,
//! answered `invalid_json` (400), never `forbidden`. Calls to a gRPC service declared with
//! [`AuthorizeItemsLayer::grpc_service`] pass this layer untouched: their items are protobuf,
//! and are best checked by the handler on the decoded message. A gRPC `Content-Type` on any
//! other route changes nothing: the body is read and checked like any other.
//!
//! # Key stores
//!
//! [`InMemoryKeyStore`] keeps only the SHA-256 digest of each key ([`KeySet`] builds one from
//! code or from a JSON file), and swaps its whole set atomically at run time for key rotation.
//! Anything async (a database, a remote service) is a [`KeyStore`]: a closure returning a
//! future is one. [`CachedKeyStore`] puts a bounded cache with a TTL (and a short TTL for
//! unknown keys) in front of a slow store. Lookups return the store's own future type, so
//! nothing is boxed per request; a store that has the answer at hand (the in-memory store, a
//! cache hit) gives it through [`KeyStore::lookup_now`], and the layer then decides and calls
//! the inner service without building a future at all.
//!
//! # Issuing keys, and keys in a database
//!
//! [`KeyFormat::generate`] makes a key `<prefix>_<64 hex digits><8 hex digits>`: 256 bits from
//! the operating system's random source, then a CRC-32 of everything before it. The prefix
//! (chosen by the operator, `sk` by default) lets secret scanners spot a leaked key; the
//! checksum lets a store refuse a mistyped key without a database round trip (the answer is
//! given by [`KeyStore::lookup_now`], so the layer builds no future for it). A key id (public,
//! safe to log) comes with it; the secret is shown once, and only its SHA-256 digest is kept.
//!
//! With the `sqlite` feature, `SqliteKeyStore` keeps issued keys in an SQLite file; with
//! `postgres`, `PostgresKeyStore` keeps them in PostgreSQL. Both run their own schema
//! migration, store digests only, know expiry (`expires_at`), disable / enable / revoke and
//! list keys (never a secret), and write a key's last use at most once per interval
//! (`DEFAULT_TOUCH_INTERVAL`), never once per request. A PostgreSQL trigger announces every
//! change on a `NOTIFY` channel; `PostgresKeyStore::watch` (or `cached`) makes each
//! instance's [`CachedKeyStore`] forget a changed key as soon as it is announced. When the
//! channel is down the cache falls back to its TTL, with a warning in the log, and the watch
//! reconnects by itself.
//!
//! # Secrets
//!
//! The layer hashes the presented key once and stores look the digest up: no clear key is
//! compared with anything, so how long a lookup takes says nothing about how much of a guess was
//! right. Keys never appear in responses, `Debug` output or logs: rejections are logged with
//! `tracing` at `debug` level with the key id, or the first 8 hex digits of the key's digest
//! when the key is unknown; store errors at `error` level.

mod authorize_items;
mod cache;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod db;
mod field_scan;
mod future;
mod issue;
mod items;
mod key;
mod layer;
mod memory;
mod policy;
#[cfg(feature = "postgres")]
mod postgres;
mod principal;
#[cfg(feature = "postgres")]
mod revocation;
mod service;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

pub use self::{
    authorize_items::{AuthorizeItems, AuthorizeItemsFuture, AuthorizeItemsLayer, ItemsCheck},
    cache::{
        CachedKeyStore, CachedLookup, DEFAULT_CAPACITY, DEFAULT_NEGATIVE_CAPACITY,
        DEFAULT_NEGATIVE_TTL, DEFAULT_TTL,
    },
    future::ResponseFuture,
    issue::{
        GeneratedKey, KeyFormat, KeyFormatError, KeyRecord, KeyState, NewKey, DEFAULT_KEY_PREFIX,
    },
    items::{Item, ItemPolicy, SameAccount, DEFAULT_MAX_BODY_BYTES},
    key::{
        parse_bearer, parse_key, ApiKey, KeyDigest, KeyError, KeyExtractor, ShortDigest,
        DEFAULT_MAX_KEY_LEN,
    },
    layer::AuthLayer,
    memory::{InMemoryKeyStore, KeySet, LoadError},
    policy::{Authenticated, RoleTable, Route, RoutePolicy},
    principal::Principal,
    service::Auth,
    store::{KeyStore, Lookup, StoreError},
};

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use self::db::DEFAULT_TOUCH_INTERVAL;
#[cfg(feature = "sqlite")]
pub use self::sqlite::{SqliteKeyStore, SqliteLookup};
#[cfg(feature = "postgres")]
pub use self::{
    postgres::{PostgresKeyStore, PostgresLookup},
    revocation::RevocationWatch,
};

#[cfg(test)]
mod tests;
