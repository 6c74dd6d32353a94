//! Native histograms as the store holds them: [`FloatHistogram`], Prometheus's
//! float histogram (exponential buckets of a `schema`, a zero bucket, or custom
//! bucket bounds when `schema` is [`CUSTOM_BUCKETS_SCHEMA`]), and
//! [`HistogramSample`], one stamped with its timestamp.
//!
//! The type carries the arithmetic PromQL needs (scale, add, subtract, with
//! schema reduction), compaction, counter-reset detection, bucket iteration
//! with boundaries, tolerant comparison and [`FloatHistogram::test_expression`],
//! the `{{…}}` text promtool and promqltest print. Parsing that notation is the
//! `promql` crate's job; nothing here evaluates queries.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// The schema of histograms with custom bucket bounds (`custom_values`).
pub const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// A run of consecutive buckets, `offset` buckets after the end of the previous
/// span (or after bucket index 0 for the first span).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: i32,
    pub length: u32,
}

/// What is known about a counter reset before this histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CounterResetHint {
    #[default]
    Unknown,
    CounterReset,
    NotCounterReset,
    Gauge,
}

/// A histogram with float counts (Prometheus's `histogram.FloatHistogram`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FloatHistogram {
    pub counter_reset_hint: CounterResetHint,
    pub schema: i32,
    pub zero_threshold: f64,
    pub zero_count: f64,
    pub count: f64,
    pub sum: f64,
    pub positive_spans: Vec<Span>,
    pub positive_buckets: Vec<f64>,
    pub negative_spans: Vec<Span>,
    pub negative_buckets: Vec<f64>,
    /// Upper bounds of the custom buckets (only with [`CUSTOM_BUCKETS_SCHEMA`]).
    pub custom_values: Vec<f64>,
}

/// One histogram sample of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSample {
    pub timestamp: i64,
    pub histogram: Arc<FloatHistogram>,
}

/// One bucket with its bounds, as the HTTP API and quantiles read them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: f64,
}

/// Errors of histogram arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistogramError {
    #[error("histograms with custom buckets and exponential buckets cannot be combined")]
    MixedSchemas,
    #[error("histograms with different custom bucket bounds cannot be combined")]
    CustomBucketsMismatch,
}

/// The bucket indexes and counts of spans and buckets, in order.
fn indexed(spans: &[Span], buckets: &[f64]) -> impl Iterator<Item = (i32, f64)> {
    let mut index = 0i32;
    let mut position = 0usize;
    spans.iter().flat_map(move |span| {
        index += span.offset;
        let start = index;
        index += span.length as i32;
        let from = position;
        position += span.length as usize;
        (0..span.length as usize)
            .map(move |offset| (start + offset as i32, buckets.get(from + offset).copied().unwrap_or(0.0)))
    })
}

/// Spans and buckets from `(index, count)` pairs in increasing index order,
/// keeping up to `max_gap` empty buckets inside a span.
fn from_indexed(pairs: impl IntoIterator<Item = (i32, f64)>, max_gap: i32) -> (Vec<Span>, Vec<f64>) {
    let mut spans: Vec<Span> = Vec::new();
    let mut buckets = Vec::new();
    let mut last: Option<i32> = None;
    for (index, count) in pairs {
        match last {
            Some(previous) if index - previous - 1 <= max_gap => {
                let gap = index - previous - 1;
                buckets.extend(std::iter::repeat_n(0.0, gap.max(0) as usize));
                if let Some(span) = spans.last_mut() {
                    span.length += gap.max(0) as u32 + 1;
                }
            }
            Some(previous) => spans.push(Span { offset: index - previous - 1, length: 1 }),
            None => spans.push(Span { offset: index, length: 1 }),
        }
        buckets.push(count);
        last = Some(index);
    }
    (spans, buckets)
}

/// The index a bucket of `schema` falls into at the smaller `target` schema.
fn reduce_index(index: i32, schema: i32, target: i32) -> i32 {
    let shift = schema - target;
    if shift <= 0 {
        return index;
    }
    // Bucket i covers (base^(i-1), base^i]; halving resolution maps i to ceil(i / 2^shift).
    let divisor = 1i64 << shift;
    let index = i64::from(index);
    ((index + divisor - 1).div_euclid(divisor)) as i32
}

/// Go's `%g` with the shortest representation.
pub fn format_go_g(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf".to_owned() } else { "-Inf".to_owned() };
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0".to_owned() } else { "0".to_owned() };
    }
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        return format!("{mantissa}e{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.abs());
    }
    format!("{value}")
}

impl FloatHistogram {
    /// Whether the histogram has custom bucket bounds.
    pub fn uses_custom_buckets(&self) -> bool {
        self.schema == CUSTOM_BUCKETS_SCHEMA
    }

    /// Positive buckets as `(index, count)` pairs in index order.
    pub fn positive_indexed(&self) -> impl Iterator<Item = (i32, f64)> + '_ {
        indexed(&self.positive_spans, &self.positive_buckets)
    }

    /// Negative buckets as `(index, count)` pairs in index order.
    pub fn negative_indexed(&self) -> impl Iterator<Item = (i32, f64)> + '_ {
        indexed(&self.negative_spans, &self.negative_buckets)
    }

    /// Multiplies every count and the sum by `factor`.
    pub fn scale(&mut self, factor: f64) {
        self.zero_count *= factor;
        self.count *= factor;
        self.sum *= factor;
        self.positive_buckets.iter_mut().for_each(|count| *count *= factor);
        self.negative_buckets.iter_mut().for_each(|count| *count *= factor);
    }

    /// Divides every count and the sum by `divisor`.
    pub fn divide(&mut self, divisor: f64) {
        self.zero_count /= divisor;
        self.count /= divisor;
        self.sum /= divisor;
        self.positive_buckets.iter_mut().for_each(|count| *count /= divisor);
        self.negative_buckets.iter_mut().for_each(|count| *count /= divisor);
    }

    /// `self + other`, at the smaller schema and larger zero threshold.
    pub fn add(&self, other: &FloatHistogram) -> Result<FloatHistogram, HistogramError> {
        self.combine(other, 1.0)
    }

    /// `self - other`, at the smaller schema and larger zero threshold.
    pub fn sub(&self, other: &FloatHistogram) -> Result<FloatHistogram, HistogramError> {
        self.combine(other, -1.0)
    }

    fn combine(&self, other: &FloatHistogram, sign: f64) -> Result<FloatHistogram, HistogramError> {
        if self.uses_custom_buckets() != other.uses_custom_buckets() {
            return Err(HistogramError::MixedSchemas);
        }
        if self.uses_custom_buckets() && self.custom_values != other.custom_values {
            return Err(HistogramError::CustomBucketsMismatch);
        }
        let schema = self.schema.min(other.schema);
        let zero_threshold = self.zero_threshold.max(other.zero_threshold);
        let mut zero_count = 0.0;
        let mut positive: BTreeMap<i32, f64> = BTreeMap::new();
        let mut negative: BTreeMap<i32, f64> = BTreeMap::new();
        for (histogram, factor) in [(self, 1.0), (other, sign)] {
            zero_count += factor * histogram.zero_count;
            let widened = histogram.zero_threshold < zero_threshold;
            let sides = [
                (&mut positive, histogram.positive_indexed().collect::<Vec<_>>()),
                (&mut negative, histogram.negative_indexed().collect::<Vec<_>>()),
            ];
            for (target, buckets) in sides {
                for (index, count) in buckets {
                    let index = if histogram.uses_custom_buckets() {
                        index
                    } else {
                        reduce_index(index, histogram.schema, schema)
                    };
                    if widened
                        && !histogram.uses_custom_buckets()
                        && bucket_upper(index, schema).abs() <= zero_threshold
                    {
                        zero_count += factor * count;
                        continue;
                    }
                    *target.entry(index).or_insert(0.0) += factor * count;
                }
            }
        }
        let (positive_spans, positive_buckets) = from_indexed(positive, 0);
        let (negative_spans, negative_buckets) = from_indexed(negative, 0);
        Ok(FloatHistogram {
            counter_reset_hint: if self.counter_reset_hint == CounterResetHint::Gauge
                || other.counter_reset_hint == CounterResetHint::Gauge
            {
                CounterResetHint::Gauge
            } else {
                CounterResetHint::Unknown
            },
            schema,
            zero_threshold,
            zero_count,
            count: self.count + sign * other.count,
            sum: self.sum + sign * other.sum,
            positive_spans,
            positive_buckets,
            negative_spans,
            negative_buckets,
            custom_values: self.custom_values.clone(),
        })
    }

    /// Drops empty buckets at span edges and merges spans at most `max_empty`
    /// buckets apart (Prometheus's `Compact`).
    pub fn compact(&mut self, max_empty: i32) {
        let trim = |pairs: Vec<(i32, f64)>| -> (Vec<Span>, Vec<f64>) {
            from_indexed(pairs.into_iter().filter(|(_, count)| *count != 0.0), max_empty)
        };
        let (spans, buckets) = trim(self.positive_indexed().collect());
        self.positive_spans = spans;
        self.positive_buckets = buckets;
        let (spans, buckets) = trim(self.negative_indexed().collect());
        self.negative_spans = spans;
        self.negative_buckets = buckets;
    }

    /// Whether a counter reset happened between `previous` and `self`: a
    /// smaller count, zero bucket or bucket, or a change of bucket layout that
    /// loses resolution.
    pub fn detect_reset(&self, previous: &FloatHistogram) -> bool {
        if self.count < previous.count || self.zero_count < previous.zero_count {
            return true;
        }
        if self.schema > previous.schema || self.zero_threshold < previous.zero_threshold {
            return true;
        }
        if self.uses_custom_buckets() && self.custom_values != previous.custom_values {
            return true;
        }
        let current_positive: BTreeMap<i32, f64> = self.positive_indexed().collect();
        let current_negative: BTreeMap<i32, f64> = self.negative_indexed().collect();
        let lower = |pairs: &mut dyn Iterator<Item = (i32, f64)>, current: &BTreeMap<i32, f64>| {
            let mut reduced: BTreeMap<i32, f64> = BTreeMap::new();
            for (index, count) in pairs {
                let index = if previous.uses_custom_buckets() {
                    index
                } else {
                    reduce_index(index, previous.schema, self.schema)
                };
                *reduced.entry(index).or_insert(0.0) += count;
            }
            reduced.iter().any(|(index, count)| *count > current.get(index).copied().unwrap_or(0.0))
        };
        lower(&mut previous.positive_indexed(), &current_positive)
            || lower(&mut previous.negative_indexed(), &current_negative)
    }

    /// Equality after compaction, with counts, sum and bounds compared by
    /// `close`; the counter-reset hint is not compared.
    pub fn equals_with(&self, other: &FloatHistogram, close: impl Fn(f64, f64) -> bool) -> bool {
        let mut left = self.clone();
        let mut right = other.clone();
        left.compact(0);
        right.compact(0);
        let same_buckets = |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(a, b)| close(*a, *b));
        left.schema == right.schema
            && close(left.zero_threshold, right.zero_threshold)
            && close(left.zero_count, right.zero_count)
            && close(left.count, right.count)
            && close(left.sum, right.sum)
            && left.positive_spans == right.positive_spans
            && left.negative_spans == right.negative_spans
            && same_buckets(&left.positive_buckets, &right.positive_buckets)
            && same_buckets(&left.negative_buckets, &right.negative_buckets)
            && left.custom_values == right.custom_values
    }

    /// Every non-empty bucket with its bounds: negative buckets from the most
    /// negative, the zero bucket, then positive buckets (Prometheus's
    /// `AllBucketIterator`, as the HTTP API lists them).
    pub fn buckets(&self) -> Vec<Bucket> {
        let mut output = Vec::new();
        if self.uses_custom_buckets() {
            for (index, count) in self.positive_indexed() {
                let position = usize::try_from(index).unwrap_or(usize::MAX);
                let upper = self.custom_values.get(position).copied().unwrap_or(f64::INFINITY);
                let lower = match position.checked_sub(1) {
                    Some(previous) => self.custom_values.get(previous).copied().unwrap_or(f64::INFINITY),
                    None => f64::NEG_INFINITY,
                };
                if count != 0.0 {
                    output.push(Bucket { lower, upper, lower_inclusive: false, upper_inclusive: true, count });
                }
            }
            return output;
        }
        let negative: Vec<(i32, f64)> = self.negative_indexed().collect();
        for (index, count) in negative.into_iter().rev() {
            if count != 0.0 {
                output.push(Bucket {
                    lower: -bucket_upper(index, self.schema),
                    upper: -bucket_upper(index - 1, self.schema),
                    lower_inclusive: true,
                    upper_inclusive: false,
                    count,
                });
            }
        }
        if self.zero_count != 0.0 {
            output.push(Bucket {
                lower: -self.zero_threshold,
                upper: self.zero_threshold,
                lower_inclusive: true,
                upper_inclusive: true,
                count: self.zero_count,
            });
        }
        for (index, count) in self.positive_indexed() {
            if count != 0.0 {
                output.push(Bucket {
                    lower: bucket_upper(index - 1, self.schema),
                    upper: bucket_upper(index, self.schema),
                    lower_inclusive: false,
                    upper_inclusive: true,
                    count,
                });
            }
        }
        output
    }

    /// The text promtool and promqltest print for a histogram
    /// (Prometheus's `TestExpression`): fields left out when zero, buckets
    /// compacted into one span per sign.
    pub fn test_expression(&self) -> String {
        let mut histogram = self.clone();
        histogram.compact(i32::MAX);
        let mut fields = Vec::new();
        if histogram.schema != 0 {
            fields.push(format!("schema:{}", histogram.schema));
        }
        if histogram.count != 0.0 {
            fields.push(format!("count:{}", format_go_g(histogram.count)));
        }
        if histogram.sum != 0.0 {
            fields.push(format!("sum:{}", format_go_g(histogram.sum)));
        }
        if histogram.zero_count != 0.0 {
            fields.push(format!("z_bucket:{}", format_go_g(histogram.zero_count)));
        }
        if histogram.zero_threshold != 0.0 {
            fields.push(format!("z_bucket_w:{}", format_go_g(histogram.zero_threshold)));
        }
        if histogram.uses_custom_buckets() {
            fields.push(format!("custom_values:{}", format_list(&histogram.custom_values)));
        }
        match histogram.counter_reset_hint {
            CounterResetHint::Unknown => {}
            CounterResetHint::CounterReset => fields.push("counter_reset_hint:reset".to_owned()),
            CounterResetHint::NotCounterReset => fields.push("counter_reset_hint:not_reset".to_owned()),
            CounterResetHint::Gauge => fields.push("counter_reset_hint:gauge".to_owned()),
        }
        for (buckets, spans, buckets_key, offset_key) in [
            (&histogram.positive_buckets, &histogram.positive_spans, "buckets", "offset"),
            (&histogram.negative_buckets, &histogram.negative_spans, "n_buckets", "n_offset"),
        ] {
            if !buckets.is_empty() {
                fields.push(format!("{buckets_key}:{}", format_list(buckets)));
            }
            if let Some(span) = spans.first()
                && span.offset != 0
            {
                fields.push(format!("{offset_key}:{}", span.offset));
            }
        }
        format!("{{{{{}}}}}", fields.join(" "))
    }
}

impl fmt::Display for FloatHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.test_expression())
    }
}

fn format_list(values: &[f64]) -> String {
    let items: Vec<String> = values.iter().map(|value| format_go_g(*value)).collect();
    format!("[{}]", items.join(" "))
}

/// The upper bound of exponential bucket `index` at `schema` (Prometheus's `getBound`).
pub fn bucket_upper(index: i32, schema: i32) -> f64 {
    if schema <= 0 {
        let exponent = i64::from(index) << (-schema).min(62);
        if exponent > 1024 {
            return f64::INFINITY;
        }
        if exponent < -1074 {
            return 0.0;
        }
        return 2f64.powi(exponent as i32);
    }
    let per_power = 1i32 << schema.min(30);
    let fraction_index = index.rem_euclid(per_power);
    let exponent = index.div_euclid(per_power) + 1;
    let fraction = 2f64.powf(f64::from(fraction_index) / f64::from(per_power)) / 2.0;
    if fraction == 0.5 && exponent == 1025 {
        return f64::INFINITY;
    }
    fraction * 2f64.powi(exponent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(schema: i32, offset: i32, buckets: &[f64]) -> FloatHistogram {
        FloatHistogram {
            schema,
            count: buckets.iter().sum(),
            positive_spans: vec![Span { offset, length: buckets.len() as u32 }],
            positive_buckets: buckets.to_vec(),
            ..FloatHistogram::default()
        }
    }

    #[test]
    fn adding_reduces_to_the_smaller_schema() {
        let fine = histogram(1, 1, &[1.0, 2.0]);
        let coarse = histogram(0, 1, &[4.0]);
        let sum = fine.add(&coarse).expect("same kind");
        assert_eq!(sum.schema, 0);
        assert_eq!(sum.positive_indexed().collect::<Vec<_>>(), vec![(1, 7.0)]);
        assert_eq!(sum.count, 7.0);
    }

    #[test]
    fn test_expression_compacts_and_skips_zero_fields() {
        let mut value = histogram(1, -3, &[0.0, 5.1, 0.0, 7.0, 0.0]);
        value.sum = -0.3;
        assert_eq!(value.test_expression(), "{{schema:1 count:12.1 sum:-0.3 buckets:[5.1 0 7] offset:-2}}");
    }

    #[test]
    fn bounds_follow_the_schema() {
        assert_eq!(bucket_upper(1, 0), 2.0);
        assert_eq!(bucket_upper(0, 0), 1.0);
        assert!((bucket_upper(1, 1) - std::f64::consts::SQRT_2).abs() < 1e-15);
        assert_eq!(bucket_upper(2, 1), 2.0);
    }

    #[test]
    fn resets_are_detected() {
        let before = histogram(0, 0, &[2.0, 3.0]);
        let after = histogram(0, 0, &[2.0, 1.0]);
        assert!(after.detect_reset(&before));
        assert!(!before.detect_reset(&histogram(0, 0, &[1.0])));
    }
}
