//! The store: restarts, checkpoints, crashes between checkpoint steps, torn
//! logs, retention, validation, dedup, ordering, concurrency, label queries.

use std::fs;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use logql::{LogSource, MatchOp, StreamMatcher};
use logstore::{FsyncPolicy, LogStore, LogStoreOptions, PushEntry, RejectReason};

use crate::{NOW, entry, equal, labels, open, select_all, stream};

fn small_chunks() -> LogStoreOptions {
    LogStoreOptions { chunk_target_bytes: 512, fsync: FsyncPolicy::Never, ..LogStoreOptions::default() }
}

fn batch(job: &str, first: i64, count: i64) -> Vec<logstore::PushStream> {
    vec![stream(
        &[("job", job)],
        (first..first + count)
            .map(|index| entry(NOW - 3_600_000_000_000 + index * 1000, &format!("{job} line {index}")))
            .collect(),
    )]
}

fn lines(store: &LogStore) -> Vec<String> {
    select_all(store, &[]).into_iter().map(|(_, _, line)| line).collect()
}

fn expected(job: &str, range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|index| format!("{job} line {index}")).collect()
}

#[test]
fn restart_replays_the_log() {
    let directory = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(directory.path(), small_chunks());
        for start in (0..500).step_by(50) {
            let stats = store.append_at(batch("a", start, 50), NOW).unwrap();
            assert_eq!((stats.entries_appended, stats.status_code()), (50, 204));
        }
        let mut metadata = batch("b", 0, 1);
        metadata[0].entries[0].metadata = vec![("trace_id".into(), "abc".into())];
        store.append_at(metadata, NOW).unwrap();
        assert!(store.stats().chunks > 0);
    }
    let (store, replay) = open(directory.path(), small_chunks());
    assert_eq!((replay.wal_records, replay.wal_entries, replay.blocks_loaded), (11, 501, 0));
    assert_eq!(lines(&store)[..500], expected("a", 0..500)[..]);
    let mut seen = Vec::new();
    store
        .select(&[equal("job", "b")], i64::MIN, i64::MAX, &mut |_, entry| {
            seen.push(entry.metadata.to_vec());
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(seen, vec![vec![("trace_id".to_owned(), "abc".to_owned())]]);
    assert_eq!(store.stats().entries, 501);
}

#[test]
fn checkpoint_then_restart_loads_blocks_and_replays_only_the_rest() {
    let directory = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(directory.path(), small_chunks());
        store.append_at(batch("a", 0, 300), NOW).unwrap();
        let block = store.checkpoint().unwrap().expect("a block");
        assert_eq!((block.entries, block.streams), (300, 1));
        store.append_at(batch("a", 300, 100), NOW).unwrap();
        store.append_at(batch("b", 0, 10), NOW).unwrap();
        assert_eq!(store.blocks().len(), 1);
        // A checkpoint with nothing new writes no block.
        store.checkpoint().unwrap().expect("second block");
        assert!(store.checkpoint().unwrap().is_none());
        store.append_at(batch("a", 400, 5), NOW).unwrap();
    }
    let (store, replay) = open(directory.path(), small_chunks());
    assert_eq!((replay.blocks_loaded, replay.block_entries, replay.wal_entries), (2, 410, 5));
    assert_eq!(
        select_all(&store, &[equal("job", "a")]).into_iter().map(|(_, _, line)| line).collect::<Vec<_>>(),
        expected("a", 0..405)
    );
    assert_eq!(store.stats().entries, 415);
    let wal_files = fs::read_dir(directory.path().join("wal")).unwrap().count();
    assert!(wal_files <= 2, "covered segments removed, {wal_files} left");
}

#[test]
fn block_chunks_are_read_from_disk_and_a_damaged_one_fails_only_its_stream() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) = open(directory.path(), small_chunks());
    store.append_at(batch("a", 0, 300), NOW).unwrap();
    store.append_at(batch("b", 0, 300), NOW).unwrap();
    let before = store.stats().memory_bytes;
    store.checkpoint().unwrap().expect("a block");
    // Only the metadata of the block's chunks stays in memory.
    assert!(store.stats().memory_bytes < before / 10, "{} of {before}", store.stats().memory_bytes);
    assert_eq!(lines(&store)[..300], expected("a", 0..300)[..]);
    drop(store);
    let (store, replay) = open(directory.path(), small_chunks());
    assert_eq!(replay.blocks_loaded, 1);
    assert_eq!(store.stats().memory_bytes, 0);
    assert_eq!(lines(&store).len(), 600);
    // Damage the block under the open store: stream "a" (written first) fills its first half.
    let path = fs::read_dir(directory.path().join("blocks")).unwrap().next().unwrap().unwrap().path();
    let mut bytes = fs::read(&path).unwrap();
    let length = bytes.len();
    for byte in &mut bytes[length / 10..length / 3] {
        *byte ^= 0x40;
    }
    fs::write(&path, &bytes).unwrap();
    let mut visit = |_: &tsdb::Labels, _: logql::Entry<'_>| ControlFlow::Continue(());
    let error = store.select(&[equal("job", "a")], i64::MIN, i64::MAX, &mut visit).expect_err("damaged chunk");
    let message = error.to_string();
    assert!(message.contains("checksum mismatch") && message.contains(&path.display().to_string()), "{message}");
    assert_eq!(select_all(&store, &[equal("job", "b")]).len(), 300);
}

fn copy_directory(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn crash_after_the_block_but_before_the_log_was_trimmed_replays_nothing_twice() {
    let directory = tempfile::tempdir().unwrap();
    let saved = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(directory.path(), small_chunks());
        store.append_at(batch("a", 0, 200), NOW).unwrap();
        store.sync().unwrap();
        copy_directory(&directory.path().join("wal"), saved.path());
        store.checkpoint().unwrap().expect("block");
    }
    // Put the removed segments back: as if the process died before removing them.
    copy_directory(saved.path(), &directory.path().join("wal"));
    let (store, replay) = open(directory.path(), small_chunks());
    assert_eq!((replay.blocks_loaded, replay.wal_entries), (1, 0));
    assert_eq!(lines(&store), expected("a", 0..200));
}

#[test]
fn crash_before_the_rename_leaves_a_temporary_file_that_is_removed() {
    let directory = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(directory.path(), small_chunks());
        store.append_at(batch("a", 0, 100), NOW).unwrap();
    }
    fs::write(directory.path().join("blocks/00000001.block.tmp"), b"half a block").unwrap();
    let (store, replay) = open(directory.path(), small_chunks());
    assert_eq!(replay.temporary_removed.len(), 1);
    assert_eq!(lines(&store), expected("a", 0..100));
    assert!(!directory.path().join("blocks/00000001.block.tmp").exists());
}

#[test]
fn a_damaged_block_is_set_aside_and_the_start_goes_on() {
    let directory = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(directory.path(), small_chunks());
        store.append_at(batch("a", 0, 100), NOW).unwrap();
        store.checkpoint().unwrap();
        store.append_at(batch("b", 0, 10), NOW).unwrap();
    }
    let path = directory.path().join("blocks/00000001.block");
    let mut bytes = fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    fs::write(&path, bytes).unwrap();
    let (store, replay) = open(directory.path(), small_chunks());
    assert_eq!(replay.blocks_set_aside.len(), 1, "{replay:?}");
    assert!(replay.blocks_set_aside[0].contains("checksum mismatch"));
    assert!(directory.path().join("blocks/00000001.block.corrupt").exists());
    assert_eq!(lines(&store), expected("b", 0..10));
}

#[test]
fn a_torn_log_tail_is_truncated_and_earlier_batches_survive() {
    let directory = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(directory.path(), small_chunks());
        for start in (0..100).step_by(10) {
            store.append_at(batch("a", start, 10), NOW).unwrap();
        }
    }
    let segment = fs::read_dir(directory.path().join("wal")).unwrap().map(|entry| entry.unwrap().path()).max().unwrap();
    let length = fs::metadata(&segment).unwrap().len();
    fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(length - 7).unwrap();
    let (store, replay) = open(directory.path(), small_chunks());
    assert_eq!(replay.repairs.len(), 1, "{replay:?}");
    assert!(replay.repairs[0].contains("torn record"), "{:?}", replay.repairs);
    assert_eq!(lines(&store), expected("a", 0..90));
    // The repaired log takes new appends and replays them.
    store.append_at(batch("a", 90, 10), NOW).unwrap();
    drop(store);
    let (store, replay) = open(directory.path(), small_chunks());
    assert!(replay.repairs.is_empty());
    assert_eq!(lines(&store), expected("a", 0..100));
}

#[test]
fn out_of_order_entries_are_accepted_and_identical_ones_deduplicated() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) = open(directory.path(), small_chunks());
    let base = NOW - 1_000_000;
    let first: Vec<PushEntry> =
        (0..40).map(|index| entry(base + index * 10, &format!("entry {index:02} padding padding"))).collect();
    store.append_at(vec![stream(&[("job", "x")], first.clone())], NOW).unwrap();
    assert!(store.stats().chunks > 0, "some entries sealed into chunks");
    // Out of order (into sealed chunks' ranges and the head), equal timestamps, duplicates.
    let second = vec![
        entry(base + 15, "late one"),
        entry(base + 10, "same time as entry 01"),
        first[1].clone(),
        first[39].clone(),
        entry(base - 100, "oldest"),
        entry(base + 15, "late one"),
    ];
    let stats = store.append_at(vec![stream(&[("job", "x")], second)], NOW).unwrap();
    assert_eq!((stats.entries_appended, stats.duplicates), (3, 3));
    let got = lines(&store);
    assert_eq!(got.len(), 43);
    assert_eq!(got[0], "oldest");
    assert_eq!(got[1], "entry 00 padding padding");
    assert_eq!(&got[2..5], ["entry 01 padding padding", "same time as entry 01", "late one"]);
    let timestamps: Vec<i64> = select_all(&store, &[]).into_iter().map(|(_, timestamp, _)| timestamp).collect();
    assert!(timestamps.windows(2).all(|pair| pair[0] <= pair[1]));
    // The same holds after a restart (the log replays the same decisions) and a checkpoint.
    drop(store);
    let (store, replay) = open(directory.path(), small_chunks());
    assert_eq!(replay.wal_entries, 43);
    assert_eq!(lines(&store), got);
    store.checkpoint().unwrap();
    drop(store);
    let (store, _) = open(directory.path(), small_chunks());
    assert_eq!(lines(&store), got);
    assert_eq!(store.append_at(vec![stream(&[("job", "x")], vec![first[5].clone()])], NOW).unwrap().duplicates, 1);
}

#[test]
fn equal_timestamps_keep_push_order_across_chunks_and_batches() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) = open(directory.path(), small_chunks());
    let mut pushed = Vec::new();
    for batch_index in 0..20 {
        let entries: Vec<PushEntry> = (0..5)
            .map(|index| entry(NOW - 1000, &format!("batch {batch_index:02} entry {index} with some padding")))
            .collect();
        pushed.extend(entries.iter().map(|entry| entry.line.clone()));
        store.append_at(vec![stream(&[("job", "same")], entries)], NOW).unwrap();
        if batch_index == 10 {
            store.checkpoint().unwrap();
        }
    }
    assert_eq!(lines(&store), pushed);
    drop(store);
    let (store, _) = open(directory.path(), small_chunks());
    assert_eq!(lines(&store), pushed);
}

#[test]
fn select_visits_stream_by_stream_within_the_time_range() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) = open(directory.path(), small_chunks());
    for job in ["b", "a", "c"] {
        store.append_at(batch(job, 0, 100), NOW).unwrap();
    }
    let start = NOW - 3_600_000_000_000 + 10 * 1000;
    let end = NOW - 3_600_000_000_000 + 20 * 1000;
    let regex = StreamMatcher::new("job", MatchOp::RegexMatch, "a|b").unwrap();
    let mut visited = Vec::new();
    store
        .select(&[regex], start, end, &mut |labels, entry| {
            visited.push((labels.get("job").unwrap().to_owned(), entry.line.to_owned()));
            ControlFlow::Continue(())
        })
        .unwrap();
    let wanted: Vec<(String, String)> = ["a", "b"]
        .iter()
        .flat_map(|job| (10..20).map(move |index| (job.to_string(), format!("{job} line {index}"))))
        .collect();
    assert_eq!(visited, wanted);
    let not = StreamMatcher::new("job", MatchOp::NotEqual, "a").unwrap();
    assert_eq!(select_all(&store, &[not]).len(), 200);
    assert!(select_all(&store, &[equal("job", "zzz")]).is_empty());
    assert!(select_all(&store, &[equal("missing", "")]).len() == 300, "a missing label matches \"\"");
}

#[test]
fn invalid_entries_are_refused_one_by_one_and_valid_ones_stored() {
    let directory = tempfile::tempdir().unwrap();
    let options = LogStoreOptions { max_line_bytes: 10, max_streams: 2, ..small_chunks() };
    let (store, _) = open(directory.path(), options);
    let retention = 336 * 3_600_000_000_000i64;
    let stats = store
        .append_at(
            vec![stream(
                &[("job", "x")],
                vec![
                    entry(NOW, "ok"),
                    entry(NOW, "this line is too long"),
                    entry(NOW - retention - 1, "old"),
                    entry(NOW + 600_000_000_001, "future"),
                    entry(NOW + 600_000_000_000, "grace"),
                ],
            )],
            NOW,
        )
        .unwrap();
    assert_eq!(stats.entries_appended, 2);
    assert_eq!(stats.status_code(), 400);
    let reasons: Vec<(usize, RejectReason)> =
        stats.rejected.iter().map(|rejection| (rejection.entry, rejection.reason.clone())).collect();
    assert_eq!(
        reasons,
        vec![
            (1, RejectReason::LineTooLong { bytes: 21, limit: 10 }),
            (2, RejectReason::TooOld { timestamp_ns: NOW - retention - 1, oldest_ns: NOW - retention }),
            (3, RejectReason::TooFarInFuture { timestamp_ns: NOW + 600_000_000_001, newest_ns: NOW + 600_000_000_000 }),
        ]
    );
    let message = stats.loki_message().unwrap();
    assert!(
        message.contains("stream 0 {job=\"x\"}, entry 1: line of 21 bytes exceeds the limit of 10 bytes"),
        "{message}"
    );
    assert!(message.contains("entry 2: timestamp too old"), "{message}");
    assert!(message.contains("total ignored: 3 out of 5"), "{message}");

    // The stream limit: a third stream is refused whole (429); existing ones still take entries.
    let stats = store
        .append_at(
            vec![
                stream(&[("job", "y")], vec![entry(NOW, "y")]),
                stream(&[("job", "z")], vec![entry(NOW, "z"), entry(NOW, "z2")]),
                stream(&[("job", "x")], vec![entry(NOW, "x")]),
            ],
            NOW,
        )
        .unwrap();
    assert_eq!((stats.entries_appended, stats.rejected.len(), stats.status_code()), (2, 2, 429));
    assert_eq!(stats.rejected[0].stream, 1);
    assert!(stats.loki_message().unwrap().contains("maximum active stream limit exceeded (2 streams)"));
    assert_eq!(store.stats().streams, 2);
}

#[test]
fn retention_by_time_drops_old_chunks_and_blocks() {
    let directory = tempfile::tempdir().unwrap();
    let options = LogStoreOptions { retention_time: Duration::from_secs(3600), ..small_chunks() };
    let (store, _) = open(directory.path(), options.clone());
    let hour = 3_600_000_000_000i64;
    let old: Vec<PushEntry> =
        (0..100).map(|index| entry(NOW - hour / 6 + index, &format!("old {index} padding padding"))).collect();
    store.append_at(vec![stream(&[("job", "old")], old)], NOW).unwrap();
    store.checkpoint().unwrap().expect("block");
    let new: Vec<PushEntry> = (0..100).map(|index| entry(NOW + hour / 2 + index, &format!("new {index}"))).collect();
    store.append_at(vec![stream(&[("job", "new")], new)], NOW + hour / 2).unwrap();
    let report = store.maintain(NOW + hour / 2).unwrap();
    assert!(report.blocks_removed_by_time.is_empty());
    // An hour and a bit later every "old" entry is out of retention.
    let report = store.maintain(NOW + hour + hour / 60).unwrap();
    assert_eq!(report.blocks_removed_by_time, vec![1]);
    assert_eq!((report.entries_removed, report.streams_removed), (100, 1));
    assert_eq!(store.series(&[vec![]], i64::MIN, i64::MAX), vec![labels(&[("job", "new")])]);
    drop(store);
    let (store, _) = open(directory.path(), options);
    assert_eq!(store.stats().entries, 100);
    assert!(select_all(&store, &[equal("job", "old")]).is_empty());
}

#[test]
fn retention_by_size_removes_the_oldest_blocks_first() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) = open(directory.path(), small_chunks());
    for index in 0..4 {
        store.append_at(batch(&format!("job{index}"), 0, 200), NOW).unwrap();
        store.checkpoint().unwrap().expect("block");
    }
    let blocks = store.blocks();
    assert_eq!(blocks.len(), 4);
    let keep: u64 = blocks[2].bytes + blocks[3].bytes;
    drop(store);
    let options = LogStoreOptions { retention_size_bytes: Some(keep + 100), ..small_chunks() };
    let (store, _) = open(directory.path(), options);
    let report = store.maintain(NOW).unwrap();
    assert_eq!(report.blocks_removed_by_size, vec![1, 2]);
    assert_eq!(
        store.series(&[vec![]], i64::MIN, i64::MAX),
        vec![labels(&[("job", "job2")]), labels(&[("job", "job3")])]
    );
    assert!(store.stats().disk_bytes + store.stats().wal_bytes <= keep + 100);
}

#[test]
fn maintain_checkpoints_when_the_log_grows_or_the_interval_passes() {
    let directory = tempfile::tempdir().unwrap();
    let options = LogStoreOptions {
        checkpoint_wal_bytes: 10_000,
        checkpoint_interval: Duration::from_secs(60),
        ..small_chunks()
    };
    let (store, _) = open(directory.path(), options);
    store.append_at(batch("a", 0, 10), NOW).unwrap();
    assert!(!store.maintain(NOW).unwrap().checkpointed);
    assert!(store.maintain(NOW + 61_000_000_000).unwrap().checkpointed);
    store.append_at(batch("a", 10, 500), NOW).unwrap();
    let report = store.maintain(NOW + 62_000_000_000).unwrap();
    assert!(report.checkpointed && report.checkpoint.is_some());
    assert!(store.stats().wal_bytes < 10_000);
}

#[test]
fn label_names_values_and_series() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) = open(directory.path(), small_chunks());
    store
        .append_at(
            vec![
                stream(&[("job", "api"), ("env", "prod")], vec![entry(NOW - 100, "a")]),
                stream(&[("job", "api"), ("env", "dev")], vec![entry(NOW - 100, "b")]),
                stream(&[("job", "db"), ("region", "eu")], vec![entry(NOW - 10, "c")]),
            ],
            NOW,
        )
        .unwrap();
    assert_eq!(store.label_names(i64::MIN, i64::MAX), ["env", "job", "region"]);
    assert_eq!(store.label_names(NOW - 50, NOW), ["job", "region"]);
    assert_eq!(store.label_values("env", i64::MIN, i64::MAX, &[]), ["dev", "prod"]);
    assert_eq!(store.label_values("job", i64::MIN, i64::MAX, &[equal("env", "prod")]), ["api"]);
    assert_eq!(store.label_values("job", NOW - 50, NOW, &[]), ["db"]);
    let series = store.series(&[vec![equal("job", "api")], vec![equal("region", "eu")]], i64::MIN, i64::MAX);
    assert_eq!(series.len(), 3);
    assert_eq!(
        store.series(&[vec![equal("env", "dev")]], i64::MIN, i64::MAX),
        vec![labels(&[("env", "dev"), ("job", "api")])]
    );
    let stats = store.stats();
    assert_eq!((stats.streams, stats.entries), (3, 3));
    assert!(stats.memory_bytes > 0 && stats.wal_bytes > 0);
}

#[test]
fn concurrent_appends_queries_and_checkpoints() {
    let directory = tempfile::tempdir().unwrap();
    let (store, _) = open(
        directory.path(),
        LogStoreOptions { chunk_target_bytes: 2048, fsync: FsyncPolicy::Always, ..LogStoreOptions::default() },
    );
    let store = Arc::new(store);
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for index in 0..50 {
                    let entries: Vec<PushEntry> = (0..10)
                        .map(|offset| {
                            entry(NOW - 1_000_000 + index * 10 + offset, &format!("w{writer} {index} {offset}"))
                        })
                        .collect();
                    let shared = vec![stream(
                        &[("job", "shared")],
                        vec![entry(NOW - 1_000_000 + index, &format!("w{writer} {index}"))],
                    )];
                    assert_eq!(
                        store
                            .append_at(vec![stream(&[("job", "w"), ("writer", &writer.to_string())], entries)], NOW)
                            .unwrap()
                            .entries_appended,
                        10
                    );
                    store.append_at(shared, NOW).unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            for round in 0..40 {
                let mut per_stream: std::collections::HashMap<tsdb::Labels, Vec<i64>> = Default::default();
                store
                    .select(
                        &[StreamMatcher::new("job", MatchOp::RegexMatch, ".+").unwrap()],
                        i64::MIN,
                        i64::MAX,
                        &mut |labels, entry| {
                            per_stream.entry(labels.clone()).or_default().push(entry.timestamp_ns);
                            ControlFlow::Continue(())
                        },
                    )
                    .unwrap();
                for timestamps in per_stream.values() {
                    assert!(timestamps.windows(2).all(|pair| pair[0] <= pair[1]));
                }
                if round % 10 == 0 {
                    store.checkpoint().unwrap();
                }
            }
        })
    };
    for writer in writers {
        writer.join().unwrap();
    }
    reader.join().unwrap();
    assert_eq!(store.stats().entries, 4 * 50 * 10 + 4 * 50);
    let store = Arc::try_unwrap(store).unwrap();
    drop(store);
    let (store, _) = open(directory.path(), LogStoreOptions::default());
    assert_eq!(store.stats().entries, 2200);
    assert_eq!(select_all(&store, &[equal("job", "shared")]).len(), 200);
}

#[test]
fn index_stats_count_matching_streams_chunks_entries_and_bytes() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (store, _) = open(directory.path(), small_chunks());
    store.append_at(batch("api", 0, 200), NOW).expect("append");
    store.append_at(batch("db", 0, 3), NOW).expect("append");
    let everything = store.index_stats(&[], i64::MIN, i64::MAX);
    assert_eq!((everything.streams, everything.entries), (2, 203));
    let api = store.index_stats(&[equal("job", "api")], i64::MIN, i64::MAX);
    assert_eq!((api.streams, api.entries), (1, 200));
    assert!(api.chunks > 1, "{api:?}: small chunks seal several");
    let lines: u64 = lines_of(&store, "api").iter().map(|line| line.len() as u64).sum();
    // Sealed chunks count their uncompressed size: the lines and their encoded timestamps.
    assert!(lines <= api.bytes && api.bytes <= lines + 16 * 200, "{api:?} for {lines} bytes of lines");
    let db = store.index_stats(&[equal("job", "db")], i64::MIN, i64::MAX);
    assert_eq!((db.streams, db.chunks, db.entries), (1, 1, 3));
    assert_eq!(store.index_stats(&[equal("job", "none")], i64::MIN, i64::MAX), logstore::IndexStats::default());
    assert_eq!(store.index_stats(&[], NOW * 2, NOW * 2 + 1).streams, 0);
}

fn lines_of(store: &LogStore, job: &str) -> Vec<String> {
    select_all(store, &[equal("job", job)]).into_iter().map(|(_, _, line)| line).collect()
}
