//! Looking keys up: the [`KeyStore`] trait and its answers.

use std::{error::Error as StdError, fmt, future::Future, sync::Arc};

use super::{ApiKey, Principal};

/// Where API keys are looked up: an in-memory table ([`InMemoryKeyStore`]), a database, a
/// remote service.
///
/// `lookup` returns a future of the store's own type, so a store that answers at once (the
/// in-memory one) returns a ready future and nothing is boxed per request. The future owns
/// what it needs: copy the digest (or, for a store that hashes keys its own way, the secret)
/// out of the [`ApiKey`] before the first `.await`.
///
/// Any `Fn(&ApiKey<'_>) -> impl Future<Output = Result<Lookup, StoreError>> + Send` closure is a
/// store:
///
/// ```
/// use std::{collections::HashMap, sync::Arc};
/// use tower_api_errors::auth::{ApiKey, KeyDigest, KeyStore, Lookup, Principal, StoreError};
///
/// // Stands in for a database table keyed by digest.
/// let table: Arc<HashMap<KeyDigest, Principal>> = Arc::new(HashMap::from([(
///     KeyDigest::of("demo_admin"),
///     Principal::new("acct_123").with_key_id("key_admin").with_roles(["read", "write"]),
/// )]));
/// let store = move |key: &ApiKey<'_>| {
///     let (table, digest) = (table.clone(), *key.digest());
///     async move {
///         // e.g. `SELECT … FROM api_keys WHERE sha256 = $1`
///         Ok::<_, StoreError>(table.get(&digest).cloned().map_or(Lookup::NotFound, Lookup::Found))
///     }
/// };
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let found = store.lookup(&ApiKey::new("demo_admin")).await.unwrap();
/// assert!(matches!(found, Lookup::Found(p) if p.account_id() == "acct_123"));
/// # });
/// ```
///
/// [`InMemoryKeyStore`]: super::InMemoryKeyStore
pub trait KeyStore {
    /// The future of one lookup.
    type Future: Future<Output = Result<Lookup, StoreError>> + Send;

    /// Looks `key` up.
    ///
    /// Resolves to [`Lookup::Found`] (active or disabled), [`Lookup::NotFound`], or a
    /// [`StoreError`] when the store could not answer; a store error is never read as "no such
    /// key".
    fn lookup(&self, key: &ApiKey<'_>) -> Self::Future;

    /// The answer, when the store has it at hand without waiting (an in-memory table, a cache
    /// hit), or `None`. The layer asks this first and builds no future when it gets an answer;
    /// the answer must be the one `lookup` would give. The default has nothing at hand.
    fn lookup_now(&self, key: &ApiKey<'_>) -> Option<Result<Lookup, StoreError>> {
        let _ = key;
        None
    }
}

impl<F, Fut> KeyStore for F
where
    F: Fn(&ApiKey<'_>) -> Fut,
    Fut: Future<Output = Result<Lookup, StoreError>> + Send,
{
    type Future = Fut;

    fn lookup(&self, key: &ApiKey<'_>) -> Fut {
        self(key)
    }
}

/// What a store knows about a key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lookup {
    /// The key exists; its principal says whether it is active.
    Found(Principal),
    /// No such key.
    NotFound,
}

/// A store could not answer. The layer answers `server_error` (500), or `service_unavailable`
/// (503) when the store said it is down; never `unauthorized`, never a pass.
///
/// The source is logged (at `error` level) and never sent to the client; keep keys out of it.
pub struct StoreError {
    unavailable: bool,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl StoreError {
    /// The store failed (answered `server_error`, 500).
    pub fn failed(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        StoreError {
            unavailable: false,
            source: Some(source.into()),
        }
    }

    /// The store is down or overloaded (answered `service_unavailable`, 503).
    pub fn unavailable(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        StoreError {
            unavailable: true,
            source: Some(source.into()),
        }
    }

    /// Whether the store said it is down.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }

    /// This error in a form that can be handed to every request that waited on one lookup.
    pub(crate) fn share(self) -> SharedStoreError {
        SharedStoreError {
            unavailable: self.unavailable,
            source: self.source.map(Arc::from),
        }
    }
}

/// A [`StoreError`] that several requests receive (see [`CachedKeyStore`](super::CachedKeyStore)'s
/// coalesced misses): each gets a [`StoreError`] of the same kind and source.
#[derive(Clone, Debug)]
pub(crate) struct SharedStoreError {
    unavailable: bool,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl SharedStoreError {
    pub(crate) fn get(&self) -> StoreError {
        StoreError {
            unavailable: self.unavailable,
            source: self
                .source
                .clone()
                .map(|source| Box::new(SharedSource(source)) as Box<dyn StdError + Send + Sync>),
        }
    }
}

/// A shared source, shown as itself.
#[derive(Debug)]
struct SharedSource(Arc<dyn StdError + Send + Sync>);

impl fmt::Display for SharedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for SharedSource {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreError")
            .field("unavailable", &self.unavailable)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.unavailable {
            "key store unavailable"
        } else {
            "key store failed"
        })?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}

/// A shared store is a store.
impl<K: KeyStore + ?Sized> KeyStore for Arc<K> {
    type Future = K::Future;

    fn lookup(&self, key: &ApiKey<'_>) -> Self::Future {
        (**self).lookup(key)
    }

    fn lookup_now(&self, key: &ApiKey<'_>) -> Option<Result<Lookup, StoreError>> {
        (**self).lookup_now(key)
    }
}
