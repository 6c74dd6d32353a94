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
use crate::rule::RuleKind;
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

/// The rule groups and their state.
pub struct Manager {
    groups: Vec<Mutex<Group>>,
    statuses: Vec<RwLock<Arc<GroupStatus>>>,
    options: ManagerOptions,
    persist_lock: Mutex<()>,
}

impl Manager {
    /// Builds the groups of `files`, in file order.
    pub fn new(files: &[catalog::RuleFile], options: ManagerOptions) -> Self {
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
        let statuses = groups.iter().map(|group| RwLock::new(Arc::new(group.status()))).collect();
        Self { groups: groups.into_iter().map(Mutex::new).collect(), statuses, options, persist_lock: Mutex::new(()) }
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Runs `function` on group `index` while holding its lock.
    pub fn with_group<T>(&self, index: usize, function: impl FnOnce(&mut Group) -> T) -> Option<T> {
        self.groups.get(index).map(|group| function(&mut group.lock()))
    }

    /// The interval of group `index`, and whether this engine evaluates it.
    pub fn group_schedule(&self, index: usize) -> Option<(String, i64, bool)> {
        self.with_group(index, |group| (group.name().to_owned(), group.interval_ms(), group.evaluated_here()))
    }

    /// Evaluates group `index` at `time_ms` and publishes its status.
    pub fn evaluate_group(&self, index: usize, time_ms: i64) -> (Vec<Notification>, Vec<RuleError>) {
        let Some(group) = self.groups.get(index) else {
            return (Vec::new(), Vec::new());
        };
        let mut group = group.lock();
        if group.evaluated_here() {
            for (labels, value) in &self.options.static_series {
                // A rejected duplicate means another group already wrote it at this time.
                let _ = self.options.sink.append(labels, time_ms, *value);
            }
        }
        let outcome = group.evaluate(time_ms);
        *self.statuses[index].write() = Arc::new(group.status());
        outcome
    }

    /// Adds `missed` to the missed iterations of group `index`.
    pub fn add_missed_iterations(&self, index: usize, missed: u64) {
        if let Some(group) = self.groups.get(index) {
            let mut group = group.lock();
            group.missed_iterations += missed;
            *self.statuses[index].write() = Arc::new(group.status());
        }
    }

    /// The last published status of every group, in file order.
    pub fn statuses(&self) -> Vec<Arc<GroupStatus>> {
        self.statuses.iter().map(|status| status.read().clone()).collect()
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
        for (index, group) in self.groups.iter().enumerate() {
            let mut group = group.lock();
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
            *self.statuses[index].write() = Arc::new(group.status());
        }
        restored
    }
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").field("groups", &self.groups.len()).finish_non_exhaustive()
    }
}
