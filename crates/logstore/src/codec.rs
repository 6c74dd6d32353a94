//! Byte encodings shared by the write-ahead log records, chunks and blocks:
//! LEB128 varints, zigzag signed integers, length-prefixed strings, label sets
//! and entries.
//!
//! Decoding never panics on damaged input: every reader returns `None` when
//! the bytes end early or do not form what was expected; callers turn that
//! into a typed error. Nothing here knows what a record or a chunk means.

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

    pub(crate) fn byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.position)?;
        self.position += 1;
        Some(byte)
    }

    pub(crate) fn varint(&mut self) -> Option<u64> {
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
    pub(crate) fn count(&mut self) -> Option<usize> {
        let value = self.varint()?;
        let left = (self.bytes.len() - self.position) as u64;
        (value <= left).then_some(value as usize)
    }

    pub(crate) fn signed(&mut self) -> Option<i64> {
        let raw = self.varint()?;
        Some(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    pub(crate) fn u64_le(&mut self) -> Option<u64> {
        let bytes = self.bytes.get(self.position..self.position + 8)?;
        self.position += 8;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let length = self.count()?;
        let bytes = self.bytes.get(self.position..self.position + length)?;
        self.position += length;
        Some(bytes)
    }

    pub(crate) fn string(&mut self) -> Option<String> {
        std::str::from_utf8(self.bytes()?).ok().map(str::to_owned)
    }

    pub(crate) fn labels(&mut self) -> Option<Labels> {
        let count = self.count()?;
        let mut builder = LabelsBuilder::default();
        for _ in 0..count {
            let name = self.string()?;
            let value = self.string()?;
            builder.set(name, value);
        }
        Some(builder.build())
    }

    pub(crate) fn metadata(&mut self) -> Option<Vec<(String, String)>> {
        let count = self.count()?;
        let mut metadata = Vec::with_capacity(count);
        for _ in 0..count {
            metadata.push((self.string()?, self.string()?));
        }
        Some(metadata)
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
