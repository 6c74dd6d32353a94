//! Measures the store's footprint and speed on a scrape-like load: by default
//! 100,000 series x 480 samples at a 15 s interval (two hours), a third each
//! counters, gauges and constant series. Prints bytes per series and per sample,
//! append throughput (single thread and threaded) and a few query latencies.
//!
//! Two data profiles: `typical` (counters growing by small integers, gauges on a
//! slow integer walk, 1 scrape in 10 a few milliseconds late) and `noisy`
//! (counters jumping by up to 1000, gauges uniformly random with two decimals,
//! every scrape jittered): the worst case for XOR compression.
//!
//! Run with `cargo run --release -p tsdb --example footprint [SERIES] [SAMPLES] [typical|noisy]`.

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use tsdb::{Labels, MatchOp, Matcher, MemStore, Queryable, SeriesRef};

const SCRAPE_INTERVAL_MS: i64 = 15_000;
const START_MS: i64 = 1_700_000_000_000;

/// A small deterministic generator (xorshift64*), enough for synthetic data.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, limit: u64) -> u64 {
        self.next() % limit
    }
}

fn series_labels(index: usize) -> Labels {
    let metric = index % 200;
    let instance = index / 200;
    Labels::from_pairs([
        ("__name__", format!("node_metric_{metric}_total")),
        ("job", format!("job-{}", instance % 20)),
        ("instance", format!("10.0.{}.{}:9100", instance / 250, instance % 250)),
        ("env", ["prod", "staging", "dev"][instance % 3].to_string()),
        ("mode", ["user", "system", "idle", "iowait"][metric % 4].to_string()),
    ])
}

/// Per-series value model: counters, gauges, or constants.
struct ValueModel {
    kind: usize,
    value: f64,
}

impl ValueModel {
    fn next(&mut self, random: &mut Random, noisy: bool) -> f64 {
        match (self.kind, noisy) {
            (0, false) => self.value += random.below(20) as f64,
            (0, true) => self.value += random.below(1000) as f64,
            (1, false) => self.value = (self.value + random.below(5) as f64 - 2.0).max(0.0),
            (1, true) => self.value = (random.below(10_000) as f64) / 100.0,
            _ => {}
        }
        self.value
    }
}

fn load(store: &MemStore, handles: &[SeriesRef], samples: usize, seed: u64, noisy: bool) {
    let mut random = Random(seed | 1);
    let mut models: Vec<ValueModel> =
        (0..handles.len()).map(|index| ValueModel { kind: index % 3, value: 1.0 }).collect();
    for step in 0..samples as i64 {
        for (handle, model) in handles.iter().zip(models.iter_mut()) {
            // Scrapes land within a few milliseconds of the interval.
            let late = noisy || random.below(10) == 0;
            let jitter = if late { random.below(5) as i64 } else { 0 };
            let timestamp = START_MS + step * SCRAPE_INTERVAL_MS + jitter;
            let value = model.next(&mut random, noisy);
            if let Err(error) = store.append_ref(handle, timestamp, value) {
                eprintln!("append failed: {error}");
            }
        }
    }
}

fn resident_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kilobytes: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kilobytes * 1024)
}

fn main() {
    let mut arguments = std::env::args().skip(1);
    let series_count: usize = arguments.next().and_then(|value| value.parse().ok()).unwrap_or(100_000);
    let samples: usize = arguments.next().and_then(|value| value.parse().ok()).unwrap_or(480);
    let noisy = arguments.next().is_some_and(|profile| profile == "noisy");
    println!("profile {}", if noisy { "noisy" } else { "typical" });
    let total_samples = (series_count * samples) as f64;

    let rss_before = resident_bytes().unwrap_or(0);
    let store = MemStore::new();
    let started = Instant::now();
    let handles: Vec<SeriesRef> =
        (0..series_count).map(|index| store.get_or_create_series(&series_labels(index))).collect();
    let created = started.elapsed();
    let empty_bytes = store.memory_bytes();
    println!(
        "created {series_count} series in {:.2?} ({:.0} series/s); {:.0} bytes per series before samples",
        created,
        series_count as f64 / created.as_secs_f64(),
        empty_bytes as f64 / series_count as f64
    );

    let started = Instant::now();
    load(&store, &handles, samples, 7, noisy);
    let elapsed = started.elapsed();
    println!(
        "appended {} samples in {:.2?} on one thread: {:.1} M samples/s",
        store.sample_count(),
        elapsed,
        total_samples / elapsed.as_secs_f64() / 1e6
    );
    let bytes = store.memory_bytes();
    let sample_bytes = bytes.saturating_sub(empty_bytes);
    println!(
        "memory estimate {:.1} MiB: {:.0} bytes per series in total, {:.2} bytes per sample for chunks, {:.2} bytes per sample overall",
        bytes as f64 / (1 << 20) as f64,
        bytes as f64 / series_count as f64,
        sample_bytes as f64 / total_samples,
        bytes as f64 / total_samples
    );
    if let Some(rss) = resident_bytes() {
        // Includes the handles vector and allocator slack.
        println!("resident set grew by {:.1} MiB", (rss.saturating_sub(rss_before)) as f64 / (1 << 20) as f64);
    }

    let queries = [
        ("one metric", vec![Matcher::equal("__name__", "node_metric_7_total")]),
        ("metric and job", vec![Matcher::equal("__name__", "node_metric_7_total"), Matcher::equal("job", "job-3")]),
        (
            "instance regex",
            vec![
                Matcher::equal("__name__", "node_metric_7_total"),
                Matcher::new(MatchOp::Regex, "instance", "10\\.0\\.1\\..*").expect("valid"),
            ],
        ),
        (
            "alternation",
            vec![Matcher::new(MatchOp::Regex, "__name__", "node_metric_1_total|node_metric_2_total").expect("valid")],
        ),
        (
            "negative",
            vec![
                Matcher::equal("env", "prod"),
                Matcher::new(MatchOp::NotRegex, "mode", "idle|iowait").expect("valid"),
                Matcher::new(MatchOp::NotEqual, "job", "job-1").expect("valid"),
            ],
        ),
    ];
    let end = START_MS + samples as i64 * SCRAPE_INTERVAL_MS;
    for (name, matchers) in &queries {
        let started = Instant::now();
        let result = store.select(matchers, end - 5 * 60 * 1000, end).expect("select");
        let elapsed = started.elapsed();
        let points: usize = result.iter().map(|data| data.samples.len()).sum();
        println!("select {name}: {} series, {points} samples, last 5 min, {elapsed:.2?}", result.len());
        let started = Instant::now();
        let result = store.select(matchers, START_MS, end).expect("select");
        let points: usize = result.iter().map(|data| data.samples.len()).sum();
        println!("  whole range: {points} samples in {:.2?}", started.elapsed());
    }

    // Threaded ingest into a fresh store: each thread owns a slice of the series.
    let threads = thread::available_parallelism().map_or(2, |count| count.get());
    let store = Arc::new(MemStore::new());
    let handles: Arc<Vec<SeriesRef>> =
        Arc::new((0..series_count).map(|index| store.get_or_create_series(&series_labels(index))).collect());
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|worker| {
            let store = Arc::clone(&store);
            let handles = Arc::clone(&handles);
            thread::spawn(move || {
                let per_thread = handles.len().div_ceil(threads);
                let from = (worker * per_thread).min(handles.len());
                let to = ((worker + 1) * per_thread).min(handles.len());
                load(&store, &handles[from..to], samples, worker as u64 + 11, noisy);
            })
        })
        .collect();
    for worker in workers {
        if worker.join().is_err() {
            eprintln!("a loader thread panicked");
        }
    }
    let elapsed = started.elapsed();
    println!(
        "appended {} samples in {:.2?} on {threads} threads: {:.1} M samples/s",
        store.sample_count(),
        elapsed,
        total_samples / elapsed.as_secs_f64() / 1e6
    );
}
