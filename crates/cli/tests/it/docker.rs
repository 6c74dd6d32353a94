//! `alertbook run` with a Docker datasource, against the real Docker daemon
//! that `scripts/peers/docker.sh` starts as a single-node swarm manager: A8
//! fires from the swarm's state, shows in /api/v1/alerts, resolves when the
//! exporter is scaled to 0, and the datasource's health is on /metrics. The
//! test owns the names `busflow_postgres_exporter` and `pgexporter_dsn` while
//! it runs (it removes leftovers first and its objects at the end).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::postgres::{copy_tree, get, rule, start, wait_for};

const SOCKET: &str = "/var/run/docker.sock";
const IMAGE: &str = "localhost/busybox:static";
const SERVICE: &str = "busflow_postgres_exporter";
const SECRET: &str = "pgexporter_dsn";

fn daemon() -> bool {
    if Path::new(SOCKET).exists() {
        return true;
    }
    if std::env::var("ALERTBOOK_SKIP_PEERS").as_deref() == Ok("1") {
        eprintln!("skipped: no Docker daemon at {SOCKET} and ALERTBOOK_SKIP_PEERS=1");
        return false;
    }
    panic!(
        "no Docker daemon at {SOCKET}: run scripts/peers/docker.sh (scripts/test does), or set ALERTBOOK_SKIP_PEERS=1"
    );
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new("docker").args(args).output().unwrap_or_else(|error| panic!("docker {args:?}: {error}"))
}

fn docker(args: &[&str]) -> String {
    let output = run(args);
    assert!(output.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Removes the exporter service and its secret (now and when dropped, also on panic).
struct Exporter;

impl Exporter {
    fn remove() {
        let _ = run(&["service", "rm", SERVICE]);
        for _ in 0..60 {
            let output = run(&["secret", "rm", SECRET]);
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.success() || stderr.contains("not found") || stderr.contains("No such") {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        Self::remove();
    }
}

/// The state of A8 in /api/v1/alerts, if listed.
fn a8_state(client: &reqwest::blocking::Client, server: &super::durability::Server) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(&get(client, server, "/api/v1/alerts")).expect("JSON");
    body["data"]["alerts"].as_array().expect("alerts").iter().find_map(|alert| {
        (alert["labels"]["alertname"] == "PostgresExporterDsnGateOpen")
            .then(|| alert["state"].as_str().unwrap_or_default().to_owned())
    })
}

#[test]
fn run_with_a_docker_datasource_fires_and_resolves_a8() {
    if !daemon() {
        return;
    }
    Exporter::remove();
    let _exporter = Exporter;
    // The exporter runs without its DSN secret: the gate is open.
    docker(&["service", "create", "--detach", "--quiet", "--name", SERVICE, "--replicas", "1", IMAGE]);

    let directory = tempfile::tempdir().expect("temporary directory");
    let catalog = directory.path().join("catalog");
    copy_tree(&super::workspace_root().join("catalog/busflow"), &catalog);
    let rules = catalog.join("rules/docker.rules.yaml");
    let text = std::fs::read_to_string(&rules).expect("rules");
    std::fs::write(&rules, text.replace("interval: 1m", "interval: 1s")).expect("write rules");
    let config = directory.path().join("alertbook.yaml");
    std::fs::write(
        &config,
        format!(
            "catalog: catalog\nscrape_self: false\ndatasources:\n  docker: {{type: docker, host: unix://{SOCKET}}}\n"
        ),
    )
    .expect("config");

    let check = super::alertbook(&["check", "--config", config.to_str().expect("utf-8")]);
    let check_output = format!("{}{}", super::stdout(&check), super::stderr(&check));
    assert!(check.status.success(), "{check_output}");
    assert!(check_output.contains(&format!("docker (docker unix://{SOCKET})")), "{check_output}");

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::new();
    let (server, log) = start(directory.path(), &config);
    wait_for("A8 firing", &log, || a8_state(&client, &server).as_deref() == Some("firing"));
    let metrics = get(&client, &server, "/metrics");
    assert!(metrics.contains("alertbook_datasource_up{datasource=\"docker\",type=\"docker\"} 1"), "{metrics}");
    assert_eq!(rule(&client, &server, "PostgresExporterDsnGateOpen")["health"], "ok");
    assert_eq!(rule(&client, &server, "PgCronJobFailed")["lastError"], "no sql datasource configured");

    // Scaled to 0, the exporter cannot leak anything: A8 resolves.
    docker(&["service", "scale", "--detach", &format!("{SERVICE}=0")]);
    wait_for("A8 resolved", &log, || a8_state(&client, &server).as_deref() != Some("firing"));
}
