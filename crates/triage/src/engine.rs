//! The pure core: one run of an entry's steps for one alert instance.

use std::collections::{BTreeMap, BTreeSet};

use catalog::{Contract, Entry, Predicate, Step, StepKind};
use serde_json::{Value, json};

use crate::bind::{bind, number};
use crate::model::*;
use crate::source::{CheckContext, Outcome, Sources};

/// What a run needs besides the entry, the alert and the sources.
#[derive(Debug, Clone, Default)]
pub struct RunOptions<'a> {
    /// The evaluation time, Unix milliseconds.
    pub time_ms: i64,
    /// The previous run of the same alert instance: branches it took keep
    /// their `branch_since_ms`, which `after:` conditions measure from.
    pub previous: Option<&'a Run>,
    /// External labels, for query templates (`$externalLabels`).
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    /// Why the run happens (recorded in [`Run::trigger`]).
    pub trigger: String,
}

/// Runs `entry` for `alert`. Never fails: what could not be established is
/// reported in the run (`missing`, step statuses and reasons).
pub fn run(
    entry: &Entry,
    contracts: &BTreeMap<String, Contract>,
    alert: &AlertInstance,
    sources: &Sources,
    options: &RunOptions<'_>,
) -> Run {
    let started = std::time::Instant::now();
    let mut state = State {
        contracts,
        alert,
        time_ms: options.time_ms,
        facts: BTreeMap::new(),
        taken: BTreeSet::new(),
        path: Vec::new(),
        branch_since_ms: BTreeMap::new(),
        undecided: BTreeMap::new(),
        missing: Vec::new(),
    };
    let context = CheckContext { time_ms: options.time_ms, alert: alert.clone() };
    let mut steps = Vec::with_capacity(entry.steps.len());
    for step in &entry.steps {
        let mut report = StepReport {
            number: step.number,
            kind: kind_name(step.kind).to_owned(),
            text: step.text.clone(),
            branch: step.branch.clone(),
            status: StepStatus::Listed,
            reason: None,
            check: None,
            computed: BTreeMap::new(),
            holds: None,
            escalation: None,
        };
        if let Some(branch) = &step.branch
            && !state.taken.contains(branch)
        {
            report.status = StepStatus::Skipped;
            report.reason = Some(match state.undecided.get(branch) {
                Some(why) => format!("branch {branch} undecided: {why}"),
                None => format!("branch {branch} not taken"),
            });
            // The branches this step would pick are as undecided as its own.
            if let (Some(why), Some(check)) = (state.undecided.get(branch).cloned(), &step.check) {
                for candidate in &check.branches {
                    state.undecided.insert(candidate.branch.clone(), why.clone());
                }
            }
            steps.push(report);
            continue;
        }
        if let Some(check) = &step.check {
            run_check(step, check, sources, &context, options, &mut state, &mut report);
        }
        for computed in &step.compute {
            match state.evaluate(&computed.predicate) {
                Ok(value) => {
                    state.facts.insert(computed.name.clone(), value.clone());
                    report.computed.insert(computed.name.clone(), value);
                    if report.status == StepStatus::Listed {
                        report.status = StepStatus::Ran;
                    }
                }
                Err(message) => {
                    state.missing.push(computed.name.clone());
                    append_reason(&mut report, format!("cannot compute {}: {message}", computed.name));
                }
            }
        }
        if let Some(holds) = &step.holds {
            match state.evaluate(holds).map(|value| truthy(&value)) {
                Ok(flag) => report.holds = Some(flag),
                Err(message) => append_reason(&mut report, format!("cannot tell whether it holds: {message}")),
            }
        }
        steps.push(report);
    }
    let previous_path: BTreeSet<&String> = options.previous.map(|run| run.path.iter().collect()).unwrap_or_default();
    for branch in &state.path {
        let since = match options.previous {
            Some(previous) if previous_path.contains(branch) => {
                previous.branch_since_ms.get(branch).copied().unwrap_or(options.time_ms)
            }
            _ => options.time_ms,
        };
        state.branch_since_ms.insert(branch.clone(), since);
    }
    // Escalations measure `after:` from the branch's start: settle them now that it is known.
    for (report, step) in steps.iter_mut().zip(&entry.steps) {
        if step.kind == StepKind::Escalation && report.status != StepStatus::Skipped {
            report.escalation = Some(judge_escalation(step, &state));
        }
    }
    Run {
        runbook_id: entry.id.clone(),
        alertname: entry.alertname.clone(),
        fingerprint: alert.fingerprint(),
        labels: alert.labels.clone(),
        time_ms: options.time_ms,
        firing_since_ms: alert.firing_since_ms,
        duration_ms: started.elapsed().as_millis() as u64,
        previous_path: options.previous.filter(|previous| previous.path != state.path).map(|p| p.path.clone()),
        trigger: options.trigger.clone(),
        path: state.path,
        branch_since_ms: state.branch_since_ms,
        results: state.facts,
        missing: state.missing,
        steps,
    }
}

struct State<'a> {
    contracts: &'a BTreeMap<String, Contract>,
    alert: &'a AlertInstance,
    time_ms: i64,
    facts: BTreeMap<String, Value>,
    taken: BTreeSet<String>,
    path: Vec<String>,
    branch_since_ms: BTreeMap<String, i64>,
    /// Branches no check could decide, with the reason.
    undecided: BTreeMap<String, String>,
    missing: Vec<String>,
}

impl State<'_> {
    fn evaluate(&self, predicate: &Predicate) -> Result<Value, String> {
        let lookup = |path: &[String]| self.lookup(path);
        predicate.expr.evaluate(&lookup).map_err(|error| {
            // Name the facts the predicate reads that are missing: that is why it failed.
            let missing: Vec<String> = predicate
                .expr
                .free_paths()
                .into_iter()
                .filter(|path| self.missing.contains(&path[0]))
                .map(|path| path[0].clone())
                .collect();
            if missing.is_empty() {
                format!("`{}`: {}", predicate.text.trim(), error.message)
            } else {
                format!("`{}` reads {} which is missing", predicate.text.trim(), missing.join(", "))
            }
        })
    }

    fn lookup(&self, path: &[String]) -> Option<Value> {
        let (root, rest) = path.split_first()?;
        let base = match root.as_str() {
            "contracts" => {
                let (name, fields) = rest.split_first()?;
                return walk(&self.contracts.get(name)?.tree, fields);
            }
            "labels" => json!(self.alert.labels),
            "value" => number(self.alert.value),
            "alert" => json!({
                "labels": self.alert.labels,
                "annotations": self.alert.annotations,
                "value": number(self.alert.value),
                "alertname": self.alert.alertname(),
                "firing_since": self.alert.firing_since_ms as f64 / 1000.0,
                "firing_for_seconds": (self.time_ms - self.alert.firing_since_ms) as f64 / 1000.0,
            }),
            name => self.facts.get(name)?.clone(),
        };
        walk(&base, rest)
    }
}

fn walk(value: &Value, fields: &[String]) -> Option<Value> {
    let mut node = value;
    for field in fields {
        node = match node {
            Value::Object(map) => map.get(field)?,
            // A missing label reads as null, as a missing label in templates reads empty.
            Value::Null => return Some(Value::Null),
            _ => return None,
        };
    }
    Some(node.clone())
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(string) => !string.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

fn kind_name(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Instruction => "instruction",
        StepKind::Check => "check",
        StepKind::Escalation => "escalation",
        StepKind::GuardRail => "guard_rail",
    }
}

fn append_reason(report: &mut StepReport, reason: String) {
    report.reason = Some(match report.reason.take() {
        Some(earlier) => format!("{earlier}; {reason}"),
        None => reason,
    });
}

fn run_check(
    step: &Step,
    check: &catalog::Check,
    sources: &Sources,
    context: &CheckContext,
    options: &RunOptions<'_>,
    state: &mut State<'_>,
    report: &mut StepReport,
) {
    let candidates: Vec<String> = check.branches.iter().map(|branch| branch.branch.clone()).collect();
    let mut check_report = CheckReport {
        datasource: check.datasource.as_str().to_owned(),
        query: check.query.clone(),
        result: check.result.clone(),
        duration_ms: 0,
        value: None,
        series: Vec::new(),
        branch: None,
        candidates: Vec::new(),
        error: None,
    };
    let data = catalog::template::TemplateData {
        labels: context.alert.labels.clone(),
        external_labels: options.external_labels.clone(),
        external_url: options.external_url.clone(),
        value: context.alert.value,
    };
    let name = format!("step {} query", step.number);
    let outcome = match catalog::template::expand(&name, &check.query, &data, None) {
        Ok(expanded) => {
            check_report.query = expanded;
            let started = std::time::Instant::now();
            let outcome = sources.call(check.datasource, &check.result, &check_report.query, context);
            check_report.duration_ms = started.elapsed().as_millis() as u64;
            outcome
        }
        Err(error) => Outcome::Failed(format!("query template: {error}")),
    };
    let failure = match outcome {
        Outcome::Answered(answer) => match answer.found {
            Some(found) => {
                let value = bind(&found);
                state.facts.insert(check.result.clone(), value.clone());
                check_report.value = Some(value);
                check_report.series = answer.series;
                report.status = StepStatus::Ran;
                None
            }
            None => {
                report.status = StepStatus::Failed;
                Some("the datasource gave no result".to_owned())
            }
        },
        Outcome::Failed(message) => {
            report.status = StepStatus::Failed;
            Some(message)
        }
        Outcome::TimedOut => {
            report.status = StepStatus::TimedOut;
            Some(format!("no answer within {}s", sources.timeout.as_secs_f64()))
        }
        Outcome::NoSource => {
            report.status = StepStatus::Failed;
            Some(format!("no {} datasource configured", check.datasource.as_str()))
        }
    };
    if let Some(message) = failure {
        state.missing.push(check.result.clone());
        let why = format!("{} is missing ({message})", check.result);
        for candidate in &candidates {
            state.undecided.insert(candidate.clone(), why.clone());
        }
        check_report.candidates = candidates;
        check_report.error = Some(message.clone());
        append_reason(report, message);
        report.check = Some(check_report);
        return;
    }
    for branch in &check.branches {
        let picked = match &branch.when {
            None => Ok(true),
            Some(predicate) => state.evaluate(predicate).map(|value| truthy(&value)),
        };
        match picked {
            Ok(true) => {
                check_report.branch = Some(branch.branch.clone());
                state.taken.insert(branch.branch.clone());
                state.path.push(branch.branch.clone());
                break;
            }
            Ok(false) => {}
            Err(message) => {
                let why = format!("no branch picked: {message}");
                for candidate in &candidates {
                    state.undecided.insert(candidate.clone(), why.clone());
                }
                check_report.candidates = candidates.clone();
                append_reason(report, why);
                break;
            }
        }
    }
    report.check = Some(check_report);
}

/// Whether an escalation on the path is due at the run's time.
fn judge_escalation(step: &Step, state: &State<'_>) -> EscalationReport {
    let to = step.escalate_to.clone().unwrap_or_default();
    let condition = &step.condition;
    if condition.manual {
        return EscalationReport {
            to,
            due: false,
            manual: true,
            due_at_ms: None,
            reason: "a person decides; triage does not page".into(),
        };
    }
    if let Some(when) = &condition.when {
        match state.evaluate(when).map(|value| truthy(&value)) {
            Ok(true) => {}
            Ok(false) => {
                return EscalationReport {
                    to,
                    due: false,
                    manual: false,
                    due_at_ms: None,
                    reason: format!("`{}` does not hold", when.text.trim()),
                };
            }
            Err(message) => {
                return EscalationReport {
                    to,
                    due: false,
                    manual: false,
                    due_at_ms: None,
                    reason: format!("undecided: {message}"),
                };
            }
        }
    }
    let Some(after) = condition.after else {
        let reason = match &condition.when {
            Some(when) => format!("`{}` holds", when.text.trim()),
            None => "on the path".to_owned(),
        };
        return EscalationReport { to, due: true, manual: false, due_at_ms: None, reason };
    };
    let branch_since = step.branch.as_ref().and_then(|branch| state.branch_since_ms.get(branch)).copied();
    let since = branch_since.unwrap_or(state.alert.firing_since_ms).max(state.alert.firing_since_ms);
    let due_at_ms = since.saturating_add(after.as_millis() as i64);
    let due = state.time_ms >= due_at_ms;
    let sustained = catalog::markdown::format_duration(after);
    let reason = if due {
        format!("sustained for {sustained}")
    } else {
        let left = std::time::Duration::from_millis((due_at_ms - state.time_ms).max(0) as u64);
        format!("pages once sustained for {sustained} ({} left)", catalog::markdown::format_duration(left))
    };
    EscalationReport { to, due, manual: false, due_at_ms: Some(due_at_ms), reason }
}
