//! The log store: streams of entries in memory, durable through a
//! write-ahead log and block files.
//!
//! [`LogStore::append`] validates a decoded push (line size, timestamps
//! within retention and not too far ahead, the stream limit), writes the
//! accepted entries as ONE log record, applies them to memory, and returns
//! once the record is committed under the fsync policy: an acknowledged entry
//! is durable. Memory and log are changed under one ingest lock, so the log
//! replays in exactly the order memory saw (equal timestamps keep push order)
//! and a checkpoint's cut partitions the data exactly. A query may see an
//! entry a moment before its append returns (while the fsync runs); an append
//! whose fsync fails returns an error and its entries may or may not survive a
//! restart, as with any log-structured store.
//!
//! Per stream, a head of recent entries (kept sorted by timestamp, so
//! out-of-order entries are accepted as in Loki) is sealed into a compressed
//! [`crate::chunk`] once it reaches the target size. An entry identical to one
//! already stored in (stream, timestamp, line) is dropped as a duplicate. A
//! label index (name → value → stream ids) narrows matcher lookups.
//!
//! Checkpoints ([`LogStore::checkpoint`]) write every chunk no block holds yet
//! into a new block file (see [`crate::block`]) and remove the log segments it
//! covers; compaction ([`LogStore::compact`], planned by [`crate::compact`])
//! merges closed blocks into one, served before its sources are deleted; at
//! start, blocks load (a damaged one is set aside as `*.block.corrupt`, the
//! sources a compacted block names are deleted, blocks are ordered by their
//! first checkpoint), then the log replays from the newest block's cut. A
//! crash between any two steps loses nothing acknowledged and duplicates
//! nothing (see the method's documentation). Retention by time and by size
//! runs from [`LogStore::maintain`], which the caller schedules with the
//! current time. Block chunks are served from disk: memory keeps each
//! chunk's metadata (time range, counts, place in its block file) and a
//! query reads and checks the bytes of the chunks it touches, so memory
//! follows streams and heads, not retention.
//!
//! The store writes exactly the entries it is given (redaction happens before
//! `append`) and keeps no other copy of a request on disk.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::hash::Hasher;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use logql::{Entry, LogSource, MatchOp, SourceError, StreamMatcher};
use parking_lot::{Mutex, RwLock};
use tsdb::Labels;
use wal::{FsyncPolicy, Wal, WalOptions};

use crate::block::{self, BlockError, BlockMeta, BlockStream};
use crate::chunk::Chunk;
use crate::codec::{Decode, Reader, put_bytes, put_labels, put_metadata, put_signed, put_varint};
use crate::push::{PushEntry, PushStream};

const ENTRIES_RECORD: u8 = 1;
/// Bytes a head entry costs beyond its line and metadata (timestamp, vectors).
const ENTRY_OVERHEAD_BYTES: usize = 16;

/// Tunables of the store.
#[derive(Debug, Clone)]
pub struct LogStoreOptions {
    /// When log records are fsynced ([`FsyncPolicy::Always`] makes every
    /// acknowledged entry survive power loss).
    pub fsync: FsyncPolicy,
    /// Size at which a log segment rolls over.
    pub wal_segment_bytes: u64,
    /// Entries older than this (relative to the time passed in) are refused
    /// and, by [`LogStore::maintain`], deleted.
    pub retention_time: Duration,
    /// Blocks plus log beyond this many bytes: the oldest blocks are deleted.
    pub retention_size_bytes: Option<u64>,
    /// Uncompressed bytes at which a stream's head is sealed into a chunk.
    pub chunk_target_bytes: usize,
    /// Longest line accepted, in bytes.
    pub max_line_bytes: usize,
    /// Most streams the store holds; entries of further new streams are refused.
    pub max_streams: usize,
    /// How far ahead of the time passed in an entry may be (Loki's creation grace period).
    pub max_future: Duration,
    /// [`LogStore::maintain`] checkpoints once the log holds this many bytes…
    pub checkpoint_wal_bytes: u64,
    /// …or this long after the previous checkpoint.
    pub checkpoint_interval: Duration,
}

impl Default for LogStoreOptions {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::Always,
            wal_segment_bytes: 64 << 20,
            retention_time: Duration::from_secs(336 * 3600),
            retention_size_bytes: None,
            chunk_target_bytes: 256 << 10,
            max_line_bytes: 256 << 10,
            max_streams: 100_000,
            max_future: Duration::from_secs(600),
            checkpoint_wal_bytes: 128 << 20,
            checkpoint_interval: Duration::from_secs(2 * 3600),
        }
    }
}

impl LogStoreOptions {
    /// The ranges [`LogStore::compact`] merges blocks into: three, nine and
    /// twenty-seven times the checkpoint interval, in nanoseconds.
    pub fn compaction_ranges(&self) -> Vec<i64> {
        crate::compact::ranges(duration_ns(self.checkpoint_interval))
    }
}

/// Errors of the store (the request's own problems are [`Rejection`]s).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Wal(#[from] wal::Error),
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("log store {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// A source block did not read; the compaction wrote and removed nothing.
    #[error("compaction of log blocks {sources:?} failed, nothing was changed: {reason}")]
    Compaction { sources: Vec<u64>, reason: String },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_owned(), source }
}

/// Why one entry was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    LineTooLong { bytes: usize, limit: usize },
    TooOld { timestamp_ns: i64, oldest_ns: i64 },
    TooFarInFuture { timestamp_ns: i64, newest_ns: i64 },
    StreamLimit { limit: usize },
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RejectReason::LineTooLong { bytes, limit } => {
                write!(f, "line of {bytes} bytes exceeds the limit of {limit} bytes")
            }
            RejectReason::TooOld { timestamp_ns, oldest_ns } => write!(
                f,
                "timestamp too old: {timestamp_ns} ns is before the oldest acceptable timestamp {oldest_ns} ns (retention)"
            ),
            RejectReason::TooFarInFuture { timestamp_ns, newest_ns } => write!(
                f,
                "timestamp too new: {timestamp_ns} ns is after the newest acceptable timestamp {newest_ns} ns"
            ),
            RejectReason::StreamLimit { limit } => {
                write!(f, "maximum active stream limit exceeded ({limit} streams)")
            }
        }
    }
}

/// One refused entry: where it was in the request and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub stream: usize,
    pub entry: usize,
    pub labels: Labels,
    pub reason: RejectReason,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stream {} {}, entry {}: {}", self.stream, self.labels, self.entry, self.reason)
    }
}

/// What an append did. Valid entries are stored even when others are
/// refused, as Loki does; the caller answers with [`AppendStats::status_code`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendStats {
    /// Streams that received at least one entry.
    pub streams: usize,
    pub entries_appended: usize,
    /// Entries dropped as identical to a stored one (stream, timestamp, line).
    pub duplicates: usize,
    /// Bytes of lines appended.
    pub bytes_appended: u64,
    pub rejected: Vec<Rejection>,
}

impl AppendStats {
    /// 204 when everything was accepted; 429 when entries were refused only
    /// for the stream limit; 400 otherwise (Loki's codes).
    pub fn status_code(&self) -> u16 {
        if self.rejected.is_empty() {
            204
        } else if self.rejected.iter().all(|rejection| matches!(rejection.reason, RejectReason::StreamLimit { .. })) {
            429
        } else {
            400
        }
    }

    /// The response message when entries were refused: the first ten reasons
    /// and the total, one per line.
    pub fn loki_message(&self) -> Option<String> {
        if self.rejected.is_empty() {
            return None;
        }
        let mut lines: Vec<String> = self.rejected.iter().take(10).map(ToString::to_string).collect();
        if self.rejected.len() > 10 {
            lines.push(format!("and {} more", self.rejected.len() - 10));
        }
        lines.push(format!(
            "total ignored: {} out of {}",
            self.rejected.len(),
            self.rejected.len() + self.entries_appended + self.duplicates
        ));
        Some(lines.join("\n"))
    }
}

/// What opening found.
#[derive(Debug, Clone, Default)]
pub struct ReplayStats {
    pub blocks_loaded: usize,
    pub block_entries: u64,
    /// Damaged blocks renamed to `*.block.corrupt`, with the reason.
    pub blocks_set_aside: Vec<String>,
    /// Leftovers of interrupted block writes, deleted.
    pub temporary_removed: Vec<String>,
    /// Blocks deleted because a compacted block that replaces them exists
    /// (a compaction was interrupted before it deleted them).
    pub blocks_superseded: Vec<String>,
    pub first_wal_segment: u64,
    pub wal_records: u64,
    pub wal_entries: u64,
    /// Replayed entries dropped as duplicates (none unless the log held some).
    pub wal_duplicates: u64,
    /// Records that did not decode (skipped).
    pub undecodable_records: u64,
    /// Truncations of a torn or corrupt log tail.
    pub repairs: Vec<String>,
}

/// What [`LogStore::maintain`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintainReport {
    /// The block a checkpoint wrote, if one ran and had data.
    pub checkpoint: Option<BlockMeta>,
    pub checkpointed: bool,
    pub blocks_removed_by_time: Vec<u64>,
    pub blocks_removed_by_size: Vec<u64>,
    pub chunks_removed: usize,
    pub entries_removed: u64,
    pub streams_removed: usize,
}

/// What [`LogStore::compact`] merged: each new block with the sequences it replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    pub merged: Vec<(BlockMeta, Vec<u64>)>,
}

/// The numbers of [`LogStore::index_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub streams: u64,
    pub chunks: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// Numbers for alertbook's `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStoreStats {
    pub streams: usize,
    pub entries: u64,
    pub chunks: usize,
    /// Head entries plus compressed chunks held in memory.
    pub memory_bytes: u64,
    pub blocks: usize,
    /// Bytes of block files.
    pub disk_bytes: u64,
    pub wal_bytes: u64,
}

struct Stream {
    labels: Labels,
    /// Sealed chunks in the order they were sealed.
    chunks: Vec<Chunk>,
    /// Unsealed entries sorted by timestamp, equal timestamps in push order.
    head: Vec<PushEntry>,
    head_bytes: usize,
    min_ts: i64,
    max_ts: i64,
    /// `(chunk id, (timestamp, line hash) of its entries)` of the last chunk a
    /// duplicate check decoded.
    dedup_cache: Option<(u64, HashSet<(i64, u64)>)>,
}

impl Stream {
    fn entries(&self) -> u64 {
        self.head.len() as u64 + self.chunks.iter().map(|chunk| u64::from(chunk.entries)).sum::<u64>()
    }

    fn recompute_range(&mut self) {
        let times = self.chunks.iter().map(|chunk| (chunk.min_ts, chunk.max_ts)).chain(
            self.head.first().zip(self.head.last()).map(|(first, last)| (first.timestamp_ns, last.timestamp_ns)),
        );
        let (min, max) = times.fold((i64::MAX, i64::MIN), |(min, max), (low, high)| (min.min(low), max.max(high)));
        self.min_ts = min;
        self.max_ts = max;
    }

    fn overlaps(&self, start_ns: i64, end_ns: i64) -> bool {
        self.min_ts < end_ns && self.max_ts >= start_ns
    }

    /// Whether an identical entry (timestamp and line) is stored.
    fn contains(&mut self, entry: &PushEntry) -> bool {
        let from = self.head.partition_point(|stored| stored.timestamp_ns < entry.timestamp_ns);
        if self.head[from..]
            .iter()
            .take_while(|stored| stored.timestamp_ns == entry.timestamp_ns)
            .any(|stored| stored.line == entry.line)
        {
            return true;
        }
        let timestamp = entry.timestamp_ns;
        let line_hash = hash_line(&entry.line);
        let Stream { chunks, dedup_cache, .. } = self;
        chunks.iter().filter(|chunk| chunk.min_ts <= timestamp && timestamp <= chunk.max_ts).any(|chunk| {
            // The fingerprints of the last chunk checked are cached: entries
            // sharing a chunk's last timestamp would otherwise decode it each.
            if dedup_cache.as_ref().is_none_or(|(id, _)| *id != chunk.id) {
                let fingerprints = chunk
                    .decode_entries()
                    .map(|entries| {
                        entries.iter().map(|stored| (stored.timestamp_ns, hash_line(&stored.line))).collect()
                    })
                    .unwrap_or_default();
                *dedup_cache = Some((chunk.id, fingerprints));
            }
            let maybe =
                dedup_cache.as_ref().is_some_and(|(_, fingerprints)| fingerprints.contains(&(timestamp, line_hash)));
            // A fingerprint match is confirmed on the entries themselves.
            maybe
                && chunk.decode_entries().is_ok_and(|entries| {
                    entries.iter().any(|stored| stored.timestamp_ns == timestamp && stored.line == entry.line)
                })
        })
    }

    /// Inserts after every entry with a timestamp not later than its own.
    fn insert(&mut self, entry: PushEntry) {
        self.head_bytes += entry_bytes(&entry);
        self.min_ts = self.min_ts.min(entry.timestamp_ns);
        self.max_ts = self.max_ts.max(entry.timestamp_ns);
        if self.head.last().is_none_or(|last| last.timestamp_ns <= entry.timestamp_ns) {
            self.head.push(entry);
        } else {
            let at = self.head.partition_point(|stored| stored.timestamp_ns <= entry.timestamp_ns);
            self.head.insert(at, entry);
        }
    }

    fn seal(&mut self, next_chunk_id: &mut u64) {
        if self.head.is_empty() {
            return;
        }
        let head = std::mem::take(&mut self.head);
        self.head_bytes = 0;
        let Some(chunk) = Chunk::seal(*next_chunk_id, &head) else { return };
        self.chunks.push(chunk);
        *next_chunk_id += 1;
    }
}

fn hash_line(line: &str) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(line.as_bytes());
    hasher.finish()
}

pub(crate) fn entry_bytes(entry: &PushEntry) -> usize {
    entry.line.len()
        + entry.metadata.iter().map(|(name, value)| name.len() + value.len()).sum::<usize>()
        + ENTRY_OVERHEAD_BYTES
}

#[derive(Default)]
struct State {
    streams: HashMap<u64, Stream>,
    by_labels: HashMap<Labels, u64>,
    /// Label name → value → ids of the streams that have it.
    postings: HashMap<String, HashMap<String, BTreeSet<u64>>>,
    next_stream_id: u64,
    next_chunk_id: u64,
}

impl State {
    fn stream_id(&mut self, labels: &Labels) -> u64 {
        if let Some(&id) = self.by_labels.get(labels) {
            return id;
        }
        let id = self.next_stream_id;
        self.next_stream_id += 1;
        for label in labels {
            self.postings.entry(label.name.clone()).or_default().entry(label.value.clone()).or_default().insert(id);
        }
        self.by_labels.insert(labels.clone(), id);
        self.streams.insert(
            id,
            Stream {
                labels: labels.clone(),
                chunks: Vec::new(),
                head: Vec::new(),
                head_bytes: 0,
                min_ts: i64::MAX,
                max_ts: i64::MIN,
                dedup_cache: None,
            },
        );
        id
    }

    fn remove_stream(&mut self, id: u64) {
        let Some(stream) = self.streams.remove(&id) else { return };
        self.by_labels.remove(&stream.labels);
        for label in &stream.labels {
            if let Some(values) = self.postings.get_mut(&label.name) {
                if let Some(ids) = values.get_mut(&label.value) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        values.remove(&label.value);
                    }
                }
                if values.is_empty() {
                    self.postings.remove(&label.name);
                }
            }
        }
    }

    /// Applies one stream's entries (in request order); returns (appended, duplicates, bytes).
    fn apply(&mut self, labels: &Labels, entries: Vec<PushEntry>, chunk_target_bytes: usize) -> (usize, usize, u64) {
        let id = self.stream_id(labels);
        let mut next_chunk_id = self.next_chunk_id;
        let Some(stream) = self.streams.get_mut(&id) else { return (0, 0, 0) };
        let (mut appended, mut duplicates, mut bytes) = (0, 0, 0u64);
        for entry in entries {
            if stream.contains(&entry) {
                duplicates += 1;
                continue;
            }
            appended += 1;
            bytes += entry.line.len() as u64;
            stream.insert(entry);
            if stream.head_bytes >= chunk_target_bytes {
                stream.seal(&mut next_chunk_id);
            }
        }
        self.next_chunk_id = next_chunk_id;
        if stream.head.is_empty() && stream.chunks.is_empty() {
            self.remove_stream(id);
        }
        (appended, duplicates, bytes)
    }

    /// Ids of the streams matching every matcher, ascending.
    fn matching(&self, matchers: &[StreamMatcher]) -> Vec<u64> {
        let mut candidates: Option<BTreeSet<u64>> = None;
        for matcher in matchers {
            if matcher.op != MatchOp::Equal || matcher.value.is_empty() {
                continue;
            }
            let ids = self.postings.get(&matcher.name).and_then(|values| values.get(&matcher.value));
            let Some(ids) = ids else { return Vec::new() };
            candidates = Some(match candidates {
                None => ids.clone(),
                Some(previous) => previous.intersection(ids).copied().collect(),
            });
        }
        let matches = |id: &u64| {
            self.streams
                .get(id)
                .is_some_and(|stream| matchers.iter().all(|matcher| matcher.matches_labels(&stream.labels)))
        };
        match candidates {
            Some(ids) => ids.into_iter().filter(matches).collect(),
            None => {
                let mut ids: Vec<u64> = self.streams.keys().copied().filter(matches).collect();
                ids.sort_unstable();
                ids
            }
        }
    }
}

struct Blocks {
    directory: PathBuf,
    /// Oldest first: by `(min_ts, sequence)`.
    metas: Vec<BlockMeta>,
    next_sequence: u64,
    /// Time of the last checkpoint (or of the first `maintain`).
    last_checkpoint_ns: Option<i64>,
}

/// The embedded log store. Every method takes `&self`: appends, queries and
/// maintenance may run concurrently from many threads.
pub struct LogStore {
    options: LogStoreOptions,
    wal: Wal,
    /// Held while writing the log and applying to memory, so both see one order.
    ingest: Mutex<()>,
    state: RwLock<State>,
    /// Held by checkpoints and retention, one at a time.
    blocks: Mutex<Blocks>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").field("wal", &self.wal).field("options", &self.options).finish()
    }
}

fn encode_record(streams: &[PushStream]) -> Vec<u8> {
    let size: usize = streams
        .iter()
        .map(|stream| 64 + stream.entries.iter().map(|entry| entry_bytes(entry) + 8).sum::<usize>())
        .sum();
    let mut out = Vec::with_capacity(size + 16);
    out.push(ENTRIES_RECORD);
    put_varint(&mut out, streams.len() as u64);
    for stream in streams {
        put_labels(&mut out, &stream.labels);
        put_varint(&mut out, stream.entries.len() as u64);
        for entry in &stream.entries {
            put_signed(&mut out, entry.timestamp_ns);
            put_bytes(&mut out, entry.line.as_bytes());
            put_metadata(&mut out, &entry.metadata);
        }
    }
    out
}

fn decode_record(record: &[u8]) -> Option<Vec<PushStream>> {
    let mut reader = Reader::new(record);
    if reader.byte()? != ENTRIES_RECORD {
        return None;
    }
    let count = reader.count()?;
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let labels = reader.labels()?;
        let entry_count = reader.count()?;
        let mut entries = Vec::with_capacity(entry_count);
        for _ in 0..entry_count {
            let timestamp_ns = reader.signed()?;
            let line = reader.string()?;
            let metadata = reader.metadata()?;
            entries.push(PushEntry { timestamp_ns, line, metadata });
        }
        streams.push(PushStream { labels, entries });
    }
    reader.is_empty().then_some(streams)
}

fn duration_ns(duration: Duration) -> i64 {
    i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX)
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
}

impl LogStore {
    /// Opens the store in `directory` (created if missing: `blocks/` and
    /// `wal/` beneath it), loading blocks and replaying the log.
    pub fn open(directory: &Path, options: LogStoreOptions) -> Result<(LogStore, ReplayStats), Error> {
        let blocks_directory = directory.join("blocks");
        fs::create_dir_all(&blocks_directory).map_err(io_error(&blocks_directory))?;
        let mut stats = ReplayStats::default();
        let mut state = State::default();

        let mut files: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&blocks_directory).map_err(io_error(&blocks_directory))? {
            let entry = entry.map_err(io_error(&blocks_directory))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                fs::remove_file(&path).map_err(io_error(&path))?;
                stats.temporary_removed.push(path.display().to_string());
            } else if let Some(sequence) = name.strip_suffix(".block").and_then(|stem| stem.parse::<u64>().ok()) {
                files.push((sequence, path));
            }
        }
        files.sort_unstable();
        let mut next_sequence = 1;
        let mut read = Vec::new();
        let mut failed = Vec::new();
        for (sequence, path) in files {
            next_sequence = next_sequence.max(sequence + 1);
            match block::read(&path, &mut state.next_chunk_id) {
                Ok(block) => read.push((path, block)),
                Err(error) => failed.push((sequence, path, error)),
            }
        }
        // A compacted block replaces its sources: any still here outlived an
        // interrupted compaction (the crash came after the rename).
        let superseded: HashSet<u64> = read.iter().flat_map(|(_, (meta, _))| meta.sources.iter().copied()).collect();
        let superseded_files = read
            .extract_if(.., |(_, (meta, _))| superseded.contains(&meta.sequence))
            .map(|(path, _)| path)
            .chain(failed.extract_if(.., |(sequence, _, _)| superseded.contains(sequence)).map(|(_, path, _)| path));
        for path in superseded_files.collect::<Vec<_>>() {
            fs::remove_file(&path).map_err(io_error(&path))?;
            stats.blocks_superseded.push(path.display().to_string());
        }
        if !stats.blocks_superseded.is_empty() {
            fs::File::open(&blocks_directory)
                .and_then(|handle| handle.sync_all())
                .map_err(io_error(&blocks_directory))?;
        }
        for (_, path, error) in failed {
            let aside = path.with_extension("block.corrupt");
            fs::rename(&path, &aside).map_err(io_error(&path))?;
            tracing::warn!(block = %path.display(), error = %error, "damaged log block set aside");
            stats.blocks_set_aside.push(error.to_string());
        }
        // Block order is push order for entries with equal timestamps.
        read.sort_by_key(|(_, (meta, _))| (meta.first_sequence, meta.sequence));
        let mut metas = Vec::new();
        for (_, (meta, streams)) in read {
            for stream in streams {
                let id = state.stream_id(&stream.labels);
                if let Some(target) = state.streams.get_mut(&id) {
                    target.chunks.extend(stream.chunks);
                    target.recompute_range();
                }
            }
            stats.blocks_loaded += 1;
            stats.block_entries += meta.entries;
            metas.push(meta);
        }
        sort_oldest_first(&mut metas);
        let first_segment = metas.iter().map(|meta| meta.wal_cut).max().unwrap_or(0);
        stats.first_wal_segment = first_segment;

        let wal_options = WalOptions { segment_bytes: options.wal_segment_bytes, fsync: options.fsync };
        let chunk_target = options.chunk_target_bytes;
        let (wal, replay) =
            Wal::open_from(&directory.join("wal"), wal_options, first_segment, |record| match decode_record(record) {
                Some(streams) => {
                    for stream in streams {
                        let entries = stream.entries.len() as u64;
                        let (_, duplicates, _) = state.apply(&stream.labels, stream.entries, chunk_target);
                        stats.wal_entries += entries - duplicates as u64;
                        stats.wal_duplicates += duplicates as u64;
                    }
                }
                None => stats.undecodable_records += 1,
            })?;
        stats.wal_records = replay.records;
        stats.repairs = replay.repairs;
        let store = LogStore {
            options,
            wal,
            ingest: Mutex::new(()),
            state: RwLock::new(state),
            blocks: Mutex::new(Blocks { directory: blocks_directory, metas, next_sequence, last_checkpoint_ns: None }),
        };
        Ok((store, stats))
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &LogStoreOptions {
        &self.options
    }

    /// [`LogStore::append_at`] with the wall clock's time.
    pub fn append(&self, streams: Vec<PushStream>) -> Result<AppendStats, Error> {
        self.append_at(streams, now_ns())
    }

    /// Validates `streams` against `now_ns`, logs the accepted entries as one
    /// record, applies them, and returns once the record is committed.
    pub fn append_at(&self, streams: Vec<PushStream>, now_ns: i64) -> Result<AppendStats, Error> {
        let mut stats = AppendStats::default();
        let oldest_ns = now_ns.saturating_sub(duration_ns(self.options.retention_time));
        let newest_ns = now_ns.saturating_add(duration_ns(self.options.max_future));
        let limit = self.options.max_line_bytes;
        let mut accepted: Vec<(usize, Vec<usize>, PushStream)> = Vec::with_capacity(streams.len());
        for (stream_index, stream) in streams.into_iter().enumerate() {
            let PushStream { labels, entries } = stream;
            let mut kept = Vec::with_capacity(entries.len());
            let mut kept_indexes = Vec::with_capacity(entries.len());
            for (entry_index, entry) in entries.into_iter().enumerate() {
                let reason = if entry.line.len() > limit {
                    Some(RejectReason::LineTooLong { bytes: entry.line.len(), limit })
                } else if entry.timestamp_ns < oldest_ns {
                    Some(RejectReason::TooOld { timestamp_ns: entry.timestamp_ns, oldest_ns })
                } else if entry.timestamp_ns > newest_ns {
                    Some(RejectReason::TooFarInFuture { timestamp_ns: entry.timestamp_ns, newest_ns })
                } else {
                    None
                };
                match reason {
                    Some(reason) => stats.rejected.push(Rejection {
                        stream: stream_index,
                        entry: entry_index,
                        labels: labels.clone(),
                        reason,
                    }),
                    None => {
                        kept.push(entry);
                        kept_indexes.push(entry_index);
                    }
                }
            }
            if !kept.is_empty() {
                accepted.push((stream_index, kept_indexes, PushStream { labels, entries: kept }));
            }
        }
        if accepted.is_empty() {
            return Ok(stats);
        }

        let sequence = {
            let _ingest = self.ingest.lock();
            // The stream limit: new streams beyond it are refused whole.
            {
                let state = self.state.read();
                let mut new_streams: HashSet<Labels> = HashSet::new();
                let max_streams = self.options.max_streams;
                accepted.retain(|(stream_index, indexes, stream)| {
                    if state.by_labels.contains_key(&stream.labels) || new_streams.contains(&stream.labels) {
                        return true;
                    }
                    if state.streams.len() + new_streams.len() < max_streams {
                        new_streams.insert(stream.labels.clone());
                        return true;
                    }
                    for &entry in indexes.iter() {
                        stats.rejected.push(Rejection {
                            stream: *stream_index,
                            entry,
                            labels: stream.labels.clone(),
                            reason: RejectReason::StreamLimit { limit: max_streams },
                        });
                    }
                    false
                });
            }
            if accepted.is_empty() {
                return Ok(stats);
            }
            let streams: Vec<PushStream> = accepted.into_iter().map(|(_, _, stream)| stream).collect();
            let record = encode_record(&streams);
            let sequence = self.wal.write(&[record.as_slice()])?;
            let mut state = self.state.write();
            for stream in streams {
                let (appended, duplicates, bytes) =
                    state.apply(&stream.labels, stream.entries, self.options.chunk_target_bytes);
                stats.streams += usize::from(appended > 0);
                stats.entries_appended += appended;
                stats.duplicates += duplicates;
                stats.bytes_appended += bytes;
            }
            sequence
        };
        self.wal.commit(sequence)?;
        Ok(stats)
    }

    /// Writes every chunk no block holds yet (sealing every head first) to a
    /// new block, then removes the log segments it covers. Returns the block,
    /// or `None` when there was nothing to write.
    ///
    /// Steps, each safe to be interrupted by a crash:
    /// 1. Under the ingest lock: cut the log to a new segment `n` (the old one
    ///    is fsynced) and seal every head. Entries logged before `n` are now
    ///    exactly the chunks no block holds (or ones retention dropped);
    ///    later entries go to new heads.
    /// 2. Write the block recording `n` (temporary file, fsync, rename,
    ///    directory fsync). A crash before the rename leaves a temporary file
    ///    that the next start deletes; the log still holds everything.
    /// 3. Mark the chunks as held by the block, remove segments below `n`. A
    ///    crash before the removal is harmless: at start, segments below the
    ///    newest block's `n` are removed unreplayed.
    pub fn checkpoint(&self) -> Result<Option<BlockMeta>, Error> {
        let mut blocks = self.blocks.lock();
        self.checkpoint_locked(&mut blocks)
    }

    fn checkpoint_locked(&self, blocks: &mut Blocks) -> Result<Option<BlockMeta>, Error> {
        let (cut, pending) = {
            let _ingest = self.ingest.lock();
            let cut = self.wal.cut()?;
            let mut state = self.state.write();
            let State { streams, next_chunk_id, .. } = &mut *state;
            let mut ids: Vec<u64> = streams.keys().copied().collect();
            ids.sort_unstable();
            let mut pending = Vec::new();
            for id in ids {
                let Some(stream) = streams.get_mut(&id) else { continue };
                stream.seal(next_chunk_id);
                let chunks: Vec<Chunk> = stream.chunks.iter().filter(|chunk| chunk.block.is_none()).cloned().collect();
                if !chunks.is_empty() {
                    pending.push(BlockStream { labels: stream.labels.clone(), chunks });
                }
            }
            (cut, pending)
        };
        let mut written = None;
        if !pending.is_empty() {
            let sequence = blocks.next_sequence;
            let (meta, on_disk) = block::write(&blocks.directory, sequence, cut, &pending)?;
            blocks.next_sequence = sequence + 1;
            blocks.metas.push(meta.clone());
            sort_oldest_first(&mut blocks.metas);
            // The block holds these chunks now: memory keeps their metadata and reads their bytes from it.
            let mut state = self.state.write();
            for stream in state.streams.values_mut() {
                for chunk in &mut stream.chunks {
                    if let Some(data) = on_disk.get(&chunk.id) {
                        chunk.block = Some(sequence);
                        chunk.data = data.clone();
                    }
                }
            }
            written = Some(meta);
        }
        self.wal.remove_segments_before(cut)?;
        Ok(written)
    }

    /// Periodic upkeep at `now_ns`: a checkpoint when the log has grown past
    /// [`LogStoreOptions::checkpoint_wal_bytes`] or the checkpoint interval has
    /// passed, then retention: chunks and entries older than the retention
    /// time are dropped and blocks entirely older are deleted; then, while
    /// blocks and log exceed the size limit, the oldest block is deleted with
    /// its chunks.
    pub fn maintain(&self, now_ns: i64) -> Result<MaintainReport, Error> {
        let mut report = MaintainReport::default();
        if matches!(self.options.fsync, FsyncPolicy::Interval(_)) {
            self.wal.sync()?;
        }
        let mut blocks = self.blocks.lock();
        let last = *blocks.last_checkpoint_ns.get_or_insert(now_ns);
        let wal_bytes = self.wal.size_bytes();
        let over_size = self
            .options
            .retention_size_bytes
            .is_some_and(|limit| blocks.metas.iter().map(|meta| meta.bytes).sum::<u64>() + wal_bytes > limit);
        if wal_bytes >= self.options.checkpoint_wal_bytes
            || now_ns.saturating_sub(last) >= duration_ns(self.options.checkpoint_interval)
            || over_size
        {
            report.checkpoint = self.checkpoint_locked(&mut blocks)?;
            report.checkpointed = true;
            blocks.last_checkpoint_ns = Some(now_ns);
        }

        let cutoff = now_ns.saturating_sub(duration_ns(self.options.retention_time));
        let expired: Vec<BlockMeta> = blocks.metas.iter().filter(|meta| meta.max_ts < cutoff).cloned().collect();
        let mut removed_blocks: Vec<u64> = Vec::new();
        for meta in expired {
            remove_block(&mut blocks, meta.sequence)?;
            report.blocks_removed_by_time.push(meta.sequence);
            removed_blocks.push(meta.sequence);
        }
        if let Some(limit) = self.options.retention_size_bytes {
            let wal_bytes = self.wal.size_bytes();
            while let Some(oldest) = blocks.metas.first().map(|meta| meta.sequence) {
                let block_bytes: u64 = blocks.metas.iter().map(|meta| meta.bytes).sum();
                if block_bytes + wal_bytes <= limit {
                    break;
                }
                remove_block(&mut blocks, oldest)?;
                report.blocks_removed_by_size.push(oldest);
                removed_blocks.push(oldest);
            }
        }

        let _ingest = self.ingest.lock();
        let mut state = self.state.write();
        let mut emptied = Vec::new();
        for (&id, stream) in &mut state.streams {
            let before = stream.entries();
            let chunks_before = stream.chunks.len();
            stream.chunks.retain(|chunk| {
                chunk.max_ts >= cutoff && !chunk.block.is_some_and(|sequence| removed_blocks.contains(&sequence))
            });
            report.chunks_removed += chunks_before - stream.chunks.len();
            if stream.head.first().is_some_and(|first| first.timestamp_ns < cutoff) {
                stream.head.retain(|entry| entry.timestamp_ns >= cutoff);
                stream.head_bytes = stream.head.iter().map(entry_bytes).sum();
            }
            report.entries_removed += before - stream.entries();
            stream.recompute_range();
            if stream.head.is_empty() && stream.chunks.is_empty() {
                emptied.push(id);
            }
        }
        report.streams_removed = emptied.len();
        for id in emptied {
            state.remove_stream(id);
        }
        Ok(report)
    }

    /// Merges blocks into longer ones while [`crate::compact::plan`] finds
    /// some to merge over `ranges` (nanoseconds, see [`crate::compact::ranges`]).
    ///
    /// Steps, each safe to be interrupted by a crash:
    /// 1. Re-chunk each stream's chunks of the sources (read from the source
    ///    files, each checked against its CRC-32) and write the merged block
    ///    under a new sequence, naming its sources (temporary file, fsync,
    ///    rename, directory fsync). A crash before the rename leaves a
    ///    temporary file that the next start deletes; the sources are intact.
    /// 2. Serve it instead of its sources, in one swap under the state lock:
    ///    each stream's merged chunks take the place of its source chunks.
    /// 3. Delete the sources and fsync the directory. A crash before this
    ///    leaves the sources beside the merged block; the next start deletes
    ///    them unread.
    ///
    /// A source that does not read fails the compaction with
    /// [`Error::Compaction`] naming the block and why, and changes nothing.
    /// Appends and queries go on meanwhile; checkpoints and retention wait.
    pub fn compact(&self, ranges: &[i64]) -> Result<CompactionReport, Error> {
        let mut report = CompactionReport::default();
        let mut blocks = self.blocks.lock();
        while let Some(sources) = crate::compact::plan(&blocks.metas, ranges) {
            let merged = self.merge_blocks(&mut blocks, &sources)?;
            report.merged.push((merged, sources));
        }
        Ok(report)
    }

    /// One compaction step of [`LogStore::compact`]: `sources` in block order.
    fn merge_blocks(&self, blocks: &mut Blocks, sources: &[u64]) -> Result<BlockMeta, Error> {
        let in_sources = |chunk: &Chunk| chunk.block.is_some_and(|sequence| sources.contains(&sequence));
        let mut taken: Vec<(u64, Labels, Vec<Chunk>)> = {
            let state = self.state.read();
            state
                .streams
                .iter()
                .map(|(&id, stream)| {
                    (
                        id,
                        stream.labels.clone(),
                        stream.chunks.iter().filter(|chunk| in_sources(chunk)).cloned().collect(),
                    )
                })
                .filter(|(_, _, chunks): &(u64, Labels, Vec<Chunk>)| !chunks.is_empty())
                .collect()
        };
        taken.sort_by(|a, b| a.1.cmp(&b.1));
        let source_metas: Vec<&BlockMeta> =
            blocks.metas.iter().filter(|meta| sources.contains(&meta.sequence)).collect();
        let chunks = || taken.iter().flat_map(|(_, _, chunks)| chunks);
        let header = block::BlockHeader {
            sequence: blocks.next_sequence,
            wal_cut: source_metas.iter().map(|meta| meta.wal_cut).max().unwrap_or(0),
            first_sequence: source_metas.iter().map(|meta| meta.first_sequence).min().unwrap_or(blocks.next_sequence),
            sources: sources.to_vec(),
            min_ts: chunks().map(|chunk| chunk.min_ts).min().unwrap_or(0),
            max_ts: chunks().map(|chunk| chunk.max_ts).max().unwrap_or(0),
            streams: taken.len(),
        };
        let mut writer = block::BlockWriter::create(&blocks.directory, header)?;
        let mut merged_streams = Vec::with_capacity(taken.len());
        for (id, labels, chunks) in &taken {
            let merged = crate::compact::merge_chunks(chunks, self.options.chunk_target_bytes).map_err(|error| {
                Error::Compaction { sources: sources.to_vec(), reason: format!("stream {labels}: {error}") }
            })?;
            let places = writer.add_stream(labels, &merged)?;
            merged_streams.push((*id, merged, places));
        }
        let (meta, handle) = writer.finish()?;
        blocks.next_sequence = meta.sequence + 1;
        {
            let mut state = self.state.write();
            let State { streams, next_chunk_id, .. } = &mut *state;
            for (id, merged, places) in merged_streams {
                let Some(stream) = streams.get_mut(&id) else { continue };
                let at = stream.chunks.iter().position(in_sources).unwrap_or(stream.chunks.len());
                stream.chunks.retain(|chunk| !in_sources(chunk));
                let replacements = merged.into_iter().zip(places).map(|(mut chunk, place)| {
                    chunk.id = *next_chunk_id;
                    *next_chunk_id += 1;
                    chunk.data = place.on_disk(&handle);
                    chunk.block = Some(meta.sequence);
                    chunk
                });
                stream.chunks.splice(at..at, replacements);
                stream.dedup_cache = None;
                stream.recompute_range();
            }
        }
        blocks.metas.retain(|served| !sources.contains(&served.sequence));
        blocks.metas.push(meta.clone());
        sort_oldest_first(&mut blocks.metas);
        // A source that cannot be deleted now is deleted by the next start
        // (the merged block names it); nothing serves it any more.
        let mut first_error = None;
        for &source in sources {
            if let Err(error) = remove_block(blocks, source) {
                first_error.get_or_insert(error);
            }
        }
        fs::File::open(&blocks.directory).and_then(|handle| handle.sync_all()).map_err(io_error(&blocks.directory))?;
        first_error.map_or(Ok(meta), Err)
    }

    /// The blocks on disk, oldest first.
    pub fn blocks(&self) -> Vec<BlockMeta> {
        self.blocks.lock().metas.clone()
    }

    /// Fsyncs the log (at shutdown, or under an interval fsync policy).
    pub fn sync(&self) -> Result<(), Error> {
        Ok(self.wal.sync()?)
    }

    /// Numbers for `/metrics`.
    pub fn stats(&self) -> LogStoreStats {
        let (disk_bytes, blocks) = {
            let blocks = self.blocks.lock();
            (blocks.metas.iter().map(|meta| meta.bytes).sum(), blocks.metas.len())
        };
        let wal_bytes = self.wal.size_bytes();
        let state = self.state.read();
        let mut stats =
            LogStoreStats { streams: state.streams.len(), blocks, disk_bytes, wal_bytes, ..LogStoreStats::default() };
        for stream in state.streams.values() {
            stats.entries += stream.entries();
            stats.chunks += stream.chunks.len();
            stats.memory_bytes +=
                stream.head_bytes as u64 + stream.chunks.iter().map(|chunk| chunk.memory_bytes() as u64).sum::<u64>();
        }
        stats
    }

    /// What Loki's `/loki/api/v1/index/stats` reports for the streams matching
    /// `matchers` with entries in `[start_ns, end_ns)`: the streams, the
    /// chunks overlapping the range (the unsealed head of a stream counts as
    /// one), and the entries and uncompressed bytes of those chunks (a sealed
    /// chunk's lines with their encoded timestamps; the head's lines).
    /// Like Loki's index, whole chunks are counted; head entries are counted
    /// exactly.
    pub fn index_stats(&self, matchers: &[StreamMatcher], start_ns: i64, end_ns: i64) -> IndexStats {
        let state = self.state.read();
        let mut stats = IndexStats::default();
        for stream in state.matching(matchers).into_iter().filter_map(|id| state.streams.get(&id)) {
            if !stream.overlaps(start_ns, end_ns) {
                continue;
            }
            stats.streams += 1;
            for chunk in stream.chunks.iter().filter(|chunk| chunk.min_ts < end_ns && chunk.max_ts >= start_ns) {
                stats.chunks += 1;
                stats.entries += u64::from(chunk.entries);
                stats.bytes += chunk.raw_bytes;
            }
            let mut head_in_range = false;
            for entry in
                stream.head.iter().filter(|entry| start_ns <= entry.timestamp_ns && entry.timestamp_ns < end_ns)
            {
                head_in_range = true;
                stats.entries += 1;
                stats.bytes += entry.line.len() as u64;
            }
            stats.chunks += u64::from(head_in_range);
        }
        stats
    }

    /// Label names of the streams with entries in `[start_ns, end_ns)`, sorted.
    pub fn label_names(&self, start_ns: i64, end_ns: i64) -> Vec<String> {
        let state = self.state.read();
        let names: BTreeSet<&str> = state
            .streams
            .values()
            .filter(|stream| stream.overlaps(start_ns, end_ns))
            .flat_map(|stream| stream.labels.iter().map(|label| label.name.as_str()))
            .collect();
        names.into_iter().map(str::to_owned).collect()
    }

    /// Values of label `name` among the streams matching `matchers` (all
    /// streams when empty) with entries in `[start_ns, end_ns)`, sorted.
    pub fn label_values(&self, name: &str, start_ns: i64, end_ns: i64, matchers: &[StreamMatcher]) -> Vec<String> {
        let state = self.state.read();
        let values: BTreeSet<&str> = state
            .matching(matchers)
            .into_iter()
            .filter_map(|id| state.streams.get(&id))
            .filter(|stream| stream.overlaps(start_ns, end_ns))
            .filter_map(|stream| stream.labels.get(name))
            .collect();
        values.into_iter().map(str::to_owned).collect()
    }

    /// Label sets of the streams matching any of `matcher_sets` with entries
    /// in `[start_ns, end_ns)`, sorted and unique (Loki's series endpoint).
    pub fn series(&self, matcher_sets: &[Vec<StreamMatcher>], start_ns: i64, end_ns: i64) -> Vec<Labels> {
        let state = self.state.read();
        let mut ids = BTreeSet::new();
        for matchers in matcher_sets {
            ids.extend(state.matching(matchers));
        }
        let mut series: Vec<Labels> = ids
            .into_iter()
            .filter_map(|id| state.streams.get(&id))
            .filter(|stream| stream.overlaps(start_ns, end_ns))
            .map(|stream| stream.labels.clone())
            .collect();
        series.sort();
        series
    }
}

fn sort_oldest_first(metas: &mut [BlockMeta]) {
    metas.sort_by_key(|meta| (meta.min_ts, meta.sequence));
}

fn remove_block(blocks: &mut Blocks, sequence: u64) -> Result<(), Error> {
    let path = block::block_path(&blocks.directory, sequence);
    match fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(Error::Io { path, source: error }),
    }
    blocks.metas.retain(|meta| meta.sequence != sequence);
    Ok(())
}

/// What a query reads of one stream, taken under the lock and read without it.
struct StreamSnapshot {
    labels: Labels,
    chunks: Vec<Chunk>,
    head: Vec<PushEntry>,
}

impl LogSource for LogStore {
    fn select(
        &self,
        matchers: &[StreamMatcher],
        start_ns: i64,
        end_ns: i64,
        visit: &mut dyn FnMut(&Labels, Entry<'_>) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        if start_ns >= end_ns {
            return Ok(());
        }
        let mut snapshots: Vec<StreamSnapshot> = {
            let state = self.state.read();
            state
                .matching(matchers)
                .into_iter()
                .filter_map(|id| state.streams.get(&id))
                .filter(|stream| stream.overlaps(start_ns, end_ns))
                .map(|stream| {
                    let from = stream.head.partition_point(|entry| entry.timestamp_ns < start_ns);
                    let to = stream.head.partition_point(|entry| entry.timestamp_ns < end_ns);
                    StreamSnapshot {
                        labels: stream.labels.clone(),
                        chunks: stream
                            .chunks
                            .iter()
                            .filter(|chunk| chunk.min_ts < end_ns && chunk.max_ts >= start_ns)
                            .cloned()
                            .collect(),
                        head: stream.head[from..to].to_vec(),
                    }
                })
                .collect()
        };
        snapshots.sort_by(|a, b| a.labels.cmp(&b.labels));
        for snapshot in snapshots {
            if visit_stream(&snapshot, start_ns, end_ns, visit)?.is_break() {
                break;
            }
        }
        Ok(())
    }
}

/// Visits one stream's entries in `[start_ns, end_ns)` in timestamp order,
/// equal timestamps in push order: chunks were sealed in push order and the
/// head holds the newest pushes, so a stable sort of chunks-then-head by
/// timestamp is exact. When the pieces do not overlap, no sort is needed and
/// chunks are decoded one at a time. Stops when `visit` breaks, and says so.
fn visit_stream(
    snapshot: &StreamSnapshot,
    start_ns: i64,
    end_ns: i64,
    visit: &mut dyn FnMut(&Labels, Entry<'_>) -> ControlFlow<()>,
) -> Result<ControlFlow<()>, SourceError> {
    let ranges = snapshot.chunks.iter().map(|chunk| (chunk.min_ts, chunk.max_ts)).chain(
        snapshot.head.first().zip(snapshot.head.last()).map(|(first, last)| (first.timestamp_ns, last.timestamp_ns)),
    );
    let mut previous_max = i64::MIN;
    let mut ordered = true;
    for (min, max) in ranges {
        if min < previous_max {
            ordered = false;
            break;
        }
        previous_max = max;
    }
    let decode = |chunk: &Chunk| {
        chunk.decode_entries().map_err(|error| SourceError::Storage(format!("stream {}: {error}", snapshot.labels)))
    };
    let in_range = |entry: &PushEntry| start_ns <= entry.timestamp_ns && entry.timestamp_ns < end_ns;
    let mut emit = |entry: &PushEntry| {
        visit(
            &snapshot.labels,
            Entry { timestamp_ns: entry.timestamp_ns, line: &entry.line, metadata: &entry.metadata },
        )
    };
    if ordered {
        for chunk in &snapshot.chunks {
            let entries = decode(chunk)?;
            if entries.iter().filter(|entry| in_range(entry)).try_for_each(&mut emit).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        return Ok(snapshot.head.iter().try_for_each(&mut emit));
    }
    let mut all: Vec<PushEntry> = Vec::new();
    for chunk in &snapshot.chunks {
        all.extend(decode(chunk)?.into_iter().filter(|entry| in_range(entry)));
    }
    all.extend(snapshot.head.iter().cloned());
    all.sort_by_key(|entry| entry.timestamp_ns);
    Ok(all.iter().try_for_each(emit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_detected() {
        let streams = vec![PushStream {
            labels: Labels::from_pairs([("job", "x")]),
            entries: vec![
                PushEntry { timestamp_ns: 5, line: "a".into(), metadata: vec![("k".into(), "v".into())] },
                PushEntry { timestamp_ns: -5, line: String::new(), metadata: Vec::new() },
            ],
        }];
        let record = encode_record(&streams);
        assert_eq!(decode_record(&record), Some(streams));
        for length in 0..record.len() {
            assert_eq!(decode_record(&record[..length]), None, "prefix of {length} bytes");
        }
    }
}
