//! Key lookups through the database stores, next to the in-memory store, in one run.
//!
//! - warm: a lookup answered by a [`CachedKeyStore`] over SQLite / PostgreSQL (what every
//!   request after the first costs) against [`InMemoryKeyStore`], with and without hashing the
//!   presented key (which the layer does once per request either way);
//! - cold: p50 / p99 of a lookup that reaches the database (no cache);
//! - propagation: p50 / p99 from `disable` on one instance until another instance, with a warm
//!   cache kept fresh by its revocation watch, refuses the key.
//!
//! `TOWER_API_ERRORS_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!  cargo bench --all-features --bench key_store -- --warm-up-time 1 --measurement-time 2`
//!
//! Without the URL the PostgreSQL rows are skipped.

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use criterion::Criterion;
use tokio::runtime::Runtime;
use tower_api_errors::auth::{
    ApiKey, CachedKeyStore, InMemoryKeyStore, KeySet, KeyStore, Lookup, NewKey, PostgresKeyStore,
    Principal, SqliteKeyStore,
};

const TTL: Duration = Duration::from_secs(3600);

fn percentiles(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{name:<44} n={:<5} p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}",
        samples.len(),
        at(0.50),
        at(0.99),
        samples[samples.len() - 1]
    );
}

fn main() {
    let runtime = Runtime::new().unwrap();
    // Lookups start their work (SQLite's blocking task) when called, so inside the runtime.
    let _runtime = runtime.enter();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = runtime
        .block_on(SqliteKeyStore::open(dir.path().join("bench.db")))
        .unwrap();
    let sqlite_key = runtime
        .block_on(sqlite.issue(NewKey::new("acct_1").roles(["read"])))
        .unwrap();
    let secret = sqlite_key.secret().to_owned();

    let url = std::env::var("TOWER_API_ERRORS_POSTGRES_URL").ok();
    let schema = format!("keys_bench_{}", std::process::id());
    let postgres = url.as_ref().map(|url| {
        let store = runtime
            .block_on(PostgresKeyStore::connect_in_schema(url, &schema))
            .expect("TOWER_API_ERRORS_POSTGRES_URL is set: the server must be reachable");
        let key = runtime
            .block_on(store.issue(NewKey::new("acct_1").roles(["read"])))
            .unwrap();
        (store, key.secret().to_owned(), key.id().to_owned())
    });
    if postgres.is_none() {
        println!("*** TOWER_API_ERRORS_POSTGRES_URL is not set: PostgreSQL rows skipped ***");
    }

    // Warm lookups.
    let memory = InMemoryKeyStore::new(
        KeySet::new()
            .with_key(&secret, Principal::new("acct_1").with_roles(["read"]))
            .unwrap(),
    );
    let cached_sqlite = CachedKeyStore::new(sqlite.clone()).ttl(TTL);
    runtime
        .block_on(cached_sqlite.lookup(&ApiKey::new(&secret)))
        .unwrap();
    let cached_postgres = postgres.as_ref().map(|(store, secret, _)| {
        let cache = CachedKeyStore::new(store.clone()).ttl(TTL);
        runtime
            .block_on(cache.lookup(&ApiKey::new(secret)))
            .unwrap();
        cache
    });
    let key = ApiKey::new(&secret);
    assert!(matches!(
        cached_sqlite.lookup_now(&key),
        Some(Ok(Lookup::Found(_)))
    ));

    let mut criterion = Criterion::default().configure_from_args();
    {
        let mut group = criterion.benchmark_group("warm lookup");
        group.bench_function("in-memory store", |b| {
            b.iter(|| memory.lookup_now(black_box(&key)))
        });
        group.bench_function("cached SQLite store", |b| {
            b.iter(|| cached_sqlite.lookup_now(black_box(&key)))
        });
        if let (Some(cache), Some((_, secret, _))) = (&cached_postgres, &postgres) {
            let key = ApiKey::new(secret);
            group.bench_function("cached PostgreSQL store", |b| {
                b.iter(|| cache.lookup_now(black_box(&key)))
            });
        }
        group.bench_function("in-memory store, hashing the key", |b| {
            b.iter(|| memory.lookup_now(&ApiKey::new(black_box(&secret))))
        });
        group.bench_function("cached SQLite store, hashing the key", |b| {
            b.iter(|| cached_sqlite.lookup_now(&ApiKey::new(black_box(&secret))))
        });
        group.finish();
    }
    criterion.final_summary();

    // Cold lookups: every one reaches the database.
    let cold = |store: &dyn Fn() -> Duration, n: usize| (0..n).map(|_| store()).collect::<Vec<_>>();
    let samples = cold(
        &|| {
            let start = Instant::now();
            let found = runtime.block_on(async { sqlite.lookup(&ApiKey::new(&secret)).await });
            assert!(matches!(found, Ok(Lookup::Found(_))));
            start.elapsed()
        },
        2000,
    );
    percentiles("cold lookup, SQLite", samples);
    if let Some((store, secret, id)) = &postgres {
        let samples = cold(
            &|| {
                let start = Instant::now();
                let found = runtime.block_on(async { store.lookup(&ApiKey::new(secret)).await });
                assert!(matches!(found, Ok(Lookup::Found(_))));
                start.elapsed()
            },
            2000,
        );
        percentiles("cold lookup, PostgreSQL", samples);
        propagation(&runtime, url.as_deref().unwrap(), &schema, secret, id);
    }
    if postgres.is_some() {
        // Leave nothing behind on the shared server.
        let _ = std::process::Command::new("psql")
            .args([
                url.as_deref().unwrap(),
                "-XAtqc",
                &format!("DROP SCHEMA \"{schema}\" CASCADE"),
            ])
            .output();
    }
}

/// Disable on instance one, then ask instance two (a warm cache and its watch) until it
/// refuses; enable again and wait until it accepts, so every round starts warm.
fn propagation(runtime: &Runtime, url: &str, schema: &str, secret: &str, id: &str) {
    runtime.block_on(async {
        let one = PostgresKeyStore::connect_in_schema(url, schema)
            .await
            .unwrap();
        let two = PostgresKeyStore::connect_in_schema(url, schema)
            .await
            .unwrap();
        let (cache, watch) = two.cached(TTL);
        watch.listening().await;
        let key = ApiKey::new(secret);
        let active =
            |lookup: Result<Lookup, _>| matches!(lookup, Ok(Lookup::Found(p)) if p.is_active());
        let mut samples = Vec::new();
        for _ in 0..100 {
            assert!(active(cache.lookup(&key).await));
            let start = Instant::now();
            assert!(one.disable(id).await.unwrap());
            while active(cache.lookup(&key).await) {
                tokio::time::sleep(Duration::from_micros(100)).await;
            }
            samples.push(start.elapsed());
            assert!(one.enable(id).await.unwrap());
            while !active(cache.lookup(&key).await) {
                tokio::time::sleep(Duration::from_micros(100)).await;
            }
        }
        percentiles("revocation propagation, two instances (PG)", samples);
    });
}
