//! The validated catalog: what the rest of alertbook reads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::contracts::Contract;
use crate::expr::Expr;
pub use crate::raw::RawDatasource as Datasource;

/// A loaded, cross-checked catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The catalog directory, or the display root of a built-in catalog (`<built-in>/catalog/busflow`).
    pub root: PathBuf,
    /// Where the catalog's files are read from.
    pub files: crate::files::CatalogFiles,
    pub name: String,
    pub title: String,
    pub description: String,
    pub runbook_url_template: String,
    pub routes: Vec<String>,
    pub closing: Closing,
    /// Entries sorted by ID (A1, A2, ..., A10).
    pub entries: Vec<Entry>,
    pub contracts: BTreeMap<String, Contract>,
    pub rule_files: Vec<RuleFile>,
    /// The PII redaction rules (`pii_rules:` of `catalog.yaml`), if the catalog has them.
    pub pii_rules: Option<pii::RuleSet>,
    /// Whom each route reaches (`contacts.yaml`), if the catalog has them.
    pub contacts: Option<crate::contacts::Contacts>,
}

#[derive(Debug, Clone)]
pub struct Closing {
    pub summary: String,
    pub fields: Vec<ClosingField>,
}

#[derive(Debug, Clone)]
pub struct ClosingField {
    pub name: String,
    pub description: String,
    pub required_when: Option<String>,
}

/// One runbook entry: an alert, its intent and its triage.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub alertname: String,
    pub title: String,
    pub intent: String,
    pub page: Vec<String>,
    pub background: Option<String>,
    pub steps: Vec<Step>,
    /// The contract expressions the rule's thresholds must equal, in order.
    pub thresholds: Vec<ThresholdBinding>,
    pub escalation: Option<String>,
    pub closing: Option<String>,
    pub path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Instruction,
    Check,
    Escalation,
    GuardRail,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Instruction => "instruction",
            StepKind::Check => "check",
            StepKind::Escalation => "escalation",
            StepKind::GuardRail => "guard rail",
        }
    }
}

/// A contract expression one threshold of the entry's rule must equal.
/// A guard rail's forbidden-command pattern found in a remediation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForbiddenCommand {
    /// The guard rail's 1-based step number and text.
    pub step: usize,
    pub rail: String,
    pub pattern: String,
    /// The part of the remediation the pattern matched.
    pub matched: String,
}

impl Entry {
    /// The guard rails of this entry that `remediation` (the commands or
    /// change a responder records when closing the alert) breaks: every
    /// `forbids` pattern that matches it, in step order. Patterns were
    /// validated when the catalog loaded.
    pub fn forbidden_commands(&self, remediation: &str) -> Vec<ForbiddenCommand> {
        let mut found = Vec::new();
        for step in self.steps.iter().filter(|step| step.kind == StepKind::GuardRail) {
            for pattern in &step.forbids {
                let Ok(regex) = regex::Regex::new(pattern) else { continue };
                if let Some(hit) = regex.find(remediation) {
                    found.push(ForbiddenCommand {
                        step: step.number,
                        rail: step.text.clone(),
                        pattern: pattern.clone(),
                        matched: hit.as_str().to_owned(),
                    });
                }
            }
        }
        found
    }
}

#[derive(Debug, Clone)]
pub struct ThresholdBinding {
    pub text: String,
    /// Where the expression is written in the entry (1-based line and column).
    pub line: usize,
    pub column: usize,
}

/// One triage step.
#[derive(Debug, Clone)]
pub struct Step {
    /// 1-based position within the entry.
    pub number: usize,
    pub kind: StepKind,
    pub text: String,
    pub branch: Option<String>,
    pub check: Option<Check>,
    pub escalate_to: Option<String>,
    pub contracts: Vec<String>,
    pub compute: Vec<Computed>,
    pub holds: Option<Predicate>,
    /// Guard rails: the commands the rail forbids, as regexes.
    pub forbids: Vec<String>,
    /// For escalations: when triage sends the page to `escalate_to`.
    pub condition: EscalationCondition,
}

/// When an escalation step pages its route. With no `when`, no `after` and
/// not `manual`, triage pages as soon as the step is on the alert's path.
#[derive(Debug, Clone, Default)]
pub struct EscalationCondition {
    /// Must hold over the run's results, computed facts and the alert.
    pub when: Option<Predicate>,
    /// The alert must have been firing this long, with the step's branch
    /// taken by every triage run since: re-evaluated while it keeps firing.
    pub after: Option<Duration>,
    /// A person decides: listed on the path, never sent by triage.
    pub manual: bool,
}

/// A query run when the alert fires, whose result picks a branch.
#[derive(Debug, Clone)]
pub struct Check {
    pub datasource: Datasource,
    pub query: String,
    pub result: String,
    pub branches: Vec<Branch>,
}

#[derive(Debug, Clone)]
pub struct Branch {
    /// `None`: taken when no earlier branch matched.
    pub when: Option<Predicate>,
    pub branch: String,
}

/// An expression with the text it was parsed from.
#[derive(Debug, Clone)]
pub struct Predicate {
    pub text: String,
    pub expr: Expr,
}

#[derive(Debug, Clone)]
pub struct Computed {
    pub name: String,
    pub predicate: Predicate,
}

impl Datasource {
    pub fn as_str(self) -> &'static str {
        match self {
            Datasource::Metrics => "metrics",
            Datasource::Logs => "logs",
            Datasource::Sql => "sql",
            Datasource::Docker => "docker",
            Datasource::Probe => "probe",
            Datasource::Traces => "traces",
        }
    }
}

/// A Prometheus-format rule file.
#[derive(Debug, Clone)]
pub struct RuleFile {
    pub path: PathBuf,
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone)]
pub struct RuleGroup {
    pub name: String,
    pub interval: Option<Duration>,
    pub limit: Option<u64>,
    pub query_offset: Option<Duration>,
    pub labels: BTreeMap<String, String>,
    pub datasource: Datasource,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub enum RuleKind {
    Alert(String),
    Record(String),
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub kind: RuleKind,
    pub expr: String,
    pub for_duration: Duration,
    pub keep_firing_for: Duration,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Line of the rule in its file.
    pub line: usize,
}

impl Catalog {
    /// The reviewed false positives of PII redaction, from the `pii-exclusions` contracts.
    pub fn pii_exclusions(&self) -> Vec<pii::Exclusion> {
        self.contracts.values().flat_map(Contract::pii_exclusions).collect()
    }

    /// The entry whose ID or alertname is `key` (IDs compare case-insensitively).
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.id.eq_ignore_ascii_case(key) || entry.alertname == key)
    }

    /// The runbook URL of an entry.
    pub fn runbook_url(&self, id: &str) -> String {
        self.runbook_url_template.replace("{id}", id)
    }

    /// Alerting rules with their file, group and rule.
    pub fn alert_rules(&self) -> impl Iterator<Item = (&RuleFile, &RuleGroup, &Rule)> {
        self.rule_files.iter().flat_map(|file| {
            file.groups.iter().flat_map(move |group| {
                group
                    .rules
                    .iter()
                    .filter(|rule| matches!(rule.kind, RuleKind::Alert(_)))
                    .map(move |rule| (file, group, rule))
            })
        })
    }

    /// Counts for the `check` summary.
    pub fn summary(&self) -> Summary {
        let steps = self.entries.iter().map(|entry| entry.steps.len()).sum();
        let checks = self.entries.iter().flat_map(|entry| &entry.steps).filter(|step| step.check.is_some()).count();
        let rules = self.rule_files.iter().flat_map(|file| &file.groups).map(|group| group.rules.len()).sum();
        Summary {
            alerts: self.entries.len(),
            steps,
            checks,
            contracts: self.contracts.len(),
            rules,
            rule_files: self.rule_files.len(),
        }
    }
}

/// What a catalog holds, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub alerts: usize,
    pub steps: usize,
    pub checks: usize,
    pub contracts: usize,
    pub rules: usize,
    pub rule_files: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} alerts, {} triage steps ({} checks), {} contracts, {} rules in {} rule files",
            self.alerts, self.steps, self.checks, self.contracts, self.rules, self.rule_files
        )
    }
}
