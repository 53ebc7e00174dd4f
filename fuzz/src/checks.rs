//! The properties the fuzz targets check. Each entry point takes a raw input, decodes it the
//! same way every time, and panics when a property of the crate does not hold.
//!
//! Shared, by `#[path]`, between the fuzz crate (`fuzz/fuzz_targets/*.rs`) and the replay test
//! (`tests/fuzz_corpus.rs`), so `cargo test` checks exactly what a fuzzing session checks.
//!
//! Input layouts (the first bytes configure, the rest is the subject):
//!
//! - [`item_counter`]: `[mode, limit, seed_hi, seed_lo, body...]`. `mode % 4`: 0 plain,
//!   1 with a limit, 2 field mode (`"data"`), 3 field mode with a limit; the limit is
//!   `limit % 8`; the seed picks up to eight chunk boundaries.
//! - [`key_header`]: the whole input is one header value for [`parse_bearer`] and
//!   [`parse_key`]; then, split on `\n`, the first line configures a [`KeyExtractor`]
//!   (`[kind, max_len]`) and each further line is a header: `[name, value...]`.
//! - [`parse_rejection`]: `[status_hi, status_lo, content_type, query, body...]`; the status
//!   is `400 + u16 % 600` (the normalize layer looks at statuses of 400 and more); with
//!   `query % 4 == 3` the query is the body's first line.

use std::ops::Range;

use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use tower_api_errors::{
    auth::{parse_bearer, parse_key, ApiKey, KeyDigest, KeyError, KeyExtractor},
    batch_limit::{CountError, CountErrorKind, ItemCounter, MAX_DEPTH},
    dialect::{Bulk, Coded, Dialect, ErrorFormat, ProblemDetails, Wire},
    normalize::parse_rejection_with_query,
    ApiError,
};

/// SplitMix64: a tiny deterministic generator, so a seed gives the same chunks everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `body` cut at up to eight places chosen by `seed` (cuts may coincide: empty chunks too).
fn chunks(body: &[u8], seed: u64) -> Vec<&[u8]> {
    let mut rng = Rng(seed);
    let mut points: Vec<usize> = (0..rng.below(9))
        .map(|_| rng.below(body.len() + 1))
        .collect();
    points.push(0);
    points.push(body.len());
    points.sort_unstable();
    points.windows(2).map(|w| &body[w[0]..w[1]]).collect()
}

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// Feeds `chunks` and finishes, checking on the way what every count promises: progress never
/// goes back, an error sticks, every byte fed is accounted for.
fn run(mut counter: ItemCounter, chunks: &[&[u8]]) -> Result<Vec<Range<usize>>, CountError> {
    let mut items = 0;
    let mut fed = 0;
    for chunk in chunks {
        match counter.feed(chunk) {
            Ok(progress) => {
                assert!(progress.items() >= items, "the count went back");
                items = progress.items();
                assert_eq!(counter.count(), items);
                fed += chunk.len();
                assert_eq!(counter.bytes_fed(), fed);
            }
            Err(error) => {
                assert!(
                    error.offset() <= fed + chunk.len(),
                    "error past the bytes fed"
                );
                assert_eq!(counter.feed(b"[").unwrap_err(), error, "an error sticks");
                assert_eq!(counter.finish().unwrap_err(), error, "an error sticks");
                return Err(error);
            }
        }
    }
    counter.finish()
}

/// The deepest nesting of `body`, brackets inside strings excepted.
fn max_depth(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0, false, false);
    for &b in body {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Whether an object key is `data`, after unescaping, read as bytes: a key that is not valid
/// UTF-8 (or holds a lone surrogate) is simply another key, as it is for the counter.
struct Key(bool);

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_bytes<E>(self, key: &[u8]) -> Result<Key, E> {
                Ok(Key(key == b"data"))
            }
        }
        deserializer.deserialize_bytes(KeyVisitor)
    }
}

/// What a counter must find, by `serde_json`: the span of each item.
fn expected_spans(body: &[u8], field: bool) -> Vec<Range<usize>> {
    struct Members<'de>(Vec<(Key, &'de RawValue)>);

    impl<'de> serde::Deserialize<'de> for Members<'de> {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct MembersVisitor;
            impl<'de> Visitor<'de> for MembersVisitor {
                type Value = Members<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    let mut members = Vec::new();
                    while let Some((key, value)) = map.next_entry::<Key, &'de RawValue>()? {
                        members.push((key, value));
                    }
                    Ok(Members(members))
                }
            }
            deserializer.deserialize_map(MembersVisitor)
        }
    }

    let span = |raw: &RawValue| {
        let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
        start..start + raw.get().len()
    };
    let elements = |raw: &RawValue| -> Vec<Range<usize>> {
        let items: Vec<&RawValue> = serde_json::from_str(raw.get()).expect("an array");
        items.into_iter().map(span).collect()
    };
    let whole: &RawValue = serde_json::from_slice(body).expect("checked by the caller");
    let first = whole.get().as_bytes()[0];
    if first == b'[' {
        return elements(whole);
    }
    if field && first == b'{' {
        let members: Members<'_> = serde_json::from_str(whole.get()).expect("an object");
        let data: Vec<&RawValue> = members
            .0
            .iter()
            .filter(|(Key(data), _)| *data)
            .map(|(_, value)| *value)
            .collect();
        return match data[..] {
            [value] if value.get().starts_with('[') => elements(value),
            [value] => vec![span(value)],
            _ => vec![span(whole)],
        };
    }
    vec![span(whole)]
}

/// The streaming item counter, in random chunk splits, on both classification paths, loose and
/// strict, against `serde_json`.
///
/// # Panics
///
/// When a property fails.
pub fn item_counter(data: &[u8]) {
    let (config, body) = data.split_at(data.len().min(4));
    let mode = config.first().copied().unwrap_or(0) % 4;
    let limit = usize::from(config.get(1).copied().unwrap_or(0) % 8);
    let seed = u64::from(u16::from_be_bytes([
        config.get(2).copied().unwrap_or(0),
        config.get(3).copied().unwrap_or(0),
    ]));
    let field = mode >= 2;
    let limited = mode % 2 == 1;
    let build = |strict: bool, simd: bool, limit: Option<usize>| {
        let mut counter = ItemCounter::new().strict(strict).with_simd(simd);
        if field {
            counter = counter.with_field("data");
        }
        if let Some(limit) = limit {
            counter = counter.with_limit(limit);
        }
        counter
    };

    let pieces = chunks(body, seed);
    let unlimited = check_paths(body, &pieces, |strict, simd| build(strict, simd, None));
    if limited {
        let capped = check_paths(body, &pieces, |strict, simd| {
            build(strict, simd, Some(limit))
        });
        for (name, all, capped) in [
            ("loose", &unlimited.0, &capped.0),
            ("strict", &unlimited.1, &capped.1),
        ] {
            match (all, capped) {
                (Ok(spans), capped) if spans.len() > limit => {
                    let error = capped.as_ref().expect_err(name);
                    assert_eq!(error.kind(), CountErrorKind::TooManyItems, "{name}");
                    assert_eq!(error.offset(), spans[limit].start, "{name}");
                }
                (Ok(spans), capped) => assert_eq!(capped.as_ref(), Ok(spans), "{name}"),
                (Err(_), Ok(spans)) => panic!("{name}: the limit let through {spans:?}"),
                (Err(error), Err(capped)) => {
                    // The limit may stop the count earlier, never later.
                    if capped.kind() == CountErrorKind::TooManyItems {
                        assert!(capped.offset() <= error.offset(), "{name}");
                    } else {
                        assert_eq!(capped, error, "{name}");
                    }
                }
            }
        }
    }

    let (loose, strict) = unlimited;
    let depth = max_depth(body);
    if depth > MAX_DEPTH {
        assert!(loose.is_err(), "accepted {depth} levels");
    }
    if depth >= MAX_DEPTH {
        // `serde_json` gives up one level earlier than the counter's cap.
        return;
    }
    let serde = serde_json::from_slice::<IgnoredAny>(body);
    if serde.is_ok() && field && items_field_twice(body) {
        // Parsers disagree on which of two `data` fields wins: the counter refuses both.
        for result in [&loose, &strict] {
            let error = result.as_ref().expect_err("a repeated items field");
            assert_eq!(error.kind(), CountErrorKind::InvalidJson);
        }
        return;
    }
    assert_eq!(
        strict.is_ok(),
        serde.is_ok(),
        "strict: {strict:?}, serde_json: {serde:?}"
    );
    if serde.is_err() || std::str::from_utf8(body).is_err() {
        // The spans of a document with bytes that are not UTF-8 cannot be had from
        // `serde_json::RawValue`; the portable, vector and strict paths agree on them above.
        return;
    }
    let expected = expected_spans(body, field);
    assert_eq!(strict.as_ref(), Ok(&expected), "strict");
    assert_eq!(loose.as_ref(), Ok(&expected), "loose");
}

/// Whether a top-level object has the key `data` (after unescaping) more than once.
fn items_field_twice(body: &[u8]) -> bool {
    struct Count(usize);

    impl<'de> serde::Deserialize<'de> for Count {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct CountVisitor;
            impl<'de> Visitor<'de> for CountVisitor {
                type Value = Count;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Count, A::Error> {
                    let mut count = 0;
                    while let Some((Key(data), IgnoredAny)) = map.next_entry()? {
                        count += usize::from(data);
                    }
                    Ok(Count(count))
                }
            }
            deserializer.deserialize_map(CountVisitor)
        }
    }

    body.iter().find(|&&b| !is_json_whitespace(b)) == Some(&b'{')
        && serde_json::from_slice::<Count>(body).is_ok_and(|Count(count)| count > 1)
}

type Counted = Result<Vec<Range<usize>>, CountError>;

/// Runs a configuration four ways (portable and vector, in pieces and whole) loose and strict;
/// all must agree. Returns the loose and strict results.
fn check_paths(
    body: &[u8],
    pieces: &[&[u8]],
    build: impl Fn(bool, bool) -> ItemCounter,
) -> (Counted, Counted) {
    let counted = |strict: bool| {
        let portable = run(build(strict, false), pieces);
        let simd = run(build(strict, true), pieces);
        assert_eq!(
            portable, simd,
            "portable and vector paths (strict: {strict})"
        );
        let whole = run(build(strict, true), &[body]);
        assert_eq!(whole, simd, "whole and in pieces (strict: {strict})");
        if body.len() <= 256 {
            let bytes: Vec<&[u8]> = body.chunks(1).collect();
            assert_eq!(run(build(strict, false), &bytes), simd, "byte by byte");
        }
        if let Ok(spans) = &simd {
            check_spans(body, spans);
        }
        simd
    };
    let (loose, strict) = (counted(false), counted(true));
    if let Ok(spans) = &strict {
        assert_eq!(
            loose.as_ref(),
            Ok(spans),
            "loose accepts what strict accepts"
        );
    }
    (loose, strict)
}

/// Spans are in order, apart, inside the body, and start and end on a value's bytes.
fn check_spans(body: &[u8], spans: &[Range<usize>]) {
    let mut end = 0;
    for span in spans {
        assert!(span.start >= end && span.start < span.end && span.end <= body.len());
        assert!(!is_json_whitespace(body[span.start]));
        assert!(!is_json_whitespace(body[span.end - 1]));
        end = span.end;
    }
}

/// What the key rules say, byte by byte: visible ASCII (`!` to `~`), surrounding blanks
/// trimmed.
fn model_key(value: &[u8]) -> Result<&[u8], KeyError> {
    let key = value.trim_ascii();
    if key.is_empty() {
        Err(KeyError::Empty)
    } else if key.iter().all(|b| (b'!'..=b'~').contains(b)) {
        Ok(key)
    } else {
        Err(KeyError::InvalidCharacters)
    }
}

/// `Bearer <key>`, the scheme in any case, one space after it, then the key.
fn model_bearer(value: &[u8]) -> Result<&[u8], KeyError> {
    let value = value.trim_ascii();
    if value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"bearer") {
        return Err(KeyError::OtherScheme);
    }
    match value.get(6) {
        None => Err(KeyError::Empty),
        Some(b' ') => model_key(&value[6..]),
        Some(_) => Err(KeyError::OtherScheme),
    }
}

fn check_key(value: &[u8], parsed: Result<&str, KeyError>, model: Result<&[u8], KeyError>) {
    assert_eq!(parsed.map(str::as_bytes), model, "{value:?}");
    if let Ok(key) = parsed {
        // `Debug` shows the digest prefix, never the key.
        assert_eq!(
            format!("{:?}", ApiKey::new(key)),
            format!("ApiKey {{ digest: {:?}, .. }}", KeyDigest::of(key))
        );
    }
}

/// The key-header parsers and the extractor against a byte-by-byte model of the documented
/// rules: a header sent twice, too long, or two headers disagreeing are refused, never guessed.
///
/// # Panics
///
/// When a property fails.
pub fn key_header(data: &[u8]) {
    check_key(data, parse_bearer(data), model_bearer(data));
    check_key(data, parse_key(data), model_key(data));

    let mut lines = data.split(|&b| b == b'\n');
    let config = lines.next().unwrap_or_default();
    let other = HeaderName::from_static("x-api-key");
    let kind = config.first().copied().unwrap_or(0);
    let max_len = config
        .get(1)
        .map_or(tower_api_errors::auth::DEFAULT_MAX_KEY_LEN, |&b| {
            usize::from(b)
        });
    let extractor = match kind % 3 {
        0 => KeyExtractor::bearer(),
        1 => KeyExtractor::header(other.clone()),
        _ => KeyExtractor::bearer_or_header(other.clone()),
    }
    .max_len(max_len);
    let (bearer, named) = (kind % 3 != 1, kind % 3 != 0);

    let mut headers = HeaderMap::new();
    for line in lines.take(8) {
        check_key(line, parse_bearer(line), model_bearer(line));
        check_key(line, parse_key(line), model_key(line));
        let Some((&name, value)) = line.split_first() else {
            continue;
        };
        let name = match name % 3 {
            0 => header::AUTHORIZATION,
            1 => other.clone(),
            _ => HeaderName::from_static("x-other"),
        };
        // What an HTTP parser would refuse never reaches a layer.
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }

    let read = |name: &HeaderName, parse: fn(&[u8]) -> Result<&[u8], KeyError>| {
        let values: Vec<&HeaderValue> = headers.get_all(name).iter().collect();
        match values[..] {
            [] => Ok(None),
            [_, _, ..] => Err(KeyError::Repeated),
            [value] if value.len() > max_len => Err(KeyError::TooLong),
            [value] => parse(value.as_bytes()).map(Some),
        }
    };
    let model = (|| {
        let a = if bearer {
            read(&header::AUTHORIZATION, model_bearer)?
        } else {
            None
        };
        let b = if named {
            read(&other, model_key)?
        } else {
            None
        };
        match (a, b) {
            (Some(a), Some(b)) if a == b => Ok(a),
            (Some(_), Some(_)) => Err(KeyError::Conflicting),
            (Some(key), None) | (None, Some(key)) => Ok(key),
            (None, None) => Err(KeyError::Missing),
        }
    })();
    assert_eq!(
        extractor.extract(&headers).map(str::as_bytes),
        model,
        "{headers:?}"
    );
}

const CONTENT_TYPES: [Option<&str>; 8] = [
    None,
    Some("text/plain; charset=utf-8"),
    Some("application/json"),
    Some("application/problem+json"),
    Some("text/html"),
    Some("TEXT/PLAIN"),
    Some("application/vnd.api+json; charset=utf-8"),
    Some(""),
];

/// How the texts the normalize layer understands begin; any other text is never shown.
const UNDERSTOOD: [&str; 5] = [
    "Expected request with `Content-Type: application/json`",
    "Form requests must have `Content-Type: application/x-www-form-urlencoded`",
    "Failed to parse the request body as JSON",
    "Failed to deserialize ",
    "Invalid URL: ",
];

/// An error that says nothing but what the status says.
fn assert_bare(error: &ApiError, status: StatusCode) {
    assert_eq!(
        error.code().as_str(),
        ApiError::from_status(status).code().as_str()
    );
    assert!(error.details().is_empty(), "{:?}", error.details());
    assert!(error.validation_errors().is_empty());
    assert_eq!(error.index(), None);
}

/// The error parser of the normalize layer: total, keeps the status, shows nothing of a body it
/// does not understand or of any server error's text, and its errors render as well-formed
/// responses in every dialect and read back as themselves.
///
/// # Panics
///
/// When a property fails.
pub fn parse_rejection(data: &[u8]) {
    let (config, rest) = data.split_at(data.len().min(4));
    let byte = |i: usize| config.get(i).copied().unwrap_or(0);
    let status = StatusCode::from_u16(400 + u16::from_be_bytes([byte(0), byte(1)]) % 600)
        .expect("400 to 999");
    let content_type = CONTENT_TYPES[usize::from(byte(2)) % CONTENT_TYPES.len()];
    let (query, body) = match byte(3) % 4 {
        0 => (None, rest),
        1 => (Some("page=1&page_size=X"), rest),
        2 => (Some(""), rest),
        _ => {
            let (line, body) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&rest[..at], &rest[at + 1..]),
                None => (rest, &b""[..]),
            };
            (std::str::from_utf8(line).ok(), body)
        }
    };

    let error = parse_rejection_with_query(status, content_type, body, query);
    assert_eq!(error.status(), status, "the status is kept");

    let essence = content_type.map(|value| value.split(';').next().unwrap_or_default().trim());
    let json = essence.is_some_and(|media| {
        media.eq_ignore_ascii_case("application/json")
            || media.len() >= 5 && media[media.len() - 5..].eq_ignore_ascii_case("+json")
    });
    let text = essence.is_none_or(|media| media.eq_ignore_ascii_case("text/plain"));
    if !json {
        let understood = std::str::from_utf8(body).is_ok_and(|text| {
            UNDERSTOOD
                .iter()
                .any(|start| text.trim().starts_with(start))
        });
        if !text || !status.is_client_error() || !understood {
            assert_bare(&error, status);
        }
        for detail in error.details() {
            // Only the layer's own sentences, with serde_json's closed set of syntax messages
            // and a position (digits).
            assert!(
                detail.starts_with("Expected `Content-Type: ")
                    || detail.starts_with("The body is not valid JSON"),
                "{detail:?}"
            );
            let words = detail.bytes().filter(|b| !b.is_ascii_digit()).count();
            assert!(words <= 160, "{detail:?}");
        }
        for field in error.validation_errors() {
            // A value is quoted only when short and printable.
            let message = field.message().unwrap_or_default();
            let suffix = format!("' is not valid for '{}'.", field.field());
            if let Some((_, value)) = message
                .strip_suffix(&suffix)
                .and_then(|head| head.rsplit_once("The value '"))
            {
                assert!(
                    value.chars().count() <= 64 && !value.chars().any(char::is_control),
                    "echoed {value:?}"
                );
            }
        }
    }

    check_rendered(&error, status);

    // The layer's own output, read again, is the same error: normalising twice changes nothing.
    let bulk = ErrorFormat::http().render(&Bulk, &error);
    let again = parse_rejection_with_query(
        status,
        Some("application/json"),
        bulk.body().as_bytes(),
        None,
    );
    assert_eq!(again.code().as_str(), error.code().as_str());
    assert_eq!(again.index(), error.index());
    if error.code().as_str() == "validation_errors" {
        let pairs = |error: &ApiError| -> Vec<(String, String)> {
            error
                .validation_errors()
                .iter()
                .map(|field| (field.field().to_owned(), field.error().to_owned()))
                .collect()
        };
        assert_eq!(pairs(&again), pairs(&error));
    }
}

/// Every way of writing `error` is a well-formed response.
fn check_rendered(error: &ApiError, status: StatusCode) {
    let coded = Coded::new();
    let dialects: [&dyn Dialect; 3] = [&Bulk, &coded, &ProblemDetails::new()];
    let content_length = |response: &http::Response<_>| -> usize {
        response.headers()[header::CONTENT_LENGTH]
            .to_str()
            .expect("ASCII")
            .parse()
            .expect("a number")
    };
    for dialect in dialects {
        let response = ErrorFormat::new(Wire::Dialect, &Method::GET, None).render(dialect, error);
        assert_eq!(response.status(), status);
        let content_type = &response.headers()[header::CONTENT_TYPE];
        assert!(content_type == "application/json" || content_type == "application/problem+json");
        if status == StatusCode::UNAUTHORIZED {
            assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
        }
        let body = response.body().as_bytes();
        assert_eq!(content_length(&response), body.len());
        let value: serde_json::Value = serde_json::from_slice(body).expect("JSON");
        assert!(value.is_object());

        let head = ErrorFormat::new(Wire::Dialect, &Method::HEAD, None).render(dialect, error);
        assert_eq!(head.status(), status);
        assert!(head.body().as_bytes().is_empty());
        assert_eq!(content_length(&head), body.len());
    }
    let grpc = ErrorFormat::new(Wire::Grpc, &Method::POST, None).render(&Bulk, error);
    assert_eq!(grpc.status(), StatusCode::OK);
    let code: u32 = grpc.headers()["grpc-status"]
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("a number");
    assert!((1..=16).contains(&code), "grpc-status {code}");
    let message = grpc.headers()["grpc-message"].as_bytes();
    assert!(message.iter().all(|b| (b' '..=b'~').contains(b)));
}
