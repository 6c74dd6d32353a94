//! Fuzzes the exposition parser in both formats, and the backfill loader over
//! the same bytes: no input may panic, and every accepted sample must build a
//! label set that names it.
#![no_main]

use ingest::exposition::{Entry, Format, Parser, for_each_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        let mut parser = Parser::new(format);
        let _ = for_each_line(data, |line| {
            if let Ok(Entry::Sample(sample)) = parser.parse_line(line) {
                let labels = sample.to_labels();
                assert_eq!(labels.metric_name(), Some(sample.metric_name()));
                assert!(sample.series_text().len() <= line.len());
            }
            Ok::<(), ()>(())
        });
        let _ = parser.finish();
        let store = tsdb::MemStore::new();
        let options = ingest::backfill::BackfillOptions { format, read_buffer_bytes: 64, ..Default::default() };
        let report = ingest::backfill::load_reader(data, &store, &options).expect("reading a slice cannot fail");
        // Exact repeats of a series' last sample count as accepted but are stored once.
        assert!(store.sample_count() <= report.samples as usize);
    }
});
