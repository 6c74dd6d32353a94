//! The prober's own counters, as alertbook's self metrics, per probe group
//! (the `kind: probes` contract):
//!
//! - `alertbook_probe_checks_total{probe_group}`: checks run;
//! - `alertbook_probe_failures_total{probe_group,reason}`: failed checks by
//!   [`Reason`];
//! - `alertbook_probe_missed_intervals_total{probe_group}`: ticks skipped
//!   because the previous check of the same probe still ran (a check that
//!   takes longer than its interval, up to its timeout);
//! - `alertbook_probe_append_errors_total`: batches of probe samples the
//!   durable store did not take whole.
//!
//! [`ProbeMetrics`] owns the families; the schedule counts into them and the
//! caller registers them into the process's registry (serving `/metrics` is
//! the server's job). Each probe takes a [`GroupCounters`] handle once, so a
//! check counts without building labels.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::Reason;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    probe_group: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    probe_group: String,
    reason: String,
}

/// The prober's metric families; clones share the same series.
#[derive(Debug, Clone, Default)]
pub struct ProbeMetrics {
    checks: Family<GroupLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    missed_intervals: Family<GroupLabels, Counter>,
    append_errors: Counter,
}

impl ProbeMetrics {
    /// Registers the families into `registry`.
    pub fn register_in(&self, registry: &mut Registry) {
        registry.register("alertbook_probe_checks", "Probe checks run", self.checks.clone());
        registry.register("alertbook_probe_failures", "Probe checks that failed, by reason", self.failures.clone());
        registry.register(
            "alertbook_probe_missed_intervals",
            "Probe ticks skipped because the previous check of the same probe was still running",
            self.missed_intervals.clone(),
        );
        registry.register(
            "alertbook_probe_append_errors",
            "Batches of probe samples the store did not take whole",
            self.append_errors.clone(),
        );
    }

    /// The counters of `probe_group`. Its checks and missed intervals are
    /// exported (at 0) from now on, so a group that never ran shows.
    pub fn group(&self, probe_group: &str) -> GroupCounters {
        let labels = GroupLabels { probe_group: probe_group.to_owned() };
        let failures = Reason::ALL.map(|reason| {
            // Created on first failure only: a reason that never happened is not a series.
            (reason, FailureLabels { probe_group: probe_group.to_owned(), reason: reason.as_str().to_owned() })
        });
        GroupCounters {
            checks: self.checks.get_or_create(&labels).clone(),
            missed_intervals: self.missed_intervals.get_or_create(&labels).clone(),
            failures: self.failures.clone(),
            failure_labels: failures,
        }
    }

    pub(crate) fn append_error(&self) {
        self.append_errors.inc();
    }

    /// Checks run in `probe_group` so far.
    pub fn checks(&self, probe_group: &str) -> u64 {
        self.checks.get_or_create(&GroupLabels { probe_group: probe_group.to_owned() }).get()
    }

    /// Failed checks of `probe_group` for `reason` so far.
    pub fn failures(&self, probe_group: &str, reason: Reason) -> u64 {
        let labels = FailureLabels { probe_group: probe_group.to_owned(), reason: reason.as_str().to_owned() };
        self.failures.get(&labels).map_or(0, |counter| counter.get())
    }

    /// Missed intervals of `probe_group` so far.
    pub fn missed_intervals(&self, probe_group: &str) -> u64 {
        self.missed_intervals.get_or_create(&GroupLabels { probe_group: probe_group.to_owned() }).get()
    }
}

/// One probe group's counters.
#[derive(Debug, Clone)]
pub struct GroupCounters {
    checks: Counter,
    missed_intervals: Counter,
    failures: Family<FailureLabels, Counter>,
    failure_labels: [(Reason, FailureLabels); Reason::ALL.len()],
}

impl GroupCounters {
    pub(crate) fn check(&self, failure: Option<Reason>) {
        self.checks.inc();
        if let Some(reason) = failure
            && let Some((_, labels)) = self.failure_labels.iter().find(|(known, _)| *known == reason)
        {
            self.failures.get_or_create(labels).inc();
        }
    }

    pub(crate) fn missed(&self, intervals: u64) {
        self.missed_intervals.inc_by(intervals);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_group_and_reason_and_exports_them() {
        let metrics = ProbeMetrics::default();
        let studio = metrics.group("studio-service-probes");
        let external = metrics.group("external-dependency-probes");
        studio.check(None);
        studio.check(Some(Reason::Status));
        studio.check(Some(Reason::Status));
        external.check(Some(Reason::Auth));
        studio.missed(3);
        metrics.append_error();
        assert_eq!(metrics.checks("studio-service-probes"), 3);
        assert_eq!(metrics.failures("studio-service-probes", Reason::Status), 2);
        assert_eq!(metrics.failures("studio-service-probes", Reason::Auth), 0);
        assert_eq!(metrics.failures("external-dependency-probes", Reason::Auth), 1);
        assert_eq!(metrics.missed_intervals("studio-service-probes"), 3);

        let mut registry = Registry::default();
        metrics.register_in(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in [
            "alertbook_probe_checks_total{probe_group=\"studio-service-probes\"} 3",
            "alertbook_probe_checks_total{probe_group=\"external-dependency-probes\"} 1",
            "alertbook_probe_failures_total{probe_group=\"studio-service-probes\",reason=\"status\"} 2",
            "alertbook_probe_failures_total{probe_group=\"external-dependency-probes\",reason=\"auth\"} 1",
            "alertbook_probe_missed_intervals_total{probe_group=\"studio-service-probes\"} 3",
            "alertbook_probe_missed_intervals_total{probe_group=\"external-dependency-probes\"} 0",
            "alertbook_probe_append_errors_total 1",
        ] {
            assert!(text.lines().any(|exported| exported == line), "{line} not in:\n{text}");
        }
        assert!(!text.contains("reason=\"timeout\""), "{text}");
    }
}
