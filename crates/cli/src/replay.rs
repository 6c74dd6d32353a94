//! `alertbook replay`: recorded metrics and logs through the rules, as if live.
//!
//! Loads timestamped OpenMetrics (or Prometheus text) files into a fresh
//! in-memory store and Loki push JSON files into a log store of its own
//! (redacted with the catalog's PII rules, as at ingest), evaluates every
//! metrics and logs group at its interval (or every `--step`) from `--from`
//! to `--to`, and prints one JSON line per alert state change: `pending`,
//! `firing`, `resolved` (a firing alert that stopped), and `inactive` (a
//! pending alert that stopped before firing). After an alert's `firing` line
//! comes one line per triage run of its runbook entry (state `triage`): at
//! the firing evaluation, and every `--triage.rerun-interval` while it
//! fires when one is given. Checks run on the replayed metrics and logs; checks of other
//! datasources (SQL, Docker) are `missing` unless `--fixtures` records
//! their results.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct Arguments {
    /// Recorded data (repeatable): OpenMetrics with timestamps (Prometheus text format when
    /// it lacks `# EOF`), or logs as a Loki push JSON body (`{"streams": [...]}`).
    #[arg(long, value_name = "FILE", required = true)]
    data: Vec<PathBuf>,
    /// Rule files or directories of rule files [default: the catalog's metric rules].
    #[arg(long, value_name = "PATH", num_args = 1..)]
    rules: Vec<PathBuf>,
    /// Catalog directory whose rules and budgets are used without --rules [default: the built-in Busflow catalog].
    #[arg(long, value_name = "DIR")]
    catalog: Option<PathBuf>,
    /// Start: Unix seconds or RFC 3339 [default: the earliest sample].
    #[arg(long, value_name = "T")]
    from: Option<String>,
    /// End: Unix seconds or RFC 3339 [default: the latest sample].
    #[arg(long, value_name = "T")]
    to: Option<String>,
    /// Evaluate every group at this step instead of at its own interval.
    #[arg(long, value_name = "DURATION", value_parser = crate::parse_duration_flag)]
    step: Option<std::time::Duration>,
    /// Recorded check results for triage, by result name (YAML or JSON map:
    /// `lock_waits: 0`, `tenant_backpressure: [{source: ..., pending: 3}]`), as
    /// predicates read them; used for checks whose datasource the replay lacks.
    #[arg(long, value_name = "FILE")]
    fixtures: Option<PathBuf>,
    /// Re-run a firing alert's triage this often while it fires [default: 0, only when it starts firing].
    #[arg(long = "triage.rerun-interval", value_name = "DURATION", default_value = "0s", value_parser = crate::parse_duration_flag)]
    rerun_interval: std::time::Duration,
}

/// Reads a fixtures file: a map from result name to the value predicates read.
pub fn read_fixtures(path: &std::path::Path) -> anyhow::Result<BTreeMap<String, serde_json::Value>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_saphyr::from_str(&text)
        .map_err(|error| anyhow::anyhow!("{}: not a map of result names to values: {error}", path.display()))
}

pub fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(seconds) = text.parse::<f64>() {
        return Ok((seconds * 1000.0).round() as i64);
    }
    crate::test_rules::parse_rfc3339_ms(text).with_context(|| format!("{text:?} is neither Unix seconds nor RFC 3339"))
}

fn rule_paths(inputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|extension| extension == "yaml" || extension == "yml"))
                .collect();
            found.sort();
            paths.extend(found);
        } else {
            paths.push(input.clone());
        }
    }
    paths
}

/// Whether a data file is a Loki push JSON body rather than metrics text.
fn is_log_push(bytes: &[u8]) -> bool {
    bytes.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{')
}

/// The time range the data covers, in milliseconds.
#[derive(Default)]
struct Covered(Option<(i64, i64)>);

impl Covered {
    fn add(&mut self, first: i64, last: i64) {
        self.0 = Some(match self.0 {
            None => (first, last),
            Some((start, end)) => (start.min(first), end.max(last)),
        });
    }
}

pub fn run(arguments: &Arguments) -> anyhow::Result<ExitCode> {
    let store = Arc::new(tsdb::MemStore::new());
    let log_input = crate::log_input::LogInput::new()?;
    let mut covered = Covered::default();
    let mut catalog: Option<catalog::Catalog> = None;
    for path in &arguments.data {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if is_log_push(&bytes) {
            let streams = logstore::push::decode_json(&bytes).with_context(|| format!("{}", path.display()))?;
            if catalog.is_none() {
                catalog = Some(crate::load_catalog(arguments.catalog.as_deref())?);
            }
            let redaction = match &catalog {
                Some(catalog) => crate::logs::redaction(catalog, &[pii::DEFAULT_STREAMS.to_owned()])?,
                None => None,
            };
            if let Some((first, last)) = log_input.append(streams, redaction.as_ref())? {
                covered.add(first.div_euclid(1_000_000), last.div_euclid(1_000_000));
            }
            continue;
        }
        let format = if String::from_utf8_lossy(&bytes).trim_end().ends_with("# EOF") {
            ingest::Format::OpenMetrics
        } else {
            ingest::Format::PrometheusText
        };
        drop(bytes);
        let options = ingest::BackfillOptions { format, ..ingest::BackfillOptions::default() };
        let report = ingest::load_file(path, &store, &options)?;
        for error in &report.errors {
            eprintln!("{}:{}: warning: {}", path.display(), error.line, error.message);
        }
        if let (Some(first), Some(last)) = (report.min_timestamp, report.max_timestamp) {
            covered.add(first, last);
        }
    }

    let catalog = match catalog {
        Some(catalog) => catalog,
        None => crate::load_catalog(arguments.catalog.as_deref())?,
    };
    let (files, static_series) = if arguments.rules.is_empty() {
        let budgets = rules::budgets::budget_series(&catalog);
        (catalog.rule_files.clone(), budgets)
    } else {
        let files = catalog::load_rules(&rule_paths(&arguments.rules))
            .map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))?;
        (files, Vec::new())
    };

    let start_ms = match &arguments.from {
        Some(text) => parse_time(text)?,
        None => covered.0.map(|(first, _)| first).context("the data holds no sample or entry; give --from and --to")?,
    };
    let end_ms = match &arguments.to {
        Some(text) => parse_time(text)?,
        None => covered.0.map(|(_, last)| last).context("the data holds no sample or entry; give --from and --to")?,
    };
    anyhow::ensure!(start_ms <= end_ms, "--from is after --to");

    let engine = promql::Engine::default();
    let mut triage_sources = triage::adapters::embedded_sources(
        std::time::Duration::from_secs(30),
        triage::adapters::EmbeddedMetrics { store: store.clone(), engine: engine.clone(), sparkline: None },
        Some(triage::adapters::EmbeddedLogs { source: log_input.store.clone(), engine: logql::Engine::default() }),
        catalog.contracts.clone(),
    );
    if let Some(path) = &arguments.fixtures {
        triage_sources.fixtures = read_fixtures(path)?;
    }
    let rerun_ms = i64::try_from(arguments.rerun_interval.as_millis()).unwrap_or(i64::MAX);
    // The last triage run of each firing alert.
    let mut triaged: BTreeMap<(usize, String, tsdb::Labels), triage::Run> = BTreeMap::new();
    let datasource = rules::EmbeddedDatasource::new(store, engine);
    let mut manager_options = rules::ManagerOptions::embedded(datasource);
    manager_options.static_series = static_series;
    manager_options.logs_datasource = Some(log_input.datasource());
    let manager = rules::Manager::new(&files, manager_options);

    // Every (time, group) evaluation in time order; groups of one time in file order.
    let step_ms = arguments.step.map(|step| i64::try_from(step.as_millis()).unwrap_or(i64::MAX).max(1));
    let mut schedule: Vec<(i64, usize)> = Vec::new();
    for index in 0..manager.group_count() {
        let Some((_, interval_ms, evaluated_here)) = manager.group_schedule(index) else { continue };
        if !evaluated_here {
            continue;
        }
        let every = step_ms.unwrap_or(interval_ms).max(1);
        let mut time_ms = start_ms;
        while time_ms <= end_ms {
            schedule.push((time_ms, index));
            time_ms += every;
        }
    }
    schedule.sort();

    let mut previous: BTreeMap<(usize, String, tsdb::Labels), rules::AlertState> = BTreeMap::new();
    let stdout = std::io::stdout();
    let mut out = std::io::LineWriter::new(stdout.lock());
    for (time_ms, index) in schedule {
        manager.evaluate_group(index, time_ms);
        let status = manager.statuses()[index].clone();
        let mut current: BTreeMap<(usize, String, tsdb::Labels), (rules::AlertState, f64)> = BTreeMap::new();
        for rule in &status.rules {
            for alert in &rule.alerts {
                current.insert((index, rule.name.clone(), alert.labels.clone()), (alert.state, alert.value));
            }
        }
        let keys: Vec<_> = previous.keys().filter(|key| key.0 == index).cloned().collect();
        for key in keys {
            if !current.contains_key(&key) {
                triaged.remove(&key);
                let state = previous.remove(&key).unwrap_or(rules::AlertState::Inactive);
                if state == rules::AlertState::Pending {
                    print_change(&mut out, time_ms, &key.1, &key.2, "inactive", f64::NAN)?;
                }
            }
        }
        for (key, (state, value)) in current {
            let before = previous.insert(key.clone(), state);
            if before != Some(state) {
                let name = match state {
                    rules::AlertState::Pending => "pending",
                    rules::AlertState::Firing => "firing",
                    rules::AlertState::Inactive => "resolved",
                };
                print_change(&mut out, time_ms, &key.1, &key.2, name, value)?;
            }
            if state != rules::AlertState::Firing {
                triaged.remove(&key);
                continue;
            }
            let Some(entry) = catalog.entry(&key.1) else { continue };
            let last = triaged.get(&key);
            let due = match last {
                None => true,
                Some(run) => rerun_ms > 0 && time_ms - run.time_ms >= rerun_ms,
            };
            if !due {
                continue;
            }
            let alert = status
                .rules
                .iter()
                .filter(|rule| rule.name == key.1)
                .flat_map(|rule| &rule.alerts)
                .find(|alert| alert.labels == key.2);
            let instance = triage::AlertInstance {
                labels: key.2.iter().map(|label| (label.name.clone(), label.value.clone())).collect(),
                annotations: alert.map(|alert| alert.annotations.clone()).unwrap_or_default(),
                value,
                firing_since_ms: alert.and_then(|alert| alert.fired_at_ms).unwrap_or(time_ms),
                active_since_ms: alert.map(|alert| alert.active_at_ms),
            };
            let options = triage::RunOptions {
                time_ms,
                previous: last,
                trigger: if last.is_none() { "firing".into() } else { "rerun".into() },
                ..triage::RunOptions::default()
            };
            let run = triage::run(entry, &catalog.contracts, &instance, &triage_sources, &options);
            print_triage(&mut out, &run)?;
            triaged.insert(key, run);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_change(
    out: &mut impl std::io::Write,
    time_ms: i64,
    alertname: &str,
    labels: &tsdb::Labels,
    state: &str,
    value: f64,
) -> anyhow::Result<()> {
    let labels: BTreeMap<&str, &str> = labels.iter().map(|label| (label.name.as_str(), label.value.as_str())).collect();
    let labels = serde_json::to_string(&labels)?;
    let value = if value.is_finite() { serde_json::to_string(&value)? } else { "null".to_owned() };
    let time = if time_ms % 1000 == 0 { (time_ms / 1000).to_string() } else { format!("{}", time_ms as f64 / 1000.0) };
    let line = format!(
        "{{\"time\": {time}, \"alertname\": {}, \"labels\": {labels}, \"state\": \"{state}\", \"value\": {value}}}",
        serde_json::to_string(alertname)?
    );
    writeln!(out, "{line}")?;
    Ok(())
}

/// One triage run as a replay line, keys in the order of the other lines:
/// `{"time", "alertname", "labels", "state": "triage", "runbook_id", "path",
/// "results", "missing"}`, then `escalations` (routes paged by this run) and
/// `guard_rails_violated` (step numbers) when there are any.
fn print_triage(out: &mut impl std::io::Write, run: &triage::Run) -> anyhow::Result<()> {
    let time = if run.time_ms % 1000 == 0 {
        (run.time_ms / 1000).to_string()
    } else {
        format!("{}", run.time_ms as f64 / 1000.0)
    };
    let mut line = format!(
        "{{\"time\": {time}, \"alertname\": {}, \"labels\": {}, \"state\": \"triage\", \"runbook_id\": {}, \"path\": {}, \"results\": {}, \"missing\": {}",
        serde_json::to_string(&run.alertname)?,
        serde_json::to_string(&run.labels)?,
        serde_json::to_string(&run.runbook_id)?,
        serde_json::to_string(&run.path)?,
        serde_json::to_string(&run.results)?,
        serde_json::to_string(&run.missing)?,
    );
    let escalations: Vec<&str> = run.due_escalations().map(|(_, escalation, _)| escalation.to.as_str()).collect();
    if !escalations.is_empty() {
        line.push_str(&format!(", \"escalations\": {}", serde_json::to_string(&escalations)?));
    }
    let violated: Vec<usize> = run.violated_guard_rails().map(|step| step.number).collect();
    if !violated.is_empty() {
        line.push_str(&format!(", \"guard_rails_violated\": {}", serde_json::to_string(&violated)?));
    }
    line.push('}');
    writeln!(out, "{line}")?;
    Ok(())
}
