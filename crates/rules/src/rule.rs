//! Recording and alerting rules, each evaluated once at a time passed in.
//!
//! [`Rule::evaluate`] queries the datasource and returns the samples to write
//! (the recorded series, or `ALERTS` and `ALERTS_FOR_STATE`); an alerting rule
//! also moves its alerts along the lifecycle, with Prometheus's `for`,
//! `keep_firing_for`, limit and 15-minute retention of resolved alerts, and
//! expands labels and annotations as Go templates.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use catalog::template::{self, QueryFunction, QuerySample, TemplateData};
use tsdb::{Labels, LabelsBuilder, METRIC_NAME};

use crate::alert::{Alert, AlertState};
use crate::datasource::Datasource;
use crate::notify::{Notification, generator_url};

/// A rule's health after its last evaluation (Prometheus's `ok`, `err`, `unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// Recording or alerting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Recording,
    Alerting,
}

/// What the API shows of a rule.
#[derive(Debug, Clone)]
pub struct RuleStatus {
    pub name: String,
    pub kind: RuleKind,
    pub query: String,
    pub for_duration: Duration,
    pub keep_firing_for: Duration,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub health: Health,
    pub last_error: Option<String>,
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_duration: Duration,
    /// Active alerts (pending, firing, and resolved ones still retained), sorted by labels.
    pub alerts: Vec<Alert>,
}

/// Settings shared by every rule of a group.
#[derive(Clone)]
pub(crate) struct EvaluationContext {
    pub datasource: Arc<dyn Datasource>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub query_offset_ms: i64,
    pub limit: u64,
    pub resend_delay_ms: i64,
    pub interval_ms: i64,
}

/// One rule and its state.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub name: String,
    pub kind: RuleKind,
    pub expr: String,
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
    /// Group labels merged with the rule's (the rule's win).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Alerts by identity.
    pub active: BTreeMap<Labels, Alert>,
    pub health: Health,
    pub last_error: Option<String>,
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_duration: Duration,
    /// Series written at the last successful evaluation, for staleness markers.
    pub written: BTreeSet<Labels>,
}

/// The outcome of one successful evaluation.
pub(crate) struct Evaluated {
    pub samples: Vec<(Labels, f64)>,
    pub notifications: Vec<Notification>,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Rule {
    pub fn from_catalog(rule: &catalog::Rule, group_labels: &BTreeMap<String, String>) -> Self {
        let (name, kind) = match &rule.kind {
            catalog::RuleKind::Alert(name) => (name.clone(), RuleKind::Alerting),
            catalog::RuleKind::Record(name) => (name.clone(), RuleKind::Recording),
        };
        let mut labels = group_labels.clone();
        labels.extend(rule.labels.clone());
        Self {
            name,
            kind,
            expr: rule.expr.clone(),
            for_ms: millis(rule.for_duration),
            keep_firing_for_ms: millis(rule.keep_firing_for),
            labels,
            annotations: rule.annotations.clone(),
            active: BTreeMap::new(),
            health: Health::Unknown,
            last_error: None,
            last_evaluation_ms: None,
            evaluation_duration: Duration::ZERO,
            written: BTreeSet::new(),
        }
    }

    pub fn status(&self) -> RuleStatus {
        RuleStatus {
            name: self.name.clone(),
            kind: self.kind,
            query: self.expr.clone(),
            for_duration: Duration::from_millis(self.for_ms.max(0) as u64),
            keep_firing_for: Duration::from_millis(self.keep_firing_for_ms.max(0) as u64),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            health: self.health,
            last_error: self.last_error.clone(),
            last_evaluation_ms: self.last_evaluation_ms,
            evaluation_duration: self.evaluation_duration,
            alerts: self.active.values().cloned().collect(),
        }
    }

    /// Takes over the state of the rule this one replaces at a reload (same
    /// group, name and labels), as Prometheus's `CopyState`: its alerts with
    /// their active-since times, health and the series it wrote.
    pub fn take_state_from(&mut self, previous: Rule) {
        self.active = previous.active;
        self.health = previous.health;
        self.last_error = previous.last_error;
        self.last_evaluation_ms = previous.last_evaluation_ms;
        self.evaluation_duration = previous.evaluation_duration;
        self.written = previous.written;
    }

    /// Resolves every alert at `time_ms` (the rule was removed): pending
    /// alerts are dropped, firing ones resolve; returns the notifications due.
    pub fn resolve_all(&mut self, context: &EvaluationContext, time_ms: i64) -> Vec<Notification> {
        if self.kind != RuleKind::Alerting {
            return Vec::new();
        }
        self.active.retain(|_, alert| alert.state != AlertState::Pending);
        for alert in self.active.values_mut() {
            if alert.state == AlertState::Firing {
                alert.state = AlertState::Inactive;
                alert.resolved_at_ms = Some(time_ms);
            }
        }
        self.notifications(context, time_ms)
    }

    /// Evaluates the rule at `time_ms`.
    pub fn evaluate(&mut self, context: &EvaluationContext, time_ms: i64) -> Result<Evaluated, String> {
        match self.kind {
            RuleKind::Recording => self.evaluate_recording(context, time_ms),
            RuleKind::Alerting => self.evaluate_alerting(context, time_ms),
        }
    }

    fn evaluate_recording(&mut self, context: &EvaluationContext, time_ms: i64) -> Result<Evaluated, String> {
        let query_time = time_ms - context.query_offset_ms;
        let vector = context.datasource.query(&self.expr, query_time).map_err(|error| error.to_string())?;
        let mut seen = BTreeSet::new();
        let mut samples = Vec::with_capacity(vector.len());
        for (labels, value) in vector {
            let mut builder = labels.to_builder();
            builder.set(METRIC_NAME, self.name.as_str());
            for (name, label_value) in &self.labels {
                builder.set(name.as_str(), label_value.as_str());
            }
            let labels = builder.build();
            if !seen.insert(labels.clone()) {
                return Err("vector contains metrics with the same labelset after applying rule labels".into());
            }
            samples.push((labels, value));
        }
        if context.limit > 0 && samples.len() as u64 > context.limit {
            return Err(format!("exceeded limit of {} with {} series", context.limit, samples.len()));
        }
        Ok(Evaluated { samples, notifications: Vec::new() })
    }

    fn evaluate_alerting(&mut self, context: &EvaluationContext, time_ms: i64) -> Result<Evaluated, String> {
        let query_time = time_ms - context.query_offset_ms;
        let vector = context.datasource.query(&self.expr, query_time).map_err(|error| error.to_string())?;
        let datasource = context.datasource.clone();
        let query: QueryFunction = Arc::new(move |text| {
            let samples = datasource.query(text, query_time).map_err(|error| error.to_string())?;
            Ok(samples
                .into_iter()
                .map(|(labels, value)| QuerySample {
                    labels: labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect(),
                    value,
                })
                .collect())
        });
        let template_name = format!("__alert_{}", self.name);
        let mut current: BTreeMap<Labels, Alert> = BTreeMap::new();
        for (labels, value) in vector {
            let data = TemplateData {
                labels: labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect(),
                external_labels: context.external_labels.clone(),
                external_url: context.external_url.clone(),
                value,
            };
            let expand = |text: &str| match template::expand(&template_name, text, &data, Some(query.clone())) {
                Ok(expanded) => expanded,
                Err(error) => {
                    tracing::warn!(alert = %self.name, error = %error, "expanding alert template failed");
                    format!("<error expanding template: {error}>")
                }
            };
            let mut builder: LabelsBuilder = labels.to_builder();
            builder.delete(METRIC_NAME);
            for (name, text) in &self.labels {
                builder.set(name.as_str(), expand(text));
            }
            builder.set("alertname", self.name.as_str());
            let annotations = self.annotations.iter().map(|(name, text)| (name.clone(), expand(text))).collect();
            let identity = builder.build();
            if current.contains_key(&identity) {
                return Err("vector contains metrics with the same labelset after applying alert labels".into());
            }
            let alert = Alert {
                labels: identity.clone(),
                annotations,
                state: AlertState::Pending,
                value,
                active_at_ms: time_ms,
                fired_at_ms: None,
                resolved_at_ms: None,
                last_sent_at_ms: None,
                valid_until_ms: None,
                keep_firing_since_ms: None,
            };
            current.insert(identity, alert);
        }

        for (identity, alert) in &current {
            match self.active.get_mut(identity) {
                Some(existing) if existing.state != AlertState::Inactive => {
                    existing.value = alert.value;
                    existing.annotations = alert.annotations.clone();
                }
                _ => {
                    self.active.insert(identity.clone(), alert.clone());
                }
            }
        }

        let mut samples = Vec::new();
        let mut active_or_pending = 0u64;
        let mut removed = Vec::new();
        for (identity, alert) in self.active.iter_mut() {
            if !current.contains_key(identity) {
                let mut keep_firing = false;
                if alert.state == AlertState::Firing && self.keep_firing_for_ms > 0 {
                    let since = *alert.keep_firing_since_ms.get_or_insert(time_ms);
                    keep_firing = time_ms - since < self.keep_firing_for_ms;
                }
                if alert.state == AlertState::Pending
                    || alert.resolved_at_ms.is_some_and(|resolved| time_ms - resolved > crate::RESOLVED_RETENTION_MS)
                {
                    removed.push(identity.clone());
                }
                if alert.state != AlertState::Inactive && !keep_firing {
                    alert.state = AlertState::Inactive;
                    alert.resolved_at_ms = Some(time_ms);
                }
                if !keep_firing {
                    continue;
                }
            } else {
                alert.keep_firing_since_ms = None;
            }
            active_or_pending += 1;
            if alert.state == AlertState::Pending && time_ms - alert.active_at_ms >= self.for_ms {
                alert.state = AlertState::Firing;
                alert.fired_at_ms = Some(time_ms);
            }
            let mut builder = alert.labels.to_builder();
            builder.set(METRIC_NAME, "ALERTS");
            builder.set("alertstate", alert.state.as_str());
            samples.push((builder.build(), 1.0));
            let mut builder = alert.labels.to_builder();
            builder.set(METRIC_NAME, "ALERTS_FOR_STATE");
            samples.push((builder.build(), (alert.active_at_ms / 1000) as f64));
        }
        for identity in removed {
            self.active.remove(&identity);
        }
        if context.limit > 0 && active_or_pending > context.limit {
            self.active.clear();
            return Err(format!("exceeded limit of {} with {} alerts", context.limit, active_or_pending));
        }
        let notifications = self.notifications(context, time_ms);
        Ok(Evaluated { samples, notifications })
    }

    /// Prometheus's `sendAlerts`: the alerts due for sending, marked as sent.
    fn notifications(&mut self, context: &EvaluationContext, time_ms: i64) -> Vec<Notification> {
        let mut notifications = Vec::new();
        let delta = context.resend_delay_ms.max(context.interval_ms);
        for alert in self.active.values_mut() {
            if !alert.needs_sending(time_ms, context.resend_delay_ms) {
                continue;
            }
            alert.last_sent_at_ms = Some(time_ms);
            alert.valid_until_ms = Some(time_ms + 4 * delta);
            let mut labels: BTreeMap<String, String> =
                alert.labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect();
            for (name, value) in &context.external_labels {
                labels.entry(name.clone()).or_insert_with(|| value.clone());
            }
            notifications.push(Notification {
                labels,
                annotations: alert.annotations.clone(),
                starts_at_ms: alert.fired_at_ms.unwrap_or(alert.active_at_ms),
                ends_at_ms: alert.resolved_at_ms,
                valid_until_ms: time_ms + 4 * delta,
                generator_url: generator_url(&context.external_url, &self.expr),
            });
        }
        notifications
    }
}
