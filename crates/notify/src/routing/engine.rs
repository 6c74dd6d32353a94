//! The routing engine: Alertmanager's alert store, dispatcher, aggregation
//! groups and notification pipeline (inhibit, active and mute time
//! intervals, silences, dedup against the notification log) as one pure
//! state machine. Time is passed in: [`Router::put`] takes alerts at `now`,
//! [`Router::tick`] flushes the groups due at `now` and returns the
//! notifications to send; nothing here sleeps, reads the clock or does I/O.
//!
//! Costs: alerts are held once, behind an [`Arc`] shared by the store and
//! every group holding them; groups wait in a schedule ordered by their next
//! flush, so a tick visits only the groups due and [`Router::next_wakeup`]
//! is a lookup; routing an alert reads the tree's index of equality
//! matchers ([`RouteTree::matching`](super::route::RouteTree::matching))
//! rather than every route.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use super::config::{Integration, RoutingConfig};
use super::inhibit::Inhibitor;
use super::matcher::LabelSet;
use super::nflog::{LogEntry, NotificationLog, log_key, needs_update};
use super::silence::Silences;
use crate::payload::Alert;

/// How often empty groups are dropped (Alertmanager's dispatcher: every 30s).
pub const MAINTENANCE_INTERVAL_MS: i64 = 30_000;

/// An alert as the store holds it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredAlert {
    pub alert: Alert,
    pub fingerprint: u64,
    /// When the store last received it.
    pub updated_at_ms: i64,
    /// Its end was set by `resolve_timeout`, not by the sender.
    pub timeout: bool,
}

impl StoredAlert {
    pub fn is_resolved(&self, now_ms: i64) -> bool {
        self.alert.is_resolved(now_ms)
    }
}

/// Alertmanager's fingerprint of a label set (FNV-1a 64), as a number.
pub fn fingerprint(labels: &LabelSet) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for (name, value) in labels {
        for byte in name.bytes().chain([0xff]).chain(value.bytes()).chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    hash
}

/// Go's `%q` of a string, as label sets print in group keys.
pub fn go_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            '\r' => quoted.push_str("\\r"),
            control if control.is_control() => {
                let code = u32::from(control);
                if code < 0x80 {
                    quoted.push_str(&format!("\\x{code:02x}"));
                } else {
                    quoted.push_str(&format!("\\u{code:04x}"));
                }
            }
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// `{a="1", b="2"}`, Prometheus's `LabelSet.String`.
pub fn label_set_string(labels: &LabelSet) -> String {
    let mut pairs: Vec<String> = labels.iter().map(|(name, value)| format!("{name}={}", go_quote(value))).collect();
    pairs.sort();
    format!("{{{}}}", pairs.join(", "))
}

/// One notification to send: a group's alerts to one receiver integration.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub receiver: String,
    pub integration: Integration,
    pub group_key: String,
    pub group_labels: LabelSet,
    /// The alerts to send, ordered as Alertmanager orders them; firing ones
    /// have no end, resolved ones their end.
    pub alerts: Vec<Alert>,
    pub at_ms: i64,
    /// The notification-log entry recorded for it.
    pub log_entry: LogEntry,
}

#[derive(Debug, Clone)]
struct Group {
    route: usize,
    labels: LabelSet,
    key: String,
    alerts: HashMap<u64, Arc<StoredAlert>>,
    next_flush_ms: i64,
    has_flushed: bool,
}

type GroupId = (usize, u64);

/// An alert's state as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertStatus {
    pub silenced_by: Vec<String>,
    pub inhibited: bool,
    /// Fingerprints of the alerts inhibiting it.
    pub inhibited_by: Vec<u64>,
}

/// The routing state: alerts, groups, silences and the notification log.
#[derive(Debug)]
pub struct Router {
    config: Arc<RoutingConfig>,
    alerts: HashMap<u64, Arc<StoredAlert>>,
    groups: HashMap<GroupId, Group>,
    /// Every group by its next flush.
    schedule: BTreeSet<(i64, GroupId)>,
    silences: Silences,
    nflog: NotificationLog,
    /// Log entries written since the last [`Router::take_log_changes`].
    log_changes: Vec<LogEntry>,
    next_maintenance_ms: i64,
}

/// Alertmanager's `AlertSlice` order: `job`, then `instance`, then the label sets.
fn alert_order(a: &Alert, b: &Alert) -> Ordering {
    for key in ["job", "instance"] {
        match (a.labels.get(key), b.labels.get(key)) {
            (None, None) => continue,
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (Some(x), Some(y)) if x != y => return x.cmp(y),
            _ => {}
        }
    }
    a.labels.len().cmp(&b.labels.len()).then_with(|| a.labels.iter().cmp(b.labels.iter()))
}

/// Alertmanager's `Alert.Merge`: `newer` was received after `older`.
fn merge(older: &StoredAlert, newer: StoredAlert, now_ms: i64) -> StoredAlert {
    let mut merged = newer.clone();
    if older.alert.starts_at_ms < newer.alert.starts_at_ms {
        merged.alert.starts_at_ms = older.alert.starts_at_ms;
    }
    let older_end = older.alert.ends_at_ms.unwrap_or(i64::MAX);
    let newer_end = newer.alert.ends_at_ms.unwrap_or(i64::MAX);
    if newer.is_resolved(now_ms) {
        if older.is_resolved(now_ms) && older_end > newer_end {
            merged.alert.ends_at_ms = older.alert.ends_at_ms;
        }
    } else if older_end > newer_end && !older.timeout {
        merged.alert.ends_at_ms = older.alert.ends_at_ms;
        merged.timeout = false;
    }
    merged
}

impl Router {
    pub fn new(config: Arc<RoutingConfig>, silences: Silences, nflog: NotificationLog, now_ms: i64) -> Self {
        Self {
            config,
            alerts: HashMap::new(),
            groups: HashMap::new(),
            schedule: BTreeSet::new(),
            silences,
            nflog,
            log_changes: Vec::new(),
            next_maintenance_ms: now_ms + MAINTENANCE_INTERVAL_MS,
        }
    }

    pub fn config(&self) -> &Arc<RoutingConfig> {
        &self.config
    }

    /// Takes a new configuration: groups are rebuilt from the alerts held, as
    /// Alertmanager's reload starts a new dispatcher (the log keeps dedup).
    pub fn reload(&mut self, config: Arc<RoutingConfig>, now_ms: i64) {
        self.config = config;
        self.groups.clear();
        self.schedule.clear();
        let alerts: Vec<Arc<StoredAlert>> = self.alerts.values().cloned().collect();
        for alert in alerts {
            self.route(alert, now_ms);
        }
    }

    pub fn silences(&self) -> &Silences {
        &self.silences
    }

    pub fn silences_mut(&mut self) -> &mut Silences {
        &mut self.silences
    }

    pub fn notification_log(&self) -> &NotificationLog {
        &self.nflog
    }

    /// The log entries recorded since the last call, for the caller to persist.
    pub fn take_log_changes(&mut self) -> Vec<LogEntry> {
        std::mem::take(&mut self.log_changes)
    }

    /// Receives alerts at `now_ms` (Alertmanager's `POST /api/v2/alerts`): a
    /// missing start becomes now, a missing end now + `resolve_timeout`; an
    /// alert already held is merged with it.
    pub fn put(&mut self, alerts: impl IntoIterator<Item = Alert>, now_ms: i64) {
        let resolve_timeout_ms = i64::try_from(self.config.resolve_timeout.as_millis()).unwrap_or(i64::MAX);
        for mut alert in alerts {
            if alert.starts_at_ms == 0 {
                alert.starts_at_ms = now_ms;
            }
            let timeout = alert.ends_at_ms.is_none();
            if timeout {
                alert.ends_at_ms = Some(now_ms.saturating_add(resolve_timeout_ms));
            }
            let fingerprint = fingerprint(&alert.labels);
            let mut stored = StoredAlert { alert, fingerprint, updated_at_ms: now_ms, timeout };
            if let Some(old) = self.alerts.get(&fingerprint).map(|old| &**old) {
                let old_end = old.alert.ends_at_ms.unwrap_or(i64::MAX);
                let new_end = stored.alert.ends_at_ms.unwrap_or(i64::MAX);
                // Merge only when the two overlap, as Alertmanager's provider does.
                let overlaps = (new_end > old.alert.starts_at_ms && new_end < old_end)
                    || (stored.alert.starts_at_ms < old_end && stored.alert.starts_at_ms > old.alert.starts_at_ms)
                    || (stored.alert.starts_at_ms <= old_end && !old.is_resolved(now_ms));
                if overlaps {
                    stored = merge(old, stored, now_ms);
                }
            }
            let stored = Arc::new(stored);
            self.alerts.insert(fingerprint, stored.clone());
            self.route(stored, now_ms);
        }
    }

    /// Moves a group in the schedule to flush at `at_ms`.
    fn set_next_flush(schedule: &mut BTreeSet<(i64, GroupId)>, group_id: GroupId, group: &mut Group, at_ms: i64) {
        if group.next_flush_ms == at_ms {
            return;
        }
        schedule.remove(&(group.next_flush_ms, group_id));
        group.next_flush_ms = at_ms;
        schedule.insert((at_ms, group_id));
    }

    fn route(&mut self, alert: Arc<StoredAlert>, now_ms: i64) {
        let config = Arc::clone(&self.config);
        for route_index in config.route.matching(&alert.alert.labels) {
            let route = config.route.get(route_index);
            let group_labels = route.group_labels(&alert.alert.labels);
            let group_fingerprint = fingerprint(&group_labels);
            let group_wait_ms = i64::try_from(route.group_wait.as_millis()).unwrap_or(i64::MAX);
            let group_id = (route_index, group_fingerprint);
            let group = self.groups.entry(group_id).or_insert_with(|| {
                let next_flush_ms = now_ms.saturating_add(group_wait_ms);
                self.schedule.insert((next_flush_ms, group_id));
                Group {
                    route: route_index,
                    key: format!("{}:{}", route.key, label_set_string(&group_labels)),
                    labels: group_labels,
                    alerts: HashMap::new(),
                    next_flush_ms,
                    has_flushed: false,
                }
            });
            // An alert older than group_wait flushes a new group at once.
            if !group.has_flushed && alert.alert.starts_at_ms.saturating_add(group_wait_ms) < now_ms {
                Self::set_next_flush(&mut self.schedule, group_id, group, now_ms);
            }
            group.alerts.insert(alert.fingerprint, alert.clone());
        }
    }

    /// Takes back alerts held before a restart, as they were (the log decides
    /// what the first flushes send).
    pub fn restore(&mut self, alerts: impl IntoIterator<Item = StoredAlert>, now_ms: i64) {
        for alert in alerts {
            if self.alerts.contains_key(&alert.fingerprint) || alert.fingerprint != fingerprint(&alert.alert.labels) {
                continue;
            }
            let alert = Arc::new(alert);
            self.alerts.insert(alert.fingerprint, alert.clone());
            self.route(alert, now_ms);
        }
    }

    /// The alerts held, resolved ones included until they are collected.
    pub fn alerts(&self) -> impl Iterator<Item = &StoredAlert> {
        self.alerts.values().map(|alert| &**alert)
    }

    /// The alerts held, as shared handles (a snapshot without copying them).
    pub fn shared_alerts(&self) -> Vec<Arc<StoredAlert>> {
        self.alerts.values().cloned().collect()
    }

    /// When [`Router::tick`] has work next.
    pub fn next_wakeup(&self) -> i64 {
        self.schedule.first().map_or(i64::MAX, |(at_ms, _)| *at_ms).min(self.next_maintenance_ms)
    }

    fn inhibitor(&self, now_ms: i64) -> Inhibitor {
        let firing = self.alerts.values().filter(|alert| !alert.is_resolved(now_ms)).map(|alert| &alert.alert.labels);
        Inhibitor::new(&self.config.inhibit_rules, firing)
    }

    /// Whether an alert is silenced or inhibited now (for the API).
    pub fn status(&self, labels: &LabelSet, now_ms: i64) -> AlertStatus {
        self.statuses(std::iter::once(labels), now_ms).pop().unwrap_or_default()
    }

    /// [`Router::status`] of many alerts, the inhibition index built once.
    pub fn statuses<'a>(&self, labels: impl Iterator<Item = &'a LabelSet>, now_ms: i64) -> Vec<AlertStatus> {
        let inhibitor = self.inhibitor(now_ms);
        labels
            .map(|labels| {
                let inhibited_by: Vec<u64> =
                    inhibitor.inhibited_by(&self.config.inhibit_rules, labels).into_iter().collect();
                AlertStatus {
                    silenced_by: self.silences.muting(labels, now_ms),
                    inhibited: !inhibited_by.is_empty(),
                    inhibited_by,
                }
            })
            .collect()
    }

    /// The receivers an alert with these labels is routed to, in route order, each once.
    pub fn receivers_of(&self, labels: &LabelSet) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for index in self.config.route.matching(labels) {
            let receiver = &self.config.route.get(index).receiver;
            if !names.contains(receiver) {
                names.push(receiver.clone());
            }
        }
        names
    }

    /// The groups with their alerts, for `/api/v2/alerts/groups`: (receiver, group labels, alerts).
    pub fn groups(&self) -> Vec<(String, LabelSet, Vec<&StoredAlert>)> {
        let mut groups: Vec<(String, LabelSet, Vec<&StoredAlert>)> = self
            .groups
            .values()
            .filter(|group| !group.alerts.is_empty())
            .map(|group| {
                let mut alerts: Vec<&StoredAlert> = group.alerts.values().map(|alert| &**alert).collect();
                alerts.sort_by(|a, b| alert_order(&a.alert, &b.alert));
                (self.config.route.get(group.route).receiver.clone(), group.labels.clone(), alerts)
            })
            .collect();
        groups.sort_by(|a, b| a.1.iter().cmp(b.1.iter()).then_with(|| a.0.cmp(&b.0)));
        groups
    }

    /// Flushes every group due at `now_ms` through the pipeline; returns the
    /// notifications to send. The log records each as notified at once: the
    /// caller persists them (the outbox) before anything else happens.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Notification> {
        if now_ms >= self.next_maintenance_ms {
            self.maintenance(now_ms);
        }
        let mut due: Vec<GroupId> =
            self.schedule.range(..=(now_ms, (usize::MAX, u64::MAX))).map(|(_, group_id)| *group_id).collect();
        if due.is_empty() {
            return Vec::new();
        }
        due.sort_by(|a, b| self.groups[a].key.cmp(&self.groups[b].key));
        let inhibitor = self.inhibitor(now_ms);
        let mut notifications = Vec::new();
        for key in due {
            self.flush(key, &inhibitor, now_ms, &mut notifications);
        }
        notifications
    }

    fn flush(&mut self, key: GroupId, inhibitor: &Inhibitor, now_ms: i64, out: &mut Vec<Notification>) {
        let config = Arc::clone(&self.config);
        let Some(group) = self.groups.get_mut(&key) else { return };
        let route = config.route.get(group.route);
        let next_flush_ms = now_ms.saturating_add(i64::try_from(route.group_interval.as_millis()).unwrap_or(i64::MAX));
        Self::set_next_flush(&mut self.schedule, key, group, next_flush_ms);
        group.has_flushed = true;
        if group.alerts.is_empty() {
            return;
        }
        let snapshot: Vec<Arc<StoredAlert>> = group.alerts.values().cloned().collect();
        let group_key = group.key.clone();
        let group_labels = group.labels.clone();

        // The pipeline: inhibition, the route's time intervals, silences.
        let mut alerts: Vec<&StoredAlert> = snapshot
            .iter()
            .map(|alert| &**alert)
            .filter(|alert| !inhibitor.mutes(&config.inhibit_rules, &alert.alert.labels))
            .collect();
        let active =
            route.active_time_intervals.is_empty() || config.in_time_intervals(&route.active_time_intervals, now_ms);
        let muted = config.in_time_intervals(&route.mute_time_intervals, now_ms);
        if !active || muted {
            alerts.clear();
        }
        alerts.retain(|alert| self.silences.muting(&alert.alert.labels, now_ms).is_empty());

        if !alerts.is_empty()
            && let Some(receiver) = config.receiver(&route.receiver)
        {
            let mut sendable: Vec<Alert> = alerts
                .iter()
                .map(|stored| {
                    let mut alert = stored.alert.clone();
                    if !stored.is_resolved(now_ms) {
                        alert.ends_at_ms = None;
                    }
                    alert
                })
                .collect();
            sendable.sort_by(alert_order);
            let firing: BTreeSet<u64> =
                alerts.iter().filter(|alert| !alert.is_resolved(now_ms)).map(|alert| alert.fingerprint).collect();
            let resolved: BTreeSet<u64> =
                alerts.iter().filter(|alert| alert.is_resolved(now_ms)).map(|alert| alert.fingerprint).collect();
            let repeat_ms = i64::try_from(route.repeat_interval.as_millis()).unwrap_or(i64::MAX);
            for integration in &receiver.integrations {
                let log_key = log_key(&receiver.name, integration.name, integration.index, &group_key);
                let entry = self.nflog.get(&log_key);
                if !needs_update(entry, &firing, &resolved, integration.send_resolved, repeat_ms, now_ms) {
                    continue;
                }
                // Without send_resolved, resolved alerts are left out; with
                // nothing firing the log is updated and nothing sent.
                let sent: Vec<Alert> = if integration.send_resolved {
                    sendable.clone()
                } else {
                    sendable.iter().filter(|alert| !alert.is_resolved(now_ms)).cloned().collect()
                };
                let log_entry = LogEntry {
                    group_key: group_key.clone(),
                    receiver: receiver.name.clone(),
                    integration: integration.name.to_owned(),
                    index: integration.index,
                    timestamp_ms: now_ms,
                    firing: firing.clone(),
                    resolved: resolved.clone(),
                    expires_at_ms: now_ms.saturating_add(repeat_ms.saturating_mul(2)),
                };
                self.nflog.insert(log_entry.clone());
                self.log_changes.push(log_entry.clone());
                if sent.is_empty() {
                    continue;
                }
                out.push(Notification {
                    receiver: receiver.name.clone(),
                    integration: integration.clone(),
                    group_key: group_key.clone(),
                    group_labels: group_labels.clone(),
                    alerts: sent,
                    at_ms: now_ms,
                    log_entry,
                });
            }
        }

        // Resolved alerts are dropped from the group once handled, unless
        // they were received again meanwhile.
        if let Some(group) = self.groups.get_mut(&key) {
            for alert in snapshot.iter().filter(|alert| alert.is_resolved(now_ms)) {
                if group.alerts.get(&alert.fingerprint).is_some_and(|held| held.updated_at_ms == alert.updated_at_ms) {
                    group.alerts.remove(&alert.fingerprint);
                }
            }
        }
    }

    /// Drops empty groups, resolved alerts no group holds, expired silences
    /// and log entries.
    fn maintenance(&mut self, now_ms: i64) {
        self.next_maintenance_ms = now_ms + MAINTENANCE_INTERVAL_MS;
        let schedule = &mut self.schedule;
        self.groups.retain(|group_id, group| {
            let keep = !group.alerts.is_empty();
            if !keep {
                schedule.remove(&(group.next_flush_ms, *group_id));
            }
            keep
        });
        let held: HashSet<u64> = self.groups.values().flat_map(|group| group.alerts.keys().copied()).collect();
        self.alerts.retain(|fingerprint, alert| !alert.is_resolved(now_ms) || held.contains(fingerprint));
        self.silences.collect_garbage(now_ms);
        self.nflog.collect_garbage(now_ms);
    }
}
