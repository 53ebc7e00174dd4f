use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use proptest::prelude::*;
use tower::{service_fn, Layer, ServiceExt};

use super::{key::all_visible, *};
use crate::{batch_limit::BulkItems, body::RequestBody};

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    headers
}

#[test]
fn bearer_scheme_is_case_insensitive_and_keys_are_visible_ascii() {
    assert_eq!(parse_bearer(b"Bearer abc"), Ok("abc"));
    assert_eq!(parse_bearer(b"bearer abc"), Ok("abc"));
    assert_eq!(parse_bearer(b"bEaReR   abc  "), Ok("abc"));
    assert_eq!(parse_bearer(b"Bearer a+b/c=="), Ok("a+b/c=="));
    assert_eq!(
        parse_bearer(b"Basic YWJjOmRlZg=="),
        Err(KeyError::OtherScheme)
    );
    assert_eq!(parse_bearer(b"Bearerabc"), Err(KeyError::OtherScheme));
    assert_eq!(parse_bearer(b""), Err(KeyError::OtherScheme));
    assert_eq!(parse_bearer(b"Bearer"), Err(KeyError::Empty));
    assert_eq!(parse_bearer(b"Bearer    "), Err(KeyError::Empty));
    assert_eq!(
        parse_bearer(b"Bearer a b"),
        Err(KeyError::InvalidCharacters)
    );
    assert_eq!(
        parse_bearer(b"Bearer a\tb"),
        Err(KeyError::InvalidCharacters)
    );
    assert_eq!(
        parse_bearer(b"Bearer caf\xc3\xa9"),
        Err(KeyError::InvalidCharacters)
    );
    assert_eq!(
        parse_bearer(b"Bearer \xff\xfe"),
        Err(KeyError::InvalidCharacters)
    );
    assert_eq!(
        parse_bearer(b"Bearer a\x7fb"),
        Err(KeyError::InvalidCharacters)
    );
    assert_eq!(
        parse_bearer(b"Bearer a\0b"),
        Err(KeyError::InvalidCharacters)
    );
    assert_eq!(parse_key(b"  k-1  "), Ok("k-1"));
    assert_eq!(parse_key(b"   "), Err(KeyError::Empty));
}

#[test]
fn visible_ascii_check_agrees_with_the_naive_one() {
    let naive = |bytes: &[u8]| bytes.iter().all(|byte| (b'!'..=b'~').contains(byte));
    for len in 0..20 {
        for position in 0..len {
            for byte in 0..=255u8 {
                let mut key = vec![b'k'; len];
                key[position] = byte;
                assert_eq!(all_visible(&key), naive(&key), "{key:?}");
            }
        }
    }
}

proptest! {
    #[test]
    fn key_parsers_never_panic_and_agree_with_the_naive_check(value in proptest::collection::vec(any::<u8>(), 0..80)) {
        let naive = |bytes: &[u8]| bytes.iter().all(|byte| (b'!'..=b'~').contains(byte));
        prop_assert_eq!(all_visible(&value), naive(&value));
        if let Ok(key) = parse_bearer(&value) {
            prop_assert!(!key.is_empty() && naive(key.as_bytes()));
        }
        if let Ok(key) = parse_key(&value) {
            prop_assert!(!key.is_empty() && naive(key.as_bytes()));
        }
    }
}

#[test]
fn extractor_refuses_repeated_conflicting_and_long_headers() {
    let bearer = KeyExtractor::bearer();
    let either = KeyExtractor::bearer_or_header(HeaderName::from_static("x-api-key"));
    let named = KeyExtractor::header(HeaderName::from_static("x-api-key"));

    assert_eq!(bearer.extract(&headers(&[])), Err(KeyError::Missing));
    let one = headers(&[("authorization", b"Bearer k1")]);
    assert_eq!(bearer.extract(&one), Ok("k1"));
    assert_eq!(either.extract(&one), Ok("k1"));
    // Only the named header counts for a header-only extractor.
    assert_eq!(named.extract(&one), Err(KeyError::Missing));

    let twice = headers(&[
        ("authorization", b"Bearer k1"),
        ("authorization", b"Bearer k1"),
    ]);
    assert_eq!(bearer.extract(&twice), Err(KeyError::Repeated));

    let same = headers(&[("authorization", b"Bearer k1"), ("x-api-key", b"k1")]);
    assert_eq!(either.extract(&same), Ok("k1"));
    let different = headers(&[("authorization", b"Bearer k1"), ("x-api-key", b"k2")]);
    assert_eq!(either.extract(&different), Err(KeyError::Conflicting));
    let header_only = headers(&[("x-api-key", b"k2")]);
    assert_eq!(either.extract(&header_only), Ok("k2"));
    assert_eq!(named.extract(&header_only), Ok("k2"));
    // A malformed Authorization header is refused even when X-Api-Key is fine.
    let basic = headers(&[("authorization", b"Basic abc"), ("x-api-key", b"k2")]);
    assert_eq!(either.extract(&basic), Err(KeyError::OtherScheme));

    let long = format!("Bearer {}", "k".repeat(DEFAULT_MAX_KEY_LEN));
    let long = headers(&[("authorization", long.as_bytes())]);
    assert_eq!(bearer.extract(&long), Err(KeyError::TooLong));
    assert!(bearer.clone().max_len(4096).extract(&long).is_ok());

    assert!(!KeyError::Missing.presented());
    assert!(!KeyError::OtherScheme.presented());
    assert!(KeyError::Conflicting.presented());
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let key = ApiKey::new("sk_secret_value");
    let debug = format!("{key:?} {:?}", key.digest());
    assert!(!debug.contains("sk_secret_value"), "{debug}");
    assert!(debug.contains(&key.digest().short().to_string()));
    assert!(!debug.contains(&key.digest().to_hex()), "{debug}");

    let set = KeySet::new()
        .with_key(
            "sk_secret_value",
            Principal::new("acct_1").with_key_id("key_1"),
        )
        .unwrap();
    let debug = format!("{set:?} {:?}", InMemoryKeyStore::new(set.clone()));
    assert!(!debug.contains("sk_secret_value"), "{debug}");
    assert!(debug.contains("key_1"), "{debug}");
}

#[test]
fn digests_round_trip_and_compare() {
    let digest = KeyDigest::of("abc");
    assert_eq!(
        digest.to_hex(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        KeyDigest::from_hex(&digest.to_hex().to_uppercase()),
        Some(digest)
    );
    assert_eq!(KeyDigest::from_hex("abc"), None);
    assert_eq!(KeyDigest::from_hex(&"g".repeat(64)), None);
    assert_ne!(KeyDigest::of("abd"), digest);
    assert_eq!(digest.short().to_string(), "ba7816bf");
}

#[test]
fn key_sets_load_from_json() {
    let json = format!(
        r#"{{"keys": [
            {{"key_id": "key_admin", "sha256": "{}", "account_id": "acct_123", "roles": ["read", "write"]}},
            {{"key": "demo_disabled", "account_id": "acct_123", "active": false}}
        ]}}"#,
        KeyDigest::of("demo_admin").to_hex()
    );
    let store = InMemoryKeyStore::new(KeySet::from_json(json.as_bytes()).unwrap());
    let admin = store.get(&KeyDigest::of("demo_admin")).unwrap();
    assert_eq!(admin.key_id(), "key_admin");
    assert!(admin.has_roles(["read", "write"]));
    let disabled = store.get(&KeyDigest::of("demo_disabled")).unwrap();
    assert!(!disabled.is_active());
    // No key id given: a digest prefix names the key in logs.
    assert_eq!(
        disabled.key_id(),
        format!("sha256:{}", KeyDigest::of("demo_disabled").short())
    );
}

#[test]
fn bad_key_files_are_refused_without_naming_keys() {
    let cases = [
        r#"{"keys": [{"account_id": "a"}]}"#.to_owned(),
        r#"{"keys": [{"key": "sk_one", "sha256": "00", "account_id": "a"}]}"#.to_owned(),
        r#"{"keys": [{"key": "", "account_id": "a"}]}"#.to_owned(),
        r#"{"keys": [{"sha256": "sk_one", "account_id": "a"}]}"#.to_owned(),
        r#"{"keys": [{"key": "sk_one", "account_id": "a", "role": ["admin"]}]}"#.to_owned(),
        r#"{"keys": [{"key": "sk_one", "account_id": "a"}, {"key": "sk_one", "account_id": "b"}]}"#
            .to_owned(),
        r#"{"keys": [{"key": "sk_one", "account_id": "a""#.to_owned(),
        "[]".to_owned(),
    ];
    for json in cases {
        let error = KeySet::from_json(json.as_bytes()).unwrap_err().to_string();
        assert!(!error.contains("sk_one"), "{json} → {error}");
    }
}

#[tokio::test]
async fn stores_swap_keys_atomically_and_reload_files() {
    let store = InMemoryKeyStore::new(
        KeySet::new()
            .with_key("old", Principal::new("acct_1"))
            .unwrap(),
    );
    let clone = store.clone();
    let path =
        std::env::temp_dir().join(format!("tower-api-errors-keys-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"{"keys": [{"key_id": "new", "key": "new", "account_id": "acct_1"}]}"#,
    )
    .unwrap();
    clone.reload_json_file(&path).unwrap();
    assert!(matches!(
        store.lookup(&ApiKey::new("old")).await,
        Ok(Lookup::NotFound)
    ));
    assert!(matches!(
        store.lookup(&ApiKey::new("new")).await,
        Ok(Lookup::Found(_))
    ));

    // A broken file leaves the keys in use alone.
    std::fs::write(&path, "{").unwrap();
    assert!(store.reload_json_file(&path).is_err());
    assert!(store
        .reload_json_file(path.with_extension("missing"))
        .is_err());
    assert_eq!(store.len(), 1);
    std::fs::remove_file(&path).unwrap();
    assert!(InMemoryKeyStore::from_json_file(&path).is_err());
}

/// A store that counts its lookups and answers after yielding once, like a remote store.
#[derive(Clone)]
struct SlowStore {
    calls: Arc<AtomicUsize>,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl SlowStore {
    fn new() -> Self {
        SlowStore {
            calls: Arc::default(),
            failing: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl KeyStore for SlowStore {
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Lookup, StoreError>> + Send>>;

    fn lookup(&self, key: &ApiKey<'_>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let failing = self.failing.load(Ordering::SeqCst);
        let secret = key.expose_secret().to_owned();
        Box::pin(async move {
            tokio::task::yield_now().await;
            if failing {
                return Err(StoreError::unavailable("database down"));
            }
            Ok(match secret.strip_prefix("good_") {
                Some(account) => Lookup::Found(Principal::new(account)),
                None => Lookup::NotFound,
            })
        })
    }
}

/// A clock the test moves by hand.
#[derive(Clone)]
struct ManualClock {
    start: Instant,
    offset: Arc<Mutex<Duration>>,
}

impl ManualClock {
    fn new() -> Self {
        ManualClock {
            start: Instant::now(),
            offset: Arc::default(),
        }
    }

    fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap() += by;
    }

    fn now(&self) -> Instant {
        self.start + *self.offset.lock().unwrap()
    }
}

fn cached(store: &SlowStore, clock: &ManualClock) -> CachedKeyStore<SlowStore> {
    let clock = clock.clone();
    CachedKeyStore::new(store.clone())
        .ttl(Duration::from_secs(60))
        .negative_ttl(Duration::from_secs(5))
        .clock(move || clock.now())
}

async fn found(store: &impl KeyStore, key: &str) -> Option<String> {
    match store.lookup(&ApiKey::new(key)).await.unwrap() {
        Lookup::Found(principal) => Some(principal.account_id().to_owned()),
        Lookup::NotFound => None,
    }
}

#[tokio::test]
async fn cache_remembers_found_keys_for_the_ttl() {
    let (store, clock) = (SlowStore::new(), ManualClock::new());
    let cache = cached(&store, &clock);
    assert_eq!(found(&cache, "good_a").await.as_deref(), Some("a"));
    assert_eq!(found(&cache, "good_a").await.as_deref(), Some("a"));
    assert_eq!(store.calls(), 1);
    // Answered synchronously, without a future, while remembered.
    assert!(cache.lookup_now(&ApiKey::new("good_a")).is_some());
    assert!(cache.lookup_now(&ApiKey::new("good_b")).is_none());
    clock.advance(Duration::from_secs(59));
    found(&cache, "good_a").await;
    assert_eq!(store.calls(), 1);
    clock.advance(Duration::from_secs(1));
    found(&cache, "good_a").await;
    assert_eq!(store.calls(), 2);
}

#[tokio::test]
async fn cache_remembers_unknown_keys_briefly() {
    let (store, clock) = (SlowStore::new(), ManualClock::new());
    let cache = cached(&store, &clock);
    assert_eq!(found(&cache, "nope").await, None);
    assert_eq!(found(&cache, "nope").await, None);
    assert_eq!(store.calls(), 1);
    clock.advance(Duration::from_secs(5));
    assert_eq!(found(&cache, "nope").await, None);
    assert_eq!(store.calls(), 2);
}

#[tokio::test]
async fn cache_does_not_remember_store_errors() {
    let (store, clock) = (SlowStore::new(), ManualClock::new());
    let cache = cached(&store, &clock);
    store.failing.store(true, Ordering::SeqCst);
    let error = cache.lookup(&ApiKey::new("good_a")).await.unwrap_err();
    assert!(error.is_unavailable());
    store.failing.store(false, Ordering::SeqCst);
    assert_eq!(found(&cache, "good_a").await.as_deref(), Some("a"));
    assert_eq!(store.calls(), 2);
}

#[tokio::test]
async fn cache_is_bounded_and_unknown_keys_cannot_evict_known_ones() {
    let (store, clock) = (SlowStore::new(), ManualClock::new());
    let cache = cached(&store, &clock).capacity(3).negative_capacity(2);
    for key in ["good_1", "good_2", "good_3"] {
        found(&cache, key).await;
    }
    // A flood of unknown keys fills only their own room.
    for n in 0..50 {
        found(&cache, &format!("bad_{n}")).await;
    }
    let calls = store.calls();
    for key in ["good_1", "good_2", "good_3"] {
        found(&cache, key).await;
    }
    assert_eq!(store.calls(), calls, "known keys stayed remembered");
    // A fourth known key pushes out the oldest.
    found(&cache, "good_4").await;
    found(&cache, "good_1").await;
    assert_eq!(store.calls(), calls + 2);
    found(&cache, "good_4").await;
    assert_eq!(store.calls(), calls + 2);

    cache.invalidate_all();
    found(&cache, "good_4").await;
    assert_eq!(store.calls(), calls + 3);
    cache.invalidate(&KeyDigest::of("good_4"));
    found(&cache, "good_4").await;
    assert_eq!(store.calls(), calls + 4);
}

#[test]
fn role_tables_match_whole_segments_in_order() {
    let table = RoleTable::new()
        .rule([Method::GET], "/v1/customer/", ["read"])
        .rule([], "/v1/admin", ["admin"])
        .rule([Method::POST], "/", ["write"]);
    let reader = Principal::new("a").with_roles(["read"]);
    let writer = Principal::new("a").with_roles(["write"]);
    let headers = HeaderMap::new();
    let allows = |principal: &Principal, method: Method, path: &str| {
        let uri = path.parse().unwrap();
        table.allows(principal, &Route::new(&method, &uri, &headers))
    };
    assert!(allows(&reader, Method::GET, "/v1/customer"));
    assert!(allows(&reader, Method::GET, "/v1/customer/courses?page=1"));
    assert!(!allows(&reader, Method::GET, "/v1/customers"));
    assert!(!allows(&writer, Method::GET, "/v1/admin/keys"));
    assert!(!allows(&writer, Method::POST, "/v1/admin"));
    assert!(allows(&writer, Method::POST, "/v1/webhooks"));
    assert!(!allows(&reader, Method::DELETE, "/v1/webhooks"));

    let read_write = RoleTable::read_write();
    let uri = "/x".parse().unwrap();
    assert!(read_write.allows(&reader, &Route::new(&Method::HEAD, &uri, &headers)));
    assert!(!read_write.allows(&reader, &Route::new(&Method::PATCH, &uri, &headers)));
    assert!(read_write.allows(&writer, &Route::new(&Method::PATCH, &uri, &headers)));
    assert!(format!("{read_write:?}").contains("otherwise"));
}

#[test]
fn same_account_reads_the_account_field_strictly() {
    let principal = Principal::new("acct_123");
    let policy = SameAccount::default();
    let allows = |raw: &str| policy.allows(&principal, &Item::new(0, raw.as_bytes()));
    assert!(allows(r#"{"url": "https://a.example"}"#));
    assert!(allows(
        r#"{"account_id": "acct_123", "nested": {"account_id": "acct_456"}}"#
    ));
    assert!(allows(r#"{"account_id": "acct\u005f123"}"#));
    assert!(allows(r#"{"account\u005fid": "acct_123"}"#));
    assert!(!allows(r#"{"account\u005fid": "acct_456"}"#));
    assert!(!allows(r#"{"account_id": 123}"#));
    assert!(!allows(r#"{"account_id": {"id": "acct_123"}}"#));
    assert!(!allows(r#"{"account_id": 1, "account_id": "acct_123"}"#));
    assert!(!allows(r#"{"account_id": "acct_123", "account_id": 1}"#));
    assert!(allows(r#"["acct_456"]"#));
    assert!(allows(r#""acct_456""#));
    assert!(!allows(r#"{"account_id": "acct_456"}"#));
    assert!(!allows(r#"{"account_id": null}"#));
    assert!(!allows(r#"{"account_id": ["acct_123"]}"#));
    assert!(!allows(
        r#"{"account_id": "acct_123", "account_id": "acct_123"}"#
    ));
    assert!(!allows(r#"{"account_id": "acct_123""#));
    assert!(SameAccount::field("owner").allows(
        &principal,
        &Item::new(0, br#"{"account_id": "x", "owner": "acct_123"}"#)
    ));
}

#[test]
fn items_are_found_where_the_batch_layer_would_find_them() {
    let spans = |body: &str, field: Option<&str>| {
        items::find_items(body.as_bytes(), field).map(|spans| {
            spans
                .into_iter()
                .map(|span| body[span].to_owned())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(
        spans(r#" [ {"a": [1, "]"]} , 2,"x" ] "#, None).unwrap(),
        [r#"{"a": [1, "]"]}"#, "2", r#""x""#]
    );
    assert_eq!(spans("[]", None).unwrap(), Vec::<String>::new());
    assert_eq!(spans(" \n ", None).unwrap(), Vec::<String>::new());
    assert_eq!(spans(r#" {"a": 1} "#, None).unwrap(), [r#"{"a": 1}"#]);
    assert_eq!(spans("7", None).unwrap(), ["7"]);
    assert_eq!(
        spans(
            r#"{"meta": [9], "data": [{"a": 1}, {"b": 2}]}"#,
            Some("data")
        )
        .unwrap(),
        [r#"{"a": 1}"#, r#"{"b": 2}"#]
    );
    assert_eq!(
        spans(r#"{"meta": [9]}"#, Some("data")).unwrap(),
        [r#"{"meta": [9]}"#]
    );
    assert!(spans(r#"{"data": [1], "data": [2]}"#, Some("data")).is_err());
    assert!(spans("[1,", None).is_err());
    assert!(spans("[1] [2]", None).is_err());
    assert!(spans("{'a': 1}", None).is_err());
    // Deep nesting is skipped iteratively: no stack overflow.
    let deep = format!("[{}{}]", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(spans(&deep, None).unwrap().len(), 1);
    let deep = format!("[{}]", "[".repeat(100_000));
    assert!(spans(&deep, None).is_err());
}

async fn ok_handler(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let account = request
        .extensions()
        .get::<Principal>()
        .map(|principal| principal.account_id().to_owned())
        .unwrap_or_default();
    Ok(Response::new(Full::from(account)))
}

async fn body_of<B: http_body::Body>(response: Response<B>) -> Bytes
where
    B::Error: std::fmt::Debug,
{
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn async_stores_pass_through_the_future_path() {
    let store = SlowStore::new();
    let service = AuthLayer::new(store.clone()).layer(service_fn(ok_handler));
    let request = |key: &str| {
        Request::get("/")
            .header("authorization", format!("Bearer {key}"))
            .body(Full::default())
            .unwrap()
    };
    let response = service
        .clone()
        .oneshot(request("good_acct_9"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_of(response).await, "acct_9");
    let response = service.clone().oneshot(request("bad")).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    store.failing.store(true, Ordering::SeqCst);
    let response = service.oneshot(request("good_acct_9")).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body_of(response).await,
        r#"{"error":"service_unavailable"}"#
    );
}

#[tokio::test]
async fn store_failures_are_server_errors_never_401() {
    let failing = |_: &ApiKey<'_>| async { Err(StoreError::failed("connection reset")) };
    let service = AuthLayer::new(failing).layer(service_fn(ok_handler));
    let response = service
        .clone()
        .oneshot(
            Request::get("/")
                .header("authorization", "Bearer anything")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.headers().get("www-authenticate").is_none());
    assert_eq!(body_of(response).await, r#"{"error":"server_error"}"#);

    let grpc = Request::post("/pkg.Svc/Call")
        .header("content-type", "application/grpc")
        .header("authorization", "Bearer anything")
        .body(Full::default())
        .unwrap();
    let response = service.oneshot(grpc).await.unwrap();
    assert_eq!(response.headers()["grpc-status"], "13");
}

#[tokio::test]
async fn head_requests_get_headers_only() {
    let store = InMemoryKeyStore::default();
    let service = Auth::new(service_fn(ok_handler), store);
    let response = service
        .oneshot(Request::head("/").body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(response.headers()["content-length"], "24");
    assert!(body_of(response).await.is_empty());
}

fn admin_store() -> InMemoryKeyStore {
    InMemoryKeyStore::new(
        KeySet::new()
            .with_key("admin", Principal::new("acct_123").with_roles(["write"]))
            .unwrap(),
    )
}

type Echoed = Arc<Mutex<Vec<(Bytes, Option<HeaderMap>, bool)>>>;

/// An inner service that records the body (and trailers) it receives and whether `BulkItems`
/// were in the extensions.
fn recorder(
    seen: Echoed,
) -> impl tower::Service<
    Request<RequestBody<StreamBody<futures_stream::Frames>>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
> + Clone {
    service_fn(
        move |request: Request<RequestBody<StreamBody<futures_stream::Frames>>>| {
            let seen = seen.clone();
            async move {
                let has_items = request.extensions().get::<BulkItems>().is_some();
                let collected = request.into_body().collect().await.unwrap();
                let trailers = collected.trailers().cloned();
                seen.lock()
                    .unwrap()
                    .push((collected.to_bytes(), trailers, has_items));
                Ok::<_, Infallible>(Response::new(Full::default()))
            }
        },
    )
}

/// A body streamed in the given chunks, then trailers.
mod futures_stream {
    use std::{
        convert::Infallible,
        pin::Pin,
        task::{Context, Poll},
    };

    use bytes::Bytes;
    use http::HeaderMap;
    use http_body::Frame;

    pub(super) struct Frames(pub(super) Vec<Frame<Bytes>>);

    impl tokio_stream::Stream for Frames {
        type Item = Result<Frame<Bytes>, Infallible>;

        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Ready((!self.0.is_empty()).then(|| Ok(self.0.remove(0))))
        }
    }

    pub(super) fn body(
        chunks: &[&str],
        trailers: Option<HeaderMap>,
    ) -> http_body_util::StreamBody<Frames> {
        let mut frames: Vec<_> = chunks
            .iter()
            .map(|chunk| Frame::data(Bytes::copy_from_slice(chunk.as_bytes())))
            .collect();
        frames.extend(trailers.map(Frame::trailers));
        http_body_util::StreamBody::new(Frames(frames))
    }
}

#[tokio::test]
async fn item_layer_reads_chunked_bodies_and_hands_them_on_unchanged() {
    let seen = Echoed::default();
    let service = tower::ServiceBuilder::new()
        .layer(AuthLayer::new(admin_store()))
        .layer(AuthorizeItemsLayer::default())
        .service(recorder(seen.clone()));
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    let chunks = [
        "[{\"account_id\":",
        " \"acct_123\"}, {\"u\"",
        ": \"\u{e9}\"}]",
    ];
    let request = Request::post("/v1/webhooks")
        .header("authorization", "Bearer admin")
        .body(futures_stream::body(&chunks, Some(trailers.clone())))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (body, got_trailers, has_items) = seen.lock().unwrap().pop().unwrap();
    assert_eq!(body, chunks.concat());
    assert_eq!(got_trailers, Some(trailers));
    assert!(has_items, "the items found are left for the handler");

    // One foreign item among several refuses the whole request before the handler runs.
    let chunks = [
        r#"[{"account_id": "acct_123"}, {"account_id": "#,
        r#""acct_456"}]"#,
    ];
    let request = Request::put("/v1/webhooks")
        .header("authorization", "Bearer admin")
        .body(futures_stream::body(&chunks, None))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(body_of(response).await, r#"{"error":"forbidden"}"#);
    assert!(seen.lock().unwrap().is_empty());

    // Not JSON: items that cannot be seen cannot be authorized.
    let request = Request::post("/v1/webhooks")
        .header("authorization", "Bearer admin")
        .header("content-type", "text/plain")
        .body(futures_stream::body(&["hello"], None))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_of(response).await, r#"{"error":"invalid_json"}"#);

    // GET bodies are not read.
    let request = Request::get("/v1/webhooks")
        .header("authorization", "Bearer admin")
        .body(futures_stream::body(&["not json"], None))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (body, _, has_items) = seen.lock().unwrap().pop().unwrap();
    assert_eq!(body, "not json");
    assert!(!has_items);

    // An empty body has no items, and passes.
    let request = Request::post("/v1/webhooks")
        .header("authorization", "Bearer admin")
        .body(futures_stream::body(&[], None))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (body, _, _) = seen.lock().unwrap().pop().unwrap();
    assert!(body.is_empty());
}

#[tokio::test]
async fn item_layer_caps_the_bytes_it_reads() {
    let seen = Echoed::default();
    let service = tower::ServiceBuilder::new()
        .layer(AuthLayer::new(admin_store()))
        .layer(AuthorizeItemsLayer::default().max_bytes(16))
        .service(recorder(seen.clone()));
    let request = Request::post("/v1/webhooks")
        .header("authorization", "Bearer admin")
        .body(futures_stream::body(
            &["[1, 2, 3, 4, ", "5, 6, 7, 8]"],
            None,
        ))
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body_of(response).await, r#"{"error":"payload_too_large"}"#);

    // A declared length over the cap is refused before a byte is read: this body never ends.
    let (_sender, never) =
        tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, Infallible>>(1);
    let never = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(never));
    let service = tower::ServiceBuilder::new()
        .layer(AuthLayer::new(admin_store()))
        .layer(AuthorizeItemsLayer::default().max_bytes(16))
        .service(service_fn(|_: Request<RequestBody<_>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));
    let request = Request::post("/v1/webhooks")
        .header("authorization", "Bearer admin")
        .header("content-length", "17")
        .body(never)
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn item_layer_uses_bulk_items_found_before_it_without_reading_the_body() {
    let body = Bytes::from_static(br#"[{"account_id": "acct_123"}, {"x": 1}]"#);
    let spans = items::find_items(&body, None).unwrap();
    let bulk = BulkItems::new(body.clone(), spans);
    let within = body.as_ptr_range();
    let looked = Arc::new(AtomicUsize::new(0));
    let policy = {
        let looked = looked.clone();
        move |_: &Principal, item: &Item<'_>| {
            // The item is a view into the very bytes the batch layer kept: no copy, no parse.
            let raw = item.raw().as_ptr_range();
            assert!(within.start <= raw.start && raw.end <= within.end);
            looked.fetch_add(1, Ordering::SeqCst);
            true
        }
    };
    let seen = Echoed::default();
    let service = tower::ServiceBuilder::new()
        .layer(AuthLayer::new(admin_store()))
        .map_request(move |mut request: Request<_>| {
            request.extensions_mut().insert(bulk.clone());
            request
        })
        .layer(AuthorizeItemsLayer::new(policy))
        .service(recorder(seen.clone()));
    // The real body differs from what BulkItems says: only BulkItems is looked at, and the body
    // is handed on unread.
    let request = Request::post("/v1/webhooks")
        .header("authorization", "Bearer admin")
        .body(futures_stream::body(&["not ", "json"], None))
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(looked.load(Ordering::SeqCst), 2);
    let (received, _, has_items) = seen.lock().unwrap().pop().unwrap();
    assert_eq!(received, "not json");
    assert!(has_items);
}

#[tokio::test]
async fn item_layer_without_a_principal_is_a_server_error() {
    let service = AuthorizeItemsLayer::default().layer(service_fn(
        |_: Request<RequestBody<Full<Bytes>>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        },
    ));
    let response = service
        .oneshot(
            Request::post("/v1/webhooks")
                .body(Full::from("[1]"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
