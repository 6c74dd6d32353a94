//! Writes a Busflow-like OpenMetrics file with timestamps, the input both
//! `promtool tsdb create-blocks-from-openmetrics` and `alertbook run --backfill`
//! take, plus `<file>.meta.json` with its time range.
//!
//! Families: the API's request-duration histogram
//! (`http_server_request_duration_seconds`, by route, method, status code and
//! tenant; buckets 0.005 s to 10 s), Traefik's request counter per service, and
//! a few gauges. Counters grow monotonically at per-series rates (tenants follow
//! a Zipf-like spread, routes their own latency distributions), bucket counts are
//! cumulative and end at `_count`. Two incidents on `/api/bookings` give the
//! catalog's alerts something to find: a slowdown at 30-40 % of the range (A2)
//! and an error burst at 60-75 % (A1); outside them both stay quiet.
//! Lines are written family by family, metric by metric, time-ordered within
//! each series, which is what OpenMetrics asks for.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use alertbook_bench::{DatasetMetadata, Random};
use anyhow::Context as _;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Write a Busflow-like OpenMetrics dataset with timestamps")]
struct Arguments {
    /// Multiplies the number of tenants (1.0 gives about 101k series).
    #[arg(long, default_value_t = 1.0)]
    series_scale: f64,
    /// Length of the time range in hours.
    #[arg(long, default_value_t = 2.0)]
    hours: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 15)]
    step: i64,
    /// Output file.
    #[arg(long, default_value = "busflow.om")]
    out: PathBuf,
    /// Seed of the random numbers.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Last sample time, Unix seconds [default: now, rounded down to the step].
    #[arg(long)]
    end: Option<i64>,
}

const BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// An API route: its methods (the first takes most traffic), total request
/// rate, and median latency in seconds.
struct Route {
    path: &'static str,
    methods: &'static [&'static str],
    requests_per_second: f64,
    median_latency: f64,
}

const ROUTES: [Route; 10] = [
    route("/api/bookings", &["GET", "POST"], 40.0, 0.08),
    route("/api/bookings/{id}", &["GET", "PUT"], 30.0, 0.05),
    route("/api/trips", &["GET"], 60.0, 0.12),
    route("/api/trips/{id}", &["GET"], 25.0, 0.06),
    route("/api/stops", &["GET"], 50.0, 0.03),
    route("/api/payments", &["POST"], 8.0, 0.35),
    route("/api/tickets/{id}", &["GET"], 20.0, 0.04),
    route("/api/users/me", &["GET"], 35.0, 0.02),
    route("/api/search", &["GET"], 30.0, 0.25),
    route("/healthz", &["GET"], 10.0, 0.002),
];

const fn route(
    path: &'static str,
    methods: &'static [&'static str],
    requests_per_second: f64,
    median_latency: f64,
) -> Route {
    Route { path, methods, requests_per_second, median_latency }
}

/// Where in the range (0 = start, 1 = end) `/api/bookings` answers 25 times
/// its usual share of 5xx: A1 (5xx share above 2 %) fires in it, not outside.
const ERROR_BURST: std::ops::Range<f64> = 0.6..0.75;
/// Where `/api/bookings` is ten times slower: A2 (p95 above 0.8 s) fires in it.
const SLOWDOWN: std::ops::Range<f64> = 0.3..0.4;
const SLOWDOWN_FACTOR: f64 = 10.0;

/// Status codes with their share of requests, for reads and for writes.
const READ_STATUSES: [(&str, f64); 6] =
    [("200", 0.943), ("400", 0.02), ("404", 0.02), ("429", 0.01), ("500", 0.004), ("503", 0.003)];
const WRITE_STATUSES: [(&str, f64); 6] =
    [("201", 0.933), ("400", 0.03), ("409", 0.01), ("422", 0.02), ("500", 0.004), ("503", 0.003)];

const TRAEFIK_SERVICES: [&str; 20] = [
    "busflow-api@kubernetes",
    "busflow-web@kubernetes",
    "busflow-admin@kubernetes",
    "busflow-payments@kubernetes",
    "busflow-search@kubernetes",
    "busflow-notify@kubernetes",
    "busflow-tickets@kubernetes",
    "busflow-trips@kubernetes",
    "busflow-stops@kubernetes",
    "busflow-users@kubernetes",
    "grafana@kubernetes",
    "prometheus@kubernetes",
    "alertbook@kubernetes",
    "keycloak@kubernetes",
    "minio@kubernetes",
    "docs@kubernetes",
    "status@kubernetes",
    "api-gateway@kubernetes",
    "webhooks@kubernetes",
    "dashboard@internal",
];
const TRAEFIK_CODES: [(&str, f64); 12] = [
    ("200", 0.80),
    ("201", 0.05),
    ("301", 0.01),
    ("304", 0.05),
    ("400", 0.02),
    ("401", 0.02),
    ("403", 0.01),
    ("404", 0.02),
    ("429", 0.005),
    ("500", 0.005),
    ("502", 0.005),
    ("503", 0.005),
];

const INSTANCES: usize = 6;

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    anyhow::ensure!(arguments.step > 0, "--step must be positive");
    anyhow::ensure!(arguments.hours > 0.0, "--hours must be positive");
    anyhow::ensure!(arguments.series_scale > 0.0, "--series-scale must be positive");
    let end = match arguments.end {
        Some(end) => end,
        None => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
            now - now.rem_euclid(arguments.step)
        }
    };
    let points = ((arguments.hours * 3600.0) as i64 / arguments.step).max(1);
    let start = end - (points - 1) * arguments.step;
    let timestamps: Vec<String> = (0..points).map(|index| (start + index * arguments.step).to_string()).collect();
    let tenants = ((100.0 * arguments.series_scale).round() as usize).max(1);

    let begun = Instant::now();
    let file =
        std::fs::File::create(&arguments.out).with_context(|| format!("cannot create {}", arguments.out.display()))?;
    let mut writer = Writer {
        output: BufWriter::with_capacity(8 << 20, file),
        line: String::with_capacity(512),
        series: 0,
        samples: 0,
        bytes: 0,
    };
    let mut random = Random::new(arguments.seed);
    let context = Dataset { timestamps: &timestamps, step: arguments.step as f64, tenants };
    write_request_histogram(&mut writer, &mut random, &context)?;
    write_traefik_counter(&mut writer, &mut random, &context)?;
    write_gauges(&mut writer, &mut random, &context)?;
    writer.raw("# EOF\n")?;
    writer.output.flush()?;

    let metadata = DatasetMetadata {
        start,
        end,
        step: arguments.step,
        series: writer.series,
        samples: writer.samples,
        bytes: writer.bytes,
        seed: arguments.seed,
        series_scale: arguments.series_scale,
    };
    metadata.write(&arguments.out)?;
    let elapsed = begun.elapsed().as_secs_f64();
    eprintln!(
        "wrote {} series, {} samples, {:.1} MiB to {} in {:.1} s ({:.0} samples/s)",
        metadata.series,
        metadata.samples,
        metadata.bytes as f64 / (1 << 20) as f64,
        arguments.out.display(),
        elapsed,
        metadata.samples as f64 / elapsed
    );
    Ok(())
}

struct Dataset<'a> {
    timestamps: &'a [String],
    step: f64,
    tenants: usize,
}

impl Dataset<'_> {
    /// Where in the range a point lies, 0 to 1.
    fn progress(&self, index: usize) -> f64 {
        index as f64 / self.timestamps.len().max(2).saturating_sub(1) as f64
    }

    /// A slow swell of traffic over the range.
    fn traffic_factor(&self, index: usize) -> f64 {
        1.0 + 0.3 * (self.progress(index) * std::f64::consts::TAU).sin()
    }

    /// Zipf-like tenant shares that sum to 1.
    fn tenant_shares(&self) -> Vec<f64> {
        let weights: Vec<f64> = (0..self.tenants).map(|index| 1.0 / ((index + 1) as f64).powf(0.8)).collect();
        let total: f64 = weights.iter().sum();
        weights.iter().map(|weight| weight / total).collect()
    }
}

struct Writer {
    output: BufWriter<std::fs::File>,
    line: String,
    series: u64,
    samples: u64,
    bytes: u64,
}

impl Writer {
    fn raw(&mut self, text: &str) -> std::io::Result<()> {
        self.bytes += text.len() as u64;
        self.output.write_all(text.as_bytes())
    }

    /// Writes `series value timestamp`; `value` is formatted into `self.line`.
    fn sample(&mut self, series: &str, value: impl std::fmt::Display, timestamp: &str) -> std::io::Result<()> {
        self.line.clear();
        self.line.push_str(series);
        self.line.push(' ');
        let _ = write!(self.line, "{value}");
        self.line.push(' ');
        self.line.push_str(timestamp);
        self.line.push('\n');
        self.samples += 1;
        self.bytes += self.line.len() as u64;
        self.output.write_all(self.line.as_bytes())
    }
}

/// The standard normal distribution function (Abramowitz and Stegun 7.1.26).
fn normal_cdf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs() / std::f64::consts::SQRT_2);
    let polynomial =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - polynomial * (-(x * x) / 2.0).exp();
    if x >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

/// A request count for one step: the expected count with some noise.
fn draw_count(random: &mut Random, expected: f64) -> u64 {
    if expected <= 0.0 {
        return 0;
    }
    let noisy = expected + expected.sqrt() * random.normal();
    noisy.round().max(0.0) as u64
}

fn write_request_histogram(writer: &mut Writer, random: &mut Random, context: &Dataset) -> anyhow::Result<()> {
    const FAMILY: &str = "http_server_request_duration_seconds";
    writer.raw(&format!(
        "# HELP {FAMILY} Duration of HTTP server requests.\n# TYPE {FAMILY} histogram\n# UNIT {FAMILY} seconds\n"
    ))?;
    let tenant_shares = context.tenant_shares();
    let mut bucket_series: Vec<String> = Vec::with_capacity(BUCKETS.len() + 1);
    for route in &ROUTES {
        for (method_index, method) in route.methods.iter().enumerate() {
            let method_share = if route.methods.len() == 1 {
                1.0
            } else if method_index == 0 {
                0.8
            } else {
                0.2 / (route.methods.len() - 1) as f64
            };
            let statuses = if matches!(*method, "GET") { &READ_STATUSES } else { &WRITE_STATUSES };
            for (status, status_share) in statuses {
                let server_error = status.starts_with('5');
                // Server errors are slower (timeouts), client errors faster.
                let median = match *status {
                    "500" => route.median_latency * 4.0,
                    "503" => route.median_latency * 0.2,
                    code if code.starts_with('4') => route.median_latency * 0.5,
                    _ => route.median_latency,
                };
                let bucket_shares: Vec<f64> =
                    BUCKETS.iter().map(|bound| normal_cdf((bound.ln() - median.ln()) / 0.8)).collect();
                // During the slowdown every request of the route takes ten times as long.
                let slow_median = median * SLOWDOWN_FACTOR;
                let slow_shares: Vec<f64> =
                    BUCKETS.iter().map(|bound| normal_cdf((bound.ln() - slow_median.ln()) / 0.8)).collect();
                for (tenant, tenant_share) in tenant_shares.iter().enumerate() {
                    let labels = format!(
                        "service_name=\"busflow_api\",http_route=\"{}\",http_request_method=\"{method}\",\
                         http_response_status_code=\"{status}\",tenant_id=\"tenant-{tenant:03}\"",
                        route.path
                    );
                    bucket_series.clear();
                    for bound in BUCKETS {
                        bucket_series.push(format!("{FAMILY}_bucket{{{labels},le=\"{bound}\"}}"));
                    }
                    bucket_series.push(format!("{FAMILY}_bucket{{{labels},le=\"+Inf\"}}"));
                    let count_series = format!("{FAMILY}_count{{{labels}}}");
                    let sum_series = format!("{FAMILY}_sum{{{labels}}}");
                    writer.series += bucket_series.len() as u64 + 2;

                    // A few tenant/status pairs never happen at all.
                    let silent = !server_error && random.unit() < 0.05;
                    let rate = route.requests_per_second * method_share * status_share * tenant_share;
                    let mut buckets = [0u64; BUCKETS.len()];
                    let mut count = 0u64;
                    let mut sum = 0.0f64;
                    for (index, timestamp) in context.timestamps.iter().enumerate() {
                        let incident = route.path == "/api/bookings"
                            && server_error
                            && ERROR_BURST.contains(&context.progress(index));
                        let slow = route.path == "/api/bookings" && SLOWDOWN.contains(&context.progress(index));
                        let (shares, request_median) =
                            if slow { (&slow_shares, slow_median) } else { (&bucket_shares, median) };
                        let factor = context.traffic_factor(index) * if incident { 25.0 } else { 1.0 };
                        let new_requests = if silent { 0 } else { draw_count(random, rate * context.step * factor) };
                        for (bucket, share) in buckets.iter_mut().zip(shares) {
                            *bucket += (new_requests as f64 * share).round() as u64;
                        }
                        count += new_requests;
                        sum += new_requests as f64 * request_median * 1.38 * random.range(0.9, 1.1);
                        for (series, value) in bucket_series.iter().zip(buckets) {
                            writer.sample(series, value, timestamp)?;
                        }
                        writer.sample(&bucket_series[BUCKETS.len()], count, timestamp)?;
                        writer.sample(&count_series, count, timestamp)?;
                        writer.sample(&sum_series, format_args!("{sum:.3}"), timestamp)?;
                    }
                }
            }
        }
    }
    Ok(())
}

fn write_traefik_counter(writer: &mut Writer, random: &mut Random, context: &Dataset) -> anyhow::Result<()> {
    const FAMILY: &str = "traefik_service_requests";
    writer.raw(&format!(
        "# HELP {FAMILY} How many HTTP requests processed on a service, partitioned by status code, protocol, and method.\n\
         # TYPE {FAMILY} counter\n"
    ))?;
    for (service_index, service) in TRAEFIK_SERVICES.iter().enumerate() {
        let service_rate = 200.0 / (service_index + 1) as f64;
        for method in ["GET", "POST"] {
            let method_share = if method == "GET" { 0.75 } else { 0.25 };
            for (code, code_share) in TRAEFIK_CODES {
                let series = format!(
                    "{FAMILY}_total{{code=\"{code}\",method=\"{method}\",protocol=\"http\",service=\"{service}\"}}"
                );
                writer.series += 1;
                let rate = service_rate * method_share * code_share;
                let mut total = random.range(0.0, 1e6).round();
                for (index, timestamp) in context.timestamps.iter().enumerate() {
                    total += draw_count(random, rate * context.step * context.traffic_factor(index)) as f64;
                    writer.sample(&series, total, timestamp)?;
                }
            }
        }
    }
    Ok(())
}

fn write_gauges(writer: &mut Writer, random: &mut Random, context: &Dataset) -> anyhow::Result<()> {
    writer.raw("# HELP busflow_active_bookings Bookings currently open.\n# TYPE busflow_active_bookings gauge\n")?;
    for (tenant, share) in context.tenant_shares().iter().enumerate() {
        let series =
            format!("busflow_active_bookings{{service_name=\"busflow_api\",tenant_id=\"tenant-{tenant:03}\"}}");
        writer.series += 1;
        let mut bookings = (share * 50_000.0).round();
        for timestamp in context.timestamps {
            bookings = (bookings + (random.normal() * bookings.sqrt().max(1.0)).round()).max(0.0);
            writer.sample(&series, bookings, timestamp)?;
        }
    }
    writer.raw(
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n\
         # TYPE process_resident_memory_bytes gauge\n# UNIT process_resident_memory_bytes bytes\n",
    )?;
    for instance in 0..INSTANCES {
        let series = format!("process_resident_memory_bytes{{instance=\"api-{instance}:9464\",job=\"busflow_api\"}}");
        writer.series += 1;
        let mut bytes = random.range(300e6, 600e6).round();
        for timestamp in context.timestamps {
            bytes = (bytes + random.normal() * 1e6).round().max(50e6);
            writer.sample(&series, bytes, timestamp)?;
        }
    }
    writer.raw("# HELP up Whether the target was reachable.\n# TYPE up gauge\n")?;
    for instance in 0..INSTANCES {
        let series = format!("up{{instance=\"api-{instance}:9464\",job=\"busflow_api\"}}");
        writer.series += 1;
        for (index, timestamp) in context.timestamps.iter().enumerate() {
            let down = instance == 0 && (0.4..0.42).contains(&context.progress(index));
            writer.sample(&series, if down { 0 } else { 1 }, timestamp)?;
        }
    }
    Ok(())
}
