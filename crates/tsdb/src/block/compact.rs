//! Compaction: merging blocks into blocks over longer time ranges, as
//! Prometheus's leveled compactor does (2 h blocks into 6 h, 6 h into 18 h…),
//! so a query over a long range opens few indexes and retention deletes whole
//! large blocks.
//!
//! [`plan`] is pure: given the blocks' metadata and the ranges, it names the
//! blocks to merge next. [`compact`] writes the merged block under a new
//! sequence number, listing the blocks it replaces in its header; deleting
//! those is the caller's step, after the merged block is durable and served.
//! A crash before the rename leaves a temporary file (deleted at start) and
//! the sources intact; a crash after it leaves both, and the start deletes
//! the sources the merged block names.
//!
//! Series present in several sources have their chunks copied as they are
//! when they do not overlap in time; overlapping ones (a series appended out
//! of order across a restart) are decoded, merged by timestamp (the newer
//! block wins a tie) and encoded again.

use std::collections::BTreeMap;
use std::path::Path;

use super::{BlockError, BlockFile, BlockMeta, BlockWriter, ChunkMeta, MAX_SOURCES};
use crate::chunk::{Chunk, ChunkEncoder};
use crate::{CHUNK_MAX_SAMPLES, Labels};

/// The compaction ranges for blocks cut every `block_interval_ms`: three, nine
/// and twenty-seven times it (2 h blocks: 6 h, 18 h, 54 h), as Prometheus's
/// defaults grow by a factor of three.
pub fn ranges(block_interval_ms: i64) -> Vec<i64> {
    let interval = block_interval_ms.max(1);
    [3, 9, 27].iter().filter_map(|factor| interval.checked_mul(*factor)).collect()
}

/// The sequences of the blocks to merge next, or `None`. For each range,
/// shortest first, blocks shorter than the range are grouped by the aligned
/// window `[k * range, (k + 1) * range)` that holds their newest sample; the
/// first window with two or more blocks that is closed (the newest block ends
/// after it) is chosen. A checkpoint cuts a block when its samples span the
/// block interval, not at aligned times, so blocks straddle window edges; a
/// rule that wanted each block wholly inside a window would leave every
/// straddling block out of compaction for good. The merged block may then
/// start before its window, by less than one block.
pub fn plan(blocks: &[BlockMeta], ranges: &[i64]) -> Option<Vec<u64>> {
    let newest = blocks.iter().map(|meta| meta.max_time).max()?;
    for &range in ranges {
        if range <= 0 {
            continue;
        }
        let mut windows: BTreeMap<i64, Vec<&BlockMeta>> = BTreeMap::new();
        for meta in blocks {
            if meta.max_time.saturating_sub(meta.min_time) < range {
                windows.entry(meta.max_time.div_euclid(range)).or_default().push(meta);
            }
        }
        for (window, members) in windows {
            let window_end = window.saturating_add(1).saturating_mul(range);
            if members.len() >= 2 && newest >= window_end {
                let mut sequences: Vec<u64> = members.iter().map(|meta| meta.sequence).collect();
                sequences.sort_unstable();
                sequences.truncate(MAX_SOURCES);
                return Some(sequences);
            }
        }
    }
    None
}

/// Merges `sources` into block `sequence` in `directory` (durably, under its
/// final name) and returns it. Sources are given oldest first. Any damage met
/// in a source fails the compaction, leaving nothing behind.
pub fn compact(directory: &Path, sequence: u64, sources: &[&BlockFile]) -> Result<BlockMeta, BlockError> {
    let indexes = sources.iter().map(|source| source.load_index()).collect::<Result<Vec<_>, _>>()?;
    let mut by_labels: BTreeMap<Labels, Vec<(usize, Vec<ChunkMeta>)>> = BTreeMap::new();
    for (source, index) in indexes.iter().enumerate() {
        for position in 0..index.len() {
            let series = index.series(position).ok_or_else(|| {
                super::corrupt(sources[source].path(), format!("index entry {position} does not decode"))
            })?;
            by_labels.entry(series.labels).or_default().push((source, series.chunks));
        }
    }
    let wal_segment = sources.iter().map(|source| source.meta().wal_segment).max().unwrap_or(0);
    let sequences: Vec<u64> = sources.iter().map(|source| source.meta().sequence).collect();
    let mut writer = BlockWriter::create(directory, sequence, wal_segment, &sequences)?;
    for (labels, places) in by_labels {
        let mut chunks: Vec<Chunk> = Vec::new();
        for (source, metas) in places {
            for meta in &metas {
                chunks.push(sources[source].read_chunk(meta)?);
            }
        }
        if chunks.windows(2).any(|pair| pair[1].min_time() <= pair[0].max_time()) {
            chunks = merge_overlapping(&chunks);
        }
        writer.add_series(&labels, &chunks)?;
    }
    let path = super::block_path(directory, sequence);
    writer.finish()?.ok_or_else(|| super::corrupt(&path, "the blocks to compact hold no series"))
}

/// Decodes `chunks` (given in source order, oldest source first), keeps one
/// sample per timestamp (the later chunk's) and encodes them again.
fn merge_overlapping(chunks: &[Chunk]) -> Vec<Chunk> {
    let mut samples: Vec<(i64, u64)> =
        chunks.iter().flat_map(|chunk| chunk.iter().map(|(timestamp, value)| (timestamp, value.to_bits()))).collect();
    // Stable: for equal timestamps the later chunk's sample comes last and is kept.
    samples.sort_by_key(|&(timestamp, _)| timestamp);
    let mut merged: Vec<(i64, u64)> = Vec::with_capacity(samples.len());
    for sample in samples {
        match merged.last_mut() {
            Some(last) if last.0 == sample.0 => *last = sample,
            _ => merged.push(sample),
        }
    }
    let mut result = Vec::new();
    let mut encoder = ChunkEncoder::new();
    for (timestamp, bits) in merged {
        if encoder.len() >= CHUNK_MAX_SAMPLES || encoder.is_full() {
            result.push(std::mem::take(&mut encoder).seal());
        }
        encoder.append(timestamp, f64::from_bits(bits));
    }
    if !encoder.is_empty() {
        result.push(encoder.seal());
    }
    result
}
