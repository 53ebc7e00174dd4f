//! axum handlers that speak the contract (feature `axum`), over real sockets: a handler's
//! `ApiError` in the request's dialect and wire, the typed extractors, the typed bulk body
//! with and without the batch limit layer in front of it.
#![cfg(feature = "axum")]

use std::fmt;

use axum::{
    extract::Path,
    routing::{get, post},
    Router,
};
use bytes::Bytes;
use http::{header, HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_api_errors::{
    auth::{AuthLayer, InMemoryKeyStore, KeyExtractor, KeySet, Principal},
    axum::{BulkJson, BulkJsonConfig, Json, Query},
    batch_limit::BatchLimitLayer,
    bulk::BulkWrite,
    dialect::{Bulk, Coded, DialectByPath},
    normalize::NormalizeLayer,
    ApiError, ErrorCode, ErrorFormat,
};

const KEY: &str = "test_admin_key";

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Address {
    city: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct User {
    email: String,
    address: Address,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Page {
    page: u32,
    page_size: u32,
}

/// An error of the service's own, turned into the contract's by `?`.
#[derive(Debug)]
struct Missing(String);

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no {}", self.0)
    }
}

impl From<Missing> for ApiError {
    fn from(_: Missing) -> Self {
        ApiError::new(ErrorCode::ObjectNotFound)
    }
}

fn find(id: &str) -> Result<String, Missing> {
    match id {
        "web_1" | "1" => Ok(format!("found {id}")),
        other => Err(Missing(other.to_owned())),
    }
}

async fn show(Path(id): Path<String>) -> Result<String, ApiError> {
    Ok(find(&id)?)
}

async fn create_users(users: BulkJson<User>) -> BulkWrite<User> {
    let mut results = BulkWrite::with_capacity(users.len());
    for user in users {
        match user {
            Ok(user) if user.email.contains('@') => results.push_ok(user),
            Ok(_) => results.push_result(Err(ApiError::new(ErrorCode::ValueNotValid))),
            Err(error) => results.push_item_error(error),
        };
    }
    results
}

async fn create_course(Json(course): Json<Value>) -> Json<Value> {
    Json(course)
}

async fn courses(Query(page): Query<Page>) -> String {
    format!("page {}", page.page)
}

async fn whoami(principal: Principal, format: ErrorFormat) -> String {
    format!("{} {:?}", principal.account_id(), format.path())
}

fn dialect() -> DialectByPath {
    DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new())
}

fn routes() -> Router {
    let counted = Router::new()
        .route("/v1/users", post(create_users))
        .route(
            "/v1/arrays/users",
            post(create_users)
                .route_layer(axum::Extension(BulkJsonConfig::new().single_value(false))),
        )
        .layer(BatchLimitLayer::new().dialect(dialect()));
    Router::new()
        .route("/v1/webhooks/{id}", get(show))
        .route("/v1/customer/courses/{id}", get(show))
        .route("/v1/customer/courses", get(courses).post(create_course))
        .route("/v1/plain/users", post(create_users))
        .route("/v1/whoami", get(whoami))
        .merge(counted)
}

async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// The whole contract stack around the routes.
async fn contract_server() -> String {
    let keys = KeySet::new()
        .with_key(
            KEY,
            Principal::new("acct_123").with_roles(["read", "write"]),
        )
        .unwrap();
    let app = routes().layer(
        ServiceBuilder::new()
            .layer(NormalizeLayer::new().dialect(dialect()))
            .layer(
                AuthLayer::new(InMemoryKeyStore::new(keys))
                    .keys(KeyExtractor::header(header::HeaderName::from_static(
                        "x-api-key",
                    )))
                    .dialect(dialect()),
            ),
    );
    serve(app).await
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }
}

async fn send(
    base: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http();
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("x-api-key", KEY);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test]
async fn a_handlers_error_is_bulk_on_a_bulk_route() {
    let base = contract_server().await;
    let reply = send(&base, Method::GET, "/v1/webhooks/web_1", &[], "").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "found web_1");

    let reply = send(&base, Method::GET, "/v1/webhooks/web_9", &[], "").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        reply.headers[header::CONTENT_LENGTH],
        reply.body.len().to_string()
    );
    assert_eq!(reply.body, r#"{"error":"object_not_found"}"#);
}

#[tokio::test]
async fn a_handlers_error_is_coded_on_a_coded_route() {
    let base = contract_server().await;
    let reply = send(&base, Method::GET, "/v1/customer/courses/9", &[], "").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        reply.json(),
        json!({"code": 10, "message": "Record not found", "errors": ["object_not_found"]})
    );
}

#[tokio::test]
async fn a_handlers_error_is_problem_details_when_asked() {
    let base = contract_server().await;
    let accept = ("accept", "application/problem+json");
    for path in ["/v1/webhooks/web_9", "/v1/customer/courses/9"] {
        let reply = send(&base, Method::GET, path, &[accept], "").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            reply.headers[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = reply.json();
        assert_eq!(body["status"], 404, "{body}");
        assert_eq!(body["code"], "object_not_found", "{body}");
    }
}

#[tokio::test]
async fn a_handlers_error_is_trailers_only_for_a_grpc_caller() {
    let base = contract_server().await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let request = http::Request::get(format!("{base}/v1/webhooks/web_9"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .header("x-api-key", KEY)
        .body(Full::<Bytes>::default())
        .unwrap();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(parts.headers[header::CONTENT_TYPE], "application/grpc");
    assert_eq!(parts.headers["grpc-status"], "5");
    assert_eq!(parts.headers["grpc-message"], "object_not_found");
    assert!(parts.headers.contains_key("grpc-status-details-bin"));
    assert!(body.collect().await.unwrap().to_bytes().is_empty());
}

#[tokio::test]
async fn outside_any_contract_layer_a_handlers_error_is_bulk() {
    let base = serve(routes()).await;
    let accept = ("accept", "application/problem+json");
    let reply = send(&base, Method::GET, "/v1/customer/courses/9", &[accept], "").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(reply.body, r#"{"error":"object_not_found"}"#);
}

fn one_good_two_bad() -> String {
    json!([
        {"email": "ada@example.com", "address": {"city": "London"}},
        {"address": {"city": "Paris"}},
        {"email": "bob@example.com", "address": {"city": 7}},
    ])
    .to_string()
}

#[tokio::test]
async fn a_bulk_body_answers_each_item() {
    let base = contract_server().await;
    // Through the batch limit layer (its spans reused) and without it (the body split).
    for path in ["/v1/users", "/v1/plain/users"] {
        let reply = send(&base, Method::POST, path, &[JSON], &one_good_two_bad()).await;
        assert_eq!(reply.status, StatusCode::OK, "{path} {:?}", reply.body);
        assert_eq!(
            reply.json(),
            json!([
                {"email": "ada@example.com", "address": {"city": "London"}},
                {"error": "validation_errors", "_idx": 1,
                 "validation_errors": [{"field": "email", "error": "required"}]},
                {"error": "validation_errors", "_idx": 2,
                 "validation_errors": [{"field": "address.city", "error": "invalid_type"}]},
            ]),
            "{path}"
        );
    }
}

#[tokio::test]
async fn bulk_item_codes_and_handler_errors() {
    let base = contract_server().await;
    let body = json!([
        {"email": "ada@example.com", "address": {"city": "London"}, "admin": true},
        {"email": "no-at-sign", "address": {"city": "Paris"}},
        "not an object",
    ])
    .to_string();
    let reply = send(&base, Method::POST, "/v1/users", &[JSON], &body).await;
    assert_eq!(
        reply.json(),
        json!([
            {"error": "validation_errors", "_idx": 0,
             "validation_errors": [{"field": "admin", "error": "unknown_field"}]},
            {"error": "value_not_valid", "_idx": 1},
            {"error": "validation_errors", "_idx": 2,
             "validation_errors": [{"field": "object", "error": "invalid_type"}]},
        ])
    );
}

#[tokio::test]
async fn a_single_object_is_one_item_unless_the_route_opts_out() {
    let base = contract_server().await;
    let one = r#" {"email": "ada@example.com", "address": {"city": "London"}} "#;
    for path in ["/v1/users", "/v1/plain/users"] {
        let reply = send(&base, Method::POST, path, &[JSON], one).await;
        assert_eq!(
            reply.json(),
            json!([{"email": "ada@example.com", "address": {"city": "London"}}]),
            "{path}"
        );
    }
    let reply = send(&base, Method::POST, "/v1/arrays/users", &[JSON], one).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json(),
        json!({"error": "validation_errors",
               "validation_errors": [{"field": "object", "error": "invalid_type"}]})
    );
}

#[tokio::test]
async fn a_bulk_body_that_is_not_json_fails_the_request() {
    let base = contract_server().await;
    for path in ["/v1/users", "/v1/plain/users"] {
        let reply = send(&base, Method::POST, path, &[JSON], r#"[{"email": "a"},"#).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(reply.body, r#"{"error":"invalid_json"}"#, "{path}");
    }
    // Without the batch layer, the body must say it is JSON; with it, the layer's rule holds
    // (a body it counted as JSON is JSON), and a gRPC body is never JSON.
    let text = ("content-type", "text/plain");
    let reply = send(&base, Method::POST, "/v1/plain/users", &[text], "[]").await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(reply.body, r#"{"error":"unsupported_media_type"}"#);
    let reply = send(&base, Method::POST, "/v1/users", &[text], "[]").await;
    assert_eq!(
        (reply.status, &reply.body[..]),
        (StatusCode::OK, &b"[]"[..])
    );
    // No body is no item.
    for path in ["/v1/users", "/v1/plain/users"] {
        let reply = send(&base, Method::POST, path, &[], "").await;
        assert_eq!(
            (reply.status, &reply.body[..]),
            (StatusCode::OK, &b"[]"[..]),
            "{path}"
        );
    }
    // A malformed item inside a well-formed array, on the route without the batch layer.
    let reply = send(&base, Method::POST, "/v1/plain/users", &[JSON], "[{}, {]").await;
    assert_eq!(reply.body, r#"{"error":"invalid_json"}"#);
}

#[tokio::test]
async fn query_and_json_rejections_are_contract_errors() {
    let base = contract_server().await;
    let reply = send(
        &base,
        Method::GET,
        "/v1/customer/courses?page=1&page_size=X",
        &[],
        "",
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body,
        r#"{"code":6,"message":"Model not valid","errors":["page_size: The value 'X' is not valid for 'page_size'."]}"#
    );
    let reply = send(
        &base,
        Method::GET,
        "/v1/customer/courses?page=2&page_size=5",
        &[],
        "",
    )
    .await;
    assert_eq!(reply.body, "page 2");

    let reply = send(&base, Method::POST, "/v1/customer/courses", &[JSON], "{").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["code"], 6);
    let reply = send(&base, Method::POST, "/v1/customer/courses", &[], "{}").await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let reply = send(
        &base,
        Method::POST,
        "/v1/customer/courses",
        &[JSON],
        r#"{"a":1}"#,
    )
    .await;
    assert_eq!(reply.json(), json!({"a": 1}));
}

#[tokio::test]
async fn the_principal_and_the_error_format_are_extracted() {
    let base = contract_server().await;
    let reply = send(&base, Method::GET, "/v1/whoami", &[], "").await;
    assert_eq!(reply.body, r#"acct_123 Some("/v1/whoami")"#);

    // Without the auth layer there is no caller: `unauthorized`, in the default dialect.
    let base = serve(routes()).await;
    let reply = send(&base, Method::GET, "/v1/whoami", &[], "").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(reply.body, r#"{"error":"unauthorized"}"#);
}

#[tokio::test]
async fn head_gets_the_headers_of_a_handlers_error() {
    let base = contract_server().await;
    let reply = send(&base, Method::HEAD, "/v1/webhooks/web_9", &[], "").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.headers[header::CONTENT_LENGTH],
        r#"{"error":"object_not_found"}"#.len().to_string()
    );
    assert!(reply.body.is_empty());
}
