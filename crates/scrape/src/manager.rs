//! Running the scrape jobs: one task per job keeps its target set current
//! (static groups, file-SD files re-read every `refresh_interval`), and one
//! task per target scrapes it on its interval.
//!
//! Key items: [`spawn`] (starts everything, returns a handle that stops it),
//! [`Clock`] (where sample timestamps come from; [`SystemClock`] in
//! production) and [`scrape_offset`] (Prometheus-style spreading: each target
//! is scraped at a fixed phase within its interval, derived from a hash of its
//! labels and URL, so targets do not all fire at once and a target keeps its
//! phase across restarts).
//!
//! A target that leaves the discovered set has its series marked stale; at
//! shutdown no stale markers are written, so a restarted process continues
//! the series. [`ScrapeHandle::apply`] takes a reloaded configuration: it
//! keeps unchanged jobs, restarts changed ones and marks the targets of
//! removed jobs stale.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ScrapeConfig;
use crate::discovery::{self, Target};
use crate::metrics::ScrapeMetrics;
use crate::scraper::{ScrapeContext, TargetScraper};

/// Where timestamps come from (the clock shared by every stage; sample
/// times only: intervals are slept on the wall's timer).
pub use clock::{Clock, SystemClock};

/// The delay before a target's first scrape, so that it is scraped when the
/// clock modulo `interval` equals the target's `hash` modulo `interval`.
pub fn scrape_offset(hash: u64, interval: Duration, now_ms: i64) -> Duration {
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1);
    let now = u64::try_from(now_ms).unwrap_or(0);
    let phase = hash % interval_ms;
    let position = now % interval_ms;
    Duration::from_millis((phase + interval_ms - position) % interval_ms)
}

fn target_hash(target: &Target) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    target.labels.precomputed_hash().hash(&mut hasher);
    target.url.hash(&mut hasher);
    hasher.finish()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    /// The target left the discovered set: mark its series stale.
    Removed,
    /// The process is stopping: leave the series as they are.
    Shutdown,
}

struct RunningTarget {
    stop: watch::Sender<Stop>,
    task: JoinHandle<()>,
    status: Arc<crate::status::TargetStatus>,
}

/// How a job is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobStop {
    Running,
    /// A reload removed the job: mark its targets' series stale.
    Removed,
    /// The process is stopping, or a reload restarts the job with a new
    /// configuration: leave the series as they are.
    Shutdown,
}

#[derive(Debug)]
struct RunningJob {
    config: Arc<ScrapeConfig>,
    stop: watch::Sender<JobStop>,
    task: JoinHandle<()>,
}

/// The running scrape jobs.
#[derive(Debug)]
pub struct ScrapeHandle {
    jobs: Vec<RunningJob>,
    /// Where jobs a reload starts scrape into; `None` for [`ScrapeHandle::idle`].
    running: Option<(Arc<ScrapeContext>, Arc<dyn Clock>)>,
}

/// What [`ScrapeHandle::apply`] changed, by job name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: Vec<String>,
}

/// Whether two jobs have the same settings (their relabeling regexes compared by pattern).
fn same_job(left: &ScrapeConfig, right: &ScrapeConfig) -> bool {
    format!("{left:?}") == format!("{right:?}")
}

impl ScrapeHandle {
    /// A handle running nothing.
    pub fn idle() -> Self {
        Self { jobs: Vec::new(), running: None }
    }

    /// Stops every job and target loop and waits for them.
    pub async fn shutdown(self) {
        for job in &self.jobs {
            let _ = job.stop.send(JobStop::Shutdown);
        }
        for job in self.jobs {
            let _ = job.task.await;
        }
    }

    /// Puts a reloaded `scrape_configs` in force, as Prometheus's reload
    /// does: a job with the same settings keeps running untouched; a changed
    /// job restarts with its new settings (each target keeps its phase, so
    /// its series continue); a removed job stops and its targets' series are
    /// marked stale; a new job starts. An idle handle stays idle.
    pub async fn apply(&mut self, configs: Vec<ScrapeConfig>) -> Applied {
        let mut applied = Applied::default();
        let Some((context, clock)) = self.running.clone() else { return applied };
        let mut kept = Vec::new();
        let mut stopping = Vec::new();
        for job in self.jobs.drain(..) {
            match configs.iter().find(|config| config.job_name == job.config.job_name) {
                Some(config) if same_job(config, &job.config) => {
                    applied.unchanged.push(job.config.job_name.clone());
                    kept.push(job);
                }
                Some(_) => {
                    applied.changed.push(job.config.job_name.clone());
                    let _ = job.stop.send(JobStop::Shutdown);
                    stopping.push(job);
                }
                None => {
                    applied.removed.push(job.config.job_name.clone());
                    let _ = job.stop.send(JobStop::Removed);
                    stopping.push(job);
                }
            }
        }
        for job in stopping {
            let _ = job.task.await;
        }
        for config in configs {
            if kept.iter().any(|job| job.config.job_name == config.job_name) {
                continue;
            }
            if !applied.changed.contains(&config.job_name) {
                applied.added.push(config.job_name.clone());
            }
            kept.push(start_job(config, &context, &clock));
        }
        self.jobs = kept;
        applied
    }
}

fn start_job(config: ScrapeConfig, context: &Arc<ScrapeContext>, clock: &Arc<dyn Clock>) -> RunningJob {
    let config = Arc::new(config);
    let (stop, stopped) = watch::channel(JobStop::Running);
    let task = tokio::spawn(run_job(config.clone(), context.clone(), clock.clone(), stopped));
    RunningJob { config, stop, task }
}

/// Starts scraping `configs`.
pub fn spawn(configs: Vec<ScrapeConfig>, context: Arc<ScrapeContext>, clock: Arc<dyn Clock>) -> ScrapeHandle {
    let jobs = configs.into_iter().map(|config| start_job(config, &context, &clock)).collect();
    ScrapeHandle { jobs, running: Some((context, clock)) }
}

async fn run_job(
    job: Arc<ScrapeConfig>,
    context: Arc<ScrapeContext>,
    clock: Arc<dyn Clock>,
    mut stopped: watch::Receiver<JobStop>,
) {
    let mut running: HashMap<(tsdb::Labels, String), RunningTarget> = HashMap::new();
    let refresh = job.file_sd_configs.iter().map(|file_sd| file_sd.refresh_interval).min();
    loop {
        let mut groups = job.static_configs.clone();
        if !job.file_sd_configs.is_empty() {
            let patterns: Vec<String> = job.file_sd_configs.iter().flat_map(|file_sd| file_sd.files.clone()).collect();
            match tokio::task::spawn_blocking(move || discovery::file_sd_groups(&patterns)).await {
                Ok(found) => groups.extend(found),
                Err(error) => tracing::warn!(job = %job.job_name, error = %error, "file discovery task failed"),
            }
        }
        let (targets, dropped) = discovery::discover_with_dropped(&job, &groups);
        synchronize(&job, &context, &clock, &mut running, targets).await;
        let mut active: Vec<_> = running.values().map(|target| target.status.clone()).collect();
        active.sort_by(|left, right| left.target.labels.cmp(&right.target.labels));
        context.targets.set_pool(&job.job_name, crate::status::Pool { active, dropped });
        context.metrics.targets.get_or_create(&ScrapeMetrics::job(&job.job_name)).set(running.len() as i64);
        let wait = async {
            match refresh {
                Some(interval) => tokio::time::sleep(interval).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = wait => {}
            _ = shutdown_requested(&mut stopped) => break,
        }
    }
    context.targets.remove_pool(&job.job_name);
    let stop = if *stopped.borrow() == JobStop::Removed { Stop::Removed } else { Stop::Shutdown };
    if stop == Stop::Removed {
        tracing::info!(job = %job.job_name, targets = running.len(), "job removed");
    }
    for (_, target) in running.drain() {
        let _ = target.stop.send(stop);
        let _ = target.task.await;
    }
}

async fn synchronize(
    job: &Arc<ScrapeConfig>,
    context: &Arc<ScrapeContext>,
    clock: &Arc<dyn Clock>,
    running: &mut HashMap<(tsdb::Labels, String), RunningTarget>,
    targets: Vec<Target>,
) {
    let wanted: HashMap<(tsdb::Labels, String), Target> =
        targets.into_iter().map(|target| ((target.labels.clone(), target.url.clone()), target)).collect();
    let gone: Vec<(tsdb::Labels, String)> = running.keys().filter(|key| !wanted.contains_key(*key)).cloned().collect();
    for key in gone {
        if let Some(target) = running.remove(&key) {
            tracing::info!(job = %job.job_name, target = %key.1, "target removed");
            let _ = target.stop.send(Stop::Removed);
            let _ = target.task.await;
        }
    }
    for (key, target) in wanted {
        if running.contains_key(&key) {
            continue;
        }
        tracing::info!(job = %job.job_name, target = %target.url, "target added");
        let (stop, stop_receiver) = watch::channel(Stop::Running);
        let scraper = TargetScraper::new(job.clone(), target, context.clone());
        let status = scraper.status().clone();
        let task = tokio::spawn(run_target(scraper, clock.clone(), stop_receiver));
        running.insert(key, RunningTarget { stop, task, status });
    }
}

async fn stop_requested(stop: &mut watch::Receiver<Stop>) {
    let _ = stop.wait_for(|stop| *stop != Stop::Running).await;
}

async fn shutdown_requested(stopped: &mut watch::Receiver<JobStop>) {
    let _ = stopped.wait_for(|stop| *stop != JobStop::Running).await;
}

async fn run_target(mut scraper: TargetScraper, clock: Arc<dyn Clock>, mut stop: watch::Receiver<Stop>) {
    let interval = scraper.target().scrape_interval;
    let offset = scrape_offset(target_hash(scraper.target()), interval, clock.now_ms());
    tokio::select! {
        _ = tokio::time::sleep(offset) => {}
        _ = stop_requested(&mut stop) => {}
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scraped = false;
    loop {
        let state = *stop.borrow();
        if state != Stop::Running {
            break;
        }
        tokio::select! {
            _ = ticker.tick() => {
                let report = scraper.scrape_once(clock.now_ms()).await;
                scraped = true;
                if let Some(error) = &report.error {
                    tracing::debug!(target = %scraper.target().url, error = %error, "scrape failed");
                }
            }
            _ = stop_requested(&mut stop) => {}
        }
    }
    let removed = *stop.borrow() == Stop::Removed;
    if scraped && removed {
        scraper.finish(clock.now_ms()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_put_each_target_at_a_fixed_phase() {
        let interval = Duration::from_secs(15);
        assert_eq!(scrape_offset(3_000, interval, 1_000), Duration::from_secs(2));
        assert_eq!(scrape_offset(3_000, interval, 4_000), Duration::from_secs(14));
        assert_eq!(scrape_offset(18_000, interval, 15_000), Duration::from_secs(3));
        assert_eq!(scrape_offset(0, interval, 30_000), Duration::ZERO);
        // The phase is kept whatever the start time.
        for now in [0, 1_234, 99_999] {
            let offset = scrape_offset(7_777, interval, now);
            assert_eq!((now as u64 + offset.as_millis() as u64) % 15_000, 7_777);
        }
    }
}
