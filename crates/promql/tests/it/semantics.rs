//! Focused checks of tricky PromQL semantics.

use promql::{Engine, EngineOptions, Error, Value};
use tsdb::{Labels, MemStore};

/// A series given as label pairs and `(timestamp, value)` samples.
type SeriesSpec<'a> = (&'a [(&'a str, &'a str)], &'a [(i64, f64)]);

fn store(series: &[SeriesSpec<'_>]) -> MemStore {
    let store = MemStore::new();
    for (labels, samples) in series {
        let labels = Labels::from_pairs(labels.iter().copied());
        for (timestamp, value) in *samples {
            store.append(&labels, *timestamp, *value).expect("append succeeds");
        }
    }
    store
}

fn vector(value: Value) -> Vec<(Labels, f64)> {
    match value {
        Value::Vector(elements) => elements.into_iter().map(|(labels, sample)| (labels, sample.value)).collect(),
        other => panic!("expected a vector, got {other:?}"),
    }
}

fn engine() -> Engine {
    Engine::new(EngineOptions::default())
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

#[test]
fn rate_extrapolates_to_range_boundaries() {
    // A counter growing 1 per 10s, sampled every 10s from 0s to 60s.
    let samples: Vec<(i64, f64)> = (0..=6).map(|step| (step * 10_000, step as f64)).collect();
    let store = store(&[(&[("__name__", "requests_total")], &samples)]);
    let result = engine().instant_query(&store, "rate(requests_total[1m])", 60_000).expect("query succeeds");
    let values = vector(result.value);
    assert_eq!(values.len(), 1);
    assert_eq!(values[0].0, Labels::empty(), "rate drops the metric name");
    assert!((values[0].1 - 0.1).abs() < 1e-9, "got {}", values[0].1);
}

#[test]
fn range_selectors_are_left_open() {
    let store = store(&[(&[("__name__", "m")], &[(0, 1.0), (60_000, 2.0)])]);
    let result = engine().instant_query(&store, "count_over_time(m[1m])", 60_000).expect("query succeeds");
    assert_eq!(vector(result.value)[0].1, 1.0, "the sample at t-range is excluded");
}

#[test]
fn lookback_window_is_left_open_and_respects_staleness() {
    let store = store(&[
        (&[("__name__", "m")], &[(0, 1.0)]),
        (&[("__name__", "gone")], &[(0, 1.0), (30_000, tsdb::STALE_NAN)]),
    ]);
    let at_edge = engine().instant_query(&store, "m", 300_000).expect("query succeeds");
    assert!(vector(at_edge.value).is_empty(), "a sample exactly 5m old is out of the lookback window");
    let inside = engine().instant_query(&store, "m", 299_999).expect("query succeeds");
    assert_eq!(vector(inside.value).len(), 1);
    let stale = engine().instant_query(&store, "gone", 60_000).expect("query succeeds");
    assert!(vector(stale.value).is_empty(), "a staleness marker ends the series");
}

#[test]
fn names_are_removed_late() {
    let store = store(&[(&[("__name__", "m"), ("env", "1")], &[(0, -1.0), (60_000, -2.0)])]);
    let kept = engine().instant_query(&store, "last_over_time(m[5m])", 60_000).expect("query succeeds");
    assert_eq!(vector(kept.value)[0].0, labels(&[("__name__", "m"), ("env", "1")]));
    let dropped = engine().instant_query(&store, "last_over_time(abs(m)[5m:1m])", 60_000).expect("query succeeds");
    assert_eq!(vector(dropped.value), vec![(labels(&[("env", "1")]), 2.0)]);
    let restored = engine()
        .instant_query(&store, r#"label_replace(abs(m), "__name__", "x_$1", "__name__", "(.+)")"#, 60_000)
        .expect("query succeeds");
    assert_eq!(vector(restored.value)[0].0, labels(&[("__name__", "x_m"), ("env", "1")]));
}

#[test]
fn many_to_many_matching_is_rejected_with_sorted_series() {
    let store = store(&[
        (&[("__name__", "one")], &[(0, 1.0)]),
        (&[("__name__", "dup"), ("label", "beta")], &[(0, 2.0)]),
        (&[("__name__", "dup"), ("label", "alpha")], &[(0, 3.0)]),
    ]);
    let error = engine().instant_query(&store, "one + on() dup", 0).expect_err("matching is ambiguous");
    let message = error.to_string();
    assert!(message.starts_with("found duplicate series for the match group {} on the right hand-side"), "{message}");
    assert!(message.contains(r#"[{__name__="dup", label="alpha"}, {__name__="dup", label="beta"}]"#), "{message}");
}

#[test]
fn group_left_copies_labels_from_the_one_side() {
    let store = store(&[
        (&[("__name__", "requests"), ("pod", "a"), ("code", "200")], &[(0, 10.0)]),
        (&[("__name__", "requests"), ("pod", "a"), ("code", "500")], &[(0, 2.0)]),
        (&[("__name__", "info"), ("pod", "a"), ("node", "n1")], &[(0, 1.0)]),
    ]);
    let result = engine().instant_query(&store, "requests * on(pod) group_left(node) info", 0).expect("query succeeds");
    let mut values = vector(result.value);
    values.sort_by(|left, right| left.0.cmp(&right.0));
    assert_eq!(
        values,
        vec![
            (labels(&[("code", "200"), ("node", "n1"), ("pod", "a")]), 10.0),
            (labels(&[("code", "500"), ("node", "n1"), ("pod", "a")]), 2.0),
        ]
    );
}

#[test]
fn duplicate_label_sets_after_name_removal_fail() {
    let store =
        store(&[(&[("__name__", "a"), ("job", "x")], &[(0, 1.0)]), (&[("__name__", "b"), ("job", "x")], &[(0, 2.0)])]);
    let error = engine().instant_query(&store, r#"-{job="x"}"#, 0).expect_err("label sets collide");
    assert_eq!(error, Error::Execution("vector cannot contain metrics with the same labelset".to_owned()));
}

#[test]
fn range_query_merges_steps_into_series() {
    let samples: Vec<(i64, f64)> = (0..=4).map(|step| (step * 30_000, step as f64)).collect();
    let store = store(&[(&[("__name__", "m")], &samples)]);
    let result = engine().range_query(&store, "m * 2", 0, 120_000, 60_000).expect("query succeeds");
    let Value::Matrix(series) = result.value else {
        panic!("range queries return a matrix");
    };
    assert_eq!(series.len(), 1);
    let points: Vec<(i64, f64)> = series[0].samples.iter().map(|sample| (sample.timestamp, sample.value)).collect();
    assert_eq!(points, vec![(0, 0.0), (60_000, 4.0), (120_000, 8.0)]);
}

#[test]
fn subquery_steps_are_aligned_to_absolute_multiples() {
    let samples: Vec<(i64, f64)> = (0..=10).map(|step| (step * 10_000, 1.0)).collect();
    let store = store(&[(&[("__name__", "m")], &samples)]);
    // Steps of 20s in (25s, 85s]: 40s, 60s, 80s.
    let result = engine().instant_query(&store, "count_over_time(m[60s:20s])", 85_000).expect("query succeeds");
    assert_eq!(vector(result.value)[0].1, 3.0);
}

#[test]
fn too_many_samples_is_an_error() {
    let samples: Vec<(i64, f64)> = (0..100).map(|step| (step * 1000, 1.0)).collect();
    let store = store(&[(&[("__name__", "m")], &samples)]);
    let options = EngineOptions { max_samples: 10, ..EngineOptions::default() };
    let error = Engine::new(options).instant_query(&store, "sum_over_time(m[100s])", 100_000).expect_err("limit hit");
    assert!(matches!(error, Error::TooManySamples { .. }));
    assert!(error.to_string().contains("query processing would load too many samples into memory"));
}

#[test]
fn deadline_is_enforced() {
    let store = store(&[(&[("__name__", "m")], &[(0, 1.0)])]);
    let options = EngineOptions { timeout: std::time::Duration::ZERO, ..EngineOptions::default() };
    std::thread::sleep(std::time::Duration::from_millis(2));
    let error = Engine::new(options).range_query(&store, "m", 0, 3_600_000, 1000).expect_err("deadline passed");
    assert!(matches!(error, Error::Timeout { .. }), "{error}");
}

#[test]
fn parse_errors_carry_a_position() {
    let error = engine().instant_query(&MemStore::new(), "sum(rate(x[5m])", 0).expect_err("unbalanced");
    let Error::Parse { line, column, .. } = error else {
        panic!("expected a parse error, got {error:?}");
    };
    // Prometheus: `1:16: parse error: unclosed left parenthesis`, at the end of the input.
    assert_eq!((line, column), (1, 16));
    assert!(error.to_string().contains("best-effort position"));
    // Prometheus: `2:15: parse error: unexpected <by>`, the token it stops at.
    let error =
        engine().instant_query(&MemStore::new(), "sum(\n  x) by (job) by (instance)", 0).expect_err("two groupings");
    let Error::Parse { line, column, .. } = error else {
        panic!("expected a parse error, got {error:?}");
    };
    assert_eq!((line, column), (2, 15));
}

#[test]
fn non_counter_rate_raises_an_info_with_position() {
    let store = store(&[(&[("__name__", "gauge")], &[(0, 1.0), (30_000, 2.0)])]);
    let result = engine().instant_query(&store, "rate(gauge[1m])", 30_000).expect("query succeeds");
    let infos: Vec<String> = result.infos.iter().map(ToString::to_string).collect();
    assert_eq!(
        infos,
        vec![
            r#"PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "gauge" (1:6)"#
                .to_owned()
        ]
    );
}

#[test]
fn histogram_quantile_fixes_monotonicity_and_says_so() {
    let store = store(&[
        (&[("__name__", "h_bucket"), ("le", "1")], &[(0, 10.0)]),
        (&[("__name__", "h_bucket"), ("le", "2")], &[(0, 5.0)]),
        (&[("__name__", "h_bucket"), ("le", "+Inf")], &[(0, 20.0)]),
    ]);
    let result = engine().instant_query(&store, "histogram_quantile(0.9, h_bucket)", 0).expect("query succeeds");
    assert_eq!(result.infos.len(), 1);
    assert!(result.infos[0].message.contains("needed to be fixed for monotonicity"));
    let values = vector(result.value);
    assert_eq!(values[0].0, Labels::empty());
    assert_eq!(values[0].1, 2.0);
}

#[test]
fn topk_orders_by_value_and_keeps_labels() {
    let store = store(&[
        (&[("__name__", "m"), ("i", "1")], &[(0, 1.0)]),
        (&[("__name__", "m"), ("i", "2")], &[(0, 3.0)]),
        (&[("__name__", "m"), ("i", "3")], &[(0, 2.0)]),
    ]);
    let result = engine().instant_query(&store, "topk(2, m)", 0).expect("query succeeds");
    let values: Vec<f64> = vector(result.value).into_iter().map(|(_, value)| value).collect();
    assert_eq!(values, vec![3.0, 2.0]);
    let error = engine().instant_query(&store, "topk(NaN, m)", 0).expect_err("NaN parameter");
    assert_eq!(error.to_string(), "Parameter value is NaN");
}

#[test]
fn promqltest_runner_reports_failures_and_skips() {
    let script = "load 1m\n  m 1 2 3\n  h {{schema:0 sum:1 count:1 buckets:[1]}}+{{sum:2 count:1 buckets:[1]}}x2\n\neval instant at 2m m\n  m 3\n\neval instant at 2m m\n  m 4\n\neval instant at 1m h\n  h {{schema:0 sum:3 count:2 buckets:[2]}}\n\neval instant at 1m info(m)\n  m 2\n";
    let report = promql::promqltest::run_script("inline.test", script);
    assert_eq!(report.passed, 2, "{report:?}");
    assert_eq!(report.failed(), 1);
    assert_eq!(report.failures[0].line, 8);
    assert_eq!(report.skipped(), 1);
    assert!(report.skips[0].reason.contains("unsupported"));
}

#[test]
fn native_histograms_are_selected_added_and_scaled() {
    let store = tsdb::MemStore::new();
    let labels = tsdb::Labels::from_pairs([("__name__", "h"), ("i", "1")]);
    for (index, text) in ["{{sum:1 count:1 buckets:[1]}}", "{{sum:3 count:3 buckets:[1 2]}}"].iter().enumerate() {
        let histogram = promql::notation::parse_histogram(text).expect("valid histogram");
        store.append_histogram(&labels, index as i64 * 60_000, histogram).expect("appended");
    }
    let result = engine().instant_query(&store, "sum(h) * 2", 60_000).expect("query succeeds");
    let promql::Value::Vector(samples) = result.value else { panic!("expected a vector") };
    let histogram = samples[0].1.histogram.as_ref().expect("a histogram");
    let expected = promql::notation::parse_histogram("{{count:6 sum:6 buckets:[2 4]}}").expect("valid histogram");
    assert!(histogram.equals_with(&expected, |left, right| left == right), "{histogram}");
    let result = engine().instant_query(&store, "histogram_count(rate(h[2m]))", 60_000).expect("query succeeds");
    let promql::Value::Vector(samples) = result.value else { panic!("expected a vector") };
    assert!(samples[0].1.value > 0.0);
    let result = engine().instant_query(&store, "h > 1", 60_000).expect("query succeeds");
    assert!(matches!(result.value, promql::Value::Vector(samples) if samples.is_empty()));
    assert_eq!(result.infos.len(), 1);
}
