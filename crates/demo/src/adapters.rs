//! The simulated day as alertbook's datasources: what `alertbook demo`
//! plugs into the rule manager and the triage sources where a real swarm,
//! PostgreSQL or Tempo would be.
//!
//! - [`DockerRules`] and [`DockerChecks`]: `datasource: docker` rules and
//!   checks over [`swarm`], the simulated Engine API's answers decoded as the
//!   Docker datasource decodes a daemon's ([`sources::docker::Snapshot::from_engine`])
//!   and evaluated by its condition and check grammar;
//! - [`SqlRules`] and [`SqlChecks`]: `datasource: sql` rules (by their query)
//!   and checks (by the catalog's query text, `{{ … }}` actions matching
//!   anything), answered with [`crate::Facts::sql_rule`] and
//!   [`crate::Facts::sql_check`]; rule rows become samples through the SQL
//!   datasource's own `rows` module;
//! - [`Traces`]: trace checks, the simulated Tempo search decoded by the
//!   Tempo datasource's decoder and bound as triage binds it.
//!
//! Each reads the facts at the time it is asked for; none does I/O.
//! [`tsdb_labels`] and [`push_streams`] hand the simulated samples and log
//! lines to the stores in their types.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use triage::{Answer, CheckContext, CheckSource, Found};

use crate::{Day, SqlResult};

/// A simulated label set as the embedded stores take it.
pub fn tsdb_labels(labels: &crate::Labels) -> tsdb::Labels {
    tsdb::Labels::from_pairs(labels.iter().map(|(name, value)| (name.as_str(), value.as_str())))
}

/// Simulated log entries as a Loki push groups them: one stream per label
/// set, entries in time order, nothing redacted yet.
pub fn push_streams(entries: &[crate::LogEntry]) -> Vec<logstore::push::PushStream> {
    let mut streams: BTreeMap<&crate::Labels, Vec<logstore::push::PushEntry>> = BTreeMap::new();
    for entry in entries {
        streams.entry(&entry.stream).or_default().push(logstore::push::PushEntry {
            timestamp_ns: entry.time_ns,
            line: entry.line.clone(),
            metadata: Vec::new(),
        });
    }
    streams
        .into_iter()
        .map(|(labels, entries)| logstore::push::PushStream { labels: tsdb_labels(labels), entries })
        .collect()
}

/// The swarm of the simulated Docker Engine at a moment, as the Docker datasource reads it.
pub fn swarm(day: &Day, time_ms: i64) -> sources::docker::Snapshot {
    let state = day.facts_at(time_ms).docker();
    let decode = |what: &str, value: Value| -> Value {
        assert!(value.is_array(), "{what} is not a list");
        value
    };
    sources::docker::Snapshot::from_engine(
        serde_json::from_value(decode("services", state.services)).expect("services decode as the Engine API's"),
        serde_json::from_value(decode("tasks", state.tasks)).expect("tasks decode as the Engine API's"),
        serde_json::from_value(decode("secrets", state.secrets)).expect("secrets decode as the Engine API's"),
        serde_json::from_value(decode("networks", state.networks)).expect("networks decode as the Engine API's"),
        serde_json::from_value(decode("nodes", state.nodes)).expect("nodes decode as the Engine API's"),
    )
}

/// `datasource: docker` rules over the simulated swarm.
pub struct DockerRules(pub Arc<Day>);

impl rules::Datasource for DockerRules {
    fn query(&self, query: &str, time_ms: i64) -> Result<Vec<(tsdb::Labels, f64)>, rules::DatasourceError> {
        let condition =
            sources::docker::condition::parse(query).map_err(|error| rules::DatasourceError::Query(error.message))?;
        sources::docker::condition::evaluate(&condition, &swarm(&self.0, time_ms).bindings())
            .map_err(|error| rules::DatasourceError::Query(error.message))
    }
}

/// Docker checks over the simulated swarm.
pub struct DockerChecks(pub Arc<Day>);

impl CheckSource for DockerChecks {
    fn run(&self, query: &str, context: &CheckContext) -> Result<Answer, String> {
        let value = sources::docker::condition::check(query, &swarm(&self.0, context.time_ms).bindings())
            .map_err(|error| error.message)?;
        Ok(Answer::of(Found::Value(value)))
    }
}

/// A simulated result as the SQL datasource's rows module types it.
pub fn sql_rows(result: &SqlResult) -> (Vec<sources::sql::rows::Column>, Vec<Vec<sources::sql::rows::Cell>>) {
    use sources::sql::rows::{Cell, Column, ColumnKind};
    let columns = result
        .columns
        .iter()
        .map(|(name, kind)| Column {
            name: name.clone(),
            kind: match *kind {
                "INT2" | "INT4" | "INT8" => ColumnKind::Integer,
                "FLOAT8" => ColumnKind::Float,
                "TIMESTAMPTZ" => ColumnKind::Time,
                _ => ColumnKind::Text,
            },
        })
        .collect();
    let rows = result
        .rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|cell| match cell {
                    Value::Null => Cell::Null,
                    Value::Number(number) if number.is_i64() => Cell::Integer(number.as_i64().unwrap_or_default()),
                    Value::Number(number) => Cell::Float(number.as_f64().unwrap_or(f64::NAN)),
                    Value::Bool(value) => Cell::Bool(*value),
                    other => Cell::Text(other.as_str().unwrap_or_default().to_owned()),
                })
                .collect()
        })
        .collect();
    (columns, rows)
}

/// `datasource: sql` rules answered by the simulated PostgreSQL; `alertnames` maps each rule's query to its name.
pub struct SqlRules {
    day: Arc<Day>,
    alertnames: BTreeMap<String, String>,
}

impl SqlRules {
    /// The rules of `catalog`'s `datasource: sql` groups, known by their queries.
    pub fn new(day: Arc<Day>, catalog: &catalog::Catalog) -> Self {
        let alertnames = catalog
            .rule_files
            .iter()
            .flat_map(|file| &file.groups)
            .filter(|group| group.datasource == catalog::Datasource::Sql)
            .flat_map(|group| &group.rules)
            .filter_map(|rule| match &rule.kind {
                catalog::RuleKind::Alert(name) => Some((rule.expr.clone(), name.clone())),
                catalog::RuleKind::Record(_) => None,
            })
            .collect();
        Self { day, alertnames }
    }
}

impl rules::Datasource for SqlRules {
    fn query(&self, query: &str, time_ms: i64) -> Result<Vec<(tsdb::Labels, f64)>, rules::DatasourceError> {
        let alertname =
            self.alertnames.get(query).ok_or_else(|| rules::DatasourceError::Query("unknown query".into()))?;
        let result = self
            .day
            .facts_at(time_ms)
            .sql_rule(alertname)
            .ok_or_else(|| rules::DatasourceError::Query(format!("the simulation does not answer {alertname}")))?;
        let (columns, rows) = sql_rows(&result);
        sources::sql::rows::to_samples(&columns, &rows)
            .map_err(|error| rules::DatasourceError::Query(error.to_string()))
    }
}

/// SQL checks answered by the simulated PostgreSQL: the check is found by
/// its query (the expanded template of one of the entry's SQL steps).
pub struct SqlChecks {
    day: Arc<Day>,
    /// (pattern of the expanded query, result name) of every SQL check of the catalog.
    checks: Vec<(regex::Regex, String)>,
}

impl SqlChecks {
    /// The SQL checks of `catalog`'s runbook entries.
    pub fn new(day: Arc<Day>, catalog: &catalog::Catalog) -> Self {
        let mut checks = Vec::new();
        let template = regex::Regex::new(r"\{\{[^}]*\}\}").expect("regex");
        for entry in &catalog.entries {
            for step in &entry.steps {
                let Some(check) = &step.check else { continue };
                if check.datasource != catalog::Datasource::Sql {
                    continue;
                }
                let literal: Vec<String> = template.split(check.query.trim()).map(regex::escape).collect();
                let pattern = format!("^{}$", literal.join(".*?"));
                checks.push((regex::Regex::new(&pattern).expect("pattern"), check.result.clone()));
            }
        }
        Self { day, checks }
    }
}

impl CheckSource for SqlChecks {
    fn run(&self, query: &str, context: &CheckContext) -> Result<Answer, String> {
        let (_, result) = self
            .checks
            .iter()
            .find(|(pattern, _)| pattern.is_match(query.trim()))
            .ok_or_else(|| format!("no SQL check of the catalog reads {query:?}"))?;
        let rows = self
            .day
            .facts_at(context.time_ms)
            .sql_check(result, &context.alert.labels)
            .ok_or_else(|| format!("the simulation does not answer {result}"))?;
        Ok(Answer::of(Found::Table(rows.objects())))
    }
}

/// Trace checks answered by the simulated Tempo's search JSON, decoded as the Tempo datasource does.
pub struct Traces(pub Arc<Day>);

impl CheckSource for Traces {
    fn run(&self, _query: &str, context: &CheckContext) -> Result<Answer, String> {
        let body = self.0.facts_at(context.time_ms).tempo_search().to_string();
        let search = sources::tempo::decode_search_response(body.as_bytes()).map_err(|error| error.to_string())?;
        Ok(Answer::of(Found::Value(triage::adapters::trace_value(&search))))
    }
}
