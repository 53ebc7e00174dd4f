//! The auth layers over real HTTP: an axum 0.8 server (in-memory store) and a hyper 1 server (an
//! async store that can fail), both on 127.0.0.1, both dialects, talked to with hyper-util's
//! client and, for headers no client would send, a raw TCP socket.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
};

use axum::{
    extract::Extension,
    routing::{get, post},
    Json, Router,
};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo},
};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::{ServiceBuilder, ServiceExt};
use tower_api_errors::{
    auth::{
        ApiKey, AuthLayer, AuthorizeItemsLayer, InMemoryKeyStore, KeyDigest, KeyExtractor, KeySet,
        KeyStore, Lookup, Principal, RoleTable, StoreError,
    },
    batch_limit::BulkItems,
    body::RequestBody,
    bulk::{BulkRead, GetError},
    dialect::{Bulk, Coded, DialectByPath},
};

fn keys() -> KeySet {
    KeySet::new()
        .with_key(
            "demo_admin",
            Principal::new("acct_123")
                .with_key_id("key_admin")
                .with_roles(["read", "write"]),
        )
        .and_then(|keys| {
            keys.with_key(
                "demo_reader",
                Principal::new("acct_123")
                    .with_key_id("key_reader")
                    .with_roles(["read"]),
            )
        })
        .and_then(|keys| {
            keys.with_key(
                "demo_disabled",
                Principal::new("acct_123")
                    .with_key_id("key_disabled")
                    .with_roles(["read", "write"])
                    .disabled(),
            )
        })
        .and_then(|keys| {
            keys.with_key(
                "demo_other",
                Principal::new("acct_456")
                    .with_key_id("key_other")
                    .with_roles(["read", "write"]),
            )
        })
        .unwrap()
}

/// `/v1/customer/…` in the coded dialect, everything else in the bulk dialect.
fn dialect() -> DialectByPath {
    DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new())
}

fn auth_layer<K: KeyStore>(store: K) -> AuthLayer<K, RoleTable, DialectByPath> {
    AuthLayer::new(store)
        .keys(KeyExtractor::bearer_or_header(HeaderName::from_static(
            "x-api-key",
        )))
        .route_policy(RoleTable::read_write())
        .dialect(dialect())
}

/// How many times a handler ran.
#[derive(Clone, Default)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// An axum app behind the auth layers, with the in-memory store.
fn axum_app(calls: Calls) -> Router {
    let write = {
        let calls = calls.clone();
        move |Extension(principal): Extension<Principal>, body: Bytes| {
            let calls = calls.clone();
            async move {
                calls.hit();
                ([("x-account", principal.account_id().to_owned())], body)
            }
        }
    };
    Router::new()
        .route(
            "/v1/webhooks",
            get(|Extension(principal): Extension<Principal>| async move {
                // The handler knows the account without parsing anything.
                let mut read = BulkRead::<Value>::new();
                read.push_error(GetError::object_not_found(
                    principal.account_id(),
                    "web_404",
                ));
                Json(read)
            })
            .post(write.clone())
            .put(write.clone())
            .delete(write.clone()),
        )
        .route(
            "/v1/customer/courses",
            get(|Extension(principal): Extension<Principal>| async move {
                Json(json!({"page": 1, "items": [], "account": principal.account_id()}))
            })
            .post(write),
        )
        .layer(
            ServiceBuilder::new()
                .layer(auth_layer(InMemoryKeyStore::new(keys())))
                .layer(AuthorizeItemsLayer::default().dialect(dialect())),
        )
}

async fn serve_axum(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A store backed by a remote service: answers after a round trip, and fails for two keys.
fn remote_store() -> impl KeyStore<Future = impl Send> + Clone + Send + Sync + 'static {
    let table = InMemoryKeyStore::new(keys());
    move |key: &ApiKey<'_>| {
        let (table, digest) = (table.clone(), *key.digest());
        async move {
            tokio::task::yield_now().await;
            if digest == KeyDigest::of("store_down") {
                return Err(StoreError::unavailable("connection refused"));
            }
            if digest == KeyDigest::of("store_broken") {
                return Err(StoreError::failed("unexpected reply"));
            }
            Ok(table.get(&digest).map_or(Lookup::NotFound, Lookup::Found))
        }
    }
}

/// A bare hyper server behind the auth layers, with the remote store.
async fn serve_hyper(calls: Calls) -> SocketAddr {
    let service = ServiceBuilder::new()
        .layer(auth_layer(remote_store()))
        .layer(AuthorizeItemsLayer::default().dialect(dialect()))
        .service_fn(
            move |request: Request<RequestBody<hyper::body::Incoming>>| {
                let calls = calls.clone();
                async move {
                    let principal = request.extensions().get::<Principal>().cloned().unwrap();
                    let response = if request.method() == Method::GET {
                        let mut read = BulkRead::<Value>::new();
                        read.push_error(GetError::object_not_found(
                            principal.account_id(),
                            "web_404",
                        ));
                        Response::new(Full::from(serde_json::to_vec(&read).unwrap()))
                    } else {
                        calls.hit();
                        let body = request.into_body().collect().await.unwrap().to_bytes();
                        let mut response = Response::new(Full::new(body));
                        response
                            .headers_mut()
                            .insert("x-account", principal.account_id().parse().unwrap());
                        response
                    };
                    Ok::<_, Infallible>(response)
                }
            },
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request| service.clone().oneshot(request));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("{error}: {:?}", self.body))
    }

    fn www_authenticate(&self) -> Option<&str> {
        self.headers
            .get("www-authenticate")
            .map(|value| value.to_str().unwrap())
    }
}

struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
}

impl Http {
    fn new(addr: SocketAddr) -> Self {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            addr,
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::from(body.to_owned())).unwrap();
        let response = self.client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }
}

type Headers<'a> = &'a [(&'a str, &'a str)];

const BEARER_ERROR: &str = r#"Bearer error="invalid_token""#;

/// The contract both servers must honour.
async fn check_contract(http: &Http, calls: &Calls) {
    use Method as M;
    let unauthorized = json!({"error": "unauthorized"});
    let not_authenticated = json!({"code": 4, "message": "Not authenticated", "errors": []});

    // No key: 401 with a bare challenge, in each dialect.
    let answer = http.send(M::GET, "/v1/webhooks", &[], "").await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json(), unauthorized);
    assert_eq!(answer.www_authenticate(), Some("Bearer"));
    assert_eq!(answer.headers["content-type"], "application/json");
    let answer = http.send(M::GET, "/v1/customer/courses", &[], "").await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json(), not_authenticated);
    assert_eq!(answer.www_authenticate(), Some("Bearer"));

    // Unknown and disabled keys: 401 invalid_token.
    for key in ["Bearer nope", "Bearer demo_disabled", "bearer demo_admin_"] {
        let answer = http
            .send(M::GET, "/v1/webhooks", &[("authorization", key)], "")
            .await;
        assert_eq!(answer.status, 401, "{key}");
        assert_eq!(answer.json(), unauthorized);
        assert_eq!(answer.www_authenticate(), Some(BEARER_ERROR), "{key}");
    }
    let answer = http
        .send(
            M::GET,
            "/v1/customer/courses",
            &[("x-api-key", "demo_disabled")],
            "",
        )
        .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json(), not_authenticated);
    assert_eq!(answer.www_authenticate(), Some(BEARER_ERROR));

    // Malformed headers a client can send: another scheme, an empty key, a key with a space,
    // an absurdly long value, two different keys.
    let long = format!("Bearer {}", "k".repeat(5000));
    let malformed: [(Headers<'_>, Option<&str>); 6] = [
        (&[("authorization", "Basic ZGVtbzpkZW1v")], Some("Bearer")),
        (&[("authorization", "Bearer")], Some(BEARER_ERROR)),
        (
            &[("authorization", "Bearer demo admin")],
            Some(BEARER_ERROR),
        ),
        (&[("authorization", &long)], Some(BEARER_ERROR)),
        (&[("x-api-key", "")], Some(BEARER_ERROR)),
        (
            &[
                ("authorization", "Bearer demo_admin"),
                ("x-api-key", "demo_other"),
            ],
            Some(BEARER_ERROR),
        ),
    ];
    for (headers, challenge) in malformed {
        let answer = http.send(M::GET, "/v1/webhooks", headers, "").await;
        assert_eq!(answer.status, 401, "{headers:?}");
        assert_eq!(answer.json(), unauthorized);
        assert_eq!(answer.www_authenticate(), challenge, "{headers:?}");
    }

    // A good key, in either header, any scheme case: the handler runs and sees the principal.
    for headers in [
        &[("authorization", "Bearer demo_admin")][..],
        &[("authorization", "BEARER demo_admin")],
        &[("x-api-key", "demo_reader")],
        &[
            ("authorization", "Bearer demo_admin"),
            ("x-api-key", "demo_admin"),
        ],
    ] {
        let answer = http
            .send(M::GET, "/v1/webhooks?ids=web_404", headers, "")
            .await;
        assert_eq!(answer.status, 200, "{headers:?}");
        assert_eq!(
            answer.json(),
            json!({"data": [], "error": [
                {"error": "object_not_found", "account_id": "acct_123", "id": "web_404"}
            ]})
        );
    }
    let answer = http
        .send(M::GET, "/v1/webhooks", &[("x-api-key", "demo_other")], "")
        .await;
    assert_eq!(answer.json()["error"][0]["account_id"], "acct_456");

    // A read-only key writing: 403, the handler never runs.
    let before = calls.count();
    for method in [M::POST, M::PUT, M::DELETE] {
        let answer = http
            .send(
                method.clone(),
                "/v1/webhooks",
                &[("authorization", "Bearer demo_reader")],
                "[]",
            )
            .await;
        assert_eq!(answer.status, 403, "{method}");
        assert_eq!(answer.json(), json!({"error": "forbidden"}));
        assert_eq!(answer.www_authenticate(), None);
    }
    let answer = http
        .send(
            M::POST,
            "/v1/customer/courses",
            &[("x-api-key", "demo_reader")],
            r#"{"title": "Rust"}"#,
        )
        .await;
    assert_eq!(answer.status, 403);
    assert_eq!(
        answer.json(),
        json!({"code": 3, "message": "Not authorized", "errors": []})
    );
    assert_eq!(calls.count(), before);

    // A bulk write with one foreign item: 403 for the whole request, the handler never runs.
    let foreign = r#"[{"url": "https://a.example", "account_id": "acct_123"},
                      {"url": "https://b.example", "account_id": "acct_456"},
                      {"url": "https://c.example"}]"#;
    let answer = http
        .send(
            M::POST,
            "/v1/webhooks",
            &[("authorization", "Bearer demo_admin")],
            foreign,
        )
        .await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.json(), json!({"error": "forbidden"}));
    let answer = http
        .send(
            M::DELETE,
            "/v1/webhooks",
            &[("x-api-key", "demo_other")],
            r#"[{"id": "web_1", "account_id": "acct_123"}]"#,
        )
        .await;
    assert_eq!(answer.status, 403);
    let answer = http
        .send(
            M::POST,
            "/v1/customer/courses",
            &[("x-api-key", "demo_admin")],
            r#"{"title": "Rust", "account_id": "acct_456"}"#,
        )
        .await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.json()["code"], 3);
    assert_eq!(answer.json()["errors"], json!(["item 0 is not allowed"]));
    assert_eq!(calls.count(), before);

    // The key's own items: the handler runs once and gets the body byte for byte.
    let own = "[ {\"url\": \"https://a.example\", \"account_id\": \"acct\\u005f123\"},\n\t{\"email\": \"caf\u{e9}@example.com\"} ]";
    let answer = http
        .send(
            M::POST,
            "/v1/webhooks",
            &[("authorization", "Bearer demo_admin")],
            own,
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, own);
    assert_eq!(answer.headers["x-account"], "acct_123");
    assert_eq!(calls.count(), before + 1);

    // Malformed JSON cannot be authorized item by item.
    let answer = http
        .send(
            M::PUT,
            "/v1/webhooks",
            &[("authorization", "Bearer demo_admin")],
            "[{]",
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json(), json!({"error": "invalid_json"}));
    assert_eq!(calls.count(), before + 1);

    // HEAD: the headers of the answer, no body.
    let answer = http.send(M::HEAD, "/v1/webhooks", &[], "").await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.www_authenticate(), Some("Bearer"));
    assert!(answer.body.is_empty());
}

/// Sends raw bytes (headers no client library would send) and reads the whole answer.
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, Vec<u8>, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let split = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8(answer[..split].to_vec()).unwrap();
    let status = head[9..12].parse().unwrap();
    (
        status,
        answer[split + 4..].to_vec(),
        head.to_ascii_lowercase(),
    )
}

async fn check_raw_malformed(addr: SocketAddr) {
    let cases: [&[u8]; 5] = [
        // Not UTF-8 in the key.
        b"GET /v1/webhooks HTTP/1.1\r\nhost: x\r\nauthorization: Bearer demo\xff\xfeadmin\r\nconnection: close\r\n\r\n",
        b"GET /v1/webhooks HTTP/1.1\r\nhost: x\r\nx-api-key: \xc3\xa9\r\nconnection: close\r\n\r\n",
        // Two Authorization headers, even with the same good key.
        b"GET /v1/webhooks HTTP/1.1\r\nhost: x\r\nauthorization: Bearer demo_admin\r\nauthorization: Bearer demo_admin\r\nconnection: close\r\n\r\n",
        b"GET /v1/webhooks HTTP/1.1\r\nhost: x\r\nauthorization: Bearer demo_admin\r\nauthorization: Bearer demo_other\r\nconnection: close\r\n\r\n",
        // Two X-Api-Key headers.
        b"GET /v1/webhooks HTTP/1.1\r\nhost: x\r\nx-api-key: demo_admin\r\nx-api-key: demo_admin\r\nconnection: close\r\n\r\n",
    ];
    for request in cases {
        let (status, body, head) = raw(addr, request).await;
        assert_eq!(status, 401, "{}", String::from_utf8_lossy(request));
        assert_eq!(body, br#"{"error":"unauthorized"}"#);
        assert!(
            head.contains("\r\nwww-authenticate: bearer error=\"invalid_token\""),
            "{head}"
        );
    }
    // The same raw path with one good header passes, so the cases above fail for their header.
    let (status, _, _) = raw(
        addr,
        b"GET /v1/webhooks HTTP/1.1\r\nhost: x\r\nauthorization: Bearer demo_admin\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
}

/// The tests of this file run one at a time: one of them counts `tracing` events, and a test
/// on another thread that registers a call site while that test installs its subscriber makes
/// `tracing` cache, for good, that nobody listens there.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn axum_server_answers_the_contract() {
    let _serial = SERIAL.lock().await;
    let calls = Calls::default();
    let addr = serve_axum(axum_app(calls.clone())).await;
    check_contract(&Http::new(addr), &calls).await;
    check_raw_malformed(addr).await;
}

#[tokio::test]
async fn hyper_server_answers_the_contract() {
    let _serial = SERIAL.lock().await;
    let calls = Calls::default();
    let addr = serve_hyper(calls.clone()).await;
    check_contract(&Http::new(addr), &calls).await;
    check_raw_malformed(addr).await;
}

#[tokio::test]
async fn failing_store_is_a_server_error_never_401_never_a_pass() {
    let _serial = SERIAL.lock().await;
    let calls = Calls::default();
    let http = Http::new(serve_hyper(calls.clone()).await);
    let cases = [
        (
            "store_broken",
            "/v1/webhooks",
            500,
            json!({"error": "server_error"}),
        ),
        (
            "store_down",
            "/v1/webhooks",
            503,
            json!({"error": "service_unavailable"}),
        ),
        (
            "store_broken",
            "/v1/customer/courses",
            500,
            json!({"code": 1, "message": "Server error", "errors": []}),
        ),
        (
            "store_down",
            "/v1/customer/courses",
            503,
            json!({"code": 2, "message": "Server not available", "errors": []}),
        ),
    ];
    for (key, path, status, body) in cases {
        for method in [Method::GET, Method::POST] {
            let answer = http
                .send(
                    method,
                    path,
                    &[("authorization", &format!("Bearer {key}"))],
                    "[]",
                )
                .await;
            assert_eq!(answer.status, status, "{key} {path}");
            assert_eq!(answer.json(), body);
            assert_eq!(answer.www_authenticate(), None);
        }
    }
    assert_eq!(calls.count(), 0);
}

#[tokio::test]
async fn keys_rotate_without_a_restart() {
    let _serial = SERIAL.lock().await;
    let store = InMemoryKeyStore::new(keys());
    let app = Router::new()
        .route(
            "/v1/webhooks",
            get(|Extension(principal): Extension<Principal>| async move {
                principal.key_id().to_owned()
            }),
        )
        .layer(AuthLayer::new(store.clone()));
    let http = Http::new(serve_axum(app).await);
    let bearer = |key: &str| format!("Bearer {key}");
    let answer = http
        .send(
            Method::GET,
            "/v1/webhooks",
            &[("authorization", &bearer("demo_admin"))],
            "",
        )
        .await;
    assert_eq!(answer.body, "key_admin");

    store.replace(
        KeySet::new()
            .with_key(
                "demo_admin_v2",
                Principal::new("acct_123").with_key_id("key_admin_v2"),
            )
            .unwrap(),
    );
    let answer = http
        .send(
            Method::GET,
            "/v1/webhooks",
            &[("authorization", &bearer("demo_admin"))],
            "",
        )
        .await;
    assert_eq!(answer.status, 401);
    let answer = http
        .send(
            Method::GET,
            "/v1/webhooks",
            &[("authorization", &bearer("demo_admin_v2"))],
            "",
        )
        .await;
    assert_eq!(answer.body, "key_admin_v2");
}

/// Counts the times the item layer had to read and parse a body itself.
struct CountBodyParses(Arc<AtomicUsize>);

impl tracing::Subscriber for CountBodyParses {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let metadata = event.metadata();
        if metadata.target().starts_with("tower_api_errors::auth")
            && metadata.fields().field("items_found").is_some()
        {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// Stands in for the batch limit layer: leaves `BulkItems` for the item layer. The items are the
/// ones named in `x-test-items`, so a test can tell them from the body that is actually sent.
fn fake_batch_layer<B>(mut request: Request<B>) -> Request<B> {
    if let Some(items) = request.headers().get("x-test-items") {
        let body = Bytes::copy_from_slice(items.as_bytes());
        let values: Vec<Box<serde_json::value::RawValue>> = serde_json::from_slice(&body).unwrap();
        let mut spans = Vec::new();
        let mut from = 0;
        for value in &values {
            let start = from
                + body[from..]
                    .windows(value.get().len())
                    .position(|window| window == value.get().as_bytes())
                    .unwrap();
            spans.push(start..start + value.get().len());
            from = start + value.get().len();
        }
        request.extensions_mut().insert(BulkItems::new(body, spans));
    }
    request
}

// One thread, so the scoped subscriber sees the server's events too.
#[tokio::test(flavor = "current_thread")]
async fn item_layer_reuses_what_the_batch_layer_found() {
    let _serial = SERIAL.lock().await;
    let parses = Arc::new(AtomicUsize::new(0));
    let _subscriber = tracing::subscriber::set_default(CountBodyParses(parses.clone()));
    // Call sites hit by the tests that ran before, with no subscriber, are asked again.
    tracing::callsite::rebuild_interest_cache();
    let calls = Calls::default();
    let echo = {
        let calls = calls.clone();
        move |body: Bytes| {
            let calls = calls.clone();
            async move {
                calls.hit();
                body
            }
        }
    };
    let app = Router::new().route("/v1/webhooks", post(echo)).layer(
        ServiceBuilder::new()
            .layer(auth_layer(InMemoryKeyStore::new(keys())))
            .map_request(fake_batch_layer)
            .layer(AuthorizeItemsLayer::default()),
    );
    let http = Http::new(serve_axum(app).await);
    let admin = ("authorization", "Bearer demo_admin");

    // Without BulkItems the layer parses the body itself (the fallback)…
    let answer = http
        .send(
            Method::POST,
            "/v1/webhooks",
            &[admin],
            r#"[{"account_id": "acct_123"}]"#,
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(parses.load(Ordering::SeqCst), 1);

    // …with them, it decides on them alone and does not parse the body: a foreign item in
    // BulkItems is refused although the body is clean…
    let answer = http
        .send(
            Method::POST,
            "/v1/webhooks",
            &[
                admin,
                ("x-test-items", r#"[{"a": 1}, {"account_id": "acct_456"}]"#),
            ],
            r#"[{"a": 1}, {"b": 2}]"#,
        )
        .await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.json(), json!({"error": "forbidden"}));

    // …and clean BulkItems pass, the body (even one that is not JSON) reaching the handler
    // untouched.
    let sent = r#"[{"account_id": "acct_456"}] and then some"#;
    let answer = http
        .send(
            Method::POST,
            "/v1/webhooks",
            &[admin, ("x-test-items", r#"[{"account_id": "acct_123"}]"#)],
            sent,
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, sent);
    assert_eq!(
        parses.load(Ordering::SeqCst),
        1,
        "the body was not parsed again"
    );
    assert_eq!(calls.count(), 2);
}
