//! The normalize layer in front of a real tonic 0.14 server on 127.0.0.1: gRPC statuses pass
//! untouched, and plain HTTP errors from middleware in front of tonic become trailers-only
//! gRPC responses.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::{BufMut, Bytes, BytesMut};
use http::{header, uri::PathAndQuery, HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::net::TcpListener;
use tonic::{
    client::Grpc,
    server::NamedService,
    transport::{server::TcpIncoming, Channel, Server},
    Code, Status,
};
use tonic_prost::ProstCodec;
use tower_api_errors::normalize::NormalizeLayer;
use tower_http::{limit::RequestBodyLimitLayer, validate_request::ValidateRequestHeaderLayer};

const API_KEY: &str = "test-key";
const GET: &str = "/test.Users/Get";

#[derive(Clone, PartialEq, prost::Message)]
struct GetUser {
    #[prost(uint32, tag = "1")]
    id: u32,
    #[prost(string, tag = "2")]
    padding: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct User {
    #[prost(uint32, tag = "1")]
    id: u32,
    #[prost(string, tag = "2")]
    name: String,
}

/// A hand-written service, shaped like tonic's generated code.
#[derive(Clone)]
struct Users;

impl NamedService for Users {
    const NAME: &'static str = "test.Users";
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = Result<T, Infallible>> + Send>>;

impl<B> tower::Service<http::Request<B>> for Users
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        match request.uri().path() {
            GET => Box::pin(async move {
                let method = tower::service_fn(|request: tonic::Request<GetUser>| async move {
                    match request.into_inner().id {
                        42 => Err(Status::not_found("no user 42")),
                        id => Ok(tonic::Response::new(User {
                            id,
                            name: format!("user {id}"),
                        })),
                    }
                });
                let mut grpc = tonic::server::Grpc::new(ProstCodec::<User, GetUser>::default());
                Ok(grpc.unary(method, request).await)
            }),
            _ => Box::pin(async { Ok(Status::unimplemented("").into_http()) }),
        }
    }
}

/// Normalize, then an API-key check (403 when missing) and a 64-byte body limit (413), both
/// plain HTTP middleware from tower-http, then tonic.
async fn start() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let key_check = ValidateRequestHeaderLayer::has_header_value("x-api-key", API_KEY).unwrap();
    tokio::spawn(async move {
        Server::builder()
            .layer(NormalizeLayer::new())
            .layer(key_check)
            .layer(RequestBodyLimitLayer::new(64))
            .add_service(Users)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .unwrap()
    });
    format!("http://{address}")
}

async fn call(base: &str, path: &'static str, id: u32, key: Option<&str>) -> Result<User, Status> {
    let channel = Channel::from_shared(base.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = Grpc::new(channel);
    client.ready().await.unwrap();
    let mut request = tonic::Request::new(GetUser {
        id,
        padding: String::new(),
    });
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("x-api-key", key.parse().unwrap());
    }
    client
        .unary(
            request,
            PathAndQuery::from_static(path),
            ProstCodec::<GetUser, User>::default(),
        )
        .await
        .map(tonic::Response::into_inner)
}

/// A gRPC message frame: uncompressed flag, big-endian length, protobuf bytes.
fn frame(message: &GetUser) -> Bytes {
    let encoded = prost::Message::encode_to_vec(message);
    let mut frame = BytesMut::new();
    frame.put_u8(0);
    frame.put_u32(encoded.len() as u32);
    frame.put_slice(&encoded);
    frame.freeze()
}

/// A gRPC call over a raw HTTP/2 client, with a `Content-Length`, to see the response as sent.
async fn raw_call(base: &str, body: Bytes) -> (StatusCode, HeaderMap, Bytes, Option<HeaderMap>) {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let request = http::Request::post(format!("{base}{GET}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::CONTENT_LENGTH, body.len())
        .header("te", "trailers")
        .header("x-api-key", API_KEY)
        .body(Full::new(body))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    (parts.status, parts.headers, collected.to_bytes(), trailers)
}

#[tokio::test]
async fn grpc_answers_pass_untouched() {
    let base = start().await;
    let user = call(&base, GET, 7, Some(API_KEY)).await.unwrap();
    assert_eq!(
        user,
        User {
            id: 7,
            name: "user 7".to_owned()
        }
    );

    let status = call(&base, GET, 42, Some(API_KEY)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(status.message(), "no user 42");

    // Routes tonic does not know get tonic's own trailers-only answer, not a rewritten one.
    for path in ["/test.Users/Nope", "/test.Other/Get"] {
        let status = call(&base, path, 7, Some(API_KEY)).await.unwrap_err();
        assert_eq!(status.code(), Code::Unimplemented, "{path}");
        assert_eq!(status.message(), "", "{path}");
    }

    // On the wire: tonic's trailers-only status, exactly as tonic wrote it.
    let (status, headers, body, trailers) = raw_call(
        &base,
        frame(&GetUser {
            id: 42,
            padding: String::new(),
        }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["grpc-status"], "5");
    assert_eq!(headers["grpc-message"], "no%20user%2042");
    assert!(body.is_empty());
    assert!(trailers.is_none());
}

#[tokio::test]
async fn http_errors_on_grpc_calls_become_trailers_only() {
    let base = start().await;

    // tower-http's empty 403 reaches the tonic client as a gRPC status naming the contract code.
    let status = call(&base, GET, 7, None).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "forbidden");

    // tower-http's 413 (text/plain) becomes HTTP 200, `grpc-status: 8`, no body.
    let oversized = frame(&GetUser {
        id: 7,
        padding: "x".repeat(200),
    });
    let (status, headers, body, trailers) = raw_call(&base, oversized).await;
    assert_eq!(status, 200);
    assert_eq!(headers[header::CONTENT_TYPE], "application/grpc");
    assert_eq!(headers["grpc-status"], "8");
    assert_eq!(headers["grpc-message"], "payload_too_large");
    assert!(headers.get(header::CONTENT_LENGTH).is_none_or(|v| v == "0"));
    assert!(body.is_empty());
    assert!(trailers.is_none());

    // A small message under the limit still reaches the service.
    let (status, headers, body, trailers) = raw_call(
        &base,
        frame(&GetUser {
            id: 7,
            padding: String::new(),
        }),
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.get("grpc-status").is_none());
    assert!(!body.is_empty());
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
}
