//! Routing dispatch latency, alertbook beside Alertmanager on the same data:
//! an `alertmanager.yml` with N routes (`service="svc-<i>"`), M alerts each
//! in its own group, posted through API v2 in batches; the latency of an
//! alert is the time from the start of its batch's POST to the arrival of
//! its group's first notification at a local webhook. Also times alertbook's
//! routing engine alone (put + one flush of every group) in process.
//!
//! By default each batch is posted once the previous one was answered (a
//! closed loop: a server that answers slowly also receives the alerts more
//! slowly). With `--interval-ms N` batch `i` is due at `i * N` ms after the
//! start whatever the answers (an open loop: both servers get the same offered
//! load), and latency runs from when the batch was due. Each system's line
//! also gives the time its POSTs took, the CPU its process used during the
//! run (user + system, from `/proc/<pid>/stat`, a figure the machine's load
//! disturbs far less than latency) and the load average.
//!
//!   routing-bench --alertbook BIN --alertmanager BIN [--alerts 10000] [--routes 1000] [--interval-ms 0]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;

#[derive(Parser)]
struct Arguments {
    /// The alertbook binary.
    #[arg(long)]
    alertbook: String,
    /// The Alertmanager binary.
    #[arg(long, default_value = "prometheus-alertmanager")]
    alertmanager: String,
    #[arg(long, default_value_t = 10_000)]
    alerts: usize,
    #[arg(long, default_value_t = 1_000)]
    routes: usize,
    /// Alerts per POST.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Post batch `i` at `i * N` ms (open loop); 0 posts each batch once the previous one is answered.
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// A webhook sink: the first arrival of each alert's `n` label.
fn sink() -> anyhow::Result<(String, Arrivals)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let arrivals: Arrivals = Arc::default();
    let recorded = arrivals.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let recorded = recorded.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut keep_alive = true;
                    let mut first = true;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" && !first {
                            break;
                        }
                        first = false;
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            } else if name.eq_ignore_ascii_case("connection")
                                && value.trim().eq_ignore_ascii_case("close")
                            {
                                keep_alive = false;
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let now = Instant::now();
                    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) {
                        let mut arrivals = recorded.lock().expect("arrivals");
                        for alert in value["alerts"].as_array().into_iter().flatten() {
                            if let Some(n) = alert["labels"]["n"].as_str() {
                                arrivals.entry(n.to_owned()).or_insert(now);
                            }
                        }
                    }
                    let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                    if !keep_alive {
                        return;
                    }
                }
            });
        }
    });
    Ok((url, arrivals))
}

fn config(routes: usize, hook: &str) -> String {
    let mut text = String::from(
        "route:\n  receiver: hook\n  group_by: [alertname, service]\n  group_wait: 0s\n  group_interval: 1m\n  repeat_interval: 4h\n  routes:\n",
    );
    for index in 0..routes {
        text.push_str(&format!("    - matchers: ['service=\"svc-{index}\"']\n      receiver: hook\n"));
    }
    text.push_str(&format!("receivers:\n  - name: hook\n    webhook_configs:\n      - url: '{hook}'\n"));
    text
}

fn alerts(count: usize, routes: usize, run: &str) -> Vec<serde_json::Value> {
    (0..count)
        .map(|n| {
            serde_json::json!({"labels": {
                "alertname": format!("Bench{}", n / routes),
                "service": format!("svc-{}", n % routes),
                "n": format!("{run}-{n}"),
            }})
        })
        .collect()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_ready(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if ureq::get(&format!("{url}/-/ready")).call().is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{url} did not become ready")
}

/// User + system CPU seconds a process has used so far (`/proc/<pid>/stat`).
fn cpu_seconds(pid: u32, ticks_per_second: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default().split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        Ok(fields.get(index).context("short /proc/<pid>/stat")?.parse::<u64>()? as f64)
    };
    // utime and stime are fields 14 and 15; `fields` starts at field 3.
    Ok((ticks(11)? + ticks(12)?) / ticks_per_second)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`), 100 if unknown.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One system's run.
struct Measured {
    /// Each alert's latency in ms, sorted.
    latencies: Vec<f64>,
    /// Time spent waiting for POST answers, and the longest one, in ms.
    post_total_ms: f64,
    post_max_ms: f64,
    /// CPU seconds the server used from the first POST to the last notification.
    cpu_seconds: f64,
}

/// Posts every alert in batches and waits for every notification.
fn measure(name: &str, url: &str, pid: u32, arguments: &Arguments, arrivals: &Arrivals) -> anyhow::Result<Measured> {
    let run = name;
    let all = alerts(arguments.alerts, arguments.routes, run);
    let mut posted: Vec<(String, Instant)> = Vec::new();
    let ticks_per_second = clock_ticks();
    let cpu_before = cpu_seconds(pid, ticks_per_second)?;
    let started = Instant::now();
    let (mut post_total_ms, mut post_max_ms) = (0.0f64, 0.0f64);
    for (index, chunk) in all.chunks(arguments.batch).enumerate() {
        let body = serde_json::to_string(chunk)?;
        let at = if arguments.interval_ms == 0 {
            Instant::now()
        } else {
            // Open loop: latency counts from when the batch was due, so a
            // late POST (a slow answer to the previous one) is not hidden.
            let due = started + Duration::from_millis(arguments.interval_ms * index as u64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            due
        };
        let post_started = Instant::now();
        ureq::post(&format!("{url}/api/v2/alerts"))
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .with_context(|| format!("{name}: POST /api/v2/alerts"))?;
        let post_ms = post_started.elapsed().as_secs_f64() * 1000.0;
        post_total_ms += post_ms;
        post_max_ms = post_max_ms.max(post_ms);
        for alert in chunk {
            posted.push((alert["labels"]["n"].as_str().unwrap_or_default().to_owned(), at));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let received = posted.iter().filter(|(n, _)| arrivals.lock().expect("arrivals").contains_key(n)).count();
        if received == posted.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!("{name}: only {received} of {} alerts notified within 120 s", posted.len());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let cpu_seconds = cpu_seconds(pid, ticks_per_second)? - cpu_before;
    let arrivals = arrivals.lock().expect("arrivals");
    let mut latencies: Vec<f64> =
        posted.iter().map(|(n, at)| arrivals[n].duration_since(*at).as_secs_f64() * 1000.0).collect();
    latencies.sort_by(f64::total_cmp);
    eprintln!("{name}: {} alerts notified in {:.2} s", posted.len(), started.elapsed().as_secs_f64());
    Ok(Measured { latencies, post_total_ms, post_max_ms, cpu_seconds })
}

fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let work = tempfile::tempdir()?;
    let (hook, arrivals) = sink()?;
    let yaml = config(arguments.routes, &hook);
    std::fs::write(work.path().join("alertmanager.yml"), &yaml)?;
    std::fs::write(
        work.path().join("alertbook.yaml"),
        "scrape_self: false\nalerting:\n  config_file: alertmanager.yml\n",
    )?;

    // The routing engine alone, in process.
    let routing = notify::routing::config::load(&work.path().join("alertmanager.yml"))
        .map_err(|errors| anyhow::anyhow!("{errors}"))?;
    let mut router = notify::routing::Router::new(
        Arc::new(routing),
        notify::routing::Silences::default(),
        notify::routing::NotificationLog::default(),
        0,
    );
    let engine_alerts: Vec<notify::Alert> = alerts(arguments.alerts, arguments.routes, "engine")
        .into_iter()
        .map(|alert| notify::Alert {
            labels: serde_json::from_value(alert["labels"].clone()).unwrap_or_default(),
            annotations: Default::default(),
            starts_at_ms: 1,
            ends_at_ms: None,
            generator_url: String::new(),
        })
        .collect();
    let mut batch_times = Vec::new();
    for (index, chunk) in engine_alerts.chunks(arguments.batch).enumerate() {
        let at = Instant::now();
        router.put(chunk.to_vec(), 1000 + index as i64);
        let sent = router.tick(1000 + index as i64);
        batch_times.push(at.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(sent.len(), chunk.len());
    }
    batch_times.sort_by(f64::total_cmp);
    println!(
        "engine: {} alerts, {} routes, batches of {}: put+flush per batch p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; load {}",
        arguments.alerts,
        arguments.routes,
        arguments.batch,
        percentile(&batch_times, 0.5),
        percentile(&batch_times, 0.99),
        percentile(&batch_times, 1.0),
        load_average()
    );

    let alertbook_port = free_port()?;
    let alertbook_url = format!("http://127.0.0.1:{alertbook_port}");
    let _alertbook = KillOnDrop(
        Command::new(&arguments.alertbook)
            .args(["run", "--listen", &format!("127.0.0.1:{alertbook_port}"), "--data"])
            .arg(work.path().join("data"))
            .arg("--config")
            .arg(work.path().join("alertbook.yaml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("alertbook")?,
    );
    let alertmanager_port = free_port()?;
    let alertmanager_url = format!("http://127.0.0.1:{alertmanager_port}");
    let _alertmanager = KillOnDrop(
        Command::new(&arguments.alertmanager)
            .arg(format!("--config.file={}", work.path().join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", work.path().join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{alertmanager_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("prometheus-alertmanager")?,
    );
    wait_ready(&alertbook_url)?;
    wait_ready(&alertmanager_url)?;
    let ours = measure("alertbook", &alertbook_url, _alertbook.0.id(), &arguments, &arrivals)?;
    let load_ours = load_average();
    let theirs = measure("alertmanager", &alertmanager_url, _alertmanager.0.id(), &arguments, &arrivals)?;
    let load_theirs = load_average();
    let mode = if arguments.interval_ms == 0 {
        "closed loop".to_owned()
    } else {
        format!("a batch every {} ms", arguments.interval_ms)
    };
    for (name, measured, load) in [("alertbook", &ours, load_ours), ("alertmanager", &theirs, load_theirs)] {
        let latencies = &measured.latencies;
        println!(
            "{name} ({mode}): dispatch latency (POST to webhook) p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
             POSTs {:.0} ms in all (longest {:.1} ms); CPU {:.2} s ({:.0} µs per alert); load {load}",
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
            percentile(latencies, 1.0),
            measured.post_total_ms,
            measured.post_max_ms,
            measured.cpu_seconds,
            measured.cpu_seconds * 1e6 / latencies.len().max(1) as f64,
        );
    }
    println!(
        "ratio p99 alertmanager/alertbook: {:.2}",
        percentile(&theirs.latencies, 0.99) / percentile(&ours.latencies, 0.99)
    );
    Ok(())
}
