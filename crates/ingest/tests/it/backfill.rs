use ingest::backfill::{BackfillOptions, load_file, load_reader};
use ingest::exposition::Format;
use tsdb::{Labels, MatchOp, Matcher, MemStore, Queryable};

fn select_all(store: &MemStore, name: &str) -> Vec<tsdb::SeriesData> {
    let matcher = Matcher::new(MatchOp::Equal, "__name__", name).expect("valid matcher");
    store.select(&[matcher], i64::MIN, i64::MAX).expect("select")
}

#[test]
fn loads_openmetrics_with_timestamps() {
    let input = "# TYPE requests counter\n\
                 requests_total{code=\"200\"} 1 10.000\n\
                 requests_total{code=\"200\"} 3 25.000\n\
                 requests_total{code=\"500\"} 1 10.5\n\
                 requests_created{code=\"200\"} 1.0 10\n\
                 # TYPE temperature gauge\n\
                 temperature 21.5 12\n\
                 # EOF\n";
    let store = MemStore::new();
    let report = load_reader(input.as_bytes(), &store, &BackfillOptions::default()).expect("no I/O error");
    assert_eq!(report.samples, 4);
    assert_eq!(report.series, 3);
    assert_eq!(report.created_skipped, 1);
    assert_eq!(report.rejected(), 0, "{:?}", report.errors);
    assert_eq!((report.min_timestamp, report.max_timestamp), (Some(10_000), Some(25_000)));
    let series = select_all(&store, "requests_total");
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].labels, Labels::from_pairs([("__name__", "requests_total"), ("code", "200")]));
    assert_eq!(series[0].samples.len(), 2);
    assert_eq!(series[0].samples[1].timestamp, 25_000);
    assert_eq!(series[0].samples[1].value, 3.0);
}

#[test]
fn counts_and_reports_refused_lines() {
    let input = "a 1 20\n\
                 a 2 10\n\
                 a 3 20\n\
                 a 1 20\n\
                 b{x=} 1 5\n\
                 c 1\n";
    let store = MemStore::new();
    let options = BackfillOptions { format: Format::OpenMetrics, max_reported_errors: 3, ..BackfillOptions::default() };
    let report = load_reader(input.as_bytes(), &store, &options).expect("no I/O error");
    assert_eq!(report.samples, 2, "the first sample and its exact repeat");
    assert_eq!(report.out_of_order, 1);
    assert_eq!(report.duplicate_timestamps, 1);
    assert_eq!(report.parse_errors, 2, "a bad label value and the missing # EOF");
    assert_eq!(report.missing_timestamps, 1);
    assert_eq!(report.errors.len(), 3);
    assert_eq!(report.errors[0].line, 2);
    assert_eq!(report.errors[1].line, 3);
    assert_eq!(report.errors[2].line, 5);
    assert_eq!(report.errors[2].column, Some(5));
}

#[test]
fn text_format_millisecond_timestamps_and_small_buffers() {
    let mut input = String::new();
    for step in 0..1000 {
        for series in 0..5 {
            input.push_str(&format!(
                "metric{{series=\"{series}\",padding=\"{}\"}} {step} {}\n",
                "p".repeat(series * 40),
                step * 15_000
            ));
        }
    }
    let store = MemStore::new();
    let options =
        BackfillOptions { format: Format::PrometheusText, read_buffer_bytes: 1, ..BackfillOptions::default() };
    let report = load_reader(input.as_bytes(), &store, &options).expect("no I/O error");
    assert_eq!(report.samples, 5000);
    assert_eq!(report.series, 5);
    assert_eq!(report.rejected(), 0);
    assert_eq!(report.max_timestamp, Some(999 * 15_000));
    assert_eq!(store.sample_count(), 5000);
}

#[test]
fn load_file_reads_from_disk_and_names_missing_files() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("data.om");
    std::fs::write(&path, "up{job=\"a\"} 1 1.0\nup{job=\"a\"} 0 2.0\n# EOF").expect("write");
    let store = MemStore::new();
    let report = load_file(&path, &store, &BackfillOptions::default()).expect("loads");
    assert_eq!(report.samples, 2);
    assert_eq!(report.rejected(), 0);
    let missing = load_file(&directory.path().join("missing"), &store, &BackfillOptions::default());
    assert!(matches!(missing, Err(ingest::backfill::Error::Open { .. })));
}
