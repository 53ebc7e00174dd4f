//! The in-memory key store.

use std::{
    collections::{hash_map::Entry, HashMap},
    fmt,
    future::{ready, Ready},
    path::Path,
    sync::{Arc, PoisonError, RwLock},
};

use serde::Deserialize;

use super::{key::BuildDigestHasher, ApiKey, KeyDigest, KeyStore, Lookup, Principal, StoreError};

type Table = HashMap<KeyDigest, Principal, BuildDigestHasher>;

/// A set of keys, built in code or read from JSON, to load into an [`InMemoryKeyStore`].
///
/// Only the SHA-256 digest of each key is kept. A key added without a key id gets
/// `sha256:<first 8 hex digits>` as its id, so log lines can still name it.
///
/// # The JSON format
///
/// ```json
/// {"keys": [
///   {"key_id": "key_admin", "sha256": "<64 hex digits>", "account_id": "acct_123", "roles": ["read", "write"]},
///   {"key_id": "key_dev", "key": "demo_reader", "account_id": "acct_123", "roles": ["read"], "active": false}
/// ]}
/// ```
///
/// Each entry has exactly one of `sha256` (the digest of the key, so the file holds no secret;
/// prefer it) or `key` (the key in clear, hashed when loaded: for development). `key_id` and
/// `roles` are optional, `active` defaults to `true`; unknown fields are refused so a typo
/// (`"role"`) cannot silently drop a restriction.
///
/// ```
/// use tower_api_errors::auth::{KeyDigest, KeySet, Principal};
///
/// let json = format!(
///     r#"{{"keys": [{{"key_id": "key_admin", "sha256": "{}", "account_id": "acct_123", "roles": ["read"]}}]}}"#,
///     KeyDigest::of("demo_admin").to_hex()
/// );
/// let keys = KeySet::from_json(json.as_bytes())?;
/// assert_eq!(keys.len(), 1);
///
/// let keys = KeySet::new().with_key("demo_reader", Principal::new("acct_123").with_roles(["read"]))?;
/// assert_eq!(keys.len(), 1);
/// # Ok::<_, tower_api_errors::auth::LoadError>(())
/// ```
#[derive(Clone, Default)]
pub struct KeySet {
    table: Table,
}

impl KeySet {
    /// No keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key` (hashed here; the clear key is not kept).
    ///
    /// # Errors
    ///
    /// [`LoadError`] if the key is already in the set.
    pub fn with_key(self, key: impl AsRef<[u8]>, principal: Principal) -> Result<Self, LoadError> {
        self.with_digest(KeyDigest::of(key), principal)
    }

    /// Adds a key by its digest.
    ///
    /// # Errors
    ///
    /// [`LoadError`] if the digest is already in the set.
    pub fn with_digest(
        mut self,
        digest: KeyDigest,
        principal: Principal,
    ) -> Result<Self, LoadError> {
        self.insert(digest, principal)?;
        Ok(self)
    }

    fn insert(&mut self, digest: KeyDigest, mut principal: Principal) -> Result<(), LoadError> {
        if principal.key_id().is_empty() {
            principal = principal.with_key_id(format!("sha256:{}", digest.short()));
        }
        match self.table.entry(digest) {
            Entry::Occupied(entry) => Err(LoadError::new(format!(
                "key {} is listed twice (also as {})",
                principal.key_id(),
                entry.get().key_id()
            ))),
            Entry::Vacant(entry) => {
                entry.insert(principal);
                Ok(())
            }
        }
    }

    /// Keys from JSON (see the [format](KeySet#the-json-format)).
    ///
    /// # Errors
    ///
    /// [`LoadError`] for JSON that does not follow the format, a bad digest, or a key listed
    /// twice. The message never contains a key.
    pub fn from_json(json: &[u8]) -> Result<Self, LoadError> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            keys: Vec<FileKey>,
        }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileKey {
            #[serde(default)]
            key_id: Option<String>,
            #[serde(default)]
            sha256: Option<String>,
            #[serde(default)]
            key: Option<String>,
            account_id: String,
            #[serde(default)]
            roles: Vec<String>,
            #[serde(default = "active_default")]
            active: bool,
        }

        fn active_default() -> bool {
            true
        }

        let file: File = serde_json::from_slice(json)
            .map_err(|error| LoadError::new(format!("invalid key file: {error}")))?;
        let mut set = KeySet::new();
        for (index, entry) in file.keys.into_iter().enumerate() {
            let digest = match (&entry.sha256, &entry.key) {
                (Some(hex), None) => KeyDigest::from_hex(hex).ok_or_else(|| {
                    LoadError::new(format!("keys[{index}]: sha256 is not 64 hex digits"))
                })?,
                (None, Some(key)) if !key.is_empty() => KeyDigest::of(key),
                _ => {
                    return Err(LoadError::new(format!(
                        "keys[{index}]: give exactly one of a non-empty `key` or `sha256`"
                    )))
                }
            };
            let mut principal = Principal::new(entry.account_id)
                .with_roles(entry.roles)
                .with_active(entry.active);
            if let Some(key_id) = entry.key_id {
                principal = principal.with_key_id(key_id);
            }
            set.insert(digest, principal)?;
        }
        Ok(set)
    }

    /// Keys from a JSON file (see the [format](KeySet#the-json-format)).
    ///
    /// # Errors
    ///
    /// [`LoadError`] if the file cannot be read or is not valid.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let json = std::fs::read(path).map_err(|error| {
            LoadError::new(format!("cannot read key file {}: {error}", path.display()))
        })?;
        Self::from_json(&json)
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field(
                "key_ids",
                &self
                    .table
                    .values()
                    .map(Principal::key_id)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// A key set could not be loaded. The message says where and why, never which key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    message: String,
}

impl LoadError {
    fn new(message: String) -> Self {
        LoadError { message }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LoadError {}

/// A key store in memory, holding SHA-256 digests only, that can be swapped at run time.
///
/// A lookup hashes the presented key (once, in the layer) and finds the digest in a hash map:
/// its time does not depend on how much of a guessed key is right, and the clear key is never
/// compared with anything. Digests are compared in constant time.
///
/// Clones share the same keys. [`InMemoryKeyStore::replace`] (or
/// [`reload_json_file`](InMemoryKeyStore::reload_json_file)) swaps the whole set atomically:
/// a lookup sees the old set or the new one, never a mix, so keys can be rotated without a
/// restart.
///
/// ```
/// use tower_api_errors::auth::{ApiKey, InMemoryKeyStore, KeySet, KeyStore, Lookup, Principal};
///
/// let store = InMemoryKeyStore::new(
///     KeySet::new().with_key("old_key", Principal::new("acct_123").with_roles(["read"]))?,
/// );
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// assert!(matches!(store.lookup(&ApiKey::new("old_key")).await, Ok(Lookup::Found(_))));
/// // Rotation: the new set replaces the old one for every clone of the store.
/// store.replace(KeySet::new().with_key("new_key", Principal::new("acct_123"))?);
/// assert!(matches!(store.lookup(&ApiKey::new("old_key")).await, Ok(Lookup::NotFound)));
/// assert!(matches!(store.lookup(&ApiKey::new("new_key")).await, Ok(Lookup::Found(_))));
/// # Ok::<_, tower_api_errors::auth::LoadError>(())
/// # }).unwrap();
/// # Ok::<_, tower_api_errors::auth::LoadError>(())
/// ```
#[derive(Clone, Default)]
pub struct InMemoryKeyStore {
    table: Arc<RwLock<Arc<Table>>>,
}

impl InMemoryKeyStore {
    /// A store holding `keys`.
    pub fn new(keys: KeySet) -> Self {
        InMemoryKeyStore {
            table: Arc::new(RwLock::new(Arc::new(keys.table))),
        }
    }

    /// A store holding the keys of a JSON file (see the [format](KeySet#the-json-format)).
    ///
    /// # Errors
    ///
    /// [`LoadError`] if the file cannot be read or is not valid.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<Self, LoadError> {
        KeySet::from_json_file(path).map(Self::new)
    }

    /// Replaces every key with `keys`, for this store and all its clones, at once.
    pub fn replace(&self, keys: KeySet) {
        let table = Arc::new(keys.table);
        // Swap under the lock, drop the old table after releasing it.
        let old = std::mem::replace(
            &mut *self.table.write().unwrap_or_else(PoisonError::into_inner),
            table,
        );
        drop(old);
    }

    /// Reads a JSON file and replaces every key with its keys. When the file is not valid the
    /// keys in use stay as they were.
    ///
    /// # Errors
    ///
    /// [`LoadError`] if the file cannot be read or is not valid.
    pub fn reload_json_file(&self, path: impl AsRef<Path>) -> Result<(), LoadError> {
        self.replace(KeySet::from_json_file(path)?);
        Ok(())
    }

    /// How many keys the store holds now.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// Whether the store holds no key now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The principal of a digest, now.
    pub fn get(&self, digest: &KeyDigest) -> Option<Principal> {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(digest)
            .cloned()
    }

    fn find(&self, key: &ApiKey<'_>) -> Lookup {
        self.get(key.digest())
            .map_or(Lookup::NotFound, Lookup::Found)
    }

    fn snapshot(&self) -> Arc<Table> {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl KeyStore for InMemoryKeyStore {
    type Future = Ready<Result<Lookup, StoreError>>;

    fn lookup(&self, key: &ApiKey<'_>) -> Self::Future {
        ready(Ok(self.find(key)))
    }

    fn lookup_now(&self, key: &ApiKey<'_>) -> Option<Result<Lookup, StoreError>> {
        Some(Ok(self.find(key)))
    }
}

impl fmt::Debug for InMemoryKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryKeyStore")
            .field("keys", &self.len())
            .finish()
    }
}
