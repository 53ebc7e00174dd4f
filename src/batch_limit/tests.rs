use std::convert::Infallible;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use tower::{service_fn, Layer, ServiceExt};

use super::*;
use crate::body::RequestBody;

type Frames = StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn frames(parts: &[&str], trailers: Option<HeaderMap>) -> Frames {
    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = parts
        .iter()
        .map(|part| Ok(Frame::data(Bytes::copy_from_slice(part.as_bytes()))))
        .collect();
    frames.extend(trailers.map(|trailers| Ok(Frame::trailers(trailers))));
    StreamBody::new(tokio_stream::iter(frames))
}

/// An inner service that answers with the body it got and the trailers' `x-sum`.
async fn echo<B>(request: Request<RequestBody<B>>) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let items = request.extensions().get::<BulkItems>().map(BulkItems::len);
    let collected = request.into_body().collect().await.unwrap();
    let sum = collected
        .trailers()
        .and_then(|trailers| trailers.get("x-sum"))
        .map(|value| value.to_str().unwrap().to_owned());
    let mut response = Response::new(Full::new(collected.to_bytes()));
    response
        .headers_mut()
        .insert("x-items", format!("{items:?}").parse().unwrap());
    response
        .headers_mut()
        .insert("x-sum", format!("{sum:?}").parse().unwrap());
    Ok(response)
}

#[tokio::test]
async fn frames_and_trailers_are_replayed_as_sent() {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-sum", "abc".parse().unwrap());
    let service = BatchLimitLayer::new().layer(service_fn(echo::<Frames>));
    let body = frames(&["[1,", " 2", ", {\"a\"", ": [3]}]"], Some(trailers));
    let response = service
        .oneshot(Request::post("/").body(body).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-items"], "Some(3)");
    assert_eq!(response.headers()["x-sum"], "Some(\"abc\")");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, r#"[1, 2, {"a": [3]}]"#);
}

#[tokio::test]
async fn closures_count_the_whole_body() {
    let lines = |_: &http::request::Parts, body: &Bytes| -> Result<usize, crate::ApiError> {
        Ok(body
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .count())
    };
    let layer = BatchLimitLayer::new().counter(lines).limit(Method::POST, 2);
    let service = layer.layer(service_fn(echo::<Full<Bytes>>));
    let ok = service
        .clone()
        .oneshot(Request::post("/").body(Full::from("a\nb\n")).unwrap())
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-items"], "None");
    let refused = service
        .oneshot(Request::post("/").body(Full::from("a\nb\nc\n")).unwrap())
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, r#"{"error":"too_many_items"}"#);
}

#[tokio::test]
async fn limits_are_configurable_per_method() {
    let layer = BatchLimitLayer::new()
        .limit(Method::POST, 1)
        .limit(Method::from_bytes(b"BULK").unwrap(), 0)
        .no_limit(&Method::GET);
    let service = layer.layer(service_fn(echo::<Full<Bytes>>));
    let call = |method: &str, body: &'static str| {
        let service = service.clone();
        let request = Request::builder()
            .method(method)
            .uri("/?ids=1,2,3,4,5,6,7,8,9,10,11,12")
            .body(Full::from(body))
            .unwrap();
        async move { service.oneshot(request).await.unwrap().status() }
    };
    assert_eq!(
        call("POST", "[1]").await,
        StatusCode::BAD_REQUEST,
        "the query counts"
    );
    assert_eq!(
        call("GET", "[1, 2]").await,
        StatusCode::OK,
        "no limit for GET"
    );
    assert_eq!(call("BULK", "[]").await, StatusCode::BAD_REQUEST);
    assert_eq!(
        call("PUT", "[1, 2, 3, 4, 5]").await,
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn the_layer_and_service_print_their_configuration() {
    let layer = BatchLimitLayer::new().json_field("data").max_body_bytes(10);
    let text = format!("{layer:?}");
    assert!(text.contains("max_body_bytes: 10"), "{text}");
    assert!(text.contains("\"data\""), "{text}");
    let service = BatchLimit::new(());
    assert!(format!("{service:?}").contains("BatchLimit"));
    assert!(GrpcItems::new("/a.B/C", 0).is_err());
    assert_eq!(
        GrpcItems::new("/a.B", 1).unwrap_err().to_string(),
        "\"/a.B\" is not a gRPC method path (/package.Service/Method)"
    );
}
