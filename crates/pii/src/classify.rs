//! Byte classes of a line as bitmasks, for the scanner: for each 64-byte
//! block, one bit per byte telling whether it is an ASCII digit, an ASCII
//! letter or digit, the hint byte (the first byte of a short literal hint,
//! `@`), and where a case-folded trigram of a set (the long literal hints'
//! first three bytes) may start, with Teddy's nibble tables; derived from
//! those and the uppercase, colon and hex-digit classes, where a numeric run
//! can start, which digits follow an uppercase letter, and how many colons
//! sit in hex/colon runs. The numeric pass then jumps from event to event
//! with bit scans instead of byte loops, and the hints are found without
//! passes of their own.
//!
//! All of it is one pass over the line. On x86_64 the per-block work is
//! vector code, chosen at run time: AVX-512 (F and BW), whose comparisons
//! give the 64-bit masks of a whole block directly, else AVX2 (two halves of
//! 32 bytes and a `movemask` per class). This module holds the crate's only
//! `unsafe` code (the intrinsics, their unaligned loads, and the calls of the
//! vector passes after detection), behind the safe [`classify`]. The
//! portable version computes the same masks and the tests hold all three
//! equal on every byte value and on pseudo-random blocks and lines.

/// The masks of one line: `digit[i] >> j & 1` is set when byte `64 * i + j`
/// is an ASCII digit, `alnum` likewise for ASCII letters and digits, `hint`
/// for the hint byte. Bits past the end of the line are clear, and there is
/// always one more block than the line needs (all clear), so a scan for a
/// clear bit always ends.
#[derive(Debug, Default)]
pub(crate) struct Classes {
    pub(crate) digit: Vec<u64>,
    pub(crate) alnum: Vec<u64>,
    pub(crate) hint: Vec<u64>,
    /// The digits that do not follow an ASCII letter or digit and start a
    /// numeric run (digits joined by one or two of ` -./()`) of at least
    /// the `min_span` bytes [`classify`] was given: where a numeric run a
    /// rule looks at can start.
    pub(crate) runs: Vec<u64>,
    /// The separators of numeric runs (` -./()`).
    separator: Vec<u64>,
    /// The bytes of numeric runs: digits, and the one or two separators
    /// between two digits. A run from a digit ends at the first clear bit.
    /// All clear when [`Classes::runs`] is.
    pub(crate) run_bytes: Vec<u64>,
    /// The digits that follow an ASCII uppercase letter (an IBAN's country code).
    pub(crate) upper_digit: Vec<u64>,
    /// Where a trigram of the set may start (all clear without a set).
    pub(crate) literal: Vec<u64>,
    /// How many colons have a hex digit on both sides. Without a `::` in the
    /// line, a run of hex digits and colons holding `n` colons has at least
    /// `n - 2` of them.
    pub(crate) inner_colons: u32,
    /// Whether the line holds `::`.
    pub(crate) double_colon: bool,
}

impl Classes {
    /// Every mask with one word per block.
    fn per_block(&mut self) -> [&mut Vec<u64>; 7] {
        [
            &mut self.digit,
            &mut self.alnum,
            &mut self.hint,
            &mut self.runs,
            &mut self.separator,
            &mut self.upper_digit,
            &mut self.literal,
        ]
    }

    /// How many digits lie in `from..to` (bit scans of the digit mask).
    pub(crate) fn digits_between(&self, from: usize, to: usize) -> u32 {
        let mut count = 0;
        let mut position = from;
        while position < to {
            let (index, offset) = (position / 64, position % 64);
            let Some(&word) = self.digit.get(index) else { break };
            let width = (to - position).min(64 - offset);
            let keep = if width == 64 { u64::MAX } else { ((1u64 << width) - 1) << offset };
            count += (word & keep).count_ones();
            position += width;
        }
        count
    }
}

/// Fills `classes` for `bytes`, the hint byte `hint`, the trigram set
/// (none: no literal positions) and the shortest numeric run of interest,
/// reusing its buffers.
pub(crate) fn classify(bytes: &[u8], hint: u8, trigrams: Option<&Trigrams>, min_span: usize, classes: &mut Classes) {
    #[cfg(target_arch = "x86_64")]
    {
        if avx512::available() {
            // SAFETY: the CPU supports AVX-512 F and BW.
            unsafe { avx512::classify(bytes, hint, trigrams, classes) };
            keep_long_runs(classes, min_span);
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2.
            unsafe { avx2::classify(bytes, hint, trigrams, classes) };
            keep_long_runs(classes, min_span);
            return;
        }
    }
    fill(bytes, hint, classes, |window| {
        (block_portable(window, hint), trigrams.map_or(0, |trigrams| trigram_block_portable(window, trigrams)))
    });
    keep_long_runs(classes, min_span);
}

/// Narrows [`Classes::runs`] from every digit that can start a run to those
/// whose run holds at least `min_span` bytes (digits and joining
/// separators). The numeric pass measures runs exactly as they are joined
/// here: stretches of digits joined by one or two separators.
///
/// One pass from the last block to the first: each block's run bytes, then
/// the doubling rounds (after round `k`, bit `i` is set when the `have_k`
/// bytes from `i` are run bytes), each round reading the next block's
/// previous round, which the pass has just computed and keeps.
fn keep_long_runs(classes: &mut Classes, min_span: usize) {
    let blocks = classes.digit.len();
    classes.run_bytes.clear();
    if classes.runs.iter().all(|&runs| runs == 0) {
        classes.run_bytes.resize(blocks, 0);
        return;
    }
    classes.run_bytes.resize(blocks, 0);
    let span = min_span.clamp(1, 64);
    // The shift of each doubling round: 1, 2, 4, ... up to what is missing
    // (six rounds reach 64).
    let mut takes = [0u32; 6];
    let mut rounds = 0;
    let mut have = 1;
    while have < span {
        let take = have.min(span - have);
        takes[rounds] = take as u32;
        rounds += 1;
        have += take;
    }
    let digit = &classes.digit[..blocks];
    let separator = &classes.separator[..blocks];
    let runs = &mut classes.runs[..blocks];
    let run_bytes = &mut classes.run_bytes[..blocks];
    let before = |now: u64, then: u64, by: u32| now << by | then >> (64 - by);
    let after = |now: u64, next: u64, by: u32| now >> by | next << (64 - by);
    // Round `k` of the block after the current one (round 0: its run bytes).
    let mut next_rounds = [0u64; 7];
    for index in (0..blocks).rev() {
        let (digits, separators) = (digit[index], separator[index]);
        let (last_digits, last_separators) = match index.checked_sub(1) {
            Some(last) => (digit[last], separator[last]),
            None => (0, 0),
        };
        let (next_digits, next_separators) = match digit.get(index + 1).zip(separator.get(index + 1)) {
            Some((&digits, &separators)) => (digits, separators),
            None => (0, 0),
        };
        let digit_before = before(digits, last_digits, 1);
        let digit_after = after(digits, next_digits, 1);
        let single = separators & digit_before & digit_after;
        let first_of_two =
            separators & digit_before & after(separators, next_separators, 1) & after(digits, next_digits, 2);
        let second_of_two =
            separators & before(separators, last_separators, 1) & before(digits, last_digits, 2) & digit_after;
        let mut long = digits | single | first_of_two | second_of_two;
        run_bytes[index] = long;
        let mut these_rounds = [0u64; 7];
        these_rounds[0] = long;
        for round in 0..rounds {
            long &= after(long, next_rounds[round], takes[round]);
            these_rounds[round + 1] = long;
        }
        next_rounds = these_rounds;
        runs[index] &= long;
    }
}

/// The bytes a block's masks are computed from: its 64 bytes and the two
/// after them (for the trigrams that start at its last bytes).
type Window = [u8; 66];

/// The pass over the line: hands each block's window (padded past the end
/// with bytes in no class) to `block`, which returns the block's masks and
/// trigram bits, and derives the rest.
#[inline(always)]
fn fill(bytes: &[u8], hint: u8, classes: &mut Classes, block: impl Fn(&Window) -> (Masks, u64)) {
    // The blocks of the line, then (when the line's length is not a
    // multiple of 64) one all-clear block.
    let blocks = bytes.len() / 64 + 1 + usize::from(!bytes.len().is_multiple_of(64));
    for masks in classes.per_block() {
        // Every word is written below: only the length changes.
        masks.resize(blocks, 0);
    }
    let (mut inner_colons, mut double_colon) = (0, false);
    let mut last = Masks::default();
    let pad = if hint == 0 { b' ' } else { 0 };
    let [digit, alnum, hint_mask, runs, separator, upper_digit, literal_mask] =
        classes.per_block().map(|masks| masks.as_mut_slice());
    let mut start = 0;
    let mut index = 0;
    while start <= bytes.len() {
        let (masks, mut literal) =
            match bytes.get(start..start + 66).and_then(|window| <&Window>::try_from(window).ok()) {
                Some(window) => block(window),
                None => {
                    let rest = &bytes[start..];
                    let mut padded: Window = [pad; 66];
                    padded[..rest.len()].copy_from_slice(rest);
                    block(&padded)
                }
            };
        if bytes.len() - start < 64 {
            // Trigrams starting past the end stay clear.
            literal &= (1u64 << (bytes.len() - start)) - 1;
        }
        // Each "before" mask has the bit of byte i set when byte i - 1 is in
        // the class; the last block's top bit carries over.
        let before = |now: u64, then: u64| now << 1 | then >> 63;
        let colon_before = before(masks.colon, last.colon);
        digit[index] = masks.digit;
        alnum[index] = masks.alnum;
        hint_mask[index] = masks.hint;
        literal_mask[index] = literal;
        runs[index] = masks.digit & !before(masks.alnum, last.alnum);
        separator[index] = masks.separator;
        upper_digit[index] = masks.digit & before(masks.upper, last.upper);
        let hex_before_colon = masks.hex << 2 | last.hex >> 62;
        inner_colons += (masks.hex & colon_before & hex_before_colon).count_ones();
        double_colon |= masks.colon & colon_before != 0;
        last = masks;
        start += 64;
        index += 1;
    }
    if index < blocks {
        for masks in [digit, alnum, hint_mask, runs, separator, upper_digit, literal_mask] {
            masks[index] = 0;
        }
    }
    classes.inner_colons = inner_colons;
    classes.double_colon = double_colon;
}

/// A block's masks, one bit per byte: ASCII digits, letters and digits, the
/// hint byte, uppercase letters, colons, hex digits and the separators of
/// numeric runs (` -./()`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Masks {
    pub(crate) digit: u64,
    pub(crate) alnum: u64,
    pub(crate) hint: u64,
    pub(crate) upper: u64,
    pub(crate) colon: u64,
    pub(crate) hex: u64,
    pub(crate) separator: u64,
}

/// Whether a byte joins digits into a numeric run (one or two in a row).
pub(crate) fn is_run_separator(byte: u8) -> bool {
    matches!(byte, b' ' | b'-' | b'.' | b'/' | b'(' | b')')
}

/// A block's masks, a byte at a time (from the first 64 bytes of `window`).
pub(crate) fn block_portable(window: &[u8], hint: u8) -> Masks {
    let mut masks = Masks::default();
    for (index, &byte) in window.iter().take(64).enumerate() {
        masks.digit |= u64::from(byte.is_ascii_digit()) << index;
        masks.alnum |= u64::from(byte.is_ascii_alphanumeric()) << index;
        masks.hint |= u64::from(byte == hint) << index;
        masks.upper |= u64::from(byte.is_ascii_uppercase()) << index;
        masks.colon |= u64::from(byte == b':') << index;
        masks.hex |= u64::from(byte.is_ascii_hexdigit()) << index;
        masks.separator |= u64::from(is_run_separator(byte)) << index;
    }
    masks
}

/// A block's trigram bits, a byte at a time: bit `i` is set when the
/// trigram at `window[i..i + 3]` passes.
fn trigram_block_portable(window: &Window, trigrams: &Trigrams) -> u64 {
    let mut bits = 0u64;
    for (index, trigram) in window.windows(3).enumerate() {
        let buckets = trigrams.passes(0, trigram[0]) & trigrams.passes(1, trigram[1]) & trigrams.passes(2, trigram[2]);
        bits |= u64::from(buckets != 0) << index;
    }
    bits
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::{
        __m256i, _mm_loadu_si128, _mm256_and_si256, _mm256_broadcastsi128_si256, _mm256_cmpeq_epi8, _mm256_loadu_si256,
        _mm256_min_epu8, _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8, _mm256_setzero_si256,
        _mm256_shuffle_epi8, _mm256_srli_epi16, _mm256_sub_epi8,
    };

    use super::{Classes, Masks, Trigrams, Window};

    /// The trigram set's nibble tables, each row in both lanes.
    struct Tables {
        low: [__m256i; 3],
        high: [__m256i; 3],
    }

    /// [`super::classify`] with the per-block work in AVX2.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn classify(bytes: &[u8], hint: u8, trigrams: Option<&Trigrams>, classes: &mut Classes) {
        super::fill(bytes, hint, classes, |window| block(window, hint, trigrams));
    }

    /// One block's masks and trigram bits. Not inlined: inlined into the
    /// pass, the compiler moved the masks through vector registers a byte
    /// at a time, which took several times as long.
    #[target_feature(enable = "avx2")]
    #[inline(never)]
    fn block(window: &Window, hint: u8, trigrams: Option<&Trigrams>) -> (Masks, u64) {
        let pointer = window.as_ptr();
        // SAFETY: `window` is 66 readable bytes; both loads are unaligned
        // loads of 32 bytes inside its first 64.
        let (low, high) = unsafe {
            (_mm256_loadu_si256(pointer.cast::<__m256i>()), _mm256_loadu_si256(pointer.add(32).cast::<__m256i>()))
        };
        let (low, high) = (half(low, hint), half(high, hint));
        let masks = Masks {
            digit: low.digit | high.digit << 32,
            alnum: low.alnum | high.alnum << 32,
            hint: low.hint | high.hint << 32,
            upper: low.upper | high.upper << 32,
            colon: low.colon | high.colon << 32,
            hex: low.hex | high.hex << 32,
            separator: low.separator | high.separator << 32,
        };
        let Some(trigrams) = trigrams else { return (masks, 0) };
        // The tables are loaded for every block: held across blocks, they
        // would be spilled and rebuilt a byte at a time.
        let table = |row: &[u8; 16]| {
            // SAFETY: an unaligned 16-byte load of a 16-byte array.
            _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(row.as_ptr().cast()) })
        };
        let tables = Tables {
            low: [table(&trigrams.low[0]), table(&trigrams.low[1]), table(&trigrams.low[2])],
            high: [table(&trigrams.high[0]), table(&trigrams.high[1]), table(&trigrams.high[2])],
        };
        // SAFETY: 34 bytes from offsets 0 and 32 are inside the 66.
        let literal = unsafe { trigram_half(pointer, &tables) | trigram_half(pointer.add(32), &tables) << 32 };
        (masks, literal)
    }

    /// The trigram bits of the 32 positions from `pointer`.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX2 and 34 bytes from `pointer` are readable.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn trigram_half(pointer: *const u8, tables: &Tables) -> u64 {
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
                _mm256_shuffle_epi8(tables.low[offset], low_nibbles),
                _mm256_shuffle_epi8(tables.high[offset], high_nibbles),
            );
            buckets = _mm256_and_si256(buckets, passes);
        }
        let none = _mm256_cmpeq_epi8(buckets, _mm256_setzero_si256());
        u64::from(!(_mm256_movemask_epi8(none) as u32))
    }

    /// The masks of 32 bytes, in the low halves.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn half(bytes: __m256i, hint: u8) -> Masks {
        let digit = within::<b'0', 9>(bytes);
        let folded = _mm256_or_si256(bytes, _mm256_set1_epi8(0x20));
        let letter = within::<b'a', 25>(folded);
        let hex_letter = within::<b'a', 5>(folded);
        Masks {
            digit: mask(digit),
            alnum: mask(_mm256_or_si256(digit, letter)),
            hint: mask(_mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(hint as i8))),
            upper: mask(within::<b'A', 25>(bytes)),
            colon: mask(equal::<b':'>(bytes)),
            hex: mask(_mm256_or_si256(digit, hex_letter)),
            separator: mask(_mm256_or_si256(
                _mm256_or_si256(equal::<b' '>(bytes), equal::<b'-'>(bytes)),
                _mm256_or_si256(
                    _mm256_or_si256(equal::<b'.'>(bytes), equal::<b'/'>(bytes)),
                    _mm256_or_si256(equal::<b'('>(bytes), equal::<b')'>(bytes)),
                ),
            )),
        }
    }

    /// The bytes equal to `BYTE`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn equal<const BYTE: u8>(bytes: __m256i) -> __m256i {
        _mm256_cmpeq_epi8(bytes, _mm256_set1_epi8(BYTE as i8))
    }

    /// The bytes in the range of `WIDTH + 1` bytes from `FIRST`: those for
    /// which byte - FIRST (wrapping) is at most `WIDTH` (unsigned).
    #[target_feature(enable = "avx2")]
    #[inline]
    fn within<const FIRST: u8, const WIDTH: u8>(bytes: __m256i) -> __m256i {
        let offset = _mm256_sub_epi8(bytes, _mm256_set1_epi8(FIRST as i8));
        _mm256_cmpeq_epi8(_mm256_min_epu8(offset, _mm256_set1_epi8(WIDTH as i8)), offset)
    }

    /// One bit per byte of a comparison result.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn mask(vector: __m256i) -> u64 {
        u64::from(_mm256_movemask_epi8(vector) as u32)
    }

    /// The per-block work alone, for the tests; `None` without AVX2.
    #[cfg(test)]
    pub(super) fn block_for_tests(window: &Window, hint: u8, trigrams: Option<&Trigrams>) -> Option<(Masks, u64)> {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return None;
        }
        // SAFETY: the CPU supports AVX2 (checked above).
        Some(unsafe { block(window, hint, trigrams) })
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::{
        __m512i, _mm_loadu_si128, _mm512_and_si512, _mm512_broadcast_i32x4, _mm512_cmpeq_epi8_mask,
        _mm512_cmplt_epu8_mask, _mm512_loadu_si512, _mm512_or_si512, _mm512_set1_epi8, _mm512_shuffle_epi8,
        _mm512_srli_epi16, _mm512_sub_epi8, _mm512_test_epi8_mask,
    };

    use super::{Classes, Masks, Trigrams, Window};

    /// Whether the CPU has what [`classify`] needs.
    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bw")
    }

    /// [`super::classify`] with the per-block work in AVX-512.
    ///
    /// # Safety
    ///
    /// The CPU supports AVX-512 F and BW.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn classify(bytes: &[u8], hint: u8, trigrams: Option<&Trigrams>, classes: &mut Classes) {
        super::fill(bytes, hint, classes, |window| block(window, hint, trigrams));
    }

    /// One block's masks and trigram bits: each class is one comparison of
    /// the block's 64 bytes into a mask register. Not inlined, for the same
    /// reason as the AVX2 block.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline(never)]
    fn block(window: &Window, hint: u8, trigrams: Option<&Trigrams>) -> (Masks, u64) {
        let pointer = window.as_ptr();
        // SAFETY: `window` is 66 readable bytes; the load takes its first 64.
        let bytes = unsafe { _mm512_loadu_si512(pointer.cast()) };
        let digit = within::<b'0', 10>(bytes);
        let folded = _mm512_or_si512(bytes, _mm512_set1_epi8(0x20));
        let letter = within::<b'a', 26>(folded);
        let hex_letter = within::<b'a', 6>(folded);
        let separator = equal::<b' '>(bytes)
            | equal::<b'-'>(bytes)
            | equal::<b'.'>(bytes)
            | equal::<b'/'>(bytes)
            | equal::<b'('>(bytes)
            | equal::<b')'>(bytes);
        let masks = Masks {
            digit,
            alnum: digit | letter,
            hint: _mm512_cmpeq_epi8_mask(bytes, _mm512_set1_epi8(hint as i8)),
            upper: within::<b'A', 26>(bytes),
            colon: equal::<b':'>(bytes),
            hex: digit | hex_letter,
            separator,
        };
        let Some(trigrams) = trigrams else { return (masks, 0) };
        let table = |row: &[u8; 16]| {
            // SAFETY: an unaligned 16-byte load of a 16-byte array.
            _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(row.as_ptr().cast()) })
        };
        let nibble = _mm512_set1_epi8(0x0f);
        let case = _mm512_set1_epi8(0x20);
        let mut buckets = _mm512_set1_epi8(-1);
        for offset in 0..3 {
            // SAFETY: 64 bytes from offset 0, 1 or 2 lie within the 66 of the window.
            let loaded: __m512i = unsafe { _mm512_loadu_si512(pointer.add(offset).cast()) };
            let folded = _mm512_or_si512(loaded, case);
            let low_nibbles = _mm512_and_si512(folded, nibble);
            let high_nibbles = _mm512_and_si512(_mm512_srli_epi16::<4>(folded), nibble);
            let passes = _mm512_and_si512(
                _mm512_shuffle_epi8(table(&trigrams.low[offset]), low_nibbles),
                _mm512_shuffle_epi8(table(&trigrams.high[offset]), high_nibbles),
            );
            buckets = _mm512_and_si512(buckets, passes);
        }
        (masks, _mm512_test_epi8_mask(buckets, buckets))
    }

    /// The bytes equal to `BYTE`.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn equal<const BYTE: u8>(bytes: __m512i) -> u64 {
        _mm512_cmpeq_epi8_mask(bytes, _mm512_set1_epi8(BYTE as i8))
    }

    /// The bytes in the range of `COUNT` bytes from `FIRST`: those for which
    /// byte - FIRST (wrapping) is below `COUNT` (unsigned).
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    fn within<const FIRST: u8, const COUNT: u8>(bytes: __m512i) -> u64 {
        _mm512_cmplt_epu8_mask(_mm512_sub_epi8(bytes, _mm512_set1_epi8(FIRST as i8)), _mm512_set1_epi8(COUNT as i8))
    }

    /// The per-block work alone, for the tests; `None` without AVX-512.
    #[cfg(test)]
    pub(super) fn block_for_tests(window: &Window, hint: u8, trigrams: Option<&Trigrams>) -> Option<(Masks, u64)> {
        if !available() {
            return None;
        }
        // SAFETY: the CPU supports AVX-512 F and BW (checked above).
        Some(unsafe { block(window, hint, trigrams) })
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
        classify(bytes, b'@', None, 1, &mut classes);
        classes
    }

    /// The block's masks and trigram bits from the vector code (when the
    /// CPU has it), checked equal to the portable ones, which are returned.
    fn block_checked(window: &Window, hint: u8, trigrams: Option<&Trigrams>) -> (Masks, u64) {
        let portable =
            (block_portable(window, hint), trigrams.map_or(0, |trigrams| trigram_block_portable(window, trigrams)));
        #[cfg(target_arch = "x86_64")]
        if let Some(vector) = avx2::block_for_tests(window, hint, trigrams) {
            assert_eq!(vector, portable, "avx2: {window:?} hint {hint}");
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(vector) = avx512::block_for_tests(window, hint, trigrams) {
            assert_eq!(vector, portable, "avx512: {window:?} hint {hint}");
        }
        portable
    }

    fn bit(words: &[u64], position: usize) -> bool {
        words.get(position / 64).is_some_and(|word| word >> (position % 64) & 1 == 1)
    }

    #[test]
    fn every_byte_value_is_classified_like_the_std_predicates() {
        for byte in 0..=255u8 {
            for position in [0usize, 5, 31, 32, 33, 63] {
                let mut block = [b'-'; 66];
                block[position] = byte;
                for hint in [b'@', 0, 0xff, byte] {
                    let (expected, _) = block_checked(&block, hint, None);
                    let set = |mask: u64| mask >> position & 1 == 1;
                    assert_eq!(set(expected.digit), byte.is_ascii_digit());
                    assert_eq!(set(expected.alnum), byte.is_ascii_alphanumeric());
                    assert_eq!(set(expected.hint), byte == hint);
                    assert_eq!(set(expected.upper), byte.is_ascii_uppercase());
                    assert_eq!(set(expected.colon), byte == b':');
                    assert_eq!(set(expected.hex), byte.is_ascii_hexdigit());
                }
            }
        }
    }

    #[test]
    fn vector_and_portable_agree_on_pseudo_random_blocks() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut block = [0u8; 66];
            for byte in &mut block {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = (state >> 24) as u8;
            }
            let hint = block[7];
            block_checked(&block, hint, None);
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

    /// The bytes of the numeric run from the digit at `start`, a byte at a
    /// time: digits, and one or two separators when a digit follows them.
    fn run_length(line: &[u8], start: usize) -> usize {
        let mut end = start;
        loop {
            while line.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            let separators = line[end..].iter().take(2).take_while(|&&byte| is_run_separator(byte)).count();
            match (1..=separators).find(|&count| line.get(end + count).is_some_and(u8::is_ascii_digit)) {
                Some(count) => end += count,
                None => return end - start,
            }
        }
    }

    #[test]
    fn derived_masks_and_colon_counts_agree_with_plain_loops() {
        let pieces: [&[u8]; 16] = [
            b"AB12",
            b"x7",
            b" 42",
            b"fe80::1",
            b"08:00:00",
            b"a:b:c",
            b"\":\"",
            b"DE89 3704",
            b"::",
            b"2026-11-20",
            b"120.0.0.0",
            b"(415) 555-2671",
            b"1 - 2",
            b"5..6",
            b"7---8",
            b"e4:5a:6b",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..1500 {
            let mut line = Vec::new();
            while line.len() < (state % 200) as usize {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                line.extend_from_slice(pieces[(state % 16) as usize]);
            }
            let min_span = [1, 2, 3, 7, 13, 64, 100][round % 7];
            let mut found = Classes::default();
            classify(&line, b'@', None, min_span, &mut found);
            let before = |index: usize, test: fn(&u8) -> bool| index > 0 && test(&line[index - 1]);
            for position in 0..found.digit.len() * 64 {
                let digit = line.get(position).is_some_and(u8::is_ascii_digit);
                let free = digit && !before(position, u8::is_ascii_alphanumeric);
                let long = free && (min_span <= 1 || run_length(&line, position) >= min_span.min(64));
                assert_eq!(bit(&found.runs, position), long, "{line:?} {position} {min_span}");
                let upper_digit = digit && before(position, u8::is_ascii_uppercase);
                assert_eq!(bit(&found.upper_digit, position), upper_digit, "{line:?} {position}");
                if digit && found.runs.iter().any(|&runs| runs != 0) {
                    let end = next_clear(&found.run_bytes, position);
                    assert_eq!(end - position, run_length(&line, position), "{line:?} {position}");
                    let digits = line[position..end].iter().filter(|byte| byte.is_ascii_digit()).count();
                    assert_eq!(found.digits_between(position, end) as usize, digits, "{line:?} {position}");
                }
            }
            let inner = (1..line.len().saturating_sub(1))
                .filter(|&index| {
                    line[index] == b':' && line[index - 1].is_ascii_hexdigit() && line[index + 1].is_ascii_hexdigit()
                })
                .count();
            assert_eq!(found.inner_colons as usize, inner, "{line:?}");
            assert_eq!(found.double_colon, line.windows(2).any(|pair| pair == b"::"), "{line:?}");
        }
    }

    #[test]
    fn trigram_masks_are_exact_for_lone_buckets_and_agree_with_the_portable_version() {
        let trigrams = Trigrams::new(&[*b"eyJ", *b"bea", *b"sk_", *b"AKI", *b"ghp", *b"api"]);
        let line: Vec<u8> =
            b"x eyJhb Bearer SK_LIVE app Api-Key aki\xff ghp_ api".iter().copied().cycle().take(333).collect();
        let literal = |bytes: &[u8]| {
            let mut classes = Classes::default();
            classify(bytes, b'@', Some(&trigrams), 1, &mut classes);
            classes.literal
        };
        for length in [0usize, 1, 2, 3, 31, 32, 33, 34, 63, 64, 65, 66, 67, 100, 128, 130, 333] {
            let bytes = &line[..length];
            let found = literal(bytes);
            assert_eq!(found.len(), length / 64 + 1 + usize::from(length % 64 != 0));
            for position in 0..found.len() * 64 {
                let window = bytes.get(position..position + 3).map(|window| {
                    let folded: Vec<u8> = window.iter().map(|byte| byte | 0x20).collect();
                    [&b"eyj"[..], b"bea", b"sk\x7f", b"aki", b"ghp", b"api"].contains(&folded.as_slice())
                });
                assert_eq!(bit(&found, position), window.unwrap_or(false), "{length} {position}");
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..300 {
            let mut window = [0u8; 66];
            for byte in &mut window {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = b"eyJbeasK_kiAghpxo@"[(state % 18) as usize];
            }
            block_checked(&window, b'@', Some(&trigrams));
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
