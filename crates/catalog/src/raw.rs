//! Raw serde structures: the files exactly as written, with spans, before any
//! validation. Every struct denies unknown fields so a typo is an error.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// `catalog.yaml`: the catalog's manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawManifest {
    pub name: Spanned<String>,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// Template of an entry's runbook URL; `{id}` is replaced by the entry ID.
    pub runbook_url: Spanned<String>,
    /// The on-call routes entries may page or escalate to.
    pub routes: Vec<Spanned<String>>,
    /// Globs, relative to the catalog, of the rule files.
    pub rule_files: Vec<Spanned<String>>,
    /// Path, relative to the catalog, of the PII redaction rules applied at log ingest.
    #[serde(default)]
    pub pii_rules: Option<Spanned<String>>,
    /// What closing an acknowledged alert in the journal requires.
    pub closing: RawClosing,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClosing {
    pub summary: String,
    pub fields: Vec<RawClosingField>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClosingField {
    pub name: Spanned<String>,
    pub description: String,
    #[serde(default)]
    pub required_when: Option<Spanned<String>>,
}

/// `runbook/<ID>.yaml`: one runbook entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntry {
    pub id: Spanned<String>,
    pub alertname: Spanned<String>,
    pub title: String,
    pub intent: String,
    pub page: Vec<Spanned<String>>,
    #[serde(default)]
    pub background: Option<String>,
    pub steps: Vec<Spanned<RawStep>>,
    /// The contract value of each threshold of the alert's rule, in order (see `thresholds`).
    #[serde(default)]
    pub thresholds: Vec<Spanned<String>>,
    #[serde(default)]
    pub escalation: Option<String>,
    #[serde(default)]
    pub closing: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawStepKind {
    Instruction,
    Check,
    Escalation,
    GuardRail,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub kind: Spanned<RawStepKind>,
    pub text: String,
    /// The branch this step belongs to; absent: always applies.
    #[serde(default)]
    pub branch: Option<Spanned<String>>,
    #[serde(default)]
    pub check: Option<RawCheck>,
    /// For escalations: the route paged.
    #[serde(default)]
    pub to: Option<Spanned<String>>,
    /// Contracts the step relies on, by name.
    #[serde(default)]
    pub contracts: Vec<Spanned<String>>,
    /// Facts computed from earlier results: name to expression.
    #[serde(default)]
    pub compute: BTreeMap<String, Spanned<String>>,
    /// For guard rails: the expression that must hold; a violation is flagged.
    #[serde(default)]
    pub holds: Option<Spanned<String>>,
    /// For guard rails: regexes of the commands the rail forbids (matched
    /// against a remediation's commands, as the journal records them).
    #[serde(default)]
    pub forbids: Vec<Spanned<String>>,
    /// For escalations: the condition (over results, computed facts and the
    /// alert) under which triage sends the page.
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    /// For escalations: how long the alert must have been firing, with the
    /// step's branch on the path all along, before the page is sent.
    #[serde(default)]
    pub after: Option<Spanned<String>>,
    /// For escalations: a person decides; triage lists it and never sends it.
    #[serde(default)]
    pub manual: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawDatasource {
    Metrics,
    Logs,
    Sql,
    Docker,
    Probe,
    /// Trace search (TraceQL against Tempo): checks only, never rule groups.
    Traces,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    pub datasource: Spanned<RawDatasource>,
    pub query: Spanned<String>,
    /// The name later predicates use for this check's result.
    pub result: Spanned<String>,
    #[serde(default)]
    pub branches: Vec<Spanned<RawBranch>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBranch {
    /// Predicate; absent on the last branch means "otherwise".
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    pub branch: Spanned<String>,
}

/// A Prometheus rule file, with alertbook's optional per-group `datasource`.
///
/// As Prometheus's `rulefmt` (YAML v3 into Go structs): a field written with no
/// value (`rules:`, `labels:`, `expr:`) is null and reads as the field's zero
/// value, so `rules:` alone is a group of 0 rules and `expr:` alone is an
/// unset expression that validation then refuses.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuleFile {
    #[serde(default, deserialize_with = "null_as_default")]
    pub groups: Vec<Spanned<RawRuleGroup>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuleGroup {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Spanned<Option<String>>>,
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub query_offset: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, Spanned<Option<String>>>,
    /// alertbook extension: `metrics` (PromQL, the default), `logs`, `sql`, `docker`.
    #[serde(default)]
    pub datasource: Option<Spanned<RawDatasource>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub rules: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(default, deserialize_with = "present")]
    pub record: Option<Spanned<Option<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub alert: Option<Spanned<Option<String>>>,
    #[serde(default, deserialize_with = "present")]
    pub expr: Option<Spanned<Option<String>>>,
    #[serde(default, rename = "for")]
    pub for_duration: Option<Spanned<String>>,
    #[serde(default)]
    pub keep_firing_for: Option<Spanned<String>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, Spanned<Option<String>>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub annotations: BTreeMap<String, Spanned<Option<String>>>,
}

/// A null value (a key written with nothing after it) reads as the default.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A key that is written is present, even with a null value (kept with its location).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}
