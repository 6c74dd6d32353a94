//! Triage cost on the Busflow bench data.
//!
//! `triage-bench --dataset DATA [--runs N] [--alerts N] [--log-lines N]`
//! loads the dataset `gen-busflow` wrote into an in-memory store (as
//! `alertbook run --backfill` does) and writes `--log-lines` Faro log lines
//! (a quarter tagged with `pii_match_rule`, as redaction tags them) into a
//! log store, then:
//!
//! 1. times `--runs` triage runs of one alert whose entry has metric and log
//!    checks (A1's PromQL checks, with its SQL check recorded as a fixture,
//!    followed by A3's LogQL check), at the dataset's last timestamp and
//!    every 2 s before it (so no run reuses another's answers), and prints
//!    p50 and p99;
//! 2. fires `--alerts` alerts at once through triage's runner (at most 4
//!    runs at a time, as `alertbook run` defaults to) while the catalog's
//!    metric rule groups are evaluated every `--interval` on the blocking
//!    pool, as the scheduler does, on a clock that moves with the wall
//!    clock (runs a second apart do not share answers); prints how long the
//!    alerts took to be triaged and how late rule evaluations started.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alertbook_bench::DatasetMetadata;
use anyhow::Context as _;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "Triage cost of alertbook on the Busflow bench data")]
struct Arguments {
    #[arg(long)]
    dataset: PathBuf,
    #[arg(long, default_value = "catalog/busflow")]
    catalog: PathBuf,
    #[arg(long, default_value_t = 50)]
    runs: usize,
    #[arg(long, default_value_t = 100)]
    alerts: usize,
    #[arg(long, default_value_t = 200_000)]
    log_lines: usize,
    /// Rule evaluation interval during the burst, milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
}

/// A clock that starts at `base_ms` when the burst starts and runs with the
/// wall clock, as `alertbook run`'s runs see time pass during a burst.
#[derive(Debug)]
struct BurstClock {
    base_ms: i64,
    started: Instant,
}

impl rules::Clock for BurstClock {
    fn now_ms(&self) -> i64 {
        self.base_ms + self.started.elapsed().as_millis() as i64
    }
}

fn percentile(sorted: &[Duration], quantile: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let metadata = DatasetMetadata::read(&arguments.dataset)?;
    let time_ms = metadata.end * 1000;
    let catalog = catalog::load(&arguments.catalog).map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))?;

    let store = Arc::new(tsdb::MemStore::new());
    let started = Instant::now();
    let report = ingest::backfill::load_file(&arguments.dataset, &store, &ingest::backfill::BackfillOptions::default())
        .with_context(|| format!("cannot backfill {}", arguments.dataset.display()))?;
    eprintln!(
        "[triage-bench] {} series, {} samples loaded in {:.1} s",
        report.series,
        report.samples,
        started.elapsed().as_secs_f64()
    );

    // Faro lines over the last 24 hours, a quarter with PII matches.
    let logs_directory = tempfile::tempdir()?;
    let options = logstore::LogStoreOptions {
        fsync: wal::FsyncPolicy::Never,
        retention_time: Duration::from_secs(100 * 365 * 24 * 3600),
        ..logstore::LogStoreOptions::default()
    };
    let (log_store, _) = logstore::LogStore::open(logs_directory.path(), options)?;
    let log_store = Arc::new(log_store);
    let rules_ids = ["email", "iban", "payment_card", "phone"];
    let end_ns = time_ms * 1_000_000;
    let span_ns = 24 * 3600 * 1_000_000_000i64;
    let mut batch = Vec::new();
    for index in 0..arguments.log_lines {
        let timestamp_ns = end_ns - span_ns + (index as i64) * (span_ns / arguments.log_lines.max(1) as i64);
        let metadata = if index % 4 == 0 {
            vec![("pii_match_rule".to_owned(), rules_ids[index / 4 % rules_ids.len()].to_owned())]
        } else {
            Vec::new()
        };
        batch.push(logstore::push::PushEntry {
            timestamp_ns,
            line: format!(
                r#"{{"kind":"log","level":"info","message":"booking {index} confirmed for [REDACTED:email]"}}"#
            ),
            metadata,
        });
    }
    let streams = vec![logstore::push::PushStream {
        labels: tsdb::Labels::from_pairs([("job", "faro"), ("app", "busflow-web")]),
        entries: batch,
    }];
    log_store.append_at(streams, end_ns)?;

    let engine = promql::Engine::default();
    let metrics: Arc<dyn triage::CheckSource> = Arc::new(triage::adapters::EmbeddedMetrics {
        store: store.clone(),
        engine: engine.clone(),
        sparkline: Some(Duration::from_secs(30 * 60)),
    });
    let mut sources = triage::Sources::new(Duration::from_secs(30)).with(catalog::Datasource::Metrics, metrics).with(
        catalog::Datasource::Logs,
        Arc::new(triage::adapters::EmbeddedLogs { source: log_store.clone(), engine: logql::Engine::default() }),
    );
    sources.fixtures.insert("lock_waits".into(), serde_json::json!(0));
    sources.fixtures.insert("tenant_backpressure".into(), serde_json::json!([]));

    // A1's steps, then A3's log check: an entry with metric and log checks.
    let mut entry = catalog.entry("A1").context("A1")?.clone();
    let log_step = catalog.entry("A3").context("A3")?.steps[0].clone();
    entry.steps.push(catalog::Step { number: entry.steps.len() + 1, ..log_step });
    let alert = triage::AlertInstance {
        labels: BTreeMap::from([("alertname".to_owned(), "HighApiErrorRate".to_owned())]),
        annotations: BTreeMap::new(),
        value: 0.05,
        firing_since_ms: time_ms,
        active_since_ms: None,
    };
    let mut durations = Vec::new();
    let mut last = None;
    for index in 0..arguments.runs {
        // Each run at its own time, two sharing windows apart, so that every
        // run queries the stores (runs within a second share their answers).
        let at_ms = time_ms - index as i64 * 2 * triage::SHARE_WINDOW_MS;
        let options = triage::RunOptions { time_ms: at_ms, ..triage::RunOptions::default() };
        let started = Instant::now();
        let run = triage::run(&entry, &catalog.contracts, &alert, &sources, &options);
        durations.push(started.elapsed());
        last = Some(run);
    }
    durations.sort();
    let last = last.context("no run")?;
    println!(
        "one alert (A1 metric checks + A3 log check), {} runs: p50 {:.1} ms, p99 {:.1} ms; path {:?}, results {}",
        durations.len(),
        percentile(&durations, 0.5).as_secs_f64() * 1000.0,
        percentile(&durations, 0.99).as_secs_f64() * 1000.0,
        last.path,
        triage::summary::summary(&last).replace('\n', "; ")
    );

    // 100 alerts at once while rule groups evaluate on their interval.
    let mut catalog_for_runner = catalog.clone();
    if let Some(slot) = catalog_for_runner.entries.iter_mut().find(|candidate| candidate.id == "A1") {
        *slot = entry.clone();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let datasource = rules::EmbeddedDatasource::new(store.clone(), engine);
    let metric_files: Vec<catalog::RuleFile> = catalog
        .rule_files
        .iter()
        .map(|file| catalog::RuleFile {
            path: file.path.clone(),
            groups: file
                .groups
                .iter()
                .filter(|group| group.datasource == catalog::Datasource::Metrics)
                .cloned()
                .collect(),
        })
        .collect();
    let manager = Arc::new(rules::Manager::new(&metric_files, rules::ManagerOptions::embedded(datasource)));
    runtime.block_on(async {
        let runner = triage::runner::Runner::new(
            Arc::new(catalog_for_runner),
            sources.clone(),
            triage::runner::RunnerOptions::default(),
            // A minute past the single runs' times: nothing they asked is shared with the burst.
            Arc::new(BurstClock { base_ms: time_ms + 60_000, started: Instant::now() }),
            Arc::new(|_| None),
        )?;
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let interval = Duration::from_millis(arguments.interval_ms);
        let evaluator = {
            let manager = manager.clone();
            tokio::spawn(async move {
                let mut lateness = Vec::new();
                let mut durations = Vec::new();
                let mut next = tokio::time::Instant::now() + interval;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(next) => {}
                        _ = stopped.changed() => return (lateness, durations),
                    }
                    lateness.push(tokio::time::Instant::now().saturating_duration_since(next));
                    let worker = manager.clone();
                    let started = Instant::now();
                    let _ = tokio::task::spawn_blocking(move || {
                        for index in 0..worker.group_count() {
                            worker.evaluate_group(index, time_ms);
                        }
                    })
                    .await;
                    durations.push(started.elapsed());
                    next += interval;
                    while next < tokio::time::Instant::now() {
                        next += interval;
                    }
                }
            })
        };
        // Let rule evaluation settle before the burst.
        tokio::time::sleep(interval * 3).await;
        let notifications: Vec<rules::Notification> = (0..arguments.alerts)
            .map(|index| rules::Notification {
                labels: BTreeMap::from([
                    ("alertname".to_owned(), "HighApiErrorRate".to_owned()),
                    ("instance".to_owned(), format!("api-{index}")),
                ]),
                annotations: BTreeMap::new(),
                starts_at_ms: time_ms,
                ends_at_ms: None,
                valid_until_ms: time_ms + 240_000,
                generator_url: String::new(),
            })
            .collect();
        let burst = Instant::now();
        let fresh = runner.observe(&notifications);
        let mut tasks = tokio::task::JoinSet::new();
        for fingerprint in fresh {
            let runner = runner.clone();
            tasks.spawn(async move { runner.run_now(&fingerprint).await });
        }
        while tasks.join_next().await.is_some() {}
        let burst_time = burst.elapsed();
        tokio::time::sleep(interval * 2).await;
        let _ = stop.send(true);
        let (mut lateness, mut evaluations) = evaluator.await?;
        lateness.sort();
        evaluations.sort();
        println!(
            "{} alerts at once: all triaged in {:.2} s ({} runs at a time); rule evaluation every {} ms: {} evaluations, \
             start lateness p50 {:.1} ms, max {:.1} ms, evaluation p50 {:.1} ms, max {:.1} ms",
            arguments.alerts,
            burst_time.as_secs_f64(),
            runner.options().max_concurrent,
            arguments.interval_ms,
            lateness.len(),
            percentile(&lateness, 0.5).as_secs_f64() * 1000.0,
            lateness.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
            percentile(&evaluations, 0.5).as_secs_f64() * 1000.0,
            evaluations.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
        );
        anyhow::Ok(())
    })?;
    Ok(())
}
