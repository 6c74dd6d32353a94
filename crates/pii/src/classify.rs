//! Byte classes of a line as bitmasks, for the scanner: for each 64-byte
//! block, one bit per byte telling whether it is an ASCII digit, one telling
//! whether it is an ASCII letter or digit, and one telling whether it is the
//! hint byte (the first byte of a short literal hint, `@`); and, in a second
//! pass, one telling where a case-folded trigram of a set (the long literal
//! hints' first three bytes) may start, with Teddy's nibble tables. The
//! numeric pass then jumps from digit to digit and over words with bit scans
//! instead of byte loops, and the hints are found without passes of their
//! own. On x86_64 with AVX2 (detected at run time) both passes are vector
//! code; this module holds the crate's only `unsafe` code (the intrinsics,
//! their unaligned loads, and calls of the AVX2 functions after detection),
//! behind the safe [`classify`] and [`trigram_mask`]. The portable versions
//! compute the same masks and the tests hold them equal on every byte value
//! and on pseudo-random blocks and lines.

/// The masks of one line: `digit[i] >> j & 1` is set when byte `64 * i + j`
/// is an ASCII digit, `alnum` likewise for ASCII letters and digits, `hint`
/// for the hint byte. Bits
/// past the end of the line are clear, and there is always one more block
/// than the line needs (all clear), so a scan for a clear bit always ends.
#[derive(Debug, Default)]
pub(crate) struct Classes {
    pub(crate) digit: Vec<u64>,
    pub(crate) alnum: Vec<u64>,
    pub(crate) hint: Vec<u64>,
    /// Where a long literal hint may start (see [`trigram_mask`]).
    pub(crate) literal: Vec<u64>,
}

/// Fills `classes` for `bytes` and the hint byte `hint`, reusing its buffers.
pub(crate) fn classify(bytes: &[u8], hint: u8, classes: &mut Classes) {
    let blocks = bytes.len() / 64 + 1;
    classes.digit.clear();
    classes.alnum.clear();
    classes.hint.clear();
    classes.digit.reserve(blocks + 1);
    classes.alnum.reserve(blocks + 1);
    classes.hint.reserve(blocks + 1);
    let mut chunks = bytes.chunks_exact(64);
    let block = block_classifier();
    let mut push = |(digit, alnum, hint): Masks| {
        classes.digit.push(digit);
        classes.alnum.push(alnum);
        classes.hint.push(hint);
    };
    for chunk in chunks.by_ref() {
        let Ok(full) = <&[u8; 64]>::try_from(chunk) else { continue };
        push(block(full, hint));
    }
    // The tail, padded with bytes that are neither digits, letters nor the
    // hint byte; for a line whose length is a multiple of 64 this is the
    // all-clear extra block.
    let rest = chunks.remainder();
    let pad = if hint == 0 { b' ' } else { 0 };
    let mut padded = [pad; 64];
    padded[..rest.len()].copy_from_slice(rest);
    push(block(&padded, hint));
    if !rest.is_empty() {
        push((0, 0, 0));
    }
}

/// A block's digit, alphanumeric and hint-byte masks.
type Masks = (u64, u64, u64);
type BlockClassifier = fn(&[u8; 64], u8) -> Masks;

fn block_classifier() -> BlockClassifier {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            return avx2::block;
        }
    }
    block_portable
}

/// The digit, alphanumeric and hint-byte masks of one block, a byte at a time.
pub(crate) fn block_portable(block: &[u8; 64], hint: u8) -> Masks {
    let mut digit = 0u64;
    let mut alnum = 0u64;
    let mut hinted = 0u64;
    for (index, &byte) in block.iter().enumerate() {
        digit |= u64::from(byte.is_ascii_digit()) << index;
        alnum |= u64::from(byte.is_ascii_alphanumeric()) << index;
        hinted |= u64::from(byte == hint) << index;
    }
    (digit, alnum, hinted)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm_loadu_si128, _mm256_and_si256, _mm256_broadcastsi128_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256,
        _mm256_min_epu8, _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8, _mm256_setzero_si256,
        _mm256_shuffle_epi8, _mm256_srli_epi16, _mm256_sub_epi8,
    };

    use super::{Masks, Trigrams};

    /// [`super::trigram_mask_portable`] with AVX2; only called after
    /// `is_x86_feature_detected!("avx2")`.
    pub(super) fn trigram_mask(bytes: &[u8], trigrams: &Trigrams, mask: &mut Vec<u64>) {
        // SAFETY: only called when the CPU supports AVX2.
        unsafe { trigram_mask_avx2(bytes, trigrams, mask) }
    }

    #[target_feature(enable = "avx2")]
    fn trigram_mask_avx2(bytes: &[u8], trigrams: &Trigrams, mask: &mut Vec<u64>) {
        let table = |row: &[u8; 16]| {
            // SAFETY: an unaligned 16-byte load of a 16-byte array.
            _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(row.as_ptr().cast()) })
        };
        let low = [table(&trigrams.low[0]), table(&trigrams.low[1]), table(&trigrams.low[2])];
        let high = [table(&trigrams.high[0]), table(&trigrams.high[1]), table(&trigrams.high[2])];
        let blocks = bytes.len().div_ceil(64);
        for block in 0..blocks {
            let mut bits = 0u64;
            for part in 0..2 {
                let start = block * 64 + part * 32;
                let half = if start + 34 <= bytes.len() {
                    // SAFETY: `start..start + 34` is inside `bytes`.
                    unsafe { trigram_half(bytes.as_ptr().add(start), &low, &high) }
                } else {
                    let mut window = [0u8; 34];
                    let rest = bytes.get(start..).unwrap_or_default();
                    window[..rest.len()].copy_from_slice(rest);
                    // SAFETY: `window` has 34 bytes.
                    unsafe { trigram_half(window.as_ptr(), &low, &high) }
                };
                bits |= half << (part * 32);
            }
            // Positions past the line's end stay clear, as in the portable version.
            let valid = bytes.len() - block * 64;
            if valid < 64 {
                bits &= (1u64 << valid) - 1;
            }
            mask.push(bits);
        }
    }

    /// [`super::block_portable`] with AVX2; only handed out after
    /// `is_x86_feature_detected!("avx2")`.
    pub(super) fn block(block: &[u8; 64], hint: u8) -> Masks {
        // SAFETY: this function is only selected when the CPU supports AVX2.
        unsafe { block_avx2(block, hint) }
    }

    /// The trigram bits of the 32 positions from `pointer`.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2 and 34 bytes from `pointer` are readable.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn trigram_half(pointer: *const u8, low: &[__m256i; 3], high: &[__m256i; 3]) -> u64 {
        let nibble = _mm256_set1_epi8(0x0f);
        let case = _mm256_set1_epi8(0x20);
        let mut buckets = _mm256_set1_epi8(-1);
        for offset in 0..3 {
            // SAFETY: 32 bytes from offset 0, 1 or 2 lie within the 34 readable bytes.
            let loaded = unsafe { _mm256_loadu_si256(pointer.add(offset).cast::<__m256i>()) };
            let folded = _mm256_or_si256(loaded, case);
            let low_nibbles = _mm256_and_si256(folded, nibble);
            let high_nibbles = _mm256_and_si256(_mm256_srli_epi16(folded, 4), nibble);
            let passes = _mm256_and_si256(
                _mm256_shuffle_epi8(low[offset], low_nibbles),
                _mm256_shuffle_epi8(high[offset], high_nibbles),
            );
            buckets = _mm256_and_si256(buckets, passes);
        }
        let none = _mm256_cmpeq_epi8(buckets, _mm256_setzero_si256());
        u64::from(!(_mm256_movemask_epi8(none) as u32))
    }

    #[target_feature(enable = "avx2")]
    fn block_avx2(block: &[u8; 64], hint: u8) -> Masks {
        let pointer = block.as_ptr().cast::<__m256i>();
        // SAFETY: `block` is 64 readable bytes; both loads are unaligned loads
        // of 32 bytes inside it.
        let (low, high) = unsafe { (_mm256_loadu_si256(pointer), _mm256_loadu_si256(pointer.add(1))) };
        let (low_digit, low_alnum, low_hint) = half(low, hint);
        let (high_digit, high_alnum, high_hint) = half(high, hint);
        (low_digit | high_digit << 32, low_alnum | high_alnum << 32, low_hint | high_hint << 32)
    }

    #[target_feature(enable = "avx2")]
    fn half(bytes: __m256i, hint: u8) -> Masks {
        // A byte is a digit when byte - '0' (wrapping) is at most 9, a letter
        // when (byte | 0x20) - 'a' is at most 25 (unsigned).
        let shifted = _mm256_sub_epi8(bytes, _mm256_set1_epi8(b'0' as i8));
        let digit = _mm256_cmpeq_epi8(_mm256_min_epu8(shifted, _mm256_set1_epi8(9)), shifted);
        let folded = _mm256_or_si256(bytes, _mm256_set1_epi8(0x20));
        let letter_offset = _mm256_sub_epi8(folded, _mm256_set1_epi8(b'a' as i8));
        let letter = _mm256_cmpeq_epi8(_mm256_min_epu8(letter_offset, _mm256_set1_epi8(25)), letter_offset);
        let alnum = _mm256_or_si256(digit, letter);
        let hinted = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(hint as i8));
        let mask = |vector| u64::from(_mm256_movemask_epi8(vector) as u32);
        (mask(digit), mask(alnum), mask(hinted))
    }
}

/// A set of case-folded trigrams (every byte ORed with 0x20), in up to eight
/// buckets, as Teddy's nibble tables: byte `k` of a position passes for
/// bucket `b` when bit `b` is set in both `low[k][folded & 15]` and
/// `high[k][folded >> 4]`. A bucket holding one trigram passes exactly its
/// positions; one holding several also passes some mixtures (a superset).
#[derive(Debug, Clone)]
pub(crate) struct Trigrams {
    low: [[u8; 16]; 3],
    high: [[u8; 16]; 3],
}

impl Trigrams {
    pub(crate) fn new(trigrams: &[[u8; 3]]) -> Trigrams {
        let mut low = [[0u8; 16]; 3];
        let mut high = [[0u8; 16]; 3];
        for (index, trigram) in trigrams.iter().enumerate() {
            let bucket = 1u8 << (index % 8);
            for (offset, &byte) in trigram.iter().enumerate() {
                let folded = byte | 0x20;
                low[offset][usize::from(folded & 15)] |= bucket;
                high[offset][usize::from(folded >> 4)] |= bucket;
            }
        }
        Trigrams { low, high }
    }

    fn passes(&self, offset: usize, byte: u8) -> u8 {
        let folded = byte | 0x20;
        self.low[offset][usize::from(folded & 15)] & self.high[offset][usize::from(folded >> 4)]
    }
}

/// Fills `mask` (one bit per byte, as [`Classes`], plus an all-clear block)
/// with the positions where a trigram of `trigrams` may start.
pub(crate) fn trigram_mask(bytes: &[u8], trigrams: &Trigrams, mask: &mut Vec<u64>) {
    mask.clear();
    mask.reserve(bytes.len() / 64 + 2);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            avx2::trigram_mask(bytes, trigrams, mask);
            mask.push(0);
            return;
        }
    }
    trigram_mask_portable(bytes, trigrams, mask);
    mask.push(0);
}

/// [`trigram_mask`] a byte at a time (without the extra block).
pub(crate) fn trigram_mask_portable(bytes: &[u8], trigrams: &Trigrams, mask: &mut Vec<u64>) {
    for (block, chunk) in bytes.chunks(64).enumerate() {
        let mut bits = 0u64;
        for index in 0..chunk.len() {
            let at = block * 64 + index;
            let byte = |offset: usize| bytes.get(at + offset).copied().unwrap_or(0);
            let buckets = trigrams.passes(0, byte(0)) & trigrams.passes(1, byte(1)) & trigrams.passes(2, byte(2));
            bits |= u64::from(buckets != 0) << index;
        }
        mask.push(bits);
    }
}

/// The first position at or after `from` whose bit is set, if any.
pub(crate) fn next_set(words: &[u64], from: usize) -> Option<usize> {
    let mut index = from / 64;
    let mut word = words.get(index)? & (u64::MAX << (from % 64));
    loop {
        if word != 0 {
            return Some(index * 64 + word.trailing_zeros() as usize);
        }
        index += 1;
        word = *words.get(index)?;
    }
}

/// The first position at or after `from` whose bit is clear (past the line's
/// end every bit is clear; `words.len() * 64` if none is, which cannot happen
/// for [`Classes`]).
pub(crate) fn next_clear(words: &[u64], from: usize) -> usize {
    let mut index = from / 64;
    let Some(first) = words.get(index) else { return from };
    let mut word = !first & (u64::MAX << (from % 64));
    loop {
        if word != 0 {
            return index * 64 + word.trailing_zeros() as usize;
        }
        index += 1;
        match words.get(index) {
            Some(next) => word = !next,
            None => return index * 64,
        }
    }
}

/// The last position before `before` whose bit is clear, if any.
pub(crate) fn previous_clear(words: &[u64], before: usize) -> Option<usize> {
    if before == 0 {
        return None;
    }
    let last = before - 1;
    let mut index = last / 64;
    let keep = u64::MAX >> (63 - last % 64);
    let mut word = !words.get(index).copied().unwrap_or(0) & keep;
    loop {
        if word != 0 {
            return Some(index * 64 + 63 - word.leading_zeros() as usize);
        }
        index = index.checked_sub(1)?;
        word = !words.get(index).copied().unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(bytes: &[u8]) -> Classes {
        let mut classes = Classes::default();
        classify(bytes, b'@', &mut classes);
        classes
    }

    fn bit(words: &[u64], position: usize) -> bool {
        words.get(position / 64).is_some_and(|word| word >> (position % 64) & 1 == 1)
    }

    #[test]
    fn every_byte_value_is_classified_like_the_std_predicates() {
        for byte in 0..=255u8 {
            for position in [0usize, 5, 31, 32, 33, 63] {
                let mut block = [b'-'; 64];
                block[position] = byte;
                for hint in [b'@', 0, 0xff, byte] {
                    let expected = block_portable(&block, hint);
                    assert_eq!(block_classifier()(&block, hint), expected, "byte {byte} at {position}");
                    assert_eq!(expected.0 >> position & 1 == 1, byte.is_ascii_digit());
                    assert_eq!(expected.1 >> position & 1 == 1, byte.is_ascii_alphanumeric());
                    assert_eq!(expected.2 >> position & 1 == 1, byte == hint);
                }
            }
        }
    }

    #[test]
    fn vector_and_portable_agree_on_pseudo_random_blocks() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut block = [0u8; 64];
            for byte in &mut block {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = (state >> 24) as u8;
            }
            let hint = block[7];
            assert_eq!(block_classifier()(&block, hint), block_portable(&block, hint));
        }
    }

    #[test]
    fn masks_cover_the_line_and_one_clear_block_more() {
        for length in [0usize, 1, 63, 64, 65, 127, 128, 200] {
            let line: Vec<u8> = (0..length)
                .map(|index| match index % 5 {
                    0 => b'7',
                    1 => b'@',
                    _ => b'x',
                })
                .collect();
            let found = classes(&line);
            assert!(found.digit.len() > length / 64 && found.digit.len() * 64 > length);
            assert_eq!(*found.digit.last().expect("a block"), 0);
            assert_eq!(*found.hint.last().expect("a block"), 0);
            for position in 0..found.digit.len() * 64 {
                let byte = line.get(position).copied().unwrap_or(0);
                assert_eq!(bit(&found.digit, position), byte.is_ascii_digit(), "{length} {position}");
                assert_eq!(bit(&found.alnum, position), byte.is_ascii_alphanumeric(), "{length} {position}");
                assert_eq!(bit(&found.hint, position), position < length && byte == b'@', "{length} {position}");
            }
        }
    }

    #[test]
    fn trigram_masks_are_exact_for_lone_buckets_and_agree_with_the_portable_version() {
        let trigrams = Trigrams::new(&[*b"eyJ", *b"bea", *b"sk_", *b"AKI", *b"ghp", *b"api"]);
        let line: Vec<u8> =
            b"x eyJhb Bearer SK_LIVE app Api-Key aki\xff ghp_ api".iter().copied().cycle().take(333).collect();
        for length in [0usize, 1, 2, 3, 31, 32, 33, 34, 63, 64, 65, 100, 333] {
            let bytes = &line[..length];
            let mut fast = Vec::new();
            trigram_mask(bytes, &trigrams, &mut fast);
            let mut portable = Vec::new();
            trigram_mask_portable(bytes, &trigrams, &mut portable);
            portable.push(0);
            assert_eq!(fast, portable, "length {length}");
            for position in 0..length {
                let window = bytes.get(position..position + 3).map(|window| {
                    let folded: Vec<u8> = window.iter().map(|byte| byte | 0x20).collect();
                    [&b"eyj"[..], b"bea", b"sk\x7f", b"aki", b"ghp", b"api"].contains(&folded.as_slice())
                });
                assert_eq!(bit(&fast, position), window.unwrap_or(false), "{length} {position}");
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..300 {
            let bytes: Vec<u8> = (0..150)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    b"eyJbeasK_kiAghpxo@"[(state % 18) as usize]
                })
                .collect();
            let mut fast = Vec::new();
            trigram_mask(&bytes, &trigrams, &mut fast);
            let mut portable = Vec::new();
            trigram_mask_portable(&bytes, &trigrams, &mut portable);
            portable.push(0);
            assert_eq!(fast, portable);
        }
    }

    #[test]
    fn bit_scans_agree_with_plain_loops() {
        let line: Vec<u8> = b"ab 12 x7 -- 4bf92f3577b34da6a3ce929d0e0e4736 2026-11-26T10:00:00.123Z "
            .iter()
            .copied()
            .cycle()
            .take(300)
            .collect();
        let found = classes(&line);
        for from in 0..=line.len() {
            assert_eq!(next_set(&found.digit, from), (from..line.len()).find(|&index| line[index].is_ascii_digit()));
            let expected = (from..line.len()).find(|&index| !line[index].is_ascii_alphanumeric()).unwrap_or(line.len());
            assert_eq!(next_clear(&found.alnum, from), expected);
            let expected = (0..from).rev().find(|&index| !line[index].is_ascii_alphanumeric());
            assert_eq!(previous_clear(&found.alnum, from), expected);
        }
    }
}
