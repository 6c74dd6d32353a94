//! `--web.external-url`: a firing alert's notifications (the webhook payload
//! and the Alertmanager API v2 post) and its `runbook_url` annotation, built
//! from `{{ $externalURL }}` in the catalog's rules, carry the configured
//! URL, as do the alert API and the alert's page.

use std::time::{Duration, Instant};

use super::alerting::write_stale_compactor;
use super::docker::webhook_receiver;
use super::durability::{free_port, start_with};

const EXTERNAL: &str = "https://alertbook.busflow.example/ops";

#[test]
fn a_firing_alert_links_to_the_external_url_everywhere() {
    let work = tempfile::tempdir().expect("temporary directory");
    let catalog = work.path().join("catalog");
    super::fast_catalog_at(&catalog, "metrics.rules.yaml");
    let (webhook, webhook_bodies) = webhook_receiver();
    // The Alertmanager API v2 post goes to <url>/api/v2/alerts; the receiver records any POST.
    let (alertmanager, alertmanager_bodies) = webhook_receiver();
    let alertmanager = alertmanager.trim_end_matches("/hook").to_owned();
    let server = start_with(
        &work.path().join("data"),
        free_port(),
        &[
            "--catalog",
            catalog.to_str().expect("utf-8"),
            // A trailing slash is dropped, as Prometheus does.
            "--web.external-url",
            &format!("{EXTERNAL}/"),
            "--notify.webhook",
            &format!("oncall={webhook}"),
            "--alertmanager.url",
            &alertmanager,
        ],
    );
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    write_stale_compactor(&server, &client);

    let runbook_url = format!("{EXTERNAL}/runbook/A6");
    let deadline = Instant::now() + Duration::from_secs(120);
    let (webhook_payload, alertmanager_alert) = loop {
        let webhook_payload = webhook_bodies
            .lock()
            .expect("bodies")
            .iter()
            .filter_map(|body| serde_json::from_str::<serde_json::Value>(body).ok())
            .find(|payload| payload["commonLabels"]["alertname"] == "LokiCompactorBehind");
        let alertmanager_alert = alertmanager_bodies
            .lock()
            .expect("bodies")
            .iter()
            .filter_map(|body| serde_json::from_str::<serde_json::Value>(body).ok())
            .flat_map(|alerts| alerts.as_array().cloned().unwrap_or_default())
            .find(|alert| alert["labels"]["alertname"] == "LokiCompactorBehind");
        if let (Some(webhook_payload), Some(alertmanager_alert)) = (&webhook_payload, &alertmanager_alert) {
            break (webhook_payload.clone(), alertmanager_alert.clone());
        }
        assert!(Instant::now() < deadline, "LokiCompactorBehind did not reach both receivers");
        std::thread::sleep(Duration::from_millis(200));
    };

    // Alertmanager's webhook payload: externalURL, the generator link and the runbook annotation.
    assert_eq!(webhook_payload["externalURL"], EXTERNAL, "{webhook_payload}");
    let alert = &webhook_payload["alerts"][0];
    assert_eq!(alert["annotations"]["runbook_url"], runbook_url.as_str(), "{webhook_payload}");
    let generator = alert["generatorURL"].as_str().expect("generatorURL");
    assert!(generator.starts_with(&format!("{EXTERNAL}/graph?g0.expr=")), "{generator}");

    // Alertmanager's API v2 post: the same.
    assert_eq!(alertmanager_alert["annotations"]["runbook_url"], runbook_url.as_str(), "{alertmanager_alert}");
    let generator = alertmanager_alert["generatorURL"].as_str().expect("generatorURL");
    assert!(generator.starts_with(&format!("{EXTERNAL}/graph?g0.expr=")), "{generator}");

    // The alert API shows the expanded annotation; the alert's page links to it.
    let body: serde_json::Value =
        client.get(format!("{}/api/v1/alerts", server.url)).send().expect("alerts").json().expect("JSON");
    let listed = body["data"]["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|alert| alert["labels"]["alertname"] == "LokiCompactorBehind")
        .unwrap_or_else(|| panic!("{body}"))
        .clone();
    assert_eq!(listed["annotations"]["runbook_url"], runbook_url.as_str());
    let fingerprint = listed["fingerprint"].as_str().expect("fingerprint");
    let page = client.get(format!("{}/alerts/{fingerprint}", server.url)).send().expect("alert page");
    assert!(page.status().is_success(), "{}", page.status());
    let page = page.text().expect("HTML");
    assert!(page.contains(&format!("<a href=\"{runbook_url}\" class=\"runbook-link\">")), "{page}");

    // The effective configuration names it.
    let config: serde_json::Value =
        client.get(format!("{}/api/v1/status/config", server.url)).send().expect("config").json().expect("JSON");
    let yaml = config["data"]["yaml"].as_str().expect("yaml");
    assert!(yaml.contains(EXTERNAL), "{yaml}");
}

#[test]
fn a_bad_external_url_stops_the_start_with_the_reason() {
    let work = tempfile::tempdir().expect("temporary directory");
    let output = super::alertbook(&[
        "run",
        "--data",
        work.path().join("data").to_str().expect("utf-8"),
        "--web.external-url",
        "alertbook.example",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        super::stderr(&output).contains("error: --web.external-url: \"alertbook.example\" is not a URL"),
        "{}",
        super::stderr(&output)
    );
    let config = work.path().join("alertbook.yaml");
    std::fs::write(&config, "listen: 127.0.0.1:9099\nexternal_url: ftp://alertbook.example\n").expect("write");
    let output = super::alertbook(&["check", config.to_str().expect("utf-8")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        super::stderr(&output).contains(
            "alertbook.yaml:2:15: error: external_url: \"ftp://alertbook.example\" must be an http:// or https:// URL"
        ),
        "{}",
        super::stderr(&output)
    );
}
