//! Log input of `alertbook test rules` and `alertbook replay`: pushed streams
//! (Loki push JSON, or the `input_logs` of a test group) go through the same
//! redaction as live ingest and into a real log store in a temporary
//! directory, which `datasource: logs` rule groups then query.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use logstore::push::PushStream;

/// A log store that lives as long as this value, in a temporary directory.
pub struct LogInput {
    pub store: Arc<logstore::LogStore>,
    _directory: tempfile::TempDir,
}

impl LogInput {
    /// An empty store that accepts entries of any age (recorded data is old).
    pub fn new() -> anyhow::Result<Self> {
        let directory = tempfile::tempdir().context("cannot create a temporary directory for the log store")?;
        let options = logstore::LogStoreOptions {
            fsync: wal::FsyncPolicy::Never,
            // About a century: recorded logs are never too old to replay.
            retention_time: Duration::from_secs(100 * 365 * 24 * 3600),
            ..logstore::LogStoreOptions::default()
        };
        let (store, _) = logstore::LogStore::open(directory.path(), options)
            .with_context(|| format!("cannot open a log store in {}", directory.path().display()))?;
        Ok(Self { store: Arc::new(store), _directory: directory })
    }

    /// Redacts the streams `redaction` covers, then stores them all. Returns
    /// the earliest and latest timestamps appended (nanoseconds).
    pub fn append(
        &self,
        mut streams: Vec<PushStream>,
        redaction: Option<&pii::StreamRedaction>,
    ) -> anyhow::Result<Option<(i64, i64)>> {
        if let Some(redaction) = redaction {
            for stream in &mut streams {
                redaction.redact_stream(
                    &stream.labels,
                    stream.entries.iter_mut().map(|entry| (&mut entry.line, &mut entry.metadata)),
                );
            }
        }
        let timestamps = streams.iter().flat_map(|stream| stream.entries.iter().map(|entry| entry.timestamp_ns));
        let range = timestamps.fold(None, |range: Option<(i64, i64)>, time| match range {
            None => Some((time, time)),
            Some((first, last)) => Some((first.min(time), last.max(time))),
        });
        let Some((_, latest)) = range else { return Ok(None) };
        let stats = self.store.append_at(streams, latest).context("cannot store the log input")?;
        if let Some(message) = stats.loki_message() {
            anyhow::bail!("log input refused: {message}");
        }
        Ok(range)
    }

    /// The datasource of `datasource: logs` rule groups over this store.
    pub fn datasource(&self) -> Arc<dyn rules::Datasource> {
        Arc::new(rules::LogsDatasource::new(self.store.clone(), logql::Engine::default()))
    }
}
