use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use triage::{AlertInstance, Answer, CheckContext, CheckSource, RunOptions, Sources, StepStatus};

const MINUTE: i64 = 60_000;
/// 2026-12-01T12:00:00Z.
const NOW: i64 = 1_796_126_400_000;

fn catalog() -> catalog::Catalog {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow");
    catalog::load(&root).expect("the Busflow catalog loads")
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

fn alert(alertname: &str, firing_since_ms: i64) -> AlertInstance {
    AlertInstance {
        labels: labels(&[("alertname", alertname), ("severity", "page")]),
        annotations: BTreeMap::new(),
        value: 0.05,
        firing_since_ms,
        active_since_ms: None,
    }
}

/// 5xx counters of busflow_api per tenant, growing at `per_second` each over the last hour.
fn api_errors(per_second: &[(&str, f64)]) -> Arc<tsdb::MemStore> {
    let store = Arc::new(tsdb::MemStore::new());
    for (tenant, rate) in per_second {
        let series = tsdb::Labels::from_pairs([
            ("__name__", "http_server_request_duration_seconds_count"),
            ("service_name", "busflow_api"),
            ("http_response_status_code", "503"),
            ("tenant_id", tenant),
        ]);
        for minute in 0..=60 {
            let time = NOW - 60 * MINUTE + minute * MINUTE;
            store.append(&series, time, rate * 60.0 * minute as f64).expect("append");
        }
    }
    store
}

fn metrics_sources(store: Arc<tsdb::MemStore>) -> Sources {
    let metrics = triage::adapters::EmbeddedMetrics {
        store,
        engine: promql::Engine::new(promql::EngineOptions::default()),
        sparkline: Some(Duration::from_secs(30 * 60)),
    };
    Sources::new(Duration::from_secs(5)).with(catalog::Datasource::Metrics, Arc::new(metrics))
}

fn step(run: &triage::Run, number: usize) -> &triage::StepReport {
    run.steps.iter().find(|step| step.number == number).expect("step")
}

#[test]
fn a1_one_tenant_binds_the_share_and_lists_the_missing_sql_fact() {
    let catalog = catalog();
    let entry = catalog.entry("A1").expect("A1");
    let sources = metrics_sources(api_errors(&[("t7", 9.4), ("t2", 0.4), ("t3", 0.2)]));
    let firing = alert("HighApiErrorRate", NOW - 5 * MINUTE);
    let run =
        triage::run(entry, &catalog.contracts, &firing, &sources, &RunOptions { time_ms: NOW, ..Default::default() });

    assert_eq!(run.path, vec!["one-tenant"]);
    let share = run.results["top_tenant_share"].as_f64().expect("a number");
    assert!((share - 0.94).abs() < 1e-9, "{share}");
    assert_eq!(run.missing, vec!["tenant_backpressure"]);
    let first = step(&run, 1);
    assert_eq!(first.status, StepStatus::Ran);
    let check = first.check.as_ref().expect("check");
    assert_eq!(check.branch.as_deref(), Some("one-tenant"));
    assert!(!check.series.is_empty() && check.series[0].points.len() > 20, "sparkline points: {:?}", check.series);
    let sql = step(&run, 2);
    assert_eq!(sql.status, StepStatus::Failed);
    assert!(sql.reason.as_deref().unwrap_or_default().contains("no sql datasource"), "{:?}", sql.reason);
    // The broad branch's steps are skipped, saying why.
    assert_eq!(step(&run, 4).status, StepStatus::Skipped);
    assert_eq!(step(&run, 4).reason.as_deref(), Some("branch broad not taken"));
    // The CSM is paged only once the tenant's errors are sustained for 30 minutes.
    let csm = step(&run, 3).escalation.as_ref().expect("escalation");
    assert_eq!(csm.to, "tenant-csm");
    assert!(!csm.due);
    assert_eq!(csm.due_at_ms, Some(NOW + 30 * MINUTE));
    assert_eq!(triage::summary::path(&run), "one-tenant");
    let summary = triage::summary::summary(&run);
    assert!(
        summary.starts_with("top_tenant_share = 0.94\ntenant_backpressure missing (no sql datasource"),
        "{summary}"
    );

    // Re-run 31 minutes later, still one tenant: the escalation is due.
    let later = NOW + 31 * MINUTE;
    let sources_later = metrics_sources(api_errors(&[("t7", 9.4), ("t2", 0.4), ("t3", 0.2)]));
    let options = RunOptions { time_ms: later, previous: Some(&run), ..Default::default() };
    let rerun = triage::run(entry, &catalog.contracts, &firing, &sources_later, &options);
    // The data ends at NOW: the rate over the last 5 minutes is gone, so the share is not there.
    assert!(rerun.path.is_empty(), "{:?}", rerun.path);
    let options = RunOptions { time_ms: NOW + 3 * MINUTE, previous: Some(&run), ..Default::default() };
    let rerun = triage::run(entry, &catalog.contracts, &firing, &sources, &options);
    assert_eq!(rerun.branch_since_ms["one-tenant"], NOW, "the branch keeps its start");
}

#[test]
fn a1_escalation_is_due_after_thirty_minutes_on_the_branch_only() {
    let catalog = catalog();
    let entry = catalog.entry("A1").expect("A1");
    let firing = alert("HighApiErrorRate", NOW - 40 * MINUTE);
    let mut sources = Sources::new(Duration::from_secs(5));
    sources.fixtures.insert("top_tenant_share".into(), json!(0.9));
    // First run at NOW: the alert fired 40 minutes ago but the branch starts now.
    let first =
        triage::run(entry, &catalog.contracts, &firing, &sources, &RunOptions { time_ms: NOW, ..Default::default() });
    assert!(!step(&first, 3).escalation.as_ref().expect("escalation").due);
    // 31 minutes later, the branch was taken by every run since: due.
    let options = RunOptions { time_ms: NOW + 31 * MINUTE, previous: Some(&first), ..Default::default() };
    let second = triage::run(entry, &catalog.contracts, &firing, &sources, &options);
    let escalation = step(&second, 3).escalation.as_ref().expect("escalation");
    assert!(escalation.due, "{escalation:?}");
    assert_eq!(second.due_escalations().map(|(number, ..)| number).collect::<Vec<_>>(), vec![3]);
    // Had the errors gone broad in between, the clock restarts.
    sources.fixtures.insert("top_tenant_share".into(), json!(0.3));
    let broad = triage::run(
        entry,
        &catalog.contracts,
        &firing,
        &sources,
        &RunOptions { time_ms: NOW + 10 * MINUTE, previous: Some(&first), ..Default::default() },
    );
    assert_eq!(broad.path, vec!["broad"]);
    sources.fixtures.insert("top_tenant_share".into(), json!(0.9));
    let options = RunOptions { time_ms: NOW + 31 * MINUTE, previous: Some(&broad), ..Default::default() };
    let back = triage::run(entry, &catalog.contracts, &firing, &sources, &options);
    assert!(!step(&back, 3).escalation.as_ref().expect("escalation").due);
    assert_eq!(back.branch_since_ms["one-tenant"], NOW + 31 * MINUTE);
}

#[test]
fn a1_broad_failed_check_names_the_missing_fact_and_the_candidates() {
    let catalog = catalog();
    let entry = catalog.entry("A1").expect("A1");
    let sources = metrics_sources(api_errors(&[("t7", 1.0), ("t2", 1.0), ("t3", 1.0)]));
    let run = triage::run(
        entry,
        &catalog.contracts,
        &alert("HighApiErrorRate", NOW),
        &sources,
        &RunOptions { time_ms: NOW, ..Default::default() },
    );
    assert_eq!(run.path, vec!["broad"]);
    let locks = step(&run, 4);
    assert_eq!(locks.status, StepStatus::Failed);
    assert_eq!(locks.check.as_ref().expect("check").candidates, vec!["postgres-rooted", "not-postgres"]);
    assert!(run.missing.contains(&"lock_waits".to_owned()));
    // Steps of the undecided branches say so; the one after them too.
    let rollback = step(&run, 6);
    assert_eq!(rollback.status, StepStatus::Skipped);
    assert!(
        rollback
            .reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("branch postgres-rooted undecided: lock_waits is missing"),
        "{:?}",
        rollback.reason
    );
    let p1 = step(&run, 8);
    assert!(p1.reason.as_deref().unwrap_or_default().contains("undecided"), "{:?}", p1.reason);
    // The edge check is on the broad branch and runs: no traefik series, so null.
    assert_eq!(step(&run, 5).status, StepStatus::Ran);
    assert_eq!(run.results["edge_5xx_rate"], Value::Null);
}

#[test]
fn a1_postgres_rooted_outside_the_rollback_window_pages_a_p1() {
    let catalog = catalog();
    let entry = catalog.entry("A1").expect("A1");
    let store = api_errors(&[("t7", 1.0), ("t2", 1.0)]);
    let cutover = tsdb::Labels::from_pairs([("__name__", "busflow_postgres_cutover_timestamp_seconds")]);
    store.append(&cutover, NOW - MINUTE, ((NOW - 100 * 3600 * 1000) / 1000) as f64).expect("append");
    let mut sources = metrics_sources(store);
    sources.fixtures.insert("lock_waits".into(), json!(3));
    let run = triage::run(
        entry,
        &catalog.contracts,
        &alert("HighApiErrorRate", NOW),
        &sources,
        &RunOptions { time_ms: NOW, ..Default::default() },
    );
    assert_eq!(run.path, vec!["broad", "postgres-rooted", "p1-incident"]);
    assert_eq!(run.results["seconds_since_cutover"], json!(100.0 * 3600.0));
    let p1 = step(&run, 8);
    assert_eq!(p1.status, StepStatus::Listed);
    assert!(p1.escalation.as_ref().expect("escalation").due);
    assert_eq!(step(&run, 7).status, StepStatus::Skipped);
}

#[test]
fn a3_several_rules_pages_security_at_once_and_one_rule_leaves_it_to_a_person() {
    let catalog = catalog();
    let entry = catalog.entry("A3").expect("A3");
    let mut sources = Sources::new(Duration::from_secs(5));
    sources.fixtures.insert("matches_by_rule".into(), json!({"email": 4, "iban": 3}));
    let firing = alert("PiiLeakDetected", NOW);
    let run =
        triage::run(entry, &catalog.contracts, &firing, &sources, &RunOptions { time_ms: NOW, ..Default::default() });
    assert_eq!(run.path, vec!["several-rules"]);
    let due: Vec<(usize, String)> =
        run.due_escalations().map(|(number, escalation, _)| (number, escalation.to.clone())).collect();
    assert_eq!(due, vec![(6, "security-oncall".to_owned())]);

    sources.fixtures.insert("matches_by_rule".into(), json!({"email": 7}));
    let run =
        triage::run(entry, &catalog.contracts, &firing, &sources, &RunOptions { time_ms: NOW, ..Default::default() });
    assert_eq!(run.path, vec!["one-rule"]);
    let manual = step(&run, 5).escalation.as_ref().expect("escalation");
    assert!(manual.manual && !manual.due);
    assert_eq!(run.due_escalations().count(), 0);
}

#[test]
fn a10_hetzner_escalates_only_past_a_day() {
    let catalog = catalog();
    let entry = catalog.entry("A10").expect("A10");
    let store = Arc::new(tsdb::MemStore::new());
    for (probe, success) in [("aws-ses", 1.0), ("hetzner-object-storage", 0.0), ("llm-provider", 1.0)] {
        let series = tsdb::Labels::from_pairs([
            ("__name__", "probe_success"),
            ("probe_group", "external-dependency-probes"),
            ("probe", probe),
        ]);
        store.append(&series, NOW - MINUTE, success).expect("append");
    }
    let metrics: Arc<dyn CheckSource> = Arc::new(triage::adapters::EmbeddedMetrics {
        store,
        engine: promql::Engine::new(promql::EngineOptions::default()),
        sparkline: None,
    });
    let probes = triage::adapters::Probes { metrics: metrics.clone(), contracts: catalog.contracts.clone() };
    let sources = Sources::new(Duration::from_secs(5))
        .with(catalog::Datasource::Metrics, metrics)
        .with(catalog::Datasource::Probe, Arc::new(probes));
    let mut firing = alert("ExternalDependencyDown", NOW - 2 * 3600 * 1000);
    firing.labels.insert("probe".into(), "hetzner-object-storage".into());
    let run =
        triage::run(entry, &catalog.contracts, &firing, &sources, &RunOptions { time_ms: NOW, ..Default::default() });
    assert_eq!(run.path, vec!["object-storage"]);
    assert_eq!(run.results["failing_probe"]["name"], json!("hetzner-object-storage"));
    assert_eq!(run.results["failing_probe"]["prober"], json!("s3"));
    assert_eq!(run.results["failing_probe"]["success"], json!(0.0));
    let escalation = run.steps.iter().find_map(|step| step.escalation.as_ref()).expect("escalation");
    assert_eq!(escalation.to, "infra-oncall");
    assert!(!escalation.due);
    assert_eq!(escalation.due_at_ms, Some(NOW + 24 * 3600 * 1000));
}

struct Slow;

impl CheckSource for Slow {
    fn run(&self, _query: &str, _context: &CheckContext) -> Result<Answer, String> {
        std::thread::sleep(Duration::from_secs(2));
        Err("too late".into())
    }
}

#[test]
fn a_check_that_does_not_answer_in_time_is_timed_out_and_picks_no_branch() {
    let catalog = catalog();
    let entry = catalog.entry("A6").expect("A6");
    let sources = Sources::new(Duration::from_millis(100)).with(catalog::Datasource::Metrics, Arc::new(Slow));
    let started = std::time::Instant::now();
    let run = triage::run(
        entry,
        &catalog.contracts,
        &alert("LokiCompactorBehind", NOW),
        &sources,
        &RunOptions { time_ms: NOW, ..Default::default() },
    );
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    let first = step(&run, 1);
    assert_eq!(first.status, StepStatus::TimedOut);
    assert_eq!(first.check.as_ref().expect("check").candidates, vec!["compactor-unhealthy", "compactor-healthy"]);
    assert!(run.path.is_empty());
    assert!(run.missing.contains(&"compactor_lag_seconds".to_owned()));
}

#[test]
fn queries_are_templates_over_the_alert() {
    let mut catalog = catalog();
    let entry = catalog.entries.iter_mut().find(|entry| entry.id == "A1").expect("A1");
    let check = entry.steps[0].check.as_mut().expect("check");
    check.query = r#"sum(rate(http_server_request_duration_seconds_count{tenant_id="{{ $labels.tenant_id }}"}[5m])) / {{ $value }}"#.into();
    let entry = entry.clone();
    let sources = metrics_sources(api_errors(&[("t7", 9.4), ("t2", 0.4)]));
    let mut firing = alert("HighApiErrorRate", NOW);
    firing.labels.insert("tenant_id".into(), "t2".into());
    firing.value = 0.5;
    let run =
        triage::run(&entry, &catalog.contracts, &firing, &sources, &RunOptions { time_ms: NOW, ..Default::default() });
    let check = step(&run, 1).check.as_ref().expect("check");
    assert_eq!(check.query, r#"sum(rate(http_server_request_duration_seconds_count{tenant_id="t2"}[5m])) / 0.5"#);
    let value = run.results["top_tenant_share"].as_f64().expect("number");
    assert!((value - 0.8).abs() < 1e-9, "{value}");
}
