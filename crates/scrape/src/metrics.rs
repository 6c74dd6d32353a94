//! The scraper's own metrics, per job, registered into the process's
//! `prometheus-client` registry: attempts, failures (by reason), samples
//! appended, active targets and the scrape duration histogram.
//!
//! Key type: [`ScrapeMetrics`]. It only counts; exposing the registry over HTTP
//! is the server's job.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub job: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub job: String,
    pub reason: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Counters and gauges the scrape loops update.
#[derive(Debug, Clone)]
pub struct ScrapeMetrics {
    pub attempts: Family<JobLabels, Counter>,
    pub failures: Family<FailureLabels, Counter>,
    pub samples_appended: Family<JobLabels, Counter>,
    pub targets: Family<JobLabels, Gauge>,
    pub duration: Family<JobLabels, Histogram, fn() -> Histogram>,
    /// Shared with other ingest paths (`alertbook_ingest_samples_appended_total{source="scrape"}`).
    pub ingest_appended: Counter,
}

impl Default for ScrapeMetrics {
    /// Metrics registered nowhere (tests, tools).
    fn default() -> Self {
        Self {
            attempts: Family::default(),
            failures: Family::default(),
            samples_appended: Family::default(),
            targets: Family::default(),
            duration: Family::new_with_constructor(duration_histogram),
            ingest_appended: Counter::default(),
        }
    }
}

impl ScrapeMetrics {
    /// Registers the metrics under `alertbook_scrape_*`; `ingest_appended` is
    /// incremented by every sample a scrape appends.
    pub fn register(registry: &mut Registry, ingest_appended: Counter) -> Self {
        let metrics = Self { ingest_appended, ..Self::default() };
        registry.register("alertbook_scrape_attempts", "Scrapes attempted, per job", metrics.attempts.clone());
        registry.register(
            "alertbook_scrape_failures",
            "Scrapes that failed, per job and reason (http, timeout, parse, sample_limit, label_limit, store)",
            metrics.failures.clone(),
        );
        registry.register(
            "alertbook_scrape_samples_appended",
            "Samples scrapes appended to the store, per job (report series and stale markers included)",
            metrics.samples_appended.clone(),
        );
        registry.register("alertbook_scrape_targets", "Active scrape targets, per job", metrics.targets.clone());
        registry.register(
            "alertbook_scrape_duration_seconds",
            "Time a scrape took, from request to appended, per job",
            metrics.duration.clone(),
        );
        metrics
    }

    pub(crate) fn job(job: &str) -> JobLabels {
        JobLabels { job: job.to_owned() }
    }

    pub(crate) fn failed(&self, job: &str, reason: &str) {
        self.failures.get_or_create(&FailureLabels { job: job.to_owned(), reason: reason.to_owned() }).inc();
    }
}
