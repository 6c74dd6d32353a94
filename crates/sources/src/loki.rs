//! A remote Loki as the datasource of log rule groups and log checks.
//!
//! [`LokiDatasource`] sends LogQL to a Loki's query API
//! (`GET /loki/api/v1/query` with `query`, `time`, `limit`, `direction`;
//! `GET /loki/api/v1/query_range` with `start`, `end`, `step`) through the
//! shared [`crate::http`] edge (timeout, headers, basic or bearer
//! authorization, the tenant as `X-Scope-OrgID`) and decodes the answer with
//! [`decode_query_response`] into the same [`logql::QueryValue`] the embedded
//! engine returns, so a `datasource: logs` group bound to a remote Loki is
//! evaluated exactly as over alertbook's own log store: a `vector` or
//! `scalar` answer is the rule's samples, `streams` and `matrix` are refused
//! as for any rule.
//!
//! The decoding is pure and follows Loki's v1 JSON (Loki 2.x and 3.x, as
//! written by Loki's `pkg/util/marshal`): `status`, top-level `warnings` (a
//! partial answer: kept in [`LokiAnswer::warnings`] and logged when a rule
//! reads it), `data.resultType`, `data.result`, `data.stats`, and for streams
//! the optional third element of each entry (`structuredMetadata`, `parsed`)
//! that Loki writes when asked for `categorize-labels`. Sample timestamps are
//! seconds with millisecond precision, entry timestamps nanosecond strings.
//! Loki answers errors as plain text with a 4xx or 5xx status; they become
//! [`crate::http::RemoteError`]s naming the datasource.
//!
//! [`LogQueries`] is what log checks call: implemented by [`LokiDatasource`]
//! and by the embedded [`rules::LogsDatasource`], it returns the whole answer
//! of an instant or range query wherever the logs are.
//!
//! It only reads: nothing here pushes, deletes or changes anything in Loki.

use std::collections::BTreeMap;

use serde::Deserialize;
use tsdb::Labels;

use crate::health::DatasourceHealth;
use crate::http::{AnswerError, HttpOptions, RemoteClient, RemoteError};

/// The `type` of a Loki datasource in `alertbook.yaml` and in errors.
pub const KIND: &str = "loki";
/// The entry limit of log queries when the caller gives none (Loki's default).
pub const DEFAULT_LIMIT: usize = 100;

/// A decoded query answer.
#[derive(Debug, Clone, PartialEq)]
pub struct LokiAnswer {
    pub value: logql::QueryValue,
    /// Loki's `warnings`: the answer may be partial.
    pub warnings: Vec<String>,
    /// `data.stats` as Loki sent it (`summary.execTime`, `totalEntriesReturned`, ...).
    pub stats: serde_json::Value,
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
    #[serde(default)]
    stats: serde_json::Value,
}

#[derive(Deserialize)]
struct RawStream {
    stream: BTreeMap<String, String>,
    values: Vec<RawEntry>,
}

/// `["<ns>", "<line>"]` or `["<ns>", "<line>", {"structuredMetadata": {...}, "parsed": {...}}]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum RawEntry {
    Plain(String, String),
    Categorized(String, String, Categorized),
}

#[derive(Deserialize, Default)]
struct Categorized {
    #[serde(default, rename = "structuredMetadata")]
    structured_metadata: BTreeMap<String, String>,
    #[serde(default)]
    parsed: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct RawSample {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

#[derive(Deserialize)]
struct RawSeries {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// Decodes a 2xx answer of `query` or `query_range`.
pub fn decode_query_response(body: &[u8]) -> Result<LokiAnswer, AnswerError> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|error| AnswerError::malformed(error, body))?;
    if envelope.status != "success" {
        let message =
            envelope.error.unwrap_or_else(|| format!("status {:?} without an error message", envelope.status));
        return Err(AnswerError::Malformed(message));
    }
    let data = envelope.data.ok_or_else(|| AnswerError::Malformed("a success answer without data".to_owned()))?;
    let malformed = |error: serde_json::Error| AnswerError::Malformed(format!("{} result: {error}", data.result_type));
    let value = match data.result_type.as_str() {
        "streams" => {
            let streams: Vec<RawStream> = serde_json::from_value(data.result.clone()).map_err(malformed)?;
            logql::QueryValue::Streams(streams.into_iter().map(stream).collect::<Result<_, _>>()?)
        }
        "vector" => {
            let samples: Vec<RawSample> = serde_json::from_value(data.result.clone()).map_err(malformed)?;
            let mut vector = Vec::with_capacity(samples.len());
            for sample in samples {
                vector.push((Labels::from_pairs(sample.metric), sample_value(&sample.value.1)?));
            }
            logql::QueryValue::Vector(vector)
        }
        "matrix" => {
            let series: Vec<RawSeries> = serde_json::from_value(data.result.clone()).map_err(malformed)?;
            let mut matrix = Vec::with_capacity(series.len());
            for one in series {
                let points = one
                    .values
                    .iter()
                    .map(|(seconds, value)| Ok((seconds_to_ns(*seconds), sample_value(value)?)))
                    .collect::<Result<_, AnswerError>>()?;
                matrix.push(logql::Series { labels: Labels::from_pairs(one.metric), points });
            }
            logql::QueryValue::Matrix(matrix)
        }
        "scalar" => {
            let (_, value): (f64, String) = serde_json::from_value(data.result.clone()).map_err(malformed)?;
            logql::QueryValue::Scalar(sample_value(&value)?)
        }
        other => return Err(AnswerError::Malformed(format!("unknown resultType {other:?}"))),
    };
    Ok(LokiAnswer { value, warnings: envelope.warnings, stats: data.stats })
}

fn stream(raw: RawStream) -> Result<logql::Stream, AnswerError> {
    let mut entries = Vec::with_capacity(raw.values.len());
    for entry in raw.values {
        let (timestamp, line, categorized) = match entry {
            RawEntry::Plain(timestamp, line) => (timestamp, line, Categorized::default()),
            RawEntry::Categorized(timestamp, line, categorized) => (timestamp, line, categorized),
        };
        let timestamp_ns = timestamp.parse::<i64>().map_err(|_| {
            AnswerError::Malformed(format!("entry timestamp {timestamp:?} is not an integer of nanoseconds"))
        })?;
        let metadata = categorized.structured_metadata.into_iter().chain(categorized.parsed).collect();
        entries.push(logql::StreamEntry { timestamp_ns, line, metadata });
    }
    Ok(logql::Stream { labels: Labels::from_pairs(raw.stream), entries })
}

/// Unix seconds (millisecond precision, as Loki writes them) to nanoseconds.
fn seconds_to_ns(seconds: f64) -> i64 {
    ((seconds * 1000.0).round() as i64).saturating_mul(1_000_000)
}

/// A sample value as Loki writes it: a decimal string, `NaN`, `+Inf` or `-Inf`.
fn sample_value(text: &str) -> Result<f64, AnswerError> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => text.parse().map_err(|_| AnswerError::Malformed(format!("sample value {text:?} is not a number"))),
    }
}

/// Nanoseconds as Loki's API takes them (an integer of nanoseconds).
fn nanoseconds(time_ns: i64) -> String {
    time_ns.to_string()
}

fn direction(direction: logql::Direction) -> String {
    match direction {
        logql::Direction::Backward => "backward".to_owned(),
        logql::Direction::Forward => "forward".to_owned(),
    }
}

/// A remote Loki's query API.
#[derive(Debug)]
pub struct LokiDatasource {
    client: RemoteClient,
}

impl LokiDatasource {
    /// Builds the client; every request is reported to `health`. Call it
    /// outside an async context.
    pub fn new(options: &HttpOptions, health: DatasourceHealth) -> Result<Self, RemoteError> {
        Ok(Self { client: RemoteClient::new(KIND, options, health)? })
    }

    /// The datasource's name.
    pub fn name(&self) -> &str {
        self.client.name()
    }

    /// The base URL queries go under.
    pub fn base_url(&self) -> &str {
        self.client.base_url()
    }

    /// An instant query at `time_ns`: `/loki/api/v1/query`.
    pub fn instant_query(
        &self,
        query: &str,
        time_ns: i64,
        limit: usize,
        order: logql::Direction,
    ) -> Result<LokiAnswer, RemoteError> {
        let parameters = [
            ("query", query.to_owned()),
            ("time", nanoseconds(time_ns)),
            ("limit", limit.to_string()),
            ("direction", direction(order)),
        ];
        self.client.get("/loki/api/v1/query", &parameters, decode_query_response)
    }

    /// A range query from `start_ns` to `end_ns` at `step_ns`: `/loki/api/v1/query_range`.
    pub fn range_query(
        &self,
        query: &str,
        start_ns: i64,
        end_ns: i64,
        step_ns: i64,
        limit: usize,
        order: logql::Direction,
    ) -> Result<LokiAnswer, RemoteError> {
        let step_seconds = step_ns as f64 / 1e9;
        let parameters = [
            ("query", query.to_owned()),
            ("start", nanoseconds(start_ns)),
            ("end", nanoseconds(end_ns)),
            ("step", format!("{step_seconds}")),
            ("limit", limit.to_string()),
            ("direction", direction(order)),
        ];
        self.client.get("/loki/api/v1/query_range", &parameters, decode_query_response)
    }
}

/// What log checks read, from the embedded store and a remote Loki alike: the
/// whole answer of an instant or range query (streams, matrix, vector or
/// scalar), so a check runs the same way wherever its logs are.
pub trait LogQueries: Send + Sync {
    /// An instant query at `time_ns`.
    fn instant(
        &self,
        query: &str,
        time_ns: i64,
        limit: usize,
        order: logql::Direction,
    ) -> Result<LokiAnswer, rules::DatasourceError>;

    /// A range query from `start_ns` to `end_ns` at `step_ns`.
    fn range(
        &self,
        query: &str,
        start_ns: i64,
        end_ns: i64,
        step_ns: i64,
        limit: usize,
        order: logql::Direction,
    ) -> Result<LokiAnswer, rules::DatasourceError>;
}

impl LogQueries for LokiDatasource {
    fn instant(
        &self,
        query: &str,
        time_ns: i64,
        limit: usize,
        order: logql::Direction,
    ) -> Result<LokiAnswer, rules::DatasourceError> {
        self.instant_query(query, time_ns, limit, order).map_err(RemoteError::into_datasource_error)
    }

    fn range(
        &self,
        query: &str,
        start_ns: i64,
        end_ns: i64,
        step_ns: i64,
        limit: usize,
        order: logql::Direction,
    ) -> Result<LokiAnswer, rules::DatasourceError> {
        self.range_query(query, start_ns, end_ns, step_ns, limit, order).map_err(RemoteError::into_datasource_error)
    }
}

/// The embedded log store through alertbook's LogQL engine: no warnings, no stats.
impl LogQueries for rules::LogsDatasource {
    fn instant(
        &self,
        query: &str,
        time_ns: i64,
        limit: usize,
        order: logql::Direction,
    ) -> Result<LokiAnswer, rules::DatasourceError> {
        let value = self
            .engine
            .instant_query(self.source.as_ref(), query, time_ns, limit, order)
            .map_err(|error| rules::DatasourceError::Query(error.to_string()))?;
        Ok(LokiAnswer { value, warnings: Vec::new(), stats: serde_json::Value::Null })
    }

    fn range(
        &self,
        query: &str,
        start_ns: i64,
        end_ns: i64,
        step_ns: i64,
        limit: usize,
        order: logql::Direction,
    ) -> Result<LokiAnswer, rules::DatasourceError> {
        let value = self
            .engine
            .range_query(self.source.as_ref(), query, start_ns, end_ns, step_ns, limit, order)
            .map_err(|error| rules::DatasourceError::Query(error.to_string()))?;
        Ok(LokiAnswer { value, warnings: Vec::new(), stats: serde_json::Value::Null })
    }
}

impl rules::Datasource for LokiDatasource {
    /// A rule's LogQL metric query at `time_ms`, as the embedded
    /// [`rules::LogsDatasource`] runs it.
    fn query(&self, query: &str, time_ms: i64) -> Result<Vec<(Labels, f64)>, rules::DatasourceError> {
        let time_ns = time_ms.saturating_mul(1_000_000);
        let answer = self
            .instant_query(query, time_ns, DEFAULT_LIMIT, logql::Direction::Backward)
            .map_err(RemoteError::into_datasource_error)?;
        for warning in &answer.warnings {
            tracing::warn!(datasource = %self.name(), query, warning = %warning, "loki answered with a warning");
        }
        match answer.value {
            logql::QueryValue::Vector(samples) => Ok(samples),
            logql::QueryValue::Scalar(value) => Ok(vec![(Labels::empty(), value)]),
            logql::QueryValue::Streams(_) | logql::QueryValue::Matrix(_) => Err(rules::DatasourceError::NotAVector),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_values() {
        assert_eq!(seconds_to_ns(1_700_000_000.123), 1_700_000_000_123_000_000);
        assert_eq!(sample_value("+Inf"), Ok(f64::INFINITY));
        assert!(sample_value("NaN").is_ok_and(f64::is_nan));
        assert!(sample_value("five").is_err());
    }

    #[test]
    fn error_status_and_unknown_types() {
        let body = br#"{"status":"error","error":"boom"}"#;
        assert_eq!(decode_query_response(body), Err(AnswerError::Malformed("boom".to_owned())));
        let body = br#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#;
        assert!(
            matches!(decode_query_response(body), Err(AnswerError::Malformed(message)) if message.contains("string"))
        );
        let body =
            br#"{"status":"success","data":{"resultType":"streams","result":[{"stream":{},"values":[["x","l"]]}]}}"#;
        assert!(
            matches!(decode_query_response(body), Err(AnswerError::Malformed(message)) if message.contains("nanoseconds"))
        );
    }
}
