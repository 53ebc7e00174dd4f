//! The batch limit layer in front of a real tonic 0.14 server, called by a real tonic client:
//! the items of a gRPC request are the occurrences of a repeated field, counted from the
//! protobuf wire format, and a call over the limit gets INVALID_ARGUMENT, trailers-only.

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

use bytes::Bytes;
use http::uri::PathAndQuery;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use prost::Message;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{body::Body, server::NamedService, transport::Server, Code, Status};
use tonic_prost::ProstCodec;
use tower::Service;
use tower_api_errors::batch_limit::{BatchLimitLayer, BulkItems, GrpcItems, GrpcService, Packed};

const HANG_GUARD: Duration = Duration::from_secs(5);

#[derive(Clone, PartialEq, Message)]
struct Webhook {
    #[prost(string, tag = "1")]
    url: String,
    #[prost(string, repeated, tag = "2")]
    events: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct CreateWebhooksRequest {
    #[prost(message, repeated, tag = "1")]
    webhooks: Vec<Webhook>,
    #[prost(string, tag = "2")]
    request_id: String,
}

#[derive(Clone, PartialEq, Message)]
struct CreateWebhooksResponse {
    #[prost(uint32, tag = "1")]
    created: u32,
    /// How many items the layer left in the request extensions.
    #[prost(uint32, tag = "2")]
    counted: u32,
}

#[derive(Clone, PartialEq, Message)]
struct GetWebhooksRequest {
    #[prost(int64, repeated, tag = "1")]
    ids: Vec<i64>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A hand-written service, shaped like tonic's generated code.
#[derive(Clone)]
struct Webhooks {
    calls: Arc<AtomicUsize>,
}

impl NamedService for Webhooks {
    const NAME: &'static str = "webhooks.v1.Webhooks";
}

impl Service<http::Request<Body>> for Webhooks {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let calls = Arc::clone(&self.calls);
        match request.uri().path() {
            "/webhooks.v1.Webhooks/CreateWebhooks" | "/webhooks.v1.Webhooks/ImportWebhooks" => {
                Box::pin(async move {
                    let handler =
                        tower::service_fn(move |request: tonic::Request<CreateWebhooksRequest>| {
                            calls.fetch_add(1, Ordering::SeqCst);
                            let counted = request.extensions().get::<BulkItems>().map(|items| {
                                // Each span is one webhook's encoding.
                                let decoded: Vec<Webhook> = items
                                    .iter()
                                    .map(|item| Webhook::decode(item).unwrap())
                                    .collect();
                                assert_eq!(decoded, request.get_ref().webhooks);
                                items.len() as u32
                            });
                            let created = request.get_ref().webhooks.len() as u32;
                            async move {
                                Ok::<_, Status>(tonic::Response::new(CreateWebhooksResponse {
                                    created,
                                    counted: counted.unwrap_or(u32::MAX),
                                }))
                            }
                        });
                    let mut grpc = tonic::server::Grpc::new(ProstCodec::<
                        CreateWebhooksResponse,
                        CreateWebhooksRequest,
                    >::default());
                    Ok(grpc.unary(handler, request).await)
                })
            }
            "/webhooks.v1.Webhooks/GetWebhooks" => Box::pin(async move {
                let handler =
                    tower::service_fn(move |request: tonic::Request<GetWebhooksRequest>| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let created = request.get_ref().ids.len() as u32;
                        async move {
                            Ok::<_, Status>(tonic::Response::new(CreateWebhooksResponse {
                                created,
                                counted: 0,
                            }))
                        }
                    });
                let mut grpc = tonic::server::Grpc::new(ProstCodec::<
                    CreateWebhooksResponse,
                    GetWebhooksRequest,
                >::default());
                Ok(grpc.unary(handler, request).await)
            }),
            _ => Box::pin(async { Ok(Status::unimplemented("no such method").into_http()) }),
        }
    }
}

async fn start() -> (SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let layer = BatchLimitLayer::new()
        .grpc(GrpcItems::new("/webhooks.v1.Webhooks/CreateWebhooks", 1).unwrap())
        .grpc(
            GrpcItems::new("/webhooks.v1.Webhooks/GetWebhooks", 1)
                .unwrap()
                .packed(Packed::Varint)
                .limit(10),
        )
        .grpc_service(GrpcService::new("webhooks.v1.Webhooks").unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = Webhooks {
        calls: Arc::clone(&calls),
    };
    tokio::spawn(async move {
        Server::builder()
            .layer(layer)
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, calls)
}

async fn client(addr: SocketAddr) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

fn webhooks(n: usize) -> CreateWebhooksRequest {
    CreateWebhooksRequest {
        webhooks: (0..n)
            .map(|i| Webhook {
                url: format!("https://example.com/hooks/{i}"),
                events: vec!["invoice.paid".into(), "customer.created".into()],
            })
            .collect(),
        request_id: "req_1".into(),
    }
}

async fn create(
    client: &mut tonic::client::Grpc<tonic::transport::Channel>,
    method: &'static str,
    request: CreateWebhooksRequest,
) -> Result<CreateWebhooksResponse, Status> {
    client.ready().await.unwrap();
    let call = client.unary(
        tonic::Request::new(request),
        PathAndQuery::from_static(method),
        ProstCodec::<CreateWebhooksRequest, CreateWebhooksResponse>::default(),
    );
    tokio::time::timeout(HANG_GUARD, call)
        .await
        .expect("no answer in time")
        .map(tonic::Response::into_inner)
}

async fn get(
    client: &mut tonic::client::Grpc<tonic::transport::Channel>,
    ids: usize,
) -> Result<CreateWebhooksResponse, Status> {
    client.ready().await.unwrap();
    let request = GetWebhooksRequest {
        ids: (0..ids as i64).map(|i| i * 1000).collect(),
    };
    let call = client.unary(
        tonic::Request::new(request),
        PathAndQuery::from_static("/webhooks.v1.Webhooks/GetWebhooks"),
        ProstCodec::<GetWebhooksRequest, CreateWebhooksResponse>::default(),
    );
    tokio::time::timeout(HANG_GUARD, call)
        .await
        .expect("no answer in time")
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn a_repeated_field_is_counted_from_the_wire_format() {
    let (addr, calls) = start().await;
    let mut client = client(addr).await;
    const CREATE: &str = "/webhooks.v1.Webhooks/CreateWebhooks";

    for n in [0, 1, 5] {
        let response = create(&mut client, CREATE, webhooks(n)).await.unwrap();
        assert_eq!(response.created, n as u32);
        assert_eq!(
            response.counted, n as u32,
            "the handler found the items in the extensions"
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    for n in [6, 40] {
        let status = create(&mut client, CREATE, webhooks(n)).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "too_many_items");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "the handler never ran for a refused call"
    );

    // Packed numbers, with their own limit.
    assert_eq!(get(&mut client, 10).await.unwrap().created, 10);
    let status = get(&mut client, 11).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "too_many_items");

    // A method of the declared service without items passes uncounted.
    let response = create(
        &mut client,
        "/webhooks.v1.Webhooks/ImportWebhooks",
        webhooks(50),
    )
    .await
    .unwrap();
    assert_eq!(response.created, 50);
    assert_eq!(
        response.counted,
        u32::MAX,
        "nothing counted, nothing in the extensions"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 5);

    // A route the service did not declare gRPC: the label is believed nowhere, the protobuf
    // body is counted as any other body, and it is not JSON.
    let status = create(&mut client, "/other.v1.Other/ImportWebhooks", webhooks(50))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "invalid_json");
    assert_eq!(calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_malformed_message_is_answered_trailers_only() {
    let (addr, calls) = start().await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    // Field 1, length-delimited, declaring 100 bytes that never come.
    let message = [0x0a, 100, 1, 2, 3];
    let mut framed = vec![0, 0, 0, 0, message.len() as u8];
    framed.extend_from_slice(&message);
    let request = http::Request::post(format!("http://{addr}/webhooks.v1.Webhooks/CreateWebhooks"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(framed)))
        .unwrap();
    let response = tokio::time::timeout(HANG_GUARD, client.request(request))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    assert_eq!(response.headers()["grpc-status"], "3");
    assert_eq!(response.headers()["grpc-message"], "model_not_valid");
    let body = response.into_body().collect().await.unwrap();
    assert!(body.to_bytes().is_empty(), "trailers-only: no body");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
