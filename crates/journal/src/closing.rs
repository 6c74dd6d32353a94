//! The closing rule: validation of a journal entry's fields, as the
//! catalog's `closing.fields` name them (`alert_id`, `root_cause`,
//! `remediation`, `contract_changed`, `contract_pr`, which is
//! `required_when: contract_changed`). Every refused field is reported, each
//! with its name and why; nothing is written unless all pass. Pure: no I/O.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The longest root cause, in characters.
pub const ROOT_CAUSE_MAX_CHARS: usize = 200;
/// The longest remediation, in characters.
pub const REMEDIATION_MAX_CHARS: usize = 500;
/// The remediation of an alert that needed none, exactly so.
pub const NO_OP_TRANSIENT: &str = "no-op, transient";
/// How a configuration change is written as a remediation: `config: <what changed>`.
pub const CONFIG_PREFIX: &str = "config:";

/// What a responder submits to close (or correct) an entry, as received:
/// JSON or a form post. Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosingForm {
    /// Prefilled with the alert's runbook ID; when given it must match.
    #[serde(default)]
    pub alert_id: Option<String>,
    #[serde(default)]
    pub root_cause: Option<String>,
    /// A pull request URL, `config: <what changed>`, or exactly "no-op, transient".
    #[serde(default)]
    pub remediation: Option<String>,
    /// `yes`/`no` (or JSON `true`/`false`).
    #[serde(default)]
    pub contract_changed: Option<serde_json::Value>,
    /// Which catalog contract changed (required when one did).
    #[serde(default)]
    pub contract: Option<String>,
    /// The contract change's pull request: required exactly when a contract changed.
    #[serde(default)]
    pub contract_pr: Option<String>,
    /// For a correction: the revision it replaces (the latest one); absent to close.
    #[serde(default)]
    pub revision: Option<i64>,
    /// The CSRF token of a form post (checked by the server, ignored here).
    #[serde(default, skip_serializing)]
    pub csrf_token: Option<String>,
}

/// A refused field: which and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// How the alert was remedied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remediation {
    /// A link to the pull request (or other change) that fixed it.
    Link(String),
    /// A configuration change, described.
    ConfigChange(String),
    /// Nothing was needed: exactly "no-op, transient".
    NoOpTransient,
}

impl Remediation {
    /// As stored and shown.
    pub fn as_text(&self) -> String {
        match self {
            Remediation::Link(url) => url.clone(),
            Remediation::ConfigChange(text) => format!("{CONFIG_PREFIX} {text}"),
            Remediation::NoOpTransient => NO_OP_TRANSIENT.to_owned(),
        }
    }
}

/// A validated closing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closing {
    pub alert_id: String,
    pub root_cause: String,
    pub remediation: Remediation,
    /// The contract that changed and its pull request; `None`: none changed.
    pub contract_change: Option<(String, String)>,
}

/// What validation checks against: the catalog's contract names and the
/// field names its closing rule lists.
#[derive(Debug, Clone, Default)]
pub struct ClosingRules {
    pub contracts: BTreeSet<String>,
    /// `closing.fields` of the catalog, by name, with their descriptions (for hints).
    pub fields: Vec<(String, String)>,
    /// The runbook entries by ID, whose guard rails' `forbids` patterns a
    /// recorded remediation is read against.
    pub entries: std::collections::BTreeMap<String, catalog::Entry>,
}

/// A guard rail of the alert's runbook entry that a recorded remediation
/// breaks: the entry is kept as written (it records what was done), and
/// the break is shown wherever the entry is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BrokenGuardRail {
    /// The guard rail's step number in the runbook entry, and its text.
    pub step: usize,
    pub rail: String,
    /// The part of the remediation that a `forbids` pattern matched.
    pub matched: String,
}

impl ClosingRules {
    /// The guard rails of `alert_id`'s runbook entry that `remediation` breaks.
    pub fn broken_guard_rails(&self, alert_id: &str, remediation: &str) -> Vec<BrokenGuardRail> {
        self.entries
            .get(alert_id)
            .map(|entry| {
                entry
                    .forbidden_commands(remediation)
                    .into_iter()
                    .map(|found| BrokenGuardRail { step: found.step, rail: found.rail, matched: found.matched })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The fields alertbook knows how to validate and store.
pub const KNOWN_FIELDS: &[&str] = &["alert_id", "root_cause", "remediation", "contract_changed", "contract_pr"];

impl ClosingRules {
    /// The rules of a loaded catalog.
    pub fn from_catalog(catalog: &catalog::Catalog) -> Self {
        ClosingRules {
            contracts: catalog.contracts.keys().cloned().collect(),
            fields: catalog
                .closing
                .fields
                .iter()
                .map(|field| (field.name.clone(), field.description.clone()))
                .collect(),
            entries: catalog.entries.iter().map(|entry| (entry.id.clone(), entry.clone())).collect(),
        }
    }

    /// The catalog's closing fields alertbook cannot store (a catalog change
    /// ahead of the code); the caller reports them at start.
    pub fn unknown_fields(&self) -> Vec<&str> {
        self.fields.iter().map(|(name, _)| name.as_str()).filter(|name| !KNOWN_FIELDS.contains(name)).collect()
    }
}

fn trimmed(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|text| !text.is_empty())
}

fn is_one_line(text: &str) -> bool {
    !text.chars().any(|character| character.is_control())
}

/// Whether `text` is an absolute http(s) URL with a host and nothing that
/// would break it (whitespace, control characters, quotes, angle brackets).
pub fn is_web_url(text: &str) -> bool {
    let rest = text.strip_prefix("https://").or_else(|| text.strip_prefix("http://"));
    let Some(rest) = rest else { return false };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
    !host.is_empty()
        && !host.starts_with(':')
        && text.len() <= 2000
        && !text
            .chars()
            .any(|character| character.is_whitespace() || character.is_control() || "\"'<>`".contains(character))
}

/// Parses yes/no as the form and the API send it.
fn yes_no(value: &serde_json::Value) -> Option<bool> {
    match value {
        serde_json::Value::Bool(flag) => Some(*flag),
        serde_json::Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" => Some(true),
            "no" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// Validates `form` for the alert whose runbook ID is `alert_id`: every
/// refused field at once, in the catalog's field order.
pub fn validate(form: &ClosingForm, alert_id: &str, rules: &ClosingRules) -> Result<Closing, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut refuse = |field: &'static str, message: String| errors.push(FieldError { field, message });

    if let Some(given) = trimmed(&form.alert_id)
        && given != alert_id
    {
        refuse("alert_id", format!("this alert is {alert_id}, not {given:?}"));
    }

    let root_cause = trimmed(&form.root_cause).unwrap_or("");
    if root_cause.is_empty() {
        refuse("root_cause", "the root cause is required: one line".into());
    } else if !is_one_line(root_cause) {
        refuse("root_cause", "the root cause must be one line".into());
    } else if root_cause.chars().count() > ROOT_CAUSE_MAX_CHARS {
        refuse(
            "root_cause",
            format!(
                "the root cause must be at most {ROOT_CAUSE_MAX_CHARS} characters (it has {})",
                root_cause.chars().count()
            ),
        );
    }

    let remediation = match trimmed(&form.remediation) {
        None => {
            refuse(
                "remediation",
                format!(
                    "the remediation is required: a pull request URL, `{CONFIG_PREFIX} <what changed>`, or exactly {NO_OP_TRANSIENT:?}"
                ),
            );
            None
        }
        Some(text) if !is_one_line(text) || text.chars().count() > REMEDIATION_MAX_CHARS => {
            refuse(
                "remediation",
                format!("the remediation must be one line of at most {REMEDIATION_MAX_CHARS} characters"),
            );
            None
        }
        Some(NO_OP_TRANSIENT) => Some(Remediation::NoOpTransient),
        Some(text) if is_web_url(text) => Some(Remediation::Link(text.to_owned())),
        Some(text) => match text.strip_prefix(CONFIG_PREFIX).map(str::trim) {
            Some(change) if !change.is_empty() => Some(Remediation::ConfigChange(change.to_owned())),
            Some(_) => {
                refuse("remediation", format!("say which configuration changed after `{CONFIG_PREFIX}`"));
                None
            }
            None => {
                refuse(
                    "remediation",
                    format!(
                        "{text:?} is none of: a pull request URL (https://...), `{CONFIG_PREFIX} <what changed>`, or exactly {NO_OP_TRANSIENT:?}"
                    ),
                );
                None
            }
        },
    };

    let changed = match &form.contract_changed {
        None => {
            refuse("contract_changed", "say whether a contract changed: yes or no".into());
            None
        }
        Some(serde_json::Value::String(text)) if text.trim().is_empty() => {
            refuse("contract_changed", "say whether a contract changed: yes or no".into());
            None
        }
        Some(value) => match yes_no(value) {
            Some(flag) => Some(flag),
            None => {
                refuse("contract_changed", format!("{value} is not yes or no"));
                None
            }
        },
    };

    let contract = trimmed(&form.contract);
    let pull_request = trimmed(&form.contract_pr);
    let mut contract_change = None;
    match changed {
        Some(true) => {
            match contract {
                None => refuse("contract", "name the catalog contract that changed".into()),
                Some(name) if !rules.contracts.contains(name) => {
                    let known: Vec<&str> = rules.contracts.iter().map(String::as_str).collect();
                    refuse("contract", format!("the catalog has no contract {name:?} (it has: {})", known.join(", ")))
                }
                Some(_) => {}
            }
            match pull_request {
                None => refuse("contract_pr", "a contract changed: the link to its pull request is required".into()),
                Some(url) if !is_web_url(url) => {
                    refuse("contract_pr", format!("{url:?} is not a link such as https://git.example/org/repo/pull/12"))
                }
                Some(_) => {}
            }
            if let (Some(name), Some(url)) = (contract, pull_request) {
                contract_change = Some((name.to_owned(), url.to_owned()));
            }
        }
        Some(false) => {
            if pull_request.is_some() {
                refuse("contract_pr", "no contract changed: leave the pull request link empty".into());
            }
            if contract.is_some() {
                refuse("contract", "no contract changed: leave the contract empty".into());
            }
        }
        None => {}
    }

    match remediation {
        Some(remediation) if errors.is_empty() => Ok(Closing {
            alert_id: alert_id.to_owned(),
            root_cause: root_cause.to_owned(),
            remediation,
            contract_change,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> ClosingRules {
        ClosingRules {
            contracts: ["log-retention".to_owned(), "latency-slo".to_owned()].into(),
            ..ClosingRules::default()
        }
    }

    fn form(root_cause: &str, remediation: &str, changed: &str, contract: &str, pr: &str) -> ClosingForm {
        let optional = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        ClosingForm {
            alert_id: Some("A6".into()),
            root_cause: optional(root_cause),
            remediation: optional(remediation),
            contract_changed: optional(changed).map(serde_json::Value::String),
            contract: optional(contract),
            contract_pr: optional(pr),
            ..ClosingForm::default()
        }
    }

    fn refused(form: &ClosingForm) -> Vec<&'static str> {
        validate(form, "A6", &rules()).expect_err("refused").iter().map(|error| error.field).collect()
    }

    #[test]
    fn a_complete_form_closes() {
        let closing =
            validate(&form("compactor OOM-killed", NO_OP_TRANSIENT, "no", "", ""), "A6", &rules()).expect("valid");
        assert_eq!(closing.remediation, Remediation::NoOpTransient);
        assert_eq!(closing.contract_change, None);
        let closing = validate(
            &form(
                "retention too short",
                "https://git.example/busflow/pull/12",
                "yes",
                "log-retention",
                "https://git.example/busflow/pull/13",
            ),
            "A6",
            &rules(),
        )
        .expect("valid");
        assert_eq!(closing.remediation, Remediation::Link("https://git.example/busflow/pull/12".into()));
        assert_eq!(
            closing.contract_change,
            Some(("log-retention".into(), "https://git.example/busflow/pull/13".into()))
        );
        let closing = validate(&form("x", "config: loki compactor interval 10m", "false", "", ""), "A6", &rules())
            .expect("valid");
        assert_eq!(closing.remediation.as_text(), "config: loki compactor interval 10m");
    }

    #[test]
    fn every_bad_field_is_refused_at_once() {
        assert_eq!(refused(&ClosingForm::default()), ["root_cause", "remediation", "contract_changed"]);
        let mut wrong_alert = form("x", NO_OP_TRANSIENT, "no", "", "");
        wrong_alert.alert_id = Some("A3".into());
        assert_eq!(refused(&wrong_alert), ["alert_id"]);
    }

    #[test]
    fn the_root_cause_is_one_line_of_at_most_200_characters() {
        assert_eq!(refused(&form("   ", NO_OP_TRANSIENT, "no", "", "")), ["root_cause"]);
        assert_eq!(refused(&form("two\nlines", NO_OP_TRANSIENT, "no", "", "")), ["root_cause"]);
        let exactly = "é".repeat(ROOT_CAUSE_MAX_CHARS);
        assert!(validate(&form(&exactly, NO_OP_TRANSIENT, "no", "", ""), "A6", &rules()).is_ok());
        let longer = "é".repeat(ROOT_CAUSE_MAX_CHARS + 1);
        let errors = validate(&form(&longer, NO_OP_TRANSIENT, "no", "", ""), "A6", &rules()).expect_err("too long");
        assert!(errors[0].message.contains("at most 200 characters (it has 201)"), "{errors:?}");
    }

    #[test]
    fn the_remediation_is_a_link_a_config_change_or_exactly_no_op() {
        for bad in ["no-op", "No-op, transient", "fixed it", "config:", "ftp://x/y", "https://", "https://a b"] {
            assert_eq!(refused(&form("x", bad, "no", "", "")), ["remediation"], "{bad:?}");
        }
        for good in ["https://git.example/pull/1", "http://ci.internal:8080/job/7", "config: raised the quota"] {
            assert!(validate(&form("x", good, "no", "", ""), "A6", &rules()).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn a_contract_change_needs_an_existing_contract_and_its_pull_request() {
        assert_eq!(refused(&form("x", NO_OP_TRANSIENT, "yes", "log-retention", "")), ["contract_pr"]);
        assert_eq!(refused(&form("x", NO_OP_TRANSIENT, "yes", "", "https://git.example/pull/2")), ["contract"]);
        let errors = validate(
            &form("x", NO_OP_TRANSIENT, "yes", "no-such-contract", "https://git.example/pull/2"),
            "A6",
            &rules(),
        )
        .expect_err("unknown contract");
        assert_eq!(errors[0].field, "contract");
        assert!(errors[0].message.contains("latency-slo, log-retention"), "{errors:?}");
        assert_eq!(refused(&form("x", NO_OP_TRANSIENT, "yes", "log-retention", "not a link")), ["contract_pr"]);
        // The pull request is required exactly when a contract changed.
        assert_eq!(refused(&form("x", NO_OP_TRANSIENT, "no", "", "https://git.example/pull/2")), ["contract_pr"]);
        assert_eq!(refused(&form("x", NO_OP_TRANSIENT, "maybe", "", "")), ["contract_changed"]);
        let mut json = form("x", NO_OP_TRANSIENT, "", "", "");
        json.contract_changed = Some(serde_json::Value::Bool(false));
        assert!(validate(&json, "A6", &rules()).is_ok());
    }

    #[test]
    fn the_shipped_catalog_names_the_fields_alertbook_validates() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow");
        let catalog = catalog::load(&root).expect("the shipped catalog loads");
        let rules = ClosingRules::from_catalog(&catalog);
        assert!(rules.unknown_fields().is_empty(), "{:?}", rules.unknown_fields());
        let names: Vec<&str> = rules.fields.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, KNOWN_FIELDS);
        assert!(rules.contracts.contains("log-retention"));
        assert_eq!(catalog.closing.fields[4].required_when.as_deref(), Some("contract_changed"));
    }
}
