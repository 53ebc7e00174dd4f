//! A caching wrapper for slow key stores.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{ready, Context, Poll, Waker},
    time::{Duration, Instant},
};

use pin_project_lite::pin_project;

use super::{store::SharedStoreError, ApiKey, KeyDigest, KeyStore, Lookup, Principal, StoreError};

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
/// [`CachedKeyStore::invalidate`] or [`CachedKeyStore::invalidate_all`] (e.g. on a revocation
/// event) to forget at once. An invalidation is never undone by a lookup that was in flight
/// when it ran: every invalidation moves a generation counter on, and a lookup that started
/// under an older generation hands its answer to its own request (and those that waited on
/// it) without remembering it.
///
/// Concurrent misses for one key are one store lookup: the first asks the store, the others
/// wait for its answer (an error included). Should the first request go away before the store
/// answers, a waiting one asks again.
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
    // Shared with the lookups that may have to ask again (see `CachedLookup`).
    inner: Arc<K>,
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
    /// Moved on by every invalidation: a lookup that started under an older generation may
    /// have read what was revoked since, so its answer is not remembered.
    generation: u64,
    /// The lookups in the wrapped store now, by key: a miss on one of these keys waits for it.
    in_flight: HashMap<KeyDigest, Arc<Flight>>,
}

impl State {
    fn remembered(&self, digest: &KeyDigest, now: Instant) -> Option<Lookup> {
        if let Some(principal) = self.found.get(digest, now) {
            Some(Lookup::Found(principal.clone()))
        } else {
            self.not_found.get(digest, now).map(|()| Lookup::NotFound)
        }
    }

    fn remember(&mut self, digest: &KeyDigest, lookup: &Lookup, now: Instant, config: &Config) {
        match lookup {
            Lookup::Found(principal) => self.found.insert(
                *digest,
                principal.clone(),
                now + config.ttl,
                now,
                config.capacity,
            ),
            Lookup::NotFound => self.not_found.insert(
                *digest,
                (),
                now + config.negative_ttl,
                now,
                config.negative_capacity,
            ),
        }
    }

    /// Forgets `flight` as the key's lookup in flight (unless an invalidation already did).
    fn land(&mut self, digest: &KeyDigest, flight: &Arc<Flight>) {
        if self
            .in_flight
            .get(digest)
            .is_some_and(|current| Arc::ptr_eq(current, flight))
        {
            self.in_flight.remove(digest);
        }
    }

    fn invalidated(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }
}

impl<K> CachedKeyStore<K> {
    /// Caches `inner` with the defaults.
    pub fn new(inner: K) -> Self {
        CachedKeyStore {
            inner: Arc::new(inner),
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

    /// Forgets everything remembered, for this store and its clones. A lookup in flight now
    /// does not remember its answer when it comes, and later misses ask the store afresh.
    pub fn invalidate_all(&self) {
        let mut state = self.lock();
        state.found = Entries::default();
        state.not_found = Entries::default();
        state.in_flight.clear();
        state.invalidated();
    }

    /// Forgets what was remembered about one key. A lookup in flight now does not remember
    /// its answer when it comes (for any key: the cost is one more store lookup), and later
    /// misses ask the store afresh.
    pub fn invalidate(&self, digest: &KeyDigest) {
        let mut state = self.lock();
        state.found.map.remove(digest);
        state.not_found.map.remove(digest);
        state.in_flight.remove(digest);
        state.invalidated();
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &K {
        &self.inner
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<K> Clone for CachedKeyStore<K> {
    fn clone(&self) -> Self {
        CachedKeyStore {
            inner: Arc::clone(&self.inner),
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
            .field("in_flight", &state.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl<K> KeyStore for CachedKeyStore<K>
where
    K: KeyStore + Send + Sync + 'static,
    K::Future: 'static,
{
    type Future = CachedLookup<K::Future>;

    fn lookup(&self, key: &ApiKey<'_>) -> Self::Future {
        let digest = *key.digest();
        let now = (self.config.clock)();
        let mut state = self.lock();
        if let Some(lookup) = state.remembered(&digest, now) {
            return CachedLookup::new(LookupState::Cached {
                lookup: Some(lookup),
            });
        }
        if let Some(flight) = state.in_flight.get(&digest) {
            // Another request is asking the store about this key: wait for its answer. Should
            // that request go away first, look up again (through the cache, so that the next
            // waiters coalesce behind this one).
            let flight = Arc::clone(flight);
            drop(state);
            let cache = self.clone();
            let secret = key.expose_secret().to_owned();
            return CachedLookup::new(LookupState::Waiting {
                flight,
                retry: Some(Box::new(move || cache.lookup(&ApiKey::new(&secret)))),
            });
        }
        let flight = Arc::new(Flight::default());
        state.in_flight.insert(digest, Arc::clone(&flight));
        let generation = state.generation;
        drop(state);
        CachedLookup::new(LookupState::Asking {
            future: self.inner.lookup(key),
            guard: FlightGuard {
                flight,
                digest,
                generation,
                config: self.config.clone(),
                state: Arc::clone(&self.state),
                finished: false,
            },
        })
    }

    fn lookup_now(&self, key: &ApiKey<'_>) -> Option<Result<Lookup, StoreError>> {
        // A remembered answer, else whatever the wrapped store has at hand (not remembered:
        // it is as quick to ask it again).
        let remembered = self.lock().remembered(key.digest(), (self.config.clock)());
        match remembered {
            Some(lookup) => Some(Ok(lookup)),
            None => self.inner.lookup_now(key),
        }
    }
}

/// One lookup in the wrapped store, awaited by the request that started it and by every
/// request that missed on the same key meanwhile.
#[derive(Default)]
struct Flight {
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    outcome: Option<Outcome>,
    wakers: Vec<Waker>,
}

#[derive(Clone)]
enum Outcome {
    Answered(Result<Lookup, SharedStoreError>),
    /// The request that asked went away before the store answered.
    Abandoned,
}

impl Flight {
    fn finish(&self, outcome: Outcome) {
        let wakers = {
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            slot.outcome = Some(outcome);
            std::mem::take(&mut slot.wakers)
        };
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// Held by the request that asks the store: remembers the answer (unless an invalidation
/// happened since the lookup started), hands it to the waiting requests, and tells them when
/// the lookup is dropped unanswered.
struct FlightGuard {
    flight: Arc<Flight>,
    digest: KeyDigest,
    generation: u64,
    config: Config,
    state: Arc<Mutex<State>>,
    finished: bool,
}

impl FlightGuard {
    fn answer(&mut self, result: Result<Lookup, StoreError>) -> Result<Lookup, StoreError> {
        let result = result.map_err(StoreError::share);
        {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.land(&self.digest, &self.flight);
            // An invalidation since the lookup started may have revoked what it read: the
            // answer goes to the requests that were already waiting, never into the cache.
            if let (Ok(lookup), true) = (&result, state.generation == self.generation) {
                let now = (self.config.clock)();
                state.remember(&self.digest, lookup, now, &self.config);
            }
        }
        self.finished = true;
        self.flight.finish(Outcome::Answered(result.clone()));
        result.map_err(|shared| shared.get())
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .land(&self.digest, &self.flight);
            self.flight.finish(Outcome::Abandoned);
        }
    }
}

type Retry<F> = Box<dyn FnOnce() -> CachedLookup<F> + Send>;

pin_project! {
    /// The future of a [`CachedKeyStore`] lookup: a remembered answer, the wrapped store's
    /// lookup (remembered when it resolves), or the answer of that lookup started by another
    /// request for the same key.
    pub struct CachedLookup<F> {
        #[pin]
        state: LookupState<F>,
    }
}

pin_project! {
    #[project = LookupStateProj]
    enum LookupState<F> {
        Cached { lookup: Option<Lookup> },
        Asking {
            #[pin]
            future: F,
            guard: FlightGuard,
        },
        Waiting {
            flight: Arc<Flight>,
            retry: Option<Retry<F>>,
        },
        Retrying {
            lookup: Pin<Box<CachedLookup<F>>>,
        },
    }
}

impl<F> CachedLookup<F> {
    fn new(state: LookupState<F>) -> Self {
        CachedLookup { state }
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
        let mut state = self.project().state;
        loop {
            match state.as_mut().project() {
                LookupStateProj::Cached { lookup } => {
                    return Poll::Ready(Ok(lookup
                        .take()
                        .expect("CachedLookup polled after completion")))
                }
                LookupStateProj::Asking { future, guard } => {
                    let result = ready!(future.poll(cx));
                    return Poll::Ready(guard.answer(result));
                }
                LookupStateProj::Waiting { flight, retry } => {
                    let outcome = {
                        let mut slot = flight.slot.lock().unwrap_or_else(PoisonError::into_inner);
                        match &slot.outcome {
                            Some(outcome) => outcome.clone(),
                            None => {
                                if !slot.wakers.iter().any(|waker| waker.will_wake(cx.waker())) {
                                    slot.wakers.push(cx.waker().clone());
                                }
                                return Poll::Pending;
                            }
                        }
                    };
                    match outcome {
                        Outcome::Answered(result) => {
                            return Poll::Ready(result.map_err(|shared| shared.get()))
                        }
                        Outcome::Abandoned => {
                            let retry = retry.take().expect("CachedLookup polled after completion");
                            state.set(LookupState::Retrying {
                                lookup: Box::pin(retry()),
                            });
                        }
                    }
                }
                LookupStateProj::Retrying { lookup } => return lookup.as_mut().poll(cx),
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A store that counts its lookups and answers each only once `open` is set.
    fn gated(calls: Arc<AtomicUsize>, open: Arc<Mutex<bool>>) -> impl KeyStore + Send + Sync {
        move |_: &ApiKey<'_>| {
            calls.fetch_add(1, Ordering::SeqCst);
            let open = Arc::clone(&open);
            std::future::poll_fn(move |cx| {
                if *open.lock().unwrap() {
                    Poll::Ready(Err(StoreError::unavailable("down for maintenance")))
                } else {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
        }
    }

    #[tokio::test]
    async fn a_waiter_asks_again_when_the_first_request_goes_away() {
        let (calls, open) = (Arc::default(), Arc::default());
        let cache = CachedKeyStore::new(gated(Arc::clone(&calls), Arc::clone(&open)));
        let key = ApiKey::new("demo_admin");
        let mut first = Box::pin(cache.lookup(&key));
        assert!(futures_poll(&mut first).is_pending());
        let second = cache.lookup(&key);
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the second waits for the first"
        );
        drop(first);
        *open.lock().unwrap() = true;
        let error = second.await.unwrap_err();
        assert!(error.is_unavailable());
        assert_eq!(
            error.to_string(),
            "key store unavailable: down for maintenance"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2, "the second asked itself");
    }

    #[tokio::test]
    async fn waiters_share_the_store_error() {
        let (calls, open) = (Arc::default(), Arc::default());
        let cache = CachedKeyStore::new(gated(Arc::clone(&calls), Arc::clone(&open)));
        let key = ApiKey::new("demo_admin");
        let lookups: Vec<_> = (0..5).map(|_| cache.lookup(&key)).collect();
        *open.lock().unwrap() = true;
        for lookup in lookups {
            let error = lookup.await.unwrap_err();
            assert!(error.is_unavailable());
            assert_eq!(
                error.to_string(),
                "key store unavailable: down for maintenance"
            );
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Errors are not remembered.
        let _ = cache.lookup(&key).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    fn futures_poll<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
        let waker = Waker::noop();
        Pin::new(future).poll(&mut Context::from_waker(waker))
    }
}
