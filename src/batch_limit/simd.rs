//! The vector path of the JSON counter: AVX2 on x86-64, chosen at run time.
//!
//! This is the crate's only `unsafe` code. It does one thing: classify 64 bytes at once into the
//! same [`RawMasks`] the portable path computes, so every other line of the counter is shared
//! and safe. The differential tests run both paths on the same inputs.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_min_epu8, _mm256_movemask_epi8,
    _mm256_or_si256, _mm256_set1_epi8,
};

use super::{
    classify::{Classify, RawMasks},
    json::{CountError, ItemCounter, Progress},
};

/// Proof that the CPU running this process supports AVX2: only [`Avx2::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2 {
    _private: (),
}

impl Avx2 {
    /// `Some` when the CPU supports AVX2 (the answer is cached by the standard library).
    pub(crate) fn detect() -> Option<Self> {
        std::arch::is_x86_feature_detected!("avx2").then_some(Avx2 { _private: () })
    }

    /// Runs the counter over `chunk` with AVX2 classification.
    pub(crate) fn run(
        self,
        counter: &mut ItemCounter,
        chunk: &[u8],
    ) -> Result<Progress, CountError> {
        #[target_feature(enable = "avx2")]
        unsafe fn run_avx2(
            token: Avx2,
            counter: &mut ItemCounter,
            chunk: &[u8],
        ) -> Result<Progress, CountError> {
            // The state machine is inlined here, so the classification below is compiled with
            // AVX2 enabled and inlined into the block loop.
            counter.run(token, chunk)
        }
        // SAFETY: `self` exists only if `is_x86_feature_detected!("avx2")` returned true, so
        // the CPU executes the AVX2 instructions `run_avx2` is compiled with.
        unsafe { run_avx2(self, counter, chunk) }
    }
}

impl Classify for Avx2 {
    #[inline(always)]
    fn classify(self, block: &[u8; 64]) -> RawMasks {
        // SAFETY: the token proves AVX2 support (see `Avx2::detect`). The two unaligned loads
        // read bytes 0..32 and 32..64 of a 64-byte array, inside its bounds; `loadu` has no
        // alignment requirement. The other intrinsics only compute on registers.
        unsafe {
            let low = _mm256_loadu_si256(block.as_ptr().cast::<__m256i>());
            let high = _mm256_loadu_si256(block.as_ptr().add(32).cast::<__m256i>());
            let (low, high) = (classify_half(low), classify_half(high));
            RawMasks {
                quote: join(low.0, high.0),
                backslash: join(low.1, high.1),
                bracket: join(low.2, high.2),
                ctrl: join(low.3, high.3),
            }
        }
    }
}

#[inline(always)]
fn join(low: i32, high: i32) -> u64 {
    u64::from(low as u32) | u64::from(high as u32) << 32
}

/// Quote, backslash, bracket and control-character masks of 32 bytes.
///
/// # Safety
///
/// The CPU must support AVX2.
#[inline(always)]
unsafe fn classify_half(v: __m256i) -> (i32, i32, i32, i32) {
    // SAFETY: the caller guarantees AVX2; these intrinsics only compute on registers.
    unsafe {
        let quote = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'"' as i8));
        let backslash = _mm256_cmpeq_epi8(v, _mm256_set1_epi8(b'\\' as i8));
        // `[` and `{` differ only in bit 0x20, like `]` and `}`.
        let folded = _mm256_or_si256(v, _mm256_set1_epi8(0x20));
        let bracket = _mm256_or_si256(
            _mm256_cmpeq_epi8(folded, _mm256_set1_epi8(b'{' as i8)),
            _mm256_cmpeq_epi8(folded, _mm256_set1_epi8(b'}' as i8)),
        );
        // Unsigned `v <= 0x1f`.
        let ctrl = _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8(0x1f)), v);
        (
            _mm256_movemask_epi8(quote),
            _mm256_movemask_epi8(backslash),
            _mm256_movemask_epi8(bracket),
            _mm256_movemask_epi8(ctrl),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch_limit::classify::reference;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn avx2_matches_the_reference(bytes in proptest::array::uniform32(any::<u8>()), shift in 0usize..32) {
            let Some(token) = Avx2::detect() else { return Ok(()) };
            let mut block = [0u8; 64];
            for (i, slot) in block.iter_mut().enumerate() {
                *slot = bytes[(i + shift) % 32] ^ (i as u8);
            }
            prop_assert_eq!(token.classify(&block), reference(&block));
        }
    }

    #[test]
    fn avx2_classifies_every_byte_value() {
        let Some(token) = Avx2::detect() else { return };
        for start in (0..=255u8).step_by(64) {
            let mut block = [0u8; 64];
            for (i, slot) in block.iter_mut().enumerate() {
                *slot = start.wrapping_add(i as u8);
            }
            assert_eq!(token.classify(&block), reference(&block));
        }
    }
}
