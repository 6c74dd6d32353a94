//! Loki's exploration endpoints, what Grafana's Explore and Logs Drilldown
//! call besides queries: `/loki/api/v1/index/stats` (streams, chunks,
//! entries and bytes a selector resolves to: Grafana's query size estimate),
//! `/loki/api/v1/detected_labels`, `/loki/api/v1/detected_fields`,
//! `/loki/api/v1/patterns` (Drain patterns mined from the stored lines) and
//! the live tail, `/loki/api/v1/tail` over WebSocket, in Loki's JSON shapes.
//!
//! The tail first sends the matching entries from `start` (default an hour
//! ago) to now, then every pushed entry the query keeps, as stored (lines of
//! redacted streams arrive redacted), held back `delay_for` seconds: the
//! history too is read only after that delay, so slow loggers catch up
//! before anything is sent, and a push that the history already held is not
//! sent twice. Pushes
//! beyond `limit` entries in one frame are reported in `dropped_entries`; a
//! tail that falls more than 1024 pushes behind misses them and logs it.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use logql::{Direction, LogSource, QueryValue, SourceError, StreamMatcher};
use logstore::PushStream;
use serde_json::{Value, json};
use tsdb::Labels;

use crate::AppState;
use crate::loki_api::{
    DEFAULT_METADATA_RANGE_NS, DEFAULT_QUERY_RANGE_NS, LokiError, blocking, default_step_ns, json_response,
    parse_selector, parse_step, service,
};
use crate::params::Params;

/// Loki's defaults of `detected_fields`: lines read and fields kept.
const DEFAULT_LINE_LIMIT: usize = 1000;
const DEFAULT_FIELD_LIMIT: usize = 1000;
/// The most lines the pattern miner reads for one request.
const MAX_PATTERN_LINES: usize = 100_000;
/// The smallest pattern bucket (Loki's pattern ingester keeps 10 s samples).
const MIN_PATTERN_STEP_NS: i64 = 10_000_000_000;
/// Loki's largest `delay_for`, in seconds.
const MAX_DELAY_FOR: u64 = 5;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/loki/api/v1/index/stats", get(index_stats).post(index_stats))
        .route("/loki/api/v1/detected_labels", get(detected_labels))
        .route("/loki/api/v1/detected_fields", get(detected_fields))
        .route("/loki/api/v1/patterns", get(patterns))
        .route("/loki/api/v1/tail", get(tail))
}

fn labels_json(labels: &Labels) -> Value {
    Value::Object(labels.iter().map(|label| (label.name.clone(), Value::String(label.value.clone()))).collect())
}

fn count_parameter(params: &Params, name: &str, default: usize) -> Result<usize, LokiError> {
    match params.get(name) {
        None | Some("") => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| LokiError::bad_request(format!("invalid {name} parameter {text:?}: not a positive integer"))),
    }
}

async fn index_stats(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, LokiError> {
    let params = Params::loki(raw, &headers, &body)?;
    let service = service(&state)?;
    let groups = parse_selector("query", &params.query()?)?;
    let (start, end) = params.range(state.now_ns(), DEFAULT_METADATA_RANGE_NS)?;
    let stats = blocking(move || {
        let mut total = logstore::IndexStats::default();
        for group in &groups {
            let stats = service.store.index_stats(group, start, end);
            total.streams += stats.streams;
            total.chunks += stats.chunks;
            total.entries += stats.entries;
            total.bytes += stats.bytes;
        }
        Ok(total)
    })
    .await?;
    Ok(json_response(
        json!({"streams": stats.streams, "chunks": stats.chunks, "entries": stats.entries, "bytes": stats.bytes})
            .to_string(),
    ))
}

async fn detected_labels(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Result<Response, LokiError> {
    let params = Params::loki(raw, &HeaderMap::new(), &Bytes::new())?;
    let service = service(&state)?;
    let groups = match params.get("query") {
        Some(query) if !query.trim().is_empty() => parse_selector("query", query)?,
        _ => vec![Vec::new()],
    };
    let (start, end) = params.range(state.now_ns(), DEFAULT_METADATA_RANGE_NS)?;
    let labels = blocking(move || {
        let streams = service.store.series(&groups, start, end);
        Ok(logql::detect::detect_labels(streams.iter()))
    })
    .await?;
    let detected: Vec<Value> =
        labels.into_iter().map(|(label, cardinality)| json!({"label": label, "cardinality": cardinality})).collect();
    Ok(json_response(json!({"detectedLabels": detected}).to_string()))
}

async fn detected_fields(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Result<Response, LokiError> {
    let params = Params::loki(raw, &HeaderMap::new(), &Bytes::new())?;
    let service = service(&state)?;
    let query = params.query()?;
    let (start, end) = params.range(state.now_ns(), DEFAULT_QUERY_RANGE_NS)?;
    let line_limit = count_parameter(&params, "line_limit", DEFAULT_LINE_LIMIT)?;
    let field_limit = count_parameter(&params, "limit", DEFAULT_FIELD_LIMIT)?;
    let fields = blocking(move || {
        let step = default_step_ns(start, end);
        let value = service.engine.range_query(
            service.store.as_ref(),
            &query,
            start,
            end,
            step,
            line_limit,
            Direction::Backward,
        )?;
        let QueryValue::Streams(streams) = value else {
            return Err(LokiError::bad_request("detected_fields needs a log query, not a metric query"));
        };
        let mut detector = logql::detect::FieldDetector::new(field_limit);
        for stream in &streams {
            for entry in &stream.entries {
                detector.add(&entry.line, &entry.metadata);
            }
        }
        Ok(detector.fields())
    })
    .await?;
    let fields: Vec<Value> = fields
        .into_iter()
        .map(|field| {
            let mut entry = json!({"label": field.label, "type": field.field_type, "cardinality": field.cardinality});
            entry["parsers"] = if field.parsers.is_empty() { Value::Null } else { json!(field.parsers) };
            entry
        })
        .collect();
    Ok(json_response(json!({"fields": fields, "limit": field_limit}).to_string()))
}

async fn patterns(State(state): State<Arc<AppState>>, RawQuery(raw): RawQuery) -> Result<Response, LokiError> {
    let params = Params::loki(raw, &HeaderMap::new(), &Bytes::new())?;
    let service = service(&state)?;
    let groups = parse_selector("query", &params.query()?)?;
    let (start, end) = params.range(state.now_ns(), DEFAULT_QUERY_RANGE_NS)?;
    let step = match params.get("step") {
        None | Some("") => default_step_ns(start, end).max(MIN_PATTERN_STEP_NS),
        Some(text) => parse_step(text).filter(|step| *step > 0).ok_or_else(|| {
            LokiError::bad_request(format!("invalid step parameter {text:?}: not a positive duration"))
        })?,
    };
    let found = blocking(move || {
        let mut miner = logql::patterns::Miner::new(step);
        let mut lines = 0usize;
        for group in &groups {
            service
                .store
                .select(group, start, end, &mut |_, entry| {
                    miner.add(entry.timestamp_ns, entry.line);
                    lines += 1;
                    if lines >= MAX_PATTERN_LINES { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
                })
                .map_err(|error| LokiError::internal("cannot read the log store", error))?;
        }
        Ok(miner.patterns())
    })
    .await?;
    let data: Vec<Value> = found
        .into_iter()
        .map(|pattern| {
            let samples: Vec<Value> =
                pattern.samples.iter().map(|(time, count)| json!([time.div_euclid(1_000_000_000), count])).collect();
            json!({"pattern": pattern.pattern, "samples": samples})
        })
        .collect();
    Ok(json_response(json!({"status": "success", "data": data}).to_string()))
}

/// The entries of pushed streams, as a [`LogSource`] the engine can run a
/// tail's query over.
struct Pushed<'a>(&'a [PushStream]);

impl LogSource for Pushed<'_> {
    fn select(
        &self,
        matchers: &[StreamMatcher],
        start_ns: i64,
        end_ns: i64,
        visit: &mut dyn FnMut(&Labels, logql::Entry<'_>) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        for stream in
            self.0.iter().filter(|stream| matchers.iter().all(|matcher| matcher.matches_labels(&stream.labels)))
        {
            let mut entries: Vec<_> = stream
                .entries
                .iter()
                .filter(|entry| start_ns <= entry.timestamp_ns && entry.timestamp_ns < end_ns)
                .collect();
            entries.sort_by_key(|entry| entry.timestamp_ns);
            for entry in entries {
                let seen =
                    logql::Entry { timestamp_ns: entry.timestamp_ns, line: &entry.line, metadata: &entry.metadata };
                if visit(&stream.labels, seen).is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// One tail frame: `{"streams":[...],"dropped_entries":[...]}`.
fn tail_frame(streams: &[logql::Stream], dropped: &[(Labels, i64)]) -> String {
    let streams: Vec<Value> = streams
        .iter()
        .filter(|stream| !stream.entries.is_empty())
        .map(|stream| {
            let values: Vec<Value> =
                stream.entries.iter().map(|entry| json!([entry.timestamp_ns.to_string(), entry.line])).collect();
            json!({"stream": labels_json(&stream.labels), "values": values})
        })
        .collect();
    let dropped: Vec<Value> = dropped
        .iter()
        .map(|(labels, timestamp)| json!({"labels": labels_json(labels), "timestamp": timestamp.to_string()}))
        .collect();
    json!({"streams": streams, "dropped_entries": dropped}).to_string()
}

/// What a tail was asked for.
struct Tail {
    query: String,
    limit: usize,
    start: i64,
    delay: Duration,
}

async fn tail(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Result<Response, LokiError> {
    let params = Params::loki(raw, &HeaderMap::new(), &Bytes::new())?;
    service(&state)?;
    let query = params.query()?;
    match logql::parse(&query) {
        Ok(logql::Expr::Log(_)) => {}
        Ok(logql::Expr::Metric(_)) => return Err(LokiError::bad_request("tail needs a log query, not a metric query")),
        Err(error) => return Err(LokiError::bad_request(format!("invalid query parameter: {error}"))),
    }
    let delay_for = count_parameter(&params, "delay_for", 0)? as u64;
    if delay_for > MAX_DELAY_FOR {
        return Err(LokiError::bad_request(format!("delay_for can't be greater than {MAX_DELAY_FOR}")));
    }
    let limit = params.loki_limit()?;
    let start = params.loki_time("start", state.now_ns().saturating_sub(DEFAULT_QUERY_RANGE_NS))?;
    let request = Tail { query, limit, start, delay: Duration::from_secs(delay_for) };
    // Subscribe before answering, so that no push after the upgrade is missed.
    let pushes = state.subscribe_to_pushes();
    Ok(upgrade.on_upgrade(move |socket| run_tail(state, request, pushes, socket)).into_response())
}

async fn run_tail(
    state: Arc<AppState>,
    request: Tail,
    mut pushes: tokio::sync::broadcast::Receiver<Arc<Vec<PushStream>>>,
    mut socket: WebSocket,
) {
    let Some(service) = state.logs() else { return };
    let Tail { query, limit, start, delay } = request;
    // Held back like every push, so entries pushed meanwhile are in it.
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let history_query = query.clone();
    let history_service = service.clone();
    let end = state.now_ns();
    let history = tokio::task::spawn_blocking(move || {
        history_service.engine.range_query(
            history_service.store.as_ref(),
            &history_query,
            start,
            end,
            default_step_ns(start, end),
            limit,
            Direction::Forward,
        )
    })
    .await;
    // Pushes published after the subscription may already be in the history:
    // what it sent is not sent again.
    let mut sent_in_history = std::collections::HashSet::new();
    let first_frame = match history {
        Ok(Ok(QueryValue::Streams(streams))) if streams.iter().any(|stream| !stream.entries.is_empty()) => {
            for stream in &streams {
                for entry in &stream.entries {
                    sent_in_history.insert(entry_key(&stream.labels, entry.timestamp_ns, &entry.line));
                }
            }
            Some(tail_frame(&streams, &[]))
        }
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "tail history query failed");
            None
        }
        _ => None,
    };
    if let Some(frame) = first_frame
        && socket.send(Message::Text(frame.into())).await.is_err()
    {
        return;
    }
    // Read by every push's frame, written never again.
    let sent_in_history = Arc::new(sent_in_history);
    loop {
        tokio::select! {
            message = socket.recv() => match message {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
            pushed = pushes.recv() => {
                let batch = match pushed {
                    Ok(batch) => batch,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "a live tail fell behind and missed pushes");
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                let frame = {
                    let service = service.clone();
                    let query = query.clone();
                    let seen = sent_in_history.clone();
                    tokio::task::spawn_blocking(move || tail_batch(&service, &query, &batch, limit, &seen)).await
                };
                let Ok(Some(frame)) = frame else { continue };
                if socket.send(Message::Text(frame.into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// What identifies an entry a tail sent: its stream, time and line.
fn entry_key(labels: &Labels, timestamp_ns: i64, line: &str) -> (String, i64, String) {
    (labels.to_string(), timestamp_ns, line.to_owned())
}

/// The frame for one push: the entries the query keeps and the history did
/// not send already (`seen`), at most `limit`, the rest reported dropped.
fn tail_batch(
    service: &crate::LogService,
    query: &str,
    batch: &[PushStream],
    limit: usize,
    seen: &std::collections::HashSet<(String, i64, String)>,
) -> Option<String> {
    let source = Pushed(batch);
    let (low, high) = batch
        .iter()
        .flat_map(|stream| stream.entries.iter().map(|entry| entry.timestamp_ns))
        .fold((i64::MAX, i64::MIN), |(low, high), time| (low.min(time), high.max(time)));
    if low > high {
        return None;
    }
    let total: usize = batch.iter().map(|stream| stream.entries.len()).sum();
    let end = high.saturating_add(1);
    let value =
        service.engine.range_query(&source, query, low, end, default_step_ns(low, end), total, Direction::Forward);
    let streams = match value {
        Ok(QueryValue::Streams(streams)) => streams,
        Ok(_) => return None,
        Err(error) => {
            tracing::warn!(error = %error, "tail query failed on pushed entries");
            return None;
        }
    };
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    let mut sent = 0;
    for mut stream in streams {
        if !seen.is_empty() {
            let labels = &stream.labels;
            stream.entries.retain(|entry| !seen.contains(&entry_key(labels, entry.timestamp_ns, &entry.line)));
        }
        let room = limit.saturating_sub(sent);
        if stream.entries.len() > room {
            dropped.extend(stream.entries.drain(room..).map(|entry| (stream.labels.clone(), entry.timestamp_ns)));
        }
        sent += stream.entries.len();
        kept.push(stream);
    }
    (sent > 0 || !dropped.is_empty()).then(|| tail_frame(&kept, &dropped))
}
