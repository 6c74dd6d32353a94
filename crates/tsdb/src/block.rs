//! Immutable on-disk blocks: the sealed chunks of a checkpoint, one file each.
//!
//! Key types: [`BlockMeta`] (what a block's header says: time range, counts and
//! the first write-ahead log segment the block does not cover), [`write_block`]
//! (writes the chunks a [`MemStore`] checkpoint covers), [`read_block`] (checks a
//! block and hands back its series and chunks), [`read_block_meta`] (the header
//! alone, for retention) and [`list_blocks`].
//!
//! A block is one file, `<sequence:08>.block`, in the blocks directory. One file
//! means one atomic rename: it is written as `<sequence:08>.block.tmp`, fsynced,
//! renamed, and the directory fsynced, so a block either exists whole or not at
//! all; a leftover `.tmp` file is an interrupted write and is deleted at start.
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
//!
//! The chunk bytes are exactly those of [`Chunk::bytes`], so writing and loading
//! never re-encode a sample: values, NaN payloads and staleness markers included,
//! come back bit for bit. Reading checks both checksums before handing anything
//! out, and decodes every chunk once, so a damaged block is refused whole.
//!
//! This module does not decide when to write a block or which blocks retention
//! removes; the durable store does.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::chunk::Chunk;
use crate::{Labels, LabelsBuilder, MemStore};

const MAGIC: &[u8; 8] = b"ABBLOCK\x01";
const FOOTER_MAGIC: &[u8; 8] = b"ABBLKEND";
/// Size of the fixed header.
pub const HEADER_BYTES: usize = 72;
const FOOTER_BYTES: usize = 12;
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

    fn string(&mut self) -> Option<&'a str> {
        let length = self.length()?;
        std::str::from_utf8(self.take(length)?).ok()
    }
}

/// Writes into a file while computing the CRC-32 of what was written.
struct ChecksummedWriter {
    file: BufWriter<File>,
    hasher: crc32fast::Hasher,
    written: u64,
}

impl ChecksummedWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        self.file.write_all(bytes)
    }
}

fn encode_header(meta: &BlockMeta, index_offset: u64) -> [u8; HEADER_BYTES] {
    let mut header = [0u8; HEADER_BYTES];
    header[0..8].copy_from_slice(MAGIC);
    header[8..16].copy_from_slice(&meta.min_time.to_le_bytes());
    header[16..24].copy_from_slice(&meta.max_time.to_le_bytes());
    header[24..32].copy_from_slice(&meta.series.to_le_bytes());
    header[32..40].copy_from_slice(&meta.chunks.to_le_bytes());
    header[40..48].copy_from_slice(&meta.samples.to_le_bytes());
    header[48..56].copy_from_slice(&meta.wal_segment.to_le_bytes());
    header[56..64].copy_from_slice(&index_offset.to_le_bytes());
    let checksum = crc32fast::hash(&header[0..64]);
    header[64..68].copy_from_slice(&checksum.to_le_bytes());
    header
}

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
    fs::create_dir_all(directory).map_err(io_error(directory))?;
    let final_path = block_path(directory, sequence);
    let temporary_path = directory.join(format!("{sequence:08}{TEMPORARY_SUFFIX}"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&temporary_path)
        .map_err(io_error(&temporary_path))?;
    let result = write_body(file, &temporary_path, sequence, wal_segment, store);
    let meta = match result {
        Ok(Some(meta)) => meta,
        Ok(None) => {
            fs::remove_file(&temporary_path).map_err(io_error(&temporary_path))?;
            return Ok(None);
        }
        Err(error) => {
            let _ = fs::remove_file(&temporary_path);
            return Err(error);
        }
    };
    fs::rename(&temporary_path, &final_path).map_err(io_error(&final_path))?;
    File::open(directory).and_then(|handle| handle.sync_all()).map_err(io_error(directory))?;
    Ok(Some(meta))
}

fn write_body(
    file: File,
    path: &Path,
    sequence: u64,
    wal_segment: u64,
    store: &MemStore,
) -> Result<Option<BlockMeta>, BlockError> {
    let mut meta = BlockMeta {
        sequence,
        min_time: i64::MAX,
        max_time: i64::MIN,
        series: 0,
        chunks: 0,
        samples: 0,
        wal_segment,
        bytes: 0,
    };
    let mut writer = ChecksummedWriter {
        file: BufWriter::with_capacity(1 << 20, file),
        hasher: crc32fast::Hasher::new(),
        written: 0,
    };
    writer.file.write_all(&[0u8; HEADER_BYTES]).map_err(io_error(path))?;
    let mut offsets: Vec<u64> = Vec::new();
    let mut entry = Vec::new();
    store
        .for_each_checkpoint_chunks(|labels, chunks| {
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
                let count = u16::try_from(chunk.len()).unwrap_or(u16::MAX);
                entry.extend_from_slice(&count.to_le_bytes());
                put_varint(&mut entry, chunk.bytes().len() as u64);
                entry.extend_from_slice(chunk.bytes());
                meta.min_time = meta.min_time.min(chunk.min_time());
                meta.max_time = meta.max_time.max(chunk.max_time());
                meta.chunks += 1;
                meta.samples += chunk.len() as u64;
            }
            offsets.push(HEADER_BYTES as u64 + writer.written);
            meta.series += 1;
            writer.write(&entry)
        })
        .map_err(io_error(path))?;
    if meta.series == 0 {
        return Ok(None);
    }
    let index_offset = HEADER_BYTES as u64 + writer.written;
    entry.clear();
    put_varint(&mut entry, offsets.len() as u64);
    for offset in &offsets {
        entry.extend_from_slice(&offset.to_le_bytes());
    }
    writer.write(&entry).map_err(io_error(path))?;
    let checksum = writer.hasher.clone().finalize();
    writer.file.write_all(&checksum.to_le_bytes()).map_err(io_error(path))?;
    writer.file.write_all(FOOTER_MAGIC).map_err(io_error(path))?;
    meta.bytes = (HEADER_BYTES + FOOTER_BYTES) as u64 + writer.written;
    let mut file = writer
        .file
        .into_inner()
        .map_err(|error| BlockError::Io { path: path.to_owned(), source: error.into_error() })?;
    file.seek(SeekFrom::Start(0)).map_err(io_error(path))?;
    file.write_all(&encode_header(&meta, index_offset)).map_err(io_error(path))?;
    file.sync_all().map_err(io_error(path))?;
    Ok(Some(meta))
}

/// Reads only the header of the block at `path`.
pub fn read_block_meta(path: &Path, sequence: u64) -> Result<BlockMeta, BlockError> {
    let mut header = [0u8; HEADER_BYTES];
    let mut file = File::open(path).map_err(io_error(path))?;
    io::Read::read_exact(&mut file, &mut header).map_err(|_| corrupt(path, "shorter than its header"))?;
    let (mut meta, _) = decode_header(path, &header)?;
    meta.sequence = sequence;
    meta.bytes = file.metadata().map_err(io_error(path))?.len();
    Ok(meta)
}

/// Reads and checks the whole block at `path`, then hands each series' labels
/// and chunks (oldest first) to `visit`. Nothing is handed out unless the
/// whole block checks out.
pub fn read_block(
    path: &Path,
    sequence: u64,
    mut visit: impl FnMut(Labels, Vec<Chunk>),
) -> Result<BlockMeta, BlockError> {
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::{Matcher, Queryable, STALE_NAN};

    fn labels(index: usize) -> Labels {
        Labels::from_pairs([("__name__", "block_probe"), ("series", &format!("s{index}"))])
    }

    /// A store with `series` series of 300 samples each (three chunks and a head), checkpoint cut.
    fn store_with(series: usize) -> MemStore {
        let store = MemStore::new();
        for index in 0..series {
            for step in 0..300i64 {
                let value = if step == 7 { STALE_NAN } else { step as f64 * 0.5 + index as f64 };
                store.append(&labels(index), step * 15_000, value).expect("append");
            }
        }
        store.cut_for_checkpoint();
        store
    }

    fn bits(store: &MemStore, index: usize) -> Vec<(i64, u64)> {
        let selected =
            store.select(&[Matcher::equal("series", format!("s{index}"))], i64::MIN, i64::MAX).expect("select");
        selected[0].samples.iter().map(|sample| (sample.timestamp, sample.value.to_bits())).collect()
    }

    #[test]
    fn a_block_round_trips_chunks_bit_for_bit() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let store = store_with(5);
        let meta = write_block(directory.path(), 3, 9, &store).expect("write").expect("a block");
        assert_eq!((meta.series, meta.samples, meta.chunks, meta.wal_segment), (5, 1500, 15, 9));
        assert_eq!((meta.min_time, meta.max_time), (0, 299 * 15_000));
        let path = block_path(directory.path(), 3);
        assert_eq!(read_block_meta(&path, 3).expect("meta"), meta);
        let loaded = MemStore::new();
        let read = read_block(&path, 3, |labels, chunks| {
            assert_eq!(loaded.load_persisted_chunks(&labels, chunks), (300, 0));
        })
        .expect("read");
        assert_eq!(read, meta);
        for index in 0..5 {
            assert_eq!(bits(&loaded, index), bits(&store, index));
        }
        assert_eq!(
            list_blocks(directory.path()).expect("list"),
            BlockListing { blocks: vec![(3, path)], temporary: vec![] }
        );
        // Committed chunks are not written again.
        store.commit_checkpoint();
        store.cut_for_checkpoint();
        assert!(write_block(directory.path(), 4, 10, &store).expect("write").is_none());
        assert_eq!(list_blocks(directory.path()).expect("list").blocks.len(), 1);
    }

    #[test]
    fn appends_after_the_cut_go_to_the_next_block_only() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let store = store_with(2);
        store.append(&labels(0), 300 * 15_000, 1.0).expect("append after the cut");
        let first = write_block(directory.path(), 1, 2, &store).expect("write").expect("a block");
        store.commit_checkpoint();
        assert_eq!(first.samples, 600);
        store.cut_for_checkpoint();
        let second = write_block(directory.path(), 2, 3, &store).expect("write").expect("a block");
        assert_eq!((second.series, second.samples, second.min_time), (1, 1, 300 * 15_000));
    }

    /// Every single flipped bit of a block, header, body and footer alike, is refused as damage.
    #[test]
    fn every_flipped_bit_is_detected() {
        let directory = tempfile::tempdir().expect("temporary directory");
        write_block(directory.path(), 1, 1, &store_with(3)).expect("write").expect("a block");
        let path = block_path(directory.path(), 1);
        let original = std::fs::read(&path).expect("read");
        for position in 0..original.len() {
            for bit in [0x01u8, 0x80] {
                let mut bytes = original.clone();
                bytes[position] ^= bit;
                std::fs::write(&path, &bytes).expect("write");
                let mut handed_out = 0;
                let result = read_block(&path, 1, |_, _| handed_out += 1);
                assert!(
                    matches!(result, Err(BlockError::Corrupt { .. })),
                    "bit {bit:#x} of byte {position}: {result:?}"
                );
                assert_eq!(handed_out, 0);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any damage to a block is refused as damage, never a panic or a partial load.
        #[test]
        fn any_damage_is_detected(position in 0usize..4096, flip in 1u8..=255, cut in proptest::option::of(0usize..4096)) {
            let directory = tempfile::tempdir().expect("temporary directory");
            let store = store_with(3);
            write_block(directory.path(), 1, 1, &store).expect("write").expect("a block");
            let path = block_path(directory.path(), 1);
            let mut bytes = std::fs::read(&path).expect("read");
            let position = position % bytes.len();
            bytes[position] ^= flip;
            if let Some(cut) = cut {
                bytes.truncate(cut % bytes.len());
            }
            std::fs::write(&path, &bytes).expect("write");
            let mut handed_out = 0;
            let result = read_block(&path, 1, |_, _| handed_out += 1);
            prop_assert!(matches!(result, Err(BlockError::Corrupt { .. })), "{result:?}");
            prop_assert_eq!(handed_out, 0);
        }
    }
}
