//! Docker rule conditions and runbook checks, evaluated over a [`Snapshot`].
//!
//! A `datasource: docker` rule's `expr` is a catalog expression
//! ([`catalog::expr`]) over four roots, each an object keyed by name:
//!
//! - `services.<name>`: `exists`, `id`, `name`, `image`, `mode`, `replicas`
//!   (desired), `running`, `env` and `labels` (maps), `secrets` and `networks`
//!   (lists of names), `tasks` (list of objects with `id`, `slot`, `node`,
//!   `state`, `desired_state`, `message`, `error`, `timestamp`);
//! - `secrets.<name>`: `exists`, `id`, `name`, `labels`, `created_at`, `updated_at`;
//! - `networks.<name>`: `exists`, `id`, `name`, `driver`, `scope`, `subnets`, `labels`;
//! - `nodes.<hostname>`: `exists`, `id`, `hostname`, `role`, `availability`,
//!   `state`, `leader`, `engine_version`, `labels`.
//!
//! **Missing objects.** A name that is not in the swarm reads as an object with
//! `exists` false, `replicas`/`running` 0, empty lists and maps and null text
//! ([`super::snapshot::absent`]); a missing key of `env` or `labels` reads as
//! null, and null equals nothing but null. So `services.x.replicas > 0` is false
//! for a missing service, and `secrets.x.labels.stub == "true"` is false for a
//! missing secret: A8 fires when the exporter runs and its secret is absent
//! because `not contains(services.…secrets, "pgexporter_dsn")` is true. A field
//! name that no object of the kind has (`services.x.replica`) is an error, not
//! null, so a typo never silently turns an alert off.
//!
//! **Results.** `true` is one sample with no labels and value 1 (the alert,
//! whose labels are the rule's); `false` or null is no sample (no alert); a
//! number is one sample with that value, as Prometheus's rule engine treats a
//! scalar (so recording rules can record `count(services)`). Text, lists and
//! maps are an error naming the type, never the content (it may be an
//! environment value).
//!
//! Checks (`service <name> <field>`, `services`, `secret <name>`) read the
//! same tree; a check on a service or secret that does not exist is an error,
//! since triage should say so rather than act on zeros.

use catalog::expr::Expr;
use serde_json::Value;
use tsdb::Labels;

use super::snapshot;

/// A condition or check that cannot be evaluated; the message says where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConditionError {
    /// Byte offset into the condition or query text.
    pub offset: usize,
    pub message: String,
}

impl ConditionError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        Self { offset, message: message.into() }
    }
}

/// Parses a condition and checks every name it reads against the snapshot's
/// shape ([`catalog::docker_shape`]).
pub fn parse(text: &str) -> Result<Expr, ConditionError> {
    catalog::docker_shape::parse_condition(text).map_err(|error| ConditionError::new(error.offset, error.message))
}

/// Resolves a validated name path in `bindings` (from [`snapshot::Snapshot::bindings`]).
pub fn lookup(bindings: &Value, path: &[String]) -> Option<Value> {
    let root = bindings.get(&path[0])?;
    let Some(name) = path.get(1) else { return Some(root.clone()) };
    let object = match root.get(name) {
        Some(object) => object.clone(),
        None => snapshot::absent(&path[0], name),
    };
    let Some(field) = path.get(2) else { return Some(object) };
    let value = object.get(field)?.clone();
    match path.get(3) {
        None => Some(value),
        Some(key) => Some(value.get(key).cloned().unwrap_or(Value::Null)),
    }
}

/// Evaluates a parsed condition over `bindings` into the samples of a rule.
pub fn evaluate(condition: &Expr, bindings: &Value) -> Result<Vec<(Labels, f64)>, ConditionError> {
    let value = condition
        .evaluate(&|path: &[String]| lookup(bindings, path))
        .map_err(|error| ConditionError::new(error.offset, redact_environment(error.message, bindings)))?;
    match value {
        Value::Bool(true) => Ok(vec![(Labels::empty(), 1.0)]),
        Value::Bool(false) | Value::Null => Ok(Vec::new()),
        Value::Number(number) => Ok(vec![(Labels::empty(), number.as_f64().unwrap_or(f64::NAN))]),
        other => Err(ConditionError::new(
            0,
            format!("a Docker condition must give true, false or a number, not {}", type_name(&other)),
        )),
    }
}

/// Replaces every service environment value quoted in `message` (the
/// expression language names the value it could not use, as in `"…" is not a
/// number`), since a value may be a credential.
fn redact_environment(mut message: String, bindings: &Value) -> String {
    let services = bindings.get("services").and_then(Value::as_object);
    for service in services.into_iter().flat_map(|services| services.values()) {
        for value in service.get("env").and_then(Value::as_object).into_iter().flat_map(|env| env.values()) {
            if let Some(text) = value.as_str().filter(|text| !text.is_empty()) {
                let quoted = format!("{text:?}");
                if message.contains(&quoted) {
                    message = message.replace(&quoted, "<environment value>");
                }
            }
        }
    }
    message
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// Runs a runbook check query (the grammar of [`catalog::queries`]) over `bindings`.
pub fn check(query: &str, bindings: &Value) -> Result<Value, ConditionError> {
    let words: Vec<&str> = query.split_whitespace().collect();
    let object = |root: &str, name: &str, kind: &str| -> Result<Value, ConditionError> {
        bindings
            .get(root)
            .and_then(|objects| objects.get(name))
            .cloned()
            .ok_or_else(|| ConditionError::new(0, format!("no {kind} `{name}` in the swarm")))
    };
    match words.as_slice() {
        ["services"] => Ok(Value::Array(
            bindings
                .get("services")
                .and_then(Value::as_object)
                .map(|services| services.keys().cloned().map(Value::String).collect())
                .unwrap_or_default(),
        )),
        ["service", name, field] if catalog::queries::DOCKER_FIELDS.contains(field) => {
            let service = object("services", name, "service")?;
            Ok(service.get(*field).cloned().unwrap_or(Value::Null))
        }
        ["secret", name] => object("secrets", name, "secret"),
        ["stack", _] => Err(ConditionError::new(
            0,
            "`stack <compose file>` checks are planned: the docker datasource does not read compose files yet",
        )),
        _ => Err(ConditionError::new(
            0,
            "invalid Docker query; expected `services`, `service <name> <field>` or `secret <name>`",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindings() -> Value {
        serde_json::json!({
            "services": {"api": {"exists": true, "replicas": 2, "secrets": ["dsn"], "env": {"A": "1"}, "labels": {}}},
            "secrets": {"dsn": {"exists": true, "labels": {"stub": "true"}}},
            "networks": {},
            "nodes": {},
        })
    }

    fn run(text: &str) -> Result<Vec<(Labels, f64)>, ConditionError> {
        evaluate(&parse(text)?, &bindings())
    }

    #[test]
    fn true_is_one_unlabelled_sample_and_false_is_none() {
        assert_eq!(run("services.api.replicas > 1").unwrap(), vec![(Labels::empty(), 1.0)]);
        assert_eq!(run("services.api.replicas > 2").unwrap(), Vec::new());
        assert_eq!(run("services.api.replicas * 3").unwrap(), vec![(Labels::empty(), 6.0)]);
        assert_eq!(run("count(services)").unwrap(), vec![(Labels::empty(), 1.0)]);
    }

    #[test]
    fn missing_objects_and_keys_read_as_empty() {
        assert_eq!(run("services.gone.replicas > 0").unwrap(), Vec::new());
        assert_eq!(run("not services.gone.exists").unwrap().len(), 1);
        assert_eq!(run("secrets.gone.labels.stub == \"true\"").unwrap(), Vec::new());
        assert_eq!(run("secrets.dsn.labels.stub == \"true\"").unwrap().len(), 1);
        assert_eq!(run("services.api.env.MISSING == \"x\"").unwrap(), Vec::new());
    }

    #[test]
    fn unknown_names_and_fields_are_errors_with_offsets() {
        let error = run("services.api.replica > 0").unwrap_err();
        assert!(error.message.contains("no field `replica`"), "{}", error.message);
        let error = run("1 > 0 and containers.x.exists").unwrap_err();
        assert_eq!(error.offset, 10);
        assert!(error.message.contains("unknown name `containers`"), "{}", error.message);
        assert!(run("services.api.replicas.count > 0").is_err());
        assert!(run("services.api.replicas >").unwrap_err().message.starts_with("invalid Docker condition"));
    }

    #[test]
    fn non_numeric_results_name_the_type_not_the_value() {
        let error = run("services.api.env.A").unwrap_err();
        assert_eq!(error.message, "a Docker condition must give true, false or a number, not text");
    }

    #[test]
    fn environment_values_never_reach_error_messages() {
        let mut bindings = bindings();
        bindings["services"]["api"]["env"]["DSN"] = Value::from("postgres://u:hunter2@db/x");
        let parsed = parse("services.api.env.DSN > 1").unwrap();
        let error = evaluate(&parsed, &bindings).unwrap_err();
        assert_eq!(error.message, "<environment value> is not a number");
        let parsed = parse("services.api.env > 1").unwrap();
        let error = evaluate(&parsed, &bindings).unwrap_err();
        assert!(!error.message.contains("hunter2"), "{}", error.message);
    }

    #[test]
    fn checks_read_fields_and_reject_missing_objects() {
        assert_eq!(check("service api secrets", &bindings()).unwrap(), serde_json::json!(["dsn"]));
        assert_eq!(check("services", &bindings()).unwrap(), serde_json::json!(["api"]));
        assert!(check("service gone replicas", &bindings()).unwrap_err().message.contains("no service `gone`"));
        assert!(check("secret dsn", &bindings()).is_ok());
        assert!(check("stack compose.yaml", &bindings()).unwrap_err().message.contains("planned"));
    }
}
