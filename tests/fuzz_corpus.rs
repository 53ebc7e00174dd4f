//! The fuzz targets' checks in `cargo test`: every file of the committed corpus
//! (`fuzz/corpus/<target>/`) goes through the same functions the fuzz targets call
//! (`fuzz/src/checks.rs`, included here by path), and so does a bounded number of deterministic
//! mutations of it. No nightly toolchain and no cargo-fuzz needed; a longer, coverage-guided
//! run is `cargo fuzz run <target>` (see the README).

#![allow(unreachable_pub)]

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::{
    panic::{catch_unwind, resume_unwind, AssertUnwindSafe},
    path::{Path, PathBuf},
};

/// The corpus of one target, sorted by file name.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let data = std::fs::read(&path).expect("a corpus file");
            (path, data)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{}: a seed corpus", dir.display());
    files
}

/// Runs `check` on `data`; on failure, names the input.
fn replay(check: fn(&[u8]), name: &str, data: &[u8]) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(data))) {
        eprintln!(
            "failing input {name}: {:?}",
            String::from_utf8_lossy(data).escape_debug().to_string()
        );
        resume_unwind(panic);
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that matter to the parsers under test.
const DICTIONARY: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"\"",
    b"\\",
    b"\\u00",
    b" ",
    b"\n",
    b"\t",
    b"0",
    b"-",
    b"e",
    b".",
    b"true",
    b"null",
    b"\"data\"",
    b"\x00",
    b"\x1f",
    b"\xff",
    b"\xc3\xa9",
    b"Bearer ",
    b"bearer",
    b"`",
    b": ",
    b"at line 1 column 2",
    b"missing field `",
    b"invalid type: ",
    b"The value '",
    b"%2C",
    b"[1].",
    b"\r\n",
];

/// One to four edits of `input`: a byte changed, inserted or removed, a dictionary word
/// inserted, a range repeated, or a splice with another input.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(6) {
            0 if at < data.len() => data[at] ^= 1 << rng.below(8),
            1 => data.insert(at, rng.next() as u8),
            2 if at < data.len() => {
                data.remove(at);
            }
            3 => {
                let word = DICTIONARY[rng.below(DICTIONARY.len())];
                data.splice(at..at, word.iter().copied());
            }
            4 if at < data.len() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                let range = data[at..end].to_vec();
                for _ in 0..rng.below(8) {
                    data.splice(at..at, range.iter().copied());
                }
            }
            _ => {
                let from = rng.below(other.len() + 1);
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data.truncate(4096);
    data
}

fn replay_corpus(target: &str, check: fn(&[u8])) {
    for (path, data) in corpus(target) {
        replay(check, &path.display().to_string(), &data);
    }
}

/// `rounds` mutations of the corpus, the same ones on every run.
fn replay_mutations(target: &str, check: fn(&[u8]), rounds: usize) {
    let files = corpus(target);
    let mut rng = Rng(0x5eed_0000_0000_0001 ^ target.len() as u64);
    for round in 0..rounds {
        let (_, input) = &files[rng.below(files.len())];
        let (_, other) = &files[rng.below(files.len())];
        let data = mutate(&mut rng, input, other);
        replay(check, &format!("{target} mutation {round}"), &data);
    }
}

#[test]
fn item_counter_corpus() {
    replay_corpus("item_counter", checks::item_counter);
}

#[test]
fn item_counter_mutations() {
    replay_mutations("item_counter", checks::item_counter, 1500);
}

#[test]
fn key_header_corpus() {
    replay_corpus("key_header", checks::key_header);
}

#[test]
fn key_header_mutations() {
    replay_mutations("key_header", checks::key_header, 3000);
}

#[test]
fn parse_rejection_corpus() {
    replay_corpus("parse_rejection", checks::parse_rejection);
}

#[test]
fn parse_rejection_mutations() {
    replay_mutations("parse_rejection", checks::parse_rejection, 3000);
}

/// The seed corpus reaches every outcome the checks compare, so a replay cannot pass by
/// checking only the easy cases.
#[test]
fn the_corpus_covers_every_outcome() {
    use tower_api_errors::{
        auth::{parse_bearer, KeyError},
        batch_limit::{CountErrorKind, ItemCounter},
        normalize::parse_rejection,
    };

    let mut kinds = Vec::new();
    for (_, data) in corpus("item_counter") {
        let limit = match data[0] % 2 {
            1 => usize::from(data[1] % 8),
            _ => usize::MAX,
        };
        let mut counter = ItemCounter::new().with_limit(limit);
        let outcome = counter
            .feed(&data[4..])
            .and_then(|_| counter.finish().map(drop));
        kinds.push(outcome.map_err(|error| error.kind()));
    }
    for kind in [
        Ok(()),
        Err(CountErrorKind::InvalidJson),
        Err(CountErrorKind::TooDeep),
        Err(CountErrorKind::TooManyItems),
    ] {
        assert!(kinds.contains(&kind), "item_counter corpus lacks {kind:?}");
    }

    let keys: Vec<_> = corpus("key_header")
        .iter()
        .map(|(_, data)| parse_bearer(data).map(drop))
        .collect();
    for outcome in [
        Ok(()),
        Err(KeyError::OtherScheme),
        Err(KeyError::Empty),
        Err(KeyError::InvalidCharacters),
    ] {
        assert!(
            keys.contains(&outcome),
            "key_header corpus lacks {outcome:?}"
        );
    }

    let codes: Vec<String> = corpus("parse_rejection")
        .iter()
        .map(|(_, data)| {
            let status =
                http::StatusCode::from_u16(400 + u16::from_be_bytes([data[0], data[1]]) % 600)
                    .unwrap();
            let content_type = ["text/plain", "application/json"][usize::from(data[2] == 2)];
            parse_rejection(status, Some(content_type), &data[4..])
                .code()
                .as_str()
                .to_owned()
        })
        .collect();
    for code in [
        "validation_errors",
        "invalid_json",
        "unsupported_media_type",
        "model_not_valid",
        "server_error",
        "not_found",
    ] {
        assert!(
            codes.iter().any(|c| c == code),
            "parse_rejection corpus lacks {code}"
        );
    }
}
