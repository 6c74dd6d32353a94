//! Delivery end to end: retries against a flaky receiver, persistence across
//! a restart, and a real Alertmanager (Debian `prometheus-alertmanager`) whose
//! `amtool` sees what alertbook sent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use notify::{Alert, Dispatcher, DispatcherOptions, Outbox, Target};

mod email;
mod history;
mod receivers;
mod routing;
use parking_lot::Mutex;

fn alert(name: &str, ends_at_ms: Option<i64>) -> Alert {
    Alert {
        labels: BTreeMap::from([("alertname".into(), name.into()), ("severity".into(), "page".into())]),
        annotations: BTreeMap::from([("summary".into(), format!("{name} fired"))]),
        starts_at_ms: chrono::Utc::now().timestamp_millis() - 60_000,
        ends_at_ms,
        generator_url: "http://127.0.0.1:9099/runbook".into(),
    }
}

/// A receiver that answers the given statuses in turn (then 200) and records bodies.
async fn receiver(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
    receiver_on(0, statuses).await
}

/// The same, on a given port (0: any free port).
async fn receiver_on(port: u16, statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<String>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let recorded = bodies.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let calls = calls.clone();
            let recorded = recorded.clone();
            let statuses = statuses.clone();
            async move {
                let call = calls.fetch_add(1, Ordering::SeqCst);
                let status = statuses.get(call).copied().unwrap_or(200);
                if status == 200 {
                    recorded.lock().push(body);
                }
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, bodies)
}

fn options() -> DispatcherOptions {
    DispatcherOptions {
        timeout: Duration::from_secs(5),
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(8),
        external_url: "http://alertbook.test".into(),
        concurrency_per_receiver: 4,
    }
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_backoff_until_accepted() {
    let (url, bodies) = receiver(vec![503, 500]).await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let target = Target::Webhook { name: "ops-oncall".into(), url };
    let dispatcher =
        Dispatcher::new(Outbox::open(directory.path()).expect("outbox"), vec![target], options()).expect("dispatcher");
    let now = 1_000_000;
    assert_eq!(dispatcher.dispatch(&[alert("HighApiErrorRate", None)], now).expect("dispatch"), 1);

    let first = dispatcher.deliver_due(now).await.expect("pass");
    assert_eq!((first.delivered, first.retried), (0, 1));
    // Not due again before its backoff (1 s) elapses.
    assert_eq!(dispatcher.deliver_due(now + 500).await.expect("pass").retried, 0);
    let second = dispatcher.deliver_due(now + 1000).await.expect("pass");
    assert_eq!(second.retried, 1);
    // The second retry waits twice as long.
    assert_eq!(dispatcher.deliver_due(now + 2500).await.expect("pass").delivered, 0);
    let third = dispatcher.deliver_due(now + 3000).await.expect("pass");
    assert_eq!(third.delivered, 1);
    assert!(dispatcher.outbox().is_empty());
    let body: serde_json::Value = serde_json::from_str(&bodies.lock()[0]).expect("JSON");
    assert_eq!(body["receiver"], "ops-oncall");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "HighApiErrorRate");
}

#[tokio::test]
async fn permanent_refusals_are_dropped() {
    let (url, bodies) = receiver(vec![400]).await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let target = Target::Webhook { name: "hook".into(), url };
    let dispatcher =
        Dispatcher::new(Outbox::open(directory.path()).expect("outbox"), vec![target], options()).expect("dispatcher");
    dispatcher.dispatch(&[alert("A", None)], 0).expect("dispatch");
    let stats = dispatcher.deliver_due(0).await.expect("pass");
    assert_eq!(stats.dropped, 1);
    assert!(dispatcher.outbox().is_empty());
    assert!(bodies.lock().is_empty());
}

#[tokio::test]
async fn pending_deliveries_survive_a_restart() {
    let directory = tempfile::tempdir().expect("temporary directory");
    // The receiver is down: nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    let down = Target::Webhook { name: "hook".into(), url: format!("http://{closed}/hook") };
    let dispatcher =
        Dispatcher::new(Outbox::open(directory.path()).expect("outbox"), vec![down], options()).expect("dispatcher");
    dispatcher.dispatch(&[alert("PiiLeakDetected", None)], 0).expect("dispatch");
    assert_eq!(dispatcher.deliver_due(0).await.expect("pass").retried, 1);
    drop(dispatcher);

    // After the restart the receiver is back on the same address.
    let (_, bodies) = receiver_on(closed.port(), vec![]).await;
    let outbox = Outbox::open(directory.path()).expect("reopen");
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox.due(i64::MAX)[0].attempts, 1);
    let dispatcher = Dispatcher::new(outbox, vec![], options()).expect("dispatcher");
    assert_eq!(dispatcher.deliver_due(i64::MAX / 2).await.expect("pass").delivered, 1);
    assert!(dispatcher.outbox().is_empty());
    assert!(bodies.lock()[0].contains("PiiLeakDetected"));
    assert!(Outbox::open(directory.path()).expect("reopen").is_empty());
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

async fn amtool_alerts(url: &str) -> serde_json::Value {
    let output = tokio::process::Command::new("amtool")
        .args(["--alertmanager.url", url, "alert", "query", "--output=json"])
        .output()
        .await
        .expect("amtool is installed (Debian package prometheus-alertmanager; scripts/test installs it)");
    assert!(output.status.success(), "amtool failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("amtool JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_receives_and_resolves_alerts() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let config = directory.path().join("alertmanager.yml");
    std::fs::write(&config, "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n").expect("write config");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut alertmanager = tokio::process::Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", directory.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus-alertmanager is installed (scripts/test installs it)");
    notify::install_crypto_provider();
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if client.get(format!("{url}/-/ready")).send().await.is_ok_and(|response| response.status().is_success()) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "alertmanager did not become ready");

    let outbox = Outbox::open(&directory.path().join("outbox")).expect("outbox");
    let dispatcher =
        Dispatcher::new(outbox, vec![Target::Alertmanager { url: url.clone() }], options()).expect("dispatcher");
    let now = chrono::Utc::now().timestamp_millis();
    dispatcher.dispatch(&[alert("HighApiErrorRate", None), alert("LatencySloBreach", None)], now).expect("dispatch");
    assert_eq!(dispatcher.deliver_due(now).await.expect("pass").delivered, 1);

    let alerts = amtool_alerts(&url).await;
    let mut names: Vec<&str> =
        alerts.as_array().expect("array").iter().filter_map(|alert| alert["labels"]["alertname"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["HighApiErrorRate", "LatencySloBreach"]);

    // Resolve one: endsAt in the past.
    let now = chrono::Utc::now().timestamp_millis();
    dispatcher.dispatch(&[alert("HighApiErrorRate", Some(now - 1000))], now).expect("dispatch");
    dispatcher.deliver_due(now).await.expect("pass");
    let alerts = amtool_alerts(&url).await;
    let names: Vec<&str> =
        alerts.as_array().expect("array").iter().filter_map(|alert| alert["labels"]["alertname"].as_str()).collect();
    assert_eq!(names, ["LatencySloBreach"]);
    let _ = alertmanager.kill().await;
}
