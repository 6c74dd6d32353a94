//! Byte encodings shared by the write-ahead log records, chunks and blocks:
//! LEB128 varints, zigzag signed integers, length-prefixed strings, label sets
//! and entries.
//!
//! Decoding ([`Decode`]) never panics on damaged input: every reader returns `None` when
//! the bytes end early or do not form what was expected; callers turn that
//! into a typed error. Nothing here knows what a record or a chunk means.

use std::borrow::Cow;

use tsdb::{Labels, LabelsBuilder};

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn put_signed(out: &mut Vec<u8>, value: i64) {
    put_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

pub(crate) fn put_labels(out: &mut Vec<u8>, labels: &Labels) {
    put_varint(out, labels.len() as u64);
    for label in labels {
        put_bytes(out, label.name.as_bytes());
        put_bytes(out, label.value.as_bytes());
    }
}

pub(crate) fn put_metadata(out: &mut Vec<u8>, metadata: &[(String, String)]) {
    put_varint(out, metadata.len() as u64);
    for (name, value) in metadata {
        put_bytes(out, name.as_bytes());
        put_bytes(out, value.as_bytes());
    }
}

/// Decoding over a source of bytes: a slice ([`Reader`]) or a block file
/// read as it is decoded (`block::read`). Every method returns `None` when
/// the bytes end early or do not form what was expected.
pub(crate) trait Decode {
    fn byte(&mut self) -> Option<u8>;

    /// The next `length` bytes, or `None` when fewer remain.
    fn take(&mut self, length: usize) -> Option<Cow<'_, [u8]>>;

    /// How many bytes are left.
    fn remaining(&self) -> u64;

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// A varint used as a count or length: refused when it exceeds the bytes left,
    /// so a damaged count cannot ask for a huge allocation.
    fn count(&mut self) -> Option<usize> {
        let value = self.varint()?;
        (value <= self.remaining()).then_some(usize::try_from(value).ok()?)
    }

    fn signed(&mut self) -> Option<i64> {
        let raw = self.varint()?;
        Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn u64_le(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.as_ref().try_into().ok()?))
    }

    fn string(&mut self) -> Option<String> {
        let length = self.count()?;
        std::str::from_utf8(&self.take(length)?).ok().map(str::to_owned)
    }

    fn labels(&mut self) -> Option<Labels> {
        let count = self.count()?;
        let mut builder = LabelsBuilder::default();
        for _ in 0..count {
            let name = self.string()?;
            let value = self.string()?;
            builder.set(name, value);
        }
        Some(builder.build())
    }

    fn metadata(&mut self) -> Option<Vec<(String, String)>> {
        let count = self.count()?;
        let mut metadata = Vec::with_capacity(count);
        for _ in 0..count {
            metadata.push((self.string()?, self.string()?));
        }
        Some(metadata)
    }
}

/// A cursor over bytes being decoded.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.position >= self.bytes.len()
    }
}

impl Decode for Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.position)?;
        self.position += 1;
        Some(byte)
    }

    fn take(&mut self, length: usize) -> Option<Cow<'_, [u8]>> {
        let bytes = self.bytes.get(self.position..self.position.checked_add(length)?)?;
        self.position += length;
        Some(Cow::Borrowed(bytes))
    }

    fn remaining(&self) -> u64 {
        self.bytes.len().saturating_sub(self.position) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_round_trip() {
        let values = [0i64, 1, -1, 63, -64, 1 << 40, i64::MIN, i64::MAX];
        let mut out = Vec::new();
        for value in values {
            put_signed(&mut out, value);
            put_varint(&mut out, value as u64);
        }
        let mut reader = Reader::new(&out);
        for value in values {
            assert_eq!(reader.signed(), Some(value));
            assert_eq!(reader.varint(), Some(value as u64));
        }
        assert!(reader.is_empty());
    }

    #[test]
    fn damaged_counts_do_not_allocate() {
        let mut out = Vec::new();
        put_varint(&mut out, u64::MAX);
        assert_eq!(Reader::new(&out).count(), None);
        assert_eq!(Reader::new(&[0xff; 11]).varint(), None);
    }
}
