//! `catch_panic::install_quiet_hook`: a panic inside request handling is reported through
//! `tracing` with its fingerprint only, never handed to the previous hook (Rust's default hook
//! prints the message, and a backtrace with `RUST_BACKTRACE`, to stderr); a panic anywhere else
//! still is. The panic hook is global to the process, so this file is its own test binary and
//! holds one test.

use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use axum::{body::Body, routing::get, Router};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tower::ServiceBuilder;
use tower_api_errors::catch_panic::{install_quiet_hook, CatchPanicLayer};

const SECRET: &str = "sk_live_4242 leaked";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_in_requests_are_quiet_and_others_are_not() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    // What the previous hook (Rust's default one, in a real server) was handed.
    let previous: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = previous.clone();
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        seen.lock().unwrap().push(payload);
        default(info);
    }));
    install_quiet_hook();

    let router = Router::new().route(
        "/boom",
        get(|| async {
            let secret = SECRET.to_owned();
            if !secret.is_empty() {
                panic!("the key is {secret}");
            }
            "unreachable"
        }),
    );
    let service = ServiceBuilder::new()
        .map_response(|response: http::Response<_>| response.map(Body::new))
        .layer(CatchPanicLayer::new())
        .service(router);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            axum::ServiceExt::<Request<Body>>::into_make_service(service),
        )
        .await
        .unwrap()
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let response = client
        .request(
            Request::get(format!("http://{addr}/boom"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, r#"{"error":"server_error"}"#);

    let handed = previous.lock().unwrap().clone();
    assert!(
        handed.is_empty(),
        "the previous hook saw a caught panic: {handed:?}"
    );
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("sk_live_4242"), "{text}");
    assert!(
        text.contains("sha256:"),
        "the fingerprint is logged: {text}"
    );
    assert!(
        text.contains("tests/quiet_panic_hook.rs"),
        "the location is logged: {text}"
    );

    // A panic outside request handling goes to the previous hook, as before.
    let outside = std::thread::spawn(|| panic!("outside any request")).join();
    assert!(outside.is_err());
    assert_eq!(*previous.lock().unwrap(), ["outside any request"]);
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!text.contains("outside any request"), "{text}");
}
