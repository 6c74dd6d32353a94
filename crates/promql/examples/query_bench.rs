//! Times a representative PromQL query set, instant and range, against an
//! in-process [`MemStore`] holding a Busflow-like dataset.
//!
//! The dataset is deterministic (seeded xorshift): per service, route, status
//! code and tenant an `http_server_request_duration_seconds` classic histogram
//! (`_bucket` with 12 `le` values, `_count`, `_sum`), per service, method,
//! code and tenant a `traefik_service_requests_total` counter, and a few
//! gauges. The default shape is about 103,000 series x 480 samples at 15 s
//! (two hours). Instant queries run at the last sample; range queries cover the
//! whole two hours at a 60 s step. Each query runs `REPEAT` times and the best
//! time is printed, with the number of output series and a checksum so runs can
//! be compared for equal results.
//!
//! Run with `cargo run --release -p promql --example query_bench [TENANTS] [REPEAT] [FILTER] [instant|range]`;
//! FILTER keeps the queries containing it.

use std::time::Instant;

use promql::{Engine, EngineOptions, Value};
use tsdb::{Labels, MemStore, SeriesRef};

const SCRAPE_INTERVAL_MS: i64 = 15_000;
const SAMPLES_PER_SERIES: i64 = 480;
const START_MS: i64 = 1_700_000_000_000;
const RANGE_STEP_MS: i64 = 60_000;

const SERVICES: usize = 6;
const ROUTES_PER_SERVICE: usize = 10;
const STATUS_CODES: [&str; 2] = ["200", "500"];
const TRAEFIK_CODES: [&str; 3] = ["200", "404", "503"];
const METHODS: [&str; 2] = ["GET", "POST"];
const BUCKET_BOUNDS: [&str; 12] =
    ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"];
/// Cumulative share of observations at or below each bucket bound, in 1/1000.
const BUCKET_SHARES: [u64; 12] = [20, 60, 150, 300, 500, 700, 850, 930, 970, 990, 998, 1000];

const QUERIES: &[&str] = &[
    r#"http_server_request_duration_seconds_count{service_name="svc-1"}"#,
    r#"http_server_request_duration_seconds_count{http_route=~"/api/v1/orders.*", http_response_status_code=~"5.."}"#,
    r#"rate(http_server_request_duration_seconds_count{service_name="svc-1"}[5m])"#,
    r#"sum by (service_name, http_route) (rate(http_server_request_duration_seconds_count[5m]))"#,
    r#"histogram_quantile(0.95, sum by (le) (rate(http_server_request_duration_seconds_bucket{service_name="svc-2"}[5m])))"#,
    r#"histogram_quantile(0.95, sum by (le, service_name) (rate(http_server_request_duration_seconds_bucket[5m])))"#,
    r#"topk(5, sum by (tenant_id) (rate(traefik_service_requests_total[5m])))"#,
    r#"sum by (service_name) (rate(http_server_request_duration_seconds_count{http_response_status_code="500"}[5m])) / sum by (service_name) (rate(http_server_request_duration_seconds_count[5m]))"#,
    r#"max_over_time(sum by (service_name) (rate(traefik_service_requests_total[5m]))[30m:1m])"#,
    r#"avg by (service_name) (queue_depth)"#,
];

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

fn sample_time(step: i64) -> i64 {
    START_MS + step * SCRAPE_INTERVAL_MS
}

fn append(store: &MemStore, series: &SeriesRef, timestamp: i64, value: f64) {
    store.append_ref(series, timestamp, value).expect("generated samples are in order");
}

fn build_store(tenants: usize) -> MemStore {
    let store = MemStore::new();
    let mut random = Random(0x5eed_1234_abcd_0001);
    for service in 0..SERVICES {
        let service_name = format!("svc-{service}");
        for route in 0..ROUTES_PER_SERVICE {
            let http_route = match route % 3 {
                0 => format!("/api/v1/orders/{route}"),
                1 => format!("/api/v1/users/{route}"),
                _ => format!("/internal/{route}"),
            };
            let method = METHODS[route % METHODS.len()];
            for code in STATUS_CODES {
                for tenant in 0..tenants {
                    let tenant_id = format!("tenant-{tenant:04}");
                    let base = [
                        ("service_name", service_name.as_str()),
                        ("http_route", http_route.as_str()),
                        ("http_request_method", method),
                        ("http_response_status_code", code),
                        ("tenant_id", tenant_id.as_str()),
                    ];
                    let with_name = |name: &str| {
                        let mut builder = Labels::from_pairs(base).to_builder();
                        builder.set("__name__", name);
                        builder.build()
                    };
                    let buckets: Vec<SeriesRef> = BUCKET_BOUNDS
                        .iter()
                        .map(|bound| {
                            let mut builder = with_name("http_server_request_duration_seconds_bucket").to_builder();
                            builder.set("le", *bound);
                            store.get_or_create_series(&builder.build())
                        })
                        .collect();
                    let count = store.get_or_create_series(&with_name("http_server_request_duration_seconds_count"));
                    let sum = store.get_or_create_series(&with_name("http_server_request_duration_seconds_sum"));
                    let mut total = 0u64;
                    let mut total_seconds = 0.0f64;
                    for step in 0..SAMPLES_PER_SERIES {
                        let timestamp = sample_time(step);
                        total += random.below(20);
                        total_seconds += random.below(2000) as f64 / 1000.0;
                        for (bucket, share) in buckets.iter().zip(BUCKET_SHARES) {
                            append(&store, bucket, timestamp, (total * share / 1000) as f64);
                        }
                        append(&store, &count, timestamp, total as f64);
                        append(&store, &sum, timestamp, total_seconds);
                    }
                }
            }
        }
        for method in METHODS {
            for code in TRAEFIK_CODES {
                for tenant in 0..tenants {
                    let labels = Labels::from_pairs([
                        ("__name__", "traefik_service_requests_total".to_owned()),
                        ("service", format!("{service_name}@kubernetes")),
                        ("method", method.to_owned()),
                        ("code", code.to_owned()),
                        ("tenant_id", format!("tenant-{tenant:04}")),
                    ]);
                    let series = store.get_or_create_series(&labels);
                    let mut total = 0u64;
                    for step in 0..SAMPLES_PER_SERIES {
                        total += random.below(50);
                        append(&store, &series, sample_time(step), total as f64);
                    }
                }
            }
        }
        for tenant in 0..tenants {
            let labels = Labels::from_pairs([
                ("__name__", "queue_depth".to_owned()),
                ("service_name", service_name.clone()),
                ("tenant_id", format!("tenant-{tenant:04}")),
            ]);
            let series = store.get_or_create_series(&labels);
            let mut depth = 100i64;
            for step in 0..SAMPLES_PER_SERIES {
                depth = (depth + random.below(21) as i64 - 10).max(0);
                append(&store, &series, sample_time(step), depth as f64);
            }
        }
    }
    store
}

/// Number of output series and a checksum of every value, NaN counted as 0.
fn summarize(value: &Value) -> (usize, f64) {
    let finite = |value: f64| if value.is_finite() { value } else { 0.0 };
    match value {
        Value::Scalar(_, value) => (1, finite(*value)),
        Value::String(_) => (1, 0.0),
        Value::Vector(elements) => (elements.len(), elements.iter().map(|(_, sample)| finite(sample.value)).sum()),
        Value::Matrix(series) => (
            series.len(),
            series.iter().flat_map(|series| series.samples.iter()).map(|sample| finite(sample.value)).sum(),
        ),
    }
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let tenants: usize = arguments.first().and_then(|text| text.parse().ok()).unwrap_or(60);
    let repeat: usize = arguments.get(1).and_then(|text| text.parse().ok()).unwrap_or(3).max(1);
    let filter = arguments.get(2).cloned().unwrap_or_default();
    let kinds: &[&str] = match arguments.get(3).map(String::as_str) {
        Some("instant") => &["instant"],
        Some("range") => &["range"],
        _ => &["instant", "range"],
    };

    let started = Instant::now();
    let store = build_store(tenants);
    println!(
        "built {} series, {} samples in {:.1} s",
        store.series_count(),
        store.sample_count(),
        started.elapsed().as_secs_f64()
    );

    let engine = Engine::new(EngineOptions::default());
    let end = sample_time(SAMPLES_PER_SERIES - 1);
    let start = sample_time(0);
    println!("{:>10} {:>10} {:>8} {:>16}  query", "kind", "best ms", "series", "checksum");
    let mut total_ms = 0.0;
    for query in QUERIES.iter().filter(|query| query.contains(filter.as_str())) {
        for &kind in kinds {
            let mut best = f64::INFINITY;
            let mut summary = (0, 0.0);
            for _ in 0..repeat {
                let began = Instant::now();
                let result = match kind {
                    "instant" => engine.instant_query(&store, query, end),
                    _ => engine.range_query(&store, query, start, end, RANGE_STEP_MS),
                };
                let elapsed = began.elapsed().as_secs_f64() * 1000.0;
                match result {
                    Ok(result) => summary = summarize(&result.value),
                    Err(error) => {
                        println!("{kind:>10} error: {error}  {query}");
                        break;
                    }
                }
                best = best.min(elapsed);
            }
            total_ms += best;
            println!("{kind:>10} {best:>10.1} {:>8} {:>16.6e}  {query}", summary.0, summary.1);
        }
    }
    println!("total best ms: {total_ms:.1}");
}
