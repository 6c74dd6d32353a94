//! Runs parsed promqltest commands against the engine and judges each `eval`.
//!
//! A fresh [`MemStore`] backs each `load`/`clear` block, native histograms
//! included; `load_with_nhcb` also loads each classic histogram as a native
//! histogram with custom buckets. Expected histograms are compared after
//! compaction with promqltest's tolerance. Evals needing unsupported
//! features are skipped with the reason.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use regex::Regex;
use tsdb::{Labels, MemStore};

use super::script::{Command, EvalCommand, EvalKind, Expectations, MessageMatch, SequenceValue, parse_script};
use super::{CaseFailure, CaseSkip, FileReport};
use crate::histogram::almost_equal;
use crate::{Annotation, Engine, EngineOptions, Error, QueryResult, Value};

const EPSILON: f64 = 0.000_001;

/// Runs a script with explicit engine options.
pub fn run_script_with_options(name: &str, text: &str, options: &EngineOptions) -> FileReport {
    let engine = Engine::new(options.clone());
    let mut report = FileReport { file: name.to_owned(), ..FileReport::default() };
    let mut store = MemStore::new();
    for command in parse_script(text) {
        match command {
            Command::Clear => {
                store = MemStore::new();
            }
            Command::Invalid { line, text, reason } => report.failures.push(CaseFailure {
                file: name.to_owned(),
                line,
                query: text,
                expected: "a valid test script line".to_owned(),
                got: reason,
            }),
            Command::Load { line, interval, series, with_nhcb } => {
                // Later lines for the same series and timestamp overwrite earlier ones.
                let mut merged: BTreeMap<Labels, BTreeMap<i64, SequenceValue>> = BTreeMap::new();
                for series_line in series {
                    let samples = merged.entry(series_line.labels.clone()).or_default();
                    for (index, value) in series_line.values.iter().enumerate() {
                        if !matches!(value, SequenceValue::Omitted) {
                            samples.insert(index as i64 * interval, value.clone());
                        }
                    }
                }
                let converted = if with_nhcb { classic_to_native(&merged) } else { Vec::new() };
                let converted = converted.into_iter().map(|(labels, histograms)| {
                    let samples: BTreeMap<i64, SequenceValue> = histograms
                        .into_iter()
                        .map(|(timestamp, histogram)| (timestamp, SequenceValue::Histogram(Arc::new(histogram))))
                        .collect();
                    (labels, samples)
                });
                let converted: Vec<_> = converted.collect();
                for (labels, samples) in merged.into_iter().chain(converted) {
                    for (timestamp, value) in samples {
                        let appended = match value {
                            SequenceValue::Value(value) => store.append(&labels, timestamp, value),
                            SequenceValue::Histogram(histogram) => {
                                store.append_histogram(&labels, timestamp, (*histogram).clone())
                            }
                            SequenceValue::Omitted => Ok(()),
                        };
                        if let Err(error) = appended {
                            report.failures.push(CaseFailure {
                                file: name.to_owned(),
                                line,
                                query: format!("load {labels}"),
                                expected: "samples to load".to_owned(),
                                got: error.to_string(),
                            });
                            break;
                        }
                    }
                }
            }
            Command::Eval(command) => {
                let skip = |reason: String| CaseSkip {
                    file: name.to_owned(),
                    line: command.line,
                    query: command.query.clone(),
                    reason,
                };
                if let Some(reason) = &command.unsupported {
                    report.skips.push(skip(reason.clone()));
                    continue;
                }
                match run_eval(&engine, &store, &command) {
                    Outcome::Pass => report.passed += 1,
                    Outcome::Skip(reason) => report.skips.push(skip(reason)),
                    Outcome::Fail { expected, got } => report.failures.push(CaseFailure {
                        file: name.to_owned(),
                        line: command.line,
                        query: command.query.clone(),
                        expected,
                        got,
                    }),
                }
            }
        }
    }
    report
}

/// `load_with_nhcb`: the classic histograms among `series` (`_bucket` series
/// with an `le` label, with their `_count` and `_sum`) as native histograms
/// with custom buckets, per timestamp at which every bucket has a value (the
/// `+Inf` bucket is optional; without `_count`, the count is the last bucket's).
fn classic_to_native(
    series: &BTreeMap<Labels, BTreeMap<i64, SequenceValue>>,
) -> Vec<(Labels, BTreeMap<i64, tsdb::FloatHistogram>)> {
    type Samples = BTreeMap<i64, SequenceValue>;
    #[derive(Default)]
    struct Classic<'a> {
        buckets: Vec<(f64, &'a Samples)>,
        count: Option<&'a Samples>,
        sum: Option<&'a Samples>,
    }
    let mut classics: BTreeMap<Labels, Classic<'_>> = BTreeMap::new();
    for (labels, samples) in series {
        let Some(name) = labels.metric_name() else { continue };
        if name.ends_with("_bucket") {
            let Some(bound) = labels.get("le").and_then(crate::histogram::parse_go_float) else { continue };
            classics.entry(nhcb_labels(labels)).or_default().buckets.push((bound, samples));
        } else if name.ends_with("_count") {
            classics.entry(nhcb_labels(labels)).or_default().count = Some(samples);
        } else if name.ends_with("_sum") {
            classics.entry(nhcb_labels(labels)).or_default().sum = Some(samples);
        }
    }
    let float_at = |samples: &Samples, timestamp: i64| match samples.get(&timestamp) {
        Some(SequenceValue::Value(value)) if !tsdb::is_stale_nan(*value) => Some(*value),
        _ => None,
    };
    let mut output = Vec::new();
    for (labels, mut classic) in classics {
        classic.buckets.sort_by(|left, right| left.0.total_cmp(&right.0));
        classic.buckets.dedup_by(|later, earlier| later.0 == earlier.0);
        if classic.buckets.is_empty() {
            continue;
        }
        let timestamps: std::collections::BTreeSet<i64> =
            classic.buckets.iter().flat_map(|(_, samples)| samples.keys().copied()).collect();
        let mut histograms = BTreeMap::new();
        'timestamps: for timestamp in timestamps {
            let mut counts = Vec::with_capacity(classic.buckets.len());
            let mut previous = 0.0;
            for (_, samples) in &classic.buckets {
                let Some(cumulative) = float_at(samples, timestamp) else { continue 'timestamps };
                counts.push(cumulative - previous);
                previous = cumulative;
            }
            let custom_values: Vec<f64> =
                classic.buckets.iter().map(|(bound, _)| *bound).filter(|bound| bound.is_finite()).collect();
            let histogram = tsdb::FloatHistogram {
                schema: tsdb::histogram::CUSTOM_BUCKETS_SCHEMA,
                count: classic.count.and_then(|samples| float_at(samples, timestamp)).unwrap_or(previous),
                sum: classic.sum.and_then(|samples| float_at(samples, timestamp)).unwrap_or(0.0),
                positive_spans: vec![tsdb::histogram::Span { offset: 0, length: counts.len() as u32 }],
                positive_buckets: counts,
                custom_values,
                ..tsdb::FloatHistogram::default()
            };
            histograms.insert(timestamp, histogram);
        }
        output.push((labels, histograms));
    }
    output
}

/// The label set a classic histogram series would get as a native histogram with custom buckets.
fn nhcb_labels(labels: &Labels) -> Labels {
    let mut builder = labels.to_builder();
    builder.delete("le");
    if let Some(name) = labels.metric_name() {
        let base = ["_bucket", "_count", "_sum"].iter().find_map(|suffix| name.strip_suffix(suffix)).unwrap_or(name);
        builder.set(tsdb::METRIC_NAME, base.to_owned());
    }
    builder.build()
}

enum Outcome {
    Pass,
    Skip(String),
    Fail { expected: String, got: String },
}

fn fail(expected: impl Into<String>, got: impl Into<String>) -> Outcome {
    Outcome::Fail { expected: expected.into(), got: got.into() }
}

fn message_matches(matcher: &MessageMatch, message: &str) -> bool {
    match matcher {
        MessageMatch::Any => true,
        MessageMatch::Exact(expected) => expected == message,
        MessageMatch::Pattern(pattern) => Regex::new(pattern).is_ok_and(|regex| regex.is_match(message)),
    }
}

fn describe_match(matcher: &MessageMatch) -> String {
    match matcher {
        MessageMatch::Any => "any message".to_owned(),
        MessageMatch::Exact(message) => format!("message {message:?}"),
        MessageMatch::Pattern(pattern) => format!("message matching /{pattern}/"),
    }
}

fn run_eval(engine: &Engine, store: &MemStore, command: &EvalCommand) -> Outcome {
    let result = match command.kind {
        EvalKind::Instant { time } => engine.instant_query(store, &command.query, time),
        EvalKind::Range { start, end, step } => engine.range_query(store, &command.query, start, end, step),
    };
    let expectations = &command.expectations;
    let result = match result {
        Err(Error::Unsupported(feature)) => return Outcome::Skip(format!("unsupported: {feature}")),
        Err(error) => {
            if expectations.fail.is_empty() {
                return fail("a successful evaluation", format!("error: {error}"));
            }
            let message = error.to_string();
            for matcher in &expectations.fail {
                if !message_matches(matcher, &message) {
                    return fail(format!("error with {}", describe_match(matcher)), format!("error: {message}"));
                }
            }
            return Outcome::Pass;
        }
        Ok(result) => result,
    };
    if !expectations.fail.is_empty() {
        return fail("an error", format!("success: {}", render_value(&result.value)));
    }
    if let Some(outcome) = check_annotations(expectations, &result) {
        return outcome;
    }
    check_value(command, &result.value)
}

fn check_annotation_kind(
    kind: &str,
    expected: &[MessageMatch],
    forbidden: bool,
    got: &[Annotation],
) -> Option<Outcome> {
    let rendered: Vec<String> = got.iter().map(ToString::to_string).collect();
    if forbidden && !rendered.is_empty() {
        return Some(fail(format!("no {kind} annotations"), rendered.join("; ")));
    }
    if expected.is_empty() {
        return None;
    }
    for matcher in expected {
        if !rendered.iter().any(|message| message_matches(matcher, message)) {
            return Some(fail(
                format!("a {kind} annotation with {}", describe_match(matcher)),
                if rendered.is_empty() { format!("no {kind} annotations") } else { rendered.join("; ") },
            ));
        }
    }
    for message in &rendered {
        if !expected.iter().any(|matcher| message_matches(matcher, message)) {
            return Some(fail(format!("only expected {kind} annotations"), format!("unexpected {message:?}")));
        }
    }
    None
}

fn check_annotations(expectations: &Expectations, result: &QueryResult) -> Option<Outcome> {
    check_annotation_kind("warn", &expectations.warn, expectations.no_warn, &result.warnings)
        .or_else(|| check_annotation_kind("info", &expectations.info, expectations.no_info, &result.infos))
}

fn render_value(value: &Value) -> String {
    match value {
        Value::Scalar(_, value) => format!("scalar {value}"),
        Value::String(value) => format!("string {value:?}"),
        Value::Vector(elements) => {
            let mut text = String::from("vector [");
            for (index, (labels, sample)) in elements.iter().enumerate() {
                if index > 0 {
                    text.push_str(", ");
                }
                match &sample.histogram {
                    Some(histogram) => {
                        let _ = write!(text, "{labels} {histogram}");
                    }
                    None => {
                        let _ = write!(text, "{labels} {}", sample.value);
                    }
                }
            }
            text.push(']');
            text
        }
        Value::Matrix(series) => {
            let mut text = String::from("matrix [");
            for (index, data) in series.iter().enumerate() {
                if index > 0 {
                    text.push_str(", ");
                }
                let points: Vec<String> = merged_points(data)
                    .iter()
                    .map(|(timestamp, value)| match value {
                        SequenceValue::Value(value) => format!("{value}@{timestamp}"),
                        SequenceValue::Histogram(histogram) => format!("{histogram}@{timestamp}"),
                        SequenceValue::Omitted => format!("_@{timestamp}"),
                    })
                    .collect();
                let _ = write!(text, "{} [{}]", data.labels, points.join(" "));
            }
            text.push(']');
            text
        }
    }
}

fn render_expected(command: &EvalCommand) -> String {
    if let Some(value) = command.scalar {
        return format!("scalar {value}");
    }
    let series: Vec<String> = command
        .series
        .iter()
        .map(|line| {
            let values: Vec<String> = line
                .values
                .iter()
                .map(|value| match value {
                    SequenceValue::Value(value) => value.to_string(),
                    SequenceValue::Histogram(histogram) => histogram.to_string(),
                    SequenceValue::Omitted => "_".to_owned(),
                })
                .collect();
            format!("{} {}", line.labels, values.join(" "))
        })
        .collect();
    format!("[{}]", series.join(", "))
}

fn expected_points(values: &[SequenceValue], start: i64, step: i64) -> Vec<(i64, SequenceValue)> {
    values
        .iter()
        .enumerate()
        .filter(|(_, value)| !matches!(value, SequenceValue::Omitted))
        .map(|(index, value)| (start + index as i64 * step, value.clone()))
        .collect()
}

/// A series' float and histogram samples in timestamp order.
fn merged_points(data: &tsdb::SeriesData) -> Vec<(i64, SequenceValue)> {
    let mut points: Vec<(i64, SequenceValue)> = data
        .samples
        .iter()
        .map(|sample| (sample.timestamp, SequenceValue::Value(sample.value)))
        .chain(
            data.histograms.iter().map(|sample| (sample.timestamp, SequenceValue::Histogram(sample.histogram.clone()))),
        )
        .collect();
    points.sort_by_key(|(timestamp, _)| *timestamp);
    points
}

/// Whether a result value matches the expected one, with promqltest's tolerance.
fn values_match(expected: &SequenceValue, got: &SequenceValue) -> bool {
    match (expected, got) {
        (SequenceValue::Value(expected), SequenceValue::Value(got)) => almost_equal(*expected, *got, EPSILON),
        (SequenceValue::Histogram(expected), SequenceValue::Histogram(got)) => {
            // An expected gauge must come out a gauge; other hints are not compared.
            let gauge = tsdb::histogram::CounterResetHint::Gauge;
            (expected.counter_reset_hint != gauge || got.counter_reset_hint == gauge)
                && expected.equals_with(got, |left, right| almost_equal(left, right, EPSILON))
        }
        _ => false,
    }
}

fn check_matrix(command: &EvalCommand, series: &[tsdb::SeriesData], start: i64, step: i64) -> Outcome {
    let expected = render_expected(command);
    let got = || render_value(&Value::Matrix(series.to_vec()));
    if command.series.len() != series.len() {
        return fail(expected, got());
    }
    let by_labels: HashMap<&Labels, &tsdb::SeriesData> = series.iter().map(|data| (&data.labels, data)).collect();
    for line in &command.series {
        let Some(data) = by_labels.get(&line.labels) else {
            return fail(expected, got());
        };
        let points = expected_points(&line.values, start, step);
        let got_points = merged_points(data);
        if points.len() != got_points.len() {
            return fail(expected, got());
        }
        for ((timestamp, value), (got_timestamp, got_value)) in points.iter().zip(&got_points) {
            if timestamp != got_timestamp || !values_match(value, got_value) {
                return fail(expected, got());
            }
        }
    }
    Outcome::Pass
}

fn check_value(command: &EvalCommand, value: &Value) -> Outcome {
    let expectations = &command.expectations;
    if let Some(expected) = &expectations.string {
        return match value {
            Value::String(got) if got == expected => Outcome::Pass,
            other => fail(format!("string {expected:?}"), render_value(other)),
        };
    }
    match (value, &command.kind) {
        (Value::Scalar(_, got), _) => match command.scalar {
            Some(expected) if almost_equal(expected, *got, EPSILON) && command.series.is_empty() => Outcome::Pass,
            _ => fail(render_expected(command), render_value(value)),
        },
        (Value::String(_), _) => fail(render_expected(command), render_value(value)),
        (Value::Matrix(series), EvalKind::Range { start, step, .. }) => check_matrix(command, series, *start, *step),
        (Value::Matrix(series), EvalKind::Instant { .. }) => match expectations.range_vector {
            Some((start, _, step)) => check_matrix(command, series, start, step),
            None => fail(render_expected(command), format!("unexpected range vector {}", render_value(value))),
        },
        (Value::Vector(elements), _) => {
            let expected = render_expected(command);
            if command.scalar.is_some() || elements.len() != command.series.len() {
                return fail(expected, render_value(value));
            }
            let positions: HashMap<&Labels, usize> =
                elements.iter().enumerate().map(|(index, (labels, _))| (labels, index)).collect();
            for (expected_index, line) in command.series.iter().enumerate() {
                let Some(index) = positions.get(&line.labels).copied() else {
                    return fail(expected, render_value(value));
                };
                if expectations.ordered && index != expected_index {
                    return fail(format!("ordered {expected}"), render_value(value));
                }
                let Some(expected_value) = line.values.first() else {
                    return fail(expected, render_value(value));
                };
                let sample = &elements[index].1;
                let got = match &sample.histogram {
                    Some(histogram) => SequenceValue::Histogram(histogram.clone()),
                    None => SequenceValue::Value(sample.value),
                };
                if !values_match(expected_value, &got) {
                    return fail(expected, render_value(value));
                }
            }
            Outcome::Pass
        }
    }
}
