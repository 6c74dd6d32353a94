//! The log round-trips records, repairs torn and corrupt tails, and rolls segments.

use std::io::Write;

use proptest::prelude::*;
use wal::{FsyncPolicy, Replay, Wal, WalOptions};

/// Opens the log and collects the replayed records.
fn open(directory: &std::path::Path, options: WalOptions) -> (Wal, Replay, Vec<Vec<u8>>) {
    let mut records = Vec::new();
    let (wal, replay) = Wal::open(directory, options, |record| records.push(record.to_vec())).expect("open");
    assert_eq!(replay.records, records.len() as u64);
    (wal, replay, records)
}

fn options(segment_bytes: u64) -> WalOptions {
    WalOptions { segment_bytes, fsync: FsyncPolicy::Always }
}

#[test]
fn records_round_trip_across_segments_and_reopen() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (wal, _, replayed) = open(directory.path(), options(100));
    assert!(replayed.is_empty());
    let records: Vec<Vec<u8>> = (0u8..20).map(|index| vec![index; usize::from(index) * 3]).collect();
    for record in &records {
        wal.append(record).expect("append");
    }
    drop(wal);
    let segment_count = std::fs::read_dir(directory.path()).expect("list").count();
    assert!(segment_count > 3, "segments should roll at 100 bytes, got {segment_count}");
    let (wal, replay, replayed) = open(directory.path(), options(100));
    assert_eq!(replayed, records);
    assert!(replay.repairs.is_empty());
    // Appends after a reopen follow the replayed records.
    wal.append(b"after").expect("append");
    drop(wal);
    let (_, _, replayed) = open(directory.path(), options(100));
    assert_eq!(replayed.last().map(Vec::as_slice), Some(&b"after"[..]));
}

#[test]
fn torn_tail_is_truncated_and_the_log_stays_usable() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (wal, _, _) = open(directory.path(), options(1 << 20));
    wal.append(b"first").expect("append");
    wal.append(b"second").expect("append");
    drop(wal);
    let segment = directory.path().join("00000001.wal");
    // A crash mid-write: a header promising more bytes than follow.
    let mut file = std::fs::OpenOptions::new().append(true).open(&segment).expect("open segment");
    file.write_all(&[50, 0, 0, 0, 1, 2, 3, 4, 9, 9]).expect("write torn record");
    drop(file);
    let (wal, replay, replayed) = open(directory.path(), options(1 << 20));
    assert_eq!(replayed, vec![b"first".to_vec(), b"second".to_vec()]);
    assert_eq!(replay.repairs.len(), 1);
    assert!(replay.repairs[0].contains("torn record at offset 27"), "{}", replay.repairs[0]);
    wal.append(b"third").expect("append");
    drop(wal);
    let (_, _, replayed) = open(directory.path(), options(1 << 20));
    assert_eq!(replayed.len(), 3);
}

#[test]
fn corrupt_record_cuts_the_log_there() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (wal, _, _) = open(directory.path(), options(40));
    for index in 0u8..6 {
        wal.append(&[index; 20]).expect("append");
    }
    drop(wal);
    // Flip a payload byte in the second segment.
    let second = directory.path().join("00000002.wal");
    let mut bytes = std::fs::read(&second).expect("read");
    bytes[10] ^= 0xff;
    std::fs::write(&second, bytes).expect("write");
    let (_, replay, replayed) = open(directory.path(), options(40));
    assert_eq!(replayed.len(), 1, "only the record before the corruption survives");
    assert!(replay.repairs[0].contains("checksum mismatch"), "{:?}", replay.repairs);
    assert!(replay.repairs[0].contains("later segments removed"), "{:?}", replay.repairs);
}

#[test]
fn old_segments_are_removed_after_a_cut() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (wal, _, _) = open(directory.path(), options(1 << 20));
    wal.append(b"old").expect("append");
    let next = wal.cut().expect("cut");
    wal.append(b"new").expect("append");
    assert_eq!(wal.remove_segments_before(next).expect("remove"), 1);
    drop(wal);
    let (_, _, replayed) = open(directory.path(), options(1 << 20));
    assert_eq!(replayed, vec![b"new".to_vec()]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Whatever prefix of the file survives a crash, replay yields a prefix of what was appended.
    #[test]
    fn any_truncation_replays_a_prefix(records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..20), cut in 0usize..2000) {
        let directory = tempfile::tempdir().expect("temporary directory");
        let (wal, _, _) = open(directory.path(), WalOptions { segment_bytes: 1 << 20, fsync: FsyncPolicy::Never });
        for record in &records {
            wal.append(record).expect("append");
        }
        drop(wal);
        let segment = directory.path().join("00000001.wal");
        let length = std::fs::metadata(&segment).expect("metadata").len();
        let keep = (cut as u64).min(length);
        std::fs::OpenOptions::new().write(true).open(&segment).expect("open").set_len(keep).expect("truncate");
        let (_, _, replayed) = open(directory.path(), WalOptions::default());
        prop_assert!(replayed.len() <= records.len());
        prop_assert_eq!(&replayed[..], &records[..replayed.len()]);
    }
}

#[test]
fn opening_from_a_segment_removes_and_skips_the_earlier_ones() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (wal, _, _) = open(directory.path(), options(1 << 20));
    wal.append(b"one").expect("append");
    let second = wal.cut().expect("cut");
    wal.append(b"two").expect("append");
    drop(wal);
    let mut records = Vec::new();
    let (wal, replay) =
        Wal::open_from(directory.path(), options(1 << 20), second, |record| records.push(record.to_vec()))
            .expect("open");
    assert_eq!((replay.records, records), (1, vec![b"two".to_vec()]));
    assert_eq!(wal.active_segment(), second);
    assert_eq!(std::fs::read_dir(directory.path()).expect("list").count(), 1);
    drop(wal);
    // A first segment beyond every file: numbering continues from it, never reusing older numbers.
    let (wal, replay) = Wal::open_from(directory.path(), options(1 << 20), second + 5, |_| {}).expect("open");
    assert_eq!((replay.records, wal.active_segment()), (0, second + 5));
}

/// Bytes of every segment file in the directory.
fn bytes_on_disk(directory: &std::path::Path) -> u64 {
    std::fs::read_dir(directory)
        .expect("list")
        .map(|entry| entry.expect("entry").metadata().expect("metadata").len())
        .sum()
}

#[test]
fn framed_records_reach_the_file_at_commit_in_the_order_they_were_framed() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (wal, _, _) = open(directory.path(), WalOptions { segment_bytes: 1 << 20, fsync: FsyncPolicy::Never });
    let first = wal.write(&[b"one", b"two"]).expect("write");
    let second = wal.write(&[b"three"]).expect("write");
    assert_eq!(bytes_on_disk(directory.path()), 0, "framing alone writes nothing");
    // The later commit carries the earlier record too; the earlier one then has nothing left to do.
    wal.commit(second).expect("commit");
    let written = bytes_on_disk(directory.path());
    assert_eq!(written, 3 * 8 + 3 + 3 + 5);
    wal.commit(first).expect("commit");
    assert_eq!(bytes_on_disk(directory.path()), written);
    // Framed but never committed: written when the log is closed.
    wal.write(&[b"four"]).expect("write");
    drop(wal);
    let (_, _, replayed) = open(directory.path(), options(1 << 20));
    assert_eq!(replayed, [&b"one"[..], b"two", b"three", b"four"]);
}

#[test]
fn concurrent_writers_keep_their_own_order_across_segment_rolls() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (wal, _, _) = open(directory.path(), options(512));
    let wal = std::sync::Arc::new(wal);
    let writers: Vec<_> = (0u8..4)
        .map(|writer| {
            let wal = std::sync::Arc::clone(&wal);
            std::thread::spawn(move || {
                for index in 0u8..50 {
                    let sequence = wal.write(&[&[writer, index]]).expect("write");
                    wal.commit(sequence).expect("commit");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer");
    }
    drop(wal);
    let (_, _, replayed) = open(directory.path(), options(512));
    assert_eq!(replayed.len(), 200);
    for writer in 0u8..4 {
        let own: Vec<u8> = replayed.iter().filter(|record| record[0] == writer).map(|record| record[1]).collect();
        assert_eq!(own, (0u8..50).collect::<Vec<_>>());
    }
}
