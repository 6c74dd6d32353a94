//! The write token of the ingest endpoints: without one, writes are open;
//! with one, remote write and Loki push take it (or a responder's API token)
//! and refuse anything else with 401 before storing anything, never echoing
//! what was sent. Also the triage re-run's role check once accounts exist.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use ingest::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};
use tower::ServiceExt;
use tsdb::{Matcher, MemStore, Queryable};

const TOKEN: &str = "write-token-8c1f0e2a";

/// Accounts with a responder and a viewer, and their API tokens.
async fn with_accounts(state: &Arc<server::AppState>) -> (tempfile::TempDir, String, String) {
    super::with_journal_on(state, false).await
}

async fn send(state: &Arc<server::AppState>, request: Request<Body>) -> (StatusCode, Option<String>, String) {
    let response = server::router(state.clone()).oneshot(request).await.expect("response");
    let status = response.status();
    let challenge =
        response.headers().get(header::WWW_AUTHENTICATE).map(|value| value.to_str().expect("ASCII").to_owned());
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
    (status, challenge, String::from_utf8_lossy(&body).into_owned())
}

fn remote_write(tenant: &str, authorization: Option<&str>) -> Request<Body> {
    let request = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label { name: "__name__".into(), value: "busflow_bookings_total".into() },
                Label { name: "tenant_id".into(), value: tenant.into() },
            ],
            samples: vec![Sample { value: 1.0, timestamp: 1000 }],
            exemplars: vec![],
            histograms: vec![],
        }],
        metadata: vec![],
    };
    let mut builder = Request::post("/api/v1/write")
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy");
    if let Some(authorization) = authorization {
        builder = builder.header(header::AUTHORIZATION, authorization);
    }
    builder.body(Body::from(encode(&request))).expect("request")
}

fn stored(store: &MemStore, tenant: &str) -> bool {
    !store.select(&[Matcher::equal("tenant_id", tenant)], 0, 5000).expect("select").is_empty()
}

#[tokio::test]
async fn remote_write_takes_the_write_token_or_a_responders_api_token() {
    let store = Arc::new(MemStore::new());
    let state = super::state_with(store.clone());
    // No token configured: writes are open, as today.
    assert_eq!(send(&state, remote_write("open", None)).await.0, StatusCode::NO_CONTENT);
    assert!(stored(&store, "open"));

    state.set_write_token(Some(TOKEN.to_owned()));
    assert!(state.write_token_required());
    assert!(!format!("{state:?}").contains(TOKEN), "AppState's Debug shows no token");
    let (status, challenge, body) = send(&state, remote_write("missing", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(challenge.as_deref(), Some("Bearer"));
    assert!(body.starts_with("unauthorized: ") && body.contains("Authorization: Bearer"), "{body}");
    assert!(!stored(&store, "missing"));

    let forged = format!("Bearer {TOKEN}x");
    let (status, _, body) = send(&state, remote_write("wrong", Some(&forged))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!body.contains(TOKEN), "the answer never echoes the token: {body}");
    let (status, _, _) = send(&state, remote_write("basic", Some("Basic d3JpdGVyOnNlY3JldA=="))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!stored(&store, "wrong") && !stored(&store, "basic"));

    let right = format!("Bearer {TOKEN}");
    assert_eq!(send(&state, remote_write("right", Some(&right))).await.0, StatusCode::NO_CONTENT);
    assert!(stored(&store, "right"));

    // With accounts: a responder's API token writes too, a viewer's does not,
    // and an unknown one is just a wrong token.
    let (_directory, responder, viewer) = with_accounts(&state).await;
    let (status, _, body) = send(&state, remote_write("responder", Some(&format!("Bearer {responder}")))).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(stored(&store, "responder"));
    let (status, _, body) = send(&state, remote_write("viewer", Some(&format!("Bearer {viewer}")))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("needs the responder role") && !body.contains(&viewer), "{body}");
    let (status, _, body) = send(&state, remote_write("forged", Some("Bearer abt_forged"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!stored(&store, "viewer") && !stored(&store, "forged"));
    assert_eq!(send(&state, remote_write("still", Some(&right))).await.0, StatusCode::NO_CONTENT);

    // Unset again: open.
    state.set_write_token(None);
    assert_eq!(send(&state, remote_write("reopened", None)).await.0, StatusCode::NO_CONTENT);
    assert!(stored(&store, "reopened"));
}

fn push(job: &str, authorization: Option<&str>) -> Request<Body> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    let body =
        serde_json::json!({"streams": [{"stream": {"job": job}, "values": [[now.to_string(), "GET /health 200"]]}]});
    let mut builder = Request::post("/loki/api/v1/push").header("content-type", "application/json");
    if let Some(authorization) = authorization {
        builder = builder.header(header::AUTHORIZATION, authorization);
    }
    builder.body(Body::from(body.to_string())).expect("request")
}

async fn jobs(state: &Arc<server::AppState>) -> Vec<String> {
    let (status, _, body) =
        send(state, Request::get("/loki/api/v1/label/job/values").body(Body::empty()).expect("request")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    serde_json::from_value(json["data"].clone()).unwrap_or_default()
}

#[tokio::test]
async fn loki_push_takes_the_write_token() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let state = super::loki_api::state_with_logs(directory.path());
    assert_eq!(send(&state, push("open", None)).await.0, StatusCode::NO_CONTENT);

    state.set_write_token(Some(TOKEN.to_owned()));
    let (status, challenge, body) = send(&state, push("missing", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(challenge.as_deref(), Some("Bearer"));
    let (status, _, body) = send(&state, push("wrong", Some("Bearer not-the-token"))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!body.contains("not-the-token"), "{body}");
    let (status, _, body) = send(&state, push("right", Some(&format!("bearer {TOKEN}")))).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(jobs(&state).await, ["open", "right"]);
}

/// A triage runner that knows one firing alert; its fingerprint.
fn with_triage(state: &Arc<server::AppState>) -> String {
    #[derive(Debug)]
    struct Now;
    impl rules::Clock for Now {
        fn now_ms(&self) -> i64 {
            1_796_126_400_000
        }
    }
    let mut sources = triage::Sources::new(std::time::Duration::from_secs(2));
    sources.fixtures.insert("matches_by_rule".into(), serde_json::json!({"email": 4}));
    let runner = triage::runner::Runner::new(
        state.catalog(),
        sources,
        triage::runner::RunnerOptions::default(),
        Arc::new(Now),
        Arc::new(|_| None),
    )
    .expect("runner");
    let labels = std::collections::BTreeMap::from([
        ("alertname".to_owned(), "PiiLeakDetected".to_owned()),
        ("severity".to_owned(), "page".to_owned()),
    ]);
    let fingerprint = triage::fingerprint(&labels);
    let fresh = runner.observe(&[rules::Notification {
        labels,
        annotations: std::collections::BTreeMap::new(),
        starts_at_ms: 1_796_126_340_000,
        ends_at_ms: None,
        valid_until_ms: 1_796_126_640_000,
        generator_url: String::new(),
    }]);
    assert_eq!(fresh, std::slice::from_ref(&fingerprint));
    state.set_triage(runner);
    fingerprint
}

fn rerun(fingerprint: &str, authorization: Option<&str>) -> Request<Body> {
    let mut builder = Request::post(format!("/api/v1/triage?fingerprint={fingerprint}"));
    if let Some(token) = authorization {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::empty()).expect("request")
}

#[tokio::test]
async fn triage_reruns_need_a_responder_once_accounts_exist() {
    let state = super::state();
    let fingerprint = with_triage(&state);
    // Without accounts there are no users: re-runs stay open.
    let (status, _, body) = send(&state, rerun(&fingerprint, None)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let (_directory, responder, viewer) = with_accounts(&state).await;
    let (status, _, body) = send(&state, rerun(&fingerprint, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, body) = send(&state, rerun(&fingerprint, Some(&viewer))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("needs the responder role"), "{body}");
    let (status, _, body) = send(&state, rerun(&fingerprint, Some(&responder))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert!(body.contains("\"queued\":true"), "{body}");
    let (status, _, body) = send(&state, rerun("0000000000000000", Some(&responder))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Reading stays open to anyone (auth.require_for_read is off).
    let (status, _, body) = send(
        &state,
        Request::get(format!("/api/v1/triage?fingerprint={fingerprint}")).body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
