//! `alertbook run` probing: the catalog's `kind: probes` targets are checked
//! on their interval and written through the durable ingest path; A11 fires
//! when a studio service's health endpoint (a loopback HTTP server that the
//! test flips) fails three consecutive checks, with the failure reason in its
//! annotations, and resolves at the next success. The catalog copy checks
//! every second and reads windows of 3.5 s instead of 30 s and 90 s.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use super::postgres::{get, launch, wait_for};

/// An HTTP server answering every request with the current status.
fn health_server() -> (String, Arc<AtomicU16>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let status = Arc::new(AtomicU16::new(200));
    let answer = status.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
                    break;
                }
            }
            let status = answer.load(Ordering::SeqCst);
            let _ = reader.get_mut().write_all(
                format!("HTTP/1.1 {status} Status\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").as_bytes(),
            );
        }
    });
    (format!("http://{address}/readyz"), status)
}

fn a11(client: &reqwest::blocking::Client, server: &super::durability::Server) -> Option<serde_json::Value> {
    let body: serde_json::Value = serde_json::from_str(&get(client, server, "/api/v1/alerts")).expect("JSON");
    body["data"]["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|alert| alert["labels"]["alertname"] == "StudioServiceDown" && alert["state"] == "firing")
        .cloned()
}

#[test]
fn run_probes_the_catalog_targets_and_a11_fires_and_resolves() {
    let (url, status) = health_server();
    let closed = super::durability::free_port();
    let directory = tempfile::tempdir().expect("temporary directory");
    let catalog = directory.path().join("catalog");
    super::copy_tree(&super::workspace_root().join("catalog/busflow"), &catalog);
    let studio = format!(
        "kind: probes\ndescription: the test's studio service\nspec:\n  interval: 1s\n  failures: 3\n  targets:\n    - name: qdrant\n      prober: http\n      target: {url}\n"
    );
    std::fs::write(catalog.join("contracts/studio-service-probes.yaml"), studio).expect("contract");
    // The other probe contracts point at a closed loopback port: nothing leaves the machine.
    for (file, prober, target) in [
        ("external-dependency-probes.yaml", "http", format!("http://127.0.0.1:{closed}/")),
        ("tls-certificates.yaml", "tls", format!("127.0.0.1:{closed}")),
    ] {
        let contract = format!(
            "kind: probes\ndescription: test\nspec:\n  interval: 5m\n  failures: 3\n  targets:\n    - name: x\n      prober: {prober}\n      target: {target}\n"
        );
        std::fs::write(catalog.join("contracts").join(file), contract).expect("contract");
    }
    let rules = catalog.join("rules/metrics.rules.yaml");
    let text = std::fs::read_to_string(&rules).expect("rules");
    std::fs::write(&rules, text.replace("interval: 30s", "interval: 1s").replace("[90s]", "[3500ms]")).expect("rules");
    let config = directory.path().join("alertbook.yaml");
    std::fs::write(&config, "catalog: catalog\nscrape_self: false\n").expect("config");

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::new();
    let (server, log) = launch(directory.path(), &config, &[]);
    wait_for("probe_success of qdrant", &log, || {
        get(&client, &server, "/api/v1/query?query=probe_success%7Bprobe%3D%22qdrant%22%7D").contains("\"1\"]")
    });
    assert!(a11(&client, &server).is_none());

    status.store(503, Ordering::SeqCst);
    wait_for("A11 firing", &log, || a11(&client, &server).is_some());
    let alert = a11(&client, &server).expect("firing");
    assert_eq!(alert["labels"]["probe"], "qdrant");
    assert_eq!(alert["annotations"]["failure_reason"], "status", "{alert}");
    let answer = get(&client, &server, "/api/v1/query?query=probe_http_status_code%7Bprobe%3D%22qdrant%22%7D");
    assert!(answer.contains("\"503\"]"), "{answer}");
    // The prober's own counters, per probe group, on /metrics.
    let metrics = get(&client, &server, "/metrics");
    let counter = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics:\n{metrics}"))
    };
    assert!(counter("alertbook_probe_checks_total{probe_group=\"studio-service-probes\"}") >= 4.0, "{metrics}");
    assert!(
        counter("alertbook_probe_failures_total{probe_group=\"studio-service-probes\",reason=\"status\"}") >= 3.0,
        "{metrics}"
    );
    // A group whose 5m phase has not come yet is exported at 0 checks.
    counter("alertbook_probe_checks_total{probe_group=\"external-dependency-probes\"}");
    counter("alertbook_probe_missed_intervals_total{probe_group=\"studio-service-probes\"}");

    status.store(200, Ordering::SeqCst);
    wait_for("A11 resolved", &log, || a11(&client, &server).is_none());
}

#[test]
fn probe_prints_the_series_and_exits_by_the_outcome() {
    let (url, status) = health_server();
    let output = super::alertbook(&["probe", "--prober", "http", &url, "--timeout", "5s", "--name", "qdrant"]);
    assert_eq!(output.status.code(), Some(0), "{}", super::stderr(&output));
    let text = super::stdout(&output);
    let labels = format!("probe=\"qdrant\",prober=\"http\",target=\"{url}\"");
    assert!(text.contains(&format!("probe_success{{{labels}}} 1\n")), "{text}");
    assert!(text.contains(&format!("probe_http_status_code{{{labels}}} 200\n")), "{text}");
    assert!(text.contains("probe_duration_seconds{"), "{text}");

    status.store(500, Ordering::SeqCst);
    let output = super::alertbook(&["probe", "--prober", "http", &url, "--valid-status-code", "200"]);
    assert_eq!(output.status.code(), Some(1));
    let text = super::stdout(&output);
    assert!(text.contains("probe_success{") && text.contains("} 0\n"), "{text}");
    assert!(text.contains("reason=\"status\""), "{text}");
    assert!(super::stderr(&output).contains("probe failed (status): status 500 is not among the expected 200"));

    let closed = super::durability::free_port();
    let output = super::alertbook(&["probe", "--prober", "tcp", &format!("127.0.0.1:{closed}"), "--timeout", "2s"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(super::stdout(&output).contains("reason=\"refused\""), "{}", super::stdout(&output));

    // Invalid input says what is wrong and checks nothing.
    let output = super::alertbook(&["probe", "--prober", "tcp", "qdrant"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(super::stderr(&output).contains("target \"qdrant\" is not host:port"), "{}", super::stderr(&output));
    assert!(super::stdout(&output).is_empty());
    let output = super::alertbook(&["probe", "--prober", "ping", "qdrant"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn the_catalog_uptime_kuma_scrape_job_is_a_valid_configuration() {
    let output = super::alertbook(&["check", "catalog/busflow/scrape/uptime-kuma.yaml"]);
    assert!(output.status.success(), "{}", super::stderr(&output));
    assert!(super::stdout(&output).contains("uptime-kuma.yaml: configuration valid"), "{}", super::stdout(&output));
}
