//! The alerts page under load: `alertbook run` with the Busflow catalog, N
//! probed certificates remote-written about to expire so that
//! `TlsCertExpiringSoon` fires N times, then the alerts page (`/alerts`,
//! unfiltered and filtered by a label matcher) timed over HTTP beside
//! `/api/v1/alerts` (the same alerts as JSON) on the same server and data.
//! Prints p50/p90/max, the body size, the UI/JSON ratio and the load.
//!
//!   ui-bench [--alertbook target/release/alertbook] [--alerts 1000] [--requests 50] [--work DIR]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};

#[derive(Parser)]
struct Arguments {
    #[arg(long, default_value = "target/release/alertbook")]
    alertbook: PathBuf,
    /// How many alerts fire.
    #[arg(long, default_value_t = 1000)]
    alerts: usize,
    /// Timed requests per page.
    #[arg(long, default_value_t = 50)]
    requests: usize,
    #[arg(long, default_value = "target/bench-ui")]
    work: PathBuf,
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim().to_owned()
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// N certificates of the `tls-certificates` probe group that expire in a day.
fn certificates(count: usize) -> WriteRequest {
    let now = now_ms();
    let timeseries = (0..count)
        .map(|index| TimeSeries {
            labels: vec![
                Label { name: "__name__".into(), value: "probe_ssl_earliest_cert_expiry".into() },
                Label { name: "probe".into(), value: format!("bench-{index:04}") },
                Label { name: "probe_group".into(), value: "tls-certificates".into() },
                Label { name: "target".into(), value: format!("host-{index:04}.bench.example:443") },
            ],
            samples: vec![Sample { value: (now / 1000 + 86_400) as f64, timestamp: now }],
            exemplars: vec![],
            histograms: vec![],
        })
        .collect();
    WriteRequest { timeseries, metadata: vec![] }
}

fn firing_count(agent: &ureq::Agent, url: &str) -> anyhow::Result<usize> {
    let text = agent.get(&format!("{url}/api/v1/alerts")).call()?.body_mut().read_to_string()?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    Ok(json["data"]["alerts"].as_array().map_or(0, |alerts| {
        alerts.iter().filter(|alert| alert["labels"]["alertname"] == "TlsCertExpiringSoon").count()
    }))
}

/// Times `requests` GETs of `path`; returns the sorted latencies in ms and the last body.
fn time_page(agent: &ureq::Agent, url: &str, path: &str, requests: usize) -> anyhow::Result<(Vec<f64>, String)> {
    let mut latencies = Vec::with_capacity(requests);
    let mut body = String::new();
    for _ in 0..3 {
        agent.get(&format!("{url}{path}")).call()?.body_mut().read_to_string()?;
    }
    for _ in 0..requests {
        let started = Instant::now();
        let mut response = agent.get(&format!("{url}{path}")).call().with_context(|| format!("GET {path}"))?;
        body = response.body_mut().with_config().limit(64 << 20).read_to_string()?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    Ok((latencies, body))
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let work = &arguments.work;
    let _ = std::fs::remove_dir_all(work);
    let catalog = work.join("catalog");
    copy_tree(&root.join("catalog/busflow"), &catalog)?;
    let rules = catalog.join("rules/metrics.rules.yaml");
    let text = std::fs::read_to_string(&rules)?;
    std::fs::write(&rules, text.replace("interval: 5m", "interval: 1s").replace("interval: 1m", "interval: 1s"))?;
    let config = work.join("alertbook.yaml");
    std::fs::write(&config, "scrape_self: false\n")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let url = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(&arguments.alertbook)
        .args(["run", "--no-probes", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(work.join("data"))
        .arg("--catalog")
        .arg(&catalog)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", arguments.alertbook.display()))?;
    let stderr = child.stderr.take().context("stderr")?;
    std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});
    let _server = Server(child);
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(60))).build().into();
    let deadline = Instant::now() + Duration::from_secs(60);
    while agent.get(&format!("{url}/-/ready")).call().is_err() {
        if Instant::now() > deadline {
            bail!("alertbook did not become ready");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    agent
        .post(&format!("{url}/api/v1/write"))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .send(&encode(&certificates(arguments.alerts))[..])
        .context("remote write")?;
    let started = Instant::now();
    loop {
        let firing = firing_count(&agent, &url)?;
        if firing >= arguments.alerts {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("only {firing} of {} alerts fired within 120 s", arguments.alerts);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    println!("{} alerts firing after {:.1} s", arguments.alerts, started.elapsed().as_secs_f64());
    // Let the first triage runs of every alert finish, so the timing sees a settled server.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_secs(120) {
        let text = agent
            .get(&format!("{url}/api/v1/triage?limit={}", arguments.alerts))
            .call()?
            .body_mut()
            .read_to_string()?;
        let runs: serde_json::Value = serde_json::from_str(&text)?;
        if runs["data"]["runs"].as_array().is_some_and(|runs| runs.len() >= arguments.alerts) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("triage settled after {:.1} s more", settle.elapsed().as_secs_f64());
    println!("load before: {}", load());
    let pages = [
        ("/alerts", "alerts page, every alert"),
        ("/alerts?labels=probe%3D~%22bench-00.*%22", "alerts page, label matcher"),
        ("/api/v1/alerts", "JSON alert API (reference)"),
    ];
    let mut p50s = Vec::new();
    for (path, name) in pages {
        let (latencies, body) = time_page(&agent, &url, path, arguments.requests)?;
        let rows = body.matches("class=\"alert-link\"").count();
        let (p50, p90, max) =
            (percentile(&latencies, 0.5), percentile(&latencies, 0.9), latencies[latencies.len() - 1]);
        p50s.push(p50);
        println!(
            "{name:<32} {path:<45} p50 {p50:7.1} ms  p90 {p90:7.1} ms  max {max:7.1} ms  {:>8} bytes{}",
            body.len(),
            if path.starts_with("/alerts") { format!("  {rows} rows") } else { String::new() }
        );
    }
    println!("ratio alerts page / JSON API (p50): {:.2}", p50s[0] / p50s[2]);
    println!("load after:  {}", load());
    Ok(())
}
