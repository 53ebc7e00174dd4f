//! Per-request cost of the crate's whole stack, in process, next to a bare service and to the
//! tower-http trio a service would otherwise use (`CatchPanicLayer` +
//! `ValidateRequestHeaderLayer::bearer` + `RequestBodyLimitLayer`), in one run.
//!
//! The full stack is the one `examples/bench_server.rs` serves, outermost first: catch panic →
//! normalize → auth (in-memory store, route roles) → batch limit → per-item authorization.
//! The bare service is a plain `tower::service_fn` handler that collects the request body,
//! counts its items with serde and answers `{"count":N}`; every stack wraps that same handler,
//! so the differences are the layers' own cost. The requests are those the load test sends: a
//! `POST /v1/items` with five items of the key's account and a valid key; the same with a wrong
//! key; a six-item body; and a handler that panics. Breakdown rows add the layers one at a
//! time, and three rows put the stacks around the axum router the bench server uses.
//!
//! Each iteration calls the service, polls the response future (every future here is ready at
//! once, so no runtime is in the way), and polls the response body to its end, so body
//! wrappers count. Requests are built outside the timed part, with the URI in shared bytes as
//! hyper hands it on.
//!
//! `cargo bench --bench stack -- --warm-up-time 1 --measurement-time 3`
//!
//! Two modes without criterion: `--interleaved <rounds>` measures every row in turn, batch after
//! batch, and prints a table (on a shared machine, the rows then see the same neighbours);
//! `--count <group> <row> <n>` runs `n` requests through one row, for an instruction counter
//! (`valgrind --tool=callgrind`) or an allocation counter (`valgrind --tool=dhat`).

use std::{
    convert::Infallible,
    future::Future,
    hint::black_box,
    pin::pin,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use axum::{routing::post, Json, Router};
use bytes::Bytes;
use criterion::{criterion_group, Criterion};
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use serde::de::IgnoredAny;
use tower::{service_fn, Layer, Service, ServiceBuilder};
use tower_api_errors::{
    auth::{AuthLayer, AuthorizeItemsLayer, InMemoryKeyStore, KeySet, Principal, RoleTable},
    batch_limit::BatchLimitLayer,
    catch_panic::CatchPanicLayer,
    normalize::NormalizeLayer,
    Contract,
};

const BENCH_KEY: &str = "bench_key";
const WRONG_KEY: &str = "bench_kez";
const ACCOUNT: &str = "acct_bench";
/// tower-http's body limit: the batch limit layer's default byte cap, 1 MiB.
const BODY_LIMIT: usize = 1024 * 1024;

/// `n` items of the bench account, as the load test posts them.
fn items(n: usize) -> Bytes {
    let items: Vec<String> = (1..=n)
        .map(|i| {
            format!(
                r#"{{"account_id":"{ACCOUNT}","url":"https://hooks.example.com/{i}","email":"ops{i}@example.com"}}"#
            )
        })
        .collect();
    Bytes::from(format!("[{}]", items.join(",")))
}

/// The request the benchmarks send, built outside the timed part.
#[derive(Clone)]
struct Case {
    key: &'static str,
    body: Bytes,
}

impl Case {
    fn valid() -> Self {
        Case {
            key: BENCH_KEY,
            body: items(5),
        }
    }

    fn bad_key() -> Self {
        Case {
            key: WRONG_KEY,
            body: items(5),
        }
    }

    fn six_items() -> Self {
        Case {
            key: BENCH_KEY,
            body: items(6),
        }
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let target = Bytes::from(b"/v1/items".to_vec());
        // hyper parses the request target out of its read buffer: the URI shares those bytes.
        let _promote_to_shared = target.clone();
        Request::builder()
            .method(Method::POST)
            .uri(Uri::from_maybe_shared(target).unwrap())
            .header(header::HOST, "127.0.0.1:38080")
            .header(header::USER_AGENT, "bench/1.0")
            .header(header::ACCEPT, "*/*")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CONTENT_LENGTH, self.body.len())
            .header(
                header::AUTHORIZATION,
                HeaderValue::try_from(format!("Bearer {}", self.key)).unwrap(),
            )
            .body(Full::new(self.body.clone()))
            .unwrap()
    }
}

/// The bare service's handler: reads the body, counts the items, answers `{"count":N}`.
async fn handler<B>(request: Request<B>) -> Result<Response<Full<Bytes>>, Infallible>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let count = serde_json::from_slice::<Vec<IgnoredAny>>(&body).map_or(0, |items| items.len());
    let mut response = Response::new(Full::new(Bytes::from(format!(r#"{{"count":{count}}}"#))));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

async fn panicking_handler<B>(request: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    black_box(&request);
    panic!("the handler panics on purpose")
}

/// The bench server's router: the same handler as `examples/bench_server.rs`.
fn router() -> Router {
    async fn create_items(Json(items): Json<Vec<serde_json::Value>>) -> Json<serde_json::Value> {
        Json(serde_json::json!({ "count": items.len() }))
    }
    Router::new().route("/v1/items", post(create_items))
}

fn key_store() -> InMemoryKeyStore {
    let mut keys = KeySet::new()
        .with_key(
            BENCH_KEY,
            Principal::new(ACCOUNT)
                .with_key_id("key_bench")
                .with_roles(["read", "write"]),
        )
        .unwrap();
    // A thousand more keys, so the lookup is not in a toy table.
    for n in 0..1_000 {
        keys = keys
            .with_key(format!("sk_other_{n:08}"), Principal::new("acct_other"))
            .unwrap();
    }
    InMemoryKeyStore::new(keys)
}

/// The whole contract, one layer, around `inner`.
macro_rules! full_stack {
    ($inner:expr) => {
        Contract::bulk()
            .auth(AuthLayer::new(key_store()).route_policy(RoleTable::read_write()))
            .batch_limit(BatchLimitLayer::new())
            .authorize_items(AuthorizeItemsLayer::default())
            .layer($inner)
    };
}

/// The crate's four layers composed one by one, outermost first, around `inner`: what the
/// contract is made of.
macro_rules! separate_layers {
    ($inner:expr) => {
        ServiceBuilder::new()
            .layer(CatchPanicLayer::new())
            .layer(NormalizeLayer::new())
            .layer(AuthLayer::new(key_store()).route_policy(RoleTable::read_write()))
            .layer(BatchLimitLayer::new())
            .layer(AuthorizeItemsLayer::default())
            .service($inner)
    };
}

/// tower-http's catch panic, bearer check and body limit around `inner`.
macro_rules! tower_http_trio {
    ($inner:expr) => {{
        #[allow(deprecated)]
        let bearer = tower_http::validate_request::ValidateRequestHeaderLayer::bearer(BENCH_KEY);
        ServiceBuilder::new()
            .layer(tower_http::catch_panic::CatchPanicLayer::new())
            .layer(bearer)
            .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
            .service($inner)
    }};
}

/// Calls `service` once and polls the response and its body to the end, without a runtime.
fn run<S, B>(service: &mut S, request: Request<Full<Bytes>>) -> (StatusCode, usize)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let future = pin!(service.call(request));
    let Poll::Ready(response) = future.poll(&mut cx) else {
        unreachable!("every future here is ready at once")
    };
    let response = response.unwrap();
    let status = response.status();
    let mut body = pin!(response.into_body());
    let mut seen = 0;
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        if let Some(data) = frame.unwrap().data_ref() {
            seen += bytes::Buf::remaining(data);
        }
    }
    (status, seen)
}

/// Times `iters` requests through `service` in batches of 64 built beforehand (so they are in
/// cache, as a request hyper just parsed is) and counts each batch at the pace of the fastest
/// one: on a shared machine, a batch that was preempted measures the neighbours, not the
/// service. Every row is measured the same way.
fn fastest_batches<S, B>(service: &mut S, case: &Case, iters: u64) -> Duration
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    const BATCH: u64 = 64;
    let mut per_request = Duration::MAX;
    let mut done = 0;
    while done < iters {
        let size = BATCH.min(iters - done);
        let requests: Vec<_> = (0..size).map(|_| case.request()).collect();
        let start = Instant::now();
        for request in requests {
            black_box(run(service, request));
        }
        per_request = per_request.min(start.elapsed() / size as u32);
        done += size;
    }
    per_request * iters as u32
}

/// Every row, handed to the macro `$on`: its group, its name, the request, the status it must
/// get, and the expression building its service (a macro, because every stack is its own type).
macro_rules! rows {
    ($on:ident) => {
        $on!(
            "valid_5_items",
            "bare",
            Case::valid(),
            200,
            service_fn(handler)
        );
        $on!(
            "valid_5_items",
            "tower_http_trio",
            Case::valid(),
            200,
            tower_http_trio!(service_fn(handler))
        );
        $on!(
            "valid_5_items",
            "full_stack",
            Case::valid(),
            200,
            full_stack!(service_fn(handler))
        );
        $on!(
            "valid_5_items",
            "separate_layers",
            Case::valid(),
            200,
            separate_layers!(service_fn(handler))
        );
        $on!(
            "valid_5_items",
            "breakdown/catch_panic",
            Case::valid(),
            200,
            CatchPanicLayer::new().layer(service_fn(handler))
        );
        $on!(
            "valid_5_items",
            "breakdown/catch_panic+normalize",
            Case::valid(),
            200,
            ServiceBuilder::new()
                .layer(CatchPanicLayer::new())
                .layer(NormalizeLayer::new())
                .service(service_fn(handler))
        );
        $on!(
            "valid_5_items",
            "breakdown/catch_panic+normalize+auth",
            Case::valid(),
            200,
            ServiceBuilder::new()
                .layer(CatchPanicLayer::new())
                .layer(NormalizeLayer::new())
                .layer(AuthLayer::new(key_store()).route_policy(RoleTable::read_write()))
                .service(service_fn(handler))
        );
        $on!(
            "valid_5_items",
            "breakdown/catch_panic+normalize+auth+batch_limit",
            Case::valid(),
            200,
            ServiceBuilder::new()
                .layer(CatchPanicLayer::new())
                .layer(NormalizeLayer::new())
                .layer(AuthLayer::new(key_store()).route_policy(RoleTable::read_write()))
                .layer(BatchLimitLayer::new())
                .service(service_fn(handler))
        );
        $on!("bad_key", "bare", Case::bad_key(), 200, service_fn(handler));
        $on!(
            "bad_key",
            "tower_http_trio",
            Case::bad_key(),
            401,
            tower_http_trio!(service_fn(handler))
        );
        $on!(
            "bad_key",
            "full_stack",
            Case::bad_key(),
            401,
            full_stack!(service_fn(handler))
        );
        $on!(
            "6_items",
            "bare",
            Case::six_items(),
            200,
            service_fn(handler)
        );
        $on!(
            "6_items",
            "tower_http_trio",
            Case::six_items(),
            200,
            tower_http_trio!(service_fn(handler))
        );
        $on!(
            "6_items",
            "full_stack",
            Case::six_items(),
            400,
            full_stack!(service_fn(handler))
        );
        $on!(
            "panic",
            "tower_http_trio",
            Case::valid(),
            500,
            tower_http_trio!(service_fn(panicking_handler))
        );
        $on!(
            "panic",
            "full_stack",
            Case::valid(),
            500,
            full_stack!(service_fn(panicking_handler))
        );
        $on!("axum_router", "bare", Case::valid(), 200, router());
        $on!(
            "axum_router",
            "tower_http_trio",
            Case::valid(),
            200,
            tower_http_trio!(router())
        );
        $on!(
            "axum_router",
            "full_stack",
            Case::valid(),
            200,
            full_stack!(router())
        );
    };
}

fn stack(c: &mut Criterion) {
    macro_rules! bench {
        ($group:literal, $row:literal, $case:expr, $status:literal, $service:expr) => {{
            let case = $case;
            let mut service = $service;
            // Before timing: the row answers what it should.
            let (status, _) = run(&mut service, case.request());
            assert_eq!(status.as_u16(), $status, "{}/{}", $group, $row);
            c.benchmark_group(concat!("stack/", $group))
                .bench_function($row, |b| {
                    b.iter_custom(|iters| fastest_batches(&mut service, &case, iters))
                });
        }};
    }
    rows!(bench);
}

/// `n` requests through one row, without criterion: instruction counters give figures that do
/// not depend on what else the machine is doing.
fn count(group: &str, row: &str, n: usize) {
    let mut found = false;
    macro_rules! count_row {
        ($group:literal, $row:literal, $case:expr, $status:literal, $service:expr) => {
            if $group == group && $row == row {
                found = true;
                let case = $case;
                let mut service = $service;
                let requests: Vec<_> = (0..n).map(|_| case.request()).collect();
                for request in requests {
                    let (status, _) = run(&mut service, black_box(request));
                    assert_eq!(status.as_u16(), $status);
                }
            }
        };
    }
    rows!(count_row);
    assert!(found, "no row {group}/{row}");
}

/// One row of the interleaved run: its name, and a closure timing one batch of requests.
type Timed = (String, Box<dyn FnMut(usize) -> Duration>);

/// `--interleaved <rounds>`: every row measured in turn, batch after batch (row 1, row 2, …,
/// row 1, row 2, …), so that whatever else the machine does weighs on all rows alike, as the
/// load test interleaves its runs. Prints, per row, the fastest batch and the median batch
/// (ns per request) and the added cost over the bare row of its group.
fn interleaved(rounds: usize) {
    const BATCH: usize = 32;
    let mut rows: Vec<Timed> = Vec::new();
    macro_rules! timed_row {
        ($group:literal, $row:literal, $case:expr, $status:literal, $service:expr) => {{
            let case = $case;
            let mut service = $service;
            let (status, _) = run(&mut service, case.request());
            assert_eq!(status.as_u16(), $status, "{}/{}", $group, $row);
            rows.push((
                format!("{}/{}", $group, $row),
                Box::new(move |n| {
                    let requests: Vec<_> = (0..n).map(|_| case.request()).collect();
                    let start = Instant::now();
                    for request in requests {
                        black_box(run(&mut service, request));
                    }
                    start.elapsed()
                }),
            ));
        }};
    }
    rows!(timed_row);
    let mut times = vec![Vec::with_capacity(rounds); rows.len()];
    for round in 0..rounds {
        // A different row goes first each round, so that none always follows the same one.
        for k in 0..rows.len() {
            let i = (k + round) % rows.len();
            let elapsed = (rows[i].1)(BATCH);
            times[i].push(elapsed.as_nanos() as f64 / BATCH as f64);
        }
    }
    let stats: Vec<(f64, f64)> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            (t[0], t[t.len() / 2])
        })
        .collect();
    println!("| row | fastest batch (ns) | median batch (ns) | added, fastest | added, median |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (i, (name, _)) in rows.iter().enumerate() {
        let group = name.split('/').next().unwrap_or_default();
        let bare = rows
            .iter()
            .position(|(other, _)| *other == format!("{group}/bare"));
        let (fastest, median) = stats[i];
        let added = |value: f64, base: Option<f64>| {
            base.map_or_else(|| "".to_owned(), |base| format!("{:+.0}", value - base))
        };
        println!(
            "| {name} | {fastest:.0} | {median:.0} | {} | {} |",
            added(fastest, bare.map(|b| stats[b].0)),
            added(median, bare.map(|b| stats[b].1)),
        );
    }
}

criterion_group!(benches, stack);

fn main() {
    // A panic's default report goes to stderr; both stacks catch the same panic, and the write
    // would weigh more than everything measured.
    std::panic::set_hook(Box::new(|_| {}));
    let args: Vec<String> = std::env::args().collect();
    match args.as_slice() {
        [_, flag, group, row, n] if flag == "--count" => {
            return count(group, row, n.parse().expect("a number of requests"));
        }
        [_, flag, rounds] if flag == "--interleaved" => {
            return interleaved(rounds.parse().expect("a number of rounds"));
        }
        _ => {}
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
