//! What triage reads (the alert) and what it reports (a run, step by step).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One firing alert instance, as triage sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertInstance {
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The value of the sample that made the alert fire (`{{ $value }}`);
    /// NaN (written as null) when unknown.
    #[serde(deserialize_with = "float_or_null")]
    pub value: f64,
    /// When the alert started firing, Unix milliseconds.
    pub firing_since_ms: i64,
    /// When the alert became active (pending, before `for:` elapsed;
    /// Prometheus's `activeAt`), Unix milliseconds, when known. Trace checks
    /// search from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_since_ms: Option<i64>,
}

impl AlertInstance {
    pub fn alertname(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }

    pub fn fingerprint(&self) -> String {
        crate::fingerprint(&self.labels)
    }
}

/// A float that JSON may hold as null (serde_json writes NaN and infinities so).
fn float_or_null<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

/// How a step fared in a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// The check ran and bound its result (or the step's facts were computed).
    Ran,
    /// Not on the path: its branch was not taken, or could not be decided.
    Skipped,
    /// The check's query failed, or its datasource is not configured.
    Failed,
    /// The check did not answer within the timeout.
    TimedOut,
    /// An instruction, guard rail or escalation on the path, with nothing to run.
    Listed,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Ran => "ran",
            StepStatus::Skipped => "skipped",
            StepStatus::Failed => "failed",
            StepStatus::TimedOut => "timed_out",
            StepStatus::Listed => "listed",
        }
    }
}

/// A check as it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub datasource: String,
    /// The query after template expansion.
    pub query: String,
    /// The result's name.
    pub result: String,
    pub duration_ms: u64,
    /// The bound result (what predicates read); absent when the check failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Series points over the last half hour, for a sparkline (metrics checks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<crate::Series>,
    /// The branch this check picked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// The branches it could have picked, when it picked none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An escalation as triage judged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EscalationReport {
    /// The route paged.
    pub to: String,
    /// Whether the page is due now.
    pub due: bool,
    /// A person decides; triage never sends it.
    #[serde(default)]
    pub manual: bool,
    /// When the `after:` wait ends (or ended), Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at_ms: Option<i64>,
    /// Why it is due or not, in words.
    pub reason: String,
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    pub number: usize,
    pub kind: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub status: StepStatus,
    /// Why the step was skipped or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckReport>,
    /// Facts this step computed (`compute:`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub computed: BTreeMap<String, Value>,
    /// For guard rails with `holds:`: whether it holds (`None`: could not tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holds: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationReport>,
}

/// One triage run of an alert instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub runbook_id: String,
    pub alertname: String,
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    /// The evaluation time of the run, Unix milliseconds.
    pub time_ms: i64,
    pub firing_since_ms: i64,
    /// How long the whole run took.
    pub duration_ms: u64,
    /// The branches taken, in the order they were picked.
    pub path: Vec<String>,
    /// The previous run's path, when this run took another: a branch change
    /// (A1 moving from one-tenant to broad) is an event of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_path: Option<Vec<String>>,
    /// Why the run happened: `firing`, `rerun`, `on_demand`, `manual`, `replay`, `test`.
    #[serde(default)]
    pub trigger: String,
    /// Since when each branch of the path has been taken by every run in a row.
    pub branch_since_ms: BTreeMap<String, i64>,
    /// Every fact established: check results and computed facts, by name.
    pub results: BTreeMap<String, Value>,
    /// Facts on the path that could not be established (failed, timed out,
    /// no datasource, or computed from a missing fact).
    pub missing: Vec<String>,
    pub steps: Vec<StepReport>,
}

impl Run {
    /// The escalations due now, with their step numbers.
    pub fn due_escalations(&self) -> impl Iterator<Item = (usize, &EscalationReport, &StepReport)> {
        self.steps.iter().filter_map(|step| {
            step.escalation
                .as_ref()
                .filter(|escalation| escalation.due)
                .map(|escalation| (step.number, escalation, step))
        })
    }

    /// Guard rails on the path that do not hold.
    pub fn violated_guard_rails(&self) -> impl Iterator<Item = &StepReport> {
        self.steps.iter().filter(|step| step.holds == Some(false))
    }
}
