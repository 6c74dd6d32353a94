//! The outbox: one file per pending delivery, written atomically (temporary
//! file, fsync, rename, fsync of the directory) before the first attempt and
//! removed once delivered, so that a crash or restart loses nothing accepted.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
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

/// `next_attempt_ms` of a delivery written but not yet released for sending.
pub const HELD: i64 = i64::MAX;

/// Persisted deliveries, loaded at start.
#[derive(Debug)]
pub struct Outbox {
    directory: PathBuf,
    next_id: AtomicU64,
    pending: Mutex<BTreeMap<u64, Delivery>>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Outbox { path: path.to_owned(), source }
}

impl Outbox {
    /// Opens (creating if needed) the outbox in `directory` and loads what it holds.
    /// Leftover temporary files are removed; unreadable entries are set aside as
    /// `*.corrupt` with an error log rather than stopping the start.
    pub fn open(directory: &Path) -> Result<Self, Error> {
        fs::create_dir_all(directory).map_err(io_error(directory))?;
        let mut pending = BTreeMap::new();
        for entry in fs::read_dir(directory).map_err(io_error(directory))? {
            let path = entry.map_err(io_error(directory))?.path();
            match path.extension().and_then(|extension| extension.to_str()) {
                Some("tmp") => {
                    let _ = fs::remove_file(&path);
                }
                Some("json") => match Self::read_entry(&path) {
                    Ok(mut delivery) => {
                        // Held when the process stopped: its log entries are
                        // restored with it, so it is released now.
                        if delivery.next_attempt_ms == HELD {
                            delivery.next_attempt_ms = delivery.created_ms;
                        }
                        pending.insert(delivery.id, delivery);
                    }
                    Err(error) => {
                        tracing::error!(path = %path.display(), error = %error, "unreadable outbox entry set aside");
                        let _ = fs::rename(&path, path.with_extension("corrupt"));
                    }
                },
                _ => {}
            }
        }
        let next_id = pending.keys().next_back().map_or(1, |last| last + 1);
        Ok(Self { directory: directory.to_owned(), next_id: AtomicU64::new(next_id), pending: Mutex::new(pending) })
    }

    fn read_entry(path: &Path) -> Result<Delivery, Error> {
        let text = fs::read_to_string(path).map_err(io_error(path))?;
        serde_json::from_str(&text)
            .map_err(|error| Error::CorruptEntry { path: path.to_owned(), reason: error.to_string() })
    }

    fn path_of(&self, id: u64) -> PathBuf {
        self.directory.join(format!("{id:020}.json"))
    }

    fn write_entry(&self, delivery: &Delivery) -> Result<(), Error> {
        let path = self.path_of(delivery.id);
        let temporary = path.with_extension("tmp");
        let bytes = serde_json::to_vec(delivery)
            .map_err(|error| Error::CorruptEntry { path: path.clone(), reason: error.to_string() })?;
        let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
        file.write_all(&bytes).map_err(io_error(&temporary))?;
        file.sync_all().map_err(io_error(&temporary))?;
        fs::rename(&temporary, &path).map_err(io_error(&path))?;
        self.sync_directory()
    }

    fn sync_directory(&self) -> Result<(), Error> {
        File::open(&self.directory).and_then(|directory| directory.sync_all()).map_err(io_error(&self.directory))
    }

    /// Persists a new delivery, due at once. Returns its id.
    pub fn enqueue(&self, target: &str, url: &str, body: String, now_ms: i64) -> Result<u64, Error> {
        self.enqueue_with(target, url, body, now_ms, Vec::new(), now_ms)
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
        self.enqueue_with(target, url, body, now_ms, log_entries, HELD)
    }

    fn enqueue_with(
        &self,
        target: &str,
        url: &str,
        body: String,
        now_ms: i64,
        log_entries: Vec<crate::routing::LogEntry>,
        next_attempt_ms: i64,
    ) -> Result<u64, Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let delivery = Delivery {
            id,
            target: target.to_owned(),
            url: url.to_owned(),
            body,
            attempts: 0,
            next_attempt_ms,
            created_ms: now_ms,
            log_entries,
            channel: None,
        };
        self.write_entry(&delivery)?;
        self.pending.lock().insert(id, delivery);
        Ok(id)
    }

    /// [`Outbox::enqueue_held`] for a receiver integration's delivery, sent through `channel`.
    pub fn enqueue_held_through(
        &self,
        target: &str,
        url: &str,
        body: String,
        now_ms: i64,
        log_entries: Vec<crate::routing::LogEntry>,
        channel: crate::integrations::Channel,
    ) -> Result<u64, Error> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let delivery = Delivery {
            id,
            target: target.to_owned(),
            url: url.to_owned(),
            body,
            attempts: 0,
            next_attempt_ms: HELD,
            created_ms: now_ms,
            log_entries,
            channel: Some(channel),
        };
        self.write_entry(&delivery)?;
        self.pending.lock().insert(id, delivery);
        Ok(id)
    }

    /// Makes held deliveries due at `now_ms` (in memory: a restart releases them too).
    pub fn release(&self, ids: &[u64], now_ms: i64) {
        let mut pending = self.pending.lock();
        for id in ids {
            if let Some(delivery) = pending.get_mut(id)
                && delivery.next_attempt_ms == HELD
            {
                delivery.next_attempt_ms = now_ms;
            }
        }
    }

    /// The notification-log entries of the pending deliveries.
    pub fn log_entries(&self) -> Vec<crate::routing::LogEntry> {
        self.pending.lock().values().flat_map(|delivery| delivery.log_entries.iter().cloned()).collect()
    }

    /// Deliveries whose next attempt is due at `now_ms`, oldest first.
    pub fn due(&self, now_ms: i64) -> Vec<Delivery> {
        self.pending.lock().values().filter(|delivery| delivery.next_attempt_ms <= now_ms).cloned().collect()
    }

    /// The earliest next attempt among pending deliveries.
    pub fn next_due(&self) -> Option<i64> {
        self.pending.lock().values().map(|delivery| delivery.next_attempt_ms).filter(|next| *next != HELD).min()
    }

    /// Removes a delivered (or permanently refused) delivery.
    pub fn complete(&self, id: u64) -> Result<(), Error> {
        let path = self.path_of(id);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error(&path)(error)),
        }
        self.pending.lock().remove(&id);
        self.sync_directory()
    }

    /// Records a failed attempt and when to try again.
    pub fn reschedule(&self, id: u64, next_attempt_ms: i64) -> Result<(), Error> {
        let updated = {
            let mut pending = self.pending.lock();
            let Some(delivery) = pending.get_mut(&id) else { return Ok(()) };
            delivery.attempts += 1;
            delivery.next_attempt_ms = next_attempt_ms;
            delivery.clone()
        };
        self.write_entry(&updated)
    }

    /// Number of pending deliveries.
    pub fn len(&self) -> usize {
        self.pending.lock().len()
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

        std::fs::write(directory.path().join("garbage.json"), "{not json").expect("write");
        std::fs::write(directory.path().join("00000000000000000009.tmp"), "partial").expect("write");
        let outbox = Outbox::open(directory.path()).expect("reopen");
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.due(1000).iter().map(|d| d.id).collect::<Vec<_>>(), [first]);
        assert_eq!(outbox.due(5000).len(), 2);
        assert_eq!(outbox.due(5000)[1].attempts, 1);
        assert!(directory.path().join("garbage.corrupt").exists());
        assert!(!directory.path().join("00000000000000000009.tmp").exists());
        outbox.complete(first).expect("complete");
        let third = outbox.enqueue("am", "http://a", "[3]".into(), 1000).expect("enqueue");
        assert!(third > second, "ids keep growing after a reopen");
        drop(outbox);
        assert_eq!(Outbox::open(directory.path()).expect("reopen").len(), 2);
    }
}
