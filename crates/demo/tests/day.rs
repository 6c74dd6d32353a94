//! The simulated Busflow day through alertbook's real engine: every sample
//! into the embedded metrics store, every log line through the catalog's PII
//! redaction into a real log store, the catalog's rules evaluated group by
//! group at their intervals over the whole day (recording groups first at
//! each instant, as their alerts read what they record), SQL and Docker
//! rules answered from the simulated PostgreSQL and Docker Engine, and the
//! triage core run for each alert when it starts firing (and at the re-runs
//! an incident expects) with checks answered by the same stores and facts.
//!
//! It holds that every incident's alert fires inside its window and stops by
//! its end, that nothing else of the catalog fires, and that each triage run
//! takes the path the incident's facts imply.
//!
//! To stay within a couple of minutes in a debug build, the two costliest
//! groups run at a coarser step than their interval ([`COARSER_STEPS`]);
//! every window of the script allows it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use demo::{Day, Incident, SqlResult};
use serde_json::Value;
use triage::{Answer, CheckContext, CheckSource, Found};

/// Groups evaluated less often than their interval: (group, step in ms).
/// `busflow-api` keeps several evaluations inside each `for`, and
/// `busflow-cardinality` (no `for`) still fires within the script's window.
const COARSER_STEPS: [(&str, i64); 2] = [("busflow-api", 60_000), ("busflow-cardinality", 120_000)];

fn catalog_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow")
}

fn tsdb_labels(labels: &demo::Labels) -> tsdb::Labels {
    tsdb::Labels::from_pairs(labels.iter().map(|(name, value)| (name.as_str(), value.as_str())))
}

fn label_pairs(labels: &tsdb::Labels) -> Vec<(String, String)> {
    labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect()
}

/// The swarm of the simulated Docker Engine at a moment, as the Docker datasource reads it.
fn swarm(day: &Day, time_ms: i64) -> sources::docker::Snapshot {
    let state = day.facts_at(time_ms).docker();
    let decode = |what: &str, value: Value| -> Value {
        assert!(value.is_array(), "{what} is not a list");
        value
    };
    sources::docker::Snapshot::from_engine(
        serde_json::from_value(decode("services", state.services)).expect("services decode as the Engine API's"),
        serde_json::from_value(decode("tasks", state.tasks)).expect("tasks decode as the Engine API's"),
        serde_json::from_value(decode("secrets", state.secrets)).expect("secrets decode as the Engine API's"),
        serde_json::from_value(decode("networks", state.networks)).expect("networks decode as the Engine API's"),
        serde_json::from_value(decode("nodes", state.nodes)).expect("nodes decode as the Engine API's"),
    )
}

/// `datasource: docker` rules over the simulated swarm.
struct DockerRules(Arc<Day>);

impl rules::Datasource for DockerRules {
    fn query(&self, query: &str, time_ms: i64) -> Result<Vec<(tsdb::Labels, f64)>, rules::DatasourceError> {
        let condition =
            sources::docker::condition::parse(query).map_err(|error| rules::DatasourceError::Query(error.message))?;
        sources::docker::condition::evaluate(&condition, &swarm(&self.0, time_ms).bindings())
            .map_err(|error| rules::DatasourceError::Query(error.message))
    }
}

/// Docker checks over the simulated swarm.
struct DockerChecks(Arc<Day>);

impl CheckSource for DockerChecks {
    fn run(&self, query: &str, context: &CheckContext) -> Result<Answer, String> {
        let value = sources::docker::condition::check(query, &swarm(&self.0, context.time_ms).bindings())
            .map_err(|error| error.message)?;
        Ok(Answer::of(Found::Value(value)))
    }
}

/// A simulated result as the SQL datasource's rows module types it.
fn sql_rows(result: &SqlResult) -> (Vec<sources::sql::rows::Column>, Vec<Vec<sources::sql::rows::Cell>>) {
    use sources::sql::rows::{Cell, Column, ColumnKind};
    let columns = result
        .columns
        .iter()
        .map(|(name, kind)| Column {
            name: name.clone(),
            kind: match *kind {
                "INT2" | "INT4" | "INT8" => ColumnKind::Integer,
                "FLOAT8" => ColumnKind::Float,
                "TIMESTAMPTZ" => ColumnKind::Time,
                _ => ColumnKind::Text,
            },
        })
        .collect();
    let rows = result
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| match cell {
                    Value::Null => Cell::Null,
                    Value::Number(number) if number.is_i64() => Cell::Integer(number.as_i64().unwrap_or_default()),
                    Value::Number(number) => Cell::Float(number.as_f64().unwrap_or(f64::NAN)),
                    Value::Bool(value) => Cell::Bool(*value),
                    other => Cell::Text(other.as_str().unwrap_or_default().to_owned()),
                })
                .collect()
        })
        .collect();
    (columns, rows)
}

/// `datasource: sql` rules answered by the simulated PostgreSQL; `alertnames` maps each rule's query to its name.
struct SqlRules {
    day: Arc<Day>,
    alertnames: BTreeMap<String, String>,
}

impl rules::Datasource for SqlRules {
    fn query(&self, query: &str, time_ms: i64) -> Result<Vec<(tsdb::Labels, f64)>, rules::DatasourceError> {
        let alertname =
            self.alertnames.get(query).ok_or_else(|| rules::DatasourceError::Query("unknown query".into()))?;
        let result = self
            .day
            .facts_at(time_ms)
            .sql_rule(alertname)
            .ok_or_else(|| rules::DatasourceError::Query(format!("the simulation does not answer {alertname}")))?;
        let (columns, rows) = sql_rows(&result);
        sources::sql::rows::to_samples(&columns, &rows)
            .map_err(|error| rules::DatasourceError::Query(error.to_string()))
    }
}

/// SQL checks answered by the simulated PostgreSQL: the check is found by
/// its query (the expanded template of one of the entry's SQL steps).
struct SqlChecks {
    day: Arc<Day>,
    /// (pattern of the expanded query, result name) of every SQL check of the catalog.
    checks: Vec<(regex::Regex, String)>,
}

impl SqlChecks {
    fn new(day: Arc<Day>, catalog: &catalog::Catalog) -> Self {
        let mut checks = Vec::new();
        let template = regex::Regex::new(r"\{\{[^}]*\}\}").expect("regex");
        for entry in &catalog.entries {
            for step in &entry.steps {
                let Some(check) = &step.check else { continue };
                if check.datasource != catalog::Datasource::Sql {
                    continue;
                }
                let literal: Vec<String> = template.split(check.query.trim()).map(regex::escape).collect();
                let pattern = format!("^{}$", literal.join(".*?"));
                checks.push((regex::Regex::new(&pattern).expect("pattern"), check.result.clone()));
            }
        }
        Self { day, checks }
    }
}

impl CheckSource for SqlChecks {
    fn run(&self, query: &str, context: &CheckContext) -> Result<Answer, String> {
        let (_, result) = self
            .checks
            .iter()
            .find(|(pattern, _)| pattern.is_match(query.trim()))
            .ok_or_else(|| format!("no SQL check of the catalog reads {query:?}"))?;
        let rows = self
            .day
            .facts_at(context.time_ms)
            .sql_check(result, &context.alert.labels)
            .ok_or_else(|| format!("the simulation does not answer {result}"))?;
        Ok(Answer::of(Found::Table(rows.objects())))
    }
}

/// Trace checks answered by the simulated Tempo's search JSON, decoded as the Tempo datasource does.
struct Traces(Arc<Day>);

impl CheckSource for Traces {
    fn run(&self, _query: &str, context: &CheckContext) -> Result<Answer, String> {
        let body = self.0.facts_at(context.time_ms).tempo_search().to_string();
        let search = sources::tempo::decode_search_response(body.as_bytes()).map_err(|error| error.to_string())?;
        Ok(Answer::of(Found::Value(triage::adapters::trace_value(&search))))
    }
}

/// One alert instance's firing: when it began and the last evaluation it was still firing.
#[derive(Debug, Clone)]
struct Firing {
    alertname: String,
    labels: Vec<(String, String)>,
    since_ms: i64,
    last_ms: i64,
}

/// A triage run of an alert instance.
#[derive(Debug, Clone)]
struct TriageRun {
    alertname: String,
    labels: Vec<(String, String)>,
    time_ms: i64,
    first: bool,
    path: Vec<String>,
    missing: Vec<String>,
}

fn minutes(day: &Day, time_ms: i64) -> String {
    format!("+{:.1}m", (time_ms - day.start_ms()) as f64 / 60_000.0)
}

#[test]
fn the_busflow_day_pages_each_incident_once_with_its_triage_path() {
    let started = std::time::Instant::now();
    let day = Arc::new(Day::busflow());
    eprintln!("day built in {:?}", started.elapsed());
    let catalog = catalog::load(&catalog_dir()).expect("the Busflow catalog loads");

    // Metrics: every sample of the day (and the week-ago baseline) into the embedded store.
    let store = Arc::new(tsdb::MemStore::new());
    let mut converted: BTreeMap<*const demo::Labels, tsdb::Labels> = BTreeMap::new();
    let mut from_ms = day.first_sample_ms();
    while from_ms < day.end_ms() {
        let to_ms = from_ms + demo::HOUR_MS;
        for sample in day.samples_between(from_ms, to_ms) {
            let labels = converted.entry(sample.labels as *const _).or_insert_with(|| tsdb_labels(sample.labels));
            store.append(labels, sample.time_ms, sample.value).expect("samples arrive in order");
        }
        from_ms = to_ms;
    }

    eprintln!("metrics loaded in {:?}", started.elapsed());
    // Logs: through the catalog's redaction, as a push would, into a real log store.
    let directory = tempfile::tempdir().expect("temporary directory");
    let options = logstore::LogStoreOptions {
        fsync: wal::FsyncPolicy::Never,
        retention_time: Duration::from_secs(100 * 365 * 24 * 3600),
        ..logstore::LogStoreOptions::default()
    };
    let (log_store, _) = logstore::LogStore::open(directory.path(), options).expect("log store");
    let log_store = Arc::new(log_store);
    let rules_of_pii = catalog.pii_rules.as_ref().expect("the catalog has PII rules");
    let redaction = pii::StreamRedaction::new(
        pii::Redactor::new(rules_of_pii, catalog.pii_exclusions()),
        &[pii::DEFAULT_STREAMS.to_owned()],
    )
    .expect("redaction");
    let mut from_ms = day.data_start_ms();
    while from_ms < day.end_ms() {
        let to_ms = from_ms + demo::HOUR_MS;
        let mut streams: BTreeMap<&demo::Labels, Vec<logstore::push::PushEntry>> = BTreeMap::new();
        for entry in day.logs_between(from_ms, to_ms) {
            streams.entry(&entry.stream).or_default().push(logstore::push::PushEntry {
                timestamp_ns: entry.time_ns,
                line: entry.line.clone(),
                metadata: Vec::new(),
            });
        }
        let mut push: Vec<logstore::push::PushStream> = streams
            .into_iter()
            .map(|(labels, entries)| logstore::push::PushStream { labels: tsdb_labels(labels), entries })
            .collect();
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
    // No raw personal data reached the store: the leaked addresses are redacted.
    let engine = logql::Engine::default();
    let raw = engine
        .instant_query(
            log_store.as_ref(),
            r#"sum(count_over_time({job="faro"} |= "@example" [24h]))"#,
            day.end_ms() * 1_000_000,
            1000,
            logql::Direction::Backward,
        )
        .expect("logql");
    assert!(matches!(&raw, logql::QueryValue::Vector(samples) if samples.is_empty()), "unredacted lines: {raw:?}");

    eprintln!("logs loaded in {:?}", started.elapsed());
    // Rules: the catalog's groups, SQL and Docker ones answered by the simulation.
    let mut alertnames = BTreeMap::new();
    let mut recording_groups = Vec::new();
    for file in &catalog.rule_files {
        for group in &file.groups {
            recording_groups.push(group.rules.iter().all(|rule| matches!(rule.kind, catalog::RuleKind::Record(_))));
            for rule in &group.rules {
                if let catalog::RuleKind::Alert(name) = &rule.kind {
                    alertnames.insert(rule.expr.clone(), name.clone());
                }
            }
        }
    }
    let sql_rules: Arc<dyn rules::Datasource> = Arc::new(SqlRules { day: day.clone(), alertnames });
    let docker_rules: Arc<dyn rules::Datasource> = Arc::new(DockerRules(day.clone()));
    let engine = promql::Engine::default();
    let mut options = rules::ManagerOptions::embedded(rules::EmbeddedDatasource::new(store.clone(), engine.clone()));
    options.static_series = rules::budgets::budget_series(&catalog);
    options.logs_datasource = Some(Arc::new(rules::LogsDatasource::new(log_store.clone(), logql::Engine::default())));
    options.resolve_datasource =
        Some(Arc::new(move |_path: &str, group: &catalog::RuleGroup| match group.datasource {
            catalog::Datasource::Sql => Some(sql_rules.clone()),
            catalog::Datasource::Docker => Some(docker_rules.clone()),
            _ => None,
        }));
    let manager = rules::Manager::new(&catalog.rule_files, options);

    // Triage: checks read the same stores and the simulated facts.
    let mut sources = triage::Sources::new(Duration::from_secs(60));
    let metrics: Arc<dyn CheckSource> =
        Arc::new(triage::adapters::EmbeddedMetrics { store: store.clone(), engine: engine.clone(), sparkline: None });
    sources.set(catalog::Datasource::Metrics, metrics.clone());
    sources.set(
        catalog::Datasource::Probe,
        Arc::new(triage::adapters::Probes { metrics, contracts: catalog.contracts.clone() }),
    );
    sources.set(
        catalog::Datasource::Logs,
        Arc::new(triage::adapters::EmbeddedLogs { source: log_store.clone(), engine: logql::Engine::default() }),
    );
    sources.set(catalog::Datasource::Sql, Arc::new(SqlChecks::new(day.clone(), &catalog)));
    sources.set(catalog::Datasource::Docker, Arc::new(DockerChecks(day.clone())));
    sources.set(catalog::Datasource::Traces, Arc::new(Traces(day.clone())));

    // Every (time, group) evaluation of the day; recording groups first at each instant.
    let mut schedule: Vec<(i64, bool, usize)> = Vec::new();
    assert_eq!(recording_groups.len(), manager.group_count());
    for (index, recording) in recording_groups.iter().enumerate() {
        let (name, interval_ms, evaluated_here) = manager.group_schedule(index).expect("group");
        assert!(evaluated_here, "group {name} is not evaluated");
        let interval_ms = COARSER_STEPS
            .iter()
            .find(|(group, _)| *group == name)
            .map_or(interval_ms, |(_, step)| (*step).max(interval_ms));
        let mut time_ms = day.start_ms();
        while time_ms <= day.end_ms() {
            schedule.push((time_ms, !recording, index));
            time_ms += interval_ms;
        }
    }
    schedule.sort();
    let rerun_times: Vec<i64> =
        day.incidents().iter().flat_map(|incident| &incident.triage).filter_map(|expected| expected.at_ms).collect();

    let mut firings: Vec<Firing> = Vec::new();
    let mut open: BTreeMap<(String, Vec<(String, String)>), usize> = BTreeMap::new();
    let mut runs: Vec<TriageRun> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    for (time_ms, _, index) in schedule {
        manager.evaluate_group(index, time_ms);
        let status = manager.statuses()[index].clone();
        for rule in &status.rules {
            if let Some(error) = &rule.last_error {
                errors.push(format!("{} at {}: {error}", rule.name, minutes(&day, time_ms)));
            }
            if !matches!(rule.kind, rules::RuleKind::Alerting) {
                continue;
            }
            let mut firing_now = Vec::new();
            for alert in rule.alerts.iter().filter(|alert| alert.state == rules::AlertState::Firing) {
                let labels = label_pairs(&alert.labels);
                let key = (rule.name.clone(), labels.clone());
                firing_now.push(key.clone());
                let first = !open.contains_key(&key);
                if first {
                    open.insert(key.clone(), firings.len());
                    firings.push(Firing {
                        alertname: rule.name.clone(),
                        labels: labels.clone(),
                        since_ms: time_ms,
                        last_ms: time_ms,
                    });
                } else {
                    firings[open[&key]].last_ms = time_ms;
                }
                let rerun = rerun_times.iter().any(|at| *at > time_ms - status.interval_ms && *at <= time_ms);
                if !first && !rerun {
                    continue;
                }
                let Some(entry) = catalog.entry(&rule.name) else { continue };
                let instance = triage::AlertInstance {
                    labels: labels.iter().cloned().collect(),
                    annotations: alert.annotations.clone(),
                    value: alert.value,
                    firing_since_ms: alert.fired_at_ms.unwrap_or(time_ms),
                    active_since_ms: Some(alert.active_at_ms),
                };
                let options = triage::RunOptions { time_ms, trigger: "test".into(), ..triage::RunOptions::default() };
                let run = triage::run(entry, &catalog.contracts, &instance, &sources.unshared(), &options);
                runs.push(TriageRun {
                    alertname: rule.name.clone(),
                    labels: labels.clone(),
                    time_ms,
                    first,
                    path: run.path.clone(),
                    missing: run.missing.clone(),
                });
            }
            open.retain(|key, _| key.0 != rule.name || firing_now.contains(key));
        }
    }

    eprintln!("day evaluated in {:?}", started.elapsed());
    let mut failures: Vec<String> = errors.into_iter().take(10).collect();
    let incident_of = |firing: &Firing| -> Option<&Incident> {
        day.incidents().iter().find(|incident| {
            incident.matches(&firing.alertname, &firing.labels)
                && firing.since_ms >= incident.fires_from_ms
                && firing.since_ms <= incident.fires_by_ms
        })
    };
    for incident in day.incidents() {
        let fired: Vec<&Firing> = firings
            .iter()
            .filter(|firing| incident_of(firing).is_some_and(|found| std::ptr::eq(found, incident)))
            .collect();
        let Some(firing) = fired.first() else {
            let seen: Vec<String> = firings
                .iter()
                .filter(|firing| incident.matches(&firing.alertname, &firing.labels))
                .map(|firing| format!("{}..{}", minutes(&day, firing.since_ms), minutes(&day, firing.last_ms)))
                .collect();
            failures.push(format!(
                "{} ({} {}): did not start firing in {}..{}; it fired {seen:?}",
                incident.name,
                incident.alert_id,
                incident.alertname,
                minutes(&day, incident.fires_from_ms),
                minutes(&day, incident.fires_by_ms)
            ));
            continue;
        };
        if firing.last_ms > incident.resolves_by_ms {
            failures.push(format!(
                "{} ({}): still firing at {}, after {}",
                incident.name,
                incident.alert_id,
                minutes(&day, firing.last_ms),
                minutes(&day, incident.resolves_by_ms)
            ));
        }
        for expected in &incident.triage {
            let run = runs.iter().find(|run| {
                run.alertname == firing.alertname
                    && run.labels == firing.labels
                    && match expected.at_ms {
                        None => run.first && run.time_ms == firing.since_ms,
                        Some(at) => !run.first && run.time_ms >= at && run.time_ms < at + 60_000,
                    }
            });
            match run {
                None => {
                    failures.push(format!("{} ({}): no triage run for {expected:?}", incident.name, incident.alert_id))
                }
                Some(run) if run.path != expected.path || !run.missing.is_empty() => failures.push(format!(
                    "{} ({}): triage at {} took {:?} (missing {:?}), expected {:?}",
                    incident.name,
                    incident.alert_id,
                    minutes(&day, run.time_ms),
                    run.path,
                    run.missing,
                    expected.path
                )),
                Some(_) => {}
            }
        }
    }
    for firing in &firings {
        if incident_of(firing).is_none() {
            failures.push(format!(
                "{} {:?} fired at {}..{} outside every incident",
                firing.alertname,
                firing.labels,
                minutes(&day, firing.since_ms),
                minutes(&day, firing.last_ms)
            ));
        }
    }
    assert!(failures.is_empty(), "{} problems:\n{}", failures.len(), failures.join("\n"));
}
