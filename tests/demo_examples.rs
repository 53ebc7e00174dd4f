//! The hyper and tonic examples, started on 127.0.0.1 and called by real clients.

#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "../examples/hyper_server.rs"]
mod hyper_server;

#[cfg(feature = "tonic")]
#[allow(dead_code)]
#[path = "../examples/grpc_api/server.rs"]
mod server;
#[cfg(feature = "tonic")]
#[allow(dead_code)]
#[path = "../examples/grpc_api/service.rs"]
mod service;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{json, Value};
use tokio::net::TcpListener;
#[cfg(feature = "tonic")]
use {
    crate::service::{CreateWebhooksRequest, CreateWebhooksResponse, ListWebhooksRequest, Webhook},
    http::uri::PathAndQuery,
    tokio_stream::StreamExt,
    tonic::{metadata::MetadataValue, Code},
    tonic_prost::ProstCodec,
    tonic_types::StatusExt,
};

async fn hyper_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (StatusCode, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    let response = client
        .request(request.body(Full::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_hyper_example_answers_the_contract() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(hyper_server::serve(listener));

    let items = r#"[{"url":"https://a.example"},{"url":"https://b.example"}]"#;
    assert_eq!(
        hyper_call(addr, "POST", "/v1/webhooks", Some("demo_admin"), items).await,
        (
            StatusCode::OK,
            json!({"received": 2, "account_id": "acct_123"})
        )
    );
    assert_eq!(
        hyper_call(addr, "POST", "/v1/webhooks", None, items).await,
        (StatusCode::UNAUTHORIZED, json!({"error": "unauthorized"}))
    );
    assert_eq!(
        hyper_call(addr, "POST", "/v1/webhooks", Some("demo_reader"), items).await,
        (StatusCode::FORBIDDEN, json!({"error": "forbidden"}))
    );
    assert_eq!(
        hyper_call(
            addr,
            "POST",
            "/v1/webhooks",
            Some("demo_admin"),
            "[1,2,3,4,5,6]"
        )
        .await,
        (StatusCode::BAD_REQUEST, json!({"error": "too_many_items"}))
    );
    assert_eq!(
        hyper_call(addr, "POST", "/v1/webhooks", Some("demo_admin"), "[1,").await,
        (StatusCode::BAD_REQUEST, json!({"error": "invalid_json"}))
    );
    assert_eq!(
        hyper_call(
            addr,
            "POST",
            "/v1/webhooks",
            Some("demo_admin"),
            r#"[{"account_id":"acct_9"}]"#
        )
        .await,
        (StatusCode::FORBIDDEN, json!({"error": "forbidden"}))
    );
    assert_eq!(
        hyper_call(addr, "GET", "/v1/debug/panic", Some("demo_admin"), "").await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "server_error"})
        )
    );
    // The handler's empty 404, rewritten by the normalize layer.
    assert_eq!(
        hyper_call(addr, "GET", "/elsewhere", Some("demo_admin"), "").await,
        (StatusCode::NOT_FOUND, json!({"error": "not_found"}))
    );
    // Still serving after the panic.
    assert_eq!(
        hyper_call(addr, "POST", "/v1/webhooks", Some("demo_admin"), "[]").await,
        (
            StatusCode::OK,
            json!({"received": 0, "account_id": "acct_123"})
        )
    );
}

#[cfg(feature = "tonic")]
async fn grpc_client(addr: SocketAddr) -> tonic::client::Grpc<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

#[cfg(feature = "tonic")]
fn keyed<T>(message: T, key: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(key) = key {
        let value: MetadataValue<_> = format!("Bearer {key}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    request
}

#[cfg(feature = "tonic")]
async fn create(
    client: &mut tonic::client::Grpc<tonic::transport::Channel>,
    key: Option<&str>,
    count: usize,
) -> Result<CreateWebhooksResponse, tonic::Status> {
    let webhooks = (0..count)
        .map(|n| Webhook {
            url: format!("https://example.com/{n}"),
            email: format!("{n}@example.com"),
            ..Webhook::default()
        })
        .collect();
    client.ready().await.unwrap();
    client
        .unary(
            keyed(CreateWebhooksRequest { webhooks }, key),
            PathAndQuery::from_static(service::CREATE),
            ProstCodec::<CreateWebhooksRequest, CreateWebhooksResponse>::default(),
        )
        .await
        .map(tonic::Response::into_inner)
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn the_grpc_example_answers_with_grpc_statuses() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(listener));
    let mut client = grpc_client(addr).await;

    let created = create(&mut client, Some("demo_admin"), 5).await.unwrap();
    assert_eq!(created.webhooks.len(), 5);
    assert!(created
        .webhooks
        .iter()
        .all(|hook| hook.account_id == "acct_123"));

    for (key, count, code, message) in [
        (
            Some("demo_admin"),
            6,
            Code::InvalidArgument,
            "too_many_items",
        ),
        (None, 1, Code::Unauthenticated, "unauthorized"),
        (Some("wrong"), 1, Code::Unauthenticated, "unauthorized"),
        (Some("demo_reader"), 1, Code::PermissionDenied, "forbidden"),
    ] {
        let status = create(&mut client, key, count).await.unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (code, message),
            "{key:?} {count}"
        );
    }

    // A handler's own `ApiError`: the item and field reach the client as rich details.
    client.ready().await.unwrap();
    let bad = CreateWebhooksRequest {
        webhooks: vec![
            Webhook {
                url: "https://example.com/ok".into(),
                ..Webhook::default()
            },
            Webhook {
                url: "ftp://example.com".into(),
                ..Webhook::default()
            },
        ],
    };
    let status = client
        .unary(
            keyed(bad, Some("demo_admin")),
            PathAndQuery::from_static(service::CREATE),
            ProstCodec::<CreateWebhooksRequest, CreateWebhooksResponse>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::InvalidArgument, "validation_errors")
    );
    let violation = &status.get_details_bad_request().unwrap().field_violations[0];
    assert_eq!(
        (&*violation.field, &*violation.reason),
        ("url", "invalid_url")
    );
    assert_eq!(
        status.get_details_error_info().unwrap().metadata["_idx"],
        "1"
    );

    // Nothing of the refused calls was stored.
    client.ready().await.unwrap();
    let listed = client
        .unary(
            keyed(ListWebhooksRequest { panic: false }, Some("demo_reader")),
            PathAndQuery::from_static(service::LIST),
            ProstCodec::<ListWebhooksRequest, service::ListWebhooksResponse>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.webhooks.len(), 5);

    // A stream that panics after its first message ends with INTERNAL, not a clean end.
    client.ready().await.unwrap();
    let mut stream = client
        .server_streaming(
            keyed(ListWebhooksRequest { panic: true }, Some("demo_admin")),
            PathAndQuery::from_static(service::WATCH),
            ProstCodec::<ListWebhooksRequest, Webhook>::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert!(stream.next().await.unwrap().is_ok());
    let status = stream.next().await.unwrap().unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::Internal, "server_error")
    );

    // And the server still serves.
    assert_eq!(
        create(&mut client, Some("demo_admin"), 1)
            .await
            .unwrap()
            .webhooks
            .len(),
        1
    );
}
