//! The whole contract, one `Contract` layer, around a bare hyper 1 server: no framework, a plain
//! `service_fn`.
//!
//! ```sh
//! cargo run --example hyper_server -- --addr 127.0.0.1:3001
//! curl -s -X POST 127.0.0.1:3001/v1/webhooks -H 'Authorization: Bearer demo_admin' -d '[{"url":"https://a.example"}]'
//! curl -s 127.0.0.1:3001/v1/debug/panic -H 'Authorization: Bearer demo_admin'
//! ```
//!
//! `POST /v1/webhooks` answers how many items it received and for which account; the batch
//! layer's `BulkItems` tells it without parsing the body again. `GET /v1/debug/panic` panics.
//! Everything else is an empty 404 from the handler, which the normalize layer rewrites.

use std::{convert::Infallible, net::SocketAddr};

use bytes::Bytes;
use http::{HeaderName, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_api_errors::{
    auth::{
        AuthLayer, AuthorizeItemsLayer, InMemoryKeyStore, KeyExtractor, KeySet, Principal,
        RoleTable,
    },
    batch_limit::{BatchLimitLayer, BulkItems},
    body::RequestBody,
    Contract,
};

/// The contract hands the handler one body type: a `RequestBody` replaying what the client
/// sent (buffered when the batch limit read it, streaming otherwise).
async fn handle(
    request: Request<RequestBody<Incoming>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match (request.method(), request.uri().path()) {
        (&Method::POST, "/v1/webhooks") => {
            let account = request
                .extensions()
                .get::<Principal>()
                .map(|principal| principal.account_id().to_owned())
                .unwrap_or_default();
            let items = request
                .extensions()
                .get::<BulkItems>()
                .map_or(0, BulkItems::len);
            let body = serde_json::json!({"received": items, "account_id": account});
            let mut response = Response::new(Full::from(body.to_string()));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                "application/json".parse().unwrap(),
            );
            response
        }
        (&Method::GET, "/v1/debug/panic") => panic!("the hyper example panics on purpose"),
        _ => {
            let mut response = Response::new(Full::default());
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    // Drain what is left of the body, so the connection can be reused.
    let _ = request.into_body().collect().await;
    Ok(response)
}

/// Serves the stack on `listener` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener) {
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
    let contract = Contract::bulk()
        .auth(
            AuthLayer::new(InMemoryKeyStore::new(keys))
                .keys(KeyExtractor::bearer_or_header(HeaderName::from_static(
                    "x-api-key",
                )))
                .route_policy(RoleTable::read_write()),
        )
        .batch_limit(BatchLimitLayer::new())
        .authorize_items(AuthorizeItemsLayer::default());
    let service = ServiceBuilder::new().layer(contract).service_fn(handle);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service = service.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                service.clone().oneshot(request)
            });
            if let Err(error) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

#[tokio::main]
async fn main() {
    // Caught panics are logged by fingerprint, not printed to stderr by the default hook.
    tower_api_errors::catch_panic::install_quiet_hook();
    let addr: SocketAddr = std::env::args()
        .skip_while(|arg| arg != "--addr")
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3001".to_owned())
        .parse()
        .expect("--addr takes HOST:PORT");
    let listener = TcpListener::bind(addr).await.expect("the address is free");
    println!("listening on http://{}", listener.local_addr().unwrap());
    tokio::select! {
        () = serve(listener) => {}
        _ = tokio::signal::ctrl_c() => println!("stopped"),
    }
}
