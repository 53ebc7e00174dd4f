//! The vector path of the JSON counter: AVX2 on x86-64, chosen at run time.
//!
//! This is the crate's only `unsafe` code. It does one thing: classify 64 bytes at once into the
//! same [`RawMasks`] the portable path computes, so every other line of the counter is shared
//! and safe. The differential tests run both paths on the same inputs.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_min_epu8, _mm256_movemask_epi8,
    _mm256_or_si256, _mm256_set1_epi8, _mm256_testz_si256, _mm_clmulepi64_si128, _mm_cvtsi128_si64,
    _mm_cvtsi64_si128, _mm_set1_epi8,
};

use super::{
    classify::{Classify, RawMasks},
    json::{CountError, ItemCounter, Progress},
};

/// Proof that the CPU running this process supports AVX2 and PCLMULQDQ: only
/// [`Avx2::detect`] makes one.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2 {
    _private: (),
}

/// The byte values the classification compares with, made once per run.
#[derive(Clone, Copy)]
struct Constants {
    quote: __m256i,
    backslash: __m256i,
    fold: __m256i,
    open: __m256i,
    close: __m256i,
    control: __m256i,
}

/// [`Avx2`] with its constants in registers: what the block loop uses.
#[derive(Clone, Copy)]
pub(crate) struct Avx2Run {
    constants: Constants,
}

impl Avx2 {
    /// `Some` when the CPU supports AVX2 and PCLMULQDQ (the answer is cached by the standard
    /// library).
    pub(crate) fn detect() -> Option<Self> {
        (std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("pclmulqdq"))
        .then_some(Avx2 { _private: () })
    }

    /// Runs the counter over `chunk` with AVX2 classification.
    pub(crate) fn run(
        self,
        counter: &mut ItemCounter,
        chunk: &[u8],
    ) -> Result<Progress, CountError> {
        #[target_feature(enable = "avx2,pclmulqdq")]
        unsafe fn run_avx2(
            counter: &mut ItemCounter,
            chunk: &[u8],
        ) -> Result<Progress, CountError> {
            // The state machine is inlined here, so the classification below is compiled with
            // AVX2 enabled and inlined into the block loop.
            // SAFETY: this function only runs on a CPU with AVX2 (see the call below). (Newer
            // compilers need no `unsafe` here; the block keeps older ones, down to 1.85,
            // content.)
            #[allow(unused_unsafe)]
            let constants = unsafe { Constants::new() };
            counter.run(Avx2Run { constants }, chunk)
        }
        // SAFETY: `self` exists only if `is_x86_feature_detected!` found AVX2 and PCLMULQDQ,
        // so the CPU executes the instructions `run_avx2` is compiled with.
        unsafe { run_avx2(counter, chunk) }
    }

    /// Runs `scan` with AVX2 classification (the per-item field scan, `auth::field_scan`).
    #[inline]
    pub(crate) fn scan<S: Scan>(self, scan: S) -> S::Output {
        #[target_feature(enable = "avx2,pclmulqdq")]
        unsafe fn scan_avx2<S: Scan>(scan: S) -> S::Output {
            // SAFETY: as in `run_avx2`.
            #[allow(unused_unsafe)]
            let constants = unsafe { Constants::new() };
            scan.run(Avx2Run { constants })
        }
        // SAFETY: as in `Avx2::run`: the token proves AVX2 and PCLMULQDQ.
        unsafe { scan_avx2(scan) }
    }
}

/// Work done over blocks classified by whichever [`Classify`] the CPU allows; its `run` is
/// `#[inline(always)]` so that it is compiled with the vector instructions enabled.
pub(crate) trait Scan {
    type Output;

    fn run<K: Classify>(self, classifier: K) -> Self::Output;
}

impl Constants {
    /// # Safety
    ///
    /// The CPU must support AVX2.
    #[inline(always)]
    unsafe fn new() -> Self {
        // SAFETY: the caller guarantees AVX2; `set1` only computes on registers.
        unsafe {
            Constants {
                quote: _mm256_set1_epi8(b'"' as i8),
                backslash: _mm256_set1_epi8(b'\\' as i8),
                fold: _mm256_set1_epi8(0x20),
                open: _mm256_set1_epi8(b'{' as i8),
                close: _mm256_set1_epi8(b'}' as i8),
                control: _mm256_set1_epi8(0x1f),
            }
        }
    }
}

impl Classify for Avx2Run {
    #[inline(always)]
    fn classify(self, block: &[u8; 64]) -> RawMasks {
        // SAFETY: an `Avx2Run` is only made inside `run_avx2`, which only runs on a CPU with
        // AVX2 (see `Avx2::run`). The two unaligned loads read bytes 0..32 and 32..64 of a
        // 64-byte array, inside its bounds; `loadu` has no alignment requirement. The other
        // intrinsics only compute on registers.
        unsafe {
            let low = _mm256_loadu_si256(block.as_ptr().cast::<__m256i>());
            let high = _mm256_loadu_si256(block.as_ptr().add(32).cast::<__m256i>());
            let c = &self.constants;
            let (low, high) = (classify_half(c, low), classify_half(c, high));
            RawMasks {
                quote: join(low.0, high.0),
                backslash: join(low.1, high.1),
                bracket: join(low.2, high.2),
                ctrl: join(low.3, high.3),
                high: join(low.4, high.4),
            }
        }
    }

    #[inline(always)]
    fn has_control(self, block: &[u8; 64]) -> bool {
        // SAFETY: as in `classify`: the `Avx2Run` proves AVX2, and the loads read the two
        // halves of a 64-byte array.
        unsafe {
            let low = _mm256_loadu_si256(block.as_ptr().cast::<__m256i>());
            let high = _mm256_loadu_si256(block.as_ptr().add(32).cast::<__m256i>());
            let c = &self.constants;
            let either = _mm256_or_si256(
                _mm256_cmpeq_epi8(_mm256_min_epu8(low, c.control), low),
                _mm256_cmpeq_epi8(_mm256_min_epu8(high, c.control), high),
            );
            _mm256_testz_si256(either, either) == 0
        }
    }

    #[inline(always)]
    fn prefix_xor(self, x: u64) -> u64 {
        // SAFETY: an `Avx2Run` only exists on a CPU with PCLMULQDQ; these intrinsics only compute on registers.
        // A carry-less multiplication by all ones is the running parity of the bits.
        unsafe {
            let product = _mm_clmulepi64_si128(_mm_cvtsi64_si128(x as i64), _mm_set1_epi8(-1), 0);
            _mm_cvtsi128_si64(product) as u64
        }
    }
}

#[inline(always)]
fn join(low: i32, high: i32) -> u64 {
    u64::from(low as u32) | u64::from(high as u32) << 32
}

/// Quote, backslash, bracket, control-character and non-ASCII masks of 32 bytes.
///
/// # Safety
///
/// The CPU must support AVX2.
#[inline(always)]
unsafe fn classify_half(c: &Constants, v: __m256i) -> (i32, i32, i32, i32, i32) {
    // SAFETY: the caller guarantees AVX2; these intrinsics only compute on registers.
    unsafe {
        let quote = _mm256_cmpeq_epi8(v, c.quote);
        let backslash = _mm256_cmpeq_epi8(v, c.backslash);
        // `[` and `{` differ only in bit 0x20, like `]` and `}`.
        let folded = _mm256_or_si256(v, c.fold);
        let bracket = _mm256_or_si256(
            _mm256_cmpeq_epi8(folded, c.open),
            _mm256_cmpeq_epi8(folded, c.close),
        );
        // Unsigned `v <= 0x1f`.
        let ctrl = _mm256_cmpeq_epi8(_mm256_min_epu8(v, c.control), v);
        (
            _mm256_movemask_epi8(quote),
            _mm256_movemask_epi8(backslash),
            _mm256_movemask_epi8(bracket),
            _mm256_movemask_epi8(ctrl),
            // The high bit of each byte.
            _mm256_movemask_epi8(v),
        )
    }
}

#[cfg(test)]
impl Avx2 {
    /// The classification outside the block loop, for tests.
    fn for_tests(self) -> Avx2Run {
        // SAFETY: the token proves AVX2 support.
        let constants = unsafe { Constants::new() };
        Avx2Run { constants }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch_limit::classify::{prefix_xor, reference};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn avx2_matches_the_reference(bytes in proptest::array::uniform32(any::<u8>()), shift in 0usize..32) {
            let Some(token) = Avx2::detect().map(Avx2::for_tests) else { return Ok(()) };
            let mut block = [0u8; 64];
            for (i, slot) in block.iter_mut().enumerate() {
                *slot = bytes[(i + shift) % 32] ^ (i as u8);
            }
            prop_assert_eq!(token.classify(&block), reference(&block));
            prop_assert_eq!(token.has_control(&block), reference(&block).ctrl != 0);
            let x = u64::from_le_bytes(bytes[..8].try_into().unwrap()) ^ (shift as u64) << 60;
            prop_assert_eq!(token.prefix_xor(x), prefix_xor(x));
        }
    }

    #[test]
    fn avx2_classifies_every_byte_value() {
        let Some(token) = Avx2::detect().map(Avx2::for_tests) else {
            return;
        };
        for start in (0..=255u8).step_by(64) {
            let mut block = [0u8; 64];
            for (i, slot) in block.iter_mut().enumerate() {
                *slot = start.wrapping_add(i as u8);
            }
            assert_eq!(token.classify(&block), reference(&block));
            assert_eq!(token.has_control(&block), start < 0x20);
        }
        let mut block = [b'a'; 64];
        assert!(!token.has_control(&block));
        block[63] = b'\n';
        assert!(token.has_control(&block));
    }
}
