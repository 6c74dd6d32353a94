//! Scraping a local HTTP server whose exposition changes between scrapes, into
//! a MemStore-backed DurableStore.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use ingest::durable::DurableStore;
use scrape::config::{ScrapeConfig, ScrapeDefaults};
use scrape::discovery;
use scrape::{ScrapeContext, ScrapeMetrics, TargetScraper};
use tsdb::{Matcher, MemStore, Queryable};

/// What the exporter serves, one phase per scrape.
#[derive(Default)]
struct Exporter {
    phase: AtomicUsize,
    last_accept: parking_lot::Mutex<String>,
}

async fn metrics(axum::extract::State(exporter): axum::extract::State<Arc<Exporter>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|value| value.to_str().ok()).unwrap_or("").to_owned();
    *exporter.last_accept.lock() = accept.clone();
    let phase = exporter.phase.load(Ordering::SeqCst);
    if accept.contains("application/openmetrics-text") && phase == 3 {
        let body = "# TYPE requests counter\nrequests_total{path=\"/a\"} 7\nrequests_created{path=\"/a\"} 1\n# EOF\n";
        return ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
            .into_response();
    }
    let body = match phase {
        0 => {
            "# TYPE requests_total counter\nrequests_total{path=\"/a\"} 1\nrequests_total{path=\"/b\"} 2\ntemperature 20\n"
        }
        1 => "# TYPE requests_total counter\nrequests_total{path=\"/a\"} 3\ntemperature 21\n",
        2 => return (StatusCode::INTERNAL_SERVER_ERROR, "broken\n").into_response(),
        _ => "temperature 22\n",
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn start_exporter() -> (std::net::SocketAddr, Arc<Exporter>) {
    let exporter = Arc::new(Exporter::default());
    let app = Router::new().route("/metrics", get(metrics)).with_state(exporter.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (address, exporter)
}

fn values(store: &MemStore, matchers: &[Matcher]) -> Vec<(String, Vec<(i64, String)>)> {
    let mut series: Vec<(String, Vec<(i64, String)>)> = store
        .select(matchers, 0, i64::MAX)
        .expect("select")
        .into_iter()
        .map(|series| {
            let samples = series
                .samples
                .iter()
                .map(|sample| {
                    let value =
                        if tsdb::is_stale_nan(sample.value) { "stale".to_owned() } else { sample.value.to_string() };
                    (sample.timestamp, value)
                })
                .collect();
            (series.labels.to_string(), samples)
        })
        .collect();
    series.sort();
    series
}

fn scraper_for(address: std::net::SocketAddr, durable: Arc<DurableStore>) -> TargetScraper {
    let job = ScrapeConfig::with_static_targets("demo", &[&address.to_string()], ScrapeDefaults::default());
    let targets = discovery::discover(&job, &job.static_configs);
    assert_eq!(targets.len(), 1);
    let context =
        ScrapeContext::new(durable, Arc::new(|_: &tsdb::Labels| true), ScrapeMetrics::default()).expect("client");
    TargetScraper::new(Arc::new(job), targets[0].clone(), Arc::new(context))
}

#[tokio::test]
async fn scrapes_mark_vanished_series_and_failed_targets_stale() {
    let (address, exporter) = start_exporter().await;
    let store = Arc::new(MemStore::new());
    let durable = Arc::new(DurableStore::in_memory(store.clone()));
    let mut scraper = scraper_for(address, durable);
    let instance = address.to_string();

    let report = scraper.scrape_once(10_000).await;
    assert!(report.up, "{:?}", report.error);
    assert_eq!((report.samples_scraped, report.series_added), (3, 3));
    exporter.phase.store(1, Ordering::SeqCst);
    let report = scraper.scrape_once(20_000).await;
    assert_eq!((report.samples_scraped, report.series_added, report.stale_markers), (2, 0, 1));
    exporter.phase.store(2, Ordering::SeqCst);
    let report = scraper.scrape_once(30_000).await;
    assert!(!report.up);
    assert_eq!(report.stale_markers, 2);
    assert!(report.error.as_deref().unwrap_or("").contains("500"), "{:?}", report.error);

    let requests = values(&store, &[Matcher::equal("__name__", "requests_total")]);
    assert_eq!(
        requests,
        [
            (
                format!(r#"requests_total{{instance="{instance}", job="demo", path="/a"}}"#),
                vec![(10_000, "1".into()), (20_000, "3".into()), (30_000, "stale".into())]
            ),
            (
                format!(r#"requests_total{{instance="{instance}", job="demo", path="/b"}}"#),
                vec![(10_000, "2".into()), (20_000, "stale".into())]
            ),
        ]
    );
    let up = values(&store, &[Matcher::equal("__name__", "up")]);
    assert_eq!(up[0].1, [(10_000, "1".into()), (20_000, "1".into()), (30_000, "0".into())]);
    let scraped = values(&store, &[Matcher::equal("__name__", "scrape_samples_scraped")]);
    assert_eq!(scraped[0].1, [(10_000, "3".into()), (20_000, "2".into()), (30_000, "0".into())]);
    for name in ["scrape_duration_seconds", "scrape_samples_post_metric_relabeling", "scrape_series_added"] {
        assert_eq!(values(&store, &[Matcher::equal("__name__", name)])[0].1.len(), 3, "{name}");
    }

    // Back up: the series come back; then the target goes away.
    exporter.phase.store(4, Ordering::SeqCst);
    let report = scraper.scrape_once(40_000).await;
    assert!(report.up);
    assert_eq!(report.series_added, 1);
    let markers = scraper.finish(50_000).await;
    assert_eq!(markers, 1 + 5);
    let temperature = values(&store, &[Matcher::equal("__name__", "temperature")]);
    assert_eq!(
        temperature[0].1,
        [
            (10_000, "20".into()),
            (20_000, "21".into()),
            (30_000, "stale".into()),
            (40_000, "22".into()),
            (50_000, "stale".into())
        ]
    );
    let up = values(&store, &[Matcher::equal("__name__", "up")]);
    assert_eq!(up[0].1.last(), Some(&(50_000, "stale".to_owned())));
}

#[tokio::test]
async fn openmetrics_is_asked_for_and_parsed() {
    let (address, exporter) = start_exporter().await;
    exporter.phase.store(3, Ordering::SeqCst);
    let store = Arc::new(MemStore::new());
    let mut scraper = scraper_for(address, Arc::new(DurableStore::in_memory(store.clone())));
    let report = scraper.scrape_once(10_000).await;
    assert!(report.up, "{:?}", report.error);
    let accept = exporter.last_accept.lock().clone();
    assert!(accept.starts_with("application/openmetrics-text;version=1.0.0"), "{accept}");
    assert!(accept.contains("text/plain;version=0.0.4"), "{accept}");
    // `_created` is the family's creation time, not a series.
    assert_eq!(report.samples_scraped, 1);
    let requests = values(&store, &[Matcher::equal("__name__", "requests_total")]);
    assert_eq!(requests.len(), 1);
    assert!(values(&store, &[Matcher::equal("__name__", "requests_created")]).is_empty());
}

#[tokio::test]
async fn manager_scrapes_targets_from_files_and_stops_removed_ones() {
    let (address, _exporter) = start_exporter().await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let targets_file = directory.path().join("targets.json");
    std::fs::write(&targets_file, format!(r#"[{{"targets": ["{address}"], "labels": {{"env": "test"}}}}]"#))
        .expect("write");
    let config_file = directory.path().join("scrape.yaml");
    std::fs::write(
        &config_file,
        "scrape_configs:\n  - job_name: files\n    scrape_interval: 100ms\n    file_sd_configs:\n      - files: ['*.json']\n        refresh_interval: 100ms\n",
    )
    .expect("write");
    let configs = scrape::config::load(&config_file).expect("valid configuration");
    let store = Arc::new(MemStore::new());
    let durable = Arc::new(DurableStore::in_memory(store.clone()));
    let context = Arc::new(
        ScrapeContext::new(durable, Arc::new(|_: &tsdb::Labels| true), ScrapeMetrics::default()).expect("client"),
    );
    let handle = scrape::spawn(configs, context, Arc::new(scrape::SystemClock));
    let up = [Matcher::equal("__name__", "up"), Matcher::equal("job", "files"), Matcher::equal("env", "test")];
    let mut scraped = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if values(&store, &up).first().is_some_and(|(_, samples)| samples.len() >= 2) {
            scraped = true;
            break;
        }
    }
    assert!(scraped, "the file-discovered target was scraped twice");
    std::fs::write(&targets_file, "[]").expect("write");
    let mut marked = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if values(&store, &up).first().is_some_and(|(_, samples)| samples.last().is_some_and(|(_, v)| v == "stale")) {
            marked = true;
            break;
        }
    }
    handle.shutdown().await;
    assert!(marked, "a target removed from the file is marked stale");
}

/// A real OpenMetrics body with metadata lines and exemplars.
const OPENMETRICS_WITH_EXEMPLARS: &str = "# TYPE request_seconds histogram\n\
# HELP request_seconds Request latency.\n\
# UNIT request_seconds seconds\n\
request_seconds_bucket{le=\"0.5\"} 3 # {trace_id=\"KOO5S4vxi0o\"} 0.27 1600096945.479\n\
request_seconds_bucket{le=\"+Inf\"} 4 # {trace_id=\"oHg5SJYRHA0\"} 9.8\n\
request_seconds_count 4\n\
request_seconds_sum 11.2\n\
# EOF\n";

#[tokio::test]
async fn scrapes_record_metadata_exemplars_and_target_health() {
    let app = Router::new().route(
        "/metrics",
        get(|| async {
            ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0")], OPENMETRICS_WITH_EXEMPLARS)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    let durable = Arc::new(DurableStore::in_memory(Arc::new(MemStore::new())));
    let mut scraper = scraper_for(address, durable);
    assert_eq!(scraper.status().health().health, scrape::status::Health::Unknown);
    let report = scraper.scrape_once(1_600_096_950_000).await;
    assert!(report.up, "{:?}", report.error);

    let health = scraper.status().health();
    assert_eq!(health.health, scrape::status::Health::Up);
    assert_eq!(health.last_scrape_ms, Some(1_600_096_950_000));
    assert_eq!(health.metadata["request_seconds"].unit.as_deref(), Some("seconds"));

    let context = scraper.context().clone();
    let metadata = context.metadata.select(Some("request_seconds"), None, None);
    assert_eq!(metadata[0].1[0].help, "Request latency.");
    assert_eq!(metadata[0].1[0].metric_type, ingest::MetricType::Histogram);

    let exemplars =
        context.exemplars.select(&[vec![Matcher::equal("__name__", "request_seconds_bucket")]], 0, i64::MAX);
    assert_eq!(exemplars.len(), 2);
    let inf = exemplars.iter().find(|series| series.series.get("le") == Some("+Inf")).expect("+Inf bucket");
    assert_eq!(inf.series.get("job"), Some("demo"));
    assert_eq!(inf.exemplars[0].labels.get("trace_id"), Some("oHg5SJYRHA0"));
    // No timestamp on the exemplar: it takes the scrape's.
    assert_eq!(inf.exemplars[0].timestamp, 1_600_096_950_000);
    let half = exemplars.iter().find(|series| series.series.get("le") == Some("0.5")).expect("0.5 bucket");
    assert_eq!((half.exemplars[0].value, half.exemplars[0].timestamp), (0.27, 1_600_096_945_479));
    // Scraped again: the timestamped exemplar is a duplicate and not stored
    // twice; the other takes the new scrape's time, as in Prometheus.
    scraper.scrape_once(1_600_096_960_000).await;
    assert_eq!(context.exemplars.len(), 3);
}
