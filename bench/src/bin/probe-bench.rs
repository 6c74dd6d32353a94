//! The prober benchmark (driven by `bench/probe.sh`): many HTTP targets at a
//! short interval, checked by alertbook's prober and by blackbox_exporter
//! scraped by Prometheus, on the same target server.
//!
//! - `serve`: the target server, an HTTP/1.1 server on one thread answering
//!   every request with 200 "ok" (a separate process, so both probers face
//!   the same server and neither pays for it).
//! - `alertbook`: runs `probe::schedule` over `--count` targets
//!   (`<base>/t/<i>`) at `--interval` for `--duration`, samples stored in an
//!   in-memory durable store, and prints checks, missed intervals, check
//!   latency and the CPU time it used.
//! - `prometheus`: reads the same figures for blackbox_exporter from the
//!   Prometheus that scraped it (`probe_success` and `probe_duration_seconds`
//!   over the last `--duration`), given the CPU seconds the script measured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Serve {
        #[arg(long)]
        listen: String,
    },
    Alertbook {
        #[arg(long)]
        base: String,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value = "1s")]
        interval: String,
        #[arg(long, default_value = "30s")]
        duration: String,
    },
    Prometheus {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value = "1s")]
        interval: String,
        #[arg(long, default_value = "30s")]
        duration: String,
        /// CPU seconds blackbox_exporter used over the run (measured by the script).
        #[arg(long)]
        blackbox_cpu: f64,
        /// CPU seconds Prometheus used over the run.
        #[arg(long)]
        prometheus_cpu: f64,
    },
}

fn duration(text: &str) -> anyhow::Result<Duration> {
    catalog::duration::parse_duration(text).map_err(|error| anyhow::anyhow!(error))
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Missed intervals of one target from its check timestamps (ms).
fn missed(timestamps: &mut [i64], interval_ms: i64, start_ms: i64, end_ms: i64) -> i64 {
    timestamps.sort_unstable();
    let mut missed = 0;
    let mut previous = None;
    for &timestamp in timestamps.iter() {
        if let Some(previous) = previous {
            let steps = ((timestamp - previous) as f64 / interval_ms as f64).round() as i64;
            missed += (steps - 1).max(0);
        }
        previous = Some(timestamp);
    }
    // Intervals with no check at the edges of the window.
    if let (Some(first), Some(last)) = (timestamps.first(), timestamps.last()) {
        missed += ((first - start_ms) / interval_ms).max(0) + ((end_ms - last) / interval_ms).max(0);
    } else {
        missed += (end_ms - start_ms) / interval_ms;
    }
    missed
}

fn report(name: &str, checks: usize, failures: usize, missed: i64, expected: i64, latencies: &mut [f64], cpu: f64) {
    latencies.sort_by(f64::total_cmp);
    println!(
        "{name}: checks={checks} expected={expected} missed_intervals={missed} failures={failures} \
         latency_ms p50={:.2} p90={:.2} p99={:.2} max={:.2} cpu_seconds={cpu:.2} checks_per_cpu_second={:.0}",
        quantile(latencies, 0.5) * 1000.0,
        quantile(latencies, 0.9) * 1000.0,
        quantile(latencies, 0.99) * 1000.0,
        latencies.last().copied().unwrap_or(f64::NAN) * 1000.0,
        checks as f64 / cpu.max(1e-9),
    );
}

async fn serve(listen: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await.context("bind")?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut reader = BufReader::new(stream);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line.trim_end().is_empty() {
                    break;
                }
            }
            let _ = reader
                .get_mut()
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                )
                .await;
            let _ = reader.get_mut().shutdown().await;
        });
    }
}

/// Keeps every probe_success and probe_duration_seconds sample, and stores
/// the batch in the durable store as `alertbook run` does.
struct Recording {
    durable: probe::schedule::DurableSink,
    seen: Mutex<Vec<(String, &'static str, i64, f64)>>,
}

impl probe::schedule::Sink for Recording {
    fn append(&self, batch: &probe::outcome::Batch) -> Result<(), String> {
        let mut seen = self.seen.lock().expect("seen");
        for (labels, samples) in batch {
            let name = match labels.metric_name() {
                Some("probe_success") => "success",
                Some("probe_duration_seconds") => "duration",
                _ => continue,
            };
            let probe = labels.get("probe").unwrap_or("").to_owned();
            for &(timestamp, value) in samples {
                seen.push((probe.clone(), name, timestamp, value));
            }
        }
        drop(seen);
        self.durable.append(batch)
    }
}

async fn run_alertbook(base: &str, count: usize, interval: Duration, length: Duration) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let checks = (0..count)
        .map(|index| {
            let target = catalog::probes::ProbeTarget {
                name: format!("t{index}"),
                prober: "http".into(),
                target: format!("{base}/t/{index}"),
                ..Default::default()
            };
            probe::Check::new("bench", &target, interval, std::path::Path::new(".")).map_err(anyhow::Error::from)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let store = Arc::new(tsdb::MemStore::new());
    let sink = Arc::new(Recording {
        durable: probe::schedule::DurableSink {
            durable: Arc::new(ingest::durable::DurableStore::in_memory(store)),
            admit: Arc::new(|_| true),
        },
        seen: Mutex::default(),
    });
    let clock = probe::schedule::SystemClock;
    let handle = probe::schedule::spawn(checks, sink.clone(), Arc::new(clock));
    // One interval to get every probe to its phase, then the measured window.
    tokio::time::sleep(interval).await;
    let cpu_start = cpu_seconds();
    let start_ms = probe::schedule::Clock::now_ms(&clock);
    tokio::time::sleep(length).await;
    let end_ms = probe::schedule::Clock::now_ms(&clock);
    let cpu = cpu_seconds() - cpu_start;
    let skipped = handle.stats.missed_intervals.load(std::sync::atomic::Ordering::Relaxed);
    handle.shutdown().await;
    let seen = sink.seen.lock().expect("seen");
    let mut timestamps: HashMap<&str, Vec<i64>> = HashMap::new();
    let mut latencies = Vec::new();
    let (mut checks, mut failures) = (0, 0);
    for (probe, name, timestamp, value) in seen.iter() {
        if *timestamp < start_ms || *timestamp >= end_ms {
            continue;
        }
        match *name {
            "success" => {
                checks += 1;
                failures += usize::from(*value != 1.0);
                timestamps.entry(probe.as_str()).or_default().push(*timestamp);
            }
            _ => latencies.push(*value),
        }
    }
    let interval_ms = interval.as_millis() as i64;
    let mut missed_total: i64 = (0..count)
        .map(|index| {
            let mut found = timestamps.remove(format!("t{index}").as_str()).unwrap_or_default();
            missed(&mut found, interval_ms, start_ms, end_ms)
        })
        .sum();
    missed_total = missed_total.max(0);
    let expected = count as i64 * ((end_ms - start_ms) / interval_ms);
    report("alertbook", checks, failures, missed_total, expected, &mut latencies, cpu);
    println!("alertbook: ticks skipped behind a running check: {skipped}");
    Ok(())
}

/// A target's label and its (seconds, value) samples.
type TargetSamples = (String, Vec<(f64, f64)>);

fn run_prometheus(
    url: &str,
    count: usize,
    interval: Duration,
    length: Duration,
    blackbox: f64,
    prom: f64,
) -> anyhow::Result<()> {
    let seconds = length.as_secs();
    let fetch = |query: &str| -> anyhow::Result<serde_json::Value> {
        let text = ureq::get(&format!("{url}/api/v1/query"))
            .query("query", query)
            .call()
            .context("query Prometheus")?
            .body_mut()
            .read_to_string()?;
        Ok(serde_json::from_str(&text)?)
    };
    let matrix = |query: &str| -> anyhow::Result<Vec<TargetSamples>> {
        let answer = fetch(query)?;
        let result = answer["data"]["result"].as_array().cloned().unwrap_or_default();
        Ok(result
            .iter()
            .map(|series| {
                let target = series["metric"]["target"].as_str().unwrap_or("").to_owned();
                let values = series["values"]
                    .as_array()
                    .map(|values| {
                        values
                            .iter()
                            .map(|pair| {
                                let time = pair[0].as_f64().unwrap_or(0.0);
                                let value = pair[1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
                                (time, value)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (target, values)
            })
            .collect())
    };
    let end = fetch("time()")?["data"]["result"][1].as_str().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let start_ms = ((end - seconds as f64) * 1000.0) as i64;
    let end_ms = (end * 1000.0) as i64;
    let success = matrix(&format!("probe_success[{seconds}s]"))?;
    let durations = matrix(&format!("probe_duration_seconds[{seconds}s]"))?;
    let (mut checks, mut failures) = (0, 0);
    let interval_ms = interval.as_millis() as i64;
    let mut missed_total = 0;
    for (_, values) in &success {
        checks += values.len();
        failures += values.iter().filter(|(_, value)| *value != 1.0).count();
        let mut timestamps: Vec<i64> = values.iter().map(|(time, _)| (time * 1000.0) as i64).collect();
        missed_total += missed(&mut timestamps, interval_ms, start_ms, end_ms);
    }
    // Targets Prometheus never got a probe_success from.
    missed_total += (count.saturating_sub(success.len()) as i64) * (seconds as i64 * 1000 / interval_ms);
    let mut latencies: Vec<f64> =
        durations.iter().flat_map(|(_, values)| values.iter().map(|(_, value)| *value)).collect();
    let expected = count as i64 * (seconds as i64 * 1000 / interval_ms);
    report("blackbox_exporter", checks, failures, missed_total, expected, &mut latencies, blackbox);
    println!(
        "blackbox_exporter + prometheus: cpu_seconds={:.2} checks_per_cpu_second={:.0}",
        blackbox + prom,
        checks as f64 / (blackbox + prom).max(1e-9)
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { listen } => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(serve(&listen))
        }
        Command::Alertbook { base, count, interval, duration: length } => {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(run_alertbook(&base, count, duration(&interval)?, duration(&length)?))
        }
        Command::Prometheus { url, count, interval, duration: length, blackbox_cpu, prometheus_cpu } => {
            run_prometheus(&url, count, duration(&interval)?, duration(&length)?, blackbox_cpu, prometheus_cpu)
        }
    }
}
