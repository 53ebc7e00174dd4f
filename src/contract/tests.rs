//! The contract's own catch of the application's panics (`catch_panic::hand_on`): the answer,
//! the log line and the stage are those of the catch-panic part.

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, Service, ServiceExt};

use crate::{
    batch_limit::BatchLimitLayer, body::RequestBody, catch_panic::tests::capture, Contract,
    ErrorCode, RenderedError,
};

type AppRequest = Request<RequestBody<Full<Bytes>>>;

/// Panics in its future when the path ends `/future`, in its call when it ends `/call`;
/// answers 200 otherwise.
fn app(
) -> impl Service<AppRequest, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send>
       + Clone
       + Send {
    service_fn(|request: AppRequest| {
        if request.uri().path().ends_with("/call") {
            panic!("deliberate panic in the call");
        }
        async move {
            if request.uri().path().ends_with("/future") {
                panic!("deliberate panic in the future");
            }
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    })
}

fn request(
    method: Method,
    path: &str,
    content_type: &str,
    body: &'static str,
) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

#[tokio::test]
async fn a_panic_of_the_application_is_answered_as_the_catch_panic_part_answers() {
    let (logs, _guard) = capture();
    let service = Contract::bulk()
        .batch_limit(BatchLimitLayer::new())
        .layer(app());
    for (method, path, body, stage) in [
        // A body to read: the application is called from the batch limit's future.
        (Method::POST, "/v1/things/future", "[1]", "response_future"),
        (Method::POST, "/v1/things/call", "[1]", "response_future"),
        // Nothing to read: called from the contract's own call.
        (Method::GET, "/v1/things/call", "", "call"),
        (Method::OPTIONS, "/v1/things/call", "[1]", "call"),
        (Method::GET, "/v1/things/future", "", "response_future"),
    ] {
        let answer = service
            .clone()
            .oneshot(request(method.clone(), path, "application/json", body))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(answer.headers()[header::CONTENT_LENGTH], "24");
        let marker = answer.extensions().get::<RenderedError>().unwrap();
        assert_eq!(marker.error().code(), &ErrorCode::ServerError);
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, r#"{"error":"server_error"}"#);
        let logs = logs.text();
        let line = logs.lines().last().unwrap();
        assert!(line.contains("service panicked"), "{line}");
        assert!(line.contains(&format!("method={method}")), "{line}");
        assert!(line.contains(&format!("path={path} ")), "{line}");
        assert!(line.contains(&format!("stage=\"{stage}\"")), "{line}");
        assert!(!line.contains("deliberate"), "{line}");
    }
    // Nothing of a panic is left over for the next request.
    let answer = service
        .oneshot(request(
            Method::POST,
            "/v1/things",
            "application/json",
            "[1]",
        ))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_grpc_call_that_panics_gets_a_grpc_status() {
    let (_logs, _guard) = capture();
    let service = Contract::bulk().layer(app());
    for path in ["/pkg.Svc/future", "/pkg.Svc/call"] {
        let answer = service
            .clone()
            .oneshot(request(Method::POST, path, "application/grpc", ""))
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()["grpc-status"], "13", "{path}");
    }
}

#[tokio::test]
async fn the_separate_batch_limit_layer_lets_panics_through() {
    let (_logs, _guard) = capture();
    let service = BatchLimitLayer::new().layer(app());
    let unwound = tokio::spawn(async move {
        service
            .oneshot(request(
                Method::POST,
                "/v1/things/future",
                "application/json",
                "[1]",
            ))
            .await
    })
    .await;
    assert!(unwound.unwrap_err().is_panic());
}
