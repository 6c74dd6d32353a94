//! One alert of an alerting rule: its identity (labels), its annotations and
//! where it is in the lifecycle. Pure data; [`crate::rule`] moves it along.

use std::collections::BTreeMap;

use tsdb::Labels;

/// Where an alert is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Resolved: the condition no longer holds (kept 15 minutes for sending).
    Inactive,
    /// The condition holds, for less than the rule's `for`.
    Pending,
    /// The condition has held for `for`, or is kept firing by `keep_firing_for`.
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert; all times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The alert's identity: the sample's labels without `__name__`, the rule's
    /// labels (expanded) and `alertname`.
    pub labels: Labels,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    /// The value of the sample that last matched.
    pub value: f64,
    /// When the condition started holding.
    pub active_at_ms: i64,
    /// When the alert started firing.
    pub fired_at_ms: Option<i64>,
    /// When the alert resolved.
    pub resolved_at_ms: Option<i64>,
    /// When the alert was last handed to the notifier.
    pub last_sent_at_ms: Option<i64>,
    /// Until when the last notification holds (Alertmanager's `endsAt` while firing).
    pub valid_until_ms: Option<i64>,
    /// When the condition stopped holding while `keep_firing_for` keeps the alert firing.
    pub keep_firing_since_ms: Option<i64>,
}

impl Alert {
    /// Whether the alert should be handed to the notifier at `time_ms` (Prometheus's `needsSending`).
    pub fn needs_sending(&self, time_ms: i64, resend_delay_ms: i64) -> bool {
        if self.state == AlertState::Pending {
            return false;
        }
        let last_sent = self.last_sent_at_ms.unwrap_or(i64::MIN);
        if self.resolved_at_ms.is_some_and(|resolved| resolved > last_sent) {
            return true;
        }
        self.last_sent_at_ms.is_none_or(|sent| sent + resend_delay_ms < time_ms)
    }
}
