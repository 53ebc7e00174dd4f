//! The one-layer contract over real sockets: axum served with `axum::serve(listener, router)`,
//! the same configuration value cloned onto a tonic server, and the one body reader (the
//! per-item authorization and the batch limit now agree on what a body means).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    routing::{get, post},
    Router,
};
use bytes::Bytes;
use http::{HeaderName, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::ServiceBuilder;
use tower_api_errors::{
    auth::{
        AuthLayer, AuthorizeItemsLayer, InMemoryKeyStore, ItemsCheck, KeyExtractor, KeySet,
        Principal, RoleTable, SameAccount,
    },
    batch_limit::{BatchLimitLayer, DefaultCounter, GrpcService},
    dialect::{Bulk, Coded, DialectByPath},
    Contract,
};

fn keys() -> InMemoryKeyStore {
    let keys = KeySet::new()
        .with_key(
            "admin_key",
            Principal::new("acct_123").with_roles(["read", "write"]),
        )
        .and_then(|keys| {
            keys.with_key(
                "reader_key",
                Principal::new("acct_123").with_roles(["read"]),
            )
        })
        .expect("valid keys");
    InMemoryKeyStore::new(keys)
}

/// The contract's type can be named.
type FullContract = Contract<
    DialectByPath,
    AuthLayer<InMemoryKeyStore, RoleTable, Arc<DialectByPath>>,
    DefaultCounter,
    ItemsCheck<SameAccount>,
>;

/// The complete stack: per-route dialects, keys, role table, batch limit,
/// per-item policy — one expression, the dialect named once.
fn contract() -> FullContract {
    Contract::new(DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new()))
        .auth(
            AuthLayer::new(keys())
                .keys(KeyExtractor::bearer_or_header(HeaderName::from_static(
                    "x-api-key",
                )))
                .route_policy(RoleTable::read_write()),
        )
        // The one gRPC service these servers speak: elsewhere a gRPC label is any body.
        .batch_limit(
            BatchLimitLayer::new().grpc_service(GrpcService::new("bulk.Webhooks").unwrap()),
        )
        .authorize_items(AuthorizeItemsLayer::default())
}

fn routes() -> Router {
    Router::new()
        .route(
            "/v1/webhooks",
            post(|body: Bytes| async move { body }).delete(|body: Bytes| async move { body }),
        )
        .route("/v1/customer/courses", get(|| async { "[]" }))
        .route(
            "/v1/panic",
            get(|| async {
                panic!("on purpose");
                #[allow(unreachable_code)]
                ""
            }),
        )
}

async fn serve_router(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("{error}: {:?}", self.body))
    }
}

async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Full::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        content_type: parts
            .headers
            .get("content-type")
            .map(|value| value.to_str().unwrap().to_owned()),
        body: body.collect().await.unwrap().to_bytes(),
    }
}

const ADMIN: (&str, &str) = ("authorization", "Bearer admin_key");

#[tokio::test]
async fn one_expression_is_the_whole_contract_served_by_axum_serve() {
    let addr = serve_router(routes().layer(contract())).await;

    // No key: bulk on a bulk route, coded on a coded one.
    let answer = send(addr, Method::POST, "/v1/webhooks", &[], "[]").await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json(), json!({"error": "unauthorized"}));
    let answer = send(addr, Method::GET, "/v1/customer/courses", &[], "").await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["code"], 4);

    // The role table: a reader may not write.
    let answer = send(
        addr,
        Method::POST,
        "/v1/webhooks",
        &[("x-api-key", "reader_key")],
        "[]",
    )
    .await;
    assert_eq!(answer.json(), json!({"error": "forbidden"}));

    // The batch limit, and the per-item policy in the same pass.
    let six = "[{},{},{},{},{},{}]";
    let answer = send(addr, Method::POST, "/v1/webhooks", &[ADMIN], six).await;
    assert_eq!(
        (answer.status, answer.json()),
        (StatusCode::BAD_REQUEST, json!({"error": "too_many_items"}))
    );
    let foreign = r#"[{"account_id":"acct_123"},{"account_id":"acct_456"}]"#;
    let answer = send(addr, Method::POST, "/v1/webhooks", &[ADMIN], foreign).await;
    assert_eq!(
        (answer.status, answer.json()),
        (StatusCode::FORBIDDEN, json!({"error": "forbidden"}))
    );

    // What passes reaches the handler byte for byte.
    let own = "[ {\"account_id\":\"acct_123\", \"n\": 1.50} ,{}]";
    let answer = send(addr, Method::POST, "/v1/webhooks", &[ADMIN], own).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, own);

    // Normalize: an empty 404 in the route's dialect, problem details when asked.
    let answer = send(addr, Method::GET, "/v1/customer/nothing", &[ADMIN], "").await;
    assert_eq!(
        answer.json(),
        json!({"code": 10, "message": "Record not found", "errors": ["not_found"]})
    );
    let answer = send(
        addr,
        Method::GET,
        "/v1/nothing",
        &[ADMIN, ("accept", "application/problem+json")],
        "",
    )
    .await;
    assert_eq!(answer.status, 404);
    assert_eq!(
        answer.content_type.as_deref(),
        Some("application/problem+json")
    );
    assert_eq!(answer.json()["code"], "not_found");

    // Catch panic: a 500 in the contract, and the server keeps serving.
    let answer = send(addr, Method::GET, "/v1/panic", &[ADMIN], "").await;
    assert_eq!(
        (answer.status, answer.json()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "server_error"})
        )
    );
    let answer = send(addr, Method::GET, "/v1/customer/courses", &[ADMIN], "").await;
    assert_eq!(
        (answer.status, &answer.body[..]),
        (StatusCode::OK, &b"[]"[..])
    );
}

#[tokio::test]
async fn the_same_configuration_cloned_serves_tonic() {
    let contract = contract();
    // The HTTP server and the gRPC server share one configuration value.
    let http = serve_router(routes().layer(contract.clone())).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = listener.local_addr().unwrap();
    let layer = ServiceBuilder::new().layer(contract).into_inner();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(layer)
            .add_routes(tonic::service::Routes::default())
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    assert_eq!(
        send(http, Method::GET, "/v1/customer/courses", &[], "")
            .await
            .status,
        401
    );

    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let call = |key: Option<&'static str>| {
        let mut request = Request::post(format!("http://{grpc}/bulk.Webhooks/CreateWebhooks"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let request = request
            .body(Full::from(Bytes::from_static(&[0, 0, 0, 0, 0])))
            .unwrap();
        let client = client.clone();
        async move {
            let response = client.request(request).await.unwrap();
            let status = response.status();
            let headers = response.headers().clone();
            (status, headers)
        }
    };
    // No key: trailers-only UNAUTHENTICATED, never JSON.
    let (status, headers) = call(None).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["grpc-status"], "16");
    assert_eq!(headers["grpc-message"], "unauthorized");
    // A reader may not call a write method (gRPC calls are POSTs).
    let (_, headers) = call(Some("reader_key")).await;
    assert_eq!(headers["grpc-status"], "7");
    // The admin passes the contract and reaches tonic, which has no such service.
    let (_, headers) = call(Some("admin_key")).await;
    assert_eq!(headers["grpc-status"], "12");
}

/// Sends `head` and half of `body`, then waits for the answer without sending the rest.
async fn stall(addr: SocketAddr, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/webhooks HTTP/1.1\r\nhost: x\r\nauthorization: Bearer admin_key\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(&body.as_bytes()[..body.len() / 2])
        .await
        .unwrap();
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("an answer before the client gives up")
        .unwrap();
    String::from_utf8_lossy(&answer[..n]).into_owned()
}

#[tokio::test]
async fn a_body_timeout_is_408_through_the_item_layer_as_through_the_batch_layer() {
    let body = r#"[{"account_id":"acct_123"},{"account_id":"acct_123"}]"#;
    let timeout = || tower_http::timeout::RequestBodyTimeoutLayer::new(Duration::from_millis(200));
    // The per-item authorization alone, under auth: it reads the body itself.
    let alone = routes().layer(
        ServiceBuilder::new()
            .layer(timeout())
            .layer(AuthLayer::new(keys()))
            .layer(AuthorizeItemsLayer::default()),
    );
    // The batch limit alone.
    let batch = routes().layer(
        ServiceBuilder::new()
            .layer(timeout())
            .layer(BatchLimitLayer::new()),
    );
    // The contract.
    let contract = routes().layer(
        ServiceBuilder::new().layer(timeout()).layer(
            Contract::bulk()
                .auth(AuthLayer::new(keys()))
                .authorize_items(AuthorizeItemsLayer::default()),
        ),
    );
    for (name, router) in [("items", alone), ("batch", batch), ("contract", contract)] {
        let answer = stall(serve_router(router).await, body).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{name}: {answer}");
        assert!(
            answer.ends_with(r#"{"error":"request_timeout"}"#),
            "{name}: {answer}"
        );
    }
}

#[tokio::test]
async fn the_item_policy_checks_only_its_methods_even_after_the_batch_layer() {
    let foreign = r#"[{"account_id":"acct_456"}]"#;
    let only_post = || AuthorizeItemsLayer::default().methods([Method::POST]);
    let separate = routes().layer(
        ServiceBuilder::new()
            .layer(AuthLayer::new(keys()))
            .layer(BatchLimitLayer::new())
            .layer(only_post()),
    );
    let contract = routes().layer(
        Contract::bulk()
            .auth(AuthLayer::new(keys()))
            .batch_limit(BatchLimitLayer::new())
            .authorize_items(only_post()),
    );
    for (name, router) in [("separate", separate), ("contract", contract)] {
        let addr = serve_router(router).await;
        let answer = send(addr, Method::POST, "/v1/webhooks", &[ADMIN], foreign).await;
        assert_eq!(answer.status, 403, "{name}");
        let answer = send(addr, Method::DELETE, "/v1/webhooks", &[ADMIN], foreign).await;
        assert_eq!(
            (answer.status, &answer.body[..]),
            (StatusCode::OK, foreign.as_bytes()),
            "{name}"
        );
        // DELETE is still counted by the batch limit.
        let answer = send(
            addr,
            Method::DELETE,
            "/v1/webhooks",
            &[ADMIN],
            "[1,2,3,4,5,6]",
        )
        .await;
        assert_eq!(answer.json(), json!({"error": "too_many_items"}), "{name}");
    }
}

#[tokio::test]
async fn items_are_checked_on_methods_the_batch_limit_does_not_limit() {
    // DELETE has no item limit here, but the per-item policy still reads and checks it.
    let router = routes().layer(
        Contract::bulk()
            .auth(AuthLayer::new(keys()))
            .batch_limit(BatchLimitLayer::new().no_limit(&Method::DELETE))
            .authorize_items(AuthorizeItemsLayer::default()),
    );
    let addr = serve_router(router).await;
    let foreign = r#"[{"account_id":"acct_456"}]"#;
    let answer = send(addr, Method::DELETE, "/v1/webhooks", &[ADMIN], foreign).await;
    assert_eq!(answer.status, 403);
    let seven = r#"[{},{},{},{},{},{},{}]"#;
    let answer = send(addr, Method::DELETE, "/v1/webhooks", &[ADMIN], seven).await;
    assert_eq!(
        (answer.status, &answer.body[..]),
        (StatusCode::OK, seven.as_bytes())
    );
}
