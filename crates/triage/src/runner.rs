//! Triage in a running alertbook: the I/O edge around [`crate::run`].
//!
//! [`Runner`] keeps, per alert instance (by fingerprint of the alert's
//! labels), its last runs (bounded), whether it still fires and which
//! escalations were sent; the whole is persisted atomically under the data
//! directory after every run, so runs and sent escalations survive a restart.
//! A run happens when an alert goes firing, every `rerun_interval` while it
//! keeps firing ([`Runner::rerun_due`], called by [`Runner::schedule`]), and
//! on demand ([`Runner::trigger`]). Runs execute on the blocking pool, at
//! most `max_concurrent` at once, so triage never holds up rule evaluation,
//! which has its own tasks. Run times and the re-run interval are the
//! injected clock's (a demo's clock runs faster than the wall); check
//! timeouts and `notify_wait` bound real work, so they are wall time.
//!
//! [`TriageNotifier`] sits between the rule engine and the notification
//! outbox: an alert's first firing notification waits (at most
//! `notify_wait`) for its first run, and every notification of an alert that
//! has a run carries the `triage_path` and `triage_summary` annotations. Due
//! escalations go out through the same notifier as alerts of their own: the
//! alert's labels plus `route` (the escalation's route) and `triage_step`,
//! re-sent with the alert and resolved with it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::model::{AlertInstance, Run};
use crate::source::Sources;

/// Tunables of the runner.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Re-run while the alert keeps firing, this often.
    pub rerun_interval: Duration,
    /// Most runs at once.
    pub max_concurrent: usize,
    /// How long an alert's first firing notification waits for its first run.
    pub notify_wait: Duration,
    /// Runs kept per alert instance.
    pub runs_per_alert: usize,
    /// Alert instances kept; the ones resolved longest ago go first.
    pub max_alerts: usize,
    /// Where runs are persisted; `None`: memory only.
    pub state_file: Option<PathBuf>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        Self {
            rerun_interval: Duration::from_secs(300),
            max_concurrent: 4,
            notify_wait: Duration::from_secs(10),
            runs_per_alert: 20,
            max_alerts: 1000,
            state_file: None,
            external_labels: BTreeMap::new(),
            external_url: String::new(),
        }
    }
}

/// Finds the rule engine's alert for a notification's labels.
pub type AlertLookup = Arc<dyn Fn(&BTreeMap<String, String>) -> Option<AlertInstance> + Send + Sync>;

/// Everything known about one alert instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub fingerprint: String,
    pub alert: AlertInstance,
    pub firing: bool,
    /// Newest last.
    pub runs: VecDeque<Run>,
    /// Step numbers of the escalations sent for the current firing episode.
    pub sent_escalations: BTreeSet<usize>,
    /// When each sent escalation was first due, by step number.
    #[serde(default)]
    pub escalation_started_ms: BTreeMap<usize, i64>,
    #[serde(default)]
    pub resolved_at_ms: Option<i64>,
    #[serde(skip)]
    running: bool,
    #[serde(skip)]
    run_requested: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Persisted {
    version: u32,
    alerts: Vec<Record>,
}

/// Errors of the runner's state file.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("triage state {path}: {message}")]
    State { path: PathBuf, message: String },
}

/// Runs triage for firing alerts; see the module documentation.
pub struct Runner {
    /// The catalog and the sources over its contracts; a reload replaces both.
    catalog: parking_lot::RwLock<Arc<catalog::Catalog>>,
    sources: parking_lot::RwLock<Sources>,
    options: RunnerOptions,
    clock: Arc<dyn rules::Clock>,
    lookup: AlertLookup,
    records: Mutex<BTreeMap<String, Record>>,
    permits: Arc<tokio::sync::Semaphore>,
    finished: tokio::sync::Notify,
    /// Where escalation notifications go (the notifier after triage).
    escalations: Mutex<Option<Arc<dyn rules::Notifier>>>,
    persist_lock: Mutex<()>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Runner {
    /// A runner; its earlier runs are read from the state file when it exists.
    pub fn new(
        catalog: Arc<catalog::Catalog>,
        sources: Sources,
        options: RunnerOptions,
        clock: Arc<dyn rules::Clock>,
        lookup: AlertLookup,
    ) -> Result<Arc<Self>, RunnerError> {
        let records = match &options.state_file {
            Some(path) => read_state(path)?,
            None => BTreeMap::new(),
        };
        Ok(Arc::new(Self {
            catalog: parking_lot::RwLock::new(catalog),
            sources: parking_lot::RwLock::new(sources),
            permits: Arc::new(tokio::sync::Semaphore::new(options.max_concurrent.max(1))),
            options,
            clock,
            lookup,
            records: Mutex::new(records),
            finished: tokio::sync::Notify::new(),
            escalations: Mutex::new(None),
            persist_lock: Mutex::new(()),
        }))
    }

    pub fn options(&self) -> &RunnerOptions {
        &self.options
    }

    /// Sets where escalation notifications go.
    pub fn set_escalation_notifier(&self, notifier: Arc<dyn rules::Notifier>) {
        *self.escalations.lock() = Some(notifier);
    }

    /// The alert instance of a notification: the rule engine's alert when it
    /// is found, else the notification's labels without the external labels.
    fn instance_of(&self, notification: &rules::Notification) -> AlertInstance {
        (self.lookup)(&notification.labels).unwrap_or_else(|| {
            let mut labels = notification.labels.clone();
            for (name, value) in &self.options.external_labels {
                if labels.get(name) == Some(value) {
                    labels.remove(name);
                }
            }
            AlertInstance {
                labels,
                annotations: notification.annotations.clone(),
                value: f64::NAN,
                firing_since_ms: notification.starts_at_ms,
                active_since_ms: None,
            }
        })
    }

    /// Puts a reloaded catalog in force, with the sources over its contracts:
    /// runs from now on follow its entries; the runs recorded so far stay.
    pub fn replace_catalog(&self, catalog: Arc<catalog::Catalog>, sources: Sources) {
        *self.sources.write() = sources;
        *self.catalog.write() = catalog;
    }

    /// Takes the notifications of one group evaluation: firing alerts with a
    /// runbook entry are recorded, resolved ones marked. Returns the
    /// fingerprints that need their first run of this firing episode.
    pub fn observe(&self, notifications: &[rules::Notification]) -> Vec<String> {
        let now = self.clock.now_ms();
        let mut records = self.records.lock();
        let mut fresh = Vec::new();
        for notification in notifications {
            let instance = self.instance_of(notification);
            if self.catalog.read().entry(instance.alertname()).is_none() {
                continue;
            }
            let fingerprint = instance.fingerprint();
            let resolved = notification.ends_at_ms.is_some();
            match records.get_mut(&fingerprint) {
                Some(record) if resolved => {
                    if record.firing {
                        record.firing = false;
                        record.resolved_at_ms = Some(now);
                    }
                }
                None if resolved => {}
                Some(record) if record.firing && record.alert.firing_since_ms == instance.firing_since_ms => {
                    record.alert = instance;
                }
                _ => {
                    // A new firing episode: earlier runs stay, escalations start over.
                    let record = records.entry(fingerprint.clone()).or_insert_with(|| Record {
                        fingerprint: fingerprint.clone(),
                        alert: instance.clone(),
                        firing: true,
                        runs: VecDeque::new(),
                        sent_escalations: BTreeSet::new(),
                        escalation_started_ms: BTreeMap::new(),
                        resolved_at_ms: None,
                        running: false,
                        run_requested: None,
                    });
                    record.alert = instance;
                    record.firing = true;
                    record.resolved_at_ms = None;
                    record.sent_escalations.clear();
                    record.escalation_started_ms.clear();
                    record.run_requested = Some("firing".into());
                    fresh.push(fingerprint);
                }
            }
        }
        prune(&mut records, self.options.max_alerts);
        fresh
    }

    /// Asks for a run of `fingerprint` now; false when no such alert is known.
    pub fn trigger(self: &Arc<Self>, fingerprint: &str) -> bool {
        {
            let mut records = self.records.lock();
            let Some(record) = records.get_mut(fingerprint) else { return false };
            record.run_requested = Some("on_demand".into());
        }
        self.spawn_run(fingerprint.to_owned());
        true
    }

    /// Starts the run of `fingerprint` on the blocking pool, unless one is running.
    pub fn spawn_run(self: &Arc<Self>, fingerprint: String) {
        let runner = self.clone();
        tokio::spawn(async move { runner.run_now(&fingerprint).await });
    }

    /// Runs triage for `fingerprint` (waiting for a free slot) and records it.
    pub async fn run_now(self: &Arc<Self>, fingerprint: &str) -> Option<Run> {
        let Ok(_permit) = self.permits.clone().acquire_owned().await else { return None };
        let (alert, previous, trigger) = {
            let mut records = self.records.lock();
            let record = records.get_mut(fingerprint)?;
            if record.running {
                return None;
            }
            record.running = true;
            let trigger = record.run_requested.take().unwrap_or_else(|| "rerun".into());
            (record.alert.clone(), record.runs.back().cloned(), trigger)
        };
        let runner = self.clone();
        let time_ms = self.clock.now_ms();
        let outcome = tokio::task::spawn_blocking(move || {
            let catalog = runner.catalog.read().clone();
            let entry = catalog.entry(alert.alertname())?;
            let options = crate::RunOptions {
                time_ms,
                previous: previous.as_ref(),
                external_labels: runner.options.external_labels.clone(),
                external_url: runner.options.external_url.clone(),
                trigger,
            };
            // Someone asked for this run: it reads the stores afresh, never a
            // neighbour's answer from the last second.
            let sources = {
                let sources = runner.sources.read();
                if options.trigger == "on_demand" { sources.unshared() } else { sources.clone() }
            };
            Some(crate::run(entry, &catalog.contracts, &alert, &sources, &options))
        })
        .await;
        let run = match outcome {
            Ok(run) => run,
            Err(error) => {
                tracing::error!(fingerprint, error = %error, "triage run panicked");
                None
            }
        };
        let escalate = {
            let mut records = self.records.lock();
            let record = records.get_mut(fingerprint)?;
            let Some(run) = &run else {
                record.running = false;
                drop(records);
                self.finished.notify_waiters();
                return None;
            };
            if let Some(previous_path) = &run.previous_path {
                tracing::info!(
                    alertname = %run.alertname, fingerprint, from = %previous_path.join(","), to = %run.path.join(","),
                    "triage branch changed"
                );
            }
            record.runs.push_back(run.clone());
            while record.runs.len() > self.options.runs_per_alert.max(1) {
                record.runs.pop_front();
            }
            let mut notifications = Vec::new();
            if record.firing {
                for (number, escalation, step) in run.due_escalations() {
                    if record.sent_escalations.insert(number) {
                        record.escalation_started_ms.insert(number, time_ms);
                        tracing::info!(alertname = %run.alertname, route = %escalation.to, step = number, reason = %escalation.reason, "triage escalation due");
                        notifications.push(escalation_notification(
                            record,
                            run,
                            number,
                            &escalation.to,
                            &step.text,
                            time_ms,
                            None,
                        ));
                    }
                }
            }
            notifications
        };
        self.persist();
        // Escalations go out before the alert's first notification is released:
        // the run counts as finished (`running` false) only after.
        if !escalate.is_empty()
            && let Some(notifier) = self.escalations.lock().clone()
        {
            notifier.send(escalate);
        }
        if let Some(record) = self.records.lock().get_mut(fingerprint) {
            record.running = false;
        }
        self.finished.notify_waiters();
        run
    }

    /// Starts runs of the firing alerts whose last run is older than the
    /// re-run interval (or that have none); returns how many started.
    pub fn rerun_due(self: &Arc<Self>) -> usize {
        let now = self.clock.now_ms();
        let interval = self.options.rerun_interval.as_millis() as i64;
        let due: Vec<String> = self
            .records
            .lock()
            .values()
            .filter(|record| record.firing && !record.running)
            .filter(|record| record.runs.back().is_none_or(|run| now - run.time_ms >= interval))
            .map(|record| record.fingerprint.clone())
            .collect();
        for fingerprint in &due {
            self.spawn_run(fingerprint.clone());
        }
        due.len()
    }

    /// Re-runs firing alerts on the interval until `shutdown` turns true.
    pub async fn schedule(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        // A tenth of the interval on the runner's clock, slept on the wall's timer.
        let tick_ms = i64::try_from((self.options.rerun_interval / 10).as_millis()).unwrap_or(i64::MAX);
        loop {
            let tick = self.clock.wall_delay(tick_ms).clamp(Duration::from_millis(100), Duration::from_secs(15));
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
            }
            self.rerun_due();
        }
    }

    /// Waits until every fingerprint in `fingerprints` has a run of its
    /// current episode, or `limit` passed.
    pub async fn wait_for_runs(&self, fingerprints: &[String], limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let finished = self.finished.notified();
            let pending = {
                let records = self.records.lock();
                fingerprints.iter().any(|fingerprint| {
                    records.get(fingerprint).is_some_and(|record| {
                        record.running
                            || record.run_requested.is_some()
                            || record.runs.back().is_none_or(|run| run.firing_since_ms != record.alert.firing_since_ms)
                    })
                })
            };
            if !pending {
                return;
            }
            if tokio::time::timeout_at(deadline, finished).await.is_err() {
                return;
            }
        }
    }

    /// Adds the triage annotations of each alert's latest run, and the
    /// escalations already sent (firing or resolved with their alert).
    pub fn annotate(&self, notifications: Vec<rules::Notification>) -> Vec<rules::Notification> {
        let records = self.records.lock();
        let mut out = Vec::with_capacity(notifications.len());
        for mut notification in notifications {
            let fingerprint = self.instance_of(&notification).fingerprint();
            let mut extra = Vec::new();
            if let Some(record) = records.get(&fingerprint)
                && let Some(run) = record.runs.back()
            {
                notification.annotations.insert("triage_path".into(), crate::summary::path(run));
                notification.annotations.insert("triage_summary".into(), crate::summary::summary(run));
                for number in &record.sent_escalations {
                    let Some(step) = run.steps.iter().find(|step| step.number == *number) else { continue };
                    let Some(escalation) = &step.escalation else { continue };
                    let started =
                        record.escalation_started_ms.get(number).copied().unwrap_or(notification.starts_at_ms);
                    let mut sent = escalation_notification(
                        record,
                        run,
                        *number,
                        &escalation.to,
                        &step.text,
                        started,
                        notification.ends_at_ms,
                    );
                    sent.valid_until_ms = notification.valid_until_ms;
                    sent.generator_url = notification.generator_url.clone();
                    extra.push(sent);
                }
            }
            out.push(notification);
            out.extend(extra);
        }
        out
    }

    /// The runs of one alert instance, newest first.
    pub fn runs(&self, fingerprint: &str) -> Option<Record> {
        self.records.lock().get(fingerprint).cloned().map(|mut record| {
            record.runs.make_contiguous().reverse();
            record
        })
    }

    /// The latest `limit` runs over every alert instance, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Run> {
        let records = self.records.lock();
        let mut runs: Vec<&Run> = records.values().flat_map(|record| record.runs.iter()).collect();
        runs.sort_by_key(|run| std::cmp::Reverse(run.time_ms));
        runs.into_iter().take(limit).cloned().collect()
    }

    /// Writes every record to the state file, atomically.
    pub fn persist(&self) {
        let Some(path) = &self.options.state_file else { return };
        let _guard = self.persist_lock.lock();
        let persisted = Persisted { version: 1, alerts: self.records.lock().values().cloned().collect() };
        if let Err(error) = write_atomically(path, &persisted) {
            tracing::error!(path = %path.display(), error = %error, "persisting triage runs failed");
        }
    }
}

/// The notification of an escalation: the alert's labels plus the route.
fn escalation_notification(
    record: &Record,
    run: &Run,
    number: usize,
    route: &str,
    text: &str,
    starts_at_ms: i64,
    ends_at_ms: Option<i64>,
) -> rules::Notification {
    let mut labels = record.alert.labels.clone();
    labels.insert("route".into(), route.to_owned());
    labels.insert("triage_step".into(), number.to_string());
    let mut annotations = record.alert.annotations.clone();
    annotations.insert("summary".into(), text.to_owned());
    annotations.insert("triage_path".into(), crate::summary::path(run));
    annotations.insert("triage_summary".into(), crate::summary::summary(run));
    if let Some(reason) = run.steps.iter().find(|step| step.number == number).and_then(|step| step.escalation.as_ref())
    {
        annotations.insert("escalation_reason".into(), reason.reason.clone());
    }
    rules::Notification {
        labels,
        annotations,
        starts_at_ms,
        ends_at_ms,
        valid_until_ms: run.time_ms + 4 * rules::DEFAULT_RESEND_DELAY_MS,
        generator_url: String::new(),
    }
}

/// Drops the resolved records beyond `max_alerts`, resolved longest ago first.
fn prune(records: &mut BTreeMap<String, Record>, max_alerts: usize) {
    if records.len() <= max_alerts {
        return;
    }
    let mut resolved: Vec<(i64, String)> = records
        .values()
        .filter(|record| !record.firing)
        .map(|record| (record.resolved_at_ms.unwrap_or(0), record.fingerprint.clone()))
        .collect();
    resolved.sort();
    for (_, fingerprint) in resolved.into_iter().take(records.len() - max_alerts) {
        records.remove(&fingerprint);
    }
}

fn read_state(path: &Path) -> Result<BTreeMap<String, Record>, RunnerError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(RunnerError::State { path: path.to_owned(), message: error.to_string() }),
    };
    let persisted: Persisted = serde_json::from_str(&text)
        .map_err(|error| RunnerError::State { path: path.to_owned(), message: error.to_string() })?;
    Ok(persisted.alerts.into_iter().map(|record| (record.fingerprint.clone(), record)).collect())
}

fn write_atomically(path: &Path, persisted: &Persisted) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("json.tmp");
    let body = serde_json::to_vec(persisted).map_err(std::io::Error::other)?;
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&body)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(parent) = path.parent()
        && let Ok(directory) = std::fs::File::open(parent)
    {
        let _ = directory.sync_all();
    }
    Ok(())
}

/// The notifier between the rule engine and delivery: runs triage for newly
/// firing alerts and adds its annotations; see the module documentation.
pub struct TriageNotifier {
    pub runner: Arc<Runner>,
    pub inner: Arc<dyn rules::Notifier>,
    pub handle: tokio::runtime::Handle,
}

impl rules::Notifier for TriageNotifier {
    fn send(&self, alerts: Vec<rules::Notification>) {
        let fresh = self.runner.observe(&alerts);
        if fresh.is_empty() {
            self.inner.send(self.runner.annotate(alerts));
            return;
        }
        for fingerprint in &fresh {
            let runner = self.runner.clone();
            let fingerprint = fingerprint.clone();
            self.handle.spawn(async move { runner.run_now(&fingerprint).await });
        }
        let runner = self.runner.clone();
        let inner = self.inner.clone();
        let wait = runner.options.notify_wait;
        self.handle.spawn(async move {
            runner.wait_for_runs(&fresh, wait).await;
            inner.send(runner.annotate(alerts));
        });
    }
}
