//! End-to-end tests of `examples/bulk_api`: the demo's router and stack on 127.0.0.1, talked
//! to over real HTTP.
#![cfg(feature = "axum")]
#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "../examples/bulk_api/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/bulk_api/handlers.rs"]
mod handlers;
#[allow(dead_code)]
#[path = "../examples/bulk_api/store.rs"]
mod store;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{json, Value};
use tokio::net::TcpListener;

async fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, axum::ServiceExt::into_make_service(app::app()))
            .await
            .unwrap()
    });
    addr
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&self.body)))
    }
}

async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(Full::from(body.unwrap_or_default().to_owned()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

async fn create(addr: SocketAddr, key: &str, items: Value) -> Answer {
    send(
        addr,
        Method::POST,
        "/v1/webhooks",
        Some(key),
        Some(&items.to_string()),
    )
    .await
}

#[tokio::test]
async fn bulk_create_answers_per_item_in_order() {
    let addr = serve().await;
    let answer = create(
        addr,
        "demo_admin",
        json!([
            {"url": "https://example.com/a", "email": "a@example.com"},
            {"url": "http://example.com/b", "email": "b@example.com"},
            {"url": "https://example.com/c", "email": "a@example.com"},
            {"email": "no-at-sign"},
            "not an object",
        ]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    let id = body[0]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("web_"));
    assert_eq!(
        body,
        json!([
            {"id": id, "account_id": "acct_123", "url": "https://example.com/a", "email": "a@example.com"},
            {"error": "validation_errors", "_idx": 1, "validation_errors": [{"field": "url", "error": "invalid_url"}]},
            {"error": "validation_errors", "_idx": 2, "validation_errors": [{"field": "email", "error": "must_be_unique"}]},
            {"error": "validation_errors", "_idx": 3, "validation_errors": [
                {"field": "url", "error": "required"}, {"field": "email", "error": "invalid_email"}]},
            {"error": "validation_errors", "_idx": 4, "validation_errors": [{"field": "object", "error": "must_be_object"}]},
        ])
    );

    // The GET shape: found objects in `data`, one error per missing id.
    let path = format!("/v1/webhooks?ids={id},web_missing&ids=web_gone");
    let answer = send(addr, Method::GET, &path, Some("demo_reader"), None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({"data": [{"id": id, "account_id": "acct_123", "url": "https://example.com/a", "email": "a@example.com"}],
               "error": [
                   {"error": "object_not_found", "account_id": "acct_123", "id": "web_missing"},
                   {"error": "object_not_found", "account_id": "acct_123", "id": "web_gone"}]})
    );

    // Another account cannot see it.
    let answer = send(addr, Method::GET, &path, Some("demo_other"), None).await;
    assert_eq!(answer.json()["data"], json!([]));
    assert_eq!(answer.json()["error"][0]["account_id"], "acct_456");
}

#[tokio::test]
async fn update_and_delete_answer_object_not_found_per_item() {
    let addr = serve().await;
    let created = create(
        addr,
        "demo_admin",
        json!([{"url": "https://example.com/a", "email": "u@example.com"}]),
    )
    .await
    .json();
    let id = created[0]["id"].as_str().unwrap().to_owned();
    let other = create(
        addr,
        "demo_other",
        json!([{"url": "https://example.com/o", "email": "o@example.com"}]),
    )
    .await
    .json();
    let other_id = other[0]["id"].as_str().unwrap().to_owned();

    let answer = send(
        addr,
        Method::PUT,
        "/v1/webhooks",
        Some("demo_admin"),
        Some(
            &json!([{"id": id, "url": "https://example.com/new"}, {"id": other_id, "url": "https://x.example"}, {"url": "https://y.example"}])
                .to_string(),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!([
            {"id": id, "account_id": "acct_123", "url": "https://example.com/new", "email": "u@example.com"},
            {"error": "object_not_found", "_idx": 1},
            {"error": "validation_errors", "_idx": 2, "validation_errors": [{"field": "id", "error": "required"}]},
        ])
    );

    let answer = send(
        addr,
        Method::DELETE,
        "/v1/webhooks",
        Some("demo_admin"),
        Some(&json!([{"id": "web_nope"}, {"id": id}]).to_string()),
    )
    .await;
    assert_eq!(
        answer.json(),
        json!([{"error": "object_not_found", "_idx": 0}, {"id": id, "deleted": true}])
    );
}

#[tokio::test]
async fn universal_errors_fail_the_whole_request_and_apply_nothing() {
    let addr = serve().await;
    let item =
        |n: usize| json!({"url": "https://example.com/h", "email": format!("{n}@example.com")});

    // No key, unknown key, disabled key.
    for key in [None, Some("wrong"), Some("demo_disabled")] {
        let answer = send(
            addr,
            Method::POST,
            "/v1/webhooks",
            key,
            Some(&json!([item(0)]).to_string()),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(answer.json(), json!({"error": "unauthorized"}));
        assert!(answer.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
    }

    // A reader writing.
    let answer = create(addr, "demo_reader", json!([item(1)])).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json(), json!({"error": "forbidden"}));

    // One item of another account fails everything.
    let answer = create(
        addr,
        "demo_admin",
        json!([item(2), {"url": "https://example.com/x", "email": "x@example.com", "account_id": "acct_456"}]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json(), json!({"error": "forbidden"}));

    // Six items.
    let answer = create(
        addr,
        "demo_admin",
        json!((10..16).map(item).collect::<Vec<_>>()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json(), json!({"error": "too_many_items"}));

    // Eleven ids.
    let ids: Vec<String> = (0..11).map(|n| format!("web_{n}")).collect();
    let path = format!("/v1/webhooks?ids={}", ids.join(","));
    let answer = send(addr, Method::GET, &path, Some("demo_admin"), None).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json(), json!({"error": "too_many_items"}));

    // Malformed JSON.
    let answer = send(
        addr,
        Method::POST,
        "/v1/webhooks",
        Some("demo_admin"),
        Some("[{\"url\": "),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json(), json!({"error": "invalid_json"}));

    // Nothing of the refused writes was applied: the same emails are still free.
    let answer = create(addr, "demo_admin", json!([item(1), item(2), item(10)])).await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert!(
        body.as_array()
            .unwrap()
            .iter()
            .all(|entry| entry.get("id").is_some()),
        "{body}"
    );
}

#[tokio::test]
async fn panics_are_server_errors_and_the_server_keeps_serving() {
    let addr = serve().await;
    let answer = send(
        addr,
        Method::GET,
        "/v1/debug/panic",
        Some("demo_admin"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.json(), json!({"error": "server_error"}));
    assert!(!String::from_utf8_lossy(&answer.body).contains("purpose"));

    let answer = send(
        addr,
        Method::GET,
        "/v1/customer/debug/panic",
        Some("demo_admin"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        answer.json(),
        json!({"code": 1, "message": "Server error", "errors": []})
    );

    let answer = send(
        addr,
        Method::GET,
        "/v1/webhooks?ids=web_1",
        Some("demo_admin"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn courses_speak_the_coded_dialect() {
    let addr = serve().await;
    let answer = send(
        addr,
        Method::GET,
        "/v1/customer/courses?page=1&page_size=X",
        Some("demo_admin"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.json(),
        json!({"code":6,"message":"Model not valid","errors":["page_size: The value 'X' is not valid for 'page_size'."]})
    );

    let answer = send(
        addr,
        Method::GET,
        "/v1/customer/courses?page=3&page_size=10",
        Some("demo_reader"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let page = answer.json();
    assert_eq!(page["page"], 3);
    assert_eq!(page["total"], 25);
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    assert_eq!(page["items"][0]["id"], 21);

    let answer = send(
        addr,
        Method::GET,
        "/v1/customer/courses/3",
        Some("demo_reader"),
        None,
    )
    .await;
    assert_eq!(
        answer.json(),
        json!({"id": 3, "title": "Course 3", "active": true})
    );
    let answer = send(
        addr,
        Method::GET,
        "/v1/customer/courses/99",
        Some("demo_reader"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json()["code"], 10);
    let answer = send(
        addr,
        Method::GET,
        "/v1/customer/courses/10",
        Some("demo_reader"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    assert_eq!(answer.json()["code"], 11);

    let answer = send(
        addr,
        Method::POST,
        "/v1/customer/courses",
        Some("demo_admin"),
        Some(r#"{"title": "Rust"}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(
        answer.json(),
        json!({"id": 26, "title": "Rust", "active": true})
    );
    let answer = send(
        addr,
        Method::POST,
        "/v1/customer/courses",
        Some("demo_admin"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["code"], 5);
    let answer = send(
        addr,
        Method::POST,
        "/v1/customer/courses",
        Some("demo_admin"),
        Some("{\"title\": "),
    )
    .await;
    assert_eq!(answer.json()["code"], 6);
    let answer = send(
        addr,
        Method::POST,
        "/v1/customer/courses",
        Some("demo_admin"),
        Some("{}"),
    )
    .await;
    assert_eq!(answer.json()["code"], 6);
    assert_eq!(
        answer.json()["errors"],
        json!(["title: A value is required."])
    );
    let answer = send(
        addr,
        Method::POST,
        "/v1/customer/courses",
        Some("demo_reader"),
        Some(r#"{"title": "R"}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.json(),
        json!({"code": 3, "message": "Not authorized", "errors": []})
    );
    let answer = send(
        addr,
        Method::POST,
        "/v1/customer/courses",
        None,
        Some(r#"{"title": "R"}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.json(),
        json!({"code": 4, "message": "Not authenticated", "errors": []})
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_dialect_of_their_prefix() {
    let addr = serve().await;
    let answer = send(addr, Method::GET, "/v1/nothing", Some("demo_admin"), None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json(), json!({"error": "not_found"}));
    let answer = send(
        addr,
        Method::GET,
        "/v1/customer/nothing",
        Some("demo_admin"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.json()["code"], 10);

    let answer = send(
        addr,
        Method::PATCH,
        "/v1/webhooks",
        Some("demo_admin"),
        Some("[]"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.json(), json!({"error": "method_not_allowed"}));
    let allow = answer.headers[header::ALLOW].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

    let answer = send(
        addr,
        Method::DELETE,
        "/v1/customer/courses",
        Some("demo_admin"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.json()["code"], 8);
    assert!(answer.headers.contains_key(header::ALLOW));
}

#[tokio::test]
async fn x_api_key_works_like_bearer() {
    let addr = serve().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::get(format!("http://{addr}/v1/webhooks?ids=web_1"))
        .header("x-api-key", "demo_reader")
        .body(Full::default())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_body_the_counter_passes_but_json_refuses_is_invalid_json_not_an_empty_success() {
    let addr = serve().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    // Invalid UTF-8 inside a string: the streaming counter does not validate string contents.
    let body =
        Bytes::from_static(b"[{\"url\":\"https://a.example\",\"email\":\"\xff@example.com\"}]");
    let request = Request::post(format!("http://{addr}/v1/webhooks"))
        .header(header::AUTHORIZATION, "Bearer demo_admin")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"error": "invalid_json"})
    );
}
