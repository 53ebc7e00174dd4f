//! The field scan a block at a time: the strings and nested values of an item are crossed with
//! the bitmasks the batch limit layer's counter uses (quotes, backslashes, brackets, control
//! characters, 64 bytes at a time), not byte by byte.
//!
//! Why: the per-item check ran the byte scan at about 880 instructions for a 90-byte item, most
//! of them in strings (`benches/stack.rs`, `valid_5_items full_stack` against
//! `breakdown/contract+auth+batch_limit`; `BENCHMARKS.md`); on the masks it takes about 530
//! (AVX2 path), and the whole per-item check 3,450 per 5-item request instead of 5,430. The
//! masks turn each string into one bit search. (Checking a compact object's whole shape on the
//! masks at once was tried and cost more: its `u128` masks spill.) The grammar between the
//! strings is the byte scan's own code, and anything the masks could read differently from a
//! byte-by-byte reading (a backslash outside a string) or that the scan has no quick answer for
//! returns `None`: the byte scan then decides, so the answer is always the byte scan's (the
//! differential tests in `super::tests`).

use super::{end, literal, number, skip_space, Scan};
use crate::batch_limit::{
    classify::{Classify, Portable, RawMasks},
    json::{below, escapes_full, from},
};

/// What the byte scan would answer for the field `name` of `item`, or `None` when it must be
/// asked.
#[inline]
pub(super) fn scan<'a>(item: &'a [u8], name: &[u8]) -> Option<Scan<'a>> {
    let task = Task { item, name };
    #[cfg(target_arch = "x86_64")]
    if let Some(avx2) = crate::batch_limit::simd::Avx2::detect() {
        return avx2.scan(task);
    }
    portable(task)
}

/// Out of line, so that the caller stays small where the vector path is taken.
#[inline(never)]
fn portable<'a>(task: Task<'a, '_>) -> Option<Scan<'a>> {
    task.run_with(Portable)
}

/// [`scan`] with the portable classification, whatever the CPU: for the tests.
#[cfg(test)]
pub(super) fn scan_portable<'a>(item: &'a [u8], name: &[u8]) -> Option<Scan<'a>> {
    Task { item, name }.run_with(Portable)
}

struct Task<'a, 'n> {
    item: &'a [u8],
    name: &'n [u8],
}

#[cfg(target_arch = "x86_64")]
impl<'a> crate::batch_limit::simd::Scan for Task<'a, '_> {
    type Output = Option<Scan<'a>>;

    #[inline(always)]
    fn run<K: Classify>(self, classifier: K) -> Option<Scan<'a>> {
        self.run_with(classifier)
    }
}

impl<'a> Task<'a, '_> {
    #[inline(always)]
    fn run_with<K: Classify>(self, classifier: K) -> Option<Scan<'a>> {
        let Task { item, name } = self;
        let at = skip_space(item, 0);
        if item.get(at) != Some(&b'{') {
            return None;
        }
        if item.len() <= 128 {
            walk(item, name, at, Whole::new(classifier, item)?)
        } else {
            walk(item, name, at, Masks::new(classifier, item)?)
        }
    }
}

/// What the grammar asks of the masks.
trait Find {
    /// The first unescaped quote at or after `at`: the end of the string `at` is in.
    fn quote_from(&mut self, at: usize) -> Option<usize>;

    /// Just past the array or object that opens at `at`: brackets counted outside strings,
    /// as `super::skip_nested` counts them.
    fn past_nested(&mut self, at: usize) -> Option<usize>;

    /// Whether `start..close`, the contents of a string whose closing quote `close` was the
    /// last one found, is printable ASCII without a backslash, as `super::plain_string` wants.
    fn plain(&self, start: usize, close: usize) -> bool;
}

/// The byte scan's grammar (`super::scan`) from the object's `{` at `at`, with strings and
/// nested values found in the masks.
#[inline(always)]
fn walk<'a, F: Find>(item: &'a [u8], name: &[u8], mut at: usize, mut masks: F) -> Option<Scan<'a>> {
    at = skip_space(item, at + 1);
    let mut found = Scan::Absent;
    if item.get(at) == Some(&b'}') {
        return end(item, at + 1, found);
    }
    loop {
        if item.get(at) != Some(&b'"') {
            return None;
        }
        let close = masks.quote_from(at + 1)?;
        if !masks.plain(at + 1, close) {
            return None;
        }
        let is_name = item.get(at + 1..close)? == name;
        at = skip_space(item, close + 1);
        if item.get(at) != Some(&b':') {
            return None;
        }
        at = skip_space(item, at + 1);
        if is_name {
            if item.get(at) != Some(&b'"') {
                return None;
            }
            let close = masks.quote_from(at + 1)?;
            if !masks.plain(at + 1, close) {
                return None;
            }
            found = match found {
                Scan::Absent => Scan::Once(item.get(at + 1..close)?),
                _ => Scan::Twice,
            };
            at = close + 1;
        } else {
            at = match *item.get(at)? {
                b'"' => masks.quote_from(at + 1)? + 1,
                b'{' | b'[' => masks.past_nested(at)?,
                b't' => literal(item, at, b"true")?,
                b'f' => literal(item, at, b"false")?,
                b'n' => literal(item, at, b"null")?,
                b'-' | b'0'..=b'9' => number(item, at)?,
                _ => return None,
            };
        }
        at = skip_space(item, at);
        match item.get(at)? {
            b',' => at = skip_space(item, at + 1),
            b'}' => return end(item, at + 1, found),
            _ => return None,
        }
    }
}

/// The masks of the 64 bytes of `item` at `start`, bits past its end clear.
#[inline(always)]
fn classify_at<K: Classify>(classifier: K, item: &[u8], start: usize) -> RawMasks {
    let rest = &item[start..];
    if let Some(block) = rest.first_chunk::<64>() {
        return classifier.classify(block);
    }
    if let Some(last) = item.last_chunk::<64>() {
        // The item's last 64 bytes, shifted down to `start`: no copy.
        let shift = start - (item.len() - 64);
        let raw = classifier.classify(last);
        return RawMasks {
            quote: raw.quote >> shift,
            backslash: raw.backslash >> shift,
            bracket: raw.bracket >> shift,
            ctrl: raw.ctrl >> shift,
            high: raw.high >> shift,
        };
    }
    // Spaces: no quote, backslash, bracket, control character or high byte.
    let mut block = [b' '; 64];
    block[..rest.len()].copy_from_slice(rest);
    classifier.classify(&block)
}

/// The masks of a whole item of at most 128 bytes, most items: two blocks in one `u128`, with
/// no state to carry from block to block.
struct Whole<'a, K> {
    item: &'a [u8],
    classifier: K,
    quote: u128,
    /// Inside strings (from the opening quote to the byte before the closing one).
    string: u128,
    unplain: u128,
}

impl<'a, K: Classify> Whole<'a, K> {
    #[inline(always)]
    fn new(classifier: K, item: &'a [u8]) -> Option<Self> {
        let low = classify_at(classifier, item, 0);
        let high = if item.len() > 64 {
            classify_at(classifier, item, 64)
        } else {
            RawMasks::default()
        };
        let (escaped, escape_next) = escapes_full(low.backslash, false);
        let low_quote = low.quote & !escaped;
        let low_string = classifier.prefix_xor(low_quote);
        let (escaped, _) = escapes_full(high.backslash, escape_next);
        let high_quote = high.quote & !escaped;
        let high_string = classifier.prefix_xor(high_quote) ^ ((low_string as i64) >> 63) as u64;
        // As in `Masks::load`.
        if low.backslash & !low_string | high.backslash & !high_string != 0 {
            return None;
        }
        let join = |low: u64, high: u64| u128::from(low) | u128::from(high) << 64;
        Some(Whole {
            item,
            classifier,
            quote: join(low_quote, high_quote),
            string: join(low_string, high_string),
            unplain: join(
                low.backslash | low.ctrl | low.high,
                high.backslash | high.ctrl | high.high,
            ),
        })
    }
}

impl<K: Classify> Find for Whole<'_, K> {
    #[inline(always)]
    fn quote_from(&mut self, at: usize) -> Option<usize> {
        let rest = self.quote.checked_shr(at as u32)?;
        (rest != 0).then(|| at + rest.trailing_zeros() as usize)
    }

    #[inline(always)]
    fn past_nested(&mut self, at: usize) -> Option<usize> {
        let mut depth = 0usize;
        // Classified again, as `Masks::brackets` does.
        let low = classify_at(self.classifier, self.item, 0).bracket;
        let high = match self.item.len() > 64 {
            true => classify_at(self.classifier, self.item, 64).bracket,
            false => 0,
        };
        let brackets = (u128::from(low) | u128::from(high) << 64) & !self.string;
        let mut brackets = brackets & u128::MAX.checked_shl(at as u32)?;
        while brackets != 0 {
            let j = brackets.trailing_zeros() as usize;
            brackets &= brackets - 1;
            // `[` and `{` have bit 0x02 set, `]` and `}` do not.
            if self.item[j] & 0x02 != 0 {
                depth += 1;
            } else {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(j + 1);
                }
            }
        }
        None
    }

    #[inline(always)]
    fn plain(&self, start: usize, close: usize) -> bool {
        // Most items have no escape, control character or non-ASCII byte at all.
        if self.unplain == 0 {
            return true;
        }
        // `start <= close < 128`: `close` is a quote of the item.
        let range = (1u128 << close) - (1u128 << start);
        self.unplain & range == 0
    }
}

/// The masks of the block the scan is in. The scan only moves forward, so one block (and what a
/// string that began in the one before needs of it) is all it keeps.
struct Masks<'a, K> {
    item: &'a [u8],
    classifier: K,
    /// Where the block begins in `item`.
    start: usize,
    /// Unescaped quotes.
    quote: u64,
    /// Inside strings (from the opening quote to the byte before the closing one).
    string: u64,
    /// Backslashes, control characters and non-ASCII bytes: what a plain string does not hold.
    unplain: u64,
    /// `unplain` of the block before.
    unplain_before: u64,
    /// All ones while inside a string at the end of the block.
    in_string: u64,
    /// The first byte of the next block is escaped.
    escape_next: bool,
}

impl<'a, K: Classify> Masks<'a, K> {
    /// The masks of the first block, or `None` when the byte scan must decide.
    #[inline(always)]
    fn new(classifier: K, item: &'a [u8]) -> Option<Self> {
        let mut masks = Masks {
            item,
            classifier,
            start: 0,
            quote: 0,
            string: 0,
            unplain: u64::MAX,
            unplain_before: u64::MAX,
            in_string: 0,
            escape_next: false,
        };
        masks.load(0)?;
        Some(masks)
    }

    /// Classifies the block at `start`.
    #[inline(always)]
    fn load(&mut self, start: usize) -> Option<()> {
        if start >= self.item.len() {
            return None;
        }
        let raw = classify_at(self.classifier, self.item, start);
        let (escaped, escape_next) = escapes_full(raw.backslash, self.escape_next);
        let quote = raw.quote & !escaped;
        let string = self.classifier.prefix_xor(quote) ^ self.in_string;
        // Read byte by byte, a backslash outside a string is no escape (the byte scan refuses
        // it, or steps over it inside a nested value); the masks would take it for one.
        if raw.backslash & !string != 0 {
            return None;
        }
        self.unplain_before = if start == self.start + 64 {
            self.unplain
        } else {
            u64::MAX
        };
        self.start = start;
        self.quote = quote;
        self.string = string;
        self.unplain = raw.backslash | raw.ctrl | raw.high;
        self.in_string = ((string as i64) >> 63) as u64;
        self.escape_next = escape_next;
        Some(())
    }

    /// The next block.
    #[inline(always)]
    fn advance(&mut self) -> Option<()> {
        self.load(self.start + 64)
    }

    /// The brackets of the block outside strings, classified again: only items with nested
    /// values need them, and keeping the mask from `load` makes the compiler unpack it into
    /// one byte per bit on every block (seen in `benches/stack.rs`, `valid_5_items`).
    #[inline(always)]
    fn brackets(&self) -> u64 {
        classify_at(self.classifier, self.item, self.start).bracket & !self.string
    }
}

impl<K: Classify> Find for Masks<'_, K> {
    #[inline(always)]
    fn quote_from(&mut self, at: usize) -> Option<usize> {
        let mut quotes = self.quote & from(at.checked_sub(self.start)?);
        while quotes == 0 {
            self.advance()?;
            quotes = self.quote & from(at.saturating_sub(self.start));
        }
        Some(self.start + quotes.trailing_zeros() as usize)
    }

    #[inline(always)]
    fn past_nested(&mut self, at: usize) -> Option<usize> {
        let mut depth = 0usize;
        let mut brackets = self.brackets() & from(at.checked_sub(self.start)?);
        loop {
            while brackets != 0 {
                let j = brackets.trailing_zeros() as usize;
                brackets &= brackets - 1;
                // `[` and `{` have bit 0x02 set, `]` and `}` do not.
                if self.item[self.start + j] & 0x02 != 0 {
                    depth += 1;
                } else {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(self.start + j + 1);
                    }
                }
            }
            self.advance()?;
            brackets = self.brackets() & from(at.saturating_sub(self.start));
        }
    }

    #[inline(always)]
    fn plain(&self, start: usize, close: usize) -> bool {
        let below_close = self.unplain & below(close - self.start);
        if start >= self.start {
            return below_close & from(start - self.start) == 0;
        }
        if start + 64 >= self.start {
            return below_close == 0 && self.unplain_before & from(start + 64 - self.start) == 0;
        }
        // A string longer than a block: rare in the fields a policy reads.
        self.item[start..close]
            .iter()
            .all(|&b| (0x20..0x80).contains(&b) && b != b'\\')
    }
}
