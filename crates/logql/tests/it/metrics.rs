//! Metric queries: range aggregations, unwrap, vector aggregations, binary
//! operators, range query steps.

use super::*;

/// Two streams; `web` logs a request every 10 s for 5 minutes with a latency
/// growing by 10 ms, `db` logs every 30 s.
fn source() -> MemSource {
    let mut source = MemSource::default();
    for index in 0..30 {
        let line = format!(
            "method=GET status={} latency={}ms bytes={}KB",
            if index % 3 == 0 { 500 } else { 200 },
            (index + 1) * 10,
            index + 1
        );
        source.push(&[("job", "web"), ("env", "prod")], at(index * 10 + 10), &line);
    }
    for index in 0..10 {
        source.push(&[("job", "db"), ("env", "prod")], at(index * 30 + 30), "query ok latency=5ms");
    }
    source
}

fn one(source: &MemSource, query: &str, time_ns: i64) -> f64 {
    let result = vector(source, query, time_ns);
    assert_eq!(result.len(), 1, "{query}: {result:?}");
    result[0].1
}

#[test]
fn counting_range_aggregations() {
    let source = source();
    // Window (0, 300]: web has entries at 10..=300.
    assert_eq!(one(&source, r#"count_over_time({job="web"}[5m])"#, at(300)), 30.0);
    assert_eq!(one(&source, r#"count_over_time({job="web"}[1m])"#, at(300)), 6.0);
    assert_eq!(one(&source, r#"rate({job="web"}[1m])"#, at(300)), 0.1);
    assert_eq!(one(&source, r#"count_over_time({job="web"} |= "status=500" [5m])"#, at(300)), 10.0);
    assert_eq!(one(&source, r#"count_over_time(({job="web"} |= "status=500")[5m])"#, at(300)), 10.0);
    assert_eq!(one(&source, r#"count_over_time({job="web"}[5m] |= "status=500")"#, at(300)), 10.0);
    let line = "query ok latency=5ms".len() as f64;
    assert_eq!(one(&source, r#"bytes_over_time({job="db"}[1m])"#, at(300)), 2.0 * line);
    assert_eq!(one(&source, r#"bytes_rate({job="db"}[1m])"#, at(300)), 2.0 * line / 60.0);
    // Offset moves the window back: (180, 240].
    assert_eq!(one(&source, r#"count_over_time({job="web"}[1m] offset 1m)"#, at(300)), 6.0);
    assert_eq!(vector(&source, r#"count_over_time({job="web"}[5m])"#, at(5000)), vec![]);
}

#[test]
fn absent_over_time() {
    let source = source();
    assert_eq!(vector(&source, r#"absent_over_time({job="web"}[1m])"#, at(100)), vec![]);
    assert_eq!(
        vector(&source, r#"absent_over_time({job="nope", env=~"p.*"}[1m])"#, at(100)),
        vec![(labels(&[("job", "nope")]), 1.0)]
    );
}

#[test]
fn unwrapped_range_aggregations() {
    let source = source();
    let window = r#"{job="web"} | logfmt | unwrap latency_ms [1m]"#;
    let mut base = MemSource::default();
    for index in 0..6 {
        base.push(
            &[("job", "web")],
            at(index * 10 + 10),
            &format!("latency_ms={}", [3, 1, 4, 1, 5, 9][index as usize]),
        );
    }
    assert_eq!(one(&base, &format!("sum_over_time({window})"), at(60)), 23.0);
    assert_eq!(one(&base, &format!("avg_over_time({window})"), at(60)), 23.0 / 6.0);
    assert_eq!(one(&base, &format!("min_over_time({window})"), at(60)), 1.0);
    assert_eq!(one(&base, &format!("max_over_time({window})"), at(60)), 9.0);
    assert_eq!(one(&base, &format!("first_over_time({window})"), at(60)), 3.0);
    assert_eq!(one(&base, &format!("last_over_time({window})"), at(60)), 9.0);
    assert_eq!(one(&base, &format!("rate({window})"), at(60)), 23.0 / 60.0);
    assert_eq!(one(&base, &format!("quantile_over_time(0.5, {window})"), at(60)), 3.5);
    let mean = 23.0 / 6.0;
    let variance = [3.0f64, 1.0, 4.0, 1.0, 5.0, 9.0].iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 6.0;
    assert!((one(&base, &format!("stdvar_over_time({window})"), at(60)) - variance).abs() < 1e-9);
    assert!((one(&base, &format!("stddev_over_time({window})"), at(60)) - variance.sqrt()).abs() < 1e-9);
    // Durations and bytes; the unwrapped label leaves the series labels.
    let result =
        vector(&source, r#"max_over_time({job="web"} | logfmt | drop bytes | unwrap duration(latency) [5m])"#, at(300));
    assert_eq!(result.len(), 2, "{result:?}");
    assert!(result.iter().all(|(labels, _)| labels.get("latency").is_none()));
    let result =
        vector(&source, r#"max_over_time({job="web"} | logfmt | unwrap duration(latency) [5m]) by (job)"#, at(300));
    assert_eq!(result, vec![(labels(&[("job", "web")]), 0.3)]);
    let result = vector(
        &source,
        r#"sum_over_time({job="web"} | logfmt | unwrap bytes(bytes) [1m]) without (method, status, env, latency)"#,
        at(60),
    );
    assert_eq!(result, vec![(labels(&[("job", "web")]), (1.0 + 2.0 + 3.0 + 4.0 + 5.0 + 6.0) * 1000.0)]);
}

#[test]
fn unwrap_conversion_errors() {
    let mut source = MemSource::default();
    source.push(&[("job", "x")], at(1), "v=1");
    source.push(&[("job", "x")], at(2), "v=oops");
    let error = query_error(&source, r#"sum_over_time({job="x"} | logfmt | unwrap v [1h])"#);
    assert!(matches!(error, logql::Error::Pipeline { ref error, .. } if error == "SampleExtractionErr"), "{error}");
    assert_eq!(one(&source, r#"sum_over_time({job="x"} | logfmt | unwrap v | __error__="" [1h])"#, at(60)), 1.0);
}

#[test]
fn vector_aggregations() {
    let source = source();
    let by_job = r#"count_over_time({env="prod"}[5m])"#;
    assert_eq!(one(&source, &format!("sum({by_job})"), at(300)), 40.0);
    assert_eq!(one(&source, &format!("avg({by_job})"), at(300)), 20.0);
    assert_eq!(one(&source, &format!("min({by_job})"), at(300)), 10.0);
    assert_eq!(one(&source, &format!("max({by_job})"), at(300)), 30.0);
    assert_eq!(one(&source, &format!("count({by_job})"), at(300)), 2.0);
    assert_eq!(one(&source, &format!("stdvar({by_job})"), at(300)), 100.0);
    assert_eq!(one(&source, &format!("stddev({by_job})"), at(300)), 10.0);
    assert_eq!(vector(&source, &format!("sum by (env) ({by_job})"), at(300)), vec![(labels(&[("env", "prod")]), 40.0)]);
    assert_eq!(vector(&source, &format!("sum({by_job}) by (env)"), at(300)), vec![(labels(&[("env", "prod")]), 40.0)]);
    assert_eq!(
        vector(&source, &format!("sum without (env) ({by_job})"), at(300)),
        vec![(labels(&[("job", "db")]), 10.0), (labels(&[("job", "web")]), 30.0)]
    );
    let top = vector(&source, &format!("topk(1, {by_job})"), at(300));
    assert_eq!(top, vec![(labels(&[("env", "prod"), ("job", "web")]), 30.0)]);
    let bottom = vector(&source, &format!("bottomk by (env) (1, {by_job})"), at(300));
    assert_eq!(bottom, vec![(labels(&[("env", "prod"), ("job", "db")]), 10.0)]);
    let sorted: Vec<f64> = vector(&source, &format!("sort_desc({by_job})"), at(300)).into_iter().map(|s| s.1).collect();
    assert_eq!(sorted, vec![30.0, 10.0]);
    let sorted: Vec<f64> = vector(&source, &format!("sort({by_job})"), at(300)).into_iter().map(|s| s.1).collect();
    assert_eq!(sorted, vec![10.0, 30.0]);
}

#[test]
fn binary_operators() {
    let source = source();
    let web = r#"count_over_time({job="web"}[5m])"#;
    let db = r#"count_over_time({job="db"}[5m])"#;
    assert_eq!(one(&source, &format!("{web} * 2 + 1"), at(300)), 61.0);
    assert_eq!(one(&source, &format!("2 ^ 3 ^ 2 * {web} / 30"), at(300)), 512.0);
    assert_eq!(one(&source, &format!("{web} % 7"), at(300)), 2.0);
    assert_eq!(one(&source, &format!("-{web}"), at(300)), -30.0);
    assert_eq!(vector(&source, &format!("{web} > 100"), at(300)), vec![]);
    assert_eq!(one(&source, &format!("{web} > bool 100"), at(300)), 0.0);
    assert_eq!(one(&source, &format!("{web} >= 30"), at(300)), 30.0);
    assert_eq!(one(&source, &format!("sum by (env) ({web}) / on (env) sum by (env) ({db})"), at(300)), 3.0);
    assert_eq!(one(&source, &format!("sum by (env) ({web}) == ignoring (job) sum by (env) ({db}) * 3"), at(300)), 30.0);
    let ratio = vector(
        &source,
        r#"count_over_time({env="prod"}[5m]) / on (env) group_left sum by (env) (count_over_time({env="prod"}[5m]))"#,
        at(300),
    );
    assert_eq!(
        ratio,
        vec![(labels(&[("env", "prod"), ("job", "db")]), 0.25), (labels(&[("env", "prod"), ("job", "web")]), 0.75)]
    );
    let all = r#"count_over_time({env="prod"}[5m])"#;
    assert_eq!(vector(&source, &format!("{all} and {web}"), at(300)).len(), 1);
    assert_eq!(vector(&source, &format!("{all} unless {web}"), at(300))[0].0.get("job"), Some("db"));
    assert_eq!(vector(&source, &format!("{web} or {all}"), at(300)).len(), 2);
    assert_eq!(vector(&source, &format!("{web} and on (env) {db}"), at(300)).len(), 1);
    let error = query_error(&source, &format!("{all} + on (env) {all}").replace("[5m]", "[1h]"));
    assert!(error.to_string().contains("duplicate series"), "{error}");
}

#[test]
fn scalars_vectors_and_label_replace() {
    let source = source();
    let engine = Engine::default();
    assert_eq!(engine.instant_query(&source, "1 + 2 * 3", at(0), 10, Direction::Backward), Ok(QueryValue::Scalar(7.0)));
    assert_eq!(
        engine.instant_query(&source, "2 > bool 1", at(0), 10, Direction::Backward),
        Ok(QueryValue::Scalar(1.0))
    );
    assert_eq!(vector(&source, "vector(4)", at(0)), vec![(Labels::empty(), 4.0)]);
    assert_eq!(
        vector(&source, r#"sum(count_over_time({job="nope"}[1m])) or vector(0)"#, at(0)),
        vec![(Labels::empty(), 0.0)]
    );
    let replaced = vector(
        &source,
        r#"label_replace(count_over_time({job="web"}[1m]), "service", "svc-$1", "job", "(w.*)")"#,
        at(300),
    );
    assert_eq!(replaced[0].0.get("service"), Some("svc-web"));
    let untouched =
        vector(&source, r#"label_replace(count_over_time({job="web"}[1m]), "service", "$1", "job", "x(.*)")"#, at(300));
    assert_eq!(untouched[0].0.get("service"), None);
}

#[test]
fn range_queries_step_through_time() {
    let source = source();
    let result = Engine::default()
        .range_query(
            &source,
            r#"sum by (job) (count_over_time({env="prod"}[1m]))"#,
            at(60),
            at(180),
            60 * SECOND,
            10,
            Direction::Backward,
        )
        .expect("range query");
    let QueryValue::Matrix(matrix) = result else { panic!("matrix") };
    assert_eq!(matrix.len(), 2);
    assert_eq!(matrix[0].labels, labels(&[("job", "db")]));
    assert_eq!(matrix[0].points, vec![(at(60), 2.0), (at(120), 2.0), (at(180), 2.0)]);
    assert_eq!(matrix[1].points, vec![(at(60), 6.0), (at(120), 6.0), (at(180), 6.0)]);
    let scalar =
        Engine::default().range_query(&source, "1", at(0), at(2), SECOND, 10, Direction::Backward).expect("scalar");
    assert_eq!(
        scalar,
        QueryValue::Matrix(vec![logql::Series {
            labels: Labels::empty(),
            points: vec![(at(0), 1.0), (at(1), 1.0), (at(2), 1.0)]
        }])
    );
    let error =
        Engine::default().range_query(&source, "1", at(0), at(2), 0, 10, Direction::Backward).expect_err("zero step");
    assert!(error.is_bad_request());
}

#[test]
fn series_limit() {
    let mut source = MemSource::default();
    for index in 0..5 {
        source.push(&[("job", &format!("j{index}"))], at(1), "x");
    }
    let engine = Engine::new(logql::Limits { max_series: 3, ..logql::Limits::default() });
    let error = engine.instant_query(&source, r#"count_over_time({job=~".+"}[1m])"#, at(10), 10, Direction::Backward);
    assert!(matches!(error, Err(logql::Error::Limit(_))), "{error:?}");
}

#[test]
fn parser_hints_do_not_change_results() {
    let mut source = MemSource::default();
    let lines = [
        r#"{"level":"info","status":200,"job":"inner","req":{"path":"/a"}}"#,
        r#"{"level":"error","status":500,"job":"inner","req":{"path":"/b"}}"#,
        r#"{"level":"error","status":503,"job":"other","req":{"path":"/a"}}"#,
        "level=warn status=504 job=x",
    ];
    for (index, line) in lines.iter().enumerate() {
        source.push(&[("job", "app"), ("pod", &format!("p{}", index % 2))], at(index as i64 + 1), line);
    }
    for (hinted, full) in [
        (
            r#"sum by (level, job_extracted, req_path) (count_over_time({job="app"} |= "{" | json | status >= 500 [1h]))"#,
            r#"sum by (level, job_extracted, req_path) (count_over_time({job="app"} |= "{" | json | status >= 500 | line_format "{{__line__}}" [1h]))"#,
        ),
        (
            r#"sum by (level) (count_over_time({job="app"} | logfmt | status > 500 [1h]))"#,
            r#"sum by (level) (count_over_time({job="app"} | logfmt | status > 500 | label_format x="1" [1h]))"#,
        ),
        (
            r#"max_over_time({job="app"} |= "{" | json | unwrap status [1h]) by (pod)"#,
            r#"max_over_time({job="app"} |= "{" | json | line_format "{{__line__}}" | unwrap status [1h]) by (pod)"#,
        ),
    ] {
        let expected = vector(&source, full, at(100));
        assert!(!expected.is_empty(), "{full}");
        assert_eq!(vector(&source, hinted, at(100)), expected, "{hinted}");
    }
}

#[test]
fn unwrap_forms_and_offsets_in_range_queries() {
    let source = source();
    assert_eq!(
        one(
            &source,
            r#"sum_over_time({job="web"} | logfmt | unwrap duration_seconds(latency) [30s]) by (job)"#,
            at(30)
        ),
        0.06
    );
    let grouped = vector(
        &source,
        r#"quantile_over_time(0.5, {job="web"} | logfmt | unwrap duration(latency) [5m]) by (status)"#,
        at(300),
    );
    assert_eq!(grouped.len(), 2);
    let result = Engine::default()
        .range_query(
            &source,
            r#"count_over_time({job="db"}[1m] offset 1m)"#,
            at(60),
            at(180),
            60 * SECOND,
            10,
            Direction::Backward,
        )
        .expect("range query");
    let QueryValue::Matrix(matrix) = result else { panic!("matrix") };
    assert_eq!(matrix[0].points, vec![(at(120), 2.0), (at(180), 2.0)]);
}
