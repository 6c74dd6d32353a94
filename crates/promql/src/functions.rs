//! PromQL functions, evaluated at one step.
//!
//! `eval_call` dispatches on the function name: range-vector functions
//! (`rate`, `*_over_time`, `deriv`, ...), instant-vector math, label
//! manipulation, sorting, date functions and the classic-histogram functions
//! (in [`crate::histogram`]). Numeric helpers shared with aggregations live
//! here too (Kahan summation, quantiles, Go-compatible float formatting).
//!
//! Native histograms: `histogram_count`, `histogram_sum`, `histogram_avg`,
//! `histogram_stddev` and `histogram_stdvar` read them and ignore floats;
//! `rate`/`increase`/`delta`, `sum_over_time`/`avg_over_time`, the counting
//! and picking range functions, `resets` and `changes` take them too; the
//! other functions read floats only, with Prometheus's annotations where a
//! range mixes both.

use std::sync::Arc;

use foldhash::{HashSet, HashSetExt};
use promql_parser::parser::{Call, Expr};
use regex::Regex;
use tsdb::{Labels, METRIC_NAME, Sample};

use crate::Error;
use crate::aggregate::{ascending_nan_last, sort_descending_nan_last};
use crate::engine::{Element, Evaluated, Evaluator, Window};
use crate::value::AnnotationKind;

/// One step of Kahan-Neumaier summation; returns the new sum and compensation.
pub(crate) fn kahan_sum_increment(increment: f64, sum: f64, compensation: f64) -> (f64, f64) {
    let total = sum + increment;
    let compensation = if total.is_infinite() {
        0.0
    } else if sum.abs() >= increment.abs() {
        compensation + ((sum - total) + increment)
    } else {
        compensation + ((increment - total) + sum)
    };
    (total, compensation)
}

/// The `q`-quantile of `values` with linear interpolation, as Prometheus's `quantile`.
pub(crate) fn quantile_of(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // NaN sorts first, as in Prometheus.
    values.sort_by(|left, right| match (left.is_nan(), right.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        (false, false) => left.partial_cmp(right).unwrap_or(std::cmp::Ordering::Equal),
    });
    let count = values.len() as f64;
    let rank = q * (count - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(count - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Go's `strconv.FormatFloat(value, 'f', -1, 64)`.
pub(crate) fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{value}")
    }
}

/// Go's `%g` with the shortest representation (shared with the histogram printer).
pub(crate) use tsdb::histogram::format_go_g;

fn is_legacy_label_name(name: &str) -> bool {
    let mut characters = name.chars();
    match characters.next() {
        Some(first) if first == '_' || first.is_ascii_alphabetic() => {}
        _ => return false,
    }
    characters.all(|character| character == '_' || character.is_ascii_alphanumeric())
}

/// The estimated variance of a native histogram's observations, each bucket
/// standing for its midpoint (arithmetic for custom buckets, geometric for
/// exponential ones, zero for the zero bucket), as Prometheus estimates it.
fn histogram_variance(histogram: &tsdb::FloatHistogram) -> f64 {
    let mean = histogram.sum / histogram.count;
    let (mut variance, mut compensation) = (0.0, 0.0);
    for bucket in histogram.buckets() {
        let value = if histogram.uses_custom_buckets() {
            (bucket.upper + bucket.lower) / 2.0
        } else if bucket.lower <= 0.0 && bucket.upper >= 0.0 {
            0.0
        } else {
            let value = (bucket.upper * bucket.lower).sqrt();
            if bucket.upper < 0.0 { -value } else { value }
        };
        let delta = value - mean;
        (variance, compensation) = kahan_sum_increment(bucket.count * delta * delta, variance, compensation);
    }
    (variance + compensation) / histogram.count
}

/// What a range function makes of a window holding native histograms.
enum HistogramRange {
    /// The result, a float or a histogram.
    Value(f64, Option<Arc<tsdb::FloatHistogram>>),
    /// No result for this series.
    Nothing,
    /// Floats and histograms the function cannot combine: no result, a warning.
    Mixed,
    /// The function reads the floats only (an info when there are some).
    FloatsOnly,
    /// The floats only, without an annotation.
    Unannotated,
}

/// Range functions over a window with histogram samples (`histograms` is not
/// empty): counting and picking functions see both kinds, `sum_over_time`
/// and `avg_over_time` add histograms, and the others read floats only.
fn range_over_histograms(
    name: &str,
    samples: &[Sample],
    histograms: &[tsdb::HistogramSample],
    (range_end, range_ms): (i64, i64),
    metric: &str,
    warnings: &mut Vec<String>,
) -> HistogramRange {
    let last_float = samples.last();
    let last_histogram = histograms.last();
    let first_float = samples.first();
    let first_histogram = histograms.first();
    let float_is_last = match (last_float, last_histogram) {
        (Some(float), Some(histogram)) => float.timestamp > histogram.timestamp,
        (Some(_), None) => true,
        _ => false,
    };
    let float_is_first = match (first_float, first_histogram) {
        (Some(float), Some(histogram)) => float.timestamp < histogram.timestamp,
        (Some(_), None) => true,
        _ => false,
    };
    match name {
        "count_over_time" => HistogramRange::Value((samples.len() + histograms.len()) as f64, None),
        "present_over_time" => HistogramRange::Value(1.0, None),
        "last_over_time" => match (float_is_last, last_float, last_histogram) {
            (true, Some(float), _) => HistogramRange::Value(float.value, None),
            (_, _, Some(histogram)) => HistogramRange::Value(0.0, Some(histogram.histogram.clone())),
            _ => HistogramRange::Nothing,
        },
        "first_over_time" => match (float_is_first, first_float, first_histogram) {
            (true, Some(float), _) => HistogramRange::Value(float.value, None),
            (_, _, Some(histogram)) => HistogramRange::Value(0.0, Some(histogram.histogram.clone())),
            _ => HistogramRange::Nothing,
        },
        "ts_of_last_over_time" => {
            let last = last_float.map(|float| float.timestamp).max(last_histogram.map(|histogram| histogram.timestamp));
            last.map_or(HistogramRange::Nothing, |timestamp| HistogramRange::Value(timestamp as f64 / 1000.0, None))
        }
        "ts_of_first_over_time" => {
            let first = match (first_float, first_histogram) {
                (Some(float), Some(histogram)) => Some(float.timestamp.min(histogram.timestamp)),
                (Some(float), None) => Some(float.timestamp),
                (None, Some(histogram)) => Some(histogram.timestamp),
                (None, None) => None,
            };
            first.map_or(HistogramRange::Nothing, |timestamp| HistogramRange::Value(timestamp as f64 / 1000.0, None))
        }
        "sum_over_time" | "avg_over_time" => {
            if !samples.is_empty() {
                return HistogramRange::Mixed;
            }
            let mut sum = (*histograms[0].histogram).clone();
            for sample in &histograms[1..] {
                match sum.add(&sample.histogram) {
                    Ok(next) => sum = next,
                    Err(_) => return HistogramRange::Mixed,
                }
            }
            if name == "avg_over_time" {
                sum.divide(histograms.len() as f64);
            }
            sum.compact(0);
            HistogramRange::Value(0.0, Some(Arc::new(sum)))
        }
        "rate" | "increase" | "delta" => {
            if !samples.is_empty() {
                return HistogramRange::Mixed;
            }
            histogram_rate(histograms, range_end, range_ms, name != "delta", name == "rate", metric, warnings)
                .map_or(HistogramRange::Nothing, |histogram| HistogramRange::Value(0.0, Some(Arc::new(histogram))))
        }
        "resets" | "changes" => {
            let mut points: Vec<(i64, Option<&tsdb::FloatHistogram>, f64)> = samples
                .iter()
                .map(|sample| (sample.timestamp, None, sample.value))
                .chain(histograms.iter().map(|sample| (sample.timestamp, Some(&*sample.histogram), 0.0)))
                .collect();
            points.sort_by_key(|point| point.0);
            let mut count = 0.0;
            for pair in points.windows(2) {
                let changed = match (pair[0].1, pair[1].1) {
                    (None, None) if name == "resets" => pair[1].2 < pair[0].2,
                    (None, None) => pair[0].2 != pair[1].2 && !(pair[0].2.is_nan() && pair[1].2.is_nan()),
                    (Some(previous), Some(current)) if name == "resets" => current.detect_reset(previous),
                    (Some(previous), Some(current)) => {
                        !current.equals_with(previous, |a, b| a == b || (a.is_nan() && b.is_nan()))
                    }
                    _ => true,
                };
                if changed {
                    count += 1.0;
                }
            }
            HistogramRange::Value(count, None)
        }
        "irate" | "idelta" => instant_histogram_delta(samples, histograms, name == "irate", metric, warnings),
        // Prometheus's `compareOverTime`, `varianceOverTime`, `funcQuantileOverTime`,
        // `funcMadOverTime`, `funcDeriv`, `funcPredictLinear` and
        // `funcDoubleExponentialSmoothing`: the floats alone, with an info.
        "deriv"
        | "predict_linear"
        | "double_exponential_smoothing"
        | "min_over_time"
        | "max_over_time"
        | "ts_of_min_over_time"
        | "ts_of_max_over_time"
        | "stddev_over_time"
        | "stdvar_over_time"
        | "quantile_over_time"
        | "mad_over_time" => {
            if samples.is_empty() {
                HistogramRange::Nothing
            } else {
                HistogramRange::FloatsOnly
            }
        }
        _ => {
            // Not handled for histograms yet: the floats alone, without an info.
            if samples.is_empty() { HistogramRange::Nothing } else { HistogramRange::Unannotated }
        }
    }
}

/// `irate` and `idelta` of a window holding histograms, as Prometheus's
/// `instantValue`: the last two samples of either kind decide. Two floats give
/// a float; two histograms their difference (after a counter reset, for
/// `irate`, the last histogram alone), per second for `irate`; a float beside a
/// histogram gives nothing and a warning.
fn instant_histogram_delta(
    samples: &[Sample],
    histograms: &[tsdb::HistogramSample],
    is_rate: bool,
    metric: &str,
    warnings: &mut Vec<String>,
) -> HistogramRange {
    use tsdb::histogram::CounterResetHint;
    let mut last_two: Vec<(i64, Option<&tsdb::FloatHistogram>, f64)> = samples[samples.len().saturating_sub(2)..]
        .iter()
        .map(|sample| (sample.timestamp, None, sample.value))
        .chain(
            histograms[histograms.len().saturating_sub(2)..]
                .iter()
                .map(|sample| (sample.timestamp, Some(&*sample.histogram), 0.0)),
        )
        .collect();
    if samples.len() + histograms.len() < 2 {
        return HistogramRange::Nothing;
    }
    // A stable sort keeps a histogram after a float of the same timestamp, as
    // Prometheus's placement of histograms among the floats does.
    last_two.sort_by_key(|point| point.0);
    let (previous, last) = (last_two[last_two.len() - 2], last_two[last_two.len() - 1]);
    let interval = last.0 - previous.0;
    if interval == 0 {
        return HistogramRange::Nothing;
    }
    let per_second = if is_rate { interval as f64 / 1000.0 } else { 1.0 };
    match (previous.1, last.1) {
        (None, None) => {
            let reset = is_rate && last.2 < previous.2;
            let value = if reset { last.2 } else { last.2 - previous.2 };
            HistogramRange::Value(value / per_second, None)
        }
        (Some(previous), Some(last)) => {
            let is_gauge = |histogram: &tsdb::FloatHistogram| histogram.counter_reset_hint == CounterResetHint::Gauge;
            if is_rate && (is_gauge(last) || is_gauge(previous)) {
                warnings.push(format!("this native histogram metric is not a counter: {metric:?}"));
            }
            if !is_rate && (!is_gauge(last) || !is_gauge(previous)) {
                warnings.push(format!("this native histogram metric is not a gauge: {metric:?}"));
            }
            let mut result = if is_rate && last.detect_reset(previous) {
                last.clone()
            } else {
                match last.sub(previous) {
                    Ok(difference) => difference,
                    Err(tsdb::histogram::HistogramError::MixedSchemas) => {
                        warnings.push(format!(
                            "vector contains a mix of histograms with exponential and custom buckets schemas for metric name {metric:?}"
                        ));
                        return HistogramRange::Nothing;
                    }
                    // Prometheus reconciles differing custom bounds; not done here.
                    Err(tsdb::histogram::HistogramError::CustomBucketsMismatch) => return HistogramRange::Nothing,
                }
            };
            result.counter_reset_hint = CounterResetHint::Gauge;
            result.compact(0);
            if is_rate {
                result.divide(per_second);
            }
            HistogramRange::Value(0.0, Some(Arc::new(result)))
        }
        _ => HistogramRange::Mixed,
    }
}

/// `rate`, `increase` (counters) and `delta` (gauges) of a window of native
/// histograms, extrapolated as for floats (Prometheus's `histogramRate`).
fn histogram_rate(
    histograms: &[tsdb::HistogramSample],
    range_end: i64,
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
    metric: &str,
    warnings: &mut Vec<String>,
) -> Option<tsdb::FloatHistogram> {
    use tsdb::histogram::CounterResetHint;
    if histograms.len() < 2 {
        return None;
    }
    let first = &histograms[0];
    let last = &histograms[histograms.len() - 1];
    if is_counter && histograms[1..].iter().any(|sample| sample.histogram.counter_reset_hint == CounterResetHint::Gauge)
    {
        warnings.push(format!("this native histogram metric is not a counter: {metric:?}"));
    }
    let mut result = last.histogram.sub(&first.histogram).ok()?;
    if is_counter {
        let mut previous = &first.histogram;
        for sample in &histograms[1..] {
            if sample.histogram.detect_reset(previous) {
                result = result.add(previous).ok()?;
            }
            previous = &sample.histogram;
        }
    } else if first.histogram.counter_reset_hint != CounterResetHint::Gauge
        || last.histogram.counter_reset_hint != CounterResetHint::Gauge
    {
        warnings.push(format!("this native histogram metric is not a gauge: {metric:?}"));
    }
    result.counter_reset_hint = CounterResetHint::Gauge;
    result.compact(0);
    let counter = is_counter.then_some((first.histogram.count, result.count));
    let factor =
        extrapolation_factor(first.timestamp, last.timestamp, histograms.len(), range_end, range_ms, counter, is_rate);
    result.scale(factor);
    Some(result)
}

fn element(labels: &Arc<Labels>, value: f64, time: i64, drop_name: bool) -> Element {
    Element { histogram: None, labels: labels.clone(), value, timestamp: time, drop_name }
}

/// Least-squares slope and intercept of `samples` with x relative to `intercept_time`.
fn linear_regression(samples: &[Sample], intercept_time: i64) -> (f64, f64) {
    let mut count = 0.0;
    let (mut sum_x, mut compensation_x) = (0.0, 0.0);
    let (mut sum_y, mut compensation_y) = (0.0, 0.0);
    let (mut sum_xy, mut compensation_xy) = (0.0, 0.0);
    let (mut sum_x2, mut compensation_x2) = (0.0, 0.0);
    let initial_y = samples[0].value;
    let mut constant_y = true;
    for (index, sample) in samples.iter().enumerate() {
        if constant_y && index > 0 && sample.value != initial_y {
            constant_y = false;
        }
        count += 1.0;
        let x = (sample.timestamp - intercept_time) as f64 / 1e3;
        (sum_x, compensation_x) = kahan_sum_increment(x, sum_x, compensation_x);
        (sum_y, compensation_y) = kahan_sum_increment(sample.value, sum_y, compensation_y);
        (sum_xy, compensation_xy) = kahan_sum_increment(x * sample.value, sum_xy, compensation_xy);
        (sum_x2, compensation_x2) = kahan_sum_increment(x * x, sum_x2, compensation_x2);
    }
    if constant_y {
        if initial_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, initial_y);
    }
    sum_x += compensation_x;
    sum_y += compensation_y;
    sum_xy += compensation_xy;
    sum_x2 += compensation_x2;
    let covariance = sum_xy - sum_x * sum_y / count;
    let variance = sum_x2 - sum_x * sum_x / count;
    let slope = covariance / variance;
    let intercept = sum_y / count - slope * sum_x / count;
    (slope, intercept)
}

/// The factor by which Prometheus extrapolates the change between the first
/// and last of `count` samples to the window `(range_end - range_ms,
/// range_end]` (divided by the window's seconds for a rate). `counter` holds a
/// counter's first value and its increase, which cap the extrapolation
/// towards the start at the point where the counter would have been zero.
fn extrapolation_factor(
    first_ms: i64,
    last_ms: i64,
    count: usize,
    range_end: i64,
    range_ms: i64,
    counter: Option<(f64, f64)>,
    is_rate: bool,
) -> f64 {
    let range_start = range_end - range_ms;
    let mut duration_to_start = (first_ms - range_start) as f64 / 1000.0;
    let mut duration_to_end = (range_end - last_ms) as f64 / 1000.0;
    let sampled_interval = (last_ms - first_ms) as f64 / 1000.0;
    let average_between_samples = sampled_interval / (count - 1) as f64;
    let threshold = average_between_samples * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = average_between_samples / 2.0;
    }
    if let Some((first, increase)) = counter
        && increase > 0.0
        && first >= 0.0
    {
        duration_to_start = duration_to_start.min(sampled_interval * (first / increase));
    }
    if duration_to_end >= threshold {
        duration_to_end = average_between_samples / 2.0;
    }
    let mut factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    if is_rate {
        factor /= range_ms as f64 / 1000.0;
    }
    factor
}

/// Prometheus's extrapolated `rate`, `increase` and `delta` over the samples of
/// the window `(range_end - range_ms, range_end]`.
fn extrapolated_rate(
    samples: &[Sample],
    range_end: i64,
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let first = samples[0];
    let last = samples[samples.len() - 1];
    let mut result = last.value - first.value;
    if is_counter {
        let mut previous = first.value;
        for sample in &samples[1..] {
            if sample.value < previous {
                result += previous;
            }
            previous = sample.value;
        }
    }
    let counter = is_counter.then_some((first.value, result));
    let factor =
        extrapolation_factor(first.timestamp, last.timestamp, samples.len(), range_end, range_ms, counter, is_rate);
    Some(result * factor)
}

fn instant_delta(samples: &[Sample], is_rate: bool) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let last = samples[samples.len() - 1];
    let previous = samples[samples.len() - 2];
    let mut result = if is_rate && last.value < previous.value { last.value } else { last.value - previous.value };
    if is_rate {
        let interval = last.timestamp - previous.timestamp;
        if interval == 0 {
            return None;
        }
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

fn average(samples: &[Sample]) -> f64 {
    let (mut sum, mut mean, mut count, mut compensation) = (0.0, 0.0, 0.0, 0.0);
    let mut incremental = false;
    for sample in samples {
        count += 1.0;
        if !incremental {
            let (new_sum, new_compensation) = kahan_sum_increment(sample.value, sum, compensation);
            if count == 1.0 || !new_sum.is_infinite() {
                sum = new_sum;
                compensation = new_compensation;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            compensation /= count - 1.0;
        }
        let ratio = (count - 1.0) / count;
        (mean, compensation) = kahan_sum_increment(sample.value / count, ratio * mean, ratio * compensation);
    }
    if incremental { mean + compensation } else { sum / count + compensation / count }
}

fn variance(samples: &[Sample]) -> f64 {
    let (mut count, mut mean, mut mean_compensation, mut aux, mut aux_compensation) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for sample in samples {
        count += 1.0;
        let delta = sample.value - (mean + mean_compensation);
        (mean, mean_compensation) = kahan_sum_increment(delta / count, mean, mean_compensation);
        (aux, aux_compensation) =
            kahan_sum_increment(delta * (sample.value - (mean + mean_compensation)), aux, aux_compensation);
    }
    (aux + aux_compensation) / count
}

fn double_exponential_smoothing(samples: &[Sample], smoothing: f64, trend: f64) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let mut previous_smoothed = 0.0;
    let mut smoothed = samples[0].value;
    let mut slope = samples[1].value - samples[0].value;
    for (index, sample) in samples.iter().enumerate().skip(1) {
        let scaled = smoothing * sample.value;
        if index > 1 {
            slope = trend * (smoothed - previous_smoothed) + (1.0 - trend) * slope;
        }
        let carried = (1.0 - smoothing) * (smoothed + slope);
        previous_smoothed = smoothed;
        smoothed = scaled + carried;
    }
    Some(smoothed)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = if shifted >= 0 { shifted } else { shifted - 146_096 } / 146_097;
    let day_of_era = shifted - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn date_part(function: &str, seconds: f64) -> f64 {
    let seconds = if seconds.is_nan() { i64::MIN } else { seconds as i64 };
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    match function {
        "year" => year as f64,
        "month" => f64::from(month),
        "day_of_month" => f64::from(day),
        "day_of_week" => (days + 4).rem_euclid(7) as f64,
        "day_of_year" => {
            let mut ordinal = day;
            for earlier in 1..month {
                ordinal += days_in_month(year, earlier);
            }
            f64::from(ordinal)
        }
        "days_in_month" => f64::from(days_in_month(year, month)),
        "hour" => (second_of_day / 3600) as f64,
        "minute" => (second_of_day % 3600 / 60) as f64,
        _ => f64::NAN,
    }
}

fn natural_compare(left: &str, right: &str) -> std::cmp::Ordering {
    let (left_bytes, right_bytes) = (left.as_bytes(), right.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < left_bytes.len() && j < right_bytes.len() {
        if left_bytes[i].is_ascii_digit() && right_bytes[j].is_ascii_digit() {
            let start_i = i;
            while i < left_bytes.len() && left_bytes[i].is_ascii_digit() {
                i += 1;
            }
            let start_j = j;
            while j < right_bytes.len() && right_bytes[j].is_ascii_digit() {
                j += 1;
            }
            let left_number = left[start_i..i].trim_start_matches('0');
            let right_number = right[start_j..j].trim_start_matches('0');
            let ordering = left_number.len().cmp(&right_number.len()).then_with(|| left_number.cmp(right_number));
            if ordering != std::cmp::Ordering::Equal {
                return ordering;
            }
        } else {
            let ordering = left_bytes[i].cmp(&right_bytes[j]);
            if ordering != std::cmp::Ordering::Equal {
                return ordering;
            }
            i += 1;
            j += 1;
        }
    }
    (left_bytes.len() - i).cmp(&(right_bytes.len() - j))
}

/// Labels for `absent()`/`absent_over_time()` output, from the selector's equality matchers.
fn absent_labels(expr: &Expr) -> Labels {
    let selector = match expr {
        Expr::VectorSelector(selector) => selector,
        Expr::MatrixSelector(matrix) => &matrix.vs,
        _ => return Labels::empty(),
    };
    let mut builder = Labels::empty().to_builder();
    let mut seen = HashSet::new();
    for matcher in &selector.matchers.matchers {
        if matcher.name == METRIC_NAME {
            continue;
        }
        if matches!(matcher.op, promql_parser::label::MatchOp::Equal) && !seen.contains(&matcher.name) {
            builder.set(matcher.name.clone(), matcher.value.clone());
            seen.insert(matcher.name.clone());
        } else {
            builder.delete(&matcher.name);
        }
    }
    builder.build()
}

fn unwrap_parens(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(paren) => unwrap_parens(&paren.expr),
        other => other,
    }
}

fn check_duplicates(elements: &[Element]) -> Result<(), Error> {
    if elements.len() < 2 {
        return Ok(());
    }
    let mut seen = HashSet::with_capacity(elements.len());
    for element in elements {
        if !seen.insert((element.labels.as_ref(), element.drop_name)) {
            return Err(Error::execution("vector cannot contain metrics with the same labelset"));
        }
    }
    Ok(())
}

impl Evaluator<'_> {
    fn argument(call: &Call, index: usize) -> Result<&Expr, Error> {
        call.args
            .args
            .get(index)
            .map(|argument| argument.as_ref())
            .ok_or_else(|| Error::execution(format!("missing argument {} of {}", index + 1, call.func.name)))
    }

    pub(crate) fn eval_call(&mut self, call: &Call, time: i64, window: Window) -> Result<Evaluated, Error> {
        let name = call.func.name;
        let result = self.eval_call_inner(call, name, time, window)?;
        // A range vector's series have distinct label sets and a range function
        // keeps them, so only the other functions can produce duplicates.
        let over_range_vector =
            matches!(call.func.arg_types.first(), Some(promql_parser::parser::value::ValueType::Matrix));
        if let Evaluated::Vector(elements) = &result
            && !over_range_vector
        {
            check_duplicates(elements)?;
        }
        Ok(result)
    }

    fn eval_call_inner(&mut self, call: &Call, name: &str, time: i64, window: Window) -> Result<Evaluated, Error> {
        let scalar = |value: f64| Ok(Evaluated::Scalar(value));
        if matches!(name, "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc") && window.start != window.end {
            // As Prometheus's evaluator: a range result is ordered by labels whatever the sort.
            let message = "sort is ineffective for range queries since results are always ordered by labels".to_owned();
            self.annotate(AnnotationKind::Warning, message, None, Some(&Expr::Call(call.clone())));
        }
        match name {
            "time" => return scalar(time as f64 / 1000.0),
            "pi" => return scalar(std::f64::consts::PI),
            "start" => return scalar(self.query_start as f64 / 1000.0),
            "end" => return scalar(self.query_end as f64 / 1000.0),
            "range" => return scalar((self.query_end - self.query_start) as f64 / 1000.0),
            "vector" => {
                let value = self.eval_scalar(Self::argument(call, 0)?, time, window)?;
                return Ok(Evaluated::Vector(vec![Element {
                    histogram: None,
                    labels: Arc::new(Labels::empty()),
                    value,
                    timestamp: time,
                    drop_name: false,
                }]));
            }
            "scalar" => {
                let elements = self.eval_vector(Self::argument(call, 0)?, time, window)?;
                return scalar(if elements.len() == 1 { elements[0].value } else { f64::NAN });
            }
            "min_of" | "max_of" => {
                let left = self.eval_scalar(Self::argument(call, 0)?, time, window)?;
                let right = self.eval_scalar(Self::argument(call, 1)?, time, window)?;
                if left.is_nan() || right.is_nan() {
                    return scalar(f64::NAN);
                }
                return scalar(if name == "min_of" { left.min(right) } else { left.max(right) });
            }
            "step" => return scalar(self.query_step as f64 / 1000.0),
            "info" | "start_timestamp" => {
                return Err(Error::Unsupported(format!("the {name}() function")));
            }
            "histogram_quantile" | "histogram_quantiles" | "histogram_fraction" => {
                return self.eval_histogram_function(call, name, time, window);
            }
            "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev" | "histogram_stdvar" => {
                // Only native histograms have these; float samples are ignored.
                let elements = self.eval_vector_with_histograms(Self::argument(call, 0)?, time, window)?;
                let output = elements
                    .into_iter()
                    .filter_map(|mut element| {
                        let histogram = element.histogram.take()?;
                        element.value = match name {
                            "histogram_count" => histogram.count,
                            "histogram_sum" => histogram.sum,
                            "histogram_avg" => histogram.sum / histogram.count,
                            "histogram_stdvar" => histogram_variance(&histogram),
                            _ => histogram_variance(&histogram).sqrt(),
                        };
                        element.timestamp = time;
                        element.drop_name = true;
                        Some(element)
                    })
                    .collect();
                return Ok(Evaluated::Vector(output));
            }
            _ => {}
        }
        let first = Self::argument(call, 0);
        if matches!(call.func.arg_types.first(), Some(promql_parser::parser::value::ValueType::Matrix)) {
            return self.eval_range_function(call, name, time, window);
        }
        match name {
            "quantile_over_time" => return self.eval_range_function(call, name, time, window),
            "timestamp" => {
                let argument = first?;
                let from_selector = matches!(unwrap_parens(argument), Expr::VectorSelector(_));
                let elements = self.eval_vector_with_histograms(argument, time, window)?;
                return Ok(Evaluated::Vector(
                    elements
                        .into_iter()
                        .map(|mut element| {
                            let stamp = if from_selector { element.timestamp } else { time };
                            element.value = stamp as f64 / 1000.0;
                            element.histogram = None;
                            element.timestamp = time;
                            element.drop_name = true;
                            element
                        })
                        .collect(),
                ));
            }
            "absent" => {
                let argument = first?;
                let elements = self.eval_vector_with_histograms(argument, time, window)?;
                if !elements.is_empty() {
                    return Ok(Evaluated::Vector(Vec::new()));
                }
                return Ok(Evaluated::Vector(vec![Element {
                    histogram: None,
                    labels: Arc::new(absent_labels(unwrap_parens(argument))),
                    value: 1.0,
                    timestamp: time,
                    drop_name: false,
                }]));
            }
            "year" | "month" | "day_of_month" | "day_of_week" | "day_of_year" | "days_in_month" | "hour" | "minute" => {
                if call.args.args.is_empty() {
                    return Ok(Evaluated::Vector(vec![Element {
                        histogram: None,
                        labels: Arc::new(Labels::empty()),
                        value: date_part(name, (time / 1000) as f64),
                        timestamp: time,
                        drop_name: false,
                    }]));
                }
                let elements = self.eval_vector(first?, time, window)?;
                return Ok(Evaluated::Vector(
                    elements
                        .into_iter()
                        .map(|mut element| {
                            element.value = date_part(name, element.value);
                            element.drop_name = true;
                            element
                        })
                        .collect(),
                ));
            }
            "label_replace" => return self.label_replace(call, time, window),
            "label_join" => return self.label_join(call, time, window),
            "sort" | "sort_desc" => {
                let mut elements = self.eval_vector(first?, time, window)?;
                if name == "sort" {
                    elements.sort_by(|left, right| ascending_nan_last(left.value, right.value));
                } else {
                    elements.sort_by(|left, right| sort_descending_nan_last(left.value, right.value));
                }
                return Ok(Evaluated::Vector(elements));
            }
            "sort_by_label" | "sort_by_label_desc" => {
                let mut elements = self.eval_vector(first?, time, window)?;
                let mut names = Vec::new();
                for argument in call.args.args.iter().skip(1) {
                    names.push(self.eval_string(argument, time, window)?);
                }
                elements.sort_by(|left, right| {
                    for name in &names {
                        let ordering =
                            natural_compare(left.labels.get(name).unwrap_or(""), right.labels.get(name).unwrap_or(""));
                        if ordering != std::cmp::Ordering::Equal {
                            return ordering;
                        }
                    }
                    left.labels.cmp(&right.labels)
                });
                if name == "sort_by_label_desc" {
                    elements.reverse();
                }
                return Ok(Evaluated::Vector(elements));
            }
            _ => {}
        }
        // Element-wise functions of an instant vector.
        let mut parameters = Vec::new();
        for argument in call.args.args.iter().skip(1) {
            parameters.push(self.eval_scalar(argument, time, window)?);
        }
        let elements = self.eval_vector(first?, time, window)?;
        let operation: Box<dyn Fn(f64) -> f64> = match name {
            "abs" => Box::new(f64::abs),
            "ceil" => Box::new(f64::ceil),
            "floor" => Box::new(f64::floor),
            "exp" => Box::new(f64::exp),
            "sqrt" => Box::new(f64::sqrt),
            "ln" => Box::new(f64::ln),
            "log2" => Box::new(f64::log2),
            "log10" => Box::new(f64::log10),
            "sin" => Box::new(f64::sin),
            "cos" => Box::new(f64::cos),
            "tan" => Box::new(f64::tan),
            "asin" => Box::new(f64::asin),
            "acos" => Box::new(f64::acos),
            "atan" => Box::new(f64::atan),
            "sinh" => Box::new(f64::sinh),
            "cosh" => Box::new(f64::cosh),
            "tanh" => Box::new(f64::tanh),
            "asinh" => Box::new(f64::asinh),
            "acosh" => Box::new(f64::acosh),
            "atanh" => Box::new(f64::atanh),
            "deg" => Box::new(|value: f64| value * 180.0 / std::f64::consts::PI),
            "rad" => Box::new(|value: f64| value * std::f64::consts::PI / 180.0),
            "sgn" => Box::new(|value: f64| {
                if value > 0.0 {
                    1.0
                } else if value < 0.0 {
                    -1.0
                } else {
                    value
                }
            }),
            "round" => {
                let to_nearest = parameters.first().copied().unwrap_or(1.0);
                let inverse = 1.0 / to_nearest;
                Box::new(move |value: f64| (value * inverse + 0.5).floor() / inverse)
            }
            "clamp" => {
                let minimum = parameters.first().copied().unwrap_or(f64::NAN);
                let maximum = parameters.get(1).copied().unwrap_or(f64::NAN);
                if maximum < minimum {
                    return Ok(Evaluated::Vector(Vec::new()));
                }
                Box::new(move |value: f64| value.max(minimum).min(maximum))
            }
            "clamp_min" => {
                let minimum = parameters.first().copied().unwrap_or(f64::NAN);
                Box::new(move |value: f64| value.max(minimum))
            }
            "clamp_max" => {
                let maximum = parameters.first().copied().unwrap_or(f64::NAN);
                Box::new(move |value: f64| value.min(maximum))
            }
            other => return Err(Error::Unsupported(format!("the {other}() function"))),
        };
        let go_min_max = matches!(name, "clamp" | "clamp_min" | "clamp_max");
        Ok(Evaluated::Vector(
            elements
                .into_iter()
                .map(|mut element| {
                    element.value = if go_min_max && (element.value.is_nan() || parameters.iter().any(|p| p.is_nan())) {
                        f64::NAN
                    } else {
                        operation(element.value)
                    };
                    element.drop_name = true;
                    element
                })
                .collect(),
        ))
    }

    fn eval_range_function(&mut self, call: &Call, name: &str, time: i64, window: Window) -> Result<Evaluated, Error> {
        let anchor = format!("{name}(");
        let (matrix_expr, scalar_arguments): (&Expr, Vec<&Expr>) = if name == "quantile_over_time" {
            (Self::argument(call, 1)?, vec![Self::argument(call, 0)?])
        } else {
            (Self::argument(call, 0)?, call.args.args.iter().skip(1).map(|argument| argument.as_ref()).collect())
        };
        if let Some(output) = self.eval_stepped_rate(call, name, matrix_expr, time, window)? {
            return Ok(Evaluated::Vector(output));
        }
        let mut parameters = Vec::new();
        for argument in &scalar_arguments {
            parameters.push(self.eval_scalar(argument, time, window)?);
        }
        let matrix = self.eval_matrix(matrix_expr, time, window)?;
        if name == "absent_over_time" {
            if !matrix.series.is_empty() {
                return Ok(Evaluated::Vector(Vec::new()));
            }
            return Ok(Evaluated::Vector(vec![Element {
                histogram: None,
                labels: Arc::new(absent_labels(unwrap_parens(matrix_expr))),
                value: 1.0,
                timestamp: time,
                drop_name: false,
            }]));
        }
        if name == "quantile_over_time" {
            let q = parameters.first().copied().unwrap_or(f64::NAN);
            if q.is_nan() || !(0.0..=1.0).contains(&q) {
                let message = format!("quantile value should be between 0 and 1, got {}", format_go_g(q));
                self.annotate(AnnotationKind::Warning, message, Some(&anchor), scalar_arguments.first().copied());
            }
        }
        if name == "double_exponential_smoothing" {
            let smoothing = parameters.first().copied().unwrap_or(f64::NAN);
            let trend = parameters.get(1).copied().unwrap_or(f64::NAN);
            if !(smoothing > 0.0 && smoothing < 1.0) {
                return Err(Error::execution(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {smoothing:.6}"
                )));
            }
            if !(trend > 0.0 && trend < 1.0) {
                return Err(Error::execution(format!("invalid trend factor. Expected: 0 < tf < 1, got: {trend:.6}")));
            }
        }
        let mut output = Vec::with_capacity(matrix.series.len());
        let mut non_counter_names = Vec::new();
        let mut mixed_ignored = Vec::new();
        let mut mixed_dropped = Vec::new();
        let mut histogram_warnings = Vec::new();
        for series in &matrix.series {
            let samples = series.samples();
            let histograms = series.histograms();
            if !histograms.is_empty() {
                let range = (matrix.range_end, matrix.range_ms);
                let metric = series.labels.metric_name().unwrap_or_default();
                match range_over_histograms(name, samples, histograms, range, metric, &mut histogram_warnings) {
                    HistogramRange::Value(value, histogram) => {
                        let keeps_name = matches!(name, "last_over_time" | "first_over_time");
                        let mut result =
                            element(&series.labels, value, time, if keeps_name { series.drop_name } else { true });
                        result.histogram = histogram;
                        output.push(result);
                        continue;
                    }
                    HistogramRange::Nothing => continue,
                    HistogramRange::Mixed => {
                        mixed_dropped.push(series.labels.metric_name().unwrap_or_default().to_owned());
                        continue;
                    }
                    HistogramRange::FloatsOnly => {
                        mixed_ignored.push(series.labels.metric_name().unwrap_or_default().to_owned());
                    }
                    HistogramRange::Unannotated => {}
                }
            }
            if samples.is_empty() {
                continue;
            }
            let value = match name {
                "rate" | "increase" => {
                    if series.not_counter_name {
                        non_counter_names.push(series.labels.metric_name().unwrap_or_default().to_owned());
                    }
                    extrapolated_rate(samples, matrix.range_end, matrix.range_ms, true, name == "rate")
                }
                "delta" => extrapolated_rate(samples, matrix.range_end, matrix.range_ms, false, false),
                "irate" => instant_delta(samples, true),
                "idelta" => instant_delta(samples, false),
                "deriv" => (samples.len() >= 2).then(|| linear_regression(samples, samples[0].timestamp).0),
                "predict_linear" => (samples.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(samples, time);
                    slope * parameters.first().copied().unwrap_or(f64::NAN) + intercept
                }),
                "double_exponential_smoothing" => double_exponential_smoothing(
                    samples,
                    parameters.first().copied().unwrap_or(f64::NAN),
                    parameters.get(1).copied().unwrap_or(f64::NAN),
                ),
                "avg_over_time" => Some(average(samples)),
                "sum_over_time" => {
                    let (sum, compensation) = samples.iter().fold((0.0, 0.0), |(sum, compensation), sample| {
                        kahan_sum_increment(sample.value, sum, compensation)
                    });
                    Some(sum + compensation)
                }
                "count_over_time" => Some(samples.len() as f64),
                "present_over_time" => Some(1.0),
                "min_over_time" => Some(samples.iter().skip(1).fold(samples[0].value, |minimum, sample| {
                    if sample.value < minimum || minimum.is_nan() { sample.value } else { minimum }
                })),
                "max_over_time" => Some(samples.iter().skip(1).fold(samples[0].value, |maximum, sample| {
                    if sample.value > maximum || maximum.is_nan() { sample.value } else { maximum }
                })),
                "last_over_time" => Some(samples[samples.len() - 1].value),
                "first_over_time" => Some(samples[0].value),
                "ts_of_last_over_time" => Some(samples[samples.len() - 1].timestamp as f64 / 1000.0),
                "ts_of_first_over_time" => Some(samples[0].timestamp as f64 / 1000.0),
                "ts_of_max_over_time" | "ts_of_min_over_time" => {
                    let mut best = samples[0];
                    for sample in &samples[1..] {
                        let better = if name == "ts_of_max_over_time" {
                            sample.value >= best.value || best.value.is_nan()
                        } else {
                            sample.value <= best.value || best.value.is_nan()
                        };
                        if better && !sample.value.is_nan() {
                            best = *sample;
                        }
                    }
                    Some(best.timestamp as f64 / 1000.0)
                }
                "stddev_over_time" => Some(variance(samples).sqrt()),
                "stdvar_over_time" => Some(variance(samples)),
                "quantile_over_time" => Some(quantile_of(
                    parameters.first().copied().unwrap_or(f64::NAN),
                    samples.iter().map(|sample| sample.value).collect(),
                )),
                // A NaN makes the median, and so the deviation, undefined (Prometheus's `funcMadOverTime`).
                "mad_over_time" if samples.iter().any(|sample| sample.value.is_nan()) => Some(f64::NAN),
                "mad_over_time" => {
                    let values: Vec<f64> = samples.iter().map(|sample| sample.value).collect();
                    let median = quantile_of(0.5, values.clone());
                    Some(quantile_of(0.5, values.iter().map(|value| (value - median).abs()).collect()))
                }
                "changes" => {
                    let mut changes = 0.0;
                    for pair in samples.windows(2) {
                        if pair[0].value != pair[1].value && !(pair[0].value.is_nan() && pair[1].value.is_nan()) {
                            changes += 1.0;
                        }
                    }
                    Some(changes)
                }
                "resets" => Some(samples.windows(2).filter(|pair| pair[1].value < pair[0].value).count() as f64),
                other => return Err(Error::Unsupported(format!("the {other}() function"))),
            };
            if let Some(value) = value {
                let keeps_name = matches!(name, "last_over_time" | "first_over_time");
                let drop_name = if keeps_name { series.drop_name } else { true };
                output.push(element(&series.labels, value, time, drop_name));
            }
        }
        for metric in mixed_ignored {
            let message = format!(
                "ignored histograms in a range containing both floats and histograms for metric name {metric:?}"
            );
            self.annotate(AnnotationKind::Info, message, Some(&anchor), Some(matrix_expr));
        }
        for message in histogram_warnings {
            self.annotate(AnnotationKind::Warning, message, Some(&anchor), Some(matrix_expr));
        }
        for metric in mixed_dropped {
            let message = format!("encountered a mix of histograms and floats for metric name {metric:?}");
            self.annotate(AnnotationKind::Warning, message, Some(&anchor), Some(matrix_expr));
        }
        for metric in non_counter_names {
            let message =
                format!("metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}");
            self.annotate(AnnotationKind::Info, message, Some(&anchor), Some(matrix_expr));
        }
        Ok(Evaluated::Vector(output))
    }

    /// `rate`, `increase` and `delta` of a matrix selector at a step of a range
    /// query: the values of every step are computed on the first step, series by
    /// series (see [`Evaluator::stepped_range_function`]), then read back. The
    /// counter-name info is raised at the step the series first shows up, as the
    /// step-by-step path does. `None` when this path does not apply.
    fn eval_stepped_rate(
        &mut self,
        call: &Call,
        name: &str,
        matrix_expr: &Expr,
        time: i64,
        window: Window,
    ) -> Result<Option<Vec<Element>>, Error> {
        let (is_counter, is_rate) = match name {
            "rate" => (true, true),
            "increase" => (true, false),
            "delta" => (false, false),
            _ => return Ok(None),
        };
        let Expr::MatrixSelector(selector) = unwrap_parens(matrix_expr) else {
            return Ok(None);
        };
        let Some(step) = self.query_step_index(time, window) else {
            return Ok(None);
        };
        let key = call as *const Call as usize;
        let results = match self.stepped_results.get(&key) {
            Some(results) => results.clone(),
            None => {
                let computed = self.stepped_range_function(selector, window, |samples, range_end, range_ms| {
                    extrapolated_rate(samples, range_end, range_ms, is_counter, is_rate)
                })?;
                let Some(computed) = computed else {
                    return Ok(None);
                };
                let computed = std::rc::Rc::new(computed);
                self.stepped_results.insert(key, computed.clone());
                computed
            }
        };
        let mut output = Vec::new();
        let mut non_counter_names = Vec::new();
        for (series, value) in results.series.iter().zip(results.at_step(step)) {
            if is_counter && series.not_counter_name && series.first_present_step == step {
                non_counter_names.push(series.labels.metric_name().unwrap_or_default().to_owned());
            }
            if let Some(value) = value {
                output.push(element(&series.labels, *value, time, true));
            }
        }
        let anchor = format!("{name}(");
        for metric in non_counter_names {
            let message =
                format!("metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {metric:?}");
            self.annotate(AnnotationKind::Info, message, Some(&anchor), Some(matrix_expr));
        }
        Ok(Some(output))
    }

    fn label_replace(&mut self, call: &Call, time: i64, window: Window) -> Result<Evaluated, Error> {
        let elements = self.eval_vector(Self::argument(call, 0)?, time, window)?;
        let destination = self.eval_string(Self::argument(call, 1)?, time, window)?;
        let replacement = self.eval_string(Self::argument(call, 2)?, time, window)?;
        let source = self.eval_string(Self::argument(call, 3)?, time, window)?;
        let pattern = self.eval_string(Self::argument(call, 4)?, time, window)?;
        let regex = Regex::new(&format!("^(?s:{pattern})$"))
            .map_err(|error| Error::execution(format!("invalid regular expression in label_replace(): {error}")))?;
        if !self.is_valid_label_name(&destination) {
            return Err(Error::execution(format!("invalid destination label name in label_replace(): {destination}")));
        }
        let mut output = Vec::with_capacity(elements.len());
        for mut element in elements {
            let source_value = element.labels.get(&source).unwrap_or("");
            if let Some(captures) = regex.captures(source_value) {
                let mut expanded = String::new();
                captures.expand(&replacement, &mut expanded);
                let mut builder = element.labels.to_builder();
                builder.set(destination.clone(), expanded);
                element.labels = Arc::new(builder.build());
                if destination == METRIC_NAME {
                    element.drop_name = false;
                }
            }
            output.push(element);
        }
        Ok(Evaluated::Vector(output))
    }

    fn label_join(&mut self, call: &Call, time: i64, window: Window) -> Result<Evaluated, Error> {
        let elements = self.eval_vector(Self::argument(call, 0)?, time, window)?;
        let destination = self.eval_string(Self::argument(call, 1)?, time, window)?;
        let separator = self.eval_string(Self::argument(call, 2)?, time, window)?;
        let mut sources = Vec::new();
        for argument in call.args.args.iter().skip(3) {
            let source = self.eval_string(argument, time, window)?;
            if !self.is_valid_label_name(&source) {
                return Err(Error::execution(format!("invalid source label name in label_join(): {source}")));
            }
            sources.push(source);
        }
        if !self.is_valid_label_name(&destination) {
            return Err(Error::execution(format!("invalid destination label name in label_join(): {destination}")));
        }
        let _ = is_legacy_label_name(&destination);
        let mut output = Vec::with_capacity(elements.len());
        for mut element in elements {
            let joined = sources
                .iter()
                .map(|source| element.labels.get(source).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(&separator);
            let mut builder = element.labels.to_builder();
            builder.set(destination.clone(), joined);
            element.labels = Arc::new(builder.build());
            if destination == METRIC_NAME {
                element.drop_name = false;
            }
            output.push(element);
        }
        Ok(Evaluated::Vector(output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn go_g_formatting() {
        assert_eq!(format_go_g(-0.1), "-0.1");
        assert_eq!(format_go_g(1.01), "1.01");
        assert_eq!(format_go_g(f64::NAN), "NaN");
        assert_eq!(format_go_g(1e6), "1e+06");
        assert_eq!(format_go_g(123456.0), "123456");
    }

    #[test]
    fn natural_order_compares_numbers_by_value() {
        assert_eq!(natural_compare("a2", "a10"), std::cmp::Ordering::Less);
        assert_eq!(natural_compare("b", "a10"), std::cmp::Ordering::Greater);
    }

    #[test]
    fn quantile_interpolates() {
        assert_eq!(quantile_of(0.5, vec![1.0, 2.0, 3.0, 4.0]), 2.5);
        assert!(quantile_of(f64::NAN, vec![1.0]).is_nan());
    }
}
