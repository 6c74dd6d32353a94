//! Trace and log checks through remote datasources: a loopback HTTP server
//! replays a recorded Tempo search answer (`testdata/tempo/`) and a Loki
//! query answer, and the checks of A2 and A12 bind what they return.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use triage::{AlertInstance, RunOptions, Sources, StepStatus};

/// 2025-12-02T10:00:00Z, after the recorded traces.
const NOW: i64 = 1_764_669_600_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Serves `answer(path)` to each request and records every request line.
fn serve(answer: impl Fn(&str) -> (u16, Vec<u8>) + Send + 'static) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let requests = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request_line = String::new();
            reader.read_line(&mut request_line).expect("request line");
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).expect("header") <= 2 {
                    break;
                }
            }
            let target = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
            let (status, body) = answer(&target);
            requests.lock().expect("lock").push(target);
            let head = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    (url, seen)
}

fn options(name: &str, url: &str) -> sources::http::HttpOptions {
    let mut options = sources::http::HttpOptions::new(name, url);
    options.tenant = Some("busflow".to_owned());
    options.timeout = Duration::from_secs(5);
    options
}

fn catalog() -> catalog::Catalog {
    catalog::load(&root().join("catalog/busflow")).expect("the Busflow catalog loads")
}

fn alert(labels: &[(&str, &str)]) -> AlertInstance {
    AlertInstance {
        labels: labels.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
        annotations: BTreeMap::new(),
        value: 0.9,
        firing_since_ms: NOW - 10 * 60_000,
        active_since_ms: Some(NOW - 15 * 60_000),
    }
}

#[test]
fn a2_binds_the_slow_traces_of_a_tempo_search() {
    let recorded = std::fs::read(root().join("testdata/tempo/search-traceql-select.json")).expect("fixture");
    let (url, requests) =
        serve(
            move |target| {
                if target.starts_with("/api/search?") { (200, recorded.clone()) } else { (404, b"not found".to_vec()) }
            },
        );
    let health = sources::health::DatasourceHealth::detached();
    let tempo = sources::tempo::TempoDatasource::new(&options("busflow-tempo", &url), health.clone()).expect("client");
    let sources = Sources::new(Duration::from_secs(5))
        .with(catalog::Datasource::Traces, Arc::new(triage::adapters::Traces(Arc::new(tempo))));
    let catalog = catalog();
    let entry = catalog.entry("A2").expect("A2");
    let run = triage::run(
        entry,
        &catalog.contracts,
        &alert(&[("alertname", "LatencySloBreach")]),
        &sources,
        &RunOptions { time_ms: NOW, ..RunOptions::default() },
    );
    let first = run.steps.iter().find(|step| step.check.is_some()).expect("a check");
    assert_eq!(first.status, StepStatus::Ran, "{first:?}");
    let value = run.results.get("slow_traces").expect("slow_traces bound");
    assert_eq!(value["count"], json!(3));
    let slowest = value["slowest"].as_array().expect("slowest spans");
    assert!(!slowest.is_empty());
    let durations: Vec<f64> = slowest.iter().map(|span| span["duration_ms"].as_f64().expect("duration")).collect();
    assert!(durations.windows(2).all(|pair| pair[0] >= pair[1]), "slowest first: {durations:?}");
    assert!(
        slowest[0]["db_statement"].as_str().is_some_and(|statement| statement.contains("FOR UPDATE")),
        "{slowest:?}"
    );
    assert!(!run.missing.contains(&"slow_traces".to_owned()), "{:?}", run.missing);
    assert_eq!(health.up(), 1);
    let sent = requests.lock().expect("lock").pop().expect("a search");
    // From five minutes before the alert became active (15 minutes ago) to the run.
    let end = NOW / 1000 + 1;
    let start = (NOW - 15 * 60_000) / 1000 - 300;
    assert!(sent.contains(&format!("start={start}&")) && sent.contains(&format!("end={end}")), "{sent}");
    assert!(sent.contains("limit=20") && sent.contains("spss=5"), "{sent}");
}

#[test]
fn the_trace_window_follows_the_alert_active_period_within_bounds() {
    use triage::adapters::trace_window;
    let end = NOW / 1000 + 1;
    // Active 15 minutes, firing for 10: from 20 minutes ago.
    assert_eq!(trace_window(&alert(&[]), NOW), (end - 20 * 60 - 1, end));
    // Without activeAt, from five minutes before it started firing.
    let firing_only = AlertInstance { active_since_ms: None, ..alert(&[]) };
    assert_eq!(trace_window(&firing_only, NOW), ((NOW - 10 * 60_000) / 1000 - 300, end));
    // Active for two days: the last six hours only.
    let long = AlertInstance { active_since_ms: Some(NOW - 48 * 3_600_000), ..alert(&[]) };
    assert_eq!(trace_window(&long, NOW), (end - 6 * 3600, end));
    // Active just now (or, replayed, after the run time): the margin before the run.
    let fresh = AlertInstance { active_since_ms: Some(NOW + 60_000), firing_since_ms: NOW + 60_000, ..alert(&[]) };
    assert_eq!(trace_window(&fresh, NOW), (end - 300, end));
}

#[test]
fn a12_log_checks_go_to_a_remote_loki() {
    let line = r#"{"DownstreamStatus":504,"ServiceName":"busflow-studio@swarm","ServiceAddr":"10.0.7.12:8080"}"#;
    let answer = json!({
        "status": "success",
        "data": {
            "resultType": "streams",
            "result": [{
                "stream": {"job": "traefik", "log_type": "access"},
                "values": [[format!("{}", (NOW - 60_000) * 1_000_000), line]]
            }],
            "stats": {}
        }
    });
    let (url, requests) = serve(move |target| {
        if target.starts_with("/loki/api/v1/query?") {
            (200, serde_json::to_vec(&answer).expect("JSON"))
        } else {
            (404, b"not found".to_vec())
        }
    });
    let loki = sources::loki::LokiDatasource::new(
        &options("busflow-loki", &url),
        sources::health::DatasourceHealth::detached(),
    )
    .expect("client");
    let sources = Sources::new(Duration::from_secs(5))
        .with(catalog::Datasource::Logs, Arc::new(triage::adapters::RemoteLogs(Arc::new(loki))));
    let catalog = catalog();
    let entry = catalog.entry("A12").expect("A12");
    let run = triage::run(
        entry,
        &catalog.contracts,
        &alert(&[("alertname", entry.alertname.as_str()), ("ServiceName", "busflow-studio")]),
        &sources,
        &RunOptions { time_ms: NOW, ..RunOptions::default() },
    );
    assert_eq!(run.results.get("gateway_timeouts"), Some(&json!([line])), "{:?}", run.results);
    let sent = requests.lock().expect("lock").clone();
    assert!(
        sent.iter().any(|target| target.contains("ServiceName") && target.contains("busflow-studio")),
        "the query template was expanded and sent to the remote Loki: {sent:?}"
    );
}
