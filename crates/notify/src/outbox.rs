//! The outbox: pending deliveries in one append-only journal
//! (`outbox.jsonl`, JSON lines) written and fsynced before the first attempt,
//! so that a crash or restart loses nothing accepted. Changes are group
//! committed: [`Outbox::enqueue_batch`] persists every delivery of a flush
//! with one write and one fsync, [`Outbox::settle`] every outcome of a
//! delivery round likewise. Opening replays the journal (a torn last line
//! is skipped, an unreadable one set aside in `outbox.jsonl.corrupt`) and
//! rewrites it compacted (temporary file, fsync, rename, fsync of the
//! directory); the journal is compacted the same way while running once it
//! holds several times more records than deliveries pending.
//!
//! Outboxes written by earlier versions (one `<id>.json` file per delivery)
//! are read at open, folded into the journal and then removed.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::Error;

/// One pending HTTP delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: u64,
    /// The target's name, for logs and metrics.
    pub target: String,
    /// The receiver it belongs to: deliveries to one receiver share its
    /// concurrency bound. Empty for deliveries written by earlier versions
    /// (the target then stands for the receiver).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub receiver: String,
    pub url: String,
    pub body: String,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub created_ms: i64,
    /// The notification-log entries this delivery stands for: restored into
    /// the log at start, so a crash between writing the delivery and writing
    /// the log cannot make the router notify twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_entries: Vec<crate::routing::LogEntry>,
    /// How to send it, when not a plain JSON POST (a receiver integration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<crate::integrations::Channel>,
}

impl Delivery {
    /// The name deliveries are bounded by: the receiver, else the target.
    pub fn receiver_name(&self) -> &str {
        if self.receiver.is_empty() { &self.target } else { &self.receiver }
    }
}

/// A delivery to persist: what [`Outbox::enqueue_batch`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub target: String,
    pub receiver: String,
    pub url: String,
    pub body: String,
    pub log_entries: Vec<crate::routing::LogEntry>,
    /// A receiver integration's channel (Slack, PagerDuty, email); `None` for a webhook.
    pub channel: Option<crate::integrations::Channel>,
}

/// What became of an attempt, as [`Outbox::settle`] records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Delivered or permanently refused: the delivery is removed.
    Done(u64),
    /// Failed: tried again at `next_attempt_ms`.
    Retry { id: u64, next_attempt_ms: i64 },
}

/// `next_attempt_ms` of a delivery written but not yet released for sending.
pub const HELD: i64 = i64::MAX;

/// Below this many records the journal is never compacted while running.
const COMPACT_MIN_RECORDS: usize = 4096;

/// One line of the journal.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    Put(Box<Delivery>),
    Retry { id: u64, attempts: u32, next_attempt_ms: i64 },
    Done(u64),
}

#[derive(Debug, Default)]
struct Pending {
    deliveries: BTreeMap<u64, Delivery>,
    /// Taken by [`Outbox::take_due`] and not settled yet.
    in_flight: HashSet<u64>,
    /// `(next_attempt_ms, id)` of every delivery neither held nor in
    /// flight: what [`Outbox::take_due`] and [`Outbox::next_due`] read, so
    /// that neither visits the deliveries that are not due.
    waiting: BTreeSet<(i64, u64)>,
}

impl Pending {
    fn new(deliveries: BTreeMap<u64, Delivery>) -> Self {
        let waiting = deliveries
            .values()
            .filter(|delivery| delivery.next_attempt_ms != HELD)
            .map(|delivery| (delivery.next_attempt_ms, delivery.id))
            .collect();
        Self { deliveries, in_flight: HashSet::new(), waiting }
    }

    /// Puts a delivery back among those waiting, if it is pending, released
    /// and not in flight.
    fn wait(&mut self, id: u64) {
        if let Some(delivery) = self.deliveries.get(&id)
            && delivery.next_attempt_ms != HELD
            && !self.in_flight.contains(&id)
        {
            self.waiting.insert((delivery.next_attempt_ms, id));
        }
    }

    /// Applies a record that reached the disk, keeping `waiting` in step.
    fn apply(&mut self, record: Record) {
        let id = match &record {
            Record::Put(delivery) => delivery.id,
            Record::Retry { id, .. } | Record::Done(id) => *id,
        };
        if let Some(delivery) = self.deliveries.get(&id) {
            self.waiting.remove(&(delivery.next_attempt_ms, id));
        }
        apply(&mut self.deliveries, record);
        self.wait(id);
    }
}

#[derive(Debug)]
struct JournalFile {
    file: File,
    /// Records in the file (for compaction).
    records: usize,
}

/// Persisted deliveries, loaded at start.
#[derive(Debug)]
pub struct Outbox {
    directory: PathBuf,
    path: PathBuf,
    next_id: AtomicU64,
    pending: Mutex<Pending>,
    /// Held while writing, so that records reach the file whole and in order.
    journal: Mutex<JournalFile>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Outbox { path: path.to_owned(), source }
}

fn apply(deliveries: &mut BTreeMap<u64, Delivery>, record: Record) {
    match record {
        Record::Put(delivery) => {
            deliveries.insert(delivery.id, *delivery);
        }
        Record::Retry { id, attempts, next_attempt_ms } => {
            if let Some(delivery) = deliveries.get_mut(&id) {
                delivery.attempts = attempts;
                delivery.next_attempt_ms = next_attempt_ms;
            }
        }
        Record::Done(id) => {
            deliveries.remove(&id);
        }
    }
}

fn encode(records: &[Record], path: &Path) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    for record in records {
        serde_json::to_writer(&mut bytes, record)
            .map_err(|error| Error::CorruptEntry { path: path.to_owned(), reason: error.to_string() })?;
        bytes.push(b'\n');
    }
    Ok(bytes)
}

impl Outbox {
    /// Opens (creating if needed) the outbox in `directory` and loads what it holds.
    /// Unreadable records are set aside with an error log rather than stopping the start.
    pub fn open(directory: &Path) -> Result<Self, Error> {
        fs::create_dir_all(directory).map_err(io_error(directory))?;
        let path = directory.join("outbox.jsonl");
        let mut deliveries = BTreeMap::new();
        let legacy = Self::read_legacy(directory, &mut deliveries)?;
        Self::replay(&path, &mut deliveries)?;
        for delivery in deliveries.values_mut() {
            // Held when the process stopped: its log entries are restored
            // with it, so it is released now.
            if delivery.next_attempt_ms == HELD {
                delivery.next_attempt_ms = delivery.created_ms;
            }
        }
        let file = Self::rewrite(directory, &path, &deliveries)?;
        for legacy_file in legacy {
            let _ = fs::remove_file(legacy_file);
        }
        let next_id = deliveries.keys().next_back().map_or(1, |last| last + 1);
        let records = deliveries.len();
        Ok(Self {
            directory: directory.to_owned(),
            path,
            next_id: AtomicU64::new(next_id),
            pending: Mutex::new(Pending::new(deliveries)),
            journal: Mutex::new(JournalFile { file, records }),
        })
    }

    /// Reads the one-file-per-delivery layout of earlier versions; returns the files read.
    fn read_legacy(directory: &Path, deliveries: &mut BTreeMap<u64, Delivery>) -> Result<Vec<PathBuf>, Error> {
        let mut read = Vec::new();
        for entry in fs::read_dir(directory).map_err(io_error(directory))? {
            let path = entry.map_err(io_error(directory))?.path();
            match path.extension().and_then(|extension| extension.to_str()) {
                Some("tmp") => {
                    let _ = fs::remove_file(&path);
                }
                Some("json") => {
                    let parsed = fs::read_to_string(&path).map_err(io_error(&path)).and_then(|text| {
                        serde_json::from_str::<Delivery>(&text)
                            .map_err(|error| Error::CorruptEntry { path: path.clone(), reason: error.to_string() })
                    });
                    match parsed {
                        Ok(delivery) => {
                            deliveries.insert(delivery.id, delivery);
                            read.push(path);
                        }
                        Err(error) => {
                            tracing::error!(path = %path.display(), error = %error, "unreadable outbox entry set aside");
                            let _ = fs::rename(&path, path.with_extension("corrupt"));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(read)
    }

    /// Applies every readable record of the journal.
    fn replay(path: &Path, deliveries: &mut BTreeMap<u64, Delivery>) -> Result<(), Error> {
        let Ok(file) = File::open(path) else { return Ok(()) };
        let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>().map_err(io_error(path))?;
        let last = lines.iter().rposition(|line| !line.trim().is_empty());
        let mut unreadable = Vec::new();
        for (number, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Record>(line) {
                Ok(record) => apply(deliveries, record),
                // A crash while appending leaves a torn last line: that
                // batch was never acknowledged, so nothing is lost.
                Err(_) if Some(number) == last => {
                    tracing::warn!(path = %path.display(), line = number + 1, "torn last outbox record skipped")
                }
                Err(error) => {
                    tracing::error!(path = %path.display(), line = number + 1, error = %error, "unreadable outbox record set aside");
                    unreadable.push(line.as_str());
                }
            }
        }
        if !unreadable.is_empty() {
            let corrupt = path.with_extension("jsonl.corrupt");
            let mut text = unreadable.join("\n");
            text.push('\n');
            let mut file = OpenOptions::new().create(true).append(true).open(&corrupt).map_err(io_error(&corrupt))?;
            file.write_all(text.as_bytes()).map_err(io_error(&corrupt))?;
            file.sync_all().map_err(io_error(&corrupt))?;
        }
        Ok(())
    }

    /// Writes the journal anew holding `deliveries`; returns it opened for appending.
    fn rewrite(directory: &Path, path: &Path, deliveries: &BTreeMap<u64, Delivery>) -> Result<File, Error> {
        let temporary = path.with_extension("jsonl.tmp");
        let records: Vec<Record> =
            deliveries.values().cloned().map(|delivery| Record::Put(Box::new(delivery))).collect();
        let bytes = encode(&records, path)?;
        {
            let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
            file.write_all(&bytes).map_err(io_error(&temporary))?;
            file.sync_all().map_err(io_error(&temporary))?;
        }
        fs::rename(&temporary, path).map_err(io_error(path))?;
        File::open(directory).and_then(|directory| directory.sync_all()).map_err(io_error(directory))?;
        OpenOptions::new().append(true).open(path).map_err(io_error(path))
    }

    /// Appends records with one write and one fsync, then applies them to
    /// memory (only what reached the disk changes memory) and takes `settled`
    /// out of flight; compacts the journal when it has grown well past what
    /// is pending. The journal lock is held throughout, so a compaction's
    /// snapshot holds every record appended before it.
    fn commit(&self, records: impl FnOnce(&Pending) -> Vec<Record>, settled: &[u64]) -> Result<(), Error> {
        let mut journal = self.journal.lock();
        let records = records(&self.pending.lock());
        let written = if records.is_empty() {
            Ok(())
        } else {
            encode(&records, &self.path).and_then(|bytes| {
                journal.file.write_all(&bytes).map_err(io_error(&self.path))?;
                journal.file.sync_data().map_err(io_error(&self.path))
            })
        };
        let mut pending = self.pending.lock();
        for id in settled {
            pending.in_flight.remove(id);
        }
        if let Err(error) = written {
            // Unchanged, and due again as they were.
            for id in settled {
                pending.wait(*id);
            }
            return Err(error);
        }
        journal.records += records.len();
        for record in records {
            pending.apply(record);
        }
        for id in settled {
            pending.wait(*id);
        }
        if journal.records < COMPACT_MIN_RECORDS.max(4 * pending.deliveries.len()) {
            return Ok(());
        }
        let snapshot = pending.deliveries.clone();
        drop(pending);
        // Held deliveries are written held: a restart releases them.
        journal.file = Self::rewrite(&self.directory, &self.path, &snapshot)?;
        journal.records = snapshot.len();
        Ok(())
    }

    /// Persists a new delivery, due at once. Returns its id.
    /// Makes every id given from now on greater than `id`: ids also name the
    /// history's records, which outlive the deliveries (an outbox emptied
    /// before a restart would otherwise start again at 1).
    pub fn ids_after(&self, id: u64) {
        self.next_id.fetch_max(id.saturating_add(1), Ordering::Relaxed);
    }

    /// A fresh id for a notification that never becomes a delivery (its
    /// template failed), so that its history record has an id of its own.
    pub fn reserve_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn enqueue(&self, target: &str, url: &str, body: String, now_ms: i64) -> Result<u64, Error> {
        let delivery = NewDelivery {
            target: target.to_owned(),
            receiver: String::new(),
            url: url.to_owned(),
            body,
            log_entries: Vec::new(),
            channel: None,
        };
        let ids = self.enqueue_with(vec![delivery], now_ms, now_ms, &[])?;
        Ok(ids[0])
    }

    /// Persists a new delivery held back from sending until [`Outbox::release`]
    /// (or the next start), carrying the notification-log entries it stands for.
    pub fn enqueue_held(
        &self,
        target: &str,
        url: &str,
        body: String,
        now_ms: i64,
        log_entries: Vec<crate::routing::LogEntry>,
    ) -> Result<u64, Error> {
        let delivery = NewDelivery {
            target: target.to_owned(),
            receiver: String::new(),
            url: url.to_owned(),
            body,
            log_entries,
            channel: None,
        };
        let ids = self.enqueue_batch(vec![delivery], now_ms)?;
        Ok(ids[0])
    }

    /// Persists deliveries held back from sending until [`Outbox::release`]
    /// (or the next start), all with one write and one fsync. Returns their ids in order.
    pub fn enqueue_batch(&self, deliveries: Vec<NewDelivery>, now_ms: i64) -> Result<Vec<u64>, Error> {
        self.enqueue_with(deliveries, now_ms, HELD, &[])
    }

    /// [`Outbox::enqueue_batch`], removing the `superseded` deliveries in the
    /// same write (those not in flight; the others are left to settle).
    /// Returns the new ids and the superseded deliveries removed.
    pub fn enqueue_batch_superseding(
        &self,
        deliveries: Vec<NewDelivery>,
        superseded: &[u64],
        now_ms: i64,
    ) -> Result<(Vec<u64>, Vec<Delivery>), Error> {
        let removed: Vec<Delivery> = {
            let pending = self.pending.lock();
            superseded
                .iter()
                .filter(|id| !pending.in_flight.contains(id))
                .filter_map(|id| pending.deliveries.get(id).cloned())
                .collect()
        };
        let done: Vec<u64> = removed.iter().map(|delivery| delivery.id).collect();
        let ids = self.enqueue_with(deliveries, now_ms, HELD, &done)?;
        Ok((ids, removed))
    }

    /// Deliveries already attempted and waiting for a retry (not in flight)
    /// whose notification-log entries include one of `keys`.
    pub fn retrying_for(&self, keys: &HashSet<String>) -> Vec<u64> {
        let pending = self.pending.lock();
        pending
            .deliveries
            .values()
            .filter(|delivery| delivery.attempts > 0 && !pending.in_flight.contains(&delivery.id))
            .filter(|delivery| delivery.log_entries.iter().any(|entry| keys.contains(&entry.key())))
            .map(|delivery| delivery.id)
            .collect()
    }

    fn enqueue_with(
        &self,
        deliveries: Vec<NewDelivery>,
        now_ms: i64,
        next_attempt_ms: i64,
        done: &[u64],
    ) -> Result<Vec<u64>, Error> {
        if deliveries.is_empty() && done.is_empty() {
            return Ok(Vec::new());
        }
        let first = self.next_id.fetch_add(deliveries.len() as u64, Ordering::Relaxed);
        let ids: Vec<u64> = (first..first + deliveries.len() as u64).collect();
        let records: Vec<Record> = done
            .iter()
            .map(|id| Record::Done(*id))
            .chain(deliveries.into_iter().zip(first..).map(|(new, id)| {
                Record::Put(Box::new(Delivery {
                    id,
                    target: new.target,
                    receiver: new.receiver,
                    url: new.url,
                    body: new.body,
                    attempts: 0,
                    next_attempt_ms,
                    created_ms: now_ms,
                    log_entries: new.log_entries,
                    channel: new.channel,
                }))
            }))
            .collect();
        self.commit(|_| records, &[])?;
        Ok(ids)
    }

    /// Makes held deliveries due at `now_ms` (in memory: a restart releases them too).
    pub fn release(&self, ids: &[u64], now_ms: i64) {
        let mut pending = self.pending.lock();
        for id in ids {
            if let Some(delivery) = pending.deliveries.get_mut(id)
                && delivery.next_attempt_ms == HELD
            {
                delivery.next_attempt_ms = now_ms;
                pending.wait(*id);
            }
        }
    }

    /// The notification-log entries of the pending deliveries.
    pub fn log_entries(&self) -> Vec<crate::routing::LogEntry> {
        self.pending.lock().deliveries.values().flat_map(|delivery| delivery.log_entries.iter().cloned()).collect()
    }

    /// Deliveries whose next attempt is due at `now_ms`, oldest first (in flight or not).
    pub fn due(&self, now_ms: i64) -> Vec<Delivery> {
        self.pending.lock().deliveries.values().filter(|delivery| delivery.next_attempt_ms <= now_ms).cloned().collect()
    }

    /// Takes the deliveries due at `now_ms` that are not in flight, oldest
    /// first, and marks them in flight until [`Outbox::settle`]. Visits only
    /// the deliveries taken.
    pub fn take_due(&self, now_ms: i64) -> Vec<Delivery> {
        let mut pending = self.pending.lock();
        let Pending { deliveries, in_flight, waiting } = &mut *pending;
        let mut ids = Vec::new();
        while let Some(&(next_attempt_ms, id)) = waiting.first()
            && next_attempt_ms <= now_ms
        {
            waiting.pop_first();
            if in_flight.insert(id) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        ids.iter().filter_map(|id| deliveries.get(id).cloned()).collect()
    }

    /// Gives back deliveries taken but not attempted (their attempt was cancelled).
    pub fn untake(&self, ids: &[u64]) {
        let mut pending = self.pending.lock();
        for id in ids {
            pending.in_flight.remove(id);
            pending.wait(*id);
        }
    }

    /// The earliest next attempt among pending deliveries not in flight.
    pub fn next_due(&self) -> Option<i64> {
        self.pending.lock().waiting.first().map(|(next_attempt_ms, _)| *next_attempt_ms)
    }

    /// Records the outcomes of attempts with one write and one fsync: done
    /// deliveries are removed, failed ones counted and rescheduled. Each is
    /// no longer in flight.
    pub fn settle(&self, settlements: &[Settlement]) -> Result<(), Error> {
        let ids: Vec<u64> = settlements
            .iter()
            .map(|settlement| match *settlement {
                Settlement::Done(id) | Settlement::Retry { id, .. } => id,
            })
            .collect();
        let records = |pending: &Pending| {
            settlements
                .iter()
                .filter_map(|settlement| match *settlement {
                    Settlement::Done(id) => pending.deliveries.contains_key(&id).then_some(Record::Done(id)),
                    Settlement::Retry { id, next_attempt_ms } => pending
                        .deliveries
                        .get(&id)
                        .map(|delivery| Record::Retry { id, attempts: delivery.attempts + 1, next_attempt_ms }),
                })
                .collect()
        };
        self.commit(records, &ids)
    }

    /// Removes a delivered (or permanently refused) delivery.
    pub fn complete(&self, id: u64) -> Result<(), Error> {
        self.settle(&[Settlement::Done(id)])
    }

    /// Records a failed attempt and when to try again.
    pub fn reschedule(&self, id: u64, next_attempt_ms: i64) -> Result<(), Error> {
        self.settle(&[Settlement::Retry { id, next_attempt_ms }])
    }

    /// Number of pending deliveries.
    pub fn len(&self) -> usize {
        self.pending.lock().deliveries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_survive_a_reopen_and_complete_removes_them() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let outbox = Outbox::open(directory.path()).expect("open");
        let first = outbox.enqueue("am", "http://a", "[1]".into(), 1000).expect("enqueue");
        let second = outbox.enqueue("am", "http://a", "[2]".into(), 1000).expect("enqueue");
        outbox.reschedule(second, 5000).expect("reschedule");
        drop(outbox);

        let outbox = Outbox::open(directory.path()).expect("reopen");
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.due(1000).iter().map(|d| d.id).collect::<Vec<_>>(), [first]);
        assert_eq!(outbox.due(5000).len(), 2);
        assert_eq!(outbox.due(5000)[1].attempts, 1);
        outbox.complete(first).expect("complete");
        let third = outbox.enqueue("am", "http://a", "[3]".into(), 1000).expect("enqueue");
        assert!(third > second, "ids keep growing after a reopen");
        drop(outbox);
        assert_eq!(Outbox::open(directory.path()).expect("reopen").len(), 2);
    }

    #[test]
    fn a_torn_tail_is_skipped_and_a_damaged_record_set_aside() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let outbox = Outbox::open(directory.path()).expect("open");
        let ids = outbox
            .enqueue_batch(
                (0..3)
                    .map(|n| NewDelivery {
                        target: "ops/webhook[0]".into(),
                        receiver: "ops".into(),
                        url: "http://a".into(),
                        body: format!("[{n}]"),
                        log_entries: Vec::new(),
                        channel: None,
                    })
                    .collect(),
                1000,
            )
            .expect("batch");
        assert_eq!(ids.len(), 3);
        assert!(outbox.due(i64::MAX - 1).is_empty(), "a batch is held until released");
        drop(outbox);
        let path = directory.path().join("outbox.jsonl");
        let text = std::fs::read_to_string(&path).expect("read");
        let mut lines: Vec<&str> = text.lines().collect();
        lines[1] = "{\"put\": {broken";
        let torn = "{\"done\":";
        std::fs::write(&path, format!("{}\n{torn}", lines.join("\n"))).expect("write");

        let outbox = Outbox::open(directory.path()).expect("reopen");
        assert_eq!(outbox.len(), 2, "the damaged record is lost, the others kept");
        assert_eq!(outbox.due(1000).len(), 2, "held deliveries are released by a restart");
        assert_eq!(outbox.due(1000)[0].receiver_name(), "ops");
        let corrupt = std::fs::read_to_string(directory.path().join("outbox.jsonl.corrupt")).expect("set aside");
        assert!(corrupt.contains("broken"));
        assert!(!corrupt.contains(torn), "a torn tail was never acknowledged");
    }

    /// The `n`th delivery to one webhook, its body `[n]`.
    fn webhook_delivery(n: usize) -> NewDelivery {
        NewDelivery {
            target: "ops/webhook[0]".into(),
            receiver: "ops".into(),
            url: "http://a".into(),
            body: format!("[{n}]"),
            log_entries: Vec::new(),
            channel: None,
        }
    }

    #[test]
    fn a_batch_settles_with_one_write_and_compaction_keeps_what_is_pending() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let outbox = Outbox::open(directory.path()).expect("open");
        let mut kept = Vec::new();
        for round in 0..3 {
            let ids = outbox
                .enqueue_batch((0..COMPACT_MIN_RECORDS / 2).map(webhook_delivery).collect(), 1000)
                .expect("batch");
            outbox.release(&ids, 1000);
            let taken = outbox.take_due(1000);
            assert_eq!(taken.len(), ids.len());
            assert!(outbox.take_due(1000).is_empty(), "in flight until settled");
            assert_eq!(outbox.next_due(), (round > 0).then_some(2000), "only the earlier rounds' retries wait");
            let mut settlements: Vec<Settlement> = ids[1..].iter().map(|id| Settlement::Done(*id)).collect();
            settlements.push(Settlement::Retry { id: ids[0], next_attempt_ms: 2000 + round });
            outbox.settle(&settlements).expect("settle");
            kept.push(ids[0]);
        }
        assert_eq!(outbox.len(), 3);
        assert_eq!(outbox.next_due(), Some(2000));
        let lines = std::fs::read_to_string(directory.path().join("outbox.jsonl")).expect("read").lines().count();
        assert!(lines < COMPACT_MIN_RECORDS, "the journal was compacted ({lines} lines)");
        drop(outbox);
        let outbox = Outbox::open(directory.path()).expect("reopen");
        let due = outbox.due(i64::MAX - 1);
        assert_eq!(due.iter().map(|delivery| delivery.id).collect::<Vec<_>>(), kept);
        assert!(due.iter().all(|delivery| delivery.attempts == 1));
    }

    #[test]
    fn take_due_follows_releases_retries_and_untaken_deliveries() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let outbox = Outbox::open(directory.path()).expect("open");
        let ids = outbox.enqueue_batch((0..3).map(webhook_delivery).collect(), 1000).expect("batch");
        assert_eq!(outbox.next_due(), None, "held deliveries are not due");
        outbox.release(&[ids[2], ids[0]], 1000);
        assert_eq!(outbox.next_due(), Some(1000));
        assert!(outbox.take_due(999).is_empty());
        let taken: Vec<u64> = outbox.take_due(1000).iter().map(|delivery| delivery.id).collect();
        assert_eq!(taken, [ids[0], ids[2]], "oldest first");
        assert_eq!(outbox.next_due(), None, "in flight");
        outbox.untake(&[ids[2]]);
        assert_eq!(outbox.next_due(), Some(1000), "given back, due again");
        assert_eq!(outbox.take_due(1000).iter().map(|delivery| delivery.id).collect::<Vec<_>>(), [ids[2]]);
        outbox
            .settle(&[Settlement::Retry { id: ids[0], next_attempt_ms: 5000 }, Settlement::Done(ids[2])])
            .expect("settle");
        assert_eq!(outbox.next_due(), Some(5000));
        assert!(outbox.take_due(4999).is_empty());
        let retried = outbox.take_due(5000);
        assert_eq!(retried.iter().map(|delivery| (delivery.id, delivery.attempts)).collect::<Vec<_>>(), [(ids[0], 1)]);
        outbox.settle(&[Settlement::Done(ids[0])]).expect("settle");
        assert_eq!(outbox.next_due(), None);
        assert_eq!(outbox.len(), 1, "the held one is left");
        drop(outbox);
        let outbox = Outbox::open(directory.path()).expect("reopen");
        assert_eq!(outbox.next_due(), Some(1000), "a restart releases what was held");
        assert_eq!(outbox.take_due(1000).iter().map(|delivery| delivery.id).collect::<Vec<_>>(), [ids[1]]);
    }

    #[test]
    fn an_outbox_of_one_file_per_delivery_is_folded_into_the_journal() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let legacy = Delivery {
            id: 7,
            target: "am".into(),
            receiver: String::new(),
            url: "http://a".into(),
            body: "[7]".into(),
            attempts: 2,
            next_attempt_ms: HELD,
            created_ms: 1000,
            log_entries: Vec::new(),
            channel: None,
        };
        let file = directory.path().join(format!("{:020}.json", 7));
        std::fs::write(&file, serde_json::to_vec(&legacy).expect("JSON")).expect("write");
        std::fs::write(directory.path().join("garbage.json"), "{not json").expect("write");
        std::fs::write(directory.path().join("00000000000000000009.tmp"), "partial").expect("write");
        let outbox = Outbox::open(directory.path()).expect("open");
        assert_eq!(outbox.due(1000).iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(), [(7, 2)]);
        assert!(!file.exists(), "folded into the journal");
        assert!(directory.path().join("garbage.corrupt").exists());
        assert!(!directory.path().join("00000000000000000009.tmp").exists());
        assert_eq!(outbox.enqueue("am", "http://a", "[8]".into(), 1000).expect("enqueue"), 8);
        drop(outbox);
        assert_eq!(Outbox::open(directory.path()).expect("reopen").len(), 2);
    }
}
