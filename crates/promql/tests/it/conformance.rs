//! Runs every promqltest script and compares failures with `KNOWN_FAILURES`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use promql::promqltest::{run_files, test_files};

fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/promqltest")
}

fn known_failures() -> BTreeSet<String> {
    let path = testdata().join("KNOWN_FAILURES");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split_whitespace().next().unwrap_or(line).to_owned())
        .collect()
}

#[test]
fn promqltest_scripts_pass_except_known_failures() {
    let files = test_files(&testdata()).expect("testdata directory is readable");
    assert!(!files.is_empty(), "no .test files found");
    let summary = run_files(&files).expect("test files are readable");
    println!("{summary}");
    let known = known_failures();
    let mut unexpected = Vec::new();
    let mut failing = BTreeSet::new();
    for failure in summary.failures() {
        let key = format!("{}:{}", failure.file, failure.line);
        if !known.contains(&key) {
            unexpected.push(failure.to_string());
        }
        failing.insert(key);
    }
    let now_passing: Vec<&String> = known.iter().filter(|key| !failing.contains(*key)).collect();
    assert!(unexpected.is_empty(), "{} unexpected failures:\n{}", unexpected.len(), unexpected.join("\n"));
    assert!(now_passing.is_empty(), "cases listed in KNOWN_FAILURES now pass, remove them: {now_passing:?}");
    assert!(summary.passed() > 0);
}
