//! Per-request cost of the auth layer with the in-memory store, next to a bare service and to
//! tower-http's `ValidateRequestHeaderLayer::bearer`, in one run. Two reference rows measure,
//! on the bare service, the two things the layer must do that tower-http's check does not:
//! hashing the key (SHA-256) and attaching the principal to the request extensions.
//!
//! `cargo bench --bench auth -- --warm-up-time 1 --measurement-time 3`

use std::{
    convert::Infallible,
    future::Future,
    hint::black_box,
    pin::pin,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{Request, Response};
use http_body_util::Full;
use tower::{service_fn, Layer, Service};
use tower_api_errors::auth::{
    ApiKey, AuthLayer, CachedKeyStore, InMemoryKeyStore, KeyDigest, KeySet, Lookup, Principal,
    StoreError,
};

const KEY: &str = "sk_live_4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c";
const WRONG_KEY: &str = "sk_live_4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5d";

/// Every future here is ready at once: poll it once, without a runtime in the way.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("benchmarked services answer at once"),
    }
}

fn request(key: &str) -> Request<Full<Bytes>> {
    Request::post("/v1/webhooks")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {key}"))
        .body(Full::default())
        .unwrap()
}

async fn handler(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    black_box(&request);
    Ok(Response::new(Full::default()))
}

fn run<S>(service: &mut S, request: Request<Full<Bytes>>) -> S::Response
where
    S: Service<Request<Full<Bytes>>>,
    S::Error: std::fmt::Debug,
{
    now(std::future::poll_fn(|cx| service.poll_ready(cx))).unwrap();
    now(service.call(request)).unwrap()
}

fn store() -> InMemoryKeyStore {
    // A thousand keys, so the lookup is not in a toy table.
    let mut keys = KeySet::new()
        .with_key(
            KEY,
            Principal::new("acct_123")
                .with_key_id("key_bench")
                .with_roles(["read", "write"]),
        )
        .unwrap();
    for n in 0..1_000 {
        keys = keys
            .with_key(
                format!("sk_live_other_{n:08}"),
                Principal::new("acct_other"),
            )
            .unwrap();
    }
    InMemoryKeyStore::new(keys)
}

fn per_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("auth");

    let mut bare = service_fn(handler);
    group.bench_function("bare", |b| {
        b.iter_batched(
            || request(KEY),
            |request| run(&mut bare, request),
            BatchSize::SmallInput,
        )
    });

    #[allow(deprecated)]
    let bearer = tower_http::validate_request::ValidateRequestHeaderLayer::bearer(KEY);
    let mut tower_http = bearer.layer(service_fn(handler));
    group.bench_function("tower_http_bearer/valid", |b| {
        b.iter_batched(
            || request(KEY),
            |request| run(&mut tower_http, request),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("tower_http_bearer/rejected", |b| {
        b.iter_batched(
            || request(WRONG_KEY),
            |request| run(&mut tower_http, request),
            BatchSize::SmallInput,
        )
    });

    let mut auth = AuthLayer::new(store()).layer(service_fn(handler));
    group.bench_function("auth_in_memory/valid", |b| {
        b.iter_batched(
            || request(KEY),
            |request| run(&mut auth, request),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("auth_in_memory/rejected", |b| {
        b.iter_batched(
            || request(WRONG_KEY),
            |request| run(&mut auth, request),
            BatchSize::SmallInput,
        )
    });

    let mut cached =
        AuthLayer::new(CachedKeyStore::new(slow_store(store()))).layer(service_fn(handler));
    // The first request fills the cache; the measured ones are hits.
    run(&mut cached, request(KEY));
    group.bench_function("auth_cached_store/valid", |b| {
        b.iter_batched(
            || request(KEY),
            |request| run(&mut cached, request),
            BatchSize::SmallInput,
        )
    });

    group.bench_function("reference/bare_plus_sha256_of_key", |b| {
        b.iter_batched(
            || request(KEY),
            |request| {
                black_box(KeyDigest::of(black_box(KEY)));
                run(&mut bare, request)
            },
            BatchSize::SmallInput,
        )
    });
    let principal = Principal::new("acct_123")
        .with_key_id("key_bench")
        .with_roles(["read", "write"]);
    group.bench_function("reference/bare_plus_principal_in_extensions", |b| {
        b.iter_batched(
            || request(KEY),
            |mut request| {
                request.extensions_mut().insert(principal.clone());
                run(&mut bare, request)
            },
            BatchSize::SmallInput,
        )
    });

    group.finish();
}

/// A store that only answers through its future, as a database would.
fn slow_store(
    table: InMemoryKeyStore,
) -> impl Fn(&ApiKey<'_>) -> std::future::Ready<Result<Lookup, StoreError>> + Clone {
    move |key: &ApiKey<'_>| {
        std::future::ready(Ok(table
            .get(key.digest())
            .map_or(Lookup::NotFound, Lookup::Found)))
    }
}

criterion_group!(benches, per_request);
criterion_main!(benches);
