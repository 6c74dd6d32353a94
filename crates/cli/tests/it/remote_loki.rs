//! `alertbook run` with a remote Loki datasource bound to a log rule group:
//! a second alertbook serves the Loki API, lines pushed to it fire A7's
//! `SsoFallthrough` in the first, whose own log store never sees them; the
//! datasource's health is on /metrics, its errors name it once the remote
//! stops, and its password appears nowhere.

use std::time::Duration;

use super::postgres::{get, rule, start, wait_for};

const LOKI_PASSWORD: &str = "remote-loki-pw-3f9a";

/// The alerts of `alertname` in /api/v1/alerts: (summary, state).
fn alerts(
    client: &reqwest::blocking::Client,
    server: &super::durability::Server,
    alertname: &str,
) -> Vec<(String, String)> {
    let body: serde_json::Value = serde_json::from_str(&get(client, server, "/api/v1/alerts")).expect("JSON");
    let mut found: Vec<(String, String)> = body["data"]["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|alert| alert["labels"]["alertname"] == alertname)
        .map(|alert| {
            (
                alert["annotations"]["summary"].as_str().unwrap_or_default().to_owned(),
                alert["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

#[test]
fn run_with_a_remote_loki_fires_the_log_alert_from_lines_pushed_to_the_remote() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let directory = tempfile::tempdir().expect("temporary directory");
    let remote_directory = directory.path().join("remote");
    std::fs::create_dir_all(&remote_directory).expect("mkdir");
    let remote_config = remote_directory.join("alertbook.yaml");
    std::fs::write(
        &remote_config,
        format!("catalog: {}\nscrape_self: false\n", super::workspace_root().join("catalog/busflow").display()),
    )
    .expect("config");
    let (remote, remote_log) = start(&remote_directory, &remote_config);

    super::fast_catalog_at(&directory.path().join("catalog"), "logs.rules.yaml");
    std::fs::write(directory.path().join("loki-password"), format!("{LOKI_PASSWORD}\n")).expect("password file");
    let config = directory.path().join("alertbook.yaml");
    std::fs::write(
        &config,
        format!(
            "catalog: catalog\nscrape_self: false\ndatasources:\n  remote-loki:\n    type: loki\n    url: {}\n    tenant: busflow\n    timeout: 2s\n    basic_auth: {{username: alertbook, password_file: loki-password}}\nrule_datasources:\n  busflow-grafana-sso: remote-loki\n",
            remote.url
        ),
    )
    .expect("config");

    let check = super::alertbook(&["check", "--config", config.to_str().expect("utf-8")]);
    let check_output = format!("{}{}", super::stdout(&check), super::stderr(&check));
    assert!(check.status.success(), "{check_output}");
    assert!(check_output.contains(&format!("remote-loki (loki {}, tenant busflow)", remote.url)), "{check_output}");
    assert!(!check_output.contains(LOKI_PASSWORD), "{check_output}");

    let client = reqwest::blocking::Client::new();
    let (server, log) = start(directory.path(), &config);

    // Lines go to the remote only.
    let now_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as i64;
    let push = serde_json::json!({"streams": [{"stream": {"service_name": "busflow_grafana"}, "values": [
        // Grafana 11 logfmt (testdata/telemetry/grafana-11.logfmt): a JWT (SSO) failure counts,
        // a session failure does not.
        [(now_ns - 3_000_000_000).to_string(), r#"logger=authn.service t=2026-01-01T00:02:30.441180031Z level=warn msg="Failed to authenticate request" client=auth.client.jwt error="[auth.jwt.invalid] failed to verify JWT: square/go-jose/jwt: validation failed, token is expired (exp)""#],
        [(now_ns - 2_000_000_000).to_string(), r#"logger=authn.service t=2026-01-01T00:03:10.201772113Z level=warn msg="Failed to authenticate request" client=auth.client.session error="user token not found""#]
    ]}]});
    let pushed = client
        .post(format!("{}/loki/api/v1/push", remote.url))
        .header("content-type", "application/json")
        .body(push.to_string())
        .send()
        .expect("push");
    assert_eq!(pushed.status().as_u16(), 204);

    wait_for("SsoFallthrough firing", &log, || {
        alerts(&client, &server, "SsoFallthrough")
            == vec![(
                "1 requests reached Grafana with an SSO (JWT) claim it could not verify in 5 minutes".to_owned(),
                "firing".to_owned(),
            )]
    });
    assert_eq!(rule(&client, &server, "SsoFallthrough")["health"], "ok");
    let own: serde_json::Value = serde_json::from_str(&get(
        &client,
        &server,
        "/loki/api/v1/query_range?query=%7Bservice_name%3D%22busflow_grafana%22%7D",
    ))
    .expect("JSON");
    assert_eq!(own["data"]["result"], serde_json::json!([]), "the lines never reached the local store");
    // Groups not bound to the remote keep reading the embedded log store.
    wait_for("PiiLeakDetected evaluated over the embedded store", &log, || {
        rule(&client, &server, "PiiLeakDetected")["health"] == "ok"
    });
    let metrics = get(&client, &server, "/metrics");
    assert!(metrics.contains("alertbook_datasource_up{datasource=\"remote-loki\",type=\"loki\"} 1"), "{metrics}");

    // The remote stops: the rule's error names the datasource and it is down.
    drop(remote);
    wait_for("the remote error", &log, || {
        rule(&client, &server, "SsoFallthrough")["lastError"]
            .as_str()
            .is_some_and(|error| error.contains("loki datasource \"remote-loki\""))
    });
    assert_eq!(rule(&client, &server, "SsoFallthrough")["health"], "err");
    std::thread::sleep(Duration::from_millis(100));
    let metrics = get(&client, &server, "/metrics");
    assert!(metrics.contains("alertbook_datasource_up{datasource=\"remote-loki\",type=\"loki\"} 0"), "{metrics}");
    let answers = [get(&client, &server, "/api/v1/rules"), get(&client, &server, "/api/v1/status/config"), metrics];
    let log = log.lock().expect("log").clone();
    assert!(log.contains("loki datasource configured"), "{log}");
    for text in answers.iter().chain([&log, &remote_log.lock().expect("log").clone()]) {
        assert!(!text.contains(LOKI_PASSWORD), "the password leaked:\n{text}");
    }
}
