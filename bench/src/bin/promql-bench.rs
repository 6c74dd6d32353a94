//! Runs the same PromQL queries against alertbook and Prometheus (and, when
//! given, VictoriaMetrics) over the same data and prints per-query latency
//! (median and p90) for each, the ratios Prometheus/alertbook and
//! VictoriaMetrics/alertbook (above 1 means alertbook is faster), the median of
//! the ratios and each process's resident memory.
//!
//! Each query is sent once to each server as a warm-up, then `--repeat` times to
//! each, rotating which server goes first. Every answer must have status
//! `success`; a different number of result series between alertbook and
//! Prometheus is reported as a mismatch. VictoriaMetrics answers in MetricsQL,
//! which differs from PromQL in places (`rate` extrapolation, lookback, `__name__`
//! handling), so its latency is compared, never its answers.
//! Queries are Busflow's: selectors, regex matchers, `rate`, `sum by`,
//! `histogram_quantile`, `topk`, subqueries and the A1/A2 alert expressions,
//! as instant queries at the end of the data and range queries over all of it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use alertbook_bench::{DatasetMetadata, VictoriaMetricsArguments};
use anyhow::{Context as _, bail};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Compare PromQL latency of alertbook and Prometheus")]
struct Arguments {
    /// Base URL of alertbook, e.g. http://127.0.0.1:9099 (omit to measure Prometheus alone).
    #[arg(long)]
    alertbook: Option<String>,
    /// Base URL of Prometheus, e.g. http://127.0.0.1:9090.
    #[arg(long)]
    prometheus: String,
    /// The dataset file; its `.meta.json` gives the time range.
    #[arg(long)]
    dataset: PathBuf,
    /// Timed runs per query and server.
    #[arg(long, default_value_t = 10)]
    repeat: usize,
    /// Process id of alertbook, to report its resident memory.
    #[arg(long)]
    alertbook_pid: Option<u32>,
    /// Process id of Prometheus, to report its resident memory.
    #[arg(long)]
    prometheus_pid: Option<u32>,
    #[command(flatten)]
    victoriametrics: VictoriaMetricsArguments,
    /// Step of range queries, seconds.
    #[arg(long, default_value_t = 60)]
    range_step: i64,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Instant,
    Range,
}

struct Query {
    name: &'static str,
    kind: Kind,
    expression: &'static str,
}

const A1_ERROR_RATIO: &str = "sum by (http_route) (rate(http_server_request_duration_seconds_count{service_name=\"busflow_api\",http_response_status_code=~\"5..\"}[5m])) / sum by (http_route) (rate(http_server_request_duration_seconds_count{service_name=\"busflow_api\"}[5m])) > 0.05";
const A2_LATENCY: &str = "histogram_quantile(0.99, sum by (le, http_route) (rate(http_server_request_duration_seconds_bucket{service_name=\"busflow_api\"}[5m]))) > 1";

const QUERIES: &[Query] = &[
    Query {
        name: "selector",
        kind: Kind::Instant,
        expression: "http_server_request_duration_seconds_count{http_route=\"/api/bookings\"}",
    },
    Query {
        name: "regex selector",
        kind: Kind::Instant,
        expression: "http_server_request_duration_seconds_count{http_route=~\"/api/(bookings|trips).*\",http_response_status_code=~\"5..\"}",
    },
    Query {
        name: "sum rate",
        kind: Kind::Instant,
        expression: "sum(rate(http_server_request_duration_seconds_count[5m]))",
    },
    Query { name: "A1 error ratio", kind: Kind::Instant, expression: A1_ERROR_RATIO },
    Query {
        name: "A1 per tenant",
        kind: Kind::Instant,
        expression: "sum by (tenant_id) (rate(http_server_request_duration_seconds_count{http_route=\"/api/bookings\",http_response_status_code=~\"5..\"}[5m])) / sum by (tenant_id) (rate(http_server_request_duration_seconds_count{http_route=\"/api/bookings\"}[5m])) > 0.05",
    },
    Query { name: "A2 p99 latency", kind: Kind::Instant, expression: A2_LATENCY },
    Query {
        name: "topk tenants",
        kind: Kind::Instant,
        expression: "topk(10, sum by (tenant_id) (rate(http_server_request_duration_seconds_count[5m])))",
    },
    Query {
        name: "subquery max",
        kind: Kind::Instant,
        expression: "max_over_time(sum(rate(traefik_service_requests_total{code=~\"5..\"}[5m]))[30m:1m])",
    },
    Query {
        name: "increase 1h",
        kind: Kind::Instant,
        expression: "sum by (code) (increase(traefik_service_requests_total[1h]))",
    },
    Query {
        name: "count +Inf buckets",
        kind: Kind::Instant,
        expression: "count by (http_response_status_code) (http_server_request_duration_seconds_bucket{le=\"+Inf\"})",
    },
    Query {
        name: "range rate by route",
        kind: Kind::Range,
        expression: "sum by (http_route) (rate(http_server_request_duration_seconds_count[5m]))",
    },
    Query { name: "range A1", kind: Kind::Range, expression: A1_ERROR_RATIO },
    Query {
        name: "range p95 bookings",
        kind: Kind::Range,
        expression: "histogram_quantile(0.95, sum by (le) (rate(http_server_request_duration_seconds_bucket{http_route=\"/api/bookings\"}[5m])))",
    },
    Query {
        name: "range topk 5xx",
        kind: Kind::Range,
        expression: "topk(5, sum by (tenant_id) (rate(http_server_request_duration_seconds_count{http_response_status_code=~\"5..\"}[5m])))",
    },
    Query {
        name: "range traefik",
        kind: Kind::Range,
        expression: "sum by (service) (rate(traefik_service_requests_total[5m]))",
    },
    Query {
        name: "range gauges",
        kind: Kind::Range,
        expression: "avg(busflow_active_bookings) + sum(process_resident_memory_bytes) / 1e9 + min(up)",
    },
];

/// One server under test.
struct Target {
    name: &'static str,
    base_url: String,
    agent: ureq::Agent,
}

/// The outcome of one request.
struct Answer {
    latency: Duration,
    series: usize,
}

impl Target {
    fn new(name: &'static str, base_url: &str, timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(false).build();
        Self { name, base_url: base_url.trim_end_matches('/').to_owned(), agent: config.into() }
    }

    fn run(&self, query: &Query, metadata: &DatasetMetadata, range_step: i64) -> anyhow::Result<Answer> {
        let (path, parameters) = match query.kind {
            Kind::Instant => {
                ("/api/v1/query", vec![("query", query.expression.to_owned()), ("time", metadata.end.to_string())])
            }
            Kind::Range => (
                "/api/v1/query_range",
                vec![
                    ("query", query.expression.to_owned()),
                    ("start", metadata.start.to_string()),
                    ("end", metadata.end.to_string()),
                    ("step", range_step.to_string()),
                ],
            ),
        };
        let url = format!("{}{path}", self.base_url);
        let begun = Instant::now();
        let mut response = self
            .agent
            .post(&url)
            .send_form(parameters.iter().map(|(key, value)| (*key, value.as_str())))
            .with_context(|| format!("{} request failed", self.name))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()
            .with_context(|| format!("{} response unreadable", self.name))?;
        let latency = begun.elapsed();
        let json: serde_json::Value = serde_json::from_str(&body)
            .with_context(|| format!("{} answered HTTP {status} with non-JSON", self.name))?;
        if json["status"] != "success" {
            bail!(
                "{} answered HTTP {status}: {} {}",
                self.name,
                json["errorType"].as_str().unwrap_or(""),
                json["error"].as_str().unwrap_or("")
            );
        }
        let series = match &json["data"]["result"] {
            serde_json::Value::Array(result) => result.len(),
            _ => 1,
        };
        Ok(Answer { latency, series })
    }
}

/// Latencies of one query on one server.
#[derive(Default)]
struct Measurements {
    latencies: Vec<Duration>,
    series: Option<usize>,
    error: Option<String>,
}

impl Measurements {
    fn record(&mut self, result: anyhow::Result<Answer>, timed: bool) {
        match result {
            Ok(answer) => {
                self.series = Some(answer.series);
                if timed {
                    self.latencies.push(answer.latency);
                }
            }
            Err(error) => {
                self.error.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }

    fn quantile(&self, quantile: f64) -> Option<Duration> {
        if self.latencies.is_empty() || self.error.is_some() {
            return None;
        }
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let index = ((sorted.len() - 1) as f64 * quantile).round() as usize;
        Some(sorted[index])
    }
}

fn milliseconds(duration: Option<Duration>) -> String {
    duration.map_or_else(|| "-".to_owned(), |duration| format!("{:.2}", duration.as_secs_f64() * 1000.0))
}

fn resident_memory(pid: Option<u32>) -> String {
    let Some(pid) = pid else {
        return "-".to_owned();
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or_else(|| "unknown".to_owned(), |kilobytes| format!("{:.0} MiB", kilobytes / 1024.0))
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len().is_multiple_of(2) { (values[middle - 1] + values[middle]) / 2.0 } else { values[middle] })
}

/// A ratio of medians, `other / alertbook` (above 1: alertbook faster).
fn ratio_of_medians(alertbook: &Measurements, other: &Measurements, ratios: &mut Vec<f64>) -> String {
    match (alertbook.quantile(0.5), other.quantile(0.5)) {
        (Some(ours), Some(theirs)) if ours > Duration::ZERO => {
            let ratio = theirs.as_secs_f64() / ours.as_secs_f64();
            ratios.push(ratio);
            format!("{ratio:.2}")
        }
        _ => "-".to_owned(),
    }
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let metadata = DatasetMetadata::read(&arguments.dataset)?;
    let timeout = Duration::from_secs(arguments.timeout);
    // In the order of the table: alertbook, Prometheus, VictoriaMetrics.
    let mut targets = Vec::new();
    if let Some(url) = &arguments.alertbook {
        targets.push(Target::new("alertbook", url, timeout));
    }
    targets.push(Target::new("prometheus", &arguments.prometheus, timeout));
    if let Some(url) = &arguments.victoriametrics.victoriametrics {
        targets.push(Target::new("victoriametrics", url, timeout));
    }
    let index_of = |name: &str| targets.iter().position(|target| target.name == name);
    let (alertbook, prometheus, victoriametrics) =
        (index_of("alertbook"), index_of("prometheus"), index_of("victoriametrics"));
    println!(
        "dataset: {} series, {} samples, {} .. {} (step {} s); {} timed runs per query and server",
        metadata.series, metadata.samples, metadata.start, metadata.end, metadata.step, arguments.repeat
    );

    let mut prometheus_ratios = Vec::new();
    let mut victoriametrics_ratios = Vec::new();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for query in QUERIES {
        let mut measured: Vec<Measurements> = targets.iter().map(|_| Measurements::default()).collect();
        for round in 0..=arguments.repeat {
            let timed = round > 0;
            // Each round starts with the next server, so none always runs first.
            for offset in 0..targets.len() {
                let index = (round + offset) % targets.len();
                measured[index].record(targets[index].run(query, &metadata, arguments.range_step), timed);
            }
            if measured.iter().all(|measurements| measurements.error.is_some()) {
                break;
            }
        }
        let on = |index: Option<usize>| index.map(|index| &measured[index]);
        if let (Some(series_alertbook), Some(series_prometheus)) =
            (on(alertbook).and_then(|m| m.series), on(prometheus).and_then(|m| m.series))
            && series_alertbook != series_prometheus
        {
            notes.push(format!(
                "warning: {}: series count mismatch, alertbook {series_alertbook}, prometheus {series_prometheus}",
                query.name
            ));
        }
        if let (Some(series_prometheus), Some(series_victoriametrics)) =
            (on(prometheus).and_then(|m| m.series), on(victoriametrics).and_then(|m| m.series))
            && series_prometheus != series_victoriametrics
        {
            notes.push(format!(
                "note: {}: victoriametrics answered {series_victoriametrics} series, prometheus {series_prometheus} \
                 (MetricsQL differs from PromQL; latency only)",
                query.name
            ));
        }
        for (target, measurements) in targets.iter().zip(&measured) {
            if let Some(error) = &measurements.error {
                notes.push(format!("error: {}: {}: {error}", query.name, target.name));
            }
        }
        let empty = Measurements::default();
        let (ours, theirs, vm) =
            (on(alertbook).unwrap_or(&empty), on(prometheus).unwrap_or(&empty), on(victoriametrics).unwrap_or(&empty));
        let mut row = vec![
            query.name.to_owned(),
            match query.kind {
                Kind::Instant => "instant".to_owned(),
                Kind::Range => "range".to_owned(),
            },
            theirs.series.or(ours.series).map_or_else(|| "-".to_owned(), |series| series.to_string()),
            milliseconds(ours.quantile(0.5)),
            milliseconds(ours.quantile(0.9)),
            milliseconds(theirs.quantile(0.5)),
            milliseconds(theirs.quantile(0.9)),
        ];
        if victoriametrics.is_some() {
            row.push(milliseconds(vm.quantile(0.5)));
            row.push(milliseconds(vm.quantile(0.9)));
        }
        row.push(ratio_of_medians(ours, theirs, &mut prometheus_ratios));
        if victoriametrics.is_some() {
            row.push(ratio_of_medians(ours, vm, &mut victoriametrics_ratios));
        }
        rows.push(row);
    }

    let mut header = vec![
        "query",
        "kind",
        "series",
        "alertbook p50 ms",
        "alertbook p90 ms",
        "prometheus p50 ms",
        "prometheus p90 ms",
    ];
    if victoriametrics.is_some() {
        header.extend(["victoriametrics p50 ms", "victoriametrics p90 ms"]);
    }
    header.push("prom/alertbook");
    if victoriametrics.is_some() {
        header.push("vm/alertbook");
    }
    let mut widths: Vec<usize> = header.iter().map(|title| title.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let print_row = |cells: &[&str]| {
        let line: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(
                |(column, (cell, width))| {
                    if column < 2 { format!("{cell:<width$}") } else { format!("{cell:>width$}") }
                },
            )
            .collect();
        println!("{}", line.join("  "));
    };
    println!();
    print_row(&header);
    for row in &rows {
        print_row(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    println!();
    for (peer, ratios) in [("prometheus", &mut prometheus_ratios), ("victoriametrics", &mut victoriametrics_ratios)] {
        if peer == "victoriametrics" && victoriametrics.is_none() {
            continue;
        }
        match median(ratios) {
            Some(ratio) => println!(
                "median ratio {peer}/alertbook over {} queries: {ratio:.2} (above 1: alertbook faster)",
                ratios.len()
            ),
            None => println!("median ratio {peer}/alertbook: - (no query measured on both)"),
        }
    }
    let mut memory = format!(
        "resident memory: alertbook {}, prometheus {}",
        resident_memory(arguments.alertbook_pid),
        resident_memory(arguments.prometheus_pid)
    );
    if victoriametrics.is_some() {
        memory
            .push_str(&format!(", victoriametrics {}", resident_memory(arguments.victoriametrics.victoriametrics_pid)));
    }
    println!("{memory}");
    for note in &notes {
        println!("{note}");
    }
    Ok(())
}
