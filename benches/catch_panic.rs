//! Per-request cost of catching panics on requests that do not panic: a bare service,
//! tower-http's `CatchPanicLayer`, and this crate's `CatchPanicLayer` (bulk and coded dialects),
//! in one run, for a typical API request and for a minimal one.
//!
//! Each iteration calls the service, polls the response future, and polls the response body to
//! its end, then drops the response, so the body wrapper's cost counts. Requests are built
//! outside the timed part, with the URI in shared bytes as hyper hands it on.
//!
//! `cargo bench --bench catch_panic -- --warm-up-time 1 --measurement-time 3`

use std::{
    convert::Infallible,
    future::Future,
    hint::black_box,
    pin::pin,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{header, Request, Response, Uri};
use http_body::Body;
use http_body_util::Full;
use tower::{service_fn, Layer, Service};
use tower_api_errors::{catch_panic::CatchPanicLayer, dialect::Coded};

/// A typical API request: a 35-byte target with a query, four headers, `Accept` among them.
fn api_request() -> Request<Full<Bytes>> {
    let target = Bytes::from(b"/v1/webhooks/web_123?expand=account".to_vec());
    // hyper parses the request target out of its read buffer: the URI shares those bytes.
    let _promote_to_shared = target.clone();
    Request::get(Uri::from_maybe_shared(target).unwrap())
        .header(header::HOST, "api.example.com")
        .header(header::USER_AGENT, "bench/1.0")
        .header(header::ACCEPT, "application/json")
        .header(header::AUTHORIZATION, "Bearer sk_test_0123456789")
        .body(Full::default())
        .unwrap()
}

/// The least a request can be: `GET /`, no headers.
fn minimal_request() -> Request<Full<Bytes>> {
    Request::new(Full::default())
}

async fn handler(_: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        br#"{"id":"web_123","url":"https://example.com/hook"}"#,
    ))))
}

/// Calls `service` once and polls the response and its body to the end, without a runtime:
/// the handler never waits.
fn run<S, B>(service: &mut S, request: Request<Full<Bytes>>)
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
        unreachable!("the handler is always ready")
    };
    let response = response.unwrap();
    black_box(response.status());
    let mut body = pin!(response.into_body());
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        black_box(frame.unwrap());
    }
}

/// Times `iters` requests through `service` in batches of 64 built beforehand (so they are in
/// cache, as a request hyper just parsed is) and counts each batch at the pace of the fastest
/// one: on a shared machine, a batch that was preempted measures the neighbours, not the
/// service. Every service is measured the same way.
fn fastest_batches<S, B>(
    service: &mut S,
    request: fn() -> Request<Full<Bytes>>,
    iters: u64,
) -> Duration
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
        let requests: Vec<_> = (0..size).map(|_| request()).collect();
        let start = Instant::now();
        for request in requests {
            run(service, request);
        }
        per_request = per_request.min(start.elapsed() / size as u32);
        done += size;
    }
    per_request * iters as u32
}

fn compare(c: &mut Criterion, name: &str, request: fn() -> Request<Full<Bytes>>) {
    let mut group = c.benchmark_group(name);

    let mut bare = service_fn(handler);
    group.bench_function("bare", |b| {
        b.iter_custom(|iters| fastest_batches(&mut bare, request, iters))
    });

    let mut tower_http = tower_http::catch_panic::CatchPanicLayer::new().layer(service_fn(handler));
    group.bench_function("tower_http", |b| {
        b.iter_custom(|iters| fastest_batches(&mut tower_http, request, iters))
    });

    let mut ours = CatchPanicLayer::new().layer(service_fn(handler));
    group.bench_function("tower_api_errors", |b| {
        b.iter_custom(|iters| fastest_batches(&mut ours, request, iters))
    });

    let mut coded = CatchPanicLayer::new()
        .dialect(Coded::new())
        .layer(service_fn(handler));
    group.bench_function("tower_api_errors_coded", |b| {
        b.iter_custom(|iters| fastest_batches(&mut coded, request, iters))
    });

    group.finish();
}

fn catch_panic(c: &mut Criterion) {
    compare(c, "catch_panic_api_request", api_request);
    compare(c, "catch_panic_minimal_request", minimal_request);
}

criterion_group!(benches, catch_panic);
criterion_main!(benches);
