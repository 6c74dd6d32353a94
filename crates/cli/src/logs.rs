//! The log store of `alertbook run`: its flags, opening `<data>/logs`, the
//! redaction policy of pushed streams (the catalog's PII rules and exclusions
//! on the configured streams), the maintenance task that checkpoints, applies
//! retention and compacts blocks (on the metric store's schedule, with the same
//! log lines and `alertbook_log_compaction*` metrics), and the log datasource
//! of `datasource: logs` rule groups. The decisions live in the logstore and
//! pii crates; this module logs them and reads the wall clock.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::storage::CompactionMetrics;

/// Retention of logs when neither the flag nor a catalog contract sets one.
const DEFAULT_RETENTION: Duration = Duration::from_secs(336 * 3600);

/// Flags of `alertbook run` for the log store.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LogFlags {
    /// How long log entries are kept. Default: the catalog's `retention` contract for the
    /// `loki` store (336h in the Busflow catalog), else 336h. 0: forever.
    #[arg(long = "logs.retention.time", value_name = "DURATION", value_parser = crate::parse_duration_flag)]
    pub(crate) log_retention_time: Option<Duration>,
    /// Most bytes log blocks and the log write-ahead log may take together (e.g. 50GB);
    /// the oldest blocks are removed first. 0: no limit.
    #[arg(long = "logs.retention.size", value_name = "BYTES", default_value = "0", value_parser = crate::storage::parse_bytes)]
    pub(crate) log_retention_size: u64,
    /// Most log streams the store holds; pushes creating more are refused with 429.
    #[arg(long = "logs.max-streams", value_name = "N", default_value_t = 100_000)]
    pub(crate) log_max_streams: usize,
}

/// The log retention of the catalog's `retention` contract for the `loki` store.
fn catalog_retention(catalog: &catalog::Catalog) -> Option<Duration> {
    catalog.contracts.values().find_map(|contract| match &contract.kind {
        catalog::contracts::ContractKind::Retention(retention) if retention.store == "loki" => {
            catalog::duration::parse_duration(&retention.period).ok()
        }
        _ => None,
    })
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX))
}

/// The redaction of pushed streams: the catalog's PII rules and exclusions on
/// `selectors`; `None` when the catalog has no PII rules or no stream is selected.
pub(crate) fn redaction(
    catalog: &catalog::Catalog,
    selectors: &[String],
) -> anyhow::Result<Option<pii::StreamRedaction>> {
    let Some(rules) = &catalog.pii_rules else {
        return Ok(None);
    };
    if selectors.is_empty() {
        return Ok(None);
    }
    let redactor = pii::Redactor::new(rules, catalog.pii_exclusions());
    let redaction = pii::StreamRedaction::new(redactor, selectors).context("invalid redact_streams")?;
    Ok(Some(redaction))
}

/// Opens `<data>/logs`, logs what was found, and builds the log service.
/// Log blocks are checkpointed every `block_interval` (`--storage.block-interval`,
/// as metric blocks are), so both stores compact into the same ranges.
pub(crate) fn open(
    data: &Path,
    catalog: &catalog::Catalog,
    redact_streams: &[String],
    fsync: wal::FsyncPolicy,
    flags: &LogFlags,
    block_interval: Duration,
    query_timeout: Duration,
) -> anyhow::Result<Arc<server::LogService>> {
    let directory = data.join("logs");
    let retention_time = flags.log_retention_time.or_else(|| catalog_retention(catalog)).unwrap_or(DEFAULT_RETENTION);
    let options = logstore::LogStoreOptions {
        fsync,
        retention_time: if retention_time.is_zero() { Duration::from_secs(u32::MAX.into()) } else { retention_time },
        retention_size_bytes: (flags.log_retention_size > 0).then_some(flags.log_retention_size),
        max_streams: flags.log_max_streams,
        checkpoint_interval: block_interval.max(Duration::from_millis(1)),
        ..logstore::LogStoreOptions::default()
    };
    let started = Instant::now();
    let (store, report) = logstore::LogStore::open(&directory, options)
        .with_context(|| format!("cannot open the log store in {}", directory.display()))?;
    for path in &report.temporary_removed {
        tracing::warn!(path = %path, "removed an interrupted log block write");
    }
    for path in &report.blocks_superseded {
        tracing::warn!(path = %path, "removed a log block a compacted block replaces (an interrupted compaction)");
    }
    for problem in &report.blocks_set_aside {
        tracing::error!(problem = %problem, "log block set aside; its entries are served only as far as the write-ahead log still holds them");
    }
    for repair in &report.repairs {
        tracing::warn!(repair = %repair, "log write-ahead log tail was damaged and has been truncated");
    }
    tracing::info!(
        blocks = report.blocks_loaded,
        block_entries = report.block_entries,
        wal_records = report.wal_records,
        wal_entries = report.wal_entries,
        retention = ?retention_time,
        seconds = started.elapsed().as_secs_f64(),
        "log store loaded: blocks, then the write-ahead log"
    );
    let redaction = redaction(catalog, redact_streams)?;
    match &redaction {
        Some(redaction) => tracing::info!(
            streams = %redaction.selectors().join(" "),
            rules = redaction.redactor().rules().rules().len(),
            "personal data is redacted from these streams at ingest"
        ),
        None => tracing::warn!("no PII redaction: log lines are stored as pushed"),
    }
    Ok(Arc::new(server::LogService {
        store: Arc::new(store),
        engine: logql::Engine { limits: logql::Limits { timeout: Some(query_timeout), ..logql::Limits::default() } },
        redaction,
        decode: logstore::push::DecodeOptions::default(),
    }))
}

/// The datasource of `datasource: logs` rule groups.
pub(crate) fn datasource(service: &server::LogService) -> Arc<dyn rules::Datasource> {
    Arc::new(rules::LogsDatasource::new(service.store.clone(), service.engine.clone()))
}

/// Merges closed log blocks into longer ones as far as the compaction plan
/// says, and logs and counts it.
fn compact(store: &logstore::LogStore, metrics: &CompactionMetrics) {
    let started = Instant::now();
    let merged = match store.compact(&store.options().compaction_ranges()) {
        Ok(report) => {
            for (block, sources) in &report.merged {
                tracing::info!(
                    reason = %format!("log blocks {sources:?} form a closed time window"),
                    block = block.sequence,
                    streams = block.streams,
                    entries = block.entries,
                    bytes = block.bytes,
                    min_time_ns = block.min_ts,
                    max_time_ns = block.max_ts,
                    seconds = started.elapsed().as_secs_f64(),
                    "log blocks compacted; the merged blocks were deleted"
                );
            }
            Some(report.merged.len())
        }
        Err(error) => {
            tracing::error!(error = %error, "log compaction failed; the blocks it would have merged are kept");
            None
        }
    };
    metrics.observe(merged, started, store.blocks().len());
}

/// Runs the store's upkeep (checkpoint when due, retention, compaction) every
/// `every`, off the async runtime's threads, until `stop` turns true.
pub(crate) fn spawn_maintenance(
    store: Arc<logstore::LogStore>,
    every: Duration,
    metrics: CompactionMetrics,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let every = every.max(Duration::from_millis(100));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            let store = store.clone();
            let metrics = metrics.clone();
            let work = tokio::task::spawn_blocking(move || {
                maintain(&store);
                compact(&store, &metrics);
            });
            if let Err(error) = work.await {
                tracing::error!(error = %error, "log store maintenance panicked");
            }
        }
    })
}

/// Checkpoints when due and applies retention, and logs it.
fn maintain(store: &logstore::LogStore) {
    match store.maintain(now_ns()) {
        Ok(report) => {
            if let Some(block) = &report.checkpoint {
                tracing::info!(block = ?block, "log checkpoint written; covered write-ahead log segments removed");
            }
            if report.entries_removed > 0 || report.streams_removed > 0 {
                tracing::info!(
                    entries = report.entries_removed,
                    streams = report.streams_removed,
                    blocks_by_time = report.blocks_removed_by_time.len(),
                    blocks_by_size = report.blocks_removed_by_size.len(),
                    "log retention removed old entries"
                );
            }
        }
        Err(error) => tracing::error!(error = %error, "log store maintenance failed"),
    }
}

/// Checkpoints the log store at shutdown.
pub(crate) fn shutdown(store: &logstore::LogStore) {
    if let Err(error) = store.sync() {
        tracing::error!(error = %error, "cannot fsync the log write-ahead log at shutdown");
    }
    match store.checkpoint() {
        Ok(Some(block)) => tracing::info!(block = ?block, "log checkpoint written at shutdown"),
        Ok(None) => {}
        Err(error) => {
            tracing::error!(error = %error, "log checkpoint at shutdown failed; the write-ahead log keeps every entry")
        }
    }
}
