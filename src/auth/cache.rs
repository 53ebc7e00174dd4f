//! A caching wrapper for slow key stores.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{ready, Context, Poll},
    time::{Duration, Instant},
};

use pin_project_lite::pin_project;

use super::{ApiKey, KeyDigest, KeyStore, Lookup, Principal, StoreError};

type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The default number of keys (active or disabled) remembered.
pub const DEFAULT_CAPACITY: usize = 10_000;
/// The default number of unknown keys remembered.
pub const DEFAULT_NEGATIVE_CAPACITY: usize = 1_000;
/// How long a found key is remembered by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);
/// How long an unknown key is remembered by default.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// Remembers what a slow store answered, by key digest, for a while.
///
/// - Found keys (active or disabled) are kept for the TTL (default 60 s), unknown keys for the
///   short negative TTL (default 5 s), so a key created in the store works within seconds.
/// - Both are bounded ([`DEFAULT_CAPACITY`], [`DEFAULT_NEGATIVE_CAPACITY`]); the oldest entry
///   goes first. Unknown keys have their own, smaller room, so a flood of made-up keys cannot
///   push the real ones out.
/// - Store errors are not remembered: the next request asks the store again.
///
/// A key revoked in the store keeps working for at most the TTL; call
/// [`CachedKeyStore::invalidate_all`] (e.g. on a revocation event) to forget at once.
/// Concurrent misses for one key each ask the store.
///
/// Configure before cloning: clones share the remembered entries.
///
/// ```
/// use std::time::Duration;
/// use tower_api_errors::auth::{ApiKey, CachedKeyStore, KeyDigest, Lookup, Principal, StoreError};
///
/// let slow = |key: &ApiKey<'_>| {
///     let digest = *key.digest();
///     async move {
///         // A round trip to a database…
///         let found = digest == KeyDigest::of("demo_admin");
///         Ok::<_, StoreError>(match found {
///             true => Lookup::Found(Principal::new("acct_123")),
///             false => Lookup::NotFound,
///         })
///     }
/// };
/// let store = CachedKeyStore::new(slow)
///     .capacity(50_000)
///     .ttl(Duration::from_secs(30))
///     .negative_ttl(Duration::from_secs(2));
/// # let _ = store;
/// ```
pub struct CachedKeyStore<K> {
    inner: K,
    config: Config,
    state: Arc<Mutex<State>>,
}

#[derive(Clone)]
struct Config {
    ttl: Duration,
    negative_ttl: Duration,
    capacity: usize,
    negative_capacity: usize,
    clock: Clock,
}

#[derive(Default)]
struct State {
    found: Entries<Principal>,
    not_found: Entries<()>,
}

impl<K> CachedKeyStore<K> {
    /// Caches `inner` with the defaults.
    pub fn new(inner: K) -> Self {
        CachedKeyStore {
            inner,
            config: Config {
                ttl: DEFAULT_TTL,
                negative_ttl: DEFAULT_NEGATIVE_TTL,
                capacity: DEFAULT_CAPACITY,
                negative_capacity: DEFAULT_NEGATIVE_CAPACITY,
                clock: Arc::new(Instant::now),
            },
            state: Arc::default(),
        }
    }

    /// How many found keys are remembered at most (0: none).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.config.capacity = capacity;
        self
    }

    /// How many unknown keys are remembered at most (0: none).
    #[must_use]
    pub fn negative_capacity(mut self, capacity: usize) -> Self {
        self.config.negative_capacity = capacity;
        self
    }

    /// How long a found key is remembered.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.config.ttl = ttl;
        self
    }

    /// How long an unknown key is remembered.
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.config.negative_ttl = ttl;
        self
    }

    /// Reads the time from `clock` instead of [`Instant::now`], e.g. a clock that tests move
    /// by hand. It must never go backwards.
    #[must_use]
    pub fn clock(mut self, clock: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        self.config.clock = Arc::new(clock);
        self
    }

    /// Forgets everything remembered, for this store and its clones.
    pub fn invalidate_all(&self) {
        *self.lock() = State::default();
    }

    /// Forgets what was remembered about one key.
    pub fn invalidate(&self, digest: &KeyDigest) {
        let mut state = self.lock();
        state.found.map.remove(digest);
        state.not_found.map.remove(digest);
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &K {
        &self.inner
    }

    fn remembered(&self, digest: &KeyDigest) -> Option<Lookup> {
        let now = (self.config.clock)();
        let state = self.lock();
        if let Some(principal) = state.found.get(digest, now) {
            Some(Lookup::Found(principal.clone()))
        } else {
            state.not_found.get(digest, now).map(|()| Lookup::NotFound)
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K: Clone> Clone for CachedKeyStore<K> {
    fn clone(&self) -> Self {
        CachedKeyStore {
            inner: self.inner.clone(),
            config: self.config.clone(),
            state: self.state.clone(),
        }
    }
}

impl<K: fmt::Debug> fmt::Debug for CachedKeyStore<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("CachedKeyStore")
            .field("inner", &self.inner)
            .field("ttl", &self.config.ttl)
            .field("negative_ttl", &self.config.negative_ttl)
            .field("capacity", &self.config.capacity)
            .field("negative_capacity", &self.config.negative_capacity)
            .field("found", &state.found.map.len())
            .field("not_found", &state.not_found.map.len())
            .finish_non_exhaustive()
    }
}

impl<K: KeyStore> KeyStore for CachedKeyStore<K> {
    type Future = CachedLookup<K::Future>;

    fn lookup(&self, key: &ApiKey<'_>) -> Self::Future {
        let state = match self.remembered(key.digest()) {
            Some(lookup) => LookupState::Cached {
                lookup: Some(lookup),
            },
            None => LookupState::Miss {
                future: self.inner.lookup(key),
                digest: *key.digest(),
                config: self.config.clone(),
                state: self.state.clone(),
            },
        };
        CachedLookup { state }
    }

    fn lookup_now(&self, key: &ApiKey<'_>) -> Option<Result<Lookup, StoreError>> {
        // A remembered answer, else whatever the wrapped store has at hand (not remembered:
        // it is as quick to ask it again).
        match self.remembered(key.digest()) {
            Some(lookup) => Some(Ok(lookup)),
            None => self.inner.lookup_now(key),
        }
    }
}

pin_project! {
    /// The future of a [`CachedKeyStore`] lookup: a remembered answer, or the wrapped store's
    /// lookup, remembered when it resolves.
    pub struct CachedLookup<F> {
        #[pin]
        state: LookupState<F>,
    }
}

pin_project! {
    #[project = LookupStateProj]
    enum LookupState<F> {
        Cached { lookup: Option<Lookup> },
        Miss {
            #[pin]
            future: F,
            digest: KeyDigest,
            config: Config,
            state: Arc<Mutex<State>>,
        },
    }
}

impl<F> fmt::Debug for CachedLookup<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedLookup").finish_non_exhaustive()
    }
}

impl<F> Future for CachedLookup<F>
where
    F: Future<Output = Result<Lookup, StoreError>>,
{
    type Output = Result<Lookup, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            LookupStateProj::Cached { lookup } => Poll::Ready(Ok(lookup
                .take()
                .expect("CachedLookup polled after completion"))),
            LookupStateProj::Miss {
                future,
                digest,
                config,
                state,
            } => {
                let result = ready!(future.poll(cx));
                if let Ok(lookup) = &result {
                    let now = (config.clock)();
                    let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
                    match lookup {
                        Lookup::Found(principal) => state.found.insert(
                            *digest,
                            principal.clone(),
                            now + config.ttl,
                            now,
                            config.capacity,
                        ),
                        Lookup::NotFound => state.not_found.insert(
                            *digest,
                            (),
                            now + config.negative_ttl,
                            now,
                            config.negative_capacity,
                        ),
                    }
                }
                Poll::Ready(result)
            }
        }
    }
}

/// Entries that all live for the same TTL, so insertion order is expiry order: the queue's
/// front is both the oldest entry and the next to expire.
struct Entries<V> {
    // Std hasher (randomly keyed): clients choose the keys of negative entries.
    map: HashMap<KeyDigest, (V, Instant)>,
    order: VecDeque<(KeyDigest, Instant)>,
}

impl<V> Default for Entries<V> {
    fn default() -> Self {
        Entries {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<V> Entries<V> {
    fn get(&self, digest: &KeyDigest, now: Instant) -> Option<&V> {
        self.map
            .get(digest)
            .filter(|(_, expires)| *expires > now)
            .map(|(value, _)| value)
    }

    fn insert(
        &mut self,
        digest: KeyDigest,
        value: V,
        expires: Instant,
        now: Instant,
        capacity: usize,
    ) {
        while self.order.front().is_some_and(|(_, at)| *at <= now) {
            self.pop_front();
        }
        if capacity == 0 {
            return;
        }
        while self.map.len() >= capacity && !self.map.contains_key(&digest) {
            if !self.pop_front() {
                break;
            }
        }
        self.map.insert(digest, (value, expires));
        self.order.push_back((digest, expires));
    }

    /// Drops the oldest queue entry and its map entry, unless the map entry was refreshed since.
    fn pop_front(&mut self) -> bool {
        let Some((digest, at)) = self.order.pop_front() else {
            return false;
        };
        if self
            .map
            .get(&digest)
            .is_some_and(|(_, expires)| *expires == at)
        {
            self.map.remove(&digest);
        }
        true
    }
}
