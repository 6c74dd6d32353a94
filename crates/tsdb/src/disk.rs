//! The blocks a [`MemStore`](crate::MemStore) serves from disk, and the bounded
//! cache of their decoded indexes.
//!
//! Key types: [`DiskBlocks`] (the set of open blocks, swapped whole when a
//! checkpoint adds one or compaction and retention remove some) and
//! [`DiskSeries`] (what a query read from them).
//!
//! Nothing of a block is held in memory but its open file and header until a
//! query touches its time range; then its index is read, checked and kept in
//! an LRU cache bounded by bytes ([`DEFAULT_INDEX_CACHE_BYTES`] unless
//! configured) as its raw entries plus a postings index (about 18 MiB for
//! 100k series), and only the entries of the matching series and their chunks
//! that overlap the range are decoded. Resident memory for historical data is
//! therefore the cache's bound plus what one query reads, however many blocks
//! retention keeps. An index larger than the whole cache is used for the query
//! that loaded it and not kept.
//!
//! A damaged index or chunk fails the query that read it with an error naming
//! the block, the series where known, and why; other queries and the process
//! go on.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::block::{BlockError, BlockFile, BlockIndex, IndexedSeries};
use crate::{Error, Labels, Matcher, Sample};

/// The default bound of the index cache: 256 MiB.
pub const DEFAULT_INDEX_CACHE_BYTES: usize = 256 << 20;

/// One series as the blocks hold it in a time range.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskSeries {
    pub labels: Labels,
    /// Sorted by timestamp, one sample per timestamp.
    pub samples: Vec<Sample>,
}

struct CachedIndex {
    index: Arc<BlockIndex>,
    bytes: usize,
    last_used: u64,
}

#[derive(Default)]
struct IndexCache {
    capacity: usize,
    used: usize,
    clock: u64,
    /// By block sequence.
    entries: HashMap<u64, CachedIndex>,
}

impl IndexCache {
    fn get(&mut self, sequence: u64) -> Option<Arc<BlockIndex>> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(&sequence).map(|entry| {
            entry.last_used = clock;
            Arc::clone(&entry.index)
        })
    }

    fn insert(&mut self, sequence: u64, index: Arc<BlockIndex>) {
        let bytes = index.memory_bytes();
        if bytes > self.capacity {
            return;
        }
        self.clock += 1;
        if let Some(previous) = self.entries.insert(sequence, CachedIndex { index, bytes, last_used: self.clock }) {
            self.used -= previous.bytes;
        }
        self.used += bytes;
        while self.used > self.capacity {
            let Some((&oldest, _)) = self.entries.iter().min_by_key(|(_, entry)| entry.last_used) else { break };
            if let Some(evicted) = self.entries.remove(&oldest) {
                self.used -= evicted.bytes;
            }
        }
    }

    fn remove(&mut self, sequence: u64) {
        if let Some(entry) = self.entries.remove(&sequence) {
            self.used -= entry.bytes;
        }
    }
}

/// A block and the series in it a query matched.
type MatchingInBlock = (Arc<BlockFile>, Vec<IndexedSeries>);

/// The open blocks, ordered by time, and the index cache.
pub struct DiskBlocks {
    blocks: RwLock<Arc<Vec<Arc<BlockFile>>>>,
    cache: Mutex<IndexCache>,
}

impl Default for DiskBlocks {
    fn default() -> Self {
        Self::with_cache_bytes(DEFAULT_INDEX_CACHE_BYTES)
    }
}

impl DiskBlocks {
    /// An empty set whose index cache holds at most `bytes`.
    pub fn with_cache_bytes(bytes: usize) -> Self {
        Self { blocks: RwLock::default(), cache: Mutex::new(IndexCache { capacity: bytes, ..IndexCache::default() }) }
    }

    /// Changes the cache bound, evicting down to it.
    pub fn set_cache_bytes(&self, bytes: usize) {
        let mut cache = self.cache.lock();
        cache.capacity = bytes;
        let held: Vec<(u64, Arc<BlockIndex>)> =
            cache.entries.iter().map(|(&sequence, entry)| (sequence, Arc::clone(&entry.index))).collect();
        for (sequence, index) in held {
            cache.remove(sequence);
            cache.insert(sequence, index);
        }
    }

    /// Bytes the cached indexes hold.
    pub fn cache_bytes(&self) -> usize {
        self.cache.lock().used
    }

    /// The blocks served, ordered by minimum time.
    pub fn blocks(&self) -> Arc<Vec<Arc<BlockFile>>> {
        Arc::clone(&self.blocks.read())
    }

    /// Serves `added` and stops serving the blocks with sequences in `removed`,
    /// in one step: a query sees either the old set or the new one.
    pub fn replace(&self, added: Vec<Arc<BlockFile>>, removed: &[u64]) {
        let mut blocks = self.blocks.write();
        let mut next: Vec<Arc<BlockFile>> =
            blocks.iter().filter(|block| !removed.contains(&block.meta().sequence)).cloned().collect();
        next.extend(added);
        next.sort_by_key(|block| (block.meta().min_time, block.meta().sequence));
        *blocks = Arc::new(next);
        drop(blocks);
        let mut cache = self.cache.lock();
        for &sequence in removed {
            cache.remove(sequence);
        }
    }

    /// Whether any block holds samples in `[start, end]`.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.blocks.read().iter().any(|block| block.meta().min_time <= end && block.meta().max_time >= start)
    }

    fn index(&self, block: &BlockFile) -> Result<Arc<BlockIndex>, Error> {
        let sequence = block.meta().sequence;
        if let Some(index) = self.cache.lock().get(sequence) {
            return Ok(index);
        }
        let index = Arc::new(block.load_index()?);
        self.cache.lock().insert(sequence, Arc::clone(&index));
        Ok(index)
    }

    /// The blocks overlapping `[start, end]` with the matching series of each
    /// that have a chunk overlapping it.
    fn matching(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<MatchingInBlock>, Error> {
        let blocks = self.blocks();
        let mut found = Vec::new();
        for block in blocks.iter() {
            if block.meta().min_time > end || block.meta().max_time < start || start > end {
                continue;
            }
            let index = self.index(block)?;
            let mut matched = Vec::new();
            for position in index.select(matchers) {
                let series = index.series(position).ok_or_else(|| {
                    Error::Block(BlockError::Corrupt {
                        path: block.path().to_owned(),
                        reason: format!("index entry {position} does not decode"),
                    })
                })?;
                if overlapping(&series, start, end).next().is_some() {
                    matched.push(series);
                }
            }
            found.push((Arc::clone(block), matched));
        }
        Ok(found)
    }

    /// The samples in `[start, end]` of every series matching `matchers`, sorted by labels.
    pub fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<DiskSeries>, Error> {
        let mut by_labels: HashMap<Labels, Vec<Sample>> = HashMap::new();
        for (block, matched) in self.matching(matchers, start, end)? {
            for series in matched {
                let samples = by_labels.entry(series.labels.clone()).or_default();
                read_samples(&block, &series, start, end, samples)?;
            }
        }
        let mut result: Vec<DiskSeries> = by_labels
            .into_iter()
            .filter(|(_, samples)| !samples.is_empty())
            .map(|(labels, mut samples)| {
                merge_sorted(&mut samples);
                DiskSeries { labels, samples }
            })
            .collect();
        result.sort_unstable_by(|left, right| left.labels.cmp(&right.labels));
        Ok(result)
    }

    /// The label sets of the matching series with a sample in `[start, end]`, unsorted, possibly repeated.
    pub fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Labels>, Error> {
        let mut labels = Vec::new();
        for (block, matched) in self.matching(matchers, start, end)? {
            for series in matched {
                if has_sample_in_range(&block, &series, start, end)? {
                    labels.push(series.labels);
                }
            }
        }
        Ok(labels)
    }
}

fn overlapping(series: &IndexedSeries, start: i64, end: i64) -> impl Iterator<Item = &crate::block::ChunkMeta> {
    let first = series.chunks.partition_point(|chunk| chunk.max_time < start);
    series.chunks[first..].iter().take_while(move |chunk| chunk.min_time <= end)
}

fn series_error(series: &IndexedSeries, error: BlockError) -> Error {
    match error {
        BlockError::Corrupt { path, reason } => {
            Error::Block(BlockError::Corrupt { path, reason: format!("series {}: {reason}", series.labels) })
        }
        other => Error::Block(other),
    }
}

fn read_samples(
    block: &BlockFile,
    series: &IndexedSeries,
    start: i64,
    end: i64,
    samples: &mut Vec<Sample>,
) -> Result<(), Error> {
    for meta in overlapping(series, start, end) {
        let chunk = block.read_chunk(meta).map_err(|error| series_error(series, error))?;
        samples.extend(
            chunk
                .iter()
                .filter(|&(timestamp, _)| start <= timestamp && timestamp <= end)
                .map(|(timestamp, value)| Sample { timestamp, value }),
        );
    }
    Ok(())
}

fn has_sample_in_range(block: &BlockFile, series: &IndexedSeries, start: i64, end: i64) -> Result<bool, Error> {
    for meta in overlapping(series, start, end) {
        if start <= meta.min_time && meta.max_time <= end {
            return Ok(true);
        }
        let chunk = block.read_chunk(meta).map_err(|error| series_error(series, error))?;
        if chunk.iter().any(|(timestamp, _)| start <= timestamp && timestamp <= end) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Sorts samples gathered from several sources (given oldest source first) by
/// timestamp, keeping the last one given for a repeated timestamp.
pub(crate) fn merge_sorted(samples: &mut Vec<Sample>) {
    if samples.windows(2).all(|pair| pair[0].timestamp < pair[1].timestamp) {
        return;
    }
    samples.sort_by_key(|sample| sample.timestamp);
    let mut merged: Vec<Sample> = Vec::with_capacity(samples.len());
    for sample in samples.drain(..) {
        match merged.last_mut() {
            Some(last) if last.timestamp == sample.timestamp => *last = sample,
            _ => merged.push(sample),
        }
    }
    *samples = merged;
}
