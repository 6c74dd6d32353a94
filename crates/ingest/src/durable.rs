//! Durable ingest: samples go to the in-memory store and to the write-ahead
//! log, in the same order, before they are acknowledged; on start the log is
//! replayed into a fresh store.
//!
//! Record formats (little endian, lengths and ids as LEB128 varints):
//!
//! ```text
//! series:  0x01 id (name-length name value-length value)* — count first
//! samples: 0x02 count (id timestamp:i64 value:f64-bits)*
//! ```
//!
//! The samples count is written as a ten-byte varint (padded with
//! continuation bits), so a record is encoded in place before its count is known.
//!
//! Ordering: appends to memory and the framing of their records into the log's
//! buffer happen under one lock, so the log replays in the order memory saw;
//! the write to the file and the fsync happen after the lock is released and
//! are shared between concurrent writers (group commit). Only
//! samples the store accepted are logged. A sample is acknowledged once its
//! record is fsynced (policy `Always`), so neither a killed process nor a lost
//! machine loses an acknowledged sample.
//!
//! Blocks and checkpoints ([`DurableStore::open_with_blocks`]): a checkpoint
//! writes every sample held in memory that no block holds yet to a new,
//! immutable block file (format in `tsdb::block`), then removes the log
//! segments it made redundant; see [`DurableStore::checkpoint`] for the steps
//! and why a crash between any two of them loses and duplicates nothing. The
//! partition is exact because the cut happens under the ingest lock: it starts
//! log segment `n` and seals every head chunk at once, so samples logged before
//! `n` are exactly the sealed chunks not yet persisted, and samples logged from
//! `n` on are in chunks opened after the cut. Segment `n` begins with a series
//! record for every live series, so it replays without the segments before it.
//! At start, blocks are opened, not loaded: only their headers are read (a
//! damaged one is set aside as `*.block.corrupt` and the start goes on, a block
//! of the first format is rewritten in the current one, and the sources of a
//! compacted block are deleted), then the log is replayed from the newest
//! block's `n`.
//!
//! Blocks are served from disk: the `MemStore` answers queries from memory and
//! from the blocks it was handed (`tsdb::disk`), so every consumer keeps one
//! read path. Once a checkpoint's block is durable and served, its chunks are
//! dropped from memory; memory holds the head (samples since the last
//! checkpoint) plus a bounded cache of block indexes, however long retention is.
//!
//! Compaction ([`DurableStore::compact`]) merges blocks into longer ones
//! (`tsdb::block::compact`); the merged block is durable and served before
//! its sources are deleted, so a crash at any step leaves valid blocks.
//!
//! Retention ([`DurableStore::apply_retention`], time passed in): by time, blocks
//! whose newest sample is older than the cutoff are deleted whole and older
//! samples dropped from memory; by size, the oldest blocks go until blocks and
//! log fit.
//! Log segments before the last checkpoint are already gone; when every sample
//! since then is out of retention, the log is checkpointed away as well.
//! This module logs nothing: reports go back to the caller.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use tsdb::block::{BlockError, BlockFile, BlockMeta};
use tsdb::{Labels, LabelsBuilder, MemStore};
use wal::{Wal, WalOptions};

const SERIES_RECORD: u8 = 1;
const SAMPLES_RECORD: u8 = 2;

/// What appending a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub samples_appended: usize,
    pub series: usize,
    pub out_of_order: usize,
    pub duplicates: usize,
    pub invalid_series: usize,
    pub histograms_refused: usize,
    pub series_limited: usize,
    /// The first refusal, for the error message.
    pub first_error: Option<String>,
}

impl AppendOutcome {
    /// Samples the sender should not retry (Prometheus answers 400 for these).
    pub fn rejected(&self) -> usize {
        self.out_of_order + self.duplicates + self.invalid_series + self.histograms_refused + self.series_limited
    }
}

/// Errors of durable ingest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Wal(#[from] wal::Error),
    #[error(transparent)]
    Block(#[from] BlockError),
}

/// What replaying the log at start found.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    pub records: u64,
    pub series: usize,
    pub samples: u64,
    /// Records that did not decode (skipped).
    pub undecodable: u64,
    /// Truncations of a torn or corrupt log tail.
    pub repairs: Vec<String>,
    /// Blocks opened and served from disk, and the samples they hold.
    pub blocks_loaded: usize,
    pub block_samples: u64,
    /// Blocks of the first format rewritten in the current one.
    pub blocks_migrated: Vec<String>,
    /// Blocks deleted because a compacted block that replaces them exists
    /// (a compaction was interrupted before it deleted them).
    pub blocks_superseded: Vec<String>,
    /// Damaged blocks set aside (renamed to `*.block.corrupt`), with the reason.
    pub blocks_set_aside: Vec<String>,
    /// Leftovers of interrupted block writes that were deleted.
    pub temporary_removed: Vec<String>,
    /// The first write-ahead log segment replayed (earlier ones are covered by blocks).
    pub first_wal_segment: u64,
}

/// When [`DurableStore::checkpoint_due`] asks for a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// The samples appended since the last checkpoint span at least this many milliseconds.
    pub block_interval_ms: i64,
    /// The write-ahead log holds at least this many bytes.
    pub wal_max_bytes: u64,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        Self { block_interval_ms: 2 * 60 * 60 * 1000, wal_max_bytes: 256 << 20 }
    }
}

/// How long and how much data is kept. `None`: no limit of that kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub time_ms: Option<i64>,
    pub size_bytes: Option<u64>,
}

/// What [`DurableStore::compact`] merged: each new block with the sequences it replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionReport {
    pub merged: Vec<(BlockMeta, Vec<u64>)>,
}

/// What [`DurableStore::apply_retention`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Samples older than this were dropped from memory (`None`: nothing was due).
    pub cutoff: Option<i64>,
    pub blocks_removed_by_time: Vec<u64>,
    pub blocks_removed_by_size: Vec<u64>,
    /// Samples of the removed blocks plus those dropped from memory.
    pub samples_removed: usize,
    pub series_removed: usize,
    /// The log was out of retention as a whole and was checkpointed away.
    pub wal_checkpointed: bool,
}

/// What the ingest lock guards besides the order of the log: the next series
/// id and the head's time span. Each series carries its own id
/// ([`tsdb::SeriesRef::log_id`]), so finding it costs no look-up here.
struct Logged {
    next_id: u64,
    /// Smallest and largest timestamp appended since the last checkpoint cut.
    head_time_range: Option<(i64, i64)>,
}

impl Logged {
    fn note_timestamp(&mut self, timestamp: i64) {
        self.head_time_range = Some(match self.head_time_range {
            Some((min, max)) => (min.min(timestamp), max.max(timestamp)),
            None => (timestamp, timestamp),
        });
    }
}

/// The on-disk blocks and what retention decided about them.
struct Blocks {
    directory: PathBuf,
    /// Blocks present, ordered by minimum time.
    metas: Vec<BlockMeta>,
    next_sequence: u64,
    /// Samples older than this were dropped by size retention.
    size_cutoff: Option<i64>,
}

/// The store plus its write-ahead log and, when opened with
/// [`DurableStore::open_with_blocks`], its blocks.
pub struct DurableStore {
    store: Arc<MemStore>,
    wal: Option<Wal>,
    logged: Mutex<Logged>,
    /// Held for a whole checkpoint or retention pass: they never overlap.
    blocks: Option<Mutex<Blocks>>,
}

impl std::fmt::Debug for DurableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableStore").field("wal", &self.wal).finish_non_exhaustive()
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(bytes: &[u8], position: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*position)?;
        *position += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

fn get_bytes<'a>(bytes: &'a [u8], position: &mut usize) -> Option<&'a [u8]> {
    let length = usize::try_from(get_varint(bytes, position)?).ok()?;
    let slice = bytes.get(*position..position.checked_add(length)?)?;
    *position += length;
    Some(slice)
}

fn get_u64(bytes: &[u8], position: &mut usize) -> Option<u64> {
    let slice = bytes.get(*position..*position + 8)?;
    *position += 8;
    Some(u64::from_le_bytes(slice.try_into().ok()?))
}

fn encode_series(out: &mut Vec<u8>, id: u64, labels: &Labels) {
    out.push(SERIES_RECORD);
    put_varint(out, id);
    put_varint(out, labels.len() as u64);
    for label in labels {
        put_varint(out, label.name.len() as u64);
        out.extend_from_slice(label.name.as_bytes());
        put_varint(out, label.value.len() as u64);
        out.extend_from_slice(label.value.as_bytes());
    }
}

/// The samples record's header: the type byte and the sample count as a
/// varint padded to ten bytes (a valid LEB128 encoding), so the record is
/// encoded in place without knowing the count in advance.
const SAMPLES_HEADER_BYTES: usize = 11;

/// Writes the header of a samples record encoded after
/// [`SAMPLES_HEADER_BYTES`] reserved bytes and returns the record.
fn finish_samples_record(buffer: &mut [u8], count: u64) -> &[u8] {
    buffer[0] = SAMPLES_RECORD;
    let mut value = count;
    for byte in &mut buffer[1..SAMPLES_HEADER_BYTES - 1] {
        *byte = (value as u8 & 0x7f) | 0x80;
        value >>= 7;
    }
    buffer[SAMPLES_HEADER_BYTES - 1] = value as u8 & 0x7f;
    buffer
}

/// Buffers the records of one append are encoded into, kept per thread so
/// that an append allocates nothing once they have grown.
#[derive(Default)]
struct RecordBuffers {
    /// Series records, back to back; each ends at an offset in `series_ends`.
    series: Vec<u8>,
    series_ends: Vec<usize>,
    samples: Vec<u8>,
}

impl RecordBuffers {
    /// Buffers above this many bytes are freed after use rather than kept.
    const KEEP_BYTES: usize = 1 << 20;

    fn release_if_large(&mut self) {
        if self.series.capacity() + self.samples.capacity() > Self::KEEP_BYTES {
            *self = Self::default();
        }
    }
}

thread_local! {
    static RECORDS: std::cell::RefCell<RecordBuffers> = std::cell::RefCell::default();
}

/// A series of a batch for [`DurableStore::append_resolved`].
#[derive(Debug, Clone)]
pub enum BatchSeries {
    /// Found in the store already.
    Known(tsdb::SeriesRef),
    /// Found or created under the ingest lock, if `admit` lets it be created.
    New(Labels),
}

impl AppendOutcome {
    /// Counts a sample the store refused.
    fn count_refusal(&mut self, error: tsdb::Error, timestamp: i64, labels: &Labels) {
        match error {
            tsdb::Error::OutOfOrder { .. } => {
                self.out_of_order += 1;
                self.first_error.get_or_insert_with(|| format!("out of order sample for {labels}"));
            }
            tsdb::Error::DuplicateTimestamp { .. } => {
                self.duplicates += 1;
                self.first_error
                    .get_or_insert_with(|| format!("duplicate sample for timestamp {timestamp} in {labels}"));
            }
            other => {
                self.invalid_series += 1;
                self.first_error.get_or_insert(other.to_string());
            }
        }
    }
}

impl DurableStore {
    /// A store without a log: nothing survives the process (tests, replay).
    pub fn in_memory(store: Arc<MemStore>) -> Self {
        Self { store, wal: None, logged: Mutex::new(Logged { next_id: 1, head_time_range: None }), blocks: None }
    }

    /// Opens the log in `directory`, replays it into `store` (which should be
    /// empty) and returns the durable store.
    pub fn open(directory: &Path, store: Arc<MemStore>, options: WalOptions) -> Result<(Self, ReplayReport), Error> {
        let (wal, logged, report) = Self::replay_wal_from(directory, &store, options, ReplayReport::default())?;
        let durable = Self { store, wal: Some(wal), logged: Mutex::new(logged), blocks: None };
        Ok((durable, report))
    }

    /// Opens durable storage: loads the blocks in `blocks_directory` into
    /// `store` (which should be empty), setting damaged ones aside and deleting
    /// leftovers of interrupted writes, then replays the write-ahead log in
    /// `wal_directory` from the first segment no block covers. Checkpoints
    /// ([`DurableStore::checkpoint`]) write new blocks there.
    pub fn open_with_blocks(
        wal_directory: &Path,
        blocks_directory: &Path,
        store: Arc<MemStore>,
        options: WalOptions,
    ) -> Result<(Self, ReplayReport), Error> {
        let mut report = ReplayReport::default();
        std::fs::create_dir_all(blocks_directory)
            .map_err(|source| BlockError::Io { path: blocks_directory.to_owned(), source })?;
        let listing = tsdb::block::list_blocks(blocks_directory)?;
        for path in listing.temporary {
            std::fs::remove_file(&path).map_err(|source| BlockError::Io { path: path.clone(), source })?;
            report.temporary_removed.push(path.display().to_string());
        }
        let mut opened: Vec<BlockFile> = Vec::new();
        let mut next_sequence = 1;
        for (sequence, path) in listing.blocks {
            next_sequence = next_sequence.max(sequence + 1);
            let block = match BlockFile::open(&path, sequence) {
                Err(BlockError::FirstFormat { .. }) => tsdb::block::migrate_v1(blocks_directory, sequence)
                    .and_then(|_| BlockFile::open(&path, sequence))
                    .inspect(|_| report.blocks_migrated.push(path.display().to_string())),
                other => other,
            };
            match block {
                Ok(block) => opened.push(block),
                Err(error) => {
                    let mut aside = path.clone().into_os_string();
                    aside.push(".corrupt");
                    let outcome = match std::fs::rename(&path, &aside) {
                        Ok(()) => format!("renamed to {}", PathBuf::from(&aside).display()),
                        Err(rename_error) => format!("could not be renamed: {rename_error}"),
                    };
                    report.blocks_set_aside.push(format!("{error}; {outcome}"));
                }
            }
        }
        // A compacted block replaces its sources: any still here outlived an interrupted compaction.
        let superseded: Vec<u64> = opened.iter().flat_map(|block| block.sources().to_vec()).collect();
        let (replaced, served): (Vec<BlockFile>, Vec<BlockFile>) =
            opened.into_iter().partition(|block| superseded.contains(&block.meta().sequence));
        for block in replaced {
            std::fs::remove_file(block.path())
                .map_err(|source| BlockError::Io { path: block.path().to_owned(), source })?;
            report.blocks_superseded.push(block.path().display().to_string());
        }
        if !report.blocks_superseded.is_empty() {
            tsdb::block::sync_directory(blocks_directory)?;
        }
        let mut metas: Vec<BlockMeta> = served.iter().map(|block| *block.meta()).collect();
        metas.sort_by_key(|meta| (meta.min_time, meta.sequence));
        report.blocks_loaded = metas.len();
        report.block_samples = metas.iter().map(|meta| meta.samples).sum();
        store.disk().replace(served.into_iter().map(Arc::new).collect(), &[]);
        report.first_wal_segment = metas.iter().map(|meta| meta.wal_segment).max().unwrap_or(0);
        let (wal, logged, report) = Self::replay_wal_from(wal_directory, &store, options, report)?;
        let blocks = Blocks { directory: blocks_directory.to_owned(), metas, next_sequence, size_cutoff: None };
        let durable = Self { store, wal: Some(wal), logged: Mutex::new(logged), blocks: Some(Mutex::new(blocks)) };
        Ok((durable, report))
    }

    /// Replays the log from `report.first_wal_segment` into `store`.
    fn replay_wal_from(
        directory: &Path,
        store: &MemStore,
        options: WalOptions,
        mut report: ReplayReport,
    ) -> Result<(Wal, Logged, ReplayReport), Error> {
        let mut by_id: HashMap<u64, tsdb::SeriesRef> = HashMap::new();
        let mut logged = Logged { next_id: 1, head_time_range: None };
        let (wal, replay) = Wal::open_from(directory, options, report.first_wal_segment, |record| {
            if Self::replay_record(record, store, &mut by_id, &mut logged, &mut report).is_none() {
                report.undecodable += 1;
            }
        })?;
        report.records = replay.records;
        report.repairs = replay.repairs;
        report.series = by_id.values().map(tsdb::SeriesRef::labels).collect::<std::collections::HashSet<_>>().len();
        Ok((wal, logged, report))
    }

    fn replay_record(
        record: &[u8],
        store: &MemStore,
        by_id: &mut HashMap<u64, tsdb::SeriesRef>,
        logged: &mut Logged,
        report: &mut ReplayReport,
    ) -> Option<()> {
        let mut position = 1;
        match *record.first()? {
            SERIES_RECORD => {
                let id = get_varint(record, &mut position)?;
                let count = get_varint(record, &mut position)?;
                let mut builder = LabelsBuilder::default();
                for _ in 0..count {
                    let name = std::str::from_utf8(get_bytes(record, &mut position)?).ok()?;
                    let value = std::str::from_utf8(get_bytes(record, &mut position)?).ok()?;
                    builder.set(name, value);
                }
                let series = store.get_or_create_series(&builder.build());
                if id == 0 {
                    return None;
                }
                series.set_log_id(id);
                by_id.insert(id, series);
                logged.next_id = logged.next_id.max(id + 1);
            }
            SAMPLES_RECORD => {
                let count = get_varint(record, &mut position)?;
                for _ in 0..count {
                    let id = get_varint(record, &mut position)?;
                    let timestamp = get_u64(record, &mut position)? as i64;
                    let value = f64::from_bits(get_u64(record, &mut position)?);
                    let series = by_id.get(&id)?;
                    if store.append_ref(series, timestamp, value).is_ok() {
                        report.samples += 1;
                        logged.note_timestamp(timestamp);
                    }
                }
            }
            _ => return None,
        }
        Some(())
    }

    pub fn store(&self) -> &Arc<MemStore> {
        &self.store
    }

    /// Appends `batch` (series and their samples, oldest first): every sample
    /// the store accepts is logged; refusals are counted. Returns once the
    /// accepted samples are durable. `admit` decides whether a series that does
    /// not exist yet may be created (the active-series limit).
    pub fn append(
        &self,
        batch: &[(Labels, Vec<(i64, f64)>)],
        admit: &dyn Fn(&Labels) -> bool,
    ) -> Result<AppendOutcome, Error> {
        let resolved: Vec<(BatchSeries, &[(i64, f64)])> =
            batch.iter().map(|(labels, samples)| (BatchSeries::New(labels.clone()), samples.as_slice())).collect();
        self.append_resolved(&resolved, admit)
    }

    /// [`DurableStore::append`] for series the caller may already have found
    /// ([`MemStore::find_series`]): a known series costs no label look-up.
    ///
    /// Only the part that must be ordered with the log runs under the ingest
    /// lock: appending to memory, encoding the records (into buffers reused
    /// per thread) and handing them to the log, which copies them. Writing
    /// them to the file and the fsync happen after the lock is released and
    /// are shared by concurrent callers ([`Wal::commit`]), so concurrent
    /// senders overlap everything but the in-memory append.
    pub fn append_resolved(
        &self,
        batch: &[(BatchSeries, &[(i64, f64)])],
        admit: &dyn Fn(&Labels) -> bool,
    ) -> Result<AppendOutcome, Error> {
        RECORDS.with_borrow_mut(|buffers| {
            buffers.series.clear();
            buffers.series_ends.clear();
            buffers.samples.clear();
            let outcome = self.append_with(batch, admit, buffers);
            buffers.release_if_large();
            outcome
        })
    }

    fn append_with(
        &self,
        batch: &[(BatchSeries, &[(i64, f64)])],
        admit: &dyn Fn(&Labels) -> bool,
        buffers: &mut RecordBuffers,
    ) -> Result<AppendOutcome, Error> {
        let mut outcome = AppendOutcome::default();
        let logging = self.wal.is_some();
        let mut logged_samples = 0u64;
        // Room for the samples record's header, filled in once the count is known.
        buffers.samples.resize(SAMPLES_HEADER_BYTES, 0);
        let sequence = {
            let mut logged = self.logged.lock();
            for (series, samples) in batch {
                if samples.is_empty() {
                    continue;
                }
                let reference = match series {
                    BatchSeries::Known(reference) => std::borrow::Cow::Borrowed(reference),
                    BatchSeries::New(labels) => {
                        if !self.store.contains(labels) && !admit(labels) {
                            outcome.series_limited += samples.len();
                            outcome
                                .first_error
                                .get_or_insert_with(|| format!("series limit reached: cannot create {labels}"));
                            continue;
                        }
                        std::borrow::Cow::Owned(self.store.get_or_create_series(labels))
                    }
                };
                outcome.series += 1;
                let id = match reference.log_id() {
                    Some(id) => id,
                    None => {
                        let id = logged.next_id;
                        logged.next_id += 1;
                        reference.set_log_id(id);
                        if logging {
                            encode_series(&mut buffers.series, id, reference.labels());
                            buffers.series_ends.push(buffers.series.len());
                        }
                        id
                    }
                };
                for &(timestamp, value) in samples.iter() {
                    match self.store.append_ref(&reference, timestamp, value) {
                        Ok(()) => {
                            outcome.samples_appended += 1;
                            logged.note_timestamp(timestamp);
                            if logging {
                                put_varint(&mut buffers.samples, id);
                                buffers.samples.extend_from_slice(&(timestamp as u64).to_le_bytes());
                                buffers.samples.extend_from_slice(&value.to_bits().to_le_bytes());
                                logged_samples += 1;
                            }
                        }
                        Err(error) => outcome.count_refusal(error, timestamp, reference.labels()),
                    }
                }
            }
            match &self.wal {
                Some(wal) if logged_samples > 0 || !buffers.series_ends.is_empty() => {
                    let mut payloads: Vec<&[u8]> = Vec::with_capacity(buffers.series_ends.len() + 1);
                    let mut start = 0;
                    for &end in &buffers.series_ends {
                        payloads.push(&buffers.series[start..end]);
                        start = end;
                    }
                    if logged_samples > 0 {
                        payloads.push(finish_samples_record(&mut buffers.samples, logged_samples));
                    }
                    Some(wal.write(&payloads)?)
                }
                _ => None,
            }
        };
        if let (Some(wal), Some(sequence)) = (&self.wal, sequence) {
            wal.commit(sequence)?;
        }
        Ok(outcome)
    }

    /// Bytes the write-ahead log holds on disk (0 without a log).
    pub fn wal_size_bytes(&self) -> u64 {
        self.wal.as_ref().map_or(0, Wal::size_bytes)
    }

    /// Why a checkpoint is due under `policy`, or `None`. Always `None` for a
    /// store opened without blocks.
    pub fn checkpoint_due(&self, policy: &CheckpointPolicy) -> Option<String> {
        self.blocks.as_ref()?;
        if let Some((min, max)) = self.logged.lock().head_time_range
            && max.saturating_sub(min) >= policy.block_interval_ms
        {
            return Some(format!("the samples since the last checkpoint span {} ms", max.saturating_sub(min)));
        }
        let wal_bytes = self.wal_size_bytes();
        (wal_bytes >= policy.wal_max_bytes).then(|| format!("the write-ahead log holds {wal_bytes} bytes"))
    }

    /// Writes every sample held in memory that no block holds yet to a new
    /// block, then removes the write-ahead log segments it made redundant.
    /// Returns the new block, or `None` when there was nothing to write (or the
    /// store has no blocks directory).
    ///
    /// Steps, each safe to be interrupted by a crash:
    /// 1. Under the ingest lock (no append in between): cut the log to a new
    ///    segment `n`, log a series record for every live series into it (so `n`
    ///    and later replay on their own), and seal every head chunk. Samples
    ///    logged before `n` are now exactly the unpersisted sealed chunks; later
    ///    ones go to new chunks. A crash here replays the whole log as before.
    /// 2. Write the block (temporary file, fsync, rename, directory fsync),
    ///    recording `n`. A crash before the rename leaves a temporary file that
    ///    the next start deletes, and the log still holds everything.
    /// 3. Serve the block from disk and drop its chunks from memory.
    /// 4. Remove segments below `n`. A crash before this is harmless: at start,
    ///    segments below the newest block's `n` are skipped and removed, so no
    ///    sample is replayed twice.
    pub fn checkpoint(&self) -> Result<Option<BlockMeta>, Error> {
        let (Some(blocks), Some(wal)) = (&self.blocks, &self.wal) else {
            return Ok(None);
        };
        let mut blocks = blocks.lock();
        let wal_segment = {
            let mut logged = self.logged.lock();
            let segment = wal.cut()?;
            let mut records: Vec<Vec<u8>> = Vec::new();
            self.store.for_each_series(|series| {
                if let Some(id) = series.log_id() {
                    let mut record = Vec::new();
                    encode_series(&mut record, id, series.labels());
                    records.push(record);
                }
            });
            for batch in records.chunks(4096) {
                let slices: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                wal.write(&slices)?;
            }
            self.store.cut_for_checkpoint();
            logged.head_time_range = None;
            segment
        };
        wal.sync()?;
        let sequence = blocks.next_sequence;
        let written = tsdb::block::write_block(&blocks.directory, sequence, wal_segment, &self.store)?;
        if let Some(meta) = written {
            blocks.next_sequence = sequence + 1;
            let block = BlockFile::open(&tsdb::block::block_path(&blocks.directory, sequence), sequence)?;
            self.store.disk().replace(vec![Arc::new(block)], &[]);
            blocks.metas.push(meta);
            blocks.metas.sort_by_key(|meta| (meta.min_time, meta.sequence));
        }
        // The block is served: memory lets go of what it holds.
        self.store.commit_checkpoint();
        wal.remove_segments_before(wal_segment)?;
        Ok(written)
    }

    /// Merges blocks into longer ones while [`tsdb::block::compact::plan`] finds
    /// some to merge over `ranges` (milliseconds, see
    /// [`tsdb::block::compact::ranges`]).
    ///
    /// Steps, each safe to be interrupted by a crash:
    /// 1. Write the merged block under a new sequence, naming its sources in its
    ///    header (temporary file, fsync, rename, directory fsync). A crash before
    ///    the rename leaves a temporary file the next start deletes.
    /// 2. Serve it instead of its sources, in one swap.
    /// 3. Delete the sources and fsync the directory. A crash before this leaves
    ///    the sources beside the merged block; the next start deletes them.
    ///
    /// A damaged source fails the compaction and changes nothing.
    pub fn compact(&self, ranges: &[i64]) -> Result<CompactionReport, Error> {
        let mut report = CompactionReport::default();
        let Some(blocks) = &self.blocks else { return Ok(report) };
        let mut blocks = blocks.lock();
        while let Some(sequences) = tsdb::block::compact::plan(&blocks.metas, ranges) {
            let served = self.store.disk().blocks();
            let mut sources: Vec<&BlockFile> =
                served.iter().filter(|block| sequences.contains(&block.meta().sequence)).map(Arc::as_ref).collect();
            sources.sort_by_key(|block| (block.meta().min_time, block.meta().sequence));
            if sources.len() != sequences.len() {
                let path = tsdb::block::block_path(&blocks.directory, sequences[0]);
                let reason = format!("blocks {sequences:?} are planned for compaction but not all are served");
                return Err(BlockError::Corrupt { path, reason }.into());
            }
            let sequence = blocks.next_sequence;
            let merged = tsdb::block::compact::compact(&blocks.directory, sequence, &sources)?;
            blocks.next_sequence = sequence + 1;
            let block = BlockFile::open(&tsdb::block::block_path(&blocks.directory, sequence), sequence)?;
            self.store.disk().replace(vec![Arc::new(block)], &sequences);
            for source in &sequences {
                let path = tsdb::block::block_path(&blocks.directory, *source);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(BlockError::Io { path, source }.into()),
                }
            }
            tsdb::block::sync_directory(&blocks.directory)?;
            blocks.metas.retain(|meta| !sequences.contains(&meta.sequence));
            blocks.metas.push(merged);
            blocks.metas.sort_by_key(|meta| (meta.min_time, meta.sequence));
            report.merged.push((merged, sequences));
        }
        Ok(report)
    }

    /// Applies `retention` at `now` (milliseconds): blocks whose samples are all
    /// older than the time limit are deleted; then, while blocks and log together
    /// exceed the size limit, the oldest block is deleted; samples older than the
    /// resulting cutoff are dropped from memory. When every sample the log holds
    /// is out of retention, the log is checkpointed first so its segments go too.
    pub fn apply_retention(&self, now: i64, retention: &Retention) -> Result<RetentionReport, Error> {
        let mut report = RetentionReport::default();
        let time_cutoff = retention.time_ms.map(|limit| now.saturating_sub(limit));
        if let Some(cutoff) = time_cutoff {
            let head_expired = self.logged.lock().head_time_range.is_some_and(|(_, max)| max < cutoff);
            if head_expired && self.blocks.is_some() {
                self.checkpoint()?;
                report.wal_checkpointed = true;
            }
        }
        if let Some(blocks) = &self.blocks {
            let mut blocks = blocks.lock();
            if let Some(cutoff) = time_cutoff {
                let expired: Vec<BlockMeta> =
                    blocks.metas.iter().filter(|meta| meta.max_time < cutoff).copied().collect();
                for meta in expired {
                    remove_block(&self.store, &mut blocks, &meta)?;
                    report.samples_removed += meta.samples as usize;
                    report.blocks_removed_by_time.push(meta.sequence);
                }
            }
            if let Some(limit) = retention.size_bytes {
                let wal_bytes = self.wal_size_bytes();
                while !blocks.metas.is_empty() {
                    let block_bytes: u64 = blocks.metas.iter().map(|meta| meta.bytes).sum();
                    if block_bytes + wal_bytes <= limit {
                        break;
                    }
                    let oldest = blocks.metas[0];
                    remove_block(&self.store, &mut blocks, &oldest)?;
                    report.samples_removed += oldest.samples as usize;
                    let cutoff = oldest.max_time.saturating_add(1);
                    blocks.size_cutoff = Some(blocks.size_cutoff.map_or(cutoff, |previous| previous.max(cutoff)));
                    report.blocks_removed_by_size.push(oldest.sequence);
                }
            }
            report.cutoff = match (time_cutoff, blocks.size_cutoff) {
                (Some(time), Some(size)) => Some(time.max(size)),
                (time, size) => time.or(size),
            };
        } else {
            report.cutoff = time_cutoff;
        }
        if let Some(cutoff) = report.cutoff {
            let truncation = self.store.truncate_before(cutoff);
            report.samples_removed += truncation.samples_removed;
            report.series_removed = truncation.series_removed;
        }
        Ok(report)
    }

    /// The blocks on disk, oldest first (empty without a blocks directory).
    pub fn blocks(&self) -> Vec<BlockMeta> {
        self.blocks.as_ref().map_or_else(Vec::new, |blocks| blocks.lock().metas.clone())
    }

    /// Fsyncs the log (at shutdown).
    pub fn sync(&self) -> Result<(), Error> {
        match &self.wal {
            Some(wal) => Ok(wal.sync()?),
            None => Ok(()),
        }
    }
}

/// Stops serving one block, deletes its file and forgets it.
fn remove_block(store: &MemStore, blocks: &mut Blocks, meta: &BlockMeta) -> Result<(), Error> {
    store.disk().replace(Vec::new(), &[meta.sequence]);
    let path = tsdb::block::block_path(&blocks.directory, meta.sequence);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(BlockError::Io { path, source }.into()),
    }
    blocks.metas.retain(|kept| kept.sequence != meta.sequence);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsdb::{Matcher, Queryable};

    fn labels(tenant: &str) -> Labels {
        Labels::from_pairs([("__name__", "bookings_total"), ("tenant_id", tenant)])
    }

    #[test]
    fn replay_restores_exactly_what_was_accepted() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let (durable, report) =
            DurableStore::open(directory.path(), Arc::new(MemStore::new()), WalOptions::default()).expect("open");
        assert_eq!(report.records, 0);
        let batch = vec![(labels("a"), vec![(1000, 1.0), (2000, f64::NAN)]), (labels("b"), vec![(1000, 5.0)])];
        let outcome = durable.append(&batch, &|_| true).expect("append");
        assert_eq!(outcome.samples_appended, 3);
        let outcome =
            durable.append(&[(labels("a"), vec![(1500, 9.0), (3000, tsdb::STALE_NAN)])], &|_| true).expect("append");
        assert_eq!((outcome.samples_appended, outcome.out_of_order), (1, 1));
        drop(durable);

        let store = Arc::new(MemStore::new());
        let (durable, report) =
            DurableStore::open(directory.path(), store.clone(), WalOptions::default()).expect("reopen");
        assert_eq!((report.series, report.samples, report.undecodable), (2, 4, 0));
        let a = store.select(&[Matcher::equal("tenant_id", "a")], 0, 10_000).expect("select");
        let values: Vec<u64> = a[0].samples.iter().map(|sample| sample.value.to_bits()).collect();
        assert_eq!(values, [1.0f64.to_bits(), f64::NAN.to_bits(), tsdb::STALE_NAN_BITS]);
        // New series after a reopen get fresh ids.
        durable.append(&[(labels("c"), vec![(1000, 1.0)])], &|_| true).expect("append");
        drop(durable);
        let store = Arc::new(MemStore::new());
        let (_, report) = DurableStore::open(directory.path(), store.clone(), WalOptions::default()).expect("reopen");
        assert_eq!((report.series, report.samples), (3, 5));
    }
}

#[cfg(test)]
mod block_tests {
    //! Checkpoints, restarts, interrupted checkpoints and retention.

    use std::path::{Path, PathBuf};

    use super::*;
    use tsdb::{MatchOp, Matcher, Queryable};

    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 60 * MINUTE;

    /// Every sample of every series, values as bit patterns.
    type Dump = Vec<(String, Vec<(i64, u64)>)>;

    fn dump(store: &MemStore) -> Dump {
        let everything = Matcher::new(MatchOp::Regex, "__name__", ".+").expect("matcher");
        store
            .select(&[everything], i64::MIN, i64::MAX)
            .expect("select")
            .into_iter()
            .map(|series| {
                let samples = series.samples.iter().map(|sample| (sample.timestamp, sample.value.to_bits())).collect();
                (series.labels.to_string(), samples)
            })
            .collect()
    }

    /// Flips one bit of the byte at `position` of the file at `path`.
    fn flip_byte(path: &Path, position: usize) {
        let mut bytes = std::fs::read(path).expect("read");
        bytes[position] ^= 0x40;
        std::fs::write(path, &bytes).expect("write");
    }

    /// Samples served, from blocks and memory alike.
    fn total(store: &MemStore) -> usize {
        dump(store).iter().map(|(_, samples)| samples.len()).sum()
    }

    struct Paths {
        _root: tempfile::TempDir,
        wal: PathBuf,
        blocks: PathBuf,
    }

    fn paths() -> Paths {
        let root = tempfile::tempdir().expect("temporary directory");
        let wal = root.path().join("wal");
        let blocks = root.path().join("blocks");
        Paths { _root: root, wal, blocks }
    }

    fn open(paths: &Paths) -> (DurableStore, ReplayReport) {
        let options = WalOptions { segment_bytes: 64 << 10, ..WalOptions::default() };
        DurableStore::open_with_blocks(&paths.wal, &paths.blocks, Arc::new(MemStore::new()), options).expect("open")
    }

    /// A value for series `series` at step `step`: ordinary numbers, a NaN with
    /// a payload and staleness markers, so bit-exactness is checked.
    fn value(series: usize, step: i64) -> f64 {
        match step % 50 {
            17 => tsdb::STALE_NAN,
            33 => f64::from_bits(0x7ff8_0000_dead_beef),
            _ => (series as f64) * 1.5 + (step as f64) * 0.25,
        }
    }

    /// Appends steps `steps` (15 s apart, from `start`) for `series` series.
    fn ingest(durable: &DurableStore, series: usize, start: i64, steps: std::ops::Range<i64>) {
        for step in steps {
            let batch: Vec<(Labels, Vec<(i64, f64)>)> = (0..series)
                .map(|index| {
                    let labels = Labels::from_pairs([("__name__", "probe"), ("series", &format!("s{index:03}"))]);
                    (labels, vec![(start + step * 15_000, value(index, step))])
                })
                .collect();
            let outcome = durable.append(&batch, &|_| true).expect("append");
            assert_eq!(outcome.samples_appended, series);
        }
    }

    fn segment_files(directory: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(directory)
            .expect("list")
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_sample_survives_checkpoints_and_restarts_bit_for_bit() {
        let paths = paths();
        let (durable, _) = open(&paths);
        ingest(&durable, 20, 0, 0..300);
        let first = durable.checkpoint().expect("checkpoint").expect("a block");
        assert_eq!((first.series, first.samples, first.min_time, first.max_time), (20, 6000, 0, 299 * 15_000));
        ingest(&durable, 25, 0, 300..500);
        let second = durable.checkpoint().expect("checkpoint").expect("a block");
        assert_eq!(second.samples, 25 * 200);
        assert!(second.wal_segment > first.wal_segment);
        // These stay in the log only.
        ingest(&durable, 25, 0, 500..530);
        let expected = dump(durable.store());
        drop(durable);

        let (durable, report) = open(&paths);
        assert_eq!((report.blocks_loaded, report.block_samples, report.samples), (2, 11_000, 25 * 30));
        assert!(report.blocks_set_aside.is_empty() && report.temporary_removed.is_empty());
        assert_eq!(report.first_wal_segment, second.wal_segment);
        assert_eq!(dump(durable.store()), expected);
        assert_eq!(total(durable.store()), 11_000 + 750);
        // Memory holds only what the log replayed; the blocks are read from disk.
        assert_eq!(durable.store().sample_count(), 750);
        // A checkpoint after the restart writes only the log's part; a further restart still has all.
        let third = durable.checkpoint().expect("checkpoint").expect("a block");
        assert_eq!(third.samples, 750);
        ingest(&durable, 25, 0, 530..531);
        drop(durable);
        let (durable, report) = open(&paths);
        assert_eq!((report.blocks_loaded, report.samples), (3, 25));
        assert_eq!((total(durable.store()), durable.store().sample_count()), (11_000 + 775, 25));
        assert_eq!(
            dump(durable.store())[..],
            {
                let mut expected = expected;
                for (index, (_, samples)) in expected.iter_mut().enumerate() {
                    samples.push((530 * 15_000, value(index, 530).to_bits()));
                }
                expected
            }[..]
        );
    }

    /// Senders racing on the same series, with checkpoints between: whatever
    /// memory accepted (some samples lose the race and are out of order) is
    /// exactly what the blocks and the log bring back.
    #[test]
    fn concurrent_appends_and_checkpoints_replay_exactly_what_memory_accepted() {
        let paths = paths();
        let (durable, _) = open(&paths);
        let durable = Arc::new(durable);
        let senders: Vec<_> = (0..4i64)
            .map(|sender| {
                let durable = Arc::clone(&durable);
                std::thread::spawn(move || {
                    for step in 0..150i64 {
                        let batch: Vec<(Labels, Vec<(i64, f64)>)> = (0..12)
                            .map(|index| {
                                let labels =
                                    Labels::from_pairs([("__name__", "probe"), ("series", &format!("s{index:03}"))]);
                                (labels, vec![(step * 15_000 + sender, value(index, step))])
                            })
                            .collect();
                        durable.append(&batch, &|_| true).expect("append");
                        if sender == 0 && step % 50 == 49 {
                            durable.checkpoint().expect("checkpoint");
                        }
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.join().expect("sender");
        }
        let expected = dump(durable.store());
        assert!(total(durable.store()) >= 12 * 150, "memory and blocks hold every series' first sample of each step");
        drop(durable);
        let (durable, report) = open(&paths);
        assert_eq!(report.undecodable, 0);
        let replayed = dump(durable.store());
        for (left, right) in replayed.iter().zip(&expected) {
            if left != right {
                let at =
                    left.1.iter().zip(&right.1).position(|(l, r)| l != r).unwrap_or(left.1.len().min(right.1.len()));
                let from = at.saturating_sub(3);
                panic!(
                    "{}: replayed {} samples, memory held {}; from {from}: replayed {:?}, memory {:?}; report {report:?}",
                    left.0,
                    left.1.len(),
                    right.1.len(),
                    &left.1[from..(at + 3).min(left.1.len())],
                    &right.1[from..(at + 3).min(right.1.len())]
                );
            }
        }
        assert_eq!(replayed, expected);
    }

    #[test]
    fn an_empty_checkpoint_writes_no_block() {
        let paths = paths();
        let (durable, _) = open(&paths);
        assert!(durable.checkpoint().expect("checkpoint").is_none());
        ingest(&durable, 3, 0, 0..10);
        assert!(durable.checkpoint().expect("checkpoint").is_some());
        assert!(durable.checkpoint().expect("checkpoint").is_none());
        assert_eq!(durable.blocks().len(), 1);
    }

    #[test]
    fn crash_after_the_block_but_before_the_log_was_trimmed_replays_nothing_twice() {
        let paths = paths();
        let (durable, _) = open(&paths);
        ingest(&durable, 10, 0, 0..200);
        durable.sync().expect("sync");
        let saved: Vec<(String, Vec<u8>)> = segment_files(&paths.wal)
            .into_iter()
            .map(|name| {
                let bytes = std::fs::read(paths.wal.join(&name)).expect("read");
                (name, bytes)
            })
            .collect();
        durable.checkpoint().expect("checkpoint").expect("a block");
        ingest(&durable, 10, 0, 200..210);
        let expected = dump(durable.store());
        drop(durable);
        // Put back the segments the checkpoint removed: the state of a crash just before step 3.
        for (name, bytes) in &saved {
            let path = paths.wal.join(name);
            if !path.exists() {
                std::fs::write(&path, bytes).expect("restore segment");
            }
        }
        let (durable, report) = open(&paths);
        assert_eq!((report.block_samples, report.samples), (2000, 100));
        assert_eq!(dump(durable.store()), expected);
        assert_eq!((total(durable.store()), durable.store().sample_count()), (2100, 100));
        // The covered segments were removed at open.
        let remaining = segment_files(&paths.wal);
        assert!(remaining.iter().all(|name| !saved.iter().any(|(saved, _)| saved == name)), "{remaining:?}");
    }

    #[test]
    fn crash_before_the_rename_leaves_a_temporary_file_that_is_removed_and_the_log_replays_all() {
        let paths = paths();
        let (durable, _) = open(&paths);
        ingest(&durable, 10, 0, 0..200);
        durable.sync().expect("sync");
        let saved: Vec<(String, Vec<u8>)> = segment_files(&paths.wal)
            .into_iter()
            .map(|name| (name.clone(), std::fs::read(paths.wal.join(&name)).expect("read")))
            .collect();
        let meta = durable.checkpoint().expect("checkpoint").expect("a block");
        ingest(&durable, 10, 0, 200..210);
        let expected = dump(durable.store());
        drop(durable);
        // The block never got its final name and the log was never trimmed.
        let block = tsdb::block::block_path(&paths.blocks, meta.sequence);
        std::fs::rename(&block, paths.blocks.join(format!("{:08}.block.tmp", meta.sequence))).expect("rename");
        for (name, bytes) in &saved {
            std::fs::write(paths.wal.join(name), bytes).expect("restore segment");
        }
        let (durable, report) = open(&paths);
        assert_eq!(report.temporary_removed.len(), 1);
        assert_eq!((report.blocks_loaded, report.samples), (0, 2100));
        assert_eq!(dump(durable.store()), expected);
        assert!(segment_files(&paths.blocks).is_empty());
        // The next checkpoint reuses nothing stale and a restart is still exact.
        durable.checkpoint().expect("checkpoint").expect("a block");
        drop(durable);
        let (durable, _) = open(&paths);
        assert_eq!(dump(durable.store()), expected);
    }

    #[test]
    fn a_damaged_block_is_set_aside_and_the_start_goes_on() {
        let paths = paths();
        let (durable, _) = open(&paths);
        ingest(&durable, 10, 0, 0..100);
        let first = durable.checkpoint().expect("checkpoint").expect("a block");
        ingest(&durable, 10, 0, 100..200);
        let second = durable.checkpoint().expect("checkpoint").expect("a block");
        ingest(&durable, 10, 0, 200..210);
        drop(durable);
        // Flip one byte in the header of the second block.
        let path = tsdb::block::block_path(&paths.blocks, second.sequence);
        flip_byte(&path, 20);
        let (durable, report) = open(&paths);
        assert_eq!(report.blocks_loaded, 1);
        assert_eq!(report.blocks_set_aside.len(), 1, "{:?}", report.blocks_set_aside);
        assert!(report.blocks_set_aside[0].contains("damaged"), "{:?}", report.blocks_set_aside);
        assert!(paths.blocks.join(format!("{:08}.block.corrupt", second.sequence)).exists());
        // The first block and the log after the second are served; the second block's span is lost.
        assert_eq!(report.first_wal_segment, first.wal_segment);
        assert_eq!(total(durable.store()), 1000 + 100);
        // New blocks do not reuse the set-aside block's number.
        ingest(&durable, 10, 0, 210..220);
        let third = durable.checkpoint().expect("checkpoint").expect("a block");
        assert!(third.sequence > second.sequence);
        drop(durable);
        // A truncated block (a torn copy) is set aside as well.
        let path = tsdb::block::block_path(&paths.blocks, third.sequence);
        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 20]).expect("truncate");
        let (_, report) = open(&paths);
        assert_eq!((report.blocks_loaded, report.blocks_set_aside.len()), (1, 1));
    }

    #[test]
    fn a_damaged_chunk_fails_the_reads_that_touch_it_and_nothing_else() {
        let paths = paths();
        let (durable, _) = open(&paths);
        ingest(&durable, 10, 0, 0..100);
        let block = durable.checkpoint().expect("checkpoint").expect("a block");
        ingest(&durable, 10, 0, 100..110);
        drop(durable);
        // Flip one byte in the chunk area (the first chunks follow the header).
        let path = tsdb::block::block_path(&paths.blocks, block.sequence);
        flip_byte(&path, 100);
        let (durable, report) = open(&paths);
        assert_eq!((report.blocks_loaded, report.blocks_set_aside.len()), (1, 0));
        let error = durable.store().select(&[], i64::MIN, i64::MAX).expect_err("a damaged chunk");
        assert!(error.to_string().contains(&path.display().to_string()), "{error}");
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
        // The log's samples and the other series' blocks still read.
        assert_eq!(total_in(durable.store(), 100 * 15_000, i64::MAX), 100);
        let healthy = Matcher::equal("series", "s009");
        assert_eq!(durable.store().select(&[healthy], i64::MIN, i64::MAX).expect("s009")[0].samples.len(), 110);
    }

    /// Five checkpoints of ten minutes each; returns the store, the blocks and everything it serves.
    fn five_blocks(paths: &Paths) -> (DurableStore, Vec<BlockMeta>, Dump) {
        let (durable, _) = open(paths);
        let mut metas = Vec::new();
        for part in 0..5 {
            ingest(&durable, 5, 0, part * 40..(part + 1) * 40);
            metas.push(durable.checkpoint().expect("checkpoint").expect("a block"));
        }
        let expected = dump(durable.store());
        (durable, metas, expected)
    }

    fn block_bytes(paths: &Paths, metas: &[BlockMeta]) -> Vec<(PathBuf, Vec<u8>)> {
        metas
            .iter()
            .map(|meta| {
                let path = tsdb::block::block_path(&paths.blocks, meta.sequence);
                let bytes = std::fs::read(&path).expect("read block");
                (path, bytes)
            })
            .collect()
    }

    #[test]
    fn compaction_merges_closed_windows_and_a_restart_serves_the_same() {
        let paths = paths();
        let (durable, metas, expected) = five_blocks(&paths);
        // Windows of 30 minutes: the first holds three blocks and is closed; the second is still open.
        let report = durable.compact(&[30 * MINUTE]).expect("compact");
        assert_eq!(report.merged.len(), 1);
        let (merged, sources) = &report.merged[0];
        assert_eq!(sources, &vec![metas[0].sequence, metas[1].sequence, metas[2].sequence]);
        assert_eq!((merged.min_time, merged.max_time, merged.samples), (0, 119 * 15_000, 5 * 120));
        assert_eq!(merged.wal_segment, metas[2].wal_segment);
        let served: Vec<u64> = durable.blocks().iter().map(|meta| meta.sequence).collect();
        assert_eq!(served, vec![merged.sequence, metas[3].sequence, metas[4].sequence]);
        assert!(metas[..3].iter().all(|meta| !tsdb::block::block_path(&paths.blocks, meta.sequence).exists()));
        assert_eq!(dump(durable.store()), expected);
        assert!(durable.compact(&[30 * MINUTE]).expect("compact again").merged.is_empty());
        drop(durable);
        let (durable, report) = open(&paths);
        assert_eq!((report.blocks_loaded, report.samples), (3, 0));
        assert_eq!(dump(durable.store()), expected);
    }

    #[test]
    fn a_crash_after_the_merged_block_was_renamed_deletes_its_sources_at_start() {
        let paths = paths();
        let (durable, metas, expected) = five_blocks(&paths);
        let saved = block_bytes(&paths, &metas[..3]);
        durable.compact(&[30 * MINUTE]).expect("compact");
        drop(durable);
        // The state of a crash after step 1 or 2: the merged block and all its sources on disk.
        for (path, bytes) in &saved {
            std::fs::write(path, bytes).expect("restore source");
        }
        let (durable, report) = open(&paths);
        assert_eq!(report.blocks_superseded.len(), 3, "{report:?}");
        assert_eq!(report.blocks_loaded, 3);
        assert!(saved.iter().all(|(path, _)| !path.exists()));
        assert_eq!(dump(durable.store()), expected);
    }

    #[test]
    fn a_crash_before_the_merged_block_was_renamed_keeps_the_sources() {
        let paths = paths();
        let (durable, metas, expected) = five_blocks(&paths);
        let saved = block_bytes(&paths, &metas[..3]);
        let report = durable.compact(&[30 * MINUTE]).expect("compact");
        drop(durable);
        // The merged block never got its final name; its sources were never deleted.
        let merged = report.merged[0].0.sequence;
        let path = tsdb::block::block_path(&paths.blocks, merged);
        std::fs::rename(&path, paths.blocks.join(format!("{merged:08}.block.tmp"))).expect("rename");
        for (path, bytes) in &saved {
            std::fs::write(path, bytes).expect("restore source");
        }
        let (durable, report) = open(&paths);
        assert_eq!((report.temporary_removed.len(), report.blocks_loaded), (1, 5));
        assert_eq!(dump(durable.store()), expected);
        // Compacting again works from the same sources.
        assert_eq!(durable.compact(&[30 * MINUTE]).expect("compact").merged.len(), 1);
        assert_eq!(dump(durable.store()), expected);
    }

    #[test]
    fn a_damaged_source_fails_the_compaction_and_changes_nothing() {
        let paths = paths();
        let (durable, metas, _) = five_blocks(&paths);
        let path = tsdb::block::block_path(&paths.blocks, metas[1].sequence);
        flip_byte(&path, 100);
        let error = durable.compact(&[30 * MINUTE]).expect_err("a damaged chunk");
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
        assert_eq!(durable.blocks(), metas);
        assert!(metas.iter().all(|meta| tsdb::block::block_path(&paths.blocks, meta.sequence).exists()));
        assert!(tsdb::block::list_blocks(&paths.blocks).expect("list").temporary.is_empty());
    }

    fn total_in(store: &MemStore, start: i64, end: i64) -> usize {
        store.select(&[], start, end).expect("select").iter().map(|series| series.samples.len()).sum()
    }

    #[test]
    fn retention_by_time_removes_old_blocks_and_samples() {
        let paths = paths();
        let (durable, _) = open(&paths);
        ingest(&durable, 5, 0, 0..240); // the first hour
        let old = durable.checkpoint().expect("checkpoint").expect("a block");
        ingest(&durable, 5, 0, 480..720); // the third hour
        let recent = durable.checkpoint().expect("checkpoint").expect("a block");
        ingest(&durable, 5, 0, 720..730);
        let now = 3 * HOUR;
        let report = durable
            .apply_retention(now, &Retention { time_ms: Some(90 * MINUTE), size_bytes: None })
            .expect("retention");
        assert_eq!(report.blocks_removed_by_time, vec![old.sequence]);
        assert_eq!(report.cutoff, Some(now - 90 * MINUTE));
        assert_eq!(report.samples_removed, 5 * 240);
        assert_eq!(durable.blocks().iter().map(|meta| meta.sequence).collect::<Vec<_>>(), vec![recent.sequence]);
        assert!(!tsdb::block::block_path(&paths.blocks, old.sequence).exists());
        let expected = dump(durable.store());
        drop(durable);
        let (durable, report) = open(&paths);
        assert_eq!(report.blocks_loaded, 1);
        assert_eq!(dump(durable.store()), expected);
        assert_eq!(total(durable.store()), 5 * 250);
    }

    #[test]
    fn retention_by_time_checkpoints_away_a_log_that_is_entirely_too_old() {
        let paths = paths();
        let (durable, _) = open(&paths);
        ingest(&durable, 5, 0, 0..100);
        let now = 10 * HOUR;
        let report =
            durable.apply_retention(now, &Retention { time_ms: Some(HOUR), size_bytes: None }).expect("retention");
        assert!(report.wal_checkpointed);
        assert_eq!(report.blocks_removed_by_time.len(), 1);
        assert_eq!(durable.store().sample_count(), 0);
        assert!(durable.blocks().is_empty());
        // Only the fresh segment (with the series records) is left.
        assert_eq!(segment_files(&paths.wal).len(), 1);
        drop(durable);
        let (durable, _) = open(&paths);
        assert_eq!(durable.store().sample_count(), 0);
    }

    #[test]
    fn retention_by_size_removes_the_oldest_blocks_first() {
        let paths = paths();
        let (durable, _) = open(&paths);
        let mut metas = Vec::new();
        for hour in 0..3 {
            ingest(&durable, 20, 0, hour * 240..(hour + 1) * 240);
            metas.push(durable.checkpoint().expect("checkpoint").expect("a block"));
        }
        let newest = metas[2];
        let limit = newest.bytes + durable.wal_size_bytes() + 10;
        let report = durable
            .apply_retention(3 * HOUR, &Retention { time_ms: None, size_bytes: Some(limit) })
            .expect("retention");
        assert_eq!(report.blocks_removed_by_size, vec![metas[0].sequence, metas[1].sequence]);
        assert_eq!(report.cutoff, Some(metas[1].max_time + 1));
        assert_eq!(total(durable.store()), 20 * 240);
        assert_eq!(durable.blocks(), vec![newest]);
        drop(durable);
        let (durable, _) = open(&paths);
        assert_eq!(total(durable.store()), 20 * 240);
    }

    #[test]
    fn checkpoint_is_due_by_head_span_or_log_size() {
        let paths = paths();
        let (durable, _) = open(&paths);
        let policy = CheckpointPolicy { block_interval_ms: HOUR, wal_max_bytes: u64::MAX };
        ingest(&durable, 2, 0, 0..200);
        assert!(durable.checkpoint_due(&policy).is_none());
        ingest(&durable, 2, 0, 240..241);
        assert!(durable.checkpoint_due(&policy).is_some());
        durable.checkpoint().expect("checkpoint");
        assert!(durable.checkpoint_due(&policy).is_none());
        let by_size = CheckpointPolicy { block_interval_ms: i64::MAX, wal_max_bytes: 1 };
        assert!(durable.checkpoint_due(&by_size).is_some());
        let in_memory = DurableStore::in_memory(Arc::new(MemStore::new()));
        assert!(in_memory.checkpoint_due(&by_size).is_none());
    }
}

#[cfg(test)]
mod measurements {
    //! Not a test: prints the cost of a checkpoint and a restart at scale.
    //! `cargo test --release -p ingest --lib measurements -- --ignored --nocapture`

    use std::time::Instant;

    use super::*;

    #[test]
    #[ignore = "a measurement, run by hand"]
    fn checkpoint_of_100k_series_of_480_samples() {
        let root = tempfile::tempdir().expect("temporary directory");
        let (wal_directory, blocks_directory) = (root.path().join("wal"), root.path().join("blocks"));
        let options = WalOptions { fsync: wal::FsyncPolicy::Never, ..WalOptions::default() };
        let (durable, _) = DurableStore::open_with_blocks(
            &wal_directory,
            &blocks_directory,
            Arc::new(MemStore::new()),
            options.clone(),
        )
        .expect("open");
        let series: Vec<Labels> = (0..100_000)
            .map(|index| {
                Labels::from_pairs([
                    ("__name__", format!("metric_{}", index % 100)),
                    ("instance", format!("host-{}:9100", index / 100)),
                    ("job", "node".to_owned()),
                ])
            })
            .collect();
        let started = Instant::now();
        for step in 0..480i64 {
            let batch: Vec<(Labels, Vec<(i64, f64)>)> = series
                .iter()
                .enumerate()
                .map(|(index, labels)| {
                    (labels.clone(), vec![(step * 15_000, (index as f64) + (step % 37) as f64 * 0.5)])
                })
                .collect();
            durable.append(&batch, &|_| true).expect("append");
        }
        println!(
            "ingest of 48M samples: {:.1} s, log {} MiB",
            started.elapsed().as_secs_f64(),
            durable.wal_size_bytes() >> 20
        );
        let started = Instant::now();
        let block = durable.checkpoint().expect("checkpoint").expect("a block");
        println!(
            "checkpoint: {:.2} s, block {} MiB ({:.2} bytes per sample), {} chunks, log after {} KiB",
            started.elapsed().as_secs_f64(),
            block.bytes >> 20,
            block.bytes as f64 / block.samples as f64,
            block.chunks,
            durable.wal_size_bytes() >> 10
        );
        drop(durable);
        let started = Instant::now();
        let (durable, report) =
            DurableStore::open_with_blocks(&wal_directory, &blocks_directory, Arc::new(MemStore::new()), options)
                .expect("reopen");
        println!(
            "restart from the block: {:.2} s, {} samples, {} series",
            started.elapsed().as_secs_f64(),
            report.block_samples,
            durable.store().series_count()
        );
        assert_eq!(report.block_samples, 48_000_000);
    }
}
