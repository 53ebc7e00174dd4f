//! The item spans of a counted body, kept inline for a batch within the default limits.

use std::{fmt, ops::Range};

/// As many spans as the default limit of a write allows (5 items; 10 for `GET`, whose ids are
/// mostly in the query): a batch within it costs no allocation (`--allocs` in
/// `benches/stack.rs`); more spill to the heap. Each inline span makes every move of the
/// request's future 16 bytes longer, which the same benchmark sees too.
const INLINE: usize = 5;

/// A list of item spans: inline up to [`INLINE`], then on the heap.
#[derive(Clone)]
pub(crate) enum Spans {
    Inline {
        len: usize,
        spans: [Range<usize>; INLINE],
    },
    Heap(Vec<Range<usize>>),
}

impl Spans {
    pub(crate) const fn new() -> Self {
        Spans::Inline {
            len: 0,
            spans: [const { 0..0 }; INLINE],
        }
    }

    /// Room for `additional` more spans, on the heap when they do not fit inline: one
    /// allocation for a body within a larger limit.
    pub(crate) fn reserve(&mut self, additional: usize) {
        match self {
            Spans::Inline { len, .. } if *len + additional <= INLINE => {}
            Spans::Inline { .. } => {
                let mut heap = Vec::with_capacity(self.len() + additional);
                heap.extend_from_slice(self.as_slice());
                *self = Spans::Heap(heap);
            }
            Spans::Heap(heap) => heap.reserve(additional),
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, span: Range<usize>) {
        match self {
            Spans::Inline { len, spans } if *len < INLINE => {
                spans[*len] = span;
                *len += 1;
            }
            Spans::Inline { .. } => {
                self.reserve(INLINE);
                self.push(span);
            }
            Spans::Heap(heap) => heap.push(span),
        }
    }

    pub(crate) fn clear(&mut self) {
        match self {
            Spans::Inline { len, .. } => *len = 0,
            Spans::Heap(heap) => heap.clear(),
        }
    }

    #[inline]
    pub(crate) fn as_slice(&self) -> &[Range<usize>] {
        match self {
            Spans::Inline { len, spans } => &spans[..*len],
            Spans::Heap(heap) => heap,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub(crate) fn into_vec(self) -> Vec<Range<usize>> {
        match self {
            Spans::Inline { .. } => self.as_slice().to_vec(),
            Spans::Heap(heap) => heap,
        }
    }
}

impl Default for Spans {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Vec<Range<usize>>> for Spans {
    fn from(spans: Vec<Range<usize>>) -> Self {
        Spans::Heap(spans)
    }
}

impl PartialEq for Spans {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Spans {}

impl fmt::Debug for Spans {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_to_the_heap_past_the_inline_room_in_order() {
        let mut spans = Spans::new();
        let all: Vec<Range<usize>> = (0..25).map(|i| i..i + 1).collect();
        for (i, span) in all.iter().enumerate() {
            spans.push(span.clone());
            assert_eq!(spans.as_slice(), &all[..=i]);
            assert_eq!(matches!(spans, Spans::Heap(_)), i >= INLINE);
        }
        assert_eq!(spans.clone().into_vec(), all);
        spans.clear();
        assert_eq!(spans.len(), 0);

        let mut reserved = Spans::new();
        reserved.reserve(INLINE);
        assert!(matches!(reserved, Spans::Inline { .. }));
        reserved.push(0..1);
        reserved.reserve(INLINE);
        assert!(matches!(reserved, Spans::Heap(_)));
        assert_eq!(reserved.into_vec(), vec![0..1]);
        // Equal by contents, wherever they are kept.
        let mut inline = Spans::new();
        all[..3].iter().cloned().for_each(|span| inline.push(span));
        assert_eq!(inline, Spans::from(all[..3].to_vec()));
    }
}
