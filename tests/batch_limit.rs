//! The batch limit layer on a real axum 0.8 server on 127.0.0.1, with a real HTTP client and
//! raw TCP for what a well-behaved client never sends.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use axum::{
    body::Body,
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode},
    response::Response,
    routing::{any, post},
    Extension, Router,
};
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower_api_errors::{
    batch_limit::{BatchLimitLayer, BulkItems, OtherBodies},
    dialect::{Bulk, Coded, DialectByPath},
};

/// A generous guard against hangs, not a speed assertion.
const HANG_GUARD: Duration = Duration::from_secs(5);

type ClientBody = BoxBody<Bytes, Infallible>;

/// What the handler saw, sent back to the test: the exact body, the headers that matter and
/// what the layer left in the extensions.
async fn echo(
    State(calls): State<Arc<AtomicUsize>>,
    items: Option<Extension<BulkItems>>,
    request: Request,
) -> Response {
    calls.fetch_add(1, Ordering::SeqCst);
    let headers = request.headers().clone();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap();
    let items = items.map(|Extension(items)| {
        assert_eq!(items.body(), &body, "the items point into the body the handler gets");
        json!({
            "count": items.len(),
            "items": items.iter().map(|item| String::from_utf8_lossy(item).into_owned()).collect::<Vec<_>>(),
        })
    });
    let seen = json!({
        "content_length": headers.get("content-length").map(|v| v.to_str().unwrap()),
        "x_trace": headers.get("x-trace").map(|v| v.to_str().unwrap()),
        "query": query,
        "items": items,
    });
    Response::builder()
        .header("x-seen", seen.to_string())
        .body(Body::from(body))
        .unwrap()
}

struct Server {
    addr: SocketAddr,
    calls: Arc<AtomicUsize>,
}

impl Server {
    async fn start(layer: BatchLimitLayer<DialectByPath>) -> Self {
        let calls = Arc::new(AtomicUsize::new(0));
        let app = Router::new()
            .route("/v1/webhooks", any(echo))
            .route("/v1/customer/courses", any(echo))
            .route("/v1/upload", post(echo))
            .layer(layer)
            .with_state(Arc::clone(&calls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server { addr, calls }
    }

    async fn default() -> Self {
        Self::start(BatchLimitLayer::new().dialect(dialects())).await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// The bulk dialect, and the coded dialect under `/v1/customer`.
fn dialects() -> DialectByPath {
    DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new())
}

fn client() -> Client<HttpConnector, ClientBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {:?}", String::from_utf8_lossy(&self.body));
        })
    }

    fn seen(&self) -> Value {
        serde_json::from_slice(self.headers["x-seen"].as_bytes()).unwrap()
    }
}

async fn send(method: Method, url: &str, body: ClientBody, headers: &[(&str, &str)]) -> Answer {
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(HANG_GUARD, client().request(request.body(body).unwrap()))
        .await
        .expect("no answer in time")
        .unwrap();
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

fn full(bytes: impl Into<Bytes>) -> ClientBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// `bytes` in frames of `size` bytes, without `Content-Length` (chunked on the wire).
fn chunked(bytes: &[u8], size: usize) -> ClientBody {
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = bytes
        .chunks(size)
        .map(|chunk| Ok(Frame::data(Bytes::copy_from_slice(chunk))))
        .collect();
    StreamBody::new(tokio_stream::iter(frames)).boxed()
}

fn items(n: usize) -> String {
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"  {{"url": "https://example.com/hooks/{i}?q=[1,2]", "note": "caf\u00e9 \"{i}\" ✓", "tags": ["a", "b"], "n": {i}.5e1}}"#
            )
        })
        .collect();
    format!("[\n{}\n]\n", items.join(",\n"))
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn five_items_reach_the_handler_byte_for_byte() {
    let server = Server::default().await;
    let body = items(5);
    for (method, body_for_client) in [
        (Method::POST, full(body.clone())),
        (Method::PUT, chunked(body.as_bytes(), 7)),
        (Method::PATCH, chunked(body.as_bytes(), 100)),
        (Method::DELETE, full(body.clone())),
    ] {
        let answer = send(
            method.clone(),
            &server.url("/v1/webhooks"),
            body_for_client,
            &[JSON, ("x-trace", "abc")],
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{method}");
        assert_eq!(answer.body, body.as_bytes(), "{method}: the exact bytes");
        let seen = answer.seen();
        assert_eq!(seen["x_trace"], "abc");
        assert_eq!(seen["items"]["count"], 5);
        let expected: Value = serde_json::from_str(&body).unwrap();
        for (item, expected) in seen["items"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .zip(expected.as_array().unwrap())
        {
            let item: Value = serde_json::from_str(item.as_str().unwrap()).unwrap();
            assert_eq!(&item, expected);
        }
        if method == Method::POST {
            assert_eq!(seen["content_length"], body.len().to_string());
        }
    }
    assert_eq!(server.calls(), 4);
}

#[tokio::test]
async fn six_items_are_refused_and_the_handler_never_runs() {
    let server = Server::default().await;
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        for body in [
            full(items(6)),
            chunked(items(6).as_bytes(), 13),
            full(items(50)),
        ] {
            let answer = send(method.clone(), &server.url("/v1/webhooks"), body, &[JSON]).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{method}");
            assert_eq!(answer.headers["content-type"], "application/json");
            assert_eq!(answer.body, r#"{"error":"too_many_items"}"#);
        }
    }
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn the_coded_dialect_names_the_limit() {
    let server = Server::default().await;
    let answer = send(
        Method::POST,
        &server.url("/v1/customer/courses"),
        full(items(6)),
        &[JSON],
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.json(),
        json!({"code": 6, "message": "Model not valid",
               "errors": ["too_many_items: at most 5 items per POST request"]})
    );
    let answer = send(
        Method::GET,
        &server.url("/v1/customer/courses?ids=1,2,3,4,5,6,7,8,9,10,11"),
        full(""),
        &[],
    )
    .await;
    assert_eq!(
        answer.json(),
        json!({"code": 6, "message": "Model not valid",
               "errors": ["too_many_items: at most 10 items per GET request"]})
    );
    let answer = send(
        Method::POST,
        &server.url("/v1/customer/courses"),
        full("[1, 2,"),
        &[JSON],
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let body = answer.json();
    assert_eq!(body["code"], 6);
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("invalid_json: "),
        "{body}"
    );
    // Problem details when asked for, whatever the route's dialect.
    let answer = send(
        Method::POST,
        &server.url("/v1/webhooks"),
        full(items(6)),
        &[JSON, ("accept", "application/problem+json")],
    )
    .await;
    assert_eq!(answer.headers["content-type"], "application/problem+json");
    assert_eq!(answer.json()["code"], "too_many_items");
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn get_counts_ids_in_the_query_and_the_body() {
    let server = Server::default().await;
    let ids = |n: usize| (1..=n).map(|i| format!("web_{i}")).collect::<Vec<_>>();
    let passing = [
        format!("/v1/webhooks?ids={}", ids(10).join(",")),
        format!(
            "/v1/webhooks?{}",
            ids(10)
                .iter()
                .map(|id| format!("ids={id}"))
                .collect::<Vec<_>>()
                .join("&")
        ),
        format!(
            "/v1/webhooks?ids={}&ids={}&page=2",
            ids(4).join(","),
            ids(6).join("%2C")
        ),
    ];
    for path in &passing {
        let answer = send(Method::GET, &server.url(path), full(""), &[]).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(answer.seen()["query"], path.split_once('?').unwrap().1);
    }
    let refused = [
        format!("/v1/webhooks?ids={}", ids(11).join(",")),
        format!(
            "/v1/webhooks?{}",
            ids(11)
                .iter()
                .map(|id| format!("ids={id}"))
                .collect::<Vec<_>>()
                .join("&")
        ),
        format!(
            "/v1/webhooks?ids={}&i%64s={}",
            ids(5).join(","),
            ids(6).join("%2c")
        ),
    ];
    for path in &refused {
        let answer = send(Method::GET, &server.url(path), full(""), &[]).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(answer.body, r#"{"error":"too_many_items"}"#);
    }
    assert_eq!(server.calls(), passing.len());

    // A JSON body on a GET counts too, alone or with the query.
    let body = |n: usize| serde_json::to_string(&ids(n)).unwrap();
    let answer = send(
        Method::GET,
        &server.url("/v1/webhooks"),
        full(body(10)),
        &[JSON],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, body(10));
    assert_eq!(answer.seen()["items"]["count"], 10);
    let answer = send(
        Method::GET,
        &server.url("/v1/webhooks"),
        full(body(11)),
        &[JSON],
    )
    .await;
    assert_eq!(answer.body, r#"{"error":"too_many_items"}"#);
    let answer = send(
        Method::GET,
        &server.url("/v1/webhooks?ids=a,b,c"),
        full(body(8)),
        &[JSON],
    )
    .await;
    assert_eq!(answer.body, r#"{"error":"too_many_items"}"#);
    let answer = send(
        Method::GET,
        &server.url("/v1/webhooks?ids=a,b,c"),
        full(body(7)),
        &[JSON],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(server.calls(), passing.len() + 2);
}

#[tokio::test]
async fn malformed_json_is_invalid_json() {
    let server = Server::default().await;
    for body in [
        "[1, 2",
        "[1,,2]",
        "{\"a\": 1} x",
        "not json",
        "[\"\\q\"]",
        "[\"a\u{1}\"]",
        "   ",
        "[1] [2]",
    ] {
        let answer = send(
            Method::POST,
            &server.url("/v1/webhooks"),
            full(body),
            &[JSON],
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert_eq!(answer.body, r#"{"error":"invalid_json"}"#, "{body:?}");
    }
    // Deep nesting is refused without recursion.
    let deep = "[".repeat(100_000);
    let answer = send(
        Method::POST,
        &server.url("/v1/webhooks"),
        full(deep),
        &[JSON],
    )
    .await;
    assert_eq!(answer.body, r#"{"error":"invalid_json"}"#);
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn bodies_of_other_types_are_counted_unless_configured() {
    let server = Server::default().await;
    // Labelled text, still JSON: counted.
    let answer = send(
        Method::POST,
        &server.url("/v1/webhooks"),
        full(items(6)),
        &[("content-type", "text/plain")],
    )
    .await;
    assert_eq!(answer.body, r#"{"error":"too_many_items"}"#);
    let answer = send(
        Method::POST,
        &server.url("/v1/webhooks"),
        full(items(3)),
        &[],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = send(
        Method::POST,
        &server.url("/v1/webhooks"),
        full(items(3)),
        &[("content-type", "application/vnd.api+json; charset=utf-8")],
    )
    .await;
    assert_eq!(answer.seen()["items"]["count"], 3);
    assert_eq!(server.calls(), 2);

    let server = Server::start(
        BatchLimitLayer::new()
            .dialect(dialects())
            .other_bodies(OtherBodies::Pass),
    )
    .await;
    let answer = send(
        Method::POST,
        &server.url("/v1/upload"),
        full("a,b,c,d,e,f"),
        &[("content-type", "text/csv")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "a,b,c,d,e,f");
    assert_eq!(answer.seen()["items"], Value::Null);

    let server = Server::start(
        BatchLimitLayer::new()
            .dialect(dialects())
            .other_bodies(OtherBodies::Refuse),
    )
    .await;
    let answer = send(
        Method::POST,
        &server.url("/v1/upload"),
        full("a,b"),
        &[("content-type", "text/csv")],
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(answer.body, r#"{"error":"unsupported_media_type"}"#);
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn methods_without_a_limit_and_empty_bodies_pass_untouched() {
    let server = Server::start(
        BatchLimitLayer::new()
            .dialect(dialects())
            .no_limit(&Method::DELETE),
    )
    .await;
    let answer = send(
        Method::DELETE,
        &server.url("/v1/webhooks"),
        full(items(20)),
        &[JSON],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, items(20));
    assert_eq!(answer.seen()["items"], Value::Null);
    let answer = send(
        Method::OPTIONS,
        &server.url("/v1/webhooks"),
        full("not json at all"),
        &[JSON],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    // No body: nothing to count, nothing read.
    let answer = send(Method::POST, &server.url("/v1/webhooks"), full(""), &[JSON]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.seen()["items"], Value::Null);
    assert_eq!(server.calls(), 3);
}

#[tokio::test]
async fn the_items_can_sit_in_a_field() {
    let layer = BatchLimitLayer::new()
        .dialect(dialects())
        .json_field("data")
        .limit(Method::POST, 2);
    let server = Server::start(layer).await;
    let answer = send(
        Method::POST,
        &server.url("/v1/webhooks"),
        full(r#"{"meta": [1, 2, 3], "data": [{"a": 1}, {"b": 2}]}"#),
        &[JSON],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.seen()["items"]["items"],
        json!([r#"{"a": 1}"#, r#"{"b": 2}"#])
    );
    let answer = send(
        Method::POST,
        &server.url("/v1/webhooks"),
        full(r#"{"data": [1, 2, 3]}"#),
        &[JSON],
    )
    .await;
    assert_eq!(answer.body, r#"{"error":"too_many_items"}"#);
    let answer = send(
        Method::POST,
        &server.url("/v1/webhooks"),
        full(r#"{"data": [1], "data": [2]}"#),
        &[JSON],
    )
    .await;
    assert_eq!(answer.body, r#"{"error":"invalid_json"}"#);
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn bodies_over_the_byte_cap_get_413() {
    let server = Server::start(
        BatchLimitLayer::new()
            .dialect(dialects())
            .max_body_bytes(1000),
    )
    .await;
    let big = format!("[\"{}\"]", "x".repeat(2000));
    let answer = send(
        Method::POST,
        &server.url("/v1/webhooks"),
        full(big.clone()),
        &[JSON],
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.body, r#"{"error":"payload_too_large"}"#);
    // Without Content-Length: refused when the body grows past the cap.
    let answer = send(
        Method::POST,
        &server.url("/v1/webhooks"),
        chunked(big.as_bytes(), 300),
        &[JSON],
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    let answer = send(
        Method::POST,
        &server.url("/v1/customer/courses"),
        full(big),
        &[JSON],
    )
    .await;
    assert_eq!(answer.json()["code"], 8);
    assert_eq!(
        answer.json()["errors"][0],
        "payload_too_large: at most 1000 bytes per request body"
    );
    assert_eq!(server.calls(), 0);
}

/// Writes `head` and `body` on a raw connection, keeps it open, and reads one response.
async fn raw_exchange(addr: SocketAddr, head: &str, body: &[u8]) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream.flush().await.unwrap();
    let response = tokio::time::timeout(HANG_GUARD, read_response(&mut stream))
        .await
        .expect("the server answered while the client kept the body open");
    (stream, response)
}

async fn read_response(stream: &mut TcpStream) -> String {
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "connection closed before a response: {:?}",
            String::from_utf8_lossy(&response)
        );
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .map_or(0, |length| length.trim().parse::<usize>().unwrap());
            if body.len() >= length {
                return text.into_owned();
            }
        }
    }
}

#[tokio::test]
async fn a_client_that_stalls_after_the_sixth_item_is_refused_at_once() {
    let server = Server::default().await;
    let body = items(8);
    // Everything up to the first byte of the sixth item, then nothing more, ever.
    let sixth = body.match_indices("{\"url\"").nth(5).unwrap().0;
    for (framing, head) in [
        ("content-length", format!("POST /v1/webhooks HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len())),
        ("chunked", "POST /v1/webhooks HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n".to_owned()),
    ] {
        let sent = &body.as_bytes()[..=sixth];
        let on_wire = if framing == "chunked" {
            let mut chunk = format!("{:x}\r\n", sent.len()).into_bytes();
            chunk.extend_from_slice(sent);
            chunk.extend_from_slice(b"\r\n");
            chunk
        } else {
            sent.to_vec()
        };
        let (_stream, response) = raw_exchange(server.addr, &head, &on_wire).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{framing}: {response}");
        assert!(response.ends_with(r#"{"error":"too_many_items"}"#), "{framing}: {response}");
    }
    // Five items and a comma, then a stall: not refused yet (the sixth has not begun), and the
    // handler has not run either.
    let fifth_end = body.match_indices("},").nth(4).unwrap().0 + 2;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!("POST /v1/webhooks HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(&body.as_bytes()[..fifth_end])
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let waited = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "no answer before the sixth item or the end of the body"
    );
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn a_content_length_over_the_cap_is_refused_before_the_body_is_read() {
    let server = Server::default().await;
    // Two megabytes announced, not one byte sent: the answer cannot have waited for the body.
    let head = "POST /v1/webhooks HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: 2097152\r\n\r\n";
    let (_stream, response) = raw_exchange(server.addr, head, b"").await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response.ends_with(r#"{"error":"payload_too_large"}"#),
        "{response}"
    );
    // Same on the coded route, the limit named.
    let head =
        "POST /v1/customer/courses HTTP/1.1\r\nhost: test\r\ncontent-length: 2097152\r\n\r\n";
    let (_stream, response) = raw_exchange(server.addr, head, b"[").await;
    assert!(
        response.contains("payload_too_large: at most 1048576 bytes"),
        "{response}"
    );
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn a_body_cut_short_is_a_bad_request_and_the_handler_never_runs() {
    let server = Server::default().await;
    let head = "POST /v1/webhooks HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n";
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(br#"[{"a": 1},"#).await.unwrap();
    // The client stops writing: the body ends 990 bytes early.
    stream.shutdown().await.unwrap();
    let response = tokio::time::timeout(HANG_GUARD, read_response(&mut stream))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response.ends_with(r#"{"error":"bad_request"}"#),
        "{response}"
    );
    assert_eq!(server.calls(), 0);
}

#[tokio::test]
async fn an_outer_length_limit_is_answered_413() {
    let calls = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/v1/webhooks", any(echo))
        .layer(BatchLimitLayer::new())
        // Outside: a stricter byte limit, which stops the body while the layer reads it.
        .layer(tower_http::limit::RequestBodyLimitLayer::new(64))
        .with_state(Arc::clone(&calls));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = format!("http://{addr}/v1/webhooks");
    let answer = send(
        Method::POST,
        &url,
        chunked(items(2).as_bytes(), 16),
        &[JSON],
    )
    .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.body, r#"{"error":"payload_too_large"}"#);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
