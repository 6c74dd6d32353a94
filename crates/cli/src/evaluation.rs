//! The rule evaluation loop of `alertbook run`: builds the rule manager over
//! the catalog's rule files (the budgets contract published as series),
//! restores the alert state from the data directory, and runs the scheduler
//! until shutdown. Recorded series and `ALERTS` go through the write-ahead log.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

/// The file, in the data directory, holding the alert state across restarts.
pub const STATE_FILE: &str = "rules-state.json";

/// Writes rule output through the write-ahead log.
struct DurableSink(Arc<ingest::durable::DurableStore>);

impl rules::SeriesSink for DurableSink {
    fn append(&self, labels: &tsdb::Labels, time_ms: i64, value: f64) -> Result<(), String> {
        let batch = [(labels.clone(), vec![(time_ms, value)])];
        let outcome = self.0.append(&batch, &|_| true).map_err(|error| error.to_string())?;
        outcome.first_error.map_or(Ok(()), Err)
    }
}

/// Logs the alerts due for sending until a notification pipeline consumes them.
struct LogNotifier;

impl rules::Notifier for LogNotifier {
    fn send(&self, alerts: Vec<rules::Notification>) {
        for alert in alerts {
            let name = alert.labels.get("alertname").cloned().unwrap_or_default();
            let state = if alert.ends_at_ms.is_some() { "resolved" } else { "firing" };
            tracing::info!(alertname = %name, state, labels = ?alert.labels, "alert to send");
        }
    }
}

/// The rule manager of `alertbook run`, with its state restored from `data`.
pub fn manager(
    catalog: &catalog::Catalog,
    durable: Arc<ingest::durable::DurableStore>,
    engine: promql::Engine,
    data: &Path,
    external_url: String,
) -> anyhow::Result<Arc<rules::Manager>> {
    let datasource = rules::EmbeddedDatasource::new(durable.store().clone(), engine);
    let mut options = rules::ManagerOptions::embedded(datasource);
    options.sink = Arc::new(DurableSink(durable));
    options.static_series = rules::budgets::budget_series(catalog);
    options.external_url = external_url;
    let state_file = data.join(STATE_FILE);
    options.state_file = Some(state_file.clone());
    let manager = rules::Manager::new(&catalog.rule_files, options);
    let snapshot = rules::Snapshot::read(&state_file).context("cannot restore the alert state")?;
    let restored = manager.restore(&snapshot);
    tracing::info!(groups = manager.group_count(), restored_alerts = restored, "rule manager ready");
    Ok(Arc::new(manager))
}

/// Starts the scheduler; it stops when the returned sender sends `true`.
pub fn spawn(manager: Arc<rules::Manager>) -> (tokio::task::JoinHandle<()>, tokio::sync::watch::Sender<bool>) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let handle =
        tokio::spawn(rules::scheduler::run(manager, Arc::new(rules::SystemClock), Arc::new(LogNotifier), stopped));
    (handle, stop)
}
