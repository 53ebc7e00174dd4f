//! Keys in an SQLite file (feature `sqlite`).

use std::{
    fmt,
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{ready, Context, Poll},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use pin_project_lite::pin_project;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::task::JoinHandle;

use super::{
    db::{self, generate, Settings},
    ApiKey, GeneratedKey, KeyDigest, KeyFormat, KeyRecord, KeyState, KeyStore, Lookup, NewKey,
    StoreError,
};

/// The schema, one migration per entry; `PRAGMA user_version` says how many ran.
const MIGRATIONS: &[&str] = &["CREATE TABLE api_keys (
        id           TEXT PRIMARY KEY,
        digest       BLOB NOT NULL UNIQUE CHECK (length(digest) = 32),
        account_id   TEXT NOT NULL,
        roles        TEXT NOT NULL,
        state        TEXT NOT NULL CHECK (state IN ('active', 'disabled', 'revoked')),
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER,
        last_used_at INTEGER
    ) STRICT;"];

const SELECT: &str =
    "SELECT id, account_id, roles, state, created_at, expires_at, last_used_at FROM api_keys";

/// API keys in an SQLite file: the store for one instance.
///
/// Only the SHA-256 digest of each key is stored. [`open`](SqliteKeyStore::open) creates the
/// file and its table (the schema is a migration the store runs itself, tracked in
/// `PRAGMA user_version`) and puts the database in WAL mode, so lookups never wait for a
/// writer. Queries run on tokio's blocking pool: use the store inside a tokio runtime.
///
/// Every lookup reads the file, so a key disabled by another process (such as the
/// `api_keys` admin tool) is refused on the next request. A lookup is a primary-key read of a
/// few microseconds; put a [`CachedKeyStore`](super::CachedKeyStore) in front only if its TTL
/// is an acceptable delay for revocations.
///
/// Keys that claim the store's [`KeyFormat`] but fail its checksum are refused without a
/// query; so are keys of any other shape, unless
/// [`accept_unformatted`](SqliteKeyStore::accept_unformatted) (for keys imported by digest).
///
/// ```
/// use tower_api_errors::auth::{ApiKey, KeyStore, Lookup, NewKey, SqliteKeyStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("keys.db");
/// let store = SqliteKeyStore::open(&path).await?;
/// let key = store.issue(NewKey::new("acct_123").roles(["read"])).await?;
/// let found = store.lookup(&ApiKey::new(key.secret())).await?;
/// assert!(matches!(found, Lookup::Found(p) if p.is_active() && p.key_id() == key.id()));
///
/// assert!(store.disable(key.id()).await?);
/// let found = store.lookup(&ApiKey::new(key.secret())).await?;
/// assert!(matches!(found, Lookup::Found(p) if !p.is_active()));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteKeyStore {
    // Two connections: lookups never queue behind an admin write or a last-used write.
    read: Arc<Mutex<Connection>>,
    write: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
    settings: Settings,
}

impl SqliteKeyStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the file cannot be opened or migrated.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let opened = path.clone();
        let (read, write) = spawn(move || {
            let write = connect(&opened)?;
            migrate(&write)?;
            Ok((connect(&opened)?, write))
        })
        .await?;
        Ok(SqliteKeyStore {
            read: Arc::new(Mutex::new(read)),
            write: Arc::new(Mutex::new(write)),
            path: Arc::new(path),
            settings: Settings::default(),
        })
    }

    /// The format of the keys [`issue`](SqliteKeyStore::issue) makes and lookups expect
    /// (default: prefix [`DEFAULT_KEY_PREFIX`](super::DEFAULT_KEY_PREFIX)).
    #[must_use]
    pub fn key_format(mut self, format: KeyFormat) -> Self {
        self.settings.format = format;
        self
    }

    /// Also looks up keys that do not claim the key format (e.g. imported by digest with
    /// [`import`](SqliteKeyStore::import)); keys that claim it are still checked first.
    #[must_use]
    pub fn accept_unformatted(mut self, accept: bool) -> Self {
        self.settings.accept_unformatted = accept;
        self
    }

    /// Writes a key's `last_used_at` at most once per `interval` (default
    /// [`DEFAULT_TOUCH_INTERVAL`](super::DEFAULT_TOUCH_INTERVAL)).
    #[must_use]
    pub fn touch_interval(mut self, interval: Duration) -> Self {
        self.settings.touch_interval = interval;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
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
        self.with_write(move |conn| {
            let inserted = conn
                .execute(
                    "INSERT INTO api_keys (id, digest, account_id, roles, state, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                    params![
                        id,
                        &digest.as_bytes()[..],
                        new.account_id,
                        new.roles.join(","),
                        new.state.as_str(),
                        millis(SystemTime::now()),
                        new.expires_at.map(millis),
                    ],
                )
                .map_err(error)?;
            Ok(inserted == 1)
        })
        .await
    }

    /// Every key, oldest first, without secrets or digests.
    ///
    /// # Errors
    ///
    /// [`StoreError`] for a database failure.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.with_write(|conn| {
            let mut statement = conn
                // `created_at` is in whole seconds: keys issued in the same second are
                // listed in the order they were issued.
                .prepare_cached(&format!("{SELECT} ORDER BY created_at, rowid"))
                .map_err(error)?;
            let rows = statement.query_map([], record).map_err(error)?;
            rows.map(|row| row.map_err(error)?).collect()
        })
        .await
    }

    /// One key by id.
    ///
    /// # Errors
    ///
    /// [`StoreError`] for a database failure.
    pub async fn get(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let id = id.to_owned();
        self.with_write(move |conn| {
            conn.prepare_cached(&format!("{SELECT} WHERE id = ?1"))
                .and_then(|mut statement| statement.query_row([id], record).optional())
                .map_err(error)?
                .transpose()
        })
        .await
    }

    /// Disables an active key; answers whether a key changed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] for a database failure.
    pub async fn disable(&self, id: &str) -> Result<bool, StoreError> {
        self.set_state(id, KeyState::Disabled, "state = 'active'")
            .await
    }

    /// Enables a disabled key (a revoked key stays revoked); answers whether a key changed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] for a database failure.
    pub async fn enable(&self, id: &str) -> Result<bool, StoreError> {
        self.set_state(id, KeyState::Active, "state = 'disabled'")
            .await
    }

    /// Revokes a key for good; answers whether a key changed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] for a database failure.
    pub async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        self.set_state(id, KeyState::Revoked, "state <> 'revoked'")
            .await
    }

    async fn set_state(
        &self,
        id: &str,
        state: KeyState,
        when: &'static str,
    ) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.with_write(move |conn| {
            let sql = format!("UPDATE api_keys SET state = ?1 WHERE id = ?2 AND {when}");
            let changed = conn
                .execute(&sql, params![state.as_str(), id])
                .map_err(error)?;
            Ok(changed == 1)
        })
        .await
    }

    async fn with_write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.write.clone();
        spawn(move || work(&mut conn.lock().unwrap_or_else(PoisonError::into_inner))).await
    }
}

impl KeyStore for SqliteKeyStore {
    type Future = SqliteLookup;

    fn lookup(&self, key: &ApiKey<'_>) -> SqliteLookup {
        if let Some(answer) = self.settings.precheck(key) {
            return SqliteLookup {
                state: LookupState::Ready {
                    answer: Some(answer),
                },
            };
        }
        let (read, write, digest, settings) = (
            self.read.clone(),
            self.write.clone(),
            *key.digest(),
            self.settings.clone(),
        );
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let answer = Err(StoreError::failed("SqliteKeyStore needs a tokio runtime"));
            return SqliteLookup {
                state: LookupState::Ready {
                    answer: Some(answer),
                },
            };
        };
        let task = runtime.spawn_blocking(move || {
            let found = find(
                &read.lock().unwrap_or_else(PoisonError::into_inner),
                &digest,
            )?;
            if let Lookup::Found(principal) = &found {
                if principal.is_active()
                    && settings
                        .touches
                        .due(principal.key_id(), settings.touch_interval)
                {
                    touch(&write, principal.key_id().to_owned());
                }
            }
            Ok(found)
        });
        SqliteLookup {
            state: LookupState::Query { task },
        }
    }

    fn lookup_now(&self, key: &ApiKey<'_>) -> Option<Result<Lookup, StoreError>> {
        self.settings.precheck(key)
    }
}

fn find(conn: &Connection, digest: &KeyDigest) -> Result<Lookup, StoreError> {
    let now = millis(SystemTime::now());
    let row = conn
        .prepare_cached(
            "SELECT id, account_id, roles, state, expires_at FROM api_keys WHERE digest = ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_row([&digest.as_bytes()[..]], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, Option<i64>>(4)?,
                    ))
                })
                .optional()
        })
        .map_err(error)?;
    let Some((id, account_id, roles, state, expires_at)) = row else {
        return Ok(Lookup::NotFound);
    };
    let state = KeyState::parse(&state).ok_or_else(|| db::bad_state(&state))?;
    let expired = expires_at.is_some_and(|at| at <= now);
    Ok(Lookup::Found(db::principal(
        &id,
        &account_id,
        &roles,
        state,
        expired,
    )))
}

/// Writes a key's last use on the blocking pool, without making the request wait for it.
fn touch(write: &Arc<Mutex<Connection>>, id: String) {
    let write = write.clone();
    drop(tokio::task::spawn_blocking(move || {
        let conn = write.lock().unwrap_or_else(PoisonError::into_inner);
        let written = conn.execute(
            "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2",
            params![millis(SystemTime::now()), id],
        );
        if let Err(err) = written {
            tracing::warn!(key_id = %id, error = %err, "could not write the key's last use");
        }
    }));
}

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<KeyRecord, StoreError>> {
    let state: String = row.get(3)?;
    let roles: String = row.get(2)?;
    let Some(state) = KeyState::parse(&state) else {
        return Ok(Err(db::bad_state(&state)));
    };
    Ok(Ok(KeyRecord {
        id: row.get(0)?,
        account_id: row.get(1)?,
        roles: db::roles(&roles),
        state,
        created_at: time(row.get(4)?),
        expires_at: row.get::<_, Option<i64>>(5)?.map(time),
        last_used_at: row.get::<_, Option<i64>>(6)?.map(time),
    }))
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(error)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(error)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(error)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    // IMMEDIATE: two processes opening a new file at once migrate one after the other.
    conn.execute_batch("BEGIN IMMEDIATE").map_err(error)?;
    let result = (|| {
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        for (done, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            conn.execute_batch(migration)?;
            conn.pragma_update(
                None,
                "user_version",
                i64::try_from(done + 1).unwrap_or(i64::MAX),
            )?;
        }
        Ok::<_, rusqlite::Error>(version)
    })();
    match result {
        Ok(version) if version <= MIGRATIONS.len() => conn.execute_batch("COMMIT").map_err(error),
        Ok(version) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(StoreError::failed(format!(
                "the key database is at schema version {version}, newer than this build knows ({})",
                MIGRATIONS.len()
            )))
        }
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(error(err))
        }
    }
}

fn spawn<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> impl Future<Output = Result<T, StoreError>> {
    let task = tokio::task::spawn_blocking(work);
    async move { task.await.map_err(StoreError::failed)? }
}

fn error(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::unavailable(error)
        }
        _ => StoreError::failed(error),
    }
}

fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    })
}

fn time(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

impl fmt::Debug for SqliteKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteKeyStore")
            .field("path", &self.path)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The future of a [`SqliteKeyStore`] lookup: a query on tokio's blocking pool, or an
    /// answer the key's format settled.
    pub struct SqliteLookup {
        #[pin]
        state: LookupState,
    }
}

pin_project! {
    #[project = LookupStateProj]
    enum LookupState {
        Ready { answer: Option<Result<Lookup, StoreError>> },
        Query { #[pin] task: JoinHandle<Result<Lookup, StoreError>> },
    }
}

impl Future for SqliteLookup {
    type Output = Result<Lookup, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            LookupStateProj::Ready { answer } => {
                Poll::Ready(answer.take().expect("SqliteLookup polled after completion"))
            }
            LookupStateProj::Query { task } => {
                Poll::Ready(ready!(task.poll(cx)).map_err(StoreError::failed)?)
            }
        }
    }
}

impl fmt::Debug for SqliteLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteLookup").finish_non_exhaustive()
    }
}
