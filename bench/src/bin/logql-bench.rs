//! LogQL over a million lines in alertbook's log store.
//!
//! Generates 1,000,000 lines in 100 streams over one hour (half Traefik JSON
//! access logs, `job="traefik"`, half logfmt application logs), appends them
//! to a `logstore::LogStore` in a temporary directory in push-sized batches
//! (timing ingest: write-ahead log, head, sealed snappy chunks), then runs
//! each query five times as an instant query at the end of the hour (5m
//! window) and as a range query over the hour (step 1m), reporting the median
//! wall and CPU time and lines per second. Loki is not packaged for Debian,
//! so there is no peer in this run: the numbers stand alone.
//!
//! `bench/logql.sh` builds and runs it in release.

use std::time::{Duration, Instant};

use alertbook_bench::Random;
use logql::{Direction, Engine, QueryValue};
use logstore::push::{PushEntry, PushStream};
use tsdb::Labels;

const LINES: usize = 1_000_000;
const STREAMS: usize = 100;
const HOUR_NS: i64 = 3_600_000_000_000;
const START_NS: i64 = 1_795_651_200_000_000_000;
/// Entries per append, about what one shipper's push carries.
const BATCH: usize = 1_000;

fn build() -> Vec<PushStream> {
    let mut random = Random::new(0x9e37_79b9_7f4a_7c15);
    let services = ["billing", "checkout", "search", "auth"];
    let methods = ["GET", "GET", "GET", "POST", "PUT", "DELETE"];
    let paths = ["/api/v1/orders", "/api/v1/users/42", "/healthz", "/static/app.js", "/api/v1/search?q=bus"];
    let statuses = ["200", "200", "200", "200", "201", "304", "404", "500", "502", "504"];
    let mut streams = Vec::with_capacity(STREAMS);
    let per_stream = LINES / STREAMS;
    let interval = HOUR_NS / per_stream as i64;
    for index in 0..STREAMS {
        let traefik = index % 2 == 0;
        let labels = if traefik {
            Labels::from_pairs([
                ("job", "traefik".to_string()),
                ("instance", format!("edge-{index}")),
                ("log_type", "access".to_string()),
            ])
        } else {
            Labels::from_pairs([("job", services[(index / 2) % 4].to_string()), ("instance", format!("pod-{index}"))])
        };
        let mut entries = Vec::with_capacity(per_stream);
        for line_index in 0..per_stream {
            let timestamp_ns = START_NS + line_index as i64 * interval + (index as i64 * 7_919) % interval;
            let method = random.pick(&methods);
            let path = random.pick(&paths);
            let status = random.pick(&statuses);
            let duration_ms = random.next_u64() % 2_000;
            let line = if traefik {
                format!(
                    r#"{{"ClientHost":"203.0.113.{}","ClientPort":"{}","DownstreamContentSize":{},"DownstreamStatus":{status},"Duration":{},"OriginStatus":{status},"RequestHost":"busflow.example","RequestMethod":"{method}","RequestPath":"{path}","RequestProtocol":"HTTP/2.0","RouterName":"api@docker","ServiceName":"api@docker","BackendAddr":"10.0.{}.{}:8080","StartUTC":"2026-11-26T00:00:00Z","entryPointName":"websecure","level":"info","msg":"","time":"2026-11-26T00:00:00Z"}}"#,
                    random.next_u64() % 255,
                    30_000 + random.next_u64() % 30_000,
                    random.next_u64() % 100_000,
                    duration_ms * 1_000_000,
                    random.next_u64() % 4,
                    random.next_u64() % 255,
                )
            } else {
                format!(
                    r#"ts=2026-11-26T00:00:00Z level={} caller=http.go:{} method={method} path={path} status={status} duration={duration_ms}ms tenant_id=t{} msg="request served""#,
                    random.pick(&["info", "info", "info", "warn", "error", "debug"]),
                    random.next_u64() % 400,
                    random.next_u64() % 20,
                )
            };
            entries.push(PushEntry { timestamp_ns, line, metadata: Vec::new() });
        }
        streams.push(PushStream { labels, entries });
    }
    streams
}

/// Time this thread has spent on a CPU (`/proc/thread-self/schedstat`), so a
/// loaded machine does not count the time other processes ran; `None` off Linux.
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanoseconds: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanoseconds))
}

fn median(mut durations: Vec<Duration>) -> Duration {
    durations.sort();
    durations[durations.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let streams = build();
    let total: usize = streams.iter().map(|stream| stream.entries.len()).sum();
    let bytes: usize = streams.iter().flat_map(|stream| stream.entries.iter().map(|entry| entry.line.len())).sum();
    println!(
        "generated {total} lines ({:.1} MB) in {} streams in {:.2?}",
        bytes as f64 / 1e6,
        streams.len(),
        started.elapsed()
    );

    let directory = tempfile::tempdir()?;
    let options = logstore::LogStoreOptions {
        fsync: wal::FsyncPolicy::Never,
        retention_time: Duration::from_secs(100 * 365 * 24 * 3600),
        ..logstore::LogStoreOptions::default()
    };
    let (store, _) = logstore::LogStore::open(directory.path(), options)?;
    // Interleave the streams in time order, BATCH entries per append, as shippers push.
    let mut batches: Vec<Vec<PushStream>> = Vec::new();
    let per_stream = LINES / STREAMS;
    let step = BATCH / STREAMS;
    for offset in (0..per_stream).step_by(step.max(1)) {
        let batch = streams
            .iter()
            .map(|stream| PushStream {
                labels: stream.labels.clone(),
                entries: stream.entries[offset..(offset + step).min(stream.entries.len())].to_vec(),
            })
            .collect();
        batches.push(batch);
    }
    drop(streams);
    let ingest = Instant::now();
    let cpu_before = cpu_time();
    for batch in batches {
        let stats = store.append_at(batch, START_NS + HOUR_NS)?;
        anyhow::ensure!(stats.rejected.is_empty(), "entries refused: {:?}", stats.loki_message());
    }
    let ingest_wall = ingest.elapsed();
    let ingest_cpu = cpu_before.zip(cpu_time()).map(|(before, after)| after.saturating_sub(before));
    let stats = store.stats();
    println!(
        "ingest: {total} lines in {ingest_wall:.2?} ({:.0} lines/s, {:.0} MB/s){}; {} chunks, {:.1} MB in memory",
        total as f64 / ingest_wall.as_secs_f64(),
        bytes as f64 / 1e6 / ingest_wall.as_secs_f64(),
        ingest_cpu.map_or(String::new(), |cpu| format!(", cpu {cpu:.2?}")),
        stats.chunks,
        stats.memory_bytes as f64 / 1e6
    );

    let engine = Engine::default();
    let end = START_NS + HOUR_NS;
    let queries = [
        r#"sum by (job) (count_over_time({job=~".+"} [5m]))"#,
        r#"sum by (job) (count_over_time({job=~".+"} |= "GET" [5m]))"#,
        r#"sum by (job) (count_over_time({job="traefik"} | json | DownstreamStatus = 504 [5m]))"#,
    ];
    for query in queries {
        for (kind, step) in [("instant", None), ("range 1h step 1m", Some(60_000_000_000i64))] {
            let mut walls = Vec::new();
            let mut cpus = Vec::new();
            let mut series = 0;
            for _ in 0..5 {
                let run = Instant::now();
                let cpu_before = cpu_time();
                let result = match step {
                    None => engine.instant_query(&store, query, end, 100, Direction::Backward),
                    Some(step) => engine.range_query(&store, query, START_NS, end, step, 100, Direction::Backward),
                };
                walls.push(run.elapsed());
                if let (Some(before), Some(after)) = (cpu_before, cpu_time()) {
                    cpus.push(after.saturating_sub(before));
                }
                series = match result? {
                    QueryValue::Vector(vector) => vector.len(),
                    QueryValue::Matrix(matrix) => matrix.len(),
                    other => anyhow::bail!("unexpected result {other:?}"),
                };
            }
            // The lines a query reads: its window (5m, or the hour plus 5m for the range).
            let window_ns = if step.is_some() { HOUR_NS } else { 300_000_000_000 };
            let selected = if query.contains("traefik") { total / 2 } else { total };
            let lines = (selected as f64 * (window_ns as f64 / HOUR_NS as f64)).min(selected as f64);
            let wall = median(walls);
            print!(
                "{kind:<17} {query}\n    {series} series; wall median {wall:.2?} ({:.2} M lines/s)",
                lines / wall.as_secs_f64() / 1e6
            );
            if !cpus.is_empty() {
                let cpu = median(cpus);
                print!("; cpu median {cpu:.2?} ({:.2} M lines/s per core)", lines / cpu.as_secs_f64() / 1e6);
            }
            println!();
        }
    }
    Ok(())
}
