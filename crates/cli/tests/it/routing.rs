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
pub(super) type Received = Arc<Mutex<Vec<(Instant, serde_json::Value)>>>;

/// A webhook that records each body with the time it arrived.
pub(super) fn timed_receiver() -> (String, Received) {
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

/// Longer than a debug build takes to restart on a loaded machine, so the
/// first flush after the restart falls before the repeat is due.
const REPEAT: Duration = Duration::from_secs(20);

#[test]
fn sigkill_between_two_notifications_neither_resends_nor_skips_the_repeat() {
    let work = tempfile::tempdir().expect("temporary directory");
    let catalog = work.path().join("catalog");
    super::fast_catalog_at(&catalog, "metrics.rules.yaml");
    let (hook, received) = timed_receiver();
    std::fs::write(
        work.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: ops-oncall\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 20s\n\
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

    // /metrics counts it as Alertmanager's alertmanager_notifications_total does.
    let metrics = client.get(format!("{}/metrics", server.url)).send().expect("metrics").text().expect("text");
    let sample = |name: &str, integration: &str| -> Option<f64> {
        let prefix = format!("{name}{{integration=\"{integration}\"}} ");
        metrics.lines().find_map(|line| line.strip_prefix(&prefix)).and_then(|value| value.parse().ok())
    };
    assert!(sample("alertbook_notifications_total", "webhook").is_some_and(|count| count >= 1.0), "{metrics}");
    assert_eq!(sample("alertbook_notifications_failed_total", "webhook"), Some(0.0), "{metrics}");
    assert_eq!(sample("alertbook_notifications_total", "pagerduty"), Some(0.0), "{metrics}");
    assert!(metrics.ends_with("# EOF\n"), "still one OpenMetrics exposition");

    // SIGKILL, then start again on the same data.
    std::thread::sleep(Duration::from_millis(300));
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reaped");
    drop(server);
    let server = start_with(&data, port, &["--config", &config_argument]);
    let ready = Instant::now().duration_since(first);

    // Nothing before the repeat is due; the repeat comes on time (or as soon
    // as the process is back, were the restart slower than the repeat).
    wait_until("the repeat", REPEAT + Duration::from_secs(30), || a6(&received).len() >= 2);
    let times = a6(&received);
    let gap = times[1].duration_since(first);
    assert!(gap >= REPEAT - Duration::from_millis(500), "re-sent after {gap:?}, before repeat_interval");
    let due = REPEAT.max(ready);
    assert!(
        gap <= due + Duration::from_secs(4),
        "the repeat came {gap:?} after the first notification (due at {due:?})"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(a6(&received).len(), 2, "one repeat, not two");
    drop(server);
}

/// Kills a child process when dropped.
struct Peer(std::process::Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn amtool(url: &str, arguments: &[&str]) -> (bool, String) {
    let output = std::process::Command::new("amtool")
        .arg(format!("--alertmanager.url={url}"))
        .args(arguments)
        .output()
        .expect("amtool is installed (Debian package prometheus-alertmanager)");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

fn amtool_ok(url: &str, arguments: &[&str]) -> String {
    let (ok, text) = amtool(url, arguments);
    assert!(ok, "amtool {arguments:?} failed:\n{text}");
    text
}

const BUSFLOW_ROUTES: &str = "route:\n  receiver: ops-oncall\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  routes:\n    - matchers: [route=\"security-oncall\"]\n      receiver: security-oncall\n    - matchers: [route=~\"tenant-csm|feature-lead\"]\n      receiver: tenant-csm\n      continue: true\n    - matchers: [severity=\"page\"]\n      receiver: infra-oncall\ninhibit_rules:\n  - source_matchers: [alertname=\"LokiCompactorBehind\"]\n    target_matchers: [alertname=\"CardinalityExplosion\"]\nreceivers:\n";

/// alertbook with `alertmanager.yml` routing to webhooks at `hook`; returns the server and its data directory.
fn routed_alertbook(work: &std::path::Path, hook: &str) -> super::durability::Server {
    let mut yaml = BUSFLOW_ROUTES.to_owned();
    for receiver in ["ops-oncall", "security-oncall", "tenant-csm", "infra-oncall"] {
        yaml.push_str(&format!(
            "  - name: {receiver}\n    webhook_configs:\n      - url: {hook}?receiver={receiver}\n"
        ));
    }
    std::fs::write(work.join("alertmanager.yml"), yaml).expect("alertmanager.yml");
    let config = work.join("alertbook.yaml");
    std::fs::write(&config, "scrape_self: false\nalerting:\n  config_file: alertmanager.yml\n")
        .expect("alertbook.yaml");
    let catalog = super::workspace_root().join("catalog/busflow");
    start_with(
        &work.join("data"),
        free_port(),
        &["--config", config.to_str().expect("utf-8"), "--catalog", catalog.to_str().expect("utf-8")],
    )
}

#[test]
fn amtool_adds_queries_silences_and_expires_against_alertbook() {
    let work = tempfile::tempdir().expect("temporary directory");
    let (hook, received) = timed_receiver();
    let server = routed_alertbook(work.path(), &hook);
    let url = server.url.clone();

    amtool_ok(
        &url,
        &[
            "alert",
            "add",
            "alertname=TenantErrors",
            "route=tenant-csm",
            "severity=page",
            "tenant_id=t-42",
            "--annotation=summary=5xx for t-42",
        ],
    );
    let alerts: serde_json::Value =
        serde_json::from_str(&amtool_ok(&url, &["alert", "query", "-o", "json"])).expect("JSON");
    let alert = &alerts[0];
    assert_eq!(alert["labels"]["tenant_id"], "t-42", "{alerts}");
    assert_eq!(alert["annotations"]["summary"], "5xx for t-42");
    assert_eq!(alert["status"]["state"], "active");
    assert_eq!(
        alert["receivers"],
        serde_json::json!([{"name": "tenant-csm"}, {"name": "infra-oncall"}]),
        "continue goes on to the next matching sibling"
    );
    let simple = amtool_ok(&url, &["alert", "query", "alertname=TenantErrors"]);
    assert!(simple.contains("TenantErrors"), "{simple}");

    // The routed notification reaches the tenant's CSM.
    wait_until("the tenant-csm notification", Duration::from_secs(20), || {
        received.lock().expect("bodies").iter().any(|(_, body)| body["receiver"] == "tenant-csm")
    });

    let id = amtool_ok(&url, &["silence", "add", "tenant_id=t-42", "-c", "tenant migration", "-a", "jana", "-d", "1h"]);
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let silences: serde_json::Value =
        serde_json::from_str(&amtool_ok(&url, &["silence", "query", "-o", "json"])).expect("JSON");
    assert_eq!(silences[0]["id"], id.as_str());
    assert_eq!(silences[0]["createdBy"], "jana");
    assert_eq!(silences[0]["status"]["state"], "active");
    let quiet = amtool_ok(&url, &["silence", "query", "-q", "tenant_id=t-42"]);
    assert_eq!(quiet.trim(), id);
    // Silenced: hidden from the default query, shown with --silenced.
    let active: serde_json::Value =
        serde_json::from_str(&amtool_ok(&url, &["alert", "query", "-o", "json"])).expect("JSON");
    assert_eq!(active, serde_json::json!([]));
    let silenced: serde_json::Value =
        serde_json::from_str(&amtool_ok(&url, &["alert", "query", "--silenced", "-o", "json"])).expect("JSON");
    assert_eq!(silenced[0]["status"]["state"], "suppressed");
    assert_eq!(silenced[0]["status"]["silencedBy"][0], id.as_str());

    amtool_ok(&url, &["silence", "expire", &id]);
    let left = amtool_ok(&url, &["silence", "query", "-q"]);
    assert!(left.trim().is_empty(), "expired silences are not listed: {left}");
    let expired = amtool_ok(&url, &["silence", "query", "--expired", "-q"]);
    assert_eq!(expired.trim(), id);
    let (ok, text) = amtool(&url, &["silence", "expire", "00000000-0000-4000-8000-000000000000"]);
    assert!(!ok && text.contains("not found"), "{text}");

    // Receivers and status as amtool reads them.
    let status = amtool_ok(&url, &["config", "show"]);
    assert!(status.contains("security-oncall"), "{status}");

    // `config routes test` reads the routing tree from alertbook's status and
    // agrees with where alertbook routes the same labels.
    for (labels, expected) in [
        (vec!["route=security-oncall", "alertname=PiiLeakDetected"], "security-oncall"),
        (vec!["route=tenant-csm", "alertname=A1"], "tenant-csm"),
        (vec!["route=feature-lead", "alertname=A2", "severity=page"], "tenant-csm,infra-oncall"),
        (vec!["severity=page", "alertname=A2"], "infra-oncall"),
        (vec!["alertname=A5"], "ops-oncall"),
    ] {
        let mut arguments = vec!["config", "routes", "test"];
        arguments.extend(labels.iter().copied());
        let amtool_says = amtool_ok(&url, &arguments);
        assert_eq!(amtool_says.trim(), expected, "{labels:?}");
        let mut posted = serde_json::Map::new();
        for label in &labels {
            let (name, value) = label.split_once('=').expect("label");
            posted.insert(name.into(), value.into());
        }
        let client = reqwest::blocking::Client::new();
        client
            .post(format!("{url}/api/v2/alerts"))
            .json(&serde_json::json!([{"labels": posted}]))
            .send()
            .expect("post");
        let alerts: serde_json::Value =
            client.get(format!("{url}/api/v2/alerts")).send().expect("get").json().expect("JSON");
        let alert = alerts
            .as_array()
            .expect("alerts")
            .iter()
            .find(|alert| {
                labels.iter().all(|label| {
                    let (name, value) = label.split_once('=').expect("label");
                    alert["labels"][name] == value
                }) && alert["labels"].as_object().is_some_and(|map| map.len() == labels.len())
            })
            .expect("posted alert listed");
        let routed: Vec<&str> =
            alert["receivers"].as_array().expect("receivers").iter().filter_map(|r| r["name"].as_str()).collect();
        assert_eq!(routed.join(","), expected, "alertbook routes {labels:?}");
    }
}

/// Malformed silences get the answers a real Alertmanager gives: same status, same body.
#[test]
fn malformed_silences_get_alertmanagers_answers() {
    let work = tempfile::tempdir().expect("temporary directory");
    let (hook, _received) = timed_receiver();
    let server = routed_alertbook(work.path(), &hook);
    let alertmanager_port = free_port();
    let alertmanager_config = work.path().join("am.yml");
    std::fs::write(&alertmanager_config, "route:\n  receiver: x\nreceivers:\n  - name: x\n").expect("am.yml");
    let _alertmanager = Peer(
        std::process::Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", alertmanager_config.display()))
            .arg(format!("--storage.path={}", work.path().join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{alertmanager_port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager is installed"),
    );
    let alertmanager = format!("http://127.0.0.1:{alertmanager_port}");
    let client = reqwest::blocking::Client::new();
    wait_until("Alertmanager ready", Duration::from_secs(20), || {
        client.get(format!("{alertmanager}/-/ready")).send().is_ok_and(|response| response.status().is_success())
    });
    let future = |minutes: i64| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
        notify::rfc3339(now + minutes * 60_000)
    };
    let silence = |matchers: serde_json::Value, starts: String, ends: String| serde_json::json!({"matchers": matchers, "startsAt": starts, "endsAt": ends, "createdBy": "jana", "comment": "test"});
    let equal = |name: &str, value: &str| serde_json::json!([{"name": name, "value": value, "isRegex": false, "isEqual": true}]);
    let cases = [
        ("matches the empty string", silence(equal("team", ""), future(0), future(60))),
        (
            "regex matching empty",
            silence(serde_json::json!([{"name": "a", "value": ".*", "isRegex": true}]), future(0), future(60)),
        ),
        ("no matchers", silence(serde_json::json!([]), future(0), future(60))),
        ("bad label name", silence(equal("a-b", "x"), future(0), future(60))),
        (
            "bad regex",
            silence(serde_json::json!([{"name": "a", "value": "(", "isRegex": true}]), future(0), future(60)),
        ),
        ("ends before it starts", silence(equal("a", "x"), future(60), future(0))),
        ("ends in the past", silence(equal("a", "x"), future(-120), future(-60))),
        ("unknown id", {
            let mut body = silence(equal("a", "x"), future(0), future(60));
            body["id"] = "00000000-0000-4000-8000-000000000000".into();
            body
        }),
    ];
    let mut differences = Vec::new();
    for (what, body) in cases {
        let answer = |base: &str| {
            let response = client.post(format!("{base}/api/v2/silences")).json(&body).send().expect("post");
            let status = response.status().as_u16();
            (status, response.text().expect("body").trim().to_owned())
        };
        // Go's and Rust's regex libraries word their syntax errors differently:
        // the answers are compared up to the regex error's own text.
        let trim = |(status, body): (u16, String)| match body.find("invalid regular expression") {
            Some(index) => (status, body[..index].to_owned()),
            None => (status, body),
        };
        let theirs = trim(answer(&alertmanager));
        let ours = trim(answer(&server.url));
        if ours != theirs {
            differences.push(format!("{what}: alertbook {ours:?}, Alertmanager {theirs:?}"));
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// A real Prometheus lists alertbook under `alerting.alertmanagers`: its
/// alerts are routed by alertbook's tree like alertbook's own.
#[test]
fn prometheus_sends_alerts_that_alertbook_routes() {
    let work = tempfile::tempdir().expect("temporary directory");
    let (hook, received) = timed_receiver();
    let server = routed_alertbook(work.path(), &hook);
    let address = server.url.trim_start_matches("http://").to_owned();
    std::fs::write(
        work.path().join("rules.yml"),
        "groups:\n  - name: busflow\n    interval: 1s\n    rules:\n      - alert: PiiLeakDetected\n        expr: vector(1)\n        labels: {route: security-oncall, severity: page}\n        annotations: {runbook_id: A3}\n",
    )
    .expect("rules.yml");
    std::fs::write(
        work.path().join("prometheus.yml"),
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [rules.yml]\nalerting:\n  alertmanagers:\n    - api_version: v2\n      static_configs:\n        - targets: ['{address}']\n"
        ),
    )
    .expect("prometheus.yml");
    let prometheus_port = free_port();
    let _prometheus = Peer(
        std::process::Command::new("prometheus")
            .arg(format!("--config.file={}", work.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", work.path().join("prometheus-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            // Alerts sent before the notifier knows its Alertmanagers are dropped; resend soon.
            .arg("--rules.alert.resend-delay=1s")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus is installed (Debian package prometheus)"),
    );
    wait_until("the security-oncall notification", Duration::from_secs(60), || {
        received.lock().expect("bodies").iter().any(|(_, body)| body["receiver"] == "security-oncall")
    });
    let bodies = received.lock().expect("bodies").clone();
    let (_, body) = bodies.iter().find(|(_, body)| body["receiver"] == "security-oncall").expect("notified");
    assert_eq!(body["groupKey"], "{}/{route=\"security-oncall\"}:{alertname=\"PiiLeakDetected\"}");
    assert_eq!(body["alerts"][0]["annotations"]["runbook_id"], "A3");
    assert!(body["alerts"][0]["generatorURL"].as_str().is_some_and(|url| url.contains(&prometheus_port.to_string())));
    assert!(
        !bodies.iter().any(|(_, body)| body["receiver"] == "infra-oncall"),
        "the first matching route wins without continue"
    );
}

/// Bodies received with their arrival and user agent.
type AgentBodies = Arc<Mutex<Vec<(Instant, String, serde_json::Value)>>>;

/// One notification's shape: its status and alerts.
type Sent = (String, Vec<String>);

/// A webhook recording (arrival, user agent, body): one receiver serves both
/// alertbook and Alertmanager, told apart by their user agents.
fn agent_receiver() -> (String, AgentBodies) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let received = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let received = received.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let (mut length, mut agent) = (0usize, String::new());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':') {
                        if name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        } else if name.eq_ignore_ascii_case("user-agent") {
                            agent = value.trim().to_owned();
                        }
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    received.lock().expect("bodies").push((Instant::now(), agent, value));
                }
                let _ =
                    reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            });
        }
    });
    (url, bodies)
}

/// The same `alertmanager.yml` and the same scripted alert stream into alertbook
/// and the real Alertmanager: each receiver gets the same notifications (group
/// keys, alert sets, resolved flags), at the same times within a tolerance, and
/// a silence and an inhibition suppress the same ones.
#[test]
fn alertbook_and_alertmanager_notify_alike() {
    let work = tempfile::tempdir().expect("temporary directory");
    let (hook, received) = agent_receiver();
    let yaml = format!(
        "route:\n  receiver: ops\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 5s\n  routes:\n    - matchers: [severity=\"page\"]\n      receiver: pager\n      continue: true\n    - matchers: [team=\"db\"]\n      receiver: db\n      group_by: ['...']\n\
         inhibit_rules:\n  - source_matchers: [alertname=\"Outage\"]\n    target_matchers: [severity=\"warning\"]\n    equal: [cluster]\n\
         receivers:\n  - name: ops\n    webhook_configs: [{{url: '{hook}'}}]\n  - name: pager\n    webhook_configs: [{{url: '{hook}'}}]\n  - name: db\n    webhook_configs: [{{url: '{hook}', send_resolved: false}}]\n"
    );
    std::fs::write(work.path().join("alertmanager.yml"), &yaml).expect("alertmanager.yml");
    let config = work.path().join("alertbook.yaml");
    std::fs::write(&config, "scrape_self: false\nalerting:\n  config_file: alertmanager.yml\n")
        .expect("alertbook.yaml");
    let catalog = super::workspace_root().join("catalog/busflow");
    let server = start_with(
        &work.path().join("data"),
        free_port(),
        &["--config", config.to_str().expect("utf-8"), "--catalog", catalog.to_str().expect("utf-8")],
    );
    let alertmanager_port = free_port();
    let _alertmanager = Peer(
        std::process::Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", work.path().join("alertmanager.yml").display()))
            .arg(format!("--storage.path={}", work.path().join("am").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{alertmanager_port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("prometheus-alertmanager is installed"),
    );
    let alertmanager = format!("http://127.0.0.1:{alertmanager_port}");
    let client = reqwest::blocking::Client::new();
    wait_until("Alertmanager ready", Duration::from_secs(20), || {
        client.get(format!("{alertmanager}/-/ready")).send().is_ok_and(|response| response.status().is_success())
    });
    let both = [server.url.clone(), alertmanager.clone()];
    let now_ms =
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let post = |path: &str, body: &serde_json::Value| {
        for base in &both {
            let response = client.post(format!("{base}{path}")).json(body).send().expect("post");
            assert!(response.status().is_success(), "{base}{path}: {}", response.status());
        }
    };
    // The silence first: instance y of the db team is in maintenance.
    post(
        "/api/v2/silences",
        &serde_json::json!({
            "matchers": [{"name": "instance", "value": "y", "isRegex": false, "isEqual": true}],
            "startsAt": notify::rfc3339(now_ms()), "endsAt": notify::rfc3339(now_ms() + 3_600_000),
            "createdBy": "jana", "comment": "maintenance",
        }),
    );
    let alert =
        |labels: serde_json::Value| serde_json::json!({"labels": labels, "startsAt": notify::rfc3339(now_ms())});
    let start = Instant::now();
    post(
        "/api/v2/alerts",
        &serde_json::json!([
            alert(serde_json::json!({"alertname": "HighLatency", "severity": "warning", "cluster": "eu"})),
            alert(serde_json::json!({"alertname": "HighLatency", "severity": "warning", "cluster": "us"})),
            alert(serde_json::json!({"alertname": "HighLatency", "severity": "page", "cluster": "us"})),
            alert(serde_json::json!({"alertname": "Outage", "severity": "critical", "cluster": "eu"})),
            alert(serde_json::json!({"alertname": "PgDown", "team": "db", "instance": "x"})),
            alert(serde_json::json!({"alertname": "PgDown", "team": "db", "instance": "y"})),
        ]),
    );
    std::thread::sleep(Duration::from_millis(3500));
    // The page resolves; so does the db alert (whose receiver does not send resolved).
    let resolved = |labels: serde_json::Value| serde_json::json!({"labels": labels, "startsAt": notify::rfc3339(now_ms() - 4000), "endsAt": notify::rfc3339(now_ms())});
    post(
        "/api/v2/alerts",
        &serde_json::json!([
            resolved(serde_json::json!({"alertname": "HighLatency", "severity": "page", "cluster": "us"})),
            resolved(serde_json::json!({"alertname": "PgDown", "team": "db", "instance": "x"})),
        ]),
    );
    std::thread::sleep(Duration::from_millis(9000));

    // Per sender: (receiver, group key) → [(seconds since start, status, alerts)].
    type Timeline = std::collections::BTreeMap<(String, String), Vec<(f64, String, Vec<String>)>>;
    let timeline = |alertbook: bool| -> Timeline {
        let mut timeline = Timeline::new();
        for (at, agent, body) in received.lock().expect("bodies").iter() {
            if agent.starts_with("alertbook") != alertbook {
                continue;
            }
            let mut alerts: Vec<String> = body["alerts"]
                .as_array()
                .expect("alerts")
                .iter()
                .map(|alert| format!("{}={}", alert["labels"], alert["status"]))
                .collect();
            alerts.sort();
            let key = (
                body["receiver"].as_str().unwrap_or("").to_owned(),
                body["groupKey"].as_str().unwrap_or("").to_owned(),
            );
            let offset = at.duration_since(start).as_secs_f64();
            timeline.entry(key).or_default().push((offset, body["status"].as_str().unwrap_or("").to_owned(), alerts));
        }
        timeline
    };
    let ours = timeline(true);
    let theirs = timeline(false);
    let shape = |timeline: &Timeline| -> Vec<(String, String, Vec<Sent>)> {
        timeline
            .iter()
            .map(|((receiver, key), sent)| {
                (
                    receiver.clone(),
                    key.clone(),
                    sent.iter().map(|(_, status, alerts)| (status.clone(), alerts.clone())).collect(),
                )
            })
            .collect()
    };
    assert!(!theirs.is_empty(), "Alertmanager sent nothing");
    assert_eq!(shape(&ours), shape(&theirs), "alertbook {ours:#?}\nAlertmanager {theirs:#?}");
    for (key, sent) in &theirs {
        for ((our_time, ..), (their_time, ..)) in ours[key].iter().zip(sent) {
            assert!(
                (our_time - their_time).abs() <= 1.0,
                "{key:?}: alertbook at {our_time:.2}s, Alertmanager at {their_time:.2}s"
            );
        }
    }
    // What the silence and the inhibition suppressed: neither sender names them.
    let everything = format!("{ours:?}");
    assert!(!everything.contains("\\\"instance\\\":\\\"y\\\""), "silenced alert notified");
    assert!(
        !everything.contains("\\\"cluster\\\":\\\"eu\\\",\\\"severity\\\":\\\"warning\\\""),
        "inhibited alert notified"
    );
}
