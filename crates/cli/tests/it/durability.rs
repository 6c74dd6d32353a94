//! Durability: ingest through remote write, kill the process with SIGKILL in
//! the middle of the stream, restart, and find every acknowledged sample; once
//! with the write-ahead log alone and once while checkpoints write blocks and
//! trim the log under the stream.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};

/// A running `alertbook run`, killed when dropped.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// The probe's timestamps are from 1970: keep them whatever their age.
const KEEP_FOREVER: &[&str] = &["--storage.retention.time", "0"];

/// Checkpoints as often as the test can see them: every 5 s of data, checked every 100 ms.
const CHECKPOINT_OFTEN: &[&str] =
    &["--storage.retention.time", "0", "--storage.block-interval", "5s", "--storage.maintenance-interval", "100ms"];

/// Starts `alertbook run` on `port` with `data` and extra arguments; waits until ready.
pub(crate) fn start_with(data: &std::path::Path, port: u16, extra: &[&str]) -> Server {
    start_in(&super::workspace_root(), data, port, extra)
}

/// [`start_with`], run from the directory `current`.
pub(crate) fn start_in(current: &std::path::Path, data: &std::path::Path, port: u16, extra: &[&str]) -> Server {
    // The HTTP client's TLS stack needs a crypto provider even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // These tests write samples with timestamps near the epoch; the default
    // self-scrape would add wall-clock samples next to them (and retention would
    // then rightly drop the old ones), so it is off unless a test brings a config.
    let mut arguments: Vec<std::ffi::OsString> = extra.iter().map(Into::into).collect();
    if !extra.contains(&"--config") {
        std::fs::create_dir_all(data).expect("create the data directory");
        let config = data.join("test-alertbook.yaml");
        std::fs::write(&config, "scrape_self: false\n").expect("write the test configuration");
        arguments.extend(["--config".into(), config.into_os_string()]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_alertbook"))
        .args(["run", "--no-probes", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .args(arguments)
        .current_dir(current)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("alertbook starts");
    let stderr = child.stderr.take().expect("stderr");
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});
    let server = Server { child, url: format!("http://127.0.0.1:{port}") };
    let client = reqwest::blocking::Client::new();
    // Generous: a debug build under a parallel test load can take tens of seconds to start.
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if client.get(format!("{}/-/ready", server.url)).send().is_ok_and(|response| response.status().is_success()) {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("alertbook did not become ready");
}

fn batch(round: i64) -> WriteRequest {
    let timeseries = (0..50)
        .map(|series| TimeSeries {
            labels: vec![
                Label { name: "__name__".into(), value: "durability_probe".into() },
                Label { name: "series".into(), value: format!("s{series:02}") },
            ],
            samples: vec![Sample { value: (round * 100 + series) as f64, timestamp: 1_000_000 + round * 1000 }],
            exemplars: vec![],
            histograms: vec![],
        })
        .collect();
    WriteRequest { timeseries, metadata: vec![] }
}

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_sample() {
    let data = tempfile::tempdir().expect("temporary directory");
    kill_mid_stream_and_check(data.path(), KEEP_FOREVER);
}

#[test]
fn sigkill_across_checkpoints_loses_and_duplicates_no_sample() {
    let data = tempfile::tempdir().expect("temporary directory");
    let acknowledged = kill_mid_stream_and_check(data.path(), CHECKPOINT_OFTEN);
    let blocks = std::fs::read_dir(data.path().join("blocks")).expect("blocks directory").count();
    assert!(blocks >= 1, "no checkpoint was written during the stream");
    // A clean stop checkpoints the rest; the next start reads it from blocks.
    let port = free_port();
    let server = start_with(data.path(), port, CHECKPOINT_OFTEN);
    stop_gracefully(server);
    let restarted = start_with(data.path(), port, CHECKPOINT_OFTEN);
    assert_exact_counts(&restarted, acknowledged);
}

/// Posts `body(round)` to `path`, round after round, from a second thread
/// while this one kills the server with SIGKILL after 1.5 s; returns the
/// rounds the server acknowledged (answered 204).
pub(crate) fn send_until_killed(
    server: &mut Server,
    path: &str,
    headers: &[(&'static str, &'static str)],
    body: impl Fn(i64) -> Vec<u8> + Send + 'static,
) -> Vec<i64> {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let endpoint = format!("{}{path}", server.url);
    let headers = headers.to_vec();
    let writer = std::thread::spawn(move || {
        let mut acknowledged = Vec::new();
        for round in 0..100_000 {
            let mut request = client.post(&endpoint).body(body(round));
            for (name, value) in &headers {
                request = request.header(*name, *value);
            }
            match request.send() {
                Ok(response) if response.status().as_u16() == 204 => acknowledged.push(round),
                Ok(response) => panic!("round {round}: unexpected status {}", response.status()),
                Err(_) => break,
            }
        }
        acknowledged
    });
    std::thread::sleep(Duration::from_millis(1500));
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("wait");
    writer.join().expect("writer")
}

/// Sends SIGTERM and waits for the process to exit cleanly.
pub(crate) fn stop_gracefully(mut server: Server) {
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let exit = server.child.wait().expect("wait");
    assert!(exit.success(), "alertbook exited with {exit}");
}

/// Every series has exactly `rounds` samples (the writer sends each round once,
/// so more would be a duplicate and fewer a loss).
fn assert_exact_counts(server: &Server, rounds: usize) {
    let client = reqwest::blocking::Client::new();
    let query = format!(
        "{}/api/v1/query?query=count_over_time(durability_probe%5B1d%5D)&time={}",
        server.url,
        1_000 + rounds as i64 + 10
    );
    let body: serde_json::Value = client.get(&query).send().expect("query").json().expect("JSON");
    let result = body["data"]["result"].as_array().expect("vector");
    assert_eq!(result.len(), 50, "{body}");
    for series in result {
        let count: usize = series["value"][1].as_str().expect("value").parse().expect("count");
        assert_eq!(count, rounds, "{} has {count} samples, {rounds} were sent", series["metric"]);
    }
}

/// Streams remote writes into a server started with `extra`, kills it with
/// SIGKILL, restarts it and checks every acknowledged sample is back with no
/// duplicate. Returns the number of rounds stored (acknowledged, plus the one
/// in flight if it landed).
fn kill_mid_stream_and_check(data: &std::path::Path, extra: &[&str]) -> usize {
    let port = free_port();
    let mut server = start_with(data, port, extra);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let acknowledged = send_until_killed(
        &mut server,
        "/api/v1/write",
        &[("content-type", "application/x-protobuf"), ("content-encoding", "snappy")],
        |round| encode(&batch(round)),
    );
    assert!(acknowledged.len() > 10, "too few writes before the kill: {}", acknowledged.len());

    let restarted = start_with(data, port, extra);
    let query = format!(
        "{}/api/v1/query?query=count_over_time(durability_probe%5B1d%5D)&time={}",
        restarted.url,
        1_000 + acknowledged.len() as i64 + 10
    );
    let body: serde_json::Value = client.get(&query).send().expect("query").json().expect("JSON");
    let result = body["data"]["result"].as_array().expect("vector");
    assert_eq!(result.len(), 50, "{body}");
    for series in result {
        let count: usize = series["value"][1].as_str().expect("value").parse().expect("count");
        assert!(
            count >= acknowledged.len(),
            "{} has {count} samples, {} were acknowledged",
            series["metric"],
            acknowledged.len()
        );
        // Rounds are sent one after another: at most the one in flight landed unacknowledged.
        assert!(count <= acknowledged.len() + 1, "{} has {count} samples: duplicates", series["metric"]);
    }
    // Spot-check values: the last acknowledged round is there, exactly.
    let last = *acknowledged.last().expect("acknowledged");
    let query =
        format!("{}/api/v1/query?query=durability_probe%7Bseries%3D%22s07%22%7D&time={}", restarted.url, 1_000 + last);
    let body: serde_json::Value = client.get(&query).send().expect("query").json().expect("JSON");
    assert_eq!(body["data"]["result"][0]["value"][1], format!("{}", last * 100 + 7), "{body}");
    let query = format!(
        "{}/api/v1/query?query=count_over_time(durability_probe%7Bseries%3D%22s00%22%7D%5B1d%5D)&time={}",
        restarted.url,
        1_000 + acknowledged.len() as i64 + 10
    );
    let body: serde_json::Value = client.get(&query).send().expect("query").json().expect("JSON");
    let stored: usize = body["data"]["result"][0]["value"][1].as_str().expect("count").parse().expect("number");
    stored
}
