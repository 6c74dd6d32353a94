//! The datasources checks query, as [`CheckSource`]s: the I/O edge of triage.
//!
//! - [`EmbeddedMetrics`]: PromQL over the embedded store, with the last
//!   half hour of each series (up to [`SPARKLINE_SERIES`]) for a sparkline;
//! - [`RemoteMetrics`]: any [`rules::Datasource`] (a remote Prometheus), instant only;
//! - [`EmbeddedLogs`]: LogQL over the embedded log store: log queries give
//!   the newest [`LOG_LINES`] lines, metric queries a vector;
//! - [`Postgres`]: the `sources` PostgreSQL datasource, rows as they are;
//! - [`Docker`]: the `sources` Docker datasource's check grammar;
//! - [`Probes`]: `probes <contract>` reads the probes' `probe_success`
//!   series through a metrics source and joins them with the contract;
//! - [`RemoteLogs`]: LogQL through [`sources::loki::LogQueries`] (a remote
//!   Loki), the same shapes as [`EmbeddedLogs`];
//! - [`Traces`]: TraceQL searches of a remote Tempo over the alert's active
//!   period (see [`trace_window`]), bound as `{count, traces, slowest}` (see
//!   [`Traces`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::source::{Answer, CheckContext, CheckSource, Found, LogLine, Sample, Series};

/// Most series given sparkline points.
pub const SPARKLINE_SERIES: usize = 10;
/// Most log lines a log query check returns.
pub const LOG_LINES: usize = 100;
/// How long before the alert became active a trace check starts searching
/// (the slow requests that made it pending began a little earlier).
pub const TRACE_MARGIN: std::time::Duration = std::time::Duration::from_secs(5 * 60);
/// The longest window a trace check searches, ending at the run's time: an
/// alert active for days searches its last hours, not all of them.
pub const TRACE_MAX_WINDOW: std::time::Duration = std::time::Duration::from_secs(6 * 3600);
/// Most traces a trace check asks Tempo for.
pub const TRACE_LIMIT: usize = 20;
/// Spans per span set a trace check asks for.
pub const TRACE_SPANS_PER_SET: usize = 5;
/// How many of the slowest spans a trace check's result lists.
pub const SLOWEST_SPANS: usize = 10;

fn labels_map(labels: &tsdb::Labels) -> BTreeMap<String, String> {
    labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect()
}

/// PromQL over a store, with alertbook's engine.
#[derive(Clone)]
pub struct EmbeddedMetrics {
    pub store: Arc<dyn tsdb::Queryable>,
    pub engine: promql::Engine,
    /// How far back sparkline points go (`None`: no points). One point a minute.
    pub sparkline: Option<std::time::Duration>,
}

impl CheckSource for EmbeddedMetrics {
    /// The answer depends on the query and the time alone: runs of a burst share it.
    fn shareable(&self) -> bool {
        true
    }

    fn run(&self, query: &str, context: &CheckContext) -> Result<Answer, String> {
        let result = self
            .engine
            .instant_query(self.store.as_ref(), query, context.time_ms)
            .map_err(|error| error.to_string())?;
        let found = match result.value {
            promql::Value::Scalar(_, value) => Found::Scalar(value),
            promql::Value::Vector(samples) => Found::Vector(
                samples
                    .into_iter()
                    .filter(|(_, sample)| sample.histogram.is_none())
                    .map(|(labels, sample)| Sample { labels: labels_map(&labels), value: sample.value })
                    .collect(),
            ),
            promql::Value::String(text) => Found::Value(Value::String(text)),
            promql::Value::Matrix(_) => {
                return Err("a check's PromQL must give an instant vector or a scalar, not a range vector".into());
            }
        };
        let mut answer = Answer::of(found);
        let few = match &answer.found {
            Some(Found::Vector(samples)) => !samples.is_empty() && samples.len() <= SPARKLINE_SERIES,
            Some(Found::Scalar(_)) => true,
            _ => false,
        };
        if let (Some(window), true) = (self.sparkline, few) {
            let step_ms = 60_000;
            let end = context.time_ms;
            let start = end - window.as_millis() as i64;
            // Points are evidence, not the result: a failed range query leaves them out.
            if let Ok(range) = self.engine.range_query(self.store.as_ref(), query, start, end, step_ms)
                && let promql::Value::Matrix(series) = range.value
            {
                answer.series = series
                    .into_iter()
                    .take(SPARKLINE_SERIES)
                    .map(|data| Series {
                        labels: labels_map(&data.labels),
                        points: data
                            .samples
                            .iter()
                            .filter(|sample| sample.value.is_finite())
                            .map(|sample| (sample.timestamp, sample.value))
                            .collect(),
                    })
                    .collect();
            }
        }
        Ok(answer)
    }
}

/// Instant queries through a rule datasource (a remote Prometheus-compatible API).
pub struct RemoteMetrics(pub Arc<dyn rules::Datasource>);

impl CheckSource for RemoteMetrics {
    /// The answer depends on the query and the time alone: runs of a burst share it.
    fn shareable(&self) -> bool {
        true
    }

    fn run(&self, query: &str, context: &CheckContext) -> Result<Answer, String> {
        let samples = self.0.query(query, context.time_ms).map_err(|error| error.to_string())?;
        Ok(Answer::of(Found::Vector(
            samples.into_iter().map(|(labels, value)| Sample { labels: labels_map(&labels), value }).collect(),
        )))
    }
}

/// The check sources over alertbook's own stores: PromQL for metric checks,
/// the probe checks of `contracts` over the same metrics, and LogQL for log
/// checks when `logs` is given. Other kinds are set by the caller.
pub fn embedded_sources(
    timeout: std::time::Duration,
    metrics: EmbeddedMetrics,
    logs: Option<EmbeddedLogs>,
    contracts: BTreeMap<String, catalog::Contract>,
) -> crate::Sources {
    let metrics: Arc<dyn CheckSource> = Arc::new(metrics);
    let probes = Probes { metrics: metrics.clone(), contracts };
    let mut sources = crate::Sources::new(timeout)
        .with(catalog::Datasource::Metrics, metrics)
        .with(catalog::Datasource::Probe, Arc::new(probes));
    if let Some(logs) = logs {
        sources.set(catalog::Datasource::Logs, Arc::new(logs));
    }
    sources
}

/// LogQL over a log store.
#[derive(Clone)]
pub struct EmbeddedLogs {
    pub source: Arc<dyn logql::LogSource>,
    pub engine: logql::Engine,
}

impl CheckSource for EmbeddedLogs {
    /// The answer depends on the query and the time alone: runs of a burst share it.
    fn shareable(&self) -> bool {
        true
    }

    fn run(&self, query: &str, context: &CheckContext) -> Result<Answer, String> {
        let time_ns = context.time_ms.saturating_mul(1_000_000);
        let value = self
            .engine
            .instant_query(self.source.as_ref(), query, time_ns, LOG_LINES, logql::Direction::Backward)
            .map_err(|error| error.to_string())?;
        Ok(Answer::of(log_found(value)?))
    }
}

/// SQL on a PostgreSQL datasource, read-only.
pub struct Postgres(pub Arc<sources::sql::PostgresDatasource>);

impl CheckSource for Postgres {
    fn run(&self, query: &str, _context: &CheckContext) -> Result<Answer, String> {
        let rows = self.0.query_rows(query).map_err(|error| error.to_string())?;
        Ok(Answer::of(Found::Table(rows)))
    }
}

/// Docker checks (`service <name> <field>`, `services`, `secret <name>`).
pub struct Docker(pub Arc<sources::docker::DockerDatasource>);

impl CheckSource for Docker {
    fn run(&self, query: &str, context: &CheckContext) -> Result<Answer, String> {
        let value = self.0.check(query, context.time_ms).map_err(|error| error.to_string())?;
        Ok(Answer::of(Found::Value(value)))
    }
}

/// Probe checks: `probes <contract>` over the probes' `probe_success`
/// series (labels `probe_group` = the contract, `probe` = the target's name).
///
/// The result is the alert's probe (its `probe` label), or else the first
/// failing one: `{name, prober, target, success}` with `success` the latest
/// `probe_success` (null when the probe has no series), and `probes`, every
/// target of the contract with its success.
pub struct Probes {
    pub metrics: Arc<dyn CheckSource>,
    pub contracts: BTreeMap<String, catalog::Contract>,
}

impl CheckSource for Probes {
    fn run(&self, query: &str, context: &CheckContext) -> Result<Answer, String> {
        let words: Vec<&str> = query.split_whitespace().collect();
        let ["probes", contract_name] = words.as_slice() else {
            return Err(format!(
                "probe check {query:?}: only `probes <contract>` runs today; `<prober> <target>` is planned"
            ));
        };
        let contract =
            self.contracts.get(*contract_name).ok_or_else(|| format!("unknown contract {contract_name:?}"))?;
        let targets = contract.tree.pointer("/spec/targets").and_then(Value::as_array).cloned().unwrap_or_default();
        let selector = format!("probe_success{{probe_group={contract_name:?}}}");
        let answer = self.metrics.run(&selector, context)?;
        let success: BTreeMap<String, f64> = match answer.found {
            Some(Found::Vector(samples)) => samples
                .into_iter()
                .filter_map(|sample| sample.labels.get("probe").cloned().map(|probe| (probe, sample.value)))
                .collect(),
            _ => BTreeMap::new(),
        };
        let probes: Vec<Value> = targets
            .iter()
            .map(|target| {
                let name = target.get("name").and_then(Value::as_str).unwrap_or_default();
                json!({
                    "name": name,
                    "prober": target.get("prober").cloned().unwrap_or(Value::Null),
                    "target": target.get("target").cloned().unwrap_or(Value::Null),
                    "success": success.get(name).copied(),
                })
            })
            .collect();
        let wanted = context.alert.labels.get("probe");
        let chosen = probes
            .iter()
            .find(|probe| wanted.is_some_and(|wanted| probe["name"].as_str() == Some(wanted.as_str())))
            .or_else(|| probes.iter().find(|probe| probe["success"].as_f64() == Some(0.0)))
            .cloned();
        let mut value = chosen.unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("probes".into(), Value::Array(probes));
        }
        Ok(Answer { found: Some(Found::Value(value)), series: answer.series })
    }
}

/// TraceQL searches of a remote Tempo (`datasource: traces` checks).
///
/// The check's query is the TraceQL; the search covers [`trace_window`]
/// (the alert's active period), at most [`TRACE_LIMIT`] traces with
/// [`TRACE_SPANS_PER_SET`] spans per span set. The result is a value:
///
/// - `count`: how many traces matched (as returned, at most the limit);
/// - `traces`: `{trace_id, root_service, root_name, duration_ms, start_ms}` each,
///   slowest first;
/// - `slowest`: the [`SLOWEST_SPANS`] slowest matched spans, slowest first:
///   `{trace_id, span_id, name, duration_ms, db_statement}` (`db_statement`
///   null when the span has none or the query did not `select` it).
///
/// Predicates read it as any value: `slow_traces.count > 0`,
/// `values(slow_traces.slowest, "db_statement")`.
pub struct Traces(pub Arc<sources::tempo::TempoDatasource>);

impl CheckSource for Traces {
    fn run(&self, query: &str, context: &CheckContext) -> Result<Answer, String> {
        let (start, end) = trace_window(&context.alert, context.time_ms);
        let request = sources::tempo::TraceSearchRequest {
            query: query.to_owned(),
            range: Some((start, end)),
            limit: Some(TRACE_LIMIT),
            spans_per_span_set: Some(TRACE_SPANS_PER_SET),
        };
        let search = self.0.search(&request).map_err(|error| error.to_string())?;
        Ok(Answer::of(Found::Value(trace_value(&search))))
    }
}

/// The window a trace check searches, Tempo's `start` and `end` (Unix
/// seconds): from [`TRACE_MARGIN`] before the alert became active (its
/// `activeAt`, else when it started firing) to the run's time (rounded up to
/// the next second), at most [`TRACE_MAX_WINDOW`] long and at least
/// [`TRACE_MARGIN`] (an alert whose activeAt lies after the run time, as in
/// a replay, searches the margin before the run).
pub fn trace_window(alert: &crate::AlertInstance, time_ms: i64) -> (i64, i64) {
    let end = time_ms.div_euclid(1000) + 1;
    let since_ms = alert.active_since_ms.map_or(alert.firing_since_ms, |active| active.min(alert.firing_since_ms));
    let margin = TRACE_MARGIN.as_secs() as i64;
    let start = (since_ms.div_euclid(1000) - margin).max(end - TRACE_MAX_WINDOW.as_secs() as i64).min(end - margin);
    (start, end)
}

/// The value a trace search binds to (see [`Traces`]).
pub fn trace_value(search: &sources::tempo::TraceSearch) -> Value {
    let mut traces: Vec<&sources::tempo::TraceSummary> = search.traces.iter().collect();
    traces.sort_by(|a, b| b.duration_ms.cmp(&a.duration_ms).then_with(|| a.trace_id.cmp(&b.trace_id)));
    let traces: Vec<Value> = traces
        .into_iter()
        .map(|trace| {
            json!({
                "trace_id": trace.trace_id,
                "root_service": trace.root_service_name,
                "root_name": trace.root_trace_name,
                "duration_ms": trace.duration_ms,
                "start_ms": trace.start_time_unix_nano / 1_000_000,
            })
        })
        .collect();
    let slowest: Vec<Value> = search
        .slowest_spans(SLOWEST_SPANS)
        .into_iter()
        .map(|span| {
            json!({
                "trace_id": span.trace_id,
                "span_id": span.span_id,
                "name": span.span_name,
                "duration_ms": span.duration_nanos as f64 / 1e6,
                "db_statement": span.db_statement,
            })
        })
        .collect();
    json!({"count": traces.len(), "traces": traces, "slowest": slowest})
}

/// LogQL through a remote log API ([`sources::loki::LogQueries`]: a remote
/// Loki): log queries give the newest [`LOG_LINES`] lines, metric queries a
/// vector, as [`EmbeddedLogs`] does.
pub struct RemoteLogs(pub Arc<dyn sources::loki::LogQueries>);

impl CheckSource for RemoteLogs {
    /// The answer depends on the query and the time alone: runs of a burst share it.
    fn shareable(&self) -> bool {
        true
    }

    fn run(&self, query: &str, context: &CheckContext) -> Result<Answer, String> {
        let time_ns = context.time_ms.saturating_mul(1_000_000);
        let answer =
            self.0.instant(query, time_ns, LOG_LINES, logql::Direction::Backward).map_err(|error| error.to_string())?;
        Ok(Answer::of(log_found(answer.value)?))
    }
}

/// A LogQL answer as a check's result: log lines newest first (at most
/// [`LOG_LINES`]), a vector or a scalar.
fn log_found(value: logql::QueryValue) -> Result<Found, String> {
    Ok(match value {
        logql::QueryValue::Scalar(value) => Found::Scalar(value),
        logql::QueryValue::Vector(samples) => Found::Vector(
            samples.into_iter().map(|(labels, value)| Sample { labels: labels_map(&labels), value }).collect(),
        ),
        logql::QueryValue::Streams(streams) => {
            let mut lines: Vec<LogLine> = streams
                .into_iter()
                .flat_map(|stream| {
                    let labels = labels_map(&stream.labels);
                    stream.entries.into_iter().map(move |entry| LogLine {
                        time_ns: entry.timestamp_ns,
                        labels: labels.clone(),
                        line: entry.line,
                    })
                })
                .collect();
            lines.sort_by_key(|line| std::cmp::Reverse(line.time_ns));
            lines.truncate(LOG_LINES);
            Found::Lines(lines)
        }
        logql::QueryValue::Matrix(_) => return Err("a check's LogQL gave a matrix".into()),
    })
}
