//! Issuing keys: the key format, new keys, and what a store lists about them.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use super::KeyDigest;

/// The prefix of issued keys when none is chosen.
pub const DEFAULT_KEY_PREFIX: &str = "sk";

/// Random bytes in the body of an issued key (256 bits).
const SECRET_BYTES: usize = 32;
/// Hex digits after the prefix: the body, then the CRC-32 of `<prefix>_<body>`.
const BODY_HEX: usize = SECRET_BYTES * 2;
const TAIL_HEX: usize = BODY_HEX + 8;

/// The shape of issued keys: `<prefix>_<64 hex digits><8 hex digits>`.
///
/// The 64 digits are 256 bits from the operating system's random source ([`getrandom`]); the
/// last 8 are the CRC-32 of everything before them. The prefix lets secret scanners recognise
/// a leaked key (a pattern such as `sk_[0-9a-f]{72}`), and the checksum lets a store refuse a
/// mistyped or made-up key without a database round trip. The checksum is no protection
/// against guessing (anyone can compute it): the 256 random bits are.
///
/// ```
/// use tower_api_errors::auth::KeyFormat;
///
/// let format = KeyFormat::new("acme")?;
/// let key = format.generate()?;
/// assert!(key.secret().starts_with("acme_"));
/// assert_eq!(key.secret().len(), "acme_".len() + 72);
/// assert!(format.check(key.secret()));
///
/// // One digit changed: the checksum no longer matches.
/// let mut typo = key.secret().to_owned();
/// let last = typo.pop().unwrap();
/// typo.push(if last == '0' { '1' } else { '0' });
/// assert!(!format.check(&typo));
/// # Ok::<_, tower_api_errors::auth::KeyFormatError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeyFormat {
    prefix: Arc<str>,
}

impl Default for KeyFormat {
    /// Prefix [`DEFAULT_KEY_PREFIX`].
    fn default() -> Self {
        KeyFormat {
            prefix: Arc::from(DEFAULT_KEY_PREFIX),
        }
    }
}

impl KeyFormat {
    /// Keys that start with `<prefix>_`.
    ///
    /// # Errors
    ///
    /// [`KeyFormatError`] unless the prefix is 1 to 16 characters of `a-z`, `0-9` and `_`,
    /// starting with a letter and not ending with `_`.
    pub fn new(prefix: impl Into<String>) -> Result<Self, KeyFormatError> {
        let prefix = prefix.into();
        let valid = (1..=16).contains(&prefix.len())
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && !prefix.ends_with('_')
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(KeyFormatError(format!(
                "key prefix {prefix:?} must be 1 to 16 of a-z, 0-9, _, start with a letter and not end with _"
            )));
        }
        Ok(KeyFormat {
            prefix: prefix.into(),
        })
    }

    /// The prefix, without the `_`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A new key and a new key id, from the operating system's random source.
    ///
    /// # Errors
    ///
    /// [`KeyFormatError`] if the random source fails (the key is never made from anything
    /// weaker).
    pub fn generate(&self) -> Result<GeneratedKey, KeyFormatError> {
        let mut random = [0u8; SECRET_BYTES + 8];
        getrandom::fill(&mut random)
            .map_err(|error| KeyFormatError(format!("random source failed: {error}")))?;
        let mut secret = String::with_capacity(self.prefix.len() + 1 + TAIL_HEX);
        secret.push_str(&self.prefix);
        secret.push('_');
        push_hex(&mut secret, &random[..SECRET_BYTES]);
        let checksum = crc32fast::hash(secret.as_bytes());
        push_hex(&mut secret, &checksum.to_be_bytes());
        let mut id = String::from("key_");
        push_hex(&mut id, &random[SECRET_BYTES..]);
        random.fill(0);
        Ok(GeneratedKey {
            digest: KeyDigest::of(&secret),
            id,
            secret,
        })
    }

    /// Whether `key` has this format and a matching checksum.
    pub fn check(&self, key: &str) -> bool {
        let Some(tail) = key
            .strip_prefix(&*self.prefix)
            .and_then(|rest| rest.strip_prefix('_'))
        else {
            return false;
        };
        if tail.len() != TAIL_HEX || !tail.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return false;
        }
        let (signed, checksum) = key.split_at(key.len() - 8);
        u32::from_str_radix(checksum, 16) == Ok(crc32fast::hash(signed.as_bytes()))
    }

    /// Whether `key` claims this format (starts with `<prefix>_`), well-formed or not.
    pub fn claims(&self, key: &str) -> bool {
        key.strip_prefix(&*self.prefix)
            .is_some_and(|rest| rest.starts_with('_'))
    }
}

impl fmt::Debug for KeyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFormat")
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
}

/// A key could not be made: a bad prefix, or a failing random source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFormatError(String);

impl fmt::Display for KeyFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyFormatError {}

/// A freshly generated key: its public id, the secret (to show once), and its digest (to
/// store).
///
/// `Debug` shows the id only.
#[derive(Clone)]
pub struct GeneratedKey {
    id: String,
    secret: String,
    digest: KeyDigest,
}

impl GeneratedKey {
    /// The key id: public, safe to log, used to disable or revoke the key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key itself. Show it to its owner once; never log or store it.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The SHA-256 digest: what stores keep.
    pub fn digest(&self) -> &KeyDigest {
        &self.digest
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    pub(crate) fn with_id(mut self, id: String) -> Self {
        self.id = id;
        self
    }
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What to issue (or import) a key for: an account, roles, an expiry.
///
/// ```
/// use std::time::Duration;
/// use tower_api_errors::auth::NewKey;
///
/// let new = NewKey::new("acct_123").roles(["read", "write"]).expires_in(Duration::from_secs(30 * 86_400));
/// assert_eq!(new.account_id(), "acct_123");
/// ```
#[derive(Clone, Debug)]
pub struct NewKey {
    pub(crate) account_id: String,
    pub(crate) roles: Vec<String>,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) id: Option<String>,
    pub(crate) state: KeyState,
}

impl NewKey {
    /// An active key of `account_id`, no roles, no expiry.
    pub fn new(account_id: impl Into<String>) -> Self {
        NewKey {
            account_id: account_id.into(),
            roles: Vec::new(),
            expires_at: None,
            id: None,
            state: KeyState::Active,
        }
    }

    /// Sets the roles.
    #[must_use]
    pub fn roles<I>(mut self, roles: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }

    /// Expires at `at` (an expired key is answered `unauthorized`).
    #[must_use]
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Expires `ttl` from now.
    #[must_use]
    pub fn expires_in(self, ttl: Duration) -> Self {
        self.expires_at(SystemTime::now() + ttl)
    }

    /// Uses `id` as the key id instead of a random one (for importing existing keys).
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Starts disabled instead of active.
    #[must_use]
    pub fn disabled(mut self) -> Self {
        self.state = KeyState::Disabled;
        self
    }

    /// The account.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    /// Refuses what a store could not list back faithfully. Roles are stored as one
    /// comma-separated column, so a role may not hold a comma.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let word = |s: &str| {
            !s.is_empty() && s.len() <= 200 && s.bytes().all(|b| b.is_ascii_graphic() && b != b',')
        };
        if !word(&self.account_id) {
            return Err("account id must be 1 to 200 visible ASCII characters, no comma".into());
        }
        if let Some(role) = self.roles.iter().find(|role| !word(role)) {
            return Err(format!(
                "role {role:?} must be 1 to 200 visible ASCII characters, no comma"
            ));
        }
        if self.id.as_deref().is_some_and(|id| !word(id)) {
            return Err("key id must be 1 to 200 visible ASCII characters, no comma".into());
        }
        Ok(())
    }
}

/// A key's state in a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyState {
    /// Accepted (unless expired).
    Active,
    /// Refused until enabled again.
    Disabled,
    /// Refused for good; cannot be enabled.
    Revoked,
}

impl KeyState {
    /// `active`, `disabled` or `revoked`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Disabled => "disabled",
            KeyState::Revoked => "revoked",
        }
    }

    /// The state named by [`as_str`](KeyState::as_str).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "active" => Some(KeyState::Active),
            "disabled" => Some(KeyState::Disabled),
            "revoked" => Some(KeyState::Revoked),
            _ => None,
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a store lists about a key: everything but the secret (and its digest).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyRecord {
    /// The key id.
    pub id: String,
    /// The account.
    pub account_id: String,
    /// The roles.
    pub roles: Vec<String>,
    /// Active, disabled or revoked.
    pub state: KeyState,
    /// When it was issued.
    pub created_at: SystemTime,
    /// When it expires, if ever.
    pub expires_at: Option<SystemTime>,
    /// When it was last accepted (written at most once per touch interval, so it may lag).
    pub last_used_at: Option<SystemTime>,
}

impl KeyRecord {
    /// Whether the key is accepted at `now`: active and not expired.
    pub fn is_usable_at(&self, now: SystemTime) -> bool {
        self.state == KeyState::Active && self.expires_at.is_none_or(|at| at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_format_and_differ() {
        let format = KeyFormat::default();
        let a = format.generate().unwrap();
        let b = format.generate().unwrap();
        assert_ne!(a.secret(), b.secret());
        assert_ne!(a.id(), b.id());
        assert!(format.check(a.secret()));
        assert_eq!(*a.digest(), KeyDigest::of(a.secret()));
        assert!(!format!("{a:?}").contains(a.secret()));
    }

    #[test]
    fn every_single_digit_typo_is_refused() {
        let format = KeyFormat::new("acme").unwrap();
        let key = format.generate().unwrap();
        let secret = key.secret();
        for index in "acme_".len()..secret.len() {
            for digit in "0123456789abcdef".chars() {
                let mut typo: Vec<char> = secret.chars().collect();
                if typo[index] == digit {
                    continue;
                }
                typo[index] = digit;
                let typo: String = typo.into_iter().collect();
                assert!(!format.check(&typo), "accepted a typo at {index}");
            }
        }
        assert!(!format.check(&secret[..secret.len() - 1]));
        assert!(!format.check(&format!("{secret}0")));
        assert!(!format.check(&secret.to_uppercase()));
        assert!(!KeyFormat::new("other").unwrap().check(secret));
        assert!(format.claims(secret) && format.claims("acme_x") && !format.claims("acmex"));
    }

    #[test]
    fn prefixes_are_checked() {
        for bad in ["", "Sk", "1sk", "sk_", "sk-live", "abcdefghijklmnopq"] {
            assert!(KeyFormat::new(bad).is_err(), "{bad:?}");
        }
        assert!(KeyFormat::new("sk_live").is_ok());
    }

    #[cfg(any(feature = "sqlite", feature = "postgres"))]
    #[test]
    fn new_keys_are_validated() {
        assert!(NewKey::new("acct_1").roles(["read"]).validate().is_ok());
        assert!(NewKey::new("").validate().is_err());
        assert!(NewKey::new("acct_1")
            .roles(["read,write"])
            .validate()
            .is_err());
        assert!(NewKey::new("acct_1").roles([""]).validate().is_err());
        assert!(NewKey::new("acct 1").validate().is_err());
    }
}
