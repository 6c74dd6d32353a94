//! On-disk storage for `alertbook run`: the storage flags, opening the blocks
//! and the write-ahead log under the data directory, the maintenance task that
//! checkpoints the head into blocks, compacts blocks and applies retention, and
//! the checkpoint at shutdown. Everything is logged here, and compactions are
//! counted in [`CompactionMetrics`] (the log store's maintenance uses them too);
//! the decisions live in `ingest::durable`. This module reads the wall clock
//! and passes it in.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use ingest::durable::{CheckpointPolicy, DurableStore, Retention};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// One store's compaction metrics (`<prefix>_compactions_total`,
/// `<prefix>_compactions_failed_total`, `<prefix>_compaction_duration_seconds`,
/// `<prefix>_blocks`), after Prometheus's `prometheus_tsdb_compactions_total`
/// family. Made before `/metrics`'s registry exists and registered into it
/// with [`CompactionMetrics::register_in`]; clones share the same series.
#[derive(Debug, Clone)]
pub(crate) struct CompactionMetrics {
    prefix: &'static str,
    compactions: Counter,
    failed: Counter,
    duration: Histogram,
    blocks: Gauge,
}

impl CompactionMetrics {
    /// Metrics of the store named by `prefix` (`alertbook_tsdb`, `alertbook_log`).
    pub(crate) fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            compactions: Counter::default(),
            failed: Counter::default(),
            duration: Histogram::new(exponential_buckets(0.001, 4.0, 10)),
            blocks: Gauge::default(),
        }
    }

    pub(crate) fn register_in(&self, registry: &mut Registry) {
        let prefix = self.prefix;
        registry.register(
            format!("{prefix}_compactions"),
            "Blocks written by compaction, each replacing two or more blocks",
            self.compactions.clone(),
        );
        registry.register(
            format!("{prefix}_compactions_failed"),
            "Compaction runs that failed; the blocks they would have merged were kept",
            self.failed.clone(),
        );
        registry.register(
            format!("{prefix}_compaction_duration_seconds"),
            "Time compaction runs that merged blocks or failed took",
            self.duration.clone(),
        );
        registry.register(
            format!("{prefix}_blocks"),
            "Block files on disk after the last maintenance",
            self.blocks.clone(),
        );
    }

    /// Records a compaction run: `merged` blocks written, or a failure.
    pub(crate) fn observe(&self, merged: Option<usize>, started: Instant, blocks: usize) {
        match merged {
            Some(0) => {}
            Some(merged) => {
                self.compactions.inc_by(merged as u64);
                self.duration.observe(started.elapsed().as_secs_f64());
            }
            None => {
                self.failed.inc();
                self.duration.observe(started.elapsed().as_secs_f64());
            }
        }
        self.blocks.set(i64::try_from(blocks).unwrap_or(i64::MAX));
    }
}

/// Flags of `alertbook run` for blocks, checkpoints and retention.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StorageFlags {
    /// How long samples are kept; older blocks and samples are removed. 0: forever.
    #[arg(long = "storage.retention.time", value_name = "DURATION", default_value = "15d", value_parser = crate::parse_duration_flag)]
    pub(crate) retention_time: Duration,
    /// Most bytes blocks and write-ahead log may take together (e.g. 10GB; units B, KB, MB,
    /// GB, TB are powers of 1024); the oldest blocks are removed first. 0: no limit.
    #[arg(long = "storage.retention.size", value_name = "BYTES", default_value = "0", value_parser = parse_bytes)]
    pub(crate) retention_size: u64,
    /// The in-memory head is checkpointed into a block once the samples since the last
    /// checkpoint span this long; the log store checkpoints into a log block this often.
    #[arg(long = "storage.block-interval", value_name = "DURATION", default_value = "2h", value_parser = crate::parse_duration_flag)]
    pub(crate) block_interval: Duration,
    /// The head is also checkpointed once the write-ahead log holds this many bytes.
    #[arg(long = "storage.wal-checkpoint-size", value_name = "BYTES", default_value = "256MB", value_parser = parse_bytes)]
    pub(crate) wal_checkpoint_size: u64,
    /// Most bytes the cache of decoded block indexes may hold (blocks are served from
    /// disk; a query over a block whose index is not cached reads it from the file).
    #[arg(long = "storage.block-cache-size", value_name = "BYTES", default_value = "256MB", value_parser = parse_bytes)]
    pub(crate) block_cache_size: u64,
    /// How often the checkpoint conditions, compaction and retention are checked.
    #[arg(long = "storage.maintenance-interval", value_name = "DURATION", default_value = "1m", value_parser = crate::parse_duration_flag)]
    pub(crate) maintenance_interval: Duration,
}

impl StorageFlags {
    fn retention(&self) -> Retention {
        let time_ms = i64::try_from(self.retention_time.as_millis()).unwrap_or(i64::MAX);
        Retention {
            time_ms: (time_ms > 0).then_some(time_ms),
            size_bytes: (self.retention_size > 0).then_some(self.retention_size),
        }
    }

    fn policy(&self) -> CheckpointPolicy {
        CheckpointPolicy {
            block_interval_ms: i64::try_from(self.block_interval.as_millis()).unwrap_or(i64::MAX).max(1),
            wal_max_bytes: self.wal_checkpoint_size.max(1),
        }
    }
}

/// Parses a byte size: a number with an optional unit (B, KB/KiB, MB/MiB, GB/GiB, TB/TiB, PB/PiB; powers of 1024).
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(format!("invalid size {text:?}: expected a number such as 512MB or 10GB"));
    }
    let number: u64 = trimmed[..digits].parse().map_err(|_| format!("invalid size {text:?}"))?;
    let exponent = match trimmed[digits..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 1,
        "M" | "MB" | "MIB" => 2,
        "G" | "GB" | "GIB" => 3,
        "T" | "TB" | "TIB" => 4,
        "P" | "PB" | "PIB" => 5,
        _ => return Err(format!("invalid size {text:?}: unknown unit (use B, KB, MB, GB, TB or PB)")),
    };
    number.checked_mul(1024u64.pow(exponent)).ok_or_else(|| format!("size {text:?} is too large"))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
}

/// Opens `<data>/blocks` and `<data>/wal` into `store`, logs what was found and
/// applies retention once.
pub(crate) fn open(
    data: &Path,
    store: Arc<tsdb::MemStore>,
    wal_options: wal::WalOptions,
    flags: &StorageFlags,
) -> anyhow::Result<DurableStore> {
    let wal_directory = data.join("wal");
    let blocks_directory = data.join("blocks");
    let started = Instant::now();
    store.disk().set_cache_bytes(usize::try_from(flags.block_cache_size).unwrap_or(usize::MAX));
    let (durable, report) = DurableStore::open_with_blocks(&wal_directory, &blocks_directory, store, wal_options)
        .with_context(|| format!("cannot open storage in {}", data.display()))?;
    for path in &report.temporary_removed {
        tracing::warn!(path = %path, "removed an interrupted block write");
    }
    for path in &report.blocks_migrated {
        tracing::info!(path = %path, "block of the first format rewritten in the current one");
    }
    for path in &report.blocks_superseded {
        tracing::warn!(path = %path, "removed a block a compacted block replaces (an interrupted compaction)");
    }
    for problem in &report.blocks_set_aside {
        tracing::error!(problem = %problem, "block set aside; its samples are served only as far as the write-ahead log still holds them");
    }
    for repair in &report.repairs {
        tracing::warn!(repair = %repair, "write-ahead log tail was damaged and has been truncated");
    }
    tracing::info!(
        blocks = report.blocks_loaded,
        block_samples = report.block_samples,
        first_wal_segment = report.first_wal_segment,
        records = report.records,
        series = report.series,
        samples = report.samples,
        undecodable = report.undecodable,
        seconds = started.elapsed().as_secs_f64(),
        "storage opened: blocks served from disk, the write-ahead log replayed"
    );
    apply_retention(&durable, flags);
    Ok(durable)
}

/// Writes a block of everything not yet in one, and logs it.
pub(crate) fn checkpoint(durable: &DurableStore, reason: &str) {
    let started = Instant::now();
    match durable.checkpoint() {
        Ok(Some(block)) => {
            log_block_written(&block, started, reason, "checkpoint written; covered write-ahead log segments removed")
        }
        Ok(None) => tracing::debug!(reason = %reason, "checkpoint: nothing new to write"),
        Err(error) => {
            tracing::error!(reason = %reason, error = %error, "checkpoint failed; the write-ahead log keeps every sample")
        }
    }
}

/// Logs a block a checkpoint or a compaction wrote.
fn log_block_written(block: &tsdb::block::BlockMeta, started: Instant, reason: &str, message: &str) {
    tracing::info!(
        reason = %reason,
        block = block.sequence,
        series = block.series,
        samples = block.samples,
        bytes = block.bytes,
        min_time = block.min_time,
        max_time = block.max_time,
        seconds = started.elapsed().as_secs_f64(),
        "{message}"
    );
}

/// Merges blocks into longer ones as far as the compaction plan says, and logs it.
fn compact(durable: &DurableStore, flags: &StorageFlags, metrics: &CompactionMetrics) {
    let started = Instant::now();
    let ranges = tsdb::block::compact::ranges(flags.policy().block_interval_ms);
    let merged = match durable.compact(&ranges) {
        Ok(report) => {
            for (block, sources) in &report.merged {
                let reason = format!("blocks {sources:?} form a closed time window");
                log_block_written(block, started, &reason, "blocks compacted; the merged blocks were deleted");
            }
            Some(report.merged.len())
        }
        Err(error) => {
            tracing::error!(error = %error, "compaction failed; the blocks it would have merged are kept");
            None
        }
    };
    metrics.observe(merged, started, durable.blocks().len());
}

/// Applies the retention flags at the current time, and logs what went.
fn apply_retention(durable: &DurableStore, flags: &StorageFlags) {
    let retention = flags.retention();
    if retention == Retention::default() {
        return;
    }
    match durable.apply_retention(now_ms(), &retention) {
        Ok(report) => {
            for block in &report.blocks_removed_by_time {
                tracing::info!(block, retention = ?flags.retention_time, "block removed: all its samples are older than the retention time");
            }
            for block in &report.blocks_removed_by_size {
                tracing::info!(
                    block,
                    limit_bytes = flags.retention_size,
                    "block removed: storage exceeds the retention size"
                );
            }
            if report.wal_checkpointed {
                tracing::info!("write-ahead log was entirely out of retention and has been checkpointed away");
            }
            if report.samples_removed > 0 || report.series_removed > 0 {
                tracing::info!(
                    cutoff = report.cutoff,
                    samples = report.samples_removed,
                    series = report.series_removed,
                    "retention removed samples from memory"
                );
            }
        }
        Err(error) => tracing::error!(error = %error, "retention failed"),
    }
}

/// Checks every `every` whether a checkpoint is due (and writes it) and applies
/// retention, off the async runtime's threads, until `stop` turns true.
pub(crate) fn spawn_maintenance(
    durable: Arc<DurableStore>,
    flags: StorageFlags,
    metrics: CompactionMetrics,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let every = flags.maintenance_interval.max(Duration::from_millis(100));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            let durable = durable.clone();
            let flags = flags.clone();
            let metrics = metrics.clone();
            let work = tokio::task::spawn_blocking(move || {
                if let Some(reason) = durable.checkpoint_due(&flags.policy()) {
                    checkpoint(&durable, &reason);
                }
                compact(&durable, &flags, &metrics);
                apply_retention(&durable, &flags);
            });
            if let Err(error) = work.await {
                tracing::error!(error = %error, "storage maintenance panicked");
            }
        }
    })
}
