use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::disk::DiskBlocks;
use crate::{Matcher, Queryable, STALE_NAN};

fn labels(index: usize) -> Labels {
    Labels::from_pairs([("__name__", "block_probe"), ("series", &format!("s{index}"))])
}

/// A store with `series` series of 300 samples each from `first_step` (three chunks and a head), checkpoint cut.
fn store_with(series: usize, first_step: i64) -> MemStore {
    let store = MemStore::new();
    for index in 0..series {
        for step in first_step..first_step + 300 {
            let value = if step == 7 { STALE_NAN } else { step as f64 * 0.5 + index as f64 };
            store.append(&labels(index), step * 15_000, value).expect("append");
        }
    }
    store.cut_for_checkpoint();
    store
}

fn bits(store: &MemStore, index: usize) -> Vec<(i64, u64)> {
    let selected = store.select(&[Matcher::equal("series", format!("s{index}"))], i64::MIN, i64::MAX).expect("select");
    selected.first().map_or_else(Vec::new, |series| {
        series.samples.iter().map(|sample| (sample.timestamp, sample.value.to_bits())).collect()
    })
}

/// Each series' labels and samples, values as bit patterns.
type Contents = Vec<(Labels, Vec<(i64, u64)>)>;

/// Every sample of every series of an open block, in index order.
fn read_all(block: &BlockFile) -> Result<Contents, BlockError> {
    let index = block.load_index()?;
    let mut all = Vec::new();
    for series in (0..index.len()).filter_map(|position| index.series(position)) {
        let mut samples = Vec::new();
        for meta in &series.chunks {
            samples.extend(block.read_chunk(meta)?.iter().map(|(timestamp, value)| (timestamp, value.to_bits())));
        }
        all.push((series.labels.clone(), samples));
    }
    Ok(all)
}

fn serve(store: &MemStore, directory: &Path, sequence: u64) {
    let block = BlockFile::open(&block_path(directory, sequence), sequence).expect("open");
    store.disk().replace(vec![Arc::new(block)], &[]);
}

#[test]
fn a_block_served_from_disk_answers_bit_for_bit_and_memory_lets_go() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = store_with(5, 0);
    let expected: Vec<_> = (0..5).map(|index| bits(&store, index)).collect();
    let meta = write_block(directory.path(), 3, 9, &store).expect("write").expect("a block");
    assert_eq!((meta.series, meta.samples, meta.chunks, meta.wal_segment), (5, 1500, 15, 9));
    assert_eq!((meta.min_time, meta.max_time), (0, 299 * 15_000));
    serve(&store, directory.path(), 3);
    assert_eq!(store.commit_checkpoint(), 1500);
    assert_eq!(store.sample_count(), 0);
    for (index, expected) in expected.iter().enumerate() {
        assert_eq!(&bits(&store, index), expected);
    }
    // A range inside the block reads only what it covers.
    let some = store.select(&[Matcher::equal("series", "s1")], 15_000 * 10, 15_000 * 12).expect("select");
    assert_eq!(some[0].samples.iter().map(|sample| sample.timestamp).collect::<Vec<_>>(), [150_000, 165_000, 180_000]);
    assert_eq!(store.label_values("series", &[], 0, 1).expect("values"), ["s0", "s1", "s2", "s3", "s4"]);
    assert!(store.series(&[], 300 * 15_000, i64::MAX).expect("series").is_empty());
    // The last sample dropped from memory still guards appends.
    assert!(matches!(store.append(&labels(0), 15_000, 1.0), Err(crate::Error::OutOfOrder { .. })));
    store.append(&labels(0), 299 * 15_000, 299.0 * 0.5).expect("the same last sample is a duplicate");
    store.append(&labels(0), 300 * 15_000, 1.0).expect("append after the block");
    assert_eq!(bits(&store, 0).len(), 301);
    assert_eq!(
        list_blocks(directory.path()).expect("list"),
        BlockListing { blocks: vec![(3, block_path(directory.path(), 3))], temporary: vec![] }
    );
    // Nothing left to write.
    store.cut_for_checkpoint();
    let written = write_block(directory.path(), 4, 10, &store).expect("write").expect("the new sample");
    assert_eq!(written.samples, 1);
}

#[test]
fn the_first_format_is_migrated_and_read() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/00000001.block");
    std::fs::copy(&fixture, block_path(directory.path(), 1)).expect("copy fixture");
    let path = block_path(directory.path(), 1);
    assert!(matches!(BlockFile::open(&path, 1), Err(BlockError::FirstFormat { .. })));
    let meta = migrate_v1(directory.path(), 1).expect("migrate");
    assert_eq!((meta.series, meta.samples, meta.wal_segment), (3, 450, 4));
    let block = BlockFile::open(&path, 1).expect("open migrated");
    let all = read_all(&block).expect("read");
    assert_eq!(all.len(), 3);
    for (index, (labels, samples)) in all.iter().enumerate() {
        assert_eq!(labels.get("series"), Some(format!("s{index}").as_str()));
        assert_eq!(samples.len(), 150);
        assert_eq!(samples[7].1, crate::STALE_NAN_BITS);
        assert_eq!(samples[8], (8 * 15_000, (8.0f64 * 0.5 + index as f64).to_bits()));
    }
}

#[test]
fn a_damaged_chunk_fails_only_the_reads_of_its_series() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = store_with(3, 0);
    write_block(directory.path(), 1, 1, &store).expect("write").expect("a block");
    let path = block_path(directory.path(), 1);
    let block = BlockFile::open(&path, 1).expect("open");
    let index = block.load_index().expect("index");
    let position = index.select(&[Matcher::equal("series", "s1")])[0];
    let target = index.series(position).expect("s1");
    let offset = target.chunks[1].offset as usize + 3;
    drop(block);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[offset] ^= 0x10;
    std::fs::write(&path, &bytes).expect("write");
    serve(&store, directory.path(), 1);
    store.commit_checkpoint();
    let error = store.select(&[Matcher::equal("series", "s1")], 0, i64::MAX).expect_err("damaged");
    let message = error.to_string();
    assert!(message.contains("00000001.block") && message.contains("s1") && message.contains("checksum"), "{message}");
    assert_eq!(bits(&store, 0).len(), 300);
    assert_eq!(bits(&store, 2).len(), 300);
    // The damaged chunk's time range alone: the other chunks of s1 still read.
    assert_eq!(
        store.select(&[Matcher::equal("series", "s1")], 0, 15_000 * 100).expect("first chunk")[0].samples.len(),
        101
    );
}

/// Any damage anywhere in a block: opening, loading the index or reading a
/// chunk reports it; nothing panics and no read allocates beyond the file.
fn check_damage(bytes: &[u8]) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = block_path(directory.path(), 1);
    std::fs::write(&path, bytes).expect("write");
    if let Ok(block) = BlockFile::open(&path, 1) {
        let _ = read_all(&block);
    }
}

#[test]
fn every_flipped_bit_is_detected() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = store_with(3, 0);
    write_block(directory.path(), 1, 1, &store).expect("write").expect("a block");
    let path = block_path(directory.path(), 1);
    let original = std::fs::read(&path).expect("read");
    let expected = read_all(&BlockFile::open(&path, 1).expect("open")).expect("read");
    for position in 0..original.len() {
        let mut bytes = original.clone();
        bytes[position] ^= 0x04;
        std::fs::write(&path, &bytes).expect("write");
        let result = BlockFile::open(&path, 1).and_then(|block| read_all(&block));
        // A flip in a chunk's padding bits may leave its samples intact; then the
        // answer must be exactly the original one.
        match result {
            Err(BlockError::Corrupt { .. }) => {}
            Ok(all) => assert_eq!(all, expected, "byte {position} changed the answer undetected"),
            Err(other) => panic!("byte {position}: {other}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Random bytes behind a valid magic never panic the reader.
    #[test]
    fn random_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&body);
        check_damage(&bytes);
    }

    /// Mutated and truncated blocks never panic the reader.
    #[test]
    fn mutated_blocks_never_panic(
        flips in proptest::collection::vec((0usize..8192, 1u8..=255), 1..6),
        cut in proptest::option::of(0usize..8192),
    ) {
        let directory = tempfile::tempdir().expect("temporary directory");
        write_block(directory.path(), 1, 1, &store_with(3, 0)).expect("write").expect("a block");
        let mut bytes = std::fs::read(block_path(directory.path(), 1)).expect("read");
        for (position, flip) in flips {
            let position = position % bytes.len();
            bytes[position] ^= flip;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % bytes.len());
        }
        check_damage(&bytes);
    }
}

fn meta(sequence: u64, min_time: i64, max_time: i64) -> BlockMeta {
    BlockMeta { sequence, min_time, max_time, series: 1, chunks: 1, samples: 1, wal_segment: sequence, bytes: 1 }
}

#[test]
fn the_plan_merges_closed_windows_shortest_range_first() {
    let hour = 3_600_000;
    let ranges = compact::ranges(2 * hour);
    assert_eq!(ranges, [6 * hour, 18 * hour, 54 * hour]);
    // Three 2 h blocks in the first 6 h window, one in the next: the first window is closed.
    let blocks = [meta(1, 0, 2 * hour - 1), meta(2, 2 * hour, 4 * hour - 1), meta(3, 4 * hour, 6 * hour - 1)];
    assert_eq!(compact::plan(&blocks, &ranges), None, "the window is not closed yet");
    let mut blocks = blocks.to_vec();
    blocks.push(meta(4, 6 * hour, 7 * hour));
    assert_eq!(compact::plan(&blocks, &ranges), Some(vec![1, 2, 3]));
    // A 6 h block alone in its window is left; three of them in an 18 h window merge.
    let blocks = [
        meta(5, 0, 6 * hour - 1),
        meta(6, 6 * hour, 12 * hour - 1),
        meta(7, 12 * hour, 18 * hour - 1),
        meta(8, 18 * hour, 19 * hour),
    ];
    assert_eq!(compact::plan(&blocks, &ranges), Some(vec![5, 6, 7]));
    // A block across a window's edge belongs to the window of its newest sample.
    let blocks = [meta(9, 5 * hour, 7 * hour), meta(10, 7 * hour, 8 * hour), meta(11, 16 * hour, 17 * hour)];
    assert_eq!(compact::plan(&blocks, &ranges), Some(vec![9, 10]));
    // Checkpoints cut every 2 h 10 min from an unaligned start: every block
    // ends up in a merged one once its windows close, none stays behind.
    let cut = 2 * hour + 10 * 60_000;
    let mut blocks: Vec<BlockMeta> = (0..40)
        .map(|index| meta(index + 1, 1_000 + index as i64 * cut, 1_000 + (index as i64 + 1) * cut - 1))
        .collect();
    let mut next = 100;
    while let Some(sequences) = compact::plan(&blocks, &ranges) {
        let members: Vec<BlockMeta> =
            blocks.iter().filter(|meta| sequences.contains(&meta.sequence)).cloned().collect();
        blocks.retain(|meta| !sequences.contains(&meta.sequence));
        let (min_time, max_time) = (
            members.iter().map(|meta| meta.min_time).min().expect("members"),
            members.iter().map(|meta| meta.max_time).max().expect("members"),
        );
        blocks.push(meta(next, min_time, max_time));
        next += 1;
    }
    blocks.sort_by_key(|meta| meta.min_time);
    let newest = blocks.last().expect("blocks").max_time;
    let unmerged_closed = blocks
        .iter()
        .filter(|meta| meta.sequence < 100 && (meta.max_time.div_euclid(6 * hour) + 1) * 6 * hour <= newest)
        .count();
    assert!(unmerged_closed <= 1, "{unmerged_closed} first-level blocks left in closed windows: {blocks:?}");
    assert!(blocks.len() <= 6, "{} blocks after compacting 40: {blocks:?}", blocks.len());
    for pair in blocks.windows(2) {
        assert!(pair[0].max_time < pair[1].min_time, "merged blocks overlap: {pair:?}");
    }
}

#[test]
fn compaction_merges_blocks_bit_for_bit_and_overlaps_by_timestamp() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let first = store_with(3, 0);
    write_block(directory.path(), 1, 5, &first).expect("write").expect("a block");
    let second = store_with(4, 300);
    write_block(directory.path(), 2, 7, &second).expect("write").expect("a block");
    // A third block overlapping the second for s0 (as after an out-of-order restart), with other values.
    let third = MemStore::new();
    for step in 450..460i64 {
        third.append(&labels(0), step * 15_000, -1.0).expect("append");
    }
    third.cut_for_checkpoint();
    write_block(directory.path(), 3, 6, &third).expect("write").expect("a block");
    let sources: Vec<BlockFile> = (1..=3)
        .map(|sequence| BlockFile::open(&block_path(directory.path(), sequence), sequence).expect("open"))
        .collect();
    let references: Vec<&BlockFile> = sources.iter().collect();
    let merged = compact::compact(directory.path(), 4, &references).expect("compact");
    assert_eq!((merged.series, merged.wal_segment, merged.min_time, merged.max_time), (4, 7, 0, 599 * 15_000));
    assert_eq!(merged.samples, 3 * 300 + 4 * 300);
    let block = BlockFile::open(&block_path(directory.path(), 4), 4).expect("open merged");
    assert_eq!(block.sources(), [1, 2, 3]);
    let all = read_all(&block).expect("read merged");
    let s0 = &all[0].1;
    assert_eq!(s0.len(), 600);
    assert_eq!(s0[455], (455 * 15_000, (-1.0f64).to_bits()), "the newer block wins a tie");
    assert_eq!(s0[460], (460 * 15_000, (460.0f64 * 0.5).to_bits()));
    assert_eq!(s0[7].1, crate::STALE_NAN_BITS);
    assert_eq!(all[3].1.len(), 300, "s3 is only in the second block");
}

#[test]
fn the_index_cache_stays_within_its_bound() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let disk = DiskBlocks::with_cache_bytes(usize::MAX);
    let mut blocks = Vec::new();
    for sequence in 1..=4u64 {
        let store = store_with(20, (sequence as i64 - 1) * 300);
        write_block(directory.path(), sequence, sequence, &store).expect("write").expect("a block");
        blocks.push(Arc::new(BlockFile::open(&block_path(directory.path(), sequence), sequence).expect("open")));
    }
    disk.replace(blocks, &[]);
    assert_eq!(
        disk.select(&[Matcher::equal("series", "s3")], i64::MIN, i64::MAX).expect("select")[0].samples.len(),
        1200
    );
    let all_four = disk.cache_bytes();
    assert!(all_four > 0);
    // Room for about two indexes: reading all four keeps at most two.
    disk.set_cache_bytes(all_four / 2 + 1);
    assert!(disk.cache_bytes() <= all_four / 2 + 1);
    assert_eq!(
        disk.select(&[Matcher::equal("series", "s3")], i64::MIN, i64::MAX).expect("select")[0].samples.len(),
        1200
    );
    assert!(disk.cache_bytes() <= all_four / 2 + 1);
    // A cache too small for any index still answers.
    disk.set_cache_bytes(0);
    assert_eq!(disk.series(&[], 0, i64::MAX).expect("series").len(), 80);
    assert_eq!(disk.cache_bytes(), 0);
    // Removed blocks are no longer served.
    disk.replace(Vec::new(), &[1, 2, 3]);
    assert_eq!(
        disk.select(&[Matcher::equal("series", "s3")], i64::MIN, i64::MAX).expect("select")[0].samples.len(),
        300
    );
}

/// After a restart the head may take a sample older than a series' last one
/// on disk (the floor is not known then): reads merge both by timestamp and
/// memory wins a tie; label queries see series from either side.
#[test]
fn memory_and_blocks_merge_by_timestamp_and_memory_wins_a_tie() {
    let directory = tempfile::tempdir().expect("temporary directory");
    write_block(directory.path(), 1, 1, &store_with(2, 0)).expect("write").expect("a block");
    let restarted = MemStore::new();
    serve(&restarted, directory.path(), 1);
    restarted.append(&labels(0), 10 * 15_000, -7.0).expect("a tie with the block");
    restarted.append(&labels(0), 20 * 15_000 + 1, -8.0).expect("between two block samples");
    restarted.append(&labels(5), 0, 1.0).expect("a series only in memory");
    let merged = bits(&restarted, 0);
    assert_eq!(merged.len(), 301);
    assert_eq!(merged[10], (10 * 15_000, (-7.0f64).to_bits()));
    assert_eq!(merged[21], (20 * 15_000 + 1, (-8.0f64).to_bits()));
    assert!(merged.windows(2).all(|pair| pair[0].0 < pair[1].0));
    assert_eq!(bits(&restarted, 1).len(), 300);
    assert_eq!(restarted.label_values("series", &[], 0, 0).expect("values"), ["s0", "s1", "s5"]);
    assert_eq!(restarted.label_names(&[], 0, 0).expect("names"), ["__name__", "series"]);
    let everything = restarted.select(&[Matcher::equal("__name__", "block_probe")], 0, 0).expect("select");
    let series: Vec<&str> = everything.iter().filter_map(|series| series.labels.get("series")).collect();
    assert_eq!(series, ["s0", "s1", "s5"]);
}
