//! A remote Tempo's trace search, for the runbook's trace checks (A2 samples
//! slow `/api/bookings` traces and reads their `db.statement` spans).
//!
//! [`TempoDatasource::search`] sends a TraceQL query to `GET /api/search`
//! (`q`, `start` and `end` in Unix seconds, `limit`, `spss`: spans per span
//! set) through the shared [`crate::http`] edge (timeout, headers,
//! authorization, the tenant as `X-Scope-OrgID`) and returns a
//! [`TraceSearch`]: each trace's ID, root service and name, start and
//! duration, and its matched span sets with each span's ID, duration and
//! attributes (those a `select(...)` asked for). [`TraceSearch::slowest_spans`]
//! ranks the spans by duration with their `db.statement`.
//!
//! [`decode_search_response`] is pure and follows Tempo's search JSON
//! (protobuf JSON of `tempopb.SearchResponse`, Tempo 2.2 and later:
//! `traces[].traceID, rootServiceName, rootTraceName, startTimeUnixNano`
//! (a string), `durationMs` (left out when 0), `spanSets[].spans[].spanID,
//! name, startTimeUnixNano, durationNanos` (strings), `attributes[{key,
//! value: {stringValue | intValue (a string) | doubleValue | boolValue}}]`,
//! `matched`, and `metrics`); the single `spanSet` of Tempo 2.0 and 2.1 is
//! read too. Tempo answers errors as plain text with a 4xx or 5xx status;
//! they become [`crate::http::RemoteError`]s naming the datasource.
//!
//! It only reads: nothing here pushes or changes anything in Tempo.

use serde::Deserialize;

use crate::health::DatasourceHealth;
use crate::http::{AnswerError, HttpOptions, RemoteClient, RemoteError};

/// The `type` of a Tempo datasource in `alertbook.yaml` and in errors.
pub const KIND: &str = "tempo";
/// The span attribute holding a database statement (OpenTelemetry's semantic conventions).
pub const DB_STATEMENT: &str = "db.statement";

/// One trace search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSearchRequest {
    /// A TraceQL query, such as `{ span.http.route = "/api/bookings" && duration > 800ms } | select(span.db.statement)`.
    pub query: String,
    /// The time range in Unix seconds; without it Tempo searches recent data only.
    pub range: Option<(i64, i64)>,
    /// How many traces at most (Tempo's default: 20).
    pub limit: Option<usize>,
    /// Spans per span set (Tempo's default: 3).
    pub spans_per_span_set: Option<usize>,
}

impl TraceSearchRequest {
    /// A search for `query` with Tempo's defaults.
    pub fn new(query: impl Into<String>) -> Self {
        Self { query: query.into(), range: None, limit: None, spans_per_span_set: None }
    }
}

/// The answer of a trace search.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSearch {
    pub traces: Vec<TraceSummary>,
    /// Tempo's `metrics` (`inspectedBytes`, `totalBlocks`, ...), as sent.
    pub metrics: serde_json::Value,
}

/// One trace of a search answer.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    pub trace_id: String,
    /// Empty when the root span has not been received.
    pub root_service_name: String,
    pub root_trace_name: String,
    pub start_time_unix_nano: u64,
    pub duration_ms: u64,
    pub span_sets: Vec<SpanSet>,
}

/// The spans of a trace that matched one spanset of the query.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanSet {
    /// Up to `spss` of the matching spans.
    pub spans: Vec<Span>,
    /// How many spans matched in all.
    pub matched: u64,
    /// Spanset-level attributes (`by(...)`, aggregates).
    pub attributes: Vec<Attribute>,
}

/// One matched span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub span_id: String,
    pub name: String,
    pub start_time_unix_nano: u64,
    pub duration_nanos: u64,
    pub attributes: Vec<Attribute>,
}

impl Span {
    /// The value of attribute `key`, if Tempo returned it.
    pub fn attribute(&self, key: &str) -> Option<&AttributeValue> {
        self.attributes.iter().find(|attribute| attribute.key == key).map(|attribute| &attribute.value)
    }
}

/// A span or spanset attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub key: String,
    pub value: AttributeValue,
}

/// An OpenTelemetry attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    String(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// Arrays, key-value lists and bytes, as sent.
    Other(serde_json::Value),
}

impl std::fmt::Display for AttributeValue {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::String(text) => formatter.write_str(text),
            Self::Int(value) => write!(formatter, "{value}"),
            Self::Double(value) => write!(formatter, "{value}"),
            Self::Bool(value) => write!(formatter, "{value}"),
            Self::Other(value) => write!(formatter, "{value}"),
        }
    }
}

/// A span of [`TraceSearch::slowest_spans`], with its trace.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowSpan {
    pub trace_id: String,
    pub root_service_name: String,
    pub root_trace_name: String,
    pub trace_duration_ms: u64,
    pub span_id: String,
    pub span_name: String,
    pub duration_nanos: u64,
    /// The span's `db.statement`, when the query selected it and the span has one.
    pub db_statement: Option<String>,
}

impl TraceSearch {
    /// The `count` slowest matched spans of all traces, slowest first (ties by
    /// trace and span ID, so the order is stable).
    pub fn slowest_spans(&self, count: usize) -> Vec<SlowSpan> {
        let mut spans: Vec<SlowSpan> = self
            .traces
            .iter()
            .flat_map(|trace| {
                trace.span_sets.iter().flat_map(|set| &set.spans).map(move |span| SlowSpan {
                    trace_id: trace.trace_id.clone(),
                    root_service_name: trace.root_service_name.clone(),
                    root_trace_name: trace.root_trace_name.clone(),
                    trace_duration_ms: trace.duration_ms,
                    span_id: span.span_id.clone(),
                    span_name: span.name.clone(),
                    duration_nanos: span.duration_nanos,
                    db_statement: span.attribute(DB_STATEMENT).map(ToString::to_string),
                })
            })
            .collect();
        spans.sort_by(|a, b| {
            b.duration_nanos
                .cmp(&a.duration_nanos)
                .then_with(|| (&a.trace_id, &a.span_id).cmp(&(&b.trace_id, &b.span_id)))
        });
        spans.dedup_by(|a, b| a.trace_id == b.trace_id && a.span_id == b.span_id);
        spans.truncate(count);
        spans
    }
}

#[derive(Deserialize)]
struct RawResponse {
    #[serde(default)]
    traces: Vec<RawTrace>,
    #[serde(default)]
    metrics: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTrace {
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(default)]
    root_service_name: String,
    #[serde(default)]
    root_trace_name: String,
    #[serde(default)]
    start_time_unix_nano: Option<Number>,
    #[serde(default)]
    duration_ms: Option<Number>,
    #[serde(default)]
    span_set: Option<RawSpanSet>,
    #[serde(default)]
    span_sets: Vec<RawSpanSet>,
}

#[derive(Deserialize)]
struct RawSpanSet {
    #[serde(default)]
    spans: Vec<RawSpan>,
    #[serde(default)]
    matched: Option<Number>,
    #[serde(default)]
    attributes: Vec<RawAttribute>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpan {
    #[serde(rename = "spanID")]
    span_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    start_time_unix_nano: Option<Number>,
    #[serde(default)]
    duration_nanos: Option<Number>,
    #[serde(default)]
    attributes: Vec<RawAttribute>,
}

#[derive(Deserialize)]
struct RawAttribute {
    key: String,
    #[serde(default)]
    value: serde_json::Map<String, serde_json::Value>,
}

/// A 64-bit integer as protobuf JSON writes it: a string, or a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Text(String),
    Value(u64),
}

impl Number {
    fn get(&self, field: &str) -> Result<u64, AnswerError> {
        match self {
            Self::Value(value) => Ok(*value),
            Self::Text(text) => text
                .parse()
                .map_err(|_| AnswerError::Malformed(format!("{field} {text:?} is not a non-negative integer"))),
        }
    }
}

fn number(value: &Option<Number>, field: &str) -> Result<u64, AnswerError> {
    value.as_ref().map_or(Ok(0), |number| number.get(field))
}

fn attribute(raw: RawAttribute) -> Result<Attribute, AnswerError> {
    let value = if let Some(serde_json::Value::String(text)) = raw.value.get("stringValue") {
        AttributeValue::String(text.clone())
    } else if let Some(value) = raw.value.get("intValue") {
        let parsed = match value {
            serde_json::Value::String(text) => text.parse().ok(),
            serde_json::Value::Number(number) => number.as_i64(),
            _ => None,
        };
        AttributeValue::Int(parsed.ok_or_else(|| {
            AnswerError::Malformed(format!("attribute {:?}: intValue {value} is not an integer", raw.key))
        })?)
    } else if let Some(value) = raw.value.get("doubleValue") {
        let parsed = match value {
            serde_json::Value::Number(number) => number.as_f64(),
            serde_json::Value::String(text) => match text.as_str() {
                "NaN" => Some(f64::NAN),
                "Infinity" => Some(f64::INFINITY),
                "-Infinity" => Some(f64::NEG_INFINITY),
                other => other.parse().ok(),
            },
            _ => None,
        };
        AttributeValue::Double(parsed.ok_or_else(|| {
            AnswerError::Malformed(format!("attribute {:?}: doubleValue {value} is not a number", raw.key))
        })?)
    } else if let Some(serde_json::Value::Bool(value)) = raw.value.get("boolValue") {
        AttributeValue::Bool(*value)
    } else {
        AttributeValue::Other(serde_json::Value::Object(raw.value))
    };
    Ok(Attribute { key: raw.key, value })
}

fn span_set(raw: RawSpanSet) -> Result<SpanSet, AnswerError> {
    let matched = number(&raw.matched, "matched")?;
    let spans = raw
        .spans
        .into_iter()
        .map(|span| {
            Ok(Span {
                start_time_unix_nano: number(&span.start_time_unix_nano, "startTimeUnixNano")?,
                duration_nanos: number(&span.duration_nanos, "durationNanos")?,
                attributes: span.attributes.into_iter().map(attribute).collect::<Result<_, _>>()?,
                span_id: span.span_id,
                name: span.name,
            })
        })
        .collect::<Result<_, AnswerError>>()?;
    let attributes = raw.attributes.into_iter().map(attribute).collect::<Result<_, _>>()?;
    Ok(SpanSet { spans, matched, attributes })
}

/// Decodes a 2xx answer of `/api/search`.
pub fn decode_search_response(body: &[u8]) -> Result<TraceSearch, AnswerError> {
    let raw: RawResponse = serde_json::from_slice(body).map_err(|error| AnswerError::malformed(error, body))?;
    let mut traces = Vec::with_capacity(raw.traces.len());
    for trace in raw.traces {
        let mut sets = trace.span_sets;
        // Tempo 2.0 and 2.1 sent one `spanSet`; later versions send it beside `spanSets` too.
        if sets.is_empty()
            && let Some(set) = trace.span_set
        {
            sets.push(set);
        }
        traces.push(TraceSummary {
            start_time_unix_nano: number(&trace.start_time_unix_nano, "startTimeUnixNano")?,
            duration_ms: number(&trace.duration_ms, "durationMs")?,
            span_sets: sets.into_iter().map(span_set).collect::<Result<_, _>>()?,
            trace_id: trace.trace_id,
            root_service_name: trace.root_service_name,
            root_trace_name: trace.root_trace_name,
        });
    }
    Ok(TraceSearch { traces, metrics: raw.metrics })
}

/// A remote Tempo's search API.
#[derive(Debug)]
pub struct TempoDatasource {
    client: RemoteClient,
}

impl TempoDatasource {
    /// Builds the client; every request is reported to `health`. Call it
    /// outside an async context.
    pub fn new(options: &HttpOptions, health: DatasourceHealth) -> Result<Self, RemoteError> {
        Ok(Self { client: RemoteClient::new(KIND, options, health)? })
    }

    /// The datasource's name.
    pub fn name(&self) -> &str {
        self.client.name()
    }

    /// The base URL searches go under.
    pub fn base_url(&self) -> &str {
        self.client.base_url()
    }

    /// Runs one TraceQL search.
    pub fn search(&self, request: &TraceSearchRequest) -> Result<TraceSearch, RemoteError> {
        let mut parameters = vec![("q", request.query.clone())];
        if let Some((start, end)) = request.range {
            parameters.push(("start", start.to_string()));
            parameters.push(("end", end.to_string()));
        }
        if let Some(limit) = request.limit {
            parameters.push(("limit", limit.to_string()));
        }
        if let Some(spans) = request.spans_per_span_set {
            parameters.push(("spss", spans.to_string()));
        }
        self.client.get("/api/search", &parameters, decode_search_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_values() {
        let decode = |json: &str| attribute(serde_json::from_str(json).expect("JSON")).map(|attribute| attribute.value);
        assert_eq!(decode(r#"{"key":"a","value":{"stringValue":"x"}}"#), Ok(AttributeValue::String("x".into())));
        assert_eq!(decode(r#"{"key":"a","value":{"intValue":"200"}}"#), Ok(AttributeValue::Int(200)));
        assert_eq!(decode(r#"{"key":"a","value":{"intValue":7}}"#), Ok(AttributeValue::Int(7)));
        assert_eq!(decode(r#"{"key":"a","value":{"doubleValue":0.5}}"#), Ok(AttributeValue::Double(0.5)));
        assert_eq!(decode(r#"{"key":"a","value":{"boolValue":true}}"#), Ok(AttributeValue::Bool(true)));
        assert!(matches!(decode(r#"{"key":"a","value":{"arrayValue":{"values":[]}}}"#), Ok(AttributeValue::Other(_))));
        assert!(decode(r#"{"key":"a","value":{"intValue":"many"}}"#).is_err());
    }

    #[test]
    fn empty_and_malformed_answers() {
        assert_eq!(decode_search_response(br#"{"metrics":{"totalBlocks":2}}"#).expect("empty").traces, vec![]);
        assert!(matches!(decode_search_response(b"{\"traces\":[{\"traceID\":1}]}"), Err(AnswerError::Malformed(_))));
        assert!(matches!(
            decode_search_response(br#"{"traces":[{"traceID":"a","durationMs":"soon"}]}"#),
            Err(AnswerError::Malformed(message)) if message.contains("durationMs")
        ));
    }
}
