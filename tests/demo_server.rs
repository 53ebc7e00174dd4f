//! The demo's server settings (`examples/bulk_api/server.rs`) over raw TCP on 127.0.0.1: a
//! half-sent head is dropped after the header-read timeout, an idle kept-alive connection after
//! the idle timeout, a stalled body is `request_timeout` (408), and connections over the limit
//! wait until one closes. The settings here are short so the tests are quick; the defaults are
//! in the README.

#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "../examples/bulk_api/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/bulk_api/handlers.rs"]
mod handlers;
mod reliability_support;
#[allow(dead_code)]
#[path = "../examples/bulk_api/server.rs"]
mod server;
#[allow(dead_code)]
#[path = "../examples/bulk_api/store.rs"]
mod store;

use std::{net::SocketAddr, time::Duration};

use reliability_support::{closed_by_server, parse_answer, raw, read_answer};
use server::ServerSettings;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

async fn start(settings: ServerSettings) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(
        listener,
        app::app(),
        settings,
        std::future::pending(),
    ));
    addr
}

fn short() -> ServerSettings {
    ServerSettings {
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(600),
        body_timeout: Duration::from_millis(300),
        max_connections: 100,
    }
}

const GET: &[u8] =
    b"GET /v1/webhooks?ids=web_1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer demo_reader\r\n\r\n";

#[tokio::test]
async fn a_half_sent_head_is_dropped() {
    let addr = start(short()).await;
    let mut stream = raw(
        addr,
        b"GET /v1/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthor",
    )
    .await;
    assert!(
        closed_by_server(&mut stream).await,
        "the server kept a half-sent head"
    );
    // A head sent a byte at a time is dropped too: the timeout is for the whole head.
    let mut slow = raw(addr, b"G").await;
    let trickle = async {
        for &byte in b"ET /v1/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if slow.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), trickle)
        .await
        .expect("the server kept a head sent one byte at a time");
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let addr = start(short()).await;
    let mut stream = raw(addr, GET).await;
    let mut bytes = Vec::new();
    let mut buffer = [0; 4096];
    while parse_answer(&bytes).is_none() {
        let n = stream.read(&mut buffer).await.unwrap();
        assert_ne!(n, 0, "closed before answering");
        bytes.extend_from_slice(&buffer[..n]);
    }
    assert_eq!(parse_answer(&bytes).unwrap().status, 200);
    // Kept alive, then nothing: the server closes it.
    assert!(
        closed_by_server(&mut stream).await,
        "an idle connection was kept"
    );
}

#[tokio::test]
async fn a_stalled_body_is_a_request_timeout() {
    let addr = start(short()).await;
    let mut stream = raw(
        addr,
        b"POST /v1/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer demo_admin\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[{\"url\":",
    )
    .await;
    read_answer(&mut stream)
        .await
        .assert_error(408, "request_timeout");
}

#[tokio::test]
async fn connections_over_the_limit_wait_for_a_free_slot() {
    let addr = start(ServerSettings {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        max_connections: 2,
        ..ServerSettings::default()
    })
    .await;
    let first = raw(addr, b"").await;
    let _second = raw(addr, b"").await;
    let third = tokio::spawn(async move {
        let mut stream = raw(addr, GET).await;
        let mut bytes = Vec::new();
        let mut buffer = [0; 4096];
        while parse_answer(&bytes).is_none() {
            let n = stream.read(&mut buffer).await.unwrap();
            assert_ne!(n, 0);
            bytes.extend_from_slice(&buffer[..n]);
        }
        parse_answer(&bytes).unwrap().status
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served with two held"
    );
    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(10), third)
        .await
        .expect("the third connection was never served")
        .unwrap();
    assert_eq!(status, 200);
}
