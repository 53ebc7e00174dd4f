//! The normalize layer in front of a real axum 0.8 server on 127.0.0.1, with real extractors,
//! tower-http's body limit and timeout, and tower's load shedding, in the bulk dialect, the
//! coded dialect (on `/v1/customer`) and problem details (asked for by `Accept`).

use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{Path, Query, Request},
    http::{header, HeaderMap, Method, Response, StatusCode},
    routing::{get, get_service, post},
    Json, Router,
};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::{
    net::TcpListener,
    sync::{Notify, Semaphore},
};
use tokio_stream::StreamExt;
use tower::ServiceBuilder;
use tower_api_errors::{
    body::ErrorBody,
    dialect::{Bulk, Coded, DialectByPath},
    normalize::NormalizeLayer,
    ApiError, ErrorCode, RenderedError,
};
use tower_http::{limit::RequestBodyLimitLayer, timeout::TimeoutLayer};

const PROBLEM: &str = "application/problem+json";

fn normalize() -> NormalizeLayer<DialectByPath> {
    NormalizeLayer::new().dialect(DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new()))
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct User {
    email: String,
    name: String,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct Courses {
    page: u32,
    page_size: u32,
}

#[derive(Deserialize)]
struct CourseId {
    id: u32,
}

/// Holds requests inside a handler until released, so a second one meets a full service.
struct Gate {
    entered: Notify,
    release: Semaphore,
}

impl Gate {
    fn new() -> Arc<Gate> {
        Arc::new(Gate {
            entered: Notify::new(),
            release: Semaphore::new(0),
        })
    }
}

/// What `/contract` answers: already in the contract (marked), deliberately not as the crate
/// would write it, so any rewrite would show.
const CONTRACT_BODY: &str = r#"{"error":"record_not_active" , "note":"spacing kept"}"#;
/// What `/own` answers: a bulk-dialect body written by hand, without the marker.
const OWN_BODY: &str = r#"{"error":"object_not_found","_idx":1}"#;

fn stream_chunks() -> Vec<Bytes> {
    (0..16u8)
        .map(|i| Bytes::from(vec![b'a' + i; 1024]))
        .collect()
}

fn routes(prefix: &str, gate: Arc<Gate>) -> Router {
    let pending = || std::future::pending::<&'static str>();
    Router::new()
        .route(
            &format!("{prefix}/users"),
            post(|Json(users): Json<Vec<User>>| async move {
                (StatusCode::CREATED, Json(json!({"created": users.len()})))
            })
            .layer(RequestBodyLimitLayer::new(1024)),
        )
        .route(
            &format!("{prefix}/courses"),
            get(|Query(courses): Query<Courses>| async move {
                Json(json!({"page": courses.page, "page_size": courses.page_size}))
            }),
        )
        .route(
            &format!("{prefix}/courses/{{id}}"),
            get(|Path(course): Path<CourseId>| async move { Json(json!({"id": course.id})) }),
        )
        .route(
            &format!("{prefix}/slow"),
            get(pending).layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                Duration::from_millis(50),
            )),
        )
        .route(
            &format!("{prefix}/deadline"),
            get(pending).layer(
                ServiceBuilder::new()
                    .layer(normalize())
                    .timeout(Duration::from_millis(50)),
            ),
        )
        .route(
            &format!("{prefix}/busy"),
            // Built once, so that every connection shares the one slot (axum builds a handler's
            // layers per connection).
            get_service(
                ServiceBuilder::new()
                    .layer(normalize())
                    .load_shed()
                    .concurrency_limit(1)
                    .service_fn(move |_: Request| {
                        let gate = gate.clone();
                        async move {
                            gate.entered.notify_one();
                            // Each release lets exactly one request finish.
                            gate.release.acquire().await.unwrap().forget();
                            Ok::<_, Infallible>(Response::new(Body::from("done")))
                        }
                    }),
            ),
        )
        .route(
            &format!("{prefix}/fail"),
            get_service(
                ServiceBuilder::new()
                    .layer(normalize())
                    .service_fn(|_: Request| async {
                        Err::<Response<Body>, _>(std::io::Error::other(
                            "connect to 10.0.0.7 failed: password=hunter2",
                        ))
                    }),
            ),
        )
        .route(
            &format!("{prefix}/contract"),
            get(|| async {
                let mut response = Response::builder()
                    .status(StatusCode::CONFLICT)
                    .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
                    .header("x-kept", "yes")
                    .body(Body::from(CONTRACT_BODY))
                    .unwrap();
                RenderedError::mark(&mut response, &ApiError::new(ErrorCode::RecordNotActive));
                response
            }),
        )
        .route(
            &format!("{prefix}/unrendered"),
            get(|| async {
                // A handler's error without any framework integration: `Response::from`.
                let mut response: http::Response<ErrorBody> =
                    ApiError::new(ErrorCode::RecordNotActive).into();
                response
                    .headers_mut()
                    .insert("x-kept", http::HeaderValue::from_static("yes"));
                response
            }),
        )
        .route(
            &format!("{prefix}/own"),
            get(|| async {
                (
                    StatusCode::NOT_FOUND,
                    [(header::CONTENT_TYPE, "application/json")],
                    OWN_BODY,
                )
            }),
        )
        .route(
            &format!("{prefix}/stream"),
            get(|| async {
                let chunks = tokio_stream::iter(stream_chunks()).map(Ok::<_, Infallible>);
                (
                    [(header::CONTENT_TYPE, "application/octet-stream")],
                    Body::from_stream(chunks),
                )
            }),
        )
}

struct Server {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    gates: [Arc<Gate>; 2],
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("a JSON body: {:?}", self.body))
    }

    fn header(&self, name: impl header::AsHeaderName) -> &str {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap())
            .unwrap_or_default()
    }

    /// Status, `Content-Type` and a JSON body, as the contract requires of every error.
    fn assert_error(&self, status: u16, content_type: &str, body: Value) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header(header::CONTENT_TYPE), content_type, "{self:?}");
        assert_eq!(
            self.header(header::CONTENT_LENGTH),
            self.body.len().to_string(),
            "{self:?}"
        );
        assert_eq!(self.json(), body, "{self:?}");
    }
}

/// Which dialect a request asks for: the path prefix, and whether `Accept` names problem
/// details.
#[derive(Clone, Copy, Debug)]
enum Wire {
    Bulk,
    Coded,
    Problem,
}

impl Server {
    async fn start() -> Server {
        let gates = [Gate::new(), Gate::new()];
        let app = Router::new()
            .merge(routes("/v1", gates[0].clone()))
            .merge(routes("/v1/customer", gates[1].clone()))
            .layer(normalize());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server {
            base: format!("http://{address}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
            gates,
        }
    }

    async fn send(
        &self,
        wire: Wire,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let prefix = match wire {
            Wire::Coded => "/v1/customer",
            Wire::Bulk | Wire::Problem => "/v1",
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{prefix}{path}", self.base));
        if let Wire::Problem = wire {
            request = request.header(header::ACCEPT, PROBLEM);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(request.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    async fn get(&self, wire: Wire, path: &str) -> Reply {
        self.send(wire, Method::GET, path, &[], Bytes::new()).await
    }

    async fn post_json(&self, wire: Wire, path: &str, body: &'static str) -> Reply {
        let json = [("content-type", "application/json")];
        self.send(wire, Method::POST, path, &json, body).await
    }
}

fn problem(status: u16, title: &str, code: &str) -> Value {
    json!({"type": "about:blank", "title": title, "status": status, "code": code})
}

#[tokio::test]
async fn unknown_routes_get_not_found() {
    let server = Server::start().await;
    let reply = server.get(Wire::Bulk, "/nope").await;
    reply.assert_error(404, "application/json", json!({"error": "not_found"}));
    let reply = server.get(Wire::Coded, "/nope").await;
    reply.assert_error(
        404,
        "application/json",
        json!({"code": 10, "message": "Record not found", "errors": ["not_found"]}),
    );
    let reply = server.get(Wire::Problem, "/nope").await;
    reply.assert_error(404, PROBLEM, problem(404, "Not Found", "not_found"));
}

#[tokio::test]
async fn wrong_methods_get_method_not_allowed_with_allow_kept() {
    let server = Server::start().await;
    let expected = [
        (
            Wire::Bulk,
            "application/json",
            json!({"error": "method_not_allowed"}),
        ),
        (
            Wire::Coded,
            "application/json",
            json!({"code": 8, "message": "Value not valid", "errors": ["method_not_allowed"]}),
        ),
        (
            Wire::Problem,
            PROBLEM,
            problem(405, "Method Not Allowed", "method_not_allowed"),
        ),
    ];
    for (wire, content_type, body) in expected {
        let reply = server
            .send(wire, Method::DELETE, "/courses", &[], Bytes::new())
            .await;
        reply.assert_error(405, content_type, body);
        assert_eq!(reply.header(header::ALLOW), "GET,HEAD", "{wire:?}");
    }
}

#[tokio::test]
async fn wrong_content_types_get_unsupported_media_type() {
    let server = Server::start().await;
    let detail = "Expected `Content-Type: application/json`.";
    let text = [("content-type", "text/plain")];
    let send = |wire| server.send(wire, Method::POST, "/users", &text, "[]");
    send(Wire::Bulk).await.assert_error(
        415,
        "application/json",
        json!({"error": "unsupported_media_type"}),
    );
    send(Wire::Coded).await.assert_error(
        415,
        "application/json",
        json!({"code": 8, "message": "Value not valid", "errors": [detail]}),
    );
    let mut expected = problem(415, "Unsupported Media Type", "unsupported_media_type");
    expected["detail"] = detail.into();
    send(Wire::Problem)
        .await
        .assert_error(415, PROBLEM, expected);
}

#[tokio::test]
async fn malformed_json_gets_invalid_json() {
    let server = Server::start().await;
    let body = r#"[{"email":"#;
    let detail = "The body is not valid JSON: EOF while parsing a value at line 1 column 10.";
    let reply = server.post_json(Wire::Bulk, "/users", body).await;
    reply.assert_error(400, "application/json", json!({"error": "invalid_json"}));
    let reply = server.post_json(Wire::Coded, "/users", body).await;
    reply.assert_error(
        400,
        "application/json",
        json!({"code": 6, "message": "Model not valid", "errors": [detail]}),
    );
    let mut expected = problem(400, "Bad Request", "invalid_json");
    expected["detail"] = detail.into();
    let reply = server.post_json(Wire::Problem, "/users", body).await;
    reply.assert_error(400, PROBLEM, expected);
}

#[tokio::test]
async fn an_item_missing_a_field_gets_validation_errors_with_its_index() {
    let server = Server::start().await;
    let body = r#"[{"email":"a@example.com","name":"A"},{"name":"B"}]"#;
    let message = "[1].email: A value is required for 'email'.";
    let reply = server.post_json(Wire::Bulk, "/users", body).await;
    reply.assert_error(
        422,
        "application/json",
        json!({"error": "validation_errors", "_idx": 1,
               "validation_errors": [{"field": "email", "error": "required"}]}),
    );
    let reply = server.post_json(Wire::Coded, "/users", body).await;
    reply.assert_error(
        422,
        "application/json",
        json!({"code": 6, "message": "Model not valid", "errors": [message]}),
    );
    let reply = server.post_json(Wire::Problem, "/users", body).await;
    reply.assert_error(
        422,
        PROBLEM,
        json!({"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
               "detail": message, "code": "validation_errors", "_idx": 1,
               "validation_errors": [{"field": "email", "error": "required"}]}),
    );
    // A valid body reaches the handler.
    let reply = server
        .post_json(
            Wire::Coded,
            "/users",
            r#"[{"email":"a@example.com","name":"A"}]"#,
        )
        .await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.json(), json!({"created": 1}));
}

#[tokio::test]
async fn a_bad_query_value_gets_validation_errors() {
    let server = Server::start().await;
    let path = "/courses?page=1&page_size=X";
    let reply = server.get(Wire::Bulk, path).await;
    reply.assert_error(
        400,
        "application/json",
        json!({"error": "validation_errors",
               "validation_errors": [{"field": "page_size", "error": "invalid_value"}]}),
    );
    // The seed's own example, end to end.
    let reply = server.get(Wire::Coded, path).await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.body,
        r#"{"code":6,"message":"Model not valid","errors":["page_size: The value 'X' is not valid for 'page_size'."]}"#
    );
    let reply = server.get(Wire::Problem, path).await;
    let body = reply.json();
    assert_eq!(reply.status, 400);
    assert_eq!(
        body["detail"],
        "page_size: The value 'X' is not valid for 'page_size'."
    );
    assert_eq!(body["code"], "validation_errors");
    // A bad path parameter, too.
    let reply = server.get(Wire::Bulk, "/courses/abc").await;
    reply.assert_error(
        400,
        "application/json",
        json!({"error": "validation_errors",
               "validation_errors": [{"field": "id", "error": "invalid_value"}]}),
    );
    // A good query reaches the handler.
    let reply = server.get(Wire::Coded, "/courses?page=1&page_size=5").await;
    assert_eq!(reply.json(), json!({"page": 1, "page_size": 5}));
}

#[tokio::test]
async fn the_body_limit_gets_payload_too_large() {
    let server = Server::start().await;
    let body = format!(r#"[{{"email":"{}","name":"A"}}]"#, "a".repeat(2048));
    let json = [("content-type", "application/json")];
    let expected = [
        (
            Wire::Bulk,
            "application/json",
            json!({"error": "payload_too_large"}),
        ),
        (
            Wire::Coded,
            "application/json",
            json!({"code": 8, "message": "Value not valid", "errors": ["payload_too_large"]}),
        ),
        (
            Wire::Problem,
            PROBLEM,
            problem(413, "Payload Too Large", "payload_too_large"),
        ),
    ];
    for (wire, content_type, expected) in expected {
        let reply = server
            .send(wire, Method::POST, "/users", &json, body.clone())
            .await;
        reply.assert_error(413, content_type, expected);
    }
}

#[tokio::test]
async fn timeouts_get_request_timeout() {
    let server = Server::start().await;
    // tower-http's empty 408, and tower's `Elapsed` error.
    for path in ["/slow", "/deadline"] {
        let reply = server.get(Wire::Bulk, path).await;
        reply.assert_error(408, "application/json", json!({"error": "request_timeout"}));
        let reply = server.get(Wire::Coded, path).await;
        reply.assert_error(
            408,
            "application/json",
            json!({"code": 2, "message": "Server not available", "errors": ["request_timeout"]}),
        );
        let reply = server.get(Wire::Problem, path).await;
        reply.assert_error(
            408,
            PROBLEM,
            problem(408, "Request Timeout", "request_timeout"),
        );
    }
}

#[tokio::test]
async fn load_shedding_gets_service_unavailable() {
    let server = Server::start().await;
    let expected = [
        (
            Wire::Bulk,
            0,
            "application/json",
            json!({"error": "service_unavailable"}),
        ),
        (
            Wire::Coded,
            1,
            "application/json",
            json!({"code": 2, "message": "Server not available", "errors": []}),
        ),
        (
            Wire::Problem,
            0,
            PROBLEM,
            problem(503, "Service Unavailable", "service_unavailable"),
        ),
    ];
    for (wire, gate, content_type, body) in expected {
        let gate = server.gates[gate].clone();
        // The first request takes the only slot and waits inside the handler.
        let first = server.get(wire, "/busy");
        let first = async {
            let reply = first.await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.body, "done");
        };
        let second = async {
            gate.entered.notified().await;
            let reply = server.get(wire, "/busy").await;
            gate.release.add_permits(1);
            reply
        };
        // A guard against a hang should shedding ever stop working, not a timing assertion.
        let ((), reply) = tokio::time::timeout(Duration::from_secs(30), async {
            tokio::join!(first, second)
        })
        .await
        .expect("the second request is shed, not queued");
        reply.assert_error(503, content_type, body);
    }
}

#[tokio::test]
async fn inner_errors_get_server_error_without_their_text() {
    let server = Server::start().await;
    let expected = [
        (
            Wire::Bulk,
            "application/json",
            json!({"error": "server_error"}),
        ),
        (
            Wire::Coded,
            "application/json",
            json!({"code": 1, "message": "Server error", "errors": []}),
        ),
        (
            Wire::Problem,
            PROBLEM,
            problem(500, "Internal Server Error", "server_error"),
        ),
    ];
    for (wire, content_type, body) in expected {
        let reply = server.get(wire, "/fail").await;
        reply.assert_error(500, content_type, body);
        let text = String::from_utf8_lossy(&reply.body);
        assert!(!text.contains("hunter2") && !text.contains("10.0.0.7"));
    }
}

#[tokio::test]
async fn contract_responses_pass_byte_for_byte() {
    let server = Server::start().await;
    for wire in [Wire::Bulk, Wire::Coded, Wire::Problem] {
        let reply = server.get(wire, "/contract").await;
        assert_eq!(reply.status, 409);
        assert_eq!(
            reply.header(header::CONTENT_TYPE),
            "application/json; charset=utf-8"
        );
        assert_eq!(reply.header("x-kept"), "yes");
        assert_eq!(reply.body, CONTRACT_BODY, "{wire:?}");
    }
}

#[tokio::test]
async fn a_handlers_unrendered_error_is_written_in_the_requests_dialect() {
    let server = Server::start().await;
    let reply = server.get(Wire::Bulk, "/unrendered").await;
    reply.assert_error(
        409,
        "application/json",
        json!({"error": "record_not_active"}),
    );
    assert_eq!(reply.header("x-kept"), "yes");
    let reply = server.get(Wire::Coded, "/unrendered").await;
    reply.assert_error(
        409,
        "application/json",
        json!({"code": 11, "message": "Record not active", "errors": []}),
    );
    assert_eq!(reply.header("x-kept"), "yes");
    let reply = server.get(Wire::Problem, "/unrendered").await;
    reply.assert_error(409, PROBLEM, problem(409, "Conflict", "record_not_active"));
}

#[tokio::test]
async fn bodies_already_in_the_dialect_are_left_alone() {
    let server = Server::start().await;
    let reply = server.get(Wire::Bulk, "/own").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header(header::CONTENT_TYPE), "application/json");
    assert_eq!(reply.body, OWN_BODY);
    // Written again for a client of another dialect, code and index kept.
    let reply = server.get(Wire::Coded, "/own").await;
    reply.assert_error(
        404,
        "application/json",
        json!({"code": 10, "message": "Record not found", "errors": ["object_not_found"]}),
    );
    let reply = server.get(Wire::Problem, "/own").await;
    let mut expected = problem(404, "Not Found", "object_not_found");
    expected["_idx"] = 1.into();
    reply.assert_error(404, PROBLEM, expected);
}

#[tokio::test]
async fn streaming_successes_pass_untouched() {
    let server = Server::start().await;
    let expected: Vec<u8> = stream_chunks().concat();
    for wire in [Wire::Bulk, Wire::Coded, Wire::Problem] {
        let reply = server.get(wire, "/stream").await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header(header::CONTENT_TYPE),
            "application/octet-stream"
        );
        assert_eq!(reply.header(header::TRANSFER_ENCODING), "chunked");
        assert_eq!(reply.body, expected, "{wire:?}");
    }
}

#[tokio::test]
async fn head_requests_get_headers_without_a_body() {
    let server = Server::start().await;
    let expected = [
        (
            Wire::Bulk,
            "application/json",
            r#"{"error":"not_found"}"#.len(),
        ),
        (
            Wire::Coded,
            "application/json",
            r#"{"code":10,"message":"Record not found","errors":["not_found"]}"#.len(),
        ),
        (
            Wire::Problem,
            PROBLEM,
            r#"{"type":"about:blank","title":"Not Found","status":404,"code":"not_found"}"#.len(),
        ),
    ];
    for (wire, content_type, length) in expected {
        let reply = server
            .send(wire, Method::HEAD, "/nope", &[], Bytes::new())
            .await;
        assert_eq!(reply.status, 404, "{wire:?}");
        assert_eq!(reply.header(header::CONTENT_TYPE), content_type);
        assert_eq!(reply.header(header::CONTENT_LENGTH), length.to_string());
        assert!(reply.body.is_empty());
    }
    // A HEAD on a route that exists is a success and passes.
    let reply = server
        .send(
            Wire::Bulk,
            Method::HEAD,
            "/courses?page=1&page_size=2",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty());
}
