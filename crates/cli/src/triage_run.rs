//! Triage in `alertbook run` and `alertbook triage`: the datasources checks
//! query (the embedded metrics and log stores, the configured `sql`
//! PostgreSQL and `docker` Engine, probes as metrics), the runner between
//! the rule engine and the outbox, and its flags.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The flags of triage in `alertbook run`.
#[derive(Debug, Clone, clap::Args)]
pub struct TriageFlags {
    /// Re-run an alert's triage this often while it keeps firing.
    #[arg(long = "triage.rerun-interval", value_name = "DURATION", default_value = "5m", value_parser = crate::parse_duration_flag)]
    pub rerun_interval: Duration,
    /// Most triage runs at once (they run beside rule evaluation, never in its way).
    #[arg(long = "triage.concurrency", value_name = "N", default_value_t = 4)]
    pub concurrency: usize,
    /// Longest one check may take before it is reported timed out.
    #[arg(long = "triage.check-timeout", value_name = "DURATION", default_value = "10s", value_parser = crate::parse_duration_flag)]
    pub check_timeout: Duration,
    /// How long an alert's first firing notification waits for its first triage run,
    /// so that it carries the triage_path and triage_summary annotations.
    #[arg(long = "triage.notify-wait", value_name = "DURATION", default_value = "10s", value_parser = crate::parse_duration_flag)]
    pub notify_wait: Duration,
}

/// The typed datasources checks may read, besides the embedded stores.
#[derive(Default, Clone)]
pub struct CheckDatasources {
    pub postgres: Option<Arc<sources::sql::PostgresDatasource>>,
    pub docker: Option<Arc<sources::docker::DockerDatasource>>,
}

/// The sources of triage checks.
pub fn sources(
    catalog: &catalog::Catalog,
    store: Arc<tsdb::MemStore>,
    engine: promql::Engine,
    logs: Option<Arc<server::LogService>>,
    datasources: &CheckDatasources,
    timeout: Duration,
) -> triage::Sources {
    let metrics: Arc<dyn triage::CheckSource> =
        Arc::new(triage::adapters::EmbeddedMetrics { store, engine, sparkline: Some(Duration::from_secs(30 * 60)) });
    let probes = triage::adapters::Probes { metrics: metrics.clone(), contracts: catalog.contracts.clone() };
    let mut sources = triage::Sources::new(timeout)
        .with(catalog::Datasource::Metrics, metrics)
        .with(catalog::Datasource::Probe, Arc::new(probes));
    if let Some(logs) = logs {
        sources.set(
            catalog::Datasource::Logs,
            Arc::new(triage::adapters::EmbeddedLogs { source: logs.store.clone(), engine: logs.engine.clone() }),
        );
    }
    if let Some(postgres) = &datasources.postgres {
        sources.set(catalog::Datasource::Sql, Arc::new(triage::adapters::Postgres(postgres.clone())));
    }
    if let Some(docker) = &datasources.docker {
        sources.set(catalog::Datasource::Docker, Arc::new(triage::adapters::Docker(docker.clone())));
    }
    sources
}

/// Finds the rule engine's alert behind a notification: the alert whose
/// labels the notification carries (it may add external labels).
pub fn lookup(manager: Arc<rules::Manager>) -> triage::runner::AlertLookup {
    Arc::new(move |labels: &BTreeMap<String, String>| {
        let alertname = labels.get("alertname")?;
        let mut best: Option<(usize, triage::AlertInstance)> = None;
        for group in manager.statuses() {
            for rule in group.rules.iter().filter(|rule| &rule.name == alertname) {
                for alert in &rule.alerts {
                    let matches = alert.labels.iter().all(|label| labels.get(&label.name) == Some(&label.value));
                    if matches && best.as_ref().is_none_or(|(count, _)| alert.labels.len() > *count) {
                        let instance = triage::AlertInstance {
                            labels: alert.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect(),
                            annotations: alert.annotations.clone(),
                            value: alert.value,
                            firing_since_ms: alert.fired_at_ms.unwrap_or(alert.active_at_ms),
                        };
                        best = Some((alert.labels.len(), instance));
                    }
                }
            }
        }
        best.map(|(_, instance)| instance)
    })
}

/// The file, in the data directory, holding triage runs across restarts.
pub const STATE_FILE: &str = "triage/runs.json";

/// The runner of `alertbook run`, its runs restored from the data directory.
pub fn runner(
    catalog: &catalog::Catalog,
    config: &crate::config::Config,
    sources: triage::Sources,
    flags: &TriageFlags,
    manager: Arc<rules::Manager>,
) -> anyhow::Result<Arc<triage::runner::Runner>> {
    let options = triage::runner::RunnerOptions {
        rerun_interval: flags.rerun_interval,
        max_concurrent: flags.concurrency.max(1),
        notify_wait: flags.notify_wait,
        state_file: Some(config.data.join(STATE_FILE)),
        external_labels: config.external_labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect(),
        external_url: format!("http://{}", config.listen),
        ..triage::runner::RunnerOptions::default()
    };
    let runner = triage::runner::Runner::new(
        Arc::new(catalog.clone()),
        sources,
        options,
        Arc::new(rules::SystemClock),
        lookup(manager),
    )?;
    Ok(runner)
}

/// Starts triage: the re-run schedule, and the notifier that puts triage
/// between the rule engine and `deliver` (which also takes the escalations).
/// Stops when the returned sender sends `true`.
pub fn start(
    state: &Arc<server::AppState>,
    runner: Arc<triage::runner::Runner>,
    deliver: Arc<dyn rules::Notifier>,
) -> (Arc<dyn rules::Notifier>, tokio::sync::watch::Sender<bool>) {
    runner.set_escalation_notifier(deliver.clone());
    state.set_triage(runner.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(runner.clone().schedule(stopped));
    let notifier = triage::runner::TriageNotifier { runner, inner: deliver, handle: tokio::runtime::Handle::current() };
    (Arc::new(notifier), stop)
}
