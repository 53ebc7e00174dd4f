//! The streaming item counter against `serde_json`: generated documents fed in random chunk
//! splits, through the portable and the vector paths, loose and strict, with and without a
//! limit; and arbitrary or mutated bytes, which must never panic and must be judged alike.

use std::ops::Range;

use proptest::{prelude::*, sample::Index};
use serde::de::IgnoredAny;
use serde_json::Value;
use tower_api_errors::batch_limit::{CountError, CountErrorKind, ItemCounter, MAX_DEPTH};

/// A moderate number of cases, so `cargo test` stays quick; `PROPTEST_CASES` runs more.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(128);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn whitespace() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", "", " ", "\n", "\t", "\r\n  ", "  "])
}

/// A JSON string literal spelling `chars` with a random choice of escapes.
fn string_literal() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => prop::char::range('a', 'z').prop_map(|c| c.to_string()),
        1 => prop::sample::select(vec![
            "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t", "\\u00e9", "\\u0041",
            "\\uD83D\\uDE00", "\\u005C", "\\u0022", "]", "}", "[", "{", ",", ":", " ", "é", "😀",
            "\u{7f}", "\\\\\\\"", "\\\\\\\\",
        ])
        .prop_map(String::from),
        // Raw control characters, quotes and backslashes need escapes.
        1 => any::<char>()
            .prop_map(|c| if c < ' ' || c == '"' || c == '\\' { '~' } else { c })
            .prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| format!("\"{}\"", pieces.concat()))
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        (-1e6f64..1e6).prop_map(|f| f.to_string()),
        prop::sample::select(vec![
            "0",
            "-0",
            "0.5",
            "-0.0e0",
            "1e5",
            "1E-7",
            "12.5e+3",
            "-9",
            "100",
            "3.14159",
            "123456789012345678901234567890",
        ])
        .prop_map(String::from),
    ]
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["true", "false", "null"]).prop_map(String::from),
        number(),
        string_literal(),
    ]
}

fn join(open: &str, parts: Vec<(String, &str, &str)>, close: &str, inner_ws: &str) -> String {
    let mut text = String::from(open);
    if parts.is_empty() {
        text.push_str(inner_ws);
    }
    for (i, (part, before, after)) in parts.into_iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(before);
        text.push_str(&part);
        text.push_str(after);
    }
    text.push_str(close);
    text
}

fn value() -> impl Strategy<Value = String> {
    scalar().prop_recursive(5, 96, 8, |inner| {
        let member = (string_literal(), whitespace(), whitespace(), inner.clone())
            .prop_map(|(key, a, b, value)| format!("{key}{a}:{b}{value}"));
        prop_oneof![
            (
                prop::collection::vec((inner, whitespace(), whitespace()), 0..6),
                whitespace()
            )
                .prop_map(|(parts, ws)| join("[", parts, "]", ws)),
            (
                prop::collection::vec((member, whitespace(), whitespace()), 0..6),
                whitespace()
            )
                .prop_map(|(parts, ws)| join("{", parts, "}", ws)),
        ]
    })
}

/// A bulk body: usually a top-level array of items, sometimes any value.
fn document() -> impl Strategy<Value = String> {
    let array = (
        prop::collection::vec((value(), whitespace(), whitespace()), 0..24),
        whitespace(),
    )
        .prop_map(|(parts, ws)| join("[", parts, "]", ws));
    (
        prop_oneof![3 => array, 1 => value()],
        whitespace(),
        whitespace(),
    )
        .prop_map(|(doc, before, after)| format!("{before}{doc}{after}"))
}

/// The pieces of `body` cut at `cuts`.
fn split<'a>(body: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut.index(body.len() + 1)).collect();
    points.push(0);
    points.push(body.len());
    points.sort_unstable();
    points.windows(2).map(|w| &body[w[0]..w[1]]).collect()
}

fn run(mut counter: ItemCounter, chunks: &[&[u8]]) -> Result<Vec<Range<usize>>, CountError> {
    for chunk in chunks {
        counter.feed(chunk)?;
    }
    counter.finish()
}

/// The four ways of counting: portable and vector paths, loose and strict.
fn counters(build: impl Fn() -> ItemCounter) -> [(&'static str, ItemCounter); 4] {
    [
        ("portable", build().with_simd(false)),
        ("simd", build()),
        ("portable strict", build().with_simd(false).strict(true)),
        ("simd strict", build().strict(true)),
    ]
}

/// What `serde_json` sees: the top-level elements of an array, or the value itself.
fn expected_items(body: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(body).expect("generated documents are valid") {
        Value::Array(items) => items,
        other => vec![other],
    }
}

fn nesting(body: &[u8]) -> usize {
    body.iter().filter(|&&b| b == b'[' || b == b'{').count()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn agrees_with_serde_json_on_generated_documents(
        body in document(),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let expected = expected_items(&body);
        let chunks = split(body.as_bytes(), &cuts);
        for (name, counter) in counters(ItemCounter::new) {
            let spans = run(counter, &chunks).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
            prop_assert_eq!(spans.len(), expected.len(), "{}", name);
            for (span, item) in spans.iter().zip(&expected) {
                let parsed: Value = serde_json::from_str(&body[span.clone()])
                    .map_err(|e| TestCaseError::fail(format!("{name}: span {span:?}: {e}")))?;
                prop_assert_eq!(&parsed, item, "{}", name);
                prop_assert_eq!(body[span.clone()].trim(), &body[span.clone()]);
            }
        }
    }

    #[test]
    fn refuses_the_item_past_the_limit_at_its_first_byte(
        body in document(),
        limit in 0usize..8,
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let spans = run(ItemCounter::new(), &[body.as_bytes()]).unwrap();
        let chunks = split(body.as_bytes(), &cuts);
        for (name, counter) in counters(|| ItemCounter::new().with_limit(limit)) {
            let result = run(counter, &chunks);
            if spans.len() > limit {
                let error = result.expect_err(name);
                prop_assert_eq!(error.kind(), CountErrorKind::TooManyItems, "{}", name);
                prop_assert_eq!(error.offset(), spans[limit].start, "{}", name);
            } else {
                prop_assert_eq!(&result.expect(name), &spans, "{}", name);
            }
        }
    }

    #[test]
    fn finds_the_items_in_a_field(
        items in prop::collection::vec(value(), 0..12),
        before in prop::collection::vec((string_literal(), value()), 0..3),
        after in prop::collection::vec((string_literal(), value()), 0..3),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let not_data = |key: &String| serde_json::from_str::<String>(key).unwrap() != "data";
        let members: Vec<String> = before.iter()
            .filter(|(key, _)| not_data(key))
            .map(|(key, value)| format!("{key}: {value}"))
            .chain([format!("\"data\": [{}]", items.join(", "))])
            .chain(after.iter().filter(|(key, _)| not_data(key)).map(|(key, value)| format!("{key}:{value}")))
            .collect();
        let body = format!("{{{}}}", members.join(",\n"));
        let chunks = split(body.as_bytes(), &cuts);
        for (name, counter) in counters(|| ItemCounter::new().with_field("data")) {
            let spans = run(counter, &chunks).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
            let found: Vec<&str> = spans.iter().map(|span| &body[span.clone()]).collect();
            prop_assert_eq!(&found, &items, "{}", name);
        }
    }

    #[test]
    fn judges_arbitrary_bytes_like_serde_json(
        body in prop::collection::vec(any::<u8>(), 0..200),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        check_against_serde(&body, &cuts)?;
    }

    #[test]
    fn judges_json_like_bytes_like_serde_json(
        body in prop::collection::vec(
            prop::sample::select(&b"[]{},:\" \n\\u0123456789abcdeEfnrt-+.lsx\x01\xc3\xa9"[..]), 0..120),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        check_against_serde(&body, &cuts)?;
    }

    #[test]
    fn judges_mutated_documents_like_serde_json(
        body in document(),
        edits in prop::collection::vec((any::<Index>(), 0u8..3, prop::sample::select(&b"[]{},:\"\\ 0e-.tx\x00"[..])), 1..4),
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let mut body = body.into_bytes();
        for (at, op, byte) in edits {
            let at = at.index(body.len() + 1);
            match op {
                0 => body.insert(at, byte),
                1 if at < body.len() => { body.remove(at); }
                _ if at < body.len() => body[at] = byte,
                _ => body.push(byte),
            }
        }
        check_against_serde(&body, &cuts)?;
    }
}

/// Never a panic; the portable and vector paths agree exactly; the strict counter accepts
/// exactly what `serde_json` accepts; the loose counter accepts at least that, with the same
/// count.
fn check_against_serde(body: &[u8], cuts: &[Index]) -> Result<(), TestCaseError> {
    let chunks = split(body, cuts);
    let [(_, portable), (_, simd), (_, portable_strict), (_, simd_strict)] =
        counters(ItemCounter::new).map(|(name, counter)| (name, run(counter, &chunks)));
    prop_assert_eq!(&portable, &simd);
    prop_assert_eq!(&portable_strict, &simd_strict);
    // The same bytes in one piece give the same answer.
    prop_assert_eq!(&run(ItemCounter::new(), &[body]), &simd);

    if nesting(body) >= MAX_DEPTH {
        return Ok(());
    }
    let serde = serde_json::from_slice::<IgnoredAny>(body);
    prop_assert_eq!(
        simd_strict.is_ok(),
        serde.is_ok(),
        "strict: {:?}, serde: {:?}",
        simd_strict,
        serde
    );
    if serde.is_ok() {
        let count = serde_json::from_slice::<Vec<IgnoredAny>>(body).map_or(1, |items| items.len());
        let strict = simd_strict.unwrap();
        prop_assert_eq!(strict.len(), count);
        prop_assert_eq!(simd.expect("loose accepts what serde accepts"), strict);
    } else if let Ok(spans) = &simd {
        // Loose counting let it through: the fault is inside an item, where the handler's
        // parser will see it.
        prop_assert!(!spans.is_empty());
    }
    Ok(())
}

#[test]
fn a_top_level_array_of_objects_split_everywhere() {
    let body =
        br#"[{"id":"web_1","url":"https://example.com/a?x=[1]"},{"id":"web_2","tags":["a","b"]}]"#;
    for at in 0..=body.len() {
        for (name, counter) in counters(ItemCounter::new) {
            let spans = run(counter, &[&body[..at], &body[at..]]).expect(name);
            assert_eq!(spans, [1..51, 52..83], "{name}, split at {at}");
        }
    }
}
