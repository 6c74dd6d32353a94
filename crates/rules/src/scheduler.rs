//! Runs every group on its interval, groups concurrently, until shutdown.
//!
//! Each group gets a tokio task that sleeps until its next evaluation time
//! (aligned to the interval, spread by a hash of the group's name as
//! Prometheus does), evaluates the group on the blocking pool, persists the
//! state, hands the due alerts to the [`Notifier`] and counts the iterations
//! it missed when an evaluation overran its interval. Time comes from a
//! [`Clock`]: [`SystemClock`] in production, [`TokioClock`] in tests, where
//! tokio's paused time makes hours pass in milliseconds, [`ScaledClock`] in
//! `alertbook demo`. Deadlines are in the clock's time; the task sleeps the
//! clock's [`Clock::wall_delay`] to them, and an iteration counts as missed
//! when the clock passed a whole interval beyond it while the group was
//! evaluated, so a clock faster than the wall misses iterations exactly when
//! evaluations cannot keep its pace.

use std::sync::Arc;

use crate::manager::{Manager, ScheduledGroup};
use crate::notify::Notifier;

pub use clock::{Clock, ScaledClock, SystemClock, TokioClock};

/// The first evaluation time at or after `now_ms` for a group, spread within the interval.
pub fn first_evaluation_ms(now_ms: i64, interval_ms: i64, name: &str) -> i64 {
    let interval_ms = interval_ms.max(1);
    let hash = name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3));
    let offset = (hash % interval_ms as u64) as i64;
    let base = now_ms - now_ms.rem_euclid(interval_ms) + offset;
    if base < now_ms { base + interval_ms } else { base }
}

/// Runs every group until `shutdown` turns true. When a reload replaces the
/// groups ([`Manager::replace`]), the tasks of the old ones stop (an
/// evaluation under way finishes) and the new ones start, each at its phase:
/// a group that kept its name keeps its evaluation times.
pub async fn run(
    manager: Arc<Manager>,
    clock: Arc<dyn Clock>,
    notifier: Arc<dyn Notifier>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut reloads = manager.subscribe_to_reloads();
    loop {
        reloads.borrow_and_update();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for group in manager.scheduled_groups() {
            if !group.evaluated_here {
                tracing::debug!(group = %group.name, "group not evaluated: its datasource is not configured");
                continue;
            }
            tasks.spawn(run_group(manager.clone(), group, clock.clone(), notifier.clone(), stopped.clone()));
        }
        let reloaded = tokio::select! {
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => false,
            changed = reloads.changed() => changed.is_ok(),
        };
        let _ = stop.send(true);
        while tasks.join_next().await.is_some() {}
        if !reloaded {
            return;
        }
    }
}

async fn run_group(
    manager: Arc<Manager>,
    group: ScheduledGroup,
    clock: Arc<dyn Clock>,
    notifier: Arc<dyn Notifier>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let name = group.name.clone();
    let interval_ms = group.interval_ms.max(1);
    let group = Arc::new(group);
    let mut next_ms = first_evaluation_ms(clock.now_ms(), interval_ms, &name);
    loop {
        let wait = clock.wall_delay(next_ms - clock.now_ms());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
                continue;
            }
        }
        if *shutdown.borrow() {
            return;
        }
        let evaluation_ms = next_ms;
        let worker = manager.clone();
        let scheduled = group.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let (notifications, _) = worker.evaluate_scheduled(&scheduled, evaluation_ms);
            if let Err(error) = worker.persist() {
                tracing::error!(error = %error, "persisting the rule state failed");
            }
            notifications
        })
        .await;
        match outcome {
            Ok(notifications) if !notifications.is_empty() => notifier.send(notifications),
            Ok(_) => {}
            Err(error) => tracing::error!(group = %name, error = %error, "group evaluation panicked"),
        }
        let now_ms = clock.now_ms();
        let missed = ((now_ms - evaluation_ms) / interval_ms - 1).max(0);
        if missed > 0 {
            tracing::warn!(group = %name, missed, "rule group evaluation missed iterations");
            manager.add_missed_scheduled(&group, missed as u64);
        }
        next_ms = evaluation_ms + (missed + 1) * interval_ms;
    }
}
