//! Prometheus's status and discovery API: `/api/v1/metadata`,
//! `/api/v1/targets`, `/api/v1/targets/metadata`, `/api/v1/alertmanagers`,
//! `/api/v1/status/config`, `flags`, `runtimeinfo` and `tsdb`, in the JSON
//! shapes of Prometheus's HTTP API documentation (the parameters Grafana sends
//! included: `metric`, `limit` and `limit_per_metric` on metadata).
//!
//! It reads what the engines keep (the metadata and exemplar stores, the
//! scrape manager's [`scrape::status::Targets`], the head's statistics) and
//! the [`crate::ServerStatus`] the CLI sets; it computes nothing of its own.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Map, Value, json};
use tsdb::Labels;

use crate::AppState;
use crate::params::Params;
use crate::prometheus_api::{ApiError, blocking, json_response};

/// Prometheus's default and largest `limit` of `/api/v1/status/tsdb`.
const TSDB_STATS_DEFAULT_LIMIT: usize = 10;
const TSDB_STATS_MAX_LIMIT: usize = 10_000;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/metadata", get(metadata))
        .route("/api/v1/targets", get(targets))
        .route("/api/v1/targets/metadata", get(targets_metadata))
        .route("/api/v1/alertmanagers", get(alertmanagers))
        .route("/api/v1/status/config", get(config))
        .route("/api/v1/status/flags", get(flags))
        .route("/api/v1/status/runtimeinfo", get(runtimeinfo))
        .route("/api/v1/status/tsdb", get(tsdb_stats))
}

fn success(data: Value) -> Response {
    json_response(json!({"status": "success", "data": data}).to_string())
}

fn labels_json(labels: &Labels) -> Value {
    Value::Object(labels.iter().map(|label| (label.name.clone(), Value::String(label.value.clone()))).collect())
}

/// A count parameter where a negative number means "no limit" (Prometheus's
/// `limit` and `limit_per_metric` of the metadata endpoints).
fn signed_limit(params: &Params, name: &str) -> Result<Option<usize>, ApiError> {
    match params.get(name) {
        None | Some("") => Ok(None),
        Some(text) => {
            let number: i64 = text
                .parse()
                .map_err(|_| ApiError::invalid_parameter(name, format!("cannot parse {text:?} to a valid limit")))?;
            Ok(usize::try_from(number).ok())
        }
    }
}

async fn metadata(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = Params::from_request(raw, &HeaderMap::new(), &Bytes::new())?;
    let limit = signed_limit(&params, "limit")?;
    let limit_per_metric = signed_limit(&params, "limit_per_metric")?;
    let metric = params.get("metric").filter(|metric| !metric.is_empty());
    let families = state.metadata.select(metric, limit, limit_per_metric);
    let mut data = Map::new();
    for (name, variants) in families {
        let variants = variants
            .iter()
            .map(|variant| json!({"type": variant.metric_type.as_str(), "help": variant.help, "unit": variant.unit}))
            .collect();
        data.insert(name, Value::Array(variants));
    }
    Ok(success(Value::Object(data)))
}

/// A duration as Prometheus's `model.Duration` prints it (`1m`, `1h30m`, `15s`, `500ms`).
pub(crate) fn prometheus_duration(duration: Duration) -> String {
    let mut millis = duration.as_millis();
    if millis == 0 {
        return "0s".to_owned();
    }
    let mut text = String::new();
    for (unit, size) in [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ] {
        if millis >= size {
            text.push_str(&format!("{}{unit}", millis / size));
            millis %= size;
        }
    }
    text
}

/// RFC 3339 with nanoseconds, Go's zero time when never.
fn go_time(millis: Option<i64>) -> String {
    millis.and_then(chrono::DateTime::from_timestamp_millis).map_or_else(
        || "0001-01-01T00:00:00Z".to_owned(),
        |time| time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
    )
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The scrape URL with a loopback host replaced by this machine's name, as
/// Prometheus's `globalUrl`.
fn global_url(url: &str, hostname: &str) -> String {
    for loopback in ["localhost", "127.0.0.1", "[::1]"] {
        for scheme in ["http://", "https://"] {
            let prefix = format!("{scheme}{loopback}");
            if let Some(rest) = url.strip_prefix(&prefix)
                && (rest.is_empty() || rest.starts_with(':') || rest.starts_with('/'))
            {
                return format!("{scheme}{hostname}{rest}");
            }
        }
    }
    url.to_owned()
}

async fn targets(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = Params::from_request(raw, &HeaderMap::new(), &Bytes::new())?;
    let wanted_state = params.get("state").unwrap_or("any").to_ascii_lowercase();
    let (show_active, show_dropped) = match wanted_state.as_str() {
        "active" => (true, false),
        "dropped" => (false, true),
        _ => (true, true),
    };
    let pool_filter = params.get("scrapePool").filter(|pool| !pool.is_empty());
    let host = hostname();
    let mut active = Vec::new();
    let mut dropped = Vec::new();
    let mut dropped_counts = Map::new();
    for (name, pool) in state.targets.pools() {
        if pool_filter.is_some_and(|filter| filter != name) {
            continue;
        }
        dropped_counts.insert(name.clone(), json!(pool.dropped.len()));
        if show_active {
            for target in &pool.active {
                let health = target.health();
                active.push(json!({
                    "discoveredLabels": labels_json(&target.target.discovered),
                    "labels": labels_json(&target.target.labels),
                    "scrapePool": name,
                    "scrapeUrl": target.target.url,
                    "globalUrl": global_url(&target.target.url, &host),
                    "lastError": health.last_error,
                    "lastScrape": go_time(health.last_scrape_ms),
                    "lastScrapeDuration": health.last_duration.as_secs_f64(),
                    "health": health.health.as_str(),
                    "scrapeInterval": prometheus_duration(target.target.scrape_interval),
                    "scrapeTimeout": prometheus_duration(target.target.scrape_timeout),
                }));
            }
        }
        if show_dropped {
            for labels in &pool.dropped {
                dropped.push(json!({"discoveredLabels": labels_json(labels), "scrapePool": name}));
            }
        }
    }
    Ok(success(json!({
        "activeTargets": active,
        "droppedTargets": dropped,
        "droppedTargetCounts": dropped_counts,
    })))
}

async fn targets_metadata(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = Params::from_request(raw, &HeaderMap::new(), &Bytes::new())?;
    let matchers = match params.get("match_target").filter(|text| !text.trim().is_empty()) {
        Some(text) => promql::selector_matchers(text).map_err(|error| match error {
            promql::Error::Parse { message, line, column, .. } => {
                ApiError::invalid_parameter("match_target", format!("{line}:{column}: parse error: {message}"))
            }
            other => ApiError::invalid_parameter("match_target", other),
        })?,
        None => Vec::new(),
    };
    let limit = signed_limit(&params, "limit")?;
    let metric = params.get("metric").filter(|metric| !metric.is_empty());
    let mut data = Vec::new();
    let mut matched_targets = 0;
    'pools: for pool in state.targets.pools().values() {
        for target in &pool.active {
            let labels = &target.target.labels;
            let selected = matchers.is_empty()
                || matchers.iter().any(|group| group.iter().all(|matcher| matcher.matches_labels(labels)));
            if !selected {
                continue;
            }
            if limit.is_some_and(|limit| matched_targets >= limit) {
                break 'pools;
            }
            matched_targets += 1;
            let health = target.health();
            let families: Box<dyn Iterator<Item = (&String, &ingest::exposition::FamilyMetadata)>> = match metric {
                Some(name) => Box::new(health.metadata.get_key_value(name).into_iter()),
                None => Box::new(health.metadata.iter()),
            };
            for (name, family) in families {
                let mut entry = json!({
                    "target": labels_json(labels),
                    "type": family.metric_type.as_str(),
                    "help": family.help.clone().unwrap_or_default(),
                    "unit": family.unit.clone().unwrap_or_default(),
                });
                if metric.is_none() {
                    entry["metric"] = json!(name);
                }
                data.push(entry);
            }
        }
    }
    Ok(success(Value::Array(data)))
}

async fn alertmanagers(State(state): State<Arc<AppState>>) -> Response {
    let active: Vec<Value> = state.status().alertmanagers.iter().map(|url| json!({"url": url})).collect();
    success(json!({"activeAlertmanagers": active, "droppedAlertmanagers": []}))
}

async fn config(State(state): State<Arc<AppState>>) -> Response {
    success(json!({"yaml": state.status().config_yaml}))
}

async fn flags(State(state): State<Arc<AppState>>) -> Response {
    success(json!(state.status().flags))
}

async fn runtimeinfo(State(state): State<Arc<AppState>>) -> Response {
    let status = state.status();
    let rfc3339 = |time: chrono::DateTime<chrono::Utc>| time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let tasks = tokio::runtime::Handle::try_current().map_or(0, |handle| handle.metrics().num_alive_tasks());
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    success(json!({
        "startTime": rfc3339(status.start_time),
        "CWD": std::env::current_dir().map(|path| path.display().to_string()).unwrap_or_default(),
        "hostname": hostname(),
        "serverTime": rfc3339(chrono::Utc::now()),
        "reloadConfigSuccess": state.last_reload_successful(),
        "lastConfigTime": rfc3339(status.config_time),
        "timeSeriesCount": state.store.series_count(),
        "corruptionCount": 0,
        // alertbook is not a Go program: the tokio tasks alive stand in for
        // goroutines, the available cores for GOMAXPROCS.
        "goroutineCount": tasks,
        "GOMAXPROCS": threads,
        "GOGC": "",
        "GODEBUG": "",
        "storageRetention": status.storage_retention,
    }))
}

async fn tsdb_stats(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Result<Response, ApiError> {
    let params = Params::from_request(raw, &HeaderMap::new(), &Bytes::new())?;
    let limit = match params.get("limit") {
        None | Some("") => TSDB_STATS_DEFAULT_LIMIT,
        Some(text) => match text.parse::<i64>() {
            Ok(limit) if limit < 1 => return Err(ApiError::bad_data("limit must be a positive number")),
            Ok(limit) if limit > TSDB_STATS_MAX_LIMIT as i64 => {
                return Err(ApiError::bad_data(format!("limit must not exceed {TSDB_STATS_MAX_LIMIT}")));
            }
            Ok(limit) => limit as usize,
            Err(_) => {
                return Err(ApiError::invalid_parameter("limit", format!("cannot parse {text:?} to a valid limit")));
            }
        },
    };
    let stats = blocking(move || Ok(state.store.head_stats(limit))).await?;
    let list = |entries: &[(String, u64)]| -> Value {
        entries.iter().map(|(name, value)| json!({"name": name, "value": value})).collect()
    };
    let label_pairs: u64 = stats.label_value_count_by_label_name.iter().map(|(_, count)| count).sum();
    Ok(success(json!({
        "headStats": {
            "numSeries": stats.series,
            "numLabelPairs": label_pairs,
            "chunkCount": stats.chunks,
            "minTime": stats.min_time.unwrap_or(0),
            "maxTime": stats.max_time.unwrap_or(0),
        },
        "seriesCountByMetricName": list(&stats.series_count_by_metric_name),
        "labelValueCountByLabelName": list(&stats.label_value_count_by_label_name),
        "memoryInBytesByLabelName": list(&stats.memory_in_bytes_by_label_name),
        "seriesCountByLabelValuePair": list(&stats.series_count_by_label_value_pair),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_prometheus_prints_them() {
        assert_eq!(prometheus_duration(Duration::from_secs(60)), "1m");
        assert_eq!(prometheus_duration(Duration::from_secs(10)), "10s");
        assert_eq!(prometheus_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(prometheus_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(prometheus_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn loopback_scrape_urls_get_the_host_name() {
        assert_eq!(global_url("http://127.0.0.1:9090/metrics", "box"), "http://box:9090/metrics");
        assert_eq!(global_url("http://localhost/metrics", "box"), "http://box/metrics");
        assert_eq!(global_url("http://localhost.example:1/metrics", "box"), "http://localhost.example:1/metrics");
        assert_eq!(global_url("https://node:9100/metrics", "box"), "https://node:9100/metrics");
    }
}
