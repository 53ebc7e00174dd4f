//! Work in progress: the batch limit layer.

mod classify;
mod count;
mod future;
mod json;
mod layer;
mod query;
mod service;
#[cfg(target_arch = "x86_64")]
mod simd;
mod wire;

use std::{borrow::Cow, fmt, ops::Range};

pub use self::{
    count::{
        too_many_items, CountItems, DefaultCount, DefaultCounter, GrpcItems, OtherBodies, Start,
    },
    future::ResponseFuture,
    json::{CountError, CountErrorKind, ItemCounter, Progress, MAX_DEPTH},
    layer::{BatchLimitLayer, DEFAULT_MAX_BODY_BYTES},
    service::BatchLimit,
    wire::{field_spans, FieldScanner, Packed, WireError, WireErrorKind},
};

/// A configuration the batch limit layer cannot work with, reported when it is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    reason: Cow<'static, str>,
}

impl ConfigError {
    pub(crate) fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        ConfigError {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ConfigError {}

use bytes::Bytes;

/// What the batch limit layer learned about a bulk body, left in the request extensions so the
/// per-item authorization and the handler can use it without parsing the body again.
///
/// `body` is exactly the bytes the inner service receives; each span is the byte range of one
/// top-level item within it, in request order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkItems {
    body: Bytes,
    spans: Vec<Range<usize>>,
}

impl BulkItems {
    /// The items of `body`, one span each.
    ///
    /// # Panics
    ///
    /// If a span is out of `body`'s bounds.
    pub fn new(body: Bytes, spans: Vec<Range<usize>>) -> Self {
        assert!(
            spans
                .iter()
                .all(|span| span.start <= span.end && span.end <= body.len()),
            "item spans must lie within the body"
        );
        BulkItems { body, spans }
    }

    /// How many items the body holds.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the body holds no item.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The whole body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The byte range of each item within [`BulkItems::body`].
    pub fn spans(&self) -> &[Range<usize>] {
        &self.spans
    }

    /// The raw JSON of item `index`.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        self.spans.get(index).map(|span| &self.body[span.clone()])
    }

    /// The raw JSON of each item, in request order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.spans.iter().map(|span| &self.body[span.clone()])
    }
}
