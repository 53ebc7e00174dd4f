//! The fuzz targets of `tower-api-errors`: each target hands its input to one function of
//! [`checks.rs`](checks), which panics when a property of the crate fails. The same file is
//! included by `tests/fuzz_corpus.rs`, which replays the committed corpus in `cargo test`.

#[path = "checks.rs"]
mod checks;

pub use checks::{item_counter, key_header, parse_rejection};
