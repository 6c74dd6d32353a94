//! The Tempo datasource: recorded search answers decoded and replayed from a
//! loopback server that checks the tenant and bearer token, the slowest spans
//! with their `db.statement` (A2's first step), and errors naming the datasource.

use std::time::Duration;

use sources::health::DatasourceHealth;
use sources::http::{AnswerError, HttpOptions};
use sources::tempo::{AttributeValue, TempoDatasource, TraceSearchRequest, decode_search_response};

use crate::replay::{ReplayServer, Response, fixture};

const A2_QUERY: &str = r#"{ span.http.route = "/api/bookings" && duration > 800ms } | select(span.db.statement)"#;

fn tempo_fixture(name: &str) -> Vec<u8> {
    fixture("tempo", name)
}

#[test]
fn decodes_recorded_search_answers() {
    let search = decode_search_response(&tempo_fixture("search-traceql-select.json")).expect("search");
    assert_eq!(search.traces.len(), 3);
    let first = &search.traces[0];
    assert_eq!(first.trace_id, "2f3e0cee77ae5dc9c17ade3689eb2e54");
    assert_eq!(
        (first.root_service_name.as_str(), first.root_trace_name.as_str()),
        ("busflow_api", "POST /api/bookings")
    );
    assert_eq!((first.start_time_unix_nano, first.duration_ms), (1_764_669_541_299_392_724, 1412));
    assert_eq!(first.span_sets.len(), 1, "spanSets wins over the deprecated spanSet");
    let span = &search.traces[1].span_sets[0].spans[1];
    assert_eq!(span.span_id, "8c367283c37587f9");
    assert_eq!(span.duration_nanos, 845_000_000);
    assert_eq!(span.attribute("db.rows"), Some(&AttributeValue::Int(184_211)));
    assert_eq!(span.attribute("cache.hit"), Some(&AttributeValue::Bool(false)));
    assert_eq!(span.attribute("sample.rate"), Some(&AttributeValue::Double(0.25)));
    assert_eq!(search.traces[1].span_sets[0].matched, 2);
    assert_eq!(search.traces[2].root_trace_name, "", "no root span yet");
    assert_eq!(search.traces[2].span_sets[0].matched, 4);
    assert_eq!(search.metrics["totalBlocks"], 13);

    let slowest = search.slowest_spans(3);
    let summary: Vec<(&str, u64, Option<&str>)> =
        slowest.iter().map(|span| (span.span_id.as_str(), span.duration_nanos, span.db_statement.as_deref())).collect();
    assert_eq!(
        summary,
        vec![
            (
                "563d623c76514f8e",
                1_412_005_120,
                Some(
                    "SELECT b.id, b.seat_id FROM bookings b JOIN seats s ON s.id = b.seat_id WHERE b.trip_id = $1 FOR UPDATE"
                )
            ),
            ("c9da5e6e5f51bb83", 923_104_512, None),
            (
                "8c367283c37587f9",
                845_000_000,
                Some("SELECT count(*) FROM bookings WHERE tenant_id = $1 AND created_at > now() - interval '30 days'")
            ),
        ]
    );
    assert_eq!(slowest[2].trace_id, "7a1d2dd4deaf177e0acf55b3c49032");
    assert_eq!(slowest[2].root_trace_name, "GET /api/bookings");
    assert_eq!(search.slowest_spans(10).len(), 4);

    let legacy = decode_search_response(&tempo_fixture("search-legacy-spanset.json")).expect("legacy");
    assert_eq!(legacy.traces[0].span_sets.len(), 1, "Tempo 2.0's single spanSet");
    assert!(
        legacy.slowest_spans(1)[0]
            .db_statement
            .as_deref()
            .is_some_and(|statement| statement.starts_with("UPDATE seats"))
    );

    assert!(decode_search_response(&tempo_fixture("search-empty.json")).expect("empty").traces.is_empty());
    let error = decode_search_response(&tempo_fixture("malformed-truncated.json")).expect_err("malformed");
    assert!(matches!(&error, AnswerError::Malformed(message) if message.contains("EOF")), "{error}");
}

/// A Tempo that answers from the fixtures, refusing requests without the
/// tenant and the bearer token `tempo-token-27`.
fn recorded_tempo() -> ReplayServer {
    ReplayServer::start(|request| {
        if request.header("x-scope-orgid") != Some("busflow") {
            return Response::text(401, tempo_fixture("error-401-no-org-id.txt"));
        }
        if request.header("authorization") != Some("Bearer tempo-token-27") {
            return Response::text(401, "unauthorized");
        }
        if request.path != "/api/search" {
            return Response::text(404, "404 page not found");
        }
        match request.param("q").unwrap_or_default() {
            A2_QUERY => Response::json(200, tempo_fixture("search-traceql-select.json")),
            "{ .nothing = true }" => Response::json(200, tempo_fixture("search-empty.json")),
            "{ span.http.route = /api }" => Response::text(400, tempo_fixture("error-400-traceql.txt")),
            "{ querier-down }" => Response::text(500, tempo_fixture("error-500-querier.txt")),
            "{ truncated }" => Response::json(200, tempo_fixture("malformed-truncated.json")),
            "{ slow }" => Response::json(200, tempo_fixture("search-empty.json")).delayed(Duration::from_millis(1500)),
            _ => Response::text(400, "unexpected query"),
        }
    })
}

fn options(url: &str) -> HttpOptions {
    let mut options = HttpOptions::new("busflow-tempo", url);
    options.tenant = Some("busflow".to_owned());
    options.timeout = Duration::from_millis(500);
    options.authorization = Some(rules::remote::Authorization::Bearer { token: "tempo-token-27".to_owned() });
    options
}

#[test]
fn a2_samples_slow_traces_through_the_search_api() {
    let server = recorded_tempo();
    let health = DatasourceHealth::detached();
    let tempo = TempoDatasource::new(&options(&server.url()), health.clone()).expect("client");
    let request = TraceSearchRequest {
        query: A2_QUERY.to_owned(),
        range: Some((1_764_669_000, 1_764_669_600)),
        limit: Some(10),
        spans_per_span_set: Some(5),
    };
    let search = tempo.search(&request).expect("search");
    assert_eq!(search.traces.len(), 3);
    assert!(
        search.slowest_spans(1)[0].db_statement.as_deref().is_some_and(|statement| statement.contains("FOR UPDATE"))
    );
    assert_eq!((health.up(), health.errors()), (1, 0));
    let sent = server.requests().pop().expect("a request");
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("GET", "/api/search"));
    assert_eq!(sent.param("q"), Some(A2_QUERY));
    assert_eq!(sent.param("start"), Some("1764669000"));
    assert_eq!(sent.param("end"), Some("1764669600"));
    assert_eq!(sent.param("limit"), Some("10"));
    assert_eq!(sent.param("spss"), Some("5"));

    let empty = tempo.search(&TraceSearchRequest::new("{ .nothing = true }")).expect("empty");
    assert!(empty.traces.is_empty());
    let sent = server.requests().pop().expect("a request");
    assert_eq!((sent.param("start"), sent.param("limit"), sent.param("spss")), (None, None, None), "Tempo's defaults");
}

#[test]
fn tempo_errors_name_the_datasource() {
    let server = recorded_tempo();
    let health = DatasourceHealth::detached();
    let tempo = TempoDatasource::new(&options(&server.url()), health.clone()).expect("client");
    let error = tempo.search(&TraceSearchRequest::new("{ span.http.route = /api }")).expect_err("parse error");
    assert_eq!(
        error.to_string(),
        "tempo datasource \"busflow-tempo\": HTTP 400: invalid TraceQL query: parse error at line 1, col 33: syntax error: unexpected IDENTIFIER"
    );
    assert_eq!((health.up(), health.errors()), (1, 1));
    let error = tempo.search(&TraceSearchRequest::new("{ truncated }")).expect_err("malformed");
    assert!(error.to_string().starts_with("tempo datasource \"busflow-tempo\": malformed answer: "), "{error}");
    assert_eq!(health.up(), 1);
    let error = tempo.search(&TraceSearchRequest::new("{ querier-down }")).expect_err("500");
    assert!(error.to_string().contains("HTTP 500: rpc error: code = Unavailable"), "{error}");
    assert_eq!(health.up(), 0);
    let error = tempo.search(&TraceSearchRequest::new("{ slow }")).expect_err("slow");
    assert_eq!(error.to_string(), "tempo datasource \"busflow-tempo\": no answer within 500ms");
    assert_eq!((health.up(), health.errors()), (0, 4));

    let mut no_tenant = options(&server.url());
    no_tenant.tenant = None;
    let tempo = TempoDatasource::new(&no_tenant, DatasourceHealth::detached()).expect("client");
    let error = tempo.search(&TraceSearchRequest::new(A2_QUERY)).expect_err("no tenant");
    assert_eq!(error.to_string(), "tempo datasource \"busflow-tempo\": HTTP 401: no org id");
    assert!(!format!("{error:?}{tempo:?}").contains("tempo-token-27"));
}
