//! What the database stores share: the format check before any query, the last-used
//! throttle, and turning a row into a principal.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use super::{ApiKey, GeneratedKey, KeyFormat, KeyState, Lookup, NewKey, Principal, StoreError};

/// How often a key's `last_used_at` is written at most, by default.
pub const DEFAULT_TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// The settings of a database store.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) format: KeyFormat,
    pub(crate) accept_unformatted: bool,
    pub(crate) touch_interval: Duration,
    pub(crate) touches: Arc<Touches>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            format: KeyFormat::default(),
            accept_unformatted: false,
            touch_interval: DEFAULT_TOUCH_INTERVAL,
            touches: Arc::default(),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("format", &self.format)
            .field("accept_unformatted", &self.accept_unformatted)
            .field("touch_interval", &self.touch_interval)
            .finish()
    }
}

impl Settings {
    /// The answer without asking the database, when the key alone settles it: a key that
    /// claims the format but fails its checksum (a typo), or any other key when only issued
    /// keys are accepted.
    pub(crate) fn precheck(&self, key: &ApiKey<'_>) -> Option<Result<Lookup, StoreError>> {
        let secret = key.expose_secret();
        let ask =
            self.format.check(secret) || (self.accept_unformatted && !self.format.claims(secret));
        (!ask).then_some(Ok(Lookup::NotFound))
    }
}

/// When each key's last use was last written, so it is written once per interval per
/// instance, not once per request.
#[derive(Default)]
pub(crate) struct Touches {
    written: Mutex<HashMap<Box<str>, Instant>>,
}

impl Touches {
    /// Whether key `id`'s last use is due to be written now; if so, records that it is.
    pub(crate) fn due(&self, id: &str, interval: Duration) -> bool {
        let now = Instant::now();
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        match written.get_mut(id) {
            Some(at) if now.duration_since(*at) < interval => false,
            Some(at) => {
                *at = now;
                true
            }
            None => {
                // Bounded by the keys in the store; forget the oldest when very many were used.
                if written.len() >= 100_000 {
                    written.retain(|_, at| now.duration_since(*at) < interval);
                }
                written.insert(id.into(), now);
                true
            }
        }
    }
}

/// The principal a store answers for a stored key.
pub(crate) fn principal(
    id: &str,
    account_id: &str,
    roles: &str,
    state: KeyState,
    expired: bool,
) -> Principal {
    Principal::new(account_id)
        .with_key_id(id)
        .with_roles(roles.split(',').filter(|role| !role.is_empty()))
        .with_active(state == KeyState::Active && !expired)
}

/// A new key for `new`, and `new` with the key's id (unless it chose its own, which the key
/// then takes).
pub(crate) fn generate(
    settings: &Settings,
    new: NewKey,
) -> Result<(GeneratedKey, NewKey), StoreError> {
    new.validate().map_err(StoreError::failed)?;
    let key = settings.format.generate().map_err(StoreError::failed)?;
    Ok(match &new.id {
        Some(id) => (key.with_id(id.clone()), new),
        None => {
            let id = key.id().to_owned();
            (key, new.id(id))
        }
    })
}

/// Roles as stored: one comma-separated column.
pub(crate) fn roles(stored: &str) -> Vec<String> {
    stored
        .split(',')
        .filter(|role| !role.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A stored state that is none of ours: the table was changed by hand.
pub(crate) fn bad_state(state: &str) -> StoreError {
    StoreError::failed(format!("api_keys.state holds {state:?}"))
}
