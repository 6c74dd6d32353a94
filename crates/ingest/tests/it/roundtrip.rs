//! Property: samples rendered in either format parse back to the same labels,
//! timestamps and value bits (any NaN matches any NaN).

use ingest::exposition::{Format, format_seconds_timestamp, format_value, parse};
use proptest::prelude::*;
use tsdb::Labels;

#[derive(Debug, Clone)]
struct GeneratedSample {
    name: String,
    labels: Vec<(String, String)>,
    timestamp: Option<i64>,
    value: f64,
}

fn legacy_metric_name() -> impl Strategy<Value = String> {
    "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}"
}

fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![legacy_metric_name(), "[^\\x00]{1,8}", "[a-z.\"\\\\\n ]{1,6}"]
}

fn label_name() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z_][a-zA-Z0-9_]{0,8}", "[^\\x00]{1,6}", "[a-z.\"\\\\\n]{1,4}"]
        .prop_filter("not the metric name label", |name| name != "__name__")
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        (-1_000_000i64..1_000_000).prop_map(|integer| integer as f64),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::NAN),
        Just(-0.0),
    ]
}

fn sample() -> impl Strategy<Value = GeneratedSample> {
    (
        any_name(),
        proptest::collection::btree_map(label_name(), "[^\\x00]{0,10}", 0..5),
        proptest::option::of(-10_000_000_000_000i64..10_000_000_000_000),
        value(),
    )
        .prop_map(|(name, labels, timestamp, value)| GeneratedSample {
            name,
            labels: labels.into_iter().collect(),
            timestamp,
            value,
        })
}

fn is_legacy(name: &str, allow_colon: bool) -> bool {
    let mut bytes = name.bytes();
    let valid_first = |byte: u8| byte.is_ascii_alphabetic() || byte == b'_' || (allow_colon && byte == b':');
    match bytes.next() {
        Some(first) if valid_first(first) => bytes.all(|byte| valid_first(byte) || byte.is_ascii_digit()),
        _ => false,
    }
}

fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '\\' => quoted.push_str("\\\\"),
            '"' => quoted.push_str("\\\""),
            '\n' => quoted.push_str("\\n"),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

fn render(samples: &[GeneratedSample], format: Format) -> String {
    let mut output = String::new();
    for sample in samples {
        let mut items = Vec::new();
        if is_legacy(&sample.name, true) {
            output.push_str(&sample.name);
        } else {
            items.push(quote(&sample.name));
        }
        for (name, value) in &sample.labels {
            let name = if is_legacy(name, false) { name.clone() } else { quote(name) };
            items.push(format!("{name}={}", quote(value)));
        }
        if !items.is_empty() {
            output.push('{');
            output.push_str(&items.join(","));
            output.push('}');
        }
        output.push(' ');
        output.push_str(&format_value(sample.value));
        if let Some(timestamp) = sample.timestamp {
            output.push(' ');
            match format {
                Format::PrometheusText => output.push_str(&timestamp.to_string()),
                Format::OpenMetrics => output.push_str(&format_seconds_timestamp(timestamp)),
            }
        }
        output.push('\n');
    }
    if format == Format::OpenMetrics {
        output.push_str("# EOF\n");
    }
    output
}

fn check_round_trip(samples: &[GeneratedSample], format: Format) -> Result<(), TestCaseError> {
    let text = render(samples, format);
    let parsed = parse(text.as_bytes(), format).map_err(|error| TestCaseError::fail(format!("{error}\n{text}")))?;
    prop_assert_eq!(parsed.samples.len(), samples.len());
    for (expected, got) in samples.iter().zip(&parsed.samples) {
        let expected_labels = Labels::from_pairs(
            std::iter::once(("__name__", expected.name.as_str()))
                .chain(expected.labels.iter().map(|(name, value)| (name.as_str(), value.as_str()))),
        );
        prop_assert_eq!(&got.labels, &expected_labels);
        prop_assert_eq!(got.timestamp, expected.timestamp);
        if expected.value.is_nan() {
            prop_assert!(got.value.is_nan());
        } else {
            prop_assert_eq!(got.value.to_bits(), expected.value.to_bits());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trips_through_the_text_format(samples in proptest::collection::vec(sample(), 1..8)) {
        check_round_trip(&samples, Format::PrometheusText)?;
    }

    #[test]
    fn round_trips_through_openmetrics(samples in proptest::collection::vec(sample(), 1..8)) {
        check_round_trip(&samples, Format::OpenMetrics)?;
    }
}
