//! The routing service: the I/O edge around the pure [`Router`]. It receives
//! alerts (from the rules engine and the API), runs the flush loop on the
//! wall clock, renders each notification for its integration, and persists
//! before anything is sent: the delivery goes into the outbox held, carrying
//! its notification-log entry; then the log is appended and fsynced; only
//! then is the delivery released. A crash at any point neither loses the
//! log entry of a written delivery nor sends one twice.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::Error;
use crate::dispatcher::{DeliveryObserver, Dispatcher};
use crate::outbox::Delivery;
use crate::payload::{Alert, fingerprint};
use crate::routing::{
    LogEntry, Notification, NotificationLog, Router, RoutingConfig, Silence, SilenceError, Silences, StoredAlert,
};
use crate::state::{HistoryAlert, HistoryRecord, StateStore};

/// Alerts in, routed notifications out.
pub struct RoutingService {
    router: Mutex<Router>,
    /// The default templates and the configuration's `templates:` files.
    templates: crate::templates::Templates,
    state: StateStore,
    dispatcher: Arc<Dispatcher>,
    wake: Notify,
    started_ms: i64,
    /// Alerts were received since the last snapshot of the alert store.
    alerts_changed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for RoutingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutingService").finish_non_exhaustive()
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
    fn delivered(&self, delivery: &Delivery, now_ms: i64) {
        self.0.update_history(delivery, "delivered", None, now_ms);
    }

    fn failed(&self, delivery: &Delivery, error: &str, permanent: bool, now_ms: i64) {
        let state = if permanent { "failed" } else { "pending" };
        self.0.update_history(delivery, state, Some(error), now_ms);
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
            templates,
            state,
            dispatcher,
            wake: Notify::new(),
            started_ms: now_ms,
            alerts_changed: std::sync::atomic::AtomicBool::new(false),
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

    /// Flushes what is due at `now_ms` into the outbox; returns the number of deliveries written.
    pub fn tick(&self, now_ms: i64) -> Result<usize, Error> {
        let mut router = self.router.lock();
        let notifications = router.tick(now_ms);
        let log_changes = router.take_log_changes();
        let mut released = Vec::new();
        let mut result = Ok(());
        for notification in &notifications {
            match self.write(notification, now_ms) {
                Ok(Some(id)) => released.push(id),
                Ok(None) => {}
                Err(error) => {
                    result = Err(error);
                    break;
                }
            }
        }
        // The log after the deliveries it stands for, before any is released.
        self.state.append_log(&log_changes)?;
        drop(router);
        self.dispatcher.outbox().release(&released, now_ms);
        if !released.is_empty() {
            self.dispatcher.wake();
        }
        result.map(|()| released.len())
    }

    /// Writes one notification's delivery, held; records its history.
    fn write(&self, notification: &Notification, now_ms: i64) -> Result<Option<u64>, Error> {
        let target =
            format!("{}/{}[{}]", notification.receiver, notification.integration.name, notification.integration.index);
        let rendered = crate::integrations::render(notification, &self.templates, self.dispatcher.external_url());
        let alerts = history_alerts(notification);
        match rendered {
            Ok(rendered) => {
                let log_entries = vec![notification.log_entry.clone()];
                let outbox = self.dispatcher.outbox();
                let id = match rendered.channel {
                    Some(channel) => outbox.enqueue_held_through(
                        &target,
                        &rendered.url,
                        rendered.body,
                        now_ms,
                        log_entries,
                        channel,
                    )?,
                    None => outbox.enqueue_held(&target, &rendered.url, rendered.body, now_ms, log_entries)?,
                };
                self.record(HistoryRecord {
                    id,
                    receiver: notification.receiver.clone(),
                    integration: notification.integration.name.to_owned(),
                    group_key: notification.group_key.clone(),
                    alerts,
                    created_ms: now_ms,
                    state: "pending".into(),
                    attempts: 0,
                    error: None,
                    finished_ms: None,
                });
                Ok(Some(id))
            }
            Err(reason) => {
                tracing::error!(target_name = %target, reason = %reason, "notification not sent");
                Ok(None)
            }
        }
    }

    fn record(&self, record: HistoryRecord) {
        if let Err(error) = self.state.record(record) {
            tracing::error!(error = %error, "notification history could not be written");
        }
    }

    fn update_history(&self, delivery: &Delivery, state: &str, error: Option<&str>, now_ms: i64) {
        let Some(mut record) = self.state.history_record(delivery.id) else { return };
        record.state = state.to_owned();
        record.attempts = delivery.attempts + 1;
        record.error = error.map(str::to_owned);
        if state != "pending" {
            record.finished_ms = Some(now_ms);
        }
        self.record(record);
    }

    /// Writes the snapshot of the alert store if alerts arrived since the last one.
    pub fn snapshot_alerts(&self) -> Result<(), Error> {
        if !self.alerts_changed.swap(false, std::sync::atomic::Ordering::AcqRel) {
            return Ok(());
        }
        let alerts: Vec<StoredAlert> = self.router.lock().alerts().cloned().collect();
        self.state.write_alerts(&alerts.iter().collect::<Vec<_>>())
    }

    /// The flush loop: runs until `shutdown` resolves. The alert store is
    /// snapshotted at most once a second (alerts lost in a crash come back
    /// with the sender's next resend).
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut last_snapshot = 0;
        loop {
            let now = now_ms();
            if let Err(error) = self.tick(now) {
                tracing::error!(error = %error, "notifications could not be persisted");
            }
            if now - last_snapshot >= 1000 {
                last_snapshot = now;
                if let Err(error) = self.snapshot_alerts() {
                    tracing::error!(error = %error, "the alert store could not be snapshotted");
                }
            }
            let next = self.router.lock().next_wakeup();
            let wait_ms = next.saturating_sub(now_ms()).clamp(1, 1000);
            tokio::select! {
                _ = &mut shutdown => {
                    if let Err(error) = self.snapshot_alerts() {
                        tracing::error!(error = %error, "the alert store could not be snapshotted");
                    }
                    return;
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
            }
        }
    }

    /// The log entries recorded so far (tests and diagnostics).
    pub fn log_entries(&self) -> Vec<LogEntry> {
        self.router.lock().notification_log().iter().cloned().collect()
    }
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

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
