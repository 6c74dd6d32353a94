//! Rule evaluation cost, alertbook against Prometheus, on the same Busflow data.
//!
//! `rule-bench generate --rules N --out FILE` writes a Prometheus rule file of
//! N alerting and recording rules over the dataset's metrics (groups of 20;
//! selectors by route, method, status and tenant, regex matchers, `rate`,
//! `increase`, `sum by`, `histogram_quantile`, ratios and comparisons).
//!
//! `rule-bench measure --rules FILE --dataset DATA [--prometheus URL]` loads
//! the dataset into an in-memory store (the backfill `alertbook run
//! --backfill` uses), builds alertbook's rule manager over it and times
//! `Manager::evaluate_group` for every group at the dataset's last timestamp:
//! the full evaluation (queries, alert state, recorded series and `ALERTS`
//! written to the store) and, separately, the time spent in queries. With
//! `--prometheus`, every rule's expression is also sent to Prometheus as an
//! instant query at the same timestamp with `stats=all`, and Prometheus's own
//! `execTotalTime` is summed (its engine's time, without HTTP and JSON);
//! the HTTP wall time is summed too. Prometheus's rule manager evaluates at
//! the wall clock, which lies after the data, so the same work is asked
//! through the query API instead; see bench/README.md.
//!
//! CPU is measured for every side from `/proc`: this process's user and
//! system time around alertbook's evaluations, and, given `--prometheus-pid`
//! (and `--victoriametrics-pid`), the server process's around its queries.
//! With `--victoriametrics`, the same expressions go to VictoriaMetrics's query
//! API at the same timestamp (what vmalert asks of it); its answers are not
//! compared (MetricsQL differs from PromQL in places).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alertbook_bench::{DatasetMetadata, Random, VictoriaMetricsArguments};
use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(about = "Rule evaluation cost of alertbook and Prometheus on the same data")]
struct Arguments {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a rule file of realistic Busflow alerting and recording rules.
    Generate {
        /// Number of rules.
        #[arg(long)]
        rules: usize,
        /// Tenants of the dataset (100 × its series scale).
        #[arg(long, default_value_t = 100)]
        tenants: usize,
        /// Rules per group.
        #[arg(long, default_value_t = 20)]
        group_size: usize,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Time one full evaluation of every group, in alertbook and (optionally) Prometheus.
    Measure {
        #[arg(long)]
        rules: PathBuf,
        /// The dataset `gen-busflow` wrote (its `.meta.json` gives the evaluation time).
        #[arg(long)]
        dataset: PathBuf,
        /// A Prometheus with the same data imported, e.g. http://127.0.0.1:9090.
        #[arg(long)]
        prometheus: Option<String>,
        /// The Prometheus process, for its CPU seconds (from /proc).
        #[arg(long)]
        prometheus_pid: Option<u32>,
        #[command(flatten)]
        victoriametrics: VictoriaMetricsArguments,
        /// Full evaluations per engine; the median is reported.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
    },
}

fn main() -> anyhow::Result<()> {
    match Arguments::parse().command {
        Command::Generate { rules, tenants, group_size, out, seed } => generate(rules, tenants, group_size, &out, seed),
        Command::Measure { rules, dataset, prometheus, prometheus_pid, victoriametrics, repeat } => {
            let peers = Peers {
                prometheus: prometheus.map(|url| (url, prometheus_pid)),
                victoriametrics: victoriametrics.victoriametrics.map(|url| (url, victoriametrics.victoriametrics_pid)),
            };
            measure(&rules, &dataset, &peers, repeat.max(1))
        }
    }
}

const ROUTES: [(&str, &str); 10] = [
    ("/api/bookings", "POST"),
    ("/api/bookings/{id}", "PUT"),
    ("/api/trips", "GET"),
    ("/api/trips/{id}", "GET"),
    ("/api/stops", "GET"),
    ("/api/payments", "POST"),
    ("/api/tickets/{id}", "GET"),
    ("/api/users/me", "GET"),
    ("/api/search", "GET"),
    ("/healthz", "GET"),
];
const SERVICES: [&str; 6] = [
    "busflow-api@kubernetes",
    "busflow-web@kubernetes",
    "busflow-payments@kubernetes",
    "busflow-search@kubernetes",
    "grafana@kubernetes",
    "keycloak@kubernetes",
];
const WINDOWS: [&str; 3] = ["1m", "5m", "10m"];
const FAMILY: &str = "http_server_request_duration_seconds";

/// One rule's kind, name and expression; `index` makes names unique.
fn rule(random: &mut Random, index: usize, tenants: usize) -> (bool, String, String) {
    let pick = |random: &mut Random, length: usize| (random.next_u64() % length as u64) as usize;
    let (route, method) = ROUTES[pick(random, ROUTES.len())];
    let tenant = format!("tenant-{:03}", pick(random, tenants));
    let window = WINDOWS[pick(random, WINDOWS.len())];
    let service = SERVICES[pick(random, SERVICES.len())];
    let threshold = (random.range(0.01, 0.2) * 1000.0).round() / 1000.0;
    let base = format!("{FAMILY}_count{{service_name=\"busflow_api\",http_route=\"{route}\"");
    match index % 10 {
        0 => (
            false,
            format!("route:http_requests:rate{window}_{index}"),
            format!("sum by (http_route, http_request_method) (rate({base}}}[{window}]))"),
        ),
        1 => (
            true,
            format!("RouteErrorRatioHigh{index}"),
            format!(
                "sum by (tenant_id) (rate({base},http_response_status_code=~\"5..\"}}[{window}])) \
                 / sum by (tenant_id) (rate({base}}}[{window}])) > {threshold}"
            ),
        ),
        2 => (
            true,
            format!("TenantErrorRatioHigh{index}"),
            format!(
                "sum(rate({base},tenant_id=\"{tenant}\",http_response_status_code=~\"5..\"}}[{window}])) \
                 / sum(rate({base},tenant_id=\"{tenant}\"}}[{window}])) > {threshold}"
            ),
        ),
        3 => (
            true,
            format!("RouteLatencyP99High{index}"),
            format!(
                "histogram_quantile(0.99, sum by (le) (rate({FAMILY}_bucket{{http_route=\"{route}\",\
                 http_request_method=\"{method}\"}}[{window}]))) > {}",
                threshold * 10.0
            ),
        ),
        4 => (
            false,
            format!("tenant:http_latency_seconds:p95_{index}"),
            format!(
                "histogram_quantile(0.95, sum by (le, http_route) (rate({FAMILY}_bucket{{tenant_id=\"{tenant}\"}}[{window}])))"
            ),
        ),
        5 => (
            true,
            format!("TraefikErrorsHigh{index}"),
            format!(
                "sum by (service) (rate(traefik_service_requests_total{{service=\"{service}\",code=~\"5..\"}}[{window}])) \
                 > {threshold}"
            ),
        ),
        6 => (
            true,
            format!("Unavailable503Burst{index}"),
            format!(
                "sum by (tenant_id) (increase({base},http_response_status_code=\"503\",tenant_id=~\"tenant-0[0-4].*\"}}[{window}])) > {}",
                (threshold * 100.0).round()
            ),
        ),
        7 => (
            true,
            format!("SlowMeanLatency{index}"),
            format!(
                "sum by (http_route) (rate({FAMILY}_sum{{http_route=\"{route}\",tenant_id=\"{tenant}\"}}[{window}])) \
                 / sum by (http_route) (rate({base},tenant_id=\"{tenant}\"}}[{window}])) > {}",
                threshold * 2.0
            ),
        ),
        8 => (
            true,
            format!("BookingsDropped{index}"),
            format!("busflow_active_bookings{{tenant_id=\"{tenant}\"}} < {}", (threshold * 1000.0).round()),
        ),
        _ => (
            true,
            format!("InstanceHealth{index}"),
            format!(
                "up{{job=\"busflow_api\"}} == 0 or process_resident_memory_bytes{{job=\"busflow_api\"}} > {}",
                (threshold * 1e10).round()
            ),
        ),
    }
}

fn generate(count: usize, tenants: usize, group_size: usize, out: &std::path::Path, seed: u64) -> anyhow::Result<()> {
    let mut random = Random::new(seed);
    let mut text = String::from("groups:\n");
    for index in 0..count {
        if index % group_size.max(1) == 0 {
            text.push_str(&format!("  - name: bench-{:05}\n    interval: 1m\n    rules:\n", index / group_size.max(1)));
        }
        let (alerting, name, expr) = rule(&mut random, index, tenants.max(1));
        if alerting {
            let severity = if index % 3 == 0 { "page" } else { "ticket" };
            text.push_str(&format!(
                "      - alert: {name}\n        expr: {}\n        for: 5m\n        labels:\n          severity: {severity}\n        annotations:\n          summary: \"{{{{ $labels.tenant_id }}}} value {{{{ $value }}}}\"\n",
                serde_json::to_string(&expr)?
            ));
        } else {
            text.push_str(&format!("      - record: {name}\n        expr: {}\n", serde_json::to_string(&expr)?));
        }
    }
    std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))
}

/// The embedded datasource, adding up the time its queries take.
struct TimedDatasource {
    inner: rules::EmbeddedDatasource,
    nanoseconds: AtomicU64,
}

impl rules::Datasource for TimedDatasource {
    fn query(&self, query: &str, time_ms: i64) -> Result<Vec<(tsdb::Labels, f64)>, rules::DatasourceError> {
        let started = Instant::now();
        let result = self.inner.query(query, time_ms);
        self.nanoseconds.fetch_add(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        result
    }
}

impl rules::SeriesSink for TimedDatasource {
    fn append(&self, labels: &tsdb::Labels, time_ms: i64, value: f64) -> Result<(), String> {
        self.inner.append(labels, time_ms, value)
    }
}

/// The peers to measure beside alertbook: base URL and process id of each.
struct Peers {
    prometheus: Option<(String, Option<u32>)>,
    victoriametrics: Option<(String, Option<u32>)>,
}

/// User plus system CPU seconds of a process so far (`/proc/PID/stat`, fields
/// 14 and 15, in clock ticks of 1/100 s as Linux reports them to user space).
fn process_cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; the fields after it follow its ')'.
    let fields: Vec<&str> = text.get(text.rfind(')')? + 1..)?.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok());
    // Fields 14 and 15 of the line are the 12th and 13th after the name (state is field 3).
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

fn measure(
    rules_path: &std::path::Path,
    dataset: &std::path::Path,
    peers: &Peers,
    repeat: usize,
) -> anyhow::Result<()> {
    let metadata = DatasetMetadata::read(dataset)?;
    let files =
        catalog::load_rules(&[rules_path.to_owned()]).map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))?;
    let rule_count: usize = files.iter().flat_map(|file| &file.groups).map(|group| group.rules.len()).sum();
    let expressions: Vec<String> = files
        .iter()
        .flat_map(|file| &file.groups)
        .flat_map(|group| &group.rules)
        .map(|rule| rule.expr.clone())
        .collect();
    let time_ms = metadata.end * 1000;

    let store = Arc::new(tsdb::MemStore::new());
    let started = Instant::now();
    let report = ingest::backfill::load_file(dataset, &store, &ingest::backfill::BackfillOptions::default())
        .with_context(|| format!("cannot backfill {}", dataset.display()))?;
    eprintln!(
        "[rule-bench] alertbook: {} series, {} samples backfilled in {:.1} s",
        report.series,
        report.samples,
        started.elapsed().as_secs_f64()
    );
    let engine = promql::Engine::new(promql::EngineOptions {
        max_samples: 500_000_000,
        timeout: Duration::from_secs(600),
        ..promql::EngineOptions::default()
    });
    let datasource = Arc::new(TimedDatasource {
        inner: rules::EmbeddedDatasource::new(store.clone(), engine),
        nanoseconds: AtomicU64::new(0),
    });
    let mut options = rules::ManagerOptions::embedded(rules::EmbeddedDatasource::new(store, promql::Engine::default()));
    options.datasource = datasource.clone();
    options.sink = datasource.clone();
    let manager = rules::Manager::new(&files, options);

    let mut full_seconds = Vec::new();
    let mut query_seconds = Vec::new();
    let mut cpu_seconds = Vec::new();
    let mut failures = 0;
    for iteration in 0..repeat {
        datasource.nanoseconds.store(0, Ordering::Relaxed);
        // Successive evaluations one interval apart, as the scheduler would run them.
        let evaluation_ms = time_ms + i64::try_from(iteration).unwrap_or(0) * 1000;
        let cpu_before = process_cpu_seconds(None);
        let started = Instant::now();
        for index in 0..manager.group_count() {
            let (_, errors) = manager.evaluate_group(index, evaluation_ms);
            failures += errors.len();
        }
        full_seconds.push(started.elapsed().as_secs_f64());
        query_seconds.push(datasource.nanoseconds.load(Ordering::Relaxed) as f64 / 1e9);
        if let (Some(before), Some(after)) = (cpu_before, process_cpu_seconds(None)) {
            cpu_seconds.push(after - before);
        }
    }
    let active_alerts: usize =
        manager.statuses().iter().flat_map(|group| &group.rules).map(|rule| rule.alerts.len()).sum();
    let alertbook_full = median(full_seconds);
    let alertbook_queries = median(query_seconds);
    let alertbook_cpu = median(cpu_seconds);
    if failures > 0 {
        eprintln!("[rule-bench] warning: {failures} rule evaluations failed in alertbook");
    }

    let mut line = format!(
        "rules={rule_count} groups={} alerts={active_alerts} alertbook_full_s={alertbook_full:.4} alertbook_query_s={alertbook_queries:.4} alertbook_cpu_s={alertbook_cpu:.4}",
        manager.group_count()
    );
    if let Some((url, pid)) = &peers.prometheus {
        let cost = peer_cost("prometheus", url, *pid, &expressions, metadata.end, repeat)?;
        line.push_str(&format!(
            " prometheus_exec_s={:.4} prometheus_http_s={:.4} prometheus_cpu_s={:.4} ratio_exec_over_full={:.2} ratio_exec_over_query={:.2} ratio_cpu={:.2}",
            cost.engine,
            cost.wall,
            cost.cpu,
            cost.engine / alertbook_full,
            cost.engine / alertbook_queries,
            cost.cpu / alertbook_cpu
        ));
    }
    if let Some((url, pid)) = &peers.victoriametrics {
        let cost = peer_cost("victoriametrics", url, *pid, &expressions, metadata.end, repeat)?;
        line.push_str(&format!(
            " victoriametrics_http_s={:.4} victoriametrics_cpu_s={:.4} ratio_vm_cpu={:.2}",
            cost.wall,
            cost.cpu,
            cost.cpu / alertbook_cpu
        ));
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    Ok(())
}

/// What one full evaluation of every rule cost a peer, medians of `repeat`.
struct PeerCost {
    /// The engine's own time (`execTotalTime` summed over every rule; Prometheus only, else NaN).
    engine: f64,
    /// The HTTP wall time of all the queries.
    wall: f64,
    /// The server process's CPU seconds over the queries (NaN without its pid).
    cpu: f64,
}

/// Sends every rule's expression to the peer's `/api/v1/query` at `time`
/// (with `stats=all`, which Prometheus answers with its timings and
/// VictoriaMetrics ignores), `repeat` times, and takes the medians.
fn peer_cost(
    name: &str,
    url: &str,
    pid: Option<u32>,
    expressions: &[String],
    time: i64,
    repeat: usize,
) -> anyhow::Result<PeerCost> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(600)))
        .http_status_as_error(false)
        .build()
        .into();
    let endpoint = format!("{}/api/v1/query", url.trim_end_matches('/'));
    let time = time.to_string();
    let mut engine = Vec::new();
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    let mut failures = 0;
    for _ in 0..repeat {
        let mut engine_total = None;
        let cpu_before = pid.and_then(|pid| process_cpu_seconds(Some(pid)));
        let started = Instant::now();
        for expression in expressions {
            let mut response = agent
                .post(&endpoint)
                .send_form([("query", expression.as_str()), ("time", time.as_str()), ("stats", "all")])
                .with_context(|| format!("{name} query failed: {expression}"))?;
            let text = response.body_mut().with_config().limit(1 << 30).read_to_string()?;
            let body: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{name} answered no JSON"))?;
            if body["status"] != "success" {
                failures += 1;
                continue;
            }
            if let Some(seconds) = body["data"]["stats"]["timings"]["execTotalTime"].as_f64() {
                *engine_total.get_or_insert(0.0) += seconds;
            }
        }
        wall.push(started.elapsed().as_secs_f64());
        engine.push(engine_total.unwrap_or(f64::NAN));
        let cpu_after = pid.and_then(|pid| process_cpu_seconds(Some(pid)));
        cpu.push(cpu_before.zip(cpu_after).map_or(f64::NAN, |(before, after)| after - before));
    }
    if failures > 0 {
        eprintln!("[rule-bench] warning: {failures} queries failed in {name}");
    }
    Ok(PeerCost { engine: median(engine), wall: median(wall), cpu: median(cpu) })
}
