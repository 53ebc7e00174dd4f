//! Faults around the demo stack, on 127.0.0.1: a key store that fails, says it is down, hangs
//! or panics; clients that send slowly, stall, stop halfway or vanish; bodies that fail in the
//! middle; and panics in every position the stack has, under concurrency.
//!
//! What every test checks besides its own point: the client gets a contract response (or, when
//! the response had already begun, a clearly broken one), the handler never runs on a request
//! that was refused or cut short, and the server keeps serving.
#![cfg(feature = "axum")]
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
    convert::Infallible,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{body::Body, routing::get, Router};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use reliability_support::{
    client, closed_by_server, guarded, quiet_panics, raw, raw_exchange, read_answer, request, send,
    serve, stack, Stack,
};
use serde_json::json;
use tokio::{io::AsyncWriteExt, task::JoinSet};
use tokio_stream::{self as stream, StreamExt};
use tower_api_errors::auth::{ApiKey, CachedKeyStore, KeyStore, StoreError};

/// A good write of one item with a unique email.
fn one_item(email: &str) -> String {
    json!([{"url": "https://hooks.example/in", "email": email}]).to_string()
}

/// What the demo holds for its admin's account, among the first ids.
fn stored_emails(store: &store::Store) -> Vec<String> {
    let ids: Vec<String> = (0..200).map(|n| format!("web_{n}")).collect();
    store
        .get_webhooks("acct_123", &ids)
        .data()
        .iter()
        .map(|hook| hook.email.clone())
        .collect()
}

/// The demo's keys, looked up through `lookup` after `fault` had its say.
fn faulty_store<F, Fut>(
    fault: F,
) -> impl KeyStore<Future: Send + 'static> + Clone + Send + Sync + 'static
where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), StoreError>> + Send + 'static,
{
    let keys = app::key_store();
    move |key: &ApiKey<'_>| {
        let found = keys.lookup_now(key).expect("in memory");
        let fault = fault(key.expose_secret().to_owned());
        async move {
            fault.await?;
            found
        }
    }
}

#[derive(Debug)]
struct Down;

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection refused by the key database")
    }
}

impl std::error::Error for Down {}

#[tokio::test]
async fn a_failing_key_store_is_a_5xx_and_never_a_pass() {
    quiet_panics();
    let http = client();
    // (what the store does, status, code)
    type Fault = fn(
        String,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send>,
    >;
    let faults: [(&str, Fault, u16, &str); 5] = [
        (
            "fails",
            |_| Box::pin(async { Err(StoreError::failed(Down)) }),
            500,
            "server_error",
        ),
        (
            "is down",
            |_| Box::pin(async { Err(StoreError::unavailable(Down)) }),
            503,
            "service_unavailable",
        ),
        (
            "times out after 100 ms (its own deadline)",
            |_| {
                Box::pin(async {
                    tokio::time::timeout(Duration::from_millis(100), std::future::pending::<()>())
                        .await
                        .map_err(StoreError::unavailable)
                })
            },
            503,
            "service_unavailable",
        ),
        (
            "hangs (the stack's 300 ms timeout answers)",
            |_| Box::pin(std::future::pending()),
            408,
            "request_timeout",
        ),
        (
            "panics",
            |_| Box::pin(async { panic!("the key store panics on purpose") }),
            500,
            "server_error",
        ),
    ];
    for (what, fault, status, code) in faults {
        let data = Arc::new(store::Store::default());
        let layers = Stack {
            timeout: Duration::from_millis(300),
            ..Stack::default()
        };
        let addr = serve(stack(
            &layers,
            faulty_store(fault),
            app::routes(data.clone()),
        ))
        .await;
        for key in ["demo_admin", "demo_reader", "not_a_key"] {
            let answer = send(
                &http,
                request(
                    addr,
                    Method::POST,
                    "/v1/webhooks",
                    Some(key),
                    one_item("a@b.example"),
                ),
            )
            .await;
            answer.assert_error(status, code);
            assert_ne!(
                answer.status, 401,
                "{what}: a store fault is not an unknown key"
            );
        }
        assert_eq!(layers.inner.calls(), 0, "{what}: nothing passed");
        assert!(stored_emails(&data).is_empty(), "{what}");
        layers.outer.settled().await;
    }
}

#[tokio::test]
async fn a_cached_store_does_not_remember_errors() {
    let failures = Arc::new(AtomicUsize::new(2));
    let keys = app::key_store();
    let flaky = {
        let failures = failures.clone();
        move |key: &ApiKey<'_>| {
            let answer = match failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            {
                Ok(_) => Err(StoreError::unavailable(Down)),
                Err(_) => keys.lookup_now(key).expect("in memory"),
            };
            std::future::ready(answer)
        }
    };
    let layers = Stack::default();
    let data = Arc::new(store::Store::default());
    let addr = serve(stack(
        &layers,
        CachedKeyStore::new(flaky),
        app::routes(data.clone()),
    ))
    .await;
    let http = client();
    let post = |email: &str| {
        request(
            addr,
            Method::POST,
            "/v1/webhooks",
            Some("demo_admin"),
            one_item(email),
        )
    };
    send(&http, post("1@b.example"))
        .await
        .assert_error(503, "service_unavailable");
    send(&http, post("2@b.example"))
        .await
        .assert_error(503, "service_unavailable");
    // The store is back: the next request asks it again and passes.
    let answer = send(&http, post("3@b.example")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(stored_emails(&data), ["3@b.example"]);
    assert_eq!(layers.inner.calls(), 1);
}

fn post_head(length: usize, extra: &str) -> String {
    format!(
        "POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer demo_admin\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn a_slow_body_is_counted_as_it_comes_and_applied_once() {
    let layers = Stack::default();
    let data = Arc::new(store::Store::default());
    let addr = serve(stack(&layers, app::key_store(), app::routes(data.clone()))).await;
    let body = json!([
        {"url": "https://hooks.example/1", "email": "slow1@b.example"},
        {"url": "https://hooks.example/2", "email": "slow2@b.example"},
    ])
    .to_string();
    let mut stream = raw(
        addr,
        post_head(body.len(), "Connection: close\r\n").as_bytes(),
    )
    .await;
    for piece in body.as_bytes().chunks(7) {
        stream.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json().as_array().unwrap().len(), 2);
    assert_eq!(stored_emails(&data), ["slow1@b.example", "slow2@b.example"]);
    assert_eq!(layers.inner.calls(), 1);
}

#[tokio::test]
async fn a_stalled_body_gets_request_timeout_and_never_reaches_the_handler() {
    let layers = Stack {
        timeout: Duration::from_millis(300),
        ..Stack::default()
    };
    let data = Arc::new(store::Store::default());
    let addr = serve(stack(&layers, app::key_store(), app::routes(data.clone()))).await;
    let body = one_item("stalled@b.example");
    // Half the body, then nothing: the connection stays open on the client's side.
    let mut stream = raw(addr, post_head(body.len(), "").as_bytes()).await;
    stream
        .write_all(&body.as_bytes()[..body.len() / 2])
        .await
        .unwrap();
    let answer = read_answer(&mut stream).await;
    answer.assert_error(408, "request_timeout");
    // The server lets the connection go and forgets the request.
    assert!(
        closed_by_server(&mut stream).await,
        "the connection is released"
    );
    layers.outer.settled().await;
    assert_eq!(layers.inner.calls(), 0, "no handler ran on a partial body");
    assert!(stored_emails(&data).is_empty());

    // The server keeps serving.
    let answer = send(
        &client(),
        request(
            addr,
            Method::POST,
            "/v1/webhooks",
            Some("demo_admin"),
            one_item("next@b.example"),
        ),
    )
    .await;
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn a_request_body_timeout_is_a_request_timeout_too() {
    // tower-http's per-frame body timeout, inside the normalize layer, as the batch limit
    // layer's docs advise for slow clients.
    let data = Arc::new(store::Store::default());
    let layers = Stack::default();
    let service = tower::ServiceBuilder::new()
        .layer(tower_api_errors::normalize::NormalizeLayer::new().dialect(app::dialect()))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            Duration::from_millis(200),
        ))
        .map_request(|request: Request<_>| request.map(Body::new))
        .service(stack(&layers, app::key_store(), app::routes(data.clone())));
    let service = tower::ServiceBuilder::new()
        .map_response(|response: Response<_>| response.map(Body::new))
        .service(service);
    let addr = serve(service).await;
    let body = one_item("stalled@b.example");
    let mut stream = raw(addr, post_head(body.len(), "").as_bytes()).await;
    stream
        .write_all(&body.as_bytes()[..body.len() / 2])
        .await
        .unwrap();
    read_answer(&mut stream)
        .await
        .assert_error(408, "request_timeout");
    assert_eq!(layers.inner.calls(), 0);
    layers.outer.settled().await;
}

#[tokio::test]
async fn a_body_cut_short_is_refused_and_the_connection_released() {
    let layers = Stack::default();
    let data = Arc::new(store::Store::default());
    let addr = serve(stack(&layers, app::key_store(), app::routes(data.clone()))).await;
    let body = one_item("cut@b.example");

    // The client stops halfway and closes its sending side: the body can never complete.
    let mut stream = raw(addr, post_head(body.len(), "").as_bytes()).await;
    stream
        .write_all(&body.as_bytes()[..body.len() / 2])
        .await
        .unwrap();
    stream.shutdown().await.unwrap();
    read_answer(&mut stream)
        .await
        .assert_error(400, "bad_request");
    assert!(closed_by_server(&mut stream).await);

    // The client goes away entirely while the batch layer buffers: the request is dropped.
    for _ in 0..20 {
        let mut stream = raw(addr, post_head(body.len(), "").as_bytes()).await;
        stream
            .write_all(&body.as_bytes()[..body.len() / 2])
            .await
            .unwrap();
        guarded("the request reaches the stack", async {
            while layers.outer.live() == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        drop(stream);
        layers.outer.settled().await;
    }
    assert_eq!(layers.inner.calls(), 0, "no handler ran on a partial body");
    assert!(stored_emails(&data).is_empty());

    let answer = send(
        &client(),
        request(
            addr,
            Method::POST,
            "/v1/webhooks",
            Some("demo_admin"),
            one_item("next@b.example"),
        ),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(stored_emails(&data), ["next@b.example"]);
}

#[tokio::test]
async fn a_request_body_failing_mid_stream_is_refused() {
    let layers = Stack::default();
    let data = Arc::new(store::Store::default());
    let addr = serve(stack(&layers, app::key_store(), app::routes(data.clone()))).await;
    // Chunked: one good chunk, then a chunk size that is not hexadecimal.
    let head = "POST /v1/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer demo_admin\r\n\
                Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    let request = format!("{head}5\r\n[{{\"ur\r\nzz\r\nl\": 1}}]\r\n0\r\n\r\n");
    raw_exchange(addr, request.as_bytes())
        .await
        .assert_error(400, "bad_request");
    layers.outer.settled().await;
    assert_eq!(layers.inner.calls(), 0);
    assert!(stored_emails(&data).is_empty());
}

/// A response body that sends `first` and then fails.
fn failing_body(first: &'static str) -> Body {
    Body::from_stream(stream::iter([
        Ok::<_, std::io::Error>(Bytes::from_static(first.as_bytes())),
        Err(std::io::Error::other("the database cursor broke")),
    ]))
}

#[tokio::test]
async fn a_response_body_failing_mid_stream() {
    let router = Router::new()
        .route(
            "/v1/ok-then-fail",
            get(|| async { Response::new(failing_body("[{\"id\":")) }),
        )
        .route(
            "/v1/500-then-fail",
            get(|| async {
                let mut response = Response::new(failing_body("internal: "));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                response
            }),
        )
        .route(
            "/v1/400-then-fail",
            get(|| async {
                let mut response = Response::new(failing_body("Failed to deserialize"));
                *response.status_mut() = StatusCode::BAD_REQUEST;
                response
            }),
        );
    let layers = Stack::default();
    let addr = serve(stack(&layers, app::key_store(), router)).await;
    let http = client();

    // An error response whose body fails is replaced by the contract's error for its status.
    for (path, status, code) in [
        ("/v1/500-then-fail", 500, "server_error"),
        ("/v1/400-then-fail", 400, "bad_request"),
    ] {
        send(
            &http,
            request(addr, Method::GET, path, Some("demo_reader"), ""),
        )
        .await
        .assert_error(status, code);
    }

    // A success streams untouched: once its head is written the failure can only break the
    // response, and the client sees it broken (no response at all, or a body that fails),
    // never a complete-looking one.
    let broken = broken(
        &http,
        request(
            addr,
            Method::GET,
            "/v1/ok-then-fail",
            Some("demo_reader"),
            "",
        ),
    )
    .await;
    assert!(broken, "a failed body must not look complete");
    layers.outer.settled().await;
}

/// Whether the response to `request` breaks (the request fails, or its body does) rather
/// than completing with a 200.
async fn broken(
    http: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<Bytes>,
    >,
    request: Request<http_body_util::Full<Bytes>>,
) -> bool {
    let Ok(response) = guarded("a broken response", http.request(request)).await else {
        return true;
    };
    assert_eq!(
        response.status(),
        200,
        "the head went out before the failure"
    );
    guarded(
        "its body",
        http_body_util::BodyExt::collect(response.into_body()),
    )
    .await
    .is_err()
}

/// Where a request asks the stack to panic, by its `x-panic` header or its key.
const POSITIONS: [&str; 9] = [
    "key_store_call",
    "key_store_future",
    "route_policy",
    "item_policy",
    "service_call",
    "handler",
    "response_body",
    "none",
    "none",
];

fn panic_here(position: &str) -> ! {
    panic!("{position} panics on purpose")
}

#[test]
fn panics_in_every_position_under_concurrency() {
    quiet_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let keys = app::key_store();
        let key_store = move |key: &ApiKey<'_>| {
            // The key names the position: `demo_admin.key_store_call`.
            let (real, position) = key.expose_secret().split_once('.').unwrap_or(("", ""));
            if position == "key_store_call" {
                panic_here(position);
            }
            let found = keys.lookup_now(&ApiKey::new(real)).expect("in memory");
            let later = position == "key_store_future";
            async move {
                if later {
                    panic_here("key_store_future");
                }
                found
            }
        };
        let roles = tower_api_errors::auth::RoleTable::read_write();
        let route_policy =
            move |principal: &tower_api_errors::auth::Principal,
                  route: &tower_api_errors::auth::Route<'_>| {
                if route
                    .headers()
                    .get("x-panic")
                    .is_some_and(|v| v == "route_policy")
                {
                    panic_here("route_policy");
                }
                tower_api_errors::auth::RoutePolicy::allows(&roles, principal, route)
            };
        let item_policy = |_: &tower_api_errors::auth::Principal,
                           item: &tower_api_errors::auth::Item<'_>| {
            if item.raw().windows(11).any(|w| w == b"item_policy") {
                panic_here("item_policy");
            }
            true
        };
        let router = Router::new()
            .route(
                "/v1/work",
                get(|request: Request<Body>| async move {
                    match request
                        .headers()
                        .get("x-panic")
                        .map(|v| v.to_str().unwrap())
                    {
                        Some("handler") => panic_here("handler"),
                        Some("response_body") => {
                            Response::new(Body::from_stream(stream::iter([()]).map(
                                |()| -> Result<Bytes, Infallible> { panic_here("response_body") },
                            )))
                        }
                        _ => Response::new(Body::from("[]")),
                    }
                })
                .post(|| async { "[]" }),
            )
            .route_service(
                "/v1/service",
                tower::service_fn(
                    |_: Request<Body>| -> std::future::Ready<Result<Response<Body>, Infallible>> {
                        panic_here("service_call")
                    },
                ),
            );
        let dialect = app::dialect();
        let probe = reliability_support::Probe::default();
        let service = tower::ServiceBuilder::new()
            .layer(probe.clone())
            .map_response(|response: Response<_>| response.map(Body::new))
            .layer(tower_api_errors::catch_panic::CatchPanicLayer::new().dialect(dialect.clone()))
            .layer(tower_api_errors::normalize::NormalizeLayer::new().dialect(dialect.clone()))
            .layer(
                tower_api_errors::auth::AuthLayer::new(key_store)
                    .route_policy(route_policy)
                    .dialect(dialect.clone()),
            )
            .layer(tower_api_errors::batch_limit::BatchLimitLayer::new().dialect(dialect.clone()))
            .layer(tower_api_errors::auth::AuthorizeItemsLayer::new(item_policy).dialect(dialect))
            .service(router);
        let addr = serve(service).await;
        let http = client();

        let mut tasks = JoinSet::new();
        let panicked = Arc::new(AtomicUsize::new(0));
        for n in 0..32 {
            let http = http.clone();
            let panicked = panicked.clone();
            tasks.spawn(async move {
                for i in 0..9 {
                    let position = POSITIONS[(n + i) % POSITIONS.len()];
                    let (method, path, body) = match position {
                        "item_policy" => (Method::POST, "/v1/work", r#"[{"a":"item_policy"}]"#),
                        "service_call" => (Method::GET, "/v1/service", ""),
                        _ => (Method::GET, "/v1/work", ""),
                    };
                    let key = format!("demo_admin.{position}");
                    let mut request = request(addr, method, path, Some(&key), body);
                    request
                        .headers_mut()
                        .insert("x-panic", position.parse().unwrap());
                    if position == "response_body" {
                        // The head may have gone out: the response breaks instead.
                        assert!(broken(&http, request).await, "{position}");
                        panicked.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let response = guarded(position, http.request(request)).await.unwrap();
                    let status = response.status();
                    let body = guarded(
                        position,
                        http_body_util::BodyExt::collect(response.into_body()),
                    )
                    .await;
                    match position {
                        "none" => {
                            assert_eq!(status, 200);
                            assert_eq!(body.unwrap().to_bytes(), "[]");
                        }
                        _ => {
                            assert_eq!(status, 500, "{position}");
                            assert_eq!(
                                body.unwrap().to_bytes(),
                                r#"{"error":"server_error"}"#,
                                "{position}"
                            );
                            panicked.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        guarded("32 clients", async {
            while let Some(result) = tasks.join_next().await {
                result.expect("a client");
            }
        })
        .await;
        assert_eq!(panicked.load(Ordering::Relaxed), 32 * 9 * 7 / 9);
        probe.settled().await;

        // After 224 panics, the server serves as before.
        for _ in 0..20 {
            let answer = send(
                &http,
                request(addr, Method::GET, "/v1/work", Some("demo_admin.none"), ""),
            )
            .await;
            assert_eq!(answer.status, 200);
        }
    });
}
