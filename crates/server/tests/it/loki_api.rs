//! Loki's push and query API: bodies as Loki's documentation and shippers
//! send them, Loki's JSON back, and redaction of personal data before storage.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::state;

/// A server state with a log store in `directory` and the catalog's redaction.
pub(super) fn state_with_logs(directory: &std::path::Path) -> Arc<server::AppState> {
    state_with_engine(directory, logql::Engine::default())
}

/// [`state_with_logs`] with this LogQL engine.
fn state_with_engine(directory: &std::path::Path, engine: logql::Engine) -> Arc<server::AppState> {
    let state = state();
    let options = logstore::LogStoreOptions { fsync: wal::FsyncPolicy::Never, ..Default::default() };
    let (store, _) = logstore::LogStore::open(directory, options).expect("log store");
    let rules = state.catalog().pii_rules.clone().expect("the catalog has PII rules");
    let redactor = pii::Redactor::new(&rules, state.catalog().pii_exclusions());
    let redaction = pii::StreamRedaction::new(redactor, &[pii::DEFAULT_STREAMS.to_owned()]).expect("redaction");
    state.set_logs(Arc::new(server::LogService {
        store: Arc::new(store),
        engine,
        redaction: Some(redaction),
        decode: logstore::push::DecodeOptions::default(),
    }));
    state
}

pub(super) async fn send(state: &Arc<server::AppState>, request: Request<Body>) -> (StatusCode, String) {
    let response = server::router(state.clone()).oneshot(request).await.expect("response");
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await.expect("body");
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

async fn push(state: &Arc<server::AppState>, content_type: &str, body: Vec<u8>) -> (StatusCode, String) {
    let request = Request::post("/loki/api/v1/push")
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request");
    send(state, request).await
}

async fn get_json(state: &Arc<server::AppState>, uri: &str) -> serde_json::Value {
    let (status, body) = send(state, Request::get(uri).body(Body::empty()).expect("request")).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|error| panic!("{uri}: {error}: {body}"))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as i64
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn a_log_query_out_of_time_answers_503() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let engine = logql::Engine {
        limits: logql::Limits { timeout: Some(std::time::Duration::ZERO), ..logql::Limits::default() },
    };
    let state = state_with_engine(directory.path(), engine);
    let end = now_ns();
    let uri = format!(
        "/loki/api/v1/query_range?query={}&start={}&end={end}&step=60",
        encode(r#"sum(count_over_time({job="app"}[5m]))"#),
        end - 3_600_000_000_000
    );
    let (status, body) = send(&state, Request::get(uri).body(Body::empty()).expect("request")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body, "query timed out after 0ns\n");
}

#[tokio::test]
async fn pushed_json_and_protobuf_are_queryable_like_loki() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let state = state_with_logs(directory.path());
    let now = now_ns();
    // Loki's documentation example, with structured metadata on the second entry.
    let body = serde_json::json!({"streams": [{
        "stream": {"job": "traefik", "log_type": "access"},
        "values": [
            [(now - 2_000_000_000).to_string(), r#"{"DownstreamStatus":504,"BackendAddr":"10.0.2.7:8080","ServiceName":"studio"}"#],
            [(now - 1_000_000_000).to_string(), r#"{"DownstreamStatus":200,"BackendAddr":"10.0.1.7:8080","ServiceName":"studio"}"#, {"trace_id": "0af7651916cd43dd8448eb211c80319c"}]
        ]
    }]});
    let (status, text) = push(&state, "application/json", body.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");

    // Promtail's protobuf + snappy.
    let request = logstore::push::PushRequest {
        streams: vec![logstore::push::StreamAdapter {
            labels: r#"{job="grafana", service_name="busflow_grafana"}"#.into(),
            entries: vec![logstore::push::EntryAdapter {
                timestamp: Some(logstore::push::Timestamp::from_nanos(now - 500_000_000)),
                line: "level=warn msg=\"session without sso claim\" tenant_id=globex sso_claim=missing".into(),
                structured_metadata: Vec::new(),
            }],
            hash: 0,
        }],
    };
    let (status, text) = push(&state, "application/x-protobuf", logstore::push::encode_protobuf(&request)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");

    let start = now - 60_000_000_000;
    let end = now + 1_000_000_000;
    let json = get_json(
        &state,
        &format!(
            "/loki/api/v1/query_range?query={}&start={start}&end={end}&direction=forward",
            encode(r#"{job="traefik"}"#)
        ),
    )
    .await;
    assert_eq!(json["status"], "success");
    assert_eq!(json["data"]["resultType"], "streams");
    // Structured metadata labels its entry, as in Loki: two streams come back.
    let result = json["data"]["result"].as_array().expect("result");
    assert_eq!(result.len(), 2, "{json}");
    assert_eq!(result[0]["stream"], serde_json::json!({"job": "traefik", "log_type": "access"}));
    assert_eq!(result[0]["values"][0][0], (now - 2_000_000_000).to_string());
    assert!(result[0]["values"][0][1].as_str().expect("line").contains("504"));
    assert_eq!(result[1]["stream"]["trace_id"], "0af7651916cd43dd8448eb211c80319c");

    // A metric query: the A12 expression's shape, as a range query (matrix).
    let query = r#"sum by (BackendAddr) (count_over_time({job="traefik"} | json | DownstreamStatus = 504 [1m]))"#;
    let json = get_json(
        &state,
        &format!("/loki/api/v1/query_range?query={}&start={}&end={end}&step=10s", encode(query), now - 20_000_000_000),
    )
    .await;
    assert_eq!(json["data"]["resultType"], "matrix", "{json}");
    assert_eq!(json["data"]["result"][0]["metric"]["BackendAddr"], "10.0.2.7:8080", "{json}");
    let json = get_json(&state, &format!("/loki/api/v1/query?query={}&time={end}", encode(query))).await;
    assert_eq!(json["data"]["resultType"], "vector", "{json}");
    assert_eq!(json["data"]["result"][0]["value"][1], "1", "{json}");

    // Labels, values and series, as Grafana asks for them.
    let json = get_json(&state, &format!("/loki/api/v1/labels?start={start}&end={end}")).await;
    let names: Vec<&str> = json["data"].as_array().expect("names").iter().filter_map(|v| v.as_str()).collect();
    assert!(names.contains(&"job") && names.contains(&"service_name") && names.contains(&"log_type"), "{json}");
    let json = get_json(&state, &format!("/loki/api/v1/label/job/values?start={start}&end={end}")).await;
    assert_eq!(json["data"], serde_json::json!(["grafana", "traefik"]));
    let json = get_json(
        &state,
        &format!("/loki/api/v1/series?match[]={}&start={start}&end={end}", encode(r#"{service_name=~"busflow_.*"}"#)),
    )
    .await;
    assert_eq!(json["data"], serde_json::json!([{"job": "grafana", "service_name": "busflow_grafana"}]));
}

#[tokio::test]
async fn bad_requests_get_loki_status_codes_and_change_nothing() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let state = state_with_logs(directory.path());
    let (status, text) = push(&state, "application/json", b"{\"streams\": [".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("invalid json body"), "{text}");
    let (status, text) = push(&state, "text/csv", b"a,b".to_vec()).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{text}");
    let (status, text) = push(&state, "application/x-protobuf", b"not snappy".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let body = serde_json::json!({"streams": [{"stream": {}, "values": [["1", "x"]]}]});
    let (status, text) = push(&state, "application/json", body.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert_eq!(state.logs().expect("logs").store.stats().entries, 0);

    let request =
        Request::get(format!("/loki/api/v1/query?query={}", encode(r#"sum(count_over_time({job="x"} [5m])"#)))
            .body(Body::empty())
            .expect("request");
    let (status, text) = send(&state, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("parse error at line 1, col"), "{text}");
    let request = Request::get("/loki/api/v1/query_range?query=%7Bjob%3D%22x%22%7D&start=10&end=5")
        .body(Body::empty())
        .expect("request");
    let (status, text) = send(&state, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let request = Request::get("/loki/api/v1/query_range?query=%7Bjob%3D%22x%22%7D&limit=100000")
        .body(Body::empty())
        .expect("request");
    let (status, text) = send(&state, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("max entries limit"), "{text}");
}

#[tokio::test]
async fn a_faro_line_with_an_email_and_a_card_is_stored_redacted_with_both_rule_ids() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let state = state_with_logs(directory.path());
    let now = now_ns();
    let line = r#"{"kind":"exception","message":"payment declined for jana.schulz@busflow-kunde.de","context":{"card":"4111 1111 1111 1111"},"app":{"name":"busflow-web"}}"#;
    let body = serde_json::json!({"streams": [
        {"stream": {"job": "faro", "app": "busflow-web"}, "values": [[(now - 1_000_000_000).to_string(), line]]},
        {"stream": {"job": "backend"}, "values": [[(now - 1_000_000_000).to_string(), "mail to jana.schulz@busflow-kunde.de"]]}
    ]});
    let (status, text) = push(&state, "application/json", body.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{text}");

    let query = r#"{job="faro"} | pii_match_rule = "email,payment_card""#;
    let json = get_json(
        &state,
        &format!("/loki/api/v1/query_range?query={}&start={}&end={}", encode(query), now - 60_000_000_000, now + 1),
    )
    .await;
    let stored = json["data"]["result"][0]["values"][0][1].as_str().unwrap_or_else(|| panic!("{json}"));
    assert!(!stored.contains("jana.schulz") && !stored.contains("4111"), "{stored}");
    assert!(stored.contains("[REDACTED:email]") && stored.contains("[REDACTED:payment_card]"), "{stored}");
    // Streams outside the redaction policy are stored as pushed.
    let json = get_json(
        &state,
        &format!(
            "/loki/api/v1/query_range?query={}&start={}&end={}",
            encode(r#"{job="backend"}"#),
            now - 60_000_000_000,
            now + 1
        ),
    )
    .await;
    assert_eq!(json["data"]["result"][0]["values"][0][1], "mail to jana.schulz@busflow-kunde.de");
}
