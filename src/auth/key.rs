//! Reading an API key from request headers, and its digest.

use std::{
    fmt,
    hash::{BuildHasherDefault, Hash, Hasher},
};

use http::{header, HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// The SHA-256 digest of an API key: what stores keep and look up instead of the key.
///
/// Equality is constant-time ([`subtle`]), and `Debug` / [`KeyDigest::short`] show only the
/// first four bytes, enough to correlate log lines without helping anyone guess the key.
///
/// ```
/// use tower_api_errors::auth::KeyDigest;
///
/// let digest = KeyDigest::of("demo_admin");
/// assert_eq!(KeyDigest::from_hex(&digest.to_hex()), Some(digest));
/// assert_eq!(digest.short().to_string().len(), 8);
/// ```
#[derive(Clone, Copy)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// The digest of `key`.
    pub fn of(key: impl AsRef<[u8]>) -> Self {
        KeyDigest(Sha256::digest(key.as_ref()).into())
    }

    /// A digest from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        KeyDigest(bytes)
    }

    /// A digest from 64 hexadecimal digits (either case), or `None`.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let mut bytes = [0; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(KeyDigest(bytes))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hexadecimal digits.
    pub fn to_hex(&self) -> String {
        let mut hex = String::with_capacity(64);
        for byte in self.0 {
            hex.push(char::from(HEX[usize::from(byte >> 4)]));
            hex.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        hex
    }

    /// The first eight hex digits, for log lines.
    pub fn short(&self) -> ShortDigest {
        ShortDigest([self.0[0], self.0[1], self.0[2], self.0[3]])
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

impl PartialEq for KeyDigest {
    fn eq(&self, other: &Self) -> bool {
        // Word by word: four constant-time comparisons instead of thirty-two.
        let words = |digest: &[u8; 32]| {
            let mut words = [0u64; 4];
            for (word, bytes) in words.iter_mut().zip(digest.chunks_exact(8)) {
                let mut buf = [0; 8];
                buf.copy_from_slice(bytes);
                *word = u64::from_ne_bytes(buf);
            }
            words
        };
        let (a, b) = (words(&self.0), words(&other.0));
        (a[0].ct_eq(&b[0]) & a[1].ct_eq(&b[1]) & a[2].ct_eq(&b[2]) & a[3].ct_eq(&b[3])).into()
    }
}

impl Eq for KeyDigest {}

impl Hash for KeyDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The digest is already uniformly distributed: eight of its bytes are a good hash.
        let mut head = [0; 8];
        head.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_ne_bytes(head));
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({}…)", self.short())
    }
}

/// The first four bytes of a [`KeyDigest`], written as eight hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShortDigest([u8; 4]);

impl fmt::Display for ShortDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ShortDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Hashes a [`KeyDigest`] by taking the `u64` it writes, so a map of digests skips SipHash.
///
/// Only for maps whose keys the operator chose (the in-memory store): a map that stores
/// digests of keys sent by clients (the cache's negative entries) keeps the std hasher, so no
/// client can aim many entries at one bucket.
#[derive(Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) type BuildDigestHasher = BuildHasherDefault<DigestHasher>;

/// A key presented by a client: the secret, and its digest computed once.
///
/// Stores get this in [`KeyStore::lookup`](super::KeyStore::lookup). `Debug` shows the digest
/// prefix only; the secret itself is reachable through [`ApiKey::expose_secret`] alone, for
/// stores that must hash it their own way.
#[derive(Clone, Copy)]
pub struct ApiKey<'a> {
    // Visible ASCII, checked by every constructor, so it is also a `str`.
    secret: &'a [u8],
    digest: KeyDigest,
}

impl<'a> ApiKey<'a> {
    /// A presented key; hashes it.
    pub fn new(secret: &'a str) -> Self {
        Self::from_checked(secret.as_bytes())
    }

    fn from_checked(secret: &'a [u8]) -> Self {
        ApiKey {
            secret,
            digest: KeyDigest::of(secret),
        }
    }

    /// The key's SHA-256 digest.
    pub fn digest(&self) -> &KeyDigest {
        &self.digest
    }

    /// The key in clear. Never log it, never compare it with `==`.
    pub fn expose_secret(&self) -> &'a str {
        checked_str(self.secret)
    }
}

impl fmt::Debug for ApiKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

/// Why no usable key could be read from a request.
///
/// Every variant is answered `unauthorized` (401). [`KeyError::presented`] tells whether the
/// client did try to present a key, which adds `error="invalid_token"` to `WWW-Authenticate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyError {
    /// No key header at all.
    Missing,
    /// An `Authorization` header with another scheme than `Bearer` (e.g. `Basic`).
    OtherScheme,
    /// `Bearer` with nothing after it, or an empty key header.
    Empty,
    /// Bytes outside visible ASCII (spaces, controls, non-UTF-8) in the key.
    InvalidCharacters,
    /// The header value is longer than the configured maximum.
    TooLong,
    /// The same key header sent more than once.
    Repeated,
    /// Two different keys in two headers (`Authorization` and the named header).
    Conflicting,
}

impl KeyError {
    /// Whether the client presented something that was meant as a key (so the answer is
    /// `invalid_token`, RFC 6750 §3.1), rather than no key at all.
    pub fn presented(self) -> bool {
        !matches!(self, KeyError::Missing | KeyError::OtherScheme)
    }
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyError::Missing => "no API key",
            KeyError::OtherScheme => "authorization scheme is not Bearer",
            KeyError::Empty => "empty API key",
            KeyError::InvalidCharacters => "API key has invalid characters",
            KeyError::TooLong => "API key header is too long",
            KeyError::Repeated => "API key header sent more than once",
            KeyError::Conflicting => "two different API keys",
        })
    }
}

impl std::error::Error for KeyError {}

/// The longest key header value accepted by default, in bytes.
pub const DEFAULT_MAX_KEY_LEN: usize = 1024;

/// Where a request's API key is read from: `Authorization: Bearer <key>`, a named header such
/// as `X-Api-Key: <key>`, or either.
///
/// The `Bearer` scheme is matched case-insensitively (RFC 6750 / RFC 9110 §11.1); the key is
/// one or more visible ASCII characters (`!` to `~`), surrounding spaces ignored. A header
/// sent twice, or two headers carrying different keys, is refused rather than guessed at.
///
/// ```
/// use http::{HeaderMap, HeaderName};
/// use tower_api_errors::auth::{KeyError, KeyExtractor};
///
/// let keys = KeyExtractor::bearer_or_header(HeaderName::from_static("x-api-key"));
/// let mut headers = HeaderMap::new();
/// assert_eq!(keys.extract(&headers), Err(KeyError::Missing));
/// headers.insert("authorization", "bearer demo_admin".parse().unwrap());
/// assert_eq!(keys.extract(&headers), Ok("demo_admin"));
/// headers.insert("x-api-key", "demo_other".parse().unwrap());
/// assert_eq!(keys.extract(&headers), Err(KeyError::Conflicting));
/// ```
#[derive(Clone, Debug)]
pub struct KeyExtractor {
    bearer: bool,
    header: Option<HeaderName>,
    max_len: usize,
}

impl Default for KeyExtractor {
    fn default() -> Self {
        Self::bearer()
    }
}

impl KeyExtractor {
    /// `Authorization: Bearer <key>` only (the default).
    pub fn bearer() -> Self {
        KeyExtractor {
            bearer: true,
            header: None,
            max_len: DEFAULT_MAX_KEY_LEN,
        }
    }

    /// The named header only, e.g. `X-Api-Key: <key>`.
    pub fn header(name: HeaderName) -> Self {
        KeyExtractor {
            bearer: false,
            header: Some(name),
            max_len: DEFAULT_MAX_KEY_LEN,
        }
    }

    /// `Authorization: Bearer <key>` or the named header; when both are sent they must carry
    /// the same key.
    pub fn bearer_or_header(name: HeaderName) -> Self {
        KeyExtractor {
            bearer: true,
            header: Some(name),
            max_len: DEFAULT_MAX_KEY_LEN,
        }
    }

    /// Refuses header values longer than `max_len` bytes (default [`DEFAULT_MAX_KEY_LEN`])
    /// before looking at them.
    #[must_use]
    pub fn max_len(mut self, max_len: usize) -> Self {
        self.max_len = max_len;
        self
    }

    /// The key in `headers`.
    ///
    /// # Errors
    ///
    /// A [`KeyError`] when there is no key or the headers are malformed.
    pub fn extract<'h>(&self, headers: &'h HeaderMap) -> Result<&'h str, KeyError> {
        self.extract_key(headers).map(|key| key.expose_secret())
    }

    /// The key in `headers`, hashed.
    pub(crate) fn extract_key<'h>(&self, headers: &'h HeaderMap) -> Result<ApiKey<'h>, KeyError> {
        let bearer = if self.bearer {
            self.single(headers, &header::AUTHORIZATION)?
                .map(|value| bearer_bytes(value.as_bytes()))
                .transpose()?
        } else {
            None
        };
        let named = match &self.header {
            Some(name) => self
                .single(headers, name)?
                .map(|value| key_bytes(value.as_bytes().trim_ascii()))
                .transpose()?,
            None => None,
        };
        let key = match (bearer, named) {
            (Some(a), Some(b)) if bool::from(a.ct_eq(b)) => a,
            (Some(_), Some(_)) => return Err(KeyError::Conflicting),
            (Some(key), None) | (None, Some(key)) => key,
            (None, None) => return Err(KeyError::Missing),
        };
        Ok(ApiKey::from_checked(key))
    }

    /// The one value of `name`, if any, within the length limit.
    fn single<'h>(
        &self,
        headers: &'h HeaderMap,
        name: &HeaderName,
    ) -> Result<Option<&'h HeaderValue>, KeyError> {
        let mut values = headers.get_all(name).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(KeyError::Repeated);
        }
        if value.len() > self.max_len {
            return Err(KeyError::TooLong);
        }
        Ok(Some(value))
    }
}

/// The key in one `Authorization` header value: `Bearer <key>`, scheme in any case.
///
/// ```
/// use tower_api_errors::auth::{parse_bearer, KeyError};
///
/// assert_eq!(parse_bearer(b"Bearer abc.123"), Ok("abc.123"));
/// assert_eq!(parse_bearer(b"BEARER  abc"), Ok("abc"));
/// assert_eq!(parse_bearer(b"Basic YWJj"), Err(KeyError::OtherScheme));
/// assert_eq!(parse_bearer(b"Bearer "), Err(KeyError::Empty));
/// assert_eq!(parse_bearer(b"Bearer a b"), Err(KeyError::InvalidCharacters));
/// assert_eq!(parse_bearer(b"Bearer \xff"), Err(KeyError::InvalidCharacters));
/// ```
///
/// # Errors
///
/// [`KeyError::OtherScheme`] for another scheme, [`KeyError::Empty`] for no key,
/// [`KeyError::InvalidCharacters`] for anything but visible ASCII in the key.
pub fn parse_bearer(value: &[u8]) -> Result<&str, KeyError> {
    bearer_bytes(value).map(checked_str)
}

fn bearer_bytes(value: &[u8]) -> Result<&[u8], KeyError> {
    const SCHEME: &[u8] = b"bearer";
    let value = value.trim_ascii();
    let Some(scheme) = value.get(..SCHEME.len()) else {
        return Err(KeyError::OtherScheme);
    };
    if !scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(KeyError::OtherScheme);
    }
    match value.get(SCHEME.len()) {
        None => Err(KeyError::Empty),
        Some(b' ') => key_bytes(value[SCHEME.len()..].trim_ascii_start()),
        Some(_) => Err(KeyError::OtherScheme),
    }
}

/// The key in one named key header value (e.g. `X-Api-Key`): the whole value, trimmed.
///
/// # Errors
///
/// [`KeyError::Empty`] for an empty value, [`KeyError::InvalidCharacters`] for anything but
/// visible ASCII.
///
/// ```
/// use tower_api_errors::auth::{parse_key, KeyError};
///
/// assert_eq!(parse_key(b" demo_admin "), Ok("demo_admin"));
/// assert_eq!(parse_key(b""), Err(KeyError::Empty));
/// assert_eq!(parse_key(b"caf\xc3\xa9"), Err(KeyError::InvalidCharacters));
/// ```
pub fn parse_key(value: &[u8]) -> Result<&str, KeyError> {
    key_bytes(value.trim_ascii()).map(checked_str)
}

/// Bytes that came from a `str` or passed the visible-ASCII check, as a `str` (never fails).
fn checked_str(key: &[u8]) -> &str {
    std::str::from_utf8(key).unwrap_or_default()
}

/// `key`, if it is one or more visible ASCII characters.
fn key_bytes(key: &[u8]) -> Result<&[u8], KeyError> {
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    let visible = all_visible(key);
    if !visible {
        return Err(KeyError::InvalidCharacters);
    }
    Ok(key)
}

/// Whether every byte is visible ASCII (`!` to `~`), eight bytes at a time: no early exit and
/// no per-byte branch (the bit tricks are "hasless" and "hasmore" from Bit Twiddling Hacks).
pub(crate) fn all_visible(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = ONES * 0x80;
    // The high bit of the result is set in some byte iff a byte is below `!` or above `~`.
    let invisible = |word: u64| {
        let below = word.wrapping_sub(ONES * u64::from(b'!')) & !word;
        let above = word.wrapping_add(ONES * u64::from(127 - b'~')) | word;
        (below | above) & HIGH
    };
    let word = |bytes: &[u8]| {
        let mut buf = [0; 8];
        buf.copy_from_slice(bytes);
        u64::from_le_bytes(buf)
    };
    let mut found = 0;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        found |= invisible(word(chunk));
    }
    if !words.remainder().is_empty() {
        found |= match bytes.len() {
            // The last eight bytes, overlapping the words already checked.
            8.. => invisible(word(&bytes[bytes.len() - 8..])),
            len => {
                let mut buf = [b'!'; 8];
                buf[..len].copy_from_slice(bytes);
                invisible(u64::from_le_bytes(buf))
            }
        };
    }
    found == 0
}
