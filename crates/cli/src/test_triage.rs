//! `triage_test` in `alertbook test rules` files: an alert's triage run over
//! the group's `input_series` and `input_logs`, with `fixtures` for the
//! checks of other datasources (SQL, Docker), asserted at an eval time.
//!
//! ```yaml
//! triage_catalog: ..            # file level: the catalog whose runbook entries run
//! tests:
//!   - input_series: [...]
//!     triage_test:
//!       - eval_time: 10m
//!         runbook: A1            # ID or alertname
//!         alert_labels: {}       # default: the labels of the rule's firing alert then
//!         firing_for: 0s         # for `after:` escalations (default: since the group's first run)
//!         fixtures: {lock_waits: 0}
//!         exp_triage:
//!           path: [broad, not-postgres]
//!           results: {top_tenant_share: 0.3333333333333333}   # the facts named here
//!           missing: []                                      # optional
//!           escalations: []                                  # routes due; optional
//! ```
//!
//! Runs of one entry in a group follow each other: a branch taken by every
//! run since an earlier test keeps its start, which `after:` measures from.
//! Numbers compare with a relative tolerance of 1e-9.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTriageTest {
    #[serde(default)]
    pub eval_time: Option<crate::test_rules::Scalar>,
    pub runbook: String,
    #[serde(default)]
    pub alert_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub alert_value: Option<f64>,
    #[serde(default)]
    pub firing_for: Option<String>,
    #[serde(default)]
    pub fixtures: BTreeMap<String, serde_json::Value>,
    pub exp_triage: RawExpectedTriage,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpectedTriage {
    pub path: Vec<String>,
    #[serde(default)]
    pub results: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub missing: Option<Vec<String>>,
    #[serde(default)]
    pub escalations: Option<Vec<String>>,
}

/// What a group's triage tests read.
pub struct Inputs<'a> {
    pub catalog: &'a catalog::Catalog,
    pub store: Arc<tsdb::MemStore>,
    pub engine: promql::Engine,
    pub logs: Arc<logstore::LogStore>,
    pub manager: &'a rules::Manager,
}

/// Runs one triage test at `time_ms`, after `previous` (the group's last run
/// of the same entry, whose branches keep their start for `after:`). Returns
/// the failure, if any, and the run.
pub fn check(
    inputs: &Inputs<'_>,
    test: &RawTriageTest,
    time_ms: i64,
    at_ms: i64,
    previous: Option<&triage::Run>,
    prefix: &str,
) -> (Option<String>, Option<triage::Run>) {
    check_inner(inputs, test, time_ms, at_ms, previous, prefix)
}

fn check_inner(
    inputs: &Inputs<'_>,
    test: &RawTriageTest,
    time_ms: i64,
    at_ms: i64,
    previous: Option<&triage::Run>,
    prefix: &str,
) -> (Option<String>, Option<triage::Run>) {
    let fail = |message: String| {
        (
            Some(format!(
                "{prefix}    runbook: {}, time: {},\n        {message}",
                test.runbook,
                catalog::template::format_go_duration(at_ms as f64 / 1000.0)
            )),
            None,
        )
    };
    let Some(entry) = inputs.catalog.entry(&test.runbook) else {
        return fail(format!("no runbook entry with ID or alertname {:?}", test.runbook));
    };
    let firing_for_ms = match test.firing_for.as_deref().map(catalog::duration::parse_duration) {
        None => previous.map_or(0, |run| time_ms - run.firing_since_ms),
        Some(Ok(duration)) => duration.as_millis() as i64,
        Some(Err(error)) => return fail(format!("firing_for: {error}")),
    };
    let alert = match &test.alert_labels {
        Some(labels) => {
            let mut labels = labels.clone();
            labels.insert("alertname".into(), entry.alertname.clone());
            triage::AlertInstance {
                labels,
                annotations: BTreeMap::new(),
                value: test.alert_value.unwrap_or(0.0),
                firing_since_ms: time_ms - firing_for_ms,
                active_since_ms: None,
            }
        }
        None => {
            let firing = inputs
                .manager
                .statuses()
                .iter()
                .flat_map(|group| group.rules.clone())
                .filter(|rule| rule.name == entry.alertname)
                .flat_map(|rule| rule.alerts)
                .find(|alert| alert.state == rules::AlertState::Firing);
            let Some(firing) = firing else {
                return fail(format!("{} is not firing; give alert_labels to triage it anyway", entry.alertname));
            };
            triage::AlertInstance {
                labels: firing.labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect(),
                annotations: firing.annotations.clone(),
                value: test.alert_value.unwrap_or(firing.value),
                firing_since_ms: time_ms - firing_for_ms,
                active_since_ms: None,
            }
        }
    };
    let mut sources = triage::adapters::embedded_sources(
        std::time::Duration::from_secs(30),
        triage::adapters::EmbeddedMetrics {
            store: inputs.store.clone(),
            engine: inputs.engine.clone(),
            sparkline: None,
        },
        Some(triage::adapters::EmbeddedLogs { source: inputs.logs.clone(), engine: logql::Engine::default() }),
        inputs.catalog.contracts.clone(),
    );
    sources.fixtures = test.fixtures.clone();
    let options = triage::RunOptions { time_ms, previous, trigger: "test".into(), ..triage::RunOptions::default() };
    let run = triage::run(entry, &inputs.catalog.contracts, &alert, &sources, &options);

    let mut problems = Vec::new();
    if run.path != test.exp_triage.path {
        problems.push(format!("path: expected {:?}, got {:?}", test.exp_triage.path, run.path));
    }
    for (name, expected) in &test.exp_triage.results {
        match run.results.get(name) {
            None => problems.push(format!("result {name}: expected {expected}, got none")),
            Some(got) if !json_equal(expected, got) => {
                problems.push(format!("result {name}: expected {expected}, got {got}"))
            }
            Some(_) => {}
        }
    }
    if let Some(missing) = &test.exp_triage.missing
        && *missing != run.missing
    {
        problems.push(format!("missing: expected {missing:?}, got {:?}", run.missing));
    }
    if let Some(escalations) = &test.exp_triage.escalations {
        let due: Vec<String> = run.due_escalations().map(|(_, escalation, _)| escalation.to.clone()).collect();
        if *escalations != due {
            problems.push(format!("escalations: expected {escalations:?}, got {due:?}"));
        }
    }
    if problems.is_empty() {
        return (None, Some(run));
    }
    let reasons: Vec<String> = run
        .steps
        .iter()
        .filter_map(|step| step.reason.as_ref().map(|reason| format!("step {}: {reason}", step.number)))
        .filter(|line| !line.contains("not taken"))
        .collect();
    let mut message = problems.join("\n        ");
    if !reasons.is_empty() {
        message.push_str("\n        (");
        message.push_str(&reasons.join("; "));
        message.push(')');
    }
    (fail(message).0, Some(run))
}

fn json_equal(expected: &serde_json::Value, got: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (expected, got) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
            _ => a == b,
        },
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(a, b)| json_equal(a, b)),
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(key, value)| b.get(key).is_some_and(|other| json_equal(value, other)))
        }
        _ => expected == got,
    }
}

/// The branches of each entry no `triage_test` of the catalog's `tests/`
/// directory takes, by entry ID; and how many branches there are in all.
pub fn uncovered_branches(catalog: &catalog::Catalog) -> (Vec<(String, String)>, usize) {
    let mut covered: std::collections::BTreeSet<(String, String)> = std::collections::BTreeSet::new();
    // Read through the catalog's files, so the built-in catalog's tests count too.
    for path in catalog.files.yaml_files(&catalog.root.join("tests")) {
        let Ok(text) = catalog.files.read(&path).map(|source| source.text) else { continue };
        let Ok(value) = serde_saphyr::from_str::<serde_json::Value>(&text) else { continue };
        let groups = value.get("tests").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
        for test in
            groups.iter().flat_map(|group| group.get("triage_test").and_then(serde_json::Value::as_array)).flatten()
        {
            let Some(entry) =
                test.get("runbook").and_then(serde_json::Value::as_str).and_then(|key| catalog.entry(key))
            else {
                continue;
            };
            let path =
                test.pointer("/exp_triage/path").and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
            for branch in path.iter().filter_map(serde_json::Value::as_str) {
                covered.insert((entry.id.clone(), branch.to_owned()));
            }
        }
    }
    let mut uncovered = Vec::new();
    let mut total = 0;
    for entry in &catalog.entries {
        for check in entry.steps.iter().filter_map(|step| step.check.as_ref()) {
            for branch in &check.branches {
                total += 1;
                if !covered.contains(&(entry.id.clone(), branch.branch.clone())) {
                    uncovered.push((entry.id.clone(), branch.branch.clone()));
                }
            }
        }
    }
    (uncovered, total)
}
