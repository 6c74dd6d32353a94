//! alertbook's own metrics and `GET /metrics`, in OpenMetrics text.
//!
//! Key type: [`Metrics`], the process's `prometheus-client` registry and the
//! handles handlers increment: remote-write requests and samples (received,
//! rejected by reason), samples appended by ingest path, queries and their
//! duration. Store gauges (`alertbook_tsdb_head_series`, memory bytes, memory
//! per series, WAL size) are read from the store when `/metrics` is served.
//! Other crates register their own metrics through [`Metrics::register`]
//! (the scraper does).
//!
//! It only counts and encodes; what is counted is decided by the handlers.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::AppState;

/// The content type of `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    pub code: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// `instant` or `range`.
    pub kind: String,
    /// `success` or `error`.
    pub outcome: String,
}

fn query_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 18))
}

/// The process's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    pub remote_write_requests: Family<CodeLabels, Counter>,
    pub remote_write_samples_received: Counter,
    pub remote_write_samples_rejected: Family<ReasonLabels, Counter>,
    pub ingest_samples_appended: Family<SourceLabels, Counter>,
    pub queries: Family<QueryLabels, Counter>,
    pub query_duration: Family<QueryLabels, Histogram, fn() -> Histogram>,
    head_series: Gauge,
    memory_bytes: Gauge,
    memory_bytes_per_series: Gauge<f64, AtomicU64>,
    wal_bytes: Gauge,
    pub log_push_requests: Family<CodeLabels, Counter>,
    pub log_push_duration: Histogram,
    pub log_entries_appended: Counter,
    pub log_bytes_appended: Counter,
    pub log_entries_rejected: Counter,
    pub pii_redacted_entries: Counter,
    log_streams: Gauge,
    log_entries: Gauge,
    log_memory_bytes: Gauge,
    log_disk_bytes: Gauge,
    log_wal_bytes: Gauge,
    /// 1 when the last configuration reload succeeded (the start counts as one), else 0.
    pub config_last_reload_successful: Gauge,
    /// When the configuration was last loaded successfully, in Unix seconds.
    pub config_last_reload_success_timestamp: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let metrics = Self {
            registry: Mutex::new(Registry::default()),
            remote_write_requests: Family::default(),
            remote_write_samples_received: Counter::default(),
            remote_write_samples_rejected: Family::default(),
            ingest_samples_appended: Family::default(),
            queries: Family::default(),
            query_duration: Family::new_with_constructor(query_histogram),
            head_series: Gauge::default(),
            memory_bytes: Gauge::default(),
            memory_bytes_per_series: Gauge::default(),
            wal_bytes: Gauge::default(),
            log_push_requests: Family::default(),
            log_push_duration: query_histogram(),
            log_entries_appended: Counter::default(),
            log_bytes_appended: Counter::default(),
            log_entries_rejected: Counter::default(),
            pii_redacted_entries: Counter::default(),
            log_streams: Gauge::default(),
            log_entries: Gauge::default(),
            log_memory_bytes: Gauge::default(),
            log_disk_bytes: Gauge::default(),
            log_wal_bytes: Gauge::default(),
            config_last_reload_successful: Gauge::default(),
            config_last_reload_success_timestamp: Gauge::default(),
        };
        registry.register(
            "alertbook_remote_write_requests",
            "Remote-write requests received, by HTTP status code answered",
            metrics.remote_write_requests.clone(),
        );
        registry.register(
            "alertbook_remote_write_samples_received",
            "Samples received through remote write (before the store accepted or refused them)",
            metrics.remote_write_samples_received.clone(),
        );
        registry.register(
            "alertbook_remote_write_samples_rejected",
            "Remote-written samples refused, by reason (out_of_order, duplicate, invalid, series_limit, histogram)",
            metrics.remote_write_samples_rejected.clone(),
        );
        registry.register(
            "alertbook_ingest_samples_appended",
            "Samples appended to the store, by ingest path (remote_write, scrape)",
            metrics.ingest_samples_appended.clone(),
        );
        registry.register(
            "alertbook_tsdb_head_series",
            "Active series in the in-memory store",
            metrics.head_series.clone(),
        );
        registry.register(
            "alertbook_tsdb_memory_bytes",
            "Approximate bytes the in-memory store holds",
            metrics.memory_bytes.clone(),
        );
        registry.register(
            "alertbook_tsdb_memory_bytes_per_series",
            "Approximate bytes of the in-memory store per active series",
            metrics.memory_bytes_per_series.clone(),
        );
        registry.register(
            "alertbook_wal_size_bytes",
            "Bytes of the write-ahead log on disk",
            metrics.wal_bytes.clone(),
        );
        registry.register(
            "alertbook_queries",
            "PromQL and LogQL queries served through the HTTP APIs, by kind and outcome",
            metrics.queries.clone(),
        );
        registry.register(
            "alertbook_query_duration_seconds",
            "Time queries took, by kind and outcome",
            metrics.query_duration.clone(),
        );
        registry.register(
            "alertbook_loki_push_requests",
            "Loki push requests received, by HTTP status code answered",
            metrics.log_push_requests.clone(),
        );
        registry.register(
            "alertbook_loki_push_duration_seconds",
            "Time Loki push requests took (decode, redaction, write-ahead log)",
            metrics.log_push_duration.clone(),
        );
        registry.register(
            "alertbook_log_entries_appended",
            "Log entries appended to the log store",
            metrics.log_entries_appended.clone(),
        );
        registry.register(
            "alertbook_log_bytes_appended",
            "Bytes of log lines appended to the log store",
            metrics.log_bytes_appended.clone(),
        );
        registry.register(
            "alertbook_log_entries_rejected",
            "Pushed log entries refused (too old, too new, too long, stream limit)",
            metrics.log_entries_rejected.clone(),
        );
        registry.register(
            "alertbook_pii_redacted_entries",
            "Log entries in which redaction found personal data (counted before exclusions)",
            metrics.pii_redacted_entries.clone(),
        );
        registry.register(
            "alertbook_config_last_reload_successful",
            "Whether the last configuration reload attempt was successful (Prometheus's prometheus_config_last_reload_successful)",
            metrics.config_last_reload_successful.clone(),
        );
        registry.register(
            "alertbook_config_last_reload_success_timestamp_seconds",
            "Timestamp of the last successful configuration reload",
            metrics.config_last_reload_success_timestamp.clone(),
        );
        registry.register("alertbook_log_streams", "Streams in the log store", metrics.log_streams.clone());
        registry.register("alertbook_log_entries", "Entries in the log store", metrics.log_entries.clone());
        registry.register(
            "alertbook_log_memory_bytes",
            "Approximate bytes the log store holds in memory",
            metrics.log_memory_bytes.clone(),
        );
        registry.register(
            "alertbook_log_disk_bytes",
            "Bytes of the log store's block files",
            metrics.log_disk_bytes.clone(),
        );
        registry.register(
            "alertbook_log_wal_size_bytes",
            "Bytes of the log store's write-ahead log",
            metrics.log_wal_bytes.clone(),
        );
        *metrics.registry.lock().unwrap_or_else(PoisonError::into_inner) = registry;
        metrics
    }

    /// Lets another component register its metrics.
    pub fn register<T>(&self, register: impl FnOnce(&mut Registry) -> T) -> T {
        register(&mut self.registry.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The counter of samples appended by ingest path `source`.
    pub fn appended(&self, source: &str) -> Counter {
        self.ingest_samples_appended.get_or_create(&SourceLabels { source: source.to_owned() }).clone()
    }

    /// Records a served query.
    pub fn observe_query(&self, kind: &str, success: bool, seconds: f64) {
        let labels =
            QueryLabels { kind: kind.to_owned(), outcome: if success { "success" } else { "error" }.to_owned() };
        self.queries.get_or_create(&labels).inc();
        self.query_duration.get_or_create(&labels).observe(seconds);
    }

    /// Records what a remote-write request did.
    pub fn observe_remote_write(
        &self,
        status: StatusCode,
        received: usize,
        outcome: Option<&ingest::durable::AppendOutcome>,
    ) {
        self.remote_write_requests.get_or_create(&CodeLabels { code: status.as_u16().to_string() }).inc();
        self.remote_write_samples_received.inc_by(received as u64);
        let Some(outcome) = outcome else { return };
        self.appended("remote_write").inc_by(outcome.samples_appended as u64);
        for (reason, count) in [
            ("out_of_order", outcome.out_of_order),
            ("duplicate", outcome.duplicates),
            ("invalid", outcome.invalid_series),
            ("series_limit", outcome.series_limited),
            ("histogram", outcome.histograms_refused),
        ] {
            if count > 0 {
                self.remote_write_samples_rejected
                    .get_or_create(&ReasonLabels { reason: reason.to_owned() })
                    .inc_by(count as u64);
            }
        }
    }

    /// Records what a Loki push request appended.
    pub fn observe_log_push(&self, entries: usize, bytes: u64, rejected: usize) {
        self.log_entries_appended.inc_by(entries as u64);
        self.log_bytes_appended.inc_by(bytes);
        self.log_entries_rejected.inc_by(rejected as u64);
    }

    /// Records the entries of a push in which redaction found personal data.
    pub fn observe_pii_matches(&self, entries: usize) {
        self.pii_redacted_entries.inc_by(entries as u64);
    }

    /// Records a Loki push request's answer and duration.
    pub fn observe_log_push_request(&self, status: StatusCode, seconds: f64) {
        self.log_push_requests.get_or_create(&CodeLabels { code: status.as_u16().to_string() }).inc();
        self.log_push_duration.observe(seconds);
    }

    /// The OpenMetrics text of every metric, store gauges read now.
    pub fn encode(
        &self,
        store: &tsdb::MemStore,
        durable: &ingest::durable::DurableStore,
        logs: Option<&logstore::LogStore>,
    ) -> Result<String, std::fmt::Error> {
        if let Some(logs) = logs {
            let stats = logs.stats();
            let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
            self.log_streams.set(gauge(stats.streams as u64));
            self.log_entries.set(gauge(stats.entries));
            self.log_memory_bytes.set(gauge(stats.memory_bytes));
            self.log_disk_bytes.set(gauge(stats.disk_bytes));
            self.log_wal_bytes.set(gauge(stats.wal_bytes));
        }
        let series = store.series_count();
        let memory = store.memory_bytes();
        self.head_series.set(i64::try_from(series).unwrap_or(i64::MAX));
        self.memory_bytes.set(i64::try_from(memory).unwrap_or(i64::MAX));
        self.memory_bytes_per_series.set(if series == 0 { 0.0 } else { memory as f64 / series as f64 });
        self.wal_bytes.set(i64::try_from(durable.wal_size_bytes()).unwrap_or(i64::MAX));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(
            &mut text,
            &self.registry.lock().unwrap_or_else(PoisonError::into_inner),
        )?;
        Ok(text)
    }
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/metrics", get(metrics))
}

/// A label value in OpenMetrics text: backslash, quote and newline escaped.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Rule evaluation metrics, read from the rule manager's published statuses:
/// per group the last evaluation's duration and the missed iterations, per rule
/// its health (1 ok, 0 failing) and whether its last evaluation failed.
fn rule_metrics(manager: &rules::Manager) -> String {
    use std::fmt::Write as _;
    let statuses = manager.statuses();
    let mut out = String::new();
    out.push_str("# TYPE alertbook_rule_group_last_duration_seconds gauge\n");
    out.push_str("# HELP alertbook_rule_group_last_duration_seconds How long the group's last evaluation took.\n");
    for group in statuses.iter().filter(|group| group.evaluated_here) {
        let _ = writeln!(
            out,
            "alertbook_rule_group_last_duration_seconds{{rule_group=\"{}\"}} {}",
            escape_label(&group.name),
            group.evaluation_duration.as_secs_f64()
        );
    }
    out.push_str("# TYPE alertbook_rule_group_iterations_missed counter\n");
    out.push_str(
        "# HELP alertbook_rule_group_iterations_missed Evaluations skipped because the previous one ran late.\n",
    );
    for group in statuses.iter().filter(|group| group.evaluated_here) {
        let _ = writeln!(
            out,
            "alertbook_rule_group_iterations_missed_total{{rule_group=\"{}\"}} {}",
            escape_label(&group.name),
            group.missed_iterations
        );
    }
    out.push_str("# TYPE alertbook_rule_evaluation_failing gauge\n");
    out.push_str(
        "# HELP alertbook_rule_evaluation_failing 1 when the rule's last evaluation failed (see /api/v1/rules).\n",
    );
    for group in statuses.iter().filter(|group| group.evaluated_here) {
        for rule in &group.rules {
            let _ = writeln!(
                out,
                "alertbook_rule_evaluation_failing{{rule_group=\"{}\",rule=\"{}\"}} {}",
                escape_label(&group.name),
                escape_label(&rule.name),
                u8::from(rule.last_error.is_some())
            );
        }
    }
    out
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let work = tokio::task::spawn_blocking(move || {
        let logs = state.logs();
        let text = state.metrics.encode(&state.store, &state.durable, logs.as_ref().map(|logs| logs.store.as_ref()))?;
        // Rule metrics go before the closing `# EOF`.
        let body = text.strip_suffix("# EOF\n").unwrap_or(&text);
        Ok::<_, std::fmt::Error>(format!("{body}{}# EOF\n", rule_metrics(&state.rules())))
    })
    .await;
    match work {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Ok(Err(error)) => {
            tracing::error!(error = %error, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
        Err(error) => {
            tracing::error!(error = %error, "metrics task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}
