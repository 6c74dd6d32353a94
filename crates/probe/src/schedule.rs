//! Running every probe on its interval.
//!
//! Each probe has its own tokio task, so a probe that hangs (up to its
//! timeout, which is below its interval) never delays another. A task starts
//! at a fixed phase of the interval derived from a hash of the probe's
//! identity (as the scrape loop spreads targets), runs one check at a time (a
//! slow check is never overlapped by the next; the ticks it covered are
//! skipped and counted as missed), and hands its samples to one writer task,
//! which appends whatever has queued up to the [`Sink`] in one batch, off the
//! async threads. Timestamps come from the injected [`Clock`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::metrics::{GroupCounters, ProbeMetrics};
use crate::outcome::Batch;
use crate::{Check, Probe};

/// Where timestamps come from (the clock shared by every stage; sample
/// times only: intervals are slept on the wall's timer).
pub use clock::{Clock, SystemClock};

/// Where the series go. Called from a blocking thread; may block.
pub trait Sink: Send + Sync {
    fn append(&self, batch: &Batch) -> Result<(), String>;
}

/// Appends through the write-ahead log, as scraped samples are; `admit`
/// decides whether a new series may be created (the active-series limit).
pub struct DurableSink {
    pub durable: Arc<ingest::durable::DurableStore>,
    pub admit: Arc<dyn Fn(&tsdb::Labels) -> bool + Send + Sync>,
}

impl Sink for DurableSink {
    fn append(&self, batch: &Batch) -> Result<(), String> {
        let outcome = self.durable.append(batch, &|labels| (self.admit)(labels)).map_err(|error| error.to_string())?;
        outcome.first_error.map_or(Ok(()), Err)
    }
}

/// Counts of the running probes: totals for the benchmark and tests, and
/// the per-group families of `/metrics` ([`ProbeMetrics`]).
#[derive(Debug, Default)]
pub struct Stats {
    pub checks: AtomicU64,
    pub failures: AtomicU64,
    /// Ticks skipped because the previous check of the same probe was still running.
    pub missed_intervals: AtomicU64,
    /// Batches the sink refused.
    pub append_errors: AtomicU64,
    /// The same counts per probe group (and failures per reason), for `/metrics`.
    pub metrics: ProbeMetrics,
}

/// The delay before a probe's first check, so that it runs when the clock
/// modulo `interval` equals `hash` modulo `interval`.
pub fn phase_offset(hash: u64, interval: Duration, now_ms: i64) -> Duration {
    let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1);
    let now = u64::try_from(now_ms).unwrap_or(0);
    let phase = hash % interval_ms;
    let position = now % interval_ms;
    Duration::from_millis((phase + interval_ms - position) % interval_ms)
}

/// The ticks skipped between two checks `elapsed` apart (a check ran past
/// the next tick, so the ticker skipped it): 0 when they are one interval apart.
pub fn missed_ticks(elapsed: Duration, interval: Duration) -> u64 {
    let steps = (elapsed.as_secs_f64() / interval.as_secs_f64().max(1e-9)).round() as u64;
    steps.saturating_sub(1)
}

/// The running probes.
#[derive(Debug)]
pub struct ProbeHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<()>>,
    pub stats: Arc<Stats>,
}

impl ProbeHandle {
    /// Stops every probe (a running check is finished first, within its
    /// timeout), writes what is queued and waits.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
        if let Some(writer) = self.writer.take() {
            let _ = writer.await;
        }
    }
}

/// Starts every check; must be called inside a tokio runtime.
pub fn spawn(checks: Vec<Check>, sink: Arc<dyn Sink>, clock: Arc<dyn Clock>) -> ProbeHandle {
    spawn_counting(checks, sink, clock, Arc::new(Stats::default()))
}

/// Starts every check, counting into `stats` (those of the probes a reload
/// replaces, so that `/metrics` keeps its families and counts).
pub fn spawn_counting(
    checks: Vec<Check>,
    sink: Arc<dyn Sink>,
    clock: Arc<dyn Clock>,
    stats: Arc<Stats>,
) -> ProbeHandle {
    let (stop, stopped) = watch::channel(false);
    let (sender, receiver) = mpsc::unbounded_channel::<Batch>();
    let writer = tokio::spawn(write(receiver, sink, stats.clone()));
    let tasks = checks
        .into_iter()
        .map(|check| {
            let counters = stats.metrics.group(&check.labels.probe_group);
            let running = Running { sender: sender.clone(), clock: clock.clone(), stats: stats.clone(), counters };
            tokio::spawn(run_probe(Probe::new(check), running, stopped.clone()))
        })
        .collect();
    ProbeHandle { stop, tasks, writer: Some(writer), stats }
}

async fn write(mut receiver: mpsc::UnboundedReceiver<Batch>, sink: Arc<dyn Sink>, stats: Arc<Stats>) {
    while let Some(first) = receiver.recv().await {
        let mut batch = first;
        while let Ok(more) = receiver.try_recv() {
            batch.extend(more);
        }
        let sink = sink.clone();
        let result = tokio::task::spawn_blocking(move || sink.append(&batch)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                stats.append_errors.fetch_add(1, Ordering::Relaxed);
                stats.metrics.append_error();
                tracing::warn!(error = %error, "probe samples were not all stored");
            }
            Err(error) => {
                stats.append_errors.fetch_add(1, Ordering::Relaxed);
                stats.metrics.append_error();
                tracing::error!(error = %error, "the probe writer failed");
            }
        }
    }
}

async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// What a probe's task shares with the others.
struct Running {
    sender: mpsc::UnboundedSender<Batch>,
    clock: Arc<dyn Clock>,
    stats: Arc<Stats>,
    counters: GroupCounters,
}

async fn run_probe(mut probe: Probe, running: Running, mut stopped: watch::Receiver<bool>) {
    let Running { sender, clock, stats, counters } = running;
    let interval = probe.check.interval;
    let offset = phase_offset(probe.check.identity_hash(), interval, clock.now_ms());
    tokio::select! {
        _ = tokio::time::sleep(offset) => {}
        _ = stop_requested(&mut stopped) => return,
    }
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_tick: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            tick = ticker.tick() => {
                if let Some(last) = last_tick {
                    let missed = missed_ticks(tick.saturating_duration_since(last), interval);
                    if missed > 0 {
                        stats.missed_intervals.fetch_add(missed, Ordering::Relaxed);
                        counters.missed(missed);
                    }
                }
                last_tick = Some(tick);
                let (outcome, batch) = probe.run_series(clock.now_ms()).await;
                stats.checks.fetch_add(1, Ordering::Relaxed);
                counters.check(outcome.failure.as_ref().map(|failure| failure.reason));
                if let Some(failure) = &outcome.failure {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        probe = %probe.check.labels.probe,
                        target = %probe.check.labels.target,
                        reason = %failure.reason,
                        error = %failure.message,
                        "probe failed"
                    );
                }
                if sender.send(batch).is_err() {
                    break;
                }
            }
            _ = stop_requested(&mut stopped) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_one_interval_apart_miss_nothing_and_longer_gaps_count_the_skipped_ones() {
        let second = Duration::from_secs(1);
        assert_eq!(missed_ticks(Duration::from_millis(1_000), second), 0);
        assert_eq!(missed_ticks(Duration::from_millis(1_040), second), 0, "timer jitter is no miss");
        assert_eq!(missed_ticks(Duration::from_millis(2_000), second), 1);
        assert_eq!(missed_ticks(Duration::from_millis(3_010), second), 2);
        assert_eq!(missed_ticks(Duration::ZERO, second), 0);
    }

    #[test]
    fn offsets_put_each_probe_at_a_fixed_phase() {
        let interval = Duration::from_secs(30);
        for now in [0, 1_234, 99_999, 1_764_000_000_000] {
            let offset = phase_offset(7_777, interval, now);
            assert!(offset < interval);
            assert_eq!((now as u64 + offset.as_millis() as u64) % 30_000, 7_777);
        }
    }
}
