//! Compaction of log blocks: the same answers before and after (random
//! streams and entries), restarts that read the compacted blocks, a crash
//! before and after the rename, a damaged source, and retention of whole
//! compacted blocks.

use std::fs;
use std::path::Path;
use std::time::Duration;

use logql::LogSource;
use logstore::{Error, FsyncPolicy, LogStore, LogStoreOptions, PushEntry};

use crate::{NOW, entry, equal, open, select_all, stream};

const HOUR: i64 = 3_600_000_000_000;
/// Blocks are checkpointed hourly in these tests: windows of 3, 9 and 27 hours.
fn ranges() -> Vec<i64> {
    logstore::compact::ranges(HOUR)
}

fn options() -> LogStoreOptions {
    LogStoreOptions { chunk_target_bytes: 400, fsync: FsyncPolicy::Never, ..LogStoreOptions::default() }
}

/// The first hour of the aligned 27-hour window before `NOW`, so every test's
/// blocks fall in windows of known closure.
fn base() -> i64 {
    (NOW - 2 * 27 * HOUR).div_euclid(27 * HOUR) * 27 * HOUR
}

/// Appends `count` entries per job for hour `hour` (from [`base`]) and checkpoints them into a block.
fn hourly_block(store: &LogStore, hour: i64, jobs: &[&str], count: i64) {
    for job in jobs {
        let entries: Vec<PushEntry> = (0..count)
            .map(|index| {
                entry(base() + hour * HOUR + index * (HOUR / count), &format!("{job} hour {hour} line {index}"))
            })
            .collect();
        store.append_at(vec![stream(&[("job", job)], entries)], NOW).unwrap();
    }
    store.checkpoint().unwrap().expect("a block");
}

fn block_files(directory: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(directory.join("blocks"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn closed_windows_compact_and_a_restart_reads_the_merged_blocks() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) = open(directory.path(), options());
    for hour in 0..4 {
        hourly_block(&store, hour, &["a", "b"], 20);
    }
    let before = select_all(&store, &[]);
    assert_eq!(before.len(), 160);
    assert_eq!(block_files(directory.path()).len(), 4);

    let report = store.compact(&ranges()).unwrap();
    // Hours 0-2 form the closed window [0 h, 3 h); hour 3's window is still open.
    assert_eq!(report.merged.len(), 1, "{report:?}");
    let (merged, sources) = &report.merged[0];
    assert_eq!(sources, &vec![1, 2, 3]);
    assert_eq!((merged.sequence, merged.first_sequence, merged.entries, merged.streams), (5, 1, 120, 2));
    assert_eq!(merged.sources, vec![1, 2, 3]);
    assert_eq!(block_files(directory.path()), vec!["00000004.block", "00000005.block"]);
    assert_eq!(select_all(&store, &[]), before);
    assert!(store.compact(&ranges()).unwrap().merged.is_empty(), "nothing more is closed");
    drop(store);

    let (store, replay) = open(directory.path(), options());
    assert_eq!((replay.blocks_loaded, replay.block_entries, replay.wal_entries), (2, 160, 0));
    assert!(replay.blocks_superseded.is_empty());
    assert_eq!(select_all(&store, &[]), before);
    assert_eq!(store.stats().entries, 160);
    // Later blocks close the 9-hour window: the merged block merges again.
    for hour in 4..10 {
        hourly_block(&store, hour, &["a"], 5);
    }
    let report = store.compact(&ranges()).unwrap();
    let sources: Vec<Vec<u64>> = report.merged.iter().map(|(_, sources)| sources.clone()).collect();
    // Blocks 6-11 hold hours 4-9: [3 h, 6 h) and [6 h, 9 h) close, then [0 h, 9 h) of merged blocks.
    assert_eq!(sources, vec![vec![4, 6, 7], vec![8, 9, 10], vec![5, 12, 13]], "{report:?}");
    assert_eq!(block_files(directory.path()), vec!["00000011.block", "00000014.block"]);
    assert_eq!(select_all(&store, &[]).len(), 190);
}

type Answers = Vec<(tsdb::Labels, i64, String)>;

/// Four hourly blocks compacted (hours 0-2 into block 5): the data directory
/// after, a copy of it taken just before, and the answers before.
fn compacted_with_a_copy_from_before() -> (tempfile::TempDir, tempfile::TempDir, Answers) {
    let directory = tempfile::tempdir().unwrap();
    let saved = tempfile::tempdir().unwrap();
    let (store, _) = open(directory.path(), options());
    for hour in 0..4 {
        hourly_block(&store, hour, &["a", "b"], 20);
    }
    let before = select_all(&store, &[]);
    store.sync().unwrap();
    copy_tree(directory.path(), saved.path());
    let report = store.compact(&ranges()).unwrap();
    assert_eq!(report.merged.len(), 1);
    (directory, saved, before)
}

#[test]
fn a_crash_before_the_rename_leaves_the_sources_and_a_temporary_file() {
    let (directory, saved, before) = compacted_with_a_copy_from_before();
    // The state of a crash before the rename: sources intact, the merged block half written.
    let merged = fs::read(directory.path().join("blocks/00000005.block")).unwrap();
    fs::write(saved.path().join("blocks/00000005.block.tmp"), &merged[..merged.len() / 2]).unwrap();

    let (store, replay) = open(saved.path(), options());
    assert_eq!(replay.temporary_removed.len(), 1, "{replay:?}");
    assert_eq!((replay.blocks_loaded, replay.block_entries), (4, 160));
    assert_eq!(select_all(&store, &[]), before);
    // The compaction runs again from the same sources.
    assert_eq!(store.compact(&ranges()).unwrap().merged.len(), 1);
    assert_eq!(select_all(&store, &[]), before);
}

#[test]
fn a_crash_after_the_rename_deletes_the_sources_at_start() {
    let (directory, saved, before) = compacted_with_a_copy_from_before();
    // The state of a crash after the rename: the merged block beside its sources.
    fs::copy(directory.path().join("blocks/00000005.block"), saved.path().join("blocks/00000005.block")).unwrap();

    let (store, replay) = open(saved.path(), options());
    assert_eq!(replay.blocks_superseded.len(), 3, "{replay:?}");
    assert_eq!((replay.blocks_loaded, replay.block_entries), (2, 160));
    assert_eq!(select_all(&store, &[]), before, "nothing lost, nothing twice");
    assert_eq!(block_files(saved.path()), vec!["00000004.block", "00000005.block"]);
    // A new block does not reuse the merged block's sequence.
    hourly_block(&store, 4, &["a"], 1);
    assert!(block_files(saved.path()).contains(&"00000006.block".to_owned()));
}

#[test]
fn a_damaged_source_fails_the_compaction_and_changes_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) = open(directory.path(), options());
    for hour in 0..4 {
        hourly_block(&store, hour, &["a", "b"], 20);
    }
    let files = block_files(directory.path());
    let blocks = store.blocks();
    // Damage the chunks of block 2 under the open store (its header and stream "a" come first).
    let path = directory.path().join("blocks/00000002.block");
    let mut bytes = fs::read(&path).unwrap();
    let length = bytes.len();
    for byte in &mut bytes[length / 4..length / 2] {
        *byte ^= 0x21;
    }
    fs::write(&path, &bytes).unwrap();

    let error = store.compact(&ranges()).expect_err("a damaged source");
    let message = error.to_string();
    assert!(matches!(error, Error::Compaction { .. }), "{message}");
    assert!(
        message.contains(&path.display().to_string()) && message.contains("checksum mismatch"),
        "the error names the block and why: {message}"
    );
    assert_eq!(block_files(directory.path()), files, "no block written or removed");
    assert_eq!(store.blocks(), blocks);
    assert_eq!(fs::read(&path).unwrap(), bytes);
    // The undamaged blocks still answer, and a new block takes the next sequence.
    assert_eq!(
        select_all(&store, &[equal("job", "b")]).iter().filter(|(_, time, _)| *time >= base() + 2 * HOUR).count(),
        40
    );
    hourly_block(&store, 5, &["a"], 1);
    assert!(block_files(directory.path()).contains(&"00000005.block".to_owned()));
}

#[test]
fn retention_deletes_a_compacted_block_only_when_it_is_wholly_out_of_retention() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) =
        open(directory.path(), LogStoreOptions { retention_time: Duration::from_secs(100 * 3600), ..options() });
    for hour in 0..4 {
        hourly_block(&store, hour, &["a"], 10);
    }
    let report = store.compact(&ranges()).unwrap();
    let merged = report.merged[0].0.clone();
    // Hours 0 and 1 are out of retention, hour 2 is not: the block stays, its old entries go from memory.
    let report = store.maintain(base() + 100 * HOUR + 2 * HOUR).unwrap();
    assert!(report.blocks_removed_by_time.is_empty(), "{report:?}");
    assert!(directory.path().join("blocks/00000005.block").exists());
    // Memory drops whole chunks (as Loki's retention does): a merged chunk
    // reaching into hour 2 keeps its hour-1 entries; hour 0 is gone.
    let left: Vec<i64> = select_all(&store, &[]).into_iter().map(|(_, time, _)| time).collect();
    assert_eq!(left.iter().filter(|time| **time >= base() + 2 * HOUR).count(), 20, "hours 2 and 3 are kept");
    assert!(left.iter().all(|time| *time >= base() + HOUR), "{left:?}");
    // Once its newest entry is out of retention, the whole block goes.
    let report = store.maintain(merged.max_ts + 100 * HOUR + 1).unwrap();
    assert_eq!(report.blocks_removed_by_time, vec![merged.sequence]);
    assert!(!directory.path().join("blocks/00000005.block").exists());
    assert_eq!(block_files(directory.path()), vec!["00000004.block"]);
}

#[test]
fn compaction_runs_beside_appends_and_queries() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) = open(directory.path(), options());
    for hour in 0..10 {
        hourly_block(&store, hour, &["a", "b"], 20);
    }
    let store = std::sync::Arc::new(store);
    let writer = {
        let store = std::sync::Arc::clone(&store);
        std::thread::spawn(move || {
            for round in 0..200i64 {
                // Late entries into the windows being merged, and repeats of stored ones (dropped as duplicates).
                let late = entry(base() + (round % 9) * HOUR + 7, &format!("late {round}"));
                let repeat = entry(base() + (round % 9) * HOUR, &format!("a hour {} line 0", round % 9));
                let stats = store.append_at(vec![stream(&[("job", "a")], vec![late, repeat])], NOW).unwrap();
                assert_eq!((stats.entries_appended, stats.duplicates), (1, 1), "round {round}");
            }
        })
    };
    let reader = {
        let store = std::sync::Arc::clone(&store);
        std::thread::spawn(move || {
            for _ in 0..20 {
                let mut previous = i64::MIN;
                let mut count = 0;
                store
                    .select(&[equal("job", "b")], i64::MIN, i64::MAX, &mut |_, entry| {
                        assert!(entry.timestamp_ns >= previous);
                        previous = entry.timestamp_ns;
                        count += 1;
                        std::ops::ControlFlow::Continue(())
                    })
                    .unwrap();
                assert_eq!(count, 200);
            }
        })
    };
    let report = store.compact(&ranges()).unwrap();
    assert!(!report.merged.is_empty());
    writer.join().unwrap();
    reader.join().unwrap();
    store.checkpoint().unwrap();
    store.compact(&ranges()).unwrap();
    let everything = select_all(&store, &[]);
    assert_eq!(everything.len(), 400 + 200);
    let store = std::sync::Arc::try_unwrap(store).unwrap();
    drop(store);
    let (store, _) = open(directory.path(), options());
    assert_eq!(select_all(&store, &[]), everything);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Random streams and entries over several hourly blocks (late entries,
    /// equal timestamps, metadata included): compaction and a restart
    /// after it give the same answers: the store's reads, stream by stream and
    /// over time ranges, and LogQL log and metric queries.
    #[test]
    fn compaction_keeps_every_entry_in_order(
        batches in proptest::collection::vec(
            proptest::collection::vec((0usize..3, 0i64..8, proptest::bool::weighted(0.1), "[a-z]{0,12}", proptest::bool::ANY), 1..30),
            3..12,
        ),
    ) {
        let directory = tempfile::tempdir().unwrap();
        let (store, _) = open(directory.path(), options());
        let mut expected_entries = 0u64;
        for (hour, batch) in batches.iter().enumerate() {
            let mut streams: Vec<logstore::PushStream> = Vec::new();
            for (job, slot, late, line, metadata) in batch {
                // Eight slots an hour, so equal timestamps are common; a late entry lands an hour or two back.
                let back = if *late { (hour as i64 % 3) * HOUR } else { 0 };
                let timestamp = base() + hour as i64 * HOUR + slot * (HOUR / 8) - back;
                let mut pushed = entry(timestamp, line);
                if *metadata {
                    pushed.metadata = vec![("trace_id".to_owned(), format!("{hour}{line}"))];
                }
                streams.push(stream(&[("job", ["api", "web", "db"][*job])], vec![pushed]));
            }
            expected_entries += store.append_at(streams, NOW).unwrap().entries_appended as u64;
            store.checkpoint().unwrap();
        }
        let everything = |store: &LogStore| {
            let mut all = Vec::new();
            store
                .select(&[], i64::MIN, i64::MAX, &mut |labels, entry| {
                    all.push((labels.clone(), entry.timestamp_ns, entry.line.to_owned(), entry.metadata.to_vec()));
                    std::ops::ControlFlow::Continue(())
                })
                .unwrap();
            all
        };
        let windows = |store: &LogStore| {
            (0..batches.len() as i64)
                .map(|hour| {
                    let mut seen = Vec::new();
                    let start = base() + hour * HOUR - HOUR / 3;
                    store
                        .select(&[equal("job", "api")], start, start + HOUR, &mut |_, entry| {
                            seen.push((entry.timestamp_ns, entry.line.to_owned()));
                            std::ops::ControlFlow::Continue(())
                        })
                        .unwrap();
                    seen
                })
                .collect::<Vec<_>>()
        };
        // LogQL over the store: log queries with a limit in both directions, a filter, and a metric query.
        let logql = |store: &LogStore| {
            let engine = logql::Engine::new(logql::Limits::default());
            let (start, end) = (base() - 3 * HOUR, base() + 13 * HOUR);
            [
                (r#"{job=~".+"}"#, 25, logql::Direction::Backward),
                (r#"{job="web"} |= "a""#, 1000, logql::Direction::Forward),
                (r#"sum by (job) (count_over_time({job=~".+"} [90m]))"#, 1000, logql::Direction::Backward),
            ]
            .map(|(query, limit, direction)| {
                engine.range_query(store, query, start, end, HOUR / 2, limit, direction).expect("query")
            })
        };
        let before = everything(&store);
        let before_windows = windows(&store);
        let before_logql = logql(&store);
        proptest::prop_assert_eq!(before.len() as u64, expected_entries);
        let blocks_before = store.blocks().len();
        let report = store.compact(&ranges()).unwrap();
        proptest::prop_assert_eq!(store.blocks().len(), blocks_before - report.merged.iter().map(|(_, sources)| sources.len() - 1).sum::<usize>());
        proptest::prop_assert_eq!(&everything(&store), &before);
        proptest::prop_assert_eq!(&windows(&store), &before_windows);
        proptest::prop_assert_eq!(&logql(&store), &before_logql);
        drop(store);
        let (store, _) = open(directory.path(), options());
        proptest::prop_assert_eq!(&everything(&store), &before);
        proptest::prop_assert_eq!(&windows(&store), &before_windows);
        proptest::prop_assert_eq!(&logql(&store), &before_logql);
        proptest::prop_assert_eq!(store.stats().entries, expected_entries);
    }
}
