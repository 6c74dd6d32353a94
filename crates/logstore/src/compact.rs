//! Compaction of log blocks: merging adjacent closed blocks into blocks over
//! longer time ranges, as the metric store does (`tsdb::block::compact`),
//! so the number of block files stops growing with every checkpoint and
//! retention deletes whole large blocks.
//!
//! [`plan`] is pure: given the blocks' metadata and the ranges (three, nine
//! and twenty-seven times the checkpoint interval, the metric store's
//! factors), it names the blocks to merge next. Two rules differ from the
//! metric planner, for reasons of log data:
//! - A block belongs to the aligned window `[k * range, (k + 1) * range)`
//!   that holds its newest entry (and must span less than `range`), not only
//!   to one that holds it whole: pushed lines arrive seconds late and
//!   checkpoints are not aligned to windows, so the block cut just after a
//!   window's start almost always begins a little before it and would
//!   otherwise never be merged.
//! - Only a run of blocks that are consecutive in block order (by
//!   [`BlockMeta::first_sequence`]) among the blocks overlapping the window
//!   is merged: entries with equal timestamps are read in push order, which
//!   across blocks is block order, and a merged block takes the place of its
//!   run in that order.
//!
//! A window is closed once the newest block ends after it. [`merge_chunks`]
//! re-chunks one stream's chunks from the merged blocks: entries in timestamp
//! order, equal timestamps in the order the chunks were given, into chunks of
//! the store's target size. Writing, serving and deleting is the store's
//! part (`LogStore::compact`).

use std::collections::BTreeMap;

use crate::block::BlockMeta;
use crate::chunk::{Chunk, ChunkError};
use crate::push::PushEntry;
use crate::store::entry_bytes;

/// Most blocks one compacted block may replace.
pub const MAX_SOURCES: usize = 4096;

/// The compaction ranges for blocks checkpointed every `interval_ns`: three,
/// nine and twenty-seven times it, the metric store's ranges.
pub fn ranges(interval_ns: i64) -> Vec<i64> {
    tsdb::block::compact::ranges(interval_ns)
}

/// The sequences of the blocks to merge next, in block order, or `None`.
/// For each range, shortest first, the first closed window with a run of two
/// or more mergeable blocks is chosen (see the module documentation).
pub fn plan(blocks: &[BlockMeta], ranges: &[i64]) -> Option<Vec<u64>> {
    let newest = blocks.iter().map(|meta| meta.max_ts).max()?;
    let mut order: Vec<&BlockMeta> = blocks.iter().collect();
    order.sort_by_key(|meta| (meta.first_sequence, meta.sequence));
    for &range in ranges.iter().filter(|range| **range > 0) {
        let mut windows: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
        for meta in blocks {
            if meta.max_ts.saturating_sub(meta.min_ts) < range {
                windows.entry(meta.max_ts.div_euclid(range)).or_default().push(meta.sequence);
            }
        }
        for (window, members) in windows {
            let window_end = window.saturating_add(1).saturating_mul(range);
            if members.len() < 2 || newest < window_end {
                continue;
            }
            let span_min =
                blocks.iter().filter(|meta| members.contains(&meta.sequence)).map(|meta| meta.min_ts).min()?;
            let mut run: Vec<u64> = Vec::new();
            for meta in order.iter().filter(|meta| meta.min_ts < window_end && meta.max_ts >= span_min) {
                if members.contains(&meta.sequence) {
                    run.push(meta.sequence);
                    if run.len() == MAX_SOURCES {
                        return Some(run);
                    }
                } else if run.len() >= 2 {
                    return Some(run);
                } else {
                    run.clear();
                }
            }
            if run.len() >= 2 {
                return Some(run);
            }
        }
    }
    None
}

/// Re-chunks one stream's `chunks` (in the order the stream reads them) into
/// chunks of about `target_bytes` uncompressed: entries in timestamp order,
/// equal timestamps in the order of `chunks`, none lost or added. Chunks come
/// back in memory with id 0 and no block. Fails on the first chunk that does
/// not read or decode.
pub(crate) fn merge_chunks(chunks: &[Chunk], target_bytes: usize) -> Result<Vec<Chunk>, ChunkError> {
    // Chunks whose time ranges overlap (or touch) form a cluster; clusters
    // are disjoint in time, so sorting within each is sorting the whole
    // while only one cluster is decoded at a time.
    let mut by_start: Vec<usize> = (0..chunks.len()).collect();
    by_start.sort_by_key(|&index| (chunks[index].min_ts, index));
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    let mut cluster_max = i64::MIN;
    for index in by_start {
        let chunk = &chunks[index];
        match clusters.last_mut() {
            Some(cluster) if chunk.min_ts <= cluster_max => {
                cluster.push(index);
                cluster_max = cluster_max.max(chunk.max_ts);
            }
            _ => {
                clusters.push(vec![index]);
                cluster_max = chunk.max_ts;
            }
        }
    }
    let mut merged = Vec::new();
    let mut pending: Vec<PushEntry> = Vec::new();
    let mut pending_bytes = 0usize;
    for mut cluster in clusters {
        cluster.sort_unstable();
        let mut entries = Vec::new();
        for &index in &cluster {
            entries.extend(chunks[index].decode_entries()?);
        }
        if cluster.len() > 1 {
            entries.sort_by_key(|entry| entry.timestamp_ns);
        }
        for entry in entries {
            pending_bytes += entry_bytes(&entry);
            pending.push(entry);
            if pending_bytes >= target_bytes {
                merged.extend(Chunk::seal(0, &std::mem::take(&mut pending)));
                pending_bytes = 0;
            }
        }
    }
    merged.extend(Chunk::seal(0, &pending));
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000_000;

    fn meta(sequence: u64, first_sequence: u64, min_ts: i64, max_ts: i64) -> BlockMeta {
        BlockMeta {
            sequence,
            wal_cut: sequence,
            first_sequence,
            sources: Vec::new(),
            min_ts,
            max_ts,
            streams: 1,
            chunks: 1,
            entries: 1,
            bytes: 100,
        }
    }

    #[test]
    fn closed_windows_merge_and_open_ones_wait() {
        let ranges = ranges(2 * HOUR);
        assert_eq!(ranges, vec![6 * HOUR, 18 * HOUR, 54 * HOUR]);
        // Three checkpoints inside [0 h, 6 h), the first starting a little before it.
        let mut blocks =
            vec![meta(1, 1, -HOUR / 100, 2 * HOUR), meta(2, 2, 2 * HOUR, 4 * HOUR), meta(3, 3, 4 * HOUR, 6 * HOUR - 1)];
        assert_eq!(plan(&blocks, &ranges), None, "the window is still open");
        blocks.push(meta(4, 4, 6 * HOUR, 7 * HOUR));
        assert_eq!(plan(&blocks, &ranges), Some(vec![1, 2, 3]));
        // Merged, it waits for its 18 h window to close.
        let merged = meta(5, 1, -HOUR / 100, 6 * HOUR - 1);
        assert_eq!(plan(&[merged.clone(), meta(4, 4, 6 * HOUR, 7 * HOUR)], &ranges), None);
        let later = [merged, meta(4, 4, 6 * HOUR, 12 * HOUR - 1), meta(6, 6, 12 * HOUR, 18 * HOUR)];
        assert_eq!(plan(&later, &ranges), Some(vec![5, 4]));
    }

    #[test]
    fn a_block_spanning_more_than_the_range_is_left_alone() {
        let blocks = [meta(1, 1, 0, HOUR), meta(2, 2, -30 * HOUR, 2 * HOUR), meta(3, 3, 3 * HOUR, 7 * HOUR)];
        assert_eq!(plan(&blocks, &[6 * HOUR]), None);
    }

    #[test]
    fn only_runs_consecutive_in_block_order_merge() {
        // Block 2 holds late entries overlapping the window but ends after it:
        // merging 1 and 3 around it would reorder equal timestamps.
        let blocks = [meta(1, 1, 0, HOUR), meta(2, 2, HOUR / 2, 7 * HOUR), meta(3, 3, 2 * HOUR, 3 * HOUR)];
        assert_eq!(plan(&[blocks[0].clone(), blocks[1].clone(), blocks[2].clone()], &[6 * HOUR]), None);
        let with_fourth = [blocks[0].clone(), blocks[1].clone(), blocks[2].clone(), meta(4, 4, 4 * HOUR, 5 * HOUR)];
        assert_eq!(plan(&with_fourth, &[6 * HOUR]), Some(vec![3, 4]));
        // A block that does not overlap the window does not break a run.
        let apart = [meta(1, 1, 0, HOUR), meta(2, 2, 20 * HOUR, 21 * HOUR), meta(3, 3, 2 * HOUR, 3 * HOUR)];
        assert_eq!(plan(&apart, &[6 * HOUR]), Some(vec![1, 3]));
    }

    fn entry(timestamp_ns: i64, line: &str) -> PushEntry {
        PushEntry { timestamp_ns, line: line.to_owned(), metadata: Vec::new() }
    }

    fn lines(chunks: &[Chunk]) -> Vec<(i64, String)> {
        chunks
            .iter()
            .flat_map(|chunk| chunk.decode_entries().expect("decodes"))
            .map(|entry| (entry.timestamp_ns, entry.line))
            .collect()
    }

    #[test]
    fn merged_chunks_keep_timestamp_then_chunk_order() {
        let chunks = [
            Chunk::seal(1, &[entry(10, "a"), entry(20, "b")]).unwrap(),
            Chunk::seal(2, &[entry(30, "c")]).unwrap(),
            Chunk::seal(3, &[entry(5, "early"), entry(20, "late b")]).unwrap(),
        ];
        let merged = merge_chunks(&chunks, 1 << 20).unwrap();
        assert_eq!(merged.len(), 1);
        let expected = [(5, "early"), (10, "a"), (20, "b"), (20, "late b"), (30, "c")];
        assert_eq!(lines(&merged), expected.map(|(time, line)| (time, line.to_owned())));
        // Small targets cut more chunks, each in order and within its range.
        let small = merge_chunks(&chunks, 1).unwrap();
        assert_eq!(small.len(), 5);
        assert!(small.windows(2).all(|pair| pair[0].max_ts <= pair[1].min_ts));
        assert_eq!(lines(&small), lines(&merged));
    }
}
