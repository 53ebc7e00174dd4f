use super::*;

fn count(body: &[u8]) -> Result<Vec<Range<usize>>, CountError> {
    let mut counter = ItemCounter::new();
    counter.feed(body)?;
    counter.finish()
}

fn both(body: &[u8], build: impl Fn() -> ItemCounter) -> Result<Vec<Range<usize>>, CountError> {
    let mut results = Vec::new();
    for simd in [false, true] {
        for strict in [false, true] {
            let mut counter = build().with_simd(simd).strict(strict);
            let result = counter.feed(body).and_then(|_| counter.finish());
            results.push(result);
        }
    }
    // The portable and vector paths always agree; strictness only adds errors.
    assert_eq!(
        results[0],
        results[2],
        "simd vs portable on {:?}",
        String::from_utf8_lossy(body)
    );
    assert_eq!(
        results[1],
        results[3],
        "simd vs portable (strict) on {:?}",
        String::from_utf8_lossy(body)
    );
    results.swap_remove(0)
}

fn items(body: &str) -> Vec<&str> {
    let spans = both(body.as_bytes(), ItemCounter::new).unwrap_or_else(|e| panic!("{body}: {e}"));
    spans.into_iter().map(|span| &body[span]).collect()
}

fn error(body: &str) -> CountError {
    count(body.as_bytes()).expect_err(body)
}

#[test]
fn arrays_count_their_elements() {
    assert_eq!(items("[]"), Vec::<&str>::new());
    assert_eq!(items(" [ ] "), Vec::<&str>::new());
    assert_eq!(items("[1]"), ["1"]);
    assert_eq!(
        items(r#"[1, "two", {"three": [3]}, [4, [5]], true, null, -6.5e+3]"#),
        [
            "1",
            "\"two\"",
            r#"{"three": [3]}"#,
            "[4, [5]]",
            "true",
            "null",
            "-6.5e+3"
        ]
    );
    assert_eq!(
        items("\n[\n  {\"a\": \"]\"},\n  {\"b\": \"\\\"}\"}\n]\n"),
        [r#"{"a": "]"}"#, r#"{"b": "\"}"}"#]
    );
}

#[test]
fn other_top_level_values_are_one_item() {
    assert_eq!(items(r#"{"id": 1}"#), [r#"{"id": 1}"#]);
    assert_eq!(items(r#"  "text"  "#), [r#""text""#]);
    assert_eq!(items("42"), ["42"]);
    assert_eq!(items("0"), ["0"]);
    assert_eq!(items("false "), ["false"]);
}

#[test]
fn malformed_documents_are_refused() {
    for body in [
        "",
        "   ",
        "[",
        "[1,",
        "[1,]",
        "[,1]",
        "[1 2]",
        "[1,,2]",
        "]",
        "[}",
        "{]",
        "[1]]",
        "[1] x",
        "[{\"a\": 1}, ]",
        "tru",
        "truex",
        "nul",
        "01",
        "-",
        "1.",
        "1e",
        "1e+",
        ".5",
        "+1",
        "\"abc",
        "\"a\\x\"",
        "\"\\u12G4\"",
        "\"\\u12\"",
        "\"tab\there\"",
        "[\"\\\"]",
        "[1}",
        "{\"a\":1]",
        "[\"a\" \"b\"]",
        "\\",
        "[\\\"]",
        "x",
    ] {
        let error = both(body.as_bytes(), ItemCounter::new).expect_err(body);
        assert_eq!(error.kind(), CountErrorKind::InvalidJson, "{body}: {error}");
    }
}

#[test]
fn the_grammar_inside_items_is_only_checked_when_strict() {
    // A top-level object is one item: its inside is an item's inside.
    for body in [
        r#"[{"a" 1}]"#,
        "[[1 2]]",
        r#"[{"a": tru}]"#,
        "[[01]]",
        "[{1}]",
        r#"{"a" 1}"#,
        "{1: 2}",
        r#"{"a": }"#,
        r#"{"a":1,}"#,
        "{,}",
    ] {
        assert!(count(body.as_bytes()).is_ok(), "{body}");
        let mut strict = ItemCounter::new().strict(true);
        let result = strict.feed(body.as_bytes()).and_then(|_| strict.finish());
        assert_eq!(
            result.unwrap_err().kind(),
            CountErrorKind::InvalidJson,
            "{body}"
        );
    }
}

#[test]
fn errors_point_at_the_first_bad_byte() {
    assert_eq!(error("[1,,2]").offset(), 3);
    assert_eq!(error("[1, 2").offset(), 5);
    assert_eq!(error("[\"a\x01\"]").offset(), 3);
    assert_eq!(error("[\"\\q\"]").offset(), 3);
    assert_eq!(
        error("[1] 2").to_string(),
        "trailing characters after the document at byte 4"
    );
}

#[test]
fn the_limit_stops_at_the_first_byte_of_the_next_item() {
    let mut counter = ItemCounter::new().with_limit(5);
    let progress = counter
        .feed(br#"[{"a":1},{"a":2},{"a":3},{"a":4},{"a":5}"#)
        .unwrap();
    assert_eq!(progress.items(), 5);
    assert!(!progress.is_complete());
    assert_eq!(counter.feed(b" ,\n ").unwrap().items(), 5);
    let error = counter.feed(b"{").unwrap_err();
    assert_eq!(error.kind(), CountErrorKind::TooManyItems);
    assert_eq!(error.offset(), 44);
    // The error sticks.
    assert_eq!(counter.feed(b"}]").unwrap_err(), error);

    let mut counter = ItemCounter::new().with_limit(0);
    assert_eq!(counter.feed(b"[]").unwrap().items(), 0);
    assert!(counter.finish().unwrap().is_empty());
    let mut counter = ItemCounter::new().with_limit(0);
    assert_eq!(
        counter.feed(b"{}").unwrap_err().kind(),
        CountErrorKind::TooManyItems
    );
}

#[test]
fn a_limit_reached_before_a_syntax_error_wins() {
    let mut counter = ItemCounter::new().with_limit(1);
    let error = counter.feed(b"[1, 2, \"\\x\"]").unwrap_err();
    assert_eq!(error.kind(), CountErrorKind::TooManyItems);
    let mut counter = ItemCounter::new().with_limit(1);
    let error = counter.feed(b"[\"\\x\", 2]").unwrap_err();
    assert_eq!(error.kind(), CountErrorKind::InvalidJson);
}

#[test]
fn nesting_is_capped_without_recursion() {
    let deep = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    assert_eq!(items(&deep(MAX_DEPTH)).len(), 1);
    let error = both(deep(MAX_DEPTH + 1).as_bytes(), ItemCounter::new).unwrap_err();
    assert_eq!(error.kind(), CountErrorKind::TooDeep);
    assert_eq!(error.offset(), MAX_DEPTH);
    // A million open brackets: refused at the cap, no stack used.
    let error = count("[".repeat(1_000_000).as_bytes()).unwrap_err();
    assert_eq!(error.kind(), CountErrorKind::TooDeep);
}

#[test]
fn the_items_field_holds_the_array() {
    let field = || ItemCounter::new().with_field("data");
    let items = |body: &'static str| -> Vec<&'static str> {
        both(body.as_bytes(), field)
            .unwrap_or_else(|e| panic!("{body}: {e}"))
            .into_iter()
            .map(|span| &body[span])
            .collect()
    };
    assert_eq!(
        items(r#"{"meta": {"data": [9]}, "data": [1, {"x": [2]}], "z": "data"}"#),
        ["1", r#"{"x": [2]}"#]
    );
    assert_eq!(items(r#"{"d\u0061ta": [1, 2]}"#), ["1", "2"]);
    assert_eq!(items(r#"{"data": {"id": 7}}"#), [r#"{"id": 7}"#]);
    assert_eq!(items(r#"{"data": []}"#), Vec::<&str>::new());
    assert_eq!(
        items(r#"{"other": [1, 2, 3]}"#),
        [r#"{"other": [1, 2, 3]}"#]
    );
    assert_eq!(
        items(r#"{"datum": [1, 2], "dat": [3]}"#),
        [r#"{"datum": [1, 2], "dat": [3]}"#]
    );
    assert_eq!(items("[1, 2]"), ["1", "2"]);
    let error = both(br#"{"data": [1], "data": [1, 2]}"#, field).unwrap_err();
    assert_eq!(error.kind(), CountErrorKind::InvalidJson);

    let mut counter = field().with_limit(2);
    let error = counter
        .feed(br#"{"a": [1, 2, 3], "data": [1, 2, 3]}"#)
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.offset()),
        (CountErrorKind::TooManyItems, 32)
    );
}

#[test]
fn every_split_gives_the_same_answer() {
    let body =
        br#"{"data": [{"id": "a\"b\\", "n": [1, 2.5e3, {"x": "\u00e9"}]}, "s", 7, null, [[]]]}"#;
    let whole = both(body, || ItemCounter::new().with_field("data")).unwrap();
    assert_eq!(whole.len(), 5);
    for split in 0..=body.len() {
        for simd in [false, true] {
            let mut counter = ItemCounter::new().with_field("data").with_simd(simd);
            counter.feed(&body[..split]).unwrap();
            counter.feed(&body[split..]).unwrap();
            assert_eq!(counter.finish().unwrap(), whole, "split at {split}");
        }
    }
    // One byte at a time.
    let mut counter = ItemCounter::new().with_field("data");
    for byte in body.chunks(1) {
        counter.feed(byte).unwrap();
    }
    assert_eq!(counter.finish().unwrap(), whole);
}

#[test]
fn long_strings_and_escapes_cross_blocks() {
    let mut body = String::from("[\"");
    for i in 0..300 {
        body.push_str(if i % 7 == 0 {
            "\\\\"
        } else if i % 11 == 0 {
            "\\\"]"
        } else if i % 13 == 0 {
            "\\u00E9"
        } else {
            "x"
        });
    }
    body.push_str("\", 1]");
    assert_eq!(items(&body).len(), 2);
    let value: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(value.as_array().unwrap().len(), 2);
}

/// Items like those of `benches/batch_limit.rs`, longer than a block, one after the other with
/// `,` and nothing else, their ends at every position of a block: what the inner loop of the
/// hot path and its step from item to item see, fed whole and in chunks of every kind.
#[test]
fn compact_items_longer_than_a_block_split_everywhere() {
    let mut body = String::from("[");
    let mut expected = Vec::new();
    for i in 0..70 {
        if i > 0 {
            body.push_str(if i % 17 == 0 { " ,\n" } else { "," });
        }
        let start = body.len();
        body.push_str(&format!(
            r#"{{"id":"web_{i}","url":"https://h.example/?sig=\"{}\"","events":["a",{{"b":[{}]}}],"pad":"{}"}}"#,
            "\\\\".repeat(i % 3),
            i,
            "x".repeat(i % 64)
        ));
        expected.push(start..body.len());
    }
    body.push(']');
    let values: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(values.len(), expected.len());
    let bytes = body.as_bytes();
    assert_eq!(both(bytes, ItemCounter::new).unwrap(), expected);
    for chunk in [1, 7, 63, 64, 65, 100, 127, 128, 1000] {
        for simd in [false, true] {
            let mut counter = ItemCounter::new().with_simd(simd);
            for part in bytes.chunks(chunk) {
                counter.feed(part).unwrap();
            }
            assert_eq!(counter.finish().unwrap(), expected, "chunks of {chunk}");
        }
    }
    // The limit stops the step from item to item at the first byte of the item past it.
    let limit = ItemCounter::new().with_limit(40);
    let error = both(bytes, || limit.clone()).unwrap_err();
    assert_eq!(error.kind(), CountErrorKind::TooManyItems);
    assert_eq!(error.offset(), expected[40].start);
}

/// What stops the hot path in the middle of an item is found at the same byte as on the
/// general path, whichever block it falls in.
#[test]
fn the_hot_path_hands_errors_to_the_general_path() {
    let item = r#"{"a":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","b":[1]}"#;
    for (bad, kind, at) in [
        ("[1}", CountErrorKind::InvalidJson, 2),
        ("\"\u{1}\"", CountErrorKind::InvalidJson, 1),
        ("\"\\q\"", CountErrorKind::InvalidJson, 2),
    ] {
        let body = format!("[{item},{item},{{\"c\":{bad}}}]");
        let offset = 2 * item.len() + 3 + 5 + at;
        for chunk in [64, 70, body.len()] {
            for simd in [false, true] {
                let mut counter = ItemCounter::new().with_simd(simd);
                let error = body
                    .as_bytes()
                    .chunks(chunk)
                    .try_for_each(|part| counter.feed(part).map(drop))
                    .unwrap_err();
                assert_eq!((error.kind(), error.offset()), (kind, offset), "{bad}");
            }
        }
    }
    // A chunk that ends with a backslash in a string, and a number cut by a chunk's end.
    let body = br#"[{"a":"x\"y"},12345]"#;
    for split in 0..=body.len() {
        for simd in [false, true] {
            let mut counter = ItemCounter::new().with_simd(simd);
            counter.feed(&body[..split]).unwrap();
            counter.feed(&body[split..]).unwrap();
            assert_eq!(
                counter.finish().unwrap(),
                [1..13, 14..19],
                "split at {split}"
            );
        }
    }
}
