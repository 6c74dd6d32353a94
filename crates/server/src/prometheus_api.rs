//! Prometheus's HTTP query API: `/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values`,
//! `/api/v1/query_exemplars`, `/api/v1/format_query` and
//! `/api/v1/status/buildinfo`, GET and POST (form-encoded), with Prometheus's
//! JSON and error shapes, so that promtool and Grafana can use alertbook as a
//! Prometheus. Queries run on the blocking pool, never on the event loop.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tsdb::{Matcher, Queryable};

use crate::AppState;
use crate::json;
use crate::params::{Params, string_list_response};

/// The most points a range query may return per series (Prometheus's limit).
const MAX_POINTS_PER_SERIES: i64 = 11_000;
/// Bounds of "all time" for metadata queries without start or end.
pub(crate) const MIN_TIME_MS: i64 = i64::MIN / 2;
pub(crate) const MAX_TIME_MS: i64 = i64::MAX / 2;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/query", get(query).post(query))
        .route("/api/v1/query_range", get(query_range).post(query_range))
        .route("/api/v1/series", get(series).post(series))
        .route("/api/v1/labels", get(labels).post(labels))
        .route("/api/v1/label/{name}/values", get(label_values))
        .route("/api/v1/status/buildinfo", get(buildinfo))
        .route("/api/v1/query_exemplars", get(query_exemplars).post(query_exemplars))
        .route("/api/v1/format_query", get(format_query).post(format_query))
}

/// Prometheus's error types and their status codes.
#[derive(Debug, Clone, Copy)]
enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Internal,
}

/// An API error, rendered as `{"status":"error","errorType":...,"error":...}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    kind: ErrorType,
    message: String,
}

impl ApiError {
    pub(crate) fn bad_data(message: impl Into<String>) -> Self {
        Self { kind: ErrorType::BadData, message: message.into() }
    }

    pub(crate) fn invalid_parameter(name: &str, message: impl std::fmt::Display) -> Self {
        Self::bad_data(format!("invalid parameter \"{name}\": {message}"))
    }
}

impl From<promql::Error> for ApiError {
    fn from(error: promql::Error) -> Self {
        match error {
            promql::Error::Parse { message, line, column, .. } => {
                Self::invalid_parameter("query", format!("{line}:{column}: parse error: {message}"))
            }
            promql::Error::Timeout { .. } => Self { kind: ErrorType::Timeout, message: error.to_string() },
            promql::Error::Storage(message) => {
                tracing::error!(error = %message, "storage error during a query");
                Self { kind: ErrorType::Internal, message: "storage error".into() }
            }
            other => Self { kind: ErrorType::Execution, message: other.to_string() },
        }
    }
}

impl From<tsdb::Error> for ApiError {
    fn from(error: tsdb::Error) -> Self {
        match error {
            tsdb::Error::InvalidRegex { .. } => Self::bad_data(error.to_string()),
            other => {
                tracing::error!(error = %other, "storage error");
                Self { kind: ErrorType::Internal, message: "storage error".into() }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, name) = match self.kind {
            ErrorType::BadData => (StatusCode::BAD_REQUEST, "bad_data"),
            ErrorType::Execution => (StatusCode::UNPROCESSABLE_ENTITY, "execution"),
            ErrorType::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            ErrorType::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let mut body = String::from("{\"status\":\"error\",\"errorType\":\"");
        body.push_str(name);
        body.push_str("\",\"error\":");
        json::write_string(&mut body, &self.message);
        body.push('}');
        (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

pub(crate) fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Prometheus's parameter types on the shared request parameters.
impl Params {
    pub(crate) fn from_request(raw_query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Result<Self, ApiError> {
        Params::parse(raw_query, headers, body).map_err(ApiError::bad_data)
    }

    /// A timestamp parameter in milliseconds: unix seconds (float) or RFC 3339.
    pub(crate) fn time(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(text) => parse_time(text).ok_or_else(|| {
                ApiError::invalid_parameter(name, format!("cannot parse {text:?} to a valid timestamp"))
            }),
        }
    }

    /// A duration parameter: float seconds or a Prometheus duration.
    fn duration(&self, name: &str) -> Result<Option<Duration>, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(text) => parse_duration(text)
                .map(Some)
                .ok_or_else(|| ApiError::invalid_parameter(name, format!("cannot parse {text:?} to a valid duration"))),
        }
    }

    pub(crate) fn limit(&self) -> Result<Option<usize>, ApiError> {
        match self.get("limit") {
            None | Some("") | Some("0") => Ok(None),
            Some(text) => text
                .parse()
                .map(Some)
                .map_err(|_| ApiError::invalid_parameter("limit", format!("cannot parse {text:?} to a valid limit"))),
        }
    }
}

fn parse_time(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<f64>() {
        if !seconds.is_finite() {
            return None;
        }
        return Some((seconds * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|time| time.timestamp_millis())
}

fn parse_duration(text: &str) -> Option<Duration> {
    if let Ok(seconds) = text.parse::<f64>() {
        return (0.0..1e15).contains(&seconds).then(|| Duration::from_secs_f64(seconds));
    }
    catalog::duration::parse_duration(text).ok()
}

/// Runs CPU-heavy work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| {
        tracing::error!(error = %error, "query task failed");
        ApiError { kind: ErrorType::Internal, message: "query task failed".into() }
    })?
}

fn engine_for(state: &AppState, params: &Params) -> Result<promql::Engine, ApiError> {
    let mut options = state.engine.options().clone();
    if let Some(timeout) = params.duration("timeout")? {
        options.timeout = options.timeout.min(timeout);
    }
    Ok(promql::Engine::new(options))
}

fn success(value: &promql::QueryResult, time: i64) -> String {
    let mut body = String::with_capacity(256);
    body.push_str("{\"status\":\"success\",\"data\":");
    json::write_query_data(&mut body, &value.value, time);
    json::write_annotations(&mut body, &value.warnings, &value.infos);
    body.push('}');
    body
}

async fn query(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::from_request(raw, &headers, &body)?;
    let query = params.get("query").unwrap_or_default().to_owned();
    let time = params.time("time", state.now_ms())?;
    let engine = engine_for(&state, &params)?;
    let started = std::time::Instant::now();
    let shared = state.clone();
    let result = blocking(move || {
        let result = engine.instant_query(shared.store.as_ref(), &query, time)?;
        Ok(success(&result, time))
    })
    .await;
    state.metrics.observe_query("instant", result.is_ok(), started.elapsed().as_secs_f64());
    Ok(json_response(result?))
}

async fn query_range(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::from_request(raw, &headers, &body)?;
    let query = params.get("query").unwrap_or_default().to_owned();
    if params.get("start").is_none() {
        return Err(ApiError::invalid_parameter("start", "cannot parse \"\" to a valid timestamp"));
    }
    if params.get("end").is_none() {
        return Err(ApiError::invalid_parameter("end", "cannot parse \"\" to a valid timestamp"));
    }
    let start = params.time("start", 0)?;
    let end = params.time("end", 0)?;
    if end < start {
        return Err(ApiError::invalid_parameter("end", "end timestamp must not be before start time"));
    }
    let step = params
        .duration("step")?
        .ok_or_else(|| ApiError::invalid_parameter("step", "cannot parse \"\" to a valid duration"))?;
    let step_ms = i64::try_from(step.as_millis()).unwrap_or(i64::MAX);
    if step_ms <= 0 {
        return Err(ApiError::invalid_parameter(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step_ms > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let engine = engine_for(&state, &params)?;
    let started = std::time::Instant::now();
    let shared = state.clone();
    let result = blocking(move || {
        let result = engine.range_query(shared.store.as_ref(), &query, start, end, step_ms)?;
        Ok(success(&result, end))
    })
    .await;
    state.metrics.observe_query("range", result.is_ok(), started.elapsed().as_secs_f64());
    Ok(json_response(result?))
}

/// The matcher groups of every `match[]` selector; an empty list when none given.
pub(crate) fn selectors(params: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    let mut groups = Vec::new();
    for selector in params.all("match[]") {
        let parsed = promql::selector_matchers(selector).map_err(|error| match error {
            promql::Error::Parse { message, line, column, .. } => {
                ApiError::invalid_parameter("match[]", format!("{line}:{column}: parse error: {message}"))
            }
            other => ApiError::invalid_parameter("match[]", other),
        })?;
        groups.extend(parsed);
    }
    Ok(groups)
}

async fn series(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::from_request(raw, &headers, &body)?;
    let groups = selectors(&params)?;
    if groups.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let start = params.time("start", MIN_TIME_MS)?;
    let end = params.time("end", MAX_TIME_MS)?;
    let limit = params.limit()?;
    let body = blocking(move || {
        let mut all: Vec<tsdb::Labels> = Vec::new();
        for group in &groups {
            all.extend(state.store.series(group, start, end)?);
        }
        Ok(crate::params::list_response(all, limit, json::write_labels))
    })
    .await?;
    Ok(json_response(body))
}

async fn labels(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::from_request(raw, &headers, &body)?;
    let groups = selectors(&params)?;
    let start = params.time("start", MIN_TIME_MS)?;
    let end = params.time("end", MAX_TIME_MS)?;
    let limit = params.limit()?;
    let body = blocking(move || {
        let mut names = Vec::new();
        if groups.is_empty() {
            names = state.store.label_names(&[], start, end)?;
        }
        for group in &groups {
            names.extend(state.store.label_names(group, start, end)?);
        }
        Ok(string_list_response(names, limit))
    })
    .await?;
    Ok(json_response(body))
}

fn valid_label_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && characters.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

async fn label_values(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::from_request(raw, &headers, &Bytes::new())?;
    // Prometheus 3 accepts UTF-8 names escaped as `U__...`; plain names are checked.
    if !valid_label_name(&name) && !name.starts_with("U__") {
        return Err(ApiError::invalid_parameter("name", format!("invalid label name: {name:?}")));
    }
    let groups = selectors(&params)?;
    let start = params.time("start", MIN_TIME_MS)?;
    let end = params.time("end", MAX_TIME_MS)?;
    let limit = params.limit()?;
    let body = blocking(move || {
        let mut values = Vec::new();
        if groups.is_empty() {
            values = state.store.label_values(&name, &[], start, end)?;
        }
        for group in &groups {
            values.extend(state.store.label_values(&name, group, start, end)?);
        }
        Ok(string_list_response(values, limit))
    })
    .await?;
    Ok(json_response(body))
}

/// Exemplars of the series every selector of `query` matches, in `[start, end]`.
async fn query_exemplars(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::from_request(raw, &headers, &body)?;
    let start = params.time("start", MIN_TIME_MS)?;
    let end = params.time("end", MAX_TIME_MS)?;
    if end < start {
        return Err(ApiError::invalid_parameter("end", "end timestamp must not be before start time"));
    }
    let groups = promql::query_selectors(params.get("query").unwrap_or_default())?;
    let body = blocking(move || {
        let found = state.exemplars.select(&groups, start, end);
        let mut body = String::from("{\"status\":\"success\",\"data\":[");
        for (index, series) in found.iter().enumerate() {
            if index > 0 {
                body.push(',');
            }
            body.push_str("{\"seriesLabels\":");
            json::write_labels(&mut body, &series.series);
            body.push_str(",\"exemplars\":[");
            for (index, exemplar) in series.exemplars.iter().enumerate() {
                if index > 0 {
                    body.push(',');
                }
                body.push_str("{\"labels\":");
                json::write_labels(&mut body, &exemplar.labels);
                body.push_str(",\"value\":");
                json::write_string(&mut body, &json::format_value(exemplar.value));
                body.push_str(",\"timestamp\":");
                json::write_timestamp(&mut body, exemplar.timestamp);
                body.push('}');
            }
            body.push_str("]}");
        }
        body.push_str("]}");
        Ok(body)
    })
    .await?;
    Ok(json_response(body))
}

/// The query as Prometheus's prettifier prints it.
async fn format_query(RawQuery(raw): RawQuery, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let params = Params::from_request(raw, &headers, &body)?;
    let formatted = promql::format_query(params.get("query").unwrap_or_default())?;
    let mut body = String::from("{\"status\":\"success\",\"data\":");
    json::write_string(&mut body, &formatted);
    body.push('}');
    Ok(json_response(body))
}

async fn buildinfo() -> Response {
    let mut body = String::from("{\"status\":\"success\",\"data\":{\"version\":");
    json::write_string(&mut body, env!("CARGO_PKG_VERSION"));
    body.push_str(
        ",\"revision\":\"\",\"branch\":\"\",\"buildUser\":\"\",\"buildDate\":\"\",\"goVersion\":\"\",\"application\":\"alertbook\"}}",
    );
    json_response(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_unix_seconds_or_rfc3339() {
        assert_eq!(parse_time("1435781451.781"), Some(1_435_781_451_781));
        assert_eq!(parse_time("2015-07-01T20:10:51.781Z"), Some(1_435_781_451_781));
        assert_eq!(parse_time("2015-07-01T22:10:51.781+02:00"), Some(1_435_781_451_781));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_duration("15"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("-1"), None);
    }
}
