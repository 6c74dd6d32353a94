//! The routing service: the I/O edge around the pure [`Router`]. It receives
//! alerts (from the rules engine and the API), runs the flush loop on its
//! dispatcher's clock (the wall's unless the dispatcher was built
//! [`Dispatcher::with_clock`]), renders each notification for its integration, and persists
//! before anything is sent: the delivery goes into the outbox held, carrying
//! its notification-log entry; then the log is appended and fsynced; only
//! then is the delivery released. A crash at any point neither loses the
//! log entry of a written delivery nor sends one twice.
//!
//! Persistence is group committed per flush: every notification due at one
//! tick goes into the outbox with one fsync, whatever their number, and that
//! is the only fsync between a flush and the release of its deliveries. The
//! history records and the log entries are written after it without
//! waiting for the disk: a killed process loses neither (they are in the
//! kernel's cache), and against a power loss the outbox holds the log
//! entries of its deliveries until the log is fsynced, which the dispatcher
//! has done (`DeliveryObserver::before_settle`) before it drops a delivery
//! from the outbox. A log entry that no delivery carries is fsynced at the
//! flush. The router's lock is held only while the pure flush runs, never
//! across a write, and the loop does its writes on the blocking pool.
//!
//! A notification whose template fails to render is recorded in the history
//! as failed with the template's error; [`RoutingService::notification_counts`]
//! counts notifications and failures per integration, as Alertmanager's
//! `alertmanager_notifications_total` and `_failed_total`.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::Error;
use crate::dispatcher::{Attempt, DeliveryObserver, Dispatcher};
use crate::outbox::{Delivery, NewDelivery};
use crate::payload::{Alert, fingerprint};
use crate::routing::{
    LogEntry, Notification, NotificationLog, Router, RoutingConfig, Silence, SilenceError, Silences, StoredAlert,
};
use crate::state::{HistoryAlert, HistoryRecord, StateStore};

/// Alerts in, routed notifications out.
pub struct RoutingService {
    router: Mutex<Router>,
    /// The default templates and the configuration's `templates:` files.
    templates: parking_lot::RwLock<Arc<crate::templates::Templates>>,
    state: StateStore,
    dispatcher: Arc<Dispatcher>,
    wake: Notify,
    started_ms: i64,
    /// Alerts were received since the last snapshot of the alert store.
    alerts_changed: std::sync::atomic::AtomicBool,
    /// A snapshot of the alert store is being written.
    snapshotting: std::sync::atomic::AtomicBool,
    /// Notifications and failed notifications by integration, since the start.
    counts: Mutex<BTreeMap<String, NotificationCount>>,
}

/// How many notifications of one integration were made and how many failed,
/// counted as Alertmanager counts `alertmanager_notifications_total` and
/// `alertmanager_notifications_failed_total`: once per notification (not per
/// attempt), failed when it ends without being delivered (a template that
/// does not render, a permanent refusal, retries cut short by a newer
/// notification of the group).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotificationCount {
    pub total: u64,
    pub failed: u64,
}

/// The integrations counted from the start, at 0, as Alertmanager lists its own.
pub const COUNTED_INTEGRATIONS: [&str; 4] = ["email", "pagerduty", "slack", "webhook"];

impl std::fmt::Debug for RoutingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutingService").finish_non_exhaustive()
    }
}

/// A routing configuration checked and with its templates loaded, ready for
/// [`RoutingService::reload`].
pub struct PreparedRouting {
    config: Arc<RoutingConfig>,
    templates: Arc<crate::templates::Templates>,
}

impl std::fmt::Debug for PreparedRouting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedRouting").finish_non_exhaustive()
    }
}

/// Why a silence operation failed, for the API.
#[derive(Debug, thiserror::Error)]
pub enum SilenceFailure {
    #[error(transparent)]
    Refused(#[from] SilenceError),
    #[error(transparent)]
    Storage(#[from] Error),
}

struct HistoryObserver(Arc<RoutingService>);

impl DeliveryObserver for HistoryObserver {
    /// The log entries of the deliveries about to leave the outbox reach the
    /// disk first (they were written without fsync at the flush).
    fn before_settle(&self) -> Result<(), Error> {
        self.0.state.sync_log()
    }

    fn settled(&self, attempts: &[(Delivery, Attempt)], now_ms: i64) {
        self.0.update_history(attempts, now_ms);
    }
}

impl RoutingService {
    /// Opens the state under `directory` and restores the log (the outbox's
    /// pending entries included) and silences.
    pub fn open(
        config: Arc<RoutingConfig>,
        directory: &Path,
        dispatcher: Arc<Dispatcher>,
        now_ms: i64,
    ) -> Result<Arc<Self>, Error> {
        let templates = crate::templates::Templates::load(&config.templates)
            .map_err(|diagnostics| Error::Templates(diagnostics.to_string()))?;
        let (state, restored) = StateStore::open(directory, now_ms)?;
        dispatcher.outbox().ids_after(state.last_history_id());
        let mut log = NotificationLog::from_entries(restored.log);
        let mut recovered = Vec::new();
        for entry in dispatcher.outbox().log_entries() {
            let newer = log.get(&entry.key()).is_none_or(|known| known.timestamp_ms < entry.timestamp_ms);
            if newer {
                recovered.push(entry.clone());
                log.insert(entry);
            }
        }
        state.append_log(&recovered)?;
        if !recovered.is_empty() {
            tracing::info!(entries = recovered.len(), "notification log entries recovered from the outbox");
        }
        let mut router = Router::new(config, Silences::from_silences(restored.silences), log, now_ms);
        router.restore(restored.alerts, now_ms);
        let service = Arc::new(Self {
            router: Mutex::new(router),
            templates: parking_lot::RwLock::new(Arc::new(templates)),
            state,
            dispatcher,
            wake: Notify::new(),
            started_ms: now_ms,
            alerts_changed: std::sync::atomic::AtomicBool::new(false),
            snapshotting: std::sync::atomic::AtomicBool::new(false),
            counts: Mutex::new(
                COUNTED_INTEGRATIONS.iter().map(|name| ((*name).to_owned(), NotificationCount::default())).collect(),
            ),
        });
        service.dispatcher.set_observer(Arc::new(HistoryObserver(service.clone())));
        Ok(service)
    }

    /// When the service started (the status API's uptime).
    pub fn started_ms(&self) -> i64 {
        self.started_ms
    }

    /// Receives alerts at `now_ms`.
    pub fn put(&self, alerts: Vec<Alert>, now_ms: i64) {
        if alerts.is_empty() {
            return;
        }
        self.router.lock().put(alerts, now_ms);
        self.alerts_changed.store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }

    /// Runs `read` over the router (the API's views).
    pub fn with_router<T>(&self, read: impl FnOnce(&Router) -> T) -> T {
        read(&self.router.lock())
    }

    /// Checks a new configuration and loads its templates, changing nothing:
    /// what [`RoutingService::reload`] then puts in force.
    pub fn prepare(config: Arc<RoutingConfig>) -> Result<PreparedRouting, Error> {
        let templates = crate::templates::Templates::load(&config.templates)
            .map_err(|diagnostics| Error::Templates(diagnostics.to_string()))?;
        Ok(PreparedRouting { config, templates: Arc::new(templates) })
    }

    /// Puts a prepared configuration in force at `now_ms`, as Alertmanager's
    /// reload: the alerts held are routed again through the new tree into
    /// new aggregation groups; silences, the notification log (so nothing
    /// already sent is sent again before its repeat interval) and the history
    /// stay.
    pub fn reload(&self, prepared: PreparedRouting, now_ms: i64) {
        let PreparedRouting { config, templates } = prepared;
        *self.templates.write() = templates;
        self.router.lock().reload(config, now_ms);
        self.wake.notify_one();
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<RoutingConfig> {
        self.router.lock().config().clone()
    }

    /// Creates or updates a silence; persisted before it takes effect.
    pub fn set_silence(&self, silence: Silence, now_ms: i64) -> Result<String, SilenceFailure> {
        let mut router = self.router.lock();
        let mut silences = router.silences().clone();
        let (id, changed) = silences.set(silence, now_ms)?;
        self.state.append_silences(&changed)?;
        *router.silences_mut() = silences;
        Ok(id)
    }

    /// Expires a silence; persisted before it takes effect.
    pub fn expire_silence(&self, id: &str, now_ms: i64) -> Result<(), SilenceFailure> {
        let mut router = self.router.lock();
        let mut silences = router.silences().clone();
        let expired = silences.expire(id, now_ms)?;
        self.state.append_silences(&[expired])?;
        *router.silences_mut() = silences;
        Ok(())
    }

    /// The most recent notifications, newest first.
    pub fn history(&self, limit: usize) -> Vec<HistoryRecord> {
        self.state.history(limit)
    }

    /// Notifications and failures by integration since the start.
    pub fn notification_counts(&self) -> BTreeMap<String, NotificationCount> {
        self.counts.lock().clone()
    }

    fn count(&self, integration: &str, total: u64, failed: u64) {
        let mut counts = self.counts.lock();
        let count = counts.entry(integration.to_owned()).or_default();
        count.total += total;
        count.failed += failed;
    }

    /// Flushes what is due at `now_ms` into the outbox; returns the number
    /// of deliveries written. All of them are written with one fsync, their
    /// history records and log entries after it, before any is released.
    pub fn tick(&self, now_ms: i64) -> Result<usize, Error> {
        let (notifications, log_changes) = {
            let mut router = self.router.lock();
            let notifications = router.tick(now_ms);
            (notifications, router.take_log_changes())
        };
        if notifications.is_empty() && log_changes.is_empty() {
            return Ok(0);
        }
        let templates = self.templates.read().clone();
        let mut deliveries = Vec::with_capacity(notifications.len());
        let mut records = Vec::with_capacity(notifications.len());
        let mut failed = Vec::new();
        for notification in &notifications {
            self.count(notification.integration.name, 1, 0);
            let target = format!(
                "{}/{}[{}]",
                notification.receiver, notification.integration.name, notification.integration.index
            );
            match crate::integrations::render(notification, &templates, self.dispatcher.external_url()) {
                Ok(rendered) => {
                    deliveries.push(NewDelivery {
                        target,
                        receiver: notification.receiver.clone(),
                        url: rendered.url,
                        body: rendered.body,
                        log_entries: vec![notification.log_entry.clone()],
                        channel: rendered.channel,
                    });
                    records.push(HistoryRecord {
                        id: 0,
                        receiver: notification.receiver.clone(),
                        integration: notification.integration.name.to_owned(),
                        group_key: notification.group_key.clone(),
                        alerts: history_alerts(notification),
                        created_ms: now_ms,
                        state: "pending".into(),
                        attempts: 0,
                        error: None,
                        finished_ms: None,
                    });
                }
                Err(reason) => {
                    // Recorded as failed with the reason, not dropped unseen.
                    tracing::error!(target_name = %target, reason = %reason, "notification not sent");
                    self.count(notification.integration.name, 0, 1);
                    failed.push(HistoryRecord {
                        id: self.dispatcher.outbox().reserve_id(),
                        receiver: notification.receiver.clone(),
                        integration: notification.integration.name.to_owned(),
                        group_key: notification.group_key.clone(),
                        alerts: history_alerts(notification),
                        created_ms: now_ms,
                        state: "failed".into(),
                        attempts: 0,
                        error: Some(reason),
                        finished_ms: Some(now_ms),
                    });
                }
            }
        }
        // A notification still being retried for the same group and
        // integration is superseded by the new one, as Alertmanager's retries
        // of a flush end when the group flushes again: the receiver never
        // gets an older state after a newer one.
        let keys: HashSet<String> = deliveries.iter().flat_map(|d| d.log_entries.iter().map(LogEntry::key)).collect();
        let superseded = if keys.is_empty() { Vec::new() } else { self.dispatcher.outbox().retrying_for(&keys) };
        let (ids, removed) = self.dispatcher.outbox().enqueue_batch_superseding(deliveries, &superseded, now_ms)?;
        for (record, id) in records.iter_mut().zip(&ids) {
            record.id = *id;
        }
        records.extend(failed);
        for delivery in removed {
            self.count(integration_of(&delivery.target), 0, 1);
            let Some(mut record) = self.state.history_record(delivery.id) else { continue };
            let last = record.error.take().map(|error| format!("{error}; ")).unwrap_or_default();
            record.state = "failed".into();
            record.error = Some(format!("{last}superseded by a newer notification of the group"));
            record.finished_ms = Some(now_ms);
            records.push(record);
        }
        if let Err(error) = self.state.record_many_unsynced(records) {
            tracing::error!(error = %error, "notification history could not be written");
        }
        // The log after the deliveries it stands for, before any is released.
        // The outbox holds the entries of the deliveries on disk already: the
        // log's fsync waits until one of them is settled (`before_settle`).
        // An entry no delivery carries (nothing was left to send) is
        // fsynced now.
        if log_changes.iter().all(|entry| keys.contains(&entry.key())) {
            self.state.write_log(&log_changes)?;
        } else {
            self.state.append_log(&log_changes)?;
        }
        self.dispatcher.outbox().release(&ids, now_ms);
        if !ids.is_empty() {
            self.dispatcher.wake();
        }
        Ok(ids.len())
    }

    /// Records what the dispatcher settled, in one write.
    fn update_history(&self, attempts: &[(Delivery, Attempt)], now_ms: i64) {
        let records: Vec<HistoryRecord> = attempts
            .iter()
            .filter_map(|(delivery, attempt)| {
                let mut record = self.state.history_record(delivery.id)?;
                record.attempts = delivery.attempts + 1;
                match attempt {
                    Attempt::Delivered => {
                        record.state = "delivered".to_owned();
                        record.error = None;
                        record.finished_ms = Some(now_ms);
                    }
                    Attempt::Failed { error, permanent } => {
                        if *permanent {
                            self.count(&record.integration, 0, 1);
                        }
                        record.state = if *permanent { "failed" } else { "pending" }.to_owned();
                        record.error = Some(error.clone());
                        if *permanent {
                            record.finished_ms = Some(now_ms);
                        }
                    }
                }
                Some(record)
            })
            .collect();
        if let Err(error) = self.state.record_many(records) {
            tracing::error!(error = %error, "notification history could not be written");
        }
    }

    /// Writes the snapshot of the alert store if alerts arrived since the last one.
    pub fn snapshot_alerts(&self) -> Result<(), Error> {
        if !self.alerts_changed.swap(false, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        // Shared handles, not copies: the lock is held only to count them.
        let alerts: Vec<Arc<StoredAlert>> = self.router.lock().shared_alerts();
        self.state.write_alerts(&alerts.iter().map(|alert| &**alert).collect::<Vec<_>>())
    }

    /// The flush loop: runs until `shutdown` resolves. The alert store is
    /// snapshotted at most once a wall second (alerts lost in a crash come back
    /// with the sender's next resend).
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        // Snapshots are paced by the wall, whatever the clock's pace.
        let mut last_snapshot: Option<tokio::time::Instant> = None;
        let clock = self.dispatcher.clock().clone();
        loop {
            let now = clock.now_ms();
            let snapshot = last_snapshot.is_none_or(|last| last.elapsed() >= Duration::from_secs(1));
            if snapshot {
                last_snapshot = Some(tokio::time::Instant::now());
            }
            // Flushing and snapshotting write and fsync: off the async
            // threads, and a snapshot beside the flushes, not before them.
            if snapshot && !self.snapshotting.swap(true, std::sync::atomic::Ordering::AcqRel) {
                let service = self.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(error) = service.snapshot_alerts() {
                        tracing::error!(error = %error, "the alert store could not be snapshotted");
                    }
                    service.snapshotting.store(false, std::sync::atomic::Ordering::Release);
                });
            }
            let service = self.clone();
            let done = tokio::task::spawn_blocking(move || service.tick(now)).await;
            match done {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::error!(error = %error, "notifications could not be persisted"),
                Err(error) => tracing::error!(error = %error, "the flush did not finish"),
            }
            let next = self.router.lock().next_wakeup();
            let wait = clock
                .wall_delay(next.saturating_sub(clock.now_ms()))
                .clamp(Duration::from_millis(1), Duration::from_secs(1));
            tokio::select! {
                _ = &mut shutdown => {
                    if let Err(error) = self.snapshot_alerts() {
                        tracing::error!(error = %error, "the alert store could not be snapshotted");
                    }
                    return;
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// The log entries recorded so far (tests and diagnostics).
    pub fn log_entries(&self) -> Vec<LogEntry> {
        self.router.lock().notification_log().iter().cloned().collect()
    }
}

/// `email` of a delivery target `csm-south/email[0]`.
fn integration_of(target: &str) -> &str {
    let integration = target.rsplit_once('/').map_or(target, |(_, integration)| integration);
    integration.split_once('[').map_or(integration, |(name, _)| name)
}

fn history_alerts(notification: &Notification) -> Vec<HistoryAlert> {
    notification
        .alerts
        .iter()
        .map(|alert| HistoryAlert {
            fingerprint: fingerprint(&alert.labels),
            labels: alert.labels.clone(),
            status: if alert.is_resolved(notification.at_ms) { "resolved" } else { "firing" }.to_owned(),
        })
        .collect()
}
