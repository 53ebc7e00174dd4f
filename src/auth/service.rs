use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http::{HeaderValue, Request, Response};
use tower_service::Service;

use super::{
    future::ResponseFuture, AuthLayer, Authenticated, KeyError, KeyExtractor, KeyStore, Lookup,
    Route, RoutePolicy, ShortDigest, StoreError,
};
use crate::{
    body::{ErrorBody, ResponseBody},
    dialect::{Bulk, Dialect, ErrorFormat},
    error::{ApiError, ErrorCode},
};

/// What every clone of one [`Auth`] shares.
pub(crate) struct Config<P, D> {
    pub(crate) policy: P,
    pub(crate) dialect: D,
    pub(crate) keys: KeyExtractor,
}

impl<P: fmt::Debug, D: fmt::Debug> fmt::Debug for Config<P, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("policy", &self.policy)
            .field("dialect", &self.dialect)
            .field("keys", &self.keys)
            .finish()
    }
}

/// `WWW-Authenticate` for a key that was presented and refused (RFC 6750 §3.1).
const INVALID_TOKEN: HeaderValue = HeaderValue::from_static(r#"Bearer error="invalid_token""#);

/// Why a request was refused, before it is rendered.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Refusal {
    Unauthorized { presented: bool },
    Forbidden,
    StoreFailed { unavailable: bool },
}

impl<P, D> Config<P, D>
where
    P: RoutePolicy,
    D: Dialect,
{
    /// Decides on a request once its key has been looked up: on success the principal is in
    /// the request's extensions.
    pub(crate) fn decide<B>(
        &self,
        request: &mut Request<B>,
        lookup: Result<Lookup, StoreError>,
        digest: ShortDigest,
    ) -> Result<(), Refusal> {
        let principal = match lookup {
            Ok(Lookup::Found(principal)) if principal.is_active() => principal,
            Ok(Lookup::Found(principal)) => {
                tracing::debug!(key_id = %principal.key_id(), "unauthorized: key is disabled");
                return Err(Refusal::Unauthorized { presented: true });
            }
            Ok(Lookup::NotFound) => {
                tracing::debug!(key = %digest, "unauthorized: unknown key");
                return Err(Refusal::Unauthorized { presented: true });
            }
            Err(error) => {
                tracing::error!(key = %digest, error = %error, "key lookup failed");
                return Err(Refusal::StoreFailed {
                    unavailable: error.is_unavailable(),
                });
            }
        };
        let route = Route::new(request.method(), request.uri(), request.headers());
        if !self.policy.allows(&principal, &route) {
            tracing::debug!(
                key_id = %principal.key_id(),
                method = %request.method(),
                path = request.uri().path(),
                "forbidden: the key lacks a role for this route"
            );
            return Err(Refusal::Forbidden);
        }
        request.extensions_mut().insert(principal);
        Ok(())
    }

    pub(crate) fn refuse_key<B>(
        &self,
        request: &Request<B>,
        error: KeyError,
    ) -> Response<ErrorBody> {
        tracing::debug!(reason = %error, "unauthorized");
        self.refuse(
            request,
            Refusal::Unauthorized {
                presented: error.presented(),
            },
        )
    }

    /// The response for a refusal, in the request's format and the layer's dialect.
    pub(crate) fn refuse<B>(&self, request: &Request<B>, refusal: Refusal) -> Response<ErrorBody> {
        let error = match refusal {
            Refusal::Unauthorized { .. } => ApiError::unauthorized(),
            Refusal::Forbidden => ApiError::forbidden(),
            Refusal::StoreFailed { unavailable: true } => {
                ApiError::new(ErrorCode::ServiceUnavailable)
            }
            Refusal::StoreFailed { unavailable: false } => ApiError::server_error(),
        };
        let challenge = match refusal {
            Refusal::Unauthorized { presented: true } => Some(INVALID_TOKEN),
            _ => None,
        };
        ErrorFormat::for_request(request).render_owned(&self.dialect, error, challenge)
    }
}

/// The service made by [`AuthLayer`]: authenticates, authorizes the route, then calls the inner
/// service with the [`Principal`](super::Principal) in the request extensions.
pub struct Auth<S, K, P = Authenticated, D = Bulk> {
    inner: S,
    store: K,
    config: Arc<Config<P, D>>,
}

impl<S, K> Auth<S, K> {
    /// Wraps `inner`, looking keys up in `store`, with the [`AuthLayer`] defaults.
    pub fn new(inner: S, store: K) -> Self {
        Auth::from_parts(
            inner,
            store,
            Arc::new(Config {
                policy: Authenticated,
                dialect: Bulk,
                keys: KeyExtractor::bearer(),
            }),
        )
    }

    /// An [`AuthLayer`] looking keys up in `store`.
    pub fn layer(store: K) -> AuthLayer<K> {
        AuthLayer::new(store)
    }
}

impl<S, K, P, D> Auth<S, K, P, D> {
    pub(crate) fn from_parts(inner: S, store: K, config: Arc<Config<P, D>>) -> Self {
        Auth {
            inner,
            store,
            config,
        }
    }

    crate::macros::define_inner_service_accessors!();
}

impl<S: Clone, K: Clone, P, D> Clone for Auth<S, K, P, D> {
    fn clone(&self) -> Self {
        Auth {
            inner: self.inner.clone(),
            store: self.store.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, K: fmt::Debug, P: fmt::Debug, D: fmt::Debug> fmt::Debug for Auth<S, K, P, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("inner", &self.inner)
            .field("store", &self.store)
            .field("config", &self.config)
            .finish()
    }
}

impl<S, K, P, D, ReqBody, ResBody> Service<Request<ReqBody>> for Auth<S, K, P, D>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    K: KeyStore,
    P: RoutePolicy,
    D: Dialect,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, K::Future, S, ReqBody, P, D>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let key = match self.config.keys.extract_key(request.headers()) {
            Ok(key) => key,
            Err(error) => return ResponseFuture::reject(self.config.refuse_key(&request, error)),
        };
        if let Some(result) = self.store.lookup_now(&key) {
            // The answer is at hand: decide now, and call the ready inner service directly.
            let digest = key.digest().short();
            return match self.config.decide(&mut request, result, digest) {
                Ok(()) => ResponseFuture::inner(self.inner.call(request)),
                Err(refusal) => ResponseFuture::reject(self.config.refuse(&request, refusal)),
            };
        }
        let lookup = self.store.lookup(&key);
        let digest = key.digest().short();
        // The ready inner service goes into the future; a clone stays for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::lookup(lookup, inner, request, self.config.clone(), digest)
    }
}
