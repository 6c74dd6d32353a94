//! `alertbook tsdb create-blocks-from openmetrics`: a file imported into a data
//! directory is served by `alertbook run --data` from its blocks and answers
//! as the same file loaded with `run --backfill`; a bad line is named and
//! changes nothing.

use std::path::Path;

use super::durability::{free_port, start_with};

/// Three series of a counter and one gauge, grouped by series as a
/// generator writes them, every 30 s over 5 h from an unaligned start.
fn input() -> String {
    let start = HOUR_ALIGNED + 1_234;
    let mut text = String::from("# TYPE import_probe counter\n");
    for (index, code) in ["200", "404", "500"].iter().enumerate() {
        for step in 0..600 {
            let value = step * (index + 1) + step % 7;
            text.push_str(&format!("import_probe_total{{code=\"{code}\"}} {value} {}.000\n", start + step * 30));
        }
    }
    text.push_str("# TYPE import_gauge gauge\n");
    for step in 0..600 {
        text.push_str(&format!("import_gauge {}.25 {}.500\n", step % 13, start + step * 30));
    }
    text.push_str("# EOF\n");
    text
}

/// A whole hour in Unix seconds.
const HOUR_ALIGNED: usize = 1_789_999_200;

const KEEP_FOREVER: [&str; 2] = ["--storage.retention.time", "0"];

fn get(url: &str) -> String {
    let response = reqwest::blocking::get(url).expect("request");
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.text().expect("body")
}

/// Every file under `directory` with its size.
fn listing(directory: &Path) -> Vec<(std::path::PathBuf, u64)> {
    let mut files = Vec::new();
    let mut pending = vec![directory.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir").map(|entry| entry.expect("entry")) {
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
fn imported_blocks_answer_as_the_backfilled_file() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let file = scratch.path().join("busflow.om");
    std::fs::write(&file, input()).expect("write input");
    let imported = scratch.path().join("imported");
    let output = super::alertbook(&[
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        file.to_str().expect("utf-8"),
        imported.to_str().expect("utf-8"),
        "--max-block-duration",
        "1h",
    ]);
    assert!(output.status.success(), "{}", super::stderr(&output));
    let printed = super::stdout(&output);
    // 00:20:34 to 05:20:04 in hours: six one-hour windows.
    assert!(printed.contains("imported 2400 samples"), "{printed}");
    assert!(printed.contains("into 6 blocks"), "{printed}");
    let blocks = std::fs::read_dir(imported.join("blocks")).expect("blocks").count();
    assert_eq!(blocks, 6);

    let from_blocks = start_with(&imported, free_port(), &KEEP_FOREVER);
    let backfilled_data = scratch.path().join("backfilled");
    let mut backfill_arguments = vec!["--backfill", file.to_str().expect("utf-8")];
    backfill_arguments.extend(KEEP_FOREVER);
    let backfilled = start_with(&backfilled_data, free_port(), &backfill_arguments);

    let (start, end) = (HOUR_ALIGNED, HOUR_ALIGNED + 6 * 3600);
    let queries = [
        "import_probe_total".to_owned(),
        "rate(import_probe_total%5B5m%5D)".to_owned(),
        "sum%20by%20(code)%20(increase(import_probe_total%5B1h%5D))".to_owned(),
        "max_over_time(import_gauge%5B10m%5D)".to_owned(),
    ];
    for query in &queries {
        let path = format!("/api/v1/query_range?query={query}&start={start}&end={end}&step=60");
        let expected = get(&format!("{}{path}", backfilled.url));
        assert!(expected.contains("\"result\":[{"), "{path}: {expected}");
        assert_eq!(get(&format!("{}{path}", from_blocks.url)), expected, "{path}");
    }
    let path = format!("/api/v1/series?match%5B%5D=%7B__name__%3D~%22import_.%2B%22%7D&start={start}&end={end}");
    assert_eq!(get(&format!("{}{path}", from_blocks.url)), get(&format!("{}{path}", backfilled.url)));
    let path = format!("/api/v1/query?query=count_over_time(import_gauge%5B1d%5D)&time={end}");
    assert!(get(&format!("{}{path}", from_blocks.url)).contains("\"600\""));
}

#[test]
fn a_bad_line_is_named_and_the_data_directory_is_unchanged() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let data = scratch.path().join("data");
    let good = scratch.path().join("good.om");
    std::fs::write(&good, "import_gauge 1 1789999200\n# EOF\n").expect("write input");
    let output = super::alertbook(&[
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        good.to_str().expect("utf-8"),
        data.to_str().expect("utf-8"),
    ]);
    assert!(output.status.success(), "{}", super::stderr(&output));
    let before = listing(&data);

    let bad = scratch.path().join("bad.om");
    let text = input().replacen("import_gauge 3.25", "import_gauge{ 3.25", 1);
    let line = text.lines().position(|line| line.starts_with("import_gauge{")).expect("bad line") + 1;
    std::fs::write(&bad, text).expect("write input");
    let output = super::alertbook(&[
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        bad.to_str().expect("utf-8"),
        data.to_str().expect("utf-8"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let error = super::stderr(&output);
    assert!(error.contains(&format!("{}:{line}:", bad.display())), "{error}");
    assert_eq!(listing(&data), before);
}
