//! Keys in PostgreSQL (feature `postgres`).

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::{types::ToSql, Config, NoTls, Row};

use super::{
    db::{self, generate, Settings},
    revocation::{self, RevocationWatch},
    ApiKey, CachedKeyStore, GeneratedKey, KeyDigest, KeyFormat, KeyRecord, KeyState, KeyStore,
    Lookup, NewKey, StoreError,
};

/// The schema, one migration per entry, `{s}` standing for the quoted schema and `{channel}`
/// for the notification channel.
const MIGRATIONS: &[&str] = &[r#"
CREATE TABLE {s}.api_keys (
    id           TEXT PRIMARY KEY,
    digest       BYTEA NOT NULL UNIQUE CHECK (octet_length(digest) = 32),
    account_id   TEXT NOT NULL,
    roles        TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('active', 'disabled', 'revoked')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ
);
CREATE INDEX api_keys_expires_at ON {s}.api_keys (expires_at) WHERE expires_at IS NOT NULL;
-- Every change that can alter a lookup's answer names the key's digest on the channel, so
-- each instance forgets that key at once. `last_used_at` is left out: touches change nothing.
CREATE FUNCTION {s}.api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify(TG_ARGV[0], encode(OLD.digest, 'hex'));
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify(TG_ARGV[0], encode(NEW.digest, 'hex'));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER api_keys_notify
    AFTER INSERT OR DELETE OR UPDATE OF digest, account_id, roles, state, expires_at ON {s}.api_keys
    FOR EACH ROW EXECUTE FUNCTION {s}.api_keys_notify('{channel}');
"#];

const COLUMNS: &str = "id, account_id, roles, state, created_at, expires_at, last_used_at";

/// The largest pool by default.
const DEFAULT_POOL_SIZE: usize = 8;

/// API keys in PostgreSQL: the store for many instances.
///
/// Only the SHA-256 digest of each key is stored. [`connect`](PostgresKeyStore::connect) runs
/// the store's own migrations (tracked in an `api_keys_schema` table, under an advisory lock
/// so instances starting together migrate once) in the chosen schema (`public` by default).
/// Queries go through a small pool (deadpool-postgres, [`pool_size`](PostgresKeyStore::pool_size)).
///
/// Every change to a key that can alter a lookup (disable, enable, revoke, a new key, a
/// deletion by hand) is announced by a trigger with `NOTIFY`. Put a [`CachedKeyStore`] in
/// front and start [`watch`](PostgresKeyStore::watch): each instance then forgets a changed
/// key as soon as the notification arrives (milliseconds), while lookups of unchanged keys are
/// answered from memory. When the notification channel is down the cache falls back to its
/// TTL (with a log line), and the watch reconnects by itself.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_api_errors::auth::{AuthLayer, NewKey, PostgresKeyStore};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresKeyStore::connect("postgres://app@db/app").await?;
/// let key = store.issue(NewKey::new("acct_123").roles(["read"])).await?;
/// println!("id: {}\nkey: {}", key.id(), key.secret());
///
/// let (keys, watch) = store.cached(Duration::from_secs(60));
/// let layer = AuthLayer::new(keys);
/// // Keep `watch` alive as long as the layer: dropping it stops the notifications.
/// # drop((layer, watch));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresKeyStore {
    pool: Pool,
    config: Arc<Config>,
    sql: Arc<Sql>,
    settings: Settings,
}

/// The statements, with the schema written in.
struct Sql {
    schema: String,
    channel: String,
    lookup: String,
    touch: String,
    insert: String,
    list: String,
    get: String,
    set_state: String,
    expired: String,
}

impl PostgresKeyStore {
    /// Connects to `url` (`postgres://…`, or `host=… user=…`) and migrates the `public`
    /// schema.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the URL is invalid or the database cannot be reached or migrated.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_in_schema(url, "public").await
    }

    /// Connects to `url` and keeps the keys in `schema` (created if needed): 1 to 40 of
    /// `a-z`, `0-9`, `_`, not starting with a digit.
    ///
    /// # Errors
    ///
    /// [`StoreError`] for an invalid URL or schema name, or a database that cannot be reached
    /// or migrated.
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        let valid = (1..=40).contains(&schema.len())
            && !schema.starts_with(|c: char| c.is_ascii_digit())
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(StoreError::failed(format!(
                "invalid schema name {schema:?}"
            )));
        }
        let mut config: Config = url.parse().map_err(StoreError::failed)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(DEFAULT_POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(StoreError::failed)?;
        let store = PostgresKeyStore {
            pool,
            config: Arc::new(config),
            sql: Arc::new(Sql::new(schema)),
            settings: Settings::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let transaction = client.transaction().await.map_err(pg_error)?;
        let s = format!("\"{}\"", self.sql.schema);
        let lock = format!("tower-api-errors:{}", self.sql.schema);
        transaction
            .execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock])
            .await
            .map_err(pg_error)?;
        transaction
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {s};
                 CREATE TABLE IF NOT EXISTS {s}.api_keys_schema (version INT NOT NULL);
                 INSERT INTO {s}.api_keys_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM {s}.api_keys_schema);"
            ))
            .await
            .map_err(pg_error)?;
        let version: i32 = transaction
            .query_one(&format!("SELECT version FROM {s}.api_keys_schema"), &[])
            .await
            .map_err(pg_error)?
            .get(0);
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(StoreError::failed(format!(
                "the key schema is at version {version}, newer than this build knows ({})",
                MIGRATIONS.len()
            )));
        }
        for (done, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            let migration = migration
                .replace("{s}", &s)
                .replace("{channel}", &self.sql.channel);
            transaction
                .batch_execute(&migration)
                .await
                .map_err(pg_error)?;
            let done = i32::try_from(done + 1).unwrap_or(i32::MAX);
            transaction
                .execute(
                    &format!("UPDATE {s}.api_keys_schema SET version = $1"),
                    &[&done],
                )
                .await
                .map_err(pg_error)?;
        }
        transaction.commit().await.map_err(pg_error)
    }

    /// The format of the keys [`issue`](PostgresKeyStore::issue) makes and lookups expect
    /// (default: prefix [`DEFAULT_KEY_PREFIX`](super::DEFAULT_KEY_PREFIX)).
    #[must_use]
    pub fn key_format(mut self, format: KeyFormat) -> Self {
        self.settings.format = format;
        self
    }

    /// Also looks up keys that do not claim the key format (e.g. imported by digest with
    /// [`import`](PostgresKeyStore::import)); keys that claim it are still checked first.
    #[must_use]
    pub fn accept_unformatted(mut self, accept: bool) -> Self {
        self.settings.accept_unformatted = accept;
        self
    }

    /// Writes a key's `last_used_at` at most once per `interval` (default
    /// [`DEFAULT_TOUCH_INTERVAL`](super::DEFAULT_TOUCH_INTERVAL)), per instance and, in the
    /// database, across instances.
    #[must_use]
    pub fn touch_interval(mut self, interval: Duration) -> Self {
        self.settings.touch_interval = interval;
        self
    }

    /// At most `size` connections in the pool (default 8); the revocation watch has one of
    /// its own.
    #[must_use]
    pub fn pool_size(self, size: usize) -> Self {
        self.pool.resize(size.max(1));
        self
    }

    /// The schema the keys are in.
    pub fn schema(&self) -> &str {
        &self.sql.schema
    }

    /// This store behind a [`CachedKeyStore`] with `ttl`, kept fresh by a [`RevocationWatch`]
    /// (see [`watch`](PostgresKeyStore::watch)). Must be called inside a tokio runtime.
    pub fn cached(&self, ttl: Duration) -> (CachedKeyStore<PostgresKeyStore>, RevocationWatch) {
        let cache = CachedKeyStore::new(self.clone()).ttl(ttl);
        let watch = self.watch(&cache, ttl);
        (cache, watch)
    }

    /// Starts listening for key changes on a connection of its own, and makes `cache` forget
    /// each changed key as soon as it is announced, and each key as it expires (checked every
    /// second, which also tells a dead connection). `ttl` is the cache's TTL, named in the
    /// log line when the channel goes down. Stops when the watch is dropped. Must be called
    /// inside a tokio runtime.
    pub fn watch<K>(&self, cache: &CachedKeyStore<K>, ttl: Duration) -> RevocationWatch
    where
        K: Clone + Send + Sync + 'static,
    {
        let (one, all) = (cache.clone(), cache.clone());
        let mut config = (*self.config).clone();
        config.application_name(format!("tower-api-errors watch {}", self.sql.schema));
        revocation::spawn(revocation::Watch {
            config,
            listen: format!("LISTEN \"{}\"", self.sql.channel),
            expired: self.sql.expired.clone(),
            ttl,
            forget: Arc::new(move |digest: &KeyDigest| one.invalidate(digest)),
            forget_all: Arc::new(move || all.invalidate_all()),
        })
    }

    /// Issues a new key. The secret is in the answer only: the store keeps its digest.
    ///
    /// # Errors
    ///
    /// [`StoreError`] for an invalid [`NewKey`] or a database failure.
    pub async fn issue(&self, new: NewKey) -> Result<GeneratedKey, StoreError> {
        let (key, new) = generate(&self.settings, new)?;
        if !self.import(*key.digest(), new).await? {
            return Err(StoreError::failed("a key with this id already exists"));
        }
        Ok(key)
    }

    /// Stores a key given by its digest, e.g. to seed existing keys. Answers `false`, and
    /// changes nothing, when the id or the digest is already stored.
    ///
    /// # Errors
    ///
    /// [`StoreError`] for an invalid [`NewKey`] (it needs an [`id`](NewKey::id)) or a
    /// database failure.
    pub async fn import(&self, digest: KeyDigest, new: NewKey) -> Result<bool, StoreError> {
        new.validate().map_err(StoreError::failed)?;
        let id = new
            .id
            .clone()
            .ok_or_else(|| StoreError::failed("an imported key needs an id"))?;
        let roles = new.roles.join(",");
        let digest = &digest.as_bytes()[..];
        let params: [&(dyn ToSql + Sync); 6] = [
            &id,
            &digest,
            &new.account_id,
            &roles,
            &new.state.as_str(),
            &new.expires_at,
        ];
        Ok(self.execute(&self.sql.insert, &params).await? == 1)
    }

    /// Every key, oldest first, without secrets or digests.
    ///
    /// # Errors
    ///
    /// [`StoreError`] for a database failure.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client.query(&self.sql.list, &[]).await.map_err(pg_error)?;
        rows.iter().map(record).collect()
    }

    /// One key by id.
    ///
    /// # Errors
    ///
    /// [`StoreError`] for a database failure.
    pub async fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(&self.sql.get, &[&id])
            .await
            .map_err(pg_error)?;
        row.as_ref().map(record).transpose()
    }

    /// Disables an active key; answers whether a key changed. Every watching instance
    /// forgets the key at once.
    ///
    /// # Errors
    ///
    /// [`StoreError`] for a database failure.
    pub async fn disable(&self, id: &str) -> Result<bool, StoreError> {
        self.set_state(id, KeyState::Disabled, &["active"]).await
    }

    /// Enables a disabled key (a revoked key stays revoked); answers whether a key changed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] for a database failure.
    pub async fn enable(&self, id: &str) -> Result<bool, StoreError> {
        self.set_state(id, KeyState::Active, &["disabled"]).await
    }

    /// Revokes a key for good; answers whether a key changed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] for a database failure.
    pub async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        self.set_state(id, KeyState::Revoked, &["active", "disabled"])
            .await
    }

    async fn set_state(
        &self,
        id: &str,
        state: KeyState,
        from: &[&str],
    ) -> Result<bool, StoreError> {
        let from: Vec<&str> = from.to_vec();
        Ok(self
            .execute(&self.sql.set_state, &[&state.as_str(), &id, &from])
            .await?
            == 1)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.execute(&statement, params).await.map_err(pg_error)
    }
}

impl Sql {
    fn new(schema: &str) -> Self {
        let t = format!("\"{schema}\".api_keys");
        Sql {
            schema: schema.to_owned(),
            channel: format!("api_keys_{schema}"),
            lookup: format!(
                "SELECT id, account_id, roles, state, coalesce(expires_at <= now(), false)
                 FROM {t} WHERE digest = $1"
            ),
            touch: format!(
                "UPDATE {t} SET last_used_at = now() WHERE id = $1
                 AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $2))"
            ),
            insert: format!(
                "INSERT INTO {t} (id, digest, account_id, roles, state, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"
            ),
            list: format!("SELECT {COLUMNS} FROM {t} ORDER BY created_at, id"),
            get: format!("SELECT {COLUMNS} FROM {t} WHERE id = $1"),
            set_state: format!("UPDATE {t} SET state = $1 WHERE id = $2 AND state = ANY($3)"),
            expired: format!(
                "WITH clock AS (SELECT now() AS at)
                 SELECT clock.at, k.digest FROM clock
                 LEFT JOIN {t} k ON k.expires_at > $1 AND k.expires_at <= clock.at"
            ),
        }
    }
}

impl KeyStore for PostgresKeyStore {
    type Future = PostgresLookup;

    fn lookup(&self, key: &ApiKey<'_>) -> PostgresLookup {
        if let Some(answer) = self.settings.precheck(key) {
            return PostgresLookup {
                future: Box::pin(std::future::ready(answer)),
            };
        }
        let (store, digest) = (self.clone(), *key.digest());
        PostgresLookup {
            future: Box::pin(async move { store.find(&digest).await }),
        }
    }

    fn lookup_now(&self, key: &ApiKey<'_>) -> Option<Result<Lookup, StoreError>> {
        self.settings.precheck(key)
    }
}

impl PostgresKeyStore {
    async fn find(&self, digest: &KeyDigest) -> Result<Lookup, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let statement = client
            .prepare_cached(&self.sql.lookup)
            .await
            .map_err(pg_error)?;
        let digest = &digest.as_bytes()[..];
        let Some(row) = client
            .query_opt(&statement, &[&digest])
            .await
            .map_err(pg_error)?
        else {
            return Ok(Lookup::NotFound);
        };
        drop(client);
        let (id, account_id, roles, state, expired): (String, String, String, String, bool) = (
            row.try_get(0).map_err(pg_error)?,
            row.try_get(1).map_err(pg_error)?,
            row.try_get(2).map_err(pg_error)?,
            row.try_get(3).map_err(pg_error)?,
            row.try_get(4).map_err(pg_error)?,
        );
        let state = KeyState::parse(&state).ok_or_else(|| db::bad_state(&state))?;
        let principal = db::principal(&id, &account_id, &roles, state, expired);
        if principal.is_active() && self.settings.touches.due(&id, self.settings.touch_interval) {
            self.touch(id);
        }
        Ok(Lookup::Found(principal))
    }

    /// Writes a key's last use in the background; the request does not wait for it. The
    /// `WHERE` also throttles across instances.
    fn touch(&self, id: String) {
        let store = self.clone();
        drop(tokio::spawn(async move {
            let interval = store.settings.touch_interval.as_secs_f64();
            if let Err(error) = store.execute(&store.sql.touch, &[&id, &interval]).await {
                tracing::warn!(key_id = %id, %error, "could not write the key's last use");
            }
        }));
    }
}

fn record(row: &Row) -> Result<KeyRecord, StoreError> {
    let state: String = row.try_get(3).map_err(pg_error)?;
    let roles: String = row.try_get(2).map_err(pg_error)?;
    Ok(KeyRecord {
        id: row.try_get(0).map_err(pg_error)?,
        account_id: row.try_get(1).map_err(pg_error)?,
        roles: db::roles(&roles),
        state: KeyState::parse(&state).ok_or_else(|| db::bad_state(&state))?,
        created_at: row.try_get::<_, SystemTime>(4).map_err(pg_error)?,
        expires_at: row.try_get(5).map_err(pg_error)?,
        last_used_at: row.try_get(6).map_err(pg_error)?,
    })
}

pub(crate) fn pg_error(error: tokio_postgres::Error) -> StoreError {
    // A closed connection or a refused one is the database being down, not failing.
    if error.is_closed() || error.as_db_error().is_none() && error.code().is_none() {
        StoreError::unavailable(error)
    } else {
        StoreError::failed(error)
    }
}

fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => pg_error(error),
        other => StoreError::unavailable(other),
    }
}

impl fmt::Debug for PostgresKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The config may hold a password: show where, not how.
        f.debug_struct("PostgresKeyStore")
            .field("hosts", &self.config.get_hosts())
            .field("dbname", &self.config.get_dbname())
            .field("schema", &self.sql.schema)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The future of a [`PostgresKeyStore`] lookup. Boxed: it is built only on a cache miss, next
/// to a network round trip that costs a thousand times more.
pub struct PostgresLookup {
    future: Pin<Box<dyn Future<Output = Result<Lookup, StoreError>> + Send>>,
}

impl Future for PostgresLookup {
    type Output = Result<Lookup, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.future.as_mut().poll(cx)
    }
}

impl fmt::Debug for PostgresLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresLookup").finish_non_exhaustive()
    }
}
