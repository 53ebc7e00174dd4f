use std::{
    convert::Infallible,
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex, Once,
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceExt};

use super::*;
use crate::{
    dialect::{Coded, DialectByPath},
    ErrorCode, RenderedError,
};

/// Keeps the deliberate panics of these tests off stderr; every other panic (a failed
/// assertion) is reported as usual.
fn quiet_deliberate_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            let deliberate = match message {
                Some(message) => message.contains("deliberate"),
                None => payload.is::<Secret>(),
            };
            if !deliberate {
                default(info);
            }
        }));
    });
}

/// A payload that is not a string.
#[derive(Debug)]
struct Secret(#[allow(dead_code)] u32);

/// Collects what `tracing` writes while the guard is alive (on this thread).
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .finish();
        let guard = tracing::subscriber::set_default(subscriber);
        // Tests on other threads may have hit the layer's call sites before this subscriber
        // existed, and `tracing` caches that nobody was interested: ask again.
        tracing::callsite::rebuild_interest_cache();
        (logs, guard)
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Quiets the deliberate panics and collects what `tracing` writes on this thread. Every test
/// that panics calls it first: `tracing` caches per call site whether anyone listens, and a call
/// site first reached with no subscriber around could stay silent for a test that listens.
pub(crate) fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
    quiet_deliberate_panics();
    Logs::capture()
}

/// Yields `chunk`, then panics on the next poll; counts its polls and tells when dropped.
struct PanicAfterFirstChunk {
    chunk: Option<Bytes>,
    polls: Arc<AtomicUsize>,
    dropped: Arc<AtomicBool>,
}

impl PanicAfterFirstChunk {
    fn new() -> (Self, Arc<AtomicUsize>, Arc<AtomicBool>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicBool::new(false));
        let body = PanicAfterFirstChunk {
            chunk: Some(Bytes::from_static(b"first chunk")),
            polls: Arc::clone(&polls),
            dropped: Arc::clone(&dropped),
        };
        (body, polls, dropped)
    }
}

impl Body for PanicAfterFirstChunk {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        match self.chunk.take() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None => panic!("deliberate body panic: password=hunter2"),
        }
    }
}

impl Drop for PanicAfterFirstChunk {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::default()).unwrap()
}

fn grpc(uri: &str) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(Full::default())
        .unwrap()
}

async fn panics_in_future(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    panic!("deliberate future panic: password=hunter2")
}

async fn bytes_of<B>(response: Response<B>) -> Bytes
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    response.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn a_panic_in_call_is_server_error() {
    let (_logs, _guard) = capture();
    let service = CatchPanic::new(service_fn(|_: Request<Full<Bytes>>| {
        if true {
            panic!("deliberate call panic");
        }
        async { Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())) }
    }));
    let response = service.oneshot(get("/v1/things")).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(response.headers()[header::CONTENT_LENGTH], "24");
    let marker = response.extensions().get::<RenderedError>().unwrap();
    assert_eq!(marker.error().code(), &ErrorCode::ServerError);
    assert!(response.body().is_panic_response());
    assert_eq!(bytes_of(response).await, r#"{"error":"server_error"}"#);
}

#[tokio::test]
async fn a_panic_in_the_future_is_server_error_in_the_dialect() {
    let (_logs, _guard) = capture();
    let response = CatchPanic::new(service_fn(panics_in_future))
        .oneshot(get("/v1/things"))
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(bytes_of(response).await, r#"{"error":"server_error"}"#);

    let service = CatchPanicLayer::new()
        .dialect(Coded::new())
        .layer(service_fn(panics_in_future));
    let response = service.oneshot(get("/v1/things")).await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(
        bytes_of(response).await,
        r#"{"code":1,"message":"Server error","errors":[]}"#
    );
}

#[tokio::test]
async fn the_request_decides_the_format() {
    let (_logs, _guard) = capture();
    let dialect = DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new());
    let service = CatchPanicLayer::new()
        .dialect(dialect)
        .layer(service_fn(panics_in_future));

    let response = service
        .clone()
        .oneshot(get("/v1/customer/courses?page=1"))
        .await
        .unwrap();
    assert_eq!(
        bytes_of(response).await,
        r#"{"code":1,"message":"Server error","errors":[]}"#
    );

    let response = service
        .clone()
        .oneshot(grpc("/pkg.Svc/Call"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert_eq!(response.headers()["grpc-status"], "13");
    assert_eq!(response.headers()["grpc-message"], "server_error");
    assert!(bytes_of(response).await.is_empty());

    let head = Request::head("/v1/things").body(Full::default()).unwrap();
    let response = service.clone().oneshot(head).await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()[header::CONTENT_LENGTH], "24");
    assert!(bytes_of(response).await.is_empty());

    let problem = Request::get("/v1/things")
        .header(header::ACCEPT, "application/problem+json")
        .body(Full::default())
        .unwrap();
    let response = service.oneshot(problem).await.unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body: serde_json::Value = serde_json::from_slice(&bytes_of(response).await).unwrap();
    assert_eq!(body["code"], "server_error");
    assert_eq!(body["status"], 500);
}

#[tokio::test]
async fn a_body_panic_over_http_ends_the_body_with_an_error_and_drops_the_body() {
    let (_logs, _guard) = capture();
    let (body, polls, dropped) = PanicAfterFirstChunk::new();
    let body = Mutex::new(Some(body));
    let service = CatchPanic::new(service_fn(move |_: Request<Full<Bytes>>| {
        let body = body.lock().unwrap().take().unwrap();
        async move { Ok::<_, Infallible>(Response::new(body)) }
    }));
    let response = service.oneshot(get("/v1/stream")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.body().is_panic_response());
    let mut body = response.into_body();

    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "first chunk");
    let error = body.frame().await.unwrap().unwrap_err();
    assert!(error.is::<BodyPanicked>());
    assert!(!error.to_string().contains("hunter2"));
    assert!(
        dropped.load(Ordering::SeqCst),
        "the panicked body is dropped"
    );
    assert_eq!(polls.load(Ordering::SeqCst), 2);

    assert!(body.is_end_stream());
    assert!(body.frame().await.is_none());
    assert!(body.frame().await.is_none());
    assert_eq!(polls.load(Ordering::SeqCst), 2, "never polled again");
}

#[tokio::test]
async fn a_body_panic_over_grpc_ends_with_internal_trailers() {
    let (_logs, _guard) = capture();
    let (body, polls, _) = PanicAfterFirstChunk::new();
    let body = Mutex::new(Some(body));
    let service = CatchPanic::new(service_fn(move |_: Request<Full<Bytes>>| {
        let body = body.lock().unwrap().take().unwrap();
        async move { Ok::<_, Infallible>(Response::new(body)) }
    }));
    let mut body = service
        .oneshot(grpc("/pkg.Svc/Stream"))
        .await
        .unwrap()
        .into_body();

    assert!(body.frame().await.unwrap().unwrap().is_data());
    let trailers = body
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_trailers()
        .unwrap();
    assert_eq!(trailers["grpc-status"], "13");
    assert_eq!(trailers["grpc-message"], "server_error");
    assert!(trailers.contains_key("grpc-status-details-bin"));
    assert_eq!(trailers.len(), 3);
    assert!(body.frame().await.is_none());
    assert_eq!(polls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn responses_that_do_not_panic_pass_through() {
    let service = CatchPanic::new(service_fn(|_: Request<Full<Bytes>>| async {
        let mut response = Response::new(Full::new(Bytes::from_static(b"hello")));
        response
            .headers_mut()
            .insert("x-kept", "yes".parse().unwrap());
        *response.status_mut() = StatusCode::CREATED;
        Ok::<_, Infallible>(response)
    }));
    let response = service.oneshot(get("/v1/things")).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-kept"], "yes");
    assert!(response.extensions().get::<RenderedError>().is_none());
    assert_eq!(response.body().size_hint().exact(), Some(5));
    assert_eq!(bytes_of(response).await, "hello");
}

#[tokio::test]
async fn inner_errors_are_kept() {
    let service = CatchPanic::new(service_fn(|_: Request<Full<Bytes>>| async {
        Err::<Response<Full<Bytes>>, _>("store unavailable")
    }));
    let error = service.oneshot(get("/")).await.unwrap_err();
    assert_eq!(error, "store unavailable");

    struct Failing;
    impl Body for Failing {
        type Data = Bytes;
        type Error = io::Error;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            Poll::Ready(Some(Err(io::Error::other("disk gone"))))
        }
    }
    let service = CatchPanic::new(service_fn(|_: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Failing))
    }));
    let mut body = service.oneshot(get("/")).await.unwrap().into_body();
    let error = body.frame().await.unwrap().unwrap_err();
    assert!(error.is::<io::Error>());
    assert_eq!(error.to_string(), "disk gone");
}

#[tokio::test]
async fn every_payload_is_logged_with_method_and_path_and_never_answered() {
    let (logs, _guard) = capture();
    let payloads: [fn() -> Box<dyn std::any::Any + Send>; 3] = [
        || Box::new("deliberate str panic"),
        || Box::new(String::from("deliberate String panic")),
        || Box::new(Secret(987_654_321)),
    ];
    for make in payloads {
        let service = CatchPanic::new(service_fn(move |_: Request<Full<Bytes>>| async move {
            if true {
                std::panic::resume_unwind(make());
            }
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        }));
        let request = Request::delete("/v1/things/7?api_key=sk_live_123")
            .body(Full::default())
            .unwrap();
        let response = service.oneshot(request).await.unwrap();
        let body = bytes_of(response).await;
        assert_eq!(body, r#"{"error":"server_error"}"#);
    }
    let logs = logs.text();
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 3, "{logs}");
    for line in &lines {
        assert!(line.contains("ERROR"), "{line}");
        assert!(line.contains("service panicked"), "{line}");
        assert!(line.contains("method=DELETE"), "{line}");
        assert!(line.contains("path=/v1/things/7 "), "{line}");
        assert!(line.contains("stage=\"response_future\""), "{line}");
        assert!(
            !line.contains("sk_live_123"),
            "the query is not logged: {line}"
        );
    }
    for (line, message) in lines
        .iter()
        .zip(["deliberate str panic", "deliberate String panic"])
    {
        assert!(!line.contains(message), "no message in clear: {line}");
        assert!(
            line.contains(&PayloadFingerprint(Some(message)).to_string()),
            "{line}"
        );
    }
    assert!(lines[2].contains("<non-string panic payload>"));
    assert!(!lines[2].contains("987654321") && !lines[2].contains("Secret"));
}

#[tokio::test]
async fn the_observer_sees_every_stage() {
    let (_logs, _guard) = capture();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let layer = CatchPanicLayer::new().on_panic(move |panic: &CaughtPanic<'_>| {
        record.lock().unwrap().push((
            panic.stage(),
            panic.method().clone(),
            panic.path().map(str::to_owned),
            panic.message().map(str::to_owned),
        ));
    });

    let call = layer.layer(service_fn(|_: Request<Full<Bytes>>| {
        if true {
            panic!("deliberate call panic");
        }
        async { Ok::<_, Infallible>(Response::new(Full::<Bytes>::default())) }
    }));
    call.oneshot(get("/a")).await.unwrap();

    layer
        .layer(service_fn(panics_in_future))
        .oneshot(get("/b"))
        .await
        .unwrap();

    let (body, _, _) = PanicAfterFirstChunk::new();
    let body = Mutex::new(Some(body));
    let streaming = layer.layer(service_fn(move |_: Request<Full<Bytes>>| {
        let body = body.lock().unwrap().take().unwrap();
        async move { Ok::<_, Infallible>(Response::new(body)) }
    }));
    let response = streaming.oneshot(grpc("/c")).await.unwrap();
    response.into_body().collect().await.unwrap();

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].0, PanicStage::Call);
    assert_eq!(seen[0].1, Method::GET);
    assert_eq!(seen[0].2.as_deref(), Some("/a"));
    assert_eq!(seen[0].3.as_deref(), Some("deliberate call panic"));
    assert_eq!(seen[1].0, PanicStage::ResponseFuture);
    assert_eq!(seen[1].2.as_deref(), Some("/b"));
    assert_eq!(seen[2].0, PanicStage::ResponseBody);
    assert_eq!(seen[2].1, Method::POST);
    assert_eq!(seen[2].2.as_deref(), Some("/c"));
    assert!(seen[2].0.is_after_head() && !seen[1].0.is_after_head());
}

#[tokio::test]
async fn custom_responses_replace_the_default() {
    let (_logs, _guard) = capture();
    let layer = CatchPanicLayer::new().response_for_panic(|panic: &CaughtPanic<'_>| {
        let error = ApiError::new(ErrorCode::ServiceUnavailable);
        let mut response = panic.format().render(&Coded::new(), &error);
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, "5".parse().unwrap());
        response
    });
    let response = layer
        .layer(service_fn(panics_in_future))
        .oneshot(get("/v1/things"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    assert_eq!(
        response
            .extensions()
            .get::<RenderedError>()
            .unwrap()
            .error()
            .code(),
        &ErrorCode::ServiceUnavailable
    );
    assert_eq!(
        bytes_of(response).await,
        r#"{"code":2,"message":"Server not available","errors":[]}"#
    );
}

#[tokio::test]
async fn a_panicking_custom_response_or_observer_still_answers_server_error() {
    let (_logs, _guard) = capture();
    let layer = CatchPanicLayer::new()
        .dialect(Coded::new())
        .response_for_panic(|_: &CaughtPanic<'_>| -> Response<ErrorBody> {
            panic!("deliberate panic in the panic response")
        })
        .on_panic(|_: &CaughtPanic<'_>| panic!("deliberate panic in the observer"));
    let response = layer
        .layer(service_fn(panics_in_future))
        .oneshot(get("/v1/things"))
        .await
        .unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(bytes_of(response).await, r#"{"error":"server_error"}"#);
}

#[test]
fn debug_output_names_types_and_hides_payloads() {
    let layer = CatchPanicLayer::new().on_panic(|_: &CaughtPanic<'_>| {});
    let debug = format!("{layer:?}");
    assert!(debug.starts_with("CatchPanicLayer { dialect: tower_api_errors::dialect::"));
    assert!(debug.contains("DefaultResponseForPanic"));
    assert!(debug.contains("{{closure}}"));

    let service = CatchPanic::new(tower::service_fn(|()| async { Ok::<_, Infallible>(()) }));
    assert!(format!("{service:?}").starts_with("CatchPanic { inner: ServiceFn"));

    let payload: Box<dyn std::any::Any + Send> = Box::new("password=hunter2");
    let format = ErrorFormat::for_request(&get("/v1/things?key=1"));
    let panic = CaughtPanic::new(&*payload, &Method::GET, &format, PanicStage::Call);
    let debug = format!("{panic:?}");
    assert_eq!(
        debug,
        r#"CaughtPanic { method: GET, path: Some("/v1/things"), stage: Call, .. }"#
    );
    assert_eq!(panic.message(), Some("password=hunter2"));
}

#[tokio::test]
async fn a_static_dialect_reference_works() {
    let (_logs, _guard) = capture();
    let dialect: &'static Coded = Box::leak(Box::new(Coded::new()));
    let response = CatchPanicLayer::new()
        .dialect(dialect)
        .layer(service_fn(panics_in_future))
        .oneshot(get("/v1/things"))
        .await
        .unwrap();
    assert_eq!(
        bytes_of(response).await,
        r#"{"code":1,"message":"Server error","errors":[]}"#
    );
}

#[tokio::test]
async fn a_long_path_is_logged_cut_and_marked() {
    let (logs, _guard) = capture();
    let long = format!("/v1/{}", "x".repeat(300));
    let service = CatchPanic::new(service_fn(panics_in_future));
    let response = service.oneshot(get(&long)).await.unwrap();
    assert_eq!(response.status(), 500);
    let logs = logs.text();
    let kept = &long[..head::TEXT];
    assert!(logs.contains(&format!("path={kept}… ")), "{logs}");
    assert!(!logs.contains(&long[..head::TEXT + 1]), "{logs}");
}
