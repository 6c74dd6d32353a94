//! Times LogQL metric queries over an in-memory store of 1,000,000 lines.
//!
//! 100 streams over one hour: half Traefik-like JSON access logs (`job="traefik"`),
//! half logfmt application logs (`job` one of four services). Each query runs
//! five times as an instant query at the end of the hour (a 5m window) and as a
//! range query over the hour (step 1m); the median is reported with the lines
//! the store handed to the engine per second. Run it in release:
//! `cargo run --release -p logql --example count_over_time_bench`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use logql::{Direction, Engine, Entry, LogSource, QueryValue, SourceError, StreamMatcher};
use tsdb::Labels;

const LINES: usize = 1_000_000;
const STREAMS: usize = 100;
const HOUR_NS: i64 = 3_600_000_000_000;
const START_NS: i64 = 1_795_651_200_000_000_000;

struct Store {
    streams: Vec<(Labels, Vec<(i64, String)>)>,
    visited: AtomicU64,
}

impl LogSource for Store {
    fn select(
        &self,
        matchers: &[StreamMatcher],
        start_ns: i64,
        end_ns: i64,
        visit: &mut dyn FnMut(&Labels, Entry<'_>),
    ) -> Result<(), SourceError> {
        let mut visited = 0;
        for (labels, entries) in &self.streams {
            if !matchers.iter().all(|matcher| matcher.matches_labels(labels)) {
                continue;
            }
            let from = entries.partition_point(|entry| entry.0 < start_ns);
            let to = entries.partition_point(|entry| entry.0 < end_ns);
            for (timestamp_ns, line) in &entries[from..to] {
                visit(labels, Entry { timestamp_ns: *timestamp_ns, line, metadata: &[] });
            }
            visited += (to - from) as u64;
        }
        self.visited.fetch_add(visited, Ordering::Relaxed);
        Ok(())
    }
}

/// xorshift64*: deterministic data without a dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn build() -> Store {
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
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
            let duration_ms = random.next() % 2_000;
            let line = if traefik {
                format!(
                    r#"{{"ClientHost":"203.0.113.{}","ClientPort":"{}","DownstreamContentSize":{},"DownstreamStatus":{status},"Duration":{},"OriginStatus":{status},"RequestHost":"busflow.example","RequestMethod":"{method}","RequestPath":"{path}","RequestProtocol":"HTTP/2.0","RouterName":"api@docker","ServiceName":"api@docker","BackendAddr":"10.0.{}.{}:8080","StartUTC":"2026-11-26T00:00:00Z","entryPointName":"websecure","level":"info","msg":"","time":"2026-11-26T00:00:00Z"}}"#,
                    random.next() % 255,
                    30_000 + random.next() % 30_000,
                    random.next() % 100_000,
                    duration_ms * 1_000_000,
                    random.next() % 4,
                    random.next() % 255,
                )
            } else {
                format!(
                    r#"ts=2026-11-26T00:00:00Z level={} caller=http.go:{} method={method} path={path} status={status} duration={duration_ms}ms tenant_id=t{} msg="request served""#,
                    random.pick(&["info", "info", "info", "warn", "error", "debug"]),
                    random.next() % 400,
                    random.next() % 20,
                )
            };
            entries.push((timestamp_ns, line));
        }
        streams.push((labels, entries));
    }
    Store { streams, visited: AtomicU64::new(0) }
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

fn main() {
    let started = Instant::now();
    let store = build();
    let total: usize = store.streams.iter().map(|stream| stream.1.len()).sum();
    println!("built {total} lines in {} streams in {:.2?}", store.streams.len(), started.elapsed());
    let engine = Engine::default();
    let end = START_NS + HOUR_NS;
    let queries = [
        r#"sum by (job) (count_over_time({job=~".+"} |= "GET" [5m]))"#,
        r#"sum by (job) (count_over_time({job="traefik"} | json | DownstreamStatus = 504 [5m]))"#,
    ];
    // An optional argument runs only the queries that contain it.
    let only = std::env::args().nth(1).unwrap_or_default();
    for query in queries.into_iter().filter(|query| query.contains(&only)) {
        for (kind, step) in [("instant", None), ("range 1h step 1m", Some(60_000_000_000i64))] {
            let mut durations = Vec::new();
            let mut cpu_durations = Vec::new();
            let mut lines = 0;
            let mut series = 0;
            for _ in 0..5 {
                store.visited.store(0, Ordering::Relaxed);
                let run = Instant::now();
                let cpu_before = cpu_time();
                let result = match step {
                    None => engine.instant_query(&store, query, end, 100, Direction::Backward),
                    Some(step) => engine.range_query(&store, query, START_NS, end, step, 100, Direction::Backward),
                };
                durations.push(run.elapsed());
                if let (Some(before), Some(after)) = (cpu_before, cpu_time()) {
                    cpu_durations.push(after.saturating_sub(before));
                }
                lines = store.visited.load(Ordering::Relaxed);
                series = match result {
                    Ok(QueryValue::Vector(vector)) => vector.len(),
                    Ok(QueryValue::Matrix(matrix)) => matrix.len(),
                    Ok(other) => panic!("unexpected result {other:?}"),
                    Err(error) => panic!("{query}: {error}"),
                };
            }
            let median_wall = median(durations);
            let rate = lines as f64 / median_wall.as_secs_f64();
            println!(
                "{kind:<17} {query}\n    wall: median {median_wall:.2?} over 5 runs, {lines} lines read, {series} series, {:.2} M lines/s",
                rate / 1e6
            );
            if !cpu_durations.is_empty() {
                let median_cpu = median(cpu_durations);
                let rate = lines as f64 / median_cpu.as_secs_f64();
                println!("    cpu:  median {median_cpu:.2?}, {:.2} M lines/s per core", rate / 1e6);
            }
        }
    }
}
