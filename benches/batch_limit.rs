//! Batch limit benchmarks. See `BENCHMARKS.md`, section "Batch limit".
//!
//! `cargo bench --bench batch_limit` runs them under criterion. `--interleaved <rounds>`
//! instead times the counter, serde's `IgnoredAny` and a naive comma scan on the
//! 100,000-item array in turn, round after round, so that whatever else the machine does
//! weighs on all three alike, and prints the fastest and median round of each and their
//! ratios (criterion measures one after the other, and on a shared machine its ratios moved
//! by a third between runs).
use std::{
    convert::Infallible,
    future::Future,
    hint::black_box,
    pin::pin,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::de::IgnoredAny;
use tower::{Layer, Service};
use tower_api_errors::{
    batch_limit::{BatchLimitLayer, ItemCounter},
    body::RequestBody,
};

/// Frames as a server hands them over.
const CHUNK: usize = 16 * 1024;

/// One bulk item, about 260 bytes, like a webhook subscription.
fn item(i: usize) -> String {
    format!(
        r#"{{"id":"web_{i:06}","account_id":"acct_{account:04}","url":"https://hooks.example.com/{i}/events?sig=\"{sig:08x}\"","email":"owner{i}@example.com","events":["invoice.paid","invoice.payment_failed","customer.created"],"active":{active},"retries":{retries},"created_at":"2024-05-0{day}T12:34:56Z"}}"#,
        account = i % 7919,
        sig = i.wrapping_mul(2_654_435_761) as u32,
        active = i % 3 != 0,
        retries = i % 5,
        day = 1 + i % 9,
    )
}

fn array(items: usize) -> Vec<u8> {
    let items: Vec<String> = (0..items).map(item).collect();
    format!("[{}]", items.join(",")).into_bytes()
}

fn count(body: &[u8], counter: ItemCounter) -> usize {
    let mut counter = counter;
    for chunk in body.chunks(CHUNK) {
        counter.feed(chunk).unwrap();
    }
    counter.finish().unwrap().len()
}

fn naive_commas(body: &[u8]) -> usize {
    let mut commas = 0;
    for chunk in body.chunks(CHUNK) {
        commas += chunk.iter().filter(|&&b| b == b',').count();
    }
    commas
}

fn copy(body: &[u8], into: &mut Vec<u8>) -> usize {
    into.clear();
    for chunk in body.chunks(CHUNK) {
        into.extend_from_slice(chunk);
    }
    into.len()
}

fn throughput(c: &mut Criterion) {
    for items in [1_000, 100_000] {
        let body = array(items);
        let mut group = c.benchmark_group(format!("count/{items}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function("item_counter", |b| {
            b.iter(|| count(black_box(&body), ItemCounter::new()))
        });
        group.bench_function("item_counter_portable", |b| {
            b.iter(|| count(black_box(&body), ItemCounter::new().with_simd(false)))
        });
        group.bench_function("item_counter_strict", |b| {
            b.iter(|| count(black_box(&body), ItemCounter::new().strict(true)))
        });
        group.bench_function("serde_ignored_any", |b| {
            b.iter(|| {
                serde_json::from_slice::<Vec<IgnoredAny>>(black_box(&body))
                    .unwrap()
                    .len()
            })
        });
        group.bench_function("naive_comma_scan", |b| {
            b.iter(|| naive_commas(black_box(&body)))
        });
        let mut into = Vec::with_capacity(body.len());
        group.bench_function("copy", |b| b.iter(|| copy(black_box(&body), &mut into)));
        group.finish();
    }
}

/// Polls a future that never waits (every body here is in memory) to its end.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("nothing here waits"),
    }
}

/// The inner service: answers at once, without reading the body.
#[derive(Clone, Copy)]
struct Inner;

impl<B> Service<Request<B>> for Inner {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        black_box(&request);
        std::future::ready(Ok(Response::new(Full::default())))
    }
}

/// The same check with `serde_json`, written as plainly as it gets: collect the body, count the
/// elements with `IgnoredAny`, refuse over 5, wrap the bytes again, call the service.
fn ignored_any_check(inner: &mut Inner, request: Request<Full<Bytes>>) -> Response<Full<Bytes>> {
    let (head, body) = request.into_parts();
    let bytes = now(body.collect()).unwrap().to_bytes();
    match serde_json::from_slice::<Vec<IgnoredAny>>(&bytes) {
        Ok(items) if items.len() <= 5 => {}
        Ok(_) | Err(_) => {
            let mut response = Response::new(Full::from(r#"{"error":"too_many_items"}"#));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return response;
        }
    }
    let request = Request::from_parts(head, RequestBody::<Full<Bytes>>::buffered(bytes, None));
    now(inner.call(request)).unwrap()
}

fn per_request(c: &mut Criterion) {
    let body = Bytes::from(array(5));
    let request = || {
        Request::post("/v1/webhooks")
            .header("content-type", "application/json")
            .header("content-length", body.len())
            .body(Full::new(body.clone()))
            .unwrap()
    };
    let mut group = c.benchmark_group(format!("check_5_items/{}_bytes", body.len()));
    let mut layered = BatchLimitLayer::new().layer(Inner);
    group.bench_function("batch_limit_layer", |b| {
        b.iter_batched(
            request,
            |request| {
                let response = now(layered.call(request)).unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response
            },
            BatchSize::SmallInput,
        )
    });
    // The same layer, counting with `IgnoredAny` instead: same reading and re-wrapping.
    let mut ignored_any_layer = BatchLimitLayer::new()
        .counter(|_: &http::request::Parts, body: &Bytes| {
            serde_json::from_slice::<Vec<IgnoredAny>>(body)
                .map(|items| items.len())
                .map_err(|_| {
                    tower_api_errors::ApiError::new(tower_api_errors::ErrorCode::InvalidJson)
                })
        })
        .layer(Inner);
    group.bench_function("ignored_any_in_the_layer", |b| {
        b.iter_batched(
            request,
            |request| {
                let response = now(ignored_any_layer.call(request)).unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response
            },
            BatchSize::SmallInput,
        )
    });
    let mut inner = Inner;
    group.bench_function("ignored_any_check", |b| {
        b.iter_batched(
            request,
            |request| {
                let response = ignored_any_check(&mut inner, request);
                assert_eq!(response.status(), StatusCode::OK);
                response
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("no_check", |b| {
        b.iter_batched(
            request,
            |request| now(inner.call(request)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// `--interleaved <rounds>`: see the crate docs above.
fn interleaved(rounds: usize) {
    let body = array(100_000);
    type Contender<'a> = (&'a str, Box<dyn Fn(&[u8]) -> usize + 'a>);
    let contenders: [Contender<'_>; 3] = [
        (
            "item_counter",
            Box::new(|body| count(body, ItemCounter::new())),
        ),
        (
            "serde_ignored_any",
            Box::new(|body| {
                serde_json::from_slice::<Vec<IgnoredAny>>(body)
                    .unwrap()
                    .len()
            }),
        ),
        ("naive_comma_scan", Box::new(naive_commas)),
    ];
    let mut times = vec![Vec::with_capacity(rounds); contenders.len()];
    for round in 0..rounds {
        for k in 0..contenders.len() {
            let i = (k + round) % contenders.len();
            let start = std::time::Instant::now();
            black_box((contenders[i].1)(black_box(&body)));
            times[i].push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    let stats: Vec<(f64, f64)> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            (t[0], t[t.len() / 2])
        })
        .collect();
    let gbps = |ms: f64| body.len() as f64 / (ms * 1e6);
    println!(
        "100,000 items, {} bytes, {rounds} interleaved rounds",
        body.len()
    );
    println!("| contender | fastest (ms) | median (ms) | median GB/s |");
    println!("| --- | ---: | ---: | ---: |");
    for ((name, _), (fastest, median)) in contenders.iter().zip(&stats) {
        println!(
            "| {name} | {fastest:.2} | {median:.2} | {:.2} |",
            gbps(*median)
        );
    }
    for (other, target) in [(1, 5.0), (2, 1.0)] {
        println!(
            "counter speed / {}: {:.2}x fastest, {:.2}x median (target >= {target}x)",
            contenders[other].0,
            stats[other].0 / stats[0].0,
            stats[other].1 / stats[0].1,
        );
    }
}

criterion_group!(benches, throughput, per_request);

fn main() {
    // `cargo bench` appends `--bench` to the arguments it is given: the mode ignores it.
    let args: Vec<String> = std::env::args().filter(|arg| arg != "--bench").collect();
    if let [_, flag, rounds] = args.as_slice() {
        if flag == "--interleaved" {
            return interleaved(rounds.parse().expect("a number of rounds"));
        }
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
