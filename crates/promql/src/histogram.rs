//! Classic-histogram functions: `histogram_quantile`, `histogram_quantiles`
//! and `histogram_fraction` over series carrying an `le` bucket label.
//!
//! Buckets are grouped by their labels without `le`, sorted, coalesced, and
//! made monotonic the way Prometheus does (raising an info annotation when a
//! real decrease had to be fixed). Native histogram elements of the same
//! call are answered from their own buckets ([`native_quantile`],
//! [`native_fraction`], after Prometheus's `HistogramQuantile` and
//! `HistogramFraction`).

use std::sync::Arc;

use foldhash::{HashMap, HashMapExt};
use promql_parser::parser::{Call, Expr};
use tsdb::{FloatHistogram, Labels};

use crate::Error;
use crate::engine::{Element, Evaluated, Evaluator, Window};
use crate::functions::format_go_g;
use crate::value::AnnotationKind;

const BUCKET_LABEL: &str = "le";
const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    upper_bound: f64,
    count: f64,
}

/// A native histogram as Go's `FloatHistogram.String()` writes it:
/// `{count:20, sum:10, [-2,-1):2, [-0.001,0.001]:2, (1,2]:2}`, the non-empty
/// buckets from the lowest up (what `count_values` uses as a label value).
pub(crate) fn histogram_string(histogram: &FloatHistogram) -> String {
    let mut text = format!("{{count:{}, sum:{}", format_go_g(histogram.count), format_go_g(histogram.sum));
    for bucket in histogram.buckets() {
        let open = if bucket.lower_inclusive { '[' } else { '(' };
        let close = if bucket.upper_inclusive { ']' } else { ')' };
        let (lower, upper, count) = (format_go_g(bucket.lower), format_go_g(bucket.upper), format_go_g(bucket.count));
        text.push_str(&format!(", {open}{lower},{upper}{close}:{count}"));
    }
    text.push('}');
    text
}

/// Prometheus's `almost.Equal`.
pub(crate) fn almost_equal(left: f64, right: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if left.is_nan() && right.is_nan() {
        return true;
    }
    if left == right {
        return true;
    }
    let absolute_sum = left.abs() + right.abs();
    let difference = (left - right).abs();
    if left == 0.0 || right == 0.0 || absolute_sum < MIN_NORMAL {
        return difference < epsilon * MIN_NORMAL;
    }
    difference / absolute_sum.min(f64::MAX) < epsilon
}

/// Parses a bucket bound the way Go's `strconv.ParseFloat` accepts it.
pub(crate) fn parse_go_float(text: &str) -> Option<f64> {
    let lower = text.to_ascii_lowercase();
    match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" => {
            return Some(if lower.starts_with('-') { f64::NEG_INFINITY } else { f64::INFINITY });
        }
        "nan" => return Some(f64::NAN),
        _ => {}
    }
    if text.is_empty() || text.contains(['i', 'I', 'n', 'N']) {
        return None;
    }
    text.parse().ok()
}

/// Go's `formatOpenMetricsFloat`: `%g`, with `.0` added to integers.
fn format_open_metrics_float(value: f64) -> String {
    let mut text = format_go_g(value);
    if value.is_finite() && !text.contains(['.', 'e']) {
        text.push_str(".0");
    }
    text
}

fn sort_and_coalesce(buckets: &mut Vec<Bucket>) {
    buckets
        .sort_by(|left, right| left.upper_bound.partial_cmp(&right.upper_bound).unwrap_or(std::cmp::Ordering::Equal));
    let mut coalesced: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for bucket in buckets.iter() {
        match coalesced.last_mut() {
            Some(last) if last.upper_bound == bucket.upper_bound => last.count += bucket.count,
            _ => coalesced.push(*bucket),
        }
    }
    *buckets = coalesced;
}

/// Returns whether a real (not rounding) decrease was fixed.
fn ensure_monotonic(buckets: &mut [Bucket]) -> bool {
    let mut forced = false;
    let Some(first) = buckets.first() else {
        return false;
    };
    let mut previous = first.count;
    for bucket in buckets.iter_mut().skip(1) {
        let current = bucket.count;
        if current == previous {
            continue;
        }
        if almost_equal(previous, current, SMALL_DELTA_TOLERANCE) {
            bucket.count = previous;
            continue;
        }
        if current < previous {
            bucket.count = previous;
            forced = true;
            continue;
        }
        previous = current;
    }
    forced
}

/// Quantile `q` of classic buckets; also reports whether monotonicity was forced.
fn bucket_quantile(q: f64, mut buckets: Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    sort_and_coalesce(&mut buckets);
    match buckets.last() {
        Some(last) if last.upper_bound == f64::INFINITY => {}
        _ => return (f64::NAN, false),
    }
    let forced = ensure_monotonic(&mut buckets);
    if buckets.len() < 2 {
        return (f64::NAN, false);
    }
    let observations = buckets[buckets.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, false);
    }
    let mut rank = q * observations;
    let searched = &buckets[..buckets.len() - 1];
    let index = searched.partition_point(|bucket| bucket.count < rank);
    if index == buckets.len() - 1 {
        return (buckets[buckets.len() - 2].upper_bound, forced);
    }
    if index == 0 && buckets[0].upper_bound <= 0.0 {
        return (buckets[0].upper_bound, forced);
    }
    let mut bucket_start = 0.0;
    let bucket_end = buckets[index].upper_bound;
    let mut count = buckets[index].count;
    if index > 0 {
        bucket_start = buckets[index - 1].upper_bound;
        count -= buckets[index - 1].count;
        rank -= buckets[index - 1].count;
    }
    (bucket_start + (bucket_end - bucket_start) * (rank / count), forced)
}

/// Fraction of observations between `lower` and `upper` in classic buckets.
fn bucket_fraction(lower: f64, upper: f64, mut buckets: Vec<Bucket>) -> f64 {
    sort_and_coalesce(&mut buckets);
    match buckets.last() {
        Some(last) if last.upper_bound == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    ensure_monotonic(&mut buckets);
    let count = buckets[buckets.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for (index, bucket) in buckets.iter().enumerate() {
        let upper_bound = bucket.upper_bound;
        let lower_bound = if index > 0 {
            buckets[index - 1].upper_bound
        } else if upper_bound > 0.0 {
            0.0
        } else {
            f64::NEG_INFINITY
        };
        // A value inside a bucket of infinite width cannot be interpolated: it sits at
        // the bucket's finite end, so the bucket contributes no observations.
        let interpolate = |value: f64| {
            if upper_bound.is_infinite() {
                rank
            } else if lower_bound.is_infinite() {
                bucket.count
            } else {
                rank + (bucket.count - rank) * (value - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = bucket.count;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// Quantile `q` of a native histogram (Prometheus's `HistogramQuantile`):
/// linear interpolation in custom and zero buckets, exponential otherwise.
pub(crate) fn native_quantile(q: f64, histogram: &FloatHistogram) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if histogram.count == 0.0 || q.is_nan() {
        return f64::NAN;
    }
    let forward = histogram.sum.is_nan() || q < 0.5;
    let mut buckets = histogram.buckets();
    let mut rank = if forward { q * histogram.count } else { (1.0 - q) * histogram.count };
    if !forward {
        buckets.reverse();
    }
    let mut count = 0.0;
    let mut chosen = None;
    for bucket in &buckets {
        count += bucket.count;
        chosen = Some(*bucket);
        if count >= rank {
            break;
        }
    }
    let Some(mut bucket) = chosen else {
        return f64::NAN;
    };
    let custom = histogram.uses_custom_buckets();
    if !custom && bucket.lower < 0.0 && bucket.upper > 0.0 {
        if histogram.negative_buckets.is_empty() && !histogram.positive_buckets.is_empty() {
            bucket.lower = 0.0;
        } else if histogram.positive_buckets.is_empty() && !histogram.negative_buckets.is_empty() {
            bucket.upper = 0.0;
        }
    } else if custom {
        if bucket.lower == f64::NEG_INFINITY {
            if bucket.upper <= 0.0 {
                return bucket.upper;
            }
            bucket.lower = 0.0;
        } else if bucket.upper == f64::INFINITY {
            return bucket.lower;
        }
    }
    count = count.min(histogram.count);
    if count < rank {
        return bucket.upper;
    }
    if forward {
        rank -= count - bucket.count;
    } else {
        rank = count - rank;
    }
    let fraction = rank / bucket.count;
    if custom || (bucket.lower <= 0.0 && bucket.upper >= 0.0) {
        return bucket.lower + (bucket.upper - bucket.lower) * fraction;
    }
    let log_lower = bucket.lower.abs().log2();
    let log_upper = bucket.upper.abs().log2();
    if bucket.lower > 0.0 {
        return (log_lower + (log_upper - log_lower) * fraction).exp2();
    }
    -(log_upper + (log_lower - log_upper) * (1.0 - fraction)).exp2()
}

/// Fraction of a native histogram's observations between `lower` and `upper`
/// (Prometheus's `HistogramFraction`).
pub(crate) fn native_fraction(lower: f64, upper: f64, histogram: &FloatHistogram) -> f64 {
    if histogram.count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let custom = histogram.uses_custom_buckets();
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    for mut bucket in histogram.buckets() {
        let mut zero_bucket = false;
        if custom {
            if bucket.lower == f64::NEG_INFINITY && bucket.upper > 0.0 {
                bucket.lower = 0.0;
            }
        } else if bucket.lower <= 0.0 && bucket.upper >= 0.0 {
            zero_bucket = true;
            if histogram.negative_buckets.is_empty() && !histogram.positive_buckets.is_empty() {
                bucket.lower = 0.0;
            } else if histogram.positive_buckets.is_empty() && !histogram.negative_buckets.is_empty() {
                bucket.upper = 0.0;
            }
        }
        let interpolate = |value: f64| {
            if custom || zero_bucket {
                if bucket.upper.is_infinite() {
                    rank
                } else if bucket.lower.is_infinite() {
                    rank + bucket.count
                } else {
                    rank + bucket.count * (value - bucket.lower) / (bucket.upper - bucket.lower)
                }
            } else {
                let log_lower = bucket.lower.abs().log2();
                let log_upper = bucket.upper.abs().log2();
                let log_value = value.abs().log2();
                let fraction = if value > 0.0 {
                    (log_value - log_lower) / (log_upper - log_lower)
                } else {
                    1.0 - (log_value - log_upper) / (log_lower - log_upper)
                };
                rank + bucket.count * fraction
            }
        };
        if !lower_set && bucket.lower >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && bucket.lower >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && bucket.lower < lower && bucket.upper > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && bucket.lower < upper && bucket.upper > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank += bucket.count;
    }
    if !lower_set || lower_rank > histogram.count {
        lower_rank = histogram.count;
    }
    if !upper_set || upper_rank > histogram.count {
        upper_rank = histogram.count;
    }
    (upper_rank - lower_rank) / histogram.count
}

struct BucketGroup {
    labels: Labels,
    metric_name: String,
    buckets: Vec<Bucket>,
}

impl Evaluator<'_> {
    pub(crate) fn eval_histogram_function(
        &mut self,
        call: &Call,
        name: &str,
        time: i64,
        window: Window,
    ) -> Result<Evaluated, Error> {
        let anchor = format!("{name}(");
        let arguments: Vec<&Expr> = call.args.args.iter().map(|argument| argument.as_ref()).collect();
        let missing = || Error::execution(format!("missing arguments of {name}"));
        let mut quantiles: Vec<(f64, &Expr)> = Vec::new();
        let mut quantile_label = None;
        let mut fraction_bounds = None;
        let vector_expr = match name {
            "histogram_quantile" => {
                let q_expr = *arguments.first().ok_or_else(missing)?;
                quantiles.push((self.eval_scalar(q_expr, time, window)?, q_expr));
                *arguments.get(1).ok_or_else(missing)?
            }
            "histogram_quantiles" => {
                quantile_label = Some(self.eval_string(arguments.get(1).ok_or_else(missing)?, time, window)?);
                for q_expr in arguments.iter().skip(2) {
                    quantiles.push((self.eval_scalar(q_expr, time, window)?, q_expr));
                }
                *arguments.first().ok_or_else(missing)?
            }
            _ => {
                let lower = self.eval_scalar(arguments.first().ok_or_else(missing)?, time, window)?;
                let upper = self.eval_scalar(arguments.get(1).ok_or_else(missing)?, time, window)?;
                fraction_bounds = Some((lower, upper));
                *arguments.get(2).ok_or_else(missing)?
            }
        };
        for (q, q_expr) in &quantiles {
            if q.is_nan() || !(0.0..=1.0).contains(q) {
                let message = format!("quantile value should be between 0 and 1, got {}", format_go_g(*q));
                self.annotate(AnnotationKind::Warning, message, Some(&anchor), Some(q_expr));
            }
        }
        let mut elements = self.eval_vector_with_histograms(vector_expr, time, window)?;
        let mut output = Vec::new();
        let mut mixed: Vec<Labels> = Vec::new();
        if elements.iter().any(|element| element.histogram.is_some()) {
            // A label set that is both a native histogram and a classic one
            // (buckets with `le`) is ambiguous: neither is used.
            let classic: std::collections::HashSet<Labels> = elements
                .iter()
                .filter(|element| element.histogram.is_none() && element.labels.get(BUCKET_LABEL).is_some())
                .map(|element| {
                    let mut builder = element.labels.to_builder();
                    builder.delete(BUCKET_LABEL);
                    builder.build()
                })
                .collect();
            for element in &elements {
                if element.histogram.is_some() && classic.contains(&*element.labels) {
                    mixed.push((*element.labels).clone());
                    let metric = element.labels.metric_name().unwrap_or("").to_owned();
                    let message =
                        format!("vector contains a mix of classic and native histograms for metric name {metric:?}");
                    self.annotate(AnnotationKind::Warning, message, Some(&anchor), Some(vector_expr));
                }
            }
            for element in &elements {
                let Some(histogram) = &element.histogram else { continue };
                if mixed.contains(&element.labels) {
                    continue;
                }
                if let Some((lower, upper)) = fraction_bounds {
                    let value = native_fraction(lower, upper, histogram);
                    let mut result = element.clone();
                    (result.histogram, result.value, result.timestamp, result.drop_name) = (None, value, time, true);
                    output.push(result);
                    continue;
                }
                for (q, _) in &quantiles {
                    let labels = match &quantile_label {
                        Some(label) => {
                            let mut builder = element.labels.to_builder();
                            builder.set(label.clone(), format_open_metrics_float(*q));
                            Arc::new(builder.build())
                        }
                        None => element.labels.clone(),
                    };
                    output.push(Element {
                        histogram: None,
                        labels,
                        value: native_quantile(*q, histogram),
                        timestamp: time,
                        drop_name: true,
                    });
                }
            }
            elements.retain(|element| element.histogram.is_none());
        }
        let node = call as *const Call as usize;
        let mut index: HashMap<Labels, usize> = HashMap::new();
        let mut groups: Vec<BucketGroup> = Vec::new();
        for element in &elements {
            let bound_text = element.labels.get(BUCKET_LABEL).unwrap_or("");
            let Some(upper_bound) = parse_go_float(bound_text) else {
                let metric = element.labels.metric_name().unwrap_or("").to_owned();
                let message = format!(
                    "bucket label {BUCKET_LABEL:?} is missing or has a malformed value of {bound_text:?} for metric name {metric:?}"
                );
                self.annotate(AnnotationKind::Warning, message, Some(&anchor), Some(vector_expr));
                continue;
            };
            let key = self.derived_labels(node, &element.labels, |labels| {
                let mut builder = labels.to_builder();
                builder.delete(BUCKET_LABEL);
                builder.build()
            });
            if mixed.contains(&key) {
                continue;
            }
            let position = match index.get(&key) {
                Some(position) => *position,
                None => {
                    index.insert(key.clone(), groups.len());
                    groups.push(BucketGroup {
                        labels: key.clone(),
                        metric_name: element.labels.metric_name().unwrap_or("").to_owned(),
                        buckets: Vec::new(),
                    });
                    groups.len() - 1
                }
            };
            groups[position].buckets.push(Bucket { upper_bound, count: element.value });
        }
        let mut forced_names = Vec::new();
        for group in groups {
            if let Some((lower, upper)) = fraction_bounds {
                output.push(Element {
                    histogram: None,
                    labels: Arc::new(group.labels),
                    value: bucket_fraction(lower, upper, group.buckets),
                    timestamp: time,
                    drop_name: true,
                });
                continue;
            }
            for (q, _) in &quantiles {
                let (value, forced) = bucket_quantile(*q, group.buckets.clone());
                if forced {
                    forced_names.push(group.metric_name.clone());
                }
                let labels = match &quantile_label {
                    Some(label) => {
                        let mut builder = group.labels.to_builder();
                        builder.set(label.clone(), format_open_metrics_float(*q));
                        builder.build()
                    }
                    None => group.labels.clone(),
                };
                output.push(Element {
                    histogram: None,
                    labels: Arc::new(labels),
                    value,
                    timestamp: time,
                    drop_name: true,
                });
            }
        }
        for metric in forced_names {
            let message = format!(
                "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {metric:?}"
            );
            self.annotate(AnnotationKind::Info, message, Some(&anchor), Some(vector_expr));
        }
        Ok(Evaluated::Vector(output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(pairs: &[(f64, f64)]) -> Vec<Bucket> {
        pairs.iter().map(|(upper_bound, count)| Bucket { upper_bound: *upper_bound, count: *count }).collect()
    }

    #[test]
    fn quantile_interpolates_within_bucket() {
        let (value, forced) = bucket_quantile(0.5, buckets(&[(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)]));
        assert_eq!(value, 1.0);
        assert!(!forced);
    }

    #[test]
    fn quantile_fixes_non_monotonic_buckets() {
        let (_, forced) = bucket_quantile(0.5, buckets(&[(1.0, 10.0), (2.0, 5.0), (f64::INFINITY, 20.0)]));
        assert!(forced);
    }

    #[test]
    fn quantile_needs_an_infinite_bucket() {
        assert!(bucket_quantile(0.5, buckets(&[(1.0, 10.0)])).0.is_nan());
    }

    #[test]
    fn open_metrics_formatting_adds_decimal_point() {
        assert_eq!(format_open_metrics_float(0.0), "0.0");
        assert_eq!(format_open_metrics_float(0.25), "0.25");
        assert_eq!(format_open_metrics_float(f64::NAN), "NaN");
    }
}
