//! Routing state on disk, under `<data>/notify/`: the notification log
//! (`nflog.jsonl`), silences (`silences.jsonl`) and the notification history
//! (`history.jsonl`). Each is an append-only journal of JSON lines, fsynced
//! before the change takes effect; reading keeps the last record per key and
//! skips a torn last line; opening rewrites each journal compacted (temporary
//! file, fsync, rename, fsync of the directory). Two writes may leave the
//! fsync to a later one: log entries that an outbox delivery also carries
//! ([`StateStore::write_log`], fsynced by [`StateStore::sync_log`] before the
//! outbox drops the delivery) and new history records
//! ([`StateStore::record_many_unsynced`]); both survive the process being
//! killed, as they are in the kernel's cache once written.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::routing::{LogEntry, Silence, StoredAlert};

/// How many history records are kept (older ones are dropped at compaction).
pub const HISTORY_LIMIT: usize = 10_000;

/// One notification as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// The outbox delivery id.
    pub id: u64,
    pub receiver: String,
    pub integration: String,
    pub group_key: String,
    /// Fingerprint, alertname and status (`firing`/`resolved`) of each alert sent.
    pub alerts: Vec<HistoryAlert>,
    pub created_ms: i64,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryAlert {
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    pub status: String,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Outbox { path: path.to_owned(), source }
}

/// One append-only journal.
#[derive(Debug)]
struct Journal {
    path: PathBuf,
    file: Mutex<JournalFile>,
}

/// A journal's file, and whether it was written since its last fsync.
#[derive(Debug)]
struct JournalFile {
    file: File,
    unsynced: bool,
}

impl Journal {
    /// Reads every complete record, then rewrites the file with `compact(records)`.
    fn open<T: Serialize + for<'de> Deserialize<'de>>(
        path: PathBuf,
        compact: impl FnOnce(Vec<T>) -> Vec<T>,
    ) -> Result<(Self, Vec<T>), Error> {
        let mut records = Vec::new();
        if let Ok(file) = File::open(&path) {
            for (number, line) in BufReader::new(file).lines().enumerate() {
                let line = line.map_err(io_error(&path))?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str(&line) {
                    Ok(record) => records.push(record),
                    Err(error) => {
                        tracing::warn!(path = %path.display(), line = number + 1, error = %error, "unreadable journal record skipped")
                    }
                }
            }
        }
        let records = compact(records);
        let temporary = path.with_extension("jsonl.tmp");
        {
            let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
            let mut text = String::new();
            for record in &records {
                text.push_str(&serde_json::to_string(record).unwrap_or_default());
                text.push('\n');
            }
            file.write_all(text.as_bytes()).map_err(io_error(&temporary))?;
            file.sync_all().map_err(io_error(&temporary))?;
        }
        fs::rename(&temporary, &path).map_err(io_error(&path))?;
        if let Some(directory) = path.parent() {
            File::open(directory).and_then(|directory| directory.sync_all()).map_err(io_error(directory))?;
        }
        let file = OpenOptions::new().append(true).open(&path).map_err(io_error(&path))?;
        Ok((Self { path, file: Mutex::new(JournalFile { file, unsynced: false }) }, records))
    }

    /// Appends records and fsyncs (the records written before them included).
    fn append<T: Serialize>(&self, records: &[T]) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        let mut file = self.write_locked(records)?;
        file.file.sync_data().map_err(io_error(&self.path))?;
        file.unsynced = false;
        Ok(())
    }

    /// Appends records without waiting for the disk: they survive the
    /// process being killed (they are in the kernel's cache), and a power
    /// loss only once [`Journal::sync`] or [`Journal::append`] ran.
    fn write<T: Serialize>(&self, records: &[T]) -> Result<(), Error> {
        if !records.is_empty() {
            drop(self.write_locked(records)?);
        }
        Ok(())
    }

    fn write_locked<T: Serialize>(&self, records: &[T]) -> Result<parking_lot::MutexGuard<'_, JournalFile>, Error> {
        let mut text = String::new();
        for record in records {
            text.push_str(&serde_json::to_string(record).unwrap_or_default());
            text.push('\n');
        }
        let mut file = self.file.lock();
        file.unsynced = true;
        file.file.write_all(text.as_bytes()).map_err(io_error(&self.path))?;
        Ok(file)
    }

    /// Fsyncs what [`Journal::write`] wrote, if anything.
    fn sync(&self) -> Result<(), Error> {
        let mut file = self.file.lock();
        if file.unsynced {
            file.file.sync_data().map_err(io_error(&self.path))?;
            file.unsynced = false;
        }
        Ok(())
    }
}

/// The persisted routing state.
#[derive(Debug)]
pub struct StateStore {
    directory: PathBuf,
    nflog: Journal,
    silences: Journal,
    history: Journal,
    recent: Mutex<Recent>,
}

/// The newest history records in memory, with each one's position by id.
#[derive(Debug, Default)]
struct Recent {
    records: VecDeque<HistoryRecord>,
    /// Id to position counted from the first record ever held (`dropped` included).
    index: HashMap<u64, usize>,
    /// Records dropped from the front.
    dropped: usize,
}

impl Recent {
    fn get_mut(&mut self, id: u64) -> Option<&mut HistoryRecord> {
        let position = self.index.get(&id)?.checked_sub(self.dropped)?;
        self.records.get_mut(position).filter(|record| record.id == id)
    }

    fn upsert(&mut self, record: HistoryRecord) {
        if let Some(slot) = self.get_mut(record.id) {
            *slot = record;
            return;
        }
        if self.records.len() >= HISTORY_LIMIT
            && let Some(oldest) = self.records.pop_front()
        {
            self.index.remove(&oldest.id);
            self.dropped += 1;
        }
        self.index.insert(record.id, self.dropped + self.records.len());
        self.records.push_back(record);
    }
}

/// What [`StateStore::open`] found.
#[derive(Debug, Default)]
pub struct Restored {
    pub log: Vec<LogEntry>,
    pub silences: Vec<Silence>,
    pub alerts: Vec<StoredAlert>,
}

impl StateStore {
    /// Opens (creating) the state in `directory`.
    pub fn open(directory: &Path, now_ms: i64) -> Result<(Self, Restored), Error> {
        fs::create_dir_all(directory).map_err(io_error(directory))?;
        let (nflog, log) = Journal::open(directory.join("nflog.jsonl"), |records: Vec<LogEntry>| {
            let mut latest: HashMap<String, LogEntry> = HashMap::new();
            for entry in records {
                if entry.expires_at_ms > now_ms {
                    latest.insert(entry.key(), entry);
                }
            }
            let mut entries: Vec<LogEntry> = latest.into_values().collect();
            entries.sort_by_key(LogEntry::key);
            entries
        })?;
        let (silences, silence_records) = Journal::open(directory.join("silences.jsonl"), |records: Vec<Silence>| {
            let mut latest: BTreeMap<String, Silence> = BTreeMap::new();
            for silence in records {
                if silence.ends_at_ms.saturating_add(crate::routing::silence::SILENCE_RETENTION_MS) > now_ms {
                    latest.insert(silence.id.clone(), silence);
                } else {
                    latest.remove(&silence.id);
                }
            }
            latest.into_values().collect()
        })?;
        let (history, history_records) =
            Journal::open(directory.join("history.jsonl"), |records: Vec<HistoryRecord>| {
                let mut latest: BTreeMap<u64, HistoryRecord> = BTreeMap::new();
                for record in records {
                    latest.insert(record.id, record);
                }
                let skip = latest.len().saturating_sub(HISTORY_LIMIT);
                latest.into_values().skip(skip).collect()
            })?;
        let mut recent = Recent::default();
        for record in history_records {
            recent.upsert(record);
        }
        let alerts_path = directory.join("alerts.json");
        let alerts: Vec<StoredAlert> = match fs::read_to_string(&alerts_path) {
            Ok(text) => serde_json::from_str(&text).unwrap_or_else(|error| {
                tracing::warn!(path = %alerts_path.display(), error = %error, "unreadable alert snapshot ignored");
                Vec::new()
            }),
            Err(_) => Vec::new(),
        };
        let store = Self { directory: directory.to_owned(), nflog, silences, history, recent: Mutex::new(recent) };
        Ok((store, Restored { log, silences: silence_records, alerts }))
    }

    /// Replaces the snapshot of the alerts held (temporary file, fsync, rename).
    pub fn write_alerts(&self, alerts: &[&StoredAlert]) -> Result<(), Error> {
        let path = self.directory.join("alerts.json");
        let temporary = path.with_extension("json.tmp");
        let bytes = serde_json::to_vec(alerts).unwrap_or_default();
        let mut file = File::create(&temporary).map_err(io_error(&temporary))?;
        file.write_all(&bytes).map_err(io_error(&temporary))?;
        file.sync_all().map_err(io_error(&temporary))?;
        fs::rename(&temporary, &path).map_err(io_error(&path))
    }

    pub fn append_log(&self, entries: &[LogEntry]) -> Result<(), Error> {
        self.nflog.append(entries)
    }

    /// Writes log entries without fsync: for entries a pending outbox
    /// delivery also carries, so that the outbox holds them on disk until
    /// [`StateStore::sync_log`] runs, which must come before the outbox
    /// drops the delivery.
    pub fn write_log(&self, entries: &[LogEntry]) -> Result<(), Error> {
        self.nflog.write(entries)
    }

    /// Fsyncs the log entries [`StateStore::write_log`] wrote.
    pub fn sync_log(&self) -> Result<(), Error> {
        self.nflog.sync()
    }

    pub fn append_silences(&self, silences: &[Silence]) -> Result<(), Error> {
        self.silences.append(silences)
    }

    /// Records a history record (new or updated).
    pub fn record(&self, record: HistoryRecord) -> Result<(), Error> {
        self.record_many(vec![record])
    }

    /// Records history records (new or updated) with one write and one fsync.
    pub fn record_many(&self, records: Vec<HistoryRecord>) -> Result<(), Error> {
        self.history.append(&records)?;
        let mut recent = self.recent.lock();
        for record in records {
            recent.upsert(record);
        }
        Ok(())
    }

    /// Records new history records with one write and no fsync: the next
    /// [`StateStore::record_many`] makes them durable with its own. The
    /// history is a record of what happened, not a guarantee of delivery,
    /// so a flush does not wait for the disk for it.
    pub fn record_many_unsynced(&self, records: Vec<HistoryRecord>) -> Result<(), Error> {
        self.history.write(&records)?;
        let mut recent = self.recent.lock();
        for record in records {
            recent.upsert(record);
        }
        Ok(())
    }

    /// The history record of a delivery.
    pub fn history_record(&self, id: u64) -> Option<HistoryRecord> {
        self.recent.lock().get_mut(id).map(|record| record.clone())
    }

    /// The most recent history records, newest first.
    pub fn history(&self, limit: usize) -> Vec<HistoryRecord> {
        self.recent.lock().records.iter().rev().take(limit).cloned().collect()
    }
}
