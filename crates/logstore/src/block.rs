//! Block files: the immutable on-disk form of a checkpoint.
//!
//! One file per checkpoint, `<data>/blocks/<sequence:08>.block`:
//!
//! ```text
//! magic "ABLOGB01"
//! sequence: u64 LE, wal cut: u64 LE (the first log segment the block does not cover)
//! min timestamp, max timestamp: zigzag varints
//! stream count: varint
//!   per stream: labels (count, (name, value)*), chunk count: varint
//!     per chunk: min, max: zigzag varints; entries, uncompressed size: varints; data: length-prefixed
//! CRC-32 of everything above: u32 LE
//! ```
//!
//! A block is written to `<name>.tmp`, fsynced, renamed and the directory
//! fsynced, so a file with the final name is always complete; reading checks
//! the magic and the checksum before anything else. Chunk bytes are not kept
//! in memory: [`read`] and [`write`] hand back each chunk as a place in the
//! file ([`ChunkData::Disk`]) with its own CRC-32, taken from the checked
//! bytes, so later reads detect damage per chunk. This module decides
//! nothing about when blocks are written or removed.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tsdb::Labels;

use crate::chunk::{BlockHandle, Chunk, ChunkData};
use crate::codec::{Reader, put_bytes, put_labels, put_signed, put_varint};

const MAGIC: &[u8; 8] = b"ABLOGB01";

/// What a block file holds, besides its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMeta {
    pub sequence: u64,
    /// Log segments numbered below this are covered by this block and older ones.
    pub wal_cut: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub streams: usize,
    pub chunks: usize,
    pub entries: u64,
    /// Size of the file.
    pub bytes: u64,
}

/// Errors reading or writing a block.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("block {path}: {reason}")]
    Damaged { path: PathBuf, reason: String },
}

pub(crate) fn block_path(directory: &Path, sequence: u64) -> PathBuf {
    directory.join(format!("{sequence:08}.block"))
}

/// A stream's chunks as a block stores them.
pub(crate) struct BlockStream {
    pub(crate) labels: Labels,
    pub(crate) chunks: Vec<Chunk>,
}

/// Writes a block atomically (temporary file, fsync, rename, directory fsync).
/// Returns its metadata and, by chunk id, where each chunk's bytes now lie.
pub(crate) fn write(
    directory: &Path,
    sequence: u64,
    wal_cut: u64,
    streams: &[BlockStream],
) -> Result<(BlockMeta, HashMap<u64, ChunkData>), BlockError> {
    let path = block_path(directory, sequence);
    let mut places: Vec<(u64, u64, u32, u32)> = Vec::new();
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&wal_cut.to_le_bytes());
    let chunks = || streams.iter().flat_map(|stream| &stream.chunks);
    let min_ts = chunks().map(|chunk| chunk.min_ts).min().unwrap_or(0);
    let max_ts = chunks().map(|chunk| chunk.max_ts).max().unwrap_or(0);
    put_signed(&mut out, min_ts);
    put_signed(&mut out, max_ts);
    put_varint(&mut out, streams.len() as u64);
    for stream in streams {
        put_labels(&mut out, &stream.labels);
        put_varint(&mut out, stream.chunks.len() as u64);
        for chunk in &stream.chunks {
            put_signed(&mut out, chunk.min_ts);
            put_signed(&mut out, chunk.max_ts);
            put_varint(&mut out, u64::from(chunk.entries));
            put_varint(&mut out, chunk.raw_bytes);
            let bytes = chunk.bytes().map_err(|error| BlockError::Damaged { path: path.clone(), reason: error.0 })?;
            put_bytes(&mut out, &bytes);
            let length = u32::try_from(bytes.len())
                .map_err(|_| BlockError::Damaged { path: path.clone(), reason: "chunk over 4 GiB".to_owned() })?;
            places.push((chunk.id, (out.len() - bytes.len()) as u64, length, crc32fast::hash(&bytes)));
        }
    }
    let checksum = crc32fast::hash(&out);
    out.extend_from_slice(&checksum.to_le_bytes());

    let temporary = path.with_extension("block.tmp");
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| BlockError::Io { path, source }
    };
    let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
    file.write_all(&out).map_err(io_error(&temporary))?;
    file.sync_all().map_err(io_error(&temporary))?;
    drop(file);
    fs::rename(&temporary, &path).map_err(io_error(&path))?;
    File::open(directory).and_then(|handle| handle.sync_all()).map_err(io_error(directory))?;
    let handle = Arc::new(BlockHandle { file: File::open(&path).map_err(io_error(&path))?, path: path.clone() });
    let on_disk = places
        .into_iter()
        .map(|(id, offset, length, checksum)| {
            (id, ChunkData::Disk { block: Arc::clone(&handle), offset, length, checksum })
        })
        .collect();
    let meta = BlockMeta {
        sequence,
        wal_cut,
        min_ts,
        max_ts,
        streams: streams.len(),
        chunks: chunks().count(),
        entries: chunks().map(|chunk| u64::from(chunk.entries)).sum(),
        bytes: out.len() as u64,
    };
    Ok((meta, on_disk))
}

/// Reads and checks a block; chunk ids are drawn from `next_chunk_id`.
pub(crate) fn read(path: &Path, next_chunk_id: &mut u64) -> Result<(BlockMeta, Vec<BlockStream>), BlockError> {
    let bytes = fs::read(path).map_err(|source| BlockError::Io { path: path.to_owned(), source })?;
    let file = File::open(path).map_err(|source| BlockError::Io { path: path.to_owned(), source })?;
    let handle = Arc::new(BlockHandle { path: path.to_owned(), file });
    let damaged = |reason: &str| BlockError::Damaged { path: path.to_owned(), reason: reason.to_owned() };
    if bytes.len() < MAGIC.len() + 20 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(damaged("not a log block (bad magic or too short)"));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    if crc32fast::hash(body) != stored {
        return Err(damaged("checksum mismatch"));
    }
    let mut reader = Reader::new(&body[MAGIC.len()..]);
    let parsed = (|| {
        let sequence = reader.u64_le()?;
        let wal_cut = reader.u64_le()?;
        let min_ts = reader.signed()?;
        let max_ts = reader.signed()?;
        let stream_count = reader.count()?;
        let mut streams = Vec::with_capacity(stream_count);
        let mut entries = 0u64;
        let mut chunk_total = 0usize;
        for _ in 0..stream_count {
            let labels = reader.labels()?;
            let chunk_count = reader.count()?;
            let mut chunks = Vec::with_capacity(chunk_count);
            for _ in 0..chunk_count {
                let min_ts = reader.signed()?;
                let max_ts = reader.signed()?;
                let count = u32::try_from(reader.varint()?).ok()?;
                let raw_bytes = reader.varint()?;
                let data = reader.bytes()?;
                // The data lies inside `bytes`: its offset in the file is the distance between them.
                let offset = (data.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)? as u64;
                let data = ChunkData::Disk {
                    block: Arc::clone(&handle),
                    offset,
                    length: u32::try_from(data.len()).ok()?,
                    checksum: crc32fast::hash(data),
                };
                entries += u64::from(count);
                chunks.push(Chunk {
                    id: *next_chunk_id,
                    min_ts,
                    max_ts,
                    entries: count,
                    raw_bytes,
                    data,
                    block: Some(sequence),
                });
                *next_chunk_id += 1;
            }
            chunk_total += chunks.len();
            streams.push(BlockStream { labels, chunks });
        }
        if !reader.is_empty() {
            return None;
        }
        let meta = BlockMeta {
            sequence,
            wal_cut,
            min_ts,
            max_ts,
            streams: streams.len(),
            chunks: chunk_total,
            entries,
            bytes: bytes.len() as u64,
        };
        Some((meta, streams))
    })();
    parsed.ok_or_else(|| damaged("structure does not decode"))
}
