//! The simulated day in alertbook's real stores, as live ingest would put it
//! there: every sample (the week-ago baseline included) into the embedded
//! metrics store, every log line through the catalog's PII redaction into a
//! log store. Shared by the day test and the dashboard test.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use demo::Day;

pub fn catalog_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow")
}

/// Every sample of the day, an hour at a time.
pub fn metrics(day: &Day) -> tsdb::MemStore {
    let store = tsdb::MemStore::new();
    let mut converted: BTreeMap<*const demo::Labels, tsdb::Labels> = BTreeMap::new();
    let mut from_ms = day.first_sample_ms();
    while from_ms < day.end_ms() {
        let to_ms = from_ms + demo::HOUR_MS;
        for sample in day.samples_between(from_ms, to_ms) {
            let labels = converted
                .entry(sample.labels as *const _)
                .or_insert_with(|| demo::adapters::tsdb_labels(sample.labels));
            store.append(labels, sample.time_ms, sample.value).expect("samples arrive in order");
        }
        from_ms = to_ms;
    }
    store
}

/// A log store in a temporary directory, which lives as long as it.
pub struct Logs {
    pub store: Arc<logstore::LogStore>,
    _directory: tempfile::TempDir,
}

/// Every log line of the day, an hour at a time, redacted with the catalog's
/// PII rules on the streams alertbook redacts by default, as a push would be.
pub fn logs(day: &Day, catalog: &catalog::Catalog) -> Logs {
    let directory = tempfile::tempdir().expect("temporary directory");
    let options = logstore::LogStoreOptions {
        fsync: wal::FsyncPolicy::Never,
        retention_time: Duration::from_secs(100 * 365 * 24 * 3600),
        ..logstore::LogStoreOptions::default()
    };
    let (log_store, _) = logstore::LogStore::open(directory.path(), options).expect("log store");
    let rules_of_pii = catalog.pii_rules.as_ref().expect("the catalog has PII rules");
    let redaction = pii::StreamRedaction::new(
        pii::Redactor::new(rules_of_pii, catalog.pii_exclusions()),
        &[pii::DEFAULT_STREAMS.to_owned()],
    )
    .expect("redaction");
    let mut from_ms = day.data_start_ms();
    while from_ms < day.end_ms() {
        let to_ms = from_ms + demo::HOUR_MS;
        let mut push = demo::adapters::push_streams(day.logs_between(from_ms, to_ms));
        for stream in &mut push {
            redaction.redact_stream(
                &stream.labels,
                stream.entries.iter_mut().map(|entry| (&mut entry.line, &mut entry.metadata)),
            );
        }
        let stats = log_store.append_at(push, to_ms * 1_000_000).expect("log append");
        assert!(stats.loki_message().is_none(), "{:?}", stats.loki_message());
        from_ms = to_ms;
    }
    Logs { store: Arc::new(log_store), _directory: directory }
}
