//! Triage: the runbook runs itself when an alert fires.
//!
//! Given a runbook [`catalog::Entry`] and a firing [`AlertInstance`],
//! [`run`] executes the entry's steps in order: each check's query is
//! expanded as a Go template over the alert (`{{ $labels.tenant_id }}`,
//! `{{ $value }}`, as annotations are), sent to its datasource with a
//! timeout, and its result bound under the check's `result:` name; the
//! branch predicates (the catalog's [`catalog::expr`]) then pick the branch,
//! steps of other branches are skipped, and instructions, guard rails and
//! escalations on the taken path are listed. A check that fails or times out
//! picks no branch: the [`Run`] names the missing fact and the candidate
//! branches. Escalations carry their conditions ([`catalog::EscalationCondition`]):
//! the run says which are due, and since when.
//!
//! Key types: [`AlertInstance`] (what fired), [`Sources`] (one
//! [`CheckSource`] per datasource kind; adapters in [`adapters`]),
//! [`Found`] (what a check returned: scalar, vector, table rows, log lines or
//! a JSON value) and [`Run`] (every step's report, the path, the results).
//! [`runner`] keeps runs per alert instance, persisted and bounded, schedules
//! re-runs and puts triage between the rule engine and the outbox; it is the
//! crate's I/O edge, with [`adapters`].
//!
//! The core ([`run`]) reads no clock and opens no socket: the time is passed
//! in and every query goes through the injected [`Sources`]. Checks only
//! read: SQL runs in read-only transactions, Docker is only read, PromQL and
//! LogQL cannot write.

pub mod adapters;
mod bind;
mod engine;
mod model;
pub mod runner;
mod source;
pub mod summary;

pub use bind::bind;
pub use engine::{RunOptions, run};
pub use model::*;
pub use source::{Answer, CheckContext, CheckSource, Found, LogLine, SHARE_WINDOW_MS, Sample, Series, Sources};

/// Alertmanager's fingerprint of a label set: the key of an alert instance's runs.
pub use notify::fingerprint;
