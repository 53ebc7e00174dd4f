//! The whole demo stack (`examples/bulk_api`) under load: many concurrent clients on
//! 127.0.0.1 mixing good writes, deletes and reads with bad keys, readers writing, items of
//! another account, too many items, malformed JSON, large bodies and panics. Every response
//! must be a well-formed contract response with the right status; every accepted write must be
//! in the store exactly once and every refused one not at all (the store is compared with a
//! model); and memory must stop growing once the server is warm.
//!
//! Bounded: 32 clients × 12 requests per round, 6 rounds (2 to warm up), on loopback only.
#![cfg(feature = "axum")]
#![allow(unreachable_pub)]

#[allow(dead_code)]
#[path = "../examples/bulk_api/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/bulk_api/handlers.rs"]
mod handlers;
mod reliability_support;
#[allow(dead_code)]
#[path = "../examples/bulk_api/store.rs"]
mod store;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::Arc,
};

use http::Method;
use reliability_support::{client, guarded, quiet_panics, raw_exchange, request, rss_kib, send};
use serde_json::{json, Value};
use tokio::task::JoinSet;

const CLIENTS: usize = 32;
const REQUESTS_PER_ROUND: usize = 12;
const ROUNDS: usize = 6;
const WARM_UP_ROUNDS: usize = 2;
/// How much the resident memory may grow between the end of the warm-up and the end of the
/// last round. Generous: the store and the test's own ledgers grow by about a megabyte over
/// those rounds, and the allocator keeps some of what is freed (measured: 4 to 6 MiB). A
/// request that leaked the body it buffered (500 KiB each, about 55 such requests in the
/// measured rounds) or its connection's buffers would go well past it.
const MAX_GROWTH_KIB: u64 = 16 * 1024;

/// The demo's keys: `(key, account)` of the two writers.
const WRITERS: [(&str, &str); 2] = [("demo_admin", "acct_123"), ("demo_other", "acct_456")];

/// xorshift64*: each client's choices are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One webhook the model expects in the store.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Hook {
    account: String,
    email: String,
}

/// What one client did: the webhooks it created (by id) and still has, the ones it deleted,
/// and the emails of writes that were refused.
#[derive(Default)]
struct Ledger {
    kept: BTreeMap<String, Hook>,
    deleted: BTreeSet<String>,
    refused: BTreeSet<String>,
    items_sent: usize,
    requests: usize,
}

fn items(emails: &[String]) -> Value {
    json!(emails
        .iter()
        .map(|email| json!({"url": "https://hooks.example/in", "email": email}))
        .collect::<Vec<_>>())
}

/// One request of one client, chosen at random, checked as it is answered.
async fn one_request(
    addr: SocketAddr,
    http: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    rng: &mut Rng,
    ledger: &mut Ledger,
    tag: &str,
) {
    let (key, account) = WRITERS[rng.below(2)];
    let emails = |n: usize, ledger: &mut Ledger| -> Vec<String> {
        (0..n)
            .map(|i| {
                ledger.items_sent += 1;
                format!("{tag}-{}-{i}@load.example", ledger.requests)
            })
            .collect()
    };
    ledger.requests += 1;
    match rng.below(14) {
        // A good write of one to five items: each comes back with its id.
        0..=3 => {
            let sent = emails(1 + rng.below(5), ledger);
            let body = items(&sent).to_string();
            let answer = send(
                http,
                request(addr, Method::POST, "/v1/webhooks", Some(key), body),
            )
            .await;
            assert_eq!(answer.status, 200, "{answer:?}");
            let results = answer.json();
            let results = results.as_array().expect("an array");
            assert_eq!(results.len(), sent.len());
            for (result, email) in results.iter().zip(&sent) {
                assert_eq!(result["email"], email.as_str(), "{result}");
                assert_eq!(result["account_id"], account);
                let id = result["id"].as_str().expect("an id").to_owned();
                let hook = Hook {
                    account: account.to_owned(),
                    email: email.clone(),
                };
                assert!(ledger.kept.insert(id, hook).is_none(), "an id given twice");
            }
        }
        // A key one character off.
        4 => {
            let sent = emails(1, ledger);
            let wrong = format!("{}X", &key[..key.len() - 1]);
            let body = items(&sent).to_string();
            send(
                http,
                request(addr, Method::POST, "/v1/webhooks", Some(&wrong), body),
            )
            .await
            .assert_error(401, "unauthorized");
            ledger.refused.extend(sent);
        }
        // A reader writing, or a writer sending an item of another account.
        5 => {
            let sent = emails(2, ledger);
            let (key, body) = if rng.below(2) == 0 {
                ("demo_reader", items(&sent))
            } else {
                let other = if account == "acct_123" {
                    "acct_456"
                } else {
                    "acct_123"
                };
                let mut body = items(&sent);
                body[1]["account_id"] = json!(other);
                (key, body)
            };
            send(
                http,
                request(
                    addr,
                    Method::POST,
                    "/v1/webhooks",
                    Some(key),
                    body.to_string(),
                ),
            )
            .await
            .assert_error(403, "forbidden");
            ledger.refused.extend(sent);
        }
        // Six to eight items.
        6 => {
            let sent = emails(6 + rng.below(3), ledger);
            let body = items(&sent).to_string();
            send(
                http,
                request(addr, Method::POST, "/v1/webhooks", Some(key), body),
            )
            .await
            .assert_error(400, "too_many_items");
            ledger.refused.extend(sent);
        }
        // Malformed JSON: good items, cut short.
        7 => {
            let sent = emails(2, ledger);
            let body = items(&sent).to_string();
            let cut = body.len() - 1 - rng.below(body.len() / 2);
            send(
                http,
                request(
                    addr,
                    Method::POST,
                    "/v1/webhooks",
                    Some(key),
                    body[..cut].to_owned(),
                ),
            )
            .await
            .assert_error(400, "invalid_json");
            ledger.refused.extend(sent);
        }
        // A panicking handler.
        8 => {
            send(
                http,
                request(addr, Method::GET, "/v1/debug/panic", Some(key), ""),
            )
            .await
            .assert_error(500, "server_error");
        }
        // Large bodies: five items of 100 KB then a sixth, refused after 500 KB were read;
        // or a declared 2 MiB body, refused before a byte of it is read.
        9 => {
            if rng.below(2) == 0 {
                let sent = emails(6, ledger);
                let big = format!(
                    r#"{{"url":"https://hooks.example/{}","email":"big@load.example"}}"#,
                    "x".repeat(100_000)
                );
                let body = format!("[{},{}]", [big.as_str(); 5].join(","), items(&sent)[5]);
                send(
                    http,
                    request(addr, Method::POST, "/v1/webhooks", Some(key), body),
                )
                .await
                .assert_error(400, "too_many_items");
                ledger.refused.extend(sent);
            } else {
                let head = format!(
                    "POST /v1/webhooks HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
                     Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n"
                );
                raw_exchange(addr, head.as_bytes())
                    .await
                    .assert_error(413, "payload_too_large");
            }
        }
        // Reads: up to ten of the client's own ids and a missing one; or eleven ids.
        10 | 11 => {
            let mine: Vec<(&String, &Hook)> = ledger
                .kept
                .iter()
                .filter(|(_, hook)| hook.account == account)
                .take(9)
                .collect();
            let mut ids: Vec<&str> = mine.iter().map(|(id, _)| id.as_str()).collect();
            ids.push("web_0");
            if rng.below(4) == 0 {
                ids.resize(11, "web_0");
                let path = format!("/v1/webhooks?ids={}", ids.join(","));
                send(
                    http,
                    request(addr, Method::GET, &path, Some("demo_reader"), ""),
                )
                .await
                .assert_error(400, "too_many_items");
                return;
            }
            let path = format!("/v1/webhooks?ids={}", ids.join(","));
            let answer = send(http, request(addr, Method::GET, &path, Some(key), "")).await;
            assert_eq!(answer.status, 200, "{answer:?}");
            let body = answer.json();
            let found: Vec<(&str, &str)> = body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|hook| {
                    (
                        hook["id"].as_str().unwrap(),
                        hook["email"].as_str().unwrap(),
                    )
                })
                .collect();
            let expected: Vec<(&str, &str)> = mine
                .iter()
                .map(|(id, hook)| (id.as_str(), hook.email.as_str()))
                .collect();
            assert_eq!(found, expected);
            assert_eq!(
                body["error"],
                json!([{"error": "object_not_found", "account_id": account, "id": "web_0"}])
            );
        }
        // Deletes: one of the client's own webhooks; or six, refused, and all six kept.
        _ => {
            let mine: Vec<String> = ledger
                .kept
                .iter()
                .filter(|(_, hook)| hook.account == account)
                .map(|(id, _)| id.clone())
                .collect();
            if mine.len() >= 6 && rng.below(2) == 0 {
                let body = json!(mine[..6]
                    .iter()
                    .map(|id| json!({"id": id}))
                    .collect::<Vec<_>>());
                send(
                    http,
                    request(
                        addr,
                        Method::DELETE,
                        "/v1/webhooks",
                        Some(key),
                        body.to_string(),
                    ),
                )
                .await
                .assert_error(400, "too_many_items");
            } else if let Some(id) = mine.first() {
                let body = json!([{"id": id}]).to_string();
                let answer = send(
                    http,
                    request(addr, Method::DELETE, "/v1/webhooks", Some(key), body),
                )
                .await;
                assert_eq!(answer.status, 200, "{answer:?}");
                assert_eq!(answer.json(), json!([{"id": id, "deleted": true}]));
                ledger.kept.remove(id);
                ledger.deleted.insert(id.clone());
            } else {
                // Nothing of its own yet: an id nobody has is an item error, not a failure.
                let body = json!([{"id": "web_0"}]).to_string();
                let answer = send(
                    http,
                    request(addr, Method::DELETE, "/v1/webhooks", Some(key), body),
                )
                .await;
                assert_eq!(answer.status, 200, "{answer:?}");
                assert_eq!(
                    answer.json(),
                    json!([{"error": "object_not_found", "_idx": 0}])
                );
            }
        }
    }
}

#[test]
fn the_demo_stack_under_concurrent_load_loses_nothing_and_stays_bounded() {
    quiet_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Arc::new(store::Store::default());
        // The probe counts the requests the stack takes and the ones still in flight.
        let probe = reliability_support::Probe::default();
        let app = tower::Layer::layer(&probe, app::app_with(store.clone()));
        let addr = reliability_support::serve(app).await;
        let http = client();
        let mut ledgers: Vec<Ledger> = (0..CLIENTS).map(|_| Ledger::default()).collect();
        let mut rss = Vec::new();

        for round in 0..ROUNDS {
            let mut tasks = JoinSet::new();
            for (n, mut ledger) in std::mem::take(&mut ledgers).into_iter().enumerate() {
                let http = http.clone();
                tasks.spawn(async move {
                    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((n * ROUNDS + round) as u64 + 1));
                    let tag = format!("c{n}");
                    for _ in 0..REQUESTS_PER_ROUND {
                        one_request(addr, &http, &mut rng, &mut ledger, &tag).await;
                    }
                    (n, ledger)
                });
            }
            let mut done: Vec<(usize, Ledger)> = guarded("a round of requests", async {
                let mut done = Vec::new();
                while let Some(result) = tasks.join_next().await {
                    done.push(result.expect("a client task"));
                }
                done
            })
            .await;
            done.sort_by_key(|(n, _)| *n);
            ledgers = done.into_iter().map(|(_, ledger)| ledger).collect();
            rss.push(rss_kib());
        }

        // Every request was taken once and none is left behind.
        let requests: usize = ledgers.iter().map(|ledger| ledger.requests).sum();
        assert_eq!(requests, CLIENTS * REQUESTS_PER_ROUND * ROUNDS);
        probe.settled().await;
        assert_eq!(probe.calls(), requests);

        // The store against the model: exactly the accepted writes that were not deleted.
        let sent: usize = ledgers.iter().map(|ledger| ledger.items_sent).sum();
        let mut expected = BTreeMap::new();
        let mut refused = BTreeSet::new();
        let mut deleted = 0;
        for ledger in &ledgers {
            for (id, hook) in &ledger.kept {
                assert!(expected.insert(id.clone(), hook.clone()).is_none());
            }
            refused.extend(ledger.refused.iter().cloned());
            deleted += ledger.deleted.len();
        }
        let ids: Vec<String> = (0..=sent).map(|n| format!("web_{n}")).collect();
        let mut actual = BTreeMap::new();
        for (_, account) in WRITERS {
            for hook in store.get_webhooks(account, &ids).data() {
                let entry = Hook {
                    account: hook.account_id.clone(),
                    email: hook.email.clone(),
                };
                assert!(actual.insert(hook.id.clone(), entry).is_none());
            }
        }
        let emails: BTreeSet<&String> = actual.values().map(|hook| &hook.email).collect();
        assert_eq!(emails.len(), actual.len(), "an email stored twice");
        for email in &refused {
            assert!(!emails.contains(email), "a refused write was applied: {email}");
        }
        assert_eq!(actual, expected, "the store differs from the model");
        assert!(expected.len() > 200 && refused.len() > 100 && deleted > 20);

        // Memory: no growth worth the name once warm.
        let (warm, last) = (rss[WARM_UP_ROUNDS - 1], rss[ROUNDS - 1]);
        println!(
            "{requests} requests, {} kept, {deleted} deleted, {} refused writes; RSS by round (KiB): {rss:?}",
            expected.len(),
            refused.len()
        );
        if let (Some(warm), Some(last)) = (warm, last) {
            assert!(
                last.saturating_sub(warm) < MAX_GROWTH_KIB,
                "resident memory grew from {warm} KiB to {last} KiB"
            );
        }
    });
}
