//! A range query must equal the instant queries at each of its steps: the range
//! path reuses per-series state between steps (search cursors, cached group and
//! name-dropped label sets), and this guards that reuse on random data.

use std::collections::BTreeMap;

use promql::{Engine, EngineOptions, Value};
use proptest::prelude::*;
use tsdb::{Labels, MemStore};

const QUERIES: &[&str] = &[
    "requests_total",
    "requests_total{job=~\"a|b\", instance!=\"2\"}",
    "rate(requests_total[1m])",
    "increase(requests_total[90s] offset 30s)",
    "sum by (job) (rate(requests_total[2m]))",
    "sum without (instance) (requests_total)",
    "avg by (job) (queue_depth)",
    "count(queue_depth > 3)",
    "topk(2, queue_depth)",
    "bottomk by (job) (1, rate(requests_total[1m]))",
    "max_over_time(queue_depth[45s])",
    "avg_over_time(sum by (job) (queue_depth)[2m:30s])",
    "histogram_quantile(0.9, sum by (le) (rate(latency_bucket[2m])))",
    "sum by (job) (rate(requests_total[1m])) / on (job) sum by (job) (queue_depth)",
    "queue_depth * on (job, instance) group_left requests_total",
    "last_over_time(queue_depth[1m]) - queue_depth",
    "-queue_depth + 1",
];

/// One generated series: a name, a job, an instance, and `(gap, value)` steps.
#[derive(Debug, Clone)]
struct SeriesSpec {
    metric: usize,
    job: usize,
    instance: usize,
    steps: Vec<(i64, u8)>,
}

fn series_spec() -> impl Strategy<Value = SeriesSpec> {
    (0usize..2, 0usize..2, 0usize..3, prop::collection::vec((1i64..45, any::<u8>()), 1..40))
        .prop_map(|(metric, job, instance, steps)| SeriesSpec { metric, job, instance, steps })
}

fn build_store(specs: &[SeriesSpec]) -> MemStore {
    let store = MemStore::new();
    let mut seen = std::collections::BTreeSet::new();
    for spec in specs {
        // Specs sharing a label set would append out of order: keep the first.
        if !seen.insert((spec.metric, spec.job, spec.instance)) {
            continue;
        }
        let job = ["a", "b"][spec.job];
        let instance = spec.instance.to_string();
        let names: Vec<Labels> = if spec.metric == 0 {
            vec![Labels::from_pairs([("__name__", "requests_total"), ("job", job), ("instance", &instance)])]
        } else {
            vec![
                Labels::from_pairs([("__name__", "queue_depth"), ("job", job), ("instance", &instance)]),
                Labels::from_pairs([
                    ("__name__", "latency_bucket"),
                    ("job", job),
                    ("instance", &instance),
                    ("le", "1"),
                ]),
                Labels::from_pairs([
                    ("__name__", "latency_bucket"),
                    ("job", job),
                    ("instance", &instance),
                    ("le", "+Inf"),
                ]),
            ]
        };
        let mut timestamp = 0i64;
        let mut total = 0.0;
        for &(gap_seconds, raw) in &spec.steps {
            timestamp += gap_seconds * 1000;
            // A rare counter reset, a rare staleness marker, small increments otherwise.
            total = if raw == 0 { 0.0 } else { total + f64::from(raw % 7) };
            let value = if raw == 255 { tsdb::STALE_NAN } else { total };
            for (index, labels) in names.iter().enumerate() {
                let scaled = if value.is_nan() { value } else { value * (index + 1) as f64 };
                store.append(labels, timestamp, scaled).expect("generated samples are in order");
            }
        }
    }
    store
}

/// Step timestamp -> label set -> value bits (NaNs compared by bits).
fn by_step_from_range(value: Value) -> BTreeMap<i64, BTreeMap<Labels, u64>> {
    let mut steps: BTreeMap<i64, BTreeMap<Labels, u64>> = BTreeMap::new();
    let Value::Matrix(series) = value else { panic!("a range query returns a matrix") };
    for series in series {
        for sample in series.samples {
            steps.entry(sample.timestamp).or_default().insert(series.labels.clone(), sample.value.to_bits());
        }
    }
    steps
}

fn instant_values(value: Value) -> BTreeMap<Labels, u64> {
    match value {
        Value::Vector(elements) => {
            elements.into_iter().map(|(labels, sample)| (labels, sample.value.to_bits())).collect()
        }
        Value::Scalar(_, value) => BTreeMap::from([(Labels::empty(), value.to_bits())]),
        other => panic!("an instant query of an instant vector returns a vector, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn range_query_equals_instant_queries_at_each_step(
        specs in prop::collection::vec(series_spec(), 1..8),
        start_seconds in 0i64..200,
        step_seconds in 1i64..90,
        step_count in 1i64..25,
    ) {
        let store = build_store(&specs);
        let engine = Engine::new(EngineOptions::default());
        let start = start_seconds * 1000;
        let step = step_seconds * 1000;
        let end = start + step * (step_count - 1);
        for query in QUERIES {
            let range = engine.range_query(&store, query, start, end, step);
            let mut expected: BTreeMap<i64, BTreeMap<Labels, u64>> = BTreeMap::new();
            let mut instant_error = None;
            for index in 0..step_count {
                let time = start + index * step;
                match engine.instant_query(&store, query, time) {
                    Ok(result) => {
                        let values = instant_values(result.value);
                        if !values.is_empty() {
                            expected.insert(time, values);
                        }
                    }
                    Err(error) => instant_error = Some(error),
                }
            }
            match (range, instant_error) {
                (Ok(result), None) => {
                    prop_assert_eq!(by_step_from_range(result.value), expected, "query {}", query);
                }
                (Err(_), Some(_)) => {}
                (range, instant_error) => {
                    prop_assert!(false, "query {query}: range {range:?}, instant error {instant_error:?}");
                }
            }
        }
    }
}
