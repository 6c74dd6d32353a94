//! Integration tests of the metrics store: the indexed, compressed [`MemStore`]
//! against a plain reference model on random data, plus retention, batching and
//! concurrent use.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread;

use proptest::prelude::*;
use tsdb::{
    CHUNK_MAX_SAMPLES, Error, Labels, MatchOp, Matcher, MemStore, Queryable, STALE_NAN, STALE_NAN_BITS, Sample,
    SeriesData, is_stale_nan,
};

/// The obvious implementation: every series' samples in a vector, matchers
/// evaluated by scanning every series.
#[derive(Default)]
struct ReferenceStore {
    series: BTreeMap<Labels, Vec<Sample>>,
}

/// The outcome of an append, comparable across stores.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Stored,
    OutOfOrder,
    Duplicate,
}

fn outcome(result: Result<(), Error>) -> Outcome {
    match result {
        Ok(()) => Outcome::Stored,
        Err(Error::OutOfOrder { .. }) => Outcome::OutOfOrder,
        Err(Error::DuplicateTimestamp { .. }) => Outcome::Duplicate,
        Err(other) => panic!("unexpected error {other}"),
    }
}

impl ReferenceStore {
    fn append(&mut self, labels: &Labels, timestamp: i64, value: f64) -> Outcome {
        let samples = self.series.entry(labels.clone()).or_default();
        if let Some(last) = samples.last() {
            if timestamp < last.timestamp {
                return Outcome::OutOfOrder;
            }
            if timestamp == last.timestamp {
                return if last.value.to_bits() == value.to_bits() { Outcome::Stored } else { Outcome::Duplicate };
            }
        }
        samples.push(Sample { timestamp, value });
        Outcome::Stored
    }

    fn matching(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<(Labels, Vec<Sample>)> {
        self.series
            .iter()
            .filter(|(labels, _)| matchers.iter().all(|matcher| matcher.matches_labels(labels)))
            .map(|(labels, samples)| {
                let in_range = samples
                    .iter()
                    .filter(|sample| (start..=end).contains(&sample.timestamp))
                    .copied()
                    .collect::<Vec<_>>();
                (labels.clone(), in_range)
            })
            .filter(|(_, samples)| !samples.is_empty())
            .collect()
    }

    fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<SeriesData> {
        self.matching(matchers, start, end)
            .into_iter()
            .map(|(labels, samples)| SeriesData { labels, samples, histograms: Vec::new() })
            .collect()
    }

    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<String> {
        let mut names: Vec<String> = self
            .matching(matchers, start, end)
            .iter()
            .flat_map(|(labels, _)| labels.iter().map(|label| label.name.clone()).collect::<Vec<_>>())
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn label_values(&self, name: &str, matchers: &[Matcher], start: i64, end: i64) -> Vec<String> {
        let mut values: Vec<String> = self
            .matching(matchers, start, end)
            .iter()
            .filter_map(|(labels, _)| labels.get(name).map(str::to_owned))
            .collect();
        values.sort();
        values.dedup();
        values
    }
}

/// Samples compared by bit pattern, so NaNs compare equal to themselves.
fn bit_exact(series: &[SeriesData]) -> Vec<(Labels, Vec<(i64, u64)>)> {
    series
        .iter()
        .map(|data| {
            let samples = data.samples.iter().map(|sample| (sample.timestamp, sample.value.to_bits())).collect();
            (data.labels.clone(), samples)
        })
        .collect()
}

const LABEL_NAMES: [&str; 4] = ["__name__", "job", "env", "instance"];
const LABEL_VALUES: [&str; 6] = ["", "a", "b", "ab", "api", "x\ny"];
const PATTERNS: [&str; 12] = ["", "a", "b", "a|b", "a|api|", ".*", ".+", "a.*", "(?i)A", "[ab]+", "x.y", "nope"];

fn label_set() -> impl Strategy<Value = Labels> {
    prop::collection::vec(0..LABEL_VALUES.len(), LABEL_NAMES.len()).prop_map(|value_indexes| {
        Labels::from_pairs(
            LABEL_NAMES.iter().zip(value_indexes).map(|(name, value_index)| (*name, LABEL_VALUES[value_index])),
        )
    })
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![(0u32..50).prop_map(f64::from), any::<f64>(), Just(STALE_NAN), any::<u64>().prop_map(f64::from_bits),]
}

/// A timestamp step: mostly forward (including gaps that force a time-bound
/// chunk cut), sometimes zero or backwards to exercise the error paths.
fn step() -> impl Strategy<Value = i64> {
    prop_oneof![
        20 => 1i64..20_000,
        2 => Just(3 * 60 * 60 * 1000i64),
        1 => Just(0i64),
        1 => -5_000i64..0,
    ]
}

fn matcher() -> impl Strategy<Value = Matcher> {
    let op = prop_oneof![Just(MatchOp::Equal), Just(MatchOp::NotEqual), Just(MatchOp::Regex), Just(MatchOp::NotRegex)];
    let name = prop_oneof![Just("absent"), (0..LABEL_NAMES.len()).prop_map(|index| LABEL_NAMES[index])];
    let pattern = prop_oneof![
        (0..PATTERNS.len()).prop_map(|index| PATTERNS[index]),
        (0..LABEL_VALUES.len()).prop_map(|index| LABEL_VALUES[index]),
    ];
    (op, name, pattern).prop_map(|(op, name, pattern)| Matcher::new(op, name, pattern).expect("valid pattern"))
}

/// A workload: for each series, a run of timestamp steps and values.
fn workload() -> impl Strategy<Value = Vec<(Labels, Vec<(i64, f64)>)>> {
    prop::collection::vec((label_set(), prop::collection::vec((step(), value()), 1..300)), 1..12)
}

/// Loads the workload into both stores, interleaving series round-robin, and
/// checks that every append has the same outcome.
fn load(workload: &[(Labels, Vec<(i64, f64)>)], batched: bool) -> (MemStore, ReferenceStore) {
    let store = MemStore::new();
    let mut reference = ReferenceStore::default();
    let mut clocks = vec![1_700_000_000_000i64; workload.len()];
    let longest = workload.iter().map(|(_, steps)| steps.len()).max().unwrap_or(0);
    for position in 0..longest {
        let mut batch = Vec::new();
        for (series_index, (labels, steps)) in workload.iter().enumerate() {
            let Some(&(step, value)) = steps.get(position) else {
                continue;
            };
            clocks[series_index] += step;
            let timestamp = clocks[series_index];
            let expected = reference.append(labels, timestamp, value);
            if batched {
                batch.push((labels.clone(), Sample { timestamp, value }));
            } else {
                assert_eq!(outcome(store.append(labels, timestamp, value)), expected);
            }
        }
        if batched {
            // A batch reports only its first error; check it is one when the model saw one.
            let _ = store.append_batch(&batch);
        }
    }
    (store, reference)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn queries_match_the_reference_model(
        workload in workload(),
        queries in prop::collection::vec(
            (prop::collection::vec(matcher(), 0..4), any::<u16>(), any::<u16>(), any::<bool>()),
            1..12,
        ),
        batched in any::<bool>(),
    ) {
        let (store, reference) = load(&workload, batched);
        prop_assert_eq!(store.series_count(), reference.series.len());
        let total: usize = reference.series.values().map(Vec::len).sum();
        prop_assert_eq!(store.sample_count(), total);
        let base = 1_700_000_000_000i64;
        let mut stored_timestamps: Vec<i64> =
            reference.series.values().flatten().map(|sample| sample.timestamp).collect();
        stored_timestamps.sort_unstable();
        for (matchers, from, length, on_samples) in queries {
            let (start, end) = if on_samples {
                // Bounds exactly on stored timestamps, to check both ends are inclusive.
                let first = stored_timestamps[usize::from(from) % stored_timestamps.len()];
                let second = stored_timestamps[usize::from(length) % stored_timestamps.len()];
                (first.min(second), first.max(second))
            } else {
                // Ranges from a few seconds to the whole loaded span.
                let start = base + i64::from(from) * 60_000;
                (start, start + i64::from(length) * 20_000)
            };
            let selected = store.select(&matchers, start, end).expect("select");
            let expected = reference.select(&matchers, start, end);
            prop_assert_eq!(bit_exact(&selected), bit_exact(&expected), "matchers {:?}", matchers);
            let everything = store.select(&matchers, i64::MIN, i64::MAX).expect("select");
            prop_assert_eq!(bit_exact(&everything), bit_exact(&reference.select(&matchers, i64::MIN, i64::MAX)));
            prop_assert_eq!(
                store.series(&matchers, start, end).expect("series"),
                expected.iter().map(|data| data.labels.clone()).collect::<Vec<_>>()
            );
            prop_assert_eq!(
                store.label_names(&matchers, start, end).expect("label names"),
                reference.label_names(&matchers, start, end)
            );
            for name in ["job", "instance", "absent"] {
                prop_assert_eq!(
                    store.label_values(name, &matchers, start, end).expect("label values"),
                    reference.label_values(name, &matchers, start, end)
                );
            }
        }
    }

    #[test]
    fn retention_keeps_every_sample_at_or_after_the_cut(
        workload in workload(),
        cut_offset in 0i64..4_000_000,
    ) {
        let (store, reference) = load(&workload, false);
        let cut = 1_700_000_000_000i64 + cut_offset;
        let before = store.sample_count();
        let truncation = store.truncate_before(cut);
        prop_assert_eq!(store.sample_count() + truncation.samples_removed, before);
        let remaining = store.select(&[], i64::MIN, i64::MAX).expect("select");
        let remaining_count: usize = remaining.iter().map(|data| data.samples.len()).sum();
        prop_assert_eq!(remaining_count, store.sample_count());
        prop_assert_eq!(remaining.len(), store.series_count());
        // Samples at or after the cut all survive, bit for bit.
        prop_assert_eq!(bit_exact(&store.select(&[], cut, i64::MAX).expect("select")), bit_exact(&reference.select(&[], cut, i64::MAX)));
        // What survives is a suffix of each series.
        for data in &remaining {
            let full = &reference.series[&data.labels];
            let suffix = &full[full.len() - data.samples.len()..];
            prop_assert_eq!(bit_exact(std::slice::from_ref(data)), bit_exact(&[SeriesData { labels: data.labels.clone(), samples: suffix.to_vec(), histograms: Vec::new() }]));
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

#[test]
fn staleness_markers_survive_storage_bit_exactly() {
    let store = MemStore::new();
    let series = labels(&[("__name__", "up"), ("job", "api")]);
    let other_nan = f64::from_bits(0x7ff8_0000_0000_0001);
    for (timestamp, value) in [(1000, 1.0), (2000, STALE_NAN), (3000, other_nan), (4000, STALE_NAN)] {
        store.append(&series, timestamp, value).expect("append");
    }
    let selected = store.select(&[Matcher::equal("job", "api")], 0, 10_000).expect("select");
    let values: Vec<f64> = selected[0].samples.iter().map(|sample| sample.value).collect();
    assert!(!is_stale_nan(values[0]));
    assert_eq!(values[1].to_bits(), STALE_NAN_BITS);
    assert!(values[2].is_nan() && !is_stale_nan(values[2]));
    assert_eq!(values[2].to_bits(), other_nan.to_bits());
    assert!(is_stale_nan(values[3]));
}

#[test]
fn duplicate_and_out_of_order_samples_are_reported() {
    let store = MemStore::new();
    let series = labels(&[("__name__", "up")]);
    store.append(&series, 1000, 1.0).expect("append");
    store.append(&series, 1000, 1.0).expect("same sample again is accepted");
    assert!(matches!(store.append(&series, 1000, 2.0), Err(Error::DuplicateTimestamp { timestamp: 1000, .. })));
    assert!(matches!(store.append(&series, 999, 1.0), Err(Error::OutOfOrder { last: 1000, got: 999, .. })));
    assert_eq!(store.sample_count(), 1);
    // Across a chunk boundary the last sample is still known.
    for index in 1..=CHUNK_MAX_SAMPLES as i64 {
        store.append(&series, 1000 + index, 0.0).expect("append");
    }
    let last = 1000 + CHUNK_MAX_SAMPLES as i64;
    assert!(matches!(store.append(&series, last - 1, 0.0), Err(Error::OutOfOrder { .. })));
    store.append(&series, last, 0.0).expect("duplicate after a cut is accepted");
    store.append(&series, last + 1, 0.0).expect("append into a new chunk");
    assert_eq!(store.sample_count(), CHUNK_MAX_SAMPLES + 2);
}

/// Regression: once a checkpoint had sealed the head, the next append was
/// checked against nothing, so an older sample was taken (and a restart,
/// reading the block's chunks, then lost the overlap).
#[test]
fn after_a_checkpoint_cut_older_and_conflicting_samples_are_still_refused() {
    let store = MemStore::new();
    let series = labels(&[("__name__", "up")]);
    store.append(&series, 1000, 1.0).expect("append");
    store.append(&series, 2000, 2.0).expect("append");
    store.cut_for_checkpoint();
    assert!(matches!(store.append(&series, 1500, 1.0), Err(Error::OutOfOrder { last: 2000, got: 1500, .. })));
    assert!(matches!(store.append(&series, 2000, 3.0), Err(Error::DuplicateTimestamp { timestamp: 2000, .. })));
    store.append(&series, 2000, 2.0).expect("the same sample again is accepted");
    store.append(&series, 3000, 3.0).expect("append");
    assert_eq!(store.sample_count(), 3);
}

#[test]
fn batch_append_reports_the_first_error_and_keeps_the_rest() {
    let store = MemStore::new();
    let first = labels(&[("__name__", "a")]);
    let second = labels(&[("__name__", "b")]);
    let sample = |timestamp, value| Sample { timestamp, value };
    let batch = vec![
        (first.clone(), sample(10, 1.0)),
        (first.clone(), sample(5, 1.0)),
        (second.clone(), sample(10, 2.0)),
        (first.clone(), sample(20, 3.0)),
        (second.clone(), sample(10, 9.0)),
    ];
    let error = store.append_batch(&batch).expect_err("one sample is out of order");
    assert!(matches!(error, Error::OutOfOrder { last: 10, got: 5, .. }));
    assert_eq!(store.sample_count(), 3);
    assert_eq!(store.series_count(), 2);
}

#[test]
fn series_handles_survive_retention() {
    let store = MemStore::new();
    let handle = store.get_or_create_series(&labels(&[("__name__", "temp"), ("room", "kitchen")]));
    store.append_ref(&handle, 1000, 20.0).expect("append");
    let truncation = store.truncate_before(5000);
    assert_eq!(truncation.series_removed, 1);
    assert_eq!(truncation.samples_removed, 1);
    assert_eq!(store.series_count(), 0);
    assert!(store.label_values("room", &[], i64::MIN, i64::MAX).expect("values").is_empty());
    assert!(store.select(&[Matcher::equal("room", "kitchen")], i64::MIN, i64::MAX).expect("select").is_empty());
    // The old handle re-creates the series on its next append.
    store.append_ref(&handle, 6000, 21.0).expect("append after removal");
    assert_eq!(store.series_count(), 1);
    let selected = store.select(&[Matcher::equal("room", "kitchen")], i64::MIN, i64::MAX).expect("select");
    assert_eq!(selected[0].samples, vec![Sample { timestamp: 6000, value: 21.0 }]);
    // A handle of another store writes into this store's own series.
    let other = MemStore::new();
    let foreign = other.get_or_create_series(handle.labels());
    store.append_ref(&foreign, 7000, 22.0).expect("append through a foreign handle");
    assert_eq!(other.sample_count(), 0);
    assert_eq!(store.sample_count(), 2);
}

#[test]
fn retention_drops_whole_chunks_only() {
    let store = MemStore::new();
    let series = labels(&[("__name__", "up")]);
    for index in 0..(3 * CHUNK_MAX_SAMPLES as i64) {
        store.append(&series, index * 1000, index as f64).expect("append");
    }
    // Cut in the middle of the second chunk: only the first chunk goes.
    let cut = (CHUNK_MAX_SAMPLES as i64 + 10) * 1000;
    let truncation = store.truncate_before(cut);
    assert_eq!(truncation.samples_removed, CHUNK_MAX_SAMPLES);
    assert_eq!(truncation.series_removed, 0);
    let selected = store.select(&[], i64::MIN, i64::MAX).expect("select");
    assert_eq!(selected[0].samples[0].timestamp, CHUNK_MAX_SAMPLES as i64 * 1000);
    assert_eq!(store.sample_count(), 2 * CHUNK_MAX_SAMPLES);
}

/// Selections answer series sorted by label set whether the store has ranked
/// them (after the first large selection), some are new since, or some were
/// dropped by retention and their ids reused.
#[test]
fn selections_stay_sorted_by_labels_across_rankings_new_series_and_removals() {
    let store = MemStore::new();
    let series = |index: usize| {
        labels(&[
            ("__name__", ["b_total", "a_total", "c_total"][index % 3]),
            ("instance", &format!("host-{}", (index * 7919) % 5003)),
            ("zone", ["eu", "us"][index % 2]),
        ])
    };
    let append = |from: usize, to: usize, timestamp: i64| {
        let batch: Vec<_> = (from..to).map(|index| (series(index), Sample { timestamp, value: 1.0 })).collect();
        store.append_batch(&batch).expect("append");
    };
    let check = |what: &str| {
        for matchers in
            [vec![Matcher::equal("zone", "eu")], vec![Matcher::new(MatchOp::Regex, "__name__", ".+").expect("valid")]]
        {
            let selected = store.select(&matchers, 0, i64::MAX).expect("select");
            let labels: Vec<Labels> = selected.iter().map(|series| series.labels.clone()).collect();
            let mut sorted = labels.clone();
            sorted.sort();
            assert_eq!(labels, sorted, "{what}: {matchers:?}");
            let names = store.series(&matchers, 0, i64::MAX).expect("series");
            let mut sorted_names = names.clone();
            sorted_names.sort();
            assert_eq!(names, sorted_names, "{what}: series {matchers:?}");
        }
    };
    append(0, 3000, 1000);
    check("none ranked");
    check("all ranked");
    append(3000, 3100, 2000);
    check("a few new ones, merged");
    append(3100, 4500, 3000);
    check("many new ones, ranked again after");
    check("after the second ranking");
    // Series with samples only at 1000 go; new ones reuse their ids.
    store.truncate_before(1500);
    append(4500, 5000, 4000);
    check("after removals and reused ids");
    assert_eq!(store.select(&[Matcher::equal("zone", "eu")], 0, i64::MAX).expect("select").len(), 1000);
}

#[test]
fn selection_over_many_series_uses_the_index_correctly() {
    let store = MemStore::new();
    let mut batch = Vec::new();
    for instance in 0..20_000 {
        let series = labels(&[
            ("__name__", if instance % 10 == 0 { "errors_total" } else { "requests_total" }),
            ("instance", &format!("host-{instance}")),
            ("zone", ["eu", "us", "ap"][instance % 3]),
        ]);
        batch.push((series, Sample { timestamp: 1000, value: instance as f64 }));
    }
    store.append_batch(&batch).expect("load");
    assert_eq!(store.series_count(), 20_000);
    let count = |matchers: &[Matcher]| store.series(matchers, 0, 2000).expect("series").len();
    let regex = |op, name: &str, pattern: &str| Matcher::new(op, name, pattern).expect("valid");
    assert_eq!(count(&[Matcher::equal("__name__", "errors_total")]), 2000);
    assert_eq!(count(&[Matcher::equal("__name__", "errors_total"), Matcher::equal("zone", "eu")]), 667);
    assert_eq!(count(&[regex(MatchOp::Regex, "instance", "host-1|host-2|host-30")]), 3);
    assert_eq!(count(&[regex(MatchOp::Regex, "instance", "host-1.*")]), 11_111);
    assert_eq!(
        count(&[Matcher::equal("__name__", "errors_total"), regex(MatchOp::Regex, "instance", "host-1.*")]),
        1111
    );
    assert_eq!(count(&[regex(MatchOp::NotRegex, "zone", "eu|us")]), 6666);
    assert_eq!(
        count(&[regex(MatchOp::Regex, "zone", ".+"), regex(MatchOp::NotEqual, "__name__", "requests_total")]),
        2000
    );
    assert_eq!(count(&[regex(MatchOp::Regex, "pod", "")]), 20_000);
    assert_eq!(count(&[regex(MatchOp::Regex, "pod", ".+")]), 0);
    assert!(store.memory_bytes() > 20_000 * 100);
}

#[test]
fn concurrent_appends_and_queries_see_consistent_data() {
    let store = Arc::new(MemStore::new());
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                let handles: Vec<_> = (0..50)
                    .map(|series| {
                        store.get_or_create_series(&labels(&[
                            ("__name__", "load"),
                            ("writer", &writer.to_string()),
                            ("series", &series.to_string()),
                        ]))
                    })
                    .collect();
                for step in 0..300i64 {
                    for handle in &handles {
                        store.append_ref(handle, step * 1000, step as f64).expect("append");
                    }
                }
            })
        })
        .collect();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                for _ in 0..50 {
                    let selected = store.select(&[Matcher::equal("__name__", "load")], 0, i64::MAX).expect("select");
                    for data in selected {
                        // Each series is a gap-free prefix 0, 1000, 2000, ...
                        for (index, sample) in data.samples.iter().enumerate() {
                            assert_eq!(sample.timestamp, index as i64 * 1000);
                            assert_eq!(sample.value, index as f64);
                        }
                    }
                }
            })
        })
        .collect();
    for handle in writers.into_iter().chain(readers) {
        handle.join().expect("thread finished");
    }
    assert_eq!(store.series_count(), 200);
    assert_eq!(store.sample_count(), 200 * 300);
    let selected = store.select(&[Matcher::equal("writer", "2")], 0, i64::MAX).expect("select");
    assert_eq!(selected.len(), 50);
    assert!(selected.iter().all(|data| data.samples.len() == 300));
}

#[test]
fn head_stats_count_series_chunks_and_cardinality() {
    let store = MemStore::new();
    for (name, job, instance) in
        [("up", "api", "a"), ("up", "api", "b"), ("up", "db", "c"), ("http_requests_total", "api", "a")]
    {
        let labels = Labels::from_pairs([("__name__", name), ("job", job), ("instance", instance)]);
        store.append(&labels, 1_000, 1.0).expect("append");
        store.append(&labels, 9_000, 1.0).expect("append");
    }
    let stats = store.head_stats(2);
    assert_eq!((stats.series, stats.chunks), (4, 4));
    assert_eq!((stats.min_time, stats.max_time), (Some(1_000), Some(9_000)));
    assert_eq!(stats.series_count_by_metric_name, [("up".to_owned(), 3), ("http_requests_total".to_owned(), 1)]);
    assert_eq!(stats.label_value_count_by_label_name, [("instance".to_owned(), 3), ("__name__".to_owned(), 2)]);
    // Bytes of values, once per series: __name__ is "up" x3 + "http_requests_total" x1.
    assert_eq!(stats.memory_in_bytes_by_label_name[0], ("__name__".to_owned(), 2 * 3 + 19));
    assert_eq!(stats.series_count_by_label_value_pair, [("__name__=up".to_owned(), 3), ("job=api".to_owned(), 3)]);
    assert_eq!(MemStore::new().head_stats(10), tsdb::HeadStats::default());
}
