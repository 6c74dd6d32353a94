//! Every rule group of a set of rule files, with the status the API reads and
//! the state snapshot that survives restarts.
//!
//! [`Manager::evaluate_group`] evaluates one group at a time passed in (the
//! scheduler calls it on each group's interval; `alertbook test rules` and
//! `alertbook replay` call it directly) and publishes the group's
//! [`GroupStatus`], which readers take without waiting for evaluations.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use tsdb::Labels;

use crate::datasource::{Datasource, SeriesSink};
use crate::group::{Group, GroupOptions, GroupStatus, RuleError};
use crate::notify::Notification;
use crate::rule::{Rule, RuleKind};
use crate::snapshot::{AlertSnapshot, GroupSnapshot, RuleSnapshot, Snapshot, SnapshotError};

/// Picks the datasource of a group (by file and group); `None` keeps the default.
pub type DatasourceResolver = Arc<dyn Fn(&str, &catalog::RuleGroup) -> Option<Arc<dyn Datasource>> + Send + Sync>;

/// How the manager builds and runs its groups.
#[derive(Clone)]
pub struct ManagerOptions {
    /// The datasource of every metrics group, unless `resolve_datasource` picks another.
    pub datasource: Arc<dyn Datasource>,
    pub sink: Arc<dyn SeriesSink>,
    pub resolve_datasource: Option<DatasourceResolver>,
    /// The datasource of `datasource: logs` groups; without one they are listed, not evaluated.
    pub logs_datasource: Option<Arc<dyn Datasource>>,
    /// Interval of groups without `interval`: the global evaluation interval.
    pub default_interval_ms: i64,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub resend_delay_ms: i64,
    /// Series written at every group evaluation before the rules run (the
    /// cardinality budgets, for example), so that they never go stale.
    pub static_series: Vec<(Labels, f64)>,
    /// Where the state snapshot is written after each evaluation; `None` keeps state in memory only.
    pub state_file: Option<PathBuf>,
}

impl ManagerOptions {
    /// Options for the embedded store: queries and writes both go to `datasource`.
    pub fn embedded(datasource: crate::EmbeddedDatasource) -> Self {
        let datasource = Arc::new(datasource);
        Self {
            datasource: datasource.clone(),
            sink: datasource,
            resolve_datasource: None,
            logs_datasource: None,
            default_interval_ms: crate::DEFAULT_INTERVAL_MS,
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            resend_delay_ms: crate::DEFAULT_RESEND_DELAY_MS,
            static_series: Vec::new(),
            state_file: None,
        }
    }
}

/// One group and the status it last published.
struct GroupSlot {
    group: Mutex<Group>,
    status: RwLock<Arc<GroupStatus>>,
}

impl GroupSlot {
    fn new(group: Group) -> Arc<Self> {
        let status = RwLock::new(Arc::new(group.status()));
        Arc::new(Self { group: Mutex::new(group), status })
    }
}

/// The groups of one set of rule files; a reload installs the next one.
struct Generation {
    number: u64,
    slots: Vec<Arc<GroupSlot>>,
}

/// A group as the scheduler runs it: it belongs to one generation, and
/// evaluating it after a reload replaced that generation does nothing.
#[derive(Clone)]
pub struct ScheduledGroup {
    slot: Arc<GroupSlot>,
    pub name: String,
    pub interval_ms: i64,
    /// Whether this engine evaluates the group (see [`Group::evaluated_here`]).
    pub evaluated_here: bool,
}

/// What [`Manager::replace`] did.
#[derive(Debug, Default)]
pub struct Replaced {
    /// Resolved notifications of the firing alerts of rules that no longer exist.
    pub notifications: Vec<Notification>,
    /// Alerts (pending, firing or retained resolved) carried over to the new rules.
    pub kept_alerts: usize,
    /// Rules of the new files that took over the state of a rule of the same
    /// group, name and labels.
    pub kept_rules: usize,
    /// Rules that no longer exist; their alerts resolved and their series went stale.
    pub removed_rules: usize,
}

/// The rule groups and their state.
pub struct Manager {
    generation: RwLock<Arc<Generation>>,
    options: ManagerOptions,
    /// The options' `static_series` as the last reload set them.
    static_series: RwLock<Arc<Vec<(Labels, f64)>>>,
    persist_lock: Mutex<()>,
    /// Tells the scheduler that a reload installed new groups.
    reloaded: tokio::sync::watch::Sender<u64>,
}

fn build_groups(files: &[catalog::RuleFile], options: &ManagerOptions) -> Vec<Group> {
    let mut groups = Vec::new();
    for file in files {
        let path = file.path.display().to_string();
        for group in &file.groups {
            let resolved = options.resolve_datasource.as_ref().and_then(|resolve| resolve(&path, group));
            let (datasource, evaluated_here) = match group.datasource {
                catalog::Datasource::Metrics => (resolved.unwrap_or_else(|| options.datasource.clone()), true),
                catalog::Datasource::Logs => match resolved.or_else(|| options.logs_datasource.clone()) {
                    Some(logs) => (logs, true),
                    None => (options.datasource.clone(), false),
                },
                // SQL and Docker groups run when the caller resolves a datasource for them
                // (the configured postgres or docker datasource); otherwise they are listed
                // with an error saying so.
                catalog::Datasource::Sql | catalog::Datasource::Docker => match resolved {
                    Some(source) => (source, true),
                    None => (options.datasource.clone(), false),
                },
                catalog::Datasource::Probe | catalog::Datasource::Traces => (options.datasource.clone(), false),
            };
            let group_options = GroupOptions {
                datasource,
                evaluated_here,
                sink: options.sink.clone(),
                default_interval_ms: options.default_interval_ms,
                external_labels: options.external_labels.clone(),
                external_url: options.external_url.clone(),
                resend_delay_ms: options.resend_delay_ms,
            };
            groups.push(Group::from_catalog(&path, group, group_options));
        }
    }
    groups
}

impl Manager {
    /// Builds the groups of `files`, in file order.
    pub fn new(files: &[catalog::RuleFile], options: ManagerOptions) -> Self {
        let slots = build_groups(files, &options).into_iter().map(GroupSlot::new).collect();
        let static_series = RwLock::new(Arc::new(options.static_series.clone()));
        Self {
            generation: RwLock::new(Arc::new(Generation { number: 0, slots })),
            options,
            static_series,
            persist_lock: Mutex::new(()),
            reloaded: tokio::sync::watch::channel(0).0,
        }
    }

    fn slots(&self) -> Arc<Generation> {
        self.generation.read().clone()
    }

    pub fn group_count(&self) -> usize {
        self.slots().slots.len()
    }

    /// Runs `function` on group `index` while holding its lock.
    pub fn with_group<T>(&self, index: usize, function: impl FnOnce(&mut Group) -> T) -> Option<T> {
        self.slots().slots.get(index).map(|slot| function(&mut slot.group.lock()))
    }

    /// The interval of group `index`, and whether this engine evaluates it.
    pub fn group_schedule(&self, index: usize) -> Option<(String, i64, bool)> {
        self.with_group(index, |group| (group.name().to_owned(), group.interval_ms(), group.evaluated_here()))
    }

    /// The groups in force, for the scheduler.
    pub fn scheduled_groups(&self) -> Vec<ScheduledGroup> {
        self.slots()
            .slots
            .iter()
            .map(|slot| {
                let group = slot.group.lock();
                ScheduledGroup {
                    slot: slot.clone(),
                    name: group.name().to_owned(),
                    interval_ms: group.interval_ms(),
                    evaluated_here: group.evaluated_here(),
                }
            })
            .collect()
    }

    /// A receiver that changes whenever [`Manager::replace`] installs new groups.
    pub fn subscribe_to_reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloaded.subscribe()
    }

    /// Evaluates group `index` at `time_ms` and publishes its status.
    pub fn evaluate_group(&self, index: usize, time_ms: i64) -> (Vec<Notification>, Vec<RuleError>) {
        match self.slots().slots.get(index) {
            Some(slot) => self.evaluate_slot(slot, time_ms),
            None => (Vec::new(), Vec::new()),
        }
    }

    /// Evaluates a scheduled group at `time_ms`; nothing when a reload replaced it.
    pub fn evaluate_scheduled(&self, group: &ScheduledGroup, time_ms: i64) -> (Vec<Notification>, Vec<RuleError>) {
        self.evaluate_slot(&group.slot, time_ms)
    }

    fn evaluate_slot(&self, slot: &GroupSlot, time_ms: i64) -> (Vec<Notification>, Vec<RuleError>) {
        let mut group = slot.group.lock();
        if group.retired {
            return (Vec::new(), Vec::new());
        }
        if group.evaluated_here() {
            for (labels, value) in self.static_series.read().iter() {
                // A rejected duplicate means another group already wrote it at this time.
                let _ = self.options.sink.append(labels, time_ms, *value);
            }
        }
        let outcome = group.evaluate(time_ms);
        *slot.status.write() = Arc::new(group.status());
        outcome
    }

    /// Adds `missed` to the missed iterations of group `index`.
    pub fn add_missed_iterations(&self, index: usize, missed: u64) {
        if let Some(slot) = self.slots().slots.get(index) {
            Self::add_missed(slot, missed);
        }
    }

    /// Adds `missed` to the missed iterations of a scheduled group.
    pub fn add_missed_scheduled(&self, group: &ScheduledGroup, missed: u64) {
        Self::add_missed(&group.slot, missed);
    }

    fn add_missed(slot: &GroupSlot, missed: u64) {
        let mut group = slot.group.lock();
        if group.retired {
            return;
        }
        group.missed_iterations += missed;
        *slot.status.write() = Arc::new(group.status());
    }

    /// Replaces the groups with those of `files` at `time_ms`, as Prometheus's
    /// reload does: a rule of the same group (file and name), name and labels
    /// as before keeps its alerts (pending and firing with their active-since
    /// times), health and written series; a rule that no longer exists has
    /// its firing alerts resolved (the returned notifications say so) and its
    /// series marked stale. `static_series` replaces the series written before
    /// each evaluation. An evaluation still running finishes first; a
    /// scheduler still holding a replaced group evaluates nothing.
    pub fn replace(&self, files: &[catalog::RuleFile], static_series: Vec<(Labels, f64)>, time_ms: i64) -> Replaced {
        let mut groups = build_groups(files, &self.options);
        let mut replaced = Replaced::default();
        let mut stale = Vec::new();
        {
            let mut generation = self.generation.write();
            // Per (file, group): its rules, each taken once, and an empty copy of the group.
            type OldRules = BTreeMap<(String, String), (Vec<Option<Rule>>, Group)>;
            let mut old_rules: OldRules = BTreeMap::new();
            for slot in &generation.slots {
                let mut group = slot.group.lock();
                group.retired = true;
                let rules = std::mem::take(&mut group.rules).into_iter().map(Some).collect();
                let shell = group.empty_copy();
                old_rules.insert((group.file.clone(), group.name.clone()), (rules, shell));
            }
            for group in &mut groups {
                let Some((old, old_group)) = old_rules.get_mut(&(group.file.clone(), group.name.clone())) else {
                    continue;
                };
                group.take_timing_from(old_group);
                for rule in &mut group.rules {
                    let found = old.iter_mut().find(|candidate| {
                        candidate.as_ref().is_some_and(|old| {
                            old.kind == rule.kind && old.name == rule.name && old.labels == rule.labels
                        })
                    });
                    if let Some(previous) = found.and_then(Option::take) {
                        replaced.kept_alerts += previous.active.len();
                        replaced.kept_rules += 1;
                        rule.take_state_from(previous);
                    }
                }
            }
            for (_, (rules, old_group)) in old_rules {
                for mut rule in rules.into_iter().flatten() {
                    replaced.removed_rules += 1;
                    replaced.notifications.extend(old_group.resolve_removed(&mut rule, time_ms));
                    stale.extend(rule.written.iter().cloned());
                }
            }
            let slots = groups.into_iter().map(GroupSlot::new).collect();
            *generation = Arc::new(Generation { number: generation.number + 1, slots });
            *self.static_series.write() = Arc::new(static_series);
            self.reloaded.send_replace(generation.number);
        }
        let sample_time = time_ms;
        for labels in stale {
            if let Err(error) = self.options.sink.append(&labels, sample_time, tsdb::STALE_NAN) {
                tracing::debug!(series = %labels, error = %error, "staleness marker of a removed rule rejected");
            }
        }
        replaced
    }

    /// The last published status of every group, in file order.
    pub fn statuses(&self) -> Vec<Arc<GroupStatus>> {
        self.slots().slots.iter().map(|slot| slot.status.read().clone()).collect()
    }
    /// The state of every alert, from the published statuses.
    pub fn snapshot(&self) -> Snapshot {
        let groups = self
            .statuses()
            .iter()
            .map(|status| GroupSnapshot {
                file: status.file.clone(),
                name: status.name.clone(),
                rules: status
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, rule)| rule.kind == RuleKind::Alerting && !rule.alerts.is_empty())
                    .map(|(index, rule)| RuleSnapshot {
                        index,
                        name: rule.name.clone(),
                        alerts: rule
                            .alerts
                            .iter()
                            .map(|alert| AlertSnapshot::from_alert(alert, rule.keep_firing_for.as_millis() as i64))
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        Snapshot { version: Snapshot::VERSION, groups }
    }

    /// Writes the snapshot to the state file, if one is configured.
    pub fn persist(&self) -> Result<(), SnapshotError> {
        let Some(path) = &self.options.state_file else {
            return Ok(());
        };
        let _guard = self.persist_lock.lock();
        self.snapshot().write_atomically(path)
    }

    /// Restores alert state from `snapshot`: a rule gets back the alerts saved
    /// for the same group (file and name) and the same rule (position and name).
    /// Returns how many alerts were restored.
    pub fn restore(&self, snapshot: &Snapshot) -> usize {
        let mut restored = 0;
        for slot in &self.slots().slots {
            let mut group = slot.group.lock();
            let Some(saved) = snapshot.groups.iter().find(|saved| saved.file == group.file && saved.name == group.name)
            else {
                continue;
            };
            for saved_rule in &saved.rules {
                let Some(rule) = group.rules.get_mut(saved_rule.index) else { continue };
                if rule.name != saved_rule.name || rule.kind != RuleKind::Alerting {
                    continue;
                }
                for alert in &saved_rule.alerts {
                    let alert = alert.to_alert();
                    rule.active.insert(alert.labels.clone(), alert);
                    restored += 1;
                }
            }
            *slot.status.write() = Arc::new(group.status());
        }
        restored
    }
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").field("groups", &self.group_count()).finish_non_exhaustive()
    }
}
