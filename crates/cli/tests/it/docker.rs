//! `alertbook run` with a Docker datasource, against the real Docker daemon
//! that `scripts/peers/docker.sh` starts as a single-node swarm manager: A8
//! fires from the swarm's state, shows in /api/v1/alerts and reaches a webhook,
//! resolves when the exporter is scaled to 0 (and the webhook hears so), and the datasource's health is on /metrics. The
//! test owns the names `busflow_postgres_exporter` and `pgexporter_dsn` while
//! it runs (it removes leftovers first and its objects at the end).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::postgres::{get, rule, start_with, wait_for};

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

/// A webhook receiver on loopback: answers 200 to every POST and keeps the bodies.
pub(crate) fn webhook_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let received = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                received.lock().expect("bodies").push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, bodies)
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
    super::fast_catalog_at(&directory.path().join("catalog"), "docker.rules.yaml");
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
    let (webhook, notifications) = webhook_receiver();
    let (server, log) = start_with(directory.path(), &config, &["--notify.webhook", &format!("oncall={webhook}")]);
    wait_for("A8 firing", &log, || a8_state(&client, &server).as_deref() == Some("firing"));
    let metrics = get(&client, &server, "/metrics");
    assert!(metrics.contains("alertbook_datasource_up{datasource=\"docker\",type=\"docker\"} 1"), "{metrics}");
    assert_eq!(rule(&client, &server, "PostgresExporterDsnGateOpen")["health"], "ok");
    assert_eq!(rule(&client, &server, "PgCronJobFailed")["lastError"], "no sql datasource configured");

    // It is sent like every other alert: Alertmanager's webhook payload, firing.
    wait_for("the firing notification", &log, || {
        notifications
            .lock()
            .expect("bodies")
            .iter()
            .any(|body| body.contains("PostgresExporterDsnGateOpen") && body.contains("\"status\":\"firing\""))
    });

    // Scaled to 0, the exporter cannot leak anything: A8 resolves.
    docker(&["service", "scale", "--detach", &format!("{SERVICE}=0")]);
    wait_for("A8 resolved", &log, || a8_state(&client, &server).as_deref() != Some("firing"));
    wait_for("the resolved notification", &log, || {
        notifications
            .lock()
            .expect("bodies")
            .iter()
            .any(|body| body.contains("PostgresExporterDsnGateOpen") && body.contains("\"status\":\"resolved\""))
    });
}
