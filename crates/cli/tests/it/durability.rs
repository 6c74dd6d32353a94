//! Durability: ingest through remote write, kill the process with SIGKILL in
//! the middle of the stream, restart, and find every acknowledged sample.

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

fn start(data: &std::path::Path, port: u16) -> Server {
    start_with(data, port, &[])
}

/// Starts `alertbook run` on `port` with `data` and extra arguments; waits until ready.
pub(crate) fn start_with(data: &std::path::Path, port: u16, extra: &[&str]) -> Server {
    // The HTTP client's TLS stack needs a crypto provider even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut child = Command::new(env!("CARGO_BIN_EXE_alertbook"))
        .args(["run", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(data)
        .args(extra)
        .current_dir(super::workspace_root())
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
    let deadline = Instant::now() + Duration::from_secs(30);
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
    let port = free_port();
    let mut server = start(data.path(), port);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let endpoint = format!("{}/api/v1/write", server.url);

    // A second thread keeps writing; the main thread kills the server under it.
    let writer = {
        let client = client.clone();
        let endpoint = endpoint.clone();
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            for round in 0..100_000 {
                let response = client
                    .post(&endpoint)
                    .header("content-type", "application/x-protobuf")
                    .header("content-encoding", "snappy")
                    .body(encode(&batch(round)))
                    .send();
                match response {
                    Ok(response) if response.status().as_u16() == 204 => acknowledged.push(round),
                    Ok(response) => panic!("round {round}: unexpected status {}", response.status()),
                    Err(_) => break,
                }
            }
            acknowledged
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("wait");
    let acknowledged = writer.join().expect("writer");
    assert!(acknowledged.len() > 10, "too few writes before the kill: {}", acknowledged.len());

    let restarted = start(data.path(), port);
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
    }
    // Spot-check values: the last acknowledged round is there, exactly.
    let last = *acknowledged.last().expect("acknowledged");
    let query =
        format!("{}/api/v1/query?query=durability_probe%7Bseries%3D%22s07%22%7D&time={}", restarted.url, 1_000 + last);
    let body: serde_json::Value = client.get(&query).send().expect("query").json().expect("JSON");
    assert_eq!(body["data"]["result"][0]["value"][1], format!("{}", last * 100 + 7), "{body}");
}
