//! Chunks: a stream's entries, sealed from its head and compressed.
//!
//! A chunk holds entries in timestamp order (equal timestamps in push order)
//! encoded as `(timestamp delta: zigzag varint, line: length-prefixed bytes,
//! metadata count: varint, (name, value)*)` and compressed with snappy's
//! block format; its time range, entry count and uncompressed size are kept
//! beside the bytes. Chunks are immutable and shared (`Arc`), so a query can
//! hold them without holding the store's lock. Once a block holds a chunk,
//! its bytes stay on disk ([`ChunkData::Disk`]): a read fetches them with a
//! positioned read and checks them against the CRC-32 taken when the block
//! was written or opened, so memory holds a chunk's metadata only. Snappy was measured against the
//! uncompressed encoding in this crate's tests (`chunk_compression`); it is
//! already a dependency of the push decoder, and its decompression speed keeps
//! queries cheap.

use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::codec::{Decode, Reader, put_bytes, put_metadata, put_signed};
use crate::push::PushEntry;

/// A sealed, compressed run of one stream's entries.
#[derive(Debug, Clone)]
pub(crate) struct Chunk {
    /// Unique within one open store (not persisted).
    pub(crate) id: u64,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) entries: u32,
    pub(crate) raw_bytes: u64,
    pub(crate) data: ChunkData,
    /// The block file holding this chunk, `None` until a checkpoint wrote it.
    pub(crate) block: Option<u64>,
}

/// An open block file that chunks read their bytes from.
#[derive(Debug)]
pub(crate) struct BlockHandle {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
}

/// Where a chunk's compressed bytes are.
#[derive(Debug, Clone)]
pub(crate) enum ChunkData {
    Memory(Arc<[u8]>),
    /// `length` bytes at `offset` of a block file, whose CRC-32 is `checksum`.
    Disk {
        block: Arc<BlockHandle>,
        offset: u64,
        length: u32,
        checksum: u32,
    },
}

impl Chunk {
    /// Seals entries already in timestamp order into a chunk held in memory;
    /// `None` when there are none.
    pub(crate) fn seal(id: u64, entries: &[PushEntry]) -> Option<Chunk> {
        let (first, last) = (entries.first()?, entries.last()?);
        let (raw_bytes, data) = encode(entries);
        Some(Chunk {
            id,
            min_ts: first.timestamp_ns,
            max_ts: last.timestamp_ns,
            entries: u32::try_from(entries.len()).ok()?,
            raw_bytes,
            data: ChunkData::Memory(data.into()),
            block: None,
        })
    }

    /// The compressed bytes, read from the block file when they are there.
    pub(crate) fn bytes(&self) -> Result<Cow<'_, [u8]>, ChunkError> {
        match &self.data {
            ChunkData::Memory(bytes) => Ok(Cow::Borrowed(bytes)),
            ChunkData::Disk { block, offset, length, checksum } => {
                let damaged = |reason: String| {
                    ChunkError(format!("block {}: chunk at offset {offset}: {reason}", block.path.display()))
                };
                let mut bytes = vec![0u8; *length as usize];
                block.file.read_exact_at(&mut bytes, *offset).map_err(|error| damaged(error.to_string()))?;
                if crc32fast::hash(&bytes) != *checksum {
                    return Err(damaged("checksum mismatch".to_owned()));
                }
                Ok(Cow::Owned(bytes))
            }
        }
    }

    /// Decodes the chunk's entries.
    pub(crate) fn decode_entries(&self) -> Result<Vec<PushEntry>, ChunkError> {
        decode(&self.bytes()?, self.entries)
    }

    /// Bytes of chunk data held in memory.
    pub(crate) fn memory_bytes(&self) -> usize {
        match &self.data {
            ChunkData::Memory(bytes) => bytes.len(),
            ChunkData::Disk { .. } => 0,
        }
    }
}

/// Why chunk bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("damaged chunk: {0}")]
pub(crate) struct ChunkError(pub(crate) String);

/// Encodes entries already in timestamp order; returns (uncompressed size, compressed bytes).
pub(crate) fn encode(entries: &[PushEntry]) -> (u64, Vec<u8>) {
    let mut raw = Vec::with_capacity(entries.iter().map(|entry| entry.line.len() + 8).sum());
    let mut previous = 0i64;
    for entry in entries {
        put_signed(&mut raw, entry.timestamp_ns.wrapping_sub(previous));
        previous = entry.timestamp_ns;
        put_bytes(&mut raw, entry.line.as_bytes());
        put_metadata(&mut raw, &entry.metadata);
    }
    let compressed = snap::raw::Encoder::new().compress_vec(&raw).unwrap_or_else(|_| {
        debug_assert!(false, "snappy refused a chunk");
        Vec::new()
    });
    (raw.len() as u64, compressed)
}

/// Decodes a chunk's `count` entries.
pub(crate) fn decode(data: &[u8], count: u32) -> Result<Vec<PushEntry>, ChunkError> {
    let raw = snap::raw::Decoder::new().decompress_vec(data).map_err(|error| ChunkError(error.to_string()))?;
    let mut reader = Reader::new(&raw);
    let mut entries = Vec::with_capacity((count as usize).min(raw.len()));
    let mut previous = 0i64;
    for index in 0..count {
        let damaged = || ChunkError(format!("entry {index} of {count} does not decode"));
        let delta = reader.signed().ok_or_else(damaged)?;
        previous = previous.wrapping_add(delta);
        let line = reader.string().ok_or_else(damaged)?;
        let metadata = reader.metadata().ok_or_else(damaged)?;
        entries.push(PushEntry { timestamp_ns: previous, line, metadata });
    }
    if !reader.is_empty() {
        return Err(ChunkError(format!("trailing bytes after {count} entries")));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(timestamp_ns: i64, line: &str) -> PushEntry {
        PushEntry { timestamp_ns, line: line.to_owned(), metadata: vec![("trace_id".into(), "abc".into())] }
    }

    #[test]
    fn entries_round_trip() {
        let entries = vec![entry(-5, ""), entry(10, "a"), entry(10, "b"), entry(i64::MAX, "é")];
        let (_, data) = encode(&entries);
        assert_eq!(decode(&data, 4).unwrap(), entries);
        assert!(decode(&data, 5).is_err());
        assert!(decode(&data, 3).is_err());
        assert!(decode(b"garbage", 1).is_err());
    }

    /// Prints bytes per line for typical access-log lines (run with `--nocapture`).
    #[test]
    fn chunk_compression() {
        let entries: Vec<PushEntry> = (0..2000)
            .map(|index| PushEntry {
                timestamp_ns: 1_700_000_000_000_000_000 + index * 1_000_003,
                line: format!(
                    "level=info ts=2026-11-26T10:{:02}:{:02}Z method=GET path=/api/v1/trips/{} status={} duration_ms={}",
                    index / 60 % 60,
                    index % 60,
                    index * 7919 % 10007,
                    [200, 200, 200, 404, 500][index as usize % 5],
                    index * 31 % 997
                ),
                metadata: Vec::new(),
            })
            .collect();
        let (raw, compressed) = encode(&entries);
        let lines: usize = entries.iter().map(|entry| entry.line.len()).sum();
        println!(
            "lines {:.1} bytes/line, encoded {:.1}, snappy {:.1}",
            lines as f64 / 2000.0,
            raw as f64 / 2000.0,
            compressed.len() as f64 / 2000.0
        );
        assert!((compressed.len() as u64) < raw);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_entries_round_trip(
            raw in proptest::collection::vec((proptest::num::i64::ANY, ".{0,20}", proptest::collection::vec(("[a-z]{1,4}", ".{0,6}"), 0..3)), 0..40)
        ) {
            let mut entries: Vec<PushEntry> = raw
                .into_iter()
                .map(|(timestamp_ns, line, metadata)| PushEntry { timestamp_ns, line, metadata })
                .collect();
            entries.sort_by_key(|entry| entry.timestamp_ns);
            let (_, data) = encode(&entries);
            proptest::prop_assert_eq!(decode(&data, entries.len() as u32).unwrap(), entries);
        }

        #[test]
        fn damaged_chunks_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..100), count in 0u32..1000) {
            let _ = decode(&data, count);
        }
    }
}
