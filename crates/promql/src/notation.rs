//! The `{{…}}` notation of native histograms in promqltest scripts and
//! promtool unit tests: `{{schema:1 sum:3 count:22 z_bucket:1 z_bucket_w:0.01
//! buckets:[5 10 7] offset:-1 n_buckets:[1] n_offset:2 custom_values:[1 2]
//! counter_reset_hint:gauge}}`, and its expansions `{{…}}xN` (N+1 copies) and
//! `{{a}}+{{b}}xN` / `{{a}}-{{b}}xN` (a, a±b, a±2b, … added step by step, as
//! Prometheus does). Buckets are absolute counts in one span from `offset`.
//!
//! Parsing only; printing is [`tsdb::FloatHistogram::test_expression`].

use tsdb::FloatHistogram;
use tsdb::histogram::{CounterResetHint, Span};

/// Parses one histogram, `{{…}}` included.
pub fn parse_histogram(text: &str) -> Result<FloatHistogram, String> {
    let body = text
        .trim()
        .strip_prefix("{{")
        .and_then(|rest| rest.strip_suffix("}}"))
        .ok_or_else(|| format!("invalid histogram {text:?}: expected {{{{…}}}}"))?;
    let mut histogram = FloatHistogram::default();
    let mut positive = (Vec::new(), 0i32);
    let mut negative = (Vec::new(), 0i32);
    let mut rest = body.trim_start();
    while !rest.is_empty() {
        let (key, after_key) =
            rest.split_once(':').ok_or_else(|| format!("invalid histogram field {rest:?}: expected key:value"))?;
        let key = key.trim();
        let after_key = after_key.trim_start();
        let (value, after_value) = if let Some(list) = after_key.strip_prefix('[') {
            let (items, after) =
                list.split_once(']').ok_or_else(|| format!("unterminated list in histogram field {key:?}"))?;
            (Field::List(items.split_whitespace().map(number).collect::<Result<Vec<_>, _>>()?), after)
        } else {
            let end = after_key.find(char::is_whitespace).unwrap_or(after_key.len());
            (Field::Scalar(&after_key[..end]), &after_key[end..])
        };
        rest = after_value.trim_start();
        match (key, value) {
            ("schema", Field::Scalar(text)) => histogram.schema = integer(text)?,
            ("sum", Field::Scalar(text)) => histogram.sum = number(text)?,
            ("count", Field::Scalar(text)) => histogram.count = number(text)?,
            ("z_bucket", Field::Scalar(text)) => histogram.zero_count = number(text)?,
            ("z_bucket_w", Field::Scalar(text)) => histogram.zero_threshold = number(text)?,
            ("offset", Field::Scalar(text)) => positive.1 = integer(text)?,
            ("n_offset", Field::Scalar(text)) => negative.1 = integer(text)?,
            ("buckets", Field::List(values)) => positive.0 = values,
            ("n_buckets", Field::List(values)) => negative.0 = values,
            ("custom_values", Field::List(values)) => histogram.custom_values = values,
            ("counter_reset_hint", Field::Scalar(text)) => {
                histogram.counter_reset_hint = match text {
                    "unknown" => CounterResetHint::Unknown,
                    "reset" => CounterResetHint::CounterReset,
                    "not_reset" => CounterResetHint::NotCounterReset,
                    "gauge" => CounterResetHint::Gauge,
                    other => return Err(format!("invalid counter_reset_hint {other:?}")),
                }
            }
            (key, _) => return Err(format!("invalid histogram field {key:?}")),
        }
    }
    let spans = |(buckets, offset): &(Vec<f64>, i32)| {
        if buckets.is_empty() { Vec::new() } else { vec![Span { offset: *offset, length: buckets.len() as u32 }] }
    };
    histogram.positive_spans = spans(&positive);
    histogram.negative_spans = spans(&negative);
    histogram.positive_buckets = positive.0;
    histogram.negative_buckets = negative.0;
    Ok(histogram)
}

enum Field<'a> {
    Scalar(&'a str),
    List(Vec<f64>),
}

fn number(text: &str) -> Result<f64, String> {
    crate::histogram::parse_go_float(text).ok_or_else(|| format!("invalid number {text:?} in histogram"))
}

fn integer(text: &str) -> Result<i32, String> {
    text.parse().map_err(|_| format!("invalid integer {text:?} in histogram"))
}

/// Expands one histogram value token: `{{…}}`, `{{…}}xN`, `{{a}}+{{b}}xN`
/// or `{{a}}-{{b}}xN` (whitespace inside the braces allowed).
pub fn expand_histograms(token: &str) -> Result<Vec<FloatHistogram>, String> {
    let token = token.trim();
    let first_end = token.find("}}").ok_or_else(|| format!("invalid histogram {token:?}"))? + 2;
    let base = parse_histogram(&token[..first_end])?;
    let rest = &token[first_end..];
    if rest.is_empty() {
        return Ok(vec![base]);
    }
    let (increment, count_text) = match rest.chars().next() {
        Some(sign @ ('+' | '-')) => {
            let body = &rest[1..];
            let end = body.rfind("}}").ok_or_else(|| format!("invalid histogram increment in {token:?}"))? + 2;
            let increment = parse_histogram(&body[..end])?;
            (Some((sign, increment)), &body[end..])
        }
        _ => (None, rest),
    };
    let count: usize = count_text
        .trim()
        .strip_prefix('x')
        .and_then(|count| count.parse().ok())
        .ok_or_else(|| format!("invalid repetition in {token:?}"))?;
    let mut output = Vec::with_capacity(count + 1);
    let mut current = base;
    output.push(current.clone());
    for _ in 0..count {
        if let Some((sign, increment)) = &increment {
            if current.schema > increment.schema && !current.uses_custom_buckets() {
                return Err(format!(
                    "error combining histograms: cannot merge from schema {} to {}",
                    increment.schema, current.schema
                ));
            }
            current = if *sign == '+' { current.add(increment) } else { current.sub(increment) }
                .map_err(|error| format!("error combining histograms: {error}"))?;
        }
        output.push(current.clone());
    }
    Ok(output)
}

/// Splits series values at whitespace, keeping each `{{…}}` expression
/// (with its `+{{…}}`/`xN` suffix) as one token.
pub fn tokens(text: &str) -> Vec<String> {
    let mut output: Vec<String> = Vec::new();
    let mut depth = 0i64;
    for word in text.split_whitespace() {
        let open = depth > 0;
        depth += word.matches("{{").count() as i64 - word.matches("}}").count() as i64;
        match output.last_mut() {
            Some(last) if open => {
                last.push(' ');
                last.push_str(word);
            }
            _ => output.push(word.to_owned()),
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_field() {
        let histogram = parse_histogram(
            "{{schema:1 sum:-0.3 count:32.1 z_bucket:7.1 z_bucket_w:0.05 buckets:[5.1 10 7] offset:-3 n_buckets:[4.1 5] n_offset:-5}}",
        )
        .expect("valid histogram");
        assert_eq!(histogram.schema, 1);
        assert_eq!(histogram.positive_spans, vec![Span { offset: -3, length: 3 }]);
        assert_eq!(histogram.negative_buckets, vec![4.1, 5.0]);
        assert_eq!(
            histogram.test_expression(),
            "{{schema:1 count:32.1 sum:-0.3 z_bucket:7.1 z_bucket_w:0.05 buckets:[5.1 10 7] offset:-3 n_buckets:[4.1 5] n_offset:-5}}"
        );
    }

    #[test]
    fn expands_repetitions_and_increments() {
        let values =
            expand_histograms("{{sum:3 count:2 buckets:[2]}}+{{sum:1.3 count:1 buckets:[1]}}x2").expect("valid");
        assert_eq!(values.len(), 3);
        assert_eq!(values[2].test_expression(), "{{count:4 sum:5.6 buckets:[4]}}");
        assert_eq!(tokens("1 {{a:1 b:[1 2]}}x2 3"), vec!["1", "{{a:1 b:[1 2]}}x2", "3"]);
        assert!(parse_histogram("{{schema:x}}").is_err());
    }
}
