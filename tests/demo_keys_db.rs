//! The demo on its database: seeded on first start, and a key disabled with the admin tool's
//! commands refused by the running server on its next request.

#![cfg(feature = "sqlite")]
#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "../examples/bulk_api/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/bulk_api/handlers.rs"]
mod handlers;
#[allow(dead_code)]
#[path = "../examples/bulk_api/store.rs"]
mod store;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use tokio::net::TcpListener;

async fn get(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    key: &str,
) -> StatusCode {
    let request = Request::get(format!("http://{addr}/v1/webhooks?ids=web_1"))
        .header("authorization", format!("Bearer {key}"))
        .body(Full::default())
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let _ = response.into_body().collect().await.unwrap();
    status
}

fn admin(args: &str) -> Vec<String> {
    args.split_whitespace().map(str::to_owned).collect()
}

#[tokio::test]
async fn the_demo_runs_on_sqlite_and_sees_admin_changes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("demo.db").display());

    // First start: the file is created and seeded; a second start adds nothing.
    let (keys, line) = app::keys::from_args(Some(&url), &app::DEMO_KEYS)
        .await
        .unwrap()
        .unwrap();
    assert!(line.contains("4 demo keys added"), "{line}");
    assert!(dir.path().join("demo.db").exists());
    let (_, again) = app::keys::from_args(Some(&url), &app::DEMO_KEYS)
        .await
        .unwrap()
        .unwrap();
    assert!(again.contains("0 demo keys added"), "{again}");
    app::keys::install(keys);

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, axum::ServiceExt::into_make_service(app::app()))
            .await
            .unwrap()
    });
    let client = Client::builder(TokioExecutor::new()).build_http();

    // The README's keys work as before.
    assert_eq!(get(&client, addr, "demo_reader").await, StatusCode::OK);
    assert_eq!(
        get(&client, addr, "demo_disabled").await,
        StatusCode::UNAUTHORIZED
    );

    // The admin tool, on its own connection to the same file.
    let db = app::keys::open(&url).await.unwrap();
    assert_eq!(
        db.admin(&admin("disable key_reader")).await.unwrap(),
        "key_reader: disabled\n"
    );
    assert_eq!(
        get(&client, addr, "demo_reader").await,
        StatusCode::UNAUTHORIZED
    );
    db.admin(&admin("enable key_reader")).await.unwrap();
    assert_eq!(get(&client, addr, "demo_reader").await, StatusCode::OK);

    let issued = db
        .admin(&admin(
            "issue --account acct_123 --roles read,write --expires 30d",
        ))
        .await
        .unwrap();
    let lines: Vec<&str> = issued.lines().collect();
    assert_eq!(lines.len(), 2, "{issued}");
    let id = lines[0].strip_prefix("id: ").unwrap();
    let key = lines[1].strip_prefix("key: ").unwrap();
    assert_eq!(get(&client, addr, key).await, StatusCode::OK);

    let list = db.admin(&admin("list")).await.unwrap();
    assert!(list.contains(id) && !list.contains(key), "{list}");
    db.admin(&admin(&format!("revoke {id}"))).await.unwrap();
    assert_eq!(get(&client, addr, key).await, StatusCode::UNAUTHORIZED);
    let refused = db.admin(&admin(&format!("enable {id}"))).await.unwrap_err();
    assert!(refused.contains("revoked"), "{refused}");
    assert!(db
        .admin(&admin("disable key_nope"))
        .await
        .unwrap_err()
        .contains("no such key"));
    assert!(
        db.admin(&admin("issue --roles read")).await.is_err(),
        "no account"
    );
    assert!(db
        .admin(&admin("issue --account a --expires soon"))
        .await
        .is_err());
}
