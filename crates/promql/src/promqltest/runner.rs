//! Runs parsed promqltest commands against the engine and judges each `eval`.
//!
//! A fresh [`MemStore`] backs each `load`/`clear` block. Series holding native
//! histograms are not loaded; any `eval` whose selectors could match one is
//! skipped with the reason, as are evals needing unsupported features.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use promql_parser::parser::Expr;
use regex::Regex;
use tsdb::{Labels, MemStore};

use super::script::{Command, EvalCommand, EvalKind, Expectations, MessageMatch, SequenceValue, parse_script};
use super::{CaseFailure, CaseSkip, FileReport};
use crate::engine::matcher_groups;
use crate::histogram::almost_equal;
use crate::{Annotation, Engine, EngineOptions, Error, QueryResult, Value};

const EPSILON: f64 = 0.000_001;

/// Runs a script with explicit engine options.
pub fn run_script_with_options(name: &str, text: &str, options: &EngineOptions) -> FileReport {
    let engine = Engine::new(options.clone());
    let mut report = FileReport { file: name.to_owned(), ..FileReport::default() };
    let mut store = MemStore::new();
    let mut native_series: Vec<Labels> = Vec::new();
    for command in parse_script(text) {
        match command {
            Command::Clear => {
                store = MemStore::new();
                native_series.clear();
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
                let mut merged: BTreeMap<Labels, BTreeMap<i64, f64>> = BTreeMap::new();
                for series_line in series {
                    if series_line.native_histograms {
                        native_series.push(series_line.labels.clone());
                        continue;
                    }
                    if with_nhcb {
                        native_series.push(nhcb_labels(&series_line.labels));
                    }
                    let samples = merged.entry(series_line.labels.clone()).or_default();
                    for (index, value) in series_line.values.iter().enumerate() {
                        if let SequenceValue::Value(value) = value {
                            samples.insert(index as i64 * interval, *value);
                        }
                    }
                }
                for (labels, samples) in merged {
                    for (timestamp, value) in samples {
                        if let Err(error) = store.append(&labels, timestamp, value) {
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
                if let Ok(expr) = promql_parser::parser::parse(&command.query)
                    && touches_native_series(&expr, &native_series)
                {
                    report.skips.push(skip("native histograms are not supported yet".to_owned()));
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

fn selectors(expr: &Expr, output: &mut Vec<promql_parser::parser::VectorSelector>) {
    match expr {
        Expr::VectorSelector(selector) => output.push(selector.clone()),
        Expr::MatrixSelector(selector) => output.push(selector.vs.clone()),
        Expr::Aggregate(aggregate) => {
            selectors(&aggregate.expr, output);
            if let Some(parameter) = &aggregate.param {
                selectors(parameter, output);
            }
        }
        Expr::Unary(unary) => selectors(&unary.expr, output),
        Expr::Binary(binary) => {
            selectors(&binary.lhs, output);
            selectors(&binary.rhs, output);
        }
        Expr::Paren(paren) => selectors(&paren.expr, output),
        Expr::Subquery(subquery) => selectors(&subquery.expr, output),
        Expr::Call(call) => call.args.args.iter().for_each(|argument| selectors(argument, output)),
        _ => {}
    }
}

fn touches_native_series(expr: &Expr, native_series: &[Labels]) -> bool {
    if native_series.is_empty() {
        return false;
    }
    let mut found = Vec::new();
    selectors(expr, &mut found);
    found.iter().any(|selector| {
        let Ok(groups) = matcher_groups(selector) else {
            return false;
        };
        groups
            .iter()
            .any(|group| native_series.iter().any(|labels| group.iter().all(|matcher| matcher.matches_labels(labels))))
    })
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
        Err(Error::NativeHistogramsUnsupported) => {
            return Outcome::Skip("native histograms are not supported yet".to_owned());
        }
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
                let _ = write!(text, "{labels} {}", sample.value);
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
                let points: Vec<String> =
                    data.samples.iter().map(|sample| format!("{}@{}", sample.value, sample.timestamp)).collect();
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
                    SequenceValue::Omitted => "_".to_owned(),
                })
                .collect();
            format!("{} {}", line.labels, values.join(" "))
        })
        .collect();
    format!("[{}]", series.join(", "))
}

fn expected_points(values: &[SequenceValue], start: i64, step: i64) -> Vec<(i64, f64)> {
    values
        .iter()
        .enumerate()
        .filter_map(|(index, value)| match value {
            SequenceValue::Value(value) => Some((start + index as i64 * step, *value)),
            SequenceValue::Omitted => None,
        })
        .collect()
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
        if points.len() != data.samples.len() {
            return fail(expected, got());
        }
        for ((timestamp, value), sample) in points.iter().zip(&data.samples) {
            if *timestamp != sample.timestamp || !almost_equal(*value, sample.value, EPSILON) {
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
                let expected_value = match line.values.first() {
                    Some(SequenceValue::Value(expected_value)) => *expected_value,
                    _ => return fail(expected, render_value(value)),
                };
                if !almost_equal(expected_value, elements[index].1.value, EPSILON) {
                    return fail(expected, render_value(value));
                }
            }
            Outcome::Pass
        }
    }
}
