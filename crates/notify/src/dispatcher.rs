//! The dispatcher: turns alerts into persisted deliveries, one per target, and
//! runs the delivery loop that sends them, retrying with exponential backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::Error;
use crate::outbox::{Delivery, Outbox};
use crate::payload::{Alert, alertmanager_payload, webhook_payload};

/// Where alerts go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An Alertmanager; alerts are posted to `<url>/api/v2/alerts`.
    Alertmanager { url: String },
    /// A webhook receiving Alertmanager's webhook payload, one request per
    /// alertname group.
    Webhook { name: String, url: String },
}

impl Target {
    fn name(&self) -> &str {
        match self {
            Target::Alertmanager { url } => url,
            Target::Webhook { name, .. } => name,
        }
    }
}

/// Tunables of delivery.
#[derive(Debug, Clone)]
pub struct DispatcherOptions {
    /// Timeout of one HTTP attempt.
    pub timeout: Duration,
    /// The first retry waits this long; each further one twice as long.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
    /// alertbook's external URL, sent in webhook payloads.
    pub external_url: String,
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            external_url: "http://127.0.0.1:9099".into(),
        }
    }
}

/// Counts of one delivery pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryStats {
    pub delivered: usize,
    pub retried: usize,
    pub dropped: usize,
}

/// Told what became of each delivery attempt (the notification history).
pub trait DeliveryObserver: Send + Sync {
    /// The target accepted the delivery.
    fn delivered(&self, delivery: &Delivery, now_ms: i64);
    /// An attempt failed; `permanent` when the delivery is dropped.
    fn failed(&self, delivery: &Delivery, error: &str, permanent: bool, now_ms: i64);
}

/// Accepts alerts and delivers them.
pub struct Dispatcher {
    outbox: Outbox,
    targets: Vec<Target>,
    client: reqwest::Client,
    options: DispatcherOptions,
    wake: Notify,
    observer: parking_lot::RwLock<Option<Arc<dyn DeliveryObserver>>>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").field("targets", &self.targets).field("pending", &self.outbox.len()).finish()
    }
}

enum Outcome {
    Delivered,
    Retry(String),
    Refused(String),
}

impl Dispatcher {
    pub fn new(outbox: Outbox, targets: Vec<Target>, options: DispatcherOptions) -> Result<Arc<Self>, Error> {
        crate::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .user_agent(concat!("alertbook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| Error::Client(error.to_string()))?;
        Ok(Arc::new(Self {
            outbox,
            targets,
            client,
            options,
            wake: Notify::new(),
            observer: parking_lot::RwLock::new(None),
        }))
    }

    /// Sets who hears about delivery outcomes.
    pub fn set_observer(&self, observer: Arc<dyn DeliveryObserver>) {
        *self.observer.write() = Some(observer);
    }

    /// Wakes the delivery loop (new deliveries are due).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// alertbook's external URL, as payloads carry it.
    pub fn external_url(&self) -> &str {
        &self.options.external_url
    }

    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Persists one delivery per target for `alerts`; returns how many. Once
    /// this returns Ok, the alerts will be delivered even across a restart.
    pub fn dispatch(&self, alerts: &[Alert], now_ms: i64) -> Result<usize, Error> {
        if alerts.is_empty() {
            return Ok(0);
        }
        let mut count = 0;
        for target in &self.targets {
            match target {
                Target::Alertmanager { url } => {
                    let endpoint = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
                    self.outbox.enqueue(target.name(), &endpoint, alertmanager_payload(alerts), now_ms)?;
                    count += 1;
                }
                Target::Webhook { name, url } => {
                    let mut groups: BTreeMap<String, Vec<Alert>> = BTreeMap::new();
                    for alert in alerts {
                        let alertname = alert.labels.get("alertname").cloned().unwrap_or_default();
                        groups.entry(alertname).or_default().push(alert.clone());
                    }
                    for (alertname, group) in groups {
                        let group_labels = BTreeMap::from([("alertname".to_owned(), alertname)]);
                        let body = webhook_payload(name, &group_labels, &group, &self.options.external_url, now_ms);
                        self.outbox.enqueue(name, url, body, now_ms)?;
                        count += 1;
                    }
                }
            }
        }
        self.wake.notify_one();
        Ok(count)
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempts.min(20));
        self.options.initial_backoff.saturating_mul(factor).min(self.options.max_backoff)
    }

    async fn attempt(&self, delivery: &Delivery) -> Outcome {
        if let Some(channel) = &delivery.channel {
            return match crate::integrations::send(delivery, channel, self.options.timeout).await {
                crate::integrations::SendOutcome::Delivered => Outcome::Delivered,
                crate::integrations::SendOutcome::Retry(reason) => Outcome::Retry(reason),
                crate::integrations::SendOutcome::Refused(reason) => Outcome::Refused(reason),
            };
        }
        let response = self
            .client
            .post(&delivery.url)
            .header("content-type", "application/json")
            .body(delivery.body.clone())
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => Outcome::Delivered,
            Ok(response) => {
                let status = response.status();
                let text: String = response.text().await.unwrap_or_default().chars().take(200).collect();
                let reason = format!("{status}: {}", text.trim());
                if status.is_client_error() && status.as_u16() != 429 {
                    Outcome::Refused(reason)
                } else {
                    Outcome::Retry(reason)
                }
            }
            Err(error) => Outcome::Retry(error.without_url().to_string()),
        }
    }

    /// Attempts every delivery due at `now_ms` once.
    pub async fn deliver_due(&self, now_ms: i64) -> Result<DeliveryStats, Error> {
        let mut stats = DeliveryStats::default();
        let observer = self.observer.read().clone();
        for delivery in self.outbox.due(now_ms) {
            match self.attempt(&delivery).await {
                Outcome::Delivered => {
                    tracing::debug!(target_name = %delivery.target, id = delivery.id, "notification delivered");
                    if let Some(observer) = &observer {
                        observer.delivered(&delivery, now_ms);
                    }
                    self.outbox.complete(delivery.id)?;
                    stats.delivered += 1;
                }
                Outcome::Refused(reason) => {
                    tracing::error!(target_name = %delivery.target, id = delivery.id, reason = %reason, "notification refused; dropped");
                    if let Some(observer) = &observer {
                        observer.failed(&delivery, &reason, true, now_ms);
                    }
                    self.outbox.complete(delivery.id)?;
                    stats.dropped += 1;
                }
                Outcome::Retry(reason) => {
                    if let Some(observer) = &observer {
                        observer.failed(&delivery, &reason, false, now_ms);
                    }
                    let wait = self.backoff(delivery.attempts);
                    let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                    tracing::warn!(target_name = %delivery.target, id = delivery.id, attempts = delivery.attempts + 1, retry_in = ?wait, reason = %reason, "notification failed; will retry");
                    self.outbox.reschedule(delivery.id, now_ms.saturating_add(wait_ms))?;
                    stats.retried += 1;
                }
            }
        }
        Ok(stats)
    }

    /// The delivery loop: runs until `shutdown` resolves. Deliveries left are
    /// in the outbox for the next start.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let now = now_ms();
            if let Err(error) = self.deliver_due(now).await {
                tracing::error!(error = %error, "notification outbox failed");
            }
            let sleep_ms = self.outbox.next_due().map_or(60_000, |next| (next - now_ms()).clamp(10, 60_000));
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)) => {}
            }
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
