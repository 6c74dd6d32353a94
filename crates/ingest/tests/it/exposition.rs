use ingest::exposition::{Entry, Format, MetricType, ParseErrorKind, Parser, parse};
use tsdb::Labels;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// Parses and expects success.
fn parse_ok(input: &str, format: Format) -> ingest::exposition::Exposition {
    match parse(input.as_bytes(), format) {
        Ok(exposition) => exposition,
        Err(error) => panic!("unexpected error {error} for input:\n{input}"),
    }
}

/// Parses and returns the error's line, column and kind.
fn parse_err(input: &str, format: Format) -> (u64, usize, ParseErrorKind) {
    match parse(input.as_bytes(), format) {
        Ok(exposition) => panic!("expected an error, got {exposition:?}"),
        Err(error) => (error.line, error.column, error.kind),
    }
}

#[test]
fn text_format_with_metadata_comments_and_timestamps() {
    let input = "# HELP http_requests_total The total number of requests.\n\
                 # TYPE http_requests_total counter\n\
                 \n\
                 # a free comment\n\
                 http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
                 http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n\
                 metric_without_timestamp_and_labels 12.47\n\
                 \t  indented_metric   -7   \n\
                 metric_with_windows_line_ending 1\r\n";
    let exposition = parse_ok(input, Format::PrometheusText);
    assert_eq!(exposition.samples.len(), 5);
    assert_eq!(
        exposition.samples[0].labels,
        labels(&[("__name__", "http_requests_total"), ("method", "post"), ("code", "200")])
    );
    assert_eq!(exposition.samples[0].timestamp, Some(1_395_066_363_000));
    assert_eq!(exposition.samples[1].value, 3.0);
    assert_eq!(exposition.samples[2].timestamp, None);
    assert_eq!(exposition.samples[2].value, 12.47);
    assert_eq!(exposition.samples[3].value, -7.0);
    assert_eq!(exposition.samples[4].value, 1.0);
    let family = &exposition.families["http_requests_total"];
    assert_eq!(family.metric_type, MetricType::Counter);
    assert_eq!(family.help.as_deref(), Some("The total number of requests."));
}

#[test]
fn openmetrics_with_units_exemplars_created_and_eof() {
    let input = "# TYPE foo counter\n\
                 # UNIT foo seconds\n\
                 # HELP foo Help with \\\"quotes\\\" and \\\\ and \\n.\n\
                 foo_total{a=\"b\"} 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67 1520879607.7\n\
                 foo_total{a=\"c\"} 1 # {trace_id=\"x\"} 1\n\
                 foo_created{a=\"b\"} 1520430000.123\n\
                 # TYPE rpc_duration_seconds histogram\n\
                 rpc_duration_seconds_bucket{le=\"0.1\"} 1 10\n\
                 rpc_duration_seconds_bucket{le=\"+Inf\"} 2 10\n\
                 rpc_duration_seconds_count 2 10\n\
                 rpc_duration_seconds_sum 0.3 10\n\
                 # EOF\n";
    let exposition = parse_ok(input, Format::OpenMetrics);
    let family = &exposition.families["foo"];
    assert_eq!(family.metric_type, MetricType::Counter);
    assert_eq!(family.unit.as_deref(), Some("seconds"));
    assert_eq!(family.help.as_deref(), Some("Help with \"quotes\" and \\ and \n."));
    assert_eq!(exposition.samples[0].timestamp, Some(1_520_879_607_789));
    assert_eq!(exposition.samples[1].timestamp, None);
    assert_eq!(exposition.samples[2].labels.metric_name(), Some("foo_created"));
    assert_eq!(exposition.samples[3].timestamp, Some(10_000));
    assert_eq!(exposition.samples.len(), 7);
}

#[test]
fn sample_ref_reports_family_type_and_created() {
    let input = b"# TYPE foo counter\nfoo_total 1\nfoo_created 2\nbar 3\n# EOF";
    let mut parser = Parser::new(Format::OpenMetrics);
    let mut seen = Vec::new();
    for line in input.split(|byte| *byte == b'\n') {
        if let Entry::Sample(sample) = parser.parse_line(line).expect("valid line") {
            seen.push((sample.metric_name().to_owned(), sample.metric_type, sample.is_created()));
        }
    }
    parser.finish().expect("has # EOF");
    assert_eq!(
        seen,
        vec![
            ("foo_total".to_owned(), MetricType::Counter, false),
            ("foo_created".to_owned(), MetricType::Counter, true),
            ("bar".to_owned(), MetricType::Unknown, false),
        ]
    );
}

#[test]
fn quoted_utf8_metric_and_label_names() {
    let input = "# TYPE \"my.metric\" gauge\n\
                 {\"my.metric\", \"my.label\"=\"v\", a=\"b\"} 1\n\
                 {a=\"b\", \"my.metric\"} 2\n\
                 legacy{\"dotted.label\"=\"x\",} 3\n\
                 {\"ünïcødé\"} 4\n\
                 # EOF\n";
    let exposition = parse_ok(input, Format::OpenMetrics);
    assert_eq!(exposition.families["my.metric"].metric_type, MetricType::Gauge);
    assert_eq!(exposition.samples[0].labels, labels(&[("__name__", "my.metric"), ("my.label", "v"), ("a", "b")]));
    assert_eq!(exposition.samples[1].labels, labels(&[("__name__", "my.metric"), ("a", "b")]));
    assert_eq!(exposition.samples[2].labels, labels(&[("__name__", "legacy"), ("dotted.label", "x")]));
    assert_eq!(exposition.samples[3].labels.metric_name(), Some("ünïcødé"));
}

#[test]
fn label_value_escapes() {
    let input = "m{a=\"x\\\\y\\\"z\\nw\",b=\"plain\",c=\"ü\\\\\"} 1\n";
    let exposition = parse_ok(input, Format::PrometheusText);
    let sample = &exposition.samples[0];
    assert_eq!(sample.labels.get("a"), Some("x\\y\"z\nw"));
    assert_eq!(sample.labels.get("b"), Some("plain"));
    assert_eq!(sample.labels.get("c"), Some("ü\\"));
}

#[test]
fn special_and_float_values() {
    let input = "a NaN\nb +Inf\nc -Inf\nd 1e-3\ne -0\nf 1.5E+10\ng Inf\nh 0.1\ni 123456789012345678\n";
    let exposition = parse_ok(input, Format::PrometheusText);
    let values: Vec<f64> = exposition.samples.iter().map(|sample| sample.value).collect();
    assert!(values[0].is_nan());
    assert_eq!(values[1], f64::INFINITY);
    assert_eq!(values[2], f64::NEG_INFINITY);
    assert_eq!(values[3], 0.001);
    assert_eq!(values[4].to_bits(), (-0.0f64).to_bits());
    assert_eq!(values[5], 1.5e10);
    assert_eq!(values[6], f64::INFINITY);
    assert_eq!(values[7], 0.1);
    assert_eq!(values[8], 123_456_789_012_345_678.0);
}

#[test]
fn openmetrics_timestamps_are_seconds_converted_exactly() {
    let input = "a 1 1700000000.123\nb 1 1700000000\nc 1 -1.5\nd 1 1.5e3\ne 1 0.0019\n# EOF\n";
    let exposition = parse_ok(input, Format::OpenMetrics);
    let timestamps: Vec<Option<i64>> = exposition.samples.iter().map(|sample| sample.timestamp).collect();
    assert_eq!(
        timestamps,
        vec![Some(1_700_000_000_123), Some(1_700_000_000_000), Some(-1_500), Some(1_500_000), Some(1)]
    );
}

#[test]
fn errors_carry_line_column_and_kind() {
    let text = Format::PrometheusText;
    assert_eq!(parse_err("ok 1\nm{a \"b\"} 1\n", text), (2, 5, ParseErrorKind::ExpectedEquals));
    assert_eq!(parse_err("m{a=\"1\",a=\"2\"} 1", text), (1, 9, ParseErrorKind::DuplicateLabel("a".to_owned())));
    assert_eq!(parse_err("m{a=\"1\"} 1x", text), (1, 10, ParseErrorKind::InvalidValue("1x".to_owned())));
    assert_eq!(parse_err("m{a=b} 1", text), (1, 5, ParseErrorKind::ExpectedLabelValue));
    assert_eq!(parse_err("m{a=\"\\t\"} 1", text), (1, 6, ParseErrorKind::InvalidEscape('t')));
    assert_eq!(parse_err("m{a=\"b} 1", text), (1, 5, ParseErrorKind::UnterminatedString));
    assert_eq!(parse_err("m{a=\"b\" c=\"d\"} 1", text), (1, 9, ParseErrorKind::ExpectedCommaOrBrace));
    assert_eq!(parse_err("m{a=\"b\"", text), (1, 8, ParseErrorKind::UnterminatedLabelSet));
    assert_eq!(parse_err("{a=\"b\"} 1", text), (1, 1, ParseErrorKind::MissingMetricName));
    assert_eq!(parse_err("{__name__=\"\"} 1", text), (1, 1, ParseErrorKind::MissingMetricName));
    assert_eq!(parse_err("m{\"x\"} 1", text), (1, 3, ParseErrorKind::DuplicateMetricName));
    assert_eq!(parse_err("1m 1", text), (1, 1, ParseErrorKind::InvalidMetricName));
    assert_eq!(parse_err("m{1a=\"b\"} 1", text), (1, 3, ParseErrorKind::InvalidLabelName));
    assert_eq!(parse_err("m{a-b=\"c\"} 1", text), (1, 4, ParseErrorKind::InvalidLabelName));
    assert_eq!(parse_err("m", text), (1, 2, ParseErrorKind::MissingValue));
    assert_eq!(parse_err("m 1 12.5", text), (1, 5, ParseErrorKind::InvalidTimestamp("12.5".to_owned())));
    assert_eq!(parse_err("m 1 2 3", text), (1, 7, ParseErrorKind::TrailingText));
    assert_eq!(parse_err("m 1 # {a=\"b\"} 1", text), (1, 5, ParseErrorKind::ExemplarNotAllowed));
    assert_eq!(parse_err("# TYPE m bogus", text), (1, 10, ParseErrorKind::InvalidMetricType("bogus".to_owned())));
    assert_eq!(
        parse_err("# TYPE m gauge\n# TYPE m counter", text),
        (2, 8, ParseErrorKind::DuplicateMetadata { kind: "TYPE", family: "m".to_owned() })
    );
    let error = parse(b"ok 1\nm{a=\"\xff\"} 1", text).expect_err("invalid UTF-8");
    assert_eq!((error.line, error.column, error.kind), (2, 6, ParseErrorKind::InvalidUtf8));
    // Columns count characters, not bytes.
    assert_eq!(parse_err("m{é=\"b\"} 1", text), (1, 3, ParseErrorKind::InvalidLabelName));
    assert_eq!(parse_err("m{a=\"é\"} x", text), (1, 10, ParseErrorKind::InvalidValue("x".to_owned())));
}

#[test]
fn openmetrics_strictness() {
    let om = Format::OpenMetrics;
    assert_eq!(parse_err("a 1\n", om), (2, 1, ParseErrorKind::MissingEof));
    assert_eq!(parse_err("a 1\n# EOF\nb 2\n", om), (3, 1, ParseErrorKind::ContentAfterEof));
    assert_eq!(parse_err("a 1\n\n# EOF\n", om), (2, 1, ParseErrorKind::EmptyLine));
    assert_eq!(parse_err("# hello\n# EOF\n", om), (1, 1, ParseErrorKind::InvalidComment));
    assert_eq!(parse_err("a  1\n# EOF\n", om), (1, 3, ParseErrorKind::MissingValue));
    assert_eq!(
        parse_err("# TYPE a untyped\n# EOF\n", om),
        (1, 10, ParseErrorKind::InvalidMetricType("untyped".to_owned()))
    );
    assert_eq!(
        parse_err("# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\n# TYPE a gauge\n# EOF\n", om),
        (5, 8, ParseErrorKind::FamilyNotContiguous("a".to_owned()))
    );
    assert_eq!(
        parse_err("a_total 1 # {a=\"b\"}\n# EOF\n", om),
        (1, 20, ParseErrorKind::InvalidExemplar("expected a space before its value"))
    );
    let long_value = "x".repeat(130);
    let (line, _, kind) = parse_err(&format!("a_total 1 # {{id=\"{long_value}\"}} 1\n# EOF\n"), om);
    assert_eq!((line, kind), (1, ParseErrorKind::ExemplarLabelsTooLong(132)));
    // `# UNIT` and `# EOF` are plain comments in the text format.
    let exposition = parse_ok("# UNIT a seconds\n# EOF\na 1\n", Format::PrometheusText);
    assert_eq!(exposition.samples.len(), 1);
}

#[test]
fn series_text_identifies_the_series_as_written() {
    let mut parser = Parser::new(Format::PrometheusText);
    let Entry::Sample(sample) = parser.parse_line(b"m{a=\"b\"} 1 2").expect("valid") else {
        panic!("expected a sample");
    };
    assert_eq!(sample.series_text(), "m{a=\"b\"}");
    assert_eq!(sample.labels().collect::<Vec<_>>(), vec![("a", "b")]);
}

#[test]
fn empty_label_values_are_dropped() {
    let exposition = parse_ok("m{a=\"\",b=\"x\"} 1\n", Format::PrometheusText);
    assert_eq!(exposition.samples[0].labels, labels(&[("__name__", "m"), ("b", "x")]));
}

#[test]
fn content_type_selects_the_format() {
    assert_eq!(
        Format::from_content_type("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        Format::OpenMetrics
    );
    assert_eq!(Format::from_content_type("text/plain; version=0.0.4"), Format::PrometheusText);
}
