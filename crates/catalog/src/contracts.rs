//! Contract files: the numbers and lists the runbook treats as agreements
//! (budgets, SLOs, retention, ceilings, environment, networks, probes).
//!
//! Each file under `contracts/` names its `kind`, which selects a strict schema;
//! the file stem is the contract's name (`contracts/latency-slo.yaml` is
//! `latency-slo`). Besides the typed form, each contract is kept as a JSON tree
//! so that triage expressions can read `contracts.<name>.<field>`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::Diagnostic;
use crate::duration::parse_duration;
use crate::expr::in_subnet;
use crate::source::SourceFile;

pub use crate::probes::{PROBERS, ProbeTarget, Probes};

/// One loaded contract.
#[derive(Debug, Clone)]
pub struct Contract {
    pub name: String,
    pub kind: ContractKind,
    pub description: String,
    pub path: std::path::PathBuf,
    /// The file as a value tree, for `contracts.<name>.<field>` lookups.
    pub tree: serde_json::Value,
}

impl Contract {
    /// The reviewed PII false positives of a `pii-exclusions` contract (none for other kinds).
    pub fn pii_exclusions(&self) -> Vec<pii::Exclusion> {
        let ContractKind::PiiExclusions(exclusions) = &self.kind else { return Vec::new() };
        exclusions
            .iter()
            .map(|exclusion| pii::Exclusion {
                rule_id: exclusion.rule_id.clone(),
                sample: exclusion.sample.clone(),
                reviewer: exclusion.reviewer.clone().unwrap_or_default(),
            })
            .collect()
    }
}

/// The typed content of a contract, by kind.
#[derive(Debug, Clone)]
pub enum ContractKind {
    CardinalityBudgets(Vec<CardinalityBudget>),
    PiiExclusions(Vec<PiiExclusion>),
    Slo(Slo),
    Retention(Retention),
    ScalingCeiling(ScalingCeiling),
    Environment(Environment),
    RollbackWindow(RollbackWindow),
    StorageQuota(StorageQuota),
    Network(Network),
    Probes(Probes),
    PiiBudget(PiiBudget),
    Acme(Acme),
    ErrorBudget(ErrorBudget),
    LatencyDiagnosis(LatencyDiagnosis),
}

/// The kinds a contract file may declare.
pub const CONTRACT_KINDS: &[&str] = &[
    "cardinality-budgets",
    "pii-exclusions",
    "slo",
    "retention",
    "scaling-ceiling",
    "environment",
    "rollback-window",
    "storage-quota",
    "network",
    "probes",
    "pii-budget",
    "acme",
    "error-budget",
    "latency-diagnosis",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardinalityBudget {
    pub metric: String,
    pub cardinality_budget: u64,
    pub owner: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiExclusion {
    pub rule_id: String,
    pub sample: String,
    #[serde(default)]
    pub reviewer: Option<String>,
    pub added: String,
    #[serde(default)]
    pub pull_request: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    pub service: String,
    pub route: String,
    pub quantile: f64,
    pub objective_seconds: f64,
    pub page_threshold_seconds: f64,
    #[serde(rename = "for")]
    pub for_duration: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    pub store: String,
    pub period: String,
    /// How old the compactor's last successful run may get before it is behind.
    #[serde(default)]
    pub max_compaction_lag: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalingCeiling {
    pub service: String,
    pub relative_to: String,
    pub factor: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    pub service: String,
    pub env: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackWindow {
    pub change: String,
    pub window: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageQuota {
    pub bucket: String,
    pub quota_bytes: u64,
    pub alert_ratio: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub network: String,
    pub subnet: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiBudget {
    pub stream: String,
    pub max_matches: u64,
    pub window: String,
}

/// Traefik's ACME certificate resolvers and the resolver of each certificate
/// domain, as Traefik's static configuration and router labels declare them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acme {
    pub resolvers: BTreeMap<String, AcmeResolver>,
    /// Domain (the certificate's CN) to resolver name.
    pub certificates: BTreeMap<String, String>,
    /// How long before expiry an unrenewed certificate pages.
    pub page_before_expiry: String,
}

/// How a latency breach is told apart: regressed statement, load, capacity (A2).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyDiagnosis {
    /// Where snapshots of pg_stat_statements are kept (captured_at, queryid, calls, total_exec_time).
    pub snapshot_table: String,
    /// A statement regressed when its recent mean time is this multiple of its own past mean.
    pub slowdown_factor: f64,
    /// The breach is load-driven when the request rate is this multiple of last week's.
    pub load_factor: f64,
    /// The swarm has spare capacity with at least this many idle CPU cores.
    pub min_idle_cores: f64,
}

/// The share of a service's requests that may fail (5xx) before it pages.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBudget {
    pub service: String,
    pub max_error_ratio: f64,
    pub window: String,
    #[serde(rename = "for")]
    pub for_duration: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeResolver {
    /// `http-01`, `dns-01` or `tls-alpn-01` (Traefik's httpChallenge, dnsChallenge, tlsChallenge).
    pub challenge: String,
    #[serde(default)]
    pub dns_provider: Option<String>,
    /// The environment variable holding the DNS provider's API credentials.
    #[serde(default)]
    pub credentials_env: Option<String>,
}

/// The ACME challenge types Traefik's resolvers use.
pub const ACME_CHALLENGES: &[&str] = &["http-01", "dns-01", "tls-alpn-01"];

/// A contract whose content sits under `spec:`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile<T> {
    #[allow(dead_code)]
    kind: String,
    description: String,
    spec: T,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetsFile {
    #[allow(dead_code)]
    kind: String,
    description: String,
    budgets: Vec<Spanned<CardinalityBudget>>,
    /// How many times its budget a metric's series count reaches before it pages.
    #[allow(dead_code)]
    page_factor: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExclusionsFile {
    #[allow(dead_code)]
    kind: String,
    description: String,
    exclusions: Vec<Spanned<PiiExclusion>>,
}

/// Loads and validates one contract file; problems go to `errors`.
pub fn load_contract(source: &SourceFile, errors: &mut Vec<Diagnostic>) -> Option<Contract> {
    let name = source.path.file_stem()?.to_string_lossy().into_owned();
    let header: RawHeader = match source.parse_yaml() {
        Ok(header) => header,
        Err(diagnostic) => {
            errors.push(diagnostic);
            return None;
        }
    };
    let tree: serde_json::Value = source.parse_yaml().ok()?;
    let kind_text = header.kind.value.as_str();
    let parse = |errors: &mut Vec<Diagnostic>| -> Option<(ContractKind, String)> {
        macro_rules! typed {
            ($body:ty, $wrap:expr) => {{
                let file: SpecFile<$body> = source.parse_yaml().map_err(|d| errors.push(d)).ok()?;
                Some(($wrap(file.spec), file.description))
            }};
        }
        match kind_text {
            "cardinality-budgets" => {
                let file: BudgetsFile = source.parse_yaml().map_err(|d| errors.push(d)).ok()?;
                let mut seen = BTreeMap::new();
                for budget in &file.budgets {
                    if let Some(first) = seen.insert(budget.value.metric.clone(), budget.referenced) {
                        errors.push(source.error_at_value(
                            budget,
                            format!("metric {:?} has a budget already (line {})", budget.value.metric, first.line()),
                        ));
                    }
                    if budget.value.cardinality_budget == 0 {
                        errors.push(source.error_at_value(budget, "cardinality_budget must be at least 1"));
                    }
                }
                let budgets = file.budgets.into_iter().map(|budget| budget.value).collect();
                Some((ContractKind::CardinalityBudgets(budgets), file.description))
            }
            "pii-exclusions" => {
                let file: ExclusionsFile = source.parse_yaml().map_err(|d| errors.push(d)).ok()?;
                for exclusion in &file.exclusions {
                    let reviewer = exclusion.value.reviewer.as_deref().unwrap_or("").trim();
                    if reviewer.is_empty() {
                        errors.push(source.error_at_value(
                            exclusion,
                            format!(
                                "exclusion for rule {:?} has no reviewer: every exclusion needs one",
                                exclusion.value.rule_id
                            ),
                        ));
                    }
                    if exclusion.value.sample.trim().is_empty() {
                        errors.push(source.error_at_value(exclusion, "exclusion has an empty sample excerpt"));
                    }
                    if !is_date(&exclusion.value.added) {
                        errors.push(source.error_at_value(
                            exclusion,
                            format!("added {:?} is not a date (YYYY-MM-DD)", exclusion.value.added),
                        ));
                    }
                }
                let exclusions = file.exclusions.into_iter().map(|exclusion| exclusion.value).collect();
                Some((ContractKind::PiiExclusions(exclusions), file.description))
            }
            "slo" => typed!(Slo, ContractKind::Slo),
            "retention" => typed!(Retention, ContractKind::Retention),
            "scaling-ceiling" => typed!(ScalingCeiling, ContractKind::ScalingCeiling),
            "environment" => typed!(Environment, ContractKind::Environment),
            "rollback-window" => typed!(RollbackWindow, ContractKind::RollbackWindow),
            "storage-quota" => typed!(StorageQuota, ContractKind::StorageQuota),
            "network" => typed!(Network, ContractKind::Network),
            "probes" => {
                let file: SpecFile<crate::probes::RawProbes> = source.parse_yaml().map_err(|d| errors.push(d)).ok()?;
                let probes = crate::probes::validate(file.spec, source, errors)?;
                Some((ContractKind::Probes(probes), file.description))
            }
            "pii-budget" => typed!(PiiBudget, ContractKind::PiiBudget),
            "acme" => typed!(Acme, ContractKind::Acme),
            "error-budget" => typed!(ErrorBudget, ContractKind::ErrorBudget),
            "latency-diagnosis" => typed!(LatencyDiagnosis, ContractKind::LatencyDiagnosis),
            other => {
                errors.push(source.error_at_value(
                    &header.kind,
                    format!("unknown contract kind {other:?}; expected one of: {}", CONTRACT_KINDS.join(", ")),
                ));
                None
            }
        }
    };
    let (kind, description) = parse(errors)?;
    let before = errors.len();
    validate_values(&kind, source, &header.kind, errors);
    (errors.len() == before).then_some(Contract { name, kind, description, path: source.path.clone(), tree })
}

#[derive(Deserialize)]
struct RawHeader {
    kind: Spanned<String>,
}

fn is_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 3
        && parts[0].len() == 4
        && parts[1].len() == 2
        && parts[2].len() == 2
        && parts.iter().all(|part| part.bytes().all(|byte| byte.is_ascii_digit()))
        && matches!(parts[1].parse::<u8>(), Ok(1..=12))
        && matches!(parts[2].parse::<u8>(), Ok(1..=31))
}

/// Range and format checks that the schema alone cannot express.
fn validate_values(kind: &ContractKind, source: &SourceFile, at: &Spanned<String>, errors: &mut Vec<Diagnostic>) {
    let mut fail = |message: String| errors.push(source.error_at_value(at, message));
    let mut duration = |field: &str, text: &str| {
        if let Err(error) = parse_duration(text) {
            fail(format!("{field}: {error}"));
        }
    };
    match kind {
        ContractKind::Slo(slo) => {
            duration("for", &slo.for_duration);
            if !(0.0..=1.0).contains(&slo.quantile) {
                errors.push(source.error_at_value(at, "quantile must lie between 0 and 1"));
            }
            if slo.page_threshold_seconds < slo.objective_seconds {
                errors.push(source.error_at_value(at, "page_threshold_seconds is below objective_seconds"));
            }
        }
        ContractKind::Retention(retention) => {
            duration("period", &retention.period);
            if let Some(lag) = &retention.max_compaction_lag {
                duration("max_compaction_lag", lag);
            }
        }
        ContractKind::LatencyDiagnosis(diagnosis)
            if diagnosis.slowdown_factor <= 1.0 || diagnosis.load_factor <= 1.0 =>
        {
            errors.push(source.error_at_value(at, "slowdown_factor and load_factor must be above 1"));
        }
        ContractKind::ErrorBudget(budget) => {
            duration("window", &budget.window);
            duration("for", &budget.for_duration);
            if !(0.0..=1.0).contains(&budget.max_error_ratio) {
                errors.push(source.error_at_value(at, "max_error_ratio must lie between 0 and 1"));
            }
        }
        ContractKind::RollbackWindow(window) => duration("window", &window.window),
        ContractKind::PiiBudget(budget) => duration("window", &budget.window),
        ContractKind::ScalingCeiling(ceiling) if ceiling.factor <= 0.0 => {
            fail("factor must be positive".into());
        }
        ContractKind::StorageQuota(quota) if !(0.0..=1.0).contains(&quota.alert_ratio) => {
            fail("alert_ratio must lie between 0 and 1".into());
        }
        ContractKind::Acme(acme) => {
            if let Err(error) = parse_duration(&acme.page_before_expiry) {
                errors.push(source.error_at_value(at, format!("page_before_expiry: {error}")));
            }
            for (name, resolver) in &acme.resolvers {
                if !ACME_CHALLENGES.contains(&resolver.challenge.as_str()) {
                    errors.push(source.error_at_value(
                        at,
                        format!(
                            "resolver {name:?} uses unknown challenge {:?}; expected one of: {}",
                            resolver.challenge,
                            ACME_CHALLENGES.join(", ")
                        ),
                    ));
                }
                if (resolver.challenge == "dns-01") != resolver.dns_provider.is_some() {
                    errors.push(source.error_at_value(
                        at,
                        format!("resolver {name:?}: a dns_provider goes with the dns-01 challenge, and only with it"),
                    ));
                }
            }
            for (domain, resolver) in &acme.certificates {
                if !acme.resolvers.contains_key(resolver) {
                    errors.push(
                        source
                            .error_at_value(at, format!("certificate {domain:?} names unknown resolver {resolver:?}")),
                    );
                }
            }
        }
        ContractKind::Network(network) => {
            if let Err(error) = in_subnet("0.0.0.0", &network.subnet) {
                fail(error);
            }
        }
        _ => {}
    }
}
