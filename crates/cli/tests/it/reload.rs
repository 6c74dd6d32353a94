//! Reloading a running alertbook as Prometheus is reloaded: `SIGHUP` and
//! `POST /-/reload` (with `--web.enable-lifecycle`, an admin once users
//! exist). New rules and routes apply while a firing alert keeps its
//! activeAt and its acknowledgement; a broken rule file is refused with its
//! location, the reload gauges say so, and the old rules keep evaluating.

use std::path::Path;
use std::time::{Duration, Instant};

use super::durability::{Server, free_port, start_with};

const ADMIN_PASSWORD: &str = "an admin's long password";
const RESPONDER_PASSWORD: &str = "a responder's long password";

fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().expect("client")
}

fn token(data: &Path, user: &str, role: &str, password: &str) -> String {
    let data = data.to_str().expect("utf-8");
    super::alertbook_with_input(&["user", "add", user, "--role", role, "--data", data], &format!("{password}\n"));
    super::alertbook_with_input(&["token", "create", user, "--data", data], "").trim().to_owned()
}

fn json(client: &reqwest::blocking::Client, server: &Server, path: &str, token: &str) -> serde_json::Value {
    client
        .get(format!("{}{path}", server.url))
        .bearer_auth(token)
        .send()
        .and_then(|response| response.json())
        .unwrap_or_else(|error| panic!("GET {path}: {error}"))
}

/// The firing A6 alert of the alerts API, once there is one.
fn firing_a6(client: &reqwest::blocking::Client, server: &Server) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let body = json(client, server, "/api/v1/alerts", "");
        let alert = body["data"]["alerts"].as_array().and_then(|alerts| {
            alerts
                .iter()
                .find(|alert| alert["labels"]["alertname"] == "LokiCompactorBehind" && alert["state"] == "firing")
                .cloned()
        });
        if let Some(alert) = alert {
            return alert;
        }
        assert!(Instant::now() < deadline, "A6 never fired: {body}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The LokiCompactorBehind rule of the rules API.
fn a6_rule(client: &reqwest::blocking::Client, server: &Server) -> serde_json::Value {
    let body = json(client, server, "/api/v1/rules", "");
    body["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
        .find(|rule| rule["name"] == "LokiCompactorBehind")
        .unwrap_or_else(|| panic!("no LokiCompactorBehind rule: {body}"))
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metrics(client: &reqwest::blocking::Client, server: &Server) -> String {
    client.get(format!("{}/metrics", server.url)).send().and_then(|response| response.text()).expect("metrics")
}

fn reload(client: &reqwest::blocking::Client, server: &Server, token: Option<&str>) -> (u16, String) {
    let mut request = client.post(format!("{}/-/reload", server.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().expect("POST /-/reload");
    (response.status().as_u16(), response.text().unwrap_or_default())
}

#[test]
fn sighup_and_the_lifecycle_endpoint_reload_rules_and_routes_keeping_alert_state() {
    let work = tempfile::tempdir().expect("temporary directory");
    let catalog = work.path().join("catalog");
    super::fast_catalog_at(&catalog, "metrics.rules.yaml");
    let config = work.path().join("alertbook.yaml");
    std::fs::write(&config, "catalog: catalog\nscrape_self: false\n").expect("alertbook.yaml");
    let data = work.path().join("data");
    let config_argument = config.display().to_string();
    let client = client();

    // Without --web.enable-lifecycle the endpoint is closed, as in Prometheus.
    {
        let server = start_with(&data, free_port(), &["--config", &config_argument]);
        let (status, body) = reload(&client, &server, None);
        assert_eq!((status, body.as_str()), (403, "Lifecycle API is not enabled."));
    }

    let admin = token(&data, "root", "admin", ADMIN_PASSWORD);
    let responder = token(&data, "alice", "responder", RESPONDER_PASSWORD);
    let server = start_with(
        &data,
        free_port(),
        &[
            "--config",
            &config_argument,
            "--web.enable-lifecycle",
            // A receiver the new contact names (nothing listens: deliveries just retry).
            "--notify.webhook",
            "ops-pager=http://127.0.0.1:9/",
        ],
    );
    super::alerting::write_stale_compactor(&server, &client);
    let alert = firing_a6(&client, &server);
    let active_at = alert["activeAt"].as_str().expect("activeAt").to_owned();
    let fingerprint = alert["fingerprint"].as_str().expect("fingerprint").to_owned();
    let acknowledged = client
        .post(format!("{}/api/v1/alerts/{fingerprint}/ack", server.url))
        .bearer_auth(&responder)
        .json(&serde_json::json!({}))
        .send()
        .expect("ack");
    assert_eq!(acknowledged.status().as_u16(), 200);
    let routing =
        json(&client, &server, "/api/v2/status", "")["config"]["original"].as_str().unwrap_or_default().to_owned();
    assert!(!routing.contains("receiver: \"ops-pager\""), "{routing}");

    // A new threshold (the contract's and the rule's) and annotation for A6
    // and a new receiver for its route; then SIGHUP.
    let contract_path = catalog.join("contracts/log-retention.yaml");
    let contract = std::fs::read_to_string(&contract_path).expect("contract");
    std::fs::write(&contract_path, contract.replace("max_compaction_lag: 3h", "max_compaction_lag: 2h"))
        .expect("write contract");
    let rules_path = catalog.join("rules/metrics.rules.yaml");
    let rules = std::fs::read_to_string(&rules_path).expect("rules");
    let changed = rules
        .replace("> 3 * 3600)", "> 2 * 3600)")
        .replace("Loki compaction is behind or the loki bucket is near its quota", "Loki compaction is late");
    std::fs::write(&rules_path, &changed).expect("write rules");
    let contacts_path = catalog.join("contacts.yaml");
    let contacts = std::fs::read_to_string(&contacts_path).expect("contacts");
    std::fs::write(&contacts_path, contacts.replacen("receiver: ops-oncall", "receiver: ops-pager", 1))
        .expect("write contacts");
    let killed =
        std::process::Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().expect("kill -HUP");
    assert!(killed.success());
    wait_until("the new rule", || a6_rule(&client, &server)["query"].as_str().is_some_and(|q| q.contains("2 * 3600")));
    wait_until("the new annotation", || {
        firing_a6(&client, &server)["annotations"]["summary"] == "Loki compaction is late"
    });
    let alert = firing_a6(&client, &server);
    assert_eq!(alert["activeAt"], active_at.as_str(), "the firing alert keeps its activeAt: {alert}");
    let routing =
        json(&client, &server, "/api/v2/status", "")["config"]["original"].as_str().unwrap_or_default().to_owned();
    assert!(routing.contains("receiver: \"ops-pager\""), "the new route is in force: {routing}");
    let acknowledgements = json(&client, &server, "/api/v1/acknowledgements", &responder);
    assert_eq!(acknowledgements["data"]["acknowledged"][0]["acknowledged_by"], "alice", "{acknowledgements}");
    let triage = json(&client, &server, &format!("/api/v1/triage?fingerprint={fingerprint}"), &responder);
    assert!(triage["data"]["runs"].as_array().is_some_and(|runs| !runs.is_empty()), "triage history stays: {triage}");
    assert!(metrics(&client, &server).contains("alertbook_config_last_reload_successful 1"));

    // Users exist: the endpoint needs an admin.
    assert_eq!(reload(&client, &server, None).0, 401);
    assert_eq!(reload(&client, &server, Some(&responder)).0, 403);

    // A broken rule file: refused with its location; the old rules keep evaluating.
    std::fs::write(&rules_path, changed.replacen("      - alert: LokiCompactorBehind", "      - alert: [", 1))
        .expect("write broken rules");
    let (status, body) = reload(&client, &server, Some(&admin));
    assert_eq!(status, 500, "{body}");
    assert!(body.starts_with("failed to reload config: "), "{body}");
    assert!(body.contains("metrics.rules.yaml:"), "the error names the file, line and column: {body}");
    let text = metrics(&client, &server);
    assert!(text.contains("alertbook_config_last_reload_successful 0"), "{text}");
    let runtime = json(&client, &server, "/api/v1/status/runtimeinfo", "");
    assert_eq!(runtime["data"]["reloadConfigSuccess"], false, "{runtime}");
    let evaluated = a6_rule(&client, &server)["lastEvaluation"].clone();
    wait_until("an evaluation of the running rules", || a6_rule(&client, &server)["lastEvaluation"] != evaluated);
    assert!(a6_rule(&client, &server)["query"].as_str().is_some_and(|query| query.contains("2 * 3600")));
    assert_eq!(firing_a6(&client, &server)["activeAt"], active_at.as_str());

    // Fixed: accepted.
    std::fs::write(&rules_path, &changed).expect("write fixed rules");
    let (status, body) = reload(&client, &server, Some(&admin));
    assert_eq!((status, body.as_str()), (200, ""));
    assert!(metrics(&client, &server).contains("alertbook_config_last_reload_successful 1"));
    let runtime = json(&client, &server, "/api/v1/status/runtimeinfo", "");
    assert_eq!(runtime["data"]["reloadConfigSuccess"], true, "{runtime}");
}
