//! Remote-write ingest, alertbook beside Prometheus and VictoriaMetrics: the
//! same series and samples, encoded once, sent to each `/api/v1/write` in turn
//! by the same number of concurrent senders. Prints samples per second,
//! resident memory per active series, and the ratios of alertbook to each peer.
//!
//! Samples are sent time-major (every series at t, then every series at t+15s),
//! the way a fleet of scrapes arrives, starting an hour before now so every
//! receiver accepts them into its head.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alertbook_bench::remote_write::{Load, LoadArguments};
use anyhow::Context;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Remote-write throughput and memory: alertbook vs Prometheus and VictoriaMetrics")]
struct Arguments {
    /// alertbook's base URL.
    #[arg(long)]
    alertbook: String,
    /// Prometheus's base URL (started with --web.enable-remote-write-receiver).
    #[arg(long)]
    prometheus: String,
    /// VictoriaMetrics' base URL (single-node `victoria-metrics`); left out when not given.
    #[arg(long)]
    victoriametrics: Option<String>,
    /// Process ids, for resident memory.
    #[arg(long)]
    alertbook_pid: u32,
    #[arg(long)]
    prometheus_pid: u32,
    #[arg(long)]
    victoriametrics_pid: Option<u32>,
    #[command(flatten)]
    load: LoadArguments,
}

fn resident_kilobytes(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0)
}

struct Outcome {
    seconds: f64,
    rss_before_kb: f64,
    rss_after_kb: f64,
}

/// Sends every body to `base_url` with `senders` threads; fails on any non-2xx
/// answer. Each sender sends its share of the requests ([`Load::sender_share`]).
fn drive(base_url: &str, pid: u32, bodies: &Arc<Vec<Vec<u8>>>, load: &Load, senders: usize) -> anyhow::Result<Outcome> {
    let url = format!("{}/api/v1/write", base_url.trim_end_matches('/'));
    let rss_before_kb = resident_kilobytes(pid);
    let begun = Instant::now();
    let workers: Vec<_> = (0..senders)
        .map(|sender| {
            let (url, bodies) = (url.clone(), bodies.clone());
            let mine = load.sender_share(sender, senders);
            std::thread::spawn(move || -> anyhow::Result<()> {
                let config = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(60)))
                    .http_status_as_error(false)
                    .build();
                let agent: ureq::Agent = config.into();
                for index in mine {
                    let body = &bodies[index];
                    let response = agent
                        .post(&url)
                        .header("Content-Type", "application/x-protobuf")
                        .header("Content-Encoding", "snappy")
                        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
                        .send(body.as_slice())
                        .with_context(|| format!("request {index} to {url}"))?;
                    let status = response.status().as_u16();
                    if !(200..300).contains(&status) {
                        let text = response.into_body().read_to_string().unwrap_or_default();
                        anyhow::bail!("request {index} to {url}: status {status}: {text}");
                    }
                }
                Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.join().map_err(|_| anyhow::anyhow!("sender panicked"))??;
    }
    let seconds = begun.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    Ok(Outcome { seconds, rss_before_kb, rss_after_kb: resident_kilobytes(pid) })
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64);
    let load = arguments.load.load(now_ms - 3_600_000);
    let bodies = Arc::new(load.bodies());
    let samples = arguments.load.series * arguments.load.rounds;
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    println!(
        "{} series x {} rounds = {samples} samples in {} requests ({:.1} MiB snappy), {} senders",
        arguments.load.series,
        arguments.load.rounds,
        bodies.len(),
        bytes as f64 / 1048576.0,
        arguments.load.senders
    );
    let mut servers = vec![
        ("alertbook", arguments.alertbook.as_str(), arguments.alertbook_pid),
        ("prometheus", arguments.prometheus.as_str(), arguments.prometheus_pid),
    ];
    if let (Some(url), Some(pid)) = (&arguments.victoriametrics, arguments.victoriametrics_pid) {
        servers.push(("victoriametrics", url.as_str(), pid));
    }
    let mut results = Vec::new();
    for (name, url, pid) in servers {
        let outcome = drive(url, pid, &bodies, &load, arguments.load.senders)?;
        results.push((name, outcome));
    }
    println!();
    println!(
        "{:<16} {:>14} {:>10} {:>14} {:>20}",
        "server", "samples/s", "RSS MiB", "RSS grew MiB", "bytes/active series"
    );
    let mut rates = Vec::new();
    let mut per_series = Vec::new();
    for (name, outcome) in &results {
        let rate = samples as f64 / outcome.seconds;
        let grown = (outcome.rss_after_kb - outcome.rss_before_kb).max(0.0) * 1024.0;
        let bytes_per_series = grown / arguments.load.series as f64;
        rates.push(rate);
        per_series.push(bytes_per_series);
        println!(
            "{name:<16} {rate:>14.0} {:>10.1} {:>14.1} {bytes_per_series:>20.0}",
            outcome.rss_after_kb / 1024.0,
            grown / 1048576.0
        );
    }
    println!();
    for (index, (peer, _)) in results.iter().enumerate().skip(1) {
        println!("ingest rate ratio alertbook/{peer}: {:.2}", rates[0] / rates[index]);
        println!("memory per active series ratio alertbook/{peer}: {:.2}", per_series[0] / per_series[index].max(1.0));
    }
    Ok(())
}
