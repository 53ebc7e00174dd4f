//! No header, method or malformed body switches a protection off: the demo stack on 127.0.0.1,
//! probed with what a client may choose. A gRPC label on an HTTP route (every spelling of the
//! family), `HEAD` instead of `GET`, an item with a JSON syntax error, a body that stalls under
//! the per-item authorization's own reader, and a cache lookup racing an invalidation.
//!
//! `SECURITY.md` lists each case with its test.

#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "../examples/bulk_api/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/bulk_api/handlers.rs"]
mod handlers;
mod reliability_support;
#[allow(dead_code)]
#[path = "../examples/bulk_api/store.rs"]
mod store;

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{body::Body, routing::post, Router};
use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::Full;
use reliability_support::{client, raw_exchange, send, serve, stack, Answer, Stack};
use serde_json::{json, Value};
use tokio::sync::watch;
use tower::ServiceBuilder;
use tower_api_errors::auth::{
    ApiKey, AuthLayer, AuthorizeItemsLayer, CachedKeyStore, KeyDigest, Lookup, Principal,
    StoreError,
};
use tower_api_errors::batch_limit::GrpcService;

/// Every spelling of the gRPC family a client may put in `Content-Type`.
const GRPC_SPELLINGS: [&str; 10] = [
    "application/grpc",
    "application/grpc+proto",
    "application/grpc+json",
    "application/grpc-web",
    "application/grpc-web+proto",
    "application/grpc-web-text",
    "application/grpc-web-text+proto",
    "application/grpc; charset=utf-8",
    "APPLICATION/GRPC",
    "Application/Grpc-Web-Text+Proto ; foo=bar",
];

struct Demo {
    addr: SocketAddr,
    layers: Stack,
    data: Arc<store::Store>,
}

async fn demo() -> Demo {
    let layers = Stack::default();
    let data = Arc::new(store::Store::default());
    let addr = serve(stack(&layers, app::key_store(), app::routes(data.clone()))).await;
    Demo { addr, layers, data }
}

impl Demo {
    fn stored_nothing(&self) -> bool {
        let ids: Vec<String> = (0..100).map(|n| format!("web_{n}")).collect();
        ["acct_123", "acct_456"]
            .iter()
            .all(|account| self.data.get_webhooks(account, &ids).data().is_empty())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        key: &str,
        content_type: &str,
        body: impl Into<Bytes>,
    ) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Full::new(body.into()))
            .unwrap();
        send(&client(), request).await
    }
}

/// A refusal answered the gRPC way (the request carried a gRPC label): trailers-only, the
/// contract code as `grpc-message`.
fn assert_grpc_refusal(answer: &Answer, grpc_status: &str, code: &str, spelling: &str) {
    assert_eq!(answer.status, 200, "{spelling}: {answer:?}");
    assert_eq!(
        answer.headers["grpc-status"], grpc_status,
        "{spelling}: {answer:?}"
    );
    assert_eq!(
        answer.headers["grpc-message"], code,
        "{spelling}: {answer:?}"
    );
    assert!(answer.body.is_empty(), "{spelling}: {answer:?}");
}

fn items(n: usize, account: &str) -> String {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"url": format!("https://hooks.example/{i}"), "email": "a@example.com", "account_id": account}))
        .collect();
    Value::Array(items).to_string()
}

/// Finding 1: a gRPC label on an HTTP route counts as any other body: the batch limit, the
/// byte cap, the GET ids limit and the per-item account check all hold, for every spelling.
#[tokio::test]
async fn a_grpc_label_on_an_http_route_switches_no_limit_off() {
    let demo = demo().await;
    for spelling in GRPC_SPELLINGS {
        let six = demo
            .send(
                Method::POST,
                "/v1/webhooks",
                "demo_admin",
                spelling,
                items(6, "acct_123"),
            )
            .await;
        assert_grpc_refusal(&six, "3", "too_many_items", spelling);

        let other_account = demo
            .send(
                Method::POST,
                "/v1/webhooks",
                "demo_admin",
                spelling,
                items(1, "acct_456"),
            )
            .await;
        assert_grpc_refusal(&other_account, "7", "forbidden", spelling);

        let ids: Vec<String> = (0..11).map(|n| format!("web_{n}")).collect();
        let path = format!("/v1/webhooks?ids={}", ids.join(","));
        let get = demo
            .send(Method::GET, &path, "demo_reader", spelling, "")
            .await;
        assert_grpc_refusal(&get, "3", "too_many_items", spelling);

        let huge = format!("[\"{}\"]", "x".repeat(2 * 1024 * 1024));
        let huge = demo
            .send(Method::POST, "/v1/webhooks", "demo_admin", spelling, huge)
            .await;
        assert_grpc_refusal(&huge, "8", "payload_too_large", spelling);
    }
    assert_eq!(demo.layers.inner.calls(), 0, "a handler ran");
    assert!(demo.stored_nothing());
}

/// Finding 2: `HEAD` is held to `GET`'s ids limit (axum answers `HEAD` with the `GET` handler).
#[tokio::test]
async fn head_is_held_to_the_get_ids_limit() {
    let demo = demo().await;
    let ids: Vec<String> = (0..1000).map(|n| format!("web_{n}")).collect();
    let path = format!("/v1/webhooks?ids={}", ids.join(","));
    let head = demo
        .send(Method::HEAD, &path, "demo_reader", "application/json", "")
        .await;
    assert_eq!(head.status, StatusCode::BAD_REQUEST, "{head:?}");
    assert_eq!(head.headers[header::CONTENT_TYPE], "application/json");
    assert!(head.body.is_empty());
    let ten: Vec<String> = (0..10).map(|n| format!("web_{n}")).collect();
    let path = format!("/v1/webhooks?ids={}", ten.join(","));
    let within = demo
        .send(Method::HEAD, &path, "demo_reader", "application/json", "")
        .await;
    assert_eq!(within.status, StatusCode::OK, "{within:?}");
    assert_eq!(
        demo.layers.inner.calls(),
        1,
        "only the HEAD within the limit ran"
    );
}

/// Finding 3: an item with a JSON syntax error is `invalid_json` (400), in every dialect, even
/// when it names another account; never `forbidden`.
#[tokio::test]
async fn a_malformed_item_is_invalid_json_not_forbidden() {
    let demo = demo().await;
    let bodies = [
        // A missing comma between two members: the counter sees one well-bracketed item.
        r#"[{"url": "https://hooks.example/a" "account_id": "acct_123"}]"#,
        r#"[{"account_id": "acct_456" "url": "x"}]"#,
        r#"[{"url": "https://hooks.example/a"}, {"account_id": acct_123}]"#,
    ];
    for body in bodies {
        let bulk = demo
            .send(
                Method::POST,
                "/v1/webhooks",
                "demo_admin",
                "application/json",
                body,
            )
            .await;
        bulk.assert_error(400, "invalid_json");
        let coded = demo
            .send(
                Method::POST,
                "/v1/customer/courses",
                "demo_admin",
                "application/json",
                body,
            )
            .await;
        assert_eq!(coded.status, 400, "{body}: {coded:?}");
        assert_ne!(
            coded.json()["message"],
            "Not authorized",
            "{body}: {coded:?}"
        );
        assert_eq!(coded.json()["code"], 6, "{body}: {coded:?}");
        assert_eq!(
            coded.json()["message"],
            "Model not valid",
            "{body}: {coded:?}"
        );
    }
    assert_eq!(demo.layers.inner.calls(), 0);
    assert!(demo.stored_nothing());
}

/// Finding 7: a body that stalls under an outer body timeout is `request_timeout` (408) through
/// the per-item authorization's own reader, as it is through the batch layer.
#[tokio::test]
async fn a_body_timeout_under_the_item_reader_is_a_request_timeout() {
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    let router = Router::new().route(
        "/v1/webhooks",
        post(move |body: Bytes| {
            seen.fetch_add(1, Ordering::SeqCst);
            async move { body }
        }),
    );
    let service = ServiceBuilder::new()
        .map_response(|response: http::Response<_>| response.map(Body::new))
        .layer(AuthLayer::new(app::key_store()))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            Duration::from_millis(200),
        ))
        .map_response(|response: http::Response<_>| response.map(Body::new))
        .layer(AuthorizeItemsLayer::default())
        .service(router);
    let addr = serve(service).await;
    let head = b"POST /v1/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer demo_admin\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{\"url\":";
    let answer = raw_exchange(addr, head).await;
    answer.assert_error(408, "request_timeout");
    assert_eq!(handled.load(Ordering::SeqCst), 0);
}

/// A key store that counts its lookups and, while `hold` is set, keeps each lookup waiting
/// until the test opens the gate. It answers what `revoked` said when the lookup *started*,
/// like a database read that raced a revocation.
#[derive(Clone)]
struct GatedStore {
    calls: Arc<AtomicUsize>,
    revoked: Arc<Mutex<bool>>,
    hold: Arc<Mutex<bool>>,
    gate: Arc<watch::Sender<bool>>,
}

impl Default for GatedStore {
    fn default() -> Self {
        GatedStore {
            calls: Arc::default(),
            revoked: Arc::default(),
            hold: Arc::default(),
            gate: Arc::new(watch::channel(false).0),
        }
    }
}

impl GatedStore {
    fn close(&self) {
        self.gate.send_replace(false);
        *self.hold.lock().unwrap() = true;
    }

    fn open(&self) {
        *self.hold.lock().unwrap() = false;
        self.gate.send_replace(true);
    }
}

impl tower_api_errors::auth::KeyStore for GatedStore {
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Lookup, StoreError>> + Send>>;

    fn lookup(&self, key: &ApiKey<'_>) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let known = *key.digest() == KeyDigest::of("demo_admin") && !*self.revoked.lock().unwrap();
        let hold = *self.hold.lock().unwrap();
        let mut gate = self.gate.subscribe();
        Box::pin(async move {
            if hold {
                let _ = gate.wait_for(|open| *open).await;
            }
            Ok(if known {
                Lookup::Found(Principal::new("acct_123").with_roles(["read", "write"]))
            } else {
                Lookup::NotFound
            })
        })
    }
}

async fn cached_server(store: &GatedStore) -> (SocketAddr, CachedKeyStore<GatedStore>) {
    let cache = CachedKeyStore::new(store.clone());
    let router = Router::new().route("/v1/webhooks", axum::routing::get(|| async { "ok" }));
    let service = ServiceBuilder::new()
        .map_response(|response: http::Response<_>| response.map(Body::new))
        .layer(AuthLayer::new(cache.clone()))
        .service(router);
    (serve(service).await, cache)
}

async fn get_with(addr: SocketAddr, key: &str) -> Answer {
    let request = Request::get(format!("http://{addr}/v1/webhooks"))
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(&client(), request).await
}

/// Finding 6: a lookup in flight when the key is invalidated does not put its pre-revocation
/// answer back into the cache.
#[tokio::test]
async fn an_invalidation_is_not_undone_by_a_lookup_in_flight() {
    let store = GatedStore::default();
    let (addr, cache) = cached_server(&store).await;
    store.close();
    let in_flight = tokio::spawn(get_with(addr, "demo_admin"));
    while store.calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The key is revoked in the store and the cache told, while the first lookup is out.
    *store.revoked.lock().unwrap() = true;
    cache.invalidate(&KeyDigest::of("demo_admin"));
    store.open();
    let first = in_flight.await.unwrap();
    assert_eq!(
        first.status, 200,
        "the request that started before the revocation"
    );
    let after = get_with(addr, "demo_admin").await;
    after.assert_error(401, "unauthorized");
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        2,
        "the store was asked again"
    );

    // The same for `invalidate_all`.
    *store.revoked.lock().unwrap() = false;
    cache.invalidate_all();
    assert_eq!(get_with(addr, "demo_admin").await.status, 200);
    store.close();
    cache.invalidate_all();
    let calls = store.calls.load(Ordering::SeqCst);
    let in_flight = tokio::spawn(get_with(addr, "demo_admin"));
    while store.calls.load(Ordering::SeqCst) == calls {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    *store.revoked.lock().unwrap() = true;
    cache.invalidate_all();
    store.open();
    assert_eq!(in_flight.await.unwrap().status, 200);
    get_with(addr, "demo_admin")
        .await
        .assert_error(401, "unauthorized");
}

/// Finding 6: concurrent misses for one key are one store lookup.
#[tokio::test]
async fn concurrent_misses_for_one_key_are_one_store_lookup() {
    let store = GatedStore::default();
    let (addr, _cache) = cached_server(&store).await;
    store.close();
    let requests: Vec<_> = (0..20)
        .map(|_| tokio::spawn(get_with(addr, "demo_admin")))
        .collect();
    // Every request has reached the cache once the store has been asked and the rest wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    store.open();
    for request in requests {
        assert_eq!(request.await.unwrap().status, 200);
    }
    assert_eq!(
        store.calls.load(Ordering::SeqCst),
        1,
        "one lookup for twenty misses"
    );
}

/// The per-item authorization believes a gRPC label only on a service declared with
/// `grpc_service`: there the protobuf body passes to the handler unchecked; on any other route
/// the same label changes nothing.
#[tokio::test]
async fn the_item_check_passes_grpc_only_on_declared_services() {
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    let router = Router::new().fallback(move |body: Bytes| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move { body }
    });
    let service = ServiceBuilder::new()
        .map_response(|response: http::Response<_>| response.map(Body::new))
        .layer(AuthLayer::new(app::key_store()))
        .map_response(|response: http::Response<_>| response.map(Body::new))
        .layer(
            AuthorizeItemsLayer::default().grpc_service(GrpcService::new("bulk.Webhooks").unwrap()),
        )
        .service(router);
    let addr = serve(service).await;
    let other_account = items(1, "acct_456");
    for spelling in GRPC_SPELLINGS {
        let post = |path: &str| {
            Request::post(format!("http://{addr}{path}"))
                .header(header::AUTHORIZATION, "Bearer demo_admin")
                .header(header::CONTENT_TYPE, spelling)
                .body(Full::new(Bytes::from(other_account.clone())))
                .unwrap()
        };
        let declared = send(&client(), post("/bulk.Webhooks/CreateWebhooks")).await;
        assert_eq!(declared.status, 200, "{spelling}: {declared:?}");
        let undeclared = send(&client(), post("/other.Service/CreateWebhooks")).await;
        assert_grpc_refusal(&undeclared, "7", "forbidden", spelling);
        let http = send(&client(), post("/v1/webhooks")).await;
        assert_grpc_refusal(&http, "7", "forbidden", spelling);
    }
    assert_eq!(handled.load(Ordering::SeqCst), GRPC_SPELLINGS.len());
}
