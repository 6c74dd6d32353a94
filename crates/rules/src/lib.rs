//! The rule engine: Prometheus recording and alerting rules, evaluated group
//! by group with Prometheus's semantics, and the alert lifecycle inactive →
//! pending → firing → resolved.
//!
//! Key types: [`Group`] (one rule group and its state; [`Group::evaluate`] runs
//! it once at a time passed in), [`Alert`] and [`AlertState`], the
//! [`Datasource`] a group queries (the embedded store through
//! [`EmbeddedDatasource`] now, a remote Prometheus-compatible API later) and the
//! [`SeriesSink`] recording rules and `ALERTS` series are written to,
//! [`Manager`] (every group of a set of rule files, their published status, the
//! state [`Snapshot`]), [`scheduler::run`] (each group on its interval, with an
//! injectable [`Clock`]) and the [`Notification`]s handed to a [`Notifier`].
//!
//! The evaluation core does no I/O and never reads the wall clock: the time of
//! each evaluation is passed in, and the only clock it reads is a monotonic one
//! to measure how long evaluations take. Files (the state snapshot) are touched
//! only by [`Snapshot::write_atomically`] and [`Snapshot::read`], and time flows
//! only from the [`Clock`] given to the scheduler. Groups of `logs`, `sql` and
//! `docker` datasources run only when the caller supplies that datasource;
//! otherwise they are listed, with an error naming the missing datasource.

mod alert;
pub mod budgets;
mod datasource;
mod group;
mod manager;
mod notify;
pub mod remote;
mod rule;
pub mod scheduler;
mod snapshot;

pub use alert::{Alert, AlertState};
pub use datasource::{Datasource, DatasourceError, EmbeddedDatasource, LogsDatasource, SeriesSink};
pub use group::{Group, GroupOptions, GroupStatus, RuleError};
pub use manager::{DatasourceResolver, Manager, ManagerOptions, Replaced, ScheduledGroup};
pub use notify::{NoNotifier, Notification, Notifier, generator_url};
pub use remote::{PrometheusDatasource, PrometheusOptions};
pub use rule::{Health, RuleKind, RuleStatus};
pub use scheduler::{Clock, ScaledClock, SystemClock, TokioClock};
pub use snapshot::{AlertSnapshot, GroupSnapshot, Snapshot, SnapshotError};

/// How long a resolved alert is kept (and re-sent) after it resolved: 15 minutes, as Prometheus.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;
/// Default delay between two sends of a firing alert: 1 minute, as Prometheus's `--rules.alert.resend-delay`.
pub const DEFAULT_RESEND_DELAY_MS: i64 = 60 * 1000;
/// Default evaluation interval of a group without `interval`: 1 minute.
pub const DEFAULT_INTERVAL_MS: i64 = 60 * 1000;
