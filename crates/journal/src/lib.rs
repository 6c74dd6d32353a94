//! The on-call journal: acknowledging a firing alert, closing it with the
//! fields the catalog's closing rule requires, correcting an entry by a new
//! revision, reminding whoever acknowledged an alert that still has no entry,
//! and exporting the journal (Markdown, CSV, JSON).
//!
//! Key items: the pure core — [`closing::validate`] (every refused field at
//! once), [`lifecycle`] (which episode an acknowledgement or a close belongs
//! to, which reminders are due, the timeline an entry keeps) and [`export`] —
//! and [`Journal`], the thin service that runs the core over a
//! `state::Store`. Its callers (the server, the CLI) hand in the firing alert
//! as the rule engine sees it, the alert's triage runs and the time; this
//! crate never reads the clock, never queries the rules or triage itself,
//! speaks no HTTP and prints nothing.

pub mod closing;
pub mod export;
pub mod lifecycle;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

pub use closing::{BrokenGuardRail, ClosingForm, ClosingRules, FieldError};
pub use lifecycle::{FiringAlert, LifecycleError, LinkedRun, TimelineEvent};

/// How long an acknowledged alert may go without an entry before whoever
/// acknowledged it is reminded (`journal.remind_after`).
pub const DEFAULT_REMIND_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Why the journal refused a step.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("the entry is refused: {}", describe(.0))]
    Invalid(Vec<FieldError>),
    #[error("already acknowledged by {by}")]
    AlreadyAcknowledged { by: String, at_ms: i64 },
    /// Someone else wrote the entry first: `current` is theirs, `submitted`
    /// what was refused (returned so that nothing is lost).
    #[error("the entry was written meanwhile by {} (revision {}): resubmit as a correction of that revision", .current.author, .current.revision)]
    Conflict { current: Box<state::Revision>, submitted: Box<ClosingForm> },
    #[error("no journal entry {0}")]
    NoEntry(i64),
    #[error(transparent)]
    State(#[from] state::StateError),
}

fn describe(errors: &[FieldError]) -> String {
    errors.iter().map(|error| format!("{}: {}", error.field, error.message)).collect::<Vec<_>>().join("; ")
}

/// A journal entry as shown and exported: the episode, its latest revision
/// and the links to its triage runs and runbook page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    /// The entry's id (its episode's).
    pub id: i64,
    pub alert_id: String,
    pub alertname: String,
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    pub fired_at: String,
    pub acknowledged_by: String,
    pub acknowledged_at: String,
    pub resolved_at: Option<String>,
    pub closed_by: String,
    pub closed_at: String,
    /// The latest revision: 1 unless corrected.
    pub revision: i64,
    pub revised_by: String,
    pub revised_at: String,
    pub root_cause: String,
    pub remediation: String,
    pub contract_changed: bool,
    pub contract: Option<String>,
    pub contract_pr: Option<String>,
    pub triage_runs: Vec<LinkedRun>,
    pub timeline: Vec<TimelineEvent>,
    pub links: Links,
    /// The guard rails of the runbook entry that the remediation breaks
    /// (its `forbids` patterns, read against the catalog loaded now).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guard_rails_broken: Vec<BrokenGuardRail>,
}

/// Where an entry's evidence lives on the server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Links {
    pub runbook: String,
    pub triage: String,
}

/// RFC 3339 in UTC, to the second.
pub fn format_time(time_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(time_ms)
        .map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| time_ms.to_string())
}

impl Entry {
    /// The entry of a stored row.
    pub fn from_row(row: &state::JournalRow) -> Entry {
        let episode = &row.episode;
        let latest = &row.latest;
        Entry {
            id: episode.id,
            alert_id: latest.alert_id.clone(),
            alertname: episode.alertname.clone(),
            fingerprint: episode.fingerprint.clone(),
            labels: episode.labels.clone(),
            fired_at: format_time(episode.started_at_ms),
            acknowledged_by: episode.acknowledged_by.clone(),
            acknowledged_at: format_time(episode.acknowledged_at_ms),
            resolved_at: episode.resolved_at_ms.map(format_time),
            closed_by: row.closed_by.clone(),
            closed_at: format_time(row.closed_at_ms),
            revision: latest.revision,
            revised_by: latest.author.clone(),
            revised_at: format_time(latest.written_at_ms),
            root_cause: latest.root_cause.clone(),
            remediation: latest.remediation.clone(),
            contract_changed: latest.contract_changed,
            contract: latest.contract.clone(),
            contract_pr: latest.contract_pr.clone(),
            triage_runs: serde_json::from_value(latest.triage.clone()).unwrap_or_default(),
            timeline: serde_json::from_value(latest.timeline.clone()).unwrap_or_default(),
            links: Links {
                runbook: format!("/runbook/{}.md", latest.alert_id),
                triage: format!("/api/v1/triage?fingerprint={}", episode.fingerprint),
            },
            guard_rails_broken: Vec::new(),
        }
    }
}

/// The journal over a state store.
#[derive(Debug, Clone)]
pub struct Journal {
    store: state::Store,
    /// Shared by the clones, so that a reload's [`Journal::set_rules`] reaches them all.
    rules: std::sync::Arc<std::sync::RwLock<std::sync::Arc<ClosingRules>>>,
    remind_after: Duration,
}

impl Journal {
    pub fn new(store: state::Store, rules: ClosingRules, remind_after: Duration) -> Journal {
        Journal { store, rules: std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(rules))), remind_after }
    }

    /// The store (accounts live in it too).
    pub fn store(&self) -> &state::Store {
        &self.store
    }

    /// The closing rules in force.
    pub fn rules(&self) -> std::sync::Arc<ClosingRules> {
        self.rules.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Puts the closing rules of a reloaded catalog in force; entries closed
    /// earlier keep what they were closed with.
    pub fn set_rules(&self, rules: ClosingRules) {
        *self.rules.write().unwrap_or_else(std::sync::PoisonError::into_inner) = std::sync::Arc::new(rules);
    }

    pub fn remind_after(&self) -> Duration {
        self.remind_after
    }

    /// Acknowledges the firing alert for `who`. Acknowledging again by the
    /// same person is a no-op; by someone else, [`JournalError::AlreadyAcknowledged`].
    pub async fn acknowledge(
        &self,
        firing: Option<&FiringAlert>,
        who: &str,
        now_ms: i64,
    ) -> Result<state::Episode, JournalError> {
        let new = lifecycle::acknowledge(firing, who, now_ms)?;
        match self.store.acknowledge(&new).await {
            Ok(episode) => {
                tracing::info!(alert_id = %episode.alert_id, by = %who, "alert acknowledged");
                Ok(episode)
            }
            Err(state::StateError::AlreadyAcknowledged(existing)) if existing.acknowledged_by == who => Ok(*existing),
            Err(state::StateError::AlreadyAcknowledged(existing)) => Err(JournalError::AlreadyAcknowledged {
                by: existing.acknowledged_by.clone(),
                at_ms: existing.acknowledged_at_ms,
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// Closes the alert instance's acknowledged episode with `form` (or, when
    /// `form.revision` is set, writes a correction of that revision). Nothing
    /// is written unless every field passes and no one wrote first.
    pub async fn close(
        &self,
        fingerprint: &str,
        firing: Option<&FiringAlert>,
        form: &ClosingForm,
        who: &str,
        now_ms: i64,
        runs: &[LinkedRun],
    ) -> Result<Entry, JournalError> {
        let expected = form.revision.unwrap_or(0).max(0);
        let latest = self.store.latest_episode(fingerprint).await?;
        let episode = lifecycle::episode_to_close(latest.as_ref(), firing, expected)?;
        let closing = closing::validate(form, &episode.alert_id, &self.rules()).map_err(JournalError::Invalid)?;
        let earlier = self.store.revisions(episode.id).await?;
        let linked = lifecycle::runs_of_episode(episode, runs, now_ms);
        let timeline = lifecycle::timeline(episode, &linked, &earlier, who, now_ms);
        let (contract, contract_pr) = match closing.contract_change {
            Some((contract, pull_request)) => (Some(contract), Some(pull_request)),
            None => (None, None),
        };
        let new = state::NewRevision {
            author: who.to_owned(),
            written_at_ms: now_ms,
            alert_id: closing.alert_id,
            root_cause: closing.root_cause,
            remediation: closing.remediation.as_text(),
            contract_changed: contract.is_some(),
            contract,
            contract_pr,
            triage: serde_json::to_value(&linked).unwrap_or_default(),
            timeline: serde_json::to_value(&timeline).unwrap_or_default(),
        };
        match self.store.append_revision(episode.id, expected, &new).await {
            Ok(revision) => {
                tracing::info!(alert_id = %episode.alert_id, by = %who, revision = revision.revision, "journal entry written");
                for broken in self.rules().broken_guard_rails(&new.alert_id, &new.remediation) {
                    tracing::warn!(
                        alert_id = %new.alert_id, by = %who, step = broken.step, rail = %broken.rail, matched = %broken.matched,
                        "the recorded remediation breaks a guard rail of the runbook entry"
                    );
                }
            }
            Err(state::StateError::Conflict { current }) => {
                return Err(JournalError::Conflict { current, submitted: Box::new(form.clone()) });
            }
            Err(error) => return Err(error.into()),
        }
        self.entry(episode.id).await?.map(|(entry, _)| entry).ok_or(JournalError::NoEntry(episode.id))
    }

    /// Entries matching `filter`, newest close first.
    pub async fn entries(&self, filter: &state::EntryFilter) -> Result<Vec<Entry>, JournalError> {
        Ok(self.store.entries(filter).await?.iter().map(|row| self.entry_of(row)).collect())
    }

    /// The entry of a stored row, with the guard rails its remediation breaks.
    fn entry_of(&self, row: &state::JournalRow) -> Entry {
        let mut entry = Entry::from_row(row);
        entry.guard_rails_broken = self.rules().broken_guard_rails(&entry.alert_id, &entry.remediation);
        entry
    }

    /// One entry with every revision (the audit trail).
    pub async fn entry(&self, id: i64) -> Result<Option<(Entry, Vec<state::Revision>)>, JournalError> {
        let filter = state::EntryFilter { episode_id: Some(id), ..Default::default() };
        let Some(row) = self.store.entries(&filter).await?.into_iter().next() else { return Ok(None) };
        let revisions = self.store.revisions(id).await?;
        Ok(Some((self.entry_of(&row), revisions)))
    }

    /// The acknowledgement of an alert instance's latest episode, if any.
    pub async fn latest_episode(&self, fingerprint: &str) -> Result<Option<state::Episode>, JournalError> {
        Ok(self.store.latest_episode(fingerprint).await?)
    }

    /// One pass of the reminder loop at `now_ms`: notes which open episodes'
    /// alerts stopped firing (`is_firing` says, by fingerprint and start),
    /// and returns the episodes whose reminder is due, marked as reminded.
    pub async fn due_reminders(
        &self,
        now_ms: i64,
        is_firing: impl Fn(&str, i64) -> bool,
    ) -> Result<Vec<state::Episode>, JournalError> {
        let mut open = self.store.open_episodes().await?;
        for episode in &mut open {
            if episode.resolved_at_ms.is_none() && !is_firing(&episode.fingerprint, episode.started_at_ms) {
                self.store.mark_resolved(episode.id, now_ms).await?;
                episode.resolved_at_ms = Some(now_ms);
            }
        }
        let due: Vec<state::Episode> =
            lifecycle::reminders_due(&open, now_ms, self.remind_after).into_iter().cloned().collect();
        for episode in &due {
            self.store.mark_reminded(episode.id, now_ms).await?;
        }
        Ok(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firing(started_at_ms: i64) -> FiringAlert {
        FiringAlert {
            fingerprint: "f".into(),
            started_at_ms,
            alert_id: "A6".into(),
            alertname: "LokiCompactorBehind".into(),
            labels: BTreeMap::from([("alertname".into(), "LokiCompactorBehind".into())]),
        }
    }

    fn form(root_cause: &str, changed: &str, pull_request: Option<&str>) -> ClosingForm {
        ClosingForm {
            root_cause: Some(root_cause.into()),
            remediation: Some("no-op, transient".into()),
            contract_changed: Some(serde_json::Value::String(changed.into())),
            contract: (changed == "yes").then(|| "log-retention".into()),
            contract_pr: pull_request.map(str::to_owned),
            ..ClosingForm::default()
        }
    }

    async fn journal() -> (tempfile::TempDir, Journal) {
        let directory = tempfile::tempdir().expect("temporary directory");
        let store = state::Store::open_sqlite(directory.path()).await.expect("store");
        let rules = ClosingRules { contracts: ["log-retention".to_owned()].into(), ..ClosingRules::default() };
        (directory, Journal::new(store, rules, Duration::from_secs(3600)))
    }

    #[tokio::test]
    async fn fire_acknowledge_refuse_close_correct_and_re_fire() {
        let (_directory, journal) = journal().await;
        let alert = firing(1_000);
        assert!(matches!(
            journal.close("f", Some(&alert), &form("x", "no", None), "alice", 1_500, &[]).await,
            Err(JournalError::Lifecycle(LifecycleError::NotAcknowledged))
        ));
        journal.acknowledge(Some(&alert), "alice", 2_000).await.expect("acknowledge");
        journal.acknowledge(Some(&alert), "alice", 2_100).await.expect("the same person again is a no-op");
        assert!(matches!(
            journal.acknowledge(Some(&alert), "bob", 2_200).await,
            Err(JournalError::AlreadyAcknowledged { by, .. }) if by == "alice"
        ));
        // Refused without a root cause, and with a contract change but no PR: nothing saved.
        match journal.close("f", Some(&alert), &form("", "no", None), "alice", 3_000, &[]).await {
            Err(JournalError::Invalid(errors)) => assert_eq!(errors[0].field, "root_cause"),
            other => panic!("{other:?}"),
        }
        match journal.close("f", Some(&alert), &form("quota", "yes", None), "alice", 3_000, &[]).await {
            Err(JournalError::Invalid(errors)) => {
                assert_eq!(errors.iter().map(|error| error.field).collect::<Vec<_>>(), ["contract_pr"])
            }
            other => panic!("{other:?}"),
        }
        assert!(journal.entries(&Default::default()).await.expect("entries").is_empty());
        assert_eq!(journal.store().open_episodes().await.expect("open").len(), 1);

        let runs = [LinkedRun { time_ms: 1_200, path: "compactor-unhealthy".into(), summary: "lag".into() }];
        let entry = journal
            .close("f", None, &form("quota", "yes", Some("https://git.example/pull/9")), "alice", 4_000, &runs)
            .await
            .expect("an alert resolved after its acknowledgement closes");
        assert_eq!((entry.revision, entry.closed_by.as_str(), entry.contract_changed), (1, "alice", true));
        assert_eq!(entry.triage_runs, runs);
        assert_eq!(entry.timeline.last().map(|event| event.event.as_str()), Some("closed"));

        // Bob closes too, not knowing: a conflict that hands his text back.
        match journal.close("f", None, &form("other view", "no", None), "bob", 4_100, &[]).await {
            Err(JournalError::Conflict { current, submitted }) => {
                assert_eq!(current.author, "alice");
                assert_eq!(submitted.root_cause.as_deref(), Some("other view"));
            }
            other => panic!("{other:?}"),
        }
        let mut correction = form("quota on loki-0", "no", None);
        correction.revision = Some(1);
        let entry = journal.close("f", None, &correction, "bob", 5_000, &[]).await.expect("correction");
        assert_eq!((entry.revision, entry.closed_by.as_str(), entry.revised_by.as_str()), (2, "alice", "bob"));
        let (_, revisions) = journal.entry(entry.id).await.expect("read").expect("entry");
        assert_eq!(revisions.len(), 2);
        assert_eq!(revisions[0].root_cause, "quota", "the first revision is kept");

        // It fires again: a new acknowledgement and a new entry are needed.
        let again = firing(9_000);
        assert!(matches!(
            journal.close("f", Some(&again), &form("x", "no", None), "alice", 9_500, &[]).await,
            Err(JournalError::Lifecycle(LifecycleError::FiredAgain { .. }))
        ));
        journal.acknowledge(Some(&again), "carol", 9_600).await.expect("acknowledge the re-fire");
        journal.close("f", Some(&again), &form("again", "no", None), "carol", 9_700, &[]).await.expect("close");
        assert_eq!(journal.entries(&Default::default()).await.expect("entries").len(), 2);
    }

    #[tokio::test]
    async fn a_remediation_that_breaks_a_guard_rail_is_kept_and_flagged() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let store = state::Store::open_sqlite(directory.path()).await.expect("store");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow");
        let catalog = catalog::load(&root).expect("the Busflow catalog loads");
        let journal = Journal::new(store, ClosingRules::from_catalog(&catalog), Duration::from_secs(3600));
        journal.acknowledge(Some(&firing(1_000)), "alice", 2_000).await.expect("acknowledge");
        // A6's guard rail: the compactor runs as a single replica.
        let mut scaled = form("compactor stalled", "no", None);
        scaled.remediation = Some("config: docker service scale loki_compactor=3".into());
        let entry = journal.close("f", None, &scaled, "alice", 3_000, &[]).await.expect("kept as written");
        assert_eq!(entry.guard_rails_broken.len(), 1, "{:?}", entry.guard_rails_broken);
        assert_eq!(entry.guard_rails_broken[0].matched, "docker service scale loki_compactor=3");
        assert!(entry.guard_rails_broken[0].step > 0);
        let listed = journal.entries(&Default::default()).await.expect("entries");
        assert_eq!(listed[0].guard_rails_broken, entry.guard_rails_broken, "flagged wherever it is read");
        let markdown = export::markdown(&listed);
        assert!(markdown.contains("- Guard rail broken: step "), "{markdown}");
        let json = serde_json::to_value(&listed[0]).expect("json");
        assert_eq!(json["guard_rails_broken"][0]["matched"], "docker service scale loki_compactor=3");

        // A remediation within the rails carries no flag, and no field in JSON.
        let mut fine = form("compactor stalled", "no", None);
        fine.remediation = Some("config: restarted loki_compactor (1 replica)".into());
        fine.revision = Some(1);
        let entry = journal.close("f", None, &fine, "alice", 4_000, &[]).await.expect("correction");
        assert!(entry.guard_rails_broken.is_empty());
        assert!(serde_json::to_value(&entry).expect("json").get("guard_rails_broken").is_none());
    }

    #[tokio::test]
    async fn reminders_go_to_whoever_acknowledged_and_resolution_is_noted() {
        let (_directory, journal) = journal().await;
        journal.acknowledge(Some(&firing(1_000)), "alice", 2_000).await.expect("acknowledge");
        let hour_ms = 3_600_000;
        assert!(journal.due_reminders(2_000 + hour_ms - 1, |_, _| true).await.expect("pass").is_empty());
        let due = journal.due_reminders(2_000 + hour_ms, |_, _| false).await.expect("pass");
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].acknowledged_by, "alice");
        assert_eq!(due[0].resolved_at_ms, Some(2_000 + hour_ms), "the alert stopped firing");
        assert!(journal.due_reminders(2_000 + hour_ms + 1, |_, _| false).await.expect("pass").is_empty());
        assert_eq!(journal.due_reminders(2_000 + 2 * hour_ms, |_, _| false).await.expect("pass").len(), 1);
    }
}
