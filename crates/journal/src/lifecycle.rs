//! The lifecycle for people, pure: firing → acknowledged (who, when) →
//! closed with a journal entry. An acknowledgement belongs to one firing
//! episode (the alert instance's fingerprint and when it became active): an
//! alert that resolves after its acknowledgement still needs its entry, and
//! one that fires again after its close is a new episode that needs a new
//! acknowledgement and a new entry. Also: which reminders are due, and the
//! timeline an entry keeps. Time is passed in; nothing here does I/O.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// An alert instance that is firing now, as the rule engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiringAlert {
    pub fingerprint: String,
    /// When the alert became active (its `activeAt`): the episode's key.
    pub started_at_ms: i64,
    /// The runbook ID of its entry, such as A6.
    pub alert_id: String,
    pub alertname: String,
    pub labels: BTreeMap<String, String>,
}

/// Why a lifecycle step is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("the alert is not firing: only a firing alert can be acknowledged")]
    NotFiring,
    #[error("the alert was never acknowledged: acknowledge it before closing")]
    NotAcknowledged,
    #[error(
        "the alert fired again at {fired_again_at_ms} after its entry was written: acknowledge the new firing, which needs an entry of its own"
    )]
    FiredAgain { fired_again_at_ms: i64 },
    #[error("no alert with fingerprint {0} is known to the rules")]
    UnknownAlert(String),
}

/// What an acknowledgement of `alert` by `who` at `now_ms` records.
pub fn acknowledge(alert: Option<&FiringAlert>, who: &str, now_ms: i64) -> Result<state::NewEpisode, LifecycleError> {
    let alert = alert.ok_or(LifecycleError::NotFiring)?;
    Ok(state::NewEpisode {
        fingerprint: alert.fingerprint.clone(),
        started_at_ms: alert.started_at_ms,
        alert_id: alert.alert_id.clone(),
        alertname: alert.alertname.clone(),
        labels: alert.labels.clone(),
        acknowledged_by: who.to_owned(),
        acknowledged_at_ms: now_ms,
    })
}

/// Which episode a close (or, with `expected_revision > 0`, a correction)
/// writes to: the alert instance's latest acknowledged episode, unless the
/// alert has fired again since that episode was closed.
pub fn episode_to_close<'a>(
    latest: Option<&'a state::Episode>,
    firing: Option<&FiringAlert>,
    expected_revision: i64,
) -> Result<&'a state::Episode, LifecycleError> {
    let episode = latest.ok_or(LifecycleError::NotAcknowledged)?;
    if let Some(firing) = firing
        && firing.started_at_ms > episode.started_at_ms
        && episode.latest_revision > 0
        && expected_revision == 0
    {
        return Err(LifecycleError::FiredAgain { fired_again_at_ms: firing.started_at_ms });
    }
    Ok(episode)
}

/// The acknowledged episodes without an entry whose reminder is due at
/// `now_ms`: `remind_after` after the acknowledgement, then again every
/// `remind_after` after the last reminder.
pub fn reminders_due(open: &[state::Episode], now_ms: i64, remind_after: Duration) -> Vec<&state::Episode> {
    let after_ms = i64::try_from(remind_after.as_millis()).unwrap_or(i64::MAX);
    open.iter()
        .filter(|episode| episode.latest_revision == 0)
        .filter(|episode| {
            let since = episode.reminded_at_ms.unwrap_or(episode.acknowledged_at_ms).max(episode.acknowledged_at_ms);
            now_ms.saturating_sub(since) >= after_ms
        })
        .collect()
}

/// A triage run of the alert, linked from its entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkedRun {
    pub time_ms: i64,
    /// The branch the run took.
    pub path: String,
    pub summary: String,
}

/// One event of an episode's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    pub at_ms: i64,
    /// `fired`, `acknowledged`, `triage`, `reminded`, `resolved`, `closed` or `revised`.
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The runs of the episode: from when it became active to `until_ms`.
pub fn runs_of_episode(episode: &state::Episode, runs: &[LinkedRun], until_ms: i64) -> Vec<LinkedRun> {
    let mut linked: Vec<LinkedRun> =
        runs.iter().filter(|run| run.time_ms >= episode.started_at_ms && run.time_ms <= until_ms).cloned().collect();
    linked.sort_by_key(|run| run.time_ms);
    linked
}

/// The episode's timeline up to a revision written by `author` at `now_ms`
/// (`revision` 1 closes, later ones revise), in time order.
pub fn timeline(
    episode: &state::Episode,
    runs: &[LinkedRun],
    earlier: &[state::Revision],
    author: &str,
    now_ms: i64,
) -> Vec<TimelineEvent> {
    let event = |at_ms: i64, event: &str, by: Option<&str>, detail: Option<String>| TimelineEvent {
        at_ms,
        event: event.to_owned(),
        by: by.map(str::to_owned),
        detail,
    };
    let mut events = vec![
        event(episode.started_at_ms, "fired", None, Some(episode.alertname.clone())),
        event(episode.acknowledged_at_ms, "acknowledged", Some(&episode.acknowledged_by), None),
    ];
    events.extend(runs.iter().map(|run| event(run.time_ms, "triage", None, Some(run.path.clone()))));
    if let Some(at) = episode.reminded_at_ms {
        events.push(event(at, "reminded", Some(&episode.acknowledged_by), None));
    }
    if let Some(at) = episode.resolved_at_ms {
        events.push(event(at, "resolved", None, None));
    }
    for revision in earlier {
        let kind = if revision.revision == 1 { "closed" } else { "revised" };
        events.push(event(
            revision.written_at_ms,
            kind,
            Some(&revision.author),
            Some(format!("revision {}", revision.revision)),
        ));
    }
    let kind = if earlier.is_empty() { "closed" } else { "revised" };
    events.push(event(now_ms, kind, Some(author), Some(format!("revision {}", earlier.len() + 1))));
    events.sort_by_key(|event| event.at_ms);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firing(started_at_ms: i64) -> FiringAlert {
        FiringAlert {
            fingerprint: "abc".into(),
            started_at_ms,
            alert_id: "A6".into(),
            alertname: "LokiCompactorBehind".into(),
            labels: BTreeMap::from([("alertname".into(), "LokiCompactorBehind".into())]),
        }
    }

    fn episode(started_at_ms: i64, acknowledged_at_ms: i64, latest_revision: i64) -> state::Episode {
        state::Episode {
            id: 1,
            fingerprint: "abc".into(),
            started_at_ms,
            alert_id: "A6".into(),
            alertname: "LokiCompactorBehind".into(),
            labels: BTreeMap::new(),
            acknowledged_by: "alice".into(),
            acknowledged_at_ms,
            resolved_at_ms: None,
            reminded_at_ms: None,
            latest_revision,
        }
    }

    #[test]
    fn only_a_firing_alert_is_acknowledged() {
        assert_eq!(acknowledge(None, "alice", 5), Err(LifecycleError::NotFiring));
        let new = acknowledge(Some(&firing(1_000)), "alice", 5_000).expect("acknowledged");
        assert_eq!((new.started_at_ms, new.acknowledged_by.as_str(), new.acknowledged_at_ms), (1_000, "alice", 5_000));
        assert_eq!(new.alert_id, "A6");
    }

    #[test]
    fn closing_needs_an_acknowledgement() {
        assert_eq!(episode_to_close(None, Some(&firing(1_000)), 0), Err(LifecycleError::NotAcknowledged));
    }

    #[test]
    fn an_alert_resolved_after_its_acknowledgement_still_closes() {
        let acknowledged = episode(1_000, 2_000, 0);
        assert_eq!(episode_to_close(Some(&acknowledged), None, 0), Ok(&acknowledged));
    }

    #[test]
    fn a_re_fire_after_the_close_needs_a_new_acknowledgement_and_entry() {
        let closed = episode(1_000, 2_000, 1);
        assert_eq!(
            episode_to_close(Some(&closed), Some(&firing(9_000)), 0),
            Err(LifecycleError::FiredAgain { fired_again_at_ms: 9_000 })
        );
        // A correction of the closed entry is still possible.
        assert_eq!(episode_to_close(Some(&closed), Some(&firing(9_000)), 1), Ok(&closed));
        // An acknowledged, unclosed episode closes even though the alert fires again.
        let open = episode(1_000, 2_000, 0);
        assert_eq!(episode_to_close(Some(&open), Some(&firing(9_000)), 0), Ok(&open));
    }

    #[test]
    fn reminders_come_remind_after_the_acknowledgement_and_then_again() {
        let day = Duration::from_secs(24 * 3600);
        let day_ms = 24 * 3600 * 1000;
        let mut open = vec![episode(0, 1_000, 0)];
        assert!(reminders_due(&open, 1_000 + day_ms - 1, day).is_empty());
        assert_eq!(reminders_due(&open, 1_000 + day_ms, day).len(), 1);
        open[0].reminded_at_ms = Some(1_000 + day_ms);
        assert!(reminders_due(&open, 1_000 + day_ms + 10, day).is_empty(), "not twice in a row");
        assert_eq!(reminders_due(&open, 1_000 + 2 * day_ms, day).len(), 1);
        open[0].latest_revision = 1;
        assert!(reminders_due(&open, 1_000 + 5 * day_ms, day).is_empty(), "an entry ends the reminders");
    }

    #[test]
    fn the_timeline_links_the_episode_runs_in_time_order() {
        let mut acknowledged = episode(1_000, 3_000, 0);
        acknowledged.resolved_at_ms = Some(8_000);
        let runs = [
            LinkedRun { time_ms: 500, path: "before".into(), summary: String::new() },
            LinkedRun { time_ms: 2_000, path: "compactor-unhealthy".into(), summary: "lag 180".into() },
            LinkedRun { time_ms: 20_000, path: "after".into(), summary: String::new() },
        ];
        let linked = runs_of_episode(&acknowledged, &runs, 10_000);
        assert_eq!(linked.iter().map(|run| run.path.as_str()).collect::<Vec<_>>(), ["compactor-unhealthy"]);
        let events = timeline(&acknowledged, &linked, &[], "bob", 10_000);
        let kinds: Vec<(&str, i64)> = events.iter().map(|event| (event.event.as_str(), event.at_ms)).collect();
        assert_eq!(
            kinds,
            [("fired", 1_000), ("triage", 2_000), ("acknowledged", 3_000), ("resolved", 8_000), ("closed", 10_000)]
        );
        assert_eq!(events[4].by.as_deref(), Some("bob"));
    }
}
