//! The PostgreSQL key store against a real server, and revocation across two instances.
//!
//! The server's URL is read from `TOWER_API_ERRORS_POSTGRES_URL` (`.ci/run` sets it). When it
//! is set and the server cannot be reached the tests fail; when it is unset they say loudly
//! that they were skipped. Each test works in a schema of its own, dropped at the end.

#![cfg(feature = "postgres")]

mod key_stores_support;

use std::{
    io::Write as _,
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant, SystemTime},
};

use http::StatusCode;
use key_stores_support::{client, serve, whoami};
use tokio::time::timeout;
use tower_api_errors::auth::{ApiKey, KeyState, KeyStore, Lookup, NewKey, PostgresKeyStore};

const URL_VAR: &str = "TOWER_API_ERRORS_POSTGRES_URL";

/// A fresh schema on the server, dropped when the value is.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn new() -> Option<Schema> {
        let Ok(url) = std::env::var(URL_VAR) else {
            // Straight to the process's stderr, past the test harness's capture, so the skip
            // shows in every `cargo test` run.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED: {URL_VAR} is not set, so the PostgreSQL key store tests did not run \
                 (e.g. {URL_VAR}=postgres://postgres@127.0.0.1:5432/test) ***\n"
            );
            return None;
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "keys_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Some(Schema { url, name })
    }

    async fn store(&self) -> PostgresKeyStore {
        PostgresKeyStore::connect_in_schema(&self.url, &self.name)
            .await
            .unwrap_or_else(|error| {
                panic!("{URL_VAR} is set but the server cannot be used: {error}")
            })
    }

    /// Runs SQL with `psql`, as an operator would by hand.
    fn psql(&self, sql: &str) -> String {
        let output = Command::new("psql")
            .args([&self.url, "-XAtq", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("psql runs");
        assert!(
            output.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.url,
                "-XAtq",
                "-c",
                &format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name),
            ])
            .output();
    }
}

#[tokio::test]
async fn issued_keys_are_accepted_then_disabled_enabled_and_revoked() {
    let Some(schema) = Schema::new() else { return };
    let store = schema.store().await;
    let addr = serve(store.clone()).await;
    let client = client();

    let key = store
        .issue(NewKey::new("acct_123").roles(["read", "write"]))
        .await
        .unwrap();
    let (status, body) = whoami(&client, addr, key.secret()).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, format!("acct_123 {}", key.id()))
    );

    assert!(store.disable(key.id()).await.unwrap());
    assert_eq!(
        whoami(&client, addr, key.secret()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(store.enable(key.id()).await.unwrap());
    assert_eq!(whoami(&client, addr, key.secret()).await.0, StatusCode::OK);
    assert!(store.revoke(key.id()).await.unwrap());
    assert!(
        !store.enable(key.id()).await.unwrap(),
        "a revoked key stays revoked"
    );
    assert_eq!(
        whoami(&client, addr, key.secret()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        store.get(key.id()).await.unwrap().unwrap().state,
        KeyState::Revoked
    );

    let mut typo = key.secret().to_owned();
    typo.replace_range(5..6, if &typo[5..6] == "0" { "1" } else { "0" });
    assert!(matches!(
        store.lookup_now(&ApiKey::new(&typo)),
        Some(Ok(Lookup::NotFound))
    ));

    // Only digests are stored.
    let stored = schema.psql(&format!(
        "SELECT encode(digest, 'hex') FROM \"{}\".api_keys",
        schema.name
    ));
    assert_eq!(stored.trim(), key.digest().to_hex());
    let all = schema.psql(&format!(
        "SELECT t::text FROM \"{}\".api_keys t",
        schema.name
    ));
    assert!(!all.contains(key.secret()) && !all.contains(&key.secret()[3..40]));
    assert!(!format!("{:?}", store.list().await.unwrap()).contains(key.secret()));
}

#[tokio::test]
async fn expiry_and_last_use() {
    let Some(schema) = Schema::new() else { return };
    let store = schema
        .store()
        .await
        .touch_interval(Duration::from_secs(3600));
    let past = store
        .issue(NewKey::new("acct_1").expires_at(SystemTime::now() - Duration::from_secs(1)))
        .await
        .unwrap();
    let live = store
        .issue(NewKey::new("acct_1").expires_in(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(
        matches!(store.lookup(&ApiKey::new(past.secret())).await, Ok(Lookup::Found(p)) if !p.is_active())
    );
    for _ in 0..10 {
        assert!(
            matches!(store.lookup(&ApiKey::new(live.secret())).await, Ok(Lookup::Found(p)) if p.is_active())
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let first = loop {
        if let Some(at) = store.get(live.id()).await.unwrap().unwrap().last_used_at {
            break at;
        }
        assert!(Instant::now() < deadline, "last_used_at was never written");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // Another instance with the same interval: the database refuses its early write too.
    let other = schema
        .store()
        .await
        .touch_interval(Duration::from_secs(3600));
    assert!(other.lookup(&ApiKey::new(live.secret())).await.is_ok());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        store.get(live.id()).await.unwrap().unwrap().last_used_at,
        Some(first)
    );
    assert_eq!(
        store.get(past.id()).await.unwrap().unwrap().last_used_at,
        None
    );
}

#[tokio::test]
async fn instances_migrating_at_once_both_succeed() {
    let Some(schema) = Schema::new() else { return };
    let (a, b) = tokio::join!(schema.store(), schema.store());
    let key = a.issue(NewKey::new("acct_1")).await.unwrap();
    assert!(matches!(
        b.lookup(&ApiKey::new(key.secret())).await,
        Ok(Lookup::Found(_))
    ));
    let version = schema.psql(&format!(
        "SELECT version FROM \"{}\".api_keys_schema",
        schema.name
    ));
    assert_eq!(version.trim(), "1");
}

/// Polls `addr` with `key` until it is answered `want`; the time it took, or a failure at 1 s.
async fn refused_within_one_second(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    addr: std::net::SocketAddr,
    key: &str,
    want: StatusCode,
) -> Duration {
    let start = Instant::now();
    loop {
        if whoami(client, addr, key).await.0 == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "still not {want} after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_key_disabled_through_one_instance_is_refused_by_the_other_within_one_second() {
    let Some(schema) = Schema::new() else { return };
    // Two instances: each its own pool, cache (a TTL far longer than the test) and watch.
    let (one, two) = (schema.store().await, schema.store().await);
    let (cache_one, watch_one) = one.cached(Duration::from_secs(3600));
    let (cache_two, watch_two) = two.cached(Duration::from_secs(3600));
    for watch in [&watch_one, &watch_two] {
        timeout(Duration::from_secs(5), watch.listening())
            .await
            .expect("the watch listens");
    }
    let (addr_one, addr_two) = (
        serve(cache_one.clone()).await,
        serve(cache_two.clone()).await,
    );
    let client = client();

    let key = one
        .issue(NewKey::new("acct_123").roles(["read"]))
        .await
        .unwrap();
    for addr in [addr_one, addr_two] {
        assert_eq!(whoami(&client, addr, key.secret()).await.0, StatusCode::OK);
    }
    // Both caches hold the key now: answered without the database.
    assert!(matches!(
        cache_two.lookup_now(&ApiKey::new(key.secret())),
        Some(Ok(Lookup::Found(_)))
    ));

    assert!(one.disable(key.id()).await.unwrap());
    refused_within_one_second(&client, addr_two, key.secret(), StatusCode::UNAUTHORIZED).await;
    assert_eq!(
        whoami(&client, addr_one, key.secret()).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Enabling travels the same way, and so does a change made by hand in SQL.
    assert!(two.enable(key.id()).await.unwrap());
    refused_within_one_second(&client, addr_one, key.secret(), StatusCode::OK).await;
    schema.psql(&format!(
        "UPDATE \"{}\".api_keys SET state = 'revoked'",
        schema.name
    ));
    refused_within_one_second(&client, addr_one, key.secret(), StatusCode::UNAUTHORIZED).await;
    refused_within_one_second(&client, addr_two, key.secret(), StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn an_expiring_key_is_forgotten_by_the_cache() {
    let Some(schema) = Schema::new() else { return };
    let store = schema.store().await;
    let (cache, watch) = store.cached(Duration::from_secs(3600));
    timeout(Duration::from_secs(5), watch.listening())
        .await
        .expect("the watch listens");
    let addr = serve(cache).await;
    let client = client();
    let key = store
        .issue(NewKey::new("acct_1").expires_in(Duration::from_millis(1500)))
        .await
        .unwrap();
    assert_eq!(whoami(&client, addr, key.secret()).await.0, StatusCode::OK);
    // Expiry is announced by nobody: the watch's once-a-second check finds it.
    let start = Instant::now();
    while whoami(&client, addr, key.secret()).await.0 == StatusCode::OK {
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "the expired key is still accepted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_watch_reconnects_by_itself_after_losing_its_connection() {
    let Some(schema) = Schema::new() else { return };
    let (one, two) = (schema.store().await, schema.store().await);
    let (cache, watch) = two.cached(Duration::from_secs(3600));
    timeout(Duration::from_secs(5), watch.listening())
        .await
        .expect("the watch listens");
    let addr = serve(cache).await;
    let client = client();
    let key = one.issue(NewKey::new("acct_1")).await.unwrap();
    assert_eq!(whoami(&client, addr, key.secret()).await.0, StatusCode::OK);

    // An operator (or a failover) kills the watch's connection.
    let killed = schema.psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'tower-api-errors watch {}'",
        schema.name
    ));
    assert_eq!(killed.trim(), "1");
    timeout(Duration::from_secs(5), watch.down())
        .await
        .expect("the watch sees it is down");
    timeout(Duration::from_secs(10), watch.listening())
        .await
        .expect("the watch is back");

    assert!(one.disable(key.id()).await.unwrap());
    refused_within_one_second(&client, addr, key.secret(), StatusCode::UNAUTHORIZED).await;
}
