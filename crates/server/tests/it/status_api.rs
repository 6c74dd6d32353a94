//! Prometheus's status, metadata, exemplar, target and federation endpoints:
//! each answer compared with the documented example answer's shape, and
//! each fed with real data (remote-write requests, real scrapes of a local
//! exporter, appended samples).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ingest::remote_write::{Exemplar, Label, MetricMetadata, Sample, TimeSeries, WriteRequest, encode};
use serde_json::Value;
use tower::ServiceExt;
use tsdb::{Labels, MemStore};

use super::shape::{assert_same_shape, fixture};

async fn get_json(state: &Arc<server::AppState>, uri: &str) -> (StatusCode, Value) {
    let response = server::router(state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24).await.expect("body");
    (status, serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("{uri}: {}", String::from_utf8_lossy(&bytes))))
}

async fn remote_write(state: &Arc<server::AppState>, request: &WriteRequest) {
    let request = Request::post("/api/v1/write")
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(Body::from(encode(request)))
        .expect("request");
    let response = server::router(state.clone()).oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

fn label(name: &str, value: &str) -> Label {
    Label { name: name.into(), value: value.into() }
}

/// The documented exemplar example, sent as remote write.
fn exemplar_request() -> WriteRequest {
    let series = |service: &str, value: f64, timestamp: i64, exemplars: Vec<Exemplar>| TimeSeries {
        labels: vec![
            label("__name__", "test_exemplar_metric_total"),
            label("instance", "localhost:8090"),
            label("job", "prometheus"),
            label("service", service),
        ],
        samples: vec![Sample { value, timestamp }],
        exemplars,
        histograms: vec![],
    };
    let exemplar =
        |trace: &str, value: f64, timestamp: i64| Exemplar { labels: vec![label("trace_id", trace)], value, timestamp };
    WriteRequest {
        timeseries: vec![
            series("bar", 6.0, 1_600_096_945_479, vec![exemplar("EpTxMJ40fUus7aGY", 6.0, 1_600_096_945_479)]),
            series(
                "foo",
                20.0,
                1_600_096_965_489,
                vec![
                    exemplar("Olp9XHlq763ccsfa", 19.0, 1_600_096_955_479),
                    exemplar("hCtjygkIHwAN9vs4", 20.0, 1_600_096_965_489),
                ],
            ),
        ],
        metadata: vec![
            MetricMetadata {
                r#type: 1,
                metric_family_name: "http_requests_total".into(),
                help: "Number of HTTP requests".into(),
                unit: String::new(),
            },
            MetricMetadata {
                r#type: 1,
                metric_family_name: "http_requests_total".into(),
                help: "Amount of HTTP requests".into(),
                unit: String::new(),
            },
            MetricMetadata {
                r#type: 2,
                metric_family_name: "cortex_ring_tokens".into(),
                help: "Number of tokens in the ring".into(),
                unit: String::new(),
            },
        ],
    }
}

#[tokio::test]
async fn exemplars_from_remote_write_answer_as_documented() {
    let state = super::state();
    remote_write(&state, &exemplar_request()).await;
    let (status, answer) = get_json(
        &state,
        "/api/v1/query_exemplars?query=test_exemplar_metric_total&start=2020-09-14T15:22:25.479Z&end=2020-09-14T15:23:25.479Z",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let documented = fixture("prometheus/query_exemplars.json");
    assert_same_shape(&documented, &answer, &["data[].seriesLabels", "data[].exemplars[].labels"]);
    // The same data as the documentation's example gives the same answer.
    assert_eq!(answer, documented);
    // A range without them, and a query whose selector matches nothing.
    let (_, none) = get_json(&state, "/api/v1/query_exemplars?query=test_exemplar_metric_total&start=0&end=1").await;
    assert_eq!(none["data"], serde_json::json!([]));
    let (_, other) = get_json(&state, "/api/v1/query_exemplars?query=rate(other_metric%5B5m%5D)").await;
    assert_eq!(other["data"], serde_json::json!([]));
    let (status, bad) = get_json(&state, "/api/v1/query_exemplars?query=sum(").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["errorType"], "bad_data");
}

#[tokio::test]
async fn metadata_from_remote_write_answers_as_documented_with_grafanas_parameters() {
    let state = super::state();
    remote_write(&state, &exemplar_request()).await;
    let (status, answer) = get_json(&state, "/api/v1/metadata?limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let documented = fixture("prometheus/metadata.json");
    assert_same_shape(&documented, &answer, &["data"]);
    assert_eq!(answer["data"]["http_requests_total"].as_array().map(Vec::len), Some(2));
    assert_eq!(answer["data"]["cortex_ring_tokens"], documented["data"]["cortex_ring_tokens"]);
    let (_, one) = get_json(&state, "/api/v1/metadata?limit_per_metric=1").await;
    assert_eq!(one["data"]["http_requests_total"].as_array().map(Vec::len), Some(1));
    // Grafana's metric browser asks for one metric, with a limit.
    let (_, metric) = get_json(&state, "/api/v1/metadata?metric=http_requests_total&limit=1").await;
    assert_eq!(metric["data"].as_object().map(|data| data.len()), Some(1));
    let (_, limited) = get_json(&state, "/api/v1/metadata?limit=1").await;
    assert_eq!(limited["data"].as_object().map(|data| data.len()), Some(1));
    let (status, _) = get_json(&state, "/api/v1/metadata?limit=many").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tsdb_stats_count_the_head_and_honour_limit() {
    let store = Arc::new(MemStore::new());
    for instance in ["a", "b", "c"] {
        for name in ["up", "http_requests_total"] {
            let labels = Labels::from_pairs([("__name__", name), ("job", "api"), ("instance", instance)]);
            store.append(&labels, 1_591_516_800_000, 1.0).expect("append");
            store.append(&labels, 1_598_896_800_143, 1.0).expect("append");
        }
    }
    let state = super::state_with(store);
    let (status, answer) = get_json(&state, "/api/v1/status/tsdb").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_same_shape(&fixture("prometheus/status_tsdb.json"), &answer, &[]);
    let head = &answer["data"]["headStats"];
    assert_eq!((head["numSeries"].as_u64(), head["minTime"].as_i64()), (Some(6), Some(1_591_516_800_000)));
    assert_eq!(head["maxTime"].as_i64(), Some(1_598_896_800_143));
    assert_eq!(answer["data"]["seriesCountByLabelValuePair"][0], serde_json::json!({"name": "job=api", "value": 6}));
    let (_, limited) = get_json(&state, "/api/v1/status/tsdb?limit=1").await;
    for list in ["seriesCountByMetricName", "labelValueCountByLabelName", "memoryInBytesByLabelName"] {
        assert_eq!(limited["data"][list].as_array().map(Vec::len), Some(1), "{list}");
    }
    for bad in ["0", "10001", "x"] {
        let (status, answer) = get_json(&state, &format!("/api/v1/status/tsdb?limit={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    }
}

#[tokio::test]
async fn format_query_prints_as_prometheus() {
    let state = super::state();
    let (status, answer) = get_json(&state, "/api/v1/format_query?query=foo/bar").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer, fixture("prometheus/format_query.json"));
    let (status, answer) = get_json(&state, "/api/v1/format_query?query=sum(rate(x%5B5m%5D)))").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["errorType"], "bad_data");
}

#[tokio::test]
async fn status_config_flags_runtimeinfo_buildinfo_and_alertmanagers() {
    let state = super::state();
    state.set_status(server::ServerStatus {
        config_yaml: "global:\n  scrape_interval: 1m\n".into(),
        flags: [("query.lookback-delta".to_owned(), "5m".to_owned())].into(),
        alertmanagers: vec!["http://127.0.0.1:9093/api/v2/alerts".into()],
        storage_retention: "15d".into(),
        ..Default::default()
    });
    for (uri, fixture_name, maps) in [
        ("/api/v1/status/config", "status_config.json", &[][..]),
        ("/api/v1/status/flags", "status_flags.json", &["data"][..]),
        ("/api/v1/status/runtimeinfo", "status_runtimeinfo.json", &[][..]),
        ("/api/v1/status/buildinfo", "status_buildinfo.json", &[][..]),
        ("/api/v1/alertmanagers", "alertmanagers.json", &[][..]),
    ] {
        let (code, answer) = get_json(&state, uri).await;
        assert_eq!(code, StatusCode::OK, "{uri}");
        assert_same_shape(&fixture(&format!("prometheus/{fixture_name}")), &answer, maps);
    }
    let (_, config) = get_json(&state, "/api/v1/status/config").await;
    assert_eq!(config["data"]["yaml"], "global:\n  scrape_interval: 1m\n");
    let (_, flags) = get_json(&state, "/api/v1/status/flags").await;
    assert_eq!(flags["data"]["query.lookback-delta"], "5m");
    let (_, runtime) = get_json(&state, "/api/v1/status/runtimeinfo").await;
    assert_eq!(runtime["data"]["storageRetention"], "15d");
    let (_, managers) = get_json(&state, "/api/v1/alertmanagers").await;
    assert_eq!(managers["data"]["activeAlertmanagers"][0]["url"], "http://127.0.0.1:9093/api/v2/alerts");
}

/// A local exporter serving a text exposition with metadata.
async fn exporter() -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            "# HELP go_goroutines Number of goroutines that currently exist.\n# TYPE go_goroutines gauge\ngo_goroutines 12\n# HELP requests_total Requests served.\n# TYPE requests_total counter\nrequests_total 7\n"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    address
}

/// One pool with a real scraped target and one target relabeling dropped.
async fn scraped_state() -> (Arc<server::AppState>, String) {
    use scrape::relabel::{Action, RelabelConfig, RelabelSpec};
    let address = exporter().await;
    let state = super::state();
    let mut job = scrape::ScrapeConfig::with_static_targets(
        "prometheus",
        &[&address.to_string(), "127.0.0.1:1"],
        Default::default(),
    );
    job.relabel_configs.push(
        RelabelConfig::new(RelabelSpec {
            source_labels: vec!["__address__".into()],
            regex: Some("127\\.0\\.0\\.1:1".into()),
            action: Some(Action::Drop),
            ..RelabelSpec::default()
        })
        .expect("valid relabeling"),
    );
    let (targets, dropped) = scrape::discovery::discover_with_dropped(&job, &job.static_configs);
    assert_eq!((targets.len(), dropped.len()), (1, 1));
    let context = scrape::ScrapeContext::new(state.durable.clone(), Arc::new(|_: &Labels| true), Default::default())
        .expect("client")
        .with_stores(state.metadata.clone(), state.exemplars.clone(), state.targets.clone());
    let mut scraper = scrape::TargetScraper::new(Arc::new(job), targets[0].clone(), Arc::new(context));
    let report = scraper.scrape_once(chrono::Utc::now().timestamp_millis()).await;
    assert!(report.up, "{:?}", report.error);
    state.targets.set_pool("prometheus", scrape::status::Pool { active: vec![scraper.status().clone()], dropped });
    (state, address.to_string())
}

#[tokio::test]
async fn targets_show_the_scrape_managers_state() {
    let (state, address) = scraped_state().await;
    let (status, answer) = get_json(&state, "/api/v1/targets").await;
    assert_eq!(status, StatusCode::OK);
    let maps = [
        "data.activeTargets[].discoveredLabels",
        "data.activeTargets[].labels",
        "data.droppedTargets[].discoveredLabels",
    ];
    assert_same_shape(&fixture("prometheus/targets.json"), &answer, &maps);
    let active = &answer["data"]["activeTargets"][0];
    assert_eq!(active["health"], "up");
    assert_eq!(active["labels"]["instance"], address.as_str());
    assert_eq!(active["scrapeUrl"], format!("http://{address}/metrics"));
    assert_eq!((active["scrapeInterval"].as_str(), active["scrapeTimeout"].as_str()), (Some("1m"), Some("10s")));
    assert_eq!(answer["data"]["droppedTargets"][0]["discoveredLabels"]["__address__"], "127.0.0.1:1");
    assert_eq!(answer["data"]["droppedTargetCounts"]["prometheus"], 1);

    let (_, active_only) = get_json(&state, "/api/v1/targets?state=active").await;
    assert_eq!(active_only["data"]["droppedTargets"], serde_json::json!([]));
    assert_eq!(active_only["data"]["activeTargets"].as_array().map(Vec::len), Some(1));
    let (_, dropped_only) = get_json(&state, "/api/v1/targets?state=dropped").await;
    assert_eq!(dropped_only["data"]["activeTargets"], serde_json::json!([]));
    let (_, other_pool) = get_json(&state, "/api/v1/targets?scrapePool=node").await;
    assert_eq!(other_pool["data"]["activeTargets"], serde_json::json!([]));
    assert_eq!(other_pool["data"]["droppedTargets"], serde_json::json!([]));
}

#[tokio::test]
async fn target_metadata_comes_from_the_last_scrape() {
    let (state, address) = scraped_state().await;
    let (status, answer) = get_json(
        &state,
        "/api/v1/targets/metadata?metric=go_goroutines&match_target=%7Bjob%3D%22prometheus%22%7D&limit=2",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_same_shape(&fixture("prometheus/targets_metadata_metric.json"), &answer, &["data[].target"]);
    assert_eq!(answer["data"][0]["help"], "Number of goroutines that currently exist.");
    assert_eq!(answer["data"][0]["target"]["instance"], address.as_str());
    assert!(answer["data"][0].get("metric").is_none());
    let (_, all) =
        get_json(&state, &format!("/api/v1/targets/metadata?match_target=%7Binstance%3D%22{address}%22%7D")).await;
    assert_same_shape(&fixture("prometheus/targets_metadata.json"), &all, &["data[].target"]);
    assert_eq!(all["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(all["data"][1]["metric"], "requests_total");
    assert_eq!(all["data"][1]["type"], "counter");
    let (_, none) = get_json(&state, "/api/v1/targets/metadata?match_target=%7Bjob%3D%22node%22%7D").await;
    assert_eq!(none["data"], serde_json::json!([]));
    // The scraped families are in /api/v1/metadata too.
    let (_, metadata) = get_json(&state, "/api/v1/metadata?metric=requests_total").await;
    assert_eq!(metadata["data"]["requests_total"][0]["help"], "Requests served.");
}

async fn get_text(state: &Arc<server::AppState>, uri: &str) -> (StatusCode, String, String) {
    let response = server::router(state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let content_type = response.headers()["content-type"].to_str().expect("content type").to_owned();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24).await.expect("body");
    (status, content_type, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn federation_serves_the_latest_samples_as_text() {
    let store = Arc::new(MemStore::new());
    let now = chrono::Utc::now().timestamp_millis();
    let series =
        |name: &str, instance: &str| Labels::from_pairs([("__name__", name), ("job", "api"), ("instance", instance)]);
    store.append(&series("up", "a"), now - 30_000, 0.0).expect("append");
    store.append(&series("up", "a"), now - 15_000, 1.0).expect("append");
    store.append(&series("up", "b"), now - 15_000, 1.0).expect("append");
    store.append(&series("up", "old"), now - 3_600_000, 1.0).expect("append");
    store.append(&series("up", "gone"), now - 20_000, 1.0).expect("append");
    store.append(&series("up", "gone"), now - 10_000, tsdb::STALE_NAN).expect("append");
    store.append(&series("process_bytes", "a"), now - 15_000, 2_391_512.0).expect("append");
    let state = super::state_with(store);
    state.set_status(server::ServerStatus {
        external_labels: Labels::from_pairs([("region", "eu"), ("job", "ignored")]),
        ..Default::default()
    });
    let (code, content_type, body) =
        get_text(&state, "/federate?match[]=up&match[]=%7B__name__%3D%22process_bytes%22%7D").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let ts = now - 15_000;
    assert_eq!(
        body,
        format!(
            "# TYPE process_bytes untyped\nprocess_bytes{{instance=\"a\",job=\"api\",region=\"eu\"}} 2.391512e+06 {ts}\n\
# TYPE up untyped\nup{{instance=\"a\",job=\"api\",region=\"eu\"}} 1 {ts}\nup{{instance=\"b\",job=\"api\",region=\"eu\"}} 1 {ts}\n"
        )
    );
    // The exposition parses as Prometheus's text format.
    let parsed = ingest::exposition::parse(body.as_bytes(), ingest::Format::PrometheusText).expect("valid exposition");
    assert_eq!(parsed.samples.len(), 3);
    // Overlapping selectors give each series once; no match[] gives nothing.
    let (_, _, twice) = get_text(&state, "/federate?match[]=up&match[]=%7Bjob%3D%22api%22%7D").await;
    assert_eq!(twice.matches("instance=\"a\",job=\"api\",region=\"eu\"} 1 ").count(), 1);
    let (_, _, empty) = get_text(&state, "/federate").await;
    assert_eq!(empty, "");
    let (code, _, error) = get_text(&state, "/federate?match[]=up%7B").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{error}");
}

/// Expressions of every syntactic kind, short and long.
const FORMAT_CORPUS: &[&str] = &[
    "foo/bar",
    r#"sum by(job)(rate(http_requests_total{job="api",code=~"5.."}[5m])) / on(job) group_left sum by(job)(rate(http_requests_total[5m])) > 0.01"#,
    r#"histogram_quantile(0.99, sum by (le, service) (rate(request_duration_seconds_bucket{environment="production", service=~"checkout|payment|booking-api"}[5m])))"#,
    "up == bool 0",
    "-(node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) * 100",
    r#"topk(5, sum without (instance) (rate(container_cpu_usage_seconds_total{namespace!="kube-system"}[1m] offset 1h)))"#,
    "max_over_time(deriv(rate(x[1m])[10m:1m])[1h:5m])",
    "a + ignoring(instance) group_right(job) b",
    r#"label_replace(up, "host", "$1", "instance", "(.*):.*")"#,
    "(((up)))",
    "absent_over_time(up{job=\"db\"}[15m]) unless on() vector(0)",
    "count by (le) (http_request_duration_seconds_bucket) and on (le) count(up)",
    "1.5e3 * 2",
    "quantile(0.9, rate(latency_seconds_sum[5m]) / rate(latency_seconds_count[5m]))",
];

/// format_query prints every expression of the corpus exactly as a real
/// Prometheus (the Debian package) does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_query_matches_a_real_prometheus() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let directory = tempfile::tempdir().expect("temporary directory");
    let port = super::free_port();
    let config = "global:\n  scrape_interval: 1m\nscrape_configs: []\n";
    let mut prometheus = super::spawn_prometheus(directory.path(), port, config);
    let ask_prometheus = |query: String| async move {
        let path = format!(
            "/api/v1/format_query?query={}",
            form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>()
        );
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let (_, body) = text.split_once("\r\n\r\n")?;
        serde_json::from_str::<Value>(body.trim()).ok()
    };
    let mut ready = false;
    for _ in 0..80 {
        if ask_prometheus("up".into()).await.is_some() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(ready, "prometheus did not answer within 20s");
    let state = super::state();
    let mut differences = Vec::new();
    for query in FORMAT_CORPUS {
        let expected = ask_prometheus((*query).to_owned()).await.expect("prometheus answers");
        let encoded: String = form_urlencoded::byte_serialize(query.as_bytes()).collect();
        let (_, answer) = get_json(&state, &format!("/api/v1/format_query?query={encoded}")).await;
        if answer != expected {
            differences.push(format!("{query}\n  prometheus: {expected}\n  alertbook:  {answer}"));
        }
    }
    let _ = prometheus.kill().await;
    assert!(differences.is_empty(), "format_query differs from Prometheus:\n{}", differences.join("\n"));
}

/// An exporter whose samples carry their own timestamps, so that a real
/// Prometheus and alertbook store exactly the same samples.
async fn timestamped_exporter(now_ms: i64) -> std::net::SocketAddr {
    let body = format!(
        "# TYPE demo_requests_total counter\n\
demo_requests_total{{path=\"/a\",code=\"200\"}} 1027 {t}\n\
demo_requests_total{{path=\"/b\",code=\"500\"}} 3 {t}\n\
# TYPE demo_memory_bytes gauge\n\
demo_memory_bytes 2391512 {t}\n\
demo_ratio{{note=\"quote \\\" and \\\\ backslash\"}} 0.000012 {t}\n\
demo_old 1 {old}\n",
        t = now_ms - 5_000,
        old = now_ms - 3_600_000,
    );
    let app = axum::Router::new().route("/metrics", axum::routing::get(move || async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    address
}

/// `/federate` answers byte for byte as a real Prometheus holding the same
/// samples, and the status, target, metadata and exemplar endpoints answer in
/// the shapes that Prometheus answers in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_and_status_answers_match_a_real_prometheus() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let now = chrono::Utc::now().timestamp_millis();
    let exporter = timestamped_exporter(now).await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let port = super::free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: demo\n    static_configs:\n      - targets: ['{exporter}']\n"
    );
    let mut prometheus = super::spawn_prometheus(directory.path(), port, &config);
    let selector = form_urlencoded::byte_serialize(br#"{job="demo",__name__=~"demo_.*"}"#).collect::<String>();
    let path = format!("/federate?match[]={selector}");
    let federate_prometheus = |path: String| async move {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = text.split_once("\r\n\r\n")?;
        // Prometheus answers chunked: take the chunks' payload.
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            let mut rest = body;
            let mut payload = String::new();
            while let Some((size, after)) = rest.split_once("\r\n") {
                let size = usize::from_str_radix(size.trim(), 16).ok()?;
                if size == 0 {
                    break;
                }
                payload.push_str(after.get(..size)?);
                rest = after.get(size + 2..)?;
            }
            return Some(payload);
        }
        Some(body.to_owned())
    };
    let mut expected = String::new();
    for _ in 0..80 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if let Some(body) = federate_prometheus(path.clone()).await
            && body.contains("demo_ratio")
        {
            expected = body;
            break;
        }
    }
    assert!(expected.contains("demo_ratio"), "prometheus federated nothing within 20s: {expected:?}");

    let state = super::state();
    let job = scrape::ScrapeConfig::with_static_targets("demo", &[&exporter.to_string()], Default::default());
    let targets = scrape::discovery::discover(&job, &job.static_configs);
    let context = scrape::ScrapeContext::new(state.durable.clone(), Arc::new(|_: &Labels| true), Default::default())
        .expect("client")
        .with_stores(state.metadata.clone(), state.exemplars.clone(), state.targets.clone());
    let mut scraper = scrape::TargetScraper::new(Arc::new(job), targets[0].clone(), Arc::new(context));
    assert!(scraper.scrape_once(chrono::Utc::now().timestamp_millis()).await.up);
    state.targets.set_pool("demo", scrape::status::Pool { active: vec![scraper.status().clone()], dropped: vec![] });
    let (status, _, answer) = get_text(&state, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!answer.contains("demo_old"), "outside the lookback delta: {answer}");
    assert_eq!(answer, expected);

    // The same endpoints answer in the shape the real Prometheus answers in.
    let label_maps = [
        "data.activeTargets[].discoveredLabels",
        "data.activeTargets[].labels",
        "data.droppedTargets[].discoveredLabels",
        "data[].target",
        "data[].seriesLabels",
        "data[].exemplars[].labels",
    ];
    for path in [
        "/api/v1/targets",
        "/api/v1/targets/metadata?metric=demo_memory_bytes",
        "/api/v1/targets/metadata",
        "/api/v1/metadata",
        "/api/v1/metadata?metric=demo_requests_total&limit=1",
        "/api/v1/status/tsdb",
        "/api/v1/status/runtimeinfo",
        "/api/v1/status/buildinfo",
        "/api/v1/alertmanagers",
        "/api/v1/query_exemplars?query=demo_requests_total",
        "/api/v1/format_query?query=demo_memory_bytes",
    ] {
        let body = federate_prometheus(path.to_owned()).await.unwrap_or_default();
        let real: Value = serde_json::from_str(body.trim()).unwrap_or_else(|error| panic!("{path}: {error}: {body}"));
        let (_, ours) = get_json(&state, path).await;
        let mut maps: Vec<&str> = label_maps.to_vec();
        if path.starts_with("/api/v1/metadata") {
            maps.push("data");
        }
        assert_same_shape(&real, &ours, &maps);
    }
    let _ = prometheus.kill().await;
}
