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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RawDatasource {
    Metrics,
    Logs,
    Sql,
    Docker,
    Probe,
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
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuleFile {
    pub groups: Vec<RawRuleGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuleGroup {
    pub name: Spanned<String>,
    #[serde(default)]
    pub interval: Option<Spanned<String>>,
    #[serde(default)]
    pub limit: Option<u64>,
    #[serde(default)]
    pub query_offset: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// alertbook extension: `metrics` (PromQL, the default), `logs`, `sql`, `docker`.
    #[serde(default)]
    pub datasource: Option<Spanned<RawDatasource>>,
    #[serde(default)]
    pub rules: Vec<Spanned<RawRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    #[serde(default)]
    pub record: Option<Spanned<String>>,
    #[serde(default)]
    pub alert: Option<Spanned<String>>,
    pub expr: Spanned<String>,
    #[serde(default, rename = "for")]
    pub for_duration: Option<Spanned<String>>,
    #[serde(default)]
    pub keep_firing_for: Option<Spanned<String>>,
    #[serde(default)]
    pub labels: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub annotations: BTreeMap<String, Spanned<String>>,
}
