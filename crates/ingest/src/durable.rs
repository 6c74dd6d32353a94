//! Durable ingest: samples go to the in-memory store and to the write-ahead
//! log, in the same order, before they are acknowledged; on start the log is
//! replayed into a fresh store.
//!
//! Record formats (little endian, lengths and ids as LEB128 varints):
//!
//! ```text
//! series:  0x01 id (name-length name value-length value)* — count first
//! samples: 0x02 count (id timestamp:i64 value:f64-bits)*
//! ```
//!
//! Ordering: appends to memory and writes to the log happen under one lock, so
//! the log replays in the order memory saw; the fsync happens after the lock is
//! released and is shared between concurrent writers (group commit). Only
//! samples the store accepted are logged. A sample is acknowledged once its
//! record is fsynced (policy `Always`), so neither a killed process nor a lost
//! machine loses an acknowledged sample.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use tsdb::{Labels, LabelsBuilder, MemStore};
use wal::{Wal, WalOptions};

const SERIES_RECORD: u8 = 1;
const SAMPLES_RECORD: u8 = 2;

/// What appending a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendOutcome {
    pub samples_appended: usize,
    pub series: usize,
    pub out_of_order: usize,
    pub duplicates: usize,
    pub invalid_series: usize,
    pub histograms_refused: usize,
    pub series_limited: usize,
    /// The first refusal, for the error message.
    pub first_error: Option<String>,
}

impl AppendOutcome {
    /// Samples the sender should not retry (Prometheus answers 400 for these).
    pub fn rejected(&self) -> usize {
        self.out_of_order + self.duplicates + self.invalid_series + self.histograms_refused + self.series_limited
    }
}

/// Errors of durable ingest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Wal(#[from] wal::Error),
}

/// What replaying the log at start found.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    pub records: u64,
    pub series: usize,
    pub samples: u64,
    /// Records that did not decode (skipped).
    pub undecodable: u64,
    /// Truncations of a torn or corrupt log tail.
    pub repairs: Vec<String>,
}

struct Logged {
    ids: HashMap<Labels, u64>,
    next_id: u64,
}

/// The store plus its write-ahead log.
pub struct DurableStore {
    store: Arc<MemStore>,
    wal: Option<Wal>,
    logged: Mutex<Logged>,
}

impl std::fmt::Debug for DurableStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableStore").field("wal", &self.wal).finish_non_exhaustive()
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn get_varint(bytes: &[u8], position: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*position)?;
        *position += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

fn get_bytes<'a>(bytes: &'a [u8], position: &mut usize) -> Option<&'a [u8]> {
    let length = usize::try_from(get_varint(bytes, position)?).ok()?;
    let slice = bytes.get(*position..position.checked_add(length)?)?;
    *position += length;
    Some(slice)
}

fn get_u64(bytes: &[u8], position: &mut usize) -> Option<u64> {
    let slice = bytes.get(*position..*position + 8)?;
    *position += 8;
    Some(u64::from_le_bytes(slice.try_into().ok()?))
}

fn encode_series(out: &mut Vec<u8>, id: u64, labels: &Labels) {
    out.push(SERIES_RECORD);
    put_varint(out, id);
    put_varint(out, labels.len() as u64);
    for label in labels {
        put_varint(out, label.name.len() as u64);
        out.extend_from_slice(label.name.as_bytes());
        put_varint(out, label.value.len() as u64);
        out.extend_from_slice(label.value.as_bytes());
    }
}

impl DurableStore {
    /// A store without a log: nothing survives the process (tests, replay).
    pub fn in_memory(store: Arc<MemStore>) -> Self {
        Self { store, wal: None, logged: Mutex::new(Logged { ids: HashMap::new(), next_id: 1 }) }
    }

    /// Opens the log in `directory`, replays it into `store` (which should be
    /// empty) and returns the durable store.
    pub fn open(directory: &Path, store: Arc<MemStore>, options: WalOptions) -> Result<(Self, ReplayReport), Error> {
        let mut report = ReplayReport::default();
        let mut by_id: HashMap<u64, tsdb::SeriesRef> = HashMap::new();
        let mut ids: HashMap<Labels, u64> = HashMap::new();
        let mut next_id = 1;
        let (wal, replay) = Wal::open(directory, options, |record| {
            if Self::replay_record(record, &store, &mut by_id, &mut ids, &mut next_id, &mut report).is_none() {
                report.undecodable += 1;
            }
        })?;
        report.records = replay.records;
        report.repairs = replay.repairs;
        report.series = ids.len();
        let durable = Self { store, wal: Some(wal), logged: Mutex::new(Logged { ids, next_id }) };
        Ok((durable, report))
    }

    fn replay_record(
        record: &[u8],
        store: &MemStore,
        by_id: &mut HashMap<u64, tsdb::SeriesRef>,
        ids: &mut HashMap<Labels, u64>,
        next_id: &mut u64,
        report: &mut ReplayReport,
    ) -> Option<()> {
        let mut position = 1;
        match *record.first()? {
            SERIES_RECORD => {
                let id = get_varint(record, &mut position)?;
                let count = get_varint(record, &mut position)?;
                let mut builder = LabelsBuilder::default();
                for _ in 0..count {
                    let name = std::str::from_utf8(get_bytes(record, &mut position)?).ok()?;
                    let value = std::str::from_utf8(get_bytes(record, &mut position)?).ok()?;
                    builder.set(name, value);
                }
                let labels = builder.build();
                by_id.insert(id, store.get_or_create_series(&labels));
                ids.insert(labels, id);
                *next_id = (*next_id).max(id + 1);
            }
            SAMPLES_RECORD => {
                let count = get_varint(record, &mut position)?;
                for _ in 0..count {
                    let id = get_varint(record, &mut position)?;
                    let timestamp = get_u64(record, &mut position)? as i64;
                    let value = f64::from_bits(get_u64(record, &mut position)?);
                    let series = by_id.get(&id)?;
                    if store.append_ref(series, timestamp, value).is_ok() {
                        report.samples += 1;
                    }
                }
            }
            _ => return None,
        }
        Some(())
    }

    pub fn store(&self) -> &Arc<MemStore> {
        &self.store
    }

    /// Appends `batch` (series and their samples, oldest first): every sample
    /// the store accepts is logged; refusals are counted. Returns once the
    /// accepted samples are durable. `admit` decides whether a series that does
    /// not exist yet may be created (the active-series limit).
    pub fn append(
        &self,
        batch: &[(Labels, Vec<(i64, f64)>)],
        admit: &dyn Fn(&Labels) -> bool,
    ) -> Result<AppendOutcome, Error> {
        let mut outcome = AppendOutcome::default();
        let mut payloads: Vec<Vec<u8>> = Vec::new();
        let mut samples_record: Vec<u8> = Vec::new();
        let mut logged_samples = 0u64;
        let sequence = {
            let mut logged = self.logged.lock();
            for (labels, samples) in batch {
                if samples.is_empty() {
                    continue;
                }
                if !self.store.contains(labels) && !admit(labels) {
                    outcome.series_limited += samples.len();
                    outcome.first_error.get_or_insert_with(|| format!("series limit reached: cannot create {labels}"));
                    continue;
                }
                let reference = self.store.get_or_create_series(labels);
                outcome.series += 1;
                let id = match logged.ids.get(labels) {
                    Some(&id) => id,
                    None => {
                        let id = logged.next_id;
                        logged.next_id += 1;
                        logged.ids.insert(labels.clone(), id);
                        if self.wal.is_some() {
                            let mut record = Vec::new();
                            encode_series(&mut record, id, labels);
                            payloads.push(record);
                        }
                        id
                    }
                };
                for &(timestamp, value) in samples {
                    match self.store.append_ref(&reference, timestamp, value) {
                        Ok(()) => {
                            outcome.samples_appended += 1;
                            if self.wal.is_some() {
                                put_varint(&mut samples_record, id);
                                samples_record.extend_from_slice(&(timestamp as u64).to_le_bytes());
                                samples_record.extend_from_slice(&value.to_bits().to_le_bytes());
                                logged_samples += 1;
                            }
                        }
                        Err(tsdb::Error::OutOfOrder { .. }) => {
                            outcome.out_of_order += 1;
                            outcome.first_error.get_or_insert_with(|| format!("out of order sample for {labels}"));
                        }
                        Err(tsdb::Error::DuplicateTimestamp { .. }) => {
                            outcome.duplicates += 1;
                            outcome.first_error.get_or_insert_with(|| {
                                format!("duplicate sample for timestamp {timestamp} in {labels}")
                            });
                        }
                        Err(other) => {
                            outcome.invalid_series += 1;
                            outcome.first_error.get_or_insert(other.to_string());
                        }
                    }
                }
            }
            match &self.wal {
                Some(wal) if logged_samples > 0 || !payloads.is_empty() => {
                    if logged_samples > 0 {
                        let mut record = vec![SAMPLES_RECORD];
                        put_varint(&mut record, logged_samples);
                        record.extend_from_slice(&samples_record);
                        payloads.push(record);
                    }
                    let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                    Some(wal.write(&slices)?)
                }
                _ => None,
            }
        };
        if let (Some(wal), Some(sequence)) = (&self.wal, sequence) {
            wal.commit(sequence)?;
        }
        Ok(outcome)
    }

    /// Bytes the write-ahead log holds on disk (0 without a log).
    pub fn wal_size_bytes(&self) -> u64 {
        self.wal.as_ref().map_or(0, Wal::size_bytes)
    }

    /// Fsyncs the log (at shutdown).
    pub fn sync(&self) -> Result<(), Error> {
        match &self.wal {
            Some(wal) => Ok(wal.sync()?),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsdb::{Matcher, Queryable};

    fn labels(tenant: &str) -> Labels {
        Labels::from_pairs([("__name__", "bookings_total"), ("tenant_id", tenant)])
    }

    #[test]
    fn replay_restores_exactly_what_was_accepted() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let (durable, report) =
            DurableStore::open(directory.path(), Arc::new(MemStore::new()), WalOptions::default()).expect("open");
        assert_eq!(report.records, 0);
        let batch = vec![(labels("a"), vec![(1000, 1.0), (2000, f64::NAN)]), (labels("b"), vec![(1000, 5.0)])];
        let outcome = durable.append(&batch, &|_| true).expect("append");
        assert_eq!(outcome.samples_appended, 3);
        let outcome =
            durable.append(&[(labels("a"), vec![(1500, 9.0), (3000, tsdb::STALE_NAN)])], &|_| true).expect("append");
        assert_eq!((outcome.samples_appended, outcome.out_of_order), (1, 1));
        drop(durable);

        let store = Arc::new(MemStore::new());
        let (durable, report) =
            DurableStore::open(directory.path(), store.clone(), WalOptions::default()).expect("reopen");
        assert_eq!((report.series, report.samples, report.undecodable), (2, 4, 0));
        let a = store.select(&[Matcher::equal("tenant_id", "a")], 0, 10_000).expect("select");
        let values: Vec<u64> = a[0].samples.iter().map(|sample| sample.value.to_bits()).collect();
        assert_eq!(values, [1.0f64.to_bits(), f64::NAN.to_bits(), tsdb::STALE_NAN_BITS]);
        // New series after a reopen get fresh ids.
        durable.append(&[(labels("c"), vec![(1000, 1.0)])], &|_| true).expect("append");
        drop(durable);
        let store = Arc::new(MemStore::new());
        let (_, report) = DurableStore::open(directory.path(), store.clone(), WalOptions::default()).expect("reopen");
        assert_eq!((report.series, report.samples), (3, 5));
    }
}
