//! tonic handlers that speak the contract (feature `tonic`), called by a real tonic client: a
//! handler's `ApiError` is a `Status` with rich error details, the auth layer's refusals carry
//! the same details, and a role table keyed by gRPC method path.
#![cfg(feature = "tonic")]

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    task::{Context, Poll},
};

use http::uri::PathAndQuery;
use tokio::net::TcpListener;
use tonic::{
    body::Body,
    client::Grpc as GrpcClient,
    server::{Grpc as GrpcServer, NamedService},
    transport::{server::TcpIncoming, Endpoint, Server},
    Code, Request, Response, Status,
};
use tonic_prost::ProstCodec;
use tonic_types::StatusExt;
use tower::Service;
use tower_api_errors::{
    auth::{AuthLayer, InMemoryKeyStore, KeySet, Principal, RoleTable},
    tonic::RequestExt,
    ApiError, ErrorCode, FieldError,
};

#[derive(Clone, PartialEq, prost::Message)]
struct Webhook {
    #[prost(string, tag = "1")]
    url: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Reply {
    #[prost(string, tag = "1")]
    account_id: String,
}

const CREATE: &str = "/hooks.v1.Webhooks/Create";
const DELETE: &str = "/hooks.v1.Webhooks/Delete";

#[derive(Clone, Default)]
struct Webhooks;

impl NamedService for Webhooks {
    const NAME: &'static str = "hooks.v1.Webhooks";
}

/// A handler in the style the crate allows: it fails with `ApiError`, `?` makes it a `Status`.
async fn create(request: Request<Webhook>) -> Result<Response<Reply>, Status> {
    Ok(Response::new(validate(&request)?))
}

fn validate(request: &Request<Webhook>) -> Result<Reply, ApiError> {
    let account_id = request
        .principal()
        .ok_or_else(ApiError::unauthorized)?
        .account_id()
        .to_owned();
    if !request.get_ref().url.starts_with("https://") {
        return Err(ApiError::new(ErrorCode::ValidationErrors)
            .with_index(0)
            .with_field_error(FieldError::new("url", "must_be_https")));
    }
    Ok(Reply { account_id })
}

impl Service<http::Request<Body>> for Webhooks {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            let codec = ProstCodec::<Reply, Webhook>::default();
            let response = match request.uri().path() {
                CREATE | DELETE => {
                    GrpcServer::new(codec)
                        .unary(tower::service_fn(create), request)
                        .await
                }
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(response)
        })
    }
}

async fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let keys = KeySet::new()
        .with_key("writer", Principal::new("acct_1").with_roles(["write"]))
        .and_then(|keys| {
            keys.with_key(
                "admin",
                Principal::new("acct_2").with_roles(["write", "admin"]),
            )
        })
        .unwrap();
    let roles = RoleTable::new()
        .grpc_method(DELETE, ["admin"])
        .grpc_method(CREATE, ["write"]);
    tokio::spawn(async move {
        Server::builder()
            .layer(AuthLayer::new(InMemoryKeyStore::new(keys)).route_policy(roles))
            .add_service(Webhooks)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    addr
}

async fn call(addr: SocketAddr, path: &'static str, key: &str, url: &str) -> Result<Reply, Status> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = GrpcClient::new(channel);
    let mut request = Request::new(Webhook {
        url: url.to_owned(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    client.ready().await.unwrap();
    client
        .unary(
            request,
            PathAndQuery::from_static(path),
            ProstCodec::<Webhook, Reply>::default(),
        )
        .await
        .map(Response::into_inner)
}

#[tokio::test]
async fn a_handlers_field_errors_reach_the_client_as_bad_request_details() {
    let addr = serve().await;
    let reply = call(addr, CREATE, "writer", "https://a.example")
        .await
        .unwrap();
    assert_eq!(reply.account_id, "acct_1");

    let status = call(addr, CREATE, "writer", "http://a.example")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "validation_errors");
    let bad_request = status
        .get_details_bad_request()
        .expect("BadRequest details");
    assert_eq!(bad_request.field_violations.len(), 1);
    assert_eq!(bad_request.field_violations[0].field, "url");
    assert_eq!(bad_request.field_violations[0].reason, "must_be_https");
    let info = status.get_details_error_info().expect("ErrorInfo details");
    assert_eq!(info.reason, "validation_errors");
    assert_eq!(info.metadata["_idx"], "0");
}

#[tokio::test]
async fn the_layers_own_refusals_carry_the_same_details() {
    let addr = serve().await;
    let status = call(addr, CREATE, "nope", "https://a.example")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "unauthorized");
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "unauthorized"
    );
    assert!(status.get_details_bad_request().is_none());
}

#[tokio::test]
async fn roles_are_keyed_by_the_grpc_method() {
    let addr = serve().await;
    let status = call(addr, DELETE, "writer", "https://a.example")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.get_details_error_info().unwrap().reason, "forbidden");
    let reply = call(addr, DELETE, "admin", "https://a.example")
        .await
        .unwrap();
    assert_eq!(reply.account_id, "acct_2");
}
