//! What the key store tests share: a real server on 127.0.0.1 behind the auth layer, and a
//! real client.

#![allow(dead_code)]

use std::net::SocketAddr;

use axum::{extract::Extension, routing::get, Router};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tokio::net::TcpListener;
use tower_api_errors::auth::{AuthLayer, KeyStore, Principal};

/// Serves `GET /whoami` (the principal's account and key id) behind [`AuthLayer`] over `store`.
pub(crate) async fn serve<K>(store: K) -> SocketAddr
where
    K: KeyStore + Clone + Send + Sync + 'static,
    K::Future: Send + 'static,
{
    let app = Router::new()
        .route(
            "/whoami",
            get(|Extension(principal): Extension<Principal>| async move {
                format!("{} {}", principal.account_id(), principal.key_id())
            }),
        )
        .layer(AuthLayer::new(store));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

pub(crate) fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// `GET /whoami` with `key`: the status and the body.
pub(crate) async fn whoami(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    key: &str,
) -> (StatusCode, String) {
    let request = Request::get(format!("http://{addr}/whoami"))
        .header("authorization", format!("Bearer {key}"))
        .body(Full::default())
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}
