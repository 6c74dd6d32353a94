//! The remote Loki datasource: recorded Loki answers decoded and replayed
//! from a loopback server (with its checks of the tenant and authorization
//! headers), errors naming the datasource, and log rule groups evaluated
//! through alertbook's own Loki API compared with the same rules over the
//! embedded store.

use std::sync::Arc;
use std::time::Duration;

use sources::health::DatasourceHealth;
use sources::http::{AnswerError, HttpOptions};
use sources::loki::{LokiDatasource, decode_query_response};
use tsdb::Labels;

use crate::replay::{ReplayServer, Response, fixture};

fn loki_fixture(name: &str) -> Vec<u8> {
    fixture("loki", name)
}

#[test]
fn decodes_every_recorded_answer() {
    let vector = decode_query_response(&loki_fixture("query-vector.json")).expect("vector");
    assert_eq!(
        vector.value,
        logql::QueryValue::Vector(vec![
            (Labels::from_pairs([("tenant_id", "acme")]), 3.0),
            (Labels::from_pairs([("tenant_id", "globex")]), 1.0),
        ])
    );
    assert!(vector.warnings.is_empty());
    assert_eq!(vector.stats["summary"]["totalEntriesReturned"], 2);

    let partial = decode_query_response(&loki_fixture("query-vector-partial.json")).expect("partial");
    assert_eq!(partial.warnings.len(), 2);
    assert!(partial.warnings[0].contains("partially"), "{:?}", partial.warnings);

    let scalar = decode_query_response(&loki_fixture("query-scalar.json")).expect("scalar");
    assert_eq!(scalar.value, logql::QueryValue::Scalar(42.0));

    let matrix = decode_query_response(&loki_fixture("query-range-matrix.json")).expect("matrix");
    let logql::QueryValue::Matrix(series) = matrix.value else { panic!("not a matrix: {:?}", matrix.value) };
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].labels.get("BackendAddr"), Some("10.0.2.7:8080"));
    assert_eq!(series[0].points[1], (1_764_669_360_000_000_000, 1.0));
    assert_eq!(series[0].points[3].1, f64::INFINITY);
    assert_eq!(series[1].points[0].0, 1_764_669_360_500_000_000);
    assert!(series[1].points[0].1.is_nan());

    let streams = decode_query_response(&loki_fixture("query-range-streams.json")).expect("streams");
    let logql::QueryValue::Streams(streams) = streams.value else { panic!("not streams") };
    assert_eq!(streams.len(), 2);
    assert_eq!(streams[0].labels.get("pii_match_rule"), Some("email"));
    assert_eq!(streams[0].entries[0].timestamp_ns, 1_764_669_590_123_456_789);
    assert_eq!(streams[0].entries[0].line, "login failed for [REDACTED:email]");

    let categorized =
        decode_query_response(&loki_fixture("query-range-streams-categorized.json")).expect("categorized");
    let logql::QueryValue::Streams(streams) = categorized.value else { panic!("not streams") };
    let entry = &streams[0].entries[0];
    assert!(entry.metadata.contains(&("pii_match_rule".to_owned(), "email".to_owned())), "{:?}", entry.metadata);
    assert!(entry.metadata.contains(&("level".to_owned(), "warn".to_owned())), "parsed labels are kept");
    assert!(streams[0].entries[1].metadata.is_empty());

    let truncated = decode_query_response(&loki_fixture("malformed-truncated.json")).expect_err("malformed");
    assert!(matches!(&truncated, AnswerError::Malformed(message) if message.contains("EOF")), "{truncated}");
}

/// A Loki that answers from the fixtures, refusing requests without the tenant
/// and the basic authorization `alertbook:loki-pw-61`.
fn recorded_loki() -> ReplayServer {
    ReplayServer::start(|request| {
        if request.header("x-scope-orgid") != Some("busflow") {
            return Response::text(401, loki_fixture("error-401-no-org-id.txt"));
        }
        // "alertbook:loki-pw-61" in base64.
        if request.header("authorization") != Some("Basic YWxlcnRib29rOmxva2ktcHctNjE=") {
            return Response::text(401, "unauthorized");
        }
        let query = request.param("query").unwrap_or_default();
        match (request.path.as_str(), query) {
            ("/loki/api/v1/query", "vector") => Response::json(200, loki_fixture("query-vector.json")),
            ("/loki/api/v1/query", "partial") => Response::json(200, loki_fixture("query-vector-partial.json")),
            ("/loki/api/v1/query", "scalar") => Response::json(200, loki_fixture("query-scalar.json")),
            ("/loki/api/v1/query", "streams") => Response::json(200, loki_fixture("query-range-streams.json")),
            ("/loki/api/v1/query_range", "matrix") => Response::json(200, loki_fixture("query-range-matrix.json")),
            ("/loki/api/v1/query_range", "streams") => {
                Response::json(200, loki_fixture("query-range-streams-categorized.json"))
            }
            (_, "parse-error") => Response::text(400, loki_fixture("error-400-parse.txt")),
            (_, "busy") => Response::text(429, loki_fixture("error-429-outstanding.txt")),
            (_, "timeout") => Response::text(504, loki_fixture("error-504-timeout.txt")),
            (_, "gateway") => Response::text(502, loki_fixture("error-502-gateway.html")),
            (_, "malformed") => Response::json(200, loki_fixture("malformed-truncated.json")),
            (_, "slow") => Response::json(200, loki_fixture("query-vector.json")).delayed(Duration::from_millis(1500)),
            _ => Response::text(404, "404 page not found"),
        }
    })
}

fn options(url: &str) -> HttpOptions {
    let mut options = HttpOptions::new("busflow-loki", url);
    options.tenant = Some("busflow".to_owned());
    options.timeout = Duration::from_millis(500);
    options.authorization = Some(rules::remote::Authorization::Basic {
        username: "alertbook".to_owned(),
        password: "loki-pw-61".to_owned(),
    });
    options
}

#[test]
fn replayed_answers_reach_rules_and_checks() {
    use rules::Datasource as _;
    let server = recorded_loki();
    let health = DatasourceHealth::detached();
    let loki = LokiDatasource::new(&options(&server.url()), health.clone()).expect("client");

    let samples = loki.query("vector", 1_764_669_600_000).expect("vector");
    assert_eq!(
        samples,
        vec![(Labels::from_pairs([("tenant_id", "acme")]), 3.0), (Labels::from_pairs([("tenant_id", "globex")]), 1.0)]
    );
    assert_eq!((health.up(), health.errors()), (1, 0));
    let request = server.requests().pop().expect("a request");
    assert_eq!((request.method.as_str(), request.path.as_str()), ("GET", "/loki/api/v1/query"));
    assert_eq!(request.param("time"), Some("1764669600000000000"), "nanoseconds");
    assert_eq!(request.param("direction"), Some("backward"));
    assert_eq!(request.param("limit"), Some("100"));

    assert_eq!(loki.query("scalar", 0).expect("scalar"), vec![(Labels::empty(), 42.0)]);
    assert_eq!(
        loki.query("partial", 0).expect("a partial answer still evaluates"),
        vec![(Labels::from_pairs([("tenant_id", "acme")]), 2.0)]
    );
    assert_eq!(loki.query("streams", 0), Err(rules::DatasourceError::NotAVector), "a log query is no rule result");

    // Checks read matrices and streams through the range API.
    let answer = loki
        .range_query(
            "matrix",
            1_764_669_300_000_000_000,
            1_764_669_480_000_000_000,
            60_000_000_000,
            100,
            logql::Direction::Backward,
        )
        .expect("matrix");
    assert!(matches!(answer.value, logql::QueryValue::Matrix(ref series) if series.len() == 2));
    let request = server.requests().pop().expect("a request");
    assert_eq!(request.path, "/loki/api/v1/query_range");
    assert_eq!(request.param("start"), Some("1764669300000000000"));
    assert_eq!(request.param("end"), Some("1764669480000000000"));
    assert_eq!(request.param("step"), Some("60"));
    let answer = loki.range_query("streams", 0, 1, 1_000_000_000, 10, logql::Direction::Forward).expect("streams");
    assert!(matches!(answer.value, logql::QueryValue::Streams(ref streams) if streams[0].entries.len() == 2));
    assert_eq!(server.requests().pop().expect("a request").param("direction"), Some("forward"));
    assert_eq!((health.up(), health.errors()), (1, 0));
}

#[test]
fn remote_errors_name_the_datasource() {
    use rules::Datasource as _;
    let server = recorded_loki();
    let health = DatasourceHealth::detached();
    let loki = LokiDatasource::new(&options(&server.url()), health.clone()).expect("client");

    let error = loki.query("parse-error", 0).expect_err("parse error");
    assert_eq!(
        error,
        rules::DatasourceError::Query(
            "loki datasource \"busflow-loki\": HTTP 400: parse error at line 1, col 30: syntax error: unexpected IDENTIFIER, expecting STRING"
                .to_owned()
        )
    );
    assert_eq!((health.up(), health.errors()), (1, 1), "a refused query leaves the datasource up");

    let error = loki.query("malformed", 0).expect_err("malformed");
    assert!(
        matches!(&error, rules::DatasourceError::Query(message) if message.starts_with("loki datasource \"busflow-loki\": malformed answer:")),
        "{error}"
    );
    let error = loki.query("busy", 0).expect_err("busy");
    assert!(error.to_string().contains("HTTP 429: too many outstanding requests"), "{error}");

    for (query, expected) in [
        ("timeout", "HTTP 504: request timed out, decrease the duration"),
        ("gateway", "HTTP 502: <html>"),
        ("slow", "no answer within 500ms"),
    ] {
        let error = loki.query(query, 0).expect_err(query);
        assert!(
            matches!(&error, rules::DatasourceError::Unavailable(message)
                if message.starts_with("loki datasource \"busflow-loki\": ") && message.contains(expected)),
            "{query}: {error}"
        );
        assert_eq!(health.up(), 0, "{query} sets the datasource down");
    }
    assert_eq!(health.errors(), 6);
    loki.query("vector", 0).expect("back up");
    assert_eq!(health.up(), 1);

    // Without the tenant, the server answers as a multi-tenant Loki does; the password never shows.
    let mut no_tenant = options(&server.url());
    no_tenant.tenant = None;
    let loki = LokiDatasource::new(&no_tenant, DatasourceHealth::detached()).expect("client");
    let error = loki.query("vector", 0).expect_err("no tenant");
    assert_eq!(error.to_string(), "loki datasource \"busflow-loki\": HTTP 401: no org id");
    assert!(!format!("{error:?}{loki:?}").contains("loki-pw-61"));

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address");
    let loki = LokiDatasource::new(&options(&format!("http://{closed}")), health.clone()).expect("client");
    let error = loki.query("vector", 0).expect_err("refused");
    assert!(
        matches!(&error, rules::DatasourceError::Unavailable(message) if message.starts_with("loki datasource \"busflow-loki\": ")),
        "{error}"
    );
    assert!(!error.to_string().contains("query=vector"), "the URL is left out: {error}");
}

const LOG_RULES: &str = r#"groups:
  - name: sso
    datasource: logs
    interval: 1m
    rules:
      - alert: SsoFallthrough
        expr: sum by (tenant_id) (count_over_time({service_name="busflow_grafana"} | logfmt | sso_claim="missing" [5m])) > 0
        labels: {severity: page}
      - record: tenant:sso_lines:count5m
        expr: sum by (tenant_id) (count_over_time({service_name="busflow_grafana"} | logfmt [5m]))
      - alert: NoSuchStream
        expr: sum(count_over_time({service_name="nothing"}[5m])) > 0
"#;

/// Sink that keeps what rules record, to compare two managers.
#[derive(Default)]
struct Recorded(parking_lot::Mutex<Vec<(Labels, i64, f64)>>);

impl rules::SeriesSink for Recorded {
    fn append(&self, labels: &Labels, time_ms: i64, value: f64) -> Result<(), String> {
        self.0.lock().push((labels.clone(), time_ms, value));
        Ok(())
    }
}

fn manager(files: &[catalog::RuleFile], logs: Arc<dyn rules::Datasource>, sink: Arc<Recorded>) -> rules::Manager {
    let store = Arc::new(tsdb::MemStore::new());
    let mut options = rules::ManagerOptions::embedded(rules::EmbeddedDatasource::new(store, promql::Engine::default()));
    options.sink = sink;
    options.logs_datasource = Some(logs);
    rules::Manager::new(files, options)
}

/// One rule after an evaluation: name, health, last error, and its alerts (labels, value, state).
type RuleOutcome = (String, String, Option<String>, Vec<(Labels, f64, String)>);

/// What a manager's group shows after an evaluation.
fn outcome(manager: &rules::Manager) -> Vec<RuleOutcome> {
    manager.statuses()[0]
        .rules
        .iter()
        .map(|rule| {
            let alerts = rule
                .alerts
                .iter()
                .map(|alert| (alert.labels.clone(), alert.value, format!("{:?}", alert.state)))
                .collect();
            (rule.name.clone(), format!("{:?}", rule.health), rule.last_error.clone(), alerts)
        })
        .collect()
}

#[test]
fn log_rules_through_alertbooks_own_loki_api_match_the_embedded_store() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow");
    let catalog = catalog::load(&root).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let durable = Arc::new(ingest::durable::DurableStore::in_memory(Arc::new(tsdb::MemStore::new())));
    let state = server::AppState::new(catalog, durable, promql::Engine::default());
    let options = logstore::LogStoreOptions { fsync: wal::FsyncPolicy::Never, ..Default::default() };
    let (store, _) = logstore::LogStore::open(directory.path(), options).expect("log store");
    let store = Arc::new(store);
    let engine = logql::Engine::default();
    state.set_logs(Arc::new(server::LogService {
        store: store.clone(),
        engine: engine.clone(),
        redaction: None,
        decode: logstore::push::DecodeOptions::default(),
    }));
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = runtime.spawn(server::serve_listener(listener, state, async move {
        let _ = stopped.await;
    }));

    // Real lines through the push API, a minute before the evaluation.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64;
    let line_ns = |seconds_ago: i64| ((now_ms - seconds_ago * 1000) * 1_000_000).to_string();
    let push = serde_json::json!({"streams": [
        {"stream": {"service_name": "busflow_grafana"}, "values": [
            [line_ns(60), "level=warn msg=\"login\" tenant_id=acme sso_claim=missing"],
            [line_ns(50), "level=warn msg=\"login\" tenant_id=acme sso_claim=missing"],
            [line_ns(40), "level=info msg=\"login\" tenant_id=globex sso_claim=present"],
            [line_ns(30), "level=warn msg=\"login\" tenant_id=initech sso_claim=missing"],
            [line_ns(900), "level=warn msg=\"too old for the window\" tenant_id=old sso_claim=missing"]
        ]}
    ]});
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::new();
    let pushed = client
        .post(format!("http://{address}/loki/api/v1/push"))
        .header("content-type", "application/json")
        .body(push.to_string())
        .send()
        .expect("push");
    assert_eq!(pushed.status().as_u16(), 204, "{:?}", pushed.text());

    let rules_file = directory.path().join("logs.rules.yaml");
    std::fs::write(&rules_file, LOG_RULES).expect("write rules");
    let files = catalog::load_rules(&[rules_file]).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));

    let embedded_sink = Arc::new(Recorded::default());
    let embedded =
        manager(&files, Arc::new(rules::LogsDatasource::new(store.clone(), engine.clone())), embedded_sink.clone());
    let health = DatasourceHealth::detached();
    let remote_loki = LokiDatasource::new(&HttpOptions::new("own-loki", format!("http://{address}")), health.clone())
        .expect("client");
    let remote_sink = Arc::new(Recorded::default());
    let remote = manager(&files, Arc::new(remote_loki), remote_sink.clone());

    let (_, embedded_errors) = embedded.evaluate_group(0, now_ms);
    let (_, remote_errors) = remote.evaluate_group(0, now_ms);
    let embedded_outcome = outcome(&embedded);
    let remote_outcome = outcome(&remote);
    // The same rules, health and alerts with their values and states.
    assert_eq!(embedded_outcome.len(), remote_outcome.len());
    for (local, through_api) in embedded_outcome.iter().zip(&remote_outcome) {
        assert_eq!((&local.0, &local.1, &local.3), (&through_api.0, &through_api.1, &through_api.3));
    }
    let sso = &remote_outcome[0].3;
    let tenants: Vec<(Option<&str>, f64)> =
        sso.iter().map(|(labels, value, _)| (labels.get("tenant_id"), *value)).collect();
    assert_eq!(tenants, vec![(Some("acme"), 2.0), (Some("initech"), 1.0)]);
    assert_eq!(*embedded_sink.0.lock(), *remote_sink.0.lock(), "recorded series and ALERTS are the same");
    assert!(
        remote_sink
            .0
            .lock()
            .iter()
            .any(|(labels, _, value)| labels.get("__name__") == Some("tenant:sso_lines:count5m")
                && labels.get("tenant_id") == Some("globex")
                && *value == 1.0)
    );
    assert_eq!((embedded_errors.len(), remote_errors.len()), (0, 0), "{remote_errors:?}");
    assert_eq!((health.up(), health.errors()), (1, 0));
    // A query the API refuses is the rule's error, naming the datasource.
    let remote_loki = LokiDatasource::new(&HttpOptions::new("own-loki", format!("http://{address}")), health.clone())
        .expect("client");
    let error = rules::Datasource::query(&remote_loki, "sum(count_over_time({service_name=}[5m]))", now_ms)
        .expect_err("parse error");
    assert!(
        matches!(&error, rules::DatasourceError::Query(message) if message.starts_with("loki datasource \"own-loki\": HTTP 400: ")),
        "{error}"
    );
    assert_eq!((health.up(), health.errors()), (1, 1));

    // Checks: range and instant queries answer what the embedded engine computes, through one trait.
    use sources::loki::LogQueries;
    let embedded_checks: &dyn LogQueries = &rules::LogsDatasource::new(store.clone(), engine.clone());
    let remote_checks: &dyn LogQueries = &remote_loki;
    let start_ns = (now_ms - 120_000) * 1_000_000;
    let end_ns = now_ms * 1_000_000;
    let query = r#"sum by (tenant_id) (count_over_time({service_name="busflow_grafana"} | logfmt [1m]))"#;
    let backward = logql::Direction::Backward;
    let local = embedded_checks.range(query, start_ns, end_ns, 30_000_000_000, 100, backward).expect("embedded range");
    let through_api =
        remote_checks.range(query, start_ns, end_ns, 30_000_000_000, 100, backward).expect("range through the API");
    assert!(matches!(&local.value, logql::QueryValue::Matrix(series) if series.len() == 3), "{:?}", local.value);
    assert_eq!(through_api.value, local.value);
    assert_eq!(
        remote_checks.instant(query, end_ns, 100, backward).expect("instant").value,
        embedded_checks.instant(query, end_ns, 100, backward).expect("instant").value
    );
    let logs = r#"{service_name="busflow_grafana"} |= "sso_claim=missing""#;
    let through_api =
        remote_loki.range_query(logs, start_ns, end_ns, 1_000_000_000, 2, logql::Direction::Backward).expect("streams");
    let logql::QueryValue::Streams(streams) = through_api.value else { panic!("not streams") };
    let lines: Vec<&str> = streams.iter().flat_map(|stream| &stream.entries).map(|entry| entry.line.as_str()).collect();
    assert_eq!(lines.len(), 2, "the limit is sent: {lines:?}");
    assert!(lines[0].contains("initech"), "newest first: {lines:?}");

    let _ = stop.send(());
    runtime.block_on(served).expect("server task").expect("server");
}
