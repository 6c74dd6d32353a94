//! Remote write: status codes for good and bad bodies, and a real Prometheus
//! (Debian package) remote-writing into alertbook.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};
use tower::ServiceExt;
use tsdb::{Matcher, MemStore, Queryable};

fn request(samples: &[(i64, f64)]) -> WriteRequest {
    WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label { name: "__name__".into(), value: "busflow_bookings_total".into() },
                Label { name: "tenant_id".into(), value: "t1".into() },
            ],
            samples: samples.iter().map(|&(timestamp, value)| Sample { value, timestamp }).collect(),
            exemplars: vec![],
            histograms: vec![],
        }],
        metadata: vec![],
    }
}

async fn post(state: Arc<server::AppState>, body: Vec<u8>) -> (StatusCode, String) {
    let request = Request::post("/api/v1/write")
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .body(Body::from(body))
        .expect("request");
    let response = server::router(state).oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn good_bad_and_rejected_writes() {
    let store = Arc::new(MemStore::new());
    let state = super::state_with(store.clone());
    let (status, _) = post(state.clone(), encode(&request(&[(1000, 1.0), (2000, 2.0)]))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let selected = store.select(&[Matcher::equal("tenant_id", "t1")], 0, 5000).expect("select");
    assert_eq!(selected[0].samples.len(), 2);

    let (status, message) = post(state.clone(), b"definitely not snappy".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.starts_with("cannot decode remote write request"), "{message}");

    // One out-of-order sample: the valid one is kept, the sender is told not to retry.
    let (status, message) = post(state.clone(), encode(&request(&[(1500, 9.0), (3000, 3.0)]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("1 out of order") && message.contains("1 appended"), "{message}");
    let selected = store.select(&[Matcher::equal("tenant_id", "t1")], 0, 5000).expect("select");
    assert_eq!(selected[0].samples.len(), 3);

    // The series limit refuses new series but keeps feeding existing ones.
    state.max_series.store(1, std::sync::atomic::Ordering::Relaxed);
    let mut other = request(&[(1000, 1.0)]);
    other.timeseries[0].labels[1].value = "t2".into();
    let (status, message) = post(state.clone(), encode(&other)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("over the series limit"), "{message}");
    let (status, _) = post(state, encode(&request(&[(4000, 4.0)]))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(store.series_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_remote_writes_into_alertbook() {
    let store = Arc::new(MemStore::new());
    let state = super::state_with(store.clone());
    let server = super::Served::start(state.clone()).await;
    let alertbook = server.address;

    let directory = tempfile::tempdir().expect("temporary directory");
    let prometheus_port = super::free_port();
    let config = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{prometheus_port}']\nremote_write:\n  - url: http://{alertbook}/api/v1/write\n    queue_config:\n      batch_send_deadline: 1s\n    metadata_config:\n      send_interval: 1s\n"
    );
    let mut prometheus = super::spawn_prometheus(directory.path(), prometheus_port, &config);

    // Wait until several scrapes have arrived through remote write.
    let up = [Matcher::equal("__name__", "up"), Matcher::equal("job", "prometheus")];
    let mut received = Vec::new();
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        received = store.select(&up, 0, i64::MAX / 2).expect("select");
        if received.first().is_some_and(|series| series.samples.len() >= 5) && !state.metadata.is_empty() {
            break;
        }
    }
    let _ = prometheus.kill().await;
    let series = received.first().expect("up{job=\"prometheus\"} arrived through remote write");
    assert!(series.samples.len() >= 5, "only {} samples of up arrived", series.samples.len());
    assert!(series.samples.iter().all(|sample| sample.value == 1.0));
    assert_eq!(series.labels.get("instance"), Some(format!("127.0.0.1:{prometheus_port}").as_str()));
    // Prometheus sends its own metrics too; they are queryable through the API.
    assert!(store.series_count() > 100, "only {} series arrived", store.series_count());
    let engine = promql::Engine::default();
    let newest = series.samples.last().expect("sample").timestamp;
    let result = engine
        .instant_query(store.as_ref(), "count(prometheus_build_info{job=\"prometheus\"})", newest)
        .expect("query");
    assert!(
        matches!(&result.value, promql::Value::Vector(samples) if samples.len() == 1 && samples[0].1.value == 1.0),
        "{:?}",
        result.value
    );
    // Its metric metadata arrived too, and /api/v1/metadata serves it.
    let families = state.metadata.select(Some("prometheus_build_info"), None, None);
    assert_eq!(families.len(), 1, "no metadata of prometheus_build_info arrived");
    assert_eq!(families[0].1[0].metric_type, ingest::MetricType::Gauge);
    let answer: serde_json::Value =
        reqwest_get(&format!("http://{alertbook}/api/v1/metadata?metric=prometheus_build_info")).await;
    assert_eq!(answer["data"]["prometheus_build_info"][0]["type"], "gauge");
    server.stop().await;
}

/// A GET over a real socket, with tokio only.
async fn reqwest_get(url: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').expect("path");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response);
    let (_, body) = text.split_once("\r\n\r\n").expect("body");
    serde_json::from_str(body.trim()).expect("JSON body")
}
