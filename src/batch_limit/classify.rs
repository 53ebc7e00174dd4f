//! Turning 64 input bytes into bitmasks, one bit per byte: the only part of the JSON counter
//! that looks at every byte. Everything after it works on the masks, so the portable path and
//! the vector path (in `simd`) share the state machine and give identical results.

/// The bytes of one 64-byte block that the counter cares about, bit `i` for byte `i`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawMasks {
    /// `"`.
    pub(crate) quote: u64,
    /// `\`.
    pub(crate) backslash: u64,
    /// `[`, `]`, `{` or `}`.
    pub(crate) bracket: u64,
    /// A control character (below `0x20`), never allowed raw inside a string.
    pub(crate) ctrl: u64,
    /// A byte of `0x80` or above: not ASCII. (The counter does not look; the per-item field
    /// scan does.)
    pub(crate) high: u64,
}

/// A way to classify a block.
pub(crate) trait Classify: Copy {
    fn classify(self, block: &[u8; 64]) -> RawMasks;

    /// Whether `block` has a control character: [`RawMasks::ctrl`] is not zero.
    #[inline(always)]
    fn has_control(self, block: &[u8; 64]) -> bool {
        self.classify(block).ctrl != 0
    }

    /// Bit `i` is the parity of the bits `0..=i` of `x` (see [`prefix_xor`]).
    #[inline(always)]
    fn prefix_xor(self, x: u64) -> u64 {
        prefix_xor(x)
    }
}

/// The portable path: eight bytes at a time in a `u64` ("SWAR"), no `unsafe`, any platform.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Portable;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// `0x80` in every byte of `x` equal to `byte`, `0` elsewhere (exact: no false positives).
#[inline(always)]
fn eq(x: u64, byte: u8) -> u64 {
    let t = x ^ (ONES * u64::from(byte));
    !(((t & LOW7) + LOW7) | t) & HIGH
}

/// `0x80` in every byte of `x` below `0x20`.
#[inline(always)]
fn control(x: u64) -> u64 {
    !(((x & LOW7) + ONES * 0x60) | x) & HIGH
}

/// Gathers the high bit of each byte into one bit per byte, byte `k` to bit `k`.
///
/// With only high bits set, the multiplication puts the flag of byte `k` at bit `56 + k`, and no
/// two partial products share a bit, so nothing carries.
#[inline(always)]
fn gather(high_bits: u64) -> u64 {
    (high_bits >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

impl Classify for Portable {
    #[inline(always)]
    fn classify(self, block: &[u8; 64]) -> RawMasks {
        let mut masks = RawMasks::default();
        for (k, word) in block.chunks_exact(8).enumerate() {
            let mut bytes = [0; 8];
            bytes.copy_from_slice(word);
            let x = u64::from_le_bytes(bytes);
            let shift = 8 * k;
            // `[` and `{` differ only in bit 0x20, like `]` and `}`.
            let folded = x | (ONES * 0x20);
            masks.quote |= gather(eq(x, b'"')) << shift;
            masks.backslash |= gather(eq(x, b'\\')) << shift;
            masks.bracket |= gather(eq(folded, b'{') | eq(folded, b'}')) << shift;
            masks.ctrl |= gather(control(x)) << shift;
            masks.high |= gather(x & HIGH) << shift;
        }
        masks
    }
}

/// Bit `i` set where byte `i` of `block` satisfies `pick`: the obvious definition the fast
/// paths are checked against.
#[cfg(test)]
pub(crate) fn reference(block: &[u8; 64]) -> RawMasks {
    let mask = |pick: fn(u8) -> bool| {
        block
            .iter()
            .enumerate()
            .filter(|(_, &b)| pick(b))
            .fold(0u64, |mask, (i, _)| mask | 1 << i)
    };
    RawMasks {
        quote: mask(|b| b == b'"'),
        backslash: mask(|b| b == b'\\'),
        bracket: mask(|b| matches!(b, b'[' | b']' | b'{' | b'}')),
        ctrl: mask(|b| b < 0x20),
        high: mask(|b| b >= 0x80),
    }
}

/// Bit `i` is the parity of the bits `0..=i` of `x`: the "inside a string" mask from the quote
/// mask. Six shifts, no carry-less multiply needed.
#[inline(always)]
pub(crate) fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block_from(bytes: &[u8]) -> [u8; 64] {
        let mut block = [b' '; 64];
        for (slot, &b) in block.iter_mut().zip(bytes.iter().cycle()) {
            *slot = b;
        }
        block
    }

    #[test]
    fn every_byte_value_is_classified_like_the_reference() {
        for start in (0..=255u8).step_by(64) {
            let mut block = [0u8; 64];
            for (i, slot) in block.iter_mut().enumerate() {
                *slot = start.wrapping_add(i as u8);
            }
            assert_eq!(Portable.classify(&block), reference(&block), "from {start}");
        }
    }

    #[test]
    fn prefix_xor_is_a_running_parity() {
        let x = 0b1001_0001u64;
        assert_eq!(prefix_xor(x), !0x70u64);
        assert_eq!(prefix_xor(1), u64::MAX);
        assert_eq!(prefix_xor(1 | 1 << 63), u64::MAX >> 1);
    }

    proptest! {
        #[test]
        fn portable_matches_the_reference(bytes in proptest::collection::vec(any::<u8>(), 1..64)) {
            let block = block_from(&bytes);
            prop_assert_eq!(Portable.classify(&block), reference(&block));
        }

        #[test]
        fn portable_matches_the_reference_on_json_bytes(
            bytes in proptest::collection::vec(prop::sample::select(&b"\"\\[]{},: \t\n\x01\x7f\x80\xdb\xdd\xfbax"[..]), 1..64)
        ) {
            let block = block_from(&bytes);
            prop_assert_eq!(Portable.classify(&block), reference(&block));
        }
    }
}
