//! The dispatcher: turns alerts into persisted deliveries, one per target, and
//! runs the delivery loop that sends them, retrying with exponential backoff.
//!
//! Deliveries are attempted concurrently, at most
//! [`DispatcherOptions::concurrency_per_receiver`] at once per receiver (a
//! slow receiver delays only its own notifications); the outcomes that
//! arrive together are settled together, with one outbox write and one
//! fsync ([`Outbox::settle`]).
//!
//! Time comes from the [`Clock`] it is built with (the system's by
//! default): when deliveries are due, how long a retry waits, the times
//! payloads carry. Only the HTTP timeout of an attempt is wall time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use clock::{Clock, SystemClock};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::Error;
use crate::outbox::{Delivery, Outbox, Settlement};
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
    /// How many deliveries to one receiver are attempted at once.
    pub concurrency_per_receiver: usize,
}

impl Default for DispatcherOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            external_url: "http://127.0.0.1:9099".into(),
            concurrency_per_receiver: 32,
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

/// What one attempt came to, as a [`DeliveryObserver`] hears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The target accepted the delivery.
    Delivered,
    /// The attempt failed; `permanent` when the delivery is dropped, else it is retried.
    Failed { error: String, permanent: bool },
}

/// Told what became of delivery attempts (the notification history), the
/// outcomes settled together in one call, after the outbox recorded them.
pub trait DeliveryObserver: Send + Sync {
    /// Runs before the outbox records outcomes (and so drops delivered
    /// deliveries); an error leaves the outcomes unrecorded and the
    /// deliveries pending.
    fn before_settle(&self) -> Result<(), Error> {
        Ok(())
    }

    fn settled(&self, attempts: &[(Delivery, Attempt)], now_ms: i64);
}

/// Accepts alerts and delivers them.
pub struct Dispatcher {
    outbox: Outbox,
    targets: Vec<Target>,
    client: reqwest::Client,
    options: DispatcherOptions,
    clock: Arc<dyn Clock>,
    wake: Notify,
    observer: parking_lot::RwLock<Option<Arc<dyn DeliveryObserver>>>,
    /// One semaphore per receiver, bounding its concurrent attempts.
    receivers: parking_lot::Mutex<HashMap<String, Arc<Semaphore>>>,
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
        Self::with_clock(outbox, targets, options, Arc::new(SystemClock))
    }

    /// A dispatcher whose delivery loop (and the routing service built over
    /// it) reads `clock`.
    pub fn with_clock(
        outbox: Outbox,
        targets: Vec<Target>,
        options: DispatcherOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, Error> {
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
            clock,
            wake: Notify::new(),
            observer: parking_lot::RwLock::new(None),
            receivers: parking_lot::Mutex::new(HashMap::new()),
        }))
    }

    /// Sets who hears about delivery outcomes.
    pub fn set_observer(&self, observer: Arc<dyn DeliveryObserver>) {
        *self.observer.write() = Some(observer);
    }

    /// The clock its loop reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
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

    fn semaphore(&self, receiver: &str) -> Arc<Semaphore> {
        let mut receivers = self.receivers.lock();
        if let Some(semaphore) = receivers.get(receiver) {
            return semaphore.clone();
        }
        let semaphore = Arc::new(Semaphore::new(self.options.concurrency_per_receiver.max(1)));
        receivers.insert(receiver.to_owned(), semaphore.clone());
        semaphore
    }

    /// Starts an attempt of `delivery` on `tasks`, once its receiver has room.
    fn spawn_attempt(&self, tasks: &mut JoinSet<(Delivery, Outcome)>, delivery: Delivery) -> tokio::task::Id {
        let semaphore = self.semaphore(delivery.receiver_name());
        let client = self.client.clone();
        let timeout = self.options.timeout;
        tasks
            .spawn(async move {
                // The semaphore is never closed; without a permit the attempt goes ahead.
                let _permit = semaphore.acquire_owned().await.ok();
                let outcome = attempt(&client, &delivery, timeout).await;
                (delivery, outcome)
            })
            .id()
    }

    /// Records outcomes in the outbox (one write, one fsync), then tells the
    /// observer. Returns the counts.
    fn settle(&self, outcomes: Vec<(Delivery, Outcome)>, now_ms: i64) -> Result<DeliveryStats, Error> {
        let mut stats = DeliveryStats::default();
        let mut settlements = Vec::with_capacity(outcomes.len());
        let mut attempts = Vec::with_capacity(outcomes.len());
        for (delivery, outcome) in outcomes {
            match outcome {
                Outcome::Delivered => {
                    tracing::debug!(target_name = %delivery.target, id = delivery.id, "notification delivered");
                    settlements.push(Settlement::Done(delivery.id));
                    attempts.push((delivery, Attempt::Delivered));
                    stats.delivered += 1;
                }
                Outcome::Refused(reason) => {
                    tracing::error!(target_name = %delivery.target, id = delivery.id, reason = %reason, "notification refused; dropped");
                    settlements.push(Settlement::Done(delivery.id));
                    attempts.push((delivery, Attempt::Failed { error: reason, permanent: true }));
                    stats.dropped += 1;
                }
                Outcome::Retry(reason) => {
                    let wait = self.backoff(delivery.attempts);
                    let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                    tracing::warn!(target_name = %delivery.target, id = delivery.id, attempts = delivery.attempts + 1, retry_in = ?wait, reason = %reason, "notification failed; will retry");
                    settlements
                        .push(Settlement::Retry { id: delivery.id, next_attempt_ms: now_ms.saturating_add(wait_ms) });
                    attempts.push((delivery, Attempt::Failed { error: reason, permanent: false }));
                    stats.retried += 1;
                }
            }
        }
        let observer = self.observer.read().clone();
        if let Some(observer) = &observer
            && let Err(error) = observer.before_settle()
        {
            let ids: Vec<u64> = attempts.iter().map(|(delivery, _)| delivery.id).collect();
            self.outbox.untake(&ids);
            return Err(error);
        }
        self.outbox.settle(&settlements)?;
        if let Some(observer) = observer {
            observer.settled(&attempts, now_ms);
        }
        Ok(stats)
    }

    /// Attempts every delivery due at `now_ms` once, concurrently (bounded
    /// per receiver), and settles them together.
    pub async fn deliver_due(&self, now_ms: i64) -> Result<DeliveryStats, Error> {
        let mut tasks = JoinSet::new();
        let mut taken = Vec::new();
        for delivery in self.outbox.take_due(now_ms) {
            taken.push(delivery.id);
            self.spawn_attempt(&mut tasks, delivery);
        }
        let mut outcomes = Vec::with_capacity(taken.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(outcome) => outcomes.push(outcome),
                Err(error) => tracing::error!(error = %error, "a delivery attempt did not finish"),
            }
        }
        let attempted: Vec<u64> = outcomes.iter().map(|(delivery, _)| delivery.id).collect();
        self.outbox.untake(&taken.into_iter().filter(|id| !attempted.contains(id)).collect::<Vec<_>>());
        self.settle(outcomes, now_ms)
    }

    /// The delivery loop: runs until `shutdown` resolves. Due deliveries are
    /// started as they come due, without waiting for those in flight nor for
    /// a settlement being written; outcomes are settled in batches (what
    /// finished while the previous batch was being written), one batch at a
    /// time, off the async threads. Deliveries left (in flight or waiting to
    /// be settled included) are in the outbox for the next start.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut tasks: JoinSet<(Delivery, Outcome)> = JoinSet::new();
        let mut in_flight: HashMap<tokio::task::Id, u64> = HashMap::new();
        // Outcomes not settled yet, and the settlement being written (one at a time).
        let mut finished: Vec<(Delivery, Outcome)> = Vec::new();
        let mut settling: JoinSet<Result<DeliveryStats, Error>> = JoinSet::new();
        loop {
            for delivery in self.outbox.take_due(self.clock.now_ms()) {
                let id = delivery.id;
                let task = self.spawn_attempt(&mut tasks, delivery);
                in_flight.insert(task, id);
            }
            if settling.is_empty() && !finished.is_empty() {
                let settler = self.clone();
                let outcomes = std::mem::take(&mut finished);
                settling.spawn_blocking(move || settler.settle(outcomes, settler.clock.now_ms()));
            }
            let sleep = self.outbox.next_due().map_or(Duration::from_secs(60), |next| {
                self.clock
                    .wall_delay(next - self.clock.now_ms())
                    .clamp(Duration::from_millis(10), Duration::from_secs(60))
            });
            tokio::select! {
                _ = &mut shutdown => {
                    tasks.abort_all();
                    return;
                }
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let mut lost = Vec::new();
                    let mut next = Some(joined);
                    while let Some(joined) = next {
                        match joined {
                            Ok((task, outcome)) => {
                                in_flight.remove(&task);
                                finished.push(outcome);
                            }
                            Err(error) => {
                                tracing::error!(error = %error, "a delivery attempt did not finish");
                                lost.extend(in_flight.remove(&error.id()));
                            }
                        }
                        next = tasks.try_join_next_with_id();
                    }
                    self.outbox.untake(&lost);
                }
                Some(settled) = settling.join_next(), if !settling.is_empty() => {
                    match settled {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => tracing::error!(error = %error, "notification outbox failed"),
                        Err(error) => tracing::error!(error = %error, "notification outbox failed"),
                    }
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }
}

async fn attempt(client: &reqwest::Client, delivery: &Delivery, timeout: Duration) -> Outcome {
    if let Some(channel) = &delivery.channel {
        return match crate::integrations::send(delivery, channel, timeout).await {
            crate::integrations::SendOutcome::Delivered => Outcome::Delivered,
            crate::integrations::SendOutcome::Retry(reason) => Outcome::Retry(reason),
            crate::integrations::SendOutcome::Refused(reason) => Outcome::Refused(reason),
        };
    }
    let response =
        client.post(&delivery.url).header("content-type", "application/json").body(delivery.body.clone()).send().await;
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
        // Without the URL: a webhook's URL may hold its credentials.
        Err(error) => Outcome::Retry(error_chain(&error.without_url())),
    }
}

/// An error with its causes, `error: cause: cause` (reqwest's own message
/// alone says only "error sending request").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
