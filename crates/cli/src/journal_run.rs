//! The on-call journal in `alertbook run` and in the `user`, `token` and
//! `journal` subcommands: opening the state store the configuration names
//! (SQLite under the data directory, or PostgreSQL), the journal and the
//! accounts over it, and the reminder loop.
//!
//! The reminder loop asks the journal which acknowledged episodes are still
//! without an entry after `journal.remind_after` (telling it which alerts
//! still fire, as the rule manager sees them) and sends one notification per
//! episode through the notifier alerts use, so it is routed, silenced and
//! delivered like any alert: the alert's labels with
//! `alertname="JournalEntryDue"`, `alert_id` and `acknowledged_by` (the
//! alert's `route` label is kept, so it reaches the alert's receivers; an
//! `alertmanager.yml` route on `acknowledged_by` sends it to that person).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::{Config, StateBackend};

/// The alertname of reminder notifications.
pub const REMINDER_ALERTNAME: &str = "JournalEntryDue";

/// Opens the state store of `config` (`data` holds the SQLite file). The
/// error names the database (the file, or `user@host:port/db`), never a
/// password.
pub async fn open_store(config: &Config) -> anyhow::Result<state::Store> {
    match &config.state {
        StateBackend::Sqlite => state::Store::open_sqlite(&config.data)
            .await
            .with_context(|| format!("cannot open the state store (sqlite under {})", config.data.display())),
        StateBackend::Postgres { url_file, url } => state::Store::open_postgres(url.expose())
            .await
            .with_context(|| format!("cannot open the state store (postgres, url_file {})", url_file.display())),
    }
}

/// The journal service `alertbook run` serves: the journal with the
/// catalog's closing rules, the accounts, and the auth settings.
pub async fn open_service(
    config: &Config,
    catalog: &catalog::Catalog,
) -> anyhow::Result<server::journal_api::JournalService> {
    let store = open_store(config).await?;
    let rules = journal::ClosingRules::from_catalog(catalog);
    let unknown = rules.unknown_fields();
    if !unknown.is_empty() {
        tracing::warn!(fields = ?unknown, "the catalog's closing rule lists fields alertbook cannot store yet");
    }
    let accounts = accounts::Accounts::new(store.clone()).context("cannot set up the accounts")?;
    tracing::info!(
        store = store.dialect(),
        remind_after_seconds = config.remind_after.as_secs(),
        require_for_read = config.require_for_read,
        "journal and accounts ready"
    );
    Ok(server::journal_api::JournalService {
        journal: journal::Journal::new(store, rules, config.remind_after),
        accounts,
        require_for_read: config.require_for_read,
        secure_cookies: config.secure_cookies,
    })
}

/// The firing alerts of the rule manager, as (fingerprint, start) pairs:
/// an episode's alert still fires when its pair is here.
pub fn firing_alerts(manager: &rules::Manager) -> HashSet<(String, i64)> {
    let mut firing = HashSet::new();
    for group in manager.statuses() {
        for rule in &group.rules {
            for alert in rule.alerts.iter().filter(|alert| alert.state == rules::AlertState::Firing) {
                let labels: BTreeMap<String, String> =
                    alert.labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect();
                firing.insert((triage::fingerprint(&labels), alert.active_at_ms));
            }
        }
    }
    firing
}

/// Where reminders go and what they carry besides the episode.
#[derive(Debug, Clone, Default)]
pub struct ReminderTarget {
    /// Where alertbook is reached: the alert page's link starts with it.
    pub external_url: String,
    /// `global.external_labels`, added where the alert's labels lack them (as for alerts).
    pub external_labels: BTreeMap<String, String>,
}

/// The reminder notification of an episode without an entry, at `now_ms`. Pure.
pub fn reminder_notification(episode: &state::Episode, now_ms: i64, target: &ReminderTarget) -> rules::Notification {
    let external_url = target.external_url.as_str();
    let mut labels = episode.labels.clone();
    for (name, value) in &target.external_labels {
        labels.entry(name.clone()).or_insert_with(|| value.clone());
    }
    labels.insert("alertname".into(), REMINDER_ALERTNAME.into());
    labels.insert("alert_id".into(), episode.alert_id.clone());
    labels.insert("acknowledged_by".into(), episode.acknowledged_by.clone());
    let alert_url = format!("{}/alerts/{}", external_url.trim_end_matches('/'), episode.fingerprint);
    let acknowledged_at = journal::format_time(episode.acknowledged_at_ms);
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "summary".into(),
        format!(
            "{} {} acknowledged by {} at {} has no journal entry",
            episode.alert_id, episode.alertname, episode.acknowledged_by, acknowledged_at
        ),
    );
    annotations.insert(
        "description".into(),
        format!(
            "Close it with its root cause and remediation at {alert_url} (or POST /api/v1/alerts/{}/close).",
            episode.fingerprint
        ),
    );
    annotations.insert("alert_url".into(), alert_url.clone());
    annotations.insert("acknowledged_alertname".into(), episode.alertname.clone());
    annotations.insert("acknowledged_at".into(), acknowledged_at);
    rules::Notification {
        labels,
        annotations,
        starts_at_ms: now_ms,
        ends_at_ms: None,
        valid_until_ms: now_ms + 4 * rules::DEFAULT_RESEND_DELAY_MS,
        generator_url: alert_url,
    }
}

/// One pass of the reminder loop: the due reminders, sent through `notifier`.
/// Returns how many went out.
pub async fn remind_once(
    journal: &journal::Journal,
    manager: &rules::Manager,
    notifier: &Arc<dyn rules::Notifier>,
    target: &ReminderTarget,
    now_ms: i64,
) -> Result<usize, journal::JournalError> {
    let firing = firing_alerts(manager);
    let due = journal
        .due_reminders(now_ms, |fingerprint, started_at_ms| firing.contains(&(fingerprint.to_owned(), started_at_ms)))
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let notifications: Vec<rules::Notification> =
        due.iter().map(|episode| reminder_notification(episode, now_ms, target)).collect();
    for episode in &due {
        tracing::info!(
            alert_id = %episode.alert_id,
            fingerprint = %episode.fingerprint,
            acknowledged_by = %episode.acknowledged_by,
            "journal entry due: reminding whoever acknowledged"
        );
    }
    let count = notifications.len();
    let notifier = notifier.clone();
    // The notifier persists to the outbox (fsync): off the async threads.
    let _ = tokio::task::spawn_blocking(move || notifier.send(notifications)).await;
    Ok(count)
}

/// Runs the reminder loop every `interval` of `clock` until `stopped` turns true.
pub fn spawn_reminders(
    journal: journal::Journal,
    manager: Arc<rules::Manager>,
    notifier: Arc<dyn rules::Notifier>,
    target: ReminderTarget,
    interval: Duration,
    clock: Arc<dyn rules::Clock>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(10);
        // The first pass runs at once, as the first tick of an interval.
        let mut next_ms = clock.now_ms() - interval_ms;
        loop {
            // A pass that overran the interval is followed by the next at once, as a delayed tick.
            next_ms = (next_ms + interval_ms).max(clock.now_ms());
            tokio::select! {
                _ = tokio::time::sleep(clock.wall_delay(next_ms - clock.now_ms())) => {}
                _ = stopped.changed() => break,
            }
            if *stopped.borrow() {
                break;
            }
            let now_ms = clock.now_ms();
            if let Err(error) = remind_once(&journal, &manager, &notifier, &target, now_ms).await {
                tracing::error!(error = %error, "the journal reminder pass failed");
            }
        }
    })
}

/// Whether opening the store of `config` would create a new SQLite file
/// (the subcommands say so: a mistyped `--data` is then seen at once).
pub fn store_is_new(config: &Config) -> bool {
    matches!(config.state, StateBackend::Sqlite) && !Path::new(&config.data).join(state::SQLITE_FILE).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn episode() -> state::Episode {
        state::Episode {
            id: 7,
            fingerprint: "0123456789abcdef".into(),
            started_at_ms: 1_000,
            alert_id: "A6".into(),
            alertname: "LokiCompactorBehind".into(),
            labels: BTreeMap::from([
                ("alertname".into(), "LokiCompactorBehind".into()),
                ("route".into(), "ops-oncall".into()),
                ("severity".into(), "page".into()),
            ]),
            acknowledged_by: "alice".into(),
            acknowledged_at_ms: 1_764_547_200_000,
            resolved_at_ms: None,
            reminded_at_ms: None,
            latest_revision: 0,
        }
    }

    #[test]
    fn a_reminder_names_the_alert_and_whoever_acknowledged_it_and_keeps_the_route() {
        let target = ReminderTarget {
            external_url: "http://alertbook.example:9099/".into(),
            external_labels: BTreeMap::from([("region".into(), "eu".into()), ("severity".into(), "other".into())]),
        };
        let notification = reminder_notification(&episode(), 5_000, &target);
        let labels = &notification.labels;
        assert_eq!(labels["alertname"], REMINDER_ALERTNAME);
        assert_eq!(labels["alert_id"], "A6");
        assert_eq!(labels["acknowledged_by"], "alice");
        assert_eq!(labels["route"], "ops-oncall", "it reaches the alert's receivers");
        assert_eq!(labels["severity"], "page", "the alert's own labels win over external labels");
        assert_eq!(labels["region"], "eu");
        assert_eq!(
            notification.annotations["summary"],
            "A6 LokiCompactorBehind acknowledged by alice at 2025-12-01T00:00:00Z has no journal entry"
        );
        assert_eq!(notification.annotations["alert_url"], "http://alertbook.example:9099/alerts/0123456789abcdef");
        assert_eq!(notification.annotations["acknowledged_alertname"], "LokiCompactorBehind");
        assert_eq!((notification.starts_at_ms, notification.ends_at_ms), (5_000, None));
        assert!(notification.valid_until_ms > 5_000);
    }

    /// Records what it is sent.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<rules::Notification>>);

    impl rules::Notifier for Recorder {
        fn send(&self, alerts: Vec<rules::Notification>) {
            self.0.lock().expect("recorder").extend(alerts);
        }
    }

    #[tokio::test]
    async fn a_pass_sends_each_due_reminder_once_through_the_notifier() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let config = Config { data: directory.path().to_owned(), ..Config::default() };
        assert!(store_is_new(&config));
        let store = open_store(&config).await.expect("store");
        assert!(!store_is_new(&config));
        let journal = journal::Journal::new(store.clone(), journal::ClosingRules::default(), Duration::from_secs(2));
        let firing = journal::FiringAlert {
            fingerprint: "f1".into(),
            started_at_ms: 1_000,
            alert_id: "A6".into(),
            alertname: "LokiCompactorBehind".into(),
            labels: episode().labels,
        };
        journal.acknowledge(Some(&firing), "alice", 2_000).await.expect("acknowledge");
        let datasource = rules::EmbeddedDatasource::new(
            Arc::new(tsdb::MemStore::new()),
            promql::Engine::new(promql::EngineOptions::default()),
        );
        let manager = rules::Manager::new(&[], rules::ManagerOptions::embedded(datasource));
        let recorder = Arc::new(Recorder::default());
        let notifier: Arc<dyn rules::Notifier> = recorder.clone();
        let target = ReminderTarget { external_url: "http://x".into(), ..ReminderTarget::default() };
        assert_eq!(remind_once(&journal, &manager, &notifier, &target, 3_000).await.expect("pass"), 0);
        assert_eq!(remind_once(&journal, &manager, &notifier, &target, 4_000).await.expect("pass"), 1);
        assert_eq!(remind_once(&journal, &manager, &notifier, &target, 4_500).await.expect("pass"), 0);
        let sent = recorder.0.lock().expect("recorder").clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].labels["acknowledged_by"], "alice");
        assert_eq!(sent[0].labels["alertname"], REMINDER_ALERTNAME);
        assert_eq!(sent[0].annotations["alert_url"], "http://x/alerts/f1");
        store.close().await;
    }
}
