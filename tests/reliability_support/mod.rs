//! What the reliability and security tests share: the demo's layers around any router, probes
//! that count handler calls and live requests, a raw HTTP/1.1 client for malformed input, the
//! contract check, and the process's resident memory.
//!
//! The test crates that use it declare the demo's modules (`app`, `handlers`, `store`) at their
//! root, as `tests/demo_bulk_api.rs` does.

#![allow(dead_code, unreachable_pub)]

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::Body, Router};
use bytes::Bytes;
use http::{header, HeaderName, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::{Layer, Service, ServiceBuilder};
use tower_api_errors::{
    auth::{AuthLayer, AuthorizeItemsLayer, KeyExtractor, KeyStore, RoleTable},
    batch_limit::BatchLimitLayer,
    catch_panic::CatchPanicLayer,
    normalize::NormalizeLayer,
};

/// A generous guard against hangs: a test that waits longer than this has failed.
pub const HANG_GUARD: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test if it takes longer than [`HANG_GUARD`].
pub async fn guarded<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(HANG_GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("hung: {what}"))
}

/// Counts requests: how many were handed to the wrapped service, and how many of their
/// futures are still alive (a future that is dropped unfinished counts as gone too).
#[derive(Clone, Debug, Default)]
pub struct Probe {
    calls: Arc<AtomicUsize>,
    live: Arc<AtomicUsize>,
}

impl Probe {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Waits until no request is in flight any more.
    pub async fn settled(&self) {
        guarded("requests still in flight", async {
            while self.live() != 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    }
}

impl<S> Layer<S> for Probe {
    type Service = Probed<S>;

    fn layer(&self, inner: S) -> Probed<S> {
        Probed {
            inner,
            probe: self.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Probed<S> {
    inner: S,
    probe: Probe,
}

impl<S, R> Service<R> for Probed<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.probe.calls.fetch_add(1, Ordering::SeqCst);
        self.probe.live.fetch_add(1, Ordering::SeqCst);
        let guard = LiveGuard(self.probe.live.clone());
        let future = self.inner.call(request);
        Box::pin(async move {
            let _guard = guard;
            future.await
        })
    }
}

struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a test stack is made of, around its router.
pub struct Stack {
    /// Counts every request the stack receives.
    pub outer: Probe,
    /// Counts the requests that reach the router (the handlers).
    pub inner: Probe,
    /// tower-http's whole-request timeout, inside the normalize layer.
    pub timeout: Duration,
}

impl Default for Stack {
    fn default() -> Self {
        Stack {
            outer: Probe::default(),
            inner: Probe::default(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// The demo's stack (`examples/bulk_api/app.rs`: catch panic → normalize → auth → batch limit
/// → per-item authorization), with a key store and router of the test's choosing, the probes
/// around it and around the router, and tower-http's `TimeoutLayer` inside the normalize
/// layer, which turns its empty 408 into the contract's `request_timeout`.
pub fn stack<K>(
    stack: &Stack,
    keys: K,
    router: Router,
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future: Send + 'static>
       + Clone
       + Send
       + Sync
       + 'static
where
    K: KeyStore + Clone + Send + Sync + 'static,
    K::Future: Send + 'static,
{
    let dialect = crate::app::dialect();
    ServiceBuilder::new()
        .layer(stack.outer.clone())
        .map_response(|response: Response<_>| response.map(Body::new))
        .layer(CatchPanicLayer::new().dialect(dialect.clone()))
        .layer(NormalizeLayer::new().dialect(dialect.clone()))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            stack.timeout,
        ))
        .map_response(|response: Response<_>| response.map(Body::new))
        .layer(
            AuthLayer::new(keys)
                .keys(KeyExtractor::bearer_or_header(HeaderName::from_static(
                    "x-api-key",
                )))
                .route_policy(RoleTable::read_write())
                .dialect(dialect.clone()),
        )
        .layer(BatchLimitLayer::new().dialect(dialect.clone()))
        .layer(AuthorizeItemsLayer::default().dialect(dialect))
        .layer(stack.inner.clone())
        .service(router)
}

/// Serves `service` on 127.0.0.1, on a port of its own.
pub async fn serve<S>(service: S) -> SocketAddr
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, axum::ServiceExt::into_make_service(service))
            .await
            .unwrap()
    });
    addr
}

/// A pooled HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The contract's whole-request error: the status, `application/json`, a right
    /// `Content-Length`, exactly `{"error": code}`, and `WWW-Authenticate` on a 401.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.headers[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            self.headers[header::CONTENT_LENGTH],
            self.body.len().to_string().as_str()
        );
        assert_eq!(self.json(), json!({ "error": code }), "{self:?}");
        if status == 401 {
            let challenge = self.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
        }
    }
}

/// Sends `request` and reads the whole response.
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> Answer {
    let what = format!("{} {}", request.method(), request.uri());
    guarded(&what, async {
        let response = client
            .request(request)
            .await
            .unwrap_or_else(|error| panic!("{what}: {error:?}"));
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .unwrap_or_else(|error| panic!("{what}: body: {error:?}"))
            .to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    })
    .await
}

/// A request to the server at `addr`, with `Authorization: Bearer <key>` when a key is given.
pub fn request(
    addr: SocketAddr,
    method: http::Method,
    path: &str,
    key: Option<&str>,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(key) = key {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    builder
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body.into()))
        .unwrap()
}

/// A response read off a raw connection.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// See [`Answer::assert_error`].
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type"), Some("application/json"));
        assert_eq!(
            self.header("content-length"),
            Some(self.body.len().to_string().as_str())
        );
        assert_eq!(self.json(), json!({ "error": code }), "{self:?}");
        if status == 401 {
            assert!(self
                .header("www-authenticate")
                .unwrap()
                .starts_with("Bearer"));
        }
    }
}

/// Reads what the server sends until it closes the connection (or resets it: what arrived
/// before the reset is kept), and parses the first response in it.
pub async fn read_answer(stream: &mut TcpStream) -> RawAnswer {
    let mut bytes = Vec::new();
    guarded("reading a response", async {
        let mut buffer = [0; 16 * 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            }
            if let Some(answer) = parse_answer(&bytes) {
                return answer;
            }
        }
        parse_answer(&bytes).unwrap_or_else(|| {
            panic!(
                "no complete response in {:?}",
                String::from_utf8_lossy(&bytes)
            )
        })
    })
    .await
}

/// Whether the server closed the connection (a read gives end-of-file or a reset) within the
/// hang guard.
pub async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0; 1024];
    tokio::time::timeout(HANG_GUARD, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// The first complete HTTP/1.1 response in `bytes` (`Content-Length` or chunked body).
pub fn parse_answer(bytes: &[u8]) -> Option<RawAnswer> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let rest = &bytes[end + 4..];
    let find = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    let body = if let Some(length) = find("content-length") {
        let length: usize = length.parse().ok()?;
        rest.get(..length)?.to_vec()
    } else if find("transfer-encoding").is_some_and(|value| value.contains("chunked")) {
        let mut body = Vec::new();
        let mut rest = rest;
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?, 16).ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            body.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
        body
    } else {
        Vec::new()
    };
    Some(RawAnswer {
        status,
        headers,
        body,
    })
}

/// Connects to `addr` and writes `bytes`.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Sends `bytes` on a connection of its own and reads the response. The server may answer
/// (and close) before it has read everything: writing goes on alongside reading, and a write
/// that fails then is not an error.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> RawAnswer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let write = async {
        let _ = writer.write_all(bytes).await;
        std::future::pending::<()>().await
    };
    let read = async {
        let mut bytes = Vec::new();
        let mut buffer = [0; 16 * 1024];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            }
            if let Some(answer) = parse_answer(&bytes) {
                return answer;
            }
        }
        parse_answer(&bytes).unwrap_or_else(|| {
            panic!(
                "no complete response in {:?}",
                String::from_utf8_lossy(&bytes)
            )
        })
    };
    guarded("a raw exchange", async {
        tokio::select! {
            answer = read => answer,
            () = write => unreachable!(),
        }
    })
    .await
}

/// The resident memory of this process in KiB (Linux), or `None` elsewhere.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Keeps the panics the tests make on purpose (their message says "on purpose", like the
/// demo's panic route) out of the test output; any other panic is reported as usual.
pub fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !payload.contains("on purpose") {
                default(info);
            }
        }));
    });
}
