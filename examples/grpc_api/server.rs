//! The gRPC server's stack: one `Contract`, as in the HTTP demo, answering the gRPC way.

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tower_api_errors::{
    auth::{AuthLayer, InMemoryKeyStore, KeySet, Principal, RoleTable},
    batch_limit::{BatchLimitLayer, GrpcItems, GrpcService},
    Contract,
};

use crate::service::{Webhooks, CREATE, WEBHOOKS_FIELD};

/// The demo keys: `demo_admin` may write, `demo_reader` may only read.
pub fn key_store() -> InMemoryKeyStore {
    let keys = KeySet::new()
        .with_key(
            "demo_admin",
            Principal::new("acct_123")
                .with_key_id("key_admin")
                .with_roles(["read", "write"]),
        )
        .and_then(|keys| {
            keys.with_key(
                "demo_reader",
                Principal::new("acct_123")
                    .with_key_id("key_reader")
                    .with_roles(["read"]),
            )
        })
        .expect("the demo keys are valid");
    InMemoryKeyStore::new(keys)
}

/// Serves `bulk.Webhooks` on `listener`, behind catch panic → normalize → auth → batch limit.
///
/// `CreateWebhooks` needs `write` (any other method `read`), and carries at most 5 webhooks:
/// the batch layer counts field 1 of the request message on the wire.
pub async fn serve(listener: TcpListener) -> Result<(), tonic::transport::Error> {
    let roles = RoleTable::new()
        .grpc_method(CREATE, ["write"])
        .otherwise(["read"]);
    let limit = GrpcItems::new(CREATE, WEBHOOKS_FIELD).expect("a valid field number");
    let contract = Contract::bulk()
        .auth(AuthLayer::new(key_store()).route_policy(roles))
        .batch_limit(
            BatchLimitLayer::new()
                .grpc(limit)
                .grpc_service(GrpcService::new("bulk.Webhooks").expect("a valid service name")),
        );
    Server::builder()
        .layer(contract)
        .add_service(Webhooks::default())
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await
}
