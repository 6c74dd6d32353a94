//! What a Docker condition may read: the roots (`services`, `secrets`,
//! `networks`, `nodes`) and the fields of their objects, as the Docker
//! datasource builds them from the Engine API. The catalog loader checks
//! Docker rule expressions against this shape, so `alertbook check` refuses
//! `services.x.replica` before a rule ever runs; the datasource evaluates
//! over the same names.

use crate::expr::{self, Expr};

/// The fields of a service (`services.<name>.<field>`), in order.
pub const SERVICE_FIELDS: &[&str] =
    &["exists", "id", "name", "image", "mode", "replicas", "running", "env", "labels", "secrets", "networks", "tasks"];
/// The fields of each of a service's `tasks`.
pub const TASK_FIELDS: &[&str] = &["id", "slot", "node", "state", "desired_state", "message", "error", "timestamp"];
pub const SECRET_FIELDS: &[&str] = &["exists", "id", "name", "labels", "created_at", "updated_at"];
pub const NETWORK_FIELDS: &[&str] = &["exists", "id", "name", "driver", "scope", "subnets", "labels"];
pub const NODE_FIELDS: &[&str] =
    &["exists", "id", "hostname", "role", "availability", "state", "leader", "engine_version", "labels"];

/// The roots of a Docker condition and the fields of their objects.
pub const ROOTS: &[(&str, &[&str])] =
    &[("services", SERVICE_FIELDS), ("secrets", SECRET_FIELDS), ("networks", NETWORK_FIELDS), ("nodes", NODE_FIELDS)];

/// Why a Docker condition is refused, at a byte offset into its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeError {
    pub offset: usize,
    pub message: String,
}

/// Parses a Docker condition and checks every name it reads against [`ROOTS`].
pub fn parse_condition(text: &str) -> Result<Expr, ShapeError> {
    let parsed = expr::parse(text).map_err(|error| ShapeError {
        offset: error.offset,
        message: format!("invalid Docker condition: {}", error.message),
    })?;
    for path in parsed.free_paths() {
        validate_path(text, &path)?;
    }
    Ok(parsed)
}

fn validate_path(text: &str, path: &[String]) -> Result<(), ShapeError> {
    let dotted = path.join(".");
    let offset = text.find(&dotted).unwrap_or(0);
    let error = |message: String| ShapeError { offset, message };
    let Some((_, fields)) = ROOTS.iter().find(|(root, _)| *root == path[0]) else {
        let roots: Vec<&str> = ROOTS.iter().map(|(root, _)| *root).collect();
        return Err(error(format!("unknown name `{}`: a Docker condition reads {}", path[0], roots.join(", "))));
    };
    let Some(field) = path.get(2) else { return Ok(()) };
    if !fields.contains(&field.as_str()) {
        return Err(error(format!("`{dotted}`: no field `{field}` in {}; fields: {}", path[0], fields.join(", "))));
    }
    match path.len() {
        3 => Ok(()),
        4 if matches!(field.as_str(), "env" | "labels") => Ok(()),
        _ => Err(error(format!("`{dotted}`: only `env` and `labels` have keys; `{field}` is read whole"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busflow_gate_condition_and_nodes_are_accepted() {
        let a8 = "services.busflow_postgres_exporter.replicas > 0 and (not contains(services.busflow_postgres_exporter.secrets, \"pgexporter_dsn\") or secrets.pgexporter_dsn.labels.stub == \"true\")";
        assert!(parse_condition(a8).is_ok());
        assert!(parse_condition("nodes.manager1.availability == \"drain\"").is_ok());
    }

    #[test]
    fn unknown_roots_fields_and_keys_are_refused_where_they_are_written() {
        let error = parse_condition("services.x.replica > 0").expect_err("typo");
        assert_eq!(error.offset, 0);
        assert!(error.message.contains("no field `replica` in services"), "{}", error.message);
        let error = parse_condition("1 > 0 and volumes.data.exists").expect_err("root");
        assert_eq!(error.offset, 10);
        assert!(error.message.contains("unknown name `volumes`"), "{}", error.message);
        let error = parse_condition("services.x.image.tag == \"1\"").expect_err("key");
        assert!(error.message.contains("only `env` and `labels` have keys"), "{}", error.message);
    }
}
