//! The server `scripts/loadtest.sh` measures: one axum router, served bare or behind the
//! crate's whole stack, so the difference between the two is the price of the layers.
//!
//! ```sh
//! cargo run --release --example bench_server -- --stack none --addr 127.0.0.1:38080 --threads 1
//! cargo run --release --example bench_server -- --stack full --addr 127.0.0.1:38080 --threads 1
//! ```
//!
//! Routes (the same handlers in both stacks):
//!
//! - `POST /v1/items`: a JSON array of items, answered `{"count":<items>}`;
//! - `GET /v1/items?ids=a,b,c`: answered `{"count":<ids>}`.
//!
//! `--stack full` puts, outermost first: catch panic → normalize → auth (an in-memory key store
//! holding `bench_key`, roles `read` and `write`; reading needs `read`, writing `write`) →
//! batch limit (5 items per write, 10 per read) → per-item authorization (an item naming an
//! account must name the key's) → the router. `--stack none` serves the router alone.
//!
//! The server logs nothing per request and stops on SIGINT or SIGTERM.

// The app builder is shared with the end-to-end test, which includes this file by path.
#![allow(unreachable_pub)]

use std::{future::Future, net::SocketAddr, num::NonZeroUsize};

use axum::{extract::RawQuery, routing::post, serve::ListenerExt, Json, Router};
use serde_json::{json, Value};
use tower_api_errors::{
    auth::{AuthLayer, AuthorizeItemsLayer, InMemoryKeyStore, KeySet, Principal, RoleTable},
    batch_limit::BatchLimitLayer,
    Contract,
};

/// The one key of the full stack's store.
pub const BENCH_KEY: &str = "bench_key";

/// The account `BENCH_KEY` belongs to.
pub const BENCH_ACCOUNT: &str = "acct_bench";

/// The body the load test posts: five items of the key's own account, so every layer does
/// its whole work (count, hash, authorize each item) and the request is accepted.
pub fn five_items() -> String {
    items(5)
}

/// `n` items of the bench account, as a JSON array.
pub fn items(n: usize) -> String {
    let items: Vec<String> = (1..=n)
        .map(|i| {
            format!(
                r#"{{"account_id":"{BENCH_ACCOUNT}","url":"https://hooks.example.com/{i}","email":"ops{i}@example.com"}}"#
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// Which stack to serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// The router alone.
    None,
    /// The router behind all four layers.
    Full,
}

impl std::str::FromStr for Stack {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "none" | "bare" => Ok(Stack::None),
            "full" => Ok(Stack::Full),
            other => Err(format!("--stack {other:?}: expected none or full")),
        }
    }
}

async fn create_items(Json(items): Json<Vec<Value>>) -> Json<Value> {
    Json(json!({ "count": items.len() }))
}

async fn get_items(RawQuery(query): RawQuery) -> Json<Value> {
    let count = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "ids")
        .map(|(_, value)| value.split(',').filter(|id| !id.is_empty()).count())
        .sum::<usize>();
    Json(json!({ "count": count }))
}

/// The router both stacks serve.
pub fn routes() -> Router {
    Router::new().route("/v1/items", post(create_items).get(get_items))
}

/// The full stack's key store: `BENCH_KEY` with roles `read` and `write`.
pub fn key_store() -> InMemoryKeyStore {
    let keys = KeySet::new()
        .with_key(
            BENCH_KEY,
            Principal::new(BENCH_ACCOUNT)
                .with_key_id("key_bench")
                .with_roles(["read", "write"]),
        )
        .expect("the bench key is valid");
    InMemoryKeyStore::new(keys)
}

/// The router behind the whole contract, as `examples/bulk_api` configures it.
pub fn full_stack() -> Router {
    routes().layer(
        Contract::bulk()
            .auth(AuthLayer::new(key_store()).route_policy(RoleTable::read_write()))
            .batch_limit(BatchLimitLayer::new())
            .authorize_items(AuthorizeItemsLayer::default()),
    )
}

/// Serves `stack` on `listener` until `shutdown` completes. Responses are sent at once
/// (`TCP_NODELAY`), as HTTP servers usually do.
pub async fn serve(
    listener: tokio::net::TcpListener,
    stack: Stack,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|stream| {
        // Only a latency setting: the server works the same without it.
        let _ = stream.set_nodelay(true);
    });
    match stack {
        Stack::None => {
            axum::serve(listener, routes().into_make_service())
                .with_graceful_shutdown(shutdown)
                .await
        }
        Stack::Full => {
            axum::serve(listener, full_stack())
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// Command-line options.
#[derive(Debug)]
pub struct Options {
    /// `--stack none|full`, default `full`.
    pub stack: Stack,
    /// `--addr HOST:PORT`, default `127.0.0.1:38080`.
    pub addr: SocketAddr,
    /// `--threads N`: the runtime's worker threads, default one per core.
    pub threads: NonZeroUsize,
}

const USAGE: &str = "usage: bench_server [--stack none|full] [--addr HOST:PORT] [--threads N]";

impl Options {
    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut options = Options {
            stack: Stack::Full,
            addr: SocketAddr::from(([127, 0, 0, 1], 38080)),
            threads: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                None => (arg, None),
            };
            if name == "--help" || name == "-h" {
                return Err(USAGE.to_owned());
            }
            let value = match inline.or_else(|| args.next()) {
                Some(value) => value,
                None => return Err(format!("{name} needs a value; {USAGE}")),
            };
            match name.as_str() {
                "--stack" => options.stack = value.parse()?,
                "--addr" => {
                    options.addr = value
                        .parse()
                        .map_err(|error| format!("--addr {value:?} is not HOST:PORT: {error}"))?
                }
                "--threads" => {
                    options.threads = value
                        .parse()
                        .map_err(|_| format!("--threads {value:?}: expected a number above 0"))?
                }
                other => return Err(format!("unknown argument {other:?}; {USAGE}")),
            }
        }
        Ok(options)
    }
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

fn main() {
    // Caught panics are logged by fingerprint, not printed to stderr by the default hook.
    tower_api_errors::catch_panic::install_quiet_hook();
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.threads.get())
        .enable_all()
        .build()
        .expect("the runtime starts");
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(options.addr).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!("cannot listen on {}: {error}", options.addr);
                std::process::exit(1);
            }
        };
        let bound = listener
            .local_addr()
            .expect("a bound listener has an address");
        println!(
            "listening on http://{bound} (stack {:?}, {} worker threads)",
            options.stack, options.threads
        );
        // On a worker, so that with `--threads 1` one thread does all the work.
        tokio::spawn(serve(listener, options.stack, shutdown_signal()))
            .await
            .expect("the server does not panic")
            .expect("the server runs");
    });
}
