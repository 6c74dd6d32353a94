//! The prober benchmark (driven by `bench/probe.sh`): many HTTP targets at a
//! short interval, checked by `alertbook run`'s prober and by
//! blackbox_exporter scraped by Prometheus, on the same target server, each
//! read back through its own Prometheus query API by the same code.
//!
//! - `serve`: the target server, an HTTP/1.1 server answering every request
//!   with 200 "ok" and closing the connection (a separate process, so both
//!   probers face the same server and neither pays for it).
//! - `ready`: waits until a Prometheus query API shows `--count` targets
//!   with a recent sample of `--selector` (and, with `--up`, that many
//!   targets up), printing progress; exits 1 with what it saw when
//!   `--timeout` passes.
//! - `report`: reads the samples of `--success` and `--duration` between
//!   `--start` and `--end` (Unix seconds) from a Prometheus query API and
//!   prints, for `--name`, the checks per target, missed intervals (gaps
//!   between a target's checks, and intervals without one at the edges),
//!   failures, check duration quantiles, and the CPU seconds and RSS the
//!   script measured.

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
    Ready {
        /// The Prometheus query API's base URL.
        #[arg(long)]
        url: String,
        /// A selector of one series per target (`probe_success{...}`).
        #[arg(long)]
        selector: String,
        /// An `up` selector whose every target must be 1 as well.
        #[arg(long)]
        up: Option<String>,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value = "120s")]
        timeout: String,
    },
    Report {
        #[arg(long)]
        name: String,
        #[arg(long)]
        url: String,
        /// The `probe_success` selector of the measured targets.
        #[arg(long)]
        success: String,
        /// The `probe_duration_seconds` selector of the measured targets.
        #[arg(long)]
        duration: String,
        /// An `up` selector: scrapes that failed are counted (Prometheus side).
        #[arg(long)]
        up: Option<String>,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value = "1s")]
        interval: String,
        /// The measured window, Unix seconds.
        #[arg(long)]
        start: f64,
        #[arg(long)]
        end: f64,
        /// CPU seconds the measured processes used in the window.
        #[arg(long)]
        cpu: f64,
        /// Their resident memory at the end of the window, kB.
        #[arg(long)]
        rss_kb: u64,
    },
}

fn duration(text: &str) -> anyhow::Result<Duration> {
    catalog::duration::parse_duration(text).map_err(|error| anyhow::anyhow!(error))
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Missed intervals of one target from its sorted check timestamps (ms)
/// within `[start_ms, end_ms)`: the intervals a gap between two checks
/// spans beyond one, and whole intervals without a check at either edge.
fn missed(timestamps: &[i64], interval_ms: i64, start_ms: i64, end_ms: i64) -> i64 {
    let (Some(first), Some(last)) = (timestamps.first(), timestamps.last()) else {
        return (end_ms - start_ms) / interval_ms;
    };
    let gaps: i64 = timestamps
        .windows(2)
        .map(|pair| (((pair[1] - pair[0]) as f64 / interval_ms as f64).round() as i64 - 1).max(0))
        .sum();
    gaps + ((first - start_ms) / interval_ms).max(0) + ((end_ms - 1 - last) / interval_ms).max(0)
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

/// A Prometheus query API.
struct Api {
    url: String,
}

/// One series: its `target` label and its (Unix ms, value) samples.
struct Series {
    target: String,
    samples: Vec<(i64, f64)>,
}

impl Api {
    fn query(&self, query: &str, time: Option<f64>) -> anyhow::Result<serde_json::Value> {
        let mut request = ureq::get(&format!("{}/api/v1/query", self.url)).query("query", query);
        if let Some(time) = time {
            request = request.query("time", format!("{time:.3}"));
        }
        let text = request
            .call()
            .with_context(|| format!("query {query:?} at {}", self.url))?
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_string()?;
        let answer: serde_json::Value = serde_json::from_str(&text)?;
        anyhow::ensure!(answer["status"] == "success", "query {query:?}: {text}");
        Ok(answer["data"]["result"].clone())
    }

    fn scalar(&self, query: &str, time: Option<f64>) -> anyhow::Result<f64> {
        let result = self.query(query, time)?;
        Ok(result[0]["value"][1].as_str().and_then(|value| value.parse().ok()).unwrap_or(0.0))
    }

    /// Every sample of `selector` in `(end - range, end]`.
    fn samples(&self, selector: &str, end: f64, range: Duration) -> anyhow::Result<Vec<Series>> {
        let result = self.query(&format!("{selector}[{}ms]", range.as_millis()), Some(end))?;
        let series = result.as_array().cloned().unwrap_or_default();
        Ok(series
            .iter()
            .map(|series| Series {
                target: series["metric"]["target"].as_str().unwrap_or_default().to_owned(),
                samples: series["values"]
                    .as_array()
                    .map(|values| {
                        values
                            .iter()
                            .map(|pair| {
                                let time = pair[0].as_f64().unwrap_or(0.0);
                                let value = pair[1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
                                ((time * 1000.0).round() as i64, value)
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect())
    }
}

fn ready(url: &str, selector: &str, up: Option<&str>, count: usize, timeout: Duration) -> anyhow::Result<()> {
    let api = Api { url: url.to_owned() };
    let started = std::time::Instant::now();
    let mut last_report = std::time::Instant::now();
    loop {
        // Targets with a sample in the last 5 s (an instant query looks back 5 minutes).
        let seen = api.scalar(&format!("count(count_over_time({selector}[5s]))"), None).unwrap_or(0.0) as usize;
        let healthy = match up {
            Some(up) => api.scalar(&format!("count(({up}) == 1)"), None).unwrap_or(0.0) as usize,
            None => count,
        };
        if seen >= count && healthy >= count {
            eprintln!("[probe-bench] {url}: {seen} targets reporting, {healthy} up, after {:.0?}", started.elapsed());
            return Ok(());
        }
        if started.elapsed() > timeout {
            let detail = match up {
                Some(up) => {
                    let down = api.query(&format!("topk(3, ({up}) == 0)"), None).unwrap_or_default();
                    format!("; some targets down: {down}")
                }
                None => String::new(),
            };
            anyhow::bail!("{url}: only {seen} of {count} targets reporting and {healthy} up after {timeout:?}{detail}");
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("[probe-bench] {url}: {seen} of {count} targets reporting, {healthy} up");
            last_report = std::time::Instant::now();
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    name: &str,
    url: &str,
    success: &str,
    duration_selector: &str,
    up: Option<&str>,
    count: usize,
    interval: Duration,
    (start, end): (f64, f64),
    cpu: f64,
    rss_kb: u64,
) -> anyhow::Result<()> {
    let api = Api { url: url.to_owned() };
    let range = Duration::from_secs_f64(end - start);
    let (start_ms, end_ms) = ((start * 1000.0) as i64, (end * 1000.0) as i64);
    let interval_ms = interval.as_millis() as i64;
    let successes = api.samples(success, end, range)?;
    let durations = api.samples(duration_selector, end, range)?;
    let (mut checks, mut failures, mut missed_total) = (0usize, 0usize, 0i64);
    for series in &successes {
        let timestamps: Vec<i64> = series.samples.iter().map(|(time, _)| *time).collect();
        checks += timestamps.len();
        failures += series.samples.iter().filter(|(_, value)| *value != 1.0).count();
        missed_total += missed(&timestamps, interval_ms, start_ms, end_ms);
    }
    let silent = count.saturating_sub(successes.len());
    missed_total += silent as i64 * ((end_ms - start_ms) / interval_ms);
    let mut latencies: Vec<f64> =
        durations.iter().flat_map(|series| series.samples.iter().map(|(_, value)| *value)).collect();
    latencies.sort_by(f64::total_cmp);
    let expected = count as i64 * ((end_ms - start_ms) / interval_ms);
    let targets = successes.iter().filter(|series| !series.target.is_empty()).count();
    println!(
        "{name}: window={:.1}s targets={targets}/{count} checks={checks} expected={expected} missed_intervals={missed_total} \
         failures={failures} duration_ms p50={:.2} p99={:.2} max={:.2} cpu_seconds={cpu:.2} rss_mb={:.1} \
         cpu_ms_per_check={:.3}",
        end - start,
        quantile(&latencies, 0.5) * 1000.0,
        quantile(&latencies, 0.99) * 1000.0,
        latencies.last().copied().unwrap_or(f64::NAN) * 1000.0,
        rss_kb as f64 / 1024.0,
        cpu * 1000.0 / (checks.max(1) as f64),
    );
    if let Some(up) = up {
        let scrapes = api.scalar(&format!("sum(count_over_time({up}[{}ms]))", range.as_millis()), Some(end))?;
        let good = api.scalar(&format!("sum(sum_over_time({up}[{}ms]))", range.as_millis()), Some(end))?;
        println!("{name}: scrapes={scrapes:.0} failed_scrapes={:.0}", scrapes - good);
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { listen } => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(serve(&listen))
        }
        Command::Ready { url, selector, up, count, timeout } => {
            ready(&url, &selector, up.as_deref(), count, duration(&timeout)?)
        }
        Command::Report {
            name,
            url,
            success,
            duration: duration_selector,
            up,
            count,
            interval,
            start,
            end,
            cpu,
            rss_kb,
        } => report(
            &name,
            &url,
            &success,
            &duration_selector,
            up.as_deref(),
            count,
            duration(&interval)?,
            (start, end),
            cpu,
            rss_kb,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::missed;

    #[test]
    fn missed_intervals_count_gaps_and_empty_edges() {
        // Every second from 0 to 9 s in a 10 s window: nothing missed.
        let every: Vec<i64> = (0..10).map(|second| second * 1000 + 300).collect();
        assert_eq!(missed(&every, 1000, 0, 10_000), 0);
        // Two checks lost in the middle.
        let holes: Vec<i64> = every.iter().copied().filter(|time| *time != 4_300 && *time != 5_300).collect();
        assert_eq!(missed(&holes, 1000, 0, 10_000), 2);
        // The first three seconds without a check.
        assert_eq!(missed(&every[3..], 1000, 0, 10_000), 3);
        assert_eq!(missed(&[], 1000, 0, 10_000), 10);
    }
}
