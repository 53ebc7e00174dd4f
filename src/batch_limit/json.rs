//! The streaming JSON item counter.

use std::{fmt, ops::Range, slice::ChunksExact, sync::Arc};

#[cfg(target_arch = "x86_64")]
use super::simd::Avx2;
use super::{
    classify::{Classify, Portable},
    spans::Spans,
};

/// How deeply a document may nest arrays and objects before the counter refuses it.
///
/// 128, as deep as `serde_json` goes before it gives up with "recursion limit exceeded" (it
/// refuses the 128th level already), so a document the counter refuses for its depth is one a
/// handler using `serde_json` could not have parsed anyway. The counter never recurses: depth
/// costs it one bit of state per level, not stack.
pub const MAX_DEPTH: usize = 128;

/// Counts the items of a JSON bulk body chunk by chunk, as it arrives, without building a value.
///
/// The items are the elements of a top-level array. A top-level object, string, number or
/// literal is one item. With [`ItemCounter::with_field`], the array may instead be the value of
/// a field of a top-level object (`{"data": [...]}`); an object without that field is one item.
///
/// Each item's byte span (from its first to its last byte, whitespace around it excluded) is
/// recorded as the counter goes, and [`ItemCounter::finish`] returns them. With a limit
/// ([`ItemCounter::with_limit`]) the counter stops with [`CountErrorKind::TooManyItems`] the
/// moment the first byte of the item past the limit is fed, whatever follows.
///
/// # What is checked
///
/// The counter checks everything the count depends on: every string is well-formed (closed,
/// valid escapes, no raw control characters), brackets balance and match, nesting stays within
/// [`MAX_DEPTH`], nothing but whitespace follows the top-level value, and the levels that hold
/// the items follow the JSON grammar exactly (commas between items, no empty or trailing items,
/// the top-level object's keys and colons, numbers and literals). Inside an item that is an
/// array or object, only strings and brackets are checked by default — enough to know where the
/// item ends — so `[{"a" 1}]` counts as one item and the handler's parser, which sees the
/// unchanged bytes, reports the rest. [`ItemCounter::strict`] checks the whole grammar instead,
/// at a fraction of the speed. UTF-8 is not checked: it does not change the count, and a
/// parser checks it when it reads a string.
///
/// For every document `serde_json` accepts, the counter agrees with it on the number of
/// top-level elements and on their bytes (the differential tests feed random documents in
/// random chunk splits); it never panics, and never needs more memory than the spans it keeps
/// and one key of the top-level object in field mode.
///
/// # Speed
///
/// The counter looks at 64 bytes at a time: it turns them into bitmasks (quotes, backslashes,
/// brackets, control characters), and walks the brackets and the few bytes between items
/// rather than every byte. Blocks inside a string or inside an item, and the step from one
/// array or object item to the next, go through a small loop that keeps its state in
/// registers; anything else goes through the full state machine. On x86-64 CPUs with AVX2
/// (detected at run time) the bitmasks come from vector instructions; elsewhere from portable
/// 64-bit arithmetic. Both give identical results; `BENCHMARKS.md` has the figures.
///
/// ```
/// use tower_api_errors::batch_limit::{CountErrorKind, ItemCounter};
///
/// let mut counter = ItemCounter::new();
/// counter.feed(br#"[{"id": "web_1"}, {"id": "#).unwrap();
/// counter.feed(br#""web_2"}]"#).unwrap();
/// let spans = counter.finish().unwrap();
/// assert_eq!(spans, [1..16, 18..33]);
///
/// // With a limit, the third item is refused as soon as its first byte arrives.
/// let mut counter = ItemCounter::new().with_limit(2);
/// let error = counter.feed(b"[1, 2, 3").unwrap_err();
/// assert_eq!(error.kind(), CountErrorKind::TooManyItems);
/// assert_eq!(error.offset(), 7);
/// ```
#[derive(Clone)]
pub struct ItemCounter {
    limit: usize,
    field: Option<Arc<[u8]>>,
    strict: bool,
    #[cfg(target_arch = "x86_64")]
    avx2: Option<Avx2>,

    /// Bytes fed before the block being processed.
    offset: usize,
    /// The first byte of the next block is escaped by a backslash ending this one.
    escape_next: bool,
    /// Hex digits of a `\u` escape still to come.
    hex_left: u8,
    /// All ones while inside a string at the end of the last block.
    in_string: u64,

    state: State,
    depth: u32,
    /// One bit per open container, innermost lowest: 1 for an object, 0 for an array.
    stack: u128,
    /// The depth a skipped container returns to when it closes.
    skip_base: u32,
    /// Values at this depth are items while `counting`.
    items_depth: u32,
    counting: bool,
    /// The item is one value rather than the elements of an array.
    single: bool,
    /// Field mode, and the top-level value is an object.
    top_object: bool,
    object_start: usize,
    field_pending: bool,
    field_seen: bool,
    key: Vec<u8>,
    key_overflow: bool,

    count: usize,
    item_start: usize,
    top_end: usize,
    spans: Spans,
    error: Option<CountError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A value must come; `first` right after `[`, where `]` may come instead.
    Value {
        first: bool,
    },
    /// A key must come; `first` right after `{`, where `}` may come instead.
    Key {
        first: bool,
    },
    Colon,
    /// After a value inside a container: `,` or the closing bracket.
    After,
    Str(StrKind),
    Scalar(Scalar),
    /// Inside a container whose contents do not matter to the count: brackets only.
    Skip,
    /// After the top-level value: whitespace only.
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StrKind {
    Value,
    Key,
    /// A key of the top-level object in field mode, compared with the field's name.
    Field,
}

/// A number or literal being read, by the JSON grammar (RFC 8259 §6), as `serde_json` reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scalar {
    Minus,
    Zero,
    Int,
    Dot,
    Frac,
    Exp,
    ExpSign,
    ExpDigits,
    /// `true`, `false` or `null` (by its first letter), `at` letters read.
    Word {
        first: u8,
        at: u8,
    },
}

/// The literal that begins with `first`.
fn literal(first: u8) -> &'static [u8] {
    match first {
        b't' => b"true",
        b'f' => b"false",
        _ => b"null",
    }
}

impl Scalar {
    fn start(b: u8) -> Option<Self> {
        Some(match b {
            b'-' => Scalar::Minus,
            b'0' => Scalar::Zero,
            b'1'..=b'9' => Scalar::Int,
            b't' => Scalar::Word { first: b, at: 1 },
            b'f' => Scalar::Word { first: b, at: 1 },
            b'n' => Scalar::Word { first: b, at: 1 },
            _ => return None,
        })
    }

    /// `Ok(Some(_))` when `b` continues the scalar, `Ok(None)` when the scalar is complete and
    /// `b` is not part of it, `Err(())` when `b` makes it invalid.
    #[inline]
    fn step(self, b: u8) -> Result<Option<Self>, ()> {
        let digit = b.is_ascii_digit();
        let next = match self {
            Scalar::Minus if b == b'0' => Scalar::Zero,
            Scalar::Minus | Scalar::Dot | Scalar::ExpSign if digit => match self {
                Scalar::Dot => Scalar::Frac,
                Scalar::ExpSign => Scalar::ExpDigits,
                _ => Scalar::Int,
            },
            Scalar::Minus | Scalar::Dot | Scalar::ExpSign => return Err(()),
            // One leading zero only: `01` is not a number.
            Scalar::Zero if digit => return Err(()),
            Scalar::Int if digit => Scalar::Int,
            Scalar::Frac if digit => Scalar::Frac,
            Scalar::ExpDigits if digit => Scalar::ExpDigits,
            Scalar::Zero | Scalar::Int if b == b'.' => Scalar::Dot,
            Scalar::Zero | Scalar::Int | Scalar::Frac if b == b'e' || b == b'E' => Scalar::Exp,
            Scalar::Zero | Scalar::Int | Scalar::Frac | Scalar::ExpDigits => return Ok(None),
            Scalar::Exp if b == b'+' || b == b'-' => Scalar::ExpSign,
            Scalar::Exp if digit => Scalar::ExpDigits,
            Scalar::Exp => return Err(()),
            Scalar::Word { first, at } => {
                let word = literal(first);
                let at = usize::from(at);
                if at == word.len() {
                    return Ok(None);
                }
                if word[at] != b {
                    return Err(());
                }
                Scalar::Word {
                    first,
                    at: (at + 1) as u8,
                }
            }
        };
        Ok(Some(next))
    }

    fn is_complete(self) -> bool {
        match self {
            Scalar::Zero | Scalar::Int | Scalar::Frac | Scalar::ExpDigits => true,
            Scalar::Word { first, at } => usize::from(at) == literal(first).len(),
            _ => false,
        }
    }
}

/// Where the hot loop stopped.
enum Quiet {
    /// At the end of the full blocks.
    Done,
    /// Before the block at this position, untouched.
    Redo(usize),
    /// In the block at `at`, at byte `from`: the state is right up to there.
    Resume {
        at: usize,
        from: usize,
        masks: Masks,
    },
}

/// The 64 bytes at `at`.
#[inline(always)]
fn block_at(chunk: &[u8], at: usize) -> &[u8; 64] {
    chunk[at..at + 64].try_into().expect("a block of 64 bytes")
}

/// The next block of a [`ChunksExact`] of 64 bytes: from an iterator rather than by index, so
/// the hot loop has no bounds check.
#[inline(always)]
fn next_block<'a>(blocks: &mut ChunksExact<'a, u8>) -> Option<&'a [u8; 64]> {
    blocks
        .next()
        .map(|block| block.try_into().expect("a block of 64 bytes"))
}

/// Where the hot loop is, as the state machine sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Between {
    /// Inside a skipped container ([`State::Skip`]).
    Inside,
    /// Inside a string ([`State::Str`]).
    InString,
    /// After an item of the counted array ([`State::After`]).
    AfterItem,
    /// After the comma that follows one ([`State::Value`]).
    AfterComma,
}

/// What comes next between two items of the counted array.
enum Next {
    /// An array or object item begins here.
    Item(usize),
    /// The block ends first; the state there.
    More(Between),
    /// Something for the general path begins here; the state there.
    Other(usize, Between),
}

/// Reads the whitespace and the comma between two items from `i` on.
#[inline(always)]
fn next_item(block: &[u8; 64], mut i: usize, mut between: Between) -> Next {
    while i < 64 {
        match block[i] {
            b' ' | b'\n' | b'\r' | b'\t' => {}
            b',' if between == Between::AfterItem => between = Between::AfterComma,
            b'{' | b'[' if between == Between::AfterComma => return Next::Item(i),
            _ => return Next::Other(i, between),
        }
        i += 1;
    }
    Next::More(between)
}

/// [`next_item`] right after an item, with the compact case first: `,{` or `,[` straight after
/// it, as in every item of `benches/batch_limit.rs`, in two comparisons rather than the loop.
#[inline(always)]
fn after_item(block: &[u8; 64], i: usize) -> Next {
    // `[` and `{` differ only in bit 0x20.
    if i + 1 < 64 && block[i] == b',' && block[i + 1] | 0x20 == b'{' {
        return Next::Item(i + 1);
    }
    next_item(block, i, Between::AfterItem)
}

/// The string and escape state carried from block to block by the hot loop.
#[derive(Clone, Copy)]
struct Text {
    /// All ones while inside a string at the end of the last block.
    in_string: u64,
    /// The first byte of the next block is escaped.
    escape_next: bool,
}

impl Text {
    /// The masks of a full block, and the state after it; `None`, with the state untouched,
    /// when the block needs the general path: an escape other than `\"` and `\\`, or a
    /// control character in a string.
    #[inline(always)]
    fn masks<K: Classify>(&mut self, classifier: K, block: &[u8; 64]) -> Option<Masks> {
        let raw = classifier.classify(block);
        let (escaped, next_escaped) = escapes_full(raw.backslash, self.escape_next);
        if escaped & !(raw.quote | raw.backslash) != 0 {
            return None;
        }
        let quote = raw.quote & !escaped;
        let string = classifier.prefix_xor(quote) ^ self.in_string;
        // Compact JSON has no control character at all: one test of the block, and the mask
        // only when there is one (`--interleaved` in `benches/batch_limit.rs`).
        if classifier.has_control(block) && raw.ctrl & string != 0 {
            return None;
        }
        self.in_string = ((string as i64) >> 63) as u64;
        self.escape_next = next_escaped;
        Some(Masks {
            quote,
            brackets: raw.bracket & !string,
        })
    }
}

/// Where [`walk`] stopped.
enum Walk {
    /// At the end of the block, the container still open.
    Open,
    /// At the bracket at this position that closes the container.
    Closed(usize),
    /// At a bracket for the general path: mismatched, or one level too deep.
    Stop(usize),
}

/// Opens and closes the `brackets` of `block` in order, inside a skipped container that
/// returns to depth `base` when it closes.
#[inline(always)]
fn walk(block: &[u8; 64], mut brackets: u64, depth: &mut u32, stack: &mut u128, base: u32) -> Walk {
    while brackets != 0 {
        let j = brackets.trailing_zeros() as usize;
        brackets &= brackets - 1;
        let b = block[j];
        let object = u128::from(b >> 5 & 1);
        // `[` and `{` have bit 0x02 set, `]` and `}` do not.
        if b & 0x02 != 0 {
            if *depth as usize == MAX_DEPTH {
                return Walk::Stop(j);
            }
            *stack = *stack << 1 | object;
            *depth += 1;
            continue;
        }
        if *stack & 1 != object {
            return Walk::Stop(j);
        }
        if *depth == base + 1 {
            return Walk::Closed(j);
        }
        *stack >>= 1;
        *depth -= 1;
    }
    Walk::Open
}

/// The masks the state machine walks, for one block.
#[derive(Clone, Copy)]
struct Masks {
    /// Unescaped quotes: where strings open and close.
    quote: u64,
    /// Brackets outside strings.
    brackets: u64,
}

/// Bits `from..64`.
#[inline(always)]
pub(crate) fn from(from: usize) -> u64 {
    if from >= 64 {
        0
    } else {
        u64::MAX << from
    }
}

/// The escaped bytes of a block whose backslashes (within its `n` bytes) are `backslashes`,
/// and whether the first byte of the next block is escaped. One backslash at a time: rare in
/// real JSON, and exact across blocks.
#[inline(always)]
fn escapes(backslashes: u64, escape_next: bool, n: usize) -> (u64, bool) {
    let mut escaped = u64::from(escape_next);
    if backslashes == 0 {
        return (escaped, false);
    }
    let mut backslashes = backslashes & !escaped;
    let mut escaping = 0u64;
    while backslashes != 0 {
        let i = backslashes.trailing_zeros();
        escaping |= 1 << i;
        backslashes &= backslashes - 1;
        if i < 63 {
            let next = 1 << (i + 1);
            escaped |= next;
            backslashes &= !next;
        }
    }
    (escaped, (escaping >> (n - 1)) & 1 == 1)
}

/// [`escapes`] for a full block, without a branch per backslash: an odd run of backslashes
/// escapes the byte after it, found with one subtraction over the runs that start on even
/// and on odd bits.
#[inline(always)]
pub(crate) fn escapes_full(backslashes: u64, escape_next: bool) -> (u64, bool) {
    const ODD: u64 = 0xaaaa_aaaa_aaaa_aaaa;
    let carried = u64::from(escape_next);
    if backslashes == 0 {
        return (carried, false);
    }
    // A backslash escaped by the previous block starts nothing.
    let starts = backslashes & !carried;
    let codes = ((starts << 1 | ODD).wrapping_sub(starts)) ^ ODD;
    let escaped = codes ^ (backslashes | carried);
    let escaping = codes & backslashes;
    (escaped, escaping >> 63 == 1)
}

#[inline(always)]
fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// Bits `0..end`.
#[inline(always)]
pub(crate) fn below(end: usize) -> u64 {
    if end >= 64 {
        u64::MAX
    } else {
        (1 << end) - 1
    }
}

impl Default for ItemCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl ItemCounter {
    /// A counter with no limit, counting the elements of a top-level array.
    pub fn new() -> Self {
        ItemCounter {
            limit: usize::MAX,
            field: None,
            strict: false,
            #[cfg(target_arch = "x86_64")]
            avx2: Avx2::detect(),
            offset: 0,
            escape_next: false,
            hex_left: 0,
            in_string: 0,
            state: State::Value { first: false },
            depth: 0,
            stack: 0,
            skip_base: 0,
            items_depth: 0,
            counting: false,
            single: false,
            top_object: false,
            object_start: 0,
            field_pending: false,
            field_seen: false,
            key: Vec::new(),
            key_overflow: false,
            count: 0,
            item_start: 0,
            top_end: 0,
            spans: Spans::new(),
            error: None,
        }
    }

    /// Stops with [`CountErrorKind::TooManyItems`] when item `max + 1` begins.
    #[must_use]
    pub fn with_limit(mut self, max: usize) -> Self {
        self.limit = max;
        self
    }

    /// Also looks for the items in the array value of the field `name` of a top-level object,
    /// e.g. `data` for `{"data": [...]}`.
    ///
    /// Keys are compared after unescaping, as a parser reads them (`"d\u0061ta"` is `data`).
    /// When the field holds something other than an array, that value is the one item; an
    /// object without the field is one item; a second `name` field in the same object is an
    /// error ([`CountErrorKind::InvalidJson`]), since parsers disagree on which one wins. A
    /// top-level array is still counted as usual.
    #[must_use]
    pub fn with_field(mut self, name: impl AsRef<str>) -> Self {
        self.field = Some(Arc::from(name.as_ref().as_bytes()));
        self
    }

    /// Checks the whole JSON grammar, inside the items too, not only what the count depends on.
    ///
    /// Slower (every byte outside strings goes through the state machine); with it, the
    /// counter accepts exactly the documents `serde_json` accepts, up to [`MAX_DEPTH`].
    #[must_use]
    pub fn strict(mut self, strict: bool) -> Self {
        self.strict = strict;
        self
    }

    /// Whether to use the CPU's vector instructions when it has them (the default).
    ///
    /// Off, the counter takes its portable path everywhere; the results are identical, only
    /// the speed differs. Meant for tests and benchmarks.
    #[must_use]
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    pub fn with_simd(mut self, enabled: bool) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            self.avx2 = if enabled { Avx2::detect() } else { None };
        }
        // Elsewhere there is only the portable path.
        #[cfg(not(target_arch = "x86_64"))]
        let _ = enabled;
        self
    }

    /// Whether this counter classifies bytes with vector instructions.
    pub fn uses_simd(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.avx2.is_some()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Counts the items in the next chunk of the body.
    ///
    /// # Errors
    ///
    /// The first byte that is not valid JSON ([`CountErrorKind::InvalidJson`]), that nests
    /// deeper than [`MAX_DEPTH`] ([`CountErrorKind::TooDeep`]), or that begins the item past
    /// the limit ([`CountErrorKind::TooManyItems`]). Once an error is returned, every later
    /// call returns it again.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Progress, CountError> {
        #[cfg(target_arch = "x86_64")]
        if let Some(avx2) = self.avx2 {
            return avx2.run(self, chunk);
        }
        self.run(Portable, chunk)
    }

    /// Ends the body: checks that the document is complete, and returns the span of each item
    /// in the bytes fed, in order.
    ///
    /// # Errors
    ///
    /// Any error [`ItemCounter::feed`] returned; [`CountErrorKind::InvalidJson`] when the
    /// document is empty or incomplete; [`CountErrorKind::TooManyItems`] when, in field mode,
    /// the object counts as one item and the limit is zero.
    pub fn finish(self) -> Result<Vec<Range<usize>>, CountError> {
        self.finish_spans().map(Spans::into_vec)
    }

    /// [`ItemCounter::finish`], with the spans as they are kept: no allocation for a batch
    /// within the default limits.
    pub(crate) fn finish_spans(mut self) -> Result<Spans, CountError> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        let end = self.offset;
        if let State::Scalar(scalar) = self.state {
            if !scalar.is_complete() {
                return Err(self.invalid(end, "unexpected end of a number or literal"));
            }
            self.value_done(end);
        }
        if self.state != State::Done {
            let reason = if self.state == (State::Value { first: false }) && self.depth == 0 {
                "no JSON value"
            } else {
                "unexpected end of the document"
            };
            return Err(self.invalid(end, reason));
        }
        if self.top_object && !self.field_seen {
            if self.limit == 0 {
                return Err(CountError::new(
                    CountErrorKind::TooManyItems,
                    self.object_start,
                    "too many items",
                ));
            }
            self.count = 1;
            self.spans.clear();
            self.spans.push(self.object_start..self.top_end);
        }
        Ok(self.spans)
    }

    /// The items begun so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The spans of the items complete so far.
    pub fn spans(&self) -> &[Range<usize>] {
        self.spans.as_slice()
    }

    /// How many bytes were fed.
    pub fn bytes_fed(&self) -> usize {
        self.offset
    }

    fn progress(&self) -> Progress {
        Progress {
            items: self.count,
            complete: self.state == State::Done,
        }
    }

    /// The block loop, generic over the classification so that the vector path gets its own
    /// copy compiled with the vector instructions enabled.
    #[inline(always)]
    pub(crate) fn run<K: Classify>(
        &mut self,
        classifier: K,
        chunk: &[u8],
    ) -> Result<Progress, CountError> {
        if let Some(error) = &self.error {
            return Err(error.clone());
        }
        match self.blocks(classifier, chunk) {
            Ok(()) => Ok(self.progress()),
            Err(error) => {
                self.error = Some(error.clone());
                Err(error)
            }
        }
    }

    #[inline(always)]
    fn blocks<K: Classify>(&mut self, classifier: K, chunk: &[u8]) -> Result<(), CountError> {
        let full = chunk.len() - chunk.len() % 64;
        let mut at = 0;
        while at < full {
            match self.quiet_blocks(classifier, chunk, at, full) {
                Quiet::Done => break,
                Quiet::Redo(stopped) => {
                    self.block(classifier, block_at(chunk, stopped), 64)?;
                    at = stopped + 64;
                }
                Quiet::Resume {
                    at: stopped,
                    from,
                    masks,
                } => {
                    self.machine(block_at(chunk, stopped), &masks, from, 64)?;
                    self.offset += 64;
                    at = stopped + 64;
                }
            }
        }
        let rest = &chunk[full..];
        if !rest.is_empty() {
            // The tail is counted now, not kept for later: a client that stops sending right
            // after the item past the limit must be refused without waiting for more bytes.
            let mut padded = [0; 64];
            padded[..rest.len()].copy_from_slice(rest);
            self.block(classifier, &padded, rest.len())?;
        }
        Ok(())
    }

    /// The hot loop, over the blocks from `at` on in which nothing happens but a string going
    /// on, brackets opening and closing inside a container being skipped, and array or object
    /// items following one another in the counted array, with the state in registers. Stops
    /// at the first block that needs more: to be processed again from its start
    /// ([`Quiet::Redo`]) when nothing of it was used, or from where it stopped, with its masks
    /// ([`Quiet::Resume`]).
    #[inline(always)]
    fn quiet_blocks<K: Classify>(
        &mut self,
        classifier: K,
        chunk: &[u8],
        mut at: usize,
        full: usize,
    ) -> Quiet {
        if self.hex_left != 0 {
            return Quiet::Redo(at);
        }
        // Between the items of the counted array, containers follow one another.
        let chain = self.counting && !self.single && !self.strict;
        let at_items = chain && self.depth == self.items_depth;
        let mut between = match self.state {
            State::Skip => Between::Inside,
            State::After if at_items => Between::AfterItem,
            State::Value { first: false } if at_items => Between::AfterComma,
            State::Str(StrKind::Value | StrKind::Key) => Between::InString,
            _ => return Quiet::Redo(at),
        };
        // The depth the skipped containers return to: the items' between two items.
        let base = match between {
            Between::AfterItem | Between::AfterComma => self.items_depth,
            Between::Inside | Between::InString => self.skip_base,
        };
        let chain = chain && base == self.items_depth;
        let mut text = Text {
            in_string: self.in_string,
            escape_next: self.escape_next,
        };
        let (mut depth, mut stack) = (self.depth, self.stack);
        // The block at `at` in the chunk begins at byte `origin + at` of the body: one
        // register fewer in the loop than a running offset.
        let origin = self.offset - at;
        // `at` is the position of the block last taken from `blocks`.
        let mut blocks = chunk[at..full].chunks_exact(64);
        let stop = 'blocks: loop {
            let Some(mut block) = next_block(&mut blocks) else {
                break Quiet::Done;
            };
            let Some(mut masks) = text.masks(classifier, block) else {
                break Quiet::Redo(at);
            };
            let mut brackets = masks.brackets;
            match between {
                Between::Inside => {}
                Between::InString => {
                    if masks.quote != 0 {
                        break Quiet::Resume { at, from: 0, masks };
                    }
                    at += 64;
                    continue;
                }
                Between::AfterItem | Between::AfterComma => match next_item(block, 0, between) {
                    Next::Item(k) if self.count < self.limit => {
                        self.count += 1;
                        self.item_start = origin + at + k;
                        stack = stack << 1 | u128::from(block[k] >> 5 & 1);
                        depth += 1;
                        brackets &= from(k + 1);
                        between = Between::Inside;
                    }
                    Next::More(state) => {
                        between = state;
                        at += 64;
                        continue;
                    }
                    Next::Item(k) => {
                        between = Between::AfterComma;
                        break Quiet::Resume { at, from: k, masks };
                    }
                    Next::Other(k, state) => {
                        between = state;
                        break Quiet::Resume { at, from: k, masks };
                    }
                },
            }
            // Inside a skipped container: bracket to bracket, block after block, in a loop of
            // its own so that what it needs stays in registers (most blocks of
            // `benches/batch_limit.rs` are inside an item).
            loop {
                let j = match walk(block, brackets, &mut depth, &mut stack, base) {
                    Walk::Open => {
                        at += 64;
                        let Some(next) = next_block(&mut blocks) else {
                            break 'blocks Quiet::Done;
                        };
                        block = next;
                        let Some(next) = text.masks(classifier, block) else {
                            break 'blocks Quiet::Redo(at);
                        };
                        masks = next;
                        brackets = masks.brackets;
                        continue;
                    }
                    Walk::Stop(j) => break 'blocks Quiet::Resume { at, from: j, masks },
                    Walk::Closed(j) => j,
                };
                brackets = masks.brackets & from(j + 1);
                // The skipped container ends at `j`. When it is an item, go on to the next
                // one if it is an array or object.
                let next = if chain {
                    after_item(block, j + 1)
                } else {
                    Next::Other(j, between)
                };
                let end = origin + at + j + 1;
                match next {
                    Next::Item(k) if self.count < self.limit => {
                        self.spans.push(self.item_start..end);
                        self.count += 1;
                        self.item_start = origin + at + k;
                        stack = (stack >> 1) << 1 | u128::from(block[k] >> 5 & 1);
                        brackets &= from(k + 1);
                    }
                    // Nothing but whitespace and perhaps the comma to the end of the block.
                    Next::More(state) => {
                        self.spans.push(self.item_start..end);
                        stack >>= 1;
                        depth -= 1;
                        between = state;
                        break;
                    }
                    Next::Item(_) | Next::Other(..) => {
                        break 'blocks Quiet::Resume { at, from: j, masks };
                    }
                }
            }
            at += 64;
        };
        self.in_string = text.in_string;
        self.escape_next = text.escape_next;
        self.depth = depth;
        self.stack = stack;
        self.offset = origin + at;
        self.skip_base = base;
        self.state = match between {
            Between::Inside => State::Skip,
            Between::AfterItem => State::After,
            Between::AfterComma => State::Value { first: false },
            Between::InString => self.state,
        };
        stop
    }

    /// Processes the first `n` bytes of `bytes` (the rest is padding).
    #[inline(always)]
    fn block<K: Classify>(
        &mut self,
        classifier: K,
        bytes: &[u8; 64],
        n: usize,
    ) -> Result<(), CountError> {
        let raw = classifier.classify(bytes);
        let valid = below(n);
        let mut bad = 0u64;

        // Hex digits of a `\u` escape that began in the previous block.
        if self.hex_left > 0 {
            let take = usize::from(self.hex_left).min(n);
            if let Some(p) = bytes[..take].iter().position(|b| !b.is_ascii_hexdigit()) {
                bad |= 1 << p;
            }
            self.hex_left -= take as u8;
        }

        let (escaped, next_escaped) = escapes(raw.backslash & valid, self.escape_next, n);
        self.escape_next = next_escaped;
        // `\"` and `\\` are valid as they are; the other escaped bytes are looked at.
        let mut escapes = escaped & valid & !(raw.quote | raw.backslash);
        while escapes != 0 {
            let e = escapes.trailing_zeros() as usize;
            escapes &= escapes - 1;
            match bytes[e] {
                b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                b'u' => {
                    let digits = &bytes[e + 1..n.min(e + 5)];
                    match digits.iter().position(|b| !b.is_ascii_hexdigit()) {
                        Some(p) => bad |= 1 << (e + 1 + p),
                        None => self.hex_left = (4 - digits.len()) as u8,
                    }
                }
                _ => bad |= 1 << e,
            }
        }

        let quote = raw.quote & valid & !escaped;
        let in_string = classifier.prefix_xor(quote) ^ self.in_string;
        self.in_string = ((in_string as i64) >> 63) as u64;
        let raw_control = raw.ctrl & in_string & valid;
        bad |= raw_control;

        let masks = Masks {
            quote,
            brackets: raw.bracket & valid & !in_string,
        };
        let end = if bad == 0 {
            n
        } else {
            bad.trailing_zeros() as usize
        };
        self.machine(bytes, &masks, 0, end)?;
        if end < n {
            let reason = if raw_control >> end & 1 == 1 {
                "control character in a string"
            } else {
                "invalid escape in a string"
            };
            return Err(self.invalid(self.offset + end, reason));
        }
        self.offset += n;
        Ok(())
    }

    /// Runs the state machine over bytes `start..end` of the block.
    #[inline(always)]
    fn machine(
        &mut self,
        bytes: &[u8; 64],
        masks: &Masks,
        start: usize,
        end: usize,
    ) -> Result<(), CountError> {
        let mut i = start;
        while i < end {
            match self.state {
                State::Skip => {
                    // The hot loop: bracket to bracket, state in registers.
                    let mut brackets = masks.brackets & from(i) & below(end);
                    let (mut depth, mut stack) = (self.depth, self.stack);
                    i = end;
                    loop {
                        match walk(bytes, brackets, &mut depth, &mut stack, self.skip_base) {
                            Walk::Open => {
                                self.depth = depth;
                                self.stack = stack;
                                break;
                            }
                            Walk::Stop(j) if bytes[j] & 0x02 != 0 => {
                                self.depth = depth;
                                return Err(self.too_deep(j));
                            }
                            Walk::Stop(j) => {
                                return Err(
                                    self.invalid(self.offset + j, "mismatched closing bracket")
                                );
                            }
                            Walk::Closed(j) => {
                                self.depth = depth - 1;
                                self.stack = stack >> 1;
                                self.value_done(self.offset + j + 1);
                                i = j + 1;
                                // From one item to the next without leaving the loop: `,`
                                // and the next array or object, in this block.
                                let Some(next) = self.next_container_item(bytes, i, end) else {
                                    break;
                                };
                                self.value_start(bytes[next], self.offset + next)?;
                                self.push(bytes[next], next)?;
                                self.state = State::Skip;
                                (depth, stack) = (self.depth, self.stack);
                                brackets = masks.brackets & from(next + 1) & below(end);
                                i = end;
                            }
                        }
                    }
                }
                State::Str(kind) => {
                    let quotes = masks.quote & from(i) & below(end);
                    if quotes == 0 {
                        if kind == StrKind::Field {
                            self.capture(&bytes[i..end]);
                        }
                        i = end;
                    } else {
                        let q = quotes.trailing_zeros() as usize;
                        if kind == StrKind::Field {
                            self.capture(&bytes[i..q]);
                        }
                        i = q + 1;
                        self.string_done(kind, self.offset + i)?;
                    }
                }
                State::Scalar(mut scalar) => loop {
                    if i == end {
                        self.state = State::Scalar(scalar);
                        break;
                    }
                    match scalar.step(bytes[i]) {
                        Ok(Some(next)) => {
                            scalar = next;
                            i += 1;
                        }
                        // The byte after the scalar is looked at again by the grammar.
                        Ok(None) => {
                            self.value_done(self.offset + i);
                            break;
                        }
                        Err(()) => {
                            return Err(self.invalid(self.offset + i, "invalid number or literal"))
                        }
                    }
                },
                _ => {
                    self.step(bytes[i], i, masks)?;
                    i += 1;
                }
            }
        }
        Ok(())
    }

    /// After an item of the counted array ended just before `i`: the position of the next item
    /// when it is an array or object that begins in this block after a comma, so the bracket
    /// loop can go on.
    #[inline(always)]
    fn next_container_item(&self, bytes: &[u8; 64], mut i: usize, end: usize) -> Option<usize> {
        if !self.counting || self.single || self.depth != self.items_depth || self.strict {
            return None;
        }
        while i < end && is_whitespace(bytes[i]) {
            i += 1;
        }
        if i == end || bytes[i] != b',' {
            return None;
        }
        i += 1;
        while i < end && is_whitespace(bytes[i]) {
            i += 1;
        }
        (i < end && (bytes[i] == b'{' || bytes[i] == b'[')).then_some(i)
    }

    /// One byte of grammar outside strings and scalars.
    #[inline]
    fn step(&mut self, b: u8, i: usize, masks: &Masks) -> Result<(), CountError> {
        if is_whitespace(b) {
            return Ok(());
        }
        let pos = self.offset + i;
        match self.state {
            State::Value { first } => match b {
                b'[' | b'{' => {
                    let walk = self.value_start(b, pos)?;
                    self.push(b, i)?;
                    self.state = match (walk, b) {
                        (true, b'[') => State::Value { first: true },
                        (true, _) => State::Key { first: true },
                        (false, _) => {
                            self.skip_base = self.depth - 1;
                            State::Skip
                        }
                    };
                    Ok(())
                }
                b'"' => {
                    self.value_start(b, pos)?;
                    self.open_string(masks, i, StrKind::Value)
                }
                b']' if first => self.close(b, i),
                _ => match Scalar::start(b) {
                    Some(scalar) => {
                        self.value_start(b, pos)?;
                        self.state = State::Scalar(scalar);
                        Ok(())
                    }
                    None => Err(self.invalid(pos, "expected a value")),
                },
            },
            State::Key { first } => match b {
                b'"' => {
                    let kind = if self.top_object && self.depth == 1 {
                        self.key.clear();
                        self.key_overflow = false;
                        StrKind::Field
                    } else {
                        StrKind::Key
                    };
                    self.open_string(masks, i, kind)
                }
                b'}' if first => self.close(b, i),
                _ => Err(self.invalid(pos, "expected a key")),
            },
            State::Colon if b == b':' => {
                self.state = State::Value { first: false };
                Ok(())
            }
            State::Colon => Err(self.invalid(pos, "expected ':'")),
            State::After => match b {
                b',' => {
                    self.state = if self.stack & 1 == 1 {
                        State::Key { first: false }
                    } else {
                        State::Value { first: false }
                    };
                    Ok(())
                }
                b']' | b'}' => self.close(b, i),
                _ => Err(self.invalid(pos, "expected ',' or a closing bracket")),
            },
            State::Done => Err(self.invalid(pos, "trailing characters after the document")),
            State::Str(_) | State::Scalar(_) | State::Skip => {
                Err(self.invalid(pos, "internal state error"))
            }
        }
    }

    fn open_string(&mut self, masks: &Masks, i: usize, kind: StrKind) -> Result<(), CountError> {
        // Always true for a document that is valid so far; a stray backslash before a quote
        // outside strings breaks it, and must not desynchronise the masks from the grammar.
        if masks.quote >> i & 1 == 0 {
            return Err(self.invalid(self.offset + i, "unexpected escaped quote"));
        }
        self.state = State::Str(kind);
        Ok(())
    }

    /// A value begins at `pos` with `b`. Starts counting where the items are, counts the value
    /// if it is an item, and says whether a container it opens is walked token by token
    /// (`true`) or skipped bracket to bracket.
    #[inline]
    fn value_start(&mut self, b: u8, pos: usize) -> Result<bool, CountError> {
        if self.depth == 0 {
            if b == b'[' {
                self.counting = true;
                self.items_depth = 1;
                return Ok(true);
            }
            if b == b'{' && self.field.is_some() {
                self.top_object = true;
                self.object_start = pos;
                return Ok(true);
            }
            self.counting = true;
            self.single = true;
            self.items_depth = 0;
        } else if self.field_pending {
            self.field_pending = false;
            self.counting = true;
            if b == b'[' {
                self.items_depth = 2;
                return Ok(true);
            }
            self.single = true;
            self.items_depth = 1;
        }
        if self.counting && self.depth == self.items_depth {
            if self.count == self.limit {
                return Err(CountError::new(
                    CountErrorKind::TooManyItems,
                    pos,
                    "too many items",
                ));
            }
            if self.count == 0 && self.limit <= 64 {
                // At most one allocation for the spans of a body within its limit (none within
                // the default limits, which fit inline).
                self.spans.reserve(self.limit);
            }
            self.count += 1;
            self.item_start = pos;
        }
        Ok(self.strict)
    }

    /// A value ended just before `end`.
    #[inline]
    fn value_done(&mut self, end: usize) {
        if self.counting && self.depth == self.items_depth {
            self.spans.push(self.item_start..end);
            if self.single {
                self.counting = false;
            }
        }
        if self.depth == 0 {
            self.top_end = end;
            self.state = State::Done;
        } else {
            self.state = State::After;
        }
    }

    fn string_done(&mut self, kind: StrKind, end: usize) -> Result<(), CountError> {
        match kind {
            StrKind::Value => self.value_done(end),
            StrKind::Key => self.state = State::Colon,
            StrKind::Field => {
                if self.key_matches() {
                    if self.field_seen {
                        return Err(self.invalid(end - 1, "the items field appears twice"));
                    }
                    self.field_seen = true;
                    self.field_pending = true;
                }
                self.state = State::Colon;
            }
        }
        Ok(())
    }

    fn capture(&mut self, bytes: &[u8]) {
        let field = self.field.as_deref().unwrap_or_default();
        // `\uXXXX` is the longest spelling of one byte of the name: six bytes.
        if self.key_overflow || self.key.len() + bytes.len() > 6 * field.len() {
            self.key_overflow = true;
            return;
        }
        self.key.extend_from_slice(bytes);
    }

    fn key_matches(&self) -> bool {
        let Some(field) = self.field.as_deref() else {
            return false;
        };
        if self.key_overflow {
            return false;
        }
        if !self.key.contains(&b'\\') {
            return self.key == field;
        }
        let mut quoted = Vec::with_capacity(self.key.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(&self.key);
        quoted.push(b'"');
        serde_json::from_slice::<String>(&quoted).is_ok_and(|key| key.as_bytes() == field)
    }

    #[inline]
    fn push(&mut self, b: u8, i: usize) -> Result<(), CountError> {
        if self.depth as usize == MAX_DEPTH {
            return Err(self.too_deep(i));
        }
        self.stack = self.stack << 1 | u128::from(b == b'{');
        self.depth += 1;
        Ok(())
    }

    #[inline]
    fn pop(&mut self, b: u8, i: usize) -> Result<(), CountError> {
        if self.depth == 0 || (self.stack & 1 == 1) != (b == b'}') {
            return Err(self.invalid(self.offset + i, "mismatched closing bracket"));
        }
        self.stack >>= 1;
        self.depth -= 1;
        Ok(())
    }

    fn close(&mut self, b: u8, i: usize) -> Result<(), CountError> {
        self.pop(b, i)?;
        if self.counting && !self.single && self.depth + 1 == self.items_depth {
            self.counting = false;
        }
        self.value_done(self.offset + i + 1);
        Ok(())
    }

    #[cold]
    fn too_deep(&self, i: usize) -> CountError {
        CountError::new(
            CountErrorKind::TooDeep,
            self.offset + i,
            "nested too deeply",
        )
    }

    #[cold]
    fn invalid(&self, offset: usize, reason: &'static str) -> CountError {
        CountError::new(CountErrorKind::InvalidJson, offset, reason)
    }
}

impl fmt::Debug for ItemCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ItemCounter")
            .field("limit", &self.limit)
            .field("field", &self.field.as_deref().map(String::from_utf8_lossy))
            .field("strict", &self.strict)
            .field("simd", &self.uses_simd())
            .field("bytes_fed", &self.offset)
            .field("count", &self.count)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Where a count stands after a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    items: usize,
    complete: bool,
}

impl Progress {
    /// The items begun so far. In field mode, an object without the field becomes one item
    /// only at [`ItemCounter::finish`].
    pub fn items(&self) -> usize {
        self.items
    }

    /// Whether the top-level value is complete (only whitespace may follow).
    pub fn is_complete(&self) -> bool {
        self.complete
    }
}

/// Why a count stopped: the body is not JSON, nests too deeply, or has too many items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountError {
    kind: CountErrorKind,
    offset: usize,
    reason: &'static str,
}

/// The kind of a [`CountError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CountErrorKind {
    /// The item past the limit began.
    TooManyItems,
    /// The body is not well-formed JSON (or is incomplete).
    InvalidJson,
    /// The body nests arrays and objects deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl CountError {
    pub(crate) fn new(kind: CountErrorKind, offset: usize, reason: &'static str) -> Self {
        CountError {
            kind,
            offset,
            reason,
        }
    }

    /// The kind of error.
    pub fn kind(&self) -> CountErrorKind {
        self.kind
    }

    /// The byte offset in the body where the error was found: the first byte of the item past
    /// the limit, the first invalid byte, or the end of the body when it ended too early.
    pub fn offset(&self) -> usize {
        self.offset
    }
}

impl fmt::Display for CountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.reason, self.offset)
    }
}

impl std::error::Error for CountError {}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod escape_tests {
    use super::{escapes, escapes_full};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_branch_free_escapes_match_the_plain_ones(
            backslashes in any::<u64>(),
            dense in any::<u64>(),
            escape_next in any::<bool>(),
        ) {
            // Long runs of backslashes too, not only scattered ones.
            for mask in [backslashes, backslashes | dense, !dense, u64::MAX, backslashes & dense] {
                let (escaped, next) = escapes(mask, escape_next, 64);
                let (fast, fast_next) = escapes_full(mask, escape_next);
                prop_assert_eq!(fast_next, next, "{:064b}", mask);
                // What the counter uses: which bytes other than backslashes are escaped.
                prop_assert_eq!(fast & !mask, escaped & !mask, "{:064b}", mask);
            }
        }
    }
}
