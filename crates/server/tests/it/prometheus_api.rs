//! The Prometheus query API: JSON shapes, errors, and the real `promtool`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;
use tsdb::{Labels, MemStore};

/// Two counters over ten minutes at a 15 s interval, and an `up` series.
fn store() -> Arc<MemStore> {
    let store = Arc::new(MemStore::new());
    for (instance, per_step) in [("a", 15.0), ("b", 30.0)] {
        let labels = Labels::from_pairs([("__name__", "http_requests_total"), ("job", "api"), ("instance", instance)]);
        for step in 0..=40 {
            store.append(&labels, step * 15_000, per_step * step as f64).expect("append");
        }
        let up = Labels::from_pairs([("__name__", "up"), ("job", "api"), ("instance", instance)]);
        for step in 0..=40 {
            store.append(&up, step * 15_000, 1.0).expect("append");
        }
    }
    store
}

async fn call(request: Request<Body>) -> (StatusCode, Value) {
    let response = server::router(super::state_with(store())).oneshot(request).await.expect("response");
    let status = response.status();
    assert_eq!(response.headers()["content-type"], "application/json");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24).await.expect("body");
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

async fn get(uri: &str) -> (StatusCode, Value) {
    call(Request::get(uri).body(Body::empty()).expect("request")).await
}

async fn post(uri: &str, form: &str) -> (StatusCode, Value) {
    let request = Request::post(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .expect("request");
    call(request).await
}

#[tokio::test]
async fn instant_query_returns_a_vector() {
    let (status, body) = get("/api/v1/query?query=sum%20by%20(job)%20(http_requests_total)&time=600").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"job": "api"}, "value": [600, "1800"]}
        ]}})
    );
    let (status, rate) =
        get("/api/v1/query?query=sum%20by%20(job)%20(rate(http_requests_total%5B5m%5D))&time=600").await;
    assert_eq!(status, StatusCode::OK);
    let value: f64 = rate["data"]["result"][0]["value"][1].as_str().expect("value").parse().expect("float");
    assert!((value - 3.0).abs() < 1e-9, "{rate}");
    let (status, via_post) = post("/api/v1/query", "query=sum+by+(job)+(http_requests_total)&time=600").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(via_post, body);
}

#[tokio::test]
async fn scalar_and_string_results() {
    let (_, body) = get("/api/v1/query?query=1%2B1&time=100.5").await;
    assert_eq!(body["data"], json!({"resultType": "scalar", "result": [100.5, "2"]}));
    let (_, body) = get("/api/v1/query?query=%22hello%22&time=100").await;
    assert_eq!(body["data"], json!({"resultType": "string", "result": [100, "hello"]}));
}

#[tokio::test]
async fn range_query_returns_a_matrix() {
    let (status, body) = get("/api/v1/query_range?query=up%7Binstance%3D%22a%22%7D&start=0&end=60&step=30s").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!({"resultType": "matrix", "result": [
            {"metric": {"__name__": "up", "instance": "a", "job": "api"}, "values": [[0, "1"], [30, "1"], [60, "1"]]}
        ]})
    );
}

#[tokio::test]
async fn errors_have_prometheus_shape() {
    let (status, body) = get("/api/v1/query?query=sum(rate(x%5B5m%5D)").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["status"], "error");
    assert_eq!(body["errorType"], "bad_data");
    let message = body["error"].as_str().expect("message");
    // Prometheus answers `1:16: parse error: unclosed left parenthesis` for this query: the end of the input.
    assert_eq!(message, "invalid parameter \"query\": 1:16: parse error: unclosed left parenthesis");
    // The offending token, as Prometheus's `1:17: parse error: unexpected <by> in aggregation`.
    let (_, body) = get("/api/v1/query?query=sum(rate(x%5B5m%5D)%20by%20(job)").await;
    let message = body["error"].as_str().expect("message");
    assert!(message.starts_with("invalid parameter \"query\": 1:17: parse error: "), "{message}");

    let (status, body) = get("/api/v1/query?query=up&time=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid parameter \"time\": cannot parse \"yesterday\" to a valid timestamp");

    let (status, body) = get("/api/v1/query_range?query=up&start=0&end=60&step=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().expect("message").contains("zero or negative query resolution step"));

    let (status, body) = get("/api/v1/query_range?query=up&start=60&end=0&step=15").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().expect("message").contains("end timestamp must not be before start time"));

    let (status, body) = get("/api/v1/query_range?query=up&start=0&end=1000000&step=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().expect("message").contains("11,000 points"));

    let (status, body) = get("/api/v1/query?query=http_requests_total%20%2B%20on()%20up&time=600").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errorType"], "execution");

    let (status, body) = get("/api/v1/series").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "no match[] parameter provided");
}

#[tokio::test]
async fn metadata_endpoints() {
    let (status, body) =
        get("/api/v1/series?match%5B%5D=up&match%5B%5D=http_requests_total%7Binstance%3D%22b%22%7D").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["data"],
        json!([
            {"__name__": "http_requests_total", "instance": "b", "job": "api"},
            {"__name__": "up", "instance": "a", "job": "api"},
            {"__name__": "up", "instance": "b", "job": "api"},
        ])
    );
    let (_, body) = get("/api/v1/labels").await;
    assert_eq!(body["data"], json!(["__name__", "instance", "job"]));
    let (_, body) = get("/api/v1/label/__name__/values").await;
    assert_eq!(body["data"], json!(["http_requests_total", "up"]));
    let (_, body) = get("/api/v1/label/instance/values?match%5B%5D=up&limit=1").await;
    assert_eq!(body["data"], json!(["a"]));
    assert_eq!(body["warnings"], json!(["results truncated due to limit"]));
    let (status, _) = get("/api/v1/label/in-valid/values").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Runs the real promtool against a live server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_queries_alertbook() {
    let server = super::Served::start(super::state_with(store())).await;
    let address = server.address;
    let url = format!("http://{address}");
    let promtool = |arguments: Vec<String>| async move {
        let output = tokio::process::Command::new("promtool")
            .args(&arguments)
            .output()
            .await
            .expect("promtool is installed (Debian package prometheus; scripts/test installs it)");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "promtool {arguments:?} failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let instant = promtool(vec![
        "query".into(),
        "instant".into(),
        "--time=600".into(),
        url.clone(),
        "sum(http_requests_total)".into(),
    ])
    .await;
    assert_eq!(instant.trim(), "{} => 1800 @[600]");
    let range = promtool(vec![
        "query".into(),
        "range".into(),
        "--start=0".into(),
        "--end=30".into(),
        "--step=15s".into(),
        url.clone(),
        "up{instance=\"b\"}".into(),
    ])
    .await;
    assert!(range.contains("up{instance=\"b\", job=\"api\"} =>"), "{range}");
    assert!(range.contains("1 @[0]") && range.contains("1 @[15]") && range.contains("1 @[30]"), "{range}");
    let series = promtool(vec![
        "query".into(),
        "series".into(),
        "--match=up".into(),
        "--start=0".into(),
        "--end=1000".into(),
        url.clone(),
    ])
    .await;
    assert_eq!(series.lines().count(), 2, "{series}");
    let labels = promtool(vec![
        "query".into(),
        "labels".into(),
        "--start=0".into(),
        "--end=1000".into(),
        url.clone(),
        "job".into(),
    ])
    .await;
    assert_eq!(labels.trim(), "api");
    server.stop().await;
}
