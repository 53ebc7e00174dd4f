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
//! time (as separate layers, and as parts of one `Contract`), and the `axum_router` rows put the
//! stacks around the axum router the bench server uses.
//!
//! The `user_axum` rows are what a user would otherwise write: an axum router behind
//! tower-http's `CatchPanicLayer` and `RequestBodyLimitLayer`, an auth middleware
//! (`axum::middleware::from_fn_with_state`) looking the bearer key up in a `HashMap` and putting
//! the caller into the request extensions, and a handler taking `Json<Vec<_>>` that refuses
//! more than five items with a 400 JSON error. So that its handler does the work of the rows
//! beside it, it takes `Json<Vec<IgnoredAny>>` in the groups whose bare row is the counting
//! `service_fn`, and `Json<Vec<serde_json::Value>>` in the `axum_router` group, whose router
//! does.
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
//! (`valgrind --tool=cachegrind --cache-sim=no`, at two values of `n` to subtract the set-up) or
//! a profiler (`valgrind --tool=callgrind`, `valgrind --tool=dhat`). `--allocs` prints every
//! row's heap allocations and bytes per request, counted by the bench binary's own global
//! allocator; `--list` prints the rows; `--build <group> <row> <n>` only builds the row's `n`
//! requests, so that their building can be subtracted from `--count`'s figure.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    collections::HashMap,
    convert::Infallible,
    future::Future,
    hint::black_box,
    pin::pin,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        Arc,
    },
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use axum::{
    extract::State,
    middleware::Next,
    response::IntoResponse,
    routing::{post, MethodRouter},
    Json, Router,
};
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

/// The system allocator, counting the allocations (and their bytes) made while `COUNTING` is
/// on, for `--allocs`. Off, it costs one relaxed load per call, so the timed modes are not
/// weighed down by it.
struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);

impl CountingAllocator {
    #[inline]
    fn record(size: usize) {
        if COUNTING.load(Relaxed) {
            ALLOCATIONS.fetch_add(1, Relaxed);
            ALLOCATED_BYTES.fetch_add(size as u64, Relaxed);
        }
    }
}

// The only unsafe code of the crate's benches: a global allocator must implement an unsafe
// trait. Every call is handed to `System` unchanged, with the caller's own guarantees.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::record(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::record(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A growth is one more trip to the allocator, as valgrind's dhat counts it.
        Self::record(new_size);
        // SAFETY: as for `dealloc`, and the caller upholds `realloc`'s contract on `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

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

/// The bench server's router: the same handler as `examples/bench_server.rs`. Finished with
/// `with_state(())`, as `axum::serve` does before it serves, so that the handler is turned into
/// a route once and not on every request.
fn router() -> Router {
    async fn create_items(Json(items): Json<Vec<serde_json::Value>>) -> Json<serde_json::Value> {
        Json(serde_json::json!({ "count": items.len() }))
    }
    Router::new()
        .route("/v1/items", post(create_items))
        .with_state(())
}

/// The user's own record of a caller, as a hand-written auth middleware would keep it beside
/// each key: shared, so that putting it into a request is a reference count.
#[derive(Debug)]
struct Caller {
    account_id: String,
    key_id: String,
    roles: Vec<String>,
}

/// The user's key table: clear keys to callers, in a `HashMap` (1,001 keys, as `key_store`).
type Callers = Arc<HashMap<String, Arc<Caller>>>;

fn callers() -> Callers {
    let caller = |account: &str, key_id: &str, roles: &[&str]| {
        Arc::new(Caller {
            account_id: account.to_owned(),
            key_id: key_id.to_owned(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        })
    };
    let mut keys = HashMap::new();
    keys.insert(
        BENCH_KEY.to_owned(),
        caller(ACCOUNT, "key_bench", &["read", "write"]),
    );
    for n in 0..1_000 {
        keys.insert(format!("sk_other_{n:08}"), caller("acct_other", "", &[]));
    }
    Arc::new(keys)
}

/// The user's auth middleware: the bearer key looked up in the table, the caller into the
/// extensions, or a 401 with a JSON error.
async fn user_auth(
    State(callers): State<Callers>,
    mut request: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    let caller = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|key| callers.get(key));
    match caller {
        Some(caller) => {
            let caller = Arc::clone(caller);
            black_box((&caller.account_id, &caller.key_id, &caller.roles));
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(serde_json::json!({ "error": { "code": "unauthenticated", "message": "invalid API key" } })),
        )
            .into_response(),
    }
}

/// The user's length check: more than five items is a 400 with a JSON error.
fn too_many(count: usize) -> Option<axum::response::Response> {
    (count > 5).then(|| {
        (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": { "code": "too_many_items", "message": "at most 5 items", "limit": 5 } })),
        )
            .into_response()
    })
}

/// The user's handler doing the bare handler's work (serde counts the items) plus the check.
async fn user_count_items(Json(items): Json<Vec<IgnoredAny>>) -> axum::response::Response {
    if let Some(refusal) = too_many(items.len()) {
        return refusal;
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"count":{}}}"#, items.len()),
    )
        .into_response()
}

/// The user's handler doing the bench server's router's work (`Value`s) plus the check.
async fn user_create_items(Json(items): Json<Vec<serde_json::Value>>) -> axum::response::Response {
    if let Some(refusal) = too_many(items.len()) {
        return refusal;
    }
    Json(serde_json::json!({ "count": items.len() })).into_response()
}

async fn user_panics(request: axum::extract::Request) -> axum::response::Response {
    black_box(&request);
    panic!("the handler panics on purpose")
}

/// What a user would otherwise write: the route behind the auth middleware, tower-http's body
/// limit and catch panic, applied with `Router::layer` as axum's docs do, and finished with
/// `with_state(())` as `axum::serve` does.
fn user_axum(route: MethodRouter) -> Router {
    Router::new()
        .route("/v1/items", route)
        .layer(axum::middleware::from_fn_with_state(callers(), user_auth))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .with_state(())
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
            "user_axum",
            Case::valid(),
            200,
            user_axum(post(user_count_items))
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
        $on!(
            "valid_5_items",
            "breakdown/contract",
            Case::valid(),
            200,
            Contract::bulk().layer(service_fn(handler))
        );
        $on!(
            "valid_5_items",
            "breakdown/contract+auth",
            Case::valid(),
            200,
            Contract::bulk()
                .auth(AuthLayer::new(key_store()).route_policy(RoleTable::read_write()))
                .layer(service_fn(handler))
        );
        $on!(
            "valid_5_items",
            "breakdown/contract+auth+batch_limit",
            Case::valid(),
            200,
            Contract::bulk()
                .auth(AuthLayer::new(key_store()).route_policy(RoleTable::read_write()))
                .batch_limit(BatchLimitLayer::new())
                .layer(service_fn(handler))
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
            "bad_key",
            "user_axum",
            Case::bad_key(),
            401,
            user_axum(post(user_count_items))
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
            "6_items",
            "user_axum",
            Case::six_items(),
            400,
            user_axum(post(user_count_items))
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
        $on!(
            "panic",
            "user_axum",
            Case::valid(),
            500,
            user_axum(post(user_panics))
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
        $on!(
            "axum_router",
            "user_axum",
            Case::valid(),
            200,
            user_axum(post(user_create_items))
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
///
/// With `build_only`, the `n` requests are built and not run (nor dropped): the counter's
/// figure is then the cost of building them, to subtract from the row's.
fn count(group: &str, row: &str, n: usize, build_only: bool) {
    let mut found = false;
    macro_rules! count_row {
        ($group:literal, $row:literal, $case:expr, $status:literal, $service:expr) => {
            if $group == group && $row == row {
                found = true;
                let case = $case;
                let mut service = $service;
                let requests: Vec<_> = (0..n).map(|_| case.request()).collect();
                if build_only {
                    // Leaked rather than dropped: a service drops each request it is given,
                    // so the drops belong to the row's figure, not to the building.
                    black_box(Box::leak(requests.into_boxed_slice()));
                    return;
                }
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
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    issue_targets(&names, &stats);
}

/// The issue's time targets, each as a ratio against a row of the same run (fastest batch /
/// median batch).
fn issue_targets(names: &[&str], stats: &[(f64, f64)]) {
    let row = |name: &str| {
        let i = names.iter().position(|n| *n == name);
        stats[i.unwrap_or_else(|| panic!("no row {name}"))]
    };
    let ratio = |a: &str, b: &str| {
        let (a, b) = (row(a), row(b));
        format!("{:.2} / {:.2}", a.0 / b.0, a.1 / b.1)
    };
    let (full, bare) = (row("valid_5_items/full_stack"), row("valid_5_items/bare"));
    println!();
    println!("| target (fastest / median) | measured | target |");
    println!("| --- | ---: | ---: |");
    println!(
        "| accepted 5 items: full stack adds (ns) | {:.0} / {:.0} | ≤ 600 |",
        full.0 - bare.0,
        full.1 - bare.1
    );
    println!(
        "| accepted 5 items: added / 600 ns | {:.2} / {:.2} | ≤ 1 |",
        (full.0 - bare.0) / 600.0,
        (full.1 - bare.1) / 600.0
    );
    println!(
        "| bad key: full stack 401 / trio 401 | {} | ≤ 2 |",
        ratio("bad_key/full_stack", "bad_key/tower_http_trio")
    );
    println!(
        "| panic: full stack / trio | {} | ≤ 1.3 |",
        ratio("panic/full_stack", "panic/tower_http_trio")
    );
    for group in [
        "valid_5_items",
        "bad_key",
        "6_items",
        "panic",
        "axum_router",
    ] {
        println!(
            "| {group}: full stack / user_axum | {} | ≤ 1 |",
            ratio(
                &format!("{group}/full_stack"),
                &format!("{group}/user_axum")
            )
        );
    }
}

/// `--allocs <n>`: every row's heap allocations (and bytes asked for) per request, over `n`
/// requests after a few of warm-up, counted by the global allocator. Building the requests and
/// dropping the batch's vector are not counted; everything the service, its futures and its
/// response body do, and the request's and response's own drops, are. Also prints the size of
/// the row's response future and response body, which each layer moves.
fn allocs(n: usize) {
    let mut counts: Vec<(String, f64, f64, (usize, usize))> = Vec::new();
    macro_rules! counted_row {
        ($group:literal, $row:literal, $case:expr, $status:literal, $service:expr) => {{
            let case = $case;
            let mut service = $service;
            for _ in 0..8 {
                let (status, _) = run(&mut service, case.request());
                assert_eq!(status.as_u16(), $status, "{}/{}", $group, $row);
            }
            let requests: Vec<_> = (0..n).map(|_| case.request()).collect();
            ALLOCATIONS.store(0, Relaxed);
            ALLOCATED_BYTES.store(0, Relaxed);
            COUNTING.store(true, Relaxed);
            for request in requests {
                black_box(run(&mut service, request));
            }
            COUNTING.store(false, Relaxed);
            counts.push((
                format!("{}/{}", $group, $row),
                ALLOCATIONS.load(Relaxed) as f64 / n as f64,
                ALLOCATED_BYTES.load(Relaxed) as f64 / n as f64,
                sizes(&service),
            ));
        }};
    }
    rows!(counted_row);
    println!(
        "| row | allocations | bytes | added allocations | added bytes | future (bytes) | response body (bytes) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let bare = |name: &str| {
        let group = name.split('/').next().unwrap_or_default();
        counts
            .iter()
            .find(|(other, ..)| *other == format!("{group}/bare"))
            .map(|(_, allocations, bytes, _)| (*allocations, *bytes))
    };
    for (name, allocations, bytes, (future, body)) in &counts {
        let (added_allocations, added_bytes) = bare(name).map_or_else(
            || (String::new(), String::new()),
            |(a, b)| {
                (
                    format!("{:+.1}", allocations - a),
                    format!("{:+.0}", bytes - b),
                )
            },
        );
        println!(
            "| {name} | {allocations:.1} | {bytes:.0} | {added_allocations} | {added_bytes} | {future} | {body} |"
        );
    }
}

/// The sizes of a service's response future and response body: what every layer moves.
fn sizes<S, B>(_: &S) -> (usize, usize)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
{
    (std::mem::size_of::<S::Future>(), std::mem::size_of::<B>())
}

/// `--list`: every row's group and name, as `--count` takes them.
fn list() {
    macro_rules! listed_row {
        ($group:literal, $row:literal, $case:expr, $status:literal, $service:expr) => {
            println!("{} {}", $group, $row);
        };
    }
    rows!(listed_row);
}

criterion_group!(benches, stack);

fn main() {
    // A panic's default report goes to stderr; both stacks catch the same panic, and the write
    // would weigh more than everything measured.
    std::panic::set_hook(Box::new(|_| {}));
    // `cargo bench` appends `--bench` to the arguments it is given: the modes ignore it.
    let args: Vec<String> = std::env::args().filter(|arg| arg != "--bench").collect();
    match args.as_slice() {
        [_, flag, group, row, n] if flag == "--count" || flag == "--build" => {
            let n = n.parse().expect("a number of requests");
            return count(group, row, n, flag == "--build");
        }
        [_, flag, rounds] if flag == "--interleaved" => {
            return interleaved(rounds.parse().expect("a number of rounds"));
        }
        [_, flag, n] if flag == "--allocs" => {
            return allocs(n.parse().expect("a number of requests"));
        }
        [_, flag] if flag == "--allocs" => return allocs(1_000),
        [_, flag] if flag == "--list" => return list(),
        _ => {}
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
