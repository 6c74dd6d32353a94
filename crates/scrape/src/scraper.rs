//! Scraping one target: fetch, parse, label, limit, append, mark stale.
//!
//! Key items: [`TargetScraper`] (the state one target keeps between scrapes:
//! the series it last exposed and a per-series label cache),
//! [`TargetScraper::scrape_once`] (one scrape at a timestamp the caller
//! passes, so tests control time), [`TargetScraper::finish`] (stale markers
//! when the target goes away), [`process_exposition`] (the pure part: body in,
//! labelled samples out) and [`ScrapeContext`] (what every target shares: the
//! HTTP client, the store, the series admission rule, the metrics).
//!
//! Semantics follow Prometheus: the `Accept` header asks for OpenMetrics 1.0
//! first and the text format 0.0.4 after; `honor_labels` decides whether
//! scraped labels win over target labels or are kept as `exported_<name>`;
//! `honor_timestamps` whether exposed timestamps are kept; the sample and
//! label limits fail the whole scrape; a failed scrape appends nothing but
//! `up` 0 and the other report series, and marks every series of the previous
//! scrape stale; a series that disappears between two scrapes gets a stale
//! marker at the later scrape's timestamp (series with exposed timestamps are
//! never marked stale). OpenMetrics `_created` samples are not stored.
//!
//! It does not schedule: [`crate::manager`] calls it on the target's interval.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ingest::durable::{AppendOutcome, DurableStore};
use ingest::exemplars::{Exemplar, ExemplarStore};
use ingest::exposition::{Entry, FamilyMetadata, Format, ParseError, Parser, for_each_line};
use ingest::metadata::MetadataStore;
use tsdb::{Labels, LabelsBuilder, METRIC_NAME, STALE_NAN};

use crate::config::ScrapeConfig;
use crate::discovery::Target;
use crate::metrics::ScrapeMetrics;
use crate::relabel;

/// The `Accept` header of a scrape: OpenMetrics preferred, text 0.0.4 accepted.
pub const ACCEPT_HEADER: &str = "application/openmetrics-text;version=1.0.0;q=0.6,\
application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/// Decides whether a series that does not exist yet may be created.
pub type Admit = Arc<dyn Fn(&Labels) -> bool + Send + Sync>;

/// Why a scrape failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScrapeError {
    #[error("request failed: {0}")]
    Http(String),
    #[error("scrape timed out after {0:?}")]
    Timeout(Duration),
    #[error("server returned HTTP status {0}")]
    Status(u16),
    #[error("cannot parse the exposition: {0}")]
    Parse(String),
    #[error("sample_limit exceeded ({samples} samples, limit {limit})")]
    SampleLimit { samples: usize, limit: usize },
    #[error("label_limit exceeded (metric: {metric}, number of labels: {labels}, limit: {limit})")]
    LabelLimit { metric: String, labels: usize, limit: usize },
    #[error("cannot append to the store: {0}")]
    Store(String),
}

impl ScrapeError {
    /// A short word for the failure metric's `reason` label.
    pub fn reason(&self) -> &'static str {
        match self {
            ScrapeError::Http(_) | ScrapeError::Status(_) => "http",
            ScrapeError::Timeout(_) => "timeout",
            ScrapeError::Parse(_) => "parse",
            ScrapeError::SampleLimit { .. } => "sample_limit",
            ScrapeError::LabelLimit { .. } => "label_limit",
            ScrapeError::Store(_) => "store",
        }
    }
}

impl From<ParseError> for ScrapeError {
    fn from(error: ParseError) -> Self {
        ScrapeError::Parse(error.to_string())
    }
}

/// What every scrape shares.
pub struct ScrapeContext {
    pub durable: Arc<DurableStore>,
    pub client: reqwest::Client,
    pub admit: Admit,
    pub metrics: ScrapeMetrics,
    /// Where the families' `# TYPE`/`# HELP`/`# UNIT` go.
    pub metadata: Arc<MetadataStore>,
    /// Where OpenMetrics exemplars go.
    pub exemplars: Arc<ExemplarStore>,
    /// Every pool's targets and their health, for the targets API.
    pub targets: Arc<crate::status::Targets>,
}

impl std::fmt::Debug for ScrapeContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeContext").field("durable", &self.durable).finish_non_exhaustive()
    }
}

impl ScrapeContext {
    /// A context with a fresh HTTP client (the ring TLS provider installed).
    pub fn new(durable: Arc<DurableStore>, admit: Admit, metrics: ScrapeMetrics) -> Result<Self, crate::Error> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .user_agent(concat!("alertbook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| crate::Error::Client(error.to_string()))?;
        Ok(Self {
            durable,
            client,
            admit,
            metrics,
            metadata: Arc::default(),
            exemplars: Arc::default(),
            targets: Arc::default(),
        })
    }

    /// Shares `metadata`, `exemplars` and `targets` with whoever reads them.
    pub fn with_stores(
        mut self,
        metadata: Arc<MetadataStore>,
        exemplars: Arc<ExemplarStore>,
        targets: Arc<crate::status::Targets>,
    ) -> Self {
        self.metadata = metadata;
        self.exemplars = exemplars;
        self.targets = targets;
        self
    }
}

/// One sample ready to append.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapedSample {
    pub labels: Labels,
    pub timestamp: i64,
    pub value: f64,
    /// True when the exposition gave the timestamp (and it was honored).
    pub explicit_timestamp: bool,
}

/// What [`process_exposition`] made of a body.
#[derive(Debug, Clone, Default)]
pub struct Processed {
    /// Samples after labelling and metric relabeling, duplicates removed.
    pub samples: Vec<ScrapedSample>,
    /// Samples the target exposed (`scrape_samples_scraped`).
    pub scraped: usize,
    /// The families' metadata lines.
    pub families: std::collections::BTreeMap<String, FamilyMetadata>,
    /// Exemplars of kept samples, with their series' final labels; an
    /// exemplar without a timestamp takes its sample's.
    pub exemplars: Vec<(Labels, Exemplar)>,
}

/// Cached labelling of one exposed series: its final labels, or `None` when
/// metric relabeling drops it.
pub type SeriesCache = HashMap<Box<str>, Option<Labels>>;

/// Adds the target's labels to a scraped label set, Prometheus's way: with
/// `honor_labels` the scraped value wins; without, the target's value wins and
/// a clashing scraped value moves to `exported_<name>`.
pub fn merge_target_labels(scraped: &Labels, target: &Labels, honor_labels: bool) -> Labels {
    let mut builder = scraped.to_builder();
    let mut conflicting = Vec::new();
    for label in target {
        match scraped.get(&label.name) {
            Some(_) if honor_labels => {}
            Some(existing) => {
                conflicting.push((label.name.clone(), existing.to_owned()));
                builder.set(label.name.clone(), label.value.clone());
            }
            None => {
                builder.set(label.name.clone(), label.value.clone());
            }
        }
    }
    for (name, value) in conflicting {
        let mut exported = format!("exported_{name}");
        while builder.get(&exported).is_some() {
            exported = format!("exported_{exported}");
        }
        builder.set(exported, value);
    }
    builder.build()
}

/// Parses `body` and labels its samples: target labels merged, metric
/// relabeling applied, limits checked. `cache` maps a series' text to its
/// final labels and is refreshed to hold exactly the series of this body.
pub fn process_exposition(
    body: &[u8],
    format: Format,
    job: &ScrapeConfig,
    target_labels: &Labels,
    timestamp: i64,
    cache: &mut SeriesCache,
) -> Result<Processed, ScrapeError> {
    let mut parser = Parser::new(format);
    let mut processed = Processed::default();
    let mut seen: HashSet<Labels> = HashSet::new();
    let mut previous = std::mem::take(cache);
    let mut outcome: Result<(), ScrapeError> = for_each_line(body, |line| {
        let sample = match parser.parse_line(line)? {
            Entry::Sample(sample) => sample,
            Entry::Help { family, help } => {
                processed.families.entry(family.to_owned()).or_default().help = Some(help.to_owned());
                return Ok(());
            }
            Entry::Type { family, metric_type } => {
                processed.families.entry(family.to_owned()).or_default().metric_type = metric_type;
                return Ok(());
            }
            Entry::Unit { family, unit } => {
                processed.families.entry(family.to_owned()).or_default().unit = Some(unit.to_owned());
                return Ok(());
            }
            Entry::Eof | Entry::Nothing => return Ok(()),
        };
        if sample.is_created() {
            return Ok(());
        }
        processed.scraped += 1;
        let text = sample.series_text();
        let labels = match previous.remove_entry(text) {
            Some((key, labels)) => {
                cache.insert(key, labels.clone());
                labels
            }
            None => {
                let merged = merge_target_labels(&sample.to_labels(), target_labels, job.honor_labels);
                let labels = relabel::relabel(&merged, &job.metric_relabel_configs).filter(|labels| !labels.is_empty());
                cache.insert(text.into(), labels.clone());
                labels
            }
        };
        let Some(labels) = labels else {
            return Ok(());
        };
        if job.label_limit > 0 && labels.len() > job.label_limit {
            return Err(ScrapeError::LabelLimit {
                metric: labels.metric_name().unwrap_or("").chars().take(50).collect(),
                labels: labels.len(),
                limit: job.label_limit,
            });
        }
        if !seen.insert(labels.clone()) {
            // A repeated series within one scrape: the first sample wins.
            return Ok(());
        }
        let explicit_timestamp = job.honor_timestamps && sample.timestamp.is_some();
        let sample_timestamp = if explicit_timestamp { sample.timestamp.unwrap_or(timestamp) } else { timestamp };
        if let Some(exemplar) = sample.exemplar {
            processed.exemplars.push((
                labels.clone(),
                Exemplar {
                    labels: exemplar.labels.clone(),
                    value: exemplar.value,
                    timestamp: exemplar.timestamp.unwrap_or(sample_timestamp),
                },
            ));
        }
        processed.samples.push(ScrapedSample {
            labels,
            timestamp: sample_timestamp,
            value: sample.value,
            explicit_timestamp,
        });
        Ok(())
    });
    if outcome.is_ok() {
        outcome = parser.finish().map_err(ScrapeError::from);
    }
    outcome?;
    if job.sample_limit > 0 && processed.samples.len() > job.sample_limit {
        return Err(ScrapeError::SampleLimit { samples: processed.samples.len(), limit: job.sample_limit });
    }
    Ok(processed)
}

/// What one scrape did.
#[derive(Debug, Clone, Default)]
pub struct ScrapeReport {
    pub up: bool,
    pub error: Option<String>,
    pub duration: Duration,
    pub samples_scraped: usize,
    pub samples_post_metric_relabeling: usize,
    pub series_added: usize,
    pub stale_markers: usize,
    pub append: AppendOutcome,
}

/// The names of the series every scrape reports about itself.
pub const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// One target and what it remembers between scrapes.
#[derive(Debug)]
pub struct TargetScraper {
    job: Arc<ScrapeConfig>,
    target: Target,
    context: Arc<ScrapeContext>,
    /// Series of the last scrape whose timestamps were the scrape's (candidates for stale markers).
    previous: HashSet<Labels>,
    /// Every series of the last scrape (for `scrape_series_added`).
    previous_all: HashSet<Labels>,
    cache: SeriesCache,
    report_labels: Vec<Labels>,
    reported: bool,
    status: Arc<crate::status::TargetStatus>,
}

impl TargetScraper {
    pub fn new(job: Arc<ScrapeConfig>, target: Target, context: Arc<ScrapeContext>) -> Self {
        let report_labels = REPORT_SERIES
            .iter()
            .map(|name| {
                let mut builder = target.labels.to_builder();
                builder.set(METRIC_NAME, *name);
                builder.build()
            })
            .collect();
        Self {
            previous: HashSet::new(),
            previous_all: HashSet::new(),
            cache: SeriesCache::new(),
            report_labels,
            reported: false,
            status: Arc::new(crate::status::TargetStatus::new(&job.job_name, target.clone())),
            job,
            target,
            context,
        }
    }

    /// What every target shares.
    pub fn context(&self) -> &Arc<ScrapeContext> {
        &self.context
    }

    /// The target's status, as the targets API shows it.
    pub fn status(&self) -> &Arc<crate::status::TargetStatus> {
        &self.status
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    async fn fetch(&self) -> Result<(bytes::Bytes, Format), ScrapeError> {
        let timeout = self.target.scrape_timeout;
        let request = self
            .context
            .client
            .get(&self.target.url)
            .header(reqwest::header::ACCEPT, ACCEPT_HEADER)
            .header("X-Prometheus-Scrape-Timeout-Seconds", format!("{}", timeout.as_secs_f64()))
            .timeout(timeout);
        let response = request.send().await.map_err(|error| classify(&error, timeout))?;
        if !response.status().is_success() {
            return Err(ScrapeError::Status(response.status().as_u16()));
        }
        let format = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map_or(Format::PrometheusText, Format::from_content_type);
        let body = response.bytes().await.map_err(|error| classify(&error, timeout))?;
        Ok((body, format))
    }

    /// Scrapes once, stamping samples with `timestamp` (milliseconds), and appends
    /// the samples, stale markers and report series.
    pub async fn scrape_once(&mut self, timestamp: i64) -> ScrapeReport {
        let started = Instant::now();
        let job_labels = ScrapeMetrics::job(&self.job.job_name);
        self.context.metrics.attempts.get_or_create(&job_labels).inc();
        let processed = match self.fetch().await {
            Ok((body, format)) => {
                let job = self.job.clone();
                let target_labels = self.target.labels.clone();
                let mut cache = std::mem::take(&mut self.cache);
                let work = tokio::task::spawn_blocking(move || {
                    let result = process_exposition(&body, format, &job, &target_labels, timestamp, &mut cache);
                    (result, cache)
                });
                match work.await {
                    Ok((result, cache)) => {
                        self.cache = cache;
                        result
                    }
                    Err(error) => Err(ScrapeError::Parse(format!("parsing task failed: {error}"))),
                }
            }
            Err(error) => Err(error),
        };
        let mut report = ScrapeReport::default();
        let mut batch: Vec<(Labels, Vec<(i64, f64)>)> = Vec::new();
        let mut current = HashSet::new();
        let mut current_all = HashSet::new();
        let mut scraped_metadata = None;
        match processed {
            Ok(processed) => {
                for (family, metadata) in &processed.families {
                    self.context.metadata.record(family, metadata.into());
                }
                for (series, exemplar) in processed.exemplars {
                    // Duplicates (the same exemplar scraped again) are expected and ignored.
                    let _ = self.context.exemplars.add(&series, exemplar);
                }
                scraped_metadata = Some(processed.families);
                report.up = true;
                report.samples_scraped = processed.scraped;
                report.samples_post_metric_relabeling = processed.samples.len();
                for sample in processed.samples {
                    if !self.previous_all.contains(&sample.labels) {
                        report.series_added += 1;
                    }
                    if !sample.explicit_timestamp {
                        current.insert(sample.labels.clone());
                    }
                    current_all.insert(sample.labels.clone());
                    batch.push((sample.labels, vec![(sample.timestamp, sample.value)]));
                }
            }
            Err(error) => {
                self.cache.clear();
                self.context.metrics.failed(&self.job.job_name, error.reason());
                tracing::debug!(job = %self.job.job_name, target = %self.target.url, error = %error, "scrape failed");
                report.error = Some(error.to_string());
            }
        }
        for gone in self.previous.difference(&current) {
            batch.push((gone.clone(), vec![(timestamp, STALE_NAN)]));
            report.stale_markers += 1;
        }
        report.duration = started.elapsed();
        let report_values = [
            if report.up { 1.0 } else { 0.0 },
            report.duration.as_secs_f64(),
            report.samples_scraped as f64,
            report.samples_post_metric_relabeling as f64,
            report.series_added as f64,
        ];
        for (labels, value) in self.report_labels.iter().zip(report_values) {
            batch.push((labels.clone(), vec![(timestamp, value)]));
        }
        self.reported = true;
        self.previous = current;
        self.previous_all = current_all;
        match self.append(batch).await {
            Ok(outcome) => report.append = outcome,
            Err(error) => {
                self.context.metrics.failed(&self.job.job_name, error.reason());
                tracing::warn!(job = %self.job.job_name, target = %self.target.url, error = %error, "scraped samples were not stored");
                report.error.get_or_insert(error.to_string());
            }
        }
        self.context.metrics.duration.get_or_create(&job_labels).observe(started.elapsed().as_secs_f64());
        self.status.record(timestamp, report.duration, report.error.as_deref(), scraped_metadata);
        report
    }

    /// The target went away: marks every series it exposed, and its report
    /// series, stale at `timestamp`.
    pub async fn finish(&mut self, timestamp: i64) -> usize {
        let mut batch: Vec<(Labels, Vec<(i64, f64)>)> =
            self.previous.drain().map(|labels| (labels, vec![(timestamp, STALE_NAN)])).collect();
        if self.reported {
            batch.extend(self.report_labels.iter().map(|labels| (labels.clone(), vec![(timestamp, STALE_NAN)])));
        }
        self.previous_all.clear();
        self.cache.clear();
        let markers = batch.len();
        if let Err(error) = self.append(batch).await {
            tracing::warn!(job = %self.job.job_name, target = %self.target.url, error = %error, "stale markers were not stored");
        }
        markers
    }

    async fn append(&self, batch: Vec<(Labels, Vec<(i64, f64)>)>) -> Result<AppendOutcome, ScrapeError> {
        if batch.is_empty() {
            return Ok(AppendOutcome::default());
        }
        let durable = self.context.durable.clone();
        let admit = self.context.admit.clone();
        let outcome = tokio::task::spawn_blocking(move || durable.append(&batch, &|labels| admit(labels)))
            .await
            .map_err(|error| ScrapeError::Store(error.to_string()))?
            .map_err(|error| ScrapeError::Store(error.to_string()))?;
        let appended = outcome.samples_appended as u64;
        self.context.metrics.samples_appended.get_or_create(&ScrapeMetrics::job(&self.job.job_name)).inc_by(appended);
        self.context.metrics.ingest_appended.inc_by(appended);
        if outcome.rejected() > 0 {
            tracing::debug!(
                job = %self.job.job_name,
                target = %self.target.url,
                rejected = outcome.rejected(),
                first = outcome.first_error.as_deref().unwrap_or(""),
                "scraped samples rejected by the store"
            );
        }
        Ok(outcome)
    }
}

fn classify(error: &reqwest::Error, timeout: Duration) -> ScrapeError {
    if error.is_timeout() { ScrapeError::Timeout(timeout) } else { ScrapeError::Http(error.to_string()) }
}

/// A label set with `__name__` set, for tests and callers building series.
pub fn with_name(labels: &Labels, name: &str) -> Labels {
    let mut builder: LabelsBuilder = labels.to_builder();
    builder.set(METRIC_NAME, name);
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ScrapeDefaults;
    use crate::relabel::{Action, RelabelConfig, RelabelSpec};

    fn job() -> ScrapeConfig {
        ScrapeConfig::with_static_targets("node", &["a:1"], ScrapeDefaults::default())
    }

    fn target_labels() -> Labels {
        Labels::from_pairs([("instance", "a:1"), ("job", "node")])
    }

    #[test]
    fn honor_labels_decides_who_wins() {
        let scraped = Labels::from_pairs([("__name__", "m"), ("job", "pushed"), ("exported_job", "x")]);
        assert_eq!(
            merge_target_labels(&scraped, &target_labels(), false),
            Labels::from_pairs([
                ("__name__", "m"),
                ("exported_exported_job", "pushed"),
                ("exported_job", "x"),
                ("instance", "a:1"),
                ("job", "node")
            ])
        );
        assert_eq!(
            merge_target_labels(&scraped, &target_labels(), true),
            Labels::from_pairs([("__name__", "m"), ("exported_job", "x"), ("instance", "a:1"), ("job", "pushed")])
        );
    }

    #[test]
    fn processing_applies_timestamps_relabeling_and_limits() {
        let body = b"# TYPE a counter\na_total 1\nb{x=\"1\"} 2 5000\nb{x=\"1\"} 3\ndropme 4\n";
        let mut config = job();
        config.metric_relabel_configs = vec![
            RelabelConfig::new(RelabelSpec {
                source_labels: vec!["__name__".into()],
                regex: Some("dropme".into()),
                action: Some(Action::Drop),
                ..RelabelSpec::default()
            })
            .expect("valid"),
        ];
        let mut cache = SeriesCache::new();
        let processed = process_exposition(body, Format::PrometheusText, &config, &target_labels(), 9000, &mut cache)
            .expect("parses");
        assert_eq!(processed.scraped, 4);
        let got: Vec<(String, i64, f64, bool)> = processed
            .samples
            .iter()
            .map(|sample| (sample.labels.to_string(), sample.timestamp, sample.value, sample.explicit_timestamp))
            .collect();
        assert_eq!(
            got,
            [
                (r#"a_total{instance="a:1", job="node"}"#.to_owned(), 9000, 1.0, false),
                (r#"b{instance="a:1", job="node", x="1"}"#.to_owned(), 5000, 2.0, true),
            ]
        );
        assert_eq!(cache.len(), 3);

        config.honor_timestamps = false;
        let processed =
            process_exposition(body, Format::PrometheusText, &config, &target_labels(), 9000, &mut SeriesCache::new())
                .expect("parses");
        assert!(processed.samples.iter().all(|sample| sample.timestamp == 9000 && !sample.explicit_timestamp));

        config.sample_limit = 1;
        let error = process_exposition(body, Format::PrometheusText, &config, &target_labels(), 9000, &mut cache)
            .expect_err("over the sample limit");
        assert_eq!(error.reason(), "sample_limit");
        config.sample_limit = 0;
        config.label_limit = 3;
        let error = process_exposition(body, Format::PrometheusText, &config, &target_labels(), 9000, &mut cache)
            .expect_err("over the label limit");
        assert_eq!(error.reason(), "label_limit");
        let error =
            process_exposition(b"a 1\n", Format::OpenMetrics, &job(), &target_labels(), 9000, &mut SeriesCache::new())
                .expect_err("OpenMetrics needs # EOF");
        assert_eq!(error.reason(), "parse");
    }
}
