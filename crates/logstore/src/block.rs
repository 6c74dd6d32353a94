//! Block files: the immutable on-disk form of a checkpoint or of a compaction.
//!
//! One file per block, `<data>/blocks/<sequence:08>.block` (format 2; format
//! 1, magic `ABLOGB01`, is the same without the two source fields and is
//! still read):
//!
//! ```text
//! magic "ABLOGB02"
//! sequence: u64 LE, wal cut: u64 LE (the first log segment the block does not cover)
//! first sequence: varint (the oldest checkpoint whose entries it holds: its own sequence unless compacted)
//! source count: varint, source sequences: varints (the blocks a compacted block replaces)
//! min timestamp, max timestamp: zigzag varints
//! stream count: varint
//!   per stream: labels (count, (name, value)*), chunk count: varint
//!     per chunk: min, max: zigzag varints; entries, uncompressed size: varints; data: length-prefixed
//! CRC-32 of everything above: u32 LE
//! ```
//!
//! A block is written by [`BlockWriter`], one stream at a time, to
//! `<name>.tmp` (dropped unfinished, the temporary file is deleted), then
//! fsynced, renamed and the directory fsynced, so a file with the final name
//! is always complete; reading refuses a file whose magic or checksum is
//! wrong, whatever its structure seemed to be. Neither writing nor reading holds a block in memory, and
//! chunk bytes are not kept: [`read`] (one pass over the file, in pieces)
//! and the writer hand back each chunk as a place in the file
//! ([`ChunkData::Disk`]) with its own CRC-32, taken from the checked bytes,
//! so later reads detect damage per chunk. This module decides nothing about when blocks are written, merged
//! or removed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tsdb::Labels;

use crate::chunk::{BlockHandle, Chunk, ChunkData};
use crate::codec::{Decode, put_labels, put_signed, put_varint};

const MAGIC_V1: &[u8; 8] = b"ABLOGB01";
const MAGIC: &[u8; 8] = b"ABLOGB02";

/// What a block file holds, besides its chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMeta {
    pub sequence: u64,
    /// Log segments numbered below this are covered by this block and older ones.
    pub wal_cut: u64,
    /// The sequence of the oldest checkpoint whose entries the block holds
    /// (its own unless compacted): blocks are ordered by it, so entries with
    /// equal timestamps keep their push order across blocks.
    pub first_sequence: u64,
    /// The blocks a compacted block replaces (empty for a checkpoint).
    pub sources: Vec<u64>,
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

/// What a block's header says before its streams.
#[derive(Debug, Clone)]
pub(crate) struct BlockHeader {
    pub(crate) sequence: u64,
    pub(crate) wal_cut: u64,
    pub(crate) first_sequence: u64,
    pub(crate) sources: Vec<u64>,
    pub(crate) min_ts: i64,
    pub(crate) max_ts: i64,
    pub(crate) streams: usize,
}

/// Where a written chunk's bytes lie in its block file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkPlace {
    offset: u64,
    length: u32,
    checksum: u32,
}

impl ChunkPlace {
    pub(crate) fn on_disk(self, block: &Arc<BlockHandle>) -> ChunkData {
        ChunkData::Disk { block: Arc::clone(block), offset: self.offset, length: self.length, checksum: self.checksum }
    }
}

/// Writes one block, stream by stream, without holding it in memory.
pub(crate) struct BlockWriter {
    directory: PathBuf,
    path: PathBuf,
    temporary: PathBuf,
    file: BufWriter<File>,
    hasher: crc32fast::Hasher,
    written: u64,
    header: BlockHeader,
    streams_written: usize,
    chunks: usize,
    entries: u64,
    finished: bool,
}

impl BlockWriter {
    /// Starts `<sequence>.block.tmp` in `directory` with `header`, which must
    /// give the number of streams [`BlockWriter::add_stream`] will add.
    pub(crate) fn create(directory: &Path, header: BlockHeader) -> Result<BlockWriter, BlockError> {
        let path = block_path(directory, header.sequence);
        let temporary = path.with_extension("block.tmp");
        let file = File::create(&temporary).map_err(|source| BlockError::Io { path: temporary.clone(), source })?;
        let mut writer = BlockWriter {
            directory: directory.to_owned(),
            path,
            temporary,
            file: BufWriter::with_capacity(1 << 16, file),
            hasher: crc32fast::Hasher::new(),
            written: 0,
            header,
            streams_written: 0,
            chunks: 0,
            entries: 0,
            finished: false,
        };
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&writer.header.sequence.to_le_bytes());
        out.extend_from_slice(&writer.header.wal_cut.to_le_bytes());
        put_varint(&mut out, writer.header.first_sequence);
        put_varint(&mut out, writer.header.sources.len() as u64);
        for source in &writer.header.sources {
            put_varint(&mut out, *source);
        }
        put_signed(&mut out, writer.header.min_ts);
        put_signed(&mut out, writer.header.max_ts);
        put_varint(&mut out, writer.header.streams as u64);
        writer.put(&out)?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), BlockError> {
        self.file.write_all(bytes).map_err(|source| BlockError::Io { path: self.temporary.clone(), source })?;
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes one stream's chunks; returns where each chunk's bytes now lie, in order.
    pub(crate) fn add_stream(&mut self, labels: &Labels, chunks: &[Chunk]) -> Result<Vec<ChunkPlace>, BlockError> {
        if self.streams_written == self.header.streams {
            return Err(self.damaged("more streams than the header announces".to_owned()));
        }
        let mut out = Vec::with_capacity(64);
        put_labels(&mut out, labels);
        put_varint(&mut out, chunks.len() as u64);
        self.put(&out)?;
        let mut places = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let bytes = chunk.bytes().map_err(|error| self.damaged(error.0))?;
            let length = u32::try_from(bytes.len()).map_err(|_| self.damaged("chunk over 4 GiB".to_owned()))?;
            out.clear();
            put_signed(&mut out, chunk.min_ts);
            put_signed(&mut out, chunk.max_ts);
            put_varint(&mut out, u64::from(chunk.entries));
            put_varint(&mut out, chunk.raw_bytes);
            put_varint(&mut out, bytes.len() as u64);
            self.put(&out)?;
            places.push(ChunkPlace { offset: self.written, length, checksum: crc32fast::hash(&bytes) });
            self.put(&bytes)?;
            self.entries += u64::from(chunk.entries);
        }
        self.chunks += chunks.len();
        self.streams_written += 1;
        Ok(places)
    }

    fn damaged(&self, reason: String) -> BlockError {
        BlockError::Damaged { path: self.path.clone(), reason }
    }

    /// Ends the block: checksum, fsync, rename, directory fsync. Returns its
    /// metadata and the open file its chunks are read from.
    pub(crate) fn finish(mut self) -> Result<(BlockMeta, Arc<BlockHandle>), BlockError> {
        if self.streams_written != self.header.streams {
            return Err(self.damaged(format!(
                "{} streams written, the header announces {}",
                self.streams_written, self.header.streams
            )));
        }
        let checksum = self.hasher.clone().finalize();
        self.file
            .write_all(&checksum.to_le_bytes())
            .and_then(|()| self.file.flush())
            .and_then(|()| self.file.get_ref().sync_all())
            .map_err(|source| BlockError::Io { path: self.temporary.clone(), source })?;
        fs::rename(&self.temporary, &self.path).map_err(|source| BlockError::Io { path: self.path.clone(), source })?;
        self.finished = true;
        File::open(&self.directory)
            .and_then(|handle| handle.sync_all())
            .map_err(|source| BlockError::Io { path: self.directory.clone(), source })?;
        let file = File::open(&self.path).map_err(|source| BlockError::Io { path: self.path.clone(), source })?;
        let handle = Arc::new(BlockHandle { file, path: self.path.clone() });
        let header = self.header.clone();
        let meta = BlockMeta {
            sequence: header.sequence,
            wal_cut: header.wal_cut,
            first_sequence: header.first_sequence,
            sources: header.sources,
            min_ts: header.min_ts,
            max_ts: header.max_ts,
            streams: header.streams,
            chunks: self.chunks,
            entries: self.entries,
            bytes: self.written + 4,
        };
        Ok((meta, handle))
    }
}

impl Drop for BlockWriter {
    /// An unfinished block leaves nothing behind.
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_file(&self.temporary);
        }
    }
}

/// Writes a checkpoint's block atomically. Returns its metadata and, by
/// chunk id, where each chunk's bytes now lie.
pub(crate) fn write(
    directory: &Path,
    sequence: u64,
    wal_cut: u64,
    streams: &[BlockStream],
) -> Result<(BlockMeta, HashMap<u64, ChunkData>), BlockError> {
    let chunks = || streams.iter().flat_map(|stream| &stream.chunks);
    let header = BlockHeader {
        sequence,
        wal_cut,
        first_sequence: sequence,
        sources: Vec::new(),
        min_ts: chunks().map(|chunk| chunk.min_ts).min().unwrap_or(0),
        max_ts: chunks().map(|chunk| chunk.max_ts).max().unwrap_or(0),
        streams: streams.len(),
    };
    let mut writer = BlockWriter::create(directory, header)?;
    let mut places = Vec::new();
    for stream in streams {
        let written = writer.add_stream(&stream.labels, &stream.chunks)?;
        places.extend(stream.chunks.iter().map(|chunk| chunk.id).zip(written));
    }
    let (meta, handle) = writer.finish()?;
    let on_disk = places.into_iter().map(|(id, place)| (id, place.on_disk(&handle))).collect();
    Ok((meta, on_disk))
}

/// A block file decoded as it is read: bytes up to the trailer are hashed
/// as they pass, and a chunk's data is only hashed (for the whole file's
/// checksum and its own), never held, so opening a block takes memory for
/// its metadata, not its size.
struct FileDecoder {
    file: BufReader<File>,
    /// Bytes read so far, and where the checksummed body ends.
    position: u64,
    end: u64,
    hasher: crc32fast::Hasher,
    error: Option<io::Error>,
}

impl FileDecoder {
    fn read_into(&mut self, buffer: &mut [u8]) -> Option<()> {
        if (buffer.len() as u64) > self.end - self.position {
            return None;
        }
        if let Err(error) = self.file.read_exact(buffer) {
            self.error.get_or_insert(error);
            return None;
        }
        self.hasher.update(buffer);
        self.position += buffer.len() as u64;
        Some(())
    }

    /// Passes over `length` bytes of chunk data; returns their offset and CRC-32.
    fn chunk_data(&mut self, length: usize) -> Option<(u64, u32)> {
        let offset = self.position;
        let mut chunk = crc32fast::Hasher::new();
        let mut buffer = [0u8; 1 << 14];
        let mut left = length;
        while left > 0 {
            let piece = &mut buffer[..left.min(1 << 14)];
            self.read_into(piece)?;
            chunk.update(piece);
            left -= piece.len();
        }
        Some((offset, chunk.finalize()))
    }

    /// Hashes what is left of the body and compares the trailer.
    fn checksum_matches(&mut self) -> Option<bool> {
        let mut buffer = [0u8; 1 << 14];
        while self.position < self.end {
            let piece = (self.end - self.position).min(buffer.len() as u64) as usize;
            self.read_into(&mut buffer[..piece])?;
        }
        let mut trailer = [0u8; 4];
        if let Err(error) = self.file.read_exact(&mut trailer) {
            self.error.get_or_insert(error);
            return None;
        }
        Some(self.hasher.clone().finalize() == u32::from_le_bytes(trailer))
    }
}

impl Decode for FileDecoder {
    fn byte(&mut self) -> Option<u8> {
        let mut byte = [0u8];
        self.read_into(&mut byte)?;
        Some(byte[0])
    }

    fn take(&mut self, length: usize) -> Option<Cow<'_, [u8]>> {
        if (length as u64) > self.remaining() {
            return None;
        }
        let mut bytes = vec![0u8; length];
        self.read_into(&mut bytes)?;
        Some(Cow::Owned(bytes))
    }

    fn remaining(&self) -> u64 {
        self.end - self.position
    }
}

/// Reads and checks a block; chunk ids are drawn from `next_chunk_id`. The
/// file is read once, in pieces: a block whose checksum does not match is
/// refused whatever its structure seemed to be.
pub(crate) fn read(path: &Path, next_chunk_id: &mut u64) -> Result<(BlockMeta, Vec<BlockStream>), BlockError> {
    let io_error = |source| BlockError::Io { path: path.to_owned(), source };
    let damaged = |reason: &str| BlockError::Damaged { path: path.to_owned(), reason: reason.to_owned() };
    let file = File::open(path).map_err(io_error)?;
    let length = file.metadata().map_err(io_error)?.len();
    let handle = Arc::new(BlockHandle { path: path.to_owned(), file: file.try_clone().map_err(io_error)? });
    if length < MAGIC.len() as u64 + 20 {
        return Err(damaged("not a log block (bad magic or too short)"));
    }
    let mut decoder = FileDecoder {
        file: BufReader::with_capacity(1 << 16, file),
        position: 0,
        end: length - 4,
        hasher: crc32fast::Hasher::new(),
        error: None,
    };
    let magic = decoder.take(MAGIC.len()).map(Cow::into_owned);
    let first_format = match magic.as_deref() {
        Some(magic) if magic == MAGIC => false,
        Some(magic) if magic == MAGIC_V1 => true,
        _ => return Err(decoder.error.map_or_else(|| damaged("not a log block (bad magic or too short)"), io_error)),
    };
    let parsed = decode_body(&mut decoder, first_format, &handle, next_chunk_id, length);
    let checksum_matches = decoder.checksum_matches();
    if let Some(error) = decoder.error {
        return Err(io_error(error));
    }
    if checksum_matches != Some(true) {
        return Err(damaged("checksum mismatch"));
    }
    parsed.ok_or_else(|| damaged("structure does not decode"))
}

/// Decodes a block after its magic. Counts come from bytes not yet checked,
/// so nothing is allocated for them in advance.
fn decode_body(
    decoder: &mut FileDecoder,
    first_format: bool,
    handle: &Arc<BlockHandle>,
    next_chunk_id: &mut u64,
    bytes: u64,
) -> Option<(BlockMeta, Vec<BlockStream>)> {
    let sequence = decoder.u64_le()?;
    let wal_cut = decoder.u64_le()?;
    let (first_sequence, sources) = if first_format {
        (sequence, Vec::new())
    } else {
        let first_sequence = decoder.varint()?;
        let count = decoder.count()?;
        let sources = (0..count).map(|_| decoder.varint()).collect::<Option<Vec<u64>>>()?;
        (first_sequence, sources)
    };
    let min_ts = decoder.signed()?;
    let max_ts = decoder.signed()?;
    let stream_count = decoder.count()?;
    let mut streams = Vec::new();
    let mut entries = 0u64;
    let mut chunk_total = 0usize;
    for _ in 0..stream_count {
        let labels = decoder.labels()?;
        let chunk_count = decoder.count()?;
        let mut chunks = Vec::new();
        for _ in 0..chunk_count {
            let min_ts = decoder.signed()?;
            let max_ts = decoder.signed()?;
            let count = u32::try_from(decoder.varint()?).ok()?;
            let raw_bytes = decoder.varint()?;
            let length = decoder.count()?;
            let (offset, checksum) = decoder.chunk_data(length)?;
            let data =
                ChunkData::Disk { block: Arc::clone(handle), offset, length: u32::try_from(length).ok()?, checksum };
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
    if decoder.remaining() != 0 {
        return None;
    }
    let meta = BlockMeta {
        sequence,
        wal_cut,
        first_sequence,
        sources,
        min_ts,
        max_ts,
        streams: streams.len(),
        chunks: chunk_total,
        entries,
        bytes,
    };
    Some((meta, streams))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::PushEntry;

    fn stream(job: &str, lines: usize) -> BlockStream {
        let entries: Vec<PushEntry> = (0..lines)
            .map(|index| PushEntry {
                timestamp_ns: index as i64 * 10,
                line: format!("{job} {index}"),
                metadata: Vec::new(),
            })
            .collect();
        BlockStream { labels: Labels::from_pairs([("job", job)]), chunks: vec![Chunk::seal(7, &entries).unwrap()] }
    }

    /// A block of format 1 (what alertbook wrote before compaction existed) is
    /// the format-2 block without the first sequence and the sources.
    #[test]
    fn first_format_blocks_are_still_read() {
        let directory = tempfile::tempdir().unwrap();
        let (written, _) = write(directory.path(), 3, 9, &[stream("a", 5), stream("b", 2)]).unwrap();
        assert_eq!((written.first_sequence, written.sources.clone()), (3, Vec::new()));
        let path = block_path(directory.path(), 3);
        let current = fs::read(&path).unwrap();
        // Magic and the two u64 fields, then the varints 3 (first sequence) and 0 (no sources).
        assert_eq!(&current[24..26], &[3, 0]);
        let mut first = MAGIC_V1.to_vec();
        first.extend_from_slice(&current[8..24]);
        first.extend_from_slice(&current[26..current.len() - 4]);
        let checksum = crc32fast::hash(&first);
        first.extend_from_slice(&checksum.to_le_bytes());
        fs::write(&path, &first).unwrap();

        let (meta, streams) = read(&path, &mut 0).unwrap();
        let expected = BlockMeta { bytes: first.len() as u64, ..written };
        assert_eq!(meta, expected);
        let lines: Vec<String> = streams
            .iter()
            .flat_map(|stream| stream.chunks.iter().flat_map(|chunk| chunk.decode_entries().unwrap()))
            .map(|entry| entry.line)
            .collect();
        assert_eq!(lines, ["a 0", "a 1", "a 2", "a 3", "a 4", "b 0", "b 1"]);
    }

    proptest::proptest! {
        /// Any changed byte, any truncation and any bytes behind a valid magic
        /// are refused with an error, never a panic or a huge allocation.
        #[test]
        fn damaged_blocks_are_refused(
            position in proptest::num::usize::ANY,
            flip in 1u8..=255,
            keep in proptest::num::usize::ANY,
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let directory = tempfile::tempdir().unwrap();
            write(directory.path(), 1, 1, &[stream("a", 30), stream("b", 3)]).unwrap();
            let path = block_path(directory.path(), 1);
            let valid = fs::read(&path).unwrap();
            let mut changed = valid.clone();
            changed[position % valid.len()] ^= flip;
            fs::write(&path, &changed).unwrap();
            proptest::prop_assert!(read(&path, &mut 0).is_err());
            fs::write(&path, &valid[..keep % valid.len()]).unwrap();
            proptest::prop_assert!(read(&path, &mut 0).is_err());
            let mut random = MAGIC.to_vec();
            random.extend_from_slice(&noise);
            fs::write(&path, &random).unwrap();
            proptest::prop_assert!(read(&path, &mut 0).is_err());
        }
    }

    #[test]
    fn a_compacted_block_names_its_sources_and_an_unfinished_one_leaves_nothing() {
        let directory = tempfile::tempdir().unwrap();
        let header = BlockHeader {
            sequence: 12,
            wal_cut: 4,
            first_sequence: 2,
            sources: vec![2, 5, 9],
            min_ts: 0,
            max_ts: 40,
            streams: 1,
        };
        let mut writer = BlockWriter::create(directory.path(), header.clone()).unwrap();
        let source = stream("a", 5);
        writer.add_stream(&source.labels, &source.chunks).unwrap();
        let (meta, _) = writer.finish().unwrap();
        let (read_back, _) = read(&block_path(directory.path(), 12), &mut 0).unwrap();
        assert_eq!(read_back, meta);
        assert_eq!((meta.first_sequence, meta.sources, meta.entries), (2, vec![2, 5, 9], 5));

        let unfinished = BlockWriter::create(directory.path(), BlockHeader { sequence: 13, ..header }).unwrap();
        assert!(directory.path().join("00000013.block.tmp").exists());
        drop(unfinished);
        assert!(!directory.path().join("00000013.block.tmp").exists());
        assert!(!directory.path().join("00000013.block").exists());
    }
}
