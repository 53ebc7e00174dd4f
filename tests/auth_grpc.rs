//! The auth layer in front of a tonic 0.14 server, called by a real tonic client: the key comes
//! from the `authorization` metadata, refusals are gRPC statuses (trailers-only).

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
};

use http::{uri::PathAndQuery, Method};
use tokio::net::TcpListener;
use tonic::{
    body::Body,
    client::Grpc as GrpcClient,
    server::{Grpc as GrpcServer, NamedService},
    transport::{server::TcpIncoming, Channel, Endpoint, Server},
    Code, Request, Response, Status,
};
use tonic_prost::ProstCodec;
use tower::Service;
use tower_api_errors::auth::{
    ApiKey, AuthLayer, InMemoryKeyStore, KeyDigest, KeySet, KeyStore, Lookup, Principal, RoleTable,
    StoreError,
};

#[derive(Clone, PartialEq, prost::Message)]
struct Webhook {
    #[prost(string, tag = "1")]
    url: String,
    #[prost(string, tag = "2")]
    account_id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CreateWebhooks {
    #[prost(message, repeated, tag = "1")]
    webhooks: Vec<Webhook>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ListWebhooks {}

#[derive(Clone, PartialEq, prost::Message)]
struct Reply {
    /// The account the handler saw in the principal.
    #[prost(string, tag = "1")]
    account_id: String,
    #[prost(uint32, tag = "2")]
    count: u32,
}

/// A hand-written `bulk.Webhooks` service, as tonic's generated code would route it.
#[derive(Clone, Default)]
struct Webhooks {
    calls: Arc<AtomicUsize>,
}

impl NamedService for Webhooks {
    const NAME: &'static str = "bulk.Webhooks";
}

fn account(extensions: &tonic::Extensions) -> String {
    extensions
        .get::<Principal>()
        .map(|principal| principal.account_id().to_owned())
        .unwrap_or_default()
}

impl Service<http::Request<Body>> for Webhooks {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let calls = self.calls.clone();
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let response = match request.uri().path() {
                "/bulk.Webhooks/Create" => {
                    let create = tower::service_fn(|request: Request<CreateWebhooks>| async move {
                        let reply = Reply {
                            account_id: account(request.extensions()),
                            count: request.get_ref().webhooks.len() as u32,
                        };
                        Ok::<_, Status>(Response::new(reply))
                    });
                    GrpcServer::new(ProstCodec::<Reply, CreateWebhooks>::default())
                        .unary(create, request)
                        .await
                }
                "/bulk.Webhooks/List" => {
                    let list = tower::service_fn(|request: Request<ListWebhooks>| async move {
                        let reply = Reply {
                            account_id: account(request.extensions()),
                            count: 0,
                        };
                        Ok::<_, Status>(Response::new(reply))
                    });
                    GrpcServer::new(ProstCodec::<Reply, ListWebhooks>::default())
                        .unary(list, request)
                        .await
                }
                _ => Status::unimplemented("no such method").into_http(),
            };
            Ok(response)
        })
    }
}

fn store() -> impl KeyStore<Future = impl Send> + Clone + Send + Sync + 'static {
    let table = InMemoryKeyStore::new(
        KeySet::new()
            .with_key(
                "demo_admin",
                Principal::new("acct_123").with_roles(["read", "write"]),
            )
            .and_then(|keys| {
                keys.with_key(
                    "demo_reader",
                    Principal::new("acct_123").with_roles(["read"]),
                )
            })
            .and_then(|keys| {
                keys.with_key(
                    "demo_disabled",
                    Principal::new("acct_123").with_roles(["read"]).disabled(),
                )
            })
            .unwrap(),
    );
    move |key: &ApiKey<'_>| {
        let (table, digest) = (table.clone(), *key.digest());
        async move {
            if digest == KeyDigest::of("store_down") {
                return Err(StoreError::unavailable("connection refused"));
            }
            if digest == KeyDigest::of("store_broken") {
                return Err(StoreError::failed("unexpected reply"));
            }
            Ok(table.get(&digest).map_or(Lookup::NotFound, Lookup::Found))
        }
    }
}

async fn serve(service: Webhooks) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // gRPC calls are POSTs: the table names the methods by path.
    let roles = RoleTable::new()
        .rule([Method::POST], "/bulk.Webhooks/List", ["read"])
        .rule([Method::POST], "/bulk.Webhooks/Create", ["write"]);
    tokio::spawn(async move {
        Server::builder()
            .layer(AuthLayer::new(store()).route_policy(roles))
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .unwrap();
    });
    addr
}

async fn client(addr: SocketAddr) -> GrpcClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    GrpcClient::new(channel)
}

async fn create(
    client: &mut GrpcClient<Channel>,
    key: Option<&str>,
) -> Result<Response<Reply>, Status> {
    let mut request = Request::new(CreateWebhooks {
        webhooks: vec![
            Webhook {
                url: "https://a.example".into(),
                account_id: "acct_123".into(),
            };
            2
        ],
    });
    if let Some(key) = key {
        request
            .metadata_mut()
            .insert("authorization", key.parse().unwrap());
    }
    client.ready().await.unwrap();
    client
        .unary(
            request,
            PathAndQuery::from_static("/bulk.Webhooks/Create"),
            ProstCodec::<CreateWebhooks, Reply>::default(),
        )
        .await
}

async fn list(client: &mut GrpcClient<Channel>, key: &str) -> Result<Response<Reply>, Status> {
    let mut request = Request::new(ListWebhooks {});
    request
        .metadata_mut()
        .insert("authorization", key.parse().unwrap());
    client.ready().await.unwrap();
    client
        .unary(
            request,
            PathAndQuery::from_static("/bulk.Webhooks/List"),
            ProstCodec::<ListWebhooks, Reply>::default(),
        )
        .await
}

#[tokio::test]
async fn grpc_calls_get_unauthenticated_and_permission_denied() {
    let service = Webhooks::default();
    let calls = service.calls.clone();
    let mut client = client(serve(service).await).await;

    for key in [
        None,
        Some("Bearer nope"),
        Some("Bearer demo_disabled"),
        Some("Basic ZGVtbzpkZW1v"),
        Some("Bearer "),
    ] {
        let status = create(&mut client, key).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{key:?}");
        assert_eq!(status.message(), "unauthorized");
    }

    // A reader may list but not create.
    let status = create(&mut client, Some("Bearer demo_reader"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(status.message(), "forbidden");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no refused call reached the service"
    );
    let reply = list(&mut client, "bearer demo_reader").await.unwrap();
    assert_eq!(reply.get_ref().account_id, "acct_123");

    // A writer creates; the handler sees the principal.
    let reply = create(&mut client, Some("Bearer demo_admin"))
        .await
        .unwrap();
    assert_eq!(
        reply.into_inner(),
        Reply {
            account_id: "acct_123".into(),
            count: 2
        }
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn grpc_store_failures_are_internal_or_unavailable() {
    let service = Webhooks::default();
    let calls = service.calls.clone();
    let mut client = client(serve(service).await).await;
    let status = create(&mut client, Some("Bearer store_broken"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(status.message(), "server_error");
    let status = list(&mut client, "Bearer store_down").await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(status.message(), "service_unavailable");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
