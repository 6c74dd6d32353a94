//! The in-memory store: a label index over series whose samples live in
//! Gorilla-compressed chunks.
//!
//! Key types: [`MemStore`] and [`SeriesRef`], a cheap handle to one series that
//! bulk loaders keep to skip the label look-up on every sample.
//!
//! Layout and locking:
//! - Series are found by label set in one of [`SHARD_COUNT`] hash tables, each
//!   behind its own `RwLock`; only creating or removing a series takes a write lock.
//! - The [`PostingsIndex`] and the id -> series table sit behind one `RwLock`,
//!   written only when a series is created or removed. Queries hold it just long
//!   enough to resolve matchers to series handles.
//! - Each series has its own `RwLock` over its chunks: an append locks one series,
//!   and a query locks each selected series only while decoding it.
//!
//! Lock order is shard -> index and shard -> series; nothing takes a shard lock
//! while holding the index or a series lock.
//!
//! Samples go into the series' head chunk in place; the head is sealed at
//! [`CHUNK_MAX_SAMPLES`] samples or when it would span more than
//! [`CHUNK_MAX_SPAN_MS`]. Reads decode only the chunks that overlap the requested
//! range. The store keeps no write-ahead log and does nothing on a timer:
//! retention is applied by calling [`MemStore::truncate_before`].
//!
//! Native histogram samples ([`MemStore::append_histogram`]) sit in a plain
//! per-series list beside the float chunks, ordered with them by timestamp;
//! checkpoints and blocks do not carry them.
//!
//! Checkpoints: each series counts the leading sealed chunks the checkpoint in
//! progress covers (`checkpoint`). [`MemStore::cut_for_checkpoint`] also seals
//! the head chunks, so a block never holds part of a chunk that keeps growing
//! in memory. Once the block is durable and served from disk
//! ([`MemStore::disk`]), [`MemStore::commit_checkpoint`] drops those chunks from
//! memory, keeping only each series' last sample as the floor later appends
//! must not go below. Queries read memory and the blocks overlapping their
//! range, and merge the two by timestamp (memory wins a tie).

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hashbrown::HashTable;
use parking_lot::RwLock;

use crate::chunk::{Chunk, ChunkEncoder};
use crate::disk::DiskBlocks;
use crate::histogram::{CounterResetHint, FloatHistogram, HistogramSample};
use crate::label_order::{LabelOrder, RankSlot, Ranked};
use crate::postings::{PostingsIndex, SeriesId};
use crate::{Error, Label, Labels, Matcher, Queryable, Sample, SeriesData};

/// Number of independently locked series tables.
pub const SHARD_COUNT: usize = 64;
/// A head chunk is sealed once it holds this many samples.
pub const CHUNK_MAX_SAMPLES: usize = 120;
/// A head chunk is sealed before it would span more than this many milliseconds.
pub const CHUNK_MAX_SPAN_MS: i64 = 2 * 60 * 60 * 1000;

/// Number of sample counters; appends to different series mostly touch different ones.
const COUNTER_STRIPES: usize = 16;

/// A counter alone on its cache line, so threads appending to different series
/// do not contend on one line.
#[derive(Default)]
#[repr(align(64))]
struct StripedCounter(AtomicUsize);

/// Hands every store a distinct number, so a [`SeriesRef`] from one store is
/// never written through into another.
static NEXT_STORE_ID: AtomicUsize = AtomicUsize::new(0);

/// One series: its identity and its chunks.
struct MemSeries {
    store_id: usize,
    id: SeriesId,
    hash: u64,
    labels: Labels,
    /// The number the store's owner logs the series under (0: none yet); see
    /// [`SeriesRef::log_id`]. The store itself never reads it.
    log_id: AtomicU64,
    samples: RwLock<SeriesSamples>,
    /// Its place in the store's label order ([`crate::label_order`]).
    rank: RankSlot,
}

impl Ranked for Arc<MemSeries> {
    fn labels(&self) -> &Labels {
        &self.labels
    }

    fn rank_slot(&self) -> &RankSlot {
        &self.rank
    }
}

/// The chunks of one series, oldest first; the head chunk is the newest.
#[derive(Default)]
struct SeriesSamples {
    sealed: Vec<Chunk>,
    head: ChunkEncoder,
    /// Set when retention removed the series from the store; it then takes no samples.
    removed: bool,
    /// The leading `sealed` chunks the checkpoint in progress covers.
    checkpoint: usize,
    /// The last sample (timestamp, value bits) dropped from memory because a
    /// block holds it: appends are checked against it when the head is empty.
    floor: Option<(i64, u64)>,
    /// Native histogram samples, oldest first, kept apart from the float chunks
    /// (a timestamp holds a float or a histogram, never both). Only tests and
    /// loaders write them; blocks and the write-ahead log do not hold them.
    histograms: Vec<HistogramSample>,
}

/// Why an append into one series did not happen.
enum AppendRefusal {
    /// The sample conflicts with the series' last one.
    Rejected(Error),
    /// The series is no longer in the store.
    Removed,
}

/// Whether an append stored a new sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Appended {
    New,
    /// Same timestamp and same value bits as the last sample: nothing to do.
    Duplicate,
}

impl SeriesSamples {
    fn append(&mut self, labels: &Labels, timestamp: i64, value: f64) -> Result<Appended, AppendRefusal> {
        if self.removed {
            return Err(AppendRefusal::Removed);
        }
        if let Some(last) = self.histograms.last()
            && timestamp <= last.timestamp
        {
            return Err(AppendRefusal::Rejected(Error::OutOfOrder {
                labels: labels.to_string(),
                last: last.timestamp,
                got: timestamp,
            }));
        }
        // The newest sample: in the head, else in the last sealed chunk (after
        // a checkpoint sealed the head; decoded only then), else the floor a
        // block served from disk left when its chunks were dropped.
        let floor = self.floor.map(|(timestamp, bits)| (timestamp, f64::from_bits(bits)));
        let last = self.head.last().or_else(|| self.sealed.last().and_then(|chunk| chunk.iter().last())).or(floor);
        if let Some((last_timestamp, last_value)) = last {
            if timestamp < last_timestamp {
                return Err(AppendRefusal::Rejected(Error::OutOfOrder {
                    labels: labels.to_string(),
                    last: last_timestamp,
                    got: timestamp,
                }));
            }
            if timestamp == last_timestamp {
                if last_value.to_bits() == value.to_bits() {
                    return Ok(Appended::Duplicate);
                }
                return Err(AppendRefusal::Rejected(Error::DuplicateTimestamp {
                    labels: labels.to_string(),
                    timestamp,
                }));
            }
        }
        if !self.head.is_empty() {
            let span = timestamp.saturating_sub(self.head.min_time());
            let full = self.head.len() >= CHUNK_MAX_SAMPLES || span > CHUNK_MAX_SPAN_MS || self.head.is_full();
            if full && !self.head.is_empty() {
                let full = std::mem::take(&mut self.head);
                self.sealed.push(full.seal());
            }
        }
        self.head.append(timestamp, value);
        Ok(Appended::New)
    }

    fn is_empty(&self) -> bool {
        self.sealed.is_empty() && self.head.is_empty() && self.histograms.is_empty()
    }

    /// The timestamp of the newest float sample.
    fn last_float_timestamp(&self) -> Option<i64> {
        match self.head.last() {
            Some((timestamp, _)) => Some(timestamp),
            None => self.sealed.last().map(Chunk::max_time).or(self.floor.map(|(timestamp, _)| timestamp)),
        }
    }

    /// Appends a histogram sample. Its counter-reset hint is settled here, as
    /// the store reads it back: gauges stay gauges; after another histogram
    /// it says whether the counts went down; after a float or as the first
    /// sample it is kept as given.
    fn append_histogram(
        &mut self,
        labels: &Labels,
        timestamp: i64,
        mut histogram: FloatHistogram,
    ) -> Result<Appended, AppendRefusal> {
        if self.removed {
            return Err(AppendRefusal::Removed);
        }
        let last_histogram = self.histograms.last().map(|sample| sample.timestamp);
        let last = last_histogram.max(self.last_float_timestamp());
        if let Some(last) = last {
            if timestamp < last || (timestamp == last && last_histogram != Some(last)) {
                return Err(AppendRefusal::Rejected(Error::OutOfOrder {
                    labels: labels.to_string(),
                    last,
                    got: timestamp,
                }));
            }
            if timestamp == last {
                return match self.histograms.last() {
                    Some(previous) if *previous.histogram == histogram => Ok(Appended::Duplicate),
                    _ => Err(AppendRefusal::Rejected(Error::DuplicateTimestamp {
                        labels: labels.to_string(),
                        timestamp,
                    })),
                };
            }
        }
        let previous = self.histograms.last().filter(|sample| Some(sample.timestamp) == last);
        if let Some(previous) = previous
            && histogram.counter_reset_hint != CounterResetHint::Gauge
        {
            histogram.counter_reset_hint = if histogram.detect_reset(&previous.histogram) {
                CounterResetHint::CounterReset
            } else {
                CounterResetHint::NotCounterReset
            };
        }
        self.histograms.push(HistogramSample { timestamp, histogram: Arc::new(histogram) });
        Ok(Appended::New)
    }

    fn histograms_in_range(&self, start: i64, end: i64) -> Vec<HistogramSample> {
        if self.histograms.is_empty() || start > end {
            return Vec::new();
        }
        let from = self.histograms.partition_point(|sample| sample.timestamp < start);
        let to = self.histograms.partition_point(|sample| sample.timestamp <= end);
        self.histograms.get(from..to).map(<[HistogramSample]>::to_vec).unwrap_or_default()
    }

    /// Calls `visit` with each sample in `[start, end]`, in order, decoding only
    /// overlapping chunks; stops when `visit` returns false.
    fn for_each_in_range(&self, start: i64, end: i64, mut visit: impl FnMut(i64, f64) -> bool) {
        if start > end {
            return;
        }
        let first = self.sealed.partition_point(|chunk| chunk.max_time() < start);
        let sealed = self.sealed[first..].iter().take_while(|chunk| chunk.min_time() <= end).map(|chunk| chunk.iter());
        let head = (!self.head.is_empty() && self.head.max_time() >= start && self.head.min_time() <= end)
            .then(|| self.head.iter());
        for chunk in sealed.chain(head) {
            for (timestamp, value) in chunk {
                if timestamp > end {
                    return;
                }
                if timestamp >= start && !visit(timestamp, value) {
                    return;
                }
            }
        }
    }

    fn samples_in_range(&self, start: i64, end: i64) -> Vec<Sample> {
        // Sized for every sample of the overlapping chunks, so the vector never grows.
        let first = self.sealed.partition_point(|chunk| chunk.max_time() < start);
        let sealed: usize =
            self.sealed[first..].iter().take_while(|chunk| chunk.min_time() <= end).map(|chunk| chunk.len()).sum();
        let mut samples = Vec::with_capacity(sealed + self.head.len());
        self.for_each_in_range(start, end, |timestamp, value| {
            samples.push(Sample { timestamp, value });
            true
        });
        samples
    }

    fn has_sample_in_range(&self, start: i64, end: i64) -> bool {
        if self.histograms.iter().any(|sample| start <= sample.timestamp && sample.timestamp <= end) {
            return true;
        }
        let mut found = false;
        self.for_each_in_range(start, end, |_, _| {
            found = true;
            false
        });
        found
    }

    /// Drops every chunk whose samples are all older than `timestamp`; returns
    /// the number of samples dropped.
    fn truncate_before(&mut self, timestamp: i64) -> usize {
        let keep_from = self.sealed.partition_point(|chunk| chunk.max_time() < timestamp);
        let mut dropped: usize = self.sealed.drain(..keep_from).map(|chunk| chunk.len()).sum();
        self.checkpoint = self.checkpoint.saturating_sub(keep_from);
        if !self.head.is_empty() && self.head.max_time() < timestamp {
            dropped += self.head.len();
            self.head = ChunkEncoder::new();
        }
        let old_histograms = self.histograms.partition_point(|sample| sample.timestamp < timestamp);
        self.histograms.drain(..old_histograms);
        dropped + old_histograms
    }

    /// Seals the head chunk (if it holds samples) and marks every sealed chunk
    /// as covered by the checkpoint in progress.
    fn cut_for_checkpoint(&mut self) {
        if !self.head.is_empty() {
            let head = std::mem::take(&mut self.head);
            self.sealed.push(head.seal());
        }
        self.checkpoint = self.sealed.len();
    }

    /// The chunks the checkpoint in progress covers.
    fn checkpoint_chunks(&self) -> &[Chunk] {
        self.sealed.get(..self.checkpoint).unwrap_or(&[])
    }

    /// Drops the chunks the checkpoint covered (a block now holds them) and
    /// returns the samples dropped.
    fn drop_checkpoint_chunks(&mut self) -> usize {
        let covered = self.checkpoint.min(self.sealed.len());
        self.checkpoint = 0;
        if covered == 0 {
            return 0;
        }
        if let Some(last) = self.sealed[covered - 1].iter().last() {
            self.floor = Some((last.0, last.1.to_bits()));
        }
        self.sealed.drain(..covered).map(|chunk| chunk.len()).sum()
    }

    fn heap_bytes(&self) -> usize {
        self.sealed.capacity() * size_of::<Chunk>()
            + self.sealed.iter().map(Chunk::heap_bytes).sum::<usize>()
            + self.head.heap_bytes()
            + self.histograms.capacity() * size_of::<HistogramSample>()
            + self.histograms.iter().map(|sample| histogram_heap_bytes(&sample.histogram)).sum::<usize>()
    }
}

/// A handle to one series of a [`MemStore`], from
/// [`MemStore::get_or_create_series`]. Appending through it skips the label
/// look-up. A handle stays usable after retention removed its series: the next
/// append re-creates the series.
#[derive(Clone)]
pub struct SeriesRef(Arc<MemSeries>);

impl SeriesRef {
    /// The series' label set.
    pub fn labels(&self) -> &Labels {
        &self.0.labels
    }

    /// The number a write-ahead log set with [`SeriesRef::set_log_id`], if any.
    /// It belongs to this series object: a series that retention removed and
    /// an append re-created starts without one.
    pub fn log_id(&self) -> Option<u64> {
        match self.0.log_id.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    /// Records the number (not 0) the series is logged under.
    pub fn set_log_id(&self, id: u64) {
        debug_assert_ne!(id, 0);
        self.0.log_id.store(id, Ordering::Release);
    }
}

impl fmt::Debug for SeriesRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeriesRef").field("labels", &self.0.labels).finish()
    }
}

/// What [`MemStore::truncate_before`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Truncation {
    pub samples_removed: usize,
    pub series_removed: usize,
}

/// The postings and the id -> series table, changed together.
#[derive(Default)]
struct Index {
    postings: PostingsIndex,
    series: Vec<Option<Arc<MemSeries>>>,
    free_ids: Vec<SeriesId>,
}

impl Index {
    fn create(&mut self, store_id: usize, labels: &Labels, hash: u64) -> Arc<MemSeries> {
        let id = match self.free_ids.pop() {
            Some(id) => id,
            None => SeriesId::try_from(self.series.len()).expect("fewer than 2^32 live series"),
        };
        let series = Arc::new(MemSeries {
            store_id,
            id,
            hash,
            labels: labels.clone(),
            log_id: AtomicU64::new(0),
            samples: RwLock::new(SeriesSamples::default()),
            rank: RankSlot::default(),
        });
        let slot = id as usize;
        if slot == self.series.len() {
            self.series.push(Some(Arc::clone(&series)));
        } else {
            debug_assert!(self.series[slot].is_none());
            self.series[slot] = Some(Arc::clone(&series));
        }
        self.postings.add(id, labels);
        series
    }

    fn remove(&mut self, removed: &[Arc<MemSeries>]) {
        self.postings.remove(removed.iter().map(|series| (series.id, &series.labels)));
        for series in removed {
            if let Some(slot) = self.series.get_mut(series.id as usize) {
                *slot = None;
                self.free_ids.push(series.id);
            }
        }
    }

    fn labels_of(&self, id: SeriesId) -> Option<&Labels> {
        self.series.get(id as usize).and_then(Option::as_ref).map(|series| &series.labels)
    }

    /// The series matching every matcher, in id order.
    fn select(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        self.postings
            .select(matchers, |id| self.labels_of(id))
            .into_iter()
            .filter_map(|id| self.series.get(id as usize).and_then(Option::clone))
            .collect()
    }
}

/// What [`MemStore::head_stats`] counts; each list holds `(name, count)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadStats {
    pub series: usize,
    pub chunks: usize,
    /// The oldest and newest sample timestamps, `None` when the store is empty.
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    pub series_count_by_metric_name: Vec<(String, u64)>,
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

/// Series and samples held in memory, safe to append to and query from many threads.
pub struct MemStore {
    store_id: usize,
    hasher: RandomState,
    shards: Box<[RwLock<HashTable<Arc<MemSeries>>>]>,
    index: RwLock<Index>,
    /// Samples held, split over stripes chosen by series id; the sum is the count.
    sample_counts: Box<[StripedCounter]>,
    /// Blocks served from disk beside the memory.
    disk: DiskBlocks,
    /// The series ranked by label set, for sorting selections.
    order: LabelOrder,
}

impl Default for MemStore {
    fn default() -> Self {
        Self {
            store_id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            hasher: RandomState::new(),
            shards: (0..SHARD_COUNT).map(|_| RwLock::new(HashTable::new())).collect(),
            index: RwLock::new(Index::default()),
            sample_counts: (0..COUNTER_STRIPES).map(|_| StripedCounter::default()).collect(),
            disk: DiskBlocks::default(),
            order: LabelOrder::default(),
        }
    }
}

impl fmt::Debug for MemStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemStore").field("series", &self.series_count()).field("samples", &self.sample_count()).finish()
    }
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// The blocks this store serves from disk beside what memory holds.
    pub fn disk(&self) -> &DiskBlocks {
        &self.disk
    }

    /// Appends one sample. Timestamps must grow within a series; a repeated
    /// timestamp with the same value is accepted and ignored.
    pub fn append(&self, labels: &Labels, timestamp: i64, value: f64) -> Result<(), Error> {
        let series = self.get_or_create_series(labels);
        self.append_ref(&series, timestamp, value)
    }

    /// Appends one native histogram sample. Timestamps must grow within a
    /// series across floats and histograms; the same histogram at the same
    /// timestamp is accepted and ignored.
    pub fn append_histogram(&self, labels: &Labels, timestamp: i64, histogram: FloatHistogram) -> Result<(), Error> {
        loop {
            let series = self.get_or_create_series(labels);
            let outcome = series.0.samples.write().append_histogram(labels, timestamp, histogram.clone());
            match outcome {
                Ok(Appended::New) => {
                    let stripe = series.0.id as usize % COUNTER_STRIPES;
                    self.sample_counts[stripe].0.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Ok(Appended::Duplicate) => return Ok(()),
                Err(AppendRefusal::Rejected(error)) => return Err(error),
                Err(AppendRefusal::Removed) => {}
            }
        }
    }

    /// The handle of the series with exactly these labels, created if needed.
    /// A series created here and never appended to may be dropped by
    /// [`MemStore::truncate_before`]; appending through the handle brings it back.
    pub fn get_or_create_series(&self, labels: &Labels) -> SeriesRef {
        let hash = self.hasher.hash_one(labels);
        let shard = &self.shards[shard_of(hash)];
        if let Some(series) = shard.read().find(hash, |series| series.labels == *labels) {
            return SeriesRef(Arc::clone(series));
        }
        let mut table = shard.write();
        if let Some(series) = table.find(hash, |series| series.labels == *labels) {
            return SeriesRef(Arc::clone(series));
        }
        let series = self.index.write().create(self.store_id, labels, hash);
        self.order.created();
        table.insert_unique(hash, Arc::clone(&series), |series| series.hash);
        SeriesRef(series)
    }

    /// The series whose label set is exactly `pairs` (sorted by unique name, no
    /// empty value), found without building a label set; `None` when the store
    /// has none. The look-up of an already known series on the ingest path.
    pub fn find_series(&self, pairs: &[(&str, &str)]) -> Option<SeriesRef> {
        let hash = self.hasher.hash_one(crate::labels::hash_sorted_pairs(pairs.iter().copied()));
        let table = self.shards[shard_of(hash)].read();
        table.find(hash, |series| series.labels.eq_pairs(pairs)).map(|series| SeriesRef(Arc::clone(series)))
    }

    /// Calls `visit` with every series held, in no particular order. Appends
    /// may run meanwhile; a series created during the walk may be missed.
    pub fn for_each_series(&self, mut visit: impl FnMut(&SeriesRef)) {
        for shard in self.shards.iter() {
            let series: Vec<SeriesRef> = shard.read().iter().map(|series| SeriesRef(Arc::clone(series))).collect();
            series.iter().for_each(&mut visit);
        }
    }

    /// Appends one sample to the series behind `series`, with the same rules as
    /// [`MemStore::append`].
    pub fn append_ref(&self, series: &SeriesRef, timestamp: i64, value: f64) -> Result<(), Error> {
        let mut target = std::borrow::Cow::Borrowed(series);
        loop {
            let outcome = if target.0.store_id == self.store_id {
                target.0.samples.write().append(&target.0.labels, timestamp, value)
            } else {
                Err(AppendRefusal::Removed)
            };
            match outcome {
                Ok(Appended::New) => {
                    let stripe = target.0.id as usize % COUNTER_STRIPES;
                    self.sample_counts[stripe].0.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Ok(Appended::Duplicate) => return Ok(()),
                Err(AppendRefusal::Rejected(error)) => return Err(error),
                // Retention removed the series (or the handle is another store's):
                // find or re-create it by its labels and try again.
                Err(AppendRefusal::Removed) => {
                    target = std::borrow::Cow::Owned(self.get_or_create_series(&series.0.labels));
                }
            }
        }
    }

    /// Appends many samples, looking each series up once per run of equal label
    /// sets. Every sample is attempted; the first error met is returned, and the
    /// samples that were accepted stay stored.
    pub fn append_batch(&self, samples: &[(Labels, Sample)]) -> Result<(), Error> {
        let mut first_error = None;
        let mut current: Option<SeriesRef> = None;
        for (labels, sample) in samples {
            let series = match &current {
                Some(series) if series.labels() == labels => series,
                _ => current.insert(self.get_or_create_series(labels)),
            };
            if let Err(error) = self.append_ref(series, sample.timestamp, sample.value) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Whether a series with exactly these labels exists.
    pub fn contains(&self, labels: &Labels) -> bool {
        let hash = self.hasher.hash_one(labels);
        self.shards[shard_of(hash)].read().find(hash, |series| series.labels == *labels).is_some()
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.index.read().postings.len()
    }

    /// Number of samples held in memory (exact when no append or truncation is in flight).
    pub fn sample_count(&self) -> usize {
        self.sample_counts.iter().map(|counter| counter.0.load(Ordering::Relaxed)).fold(0, usize::wrapping_add)
    }

    /// An estimate of the bytes the store holds: index, series tables, label sets,
    /// chunks and the cached block indexes. Walks every series, so it costs a
    /// little time per series.
    pub fn memory_bytes(&self) -> usize {
        let mut bytes = size_of::<Self>() + self.disk.cache_bytes();
        {
            let index = self.index.read();
            bytes += index.postings.memory_bytes();
            bytes += index.series.capacity() * size_of::<Option<Arc<MemSeries>>>();
            bytes += index.free_ids.capacity() * size_of::<SeriesId>();
        }
        for shard in self.shards.iter() {
            let table = shard.read();
            bytes += size_of::<RwLock<HashTable<Arc<MemSeries>>>>();
            bytes += table.capacity() * (size_of::<Arc<MemSeries>>() + 1);
            for series in table.iter() {
                // Two reference counts precede the value in an `Arc` allocation.
                bytes += size_of::<MemSeries>() + 2 * size_of::<usize>();
                bytes += labels_heap_bytes(&series.labels);
                bytes += series.samples.read().heap_bytes();
            }
        }
        bytes
    }

    /// Statistics of what memory holds, for Prometheus's `/api/v1/status/tsdb`:
    /// series and chunks counted, the time range, and the `limit` largest
    /// entries of each cardinality list (Prometheus's head postings stats:
    /// series per metric name, distinct values per label name, bytes of label
    /// values per label name counted once per series, series per label pair),
    /// each sorted by count, largest first, then by name.
    pub fn head_stats(&self, limit: usize) -> HeadStats {
        let mut stats = HeadStats::default();
        let mut pairs: HashMap<(&str, &str), u64> = HashMap::new();
        let shards: Vec<_> = self.shards.iter().map(|shard| shard.read()).collect();
        for table in &shards {
            for series in table.iter() {
                let samples = series.samples.read();
                let chunk_count = samples.sealed.len() + usize::from(!samples.head.is_empty());
                if chunk_count == 0 && samples.histograms.is_empty() {
                    continue;
                }
                stats.series += 1;
                stats.chunks += chunk_count;
                let first = samples
                    .sealed
                    .first()
                    .map(Chunk::min_time)
                    .or_else(|| (!samples.head.is_empty()).then(|| samples.head.min_time()));
                let last = (!samples.head.is_empty())
                    .then(|| samples.head.max_time())
                    .or_else(|| samples.sealed.last().map(Chunk::max_time));
                for timestamp in first.into_iter().chain(samples.histograms.first().map(|sample| sample.timestamp)) {
                    stats.min_time = Some(stats.min_time.map_or(timestamp, |min| min.min(timestamp)));
                }
                for timestamp in last.into_iter().chain(samples.histograms.last().map(|sample| sample.timestamp)) {
                    stats.max_time = Some(stats.max_time.map_or(timestamp, |max| max.max(timestamp)));
                }
                for label in &series.labels {
                    *pairs.entry((label.name.as_str(), label.value.as_str())).or_default() += 1;
                }
            }
        }
        let mut by_metric = Vec::new();
        let mut values_by_name: HashMap<&str, u64> = HashMap::new();
        let mut bytes_by_name: HashMap<&str, u64> = HashMap::new();
        let mut by_pair = Vec::with_capacity(pairs.len());
        for (&(name, value), &count) in &pairs {
            if name == crate::METRIC_NAME {
                by_metric.push((value.to_owned(), count));
            }
            *values_by_name.entry(name).or_default() += 1;
            *bytes_by_name.entry(name).or_default() += value.len() as u64 * count;
            by_pair.push((format!("{name}={value}"), count));
        }
        let top = |mut entries: Vec<(String, u64)>| {
            entries.sort_by(|left, right| right.1.cmp(&left.1).then_with(|| left.0.cmp(&right.0)));
            entries.truncate(limit);
            entries
        };
        let owned = |map: HashMap<&str, u64>| map.into_iter().map(|(name, count)| (name.to_owned(), count)).collect();
        stats.series_count_by_metric_name = top(by_metric);
        stats.label_value_count_by_label_name = top(owned(values_by_name));
        stats.memory_in_bytes_by_label_name = top(owned(bytes_by_name));
        stats.series_count_by_label_value_pair = top(by_pair);
        stats
    }

    /// Applies retention: drops every chunk whose samples are all older than
    /// `timestamp`, then removes the series left without samples from the index.
    /// A chunk straddling `timestamp` is kept whole, so older samples in it stay
    /// readable until the next call after that chunk ends.
    pub fn truncate_before(&self, timestamp: i64) -> Truncation {
        let mut truncation = Truncation::default();
        let mut removed = Vec::new();
        for shard in self.shards.iter() {
            let mut emptied_any = false;
            for series in shard.read().iter() {
                let mut samples = series.samples.write();
                let dropped = samples.truncate_before(timestamp);
                if dropped > 0 {
                    let stripe = series.id as usize % COUNTER_STRIPES;
                    self.sample_counts[stripe].0.fetch_sub(dropped, Ordering::Relaxed);
                    truncation.samples_removed += dropped;
                }
                emptied_any |= samples.is_empty();
            }
            if !emptied_any {
                continue;
            }
            // Re-check under the write lock: an append may have landed meanwhile.
            shard.write().retain(|series| {
                let mut samples = series.samples.write();
                if !samples.is_empty() {
                    return true;
                }
                samples.removed = true;
                removed.push(Arc::clone(series));
                false
            });
        }
        truncation.series_removed = removed.len();
        if !removed.is_empty() {
            self.index.write().remove(&removed);
        }
        truncation
    }

    /// Starts a checkpoint. Seals every head chunk, so that each sample held
    /// now is in a sealed chunk and each sample appended later goes to a new
    /// chunk, and marks the sealed chunks as covered by this checkpoint. The
    /// caller holds off appends while this runs (so the cut matches a point in
    /// its write-ahead log), then writes [`MemStore::for_each_checkpoint_chunks`]
    /// to a block and calls [`MemStore::commit_checkpoint`] once that block is
    /// durable. Returns the number of chunks the checkpoint will write.
    pub fn cut_for_checkpoint(&self) -> usize {
        let mut chunks = 0;
        for shard in self.shards.iter() {
            for series in shard.read().iter() {
                let mut samples = series.samples.write();
                samples.cut_for_checkpoint();
                chunks += samples.checkpoint_chunks().len();
            }
        }
        chunks
    }

    /// Calls `visit` with the label set and the not yet persisted chunks of each
    /// series that the last [`MemStore::cut_for_checkpoint`] covered, skipping
    /// series with none. Series come in label order. Appends may run meanwhile.
    pub fn for_each_checkpoint_chunks<E>(
        &self,
        mut visit: impl FnMut(&Labels, &[Chunk]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut series: Vec<Arc<MemSeries>> = self.index.read().series.iter().flatten().cloned().collect();
        series.sort_unstable_by(|left, right| left.labels.cmp(&right.labels));
        for series in series {
            let samples = series.samples.read();
            let chunks = samples.checkpoint_chunks();
            if !chunks.is_empty() {
                visit(&series.labels, chunks)?;
            }
        }
        Ok(())
    }

    /// Records that the chunks the last [`MemStore::cut_for_checkpoint`] covered
    /// are in a durable block that [`MemStore::disk`] now serves, and drops them
    /// from memory. Returns the samples dropped.
    pub fn commit_checkpoint(&self) -> usize {
        let mut dropped_total = 0;
        for shard in self.shards.iter() {
            for series in shard.read().iter() {
                let dropped = series.samples.write().drop_checkpoint_chunks();
                if dropped > 0 {
                    let stripe = series.id as usize % COUNTER_STRIPES;
                    self.sample_counts[stripe].0.fetch_sub(dropped, Ordering::Relaxed);
                    dropped_total += dropped;
                }
            }
        }
        dropped_total
    }

    /// The series matching `matchers`, in id order.
    fn matching(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        self.index.read().select(matchers)
    }

    /// The matching series with at least one sample in `[start, end]`, sorted by labels.
    fn matching_in_range(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<Arc<MemSeries>> {
        let mut series: Vec<Arc<MemSeries>> = self
            .matching(matchers)
            .into_iter()
            .filter(|series| series.samples.read().has_sample_in_range(start, end))
            .collect();
        self.sort_by_labels(&mut series);
        series
    }

    /// Sorts series by label set, through their ranks ([`crate::label_order`]),
    /// ranking the store's series again when enough are new.
    fn sort_by_labels(&self, series: &mut Vec<Arc<MemSeries>>) {
        let store_series = self.series_count();
        if self.order.sort(series, store_series) {
            let all: Vec<Arc<MemSeries>> = self.index.read().series.iter().flatten().cloned().collect();
            self.order.rank(all);
        }
    }
}

/// Index of the shard that owns a label-set hash. Uses bits that the hash
/// tables' own bucket and tag bits leave alone.
fn shard_of(hash: u64) -> usize {
    (hash >> 48) as usize % SHARD_COUNT
}

fn histogram_heap_bytes(histogram: &FloatHistogram) -> usize {
    size_of::<FloatHistogram>()
        + (histogram.positive_spans.capacity() + histogram.negative_spans.capacity())
            * size_of::<crate::histogram::Span>()
        + (histogram.positive_buckets.capacity()
            + histogram.negative_buckets.capacity()
            + histogram.custom_values.capacity())
            * size_of::<f64>()
}

pub(crate) fn labels_heap_bytes(labels: &Labels) -> usize {
    labels.iter().map(|label| size_of::<Label>() + label.name.capacity() + label.value.capacity()).sum()
}

impl MemStore {
    /// What memory holds in `[start, end]` of the matching series, sorted by labels.
    fn select_memory(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<SeriesData> {
        let mut matching = self.matching(matchers);
        self.sort_by_labels(&mut matching);
        matching
            .into_iter()
            .filter_map(|series| {
                let guard = series.samples.read();
                let samples = guard.samples_in_range(start, end);
                let histograms = guard.histograms_in_range(start, end);
                drop(guard);
                (!samples.is_empty() || !histograms.is_empty()).then(|| SeriesData {
                    labels: series.labels.clone(),
                    samples,
                    histograms,
                })
            })
            .collect()
    }

    /// The label sets of the matching series with a sample in `[start, end]`
    /// in memory or in a block, sorted and de-duplicated.
    fn labels_in_range(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Labels>, Error> {
        let mut labels: Vec<Labels> =
            self.matching_in_range(matchers, start, end).iter().map(|series| series.labels.clone()).collect();
        if self.disk.overlaps(start, end) {
            labels.extend(self.disk.series(matchers, start, end)?);
            labels.sort_unstable();
            labels.dedup();
        }
        Ok(labels)
    }
}

impl Queryable for MemStore {
    fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<SeriesData>, Error> {
        let memory = self.select_memory(matchers, start, end);
        if !self.disk.overlaps(start, end) {
            return Ok(memory);
        }
        let disk = self.disk.select(matchers, start, end)?;
        Ok(merge_disk_and_memory(disk, memory))
    }

    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, Error> {
        let series = self.labels_in_range(matchers, start, end)?;
        let mut names: Vec<&str> =
            series.iter().flat_map(|labels| labels.iter().map(|label| label.name.as_str())).collect();
        names.sort_unstable();
        names.dedup();
        Ok(names.into_iter().map(str::to_owned).collect())
    }

    fn label_values(&self, name: &str, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, Error> {
        let series = self.labels_in_range(matchers, start, end)?;
        let mut values: Vec<&str> = series.iter().filter_map(|labels| labels.get(name)).collect();
        values.sort_unstable();
        values.dedup();
        Ok(values.into_iter().map(str::to_owned).collect())
    }

    fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Labels>, Error> {
        self.labels_in_range(matchers, start, end)
    }
}

/// Merges what the blocks and memory hold, both sorted by labels, into one
/// list sorted by labels; a series in both gets its samples merged by
/// timestamp, memory's winning a tie.
fn merge_disk_and_memory(disk: Vec<crate::disk::DiskSeries>, memory: Vec<SeriesData>) -> Vec<SeriesData> {
    let mut result = Vec::with_capacity(disk.len().max(memory.len()));
    let mut disk = disk.into_iter().peekable();
    let mut memory = memory.into_iter().peekable();
    loop {
        let order = match (disk.peek(), memory.peek()) {
            (Some(left), Some(right)) => left.labels.cmp(&right.labels),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => break,
        };
        match order {
            std::cmp::Ordering::Less => {
                let Some(series) = disk.next() else { break };
                result.push(SeriesData { labels: series.labels, samples: series.samples, histograms: Vec::new() });
            }
            std::cmp::Ordering::Greater => result.extend(memory.next()),
            std::cmp::Ordering::Equal => {
                let (Some(on_disk), Some(mut in_memory)) = (disk.next(), memory.next()) else { break };
                let mut samples = on_disk.samples;
                samples.append(&mut in_memory.samples);
                crate::disk::merge_sorted(&mut samples);
                in_memory.samples = samples;
                result.push(in_memory);
            }
        }
    }
    result
}
