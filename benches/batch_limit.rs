//! Batch limit benchmarks. See `BENCHMARKS.md`, section "Batch limit".
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde::de::IgnoredAny;
use tower_api_errors::batch_limit::ItemCounter;

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

criterion_group!(benches, throughput);
criterion_main!(benches);
