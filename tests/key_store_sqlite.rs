//! The SQLite key store on real database files, behind the auth layer on a real server.

#![cfg(feature = "sqlite")]

mod key_stores_support;

use std::time::{Duration, Instant, SystemTime};

use http::StatusCode;
use key_stores_support::{client, serve, whoami};
use tower_api_errors::auth::{
    ApiKey, KeyDigest, KeyFormat, KeyState, KeyStore, Lookup, NewKey, SqliteKeyStore,
};

async fn open() -> (tempfile::TempDir, SqliteKeyStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteKeyStore::open(dir.path().join("keys.db"))
        .await
        .unwrap();
    (dir, store)
}

#[tokio::test]
async fn issued_keys_are_accepted_then_disabled_enabled_and_revoked_live() {
    let (_dir, store) = open().await;
    let addr = serve(store.clone()).await;
    let client = client();

    let key = store
        .issue(NewKey::new("acct_123").roles(["read", "write"]))
        .await
        .unwrap();
    assert!(key.secret().starts_with("sk_"));
    let (status, body) = whoami(&client, addr, key.secret()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("acct_123 {}", key.id()));

    assert!(store.disable(key.id()).await.unwrap());
    assert!(!store.disable(key.id()).await.unwrap(), "already disabled");
    assert_eq!(
        whoami(&client, addr, key.secret()).await.0,
        StatusCode::UNAUTHORIZED
    );

    assert!(store.enable(key.id()).await.unwrap());
    assert_eq!(whoami(&client, addr, key.secret()).await.0, StatusCode::OK);

    assert!(store.revoke(key.id()).await.unwrap());
    assert_eq!(
        whoami(&client, addr, key.secret()).await.0,
        StatusCode::UNAUTHORIZED
    );
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
    assert!(!store.disable("key_nope").await.unwrap());
}

#[tokio::test]
async fn the_file_holds_digests_and_listing_shows_no_secret() {
    let (dir, store) = open().await;
    let a = store
        .issue(NewKey::new("acct_1").roles(["read"]))
        .await
        .unwrap();
    let b = store
        .issue(NewKey::new("acct_2").expires_in(Duration::from_secs(3600)))
        .await
        .unwrap();
    let list = store.list().await.unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, a.id());
    assert_eq!(list[0].roles, ["read"]);
    assert_eq!(list[1].account_id, "acct_2");
    assert!(list[1].expires_at.is_some() && list[0].expires_at.is_none());
    let shown = format!("{list:?}");
    for key in [&a, &b] {
        assert!(!shown.contains(key.secret()));
        assert!(!shown.contains(&key.digest().to_hex()));
    }
    // Nothing in the database file (or its WAL) is a secret; the digest is.
    drop(store);
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(a.secret().as_bytes()) && !contains(&a.secret().as_bytes()[3..40]));
    assert!(contains(a.digest().as_bytes()));
}

#[tokio::test]
async fn a_mistyped_key_is_refused_without_asking_the_database() {
    let (_dir, store) = open().await;
    let addr = serve(store.clone()).await;
    let key = store.issue(NewKey::new("acct_123")).await.unwrap();
    let mut typo = key.secret().to_owned();
    let last = typo.pop().unwrap();
    typo.push(if last == 'a' { 'b' } else { 'a' });

    // Settled from the key alone: an answer at hand, no query future.
    assert!(matches!(
        store.lookup_now(&ApiKey::new(&typo)),
        Some(Ok(Lookup::NotFound))
    ));
    assert!(matches!(
        store.lookup_now(&ApiKey::new("demo_admin")),
        Some(Ok(Lookup::NotFound))
    ));
    // A well-formed key must be asked about.
    assert!(store.lookup_now(&ApiKey::new(key.secret())).is_none());
    let unknown = KeyFormat::default().generate().unwrap();
    assert!(store.lookup_now(&ApiKey::new(unknown.secret())).is_none());
    assert!(matches!(
        store.lookup(&ApiKey::new(unknown.secret())).await,
        Ok(Lookup::NotFound)
    ));

    let client = client();
    assert_eq!(
        whoami(&client, addr, &typo).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(whoami(&client, addr, key.secret()).await.0, StatusCode::OK);
}

#[tokio::test]
async fn expired_keys_are_unauthorized() {
    let (_dir, store) = open().await;
    let addr = serve(store.clone()).await;
    let client = client();
    let past = store
        .issue(NewKey::new("acct_1").expires_at(SystemTime::now() - Duration::from_secs(1)))
        .await
        .unwrap();
    let future = store
        .issue(NewKey::new("acct_1").expires_in(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(
        whoami(&client, addr, past.secret()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        whoami(&client, addr, future.secret()).await.0,
        StatusCode::OK
    );
    // Listed by creation time, then id: two keys made in the same second come in id order.
    let list = store.list().await.unwrap();
    let record = |id: &str| list.iter().find(|record| record.id == id).unwrap();
    assert!(
        !record(past.id()).is_usable_at(SystemTime::now())
            && record(future.id()).is_usable_at(SystemTime::now())
    );
}

/// Waits (bounded) for the background write of a key's last use.
async fn last_used(store: &SqliteKeyStore, id: &str) -> SystemTime {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(at) = store.get(id).await.unwrap().unwrap().last_used_at {
            return at;
        }
        assert!(Instant::now() < deadline, "last_used_at was never written");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn last_use_is_written_once_per_interval() {
    let (_dir, store) = open().await;
    let store = store.touch_interval(Duration::from_secs(3600));
    let key = store.issue(NewKey::new("acct_1")).await.unwrap();
    assert_eq!(
        store.get(key.id()).await.unwrap().unwrap().last_used_at,
        None
    );
    let addr = serve(store.clone()).await;
    let client = client();
    assert_eq!(whoami(&client, addr, key.secret()).await.0, StatusCode::OK);
    let first = last_used(&store, key.id()).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..20 {
        assert_eq!(whoami(&client, addr, key.secret()).await.0, StatusCode::OK);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        store.get(key.id()).await.unwrap().unwrap().last_used_at,
        Some(first)
    );

    // With no interval, each use is written.
    let eager = store.clone().touch_interval(Duration::ZERO);
    let other = eager.issue(NewKey::new("acct_1")).await.unwrap();
    assert!(eager.lookup(&ApiKey::new(other.secret())).await.is_ok());
    let first = last_used(&eager, other.id()).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(eager.lookup(&ApiKey::new(other.secret())).await.is_ok());
    let deadline = Instant::now() + Duration::from_secs(5);
    while last_used(&eager, other.id()).await == first {
        assert!(
            Instant::now() < deadline,
            "the second use was never written"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn imported_keys_need_accept_unformatted_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.db");
    let store = SqliteKeyStore::open(&path).await.unwrap();
    let new = NewKey::new("acct_123")
        .id("key_admin")
        .roles(["read", "write"]);
    assert!(store
        .import(KeyDigest::of("demo_admin"), new.clone())
        .await
        .unwrap());
    assert!(
        !store
            .import(KeyDigest::of("demo_admin"), new.clone())
            .await
            .unwrap(),
        "seeding twice changes nothing"
    );
    assert!(
        store
            .import(KeyDigest::of("other"), new)
            .await
            .is_ok_and(|inserted| !inserted),
        "same id"
    );
    assert!(
        store
            .import(KeyDigest::of("x"), NewKey::new("acct_1"))
            .await
            .is_err(),
        "no id"
    );
    assert!(matches!(
        store.lookup(&ApiKey::new("demo_admin")).await,
        Ok(Lookup::NotFound)
    ));
    drop(store);

    // The schema is migrated once; the keys are still there.
    let store = SqliteKeyStore::open(&path)
        .await
        .unwrap()
        .accept_unformatted(true);
    let found = store.lookup(&ApiKey::new("demo_admin")).await.unwrap();
    assert!(matches!(found, Lookup::Found(p) if p.key_id() == "key_admin" && p.has_role("write")));
    // Keys that claim the format are still checked first.
    assert!(matches!(
        store.lookup_now(&ApiKey::new("sk_123")),
        Some(Ok(Lookup::NotFound))
    ));
    assert_eq!(store.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_key_disabled_by_another_process_is_refused_on_the_next_request() {
    // Two stores on one file stand for the server and the admin tool.
    let (dir, server) = open().await;
    let admin = SqliteKeyStore::open(dir.path().join("keys.db"))
        .await
        .unwrap();
    let addr = serve(server).await;
    let client = client();
    let key = admin.issue(NewKey::new("acct_123")).await.unwrap();
    assert_eq!(whoami(&client, addr, key.secret()).await.0, StatusCode::OK);
    assert!(admin.disable(key.id()).await.unwrap());
    assert_eq!(
        whoami(&client, addr, key.secret()).await.0,
        StatusCode::UNAUTHORIZED
    );
}
