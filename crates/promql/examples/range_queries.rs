//! Range queries over a `gen-busflow` dataset in process, for instruction
//! counts under callgrind (`bench/README.md`, "PromQL range queries:
//! instruction counts").
//!
//! `cargo run --release -p promql --example range_queries -- FILE START END STEP REPEAT QUERY`
//! loads FILE (OpenMetrics with timestamps, as `gen-busflow` writes it) into a
//! `tsdb::MemStore` as `alertbook run --backfill` does, then evaluates QUERY
//! from START to END (Unix seconds, the dataset's `.meta.json`) every STEP
//! seconds, REPEAT times, through [`evaluate`], which callgrind's
//! `--toggle-collect` can count alone. It prints the result's series and
//! points and a checksum of its values, so answers can be compared between
//! builds.

use ingest::backfill::{BackfillOptions, load_file};
use promql::{Engine, QueryResult, Value};

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [file, start, end, step, repeat, query] = arguments.as_slice() else {
        eprintln!("usage: range_queries FILE START END STEP REPEAT QUERY");
        std::process::exit(2);
    };
    let number = |text: &str| -> i64 {
        text.parse().unwrap_or_else(|_| {
            eprintln!("not a whole number: {text}");
            std::process::exit(2)
        })
    };
    let (start, end, step, repeat) = (number(start) * 1000, number(end) * 1000, number(step) * 1000, number(repeat));
    let store = tsdb::MemStore::new();
    let report = load_file(std::path::Path::new(file), &store, &BackfillOptions::default()).unwrap_or_else(|error| {
        eprintln!("cannot load {file}: {error}");
        std::process::exit(1)
    });
    println!("loaded {} samples into {} series", report.samples, report.series);
    let engine = Engine::default();
    let begun = std::time::Instant::now();
    let mut result = None;
    for _ in 0..repeat {
        match evaluate(&engine, &store, query, start, end, step) {
            Ok(answer) => result = Some(answer),
            Err(error) => {
                eprintln!("query failed: {error}");
                std::process::exit(1);
            }
        }
    }
    let elapsed = begun.elapsed().as_secs_f64() * 1000.0 / repeat.max(1) as f64;
    if let Some(result) = result {
        let (series, points, checksum) = summary(&result);
        println!("{series} series, {points} points, checksum {checksum:.12e}, {elapsed:.1} ms per evaluation");
    }
}

/// Evaluates the query once: the function callgrind counts
/// (`--toggle-collect='range_queries::evaluate'`).
#[inline(never)]
fn evaluate(
    engine: &Engine,
    store: &tsdb::MemStore,
    query: &str,
    start: i64,
    end: i64,
    step: i64,
) -> Result<QueryResult, promql::Error> {
    engine.range_query(store, query, start, end, step)
}

/// Series, points and the sum of every finite value of a result.
fn summary(result: &QueryResult) -> (usize, usize, f64) {
    match &result.value {
        Value::Matrix(series) => {
            let points = series.iter().map(|one| one.samples.len() + one.histograms.len()).sum();
            let checksum = series
                .iter()
                .flat_map(|one| one.samples.iter().map(|sample| sample.value))
                .filter(|value| value.is_finite())
                .sum();
            (series.len(), points, checksum)
        }
        _ => (0, 0, 0.0),
    }
}
