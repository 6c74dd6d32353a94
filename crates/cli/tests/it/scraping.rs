//! Scraping real exporters: `alertbook run` scrapes its own `/metrics` and a
//! real Prometheus's, and the scraped series answer PromQL queries.

use std::time::{Duration, Instant};

use super::durability::{free_port, start_with};

fn query(client: &reqwest::blocking::Client, base: &str, promql: &str) -> serde_json::Value {
    client
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .and_then(|response| response.json::<serde_json::Value>())
        .unwrap_or(serde_json::Value::Null)
}

fn result_count(answer: &serde_json::Value) -> usize {
    answer["data"]["result"].as_array().map_or(0, Vec::len)
}

/// A child process killed when dropped (also when an assertion fails).
struct KillOnDrop(std::process::Child);

impl KillOnDrop {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn alertbook_scrapes_itself_and_a_real_prometheus() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let prometheus_port = free_port();
    let prometheus_config = directory.path().join("prometheus.yml");
    std::fs::write(&prometheus_config, "global:\n  scrape_interval: 1m\nscrape_configs: []\n").expect("write");
    let prometheus = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", prometheus_config.display()))
        .arg(format!("--storage.tsdb.path={}", directory.path().join("prometheus-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus is installed (Debian package prometheus)");
    let mut prometheus = KillOnDrop(prometheus);

    let port = free_port();
    let config = directory.path().join("alertbook.yaml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 500ms\nscrape_configs:\n  - job_name: alertbook\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{prometheus_port}']\n        labels: {{source: debian}}\ndatasources:\n  mimir:\n    type: prometheus\n    url: http://127.0.0.1:1/prometheus\n    bearer_token: hunter2-token\n"
        ),
    )
    .expect("write");
    let catalog = super::workspace_root().join("catalog/busflow");
    let data = directory.path().join("data");
    let alertmanager = format!("http://127.0.0.1:{}", free_port());
    let server = start_with(
        &data,
        port,
        &[
            "--config",
            &config.to_string_lossy(),
            "--catalog",
            &catalog.to_string_lossy(),
            "--alertmanager.url",
            &alertmanager,
        ],
    );
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");

    let metrics = client.get(format!("{}/metrics", server.url)).send().expect("GET /metrics");
    let content_type = metrics.headers()["content-type"].to_str().unwrap_or("").to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let text = metrics.text().expect("body");
    for name in [
        "alertbook_tsdb_head_series",
        "alertbook_tsdb_memory_bytes_per_series",
        "alertbook_wal_size_bytes",
        "alertbook_remote_write_samples_received_total",
        // Rule evaluation: one line per catalog metrics rule.
        r#"alertbook_rule_evaluation_failing{rule_group="busflow-api",rule="HighApiErrorRate"}"#,
        r#"alertbook_rule_group_iterations_missed_total{rule_group="busflow-cardinality"}"#,
        r#"alertbook_rule_group_last_duration_seconds{rule_group="busflow-tls"}"#,
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");

    // Each scrape sees the store as the previous ones left it: wait for every
    // expectation rather than assume an order.
    let deadline = Instant::now() + Duration::from_secs(60);
    let expectations = [
        ("up == 1", 2),
        (r#"count(prometheus_build_info{job="prometheus", source="debian"}) == 1"#, 1),
        (r#"alertbook_tsdb_head_series{job="alertbook"} > 0"#, 1),
        // The scraper's own `job` label clashes with the target's and is kept as `exported_job`.
        (r#"alertbook_scrape_attempts_total{job="alertbook", exported_job="prometheus"} > 0"#, 1),
        (r#"scrape_samples_scraped{job="prometheus"} > 10"#, 1),
    ];
    let mut unmet = Vec::new();
    while Instant::now() < deadline {
        unmet = expectations
            .iter()
            .filter_map(|(promql, count)| {
                let answer = query(&client, &server.url, promql);
                (result_count(&answer) != *count).then(|| format!("{promql}: {answer}"))
            })
            .collect();
        if unmet.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(unmet.is_empty(), "unmet after 60s:\n{}", unmet.join("\n"));

    // The scrape manager's state, the scraped metadata and the configuration
    // through Prometheus's API.
    let get = |path: &str| -> serde_json::Value {
        client.get(format!("{}{path}", server.url)).send().and_then(|response| response.json()).expect(path)
    };
    let targets = get("/api/v1/targets");
    let active = targets["data"]["activeTargets"].as_array().expect("active targets");
    assert_eq!(active.len(), 2, "{targets}");
    for target in active {
        assert_eq!(target["health"], "up", "{target}");
        assert_eq!(target["scrapeInterval"], "500ms", "{target}");
    }
    let pool = get("/api/v1/targets?scrapePool=prometheus");
    assert_eq!(pool["data"]["activeTargets"][0]["labels"]["source"], "debian", "{pool}");
    let metadata = get("/api/v1/metadata?metric=prometheus_build_info");
    assert_eq!(metadata["data"]["prometheus_build_info"][0]["type"], "gauge", "{metadata}");
    let target_metadata =
        get("/api/v1/targets/metadata?metric=prometheus_build_info&match_target=%7Bjob%3D%22prometheus%22%7D");
    assert_eq!(target_metadata["data"][0]["target"]["job"], "prometheus", "{target_metadata}");
    let config_yaml = get("/api/v1/status/config");
    let yaml = config_yaml["data"]["yaml"].as_str().expect("yaml");
    assert!(yaml.contains("bearer_token: <secret>") && !yaml.contains("hunter2"), "{yaml}");
    assert!(yaml.contains("job_name: prometheus"), "{yaml}");
    let flags = get("/api/v1/status/flags");
    assert_eq!(flags["data"]["listen"], format!("127.0.0.1:{port}"), "{flags}");
    assert_eq!(flags["data"]["query.lookback-delta"], "5m", "{flags}");
    let alertmanagers = get("/api/v1/alertmanagers");
    assert_eq!(
        alertmanagers["data"]["activeAlertmanagers"],
        serde_json::json!([{"url": format!("{alertmanager}/api/v2/alerts")}]),
        "{alertmanagers}"
    );
    assert_eq!(flags["data"]["alertmanager.url"], alertmanager.as_str(), "{flags}");
    let runtime = get("/api/v1/status/runtimeinfo");
    assert!(runtime["data"]["timeSeriesCount"].as_u64().unwrap_or(0) > 10, "{runtime}");
    prometheus.stop();
}
