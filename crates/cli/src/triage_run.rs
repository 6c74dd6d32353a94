//! Triage in `alertbook run` and `alertbook triage`: the datasources checks
//! query (the embedded metrics store, the embedded log store or the loki
//! datasource named by `triage_logs`, the configured `sql` PostgreSQL and
//! `docker` Engine, the tempo datasource of `triage_traces` (else the only
//! one) for trace checks, probes as metrics), the runner between the rule
//! engine and the outbox, and its flags.

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
    /// The loki datasource of `triage_logs`: log checks query it instead of the embedded store.
    pub logs: Option<Arc<sources::loki::LokiDatasource>>,
    /// The tempo datasource trace checks search.
    pub traces: Option<Arc<sources::tempo::TempoDatasource>>,
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
    let metrics = triage::adapters::EmbeddedMetrics { store, engine, sparkline: Some(Duration::from_secs(30 * 60)) };
    let embedded_logs = logs
        .filter(|_| datasources.logs.is_none())
        .map(|logs| triage::adapters::EmbeddedLogs { source: logs.store.clone(), engine: logs.engine.clone() });
    let mut sources = triage::adapters::embedded_sources(timeout, metrics, embedded_logs, catalog.contracts.clone());
    if let Some(remote) = &datasources.logs {
        sources.set(catalog::Datasource::Logs, Arc::new(triage::adapters::RemoteLogs(remote.clone())));
    }
    if let Some(postgres) = &datasources.postgres {
        sources.set(catalog::Datasource::Sql, Arc::new(triage::adapters::Postgres(postgres.clone())));
    }
    if let Some(docker) = &datasources.docker {
        sources.set(catalog::Datasource::Docker, Arc::new(triage::adapters::Docker(docker.clone())));
    }
    if let Some(tempo) = &datasources.traces {
        sources.set(catalog::Datasource::Traces, Arc::new(triage::adapters::Traces(tempo.clone())));
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
                            active_since_ms: Some(alert.active_at_ms),
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
    clock: Arc<dyn rules::Clock>,
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
    let runner = triage::runner::Runner::new(Arc::new(catalog.clone()), sources, options, clock, lookup(manager))?;
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

/// The arguments of `alertbook triage`.
#[derive(Debug, clap::Args)]
pub struct ManualArguments {
    /// The runbook entry: its ID (A1) or alertname (HighApiErrorRate).
    #[arg(value_name = "ID|ALERTNAME")]
    key: String,
    /// The alert's labels, as name=value pairs separated by commas (alertname is added).
    #[arg(long, value_name = "K=V,...", default_value = "")]
    labels: String,
    /// The alert's value (`{{ $value }}` in query templates).
    #[arg(long, default_value_t = 0.0)]
    value: f64,
    /// Evaluation time: Unix seconds or RFC 3339 [default: now].
    #[arg(long, value_name = "T")]
    at: Option<String>,
    /// How long the alert has been firing, for `after:` escalations.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = crate::parse_duration_flag)]
    firing_for: Duration,
    /// Configuration file whose `sql` (postgres) and `docker` datasources, `triage_logs`
    /// loki and `triage_traces` (else only) tempo datasource the checks read.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Catalog directory [default: the configuration's, else the built-in Busflow catalog].
    #[arg(long, value_name = "DIR")]
    catalog: Option<std::path::PathBuf>,
    /// Prometheus-compatible API metrics and probe checks query (a running alertbook serves one).
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9099")]
    prometheus: String,
    /// Recorded check results by result name (as `alertbook replay --fixtures`).
    #[arg(long, value_name = "FILE")]
    fixtures: Option<std::path::PathBuf>,
    /// Longest one check may take.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::parse_duration_flag)]
    timeout: Duration,
    /// Print the run as JSON (the shape of /api/v1/triage) instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_labels(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|pair| !pair.is_empty()) {
        let (name, value) =
            pair.split_once('=').ok_or_else(|| anyhow::anyhow!("--labels: {pair:?} is not name=value"))?;
        labels.insert(name.trim().to_owned(), value.trim().trim_matches('"').to_owned());
    }
    Ok(labels)
}

/// `alertbook triage`: one run by hand against the live datasources, printed.
pub fn manual(arguments: &ManualArguments) -> anyhow::Result<std::process::ExitCode> {
    let config = match &arguments.config {
        Some(path) => crate::config::load(path).map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))?,
        None => crate::config::Config::default(),
    };
    let catalog_path = arguments.catalog.clone().or_else(|| config.catalog.clone());
    let catalog = crate::load_catalog(catalog_path.as_deref())?;
    let Some(entry) = catalog.entry(&arguments.key) else {
        anyhow::bail!("no runbook entry with ID or alertname {:?}; `alertbook runbook` lists them", arguments.key);
    };
    let mut labels = parse_labels(&arguments.labels)?;
    labels.insert("alertname".into(), entry.alertname.clone());
    let time_ms = match &arguments.at {
        Some(text) => crate::replay::parse_time(text)?,
        None => rules::Clock::now_ms(&rules::SystemClock),
    };
    let alert = triage::AlertInstance {
        labels,
        annotations: BTreeMap::new(),
        value: arguments.value,
        firing_since_ms: time_ms - arguments.firing_for.as_millis() as i64,
        active_since_ms: None,
    };
    notify::install_crypto_provider();
    let remote = rules::PrometheusDatasource::new(&rules::PrometheusOptions::new(arguments.prometheus.clone()))
        .map_err(|error| anyhow::anyhow!("--prometheus: {error}"))?;
    let metrics: Arc<dyn triage::CheckSource> = Arc::new(triage::adapters::RemoteMetrics(Arc::new(remote)));
    let mut sources = triage::Sources::new(arguments.timeout).with(catalog::Datasource::Metrics, metrics.clone()).with(
        catalog::Datasource::Probe,
        Arc::new(triage::adapters::Probes { metrics, contracts: catalog.contracts.clone() }),
    );
    let health = sources::health::HealthMetrics::new();
    if let Some(options) = config.datasources.postgres.get(crate::datasources::DEFAULT_SQL) {
        let postgres = sources::sql::PostgresDatasource::new(
            options.clone(),
            health.datasource(crate::datasources::DEFAULT_SQL, sources::health::DatasourceType::Postgres),
        )?;
        sources.set(catalog::Datasource::Sql, Arc::new(triage::adapters::Postgres(Arc::new(postgres))));
    }
    if let Some(options) = config.datasources.docker.get(crate::datasources::DEFAULT_DOCKER) {
        let docker = sources::docker::DockerDatasource::connect(options)?;
        sources.set(catalog::Datasource::Docker, Arc::new(triage::adapters::Docker(Arc::new(docker))));
    }
    if let Some(name) = &config.datasources.triage_logs
        && let Some(options) = config.datasources.loki.get(name)
    {
        let loki = sources::loki::LokiDatasource::new(
            options,
            health.datasource(name, sources::health::DatasourceType::Loki),
        )?;
        sources.set(catalog::Datasource::Logs, Arc::new(triage::adapters::RemoteLogs(Arc::new(loki))));
    }
    if let Some(name) = &config.datasources.triage_traces
        && let Some(options) = config.datasources.tempo.get(name)
    {
        let tempo = sources::tempo::TempoDatasource::new(
            options,
            health.datasource(name, sources::health::DatasourceType::Tempo),
        )?;
        sources.set(catalog::Datasource::Traces, Arc::new(triage::adapters::Traces(Arc::new(tempo))));
    }
    if let Some(path) = &arguments.fixtures {
        sources.fixtures = crate::replay::read_fixtures(path)?;
    }
    let options = triage::RunOptions { time_ms, trigger: "manual".into(), ..triage::RunOptions::default() };
    let run = triage::run(entry, &catalog.contracts, &alert, &sources, &options);
    if arguments.json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print!("{}", render(&run));
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// A run as text: a header, then one block per step.
pub fn render(run: &triage::Run) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let path = if run.path.is_empty() { "(no branch decided)".to_owned() } else { run.path.join(" → ") };
    let _ = writeln!(out, "{} {}  path: {path}", run.runbook_id, run.alertname);
    if !run.missing.is_empty() {
        let _ = writeln!(out, "missing: {}", run.missing.join(", "));
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{:>3}  {:<11}  {:<20}  {:<9}  RESULT", "#", "KIND", "BRANCH", "STATUS");
    for step in &run.steps {
        let result = match (&step.check, &step.escalation) {
            (Some(check), _) => {
                let value = check.value.as_ref().map_or_else(
                    || check.error.clone().unwrap_or_default(),
                    |value| format!("{} = {}", check.result, triage::summary::render(value)),
                );
                let picked = check.branch.as_ref().map(|branch| format!(" → {branch}")).unwrap_or_default();
                format!("{value}{picked}  ({} ms)", check.duration_ms)
            }
            (None, Some(escalation)) => {
                let state = if escalation.due { "PAGE" } else { "hold" };
                format!("{state} @{}: {}", escalation.to, escalation.reason)
            }
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:>3}  {:<11}  {:<20}  {:<9}  {result}",
            step.number,
            step.kind,
            step.branch.as_deref().unwrap_or("-"),
            step.status.as_str()
        );
        let _ = writeln!(out, "     {}", step.text.lines().next().unwrap_or_default());
        if let Some(check) = &step.check {
            for line in check.query.lines() {
                let _ = writeln!(out, "     | {line}");
            }
            if !check.candidates.is_empty() {
                let _ = writeln!(out, "     candidates: {}", check.candidates.join(", "));
            }
        }
        for (name, value) in &step.computed {
            let _ = writeln!(out, "     {name} = {}", triage::summary::render(value));
        }
        match step.holds {
            Some(true) => {
                let _ = writeln!(out, "     guard rail holds");
            }
            Some(false) => {
                let _ = writeln!(out, "     GUARD RAIL VIOLATED");
            }
            None => {}
        }
        if let Some(reason) = &step.reason
            && step.status != triage::StepStatus::Failed
        {
            let _ = writeln!(out, "     ({reason})");
        }
    }
    out
}
