//! Triage end to end: A6 fires from remote-written data (a compactor whose
//! last run was five hours ago), its triage runs and picks the branch the
//! data implies, the first notification carries `triage_path` and
//! `triage_summary` to a real Alertmanager (Debian `prometheus-alertmanager`,
//! read back with `amtool`) and to a webhook, the run is in
//! `/api/v1/triage`, a POST runs it again, and the runs survive a restart.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};

use super::durability::{Server, free_port, start_with};

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

fn write_stale_compactor(server: &Server, client: &reqwest::blocking::Client, hours: i64) {
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
            samples: vec![Sample { value: (now / 1000 - hours * 3600) as f64, timestamp: now }],
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

fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(found) = probe() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    panic!("timed out waiting for {what}");
}

fn get_json(client: &reqwest::blocking::Client, url: &str) -> serde_json::Value {
    client.get(url).send().expect("GET").json().expect("JSON")
}

#[test]
fn a6_fired_by_remote_write_is_triaged_and_its_page_says_so() {
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
    let catalog = tempfile::tempdir().expect("temporary directory");
    super::fast_catalog_at(catalog.path(), "metrics.rules.yaml");
    let catalog_path = catalog.path().to_str().expect("utf-8").to_owned();
    let (webhook, bodies) = super::docker::webhook_receiver();
    let data = work.path().join("data");
    let port = free_port();
    let arguments = [
        "--catalog",
        &catalog_path,
        "--alertmanager.url",
        &alertmanager_url,
        "--notify.webhook",
        &format!("oncall={webhook}"),
        "--triage.rerun-interval",
        "1s",
    ];
    let server = start_with(&data, port, &arguments);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    write_stale_compactor(&server, &client, 5);

    // Alertmanager has the alert, and its first notification already carries the triage.
    let alert = eventually("LokiCompactorBehind in Alertmanager", || {
        let output = Command::new("amtool")
            .args(["--alertmanager.url", &alertmanager_url, "alert", "query", "--output=json"])
            .output()
            .expect("amtool is installed");
        let alerts: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        alerts.as_array()?.iter().find(|alert| alert["labels"]["alertname"] == "LokiCompactorBehind").cloned()
    });
    assert_eq!(alert["annotations"]["triage_path"], "compactor-unhealthy", "{alert}");
    let summary = alert["annotations"]["triage_summary"].as_str().expect("summary");
    assert!(summary.starts_with("compactor_lag_seconds = 180"), "{summary}");
    assert!(summary.contains("compactor_replicas missing (no docker datasource configured)"), "{summary}");

    let first_webhook = eventually("a webhook notification", || bodies.lock().expect("bodies").first().cloned());
    let payload: serde_json::Value = serde_json::from_str(&first_webhook).expect("webhook JSON");
    assert_eq!(payload["alerts"][0]["annotations"]["triage_path"], "compactor-unhealthy", "{payload}");

    // The alert's fingerprint in /api/v1/alerts leads to its runs.
    let alerts = get_json(&client, &format!("{}/api/v1/alerts", server.url));
    let fingerprint = alerts["data"]["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|alert| alert["labels"]["alertname"] == "LokiCompactorBehind")
        .and_then(|alert| alert["fingerprint"].as_str())
        .expect("fingerprint")
        .to_owned();
    let triage_url = format!("{}/api/v1/triage?fingerprint={fingerprint}", server.url);
    let record = get_json(&client, &triage_url);
    let latest = &record["data"]["runs"][0];
    assert_eq!(latest["runbook_id"], "A6", "{record}");
    assert_eq!(latest["path"], serde_json::json!(["compactor-unhealthy"]));
    assert_eq!(latest["missing"], serde_json::json!(["compactor_replicas"]));
    let first_step = &latest["steps"][0];
    assert_eq!(first_step["status"], "ran");
    assert_eq!(first_step["check"]["branch"], "compactor-unhealthy");
    assert_eq!(latest["steps"][3]["status"], "skipped", "{latest}");

    // Re-runs come on the interval; a POST asks for one now.
    let token = super::responder_token(&data);
    let response = client.post(&triage_url).bearer_auth(&token).send().expect("POST");
    assert_eq!(response.status().as_u16(), 202);
    let runs_before_restart = eventually("several runs", || {
        let record = get_json(&client, &triage_url);
        let runs = record["data"]["runs"].as_array()?.len();
        (runs >= 3).then_some(runs)
    });
    let recent = get_json(&client, &format!("{}/api/v1/triage?limit=2", server.url));
    assert_eq!(recent["data"]["runs"].as_array().expect("runs").len(), 2);

    // By hand, against the running server's Prometheus API: the same branch, printed.
    let output = super::alertbook(&["triage", "A6", "--catalog", &catalog_path, "--prometheus", &server.url]);
    assert!(output.status.success(), "{}", super::stderr(&output));
    let printed = super::stdout(&output);
    assert!(
        printed.starts_with("A6 LokiCompactorBehind  path: compactor-unhealthy\nmissing: compactor_replicas\n"),
        "{printed}"
    );
    assert!(printed.contains("compactor_lag_seconds = 180"), "{printed}");

    // The runs survive a restart.
    drop(server);
    let restarted = start_with(&data, port, &arguments);
    let record = get_json(&client, &format!("{}/api/v1/triage?fingerprint={fingerprint}", restarted.url));
    let runs_after_restart = record["data"]["runs"].as_array().expect("runs").len();
    assert!(runs_after_restart >= runs_before_restart, "{runs_after_restart} < {runs_before_restart}");
    assert_eq!(record["data"]["runs"][0]["path"], serde_json::json!(["compactor-unhealthy"]));
}
