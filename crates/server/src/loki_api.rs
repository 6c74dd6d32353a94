//! Loki's HTTP API: push (`/loki/api/v1/push`, JSON or protobuf + snappy) and
//! query (`/loki/api/v1/query`, `query_range`, `labels`, `label/<name>/values`,
//! `series`), with Loki's JSON and plain-text errors, so that shippers push to
//! alertbook and Grafana uses it as a Loki datasource.
//!
//! With a write token set, a push without it (or a responder's API token)
//! gets 401 in plain text before its body is read ([`crate::WriteAuthorized`]).
//!
//! Pushed streams the log service's redaction policy covers are redacted here,
//! before the store sees them: the raw lines never reach the write-ahead log.
//! Decoding, redaction, appends and queries run on the blocking pool.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use logql::{Direction, QueryValue};
use logstore::push::DecodeOptions;

use crate::json::{self, write_string};
use crate::params::{Params, list_response, string_list_response};
use crate::{AppState, LogService, WriteAuthorized};

/// Loki's default time range of metadata requests: the last six hours.
pub(crate) const DEFAULT_METADATA_RANGE_NS: i64 = 6 * 3_600_000_000_000;
/// Loki's default time range of a range query: the last hour.
pub(crate) const DEFAULT_QUERY_RANGE_NS: i64 = 3_600_000_000_000;
/// Loki's default entry limit of a log query.
const DEFAULT_LIMIT: usize = 100;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/loki/api/v1/push", post(push))
        .route("/loki/api/v1/query", get(query).post(query))
        .route("/loki/api/v1/query_range", get(query_range).post(query_range))
        .route("/loki/api/v1/labels", get(labels).post(labels))
        .route("/loki/api/v1/label/{name}/values", get(label_values))
        .route("/loki/api/v1/series", get(series).post(series))
        .route("/loki/api/v1/status/buildinfo", get(buildinfo))
        .merge(crate::loki_explore::routes())
        .layer(axum::extract::DefaultBodyLimit::max(DecodeOptions::default().max_body_bytes))
}

/// A Loki API error: a status and a plain-text message, as Loki answers.
#[derive(Debug)]
pub(crate) struct LokiError {
    status: StatusCode,
    message: String,
}

impl LokiError {
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, message: message.into() }
    }

    pub(crate) fn internal(what: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "{what}");
        Self { status: StatusCode::INTERNAL_SERVER_ERROR, message: what.to_owned() }
    }
}

impl From<logql::Error> for LokiError {
    fn from(error: logql::Error) -> Self {
        if error.is_bad_request() {
            Self::bad_request(error.to_string())
        } else if error.is_timeout() {
            Self { status: StatusCode::SERVICE_UNAVAILABLE, message: error.to_string() }
        } else {
            Self::internal("log query failed", error)
        }
    }
}

impl IntoResponse for LokiError {
    fn into_response(self) -> Response {
        (self.status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], self.message + "\n").into_response()
    }
}

pub(crate) fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json; charset=utf-8")], body).into_response()
}

pub(crate) fn service(state: &AppState) -> Result<Arc<LogService>, LokiError> {
    state.logs().ok_or_else(|| LokiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "the log store is not running".to_owned(),
    })
}

/// Runs store work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, LokiError> + Send + 'static,
) -> Result<T, LokiError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| LokiError::internal("log task failed", error))?
}

/// A Loki timestamp: unix seconds with a fraction, integer seconds (up to
/// ten digits) or nanoseconds, or RFC 3339.
fn parse_time(text: &str) -> Option<i64> {
    if text.contains('.')
        && let Ok(seconds) = text.parse::<f64>()
    {
        return (seconds.is_finite() && seconds.abs() < 9.2e9).then(|| (seconds * 1e9).round() as i64);
    }
    if let Ok(number) = text.parse::<i64>() {
        return if text.trim_start_matches('-').len() <= 10 { number.checked_mul(1_000_000_000) } else { Some(number) };
    }
    chrono::DateTime::parse_from_rfc3339(text).ok().and_then(|time| time.timestamp_nanos_opt())
}

/// A step or interval: a duration (`30s`, `1m`) or float seconds.
pub(crate) fn parse_step(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<f64>() {
        return (seconds.is_finite() && seconds.abs() < 9.2e9).then(|| (seconds * 1e9).round() as i64);
    }
    let duration = catalog::duration::parse_duration(text).ok()?;
    i64::try_from(duration.as_nanos()).ok()
}

/// Loki's parameter types on the shared request parameters.
impl Params {
    pub(crate) fn loki(raw_query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Result<Self, LokiError> {
        Params::parse(raw_query, headers, body).map_err(LokiError::bad_request)
    }

    pub(crate) fn loki_time(&self, name: &str, default: i64) -> Result<i64, LokiError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(text) => parse_time(text).ok_or_else(|| {
                LokiError::bad_request(format!(
                    "invalid {name} parameter {text:?}: not a unix timestamp or RFC 3339 time"
                ))
            }),
        }
    }

    pub(crate) fn loki_limit(&self) -> Result<usize, LokiError> {
        match self.get("limit") {
            None | Some("") => Ok(DEFAULT_LIMIT),
            Some(text) => text.parse::<usize>().map_err(|_| {
                LokiError::bad_request(format!("invalid limit parameter {text:?}: not a positive integer"))
            }),
        }
    }

    fn direction(&self) -> Result<Direction, LokiError> {
        match self.get("direction").map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("backward") => Ok(Direction::Backward),
            Some("forward") => Ok(Direction::Forward),
            Some(other) => {
                Err(LokiError::bad_request(format!("invalid direction parameter {other:?}: use forward or backward")))
            }
        }
    }

    pub(crate) fn query(&self) -> Result<String, LokiError> {
        match self.get("query") {
            Some(query) if !query.trim().is_empty() => Ok(query.to_owned()),
            _ => Err(LokiError::bad_request("query parameter is required")),
        }
    }

    /// The `start` and `end` of a request, `default_range_ns` back from `now_ns` when absent.
    pub(crate) fn range(&self, now_ns: i64, default_range_ns: i64) -> Result<(i64, i64), LokiError> {
        let end = self.loki_time("end", now_ns)?;
        let start = self.loki_time("start", end.saturating_sub(default_range_ns))?;
        Ok((start, end))
    }

    fn check_limit(&self, service: &LogService, limit: usize) -> Result<(), LokiError> {
        let max = service.engine.limits.max_entries;
        if limit > max {
            return Err(LokiError::bad_request(format!(
                "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {max})"
            )));
        }
        Ok(())
    }
}

async fn push(State(state): State<Arc<AppState>>, _: WriteAuthorized, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let header_text =
        |name: header::HeaderName| headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
    let content_type = header_text(header::CONTENT_TYPE);
    let content_encoding = header_text(header::CONTENT_ENCODING);
    let result = async {
        let service = service(&state)?;
        let metrics_state = state.clone();
        blocking(move || {
            let mut streams =
                logstore::push::decode(content_type.as_deref(), content_encoding.as_deref(), &body, &service.decode)
                    .map_err(|error| LokiError {
                        status: StatusCode::from_u16(error.status_code()).unwrap_or(StatusCode::BAD_REQUEST),
                        message: error.loki_message(),
                    })?;
            let matched = service.redact(&mut streams);
            metrics_state.metrics.observe_pii_matches(matched);
            // Live tails see the lines as stored (redacted), once they are stored.
            let for_tails = metrics_state.has_tails().then(|| streams.clone());
            let stats = service
                .store
                .append(streams)
                .map_err(|error| LokiError::internal("cannot write the log entries to the write-ahead log", error))?;
            if let Some(streams) = for_tails {
                metrics_state.publish_to_tails(streams);
            }
            metrics_state.metrics.observe_log_push(stats.entries_appended, stats.bytes_appended, stats.rejected.len());
            match stats.loki_message() {
                None => Ok(()),
                Some(message) => Err(LokiError {
                    status: StatusCode::from_u16(stats.status_code()).unwrap_or(StatusCode::BAD_REQUEST),
                    message,
                }),
            }
        })
        .await
    }
    .await;
    let response = match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    };
    state.metrics.observe_log_push_request(response.status(), started.elapsed().as_secs_f64());
    response
}

/// What every query request carries: its parameters, the service, the
/// query, the entry limit and the direction.
struct QueryRequest {
    params: Params,
    service: Arc<LogService>,
    query: String,
    limit: usize,
    direction: Direction,
}

impl QueryRequest {
    fn parse(state: &AppState, raw: Option<String>, headers: &HeaderMap, body: &Bytes) -> Result<Self, LokiError> {
        let params = Params::loki(raw, headers, body)?;
        let service = service(state)?;
        let query = params.query()?;
        let limit = params.loki_limit()?;
        params.check_limit(&service, limit)?;
        let direction = params.direction()?;
        Ok(Self { params, service, query, limit, direction })
    }
}

/// Runs `work` on the blocking pool, records it as a `kind` query and answers
/// with Loki's JSON (`time_ns` stamps vector and scalar results).
async fn answer(
    state: &AppState,
    kind: &str,
    started: Instant,
    time_ns: i64,
    work: impl FnOnce() -> Result<QueryValue, logql::Error> + Send + 'static,
) -> Result<Response, LokiError> {
    let result = blocking(move || Ok(success(&work()?, time_ns, started))).await;
    state.metrics.observe_query(kind, result.is_ok(), started.elapsed().as_secs_f64());
    Ok(json_response(result?))
}

async fn query(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    let started = Instant::now();
    let QueryRequest { params, service, query, limit, direction } = QueryRequest::parse(&state, raw, &headers, &body)?;
    let time = params.loki_time("time", state.now_ns())?;
    answer(&state, "loki_instant", started, time, move || {
        service.engine.instant_query(service.store.as_ref(), &query, time, limit, direction)
    })
    .await
}

/// Loki's default step: the range cut into 250 points, at least a second.
pub(crate) fn default_step_ns(start: i64, end: i64) -> i64 {
    let seconds = ((end.saturating_sub(start)) as f64 / 1e9 / 250.0).ceil().max(1.0);
    (seconds * 1e9) as i64
}

async fn query_range(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    let started = Instant::now();
    let QueryRequest { params, service, query, limit, direction } = QueryRequest::parse(&state, raw, &headers, &body)?;
    let (start, end) = params.range(state.now_ns(), DEFAULT_QUERY_RANGE_NS)?;
    if end < start {
        return Err(LokiError::bad_request("end timestamp must not be before or equal to start time"));
    }
    let step = match params.get("step") {
        None | Some("") => default_step_ns(start, end),
        Some(text) => parse_step(text).ok_or_else(|| {
            LokiError::bad_request(format!("invalid step parameter {text:?}: not a duration or a number of seconds"))
        })?,
    };
    if step <= 0 {
        return Err(LokiError::bad_request(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > service.engine.limits.max_points as i64 {
        return Err(LokiError::bad_request(format!(
            "exceeded maximum resolution of {} points per timeseries. Try increasing the value of the step parameter",
            service.engine.limits.max_points
        )));
    }
    answer(&state, "loki_range", started, end, move || {
        service.engine.range_query(service.store.as_ref(), &query, start, end, step, limit, direction)
    })
    .await
}

/// Loki's sample timestamp: unix seconds as a JSON number.
fn write_seconds(out: &mut String, time_ns: i64) {
    json::write_timestamp(out, time_ns.div_euclid(1_000_000));
}

fn write_sample(out: &mut String, time_ns: i64, value: f64) {
    out.push('[');
    write_seconds(out, time_ns);
    out.push(',');
    write_string(out, &json::format_value(value));
    out.push(']');
}

/// `[item,item,...]`.
pub(crate) fn write_list<T>(out: &mut String, items: &[T], mut write_item: impl FnMut(&mut String, &T)) {
    out.push('[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_item(out, item);
    }
    out.push(']');
}

/// `{"status":"success","data":{"resultType":...,"result":...,"stats":...}}`.
fn success(value: &QueryValue, time_ns: i64, started: Instant) -> String {
    let mut out = String::with_capacity(256);
    out.push_str("{\"status\":\"success\",\"data\":{\"resultType\":");
    let mut entries = 0usize;
    match value {
        QueryValue::Streams(streams) => {
            out.push_str("\"streams\",\"result\":");
            write_list(&mut out, streams, |out, stream| {
                out.push_str("{\"stream\":");
                json::write_labels(out, &stream.labels);
                out.push_str(",\"values\":");
                write_list(out, &stream.entries, |out, entry| {
                    out.push('[');
                    write_string(out, &entry.timestamp_ns.to_string());
                    out.push(',');
                    write_string(out, &entry.line);
                    out.push(']');
                });
                entries += stream.entries.len();
                out.push('}');
            });
        }
        QueryValue::Vector(samples) => {
            out.push_str("\"vector\",\"result\":");
            write_list(&mut out, samples, |out, (labels, value)| {
                out.push_str("{\"metric\":");
                json::write_labels(out, labels);
                out.push_str(",\"value\":");
                write_sample(out, time_ns, *value);
                out.push('}');
            });
        }
        QueryValue::Matrix(series) => {
            out.push_str("\"matrix\",\"result\":");
            write_list(&mut out, series, |out, one| {
                out.push_str("{\"metric\":");
                json::write_labels(out, &one.labels);
                out.push_str(",\"values\":");
                write_list(out, &one.points, |out, (time, value)| write_sample(out, *time, *value));
                out.push('}');
            });
        }
        QueryValue::Scalar(value) => {
            out.push_str("\"scalar\",\"result\":");
            write_sample(&mut out, time_ns, *value);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    out.push_str(&format!(
        ",\"stats\":{{\"summary\":{{\"execTime\":{seconds},\"queueTime\":0,\"totalEntriesReturned\":{entries}}}}}}}}}"
    ));
    out
}

/// The stream matchers of a `query` or `match[]` selector.
pub(crate) fn parse_selector(name: &str, text: &str) -> Result<Vec<Vec<logql::StreamMatcher>>, LokiError> {
    let expr =
        logql::parse(text).map_err(|error| LokiError::bad_request(format!("invalid {name} parameter: {error}")))?;
    Ok(logql::selectors(&expr))
}

/// What every metadata request carries: its parameters, the service and the
/// time range (the last six hours unless given).
struct MetadataRequest {
    params: Params,
    service: Arc<LogService>,
    start: i64,
    end: i64,
}

impl MetadataRequest {
    fn parse(state: &AppState, raw: Option<String>, headers: &HeaderMap, body: &Bytes) -> Result<Self, LokiError> {
        let params = Params::loki(raw, headers, body)?;
        let service = service(state)?;
        let (start, end) = params.range(state.now_ns(), DEFAULT_METADATA_RANGE_NS)?;
        Ok(Self { params, service, start, end })
    }
}

async fn labels(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    let MetadataRequest { service, start, end, .. } = MetadataRequest::parse(&state, raw, &headers, &body)?;
    let names = blocking(move || Ok(service.store.label_names(start, end))).await?;
    Ok(json_response(string_list_response(names, None)))
}

async fn label_values(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, LokiError> {
    let MetadataRequest { params, service, start, end } = MetadataRequest::parse(&state, raw, &headers, &Bytes::new())?;
    let groups = match params.get("query") {
        Some(query) if !query.trim().is_empty() => parse_selector("query", query)?,
        _ => vec![Vec::new()],
    };
    let values = blocking(move || {
        let mut values = Vec::new();
        for group in &groups {
            values.extend(service.store.label_values(&name, start, end, group));
        }
        Ok(values)
    })
    .await?;
    Ok(json_response(string_list_response(values, None)))
}

async fn series(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    let MetadataRequest { params, service, start, end } = MetadataRequest::parse(&state, raw, &headers, &body)?;
    let mut groups = Vec::new();
    for selector in params.all("match[]").into_iter().chain(params.all("match")) {
        groups.extend(parse_selector("match[]", selector)?);
    }
    if groups.is_empty() {
        return Err(LokiError::bad_request("at least one match[] parameter is required"));
    }
    let all = blocking(move || Ok(service.store.series(&groups, start, end))).await?;
    Ok(json_response(list_response(all, None, json::write_labels)))
}

async fn buildinfo() -> Response {
    let mut body = String::from("{\"version\":");
    write_string(&mut body, env!("CARGO_PKG_VERSION"));
    body.push_str(",\"revision\":\"\",\"branch\":\"\",\"buildUser\":\"\",\"buildDate\":\"\",\"goVersion\":\"\"}");
    json_response(body)
}
