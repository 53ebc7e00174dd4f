//! End-to-end check of `examples/bench_server`: both stacks on 127.0.0.1, talked to over real
//! HTTP. The load test compares them, so they must answer the requests it sends alike, and the
//! full stack must really be doing its work (refusing bad keys and too many items).

#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "../examples/bench_server.rs"]
mod bench_server;

use std::net::SocketAddr;

use bench_server::{Options, Stack, BENCH_KEY};
use bytes::Bytes;
use http::{header, HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::net::TcpListener;

async fn start(stack: Stack) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(bench_server::serve(listener, stack, std::future::pending()));
    addr
}

#[derive(Debug, PartialEq)]
struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    content_length: Option<String>,
    body: Bytes,
}

async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (Answer, HeaderMap) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    if !body.is_empty() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let response = client
        .request(request.body(Full::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let headers = response.headers().clone();
    let text = |name| {
        headers
            .get(name)
            .map(|value: &http::HeaderValue| value.to_str().unwrap().to_owned())
    };
    let answer = Answer {
        status: response.status(),
        content_type: text(header::CONTENT_TYPE),
        content_length: text(header::CONTENT_LENGTH),
        body: response.into_body().collect().await.unwrap().to_bytes(),
    };
    (answer, headers)
}

#[tokio::test]
async fn bare_and_full_answer_the_load_test_requests_alike() {
    let bare = start(Stack::None).await;
    let full = start(Stack::Full).await;
    let requests = [
        (Method::POST, "/v1/items", bench_server::five_items()),
        (Method::POST, "/v1/items", bench_server::items(1)),
        (Method::GET, "/v1/items?ids=a,b,c", String::new()),
        (Method::GET, "/v1/items?ids=a&ids=b,c,d", String::new()),
    ];
    let expected = [5, 1, 3, 4];
    for ((method, path, body), count) in requests.into_iter().zip(expected) {
        let (from_bare, _) = send(bare, method.clone(), path, Some(BENCH_KEY), &body).await;
        let (from_full, _) = send(full, method.clone(), path, Some(BENCH_KEY), &body).await;
        assert_eq!(from_bare.status, StatusCode::OK, "{method} {path}");
        assert_eq!(
            from_bare.body,
            format!(r#"{{"count":{count}}}"#),
            "{method} {path}"
        );
        assert_eq!(from_full, from_bare, "{method} {path}");
    }
}

#[tokio::test]
async fn full_stack_refuses_bad_keys() {
    let full = start(Stack::Full).await;
    let bare = start(Stack::None).await;
    for key in [Some("not_the_bench_key"), None] {
        let (answer, headers) = send(
            full,
            Method::POST,
            "/v1/items",
            key,
            &bench_server::five_items(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "key {key:?}");
        assert_eq!(answer.body, r#"{"error":"unauthorized"}"#);
        assert!(headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
        // The bare server checks nothing: the difference the load test prices.
        let (answer, _) = send(
            bare,
            Method::POST,
            "/v1/items",
            key,
            &bench_server::five_items(),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn full_stack_refuses_too_many_items() {
    let full = start(Stack::Full).await;
    let (answer, _) = send(
        full,
        Method::POST,
        "/v1/items",
        Some(BENCH_KEY),
        &bench_server::items(6),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body, r#"{"error":"too_many_items"}"#);
    assert_eq!(answer.content_type.as_deref(), Some("application/json"));

    let ids: Vec<String> = (0..11).map(|i| format!("id_{i}")).collect();
    let path = format!("/v1/items?ids={}", ids.join(","));
    let (answer, _) = send(full, Method::GET, &path, Some(BENCH_KEY), "").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body, r#"{"error":"too_many_items"}"#);
}

#[tokio::test]
async fn full_stack_refuses_items_of_another_account() {
    let full = start(Stack::Full).await;
    let body = r#"[{"account_id":"acct_bench"},{"account_id":"acct_other"}]"#;
    let (answer, _) = send(full, Method::POST, "/v1/items", Some(BENCH_KEY), body).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.body, r#"{"error":"forbidden"}"#);
}

#[tokio::test]
async fn full_stack_normalizes_the_routers_own_errors() {
    let full = start(Stack::Full).await;
    let bare = start(Stack::None).await;
    let (answer, _) = send(full, Method::GET, "/v1/nowhere", Some(BENCH_KEY), "").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.body, r#"{"error":"not_found"}"#);
    let (answer, _) = send(bare, Method::GET, "/v1/nowhere", Some(BENCH_KEY), "").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.body.is_empty());
}

#[test]
fn options_parse() {
    let parse = |args: &[&str]| Options::parse(args.iter().map(|arg| (*arg).to_owned()));
    let options = parse(&["--stack", "none", "--addr", "127.0.0.1:9000", "--threads=3"]).unwrap();
    assert_eq!(options.stack, Stack::None);
    assert_eq!(options.addr, "127.0.0.1:9000".parse().unwrap());
    assert_eq!(options.threads.get(), 3);
    assert_eq!(parse(&["--stack=full"]).unwrap().stack, Stack::Full);
    assert!(parse(&["--stack", "half"]).is_err());
    assert!(parse(&["--threads", "0"]).is_err());
    assert!(parse(&["--addr"]).is_err());
    assert!(parse(&["--port", "1"]).is_err());
}
