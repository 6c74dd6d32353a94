//! Hand-written JSON output for query results: large results are written
//! straight into one buffer, without building an intermediate value tree.
//! Floats follow Prometheus's API: sample values as strings (`"NaN"`, `"+Inf"`),
//! timestamps as numbers of seconds with millisecond precision. Native
//! histograms are `"histogram"`/`"histograms"` entries holding count, sum and
//! the non-empty buckets as `[boundary rule, lower, upper, count]`.

use std::fmt::Write;

use promql::{Annotation, Value};
use tsdb::{FloatHistogram, Labels, Sample};

/// Appends `text` as a JSON string literal.
pub fn write_string(out: &mut String, text: &str) {
    out.push('"');
    let mut start = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[start..index]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        start = index + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

/// A sample value as Prometheus renders it (Go's `FormatFloat(v, 'f', -1, 64)`).
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{value}")
    }
}

/// Appends a millisecond timestamp as seconds (`1435781451.781`).
pub fn write_timestamp(out: &mut String, timestamp_ms: i64) {
    if timestamp_ms < 0 {
        out.push('-');
    }
    let magnitude = timestamp_ms.unsigned_abs();
    let (seconds, millis) = (magnitude / 1000, magnitude % 1000);
    if millis == 0 {
        let _ = write!(out, "{seconds}");
    } else {
        let fraction = format!("{millis:03}");
        let _ = write!(out, "{seconds}.{}", fraction.trim_end_matches('0'));
    }
}

fn write_point(out: &mut String, sample: &Sample) {
    out.push('[');
    write_timestamp(out, sample.timestamp);
    out.push_str(",\"");
    out.push_str(&format_value(sample.value));
    out.push_str("\"]");
}

/// Appends `[timestamp,{"count":…,"sum":…,"buckets":[…]}]`.
fn write_histogram_point(out: &mut String, timestamp_ms: i64, histogram: &FloatHistogram) {
    out.push('[');
    write_timestamp(out, timestamp_ms);
    out.push_str(",{\"count\":\"");
    out.push_str(&format_value(histogram.count));
    out.push_str("\",\"sum\":\"");
    out.push_str(&format_value(histogram.sum));
    out.push('"');
    let buckets = histogram.buckets();
    if !buckets.is_empty() {
        out.push_str(",\"buckets\":[");
        for (index, bucket) in buckets.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            // 0: (lower, upper], 1: [lower, upper), 2: (lower, upper), 3: [lower, upper].
            let rule = match (bucket.lower_inclusive, bucket.upper_inclusive) {
                (false, true) => 0,
                (true, false) => 1,
                (false, false) => 2,
                (true, true) => 3,
            };
            let _ = write!(
                out,
                "[{rule},\"{}\",\"{}\",\"{}\"]",
                format_value(bucket.lower),
                format_value(bucket.upper),
                format_value(bucket.count)
            );
        }
        out.push(']');
    }
    out.push_str("}]");
}

pub fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (index, label) in labels.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(out, &label.name);
        out.push(':');
        write_string(out, &label.value);
    }
    out.push('}');
}

/// Appends `{"resultType":...,"result":...}` for a query value evaluated at `time_ms`.
pub fn write_query_data(out: &mut String, value: &Value, time_ms: i64) {
    match value {
        Value::Scalar(timestamp, scalar) => {
            out.push_str("{\"resultType\":\"scalar\",\"result\":");
            write_point(out, &Sample { timestamp: *timestamp, value: *scalar });
            out.push('}');
        }
        Value::String(text) => {
            out.push_str("{\"resultType\":\"string\",\"result\":[");
            write_timestamp(out, time_ms);
            out.push(',');
            write_string(out, text);
            out.push_str("]}");
        }
        Value::Vector(samples) => {
            out.push_str("{\"resultType\":\"vector\",\"result\":[");
            for (index, (labels, sample)) in samples.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(out, labels);
                match &sample.histogram {
                    Some(histogram) => {
                        out.push_str(",\"histogram\":");
                        write_histogram_point(out, sample.timestamp, histogram);
                    }
                    None => {
                        out.push_str(",\"value\":");
                        write_point(out, &Sample { timestamp: sample.timestamp, value: sample.value });
                    }
                }
                out.push('}');
            }
            out.push_str("]}");
        }
        Value::Matrix(series) => {
            out.push_str("{\"resultType\":\"matrix\",\"result\":[");
            for (index, data) in series.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(out, &data.labels);
                if !data.samples.is_empty() || data.histograms.is_empty() {
                    out.push_str(",\"values\":[");
                    for (point_index, sample) in data.samples.iter().enumerate() {
                        if point_index > 0 {
                            out.push(',');
                        }
                        write_point(out, sample);
                    }
                    out.push(']');
                }
                if !data.histograms.is_empty() {
                    out.push_str(",\"histograms\":[");
                    for (point_index, sample) in data.histograms.iter().enumerate() {
                        if point_index > 0 {
                            out.push(',');
                        }
                        write_histogram_point(out, sample.timestamp, &sample.histogram);
                    }
                    out.push(']');
                }
                out.push('}');
            }
            out.push_str("]}");
        }
    }
}

/// Appends `,"warnings":[...]` and `,"infos":[...]` when there are any.
pub fn write_annotations(out: &mut String, warnings: &[Annotation], infos: &[Annotation]) {
    for (key, list) in [("warnings", warnings), ("infos", infos)] {
        if list.is_empty() {
            continue;
        }
        let _ = write!(out, ",\"{key}\":[");
        for (index, annotation) in list.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            write_string(out, &annotation.to_string());
        }
        out.push(']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_timestamps_render_like_prometheus() {
        assert_eq!(format_value(1.0), "1");
        assert_eq!(format_value(0.1), "0.1");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        let mut out = String::new();
        write_timestamp(&mut out, 1_435_781_451_781);
        out.push(' ');
        write_timestamp(&mut out, 1_435_781_451_000);
        out.push(' ');
        write_timestamp(&mut out, 1_435_781_451_500);
        out.push(' ');
        write_timestamp(&mut out, -1500);
        assert_eq!(out, "1435781451.781 1435781451 1435781451.5 -1.5");
    }

    #[test]
    fn histograms_render_like_prometheus() {
        let histogram = promql::notation::parse_histogram(
            "{{schema:0 sum:5 count:4 z_bucket:1 z_bucket_w:0.5 buckets:[1 2] n_buckets:[0]}}",
        )
        .expect("valid histogram");
        let labels = Labels::from_pairs([("__name__", "h")]);
        let sample =
            promql::InstantSample { timestamp: 1000, value: 0.0, histogram: Some(std::sync::Arc::new(histogram)) };
        let mut out = String::new();
        write_query_data(&mut out, &Value::Vector(vec![(labels, sample)]), 1000);
        assert_eq!(
            out,
            "{\"resultType\":\"vector\",\"result\":[{\"metric\":{\"__name__\":\"h\"},\"histogram\":[1,{\"count\":\"4\",\"sum\":\"5\",\"buckets\":[[3,\"-0.5\",\"0.5\",\"1\"],[0,\"0.5\",\"1\",\"1\"],[0,\"1\",\"2\",\"2\"]]}]}]}"
        );
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        write_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\nd\\u0001é\"");
        let parsed: String = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }
}
