use std::path::{Path, PathBuf};
use std::sync::Arc;

use ingest::backfill::{BackfillOptions, load_reader};
use ingest::durable::DurableStore;
use ingest::import::{ImportError, ImportOptions, STAGING_DIRECTORY, create_blocks};
use tsdb::{MatchOp, Matcher, MemStore, Queryable};

const HOUR_MS: i64 = 60 * 60 * 1000;

/// An OpenMetrics file grouped by series (as `gen-busflow` writes it): three
/// series sampled every 5 minutes from 00:40 to 03:20, a `_created` sample
/// and a NaN, so blocks of one hour cover four windows, the first partly.
fn series_ordered_input() -> String {
    let mut text = String::from("# TYPE requests counter\n");
    for code in ["200", "404", "500"] {
        for step in 0..=32 {
            let seconds = 40 * 60 + step * 300;
            let value = if code == "404" && step == 7 { "NaN".to_owned() } else { format!("{}", step * 3 + 1) };
            text.push_str(&format!("requests_total{{code=\"{code}\"}} {value} {seconds}.000\n"));
        }
        text.push_str(&format!("requests_created{{code=\"{code}\"}} 1.0 2400\n"));
    }
    text.push_str("# TYPE temperature gauge\ntemperature 21.5 3000\ntemperature 22.25 9000.5\n# EOF\n");
    text
}

fn write_input(directory: &Path, text: &str) -> PathBuf {
    let path = directory.join("input.om");
    std::fs::write(&path, text).expect("write input");
    path
}

fn hour_blocks() -> ImportOptions {
    ImportOptions { block_duration_ms: HOUR_MS, read_buffer_bytes: 1, ..ImportOptions::default() }
}

fn select_everything(store: &dyn Queryable) -> Vec<tsdb::SeriesData> {
    let matcher = Matcher::new(MatchOp::Regex, "__name__", ".+").expect("valid matcher");
    store.select(&[matcher], i64::MIN, i64::MAX).expect("select")
}

/// Opens `data` the way `alertbook run --data` does.
fn serve(data: &Path) -> (DurableStore, ingest::durable::ReplayReport) {
    let store = Arc::new(MemStore::new());
    DurableStore::open_with_blocks(&data.join("wal"), &data.join("blocks"), store, wal::WalOptions::default())
        .expect("open data directory")
}

/// Every file under `directory` with its size, to show a failed import changed nothing.
fn listing(directory: &Path) -> Vec<(PathBuf, u64)> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_dir() {
                pending.push(entry.path());
            }
            files.push((entry.path(), entry.metadata().expect("metadata").len()));
        }
    }
    files.sort();
    files
}

#[test]
fn imported_blocks_serve_what_backfill_loads() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let text = series_ordered_input();
    let input = write_input(scratch.path(), &text);
    let data = scratch.path().join("data");
    let report = create_blocks(&input, &data, &hour_blocks()).expect("import");

    let backfilled = MemStore::new();
    let loaded = load_reader(text.as_bytes(), &backfilled, &BackfillOptions::default()).expect("backfill");
    assert_eq!(loaded.rejected(), 0);
    assert_eq!(report.samples, loaded.samples);
    assert_eq!(report.created_skipped, 3);
    assert_eq!((report.min_time, report.max_time), (2_400_000, 12_000_000));
    // 00:40-03:20 touches the windows of hours 0, 1, 2 and 3, one block and one read each.
    assert_eq!(report.blocks.len(), 4);
    assert_eq!(report.passes, 4);
    for block in &report.blocks {
        let window = block.min_time.div_euclid(HOUR_MS);
        assert_eq!(block.max_time.div_euclid(HOUR_MS), window, "block {block:?} crosses a window edge");
        assert_eq!(block.wal_segment, 0);
    }
    let sequences: Vec<u64> = report.blocks.iter().map(|block| block.sequence).collect();
    assert_eq!(sequences, [1, 2, 3, 4], "sequences follow time");
    assert!(!data.join(STAGING_DIRECTORY).exists());

    let (durable, replay) = serve(&data);
    assert_eq!(replay.blocks_loaded, 4);
    assert_eq!(replay.block_samples, loaded.samples);
    assert_eq!(durable.store().sample_count(), 0, "nothing is loaded into memory");
    let served = select_everything(durable.store().as_ref());
    let expected = select_everything(&backfilled);
    assert_eq!(served.len(), 4);
    assert_eq!(format!("{served:?}"), format!("{expected:?}"), "NaN compares by its text");
}

#[test]
fn memory_holds_one_window_at_a_time() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let input = write_input(scratch.path(), &series_ordered_input());
    let report = create_blocks(&input, &scratch.path().join("data"), &hour_blocks()).expect("import");
    let largest_block = report.blocks.iter().map(|block| block.samples).max().expect("blocks");
    assert_eq!(report.peak_samples_in_memory, largest_block);
    assert!(report.peak_samples_in_memory < report.samples / 2, "{report:?}");
}

#[test]
fn a_bad_line_names_it_and_leaves_the_data_directory_unchanged() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    // An earlier import that must survive the failed ones untouched.
    let first = write_input(scratch.path(), "temperature 20 100000\n# EOF\n");
    create_blocks(&first, &data, &hour_blocks()).expect("first import");
    let before = listing(&data);

    let mut text = series_ordered_input();
    text = text.replacen("requests_total{code=\"404\"} 4 ", "requests_total{code=\"404\"} four ", 1);
    let input = write_input(scratch.path(), &text);
    let error = create_blocks(&input, &data, &hour_blocks()).expect_err("a bad value");
    let ImportError::Line { line, column, .. } = &error else { panic!("{error}") };
    assert_eq!((*line, column.is_some()), (37, true), "{error}");
    assert!(error.to_string().starts_with(&format!("{}:37:", input.display())), "{error}");
    assert_eq!(listing(&data), before);

    // Out of order inside a later window: found on that window's read, after blocks were staged.
    let out_of_order =
        series_ordered_input().replace("temperature 22.25 9000.5\n", "temperature 22.25 9000.5\ntemperature 1 8000\n");
    let input = write_input(scratch.path(), &out_of_order);
    let error = create_blocks(&input, &data, &hour_blocks()).expect_err("out of order");
    assert!(
        matches!(&error, ImportError::Line { line: 107, column: None, message, .. } if message.contains("out of order")),
        "{error}"
    );
    assert_eq!(listing(&data), before);

    // A sample without a timestamp, into a directory that does not exist yet: none is left behind.
    let input = write_input(scratch.path(), "temperature 20 100\ntemperature 21\n# EOF\n");
    let fresh = scratch.path().join("fresh");
    let error = create_blocks(&input, &fresh, &hour_blocks()).expect_err("no timestamp");
    assert!(matches!(&error, ImportError::Line { line: 2, .. }), "{error}");
    assert!(error.to_string().contains("no timestamp"), "{error}");
    assert!(!fresh.exists());

    let input = write_input(scratch.path(), "temperature 20 100\n");
    let error = create_blocks(&input, &fresh, &hour_blocks()).expect_err("no # EOF");
    assert!(matches!(&error, ImportError::Line { .. }), "{error}");
    assert!(!fresh.exists());

    let input = write_input(scratch.path(), "# EOF\n");
    assert!(matches!(create_blocks(&input, &fresh, &hour_blocks()), Err(ImportError::Empty { .. })));
    assert!(!fresh.exists());
}

#[test]
fn overlapping_blocks_are_refused_and_later_ones_added() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    let first = write_input(scratch.path(), "temperature 20 100\ntemperature 21 7000\n# EOF\n");
    let report = create_blocks(&first, &data, &hour_blocks()).expect("first import");
    assert_eq!(report.blocks.iter().map(|block| block.sequence).collect::<Vec<_>>(), [1, 2]);
    let before = listing(&data);

    // Hour 1 again, around the first import's sample at 7000 s.
    let overlapping = write_input(scratch.path(), "temperature 30 6000\ntemperature 31 7100\n# EOF\n");
    let error = create_blocks(&overlapping, &data, &hour_blocks()).expect_err("overlap");
    assert!(matches!(error, ImportError::Overlap { .. }), "{error}");
    assert!(error.to_string().contains("refused, not merged"), "{error}");
    assert_eq!(listing(&data), before);

    let later = write_input(scratch.path(), "humidity 40 8000\nhumidity 41 20000\n# EOF\n");
    let report = create_blocks(&later, &data, &hour_blocks()).expect("later import");
    assert_eq!(report.blocks.iter().map(|block| block.sequence).collect::<Vec<_>>(), [3, 4]);
    let (durable, replay) = serve(&data);
    assert_eq!(replay.blocks_loaded, 4);
    let served = select_everything(durable.store().as_ref());
    let counts: Vec<usize> = served.iter().map(|series| series.samples.len()).collect();
    assert_eq!(counts, [2, 2]);
}
