//! Immutable on-disk blocks, served from disk: a block's chunks and index stay
//! in its file and are read with positioned reads when a query touches them.
//!
//! Key types: [`BlockMeta`] (what a block's header says: time range, counts and
//! the first write-ahead log segment the block does not cover), [`BlockWriter`]
//! and [`write_block`] (the chunks a [`MemStore`] checkpoint covers),
//! [`BlockFile`] (an open, header-checked block: [`BlockFile::load_index`]
//! decodes its series index, [`BlockFile::read_chunk`] one chunk),
//! [`list_blocks`], [`migrate_v1`] (rewrites a block of the first format) and
//! the compaction planner and writer in [`compact`].
//!
//! A block is one file, `<sequence:08>.block`, in the blocks directory. One file
//! means one atomic rename: it is written as `<sequence:08>.block.tmp`, fsynced,
//! renamed, and the directory fsynced, so a block either exists whole or not at
//! all; a leftover `.tmp` file is an interrupted write and is deleted at start.
//!
//! Layout (format 2; integers little endian, `varint` = LEB128):
//!
//! ```text
//! header:
//!   magic "ABBLOCK" 0x02 | min_time i64 | max_time i64 | series u64 | chunks u64
//!   | samples u64 | wal_segment u64 | index_offset u64 | index_bytes u64
//!   | source count u32 | source sequence u64 * count | CRC-32 of the header before it u32
//! chunks, from the end of the header:
//!   (Gorilla chunk bytes | CRC-32 of them u32)*
//! index, index_bytes at index_offset, one entry per series in label order:
//!   (varint entry length | entry | CRC-32 of entry u32)*
//!   entry: varint label count, (varint length, name, varint length, value)*,
//!          varint chunk count, (min_time i64 | max_time i64 | sample count u16
//!          | varint chunk offset | varint chunk length)*
//! footer: "ABBLKEND"
//! ```
//!
//! The sources are the blocks a compacted block replaces; a start that finds
//! both deletes the sources (the compaction was interrupted after the rename).
//! The chunk bytes are exactly those of [`Chunk::bytes`], so writing and reading
//! never re-encode a sample: values, NaN payloads and staleness markers included,
//! come back bit for bit.
//!
//! Checks happen where the bytes are read: opening checks the header checksum,
//! the footer and that the index lies inside the file; loading the index checks
//! every entry's checksum and that its chunks lie inside the chunk area; reading
//! a chunk checks its checksum and that it decodes to the count and time range
//! the index gave. A failed check is a [`BlockError::Corrupt`] naming the block
//! and why, returned to that read only. No length read from a file allocates
//! more than the file holds.
//!
//! This module does not decide when to write, compact or delete a block; the
//! durable store does.

pub mod compact;
pub mod v1;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::chunk::Chunk;
use crate::postings::{PostingsIndex, SeriesId};
use crate::{Labels, LabelsBuilder, MemStore};

const MAGIC: &[u8; 8] = b"ABBLOCK\x02";
const FOOTER_MAGIC: &[u8; 8] = b"ABBLKEND";
/// Header bytes before the sources list.
const FIXED_HEADER_BYTES: usize = 76;
/// Most blocks one compacted block may replace.
pub const MAX_SOURCES: usize = 4096;
/// File name suffix of a complete block.
pub const BLOCK_SUFFIX: &str = ".block";
/// File name suffix of a block being written.
pub const TEMPORARY_SUFFIX: &str = ".block.tmp";

/// Errors reading or writing a block.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("block {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("block {path} is damaged: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("block {path} is in the first block format; it must be migrated before it is served")]
    FirstFormat { path: PathBuf },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> BlockError + '_ {
    move |source| BlockError::Io { path: path.to_owned(), source }
}

fn corrupt(path: &Path, reason: impl Into<String>) -> BlockError {
    BlockError::Corrupt { path: path.to_owned(), reason: reason.into() }
}

/// What a block's header records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockMeta {
    /// The number in the file name; later blocks have larger ones.
    pub sequence: u64,
    /// Smallest and largest sample timestamp in the block (milliseconds).
    pub min_time: i64,
    pub max_time: i64,
    pub series: u64,
    pub chunks: u64,
    pub samples: u64,
    /// The first write-ahead log segment whose samples the block does not hold:
    /// every sample logged in an earlier segment is in this block or an older one.
    pub wal_segment: u64,
    /// Size of the file.
    pub bytes: u64,
}

/// The path of block `sequence` in `directory`.
pub fn block_path(directory: &Path, sequence: u64) -> PathBuf {
    directory.join(format!("{sequence:08}{BLOCK_SUFFIX}"))
}

fn temporary_path(directory: &Path, sequence: u64) -> PathBuf {
    directory.join(format!("{sequence:08}{TEMPORARY_SUFFIX}"))
}

/// What a blocks directory holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct BlockListing {
    /// Complete blocks as `(sequence, path)`, oldest first.
    pub blocks: Vec<(u64, PathBuf)>,
    /// Leftovers of interrupted writes (`.tmp` files).
    pub temporary: Vec<PathBuf>,
}

/// Lists the blocks in `directory` (none when it does not exist).
pub fn list_blocks(directory: &Path) -> Result<BlockListing, BlockError> {
    let mut blocks = Vec::new();
    let mut temporary = Vec::new();
    let entries = match fs::read_dir(directory) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(BlockListing::default()),
        Err(error) => return Err(BlockError::Io { path: directory.to_owned(), source: error }),
    };
    for entry in entries.filter_map(Result::ok) {
        let Ok(name) = entry.file_name().into_string() else { continue };
        if name.ends_with(TEMPORARY_SUFFIX) {
            temporary.push(entry.path());
        } else if let Some(sequence) = name.strip_suffix(BLOCK_SUFFIX).and_then(|stem| stem.parse().ok()) {
            blocks.push((sequence, entry.path()));
        }
    }
    blocks.sort_unstable();
    temporary.sort_unstable();
    Ok(BlockListing { blocks, temporary })
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads the parts of a block's bytes, bounds-checked: every `None` is damage.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, length: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.position..self.position.checked_add(length)?)?;
        self.position += length;
        Some(slice)
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(value);
            }
        }
        None
    }

    fn length(&mut self) -> Option<usize> {
        usize::try_from(self.varint()?).ok()
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn string(&mut self) -> Option<&'a str> {
        let length = self.length()?;
        std::str::from_utf8(self.take(length)?).ok()
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.position)
    }
}

/// Where one chunk of a series lies in its block, as the index says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    pub min_time: i64,
    pub max_time: i64,
    pub samples: u16,
    /// Offset of the chunk bytes in the file, and their length (the checksum follows).
    pub offset: u64,
    pub length: u32,
}

/// One series of a block's index.
#[derive(Debug, Clone)]
pub struct IndexedSeries {
    pub labels: Labels,
    /// Oldest first, not overlapping.
    pub chunks: Vec<ChunkMeta>,
}

/// A block's checked index: the raw entries, where each one lies, and a
/// postings index over them (series ids are entry positions, in label
/// order). Entries are decoded again when a query needs one, so the cache
/// holds a few bytes per series rather than decoded label sets.
#[derive(Debug)]
pub struct BlockIndex {
    entries: Vec<u8>,
    /// Start and length of each entry's checked bytes in `entries`.
    spans: Vec<(usize, usize)>,
    postings: PostingsIndex,
}

impl BlockIndex {
    /// Number of series.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The series at `position` (its entry was checked when the index was loaded).
    pub fn series(&self, position: usize) -> Option<IndexedSeries> {
        let &(start, length) = self.spans.get(position)?;
        decode_entry(self.entries.get(start..start.checked_add(length)?)?).ok()
    }

    fn labels(&self, position: usize) -> Option<Labels> {
        let &(start, length) = self.spans.get(position)?;
        let mut entry = Cursor { bytes: self.entries.get(start..start.checked_add(length)?)?, position: 0 };
        decode_labels(&mut entry)
    }

    /// Positions of the series matching every matcher, ascending.
    pub fn select(&self, matchers: &[crate::Matcher]) -> Vec<usize> {
        let labels_of = |id: SeriesId| self.labels(id as usize);
        self.postings.select(matchers, labels_of).into_iter().map(|id| id as usize).collect()
    }

    /// An estimate of the heap bytes the index holds.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.entries.capacity()
            + self.spans.capacity() * size_of::<(usize, usize)>()
            + self.postings.memory_bytes()
    }
}

fn decode_labels(entry: &mut Cursor<'_>) -> Option<Labels> {
    let label_count = entry.length()?;
    let mut builder = LabelsBuilder::default();
    for _ in 0..label_count {
        let name = entry.string()?;
        let value = entry.string()?;
        builder.set(name, value);
    }
    Some(builder.build())
}

/// Decodes one index entry; the error says what is wrong.
fn decode_entry(bytes: &[u8]) -> Result<IndexedSeries, &'static str> {
    let mut entry = Cursor { bytes, position: 0 };
    let labels = decode_labels(&mut entry).ok_or("bad labels")?;
    let chunk_count = entry.length().ok_or("bad chunk count")?;
    let mut chunks: Vec<ChunkMeta> = Vec::with_capacity(chunk_count.min(entry.remaining() / 20));
    for _ in 0..chunk_count {
        let chunk = (|| {
            Some(ChunkMeta {
                min_time: entry.u64()? as i64,
                max_time: entry.u64()? as i64,
                samples: entry.u16()?,
                offset: entry.varint()?,
                length: u32::try_from(entry.varint()?).ok()?,
            })
        })()
        .ok_or("truncated chunk reference")?;
        chunks.push(chunk);
    }
    if entry.remaining() != 0 {
        return Err("unexpected bytes after the chunk references");
    }
    Ok(IndexedSeries { labels, chunks })
}

/// An open block: its checked header and the file its chunks and index are read from.
#[derive(Debug)]
pub struct BlockFile {
    path: PathBuf,
    file: File,
    meta: BlockMeta,
    /// The blocks this one replaces (empty unless it was compacted).
    sources: Vec<u64>,
    /// Where the chunk area starts (the end of the header).
    chunks_start: u64,
    index_offset: u64,
    index_bytes: u64,
}

impl BlockFile {
    /// Opens the block at `path` and checks its header and footer. A block in
    /// the first format is refused with [`BlockError::FirstFormat`].
    pub fn open(path: &Path, sequence: u64) -> Result<Self, BlockError> {
        let file = File::open(path).map_err(io_error(path))?;
        let length = file.metadata().map_err(io_error(path))?.len();
        let mut fixed = [0u8; FIXED_HEADER_BYTES];
        if length < 8 {
            return Err(corrupt(path, "shorter than its magic"));
        }
        let prefix = usize::try_from(length).unwrap_or(usize::MAX).min(FIXED_HEADER_BYTES);
        file.read_exact_at(&mut fixed[..prefix], 0).map_err(io_error(path))?;
        if &fixed[0..8] == v1::MAGIC {
            return Err(BlockError::FirstFormat { path: path.to_owned() });
        }
        if &fixed[0..8] != MAGIC {
            return Err(corrupt(path, "not a block (bad magic or unknown version)"));
        }
        if prefix < FIXED_HEADER_BYTES {
            return Err(corrupt(path, "shorter than its header"));
        }
        let mut cursor = Cursor { bytes: &fixed, position: 8 };
        let mut field = || cursor.u64().unwrap_or_default();
        let mut meta = BlockMeta {
            sequence,
            min_time: field() as i64,
            max_time: field() as i64,
            series: field(),
            chunks: field(),
            samples: field(),
            wal_segment: field(),
            bytes: length,
        };
        let index_offset = field();
        let index_bytes = field();
        let source_count = u32::from_le_bytes(fixed[72..76].try_into().unwrap_or_default()) as usize;
        if source_count > MAX_SOURCES {
            return Err(corrupt(path, format!("header lists {source_count} source blocks")));
        }
        let chunks_start = (FIXED_HEADER_BYTES + source_count * 8 + 4) as u64;
        if chunks_start > length {
            return Err(corrupt(path, "shorter than its header"));
        }
        let mut header = vec![0u8; chunks_start as usize];
        file.read_exact_at(&mut header, 0).map_err(io_error(path))?;
        let checksum_at = header.len() - 4;
        let checksum = u32::from_le_bytes(header[checksum_at..].try_into().unwrap_or_default());
        if crc32fast::hash(&header[..checksum_at]) != checksum {
            return Err(corrupt(path, "header checksum mismatch"));
        }
        let mut cursor = Cursor { bytes: &header[..checksum_at], position: FIXED_HEADER_BYTES };
        let sources = (0..source_count).filter_map(|_| cursor.u64()).collect();
        let index_end = index_offset.checked_add(index_bytes);
        if index_offset < chunks_start || index_end.and_then(|end| end.checked_add(8)) != Some(length) {
            return Err(corrupt(path, "index offset or length out of range"));
        }
        if meta.min_time > meta.max_time || meta.series == 0 {
            return Err(corrupt(path, "header time range or series count is impossible"));
        }
        let mut footer = [0u8; 8];
        file.read_exact_at(&mut footer, length - 8).map_err(io_error(path))?;
        if &footer != FOOTER_MAGIC {
            return Err(corrupt(path, "footer missing (incomplete write)"));
        }
        meta.bytes = length;
        Ok(Self { path: path.to_owned(), file, meta, sources, chunks_start, index_offset, index_bytes })
    }

    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The blocks this one replaces.
    pub fn sources(&self) -> &[u64] {
        &self.sources
    }

    /// Reads and checks the whole index.
    pub fn load_index(&self) -> Result<BlockIndex, BlockError> {
        let length = usize::try_from(self.index_bytes).map_err(|_| corrupt(&self.path, "index too large"))?;
        let mut bytes = vec![0u8; length];
        self.file.read_exact_at(&mut bytes, self.index_offset).map_err(io_error(&self.path))?;
        decode_index(&self.path, bytes, &self.meta, self.chunks_start, self.index_offset)
    }

    /// Reads one chunk the index describes, checking its checksum, sample count and time range.
    pub fn read_chunk(&self, meta: &ChunkMeta) -> Result<Chunk, BlockError> {
        let damaged = |reason: &str| corrupt(&self.path, format!("chunk at offset {}: {reason}", meta.offset));
        let mut bytes = vec![0u8; meta.length as usize + 4];
        self.file.read_exact_at(&mut bytes, meta.offset).map_err(io_error(&self.path))?;
        let checksum_at = meta.length as usize;
        let checksum = u32::from_le_bytes(bytes[checksum_at..].try_into().unwrap_or_default());
        bytes.truncate(checksum_at);
        if crc32fast::hash(&bytes) != checksum {
            return Err(damaged("checksum mismatch"));
        }
        let chunk = Chunk::from_encoded(bytes.into(), meta.samples).ok_or_else(|| damaged("undecodable"))?;
        if chunk.min_time() != meta.min_time || chunk.max_time() != meta.max_time {
            return Err(damaged("time range differs from the index"));
        }
        Ok(chunk)
    }
}

/// Checks every index entry and builds the postings.
fn decode_index(
    path: &Path,
    bytes: Vec<u8>,
    meta: &BlockMeta,
    chunks_start: u64,
    chunks_end: u64,
) -> Result<BlockIndex, BlockError> {
    let mut cursor = Cursor { bytes: &bytes, position: 0 };
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut postings = PostingsIndex::default();
    let mut last_labels: Option<Labels> = None;
    let (mut chunks_seen, mut samples_seen) = (0u64, 0u64);
    while cursor.remaining() > 0 {
        let number = spans.len();
        let damaged = |reason: &str| corrupt(path, format!("index entry {number}: {reason}"));
        let length = cursor.length().ok_or_else(|| damaged("truncated"))?;
        let start = cursor.position;
        let entry = cursor.take(length).ok_or_else(|| damaged("truncated"))?;
        let checksum = cursor.u32().ok_or_else(|| damaged("truncated"))?;
        if crc32fast::hash(entry) != checksum {
            return Err(damaged("checksum mismatch"));
        }
        let series = decode_entry(entry).map_err(damaged)?;
        if last_labels.as_ref().is_some_and(|previous| *previous >= series.labels) {
            return Err(damaged("series out of label order"));
        }
        let mut previous: Option<&ChunkMeta> = None;
        for chunk in &series.chunks {
            let end = chunk.offset.checked_add(u64::from(chunk.length) + 4);
            if chunk.offset < chunks_start || end.is_none_or(|end| end > chunks_end) {
                return Err(damaged("chunk outside the chunk area"));
            }
            if chunk.samples == 0 || chunk.min_time > chunk.max_time {
                return Err(damaged("impossible chunk reference"));
            }
            if previous.is_some_and(|previous| chunk.min_time <= previous.max_time) {
                return Err(damaged("chunks out of order"));
            }
            if chunk.min_time < meta.min_time || chunk.max_time > meta.max_time {
                return Err(damaged("chunk outside the block's time range"));
            }
            chunks_seen += 1;
            samples_seen += u64::from(chunk.samples);
            previous = Some(chunk);
        }
        let id = SeriesId::try_from(number).map_err(|_| damaged("too many series"))?;
        postings.add(id, &series.labels);
        spans.push((start, length));
        last_labels = Some(series.labels);
    }
    if spans.len() as u64 != meta.series || chunks_seen != meta.chunks || samples_seen != meta.samples {
        return Err(corrupt(path, "header and index disagree on the series, chunk or sample count"));
    }
    Ok(BlockIndex { entries: bytes, spans, postings })
}

/// Writes one block: series in label order, each with its chunks oldest first.
/// Nothing is visible under the block's name until [`BlockWriter::finish`]
/// renamed the fsynced file; dropping the writer before that deletes it.
pub struct BlockWriter {
    directory: PathBuf,
    temporary: PathBuf,
    sequence: u64,
    sources: Vec<u64>,
    file: Option<BufWriter<File>>,
    written: u64,
    index: Vec<u8>,
    entry: Vec<u8>,
    meta: BlockMeta,
    last_labels: Option<Labels>,
}

impl BlockWriter {
    /// Starts block `sequence` in `directory`, recording `wal_segment` and the
    /// blocks it replaces (`sources`, at most [`MAX_SOURCES`]).
    pub fn create(directory: &Path, sequence: u64, wal_segment: u64, sources: &[u64]) -> Result<Self, BlockError> {
        fs::create_dir_all(directory).map_err(io_error(directory))?;
        let temporary = temporary_path(directory, sequence);
        if sources.len() > MAX_SOURCES {
            return Err(corrupt(&temporary, format!("cannot replace {} blocks at once", sources.len())));
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&temporary)
            .map_err(io_error(&temporary))?;
        let mut writer = Self {
            directory: directory.to_owned(),
            temporary,
            sequence,
            sources: sources.to_vec(),
            file: Some(BufWriter::with_capacity(1 << 20, file)),
            written: 0,
            index: Vec::new(),
            entry: Vec::new(),
            meta: BlockMeta {
                sequence,
                min_time: i64::MAX,
                max_time: i64::MIN,
                series: 0,
                chunks: 0,
                samples: 0,
                wal_segment,
                bytes: 0,
            },
            last_labels: None,
        };
        let header = writer.header(0, 0);
        writer.write(&header)?;
        Ok(writer)
    }

    fn header(&self, index_offset: u64, index_bytes: u64) -> Vec<u8> {
        let meta = &self.meta;
        let mut header = Vec::with_capacity(FIXED_HEADER_BYTES + self.sources.len() * 8 + 4);
        header.extend_from_slice(MAGIC);
        for field in [
            meta.min_time as u64,
            meta.max_time as u64,
            meta.series,
            meta.chunks,
            meta.samples,
            meta.wal_segment,
            index_offset,
            index_bytes,
        ] {
            header.extend_from_slice(&field.to_le_bytes());
        }
        header.extend_from_slice(&(self.sources.len() as u32).to_le_bytes());
        for source in &self.sources {
            header.extend_from_slice(&source.to_le_bytes());
        }
        let checksum = crc32fast::hash(&header);
        header.extend_from_slice(&checksum.to_le_bytes());
        header
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), BlockError> {
        let file = self.file.as_mut().ok_or_else(|| corrupt(&self.temporary, "written after finishing"))?;
        file.write_all(bytes).map_err(io_error(&self.temporary))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Adds a series. Series must come in strictly increasing label order,
    /// chunks oldest first and not overlapping; a series without chunks is skipped.
    pub fn add_series(&mut self, labels: &Labels, chunks: &[Chunk]) -> Result<(), BlockError> {
        if chunks.is_empty() {
            return Ok(());
        }
        if self.last_labels.as_ref().is_some_and(|last| last >= labels) {
            return Err(corrupt(&self.temporary, format!("series {labels} written out of label order")));
        }
        if chunks.windows(2).any(|pair| pair[1].min_time() <= pair[0].max_time()) {
            return Err(corrupt(&self.temporary, format!("chunks of series {labels} overlap")));
        }
        let mut entry = std::mem::take(&mut self.entry);
        entry.clear();
        put_varint(&mut entry, labels.len() as u64);
        for label in labels {
            put_varint(&mut entry, label.name.len() as u64);
            entry.extend_from_slice(label.name.as_bytes());
            put_varint(&mut entry, label.value.len() as u64);
            entry.extend_from_slice(label.value.as_bytes());
        }
        put_varint(&mut entry, chunks.len() as u64);
        for chunk in chunks {
            let offset = self.written;
            let bytes = chunk.bytes();
            self.write(bytes)?;
            self.write(&crc32fast::hash(bytes).to_le_bytes())?;
            entry.extend_from_slice(&chunk.min_time().to_le_bytes());
            entry.extend_from_slice(&chunk.max_time().to_le_bytes());
            entry.extend_from_slice(&u16::try_from(chunk.len()).unwrap_or(u16::MAX).to_le_bytes());
            put_varint(&mut entry, offset);
            put_varint(&mut entry, bytes.len() as u64);
            self.meta.min_time = self.meta.min_time.min(chunk.min_time());
            self.meta.max_time = self.meta.max_time.max(chunk.max_time());
            self.meta.chunks += 1;
            self.meta.samples += chunk.len() as u64;
        }
        put_varint(&mut self.index, entry.len() as u64);
        self.index.extend_from_slice(&entry);
        self.index.extend_from_slice(&crc32fast::hash(&entry).to_le_bytes());
        self.entry = entry;
        self.meta.series += 1;
        self.last_labels = Some(labels.clone());
        Ok(())
    }

    /// Writes the index and footer, fsyncs, renames the file to its final name
    /// and fsyncs the directory. Returns `None`, leaving nothing behind, when
    /// no series was added.
    pub fn finish(mut self) -> Result<Option<BlockMeta>, BlockError> {
        if self.meta.series == 0 {
            return Ok(None);
        }
        let index_offset = self.written;
        let index = std::mem::take(&mut self.index);
        self.write(&index)?;
        self.write(FOOTER_MAGIC)?;
        let header = self.header(index_offset, index.len() as u64);
        let file = self.file.take().ok_or_else(|| corrupt(&self.temporary, "finished twice"))?;
        let file = file
            .into_inner()
            .map_err(|error| BlockError::Io { path: self.temporary.clone(), source: error.into_error() })?;
        file.write_all_at(&header, 0).map_err(io_error(&self.temporary))?;
        file.sync_all().map_err(io_error(&self.temporary))?;
        drop(file);
        let final_path = block_path(&self.directory, self.sequence);
        fs::rename(&self.temporary, &final_path).map_err(io_error(&final_path))?;
        sync_directory(&self.directory)?;
        self.meta.bytes = self.written;
        Ok(Some(self.meta))
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        // Unfinished (an error or nothing to write): the temporary file goes.
        if self.file.is_some() || self.meta.series == 0 {
            self.file = None;
            let _ = fs::remove_file(&self.temporary);
        }
    }
}

/// Fsyncs a directory, so renames and deletions in it are durable.
pub fn sync_directory(directory: &Path) -> Result<(), BlockError> {
    File::open(directory).and_then(|handle| handle.sync_all()).map_err(io_error(directory))
}

/// Writes the chunks `store`'s checkpoint in progress covers (see
/// [`MemStore::cut_for_checkpoint`]) as block `sequence` in `directory`, durably:
/// temporary file, fsync, rename, directory fsync. `wal_segment` is the first
/// write-ahead log segment the checkpoint does not cover. Returns `None`, writing
/// nothing, when there is nothing to write.
pub fn write_block(
    directory: &Path,
    sequence: u64,
    wal_segment: u64,
    store: &MemStore,
) -> Result<Option<BlockMeta>, BlockError> {
    let mut writer = BlockWriter::create(directory, sequence, wal_segment, &[])?;
    store.for_each_checkpoint_chunks(|labels, chunks| writer.add_series(labels, chunks))?;
    writer.finish()
}

/// Rewrites the first-format block `sequence` in `directory` in the current
/// format, under the same name (temporary file, fsync, rename). The old file
/// is replaced only once the new one is durable, and only when the old one
/// checks out whole.
pub fn migrate_v1(directory: &Path, sequence: u64) -> Result<BlockMeta, BlockError> {
    let path = block_path(directory, sequence);
    let mut series: Vec<(Labels, Vec<Chunk>)> = Vec::new();
    let old = v1::read(&path, sequence, |labels, chunks| series.push((labels, chunks)))?;
    series.sort_by(|left, right| left.0.cmp(&right.0));
    let mut writer = BlockWriter::create(directory, sequence, old.wal_segment, &[])?;
    for (labels, chunks) in &series {
        writer.add_series(labels, chunks)?;
    }
    writer.finish()?.ok_or_else(|| corrupt(&path, "holds no series"))
}

#[cfg(test)]
mod tests;
