//! Log queries: selectors, line filters, parsers, label filters, formatting,
//! limits and directions.

use super::*;

fn app_source() -> MemSource {
    let mut source = MemSource::default();
    let app = [("job", "app"), ("env", "prod")];
    source.push(&app, at(1), r#"level=info msg="started" duration=15ms size=2KB user=alice ip=10.0.1.7"#);
    source.push(&app, at(2), r#"level=error msg="failed to connect" duration=1.5s size=20MB user=bob ip=192.168.0.20"#);
    source.push(&app, at(3), r#"level=warn msg="slow" duration=300ms size=512 user=carol ip=10.0.2.1"#);
    source.push(
        &[("job", "api"), ("env", "dev")],
        at(4),
        r#"{"level":"error","request":{"method":"GET","path":"/x"},"servers":["a","b"],"status":503}"#,
    );
    source.push(
        &[("job", "api"), ("env", "dev")],
        at(5),
        r#"{"level":"info","request":{"method":"POST","path":"/y"},"servers":["c"],"status":200}"#,
    );
    source.push(
        &[("job", "nginx")],
        at(6),
        r#"203.0.113.1 - - [26/Nov/2026:00:00:06 +0000] "GET /index.html HTTP/1.1" 200 512"#,
    );
    source.push(&[("job", "nginx")], at(7), "\u{1b}[31mred alert\u{1b}[0m");
    source
}

#[test]
fn selector_matchers() {
    let source = app_source();
    assert_eq!(lines(&source, r#"{job="app"}"#).len(), 3);
    assert_eq!(lines(&source, r#"{job=~"app|api"}"#).len(), 5);
    assert_eq!(lines(&source, r#"{job!="app", env=~".+"}"#).len(), 2);
    assert_eq!(lines(&source, r#"{job=~".+", job!~"a.*"}"#).len(), 2);
    assert_eq!(lines(&source, r#"{job=`app`, env="prod"}"#).len(), 3);
}

#[test]
fn line_filters_chain_and_or() {
    let source = app_source();
    assert_eq!(lines(&source, r#"{job="app"} |= "msg" != "slow""#).len(), 2);
    assert_eq!(lines(&source, r#"{job="app"} |~ "level=(error|warn)""#).len(), 2);
    assert_eq!(lines(&source, r#"{job="app"} !~ "level=(error|warn)""#).len(), 1);
    assert_eq!(lines(&source, r#"{job="app"} |= "alice" or "bob""#).len(), 2);
    assert_eq!(lines(&source, r#"{job="app"} != "alice" or "bob""#).len(), 1);
}

#[test]
fn logfmt_and_label_filters() {
    let source = app_source();
    assert_eq!(lines(&source, r#"{job="app"} | logfmt | level="error""#).len(), 1);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt | duration > 100ms"#).len(), 2);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt | duration >= 1s500ms"#).len(), 1);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt | size > 1KiB"#).len(), 2);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt | size <= 512B"#).len(), 1);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt | level="error" or level="warn""#).len(), 2);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt | level="info", user="alice""#).len(), 1);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt | level="info" and user="bob""#).len(), 0);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt | (level="info" or level="warn") and user=~"c.*""#).len(), 1);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt | level="info" user="alice""#).len(), 1);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt | ip = ip("10.0.1.0/24")"#).len(), 1);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt | ip != ip("10.0.0.0/8")"#).len(), 1);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt | ip = ip("192.168.0.1-192.168.0.255")"#).len(), 1);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt | ip = ip("10.0.2.1")"#).len(), 1);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt level, who="user" | who="carol""#).len(), 1);
    assert_eq!(lines(&source, r#"{job="app"} | logfmt --strict --keep-empty | level == "warn""#).len(), 1);
}

#[test]
fn parsed_labels_label_the_streams() {
    let source = app_source();
    let result = streams(&source, r#"{job="api"} | json"#, at(0), at(10), 10, Direction::Forward);
    assert_eq!(result.len(), 2);
    assert_eq!(result[0].labels.get("request_method"), Some("GET"));
    assert_eq!(result[0].labels.get("status"), Some("503"));
    assert_eq!(result[0].labels.get("servers"), None);
    let plain = streams(&source, r#"{job="api"} |= "GET""#, at(0), at(10), 10, Direction::Forward);
    assert_eq!(plain[0].labels, labels(&[("env", "dev"), ("job", "api")]));
}

#[test]
fn json_parameters_and_numeric_filters() {
    let source = app_source();
    let result = streams(
        &source,
        r#"{job="api"} | json method="request.method", first="servers[0]", code="status" | code >= 500"#,
        at(0),
        at(10),
        10,
        Direction::Forward,
    );
    assert_eq!(result.len(), 1);
    assert_eq!(result[0].labels.get("method"), Some("GET"));
    assert_eq!(result[0].labels.get("first"), Some("a"));
    assert_eq!(result[0].labels.get("level"), None);
    assert_eq!(lines(&source, r#"{job="api"} | json | status == 200"#).len(), 1);
    assert_eq!(lines(&source, r#"{job="api"} | json | status != 200"#).len(), 1);
    assert_eq!(lines(&source, r#"{job="api"} | json | status < 300.5"#).len(), 1);
}

#[test]
fn json_errors_set_the_error_label() {
    let source = app_source();
    let result = streams(&source, r#"{job="app"} | json"#, at(0), at(10), 10, Direction::Forward);
    assert!(result.iter().all(|stream| stream.labels.get("__error__") == Some("JSONParserErr")));
    assert!(lines(&source, r#"{job="app"} | json | __error__ = """#).is_empty());
    assert_eq!(lines(&source, r#"{job="app"} | json | __error__ != "" "#).len(), 3);
    let dropped = streams(
        &source,
        r#"{job="app"} | json | drop __error__, __error_details__"#,
        at(0),
        at(10),
        10,
        Direction::Forward,
    );
    assert_eq!(dropped[0].labels, labels(&[("env", "prod"), ("job", "app")]));
}

#[test]
fn regexp_pattern_and_unpack() {
    let mut source = app_source();
    let result = streams(
        &source,
        r#"{job="nginx"} | regexp `^(?P<client>\S+) .* "(?P<method>\w+) (?P<path>\S+)` | method="GET""#,
        at(0),
        at(10),
        10,
        Direction::Forward,
    );
    assert_eq!(result[0].labels.get("client"), Some("203.0.113.1"));
    assert_eq!(result[0].labels.get("path"), Some("/index.html"));
    let result = streams(
        &source,
        r#"{job="nginx"} | pattern `<ip> - - [<_>] "<method> <path> <_>" <status> <size>` | status = 200"#,
        at(0),
        at(10),
        10,
        Direction::Forward,
    );
    assert_eq!(result.len(), 1);
    assert_eq!(result[0].labels.get("size"), Some("512"));
    source.push(&[("job", "packed")], at(8), r#"{"_entry":"original line","pod":"p-1"}"#);
    let result = streams(&source, r#"{job="packed"} | unpack"#, at(0), at(10), 10, Direction::Forward);
    assert_eq!(result[0].labels.get("pod"), Some("p-1"));
    assert_eq!(result[0].entries[0].line, "original line");
}

#[test]
fn formatting_stages() {
    let source = app_source();
    let mut formatted =
        lines(&source, r#"{job="app"} | logfmt | line_format "{{.level | ToUpper}} {{ .user }}: {{.msg}}""#);
    formatted.sort();
    assert_eq!(formatted, vec!["ERROR bob: failed to connect", "INFO alice: started", "WARN carol: slow"]);
    let result = streams(
        &source,
        r#"{job="app"} | logfmt | label_format who=user, tag="{{.level}}-{{.env}}" | keep who, tag"#,
        at(0),
        at(2),
        10,
        Direction::Forward,
    );
    assert_eq!(result[0].labels, labels(&[("tag", "info-prod"), ("who", "alice")]));
    let result = streams(
        &source,
        r#"{job="app"} | logfmt | drop msg, size, duration, ip, level="info""#,
        at(0),
        at(2),
        10,
        Direction::Forward,
    );
    assert_eq!(result[0].labels, labels(&[("env", "prod"), ("job", "app"), ("user", "alice")]));
    assert_eq!(lines(&source, r#"{job="nginx"} |= "red" | decolorize"#), vec!["red alert"]);
}

#[test]
fn limit_and_direction() {
    let source = app_source();
    let backward = streams(&source, r#"{job=~".+"}"#, at(0), at(10), 3, Direction::Backward);
    let mut times: Vec<i64> =
        backward.iter().flat_map(|s| s.entries.iter().map(|e| (e.timestamp_ns - T0) / SECOND)).collect();
    times.sort();
    assert_eq!(times, vec![5, 6, 7]);
    let forward = streams(&source, r#"{job=~".+"}"#, at(0), at(10), 2, Direction::Forward);
    let times: Vec<i64> =
        forward.iter().flat_map(|s| s.entries.iter().map(|e| (e.timestamp_ns - T0) / SECOND)).collect();
    assert_eq!(times, vec![1, 2]);
    // Backward streams list their entries newest first.
    let app = streams(&source, r#"{job="app"}"#, at(0), at(10), 10, Direction::Backward);
    let times: Vec<i64> = app[0].entries.iter().map(|e| (e.timestamp_ns - T0) / SECOND).collect();
    assert_eq!(times, vec![3, 2, 1]);
    // The end is exclusive.
    assert_eq!(streams(&source, r#"{job="app"}"#, at(1), at(3), 10, Direction::Forward)[0].entries.len(), 2);
}

#[test]
fn instant_log_queries_read_up_to_and_including_the_time() {
    let source = app_source();
    let result =
        Engine::default().instant_query(&source, r#"{job="app"}"#, at(2), 10, Direction::Backward).expect("query");
    let QueryValue::Streams(streams) = result else { panic!("streams") };
    assert_eq!(streams[0].entries.len(), 2);
}

#[test]
fn metadata_filters_and_stream_labels() {
    let mut source = MemSource::default();
    source.push_with_metadata(&[("job", "faro")], at(1), "a", &[("trace_id", "t1")]);
    source.push(&[("job", "faro")], at(2), "b");
    let result = streams(&source, r#"{job="faro"} | trace_id != """#, at(0), at(10), 10, Direction::Forward);
    // Structured metadata labels the entry, as in Loki's responses.
    assert_eq!(result.len(), 1);
    assert_eq!(result[0].labels, labels(&[("job", "faro"), ("trace_id", "t1")]));
    assert_eq!(result[0].entries[0].metadata, vec![("trace_id".to_string(), "t1".to_string())]);
    let parsed = streams(&source, r#"{job="faro"} | logfmt | trace_id="t1""#, at(0), at(10), 10, Direction::Forward);
    assert_eq!(parsed[0].labels, labels(&[("job", "faro"), ("trace_id", "t1")]));
}

#[test]
fn comments_are_ignored() {
    let source = app_source();
    assert_eq!(lines(&source, "{job=\"app\"} # all of the app\n |= \"bob\" # only bob").len(), 1);
}

#[test]
fn limits_are_enforced() {
    let source = app_source();
    let error =
        Engine::default().range_query(&source, r#"{job="app"}"#, at(0), at(10), SECOND, 10_000, Direction::Backward);
    assert!(matches!(error, Err(logql::Error::Limit(_))));
    let broken =
        Engine::default().range_query(&BrokenSource, r#"{job="app"}"#, at(0), at(10), SECOND, 10, Direction::Backward);
    let error = broken.expect_err("store fails");
    assert!(!error.is_bad_request());
    assert_eq!(error.to_string(), "log store: disk on fire");
}

/// A source of `entries` lines that counts how many it handed out.
struct Endless {
    entries: usize,
    handed_out: std::sync::atomic::AtomicUsize,
}

impl LogSource for Endless {
    fn select(
        &self,
        _: &[StreamMatcher],
        start_ns: i64,
        _: i64,
        visit: &mut dyn FnMut(&Labels, Entry<'_>) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        let stream = labels(&[("job", "app")]);
        for index in 0..self.entries {
            self.handed_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let entry = Entry { timestamp_ns: start_ns + index as i64, line: "level=info msg=tick", metadata: &[] };
            if visit(&stream, entry).is_break() {
                break;
            }
        }
        Ok(())
    }
}

#[test]
fn a_query_past_its_timeout_stops_reading_and_fails_as_a_timeout() {
    let timed_out =
        Engine { limits: logql::Limits { timeout: Some(std::time::Duration::ZERO), ..logql::Limits::default() } };
    let queries = [r#"{job="app"} | logfmt"#, r#"sum(count_over_time({job="app"} | logfmt [1h]))"#];
    for query in queries {
        let source = Endless { entries: 1_000_000, handed_out: Default::default() };
        let error = timed_out
            .range_query(&source, query, at(0), at(60), SECOND, 100, Direction::Forward)
            .expect_err("no time left");
        assert!(error.is_timeout() && !error.is_bad_request(), "{query}: {error}");
        assert_eq!(error.to_string(), "query timed out after 0ns");
        // The store was asked to stop at the first look at the clock.
        assert_eq!(source.handed_out.into_inner(), 1024, "{query}");
    }
    // A range query's steps look at the clock too, however little they read.
    let error = timed_out
        .range_query(&source_with_one_line(), queries[1], at(0), at(60), SECOND, 100, Direction::Forward)
        .expect_err("no time left");
    assert!(error.is_timeout());
    // With time left, the same query reads everything.
    let source = Endless { entries: 5_000, handed_out: Default::default() };
    let result = Engine::default().range_query(&source, queries[1], at(0), at(60), SECOND, 100, Direction::Forward);
    assert!(result.is_ok(), "{result:?}");
    assert_eq!(source.handed_out.into_inner(), 5_000);
}

fn source_with_one_line() -> MemSource {
    let mut source = MemSource::default();
    source.push(&[("job", "app")], at(30), "level=info msg=tick");
    source
}

#[test]
fn parser_parameters_and_label_stages() {
    let source = app_source();
    let result = streams(
        &source,
        r##"{job="api"} | json level, status | keep level, status=~"5..""##,
        at(0),
        at(10),
        10,
        Direction::Forward,
    );
    assert_eq!(result.len(), 2);
    assert_eq!(result[0].labels, labels(&[("level", "error"), ("status", "503")]));
    assert_eq!(result[1].labels, labels(&[("level", "info")]));
    let result = streams(
        &source,
        r#"{job="app"} | logfmt | drop ip=~"10\\..*", msg, size, duration, level | user="alice""#,
        at(0),
        at(10),
        10,
        Direction::Forward,
    );
    assert_eq!(result[0].labels, labels(&[("env", "prod"), ("job", "app"), ("user", "alice")]));
    let renamed = streams(
        &source,
        r#"{job="app"} | logfmt user | label_format person=user"#,
        at(0),
        at(2),
        10,
        Direction::Forward,
    );
    assert_eq!(renamed[0].labels, labels(&[("env", "prod"), ("job", "app"), ("person", "alice")]));
}
