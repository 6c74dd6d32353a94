//! What the rule engine hands to notification: [`Notification`]s (Prometheus's
//! notifier alerts) through the [`Notifier`] trait.

use std::collections::BTreeMap;

/// One alert to send, with Alertmanager's timing semantics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Notification {
    /// The alert's labels plus the external labels it does not already carry.
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// When the alert started firing (Alertmanager's `startsAt`).
    pub starts_at_ms: i64,
    /// When the alert resolved; `None` while it fires.
    pub ends_at_ms: Option<i64>,
    /// While firing, how long this notification holds without a resend
    /// (Prometheus sends it as `endsAt`: four resend delays or intervals ahead).
    pub valid_until_ms: i64,
    /// A link to the rule's expression: `<external URL>/graph?g0.expr=...&g0.tab=1`.
    pub generator_url: String,
}

/// Consumes the alerts to send after each group evaluation.
pub trait Notifier: Send + Sync {
    fn send(&self, alerts: Vec<Notification>);
}

/// A notifier that drops everything (no notification pipeline configured).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn send(&self, _alerts: Vec<Notification>) {}
}

/// Prometheus's generator URL of an expression.
pub fn generator_url(external_url: &str, expression: &str) -> String {
    format!(
        "{}/graph?g0.expr={}&g0.tab=1",
        external_url.trim_end_matches('/'),
        catalog::template::query_escape(expression)
    )
}
