//! A rule group: its rules in order, evaluated together at one timestamp.
//!
//! [`Group::evaluate`] runs every rule in file order, writes each rule's
//! samples (and staleness markers for series a rule stopped producing) before
//! the next rule runs, so later rules see earlier results, and returns the
//! notifications due. A group of a datasource this engine has no access to (SQL,
//! Docker, or logs without a log store) is kept for listing and never evaluated here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tsdb::STALE_NAN;

use crate::datasource::{Datasource, SeriesSink};
use crate::notify::Notification;
use crate::rule::{EvaluationContext, Health, Rule, RuleStatus};

/// Settings of a group that do not come from its rule file.
#[derive(Clone)]
pub struct GroupOptions {
    pub datasource: Arc<dyn Datasource>,
    /// Whether this engine evaluates the group: metrics groups always, log
    /// groups when a log datasource is configured, other kinds never.
    pub evaluated_here: bool,
    pub sink: Arc<dyn SeriesSink>,
    /// Interval of groups without `interval` (the global evaluation interval).
    pub default_interval_ms: i64,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub resend_delay_ms: i64,
}

/// What the API shows of a group.
#[derive(Debug, Clone)]
pub struct GroupStatus {
    pub file: String,
    pub name: String,
    pub interval_ms: i64,
    pub limit: u64,
    pub query_offset_ms: i64,
    pub datasource: catalog::Datasource,
    /// False for groups of datasources this engine does not evaluate (SQL, Docker, logs without a log store).
    pub evaluated_here: bool,
    pub last_evaluation_ms: Option<i64>,
    pub evaluation_duration: Duration,
    pub missed_iterations: u64,
    pub rules: Vec<RuleStatus>,
}

/// One rule group and the state of its rules.
pub struct Group {
    pub(crate) file: String,
    pub(crate) name: String,
    pub(crate) interval_ms: i64,
    pub(crate) limit: u64,
    pub(crate) query_offset_ms: i64,
    pub(crate) datasource_kind: catalog::Datasource,
    pub(crate) rules: Vec<Rule>,
    options: GroupOptions,
    last_evaluation_ms: Option<i64>,
    evaluation_duration: Duration,
    pub(crate) missed_iterations: u64,
    /// A reload replaced the group: it is evaluated no more.
    pub(crate) retired: bool,
}

/// The errors of one evaluation, per rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleError {
    pub rule: String,
    pub message: String,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Group {
    pub fn from_catalog(file: &str, group: &catalog::RuleGroup, options: GroupOptions) -> Self {
        let interval_ms = group.interval.map(millis).filter(|ms| *ms > 0).unwrap_or(options.default_interval_ms);
        Self {
            file: file.to_owned(),
            name: group.name.clone(),
            interval_ms,
            limit: group.limit.unwrap_or(0),
            query_offset_ms: group.query_offset.map(millis).unwrap_or(0),
            datasource_kind: group.datasource,
            rules: group.rules.iter().map(|rule| Rule::from_catalog(rule, &group.labels)).collect(),
            options,
            last_evaluation_ms: None,
            evaluation_duration: Duration::ZERO,
            missed_iterations: 0,
            retired: false,
        }
    }

    /// The group without its rules (a reload keeps it to resolve removed rules' alerts).
    pub(crate) fn empty_copy(&self) -> Group {
        Group {
            file: self.file.clone(),
            name: self.name.clone(),
            interval_ms: self.interval_ms,
            limit: self.limit,
            query_offset_ms: self.query_offset_ms,
            datasource_kind: self.datasource_kind,
            rules: Vec::new(),
            options: self.options.clone(),
            last_evaluation_ms: self.last_evaluation_ms,
            evaluation_duration: self.evaluation_duration,
            missed_iterations: self.missed_iterations,
            retired: true,
        }
    }

    /// Takes over the last evaluation's time and duration of the group it replaces.
    pub(crate) fn take_timing_from(&mut self, previous: &Group) {
        self.last_evaluation_ms = previous.last_evaluation_ms;
        self.evaluation_duration = previous.evaluation_duration;
        self.missed_iterations = previous.missed_iterations;
    }

    /// Resolves the alerts of `rule`, removed from this group by a reload;
    /// returns the resolved notifications due.
    pub(crate) fn resolve_removed(&self, rule: &mut Rule, time_ms: i64) -> Vec<Notification> {
        rule.resolve_all(&self.context(), time_ms)
    }

    fn context(&self) -> EvaluationContext {
        EvaluationContext {
            datasource: self.options.datasource.clone(),
            external_labels: self.options.external_labels.clone(),
            external_url: self.options.external_url.clone(),
            query_offset_ms: self.query_offset_ms,
            limit: self.limit,
            resend_delay_ms: self.options.resend_delay_ms,
            interval_ms: self.interval_ms,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn interval_ms(&self) -> i64 {
        self.interval_ms
    }

    /// Whether this engine evaluates the group (metrics, or logs with a log datasource).
    pub fn evaluated_here(&self) -> bool {
        self.options.evaluated_here
    }

    /// Every alert of the alerting rule(s) named `alertname`.
    pub fn alerts_of(&self, alertname: &str) -> Vec<crate::Alert> {
        self.rules
            .iter()
            .filter(|rule| rule.kind == crate::RuleKind::Alerting && rule.name == alertname)
            .flat_map(|rule| rule.active.values().cloned())
            .collect()
    }

    /// Names of the rules in order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|rule| rule.name.as_str())
    }

    /// Evaluates every rule at `time_ms`; returns the notifications due and the rule errors.
    pub fn evaluate(&mut self, time_ms: i64) -> (Vec<Notification>, Vec<RuleError>) {
        if !self.evaluated_here() {
            return (Vec::new(), Vec::new());
        }
        let started = Instant::now();
        let context = self.context();
        let sample_time = time_ms - self.query_offset_ms;
        let mut notifications = Vec::new();
        let mut errors = Vec::new();
        for rule in &mut self.rules {
            let rule_started = Instant::now();
            rule.last_evaluation_ms = Some(time_ms);
            match rule.evaluate(&context, time_ms) {
                Ok(evaluated) => {
                    rule.health = Health::Ok;
                    rule.last_error = None;
                    notifications.extend(evaluated.notifications);
                    let mut written = BTreeSet::new();
                    for (labels, value) in evaluated.samples {
                        if let Err(error) = self.options.sink.append(&labels, sample_time, value) {
                            tracing::debug!(rule = %rule.name, series = %labels, error = %error, "rule sample rejected");
                        }
                        written.insert(labels);
                    }
                    for gone in rule.written.difference(&written) {
                        if let Err(error) = self.options.sink.append(gone, sample_time, STALE_NAN) {
                            tracing::debug!(rule = %rule.name, series = %gone, error = %error, "staleness marker rejected");
                        }
                    }
                    rule.written = written;
                }
                Err(message) => {
                    tracing::warn!(group = %self.name, rule = %rule.name, error = %message, "evaluating rule failed");
                    rule.health = Health::Err;
                    rule.last_error = Some(message.clone());
                    errors.push(RuleError { rule: rule.name.clone(), message });
                }
            }
            rule.evaluation_duration = rule_started.elapsed();
        }
        self.last_evaluation_ms = Some(time_ms);
        self.evaluation_duration = started.elapsed();
        (notifications, errors)
    }

    pub fn status(&self) -> GroupStatus {
        GroupStatus {
            file: self.file.clone(),
            name: self.name.clone(),
            interval_ms: self.interval_ms,
            limit: self.limit,
            query_offset_ms: self.query_offset_ms,
            datasource: self.datasource_kind,
            evaluated_here: self.evaluated_here(),
            last_evaluation_ms: self.last_evaluation_ms,
            evaluation_duration: self.evaluation_duration,
            missed_iterations: self.missed_iterations,
            rules: self.rules.iter().map(Rule::status).collect(),
        }
    }
}
