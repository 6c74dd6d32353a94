//! SIGKILL durability: a child process (this test binary, re-run in child
//! mode) appends batches and prints each acknowledgement; the parent kills it
//! mid-stream, during appends and during checkpoints, reopens the store and
//! checks that every acknowledged entry is there exactly once and that the
//! batch in flight is there whole or not at all.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use logstore::{FsyncPolicy, LogStoreOptions};

use crate::{NOW, entry, open, select_all, stream};

const CHILD_DIRECTORY: &str = "LOGSTORE_KILL_CHILD_DIRECTORY";
const CHILD_RUN: &str = "LOGSTORE_KILL_CHILD_RUN";
const ENTRIES_PER_BATCH: i64 = 50;

fn options() -> LogStoreOptions {
    LogStoreOptions {
        fsync: FsyncPolicy::Always,
        chunk_target_bytes: 2048,
        wal_segment_bytes: 32 << 10,
        ..LogStoreOptions::default()
    }
}

fn line(run: i64, batch: i64, index: i64) -> String {
    format!("run {run} batch {batch} entry {index} lorem ipsum dolor sit amet")
}

/// The child: does nothing unless started by the parent test below.
#[test]
fn child_writer() {
    let (Ok(directory), Ok(run)) = (std::env::var(CHILD_DIRECTORY), std::env::var(CHILD_RUN)) else { return };
    let run: i64 = run.parse().expect("run number");
    let (store, _) = open(Path::new(&directory), options());
    let stdout = std::io::stdout();
    for batch in 0.. {
        let entries = (0..ENTRIES_PER_BATCH)
            .map(|index| {
                entry(NOW - 1_000_000_000_000 + (run * 100_000 + batch) * 1000 + index, &line(run, batch, index))
            })
            .collect();
        let labels = [("job", "kill"), ("shard", if batch % 2 == 0 { "even" } else { "odd" })];
        store.append_at(vec![stream(&labels, entries)], NOW).expect("append");
        writeln!(stdout.lock(), "ack {batch}").unwrap();
        stdout.lock().flush().unwrap();
        if batch % 5 == 4 {
            writeln!(stdout.lock(), "checkpoint {batch}").unwrap();
            stdout.lock().flush().unwrap();
            store.checkpoint().expect("checkpoint");
            writeln!(stdout.lock(), "checkpointed {batch}").unwrap();
            stdout.lock().flush().unwrap();
        }
    }
}

/// Runs one child, kills it after `acks` acknowledgements (right after it
/// announces a checkpoint when `during_checkpoint`); returns the last
/// acknowledged batch and whether the kill landed inside a checkpoint.
fn run_and_kill(directory: &Path, run: i64, acks: i64, during_checkpoint: bool) -> (Option<i64>, bool) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["kill::child_writer", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIRECTORY, directory)
        .env(CHILD_RUN, run.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut last_ack = None;
    // Whether the last checkpoint the child announced had finished.
    let mut checkpoint_open = false;
    let mut note = |text: &str, last_ack: &mut Option<i64>| {
        if let Some(batch) = text.strip_prefix("ack ") {
            *last_ack = Some(batch.parse::<i64>().unwrap());
        }
        if text.starts_with("checkpoint ") {
            checkpoint_open = true;
        }
        if text.starts_with("checkpointed ") {
            checkpoint_open = false;
        }
    };
    for text in lines.by_ref() {
        let Ok(text) = text else { break };
        note(&text, &mut last_ack);
        let enough = last_ack.is_some_and(|batch| batch + 1 >= acks);
        if enough && (!during_checkpoint || text.starts_with("checkpoint ")) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "child too slow");
    }
    // SIGKILL: no destructors, no flush.
    child.kill().expect("kill child");
    child.wait().unwrap();
    // Acknowledgements printed before the kill but not read yet still count.
    for text in lines.map_while(Result::ok) {
        note(&text, &mut last_ack);
    }
    (last_ack, checkpoint_open)
}

#[test]
fn sigkill_loses_no_acknowledged_entry_and_duplicates_none() {
    let directory = tempfile::tempdir().unwrap();
    let plans = [(37, false), (12, true), (53, false), (24, true), (5, false), (40, true), (61, true), (9, true)];
    let mut killed_in_checkpoint = 0;
    let mut acknowledged: Vec<Option<i64>> = Vec::new();
    for (run, &(acks, during_checkpoint)) in plans.iter().enumerate() {
        let (last, in_checkpoint) = run_and_kill(directory.path(), run as i64, acks, during_checkpoint);
        killed_in_checkpoint += usize::from(in_checkpoint);
        assert!(last.is_some(), "run {run} acknowledged nothing");
        acknowledged.push(last);

        let (store, _) = open(directory.path(), options());
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (_, _, text) in select_all(&store, &[crate::equal("job", "kill")]) {
            *counts.entry(text).or_default() += 1;
        }
        assert!(counts.values().all(|&count| count == 1), "an entry is stored twice");
        for (checked_run, last) in acknowledged.iter().enumerate() {
            let checked_run = checked_run as i64;
            let last = last.unwrap_or(-1);
            for batch in 0..=last {
                for index in 0..ENTRIES_PER_BATCH {
                    assert!(
                        counts.contains_key(&line(checked_run, batch, index)),
                        "run {checked_run} batch {batch} entry {index} lost"
                    );
                }
            }
            // The batch in flight when the child died: all or nothing.
            let present = (0..ENTRIES_PER_BATCH)
                .filter(|&index| counts.contains_key(&line(checked_run, last + 1, index)))
                .count();
            assert!(present == 0 || present == ENTRIES_PER_BATCH as usize, "batch in flight half stored: {present}");
            assert!(!counts.contains_key(&line(checked_run, last + 2, 0)), "a batch never sent is stored");
        }
        let expected_minimum: i64 =
            acknowledged.iter().map(|last| last.unwrap_or(-1) + 1).sum::<i64>() * ENTRIES_PER_BATCH;
        assert!(counts.len() as i64 >= expected_minimum);
    }
    eprintln!("{} kills, {killed_in_checkpoint} of them inside a checkpoint", plans.len());
}
