//! alertbook as its own Alertmanager: `alerting.config_file` routes a catalog
//! alert to a webhook, and the notification log survives SIGKILL: killed
//! between two notifications of a group, the restarted process neither
//! re-sends the first nor misses the repeat.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::durability::{free_port, start_with};

/// Bodies received, with the time each arrived.
type Received = Arc<Mutex<Vec<(Instant, serde_json::Value)>>>;

/// A webhook that records each body with the time it arrived.
fn timed_receiver() -> (String, Received) {
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
                let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                received.lock().expect("bodies").push((Instant::now(), value));
            }
            let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const REPEAT: Duration = Duration::from_secs(8);

#[test]
fn sigkill_between_two_notifications_neither_resends_nor_skips_the_repeat() {
    let work = tempfile::tempdir().expect("temporary directory");
    let catalog = work.path().join("catalog");
    super::fast_catalog_at(&catalog, "metrics.rules.yaml");
    let (hook, received) = timed_receiver();
    std::fs::write(
        work.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: ops-oncall\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 8s\n\
             receivers:\n  - name: ops-oncall\n    webhook_configs:\n      - url: {hook}\n"
        ),
    )
    .expect("alertmanager.yml");
    let config = work.path().join("alertbook.yaml");
    std::fs::write(&config, "catalog: catalog\nscrape_self: false\nalerting:\n  config_file: alertmanager.yml\n")
        .expect("alertbook.yaml");
    let config_argument = config.to_str().expect("utf-8").to_owned();
    let data = work.path().join("data");
    let port = free_port();
    let mut server = start_with(&data, port, &["--config", &config_argument]);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    super::alerting::write_stale_compactor(&server, &client);

    let a6 = |received: &Received| -> Vec<Instant> {
        received
            .lock()
            .expect("bodies")
            .iter()
            .filter(|(_, body)| body["groupLabels"]["alertname"] == "LokiCompactorBehind")
            .map(|(at, _)| *at)
            .collect()
    };
    wait_until("the first notification", Duration::from_secs(60), || !a6(&received).is_empty());
    let first = a6(&received)[0];
    let body = received.lock().expect("bodies")[0].1.clone();
    assert_eq!(body["receiver"], "ops-oncall");
    assert_eq!(body["groupKey"], "{}:{alertname=\"LokiCompactorBehind\"}");
    assert_eq!(body["alerts"][0]["labels"]["route"], "ops-oncall");
    assert_eq!(body["alerts"][0]["annotations"]["runbook_id"], "A6");

    // The history says who was told what, and that it was delivered.
    wait_until("the delivered history record", Duration::from_secs(10), || {
        let history: serde_json::Value = client
            .get(format!("{}/api/v1/notifications", server.url))
            .send()
            .and_then(|response| response.json())
            .unwrap_or_default();
        history["data"][0]["state"] == "delivered"
    });
    let history: serde_json::Value =
        client.get(format!("{}/api/v1/notifications", server.url)).send().expect("history").json().expect("JSON");
    let record = &history["data"][0];
    assert_eq!(record["receiver"], "ops-oncall");
    assert_eq!(record["integration"], "webhook");
    assert_eq!(record["alerts"][0]["labels"]["alertname"], "LokiCompactorBehind");
    assert_eq!(record["alerts"][0]["status"], "firing");

    // SIGKILL, then start again on the same data.
    std::thread::sleep(Duration::from_millis(300));
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    drop(server);
    let server = start_with(&data, port, &["--config", &config_argument]);

    // Nothing before the repeat is due; the repeat comes on time.
    wait_until("the repeat", REPEAT + Duration::from_secs(15), || a6(&received).len() >= 2);
    let times = a6(&received);
    let gap = times[1].duration_since(first);
    assert!(gap >= REPEAT - Duration::from_millis(500), "re-sent after {gap:?}, before repeat_interval");
    assert!(gap <= REPEAT + Duration::from_secs(4), "the repeat came {gap:?} after the first notification");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(a6(&received).len(), 2, "one repeat, not two");
    drop(server);
}
