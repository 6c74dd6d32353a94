//! The rule evaluation loop of `alertbook run`: builds the rule manager over
//! the catalog's rule files (the budgets contract published as series),
//! restores the alert state from the data directory, and runs the scheduler
//! until shutdown. Recorded series and `ALERTS` go through the write-ahead log.
//! Groups listed in `rule_datasources` query their remote datasource; log
//! groups query the log store; the others query the embedded store.

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

/// Hands the alerts due for sending to the routing service (alertbook's own
/// routing) and to the dispatcher, which forwards them to the configured
/// Alertmanagers through its outbox before this returns.
pub struct DispatchNotifier {
    pub dispatcher: Arc<notify::Dispatcher>,
    pub routing: Arc<notify::RoutingService>,
    /// The time alerts are handed over at (the rule scheduler's clock).
    pub clock: Arc<dyn rules::Clock>,
}

impl rules::Notifier for DispatchNotifier {
    fn send(&self, alerts: Vec<rules::Notification>) {
        if alerts.is_empty() {
            return;
        }
        let converted: Vec<notify::Alert> = alerts
            .into_iter()
            .map(|alert| notify::Alert {
                labels: alert.labels,
                annotations: alert.annotations,
                starts_at_ms: alert.starts_at_ms,
                ends_at_ms: Some(alert.ends_at_ms.unwrap_or(alert.valid_until_ms)),
                generator_url: alert.generator_url,
            })
            .collect();
        let now = self.clock.now_ms();
        match self.dispatcher.dispatch(&converted, now) {
            Ok(deliveries) => tracing::debug!(alerts = converted.len(), deliveries, "alerts queued for delivery"),
            Err(error) => tracing::error!(error = %error, alerts = converted.len(), "alerts could not be queued"),
        }
        self.routing.put(converted, now);
    }
}

/// The rule manager of `alertbook run`, with its state restored from `data`;
/// `resolve_datasource` gives `sql`, `docker` and remote groups their datasource.
pub fn manager(
    catalog: &catalog::Catalog,
    durable: Arc<ingest::durable::DurableStore>,
    engine: promql::Engine,
    data: &Path,
    external_url: String,
    resolve_datasource: Option<rules::DatasourceResolver>,
    logs: Option<Arc<dyn rules::Datasource>>,
) -> anyhow::Result<Arc<rules::Manager>> {
    let datasource = rules::EmbeddedDatasource::new(durable.store().clone(), engine);
    let mut options = rules::ManagerOptions::embedded(datasource);
    options.sink = Arc::new(DurableSink(durable));
    options.static_series = rules::budgets::budget_series(catalog);
    options.external_url = external_url;
    options.resolve_datasource = resolve_datasource;
    options.logs_datasource = logs;
    let state_file = data.join(STATE_FILE);
    options.state_file = Some(state_file.clone());
    let manager = rules::Manager::new(&catalog.rule_files, options);
    let snapshot = rules::Snapshot::read(&state_file).context("cannot restore the alert state")?;
    let restored = manager.restore(&snapshot);
    tracing::info!(groups = manager.group_count(), restored_alerts = restored, "rule manager ready");
    Ok(Arc::new(manager))
}

/// Starts the scheduler on `clock`; it stops when the returned sender sends `true`.
pub fn spawn(
    manager: Arc<rules::Manager>,
    notifier: Arc<dyn rules::Notifier>,
    clock: Arc<dyn rules::Clock>,
) -> (tokio::task::JoinHandle<()>, tokio::sync::watch::Sender<bool>) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let handle = tokio::spawn(rules::scheduler::run(manager, clock, notifier, stopped));
    (handle, stop)
}

/// The notification targets of `alertbook run`, from its flags.
pub fn targets(alertmanagers: &[String], webhooks: &[String]) -> anyhow::Result<Vec<notify::Target>> {
    let mut targets: Vec<notify::Target> =
        alertmanagers.iter().map(|url| notify::Target::Alertmanager { url: url.clone() }).collect();
    for webhook in webhooks {
        let (name, url) = webhook
            .split_once('=')
            .filter(|(name, url)| !name.is_empty() && !url.is_empty())
            .with_context(|| format!("--notify.webhook {webhook:?}: expected NAME=URL"))?;
        targets.push(notify::Target::Webhook { name: name.to_owned(), url: url.to_owned() });
    }
    for target in &targets {
        let url = match target {
            notify::Target::Alertmanager { url } | notify::Target::Webhook { url, .. } => url,
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!("notification target {url:?} is not an http:// or https:// URL");
        }
    }
    Ok(targets)
}
