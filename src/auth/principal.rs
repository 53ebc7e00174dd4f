//! Who a key belongs to.

use std::{fmt, sync::Arc};

/// The account and roles behind an API key.
///
/// A request that passes [`Auth`](super::Auth) carries its principal in the request
/// extensions, so handlers read the account and roles without parsing anything again (in axum,
/// with feature `axum`: `Principal` is an extractor, refusing `unauthorized` when absent; in
/// tonic, with feature `tonic`: `RequestExt::principal`). Cloning is cheap (one reference count).
///
/// Nothing secret is in here: [`Principal::key_id`] is an identifier chosen to be logged (or,
/// when none was given, a prefix of the key's digest), never the key.
///
/// ```
/// use tower_api_errors::auth::Principal;
///
/// let principal = Principal::new("acct_123").with_key_id("key_admin").with_roles(["read", "write"]);
/// assert_eq!(principal.account_id(), "acct_123");
/// assert!(principal.has_role("write"));
/// assert!(principal.is_active());
/// assert!(!principal.clone().disabled().is_active());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    inner: Arc<Inner>,
}

#[derive(Clone, PartialEq, Eq)]
struct Inner {
    account_id: Box<str>,
    key_id: Box<str>,
    roles: Box<[Box<str>]>,
    active: bool,
}

impl Principal {
    /// An active principal of `account_id`, with no roles and no key id yet.
    pub fn new(account_id: impl Into<String>) -> Self {
        Principal {
            inner: Arc::new(Inner {
                account_id: account_id.into().into_boxed_str(),
                key_id: Box::from(""),
                roles: Box::new([]),
                active: true,
            }),
        }
    }

    /// Sets the identifier of the key, the one that may appear in logs.
    #[must_use]
    pub fn with_key_id(mut self, key_id: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.inner).key_id = key_id.into().into_boxed_str();
        self
    }

    /// Sets the roles.
    #[must_use]
    pub fn with_roles<I>(mut self, roles: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Arc::make_mut(&mut self.inner).roles = roles
            .into_iter()
            .map(|role| role.into().into_boxed_str())
            .collect();
        self
    }

    /// Marks the key disabled: it is known, and answered `unauthorized`.
    #[must_use]
    pub fn disabled(mut self) -> Self {
        Arc::make_mut(&mut self.inner).active = false;
        self
    }

    /// Sets whether the key is active.
    #[must_use]
    pub fn with_active(mut self, active: bool) -> Self {
        Arc::make_mut(&mut self.inner).active = active;
        self
    }

    /// The account the key belongs to.
    pub fn account_id(&self) -> &str {
        &self.inner.account_id
    }

    /// The key's identifier, safe to log.
    pub fn key_id(&self) -> &str {
        &self.inner.key_id
    }

    /// The roles, in the order given.
    pub fn roles(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.inner.roles.iter().map(|role| &**role)
    }

    /// Whether the key has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.inner.roles.iter().any(|have| **have == *role)
    }

    /// Whether the key has every one of `roles`.
    pub fn has_roles<'r>(&self, roles: impl IntoIterator<Item = &'r str>) -> bool {
        roles.into_iter().all(|role| self.has_role(role))
    }

    /// Whether the key is active (a disabled key is answered `unauthorized`).
    pub fn is_active(&self) -> bool {
        self.inner.active
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("account_id", &self.account_id())
            .field("key_id", &self.key_id())
            .field("roles", &self.inner.roles)
            .field("active", &self.is_active())
            .finish()
    }
}
