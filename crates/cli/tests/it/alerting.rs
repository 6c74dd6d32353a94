//! Alerts out end to end: a catalog rule fires on remote-written data and a
//! real Alertmanager (Debian `prometheus-alertmanager`) receives it, as
//! `amtool` shows; a webhook receives Alertmanager's payload.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};

use super::durability::{Server, free_port, start_with};

/// A copy of the Busflow catalog whose metrics groups evaluate every second.
fn fast_catalog() -> tempfile::TempDir {
    let directory = tempfile::tempdir().expect("temporary directory");
    super::fast_catalog_at(directory.path(), "metrics.rules.yaml");
    directory
}

struct Alertmanager(std::process::Child);

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Remote-writes a compactor whose last successful run was five hours ago (A6 fires).
pub(super) fn write_stale_compactor(server: &Server, client: &reqwest::blocking::Client) {
    let now = now_ms();
    let request = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: "loki_boltdb_shipper_compact_tables_operation_last_successful_run_timestamp_seconds".into(),
                },
                Label { name: "job".into(), value: "loki".into() },
            ],
            samples: vec![Sample { value: (now / 1000 - 5 * 3600) as f64, timestamp: now }],
            exemplars: vec![],
            histograms: vec![],
        }],
        metadata: vec![],
    };
    let response = client
        .post(format!("{}/api/v1/write", server.url))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(encode(&request))
        .send()
        .expect("remote write");
    assert_eq!(response.status().as_u16(), 204);
}

#[test]
fn a_firing_catalog_alert_reaches_a_real_alertmanager() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = tempfile::tempdir().expect("temporary directory");
    let config = work.path().join("alertmanager.yml");
    std::fs::write(&config, "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n").expect("config");
    let alertmanager_port = free_port();
    let alertmanager_url = format!("http://127.0.0.1:{alertmanager_port}");
    let _alertmanager = Alertmanager(
        Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", work.path().join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{alertmanager_port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager is installed (scripts/test installs it)"),
    );
    let catalog = fast_catalog();
    let catalog_path = catalog.path().to_str().expect("utf-8").to_owned();
    let data = work.path().join("data");
    let server = start_with(&data, free_port(), &["--catalog", &catalog_path, "--alertmanager.url", &alertmanager_url]);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    write_stale_compactor(&server, &client);

    // The rule fires within a few evaluations and Alertmanager has it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    while Instant::now() < deadline {
        let output = Command::new("amtool")
            .args(["--alertmanager.url", &alertmanager_url, "alert", "query", "--output=json"])
            .output()
            .expect("amtool is installed");
        seen = String::from_utf8_lossy(&output.stdout).into_owned();
        if seen.contains("LokiCompactorBehind") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let alerts: serde_json::Value = serde_json::from_str(&seen).expect("amtool JSON");
    let alert = alerts
        .as_array()
        .expect("array")
        .iter()
        .find(|alert| alert["labels"]["alertname"] == "LokiCompactorBehind")
        .unwrap_or_else(|| panic!("Alertmanager never received LokiCompactorBehind: {seen}"));
    assert_eq!(alert["annotations"]["runbook_id"], "A6");
    assert_eq!(alert["labels"]["severity"], "page");

    // alertbook's own API agrees.
    let body: serde_json::Value =
        client.get(format!("{}/api/v1/alerts", server.url)).send().expect("alerts").json().expect("JSON");
    let firing = body["data"]["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .any(|alert| alert["labels"]["alertname"] == "LokiCompactorBehind" && alert["state"] == "firing");
    assert!(firing, "{body}");
}
