//! The demo's keys in a database chosen by `--db URL` (`sqlite://PATH` or `postgres://…`),
//! shared with the `api_keys` admin tool.
//!
//! The demo asks the database on every request and caches nothing: a key disabled with the
//! admin tool (another process) is refused on the very next request, and a lookup costs a
//! primary-key read. A service that wants the cache's speed puts a `CachedKeyStore` in front
//! and, on PostgreSQL, starts `PostgresKeyStore::watch`, which brings a revocation to every
//! instance's cache within milliseconds.

// Shared by the demo server and the admin tool, each of which uses a part.
#![allow(dead_code, unused_macros)]

use std::{future::Future, pin::Pin, sync::OnceLock};

#[cfg(feature = "postgres")]
use tower_api_errors::auth::PostgresKeyStore;
#[cfg(feature = "sqlite")]
use tower_api_errors::auth::SqliteKeyStore;
#[allow(unused_imports)]
use tower_api_errors::auth::{
    ApiKey, InMemoryKeyStore, KeyDigest, KeyRecord, KeyStore, Lookup, NewKey, StoreError,
};

/// Where the demo keeps its keys unless `--db` says otherwise (git ignores it).
pub const DEFAULT_DB: &str = "sqlite://bulk_api_keys.db";

/// A key database.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Db {
    /// `sqlite://PATH`
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteKeyStore),
    /// `postgres://…`
    #[cfg(feature = "postgres")]
    Postgres(PostgresKeyStore),
}

/// Opens (creating and migrating if needed) the database at `url`.
pub async fn open(url: &str) -> Result<Db, String> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        #[cfg(feature = "sqlite")]
        return SqliteKeyStore::open(path)
            .await
            .map(|store| Db::Sqlite(store.accept_unformatted(true)))
            .map_err(|error| format!("cannot open {url}: {error}"));
        #[cfg(not(feature = "sqlite"))]
        return Err(format!(
            "{path}: this build has no SQLite store; add `--features sqlite`"
        ));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        return PostgresKeyStore::connect(url)
            .await
            .map(|store| Db::Postgres(store.accept_unformatted(true)))
            .map_err(|error| format!("cannot open the PostgreSQL key store: {error}"));
        #[cfg(not(feature = "postgres"))]
        return Err("this build has no PostgreSQL store; add `--features postgres`".to_owned());
    }
    Err(format!(
        "--db {url:?}: expected sqlite://PATH or postgres://…"
    ))
}

/// Dispatches one call to whichever store `$db` is.
macro_rules! each {
    ($db:expr, $store:ident => $call:expr) => {
        match $db {
            #[cfg(feature = "sqlite")]
            Db::Sqlite($store) => $call,
            #[cfg(feature = "postgres")]
            Db::Postgres($store) => $call,
        }
    };
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl Db {
    /// Stores the demo keys (by digest) unless they are there already, so a demo key disabled
    /// with the admin tool stays disabled across restarts. Answers how many were added.
    pub async fn seed(&self, keys: &[(&str, &str, &[&str], bool)]) -> Result<usize, StoreError> {
        let mut added = 0;
        for (key, account, roles, active) in keys {
            let mut new = NewKey::new(*account)
                .id(format!("key_{}", key.trim_start_matches("demo_")))
                .roles(roles.iter().copied());
            if !active {
                new = new.disabled();
            }
            let digest = KeyDigest::of(key);
            if each!(self, store => store.import(digest, new).await)? {
                added += 1;
            }
        }
        Ok(added)
    }

    /// The store the demo's auth layer asks.
    pub fn key_store(&self) -> DemoKeys {
        match self.clone() {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(store) => DemoKeys::Sqlite(store),
            #[cfg(feature = "postgres")]
            Db::Postgres(store) => DemoKeys::Postgres(store),
        }
    }

    /// Runs one admin command (`issue`, `list`, `disable`, `enable`, `revoke`); answers what
    /// to print.
    pub async fn admin(&self, args: &[String]) -> Result<String, String> {
        let fail = |error: StoreError| error.to_string();
        let (command, rest) = args.split_first().ok_or_else(|| USAGE.to_owned())?;
        match (command.as_str(), rest) {
            ("issue", options) => {
                let new = issue_options(options)?;
                let key = each!(self, store => store.issue(new).await).map_err(fail)?;
                Ok(format!("id: {}\nkey: {}\n", key.id(), key.secret()))
            }
            ("list", []) => Ok(list(
                &each!(self, store => store.list().await).map_err(fail)?,
            )),
            (verb @ ("disable" | "enable" | "revoke"), [id]) => {
                let changed = match verb {
                    "disable" => each!(self, store => store.disable(id).await),
                    "enable" => each!(self, store => store.enable(id).await),
                    _ => each!(self, store => store.revoke(id).await),
                }
                .map_err(fail)?;
                if changed {
                    Ok(format!("{id}: {verb}d\n"))
                } else {
                    let now = each!(self, store => store.get(id).await).map_err(fail)?;
                    Err(match now {
                        None => format!("{id}: no such key"),
                        Some(record) => format!("{id}: is {}, cannot {verb} it", record.state),
                    })
                }
            }
            _ => Err(USAGE.to_owned()),
        }
    }
}

/// The admin tool's usage.
pub const USAGE: &str = "usage: api_keys [--db URL] COMMAND
  issue --account ACCOUNT [--roles read,write] [--expires 30d]
  list
  disable ID | enable ID | revoke ID
URL: sqlite://PATH or postgres://… (default sqlite://bulk_api_keys.db, the demo's)";

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn issue_options(options: &[String]) -> Result<NewKey, String> {
    let (mut account, mut roles, mut expires) = (None, Vec::new(), None);
    let mut options = options.iter();
    while let Some(option) = options.next() {
        let mut value = || {
            options
                .next()
                .ok_or_else(|| format!("{option} needs a value"))
        };
        match option.as_str() {
            "--account" => account = Some(value()?.clone()),
            "--roles" => roles = value()?.split(',').map(str::to_owned).collect(),
            "--expires" => {
                let text = value()?;
                expires = Some(
                    humantime::parse_duration(text)
                        .map_err(|error| format!("--expires {text:?}: {error} (e.g. 30d, 12h)"))?,
                );
            }
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    let mut new = NewKey::new(account.ok_or("issue needs --account")?).roles(roles);
    if let Some(ttl) = expires {
        new = new.expires_in(ttl);
    }
    Ok(new)
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn list(records: &[KeyRecord]) -> String {
    let time = |at: Option<std::time::SystemTime>| {
        at.map_or("-".to_owned(), |at| {
            humantime::format_rfc3339_seconds(at).to_string()
        })
    };
    let now = std::time::SystemTime::now();
    let mut text = format!(
        "{:<22} {:<12} {:<12} {:<9} {:<20} {:<20} {}\n",
        "ID", "ACCOUNT", "ROLES", "STATE", "CREATED", "EXPIRES", "LAST USED"
    );
    for record in records {
        let state = match record.expires_at {
            Some(at) if at <= now => "expired".to_owned(),
            _ => record.state.to_string(),
        };
        text.push_str(&format!(
            "{:<22} {:<12} {:<12} {:<9} {:<20} {:<20} {}\n",
            record.id,
            record.account_id,
            record.roles.join(","),
            state,
            time(Some(record.created_at)),
            time(record.expires_at),
            time(record.last_used_at),
        ));
    }
    text
}

/// The demo's key store: the database, or (in a build without the store features) the demo
/// keys in memory.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum DemoKeys {
    /// In memory.
    Memory(InMemoryKeyStore),
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(SqliteKeyStore),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(PostgresKeyStore),
}

type BoxLookup = Pin<Box<dyn Future<Output = Result<Lookup, StoreError>> + Send>>;

impl KeyStore for DemoKeys {
    // One box per database round trip; the demo's point is the database, not the nanoseconds.
    type Future = BoxLookup;

    fn lookup(&self, key: &ApiKey<'_>) -> BoxLookup {
        match self {
            DemoKeys::Memory(store) => Box::pin(store.lookup(key)),
            #[cfg(feature = "sqlite")]
            DemoKeys::Sqlite(store) => Box::pin(store.lookup(key)),
            #[cfg(feature = "postgres")]
            DemoKeys::Postgres(store) => Box::pin(store.lookup(key)),
        }
    }

    fn lookup_now(&self, key: &ApiKey<'_>) -> Option<Result<Lookup, StoreError>> {
        match self {
            DemoKeys::Memory(store) => store.lookup_now(key),
            #[cfg(feature = "sqlite")]
            DemoKeys::Sqlite(store) => store.lookup_now(key),
            #[cfg(feature = "postgres")]
            DemoKeys::Postgres(store) => store.lookup_now(key),
        }
    }
}

static INSTALLED: OnceLock<DemoKeys> = OnceLock::new();

/// Makes `keys` the store of every demo app built from now on (the server calls this once,
/// after reading `--db`).
pub fn install(keys: DemoKeys) {
    let _ = INSTALLED.set(keys);
}

/// The installed store, if any.
pub fn installed() -> Option<DemoKeys> {
    INSTALLED.get().cloned()
}

/// The store `--db` names (default [`DEFAULT_DB`]), seeded with `seed`, and the line the
/// server prints about it; `None` when this build has no database store and no `--db` was
/// given (the demo keys then stay in memory).
pub async fn from_args(
    db: Option<&str>,
    seed: &[(&str, &str, &[&str], bool)],
) -> Result<Option<(DemoKeys, String)>, String> {
    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    {
        let url = db.unwrap_or(DEFAULT_DB);
        let opened = open(url).await?;
        let added = opened
            .seed(seed)
            .await
            .map_err(|error| format!("cannot seed the demo keys: {error}"))?;
        let place = match &opened {
            #[cfg(feature = "sqlite")]
            Db::Sqlite(store) => {
                let path =
                    std::path::absolute(store.path()).unwrap_or_else(|_| store.path().to_owned());
                format!("sqlite://{}", path.display())
            }
            #[cfg(feature = "postgres")]
            Db::Postgres(store) => format!("postgres (schema {})", store.schema()),
        };
        Ok(Some((
            opened.key_store(),
            format!(
                "keys: {place} ({added} demo keys added; manage them with the api_keys example)"
            ),
        )))
    }
    #[cfg(not(any(feature = "sqlite", feature = "postgres")))]
    {
        let _ = seed;
        match db {
            Some(url) => Err(format!("--db {url}: this build has no database store; add `--features sqlite` (or `postgres`)")),
            None => Ok(None),
        }
    }
}
