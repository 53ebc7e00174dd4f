use std::{
    convert::Infallible,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
};

use axum::{extract::Query, Json};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{json, Value};
use tower::{service_fn, Layer, Service, ServiceExt};

use super::*;
use crate::{
    dialect::{Bulk, Coded, DialectByPath, RenderedError},
    error::{ApiError, ErrorCode, FieldError},
};

const TEXT: &str = "text/plain; charset=utf-8";

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    email: String,
    age: u8,
    address: Option<Address>,
    tags: Option<Vec<u32>>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct Address {
    zip: u32,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct Courses {
    page: u32,
    page_size: u32,
    archived: Option<bool>,
}

/// What the layer makes of axum's own rejection of `body` as `Json<Vec<User>>`.
fn json_rejection(body: &str) -> ApiError {
    let rejection = Json::<Vec<User>>::from_bytes(body.as_bytes())
        .err()
        .expect("axum rejects the body");
    parse_rejection(
        rejection.status(),
        Some(TEXT),
        rejection.body_text().as_bytes(),
    )
}

/// What the layer makes of axum's own rejection of `query` as `Query<Courses>`.
fn query_rejection(query: &str) -> ApiError {
    let uri: http::Uri = format!("/v1/courses?{query}").parse().unwrap();
    let rejection = Query::<Courses>::try_from_uri(&uri)
        .err()
        .expect("axum rejects the query");
    parse_rejection_with_query(
        rejection.status(),
        Some(TEXT),
        rejection.body_text().as_bytes(),
        uri.query(),
    )
}

fn field(error: &ApiError) -> (&str, &str, Option<&str>) {
    assert_eq!(error.code(), &ErrorCode::ValidationErrors, "{error:?}");
    let [field] = error.validation_errors() else {
        panic!("one field error expected: {error:?}");
    };
    (field.field(), field.error(), field.message())
}

#[test]
fn json_data_errors_become_field_errors_with_the_item_index() {
    let cases = [
        (
            r#"[{"email":"a","age":1},{"age":2}]"#,
            Some(1),
            (
                "email",
                "required",
                "[1].email: A value is required for 'email'.",
            ),
        ),
        (
            r#"[{"email":"a","age":1},{"email":3,"age":2}]"#,
            Some(1),
            (
                "email",
                "invalid_type",
                "[1].email: The value for 'email' has the wrong type.",
            ),
        ),
        (
            r#"[{"email":"a","age":300}]"#,
            Some(0),
            (
                "age",
                "invalid_value",
                "[0].age: The value is not valid for 'age'.",
            ),
        ),
        (
            r#"[{"email":"a","age":1,"bogus":1}]"#,
            Some(0),
            (
                "bogus",
                "unknown_field",
                "[0].bogus: 'bogus' is not a known field.",
            ),
        ),
        (
            r#"[{"email":"a","age":1,"email":"b"}]"#,
            Some(0),
            (
                "email",
                "duplicate_field",
                "[0].email: 'email' is given more than once.",
            ),
        ),
        (
            r#"[{"email":"a","age":1,"address":{}}]"#,
            Some(0),
            (
                "address.zip",
                "required",
                "[0].address.zip: A value is required for 'address.zip'.",
            ),
        ),
        (
            r#"[{"email":"a","age":1,"address":{"zip":"x"}}]"#,
            Some(0),
            (
                "address.zip",
                "invalid_type",
                "[0].address.zip: The value for 'address.zip' has the wrong type.",
            ),
        ),
        (
            r#"[{"email":"a","age":1,"tags":[1,"x"]}]"#,
            Some(0),
            (
                "tags[1]",
                "invalid_type",
                "[0].tags[1]: The value for 'tags[1]' has the wrong type.",
            ),
        ),
        (
            r#"[{"email":"a","age":1},1]"#,
            Some(1),
            (
                "object",
                "invalid_type",
                "[1]: The value has the wrong type.",
            ),
        ),
        (
            r#"{"email":"a"}"#,
            None,
            ("object", "invalid_type", "The value has the wrong type."),
        ),
    ];
    for (body, index, expected) in cases {
        let error = json_rejection(body);
        assert_eq!(error.status(), 422, "{body}");
        assert_eq!(error.index(), index, "{body}");
        let (name, code, message) = field(&error);
        assert_eq!((name, code, message.unwrap()), expected, "{body}");
        // Nothing of serde's own text (types, positions) reaches the client.
        assert!(!message.unwrap().contains("line"), "{body}");
        assert!(!message.unwrap().contains("expected"), "{body}");
    }
}

#[test]
fn json_syntax_errors_become_invalid_json_with_the_position() {
    let cases = [
        (
            r#"[{"email":"a",]"#,
            "The body is not valid JSON: key must be a string at line 1 column 15.",
        ),
        (
            r#"[{"email":"a","age":1}] x"#,
            "The body is not valid JSON: trailing characters at line 1 column 25.",
        ),
        (
            "",
            "The body is not valid JSON: EOF while parsing a value at line 1 column 0.",
        ),
        (
            r#"[{"email":"a","age":1e999}]"#,
            "The body is not valid JSON: number out of range at line 1 column 25.",
        ),
    ];
    for (body, detail) in cases {
        let error = json_rejection(body);
        assert_eq!(error.code(), &ErrorCode::InvalidJson, "{body}");
        assert_eq!(error.status(), 400);
        assert_eq!(error.details(), [detail]);
        assert!(error.validation_errors().is_empty());
    }
    // An unknown message after the prefix is not repeated.
    let error = parse_rejection(
        StatusCode::BAD_REQUEST,
        Some(TEXT),
        b"Failed to parse the request body as JSON: something internal",
    );
    assert_eq!(error.details(), ["The body is not valid JSON."]);
}

#[test]
fn query_errors_name_the_parameter_and_quote_its_value() {
    let error = query_rejection("page=1&page_size=X");
    assert_eq!(error.status(), 400);
    assert_eq!(error.index(), None);
    assert_eq!(
        field(&error),
        (
            "page_size",
            "invalid_value",
            Some("page_size: The value 'X' is not valid for 'page_size'.")
        )
    );
    assert_eq!(
        field(&query_rejection("page=1")),
        (
            "page_size",
            "required",
            Some("page_size: A value is required for 'page_size'.")
        )
    );
    assert_eq!(
        field(&query_rejection("page=1&page_size=2&archived=maybe%20not")),
        (
            "archived",
            "invalid_value",
            Some("archived: The value 'maybe not' is not valid for 'archived'.")
        )
    );
    assert_eq!(
        field(&query_rejection("page=1&page=2&page_size=1")).1,
        "duplicate_field"
    );
    // A value too long to quote is described without it.
    let long = "9".repeat(100);
    assert_eq!(
        field(&query_rejection(&format!("page=1&page_size={long}"))).2,
        Some("page_size: The value is not valid for 'page_size'.")
    );
}

#[test]
fn content_type_rejections_become_unsupported_media_type() {
    let rejection = axum::extract::rejection::MissingJsonContentType::default();
    let error = parse_rejection(
        rejection.status(),
        Some(TEXT),
        rejection.body_text().as_bytes(),
    );
    assert_eq!(error.code(), &ErrorCode::UnsupportedMediaType);
    assert_eq!(error.status(), 415);
    assert_eq!(
        error.details(),
        ["Expected `Content-Type: application/json`."]
    );
}

#[test]
fn path_rejections_name_the_parameter() {
    let error = parse_rejection(
        StatusCode::BAD_REQUEST,
        Some(TEXT),
        b"Invalid URL: Cannot parse `id` with value `abc` to a `u32`",
    );
    assert_eq!(
        field(&error),
        (
            "id",
            "invalid_value",
            Some("id: The value 'abc' is not valid for 'id'.")
        )
    );
}

#[test]
fn bare_statuses_get_their_code() {
    for (status, code) in [
        (404, "not_found"),
        (405, "method_not_allowed"),
        (408, "request_timeout"),
        (409, "conflict"),
        (413, "payload_too_large"),
        (500, "server_error"),
        (503, "service_unavailable"),
    ] {
        let status = StatusCode::from_u16(status).unwrap();
        for content_type in [None, Some(TEXT)] {
            let error = parse_rejection(status, content_type, b"");
            assert_eq!(error.code().as_str(), code);
            assert_eq!(error.status(), status);
        }
    }
    // Text that is not a known rejection says nothing; a 5xx's text is never read.
    let error = parse_rejection(StatusCode::BAD_REQUEST, Some(TEXT), b"nope: database down");
    assert_eq!(error, ApiError::from_status(StatusCode::BAD_REQUEST));
    let error = parse_rejection(
        StatusCode::INTERNAL_SERVER_ERROR,
        Some(TEXT),
        b"Failed to deserialize query string: password: hunter2",
    );
    assert_eq!(error, ApiError::server_error());
    let error = parse_rejection(StatusCode::NOT_FOUND, Some("text/html"), b"<h1>Nope</h1>");
    assert_eq!(error.code(), &ErrorCode::NotFound);
}

#[test]
fn contract_json_bodies_keep_their_code() {
    let json = Some("application/json");
    let error = parse_rejection(
        StatusCode::NOT_FOUND,
        json,
        br#"{"error":"object_not_found","_idx":1}"#,
    );
    assert_eq!(error.code(), &ErrorCode::ObjectNotFound);
    assert_eq!(error.index(), Some(1));

    let error = parse_rejection(
        StatusCode::UNPROCESSABLE_ENTITY,
        json,
        br#"{"error":"validation_errors","_idx":2,"validation_errors":[{"field":"email","error":"must_be_unique"}]}"#,
    );
    assert_eq!(error.status(), 422);
    assert_eq!(
        error.validation_errors(),
        [FieldError::new("email", "must_be_unique")]
    );

    let error = parse_rejection(StatusCode::CONFLICT, json, br#"{"error":"object_locked"}"#);
    assert_eq!(error.code().as_str(), "object_locked");
    assert_eq!(error.status(), 409);

    let error = parse_rejection(
        StatusCode::NOT_FOUND,
        json,
        br#"{"code":10,"message":"Record not found","errors":["course 7"]}"#,
    );
    assert_eq!(error.code(), &ErrorCode::RecordNotFound);
    assert_eq!(error.details(), ["course 7"]);

    let error = parse_rejection(
        StatusCode::BAD_REQUEST,
        Some("application/problem+json"),
        br#"{"type":"about:blank","title":"Bad Request","status":400,"code":"too_many_items"}"#,
    );
    assert_eq!(error.code(), &ErrorCode::TooManyItems);

    for body in [
        &br#"{"error":"Something Bad Happened"}"#[..],
        br#"{"error":{"message":"x"}}"#,
        br#"{"code":99,"message":"x"}"#,
        br#"[1,2]"#,
        b"{",
    ] {
        assert_eq!(
            parse_rejection(StatusCode::BAD_REQUEST, json, body),
            ApiError::from_status(StatusCode::BAD_REQUEST)
        );
    }
}

proptest! {
    #[test]
    fn parsing_is_total(
        status in 400u16..600,
        prefix in prop::sample::select(vec![
            "",
            "Failed to parse the request body as JSON: ",
            "Failed to deserialize the JSON body into the target type: ",
            "Failed to deserialize query string: ",
            "Failed to deserialize form: ",
            "Invalid URL: Cannot parse `",
            "Invalid URL: Cannot parse value at index ",
            "{\"error\":",
        ]),
        rest in ".{0,80}",
        query in proptest::option::of("[a-z=&%+0-9]{0,20}"),
        content_type in proptest::option::of(prop::sample::select(vec![
            "text/plain", "application/json", "application/problem+json", "TEXT/PLAIN; x",
        ])),
    ) {
        let status = StatusCode::from_u16(status).unwrap();
        let body = format!("{prefix}{rest}");
        let error = parse_rejection_with_query(status, content_type, body.as_bytes(), query.as_deref());
        prop_assert_eq!(error.status(), status);
        for field in error.validation_errors() {
            prop_assert!(!field.field().is_empty());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(status in 100u16..1000, body in prop::collection::vec(any::<u8>(), 0..64)) {
        let status = StatusCode::from_u16(status).unwrap();
        let _ = parse_rejection(status, Some(TEXT), &body);
        let _ = parse_rejection(status, Some("application/json"), &body);
    }
}

// --- The service ----------------------------------------------------------------------------

/// A body of `frames` chunks of `chunk` bytes (endless with `None`), counting its polls.
struct Probe {
    frames: Option<usize>,
    chunk: Bytes,
    polls: Arc<AtomicUsize>,
    hint: SizeHint,
}

impl Probe {
    fn new(frames: Option<usize>, chunk: &'static [u8]) -> (Self, Arc<AtomicUsize>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let hint = match frames {
            Some(frames) => SizeHint::with_exact((frames * chunk.len()) as u64),
            None => SizeHint::default(),
        };
        let probe = Probe {
            frames,
            chunk: Bytes::from_static(chunk),
            polls: polls.clone(),
            hint,
        };
        (probe, polls)
    }
}

impl Body for Probe {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        match &mut self.frames {
            Some(0) => Poll::Ready(None),
            Some(left) => {
                *left -= 1;
                Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
            }
            None => Poll::Ready(Some(Ok(Frame::data(self.chunk.clone())))),
        }
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// Answers every request with `response()`.
fn answering<B, F>(
    response: F,
) -> impl Service<Request<()>, Response = Response<B>, Error = Infallible, Future: Send> + Clone
where
    F: Fn() -> Response<B> + Clone + Send + 'static,
    B: Send + 'static,
{
    service_fn(move |_: Request<()>| {
        let response = response.clone();
        async move { Ok::<_, Infallible>(response()) }
    })
}

async fn call<S, B>(service: S, request: Request<()>) -> Response<crate::body::ResponseBody<B>>
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes>,
{
    NormalizeLayer::new()
        .dialect(DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new()))
        .layer(service)
        .oneshot(request)
        .await
        .unwrap()
}

async fn bytes<B>(body: B) -> Bytes
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    body.collect().await.unwrap().to_bytes()
}

fn get(path: &str) -> Request<()> {
    Request::get(path).body(()).unwrap()
}

fn text_response(status: u16, text: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, TEXT)
        .body(Full::from(text))
        .unwrap()
}

#[tokio::test]
async fn success_bodies_are_never_polled_by_the_layer() {
    let polls = Arc::new(AtomicUsize::new(0));
    let service = {
        let polls = polls.clone();
        service_fn(move |_: Request<()>| {
            let (mut probe, counter) = Probe::new(Some(16), &[7; 1024]);
            probe.polls = polls.clone();
            drop(counter);
            async move { Ok::<_, Infallible>(Response::new(probe)) }
        })
    };
    let response = call(service, get("/v1/things")).await;
    assert_eq!(response.status(), 200);
    assert!(!response.body().is_error());
    assert_eq!(polls.load(Ordering::SeqCst), 0);
    assert_eq!(response.body().size_hint().exact(), Some(16 * 1024));
    assert_eq!(bytes(response.into_body()).await, vec![7; 16 * 1024]);
}

#[tokio::test]
async fn marked_responses_pass_untouched() {
    let service = answering(|| {
        let mut response = text_response(409, "not even JSON");
        RenderedError::mark(&mut response, &ApiError::new(ErrorCode::RecordNotActive));
        response
    });
    let response = call(service, get("/v1/customer/courses")).await;
    assert_eq!(response.status(), 409);
    assert_eq!(response.headers()[header::CONTENT_TYPE], TEXT);
    assert!(!response.body().is_error());
    assert_eq!(bytes(response.into_body()).await, "not even JSON");
}

#[tokio::test]
async fn grpc_statuses_pass_untouched() {
    let service = answering(|| {
        let mut response = text_response(404, "");
        response
            .headers_mut()
            .insert("grpc-status", HeaderValue::from_static("5"));
        response
    });
    let response = call(service, get("/v1/things")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()["grpc-status"], "5");
    assert!(!response.body().is_error());
}

#[tokio::test]
async fn grpc_requests_get_trailers_only_without_reading_the_body() {
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    let service = service_fn(move |_: Request<()>| {
        let (mut probe, _) = Probe::new(Some(1), b"length limit exceeded");
        probe.polls = counter.clone();
        let response = Response::builder()
            .status(413)
            .header(header::CONTENT_TYPE, TEXT)
            .header(header::RETRY_AFTER, "10")
            .body(probe)
            .unwrap();
        async move { Ok::<_, Infallible>(response) }
    });
    let request = Request::post("/bulk.Webhooks/Create")
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(())
        .unwrap();
    let response = call(service, request).await;
    assert_eq!(polls.load(Ordering::SeqCst), 0);
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/grpc");
    assert_eq!(response.headers()["grpc-status"], "8");
    assert_eq!(response.headers()["grpc-message"], "payload_too_large");
    assert_eq!(response.headers()[header::RETRY_AFTER], "10");
    assert!(response.headers().get(header::CONTENT_LENGTH).is_none());
    assert_eq!(bytes(response.into_body()).await, "");
}

#[tokio::test]
async fn bodies_declared_too_large_are_not_read() {
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    let service = service_fn(move |_: Request<()>| {
        let (mut probe, _) = Probe::new(Some(8), &[b'x'; 1024]);
        probe.polls = counter.clone();
        let response = Response::builder().status(400).body(probe).unwrap();
        async move { Ok::<_, Infallible>(response) }
    });
    let response = call(service, get("/v1/things")).await;
    assert_eq!(polls.load(Ordering::SeqCst), 0);
    assert_eq!(response.status(), 400);
    assert_eq!(
        bytes(response.into_body()).await,
        r#"{"error":"bad_request"}"#
    );
}

#[tokio::test]
async fn endless_bodies_are_read_only_up_to_the_limit() {
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    let service = service_fn(move |_: Request<()>| {
        let (mut probe, _) = Probe::new(None, &[b'x'; 1000]);
        probe.polls = counter.clone();
        let response = Response::builder().status(503).body(probe).unwrap();
        async move { Ok::<_, Infallible>(response) }
    });
    let response = call(service, get("/v1/things")).await;
    // Four frames fit the 4 KiB budget, the fifth does not.
    assert_eq!(polls.load(Ordering::SeqCst), 5);
    assert_eq!(response.status(), 503);
    assert_eq!(
        bytes(response.into_body()).await,
        r#"{"error":"service_unavailable"}"#
    );

    // Empty frames count against the budget too: a body of endless empty frames ends the read.
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    let service = service_fn(move |_: Request<()>| {
        let (mut probe, _) = Probe::new(None, b"");
        probe.polls = counter.clone();
        let response = Response::builder().status(404).body(probe).unwrap();
        async move { Ok::<_, Infallible>(response) }
    });
    let response = NormalizeLayer::new()
        .body_limit(16)
        .layer(service)
        .oneshot(get("/"))
        .await
        .unwrap();
    assert_eq!(polls.load(Ordering::SeqCst), 17);
    assert_eq!(
        bytes(response.into_body()).await,
        r#"{"error":"not_found"}"#
    );

    // A zero budget never reads.
    let polls = Arc::new(AtomicUsize::new(0));
    let counter = polls.clone();
    let service = service_fn(move |_: Request<()>| {
        let (mut probe, _) = Probe::new(None, b"x");
        probe.polls = counter.clone();
        let response = Response::builder().status(400).body(probe).unwrap();
        async move { Ok::<_, Infallible>(response) }
    });
    let response = NormalizeLayer::new()
        .body_limit(0)
        .layer(service)
        .oneshot(get("/"))
        .await
        .unwrap();
    assert_eq!(polls.load(Ordering::SeqCst), 0);
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn unreadable_bodies_are_replaced() {
    struct Broken;
    impl Body for Broken {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Ready(Some(Err(std::io::Error::other("reset"))))
        }
    }
    let service = answering(|| Response::builder().status(502).body(Broken).unwrap());
    let response = call(service, get("/v1/things")).await;
    assert_eq!(response.status(), 502);
    assert_eq!(
        bytes(response.into_body()).await,
        r#"{"error":"bad_gateway"}"#
    );
}

#[tokio::test]
async fn head_requests_get_headers_only() {
    let service = answering(|| text_response(404, ""));
    let request = Request::head("/v1/nope").body(()).unwrap();
    let response = call(service, request).await;
    assert_eq!(response.status(), 404);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        response.headers()[header::CONTENT_LENGTH],
        r#"{"error":"not_found"}"#.len().to_string().as_str()
    );
    assert_eq!(bytes(response.into_body()).await, "");
}

#[tokio::test]
async fn meaningful_headers_are_kept_and_body_headers_dropped() {
    let service = answering(|| {
        Response::builder()
            .status(405)
            .header(header::ALLOW, "GET,HEAD")
            .header(header::CACHE_CONTROL, "no-store")
            .header(header::VARY, "origin")
            .header(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")
            .header("x-request-id", "a")
            .header("x-request-id", "b")
            .header(header::CONTENT_TYPE, "text/html")
            .header(header::CONTENT_LENGTH, "11")
            .header(header::CONTENT_ENCODING, "identity")
            .header(header::CONTENT_LANGUAGE, "en")
            .header(header::ETAG, "\"abc\"")
            .body(Full::<Bytes>::from("<h1>405</h1>"))
            .unwrap()
    });
    let response = call(service, get("/v1/courses")).await;
    let headers = response.headers();
    assert_eq!(response.status(), 405);
    assert_eq!(headers[header::ALLOW], "GET,HEAD");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::VARY], "origin");
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(
        headers.get_all("x-request-id").iter().collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let body = r#"{"error":"method_not_allowed"}"#;
    assert_eq!(
        headers[header::CONTENT_LENGTH],
        body.len().to_string().as_str()
    );
    for dropped in [
        header::CONTENT_ENCODING,
        header::CONTENT_LANGUAGE,
        header::ETAG,
    ] {
        assert!(headers.get(&dropped).is_none(), "{dropped}");
    }
    assert!(response.extensions().get::<RenderedError>().is_some());
    assert_eq!(bytes(response.into_body()).await, body);
}

#[tokio::test]
async fn a_precise_www_authenticate_wins_over_the_default() {
    let service = answering(|| {
        Response::builder()
            .status(401)
            .header(header::WWW_AUTHENTICATE, "Basic realm=\"api\"")
            .body(Full::<Bytes>::default())
            .unwrap()
    });
    let response = call(service, get("/v1/things")).await;
    assert_eq!(
        response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .collect::<Vec<_>>(),
        ["Basic realm=\"api\""]
    );
    let response = call(answering(|| text_response(401, "")), get("/v1/things")).await;
    assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
}

#[tokio::test]
async fn bodies_in_the_dialect_pass_as_the_same_bytes() {
    const BODY: &str = r#"{"error":"object_not_found", "_idx": 1}"#;
    let service = answering(|| {
        Response::builder()
            .status(404)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, BODY.len())
            .header(header::ETAG, "\"v1\"")
            .body(Full::<Bytes>::from(BODY))
            .unwrap()
    });
    let response = call(service.clone(), get("/v1/webhooks")).await;
    assert_eq!(response.headers()[header::ETAG], "\"v1\"");
    assert!(response.extensions().get::<RenderedError>().is_none());
    assert_eq!(bytes(response.into_body()).await, BODY);

    // The same body on a coded route is written in the coded dialect.
    let response = call(service.clone(), get("/v1/customer/courses")).await;
    assert_eq!(response.status(), 404);
    assert!(response.headers().get(header::ETAG).is_none());
    let body: Value = serde_json::from_slice(&bytes(response.into_body()).await).unwrap();
    assert_eq!(
        body,
        json!({"code": 10, "message": "Record not found", "errors": ["object_not_found"]})
    );

    // And as problem details for a client that asks for them.
    let request = Request::get("/v1/webhooks")
        .header(header::ACCEPT, "application/problem+json")
        .body(())
        .unwrap();
    let response = call(service, request).await;
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body: Value = serde_json::from_slice(&bytes(response.into_body()).await).unwrap();
    assert_eq!(body["code"], "object_not_found");
    assert_eq!(body["_idx"], 1);
    assert_eq!(body["status"], 404);
}

#[tokio::test]
async fn inner_errors_become_responses() {
    fn failing(
        error: fn() -> BoxError,
    ) -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = BoxError> {
        service_fn(move |_: Request<()>| async move { Err(error()) })
    }
    type Case = (fn() -> BoxError, u16, &'static str);
    let cases: [Case; 3] = [
        (
            || Box::new(tower::timeout::error::Elapsed::new()),
            408,
            r#"{"error":"request_timeout"}"#,
        ),
        (
            || Box::new(tower::load_shed::error::Overloaded::new()),
            503,
            r#"{"error":"service_unavailable"}"#,
        ),
        (
            || "connect to db (password=hunter2) failed".into(),
            500,
            r#"{"error":"server_error"}"#,
        ),
    ];
    for (error, status, body) in cases {
        let response = call(failing(error), get("/v1/things")).await;
        assert_eq!(response.status(), status);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(bytes(response.into_body()).await, body);
    }
    let response = call(failing(|| "secret".into()), get("/v1/customer/x")).await;
    assert_eq!(
        bytes(response.into_body()).await,
        r#"{"code":1,"message":"Server error","errors":[]}"#
    );
    let grpc = Request::post("/pkg.Svc/Call")
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(())
        .unwrap();
    let response = call(failing(|| "secret".into()), grpc).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["grpc-status"], "13");
    assert_eq!(response.headers()["grpc-message"], "server_error");
}

#[tokio::test]
async fn custom_classifiers_are_used() {
    let service = service_fn(|_: Request<()>| async {
        Err::<Response<Full<Bytes>>, _>(std::io::Error::other("quota"))
    });
    let response = NormalizeLayer::new()
        .classify_error(|_: BoxError| ApiError::new(ErrorCode::TooManyRequests))
        .layer(service)
        .oneshot(get("/"))
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
}

/// `poll_ready` fails; `call` must then never be reached.
#[derive(Clone)]
struct NeverReady;

impl Service<Request<()>> for NeverReady {
    type Response = Response<Full<Bytes>>;
    type Error = tower::load_shed::error::Overloaded;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Err(tower::load_shed::error::Overloaded::new()))
    }

    fn call(&mut self, _request: Request<()>) -> Self::Future {
        panic!("called while not ready")
    }
}

#[tokio::test]
async fn poll_ready_errors_are_answered_without_calling_the_service() {
    let mut service = Normalize::new(NeverReady);
    let response = service.ready().await.unwrap().call(get("/")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(
        bytes(response.into_body()).await,
        r#"{"error":"service_unavailable"}"#
    );
}

#[tokio::test]
async fn problem_details_are_negotiated_by_accept() {
    let service = answering(|| {
        text_response(
            422,
            "Failed to deserialize the JSON body into the target type: [1]: missing field `email` at line 1 column 30",
        )
    });
    let request = Request::post("/v1/customer/users")
        .header(
            header::ACCEPT,
            "application/problem+json, application/json;q=0.5",
        )
        .body(())
        .unwrap();
    let response = call(service, request).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body: Value = serde_json::from_slice(&bytes(response.into_body()).await).unwrap();
    assert_eq!(
        body,
        json!({
            "type": "about:blank", "title": "Unprocessable Entity", "status": 422,
            "detail": "[1].email: A value is required for 'email'.",
            "code": "validation_errors", "_idx": 1,
            "validation_errors": [{"field": "email", "error": "required"}]
        })
    );
}

#[test]
fn layers_and_services_print_without_their_closures() {
    let layer = NormalizeLayer::new()
        .body_limit(100)
        .classify_error(|_: BoxError| ApiError::server_error());
    let printed = format!("{layer:?}");
    assert!(printed.contains("body_limit: 100"), "{printed}");
    assert!(printed.contains("Bulk"), "{printed}");
    let service = Normalize::new(());
    assert!(format!("{service:?}").starts_with("Normalize"));
    let _: &() = service.get_ref();
    let cloned = service.clone();
    let () = cloned.into_inner();
}
