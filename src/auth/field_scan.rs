//! Finding one top-level string field of a JSON object without a parser: the fast path of
//! [`SameAccount`](super::SameAccount).
//!
//! Hand-written because the per-item check runs on every item of every bulk request, and
//! serde's visitor costs about 150 ns an item where this scan costs a few nanoseconds
//! (`BENCHMARKS.md`, per-item authorization). It is only a fast path: anything it does not
//! fully understand — an escape in a key or in the value, a value it cannot skip, a byte out of
//! place at the top level — is [`Scan::Unsure`], and the caller asks serde. On every object
//! serde accepts, its answer is serde's (the differential tests below).

/// What the scan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scan<'a> {
    /// The object has no such field.
    Absent,
    /// The object has the field once, with this string value (no escapes in it).
    Once(&'a [u8]),
    /// The object has the field more than once.
    Twice,
    /// Not an object the scan understands: let a parser decide.
    Unsure,
}

mod blocks;

/// The value of the top-level field `name` of the JSON object `item`.
#[inline]
pub(crate) fn top_level_string<'a>(item: &'a [u8], name: &[u8]) -> Scan<'a> {
    blocks::scan(item, name)
        .or_else(|| scan(item, name))
        .unwrap_or(Scan::Unsure)
}

/// The byte scan: what [`blocks::scan`] must agree with, and the answer when it has none.
/// Kept out of line: most items never need it.
#[cold]
#[inline(never)]
fn scan<'a>(item: &'a [u8], name: &[u8]) -> Option<Scan<'a>> {
    let mut at = skip_space(item, 0);
    if item.get(at) != Some(&b'{') {
        return None;
    }
    at = skip_space(item, at + 1);
    let mut found = Scan::Absent;
    if item.get(at) == Some(&b'}') {
        return end(item, at + 1, found);
    }
    loop {
        let key = plain_string(item, at)?;
        at = skip_space(item, key.end + 1);
        if item.get(at) != Some(&b':') {
            return None;
        }
        at = skip_space(item, at + 1);
        if item[key.clone()] == *name {
            let value = plain_string(item, at)?;
            found = match found {
                Scan::Absent => Scan::Once(&item[value.clone()]),
                _ => Scan::Twice,
            };
            at = value.end + 1;
        } else {
            at = skip_value(item, at)?;
        }
        at = skip_space(item, at);
        match item.get(at)? {
            b',' => at = skip_space(item, at + 1),
            b'}' => return end(item, at + 1, found),
            _ => return None,
        }
    }
}

/// Only whitespace may follow the object.
fn end<'a>(item: &[u8], at: usize, found: Scan<'a>) -> Option<Scan<'a>> {
    (skip_space(item, at) == item.len()).then_some(found)
}

fn skip_space(item: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = item.get(at) {
        at += 1;
    }
    at
}

/// The contents of a string starting at `at` (its quote) that is printable ASCII with no
/// escape: a string whose bytes are its value, with no UTF-8 to check (serde checks a key's
/// UTF-8, so anything else is left to it).
fn plain_string(item: &[u8], at: usize) -> Option<std::ops::Range<usize>> {
    if item.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let len = item[start..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b))?;
    (item[start + len] == b'"').then_some(start..start + len)
}

/// The index just past the value starting at `at`.
fn skip_value(item: &[u8], at: usize) -> Option<usize> {
    match *item.get(at)? {
        b'"' => skip_string(item, at),
        b'{' | b'[' => skip_nested(item, at),
        b't' => literal(item, at, b"true"),
        b'f' => literal(item, at, b"false"),
        b'n' => literal(item, at, b"null"),
        b'-' | b'0'..=b'9' => number(item, at),
        _ => None,
    }
}

/// Past a string that may hold escapes; only `\"` can end it early, so any escape is stepped
/// over whole (serde checks what the escape says, and the counter that found the item has
/// already refused raw control characters in strings). memchr finds the next quote or
/// backslash a vector at a time: skipping values is most of the scan.
fn skip_string(item: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        let rest = item.get(i..)?;
        let found = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[found] == b'"' {
            return Some(i + found + 1);
        }
        i += found + 2;
    }
}

/// Past an array or object: brackets counted outside strings. Its insides are the handler's
/// parser's to check; the scan needs only to know where it ends.
fn skip_nested(item: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = at;
    loop {
        match *item.get(i)? {
            b'"' => {
                i = skip_string(item, i)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
}

fn literal(item: &[u8], at: usize, word: &[u8]) -> Option<usize> {
    item[at..].starts_with(word).then_some(at + word.len())
}

/// Past a number, checked against JSON's grammar.
fn number(item: &[u8], mut at: usize) -> Option<usize> {
    let digits = |at: usize| {
        item[at..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(item.len() - at)
    };
    if item[at] == b'-' {
        at += 1;
    }
    match item.get(at)? {
        b'0' => at += 1,
        b'1'..=b'9' => at += digits(at),
        _ => return None,
    }
    if item.get(at) == Some(&b'.') {
        let n = digits(at + 1);
        if n == 0 {
            return None;
        }
        at += 1 + n;
    }
    if let Some(b'e' | b'E') = item.get(at) {
        at += 1;
        if let Some(b'+' | b'-') = item.get(at) {
            at += 1;
        }
        let n = digits(at);
        if n == 0 {
            return None;
        }
        at += n;
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;

    /// What a parser says the object holds in `name`: the reference the scan must agree with.
    fn parsed(item: &[u8], name: &str) -> Option<Result<Option<String>, ()>> {
        // An object serde accepts at all (`Map` keeps the last of two fields, so the fields are
        // counted on the way instead).
        serde_json::from_slice::<Map<String, Value>>(item).ok()?;
        struct Keys(usize, Option<Value>, String);
        let mut keys = Keys(0, None, name.to_owned());
        let mut deserializer = serde_json::Deserializer::from_slice(item);
        use serde::de::{DeserializeSeed, MapAccess, Visitor};
        impl<'de> Visitor<'de> for &mut Keys {
            type Value = ();
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                while let Some(key) = map.next_key::<String>()? {
                    let value: Value = map.next_value()?;
                    if key == self.2 {
                        self.0 += 1;
                        self.1 = Some(value);
                    }
                }
                Ok(())
            }
        }
        impl<'de> DeserializeSeed<'de> for &mut Keys {
            type Value = ();
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
                d.deserialize_map(self)
            }
        }
        (&mut keys).deserialize(&mut deserializer).ok()?;
        Some(match (keys.0, keys.1) {
            (0, _) => Ok(None),
            (1, Some(Value::String(value))) => Ok(Some(value)),
            (1, _) => Err(()),
            _ => Err(()),
        })
    }

    /// The block scan, on whichever path, says what the byte scan says, or nothing.
    fn blocks_agree(item: &[u8], name: &[u8]) {
        let bytes = scan(item, name);
        for (path, fast) in [
            ("cpu", blocks::scan(item, name)),
            ("portable", blocks::scan_portable(item, name)),
        ] {
            if let Some(fast) = fast {
                assert_eq!(
                    Some(fast),
                    bytes,
                    "{path}: {:?}",
                    String::from_utf8_lossy(item)
                );
            }
        }
    }

    fn agrees(item: &str, name: &str) {
        blocks_agree(item.as_bytes(), name.as_bytes());
        let scan = top_level_string(item.as_bytes(), name.as_bytes());
        let Some(reference) = parsed(item.as_bytes(), name) else {
            // Not an object serde accepts: the scan may say anything but a value serde would
            // not see, which it cannot, since serde sees none.
            return;
        };
        match (scan, reference) {
            (Scan::Unsure, _) => {}
            (Scan::Absent, Ok(None)) => {}
            (Scan::Once(value), Ok(Some(expected))) => {
                assert_eq!(value, expected.as_bytes(), "{item}")
            }
            (Scan::Twice, Err(())) => {}
            (scan, reference) => panic!("{item}: scan {scan:?}, parser {reference:?}"),
        }
    }

    #[test]
    fn a_typical_bulk_item_takes_the_fast_path() {
        let item = br#"{"account_id":"acct_1","url":"https://hooks.example.com/1","email":"ops1@example.com"}"#;
        assert_eq!(top_level_string(item, b"account_id"), Scan::Once(b"acct_1"));
    }

    #[test]
    fn the_block_scan_answers_for_typical_items_across_block_boundaries() {
        let long = r#"{"account_id":"acct_1","url":"https://hooks.example.com/1","email":"ops1@example.com","tags":["a",{"b":"]"}],"n":-1.5e3,"ok":true}"#;
        let short = r#"{"a":[{"b":"\"}"}],"account_id":"acct_1","n":null}"#;
        // Shifted so that every string and bracket falls on each side of a block boundary, and
        // the items are of every length around 64 and 128 bytes.
        for (item, shift) in (0..130).flat_map(|shift| [(long, shift), (short, shift)]) {
            let shifted = format!("{}{item}\n", " ".repeat(shift));
            let fast = blocks::scan(shifted.as_bytes(), b"account_id");
            assert_eq!(fast, Some(Scan::Once(b"acct_1")), "shift {shift}");
            let portable = blocks::scan_portable(shifted.as_bytes(), b"account_id");
            assert_eq!(portable, Some(Scan::Once(b"acct_1")), "shift {shift}");
            agrees(&shifted, "account_id");
            agrees(&shifted, "url");
            agrees(&shifted, "tags");
        }
    }

    #[test]
    fn finds_the_field_at_the_top_level_only() {
        let cases: &[(&str, Scan<'_>)] = &[
            (r#"{"account_id":"acct_1"}"#, Scan::Once(b"acct_1")),
            (
                r#" { "x" : [1, {"account_id": "no"}], "account_id" : "acct_1" } "#,
                Scan::Once(b"acct_1"),
            ),
            (r#"{"nested":{"account_id":"acct_2"}}"#, Scan::Absent),
            (r#"{"s":"\"account_id\":\"acct_2\""}"#, Scan::Absent),
            (r#"{}"#, Scan::Absent),
            (r#"{"account_id":"a","account_id":"b"}"#, Scan::Twice),
            (r#"{"account\u005fid":"acct_2"}"#, Scan::Unsure),
            (r#"{"account_id":"acct\u0032"}"#, Scan::Unsure),
            (r#"{"account_id":2}"#, Scan::Unsure),
            (r#"{"account_id" "acct_2"}"#, Scan::Unsure),
            (r#"{"a":tru,"account_id":"x"}"#, Scan::Unsure),
            (r#"{"a":01}"#, Scan::Unsure),
            (
                r#"{"a":-0.5e+3,"b":[{"account_id":1}],"account_id":"x"}"#,
                Scan::Once(b"x"),
            ),
            (r#"{"a":1.}"#, Scan::Unsure),
            (r#"{"a":1} x"#, Scan::Unsure),
            (r#"[1]"#, Scan::Unsure),
            ("{\"acc\u{e9}ount_id\":\"x\"}", Scan::Unsure),
            ("{\"account_id\":\"acct_\u{e9}\"}", Scan::Unsure),
            ("{\"\u{e9}\":1,\"account_id\":\"acct_1\"}", Scan::Unsure),
        ];
        for (item, expected) in cases {
            assert_eq!(
                top_level_string(item.as_bytes(), b"account_id"),
                *expected,
                "{item}"
            );
            agrees(item, "account_id");
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z_\"\\\\\u{e9}\n]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("(account_id|id|a)", inner), 0..4)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn agrees_with_a_parser_on_objects(
            fields in prop::collection::vec(("(account_id|id|acc|a)", json_value()), 0..5),
            spaced in any::<bool>(),
        ) {
            // Written by hand so that a field may appear twice.
            let sep = if spaced { " , " } else { "," };
            let body: Vec<String> = fields
                .iter()
                .map(|(key, value)| format!("{}:{}", Value::from(key.as_str()), value))
                .collect();
            let item = format!("{{{}}}", body.join(sep));
            agrees(&item, "account_id");
        }

        #[test]
        fn agrees_with_a_parser_on_long_spaced_objects(
            fields in prop::collection::vec(("(account_id|id|a)", json_value(), 0usize..40), 0..6),
            lead in 0usize..70,
            padding in "[a-z\"\\\\]{0,90}",
        ) {
            // Whitespace and long strings of escapes move every token across block boundaries.
            let body: Vec<String> = fields
                .iter()
                .map(|(key, value, space)| {
                    format!("{}{}:{}", " ".repeat(*space), Value::from(key.as_str()), value)
                })
                .collect();
            let pad = Value::from(padding.as_str());
            let item = format!("{}{{\"p\":{pad},{}}}", "\n".repeat(lead), body.join(","));
            agrees(&item, "account_id");
            agrees(&item, "p");
        }

        #[test]
        fn the_block_scan_agrees_with_the_byte_scan_on_arbitrary_bytes(
            bytes in prop::collection::vec(prop::sample::select(&b"{}[]\",:\\ \n0123456789.eE-truefalsnl_acoid\x01\xe9"[..]), 0..200),
            tail in prop::collection::vec(prop::sample::select(&b"{}[]\",:\\ "[..]), 0..8),
        ) {
            let mut item = br#"{"account_id":"x","a":""#.to_vec();
            item.extend_from_slice(&bytes);
            blocks_agree(&bytes, b"account_id");
            blocks_agree(&item, b"account_id");
            item.extend_from_slice(&tail);
            blocks_agree(&item, b"account_id");
        }

        #[test]
        fn never_panics_and_agrees_on_arbitrary_bytes(
            bytes in prop::collection::vec(prop::sample::select(&b"{}[]\",:\\ 0123456789.eE+-truefalsnl_acoid"[..]), 0..48),
        ) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let _ = top_level_string(&bytes, b"account_id");
            agrees(&text, "account_id");
        }
    }
}
