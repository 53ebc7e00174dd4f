//! The catch-panic layer under real axum and hyper servers on 127.0.0.1, talked to by hyper's
//! client over HTTP/1.1 and HTTP/2.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex, Once},
    task::{Context, Poll},
};

use axum::{routing::get, Router};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{
        connect::{HttpConnector, HttpInfo},
        Client,
    },
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_api_errors::{
    catch_panic::CatchPanicLayer,
    dialect::{Bulk, Coded, DialectByPath},
};

/// Put in every panic message: it must never reach a client.
const SECRET: &str = "sk_live_do_not_leak";

/// Keeps the deliberate panics off stderr; any other panic (a failed assertion) is reported.
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
            if !message.is_some_and(|message| message.contains("deliberate")) {
                default(info);
            }
        }));
    });
}

/// A streamed body: one chunk, then `Pending` once (so the server writes the head and the
/// chunk out), then a panic.
struct ChunkThenPanic {
    step: u8,
}

impl ChunkThenPanic {
    fn new() -> Self {
        ChunkThenPanic { step: 0 }
    }
}

impl Body for ChunkThenPanic {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.step += 1;
        match self.step {
            1 => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"first chunk"))))),
            2 => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            _ => panic!("deliberate body panic: {SECRET}"),
        }
    }
}

async fn handler_panics() -> &'static str {
    panic!("deliberate handler panic: {SECRET}")
}

/// An axum app: bulk dialect, except the coded dialect under `/v1/customer`.
async fn serve_axum() -> SocketAddr {
    let dialect = DialectByPath::new(Bulk).prefix("/v1/customer", Coded::new());
    let app = Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route("/panic", get(handler_panics))
        .route("/v1/customer/panic", get(handler_panics))
        .route(
            "/stream",
            get(|| async { axum::body::Body::new(ChunkThenPanic::new()) }),
        )
        .layer(CatchPanicLayer::new().dialect(dialect));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A bare hyper server (HTTP/1.1 and HTTP/2) answering in the coded dialect: `/call` panics in
/// `call`, `/panic` in the response future, `/stream` in the body.
async fn serve_hyper() -> SocketAddr {
    let service = ServiceBuilder::new()
        .layer(CatchPanicLayer::new().dialect(Coded::new()))
        .service_fn(|request: Request<Incoming>| {
            if request.uri().path() == "/call" {
                panic!("deliberate call panic: {SECRET}");
            }
            async move {
                let body = match request.uri().path() {
                    "/panic" => panic!("deliberate future panic: {SECRET}"),
                    "/stream" => ChunkThenPanic::new().boxed(),
                    _ => Full::new(Bytes::from_static(b"fine")).boxed(),
                };
                Ok::<_, Infallible>(Response::new(body))
            }
        });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request| service.clone().oneshot(request));
                // A connection aborted by a body panic ends with an error: expected here.
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn client(http2: bool) -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build_http()
}

async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: Method,
    addr: SocketAddr,
    path: &str,
) -> Response<Incoming> {
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .body(Full::default())
        .unwrap();
    client.request(request).await.unwrap()
}

/// The client side of the connection a response came on.
fn connection(response: &Response<Incoming>) -> SocketAddr {
    response
        .extensions()
        .get::<HttpInfo>()
        .unwrap()
        .local_addr()
}

/// Reads a body frame by frame: the bytes received, and how it ended.
async fn read(response: Response<Incoming>) -> (Vec<u8>, Result<(), hyper::Error>) {
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Err(error) => return (bytes, Err(error)),
        }
    }
    (bytes, Ok(()))
}

/// Asserts a complete response with no trace of the panic, and returns its body.
async fn complete(response: Response<Incoming>) -> String {
    for (name, value) in response.headers() {
        assert!(
            !value
                .as_bytes()
                .windows(SECRET.len())
                .any(|w| w == SECRET.as_bytes()),
            "{name} leaks the panic"
        );
    }
    let (bytes, end) = read(response).await;
    end.unwrap();
    let body = String::from_utf8(bytes).unwrap();
    assert!(!body.contains(SECRET) && !body.contains("deliberate"));
    body
}

/// The next request on the same server is served as usual.
async fn still_serving(client: &Client<HttpConnector, Full<Bytes>>, addr: SocketAddr) {
    let response = send(client, Method::GET, addr, "/ok").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(complete(response).await, "fine");
}

/// Collects what `tracing` writes on this thread while the guard lives.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

/// The tests of this file run one at a time: they read `tracing` output, and a test on another
/// thread that registers a call site while one of them installs its subscriber makes `tracing`
/// cache, for good, that nobody listens there.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

    fn text(&self) -> String {
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
fn capture() -> (Logs, tracing::subscriber::DefaultGuard) {
    quiet_deliberate_panics();
    Logs::capture()
}

/// The layer caught and logged each body panic (the client alone cannot tell a caught panic
/// from one that killed the connection task).
fn assert_body_panics_logged(logs: &str, count: usize) {
    let lines: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("service panicked"))
        .collect();
    assert_eq!(lines.len(), count, "{logs}");
    for line in lines {
        assert!(line.contains(r#"stage="response_body""#), "{line}");
        assert!(line.contains("method=GET"), "{line}");
        assert!(line.contains("path=/stream "), "{line}");
    }
}

#[tokio::test]
async fn axum_handler_panic_is_bulk_server_error_on_a_connection_that_keeps_serving() {
    let _serial = SERIAL.lock().await;
    // The server runs on this test's single thread, so its log lines are captured here.
    let (logs, _guard) = capture();
    let addr = serve_axum().await;
    let client = client(false);

    let response = send(&client, Method::GET, addr, "/panic?token=abc").await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(response.headers()[header::CONTENT_LENGTH], "24");
    let panicked_on = connection(&response);
    assert_eq!(complete(response).await, r#"{"error":"server_error"}"#);

    let response = send(&client, Method::GET, addr, "/ok").await;
    assert_eq!(
        connection(&response),
        panicked_on,
        "same keep-alive connection"
    );
    assert_eq!(complete(response).await, "fine");

    let logs = logs.text();
    let line = logs
        .lines()
        .find(|line| line.contains("service panicked"))
        .unwrap_or_else(|| panic!("no panic logged: {logs}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("method=GET"), "{line}");
    assert!(line.contains("path=/panic "), "{line}");
    assert!(
        !line.contains(SECRET),
        "the message is not logged in clear: {line}"
    );
    assert!(line.contains("sha256:"), "a fingerprint of it is: {line}");
    assert!(!line.contains("token=abc"), "the query is not: {line}");
}

#[tokio::test]
async fn axum_coded_routes_answer_code_1_over_http1_and_http2() {
    let _serial = SERIAL.lock().await;
    let (_logs, _guard) = capture();
    let addr = serve_axum().await;
    for http2 in [false, true] {
        let client = client(http2);
        let response = send(&client, Method::GET, addr, "/v1/customer/panic").await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            complete(response).await,
            r#"{"code":1,"message":"Server error","errors":[]}"#
        );
        still_serving(&client, addr).await;
    }
}

#[tokio::test]
async fn axum_body_panic_aborts_the_response_over_http1_and_http2() {
    let _serial = SERIAL.lock().await;
    let (logs, _guard) = capture();
    let addr = serve_axum().await;
    for http2 in [false, true] {
        let client = client(http2);
        let response = send(&client, Method::GET, addr, "/stream").await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "the head was already out"
        );
        let (bytes, end) = read(response).await;
        assert!(
            end.is_err(),
            "http2={http2}: the body must fail, not end cleanly"
        );
        assert!(b"first chunk".starts_with(&bytes), "{bytes:?}");
        if !http2 {
            // HTTP/1.1: the chunk was written before the panic; the connection is then closed
            // before the terminating chunk.
            assert_eq!(bytes, b"first chunk");
        }
        still_serving(&client, addr).await;
    }
    assert_body_panics_logged(&logs.text(), 2);
}

#[tokio::test]
async fn hyper_panics_in_call_and_future_get_code_1_over_http1_and_http2() {
    let _serial = SERIAL.lock().await;
    let (_logs, _guard) = capture();
    let addr = serve_hyper().await;
    for http2 in [false, true] {
        let client = client(http2);
        for path in ["/call", "/panic"] {
            let response = send(&client, Method::POST, addr, path).await;
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
            let panicked_on = connection(&response);
            assert_eq!(
                complete(response).await,
                r#"{"code":1,"message":"Server error","errors":[]}"#
            );
            let response = send(&client, Method::GET, addr, "/ok").await;
            assert_eq!(connection(&response), panicked_on, "same connection");
            assert_eq!(complete(response).await, "fine");
        }

        let response = send(&client, Method::HEAD, addr, "/panic").await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(response.headers()[header::CONTENT_LENGTH], "47");
        assert_eq!(complete(response).await, "");
        still_serving(&client, addr).await;
    }
}

#[tokio::test]
async fn hyper_body_panic_aborts_the_response_over_http1_and_http2() {
    let _serial = SERIAL.lock().await;
    let (logs, _guard) = capture();
    let addr = serve_hyper().await;
    for http2 in [false, true] {
        let client = client(http2);
        let response = send(&client, Method::GET, addr, "/stream").await;
        assert_eq!(response.status(), StatusCode::OK);
        let (bytes, end) = read(response).await;
        assert!(
            end.is_err(),
            "http2={http2}: the body must fail, not end cleanly"
        );
        assert!(b"first chunk".starts_with(&bytes), "{bytes:?}");
        if !http2 {
            assert_eq!(bytes, b"first chunk");
        }
        still_serving(&client, addr).await;
    }
    assert_body_panics_logged(&logs.text(), 2);
}
