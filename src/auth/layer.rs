use std::sync::Arc;

use tower_layer::Layer;

use super::{service::Config, Auth, Authenticated, KeyExtractor};
use crate::dialect::Bulk;

/// Authenticates API keys and applies a per-route [`RoutePolicy`](super::RoutePolicy); see the
/// [module docs](super).
///
/// Built with [`AuthLayer::new`] from a [`KeyStore`](super::KeyStore); by default it reads
/// `Authorization: Bearer <key>`, lets every active key call every route ([`Authenticated`]),
/// and answers in the [`Bulk`] dialect.
#[derive(Clone, Debug)]
#[must_use]
pub struct AuthLayer<K, P = Authenticated, D = Bulk> {
    store: K,
    policy: P,
    dialect: D,
    keys: KeyExtractor,
}

impl<K> AuthLayer<K> {
    /// Keys are looked up in `store`.
    pub fn new(store: K) -> Self {
        AuthLayer {
            store,
            policy: Authenticated,
            dialect: Bulk,
            keys: KeyExtractor::bearer(),
        }
    }
}

impl<K, P, D> AuthLayer<K, P, D> {
    /// Which roles each route needs: a [`RoleTable`](super::RoleTable), a closure, or any
    /// [`RoutePolicy`](super::RoutePolicy).
    pub fn route_policy<P2>(self, policy: P2) -> AuthLayer<K, P2, D> {
        AuthLayer {
            store: self.store,
            policy,
            dialect: self.dialect,
            keys: self.keys,
        }
    }

    /// Answers rejections in `dialect` instead of the bulk dialect.
    pub fn dialect<D2>(self, dialect: D2) -> AuthLayer<K, P, D2> {
        AuthLayer {
            store: self.store,
            policy: self.policy,
            dialect,
            keys: self.keys,
        }
    }

    /// Where the key is read from (default: `Authorization: Bearer`).
    pub fn keys(mut self, keys: KeyExtractor) -> Self {
        self.keys = keys;
        self
    }
}

impl<S, K, P, D> Layer<S> for AuthLayer<K, P, D>
where
    K: Clone,
    P: Clone,
    D: Clone,
{
    type Service = Auth<S, K, P, D>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth::from_parts(
            inner,
            self.store.clone(),
            Arc::new(Config {
                policy: self.policy.clone(),
                dialect: self.dialect.clone(),
                keys: self.keys.clone(),
            }),
        )
    }
}
