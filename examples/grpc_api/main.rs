//! A tonic 0.14 server behind the crate's layers, and a client to try it.
//!
//! ```sh
//! cargo run --example grpc_api -- serve --addr 127.0.0.1:50051
//! cargo run --example grpc_api -- create --addr 127.0.0.1:50051 --key demo_admin --count 3
//! cargo run --example grpc_api -- create --addr 127.0.0.1:50051 --key demo_admin --count 6   # INVALID_ARGUMENT
//! cargo run --example grpc_api -- create --addr 127.0.0.1:50051 --key demo_reader --count 1  # PERMISSION_DENIED
//! cargo run --example grpc_api -- watch --addr 127.0.0.1:50051 --key demo_admin --panic      # INTERNAL mid-stream
//! ```
//!
//! Errors are never JSON here: every layer answers a gRPC call with a trailers-only response
//! carrying `grpc-status` (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, INTERNAL) and
//! the contract code as `grpc-message`.

// The modules are shared with the end-to-end tests, which include them by path.
#![allow(unreachable_pub)]

mod server;
mod service;

use http::uri::PathAndQuery;
use tonic::{codegen::tokio_stream::StreamExt as _, metadata::MetadataValue};
use tonic_prost::ProstCodec;

use crate::service::{CreateWebhooksRequest, CreateWebhooksResponse, ListWebhooksRequest, Webhook};

struct Args {
    command: String,
    addr: String,
    key: Option<String>,
    count: usize,
    panic: bool,
}

fn args() -> Args {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        command: args.next().unwrap_or_else(|| "serve".to_owned()),
        addr: "127.0.0.1:50051".to_owned(),
        key: None,
        count: 1,
        panic: false,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => parsed.addr = args.next().expect("--addr takes HOST:PORT"),
            "--key" => parsed.key = args.next(),
            "--count" => {
                parsed.count = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--count takes a number")
            }
            "--panic" => parsed.panic = true,
            other => panic!("unknown argument {other:?}"),
        }
    }
    parsed
}

fn with_key<T>(message: T, key: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(key) = key {
        let value: MetadataValue<_> = format!("Bearer {key}").parse().expect("a printable key");
        request.metadata_mut().insert("authorization", value);
    }
    request
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Caught panics are logged by fingerprint, not printed to stderr by the default hook.
    tower_api_errors::catch_panic::install_quiet_hook();
    let args = args();
    if args.command == "serve" {
        let listener = tokio::net::TcpListener::bind(&args.addr).await?;
        println!("listening on http://{}", listener.local_addr()?);
        tokio::select! {
            result = server::serve(listener) => result?,
            _ = tokio::signal::ctrl_c() => println!("stopped"),
        }
        return Ok(());
    }
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", args.addr))?
        .connect()
        .await?;
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await?;
    let key = args.key.as_deref();
    match args.command.as_str() {
        "create" => {
            let webhooks = (0..args.count)
                .map(|n| Webhook {
                    url: format!("https://example.com/hook/{n}"),
                    email: format!("ops{n}@example.com"),
                    ..Webhook::default()
                })
                .collect();
            let response = client
                .unary(
                    with_key(CreateWebhooksRequest { webhooks }, key),
                    PathAndQuery::from_static(service::CREATE),
                    ProstCodec::<CreateWebhooksRequest, CreateWebhooksResponse>::default(),
                )
                .await;
            match response {
                Ok(response) => println!("created {:?}", response.into_inner().webhooks),
                Err(status) => println!("{:?}: {}", status.code(), status.message()),
            }
        }
        "watch" => {
            let response = client
                .server_streaming(
                    with_key(ListWebhooksRequest { panic: args.panic }, key),
                    PathAndQuery::from_static(service::WATCH),
                    ProstCodec::<ListWebhooksRequest, Webhook>::default(),
                )
                .await;
            match response {
                Ok(response) => {
                    let mut stream = response.into_inner();
                    while let Some(item) = stream.next().await {
                        match item {
                            Ok(hook) => println!("webhook {hook:?}"),
                            Err(status) => println!("{:?}: {}", status.code(), status.message()),
                        }
                    }
                }
                Err(status) => println!("{:?}: {}", status.code(), status.message()),
            }
        }
        other => println!("unknown command {other:?}: serve, create or watch"),
    }
    Ok(())
}
