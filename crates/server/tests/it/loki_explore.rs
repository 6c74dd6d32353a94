//! Loki's exploration endpoints with pushed data: index stats, detected
//! labels and fields, patterns, readiness, and the live tail through a real
//! WebSocket client; each answer compared with the documented shape.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::loki_api::{send, state_with_logs};
use super::shape::{assert_same_shape, fixture};

async fn push(state: &Arc<server::AppState>, body: Value) {
    let request = Request::post("/loki/api/v1/push")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let (status, answer) = send(state, request).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
}

async fn get_json(state: &Arc<server::AppState>, uri: &str) -> Value {
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

/// Loki's documented logfmt lines (and an error variant) over a minute,
/// two streams of `app="loki"` and one of another app.
async fn push_sample_logs(state: &Arc<server::AppState>, start: i64) {
    let mut info = Vec::new();
    let mut errors = Vec::new();
    for second in 0..60i64 {
        let time = start + second * 1_000_000_000;
        let stamp = format!("2024-03-30T23:03:{second:02}");
        info.push(json!([
            time.to_string(),
            format!(
                "ts={stamp} caller=grpc_logging.go:66 level=info method=/cortex.Ingester/Push duration={}ms msg=gRPC",
                100 + second
            )
        ]));
        if second % 10 == 0 {
            errors.push(json!([time.to_string(), format!("ts={stamp} caller=grpc_logging.go:66 level=error method=/cortex.Ingester/Push duration={}ms msg=gRPC err=\"connection refused to object store\"", second), {"trace_id": format!("trace-{second}")}]));
        }
    }
    push(
        state,
        json!({"streams": [
            {"stream": {"app": "loki", "namespace": "prod", "pod": "loki-0"}, "values": info},
            {"stream": {"app": "loki", "namespace": "prod", "pod": "loki-1"}, "values": errors},
            {"stream": {"app": "api", "namespace": "prod", "pod": "api-0", "request_id": "7"}, "values": [
                [start.to_string(), r#"{"status":200,"path":"/book","took":"15ms"}"#],
                [(start + 1).to_string(), r#"{"status":503,"path":"/book","took":"2s"}"#]
            ]}
        ]}),
    )
    .await;
}

#[tokio::test]
async fn ready_answers_once_serving() {
    let state = super::state();
    let (status, _) = send(&state, Request::get("/ready").body(Body::empty()).expect("request")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    state.set_ready();
    let (status, body) = send(&state, Request::get("/ready").body(Body::empty()).expect("request")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Ready"), "{body}");
}

#[tokio::test]
async fn index_stats_count_what_a_selector_resolves_to() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let state = state_with_logs(directory.path());
    let start = now_ns() - 120_000_000_000;
    push_sample_logs(&state, start).await;
    let range = format!("&start={}&end={}", start - 1, now_ns());
    let answer =
        get_json(&state, &format!("/loki/api/v1/index/stats?query={}{range}", encode(r#"{app="loki"}"#))).await;
    assert_same_shape(&fixture("loki/index_stats.json"), &answer, &[]);
    assert_eq!((answer["streams"].as_u64(), answer["entries"].as_u64()), (Some(2), Some(66)));
    assert_eq!(answer["chunks"].as_u64(), Some(2));
    assert!(answer["bytes"].as_u64().unwrap_or(0) > 66 * 80, "{answer}");
    let none = get_json(&state, &format!("/loki/api/v1/index/stats?query={}{range}", encode(r#"{app="none"}"#))).await;
    assert_eq!(none, json!({"streams": 0, "chunks": 0, "entries": 0, "bytes": 0}));
    let (status, _) =
        send(&state, Request::get("/loki/api/v1/index/stats?query=%7Bapp%3D").body(Body::empty()).expect("request"))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn detected_labels_and_fields_describe_the_stored_logs() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let state = state_with_logs(directory.path());
    let start = now_ns() - 120_000_000_000;
    push_sample_logs(&state, start).await;
    let range = format!("start={}&end={}", start - 1, now_ns());
    let labels = get_json(&state, &format!("/loki/api/v1/detected_labels?{range}")).await;
    assert_same_shape(&fixture("loki/detected_labels.json"), &labels, &[]);
    assert_eq!(
        labels["detectedLabels"],
        json!([
            {"label": "app", "cardinality": 2},
            {"label": "namespace", "cardinality": 1},
            {"label": "pod", "cardinality": 3}
        ]),
        "request_id holds only an identifier"
    );
    let loki_only =
        get_json(&state, &format!("/loki/api/v1/detected_labels?query={}&{range}", encode(r#"{app="loki"}"#))).await;
    assert_eq!(loki_only["detectedLabels"][0], json!({"label": "app", "cardinality": 1}));

    let fields =
        get_json(&state, &format!("/loki/api/v1/detected_fields?query={}&{range}", encode(r#"{namespace="prod"}"#)))
            .await;
    assert_same_shape(&fixture("loki/detected_fields.json"), &fields, &[]);
    let by_label: std::collections::BTreeMap<&str, &Value> = fields["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|field| (field["label"].as_str().expect("label"), field))
        .collect();
    assert_eq!(by_label["status"]["type"], "int");
    assert_eq!(by_label["status"]["parsers"], json!(["json"]));
    assert_eq!(by_label["took"]["type"], "duration");
    assert_eq!(by_label["duration"]["type"], "duration");
    assert_eq!(by_label["level"]["cardinality"], 2);
    assert_eq!(by_label["level"]["parsers"], json!(["logfmt"]));
    assert_eq!(by_label["trace_id"]["parsers"], Value::Null);
    assert_eq!(fields["limit"], 1000);
    let limited = get_json(
        &state,
        &format!("/loki/api/v1/detected_fields?query={}&{range}&limit=2", encode(r#"{namespace="prod"}"#)),
    )
    .await;
    assert_eq!(limited["fields"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn patterns_are_mined_from_the_stored_lines() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let state = state_with_logs(directory.path());
    let start = (now_ns() - 600_000_000_000) / 10_000_000_000 * 10_000_000_000;
    push_sample_logs(&state, start).await;
    let uri = format!(
        "/loki/api/v1/patterns?query={}&start={start}&end={}&step=10s",
        encode(r#"{app="loki"}"#),
        start + 60_000_000_000
    );
    let answer = get_json(&state, &uri).await;
    assert_same_shape(&fixture("loki/patterns.json"), &answer, &[]);
    let patterns = answer["data"].as_array().expect("patterns");
    assert_eq!(patterns.len(), 2, "{answer}");
    assert_eq!(
        patterns[0]["pattern"],
        "ts=<_> caller=grpc_logging.go:66 level=info method=/cortex.Ingester/Push duration=<_> msg=gRPC"
    );
    assert_eq!(patterns[0]["samples"].as_array().map(Vec::len), Some(6));
    assert_eq!(patterns[0]["samples"][0], json!([start / 1_000_000_000, 10]));
    assert_eq!(
        patterns[1]["pattern"],
        "ts=<_> caller=grpc_logging.go:66 level=error method=/cortex.Ingester/Push duration=<_> msg=gRPC err=\"connection refused to object store\""
    );
    let (status, _) = send(&state, Request::get("/loki/api/v1/patterns").body(Body::empty()).expect("request")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_frame(client: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("a frame within 10s")
            .expect("the socket stays open")
            .expect("a valid message");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("a JSON frame");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_streams_pushed_lines_over_a_websocket() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let state = state_with_logs(directory.path());
    let server = super::Served::start(state.clone()).await;
    let address = server.address;
    let before = now_ns() - 1_000_000_000;
    push(
        &state,
        json!({"streams": [{"stream": {"job": "faro"}, "values": [[before.to_string(), "earlier error line"]]}]}),
    )
    .await;

    let query = encode(r#"{job="faro"} |= "error""#);
    let url = format!("ws://{address}/loki/api/v1/tail?query={query}&limit=3&start={}", before - 1);
    let (mut client, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
    // First the history since `start`.
    let history = next_frame(&mut client).await;
    assert_same_shape(&fixture("loki/tail.json"), &history, &["streams[].stream", "dropped_entries[].labels"]);
    assert_eq!(history["streams"][0]["values"][0][1], "earlier error line");

    // Then what is pushed: filtered by the query, redacted as stored.
    let now = now_ns();
    push(
        &state,
        json!({"streams": [{"stream": {"job": "faro"}, "values": [
            [now.to_string(), "error: login failed for jana@example.com"],
            [(now + 1).to_string(), "all good"]
        ]}]}),
    )
    .await;
    let live = next_frame(&mut client).await;
    assert_same_shape(&fixture("loki/tail.json"), &live, &["streams[].stream", "dropped_entries[].labels"]);
    // As in query answers, structured metadata shows among the labels.
    assert_eq!(live["streams"][0]["stream"], json!({"job": "faro", "pii_match_rule": "email"}));
    assert_eq!(live["streams"][0]["values"], json!([[now.to_string(), "error: login failed for [REDACTED:email]"]]));
    assert_eq!(live["dropped_entries"], json!([]));

    // More than `limit` at once: the rest is reported dropped.
    let values: Vec<Value> =
        (0..5).map(|index| json!([(now + 10 + index).to_string(), format!("error {index}")])).collect();
    push(&state, json!({"streams": [{"stream": {"job": "faro"}, "values": values}]})).await;
    let crowded = next_frame(&mut client).await;
    assert_same_shape(&fixture("loki/tail.json"), &crowded, &["streams[].stream", "dropped_entries[].labels"]);
    assert_eq!(crowded["streams"][0]["values"].as_array().map(Vec::len), Some(3));
    assert_eq!(crowded["dropped_entries"].as_array().map(Vec::len), Some(2));
    assert_eq!(crowded["dropped_entries"][0]["timestamp"], (now + 13).to_string());
    client.send(Message::Close(None)).await.expect("close");

    // Bad requests are refused before the upgrade.
    for bad in [
        format!("ws://{address}/loki/api/v1/tail?query={}", encode(r#"rate({job="faro"}[1m])"#)),
        format!("ws://{address}/loki/api/v1/tail?query={query}&delay_for=6"),
        format!("ws://{address}/loki/api/v1/tail?query=%7B"),
    ] {
        let refused = tokio_tungstenite::connect_async(bad.as_str()).await;
        assert!(
            matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(response)) if response.status() == 400),
            "{bad}: {refused:?}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_holds_entries_back_for_delay_for() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let state = state_with_logs(directory.path());
    let server = super::Served::start(state.clone()).await;
    let address = server.address;
    let url = format!("ws://{address}/loki/api/v1/tail?query={}&delay_for=1", encode(r#"{job="app"}"#));
    let (mut client, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
    let pushed_at = std::time::Instant::now();
    push(&state, json!({"streams": [{"stream": {"job": "app"}, "values": [[now_ns().to_string(), "late"]]}]})).await;
    let frame = next_frame(&mut client).await;
    assert!(pushed_at.elapsed() >= Duration::from_secs(1), "sent after {:?}", pushed_at.elapsed());
    assert_eq!(frame["streams"][0]["values"].as_array().map(Vec::len), Some(1), "{frame}");
    assert_eq!(frame["streams"][0]["values"][0][1], "late");
    // Whether "late" came in the history or as a push, it is sent once: the next frame is the next push.
    push(&state, json!({"streams": [{"stream": {"job": "app"}, "values": [[now_ns().to_string(), "later"]]}]})).await;
    let frame = next_frame(&mut client).await;
    assert_eq!(frame["streams"][0]["values"].as_array().map(Vec::len), Some(1), "{frame}");
    assert_eq!(frame["streams"][0]["values"][0][1], "later", "{frame}");
    server.stop().await;
}
