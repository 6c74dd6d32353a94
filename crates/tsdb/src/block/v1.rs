//! The first block format (magic `ABBLOCK` 0x01), read only to migrate a data
//! directory written before blocks were served from disk: [`read`] checks a
//! whole block and hands back its series and chunks, which the caller writes
//! again in the current format.
//!
//! Layout (integers little endian, `varint` = LEB128):
//!
//! ```text
//! header, 72 bytes:
//!   magic "ABBLOCK" 0x01 | min_time i64 | max_time i64 | series u64 | chunks u64
//!   | samples u64 | wal_segment u64 | index_offset u64 | CRC-32 of bytes 0..64 u32 | reserved, 0u32
//! series entries, from byte 72, in label order:
//!   varint label count, (varint length, name, varint length, value)*,
//!   varint chunk count, (sample count u16, varint length, Gorilla chunk bytes)*
//! index, at index_offset:
//!   varint series count, the offset of each series entry as u64
//! footer:
//!   CRC-32 of bytes 72..footer u32 | "ABBLKEND"
//! ```

use std::fs;
use std::path::Path;

use super::{BlockError, BlockMeta, Cursor, FOOTER_MAGIC, corrupt, io_error};
use crate::chunk::Chunk;
use crate::{Labels, LabelsBuilder};

/// The magic of this format.
pub const MAGIC: &[u8; 8] = b"ABBLOCK\x01";
const HEADER_BYTES: usize = 72;
const FOOTER_BYTES: usize = 12;

/// Decodes a header; returns the metadata (with `bytes` and `sequence` unset) and the index offset.
fn decode_header(path: &Path, header: &[u8]) -> Result<(BlockMeta, u64), BlockError> {
    let header = header.get(..HEADER_BYTES).ok_or_else(|| corrupt(path, "shorter than its header"))?;
    if &header[0..8] != MAGIC {
        return Err(corrupt(path, "not a block (bad magic or unknown version)"));
    }
    let field = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().unwrap_or([0; 8]));
    let checksum = u32::from_le_bytes(header[64..68].try_into().unwrap_or([0; 4]));
    if crc32fast::hash(&header[0..64]) != checksum {
        return Err(corrupt(path, "header checksum mismatch"));
    }
    if header[68..72] != [0; 4] {
        return Err(corrupt(path, "reserved header bytes are not zero"));
    }
    let meta = BlockMeta {
        sequence: 0,
        min_time: field(8) as i64,
        max_time: field(16) as i64,
        series: field(24),
        chunks: field(32),
        samples: field(40),
        wal_segment: field(48),
        bytes: 0,
    };
    Ok((meta, field(56)))
}

/// Reads and checks the whole block at `path`, then hands each series' labels
/// and chunks (oldest first) to `visit`. Nothing is handed out unless the
/// whole block checks out.
pub fn read(path: &Path, sequence: u64, mut visit: impl FnMut(Labels, Vec<Chunk>)) -> Result<BlockMeta, BlockError> {
    let bytes = fs::read(path).map_err(io_error(path))?;
    let (mut meta, index_offset) = decode_header(path, &bytes)?;
    meta.sequence = sequence;
    meta.bytes = bytes.len() as u64;
    if bytes.len() < HEADER_BYTES + FOOTER_BYTES {
        return Err(corrupt(path, "shorter than its header and footer"));
    }
    let footer_start = bytes.len() - FOOTER_BYTES;
    if &bytes[footer_start + 4..] != FOOTER_MAGIC {
        return Err(corrupt(path, "footer missing (incomplete write)"));
    }
    let checksum = u32::from_le_bytes(bytes[footer_start..footer_start + 4].try_into().unwrap_or([0; 4]));
    if crc32fast::hash(&bytes[HEADER_BYTES..footer_start]) != checksum {
        return Err(corrupt(path, "checksum mismatch"));
    }
    let body = &bytes[..footer_start];
    let series = decode_series(path, body, &meta, index_offset)?;
    for (labels, chunks) in series {
        visit(labels, chunks);
    }
    Ok(meta)
}

/// Decodes every series entry and checks them against the header and the index.
fn decode_series(
    path: &Path,
    body: &[u8],
    meta: &BlockMeta,
    index_offset: u64,
) -> Result<Vec<(Labels, Vec<Chunk>)>, BlockError> {
    let damaged = |what: &str| corrupt(path, what.to_owned());
    let index_start = usize::try_from(index_offset).ok().filter(|&start| start >= HEADER_BYTES && start <= body.len());
    let index_start = index_start.ok_or_else(|| damaged("index offset out of range"))?;
    let mut index = Cursor { bytes: body, position: index_start };
    let series_count = index.varint().ok_or_else(|| damaged("truncated index"))?;
    if series_count != meta.series {
        return Err(damaged("index and header disagree on the series count"));
    }
    let mut cursor = Cursor { bytes: &body[..index_start], position: HEADER_BYTES };
    let mut series = Vec::new();
    let (mut chunks_seen, mut samples_seen) = (0u64, 0u64);
    for _ in 0..series_count {
        let offset = index.u64().ok_or_else(|| damaged("truncated index"))?;
        if offset != cursor.position as u64 {
            return Err(damaged("index offset does not match its series entry"));
        }
        let label_count = cursor.length().ok_or_else(|| damaged("truncated series entry"))?;
        let mut builder = LabelsBuilder::default();
        for _ in 0..label_count {
            let name = cursor.string().ok_or_else(|| damaged("bad label name"))?;
            let value = cursor.string().ok_or_else(|| damaged("bad label value"))?;
            builder.set(name, value);
        }
        let chunk_count = cursor.length().ok_or_else(|| damaged("truncated series entry"))?;
        let mut chunks = Vec::with_capacity(chunk_count.min(1024));
        for _ in 0..chunk_count {
            let count = cursor.take(2).ok_or_else(|| damaged("truncated chunk"))?;
            let count = u16::from_le_bytes([count[0], count[1]]);
            let length = cursor.length().ok_or_else(|| damaged("truncated chunk"))?;
            let encoded = cursor.take(length).ok_or_else(|| damaged("truncated chunk"))?;
            let chunk = Chunk::from_encoded(encoded.into(), count).ok_or_else(|| damaged("undecodable chunk"))?;
            if chunks.last().is_some_and(|previous: &Chunk| chunk.min_time() <= previous.max_time()) {
                return Err(damaged("chunks of a series out of order"));
            }
            chunks_seen += 1;
            samples_seen += u64::from(count);
            chunks.push(chunk);
        }
        series.push((builder.build(), chunks));
    }
    if cursor.position != index_start || index.position != body.len() {
        return Err(damaged("unexpected bytes between the entries, the index and the footer"));
    }
    if chunks_seen != meta.chunks || samples_seen != meta.samples {
        return Err(damaged("header and entries disagree on the chunk or sample count"));
    }
    Ok(series)
}
