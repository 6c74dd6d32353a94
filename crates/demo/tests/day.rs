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

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::catalog_dir;
use demo::adapters::{DockerChecks, DockerRules, SqlChecks, SqlRules, Traces};
use demo::{Day, Incident};

/// Groups evaluated less often than their interval: (group, step in ms).
/// `busflow-api` keeps several evaluations inside each `for`, and
/// `busflow-cardinality` (no `for`) still fires within the script's window.
const COARSER_STEPS: [(&str, i64); 2] = [("busflow-api", 60_000), ("busflow-cardinality", 120_000)];

fn label_pairs(labels: &tsdb::Labels) -> Vec<(String, String)> {
    labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect()
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

/// `a1-one-tenant (A1)`: how a failure names its incident.
fn named(incident: &Incident) -> String {
    format!("{} ({})", incident.name, incident.alert_id)
}

fn minutes(day: &Day, time_ms: i64) -> String {
    format!("+{:.1}m", (time_ms - day.start_ms()) as f64 / 60_000.0)
}

#[test]
fn the_busflow_day_pages_each_incident_once_with_its_triage_path() {
    check_day(Day::busflow());
}

/// `alertbook demo` starts the day whenever it is run: a day that starts at
/// 01:45 UTC (its A2 batch-job incident then falls at midday UTC, when the
/// traffic of a wall-clock curve dips) pages and triages as the 06:00 one.
#[test]
fn a_day_started_at_night_pages_and_triages_the_same() {
    check_day(Day::busflow_at(demo::DEFAULT_START_MS + 19 * demo::HOUR_MS + 45 * demo::MINUTE_MS, demo::DEFAULT_SEED));
}

fn check_day(day: Day) {
    let started = std::time::Instant::now();
    let day = Arc::new(day);
    eprintln!("day built in {:?}", started.elapsed());
    let catalog = catalog::load(&catalog_dir()).expect("the Busflow catalog loads");

    // Metrics: every sample of the day (and the week-ago baseline) into the embedded store.
    let store = Arc::new(common::metrics(&day));
    eprintln!("metrics loaded in {:?}", started.elapsed());
    // Logs: through the catalog's redaction, as a push would, into a real log store.
    let logs = common::logs(&day, &catalog);
    let log_store = logs.store.clone();
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
    let recording_groups: Vec<bool> = catalog
        .rule_files
        .iter()
        .flat_map(|file| &file.groups)
        .map(|group| group.rules.iter().all(|rule| matches!(rule.kind, catalog::RuleKind::Record(_))))
        .collect();
    let sql_rules: Arc<dyn rules::Datasource> = Arc::new(SqlRules::new(day.clone(), &catalog));
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
    let mut sources = triage::adapters::embedded_sources(
        Duration::from_secs(60),
        triage::adapters::EmbeddedMetrics { store: store.clone(), engine: engine.clone(), sparkline: None },
        Some(triage::adapters::EmbeddedLogs { source: log_store.clone(), engine: logql::Engine::default() }),
        catalog.contracts.clone(),
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
                "{} {}: did not start firing in {}..{}; it fired {seen:?}",
                named(incident),
                incident.alertname,
                minutes(&day, incident.fires_from_ms),
                minutes(&day, incident.fires_by_ms)
            ));
            continue;
        };
        if firing.last_ms > incident.resolves_by_ms {
            failures.push(format!(
                "{}: still firing at {}, after {}",
                named(incident),
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
                None => failures.push(format!("{}: no triage run for {expected:?}", named(incident))),
                Some(run) if run.path != expected.path || !run.missing.is_empty() => failures.push(format!(
                    "{}: triage at {} took {:?} (missing {:?}), expected {:?}",
                    named(incident),
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
