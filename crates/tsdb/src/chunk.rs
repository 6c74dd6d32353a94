//! Gorilla-compressed sample chunks: delta-of-delta timestamps and XOR float
//! values, as in Facebook's Gorilla paper and Prometheus's XOR chunk.
//!
//! Key types: [`ChunkEncoder`], the open (head) chunk that samples are appended to
//! in place, and [`Chunk`], a sealed, immutable chunk; both decode through
//! [`ChunkIter`]. Values are stored as raw bit patterns, so every NaN payload
//! (the staleness marker included) round-trips bit for bit.
//!
//! Layout of the bit stream, most significant bit first:
//! - first sample: the timestamp as 64 raw bits, then the value as 64 raw bits;
//! - later samples: the delta of deltas of the timestamp (the first delta is taken
//!   against a previous delta of 0) in one of five buckets — `0` for zero,
//!   `10` + 14 bits, `110` + 17 bits, `1110` + 20 bits, `1111` + 64 bits — followed
//!   by the XOR of the value with the previous one: `0` when equal, `10` + the
//!   meaningful bits when they fit the previous leading/trailing-zero window,
//!   `11` + 5 bits of leading zeros + 6 bits of length + the meaningful bits
//!   otherwise.
//!
//! Timestamp arithmetic wraps, so any strictly increasing `i64` sequence
//! round-trips. This module keeps no sample counts beyond `u16` per chunk and does
//! not decide when to cut a chunk; the series code does.

/// Timestamp buckets for the delta of deltas: (prefix bits, prefix length, payload bits).
const TIMESTAMP_BUCKETS: [(u64, u32, u32); 3] = [(0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20)];
/// Prefix of the widest timestamp bucket, followed by 64 raw bits.
const TIMESTAMP_WIDE_PREFIX: (u64, u32) = (0b1111, 4);
/// Marks "no leading/trailing window yet" in the XOR state.
const NO_WINDOW: u8 = u8::MAX;
/// The largest leading-zero count the 5-bit field can hold.
const MAX_LEADING_ZEROS: u32 = 31;

/// Appends bits to a byte vector, most significant bit first.
#[derive(Debug, Clone, Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Unused low bits in the last byte (0 when the last byte is full or there is none).
    free_bits_in_last: u32,
}

impl BitWriter {
    fn write_bit(&mut self, bit: bool) {
        self.write_bits(u64::from(bit), 1);
    }

    /// Writes the low `count` bits of `value` (`count` ≤ 64).
    fn write_bits(&mut self, value: u64, count: u32) {
        debug_assert!(count <= 64);
        let mut remaining = count;
        while remaining > 0 {
            if self.free_bits_in_last == 0 {
                self.bytes.push(0);
                self.free_bits_in_last = 8;
            }
            let take = remaining.min(self.free_bits_in_last);
            let shifted = value >> (remaining - take);
            let piece = (shifted & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= piece << (self.free_bits_in_last - take);
            }
            self.free_bits_in_last -= take;
            remaining -= take;
        }
    }
}

/// Reads bits written by [`BitWriter`]. Returns `None` past the end.
#[derive(Debug, Clone)]
struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position of the next bit, counted from the start of `bytes`.
    bit_position: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, bit_position: 0 }
    }

    fn read_bit(&mut self) -> Option<bool> {
        let byte = *self.bytes.get(self.bit_position / 8)?;
        let bit = (byte >> (7 - (self.bit_position % 8))) & 1;
        self.bit_position += 1;
        Some(bit == 1)
    }

    /// Bits not read yet.
    fn remaining_bits(&self) -> usize {
        (self.bytes.len() * 8).saturating_sub(self.bit_position)
    }

    /// The next 57 or more bits, left-aligned; bits past the end read as zero.
    fn peek_window(&self) -> u64 {
        let first_byte = self.bit_position / 8;
        let mut buffer = [0u8; 8];
        match self.bytes.get(first_byte..first_byte + 8) {
            Some(whole) => buffer.copy_from_slice(whole),
            None => {
                let tail = self.bytes.get(first_byte..).unwrap_or(&[]);
                buffer[..tail.len()].copy_from_slice(tail);
            }
        }
        u64::from_be_bytes(buffer) << (self.bit_position % 8)
    }

    /// Advances past `count` bits the caller has checked are there.
    fn skip(&mut self, count: u32) {
        debug_assert!(count as usize <= self.remaining_bits());
        self.bit_position += count as usize;
    }

    /// Reads `count` bits (≤ 64) as the low bits of the result.
    fn read_bits(&mut self, count: u32) -> Option<u64> {
        debug_assert!(count <= 64);
        if count == 0 {
            return Some(0);
        }
        if count as usize > self.remaining_bits() {
            return None;
        }
        if count <= 57 {
            let window = self.peek_window();
            self.bit_position += count as usize;
            return Some(window >> (64 - count));
        }
        // The bits span at most 9 bytes: load them into a 128-bit window.
        let end = self.bit_position + count as usize;
        let first_byte = self.bit_position / 8;
        let available = (self.bytes.len() - first_byte).min(16);
        let mut buffer = [0u8; 16];
        buffer[..available].copy_from_slice(&self.bytes[first_byte..first_byte + available]);
        let window = u128::from_be_bytes(buffer) << (self.bit_position % 8);
        self.bit_position = end;
        Some((window >> (128 - count)) as u64)
    }
}

/// True when `value` fits a two's-complement field of `bits` bits.
fn fits_signed(value: i64, bits: u32) -> bool {
    let limit = 1i64 << (bits - 1);
    (-limit..limit).contains(&value)
}

/// Sign-extends the low `bits` bits of `raw`.
fn sign_extend(raw: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((raw << shift) as i64) >> shift
}

/// The state shared by the encoder and the decoder for the value stream.
#[derive(Debug, Clone, Copy)]
struct XorWindow {
    leading: u8,
    trailing: u8,
}

impl Default for XorWindow {
    fn default() -> Self {
        Self { leading: NO_WINDOW, trailing: NO_WINDOW }
    }
}

/// An open chunk: samples are appended in place to its bit stream.
#[derive(Debug, Clone, Default)]
pub struct ChunkEncoder {
    writer: BitWriter,
    count: u16,
    first_timestamp: i64,
    last_timestamp: i64,
    last_delta: i64,
    last_value_bits: u64,
    window: XorWindow,
}

impl ChunkEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of samples in the chunk.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Timestamp of the first sample (meaningless when empty).
    pub fn min_time(&self) -> i64 {
        self.first_timestamp
    }

    /// Timestamp of the last sample (meaningless when empty).
    pub fn max_time(&self) -> i64 {
        self.last_timestamp
    }

    /// The last sample appended, if any.
    pub fn last(&self) -> Option<(i64, f64)> {
        (self.count > 0).then(|| (self.last_timestamp, f64::from_bits(self.last_value_bits)))
    }

    /// Whether the chunk can take another sample without overflowing its counter.
    pub fn is_full(&self) -> bool {
        self.count == u16::MAX
    }

    /// Appends a sample. The caller guarantees `timestamp` is greater than the
    /// last one and that the chunk is not full.
    pub fn append(&mut self, timestamp: i64, value: f64) {
        debug_assert!(!self.is_full());
        debug_assert!(self.count == 0 || timestamp > self.last_timestamp);
        let value_bits = value.to_bits();
        if self.count == 0 {
            self.writer.write_bits(timestamp as u64, 64);
            self.writer.write_bits(value_bits, 64);
            self.first_timestamp = timestamp;
            self.last_delta = 0;
        } else {
            let delta = timestamp.wrapping_sub(self.last_timestamp);
            let delta_of_delta = delta.wrapping_sub(self.last_delta);
            self.write_delta_of_delta(delta_of_delta);
            self.write_value(value_bits);
            self.last_delta = delta;
        }
        self.last_timestamp = timestamp;
        self.last_value_bits = value_bits;
        self.count += 1;
    }

    fn write_delta_of_delta(&mut self, delta_of_delta: i64) {
        if delta_of_delta == 0 {
            self.writer.write_bit(false);
            return;
        }
        for (prefix, prefix_length, payload_bits) in TIMESTAMP_BUCKETS {
            if fits_signed(delta_of_delta, payload_bits) {
                self.writer.write_bits(prefix, prefix_length);
                self.writer.write_bits(delta_of_delta as u64, payload_bits);
                return;
            }
        }
        let (prefix, prefix_length) = TIMESTAMP_WIDE_PREFIX;
        self.writer.write_bits(prefix, prefix_length);
        self.writer.write_bits(delta_of_delta as u64, 64);
    }

    fn write_value(&mut self, value_bits: u64) {
        let xor = value_bits ^ self.last_value_bits;
        if xor == 0 {
            self.writer.write_bit(false);
            return;
        }
        self.writer.write_bit(true);
        let leading = xor.leading_zeros().min(MAX_LEADING_ZEROS);
        let trailing = xor.trailing_zeros();
        let window = self.window;
        if window.leading != NO_WINDOW && leading >= u32::from(window.leading) && trailing >= u32::from(window.trailing)
        {
            self.writer.write_bit(false);
            let significant = 64 - u32::from(window.leading) - u32::from(window.trailing);
            self.writer.write_bits(xor >> window.trailing, significant);
            return;
        }
        self.writer.write_bit(true);
        let significant = 64 - leading - trailing;
        self.writer.write_bits(u64::from(leading), 5);
        // A length of 64 does not fit 6 bits; 0 stands for it (0 is impossible otherwise).
        self.writer.write_bits(u64::from(significant % 64), 6);
        self.writer.write_bits(xor >> trailing, significant);
        self.window = XorWindow { leading: leading as u8, trailing: trailing as u8 };
    }

    /// The encoded bit stream so far.
    pub fn bytes(&self) -> &[u8] {
        &self.writer.bytes
    }

    /// Decodes every sample of the chunk.
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::new(&self.writer.bytes, self.count)
    }

    /// Seals the chunk: the bytes are trimmed to their length and the encoder state dropped.
    pub fn seal(self) -> Chunk {
        Chunk {
            bytes: self.writer.bytes.into_boxed_slice(),
            count: self.count,
            min_time: self.first_timestamp,
            max_time: self.last_timestamp,
        }
    }

    /// Heap bytes held (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        self.writer.bytes.capacity()
    }
}

/// A sealed, immutable chunk.
#[derive(Debug, Clone)]
pub struct Chunk {
    bytes: Box<[u8]>,
    count: u16,
    min_time: i64,
    max_time: i64,
}

impl Chunk {
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn min_time(&self) -> i64 {
        self.min_time
    }

    pub fn max_time(&self) -> i64 {
        self.max_time
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter::new(&self.bytes, self.count)
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Rebuilds a sealed chunk from its encoded bytes and sample count (as
    /// written by [`Chunk::bytes`] and [`Chunk::len`]), decoding it once to check
    /// that it holds exactly `count` strictly increasing samples. `None` when it
    /// does not: the bytes are damaged.
    pub fn from_encoded(bytes: Box<[u8]>, count: u16) -> Option<Chunk> {
        if count == 0 {
            return None;
        }
        let mut reader = ChunkIter::new(&bytes, count);
        let mut decoded: u16 = 0;
        let mut min_time = 0;
        let mut max_time = 0;
        while decoded < count {
            let (timestamp, _) = reader.decode_next()?;
            if decoded == 0 {
                min_time = timestamp;
            } else if timestamp <= max_time {
                return None;
            }
            max_time = timestamp;
            decoded += 1;
            reader.read = decoded;
        }
        Some(Chunk { bytes, count, min_time, max_time })
    }
}

/// Decodes the samples of a chunk in order. Stops early (after a debug assertion)
/// if the stream is shorter than its sample count says, which only a bug can cause.
#[derive(Debug, Clone)]
pub struct ChunkIter<'a> {
    reader: BitReader<'a>,
    remaining: u16,
    read: u16,
    timestamp: i64,
    delta: i64,
    value_bits: u64,
    window: XorWindow,
}

impl<'a> ChunkIter<'a> {
    fn new(bytes: &'a [u8], count: u16) -> Self {
        Self {
            reader: BitReader::new(bytes),
            remaining: count,
            read: 0,
            timestamp: 0,
            delta: 0,
            value_bits: 0,
            window: XorWindow::default(),
        }
    }

    fn decode_next(&mut self) -> Option<(i64, u64)> {
        if self.read == 0 {
            self.timestamp = self.reader.read_bits(64)? as i64;
            self.value_bits = self.reader.read_bits(64)?;
            return Some((self.timestamp, self.value_bits));
        }
        // One look at the next 57 bits covers the timestamp (but for the rare
        // 64-bit bucket) and the value's control bits and header; only the
        // value's meaningful bits need a second read.
        let window = self.reader.peek_window();
        let ones = window.leading_ones().min(4);
        if ones == 4 {
            return self.decode_next_bitwise();
        }
        let (mut used, delta_of_delta) = match ones {
            0 => (1, 0),
            _ => {
                let (_, prefix_length, payload_bits) = TIMESTAMP_BUCKETS[ones as usize - 1];
                let raw = (window << prefix_length) >> (64 - payload_bits);
                (prefix_length + payload_bits, sign_extend(raw, payload_bits))
            }
        };
        // At most 24 bits are used so far, so the control bits and the 11-bit
        // header lie within the window.
        let control = (window << used) >> 62;
        let changed = match control {
            0b00 | 0b01 => {
                used += 1;
                false
            }
            0b10 => {
                used += 2;
                if self.window.leading == NO_WINDOW {
                    return None;
                }
                true
            }
            _ => {
                let header = ((window << (used + 2)) >> (64 - 11)) as u32;
                used += 13;
                self.set_window(header)?;
                true
            }
        };
        if used as usize > self.reader.remaining_bits() {
            return None;
        }
        self.reader.skip(used);
        if changed {
            let significant = 64 - u32::from(self.window.leading) - u32::from(self.window.trailing);
            let meaningful = self.reader.read_bits(significant)?;
            // `trailing` is at most 63: the significant length is at least 1.
            self.value_bits ^= meaningful << self.window.trailing;
        }
        self.delta = self.delta.wrapping_add(delta_of_delta);
        self.timestamp = self.timestamp.wrapping_add(self.delta);
        Some((self.timestamp, self.value_bits))
    }

    /// Decodes a sample after the first field by field (the path of the
    /// 64-bit timestamp bucket).
    fn decode_next_bitwise(&mut self) -> Option<(i64, u64)> {
        let delta_of_delta = self.read_delta_of_delta()?;
        self.delta = self.delta.wrapping_add(delta_of_delta);
        self.timestamp = self.timestamp.wrapping_add(self.delta);
        self.read_value()?;
        Some((self.timestamp, self.value_bits))
    }

    fn read_delta_of_delta(&mut self) -> Option<i64> {
        // The bucket prefix is up to four bits: count its leading ones at once.
        let ones = self.reader.peek_window().leading_ones().min(4);
        let prefix_length = (ones + 1).min(4);
        if prefix_length as usize > self.reader.remaining_bits() {
            return None;
        }
        self.reader.skip(prefix_length);
        match ones {
            0 => Some(0),
            1..=3 => {
                let payload_bits = TIMESTAMP_BUCKETS[ones as usize - 1].2;
                Some(sign_extend(self.reader.read_bits(payload_bits)?, payload_bits))
            }
            _ => Some(self.reader.read_bits(64)? as i64),
        }
    }

    /// Takes the leading/trailing-zero window from an 11-bit value header
    /// (5 bits of leading zeros, 6 of length, 0 meaning 64).
    fn set_window(&mut self, header: u32) -> Option<()> {
        let leading = header >> 6;
        let mut significant = header & 0x3f;
        if significant == 0 {
            significant = 64;
        }
        // A corrupt stream could claim more than 64 bits; refuse rather than overflow.
        let trailing = 64u32.checked_sub(leading + significant)?;
        self.window = XorWindow { leading: leading as u8, trailing: trailing as u8 };
        Some(())
    }

    fn read_value(&mut self) -> Option<()> {
        if !self.reader.read_bit()? {
            return Some(());
        }
        if self.reader.read_bit()? {
            let header = self.reader.read_bits(11)? as u32;
            self.set_window(header)?;
        } else if self.window.leading == NO_WINDOW {
            return None;
        }
        let significant = 64 - u32::from(self.window.leading) - u32::from(self.window.trailing);
        let meaningful = self.reader.read_bits(significant)?;
        // `trailing` is at most 63: the significant length is at least 1.
        self.value_bits ^= meaningful << self.window.trailing;
        Some(())
    }
}

impl Iterator for ChunkIter<'_> {
    type Item = (i64, f64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let Some((timestamp, value_bits)) = self.decode_next() else {
            debug_assert!(false, "chunk stream ended before its sample count");
            self.remaining = 0;
            return None;
        };
        self.remaining -= 1;
        self.read += 1;
        Some((timestamp, f64::from_bits(value_bits)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.remaining)))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::STALE_NAN_BITS;

    fn encode(samples: &[(i64, u64)]) -> ChunkEncoder {
        let mut encoder = ChunkEncoder::new();
        for &(timestamp, bits) in samples {
            encoder.append(timestamp, f64::from_bits(bits));
        }
        encoder
    }

    fn decode_bits(iter: ChunkIter<'_>) -> Vec<(i64, u64)> {
        iter.map(|(timestamp, value)| (timestamp, value.to_bits())).collect()
    }

    #[test]
    fn empty_chunk_decodes_to_nothing() {
        let encoder = ChunkEncoder::new();
        assert_eq!(encoder.iter().count(), 0);
        assert!(encoder.last().is_none());
        assert_eq!(encoder.seal().iter().count(), 0);
    }

    #[test]
    fn regular_scrape_compresses_well() {
        let samples: Vec<(i64, u64)> =
            (0..120).map(|index| (1_700_000_000_000 + index * 15_000, (index as f64 * 2.0).to_bits())).collect();
        let encoder = encode(&samples);
        assert_eq!(decode_bits(encoder.iter()), samples);
        // Constant interval: 1 bit per timestamp after the second; small value changes.
        assert!(encoder.bytes().len() < 120 * 3, "{} bytes", encoder.bytes().len());
        let chunk = encoder.seal();
        assert_eq!(chunk.min_time(), samples[0].0);
        assert_eq!(chunk.max_time(), samples[119].0);
        assert_eq!(decode_bits(chunk.iter()), samples);
    }

    #[test]
    fn constant_series_costs_about_two_bits_per_sample() {
        let samples: Vec<(i64, u64)> = (0..120).map(|index| (index * 1000, 1.0f64.to_bits())).collect();
        let encoder = encode(&samples);
        // 16 bytes for the first sample, ~3 for the first delta, then 2 bits per sample.
        assert!(encoder.bytes().len() <= 16 + 3 + 30 + 1, "{} bytes", encoder.bytes().len());
        assert_eq!(decode_bits(encoder.iter()), samples);
    }

    #[test]
    fn staleness_marker_and_nan_payloads_round_trip_bit_exactly() {
        let samples = vec![
            (1, 1.5f64.to_bits()),
            (2, STALE_NAN_BITS),
            (3, f64::NAN.to_bits()),
            (4, 0x7ff8_0000_dead_beef),
            (5, 0xfff0_0000_0000_0001),
            (6, STALE_NAN_BITS),
            (7, (-0.0f64).to_bits()),
            (8, 0.0f64.to_bits()),
            (9, f64::INFINITY.to_bits()),
        ];
        assert_eq!(decode_bits(encode(&samples).iter()), samples);
    }

    #[test]
    fn extreme_timestamps_round_trip() {
        let samples = vec![(i64::MIN, 0), (-1, 1), (0, 2), (1, 3), (i64::MAX - 1, 4), (i64::MAX, 5)];
        assert_eq!(decode_bits(encode(&samples).iter()), samples);
    }

    #[test]
    fn every_timestamp_bucket_boundary_round_trips() {
        let mut timestamps = vec![0i64, 100];
        let mut delta = 100i64;
        for delta_of_delta in
            [0, 1, -1, 8191, -8192, 8192, -8193, 65_535, -65_536, 65_536, 524_287, -524_288, 524_288, 1 << 40]
        {
            delta += delta_of_delta;
            // Keep timestamps increasing: restart the delta when it would go non-positive.
            if delta <= 0 {
                delta = 1;
            }
            let next = timestamps[timestamps.len() - 1] + delta;
            timestamps.push(next);
        }
        let samples: Vec<(i64, u64)> = timestamps.iter().map(|&timestamp| (timestamp, 0)).collect();
        assert_eq!(decode_bits(encode(&samples).iter()), samples);
    }

    #[test]
    fn bit_reader_refuses_to_read_past_the_end() {
        let mut reader = BitReader::new(&[0b1010_0000]);
        assert_eq!(reader.read_bits(3), Some(0b101));
        assert_eq!(reader.read_bits(6), None);
        assert_eq!(reader.read_bits(5), Some(0));
        assert_eq!(reader.read_bit(), None);
    }

    #[test]
    fn bit_writer_and_reader_agree() {
        let mut writer = BitWriter::default();
        writer.write_bits(0b1, 1);
        writer.write_bits(u64::MAX, 64);
        writer.write_bits(0x1234, 13);
        writer.write_bits(0, 7);
        let mut reader = BitReader::new(&writer.bytes);
        assert_eq!(reader.read_bits(1), Some(1));
        assert_eq!(reader.read_bits(64), Some(u64::MAX));
        assert_eq!(reader.read_bits(13), Some(0x1234 & 0x1fff));
        assert_eq!(reader.read_bits(7), Some(0));
    }

    /// Strictly increasing timestamps built from a start and positive gaps; gaps
    /// mix small, scrape-like and huge values so every bucket is hit.
    fn increasing_timestamps() -> impl Strategy<Value = Vec<i64>> {
        let gap = prop_oneof![
            1i64..100,
            Just(15_000i64),
            14_000i64..16_000,
            1i64..(1 << 20),
            1i64..(1 << 40),
            1i64..i64::MAX / 512,
        ];
        (any::<i64>(), prop::collection::vec(gap, 0..300)).prop_map(|(start, gaps)| {
            let mut timestamps = vec![start];
            for gap in gaps {
                let last = timestamps[timestamps.len() - 1];
                match last.checked_add(gap) {
                    Some(next) => timestamps.push(next),
                    None => break,
                }
            }
            timestamps
        })
    }

    fn value_bits() -> impl Strategy<Value = u64> {
        prop_oneof![
            any::<u64>(),
            Just(STALE_NAN_BITS),
            Just(f64::NAN.to_bits()),
            (0u64..1000).prop_map(|value| (value as f64).to_bits()),
            any::<f32>().prop_map(|value| f64::from(value).to_bits()),
        ]
    }

    proptest! {
        #[test]
        fn round_trips_arbitrary_samples(
            timestamps in increasing_timestamps(),
            values in prop::collection::vec(value_bits(), 300),
        ) {
            let samples: Vec<(i64, u64)> = timestamps.into_iter().zip(values).collect();
            let encoder = encode(&samples);
            prop_assert_eq!(encoder.len(), samples.len());
            prop_assert_eq!(decode_bits(encoder.iter()), samples.clone());
            let last = samples.last().map(|&(timestamp, bits)| (timestamp, bits));
            prop_assert_eq!(encoder.last().map(|(timestamp, value)| (timestamp, value.to_bits())), last);
            prop_assert_eq!(decode_bits(encoder.seal().iter()), samples);
        }

        #[test]
        fn decoding_matches_the_field_by_field_decoder_on_any_bytes(
            bytes in prop::collection::vec(any::<u8>(), 0..200),
            count in 0u16..200,
        ) {
            // Damaged or truncated streams included: both stop at the same sample.
            let mut fast = ChunkIter::new(&bytes, count);
            let mut bitwise = ChunkIter::new(&bytes, count);
            for _ in 0..count {
                let expected = if bitwise.read == 0 { bitwise.decode_next() } else { bitwise.decode_next_bitwise() };
                let decoded = fast.decode_next();
                prop_assert_eq!(decoded, expected);
                if decoded.is_none() {
                    break;
                }
                fast.read += 1;
                bitwise.read += 1;
            }
        }

        #[test]
        fn appending_after_decoding_keeps_the_stream_valid(
            timestamps in increasing_timestamps(),
            values in prop::collection::vec(value_bits(), 300),
        ) {
            // Decode at every step, as queries do against the head chunk.
            let samples: Vec<(i64, u64)> = timestamps.into_iter().zip(values).collect();
            let mut encoder = ChunkEncoder::new();
            for (index, &(timestamp, bits)) in samples.iter().enumerate() {
                encoder.append(timestamp, f64::from_bits(bits));
                if index % 17 == 0 {
                    prop_assert_eq!(decode_bits(encoder.iter()), samples[..=index].to_vec());
                }
            }
        }
    }
}
