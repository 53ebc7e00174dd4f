//! Per-item authorization of bulk JSON bodies: what a policy sees, and the default policy.

use std::{borrow::Cow, fmt, ops::Range};

use serde::{
    de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor},
    Deserialize, Deserializer,
};
use serde_json::value::RawValue;

use super::{
    field_scan::{top_level_string, Scan},
    Principal,
};

/// The largest body [`AuthorizeItems`](super::AuthorizeItems) reads by default when it has to find the items itself:
/// 1 MiB, the batch limit layer's default cap.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// One item of a bulk body, as an [`ItemPolicy`] sees it.
#[derive(Clone, Copy)]
pub struct Item<'a> {
    index: usize,
    raw: &'a [u8],
}

impl<'a> Item<'a> {
    /// An item at `index` whose JSON is `raw`.
    pub fn new(index: usize, raw: &'a [u8]) -> Self {
        Item { index, raw }
    }

    /// The item's index in the request array (`_idx`).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The item's JSON, exactly as sent.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The item parsed as `T`, or `None` when it is not a `T`; `T` may borrow from the body
    /// (`&str`, or a field of type `Cow<str>` marked `#[serde(borrow)]`, which borrows unless the
    /// string holds escapes), or be `serde_json::Value` for a generic look.
    pub fn parse<T: Deserialize<'a>>(&self) -> Option<T> {
        serde_json::from_slice(self.raw).ok()
    }

    /// Whether the item is a JSON object.
    pub fn is_object(&self) -> bool {
        self.raw.trim_ascii_start().first() == Some(&b'{')
    }
}

impl fmt::Debug for Item<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Item")
            .field("index", &self.index)
            .field("len", &self.raw.len())
            .finish()
    }
}

/// Decides whether a principal may submit one item of a bulk body. If any item is refused the
/// whole request is answered `forbidden` (403) and the inner service is not called.
///
/// Implemented by [`SameAccount`] (the default) and by any `Fn(&Principal, &Item<'_>) -> bool`
/// closure:
///
/// ```
/// use tower_api_errors::auth::{Item, ItemPolicy, Principal};
///
/// // Only writers may set `"role": "owner"`.
/// let policy = |principal: &Principal, item: &Item<'_>| {
///     #[derive(serde::Deserialize)]
///     struct Member<'a> { role: Option<&'a str> }
///     match item.parse::<Member<'_>>() {
///         Some(Member { role: Some("owner") }) => principal.has_role("admin"),
///         _ => true,
///     }
/// };
/// let writer = Principal::new("acct_123").with_roles(["write"]);
/// assert!(policy.allows(&writer, &Item::new(0, br#"{"role": "viewer"}"#)));
/// assert!(!policy.allows(&writer, &Item::new(1, br#"{"role": "owner"}"#)));
/// ```
pub trait ItemPolicy {
    /// Whether `principal` may submit `item`.
    fn allows(&self, principal: &Principal, item: &Item<'_>) -> bool;
}

impl<F> ItemPolicy for F
where
    F: Fn(&Principal, &Item<'_>) -> bool,
{
    fn allows(&self, principal: &Principal, item: &Item<'_>) -> bool {
        self(principal, item)
    }
}

/// The default item policy: an object item that names an account (field `account_id` by
/// default) must name the principal's.
///
/// Items that name no account pass, and so do items that are not objects (the handler answers
/// those with its own validation error). An account field that is not a string, or that
/// appears twice in one item, is refused: the handler could read either value.
///
/// ```
/// use tower_api_errors::auth::{Item, ItemPolicy, Principal, SameAccount};
///
/// let principal = Principal::new("acct_123");
/// let policy = SameAccount::default();
/// assert!(policy.allows(&principal, &Item::new(0, br#"{"url": "https://example.com"}"#)));
/// assert!(policy.allows(&principal, &Item::new(1, br#"{"account_id": "acct_123"}"#)));
/// assert!(!policy.allows(&principal, &Item::new(2, br#"{"account_id": "acct_456"}"#)));
/// assert!(!policy.allows(&principal, &Item::new(3, br#"{"account_id": 123}"#)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SameAccount {
    field: Cow<'static, str>,
}

impl Default for SameAccount {
    fn default() -> Self {
        SameAccount {
            field: Cow::Borrowed("account_id"),
        }
    }
}

impl SameAccount {
    /// Checks the field `field` instead of `account_id`.
    pub fn field(field: impl Into<Cow<'static, str>>) -> Self {
        SameAccount {
            field: field.into(),
        }
    }
}

impl ItemPolicy for SameAccount {
    fn allows(&self, principal: &Principal, item: &Item<'_>) -> bool {
        if !item.is_object() {
            return true;
        }
        match top_level_string(item.raw(), self.field.as_bytes()) {
            Scan::Absent => return true,
            Scan::Once(account) => return account == principal.account_id().as_bytes(),
            Scan::Twice => return false,
            Scan::Unsure => {}
        }
        let mut deserializer = serde_json::Deserializer::from_slice(item.raw());
        let seed = FieldSeed {
            field: &self.field,
            account: principal.account_id(),
        };
        match seed.deserialize(&mut deserializer) {
            Ok(Named::Absent) => deserializer.end().is_ok(),
            Ok(Named::Once { same_account }) => same_account && deserializer.end().is_ok(),
            Ok(Named::Twice) | Err(_) => false,
        }
    }
}

/// What an object item says about one field.
enum Named {
    Absent,
    Once { same_account: bool },
    Twice,
}

/// Reads an object item for its account field. Keys and the account are compared where they
/// lie in the body (or in serde_json's scratch buffer when escaped): nothing is allocated per
/// key or per item. A value that is not a string is an error, which refuses the item.
struct FieldSeed<'f> {
    field: &'f str,
    account: &'f str,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Named;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Named, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Named;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named, A::Error> {
        let mut named = Named::Absent;
        while let Some(is_field) = map.next_key_seed(StrIs(self.field))? {
            if is_field {
                let same_account = map.next_value_seed(StrIs(self.account))?;
                named = match named {
                    Named::Absent => Named::Once { same_account },
                    Named::Once { .. } | Named::Twice => Named::Twice,
                };
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(named)
    }
}

/// Whether a JSON string equals the one given, without copying it; any other value is an
/// error. (`Cow<str>` would not borrow here: serde's impl for it always makes a `String`.)
struct StrIs<'s>(&'s str);

impl<'de> DeserializeSeed<'de> for StrIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for StrIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E>(self, value: &str) -> Result<bool, E> {
        Ok(value == self.0)
    }
}

/// The byte span of each item of a JSON body: the elements of a top-level array (or of the
/// array in `array_field` of a top-level object), else the whole value as one item; no items
/// for a body of whitespace only.
///
/// # Errors
///
/// When the body is not one well-formed JSON value.
pub(crate) fn find_items(
    body: &[u8],
    array_field: Option<&str>,
) -> Result<Vec<Range<usize>>, serde_json::Error> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let top = TopSeed { array_field }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    let span_of = |raw: &RawValue| {
        let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
        start..start + raw.get().len()
    };
    Ok(match top {
        Top::Items(items) => items.into_iter().map(span_of).collect(),
        Top::One => {
            let start = body.len() - body.trim_ascii_start().len();
            std::iter::once(start..start + trimmed.len()).collect()
        }
    })
}

enum Top<'de> {
    Items(Vec<&'de RawValue>),
    One,
}

struct TopSeed<'f> {
    array_field: Option<&'f str>,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_> {
    type Value = Top<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Top<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_> {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(Top::Items(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut array = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if Some(&*key) == self.array_field {
                if array.is_some() {
                    return Err(serde::de::Error::custom(format_args!(
                        "field `{key}` appears twice"
                    )));
                }
                array = Some(map.next_value_seed(TopSeed { array_field: None })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(match array {
            Some(Top::Items(items)) => Top::Items(items),
            _ => Top::One,
        })
    }

    fn visit_bool<E>(self, _: bool) -> Result<Top<'de>, E> {
        Ok(Top::One)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Top<'de>, E> {
        Ok(Top::One)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Top<'de>, E> {
        Ok(Top::One)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Top<'de>, E> {
        Ok(Top::One)
    }

    fn visit_str<E>(self, _: &str) -> Result<Top<'de>, E> {
        Ok(Top::One)
    }

    fn visit_unit<E>(self) -> Result<Top<'de>, E> {
        Ok(Top::One)
    }
}
