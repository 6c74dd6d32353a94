//! The day's metrics, computed once when the day is built: every series the
//! Busflow catalog's rules and checks read, with the labels and types their
//! real sources write (samples of each in `testdata/telemetry/`).
//!
//! - OpenTelemetry HTTP server metrics of busflow_api (semantic conventions
//!   1.26: `http_server_request_duration_seconds` histogram with the default
//!   buckets, per tenant, route, method and status code);
//! - Traefik 3 (`traefik_service_requests_total`, `traefik_tls_certs_not_after`);
//! - Loki 3's compactor and MinIO v2's bucket usage;
//! - node_exporter CPU seconds and cAdvisor's container CPU of busflow_api;
//! - Uptime Kuma 1.23's `monitor_status` and `monitor_response_time`;
//! - alertbook's prober (`probe_success`, `probe_duration_seconds`,
//!   `probe_http_status_code`, `probe_failure_reason`) for the external
//!   dependencies, every 5 minutes;
//! - the Postgres cutover marker the cutover job pushed;
//! - a week-ago baseline of `http_server_request_duration_seconds_count`
//!   (once a minute), which A2's `offset 1w` load comparison reads.
//!
//! Counters are cumulative from a plausible value and only grow; a series
//! that disappears gets one stale marker at the next scrape, as Prometheus
//! writes one.

use crate::clock::{MINUTE_MS, SECOND_MS, WEEK_MS};
use crate::noise::{Noise, normal_cdf};
use crate::world::{self, DEPENDENCY_PROBES, MONITORS, MonitorState, ROUTES, World};
use crate::{Labels, STALE_NAN, labels};

/// How often the scraped sources are sampled.
pub const SCRAPE_INTERVAL_MS: i64 = 30 * SECOND_MS;
/// How often the external dependency probes check (contracts/external-dependency-probes.yaml).
pub const PROBE_INTERVAL_MS: i64 = 5 * MINUTE_MS;
/// How often the week-ago baseline has a sample.
pub const BASELINE_INTERVAL_MS: i64 = MINUTE_MS;
/// The OpenTelemetry semantic conventions' default buckets of `http.server.request.duration`.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
/// The swarm's nodes and their CPUs.
pub const NODES: [&str; 3] = ["busflow-1", "busflow-2", "busflow-3"];
pub const CPUS_PER_NODE: usize = 4;

/// A value that marks "no sample at this step" (a NaN other than the stale marker).
const ABSENT_BITS: u64 = 0x7ff8_0000_dead_beef;

fn absent() -> f64 {
    f64::from_bits(ABSENT_BITS)
}

fn is_absent(value: f64) -> bool {
    value.to_bits() == ABSENT_BITS
}

/// One series: its labels and a value per step of its clock (or absent).
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: Labels,
    pub first_ms: i64,
    pub step_ms: i64,
    pub values: Vec<f64>,
}

impl Series {
    fn new(labels: Labels, first_ms: i64, step_ms: i64, steps: usize) -> Self {
        Self { labels, first_ms, step_ms, values: vec![absent(); steps] }
    }

    /// The samples in `[from_ms, to_ms)`: present values, and a stale marker
    /// at the first step after the series disappeared.
    pub fn samples(&self, from_ms: i64, to_ms: i64, mut emit: impl FnMut(i64, f64)) {
        if to_ms <= self.first_ms || self.values.is_empty() {
            return;
        }
        let first = if from_ms <= self.first_ms {
            0
        } else {
            ((from_ms - self.first_ms + self.step_ms - 1) / self.step_ms) as usize
        };
        let last = (((to_ms - 1 - self.first_ms) / self.step_ms) as usize).min(self.values.len() - 1);
        for index in first..=last.max(first) {
            let Some(&value) = self.values.get(index) else { break };
            let time_ms = self.first_ms + index as i64 * self.step_ms;
            if time_ms >= to_ms {
                break;
            }
            if !is_absent(value) {
                emit(time_ms, value);
            } else if index > 0 && !is_absent(self.values[index - 1]) {
                emit(time_ms, STALE_NAN);
            }
        }
    }
}

/// Irregular samples (probe checks), kept in time order.
#[derive(Debug, Clone)]
pub struct Points {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// Every metric series of the day.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub series: Vec<Series>,
    pub points: Vec<Points>,
}

/// Builds the metrics of `world` from `first_ms` (before the start, so rates
/// have history at the first minute) to `end_ms`.
pub fn build(world: &World, noise: &Noise, first_ms: i64, end_ms: i64) -> Metrics {
    let steps = ((end_ms - first_ms) / SCRAPE_INTERVAL_MS + 1) as usize;
    let mut metrics = Metrics::default();
    http_histograms(world, noise, first_ms, steps, &mut metrics);
    baseline(world, noise, first_ms - WEEK_MS, steps, &mut metrics);
    traefik(world, noise, first_ms, steps, &mut metrics);
    storage(world, noise, first_ms, steps, &mut metrics);
    nodes(world, noise, first_ms, steps, &mut metrics);
    uptime_kuma(world, noise, first_ms, steps, &mut metrics);
    probes(world, noise, first_ms, end_ms, &mut metrics);
    let cutover_seconds = world.at_minute(crate::script::CUTOVER_MINUTE as f64) as f64 / 1000.0;
    let mut cutover = Series::new(
        labels(&[("__name__", "busflow_postgres_cutover_timestamp_seconds"), ("job", "postgres-cutover")]),
        first_ms + 4 * SECOND_MS,
        SCRAPE_INTERVAL_MS,
        steps,
    );
    cutover.values.fill(cutover_seconds);
    metrics.series.push(cutover);
    metrics
}

/// Requests of one (tenant, route) in one step: (successes, failures), as expected counts.
fn requests(world: &World, noise: &Noise, key: &str, index: u64, time_ms: i64, share: f64, tenant: &str) -> (f64, f64) {
    let per_second = world::PEAK_REQUESTS_PER_SECOND * share * world.diurnal(time_ms) * world.load_factor(time_ms);
    let count =
        (per_second * (SCRAPE_INTERVAL_MS / SECOND_MS) as f64 * (1.0 + 0.05 * noise.normal(key, index))).max(0.0);
    let failures = count * world.error_ratio(tenant, time_ms);
    (count - failures, failures)
}

/// The histogram of each (tenant, route, status) cell, and its running sums.
struct Cell {
    count: f64,
    sum: f64,
    buckets: [f64; LATENCY_BUCKETS.len()],
    series: [usize; LATENCY_BUCKETS.len() + 3],
}

fn http_histograms(world: &World, noise: &Noise, first_ms: i64, steps: usize, metrics: &mut Metrics) {
    let mut cells: Vec<(usize, usize, bool, Cell)> = Vec::new();
    for (tenant_index, (tenant, tenant_share)) in crate::script::TENANTS.iter().enumerate() {
        for (route_index, (method, route, route_share, success, median, sigma)) in ROUTES.iter().enumerate() {
            for failed in [false, true] {
                let status = if failed { "500" } else { success };
                let base = |name: &str| {
                    vec![
                        ("__name__", name.to_owned()),
                        ("http_request_method", (*method).to_owned()),
                        ("http_response_status_code", status.to_owned()),
                        ("http_route", (*route).to_owned()),
                        ("network_protocol_version", "1.1".to_owned()),
                        ("service_name", "busflow_api".to_owned()),
                        ("tenant_id", (*tenant).to_owned()),
                        ("url_scheme", "http".to_owned()),
                    ]
                };
                let mut series = [0usize; LATENCY_BUCKETS.len() + 3];
                let mut add = |pairs: Vec<(&str, String)>| {
                    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(name, value)| (*name, value.as_str())).collect();
                    metrics.series.push(Series::new(labels(&pairs), first_ms, SCRAPE_INTERVAL_MS, steps));
                    metrics.series.len() - 1
                };
                for (position, bound) in LATENCY_BUCKETS.iter().map(|bound| format_bound(*bound)).enumerate() {
                    let mut pairs = base("http_server_request_duration_seconds_bucket");
                    pairs.push(("le", bound));
                    series[position] = add(pairs);
                }
                let mut infinity = base("http_server_request_duration_seconds_bucket");
                infinity.push(("le", "+Inf".to_owned()));
                series[LATENCY_BUCKETS.len()] = add(infinity);
                series[LATENCY_BUCKETS.len() + 1] = add(base("http_server_request_duration_seconds_sum"));
                series[LATENCY_BUCKETS.len() + 2] = add(base("http_server_request_duration_seconds_count"));
                // Two days of traffic before the first sample: counters do not start at zero.
                let share = tenant_share * route_share * if failed { world::BASE_ERROR_RATIO } else { 1.0 };
                let history = world::PEAK_REQUESTS_PER_SECOND * share * 0.5 * 2.0 * 86_400.0;
                let mut buckets = [0.0; LATENCY_BUCKETS.len()];
                for (position, bound) in LATENCY_BUCKETS.iter().enumerate() {
                    buckets[position] = history * normal_cdf(((*bound).ln() - median.ln()) / sigma);
                }
                let cell =
                    Cell { count: history, sum: history * median * (sigma * sigma / 2.0).exp(), buckets, series };
                cells.push((tenant_index, route_index, failed, cell));
            }
        }
    }
    for step in 0..steps {
        let time_ms = first_ms + step as i64 * SCRAPE_INTERVAL_MS;
        for (tenant_index, route_index, failed, cell) in &mut cells {
            let (tenant, tenant_share) = crate::script::TENANTS[*tenant_index];
            let (_, route, route_share, _, median, sigma) = ROUTES[*route_index];
            let key = format!("http/{tenant}{route}");
            let (successes, failures) =
                requests(world, noise, &key, step as u64, time_ms, tenant_share * route_share, tenant);
            let added = if *failed { failures } else { successes };
            // Failures answer faster than successes (a refused lock, a failed upstream), except timeouts.
            let factor = world.latency_factor(route, time_ms) * if *failed { 0.7 } else { 1.0 };
            let median = median * factor * (0.06 * noise.normal(&format!("latency/{route}"), step as u64)).exp();
            cell.count += added;
            cell.sum += added * median * (sigma * sigma / 2.0).exp();
            for (position, bound) in LATENCY_BUCKETS.iter().enumerate() {
                cell.buckets[position] += added * normal_cdf(((*bound).ln() - median.ln()) / sigma);
            }
            for (position, value) in cell.buckets.iter().enumerate() {
                metrics.series[cell.series[position]].values[step] = value.floor();
            }
            let count = cell.count.floor();
            metrics.series[cell.series[LATENCY_BUCKETS.len()]].values[step] = count;
            metrics.series[cell.series[LATENCY_BUCKETS.len() + 1]].values[step] = (cell.sum * 1000.0).round() / 1000.0;
            metrics.series[cell.series[LATENCY_BUCKETS.len() + 2]].values[step] = count;
        }
    }
}

/// `0.005`, `1`, `2.5`: the `le` label as Prometheus's OTLP translation writes it.
fn format_bound(bound: f64) -> String {
    format!("{bound}")
}

/// A week before the day, once a minute: the request counters without any incident.
fn baseline(world: &World, noise: &Noise, first_ms: i64, scrape_steps: usize, metrics: &mut Metrics) {
    let steps = (scrape_steps as i64 * SCRAPE_INTERVAL_MS / BASELINE_INTERVAL_MS + 1) as usize;
    // The same clock (a week is whole days), none of the day's episodes.
    let calm = World::new(world.start_ms, Vec::new());
    for (tenant, tenant_share) in crate::script::TENANTS {
        for (method, route, route_share, success, _, _) in ROUTES {
            for failed in [false, true] {
                let status = if failed { "500" } else { success };
                let mut series = Series::new(
                    labels(&[
                        ("__name__", "http_server_request_duration_seconds_count"),
                        ("http_request_method", method),
                        ("http_response_status_code", status),
                        ("http_route", route),
                        ("network_protocol_version", "1.1"),
                        ("service_name", "busflow_api"),
                        ("tenant_id", tenant),
                        ("url_scheme", "http"),
                    ]),
                    first_ms,
                    BASELINE_INTERVAL_MS,
                    steps,
                );
                let mut count = 1.0e6 * tenant_share * route_share;
                for step in 0..steps {
                    let time_ms = first_ms + step as i64 * BASELINE_INTERVAL_MS;
                    let key = format!("baseline/{tenant}{route}");
                    let (successes, failures) =
                        requests(&calm, noise, &key, step as u64, time_ms, tenant_share * route_share, tenant);
                    let per_minute = (BASELINE_INTERVAL_MS / SCRAPE_INTERVAL_MS) as f64;
                    count += per_minute * if failed { failures } else { successes };
                    series.values[step] = count.floor();
                }
                metrics.series.push(series);
            }
        }
    }
}

fn traefik(world: &World, noise: &Noise, first_ms: i64, steps: usize, metrics: &mut Metrics) {
    let offset = first_ms + 2 * SECOND_MS;
    let target = [("job", "traefik"), ("instance", "busflow_traefik:8082")];
    let with_target = |pairs: &[(&'static str, &str)]| {
        let mut all: Vec<(&str, &str)> = pairs.to_vec();
        all.extend_from_slice(&target);
        labels(&all)
    };
    // busflow_api@swarm by (code, method), from the same traffic as the histograms.
    let codes = [("200", "GET"), ("201", "POST"), ("500", "GET"), ("500", "POST")];
    let mut totals = [3.1e6, 0.42e6, 9.4e3, 1.3e3];
    let first_index = metrics.series.len();
    for (code, method) in codes {
        metrics.series.push(Series::new(
            with_target(&[
                ("__name__", "traefik_service_requests_total"),
                ("code", code),
                ("method", method),
                ("protocol", "http"),
                ("service", "busflow_api@swarm"),
            ]),
            offset,
            SCRAPE_INTERVAL_MS,
            steps,
        ));
    }
    // The other services behind the edge: the web app and Grafana.
    let others = [("busflow_web@swarm", 22.0, 1.8e6), ("busflow_grafana@swarm", 1.6, 0.14e6)];
    let mut other_totals: Vec<f64> = others.iter().map(|(_, _, total)| *total).collect();
    for (service, _, _) in others {
        metrics.series.push(Series::new(
            with_target(&[
                ("__name__", "traefik_service_requests_total"),
                ("code", "200"),
                ("method", "GET"),
                ("protocol", "http"),
                ("service", service),
            ]),
            offset,
            SCRAPE_INTERVAL_MS,
            steps,
        ));
    }
    for step in 0..steps {
        let time_ms = offset + step as i64 * SCRAPE_INTERVAL_MS;
        for (tenant, tenant_share) in crate::script::TENANTS {
            for (method, route, route_share, _, _, _) in ROUTES {
                let key = format!("http/{tenant}{route}");
                let (successes, failures) =
                    requests(world, noise, &key, step as u64, time_ms, tenant_share * route_share, tenant);
                let ok = if method == "GET" { 0 } else { 1 };
                totals[ok] += successes;
                totals[2 + ok] += failures;
            }
        }
        for (position, total) in totals.iter().enumerate() {
            metrics.series[first_index + position].values[step] = total.floor();
        }
        for (position, (_, per_second, _)) in others.iter().enumerate() {
            let key = format!("edge/{position}");
            other_totals[position] += per_second
                * world.diurnal(time_ms)
                * (SCRAPE_INTERVAL_MS / SECOND_MS) as f64
                * (1.0 + 0.05 * noise.normal(&key, step as u64)).max(0.0);
            metrics.series[first_index + codes.len() + position].values[step] = other_totals[position].floor();
        }
    }
    // Certificates: one series per certificate (cn, sans, serial); a renewal brings a new serial.
    let certificates = ["studio.busflow.app", "grafana.busflow.app"];
    for cn in certificates {
        for generation in [0u32, 1] {
            let serial = decimal_serial(noise, cn, generation);
            let mut series = Series::new(
                with_target(&[
                    ("__name__", "traefik_tls_certs_not_after"),
                    ("cn", cn),
                    ("sans", cn),
                    ("serial", &serial),
                ]),
                offset,
                SCRAPE_INTERVAL_MS,
                steps,
            );
            for step in 0..steps {
                let time_ms = offset + step as i64 * SCRAPE_INTERVAL_MS;
                let (not_after_ms, current) = world.certificate(cn, time_ms);
                if current == generation {
                    series.values[step] = (not_after_ms / 1000) as f64;
                }
            }
            metrics.series.push(series);
        }
    }
    let mut default_cert = Series::new(
        with_target(&[
            ("__name__", "traefik_tls_certs_not_after"),
            ("cn", "TRAEFIK DEFAULT CERT"),
            ("sans", "2a9ab29c0d61bb39b8b3d2c0cfb0f6aa.e3cc8b2d9a4f27f3de6ac7dc4b5b7d0e.traefik.default"),
            ("serial", "230741120987651209873461029871234098712"),
        ]),
        offset,
        SCRAPE_INTERVAL_MS,
        steps,
    );
    // Traefik's self-signed default certificate lives a year from Traefik's start.
    default_cert.values.fill(((world.start_ms + 300 * 86_400_000) / 1000) as f64);
    metrics.series.push(default_cert);
}

/// A certificate serial number as Traefik prints it (a decimal integer).
fn decimal_serial(noise: &Noise, cn: &str, generation: u32) -> String {
    let mut digits = String::new();
    for part in 0..3 {
        digits.push_str(&format!(
            "{:013}",
            noise.bits(&format!("serial/{cn}"), u64::from(generation) * 8 + part) % 10u64.pow(13)
        ));
    }
    format!("{}{}", 1 + noise.below(&format!("serial-lead/{cn}"), u64::from(generation), 9), digits)
}

fn storage(world: &World, noise: &Noise, first_ms: i64, steps: usize, metrics: &mut Metrics) {
    let loki_offset = first_ms + 7 * SECOND_MS;
    let mut compactor = Series::new(
        labels(&[
            ("__name__", "loki_boltdb_shipper_compact_tables_operation_last_successful_run_timestamp_seconds"),
            ("job", "loki"),
            ("instance", "loki_compactor:3100"),
        ]),
        loki_offset,
        SCRAPE_INTERVAL_MS,
        steps,
    );
    for step in 0..steps {
        let time_ms = loki_offset + step as i64 * SCRAPE_INTERVAL_MS;
        compactor.values[step] = (world.compactor_last_success_ms(time_ms) / 1000) as f64;
    }
    metrics.series.push(compactor);

    let minio_offset = first_ms + 11 * SECOND_MS;
    let bucket_series = |name: &str, bucket: &str| {
        Series::new(
            labels(&[
                ("__name__", name),
                ("bucket", bucket),
                ("server", "minio-1:9000"),
                ("job", "minio"),
                ("instance", "minio-1:9000"),
            ]),
            minio_offset,
            SCRAPE_INTERVAL_MS,
            steps,
        )
    };
    let mut loki_bytes = bucket_series("minio_bucket_usage_total_bytes", "loki");
    let mut loki_objects = bucket_series("minio_bucket_usage_object_total", "loki");
    let mut backup_bytes = bucket_series("minio_bucket_usage_total_bytes", "backups");
    let mut backup_objects = bucket_series("minio_bucket_usage_object_total", "backups");
    let most_tenant_buckets = world
        .episodes
        .iter()
        .filter_map(|episode| match episode.cause {
            crate::script::Cause::TenantBuckets { count } => Some(count),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    let mut tenant_series: Vec<(Series, Series)> = (0..most_tenant_buckets)
        .map(|index| {
            let tenant = crate::script::TENANTS[index % crate::script::TENANTS.len()].0;
            let bucket = format!("tenant-{tenant}-media-{:04}", 1000 + index * 37 % 9000);
            (
                bucket_series("minio_bucket_usage_total_bytes", &bucket),
                bucket_series("minio_bucket_usage_object_total", &bucket),
            )
        })
        .collect();
    for step in 0..steps {
        let time_ms = minio_offset + step as i64 * SCRAPE_INTERVAL_MS;
        // MinIO's scanner updates usage every few minutes: the value holds between updates.
        let scan = (time_ms / (3 * MINUTE_MS)) * (3 * MINUTE_MS);
        let bytes = world.loki_bucket_bytes(scan).round();
        loki_bytes.values[step] = bytes;
        loki_objects.values[step] = (bytes / 204_000.0).round();
        let backups =
            81.26e9 + 0.002e9 * world.minute(scan) + 0.01e9 * noise.uniform("backups", world.minute_index(scan));
        backup_bytes.values[step] = backups.round();
        backup_objects.values[step] = (backups / 9.8e6).round();
        let created = world.tenant_buckets(time_ms);
        for (index, (bytes_series, objects_series)) in tenant_series.iter_mut().enumerate().take(created) {
            let size = 0.2e9 + 2.8e9 * noise.uniform("tenant-bucket", index as u64);
            bytes_series.values[step] = size.round();
            objects_series.values[step] = (size / 1.4e6).round();
        }
    }
    metrics.series.extend([loki_bytes, loki_objects, backup_bytes, backup_objects]);
    for (bytes_series, objects_series) in tenant_series {
        metrics.series.push(bytes_series);
        metrics.series.push(objects_series);
    }
}

fn nodes(world: &World, noise: &Noise, first_ms: i64, steps: usize, metrics: &mut Metrics) {
    let offset = first_ms + 5 * SECOND_MS;
    let modes = [("idle", 0.0), ("iowait", 0.04), ("system", 0.26), ("user", 0.70)];
    for (node_index, node) in NODES.iter().enumerate() {
        let instance = format!("{node}:9100");
        let mut cpus: Vec<(Series, f64)> = Vec::new();
        for cpu in 0..CPUS_PER_NODE {
            for (mode, _) in modes {
                let cpu_text = cpu.to_string();
                cpus.push((
                    Series::new(
                        labels(&[
                            ("__name__", "node_cpu_seconds_total"),
                            ("cpu", &cpu_text),
                            ("mode", mode),
                            ("job", "node"),
                            ("instance", &instance),
                        ]),
                        offset,
                        SCRAPE_INTERVAL_MS,
                        steps,
                    ),
                    // Uptime of 25 days, mostly idle.
                    if mode == "idle" {
                        1.73e6
                    } else {
                        2.1e5 * modes.iter().find(|(m, _)| *m == mode).map_or(0.0, |m| m.1)
                    },
                ));
            }
        }
        for step in 0..steps {
            let time_ms = offset + step as i64 * SCRAPE_INTERVAL_MS;
            let mut busy = 0.5 + 0.9 * world.diurnal(time_ms) * world.load_factor(time_ms);
            if world.nodes_busy(time_ms) {
                busy += 1.6;
            }
            busy = (busy * (1.0 + 0.04 * noise.normal(&format!("cpu/{node_index}"), step as u64))).clamp(0.05, 3.85);
            let seconds = (SCRAPE_INTERVAL_MS / SECOND_MS) as f64;
            for (position, (series, total)) in cpus.iter_mut().enumerate() {
                let (mode, share) = modes[position % modes.len()];
                let per_cpu_busy = busy / CPUS_PER_NODE as f64;
                *total += seconds * if mode == "idle" { 1.0 - per_cpu_busy } else { per_cpu_busy * share };
                series.values[step] = (*total * 100.0).round() / 100.0;
            }
        }
        metrics.series.extend(cpus.into_iter().map(|(series, _)| series));
    }

    // cAdvisor: busflow_api's containers, one per task (crate::facts names the same tasks).
    let offset = first_ms + 9 * SECOND_MS;
    for slot in 1..=6u32 {
        let task = crate::facts::task_id(noise, "busflow_api", slot, 0);
        let task_name = format!("busflow_api.{slot}.{task}");
        let container = noise.hex("container/busflow_api", u64::from(slot), 64);
        let node = NODES[(slot as usize - 1) % NODES.len()];
        let node_id = crate::facts::object_id(noise, "node", node);
        let service_id = crate::facts::object_id(noise, "service", "busflow_api");
        let mut series = Series::new(
            labels(&[
                ("__name__", "container_cpu_usage_seconds_total"),
                ("container_label_com_docker_stack_namespace", "busflow"),
                ("container_label_com_docker_swarm_node_id", &node_id),
                ("container_label_com_docker_swarm_service_id", &service_id),
                ("container_label_com_docker_swarm_service_name", "busflow_api"),
                ("container_label_com_docker_swarm_task_name", &task_name),
                ("cpu", "total"),
                ("id", &format!("/docker/{container}")),
                ("image", crate::facts::API_IMAGE),
                ("name", &task_name),
                ("job", "cadvisor"),
                ("instance", &format!("{node}:8080")),
            ]),
            offset,
            SCRAPE_INTERVAL_MS,
            steps,
        );
        let mut total = 18_000.0 + 500.0 * f64::from(slot);
        for step in 0..steps {
            let time_ms = offset + step as i64 * SCRAPE_INTERVAL_MS;
            let replicas = world.api_replicas(time_ms);
            if slot > replicas {
                continue;
            }
            let requests_per_second =
                world::PEAK_REQUESTS_PER_SECOND * world.diurnal(time_ms) * world.load_factor(time_ms);
            let cores = 0.02 * requests_per_second / f64::from(replicas)
                * (1.0 + 0.05 * noise.normal(&format!("api-cpu/{slot}"), step as u64));
            total += cores.max(0.0) * (SCRAPE_INTERVAL_MS / SECOND_MS) as f64;
            series.values[step] = (total * 1000.0).round() / 1000.0;
        }
        metrics.series.push(series);
    }
}

fn uptime_kuma(world: &World, noise: &Noise, first_ms: i64, steps: usize, metrics: &mut Metrics) {
    let offset = first_ms + 13 * SECOND_MS;
    for (name, url) in MONITORS {
        let monitor = |family: &str| {
            Series::new(
                labels(&[
                    ("__name__", family),
                    ("monitor_name", name),
                    ("monitor_type", "http"),
                    ("monitor_url", url),
                    ("monitor_hostname", "null"),
                    ("monitor_port", "null"),
                    ("job", "uptime-kuma"),
                    ("instance", "uptime-kuma:3001"),
                ]),
                offset,
                SCRAPE_INTERVAL_MS,
                steps,
            )
        };
        let mut status = monitor("monitor_status");
        let mut response = monitor("monitor_response_time");
        let mut previous = MonitorState::Up;
        for step in 0..steps {
            let time_ms = offset + step as i64 * SCRAPE_INTERVAL_MS;
            let state = world.monitor(name, time_ms);
            // Uptime Kuma retries a failed check once (status 2, pending) before it reports down (0).
            status.values[step] = match state {
                MonitorState::Up => 1.0,
                MonitorState::Maintenance => 3.0,
                MonitorState::Down if previous != MonitorState::Down => 2.0,
                MonitorState::Down => 0.0,
            };
            response.values[step] = match state {
                MonitorState::Down => -1.0,
                _ => (12.0 + 4.0 * noise.normal(&format!("kuma/{name}"), step as u64)).max(2.0).round(),
            };
            previous = state;
        }
        metrics.series.push(status);
        metrics.series.push(response);
    }
}

fn probes(world: &World, noise: &Noise, first_ms: i64, end_ms: i64, metrics: &mut Metrics) {
    for (name, prober, target, phase_seconds) in DEPENDENCY_PROBES {
        let probe_labels = |family: &str, extra: &[(&str, &str)]| {
            let mut pairs = vec![
                ("__name__", family),
                ("probe", name),
                ("probe_group", "external-dependency-probes"),
                ("prober", prober),
                ("target", target),
            ];
            pairs.extend_from_slice(extra);
            labels(&pairs)
        };
        let mut success = Points { labels: probe_labels("probe_success", &[]), points: Vec::new() };
        let mut duration = Points { labels: probe_labels("probe_duration_seconds", &[]), points: Vec::new() };
        let mut status_code = Points { labels: probe_labels("probe_http_status_code", &[]), points: Vec::new() };
        let mut reasons: Vec<Points> = Vec::new();
        let phase = world.start_ms + phase_seconds * SECOND_MS;
        let mut check_ms = phase - ((phase - first_ms) / PROBE_INTERVAL_MS) * PROBE_INTERVAL_MS;
        let mut failing_reason: Option<&str> = None;
        let mut index = 0u64;
        while check_ms <= end_ms {
            let failure = world.probe_failure(name, check_ms);
            success.points.push((check_ms, if failure.is_some() { 0.0 } else { 1.0 }));
            let seconds = match failure {
                Some("timeout") => 10.0,
                _ => 0.08 + 0.25 * noise.uniform(&format!("probe/{name}"), index),
            };
            duration.points.push((check_ms, (seconds * 1e6_f64).round() / 1e6));
            if prober == "http" {
                status_code.points.push((check_ms, if failure == Some("status") { 529.0 } else { 200.0 }));
            }
            // probe_failure_reason{reason} is 1 while a check fails for that reason, and stale after.
            if let Some(previous) = failing_reason
                && failure != Some(previous)
                && let Some(points) = reasons.iter_mut().find(|points| has_label(&points.labels, "reason", previous))
            {
                points.points.push((check_ms, STALE_NAN));
            }
            if let Some(reason) = failure {
                let position = match reasons.iter().position(|points| has_label(&points.labels, "reason", reason)) {
                    Some(position) => position,
                    None => {
                        reasons.push(Points {
                            labels: probe_labels("probe_failure_reason", &[("reason", reason)]),
                            points: Vec::new(),
                        });
                        reasons.len() - 1
                    }
                };
                reasons[position].points.push((check_ms, 1.0));
            }
            failing_reason = failure;
            check_ms += PROBE_INTERVAL_MS;
            index += 1;
        }
        metrics.points.push(success);
        metrics.points.push(duration);
        if prober == "http" {
            metrics.points.push(status_code);
        }
        metrics.points.extend(reasons);
    }
}

fn has_label(labels: &Labels, name: &str, value: &str) -> bool {
    labels.iter().any(|(n, v)| n == name && v == value)
}
