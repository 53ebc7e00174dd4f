//! The demo server: the whole contract, runnable.
//!
//! ```sh
//! cargo run --release --example bulk_api            # 127.0.0.1:3000
//! cargo run --release --example bulk_api -- --addr 127.0.0.1:0
//! cargo run --release --example bulk_api -- --db sqlite://other.db
//! cargo run --release --features postgres --example bulk_api -- --db postgres://localhost/app
//! BULK_API_ADDR=0.0.0.0:8080 cargo run --release --example bulk_api
//! ```
//!
//! `/v1/webhooks` speaks the bulk dialect, `/v1/customer/…` the coded dialect; every layer of
//! the crate is in the stack (see `app.rs`).

// The modules are shared with the end-to-end tests, which include them by path.
#![allow(unreachable_pub)]

mod app;
mod handlers;
mod server;
mod store;

use std::net::SocketAddr;

/// `--addr HOST:PORT` and `--db URL`.
fn arguments() -> Result<(SocketAddr, Option<String>), String> {
    let mut args = std::env::args().skip(1);
    let mut addr = std::env::var("BULK_API_ADDR").ok();
    let mut db = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = Some(args.next().ok_or("--addr needs HOST:PORT")?),
            "--db" => db = Some(args.next().ok_or("--db needs a URL")?),
            other => match (other.strip_prefix("--addr="), other.strip_prefix("--db=")) {
                (Some(value), _) => addr = Some(value.to_owned()),
                (_, Some(value)) => db = Some(value.to_owned()),
                _ => {
                    return Err(format!(
                        "unknown argument {other:?}; usage: bulk_api [--addr HOST:PORT] [--db URL]"
                    ))
                }
            },
        }
    }
    let addr = addr.unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let addr = addr
        .parse()
        .map_err(|error| format!("--addr {addr:?} is not HOST:PORT: {error}"))?;
    Ok((addr, db))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate.recv() => {}
    }
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_target(false).init();
    // Caught panics are logged by fingerprint, not printed to stderr by the default hook.
    tower_api_errors::catch_panic::install_quiet_hook();
    let (addr, db) = match arguments() {
        Ok(arguments) => arguments,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let keys_line = match app::keys::from_args(db.as_deref(), &app::DEMO_KEYS).await {
        Ok(Some((keys, place))) => {
            app::keys::install(keys);
            place
        }
        Ok(None) => "keys: in memory (the `sqlite` feature keeps them in a database)".to_owned(),
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(1);
        }
    };
    let settings = server::ServerSettings::default();
    if let Err(error) = server::run(addr, settings, &keys_line, shutdown_signal()).await {
        eprintln!("cannot listen on {addr}: {error}");
        std::process::exit(1);
    }
    println!("stopped");
}
