//! The catch-panic layer under a real tonic server on 127.0.0.1, talked to by a tonic client.
//!
//! The service is written by hand (no protoc): prost messages, `tonic::server::Grpc` and a
//! `tower::Service` registered with tonic's router, as generated code would be.

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::Once,
    task::{Context, Poll},
};

use http::uri::PathAndQuery;
use tokio::net::TcpListener;
use tokio_stream::Stream;
use tonic::{
    body::Body,
    client::Grpc as GrpcClient,
    server::{Grpc, NamedService},
    transport::{server::TcpIncoming, Channel, Endpoint, Server},
    Code, Status,
};
use tonic_prost::ProstCodec;
use tower::Service;
use tower_api_errors::catch_panic::CatchPanicLayer;

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

#[derive(Clone, PartialEq, prost::Message)]
struct Ping {
    #[prost(string, tag = "1")]
    text: String,
}

fn ping(text: &str) -> Ping {
    Ping {
        text: text.to_owned(),
    }
}

/// Three messages, each after a `Pending` (as when a handler awaits its data, so each message
/// goes out on its own); with `panics`, a panic in place of the second.
struct Messages {
    sent: u32,
    waited: bool,
    panics: bool,
}

impl Stream for Messages {
    type Item = Result<Ping, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if !std::mem::replace(&mut self.waited, true) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.waited = false;
        match self.sent {
            1 if self.panics => panic!("deliberate stream panic: {SECRET}"),
            3 => Poll::Ready(None),
            n => {
                self.sent += 1;
                Poll::Ready(Some(Ok(ping(&n.to_string()))))
            }
        }
    }
}

/// `test.Probe`: `Echo` answers its request; `Panic` panics in the handler; `Count` streams
/// three messages; `Stream` streams one message, then panics.
#[derive(Clone)]
struct Probe;

impl NamedService for Probe {
    const NAME: &'static str = "test.Probe";
}

impl Service<http::Request<Body>> for Probe {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let codec = ProstCodec::<Ping, Ping>::default();
        match request.uri().path() {
            "/test.Probe/Echo" => Box::pin(async move {
                let echo = tower::service_fn(|request: tonic::Request<Ping>| async move {
                    Ok::<_, Status>(tonic::Response::new(request.into_inner()))
                });
                Ok(Grpc::new(codec).unary(echo, request).await)
            }),
            "/test.Probe/Panic" => Box::pin(async move {
                let panics = tower::service_fn(|_: tonic::Request<Ping>| async move {
                    if true {
                        panic!("deliberate handler panic: {SECRET}");
                    }
                    Ok::<_, Status>(tonic::Response::new(ping("unreachable")))
                });
                Ok(Grpc::new(codec).unary(panics, request).await)
            }),
            path @ ("/test.Probe/Count" | "/test.Probe/Stream") => {
                let panics = path == "/test.Probe/Stream";
                Box::pin(async move {
                    let stream = tower::service_fn(move |_: tonic::Request<Ping>| async move {
                        let messages = Messages {
                            sent: 0,
                            waited: false,
                            panics,
                        };
                        Ok::<_, Status>(tonic::Response::new(messages))
                    });
                    Ok(Grpc::new(codec).server_streaming(stream, request).await)
                })
            }
            _ => Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

async fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        Server::builder()
            .layer(CatchPanicLayer::new())
            .add_service(Probe)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .unwrap()
    });
    addr
}

async fn connect(addr: SocketAddr) -> GrpcClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    GrpcClient::new(channel)
}

async fn unary(client: &mut GrpcClient<Channel>, method: &'static str) -> Result<Ping, Status> {
    client.ready().await.unwrap();
    client
        .unary(
            tonic::Request::new(ping("hello")),
            PathAndQuery::from_static(method),
            ProstCodec::<Ping, Ping>::default(),
        )
        .await
        .map(tonic::Response::into_inner)
}

async fn server_streaming(
    client: &mut GrpcClient<Channel>,
    method: &'static str,
) -> tonic::Streaming<Ping> {
    client.ready().await.unwrap();
    client
        .server_streaming(
            tonic::Request::new(ping("hello")),
            PathAndQuery::from_static(method),
            ProstCodec::<Ping, Ping>::default(),
        )
        .await
        .unwrap()
        .into_inner()
}

/// `server_error` as gRPC status 13, with nothing of the panic in it.
fn assert_internal(status: &Status) {
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(status.message(), "server_error");
    // The rich details say `server_error` and nothing else.
    assert_eq!(
        status.details(),
        tower_api_errors::grpc::status_details(&tower_api_errors::ApiError::server_error())
    );
    let debug = format!("{:?}", status.metadata());
    assert!(
        !debug.contains(SECRET) && !debug.contains("deliberate"),
        "{debug}"
    );
}

/// The next call on the same channel (the same HTTP/2 connection) succeeds.
async fn still_serving(client: &mut GrpcClient<Channel>) {
    let answer = unary(client, "/test.Probe/Echo").await.unwrap();
    assert_eq!(answer, ping("hello"));
}

#[tokio::test]
async fn a_panicking_handler_answers_internal() {
    quiet_deliberate_panics();
    let mut client = connect(serve().await).await;
    still_serving(&mut client).await;
    for _ in 0..2 {
        let status = unary(&mut client, "/test.Probe/Panic").await.unwrap_err();
        assert_internal(&status);
        still_serving(&mut client).await;
    }
}

#[tokio::test]
async fn a_stream_that_panics_midway_ends_with_internal_not_a_clean_end() {
    quiet_deliberate_panics();
    let mut client = connect(serve().await).await;

    // The control: a stream that does not panic ends cleanly.
    let mut stream = server_streaming(&mut client, "/test.Probe/Count").await;
    for n in 0..3 {
        assert_eq!(stream.message().await.unwrap(), Some(ping(&n.to_string())));
    }
    assert_eq!(stream.message().await.unwrap(), None);

    let mut stream = server_streaming(&mut client, "/test.Probe/Stream").await;
    assert_eq!(stream.message().await.unwrap(), Some(ping("0")));
    let status = stream.message().await.unwrap_err();
    assert_internal(&status);
    let trailers = stream.trailers().await;
    assert!(
        !matches!(trailers, Ok(Some(_))),
        "no second, clean end: {trailers:?}"
    );

    still_serving(&mut client).await;
}
