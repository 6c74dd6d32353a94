//! Inhibition (Alertmanager's `inhibit` package): an alert matching a rule's
//! target matchers is muted while a firing alert matches its source matchers
//! and has the same values for the `equal` labels (a label missing on both
//! counts as equal). An alert matching both sides is muted only by a source
//! that does not match the target side itself.

use std::collections::HashMap;

use super::config::InhibitRule;
use super::matcher::LabelSet;

/// For one rule: equal-label values → (a source's fingerprint, the
/// fingerprint of a source not matching the target side).
type SourceIndex = HashMap<Vec<String>, (Option<u64>, Option<u64>)>;

/// The firing source alerts of each rule, indexed by their `equal` values.
#[derive(Debug, Default)]
pub struct Inhibitor {
    sources: Vec<SourceIndex>,
}

fn equal_values(rule: &InhibitRule, labels: &LabelSet) -> Vec<String> {
    rule.equal.iter().map(|name| labels.get(name).cloned().unwrap_or_default()).collect()
}

impl Inhibitor {
    /// Indexes `firing` (the label sets of the alerts firing now) for `rules`.
    pub fn new<'a>(rules: &[InhibitRule], firing: impl Iterator<Item = &'a LabelSet> + Clone) -> Self {
        let sources = rules
            .iter()
            .map(|rule| {
                let mut index = SourceIndex::new();
                for labels in firing.clone().filter(|labels| rule.source_matchers.matches(labels)) {
                    let fingerprint = super::engine::fingerprint(labels);
                    let slot = index.entry(equal_values(rule, labels)).or_default();
                    slot.0.get_or_insert(fingerprint);
                    if !rule.target_matchers.matches(labels) {
                        slot.1.get_or_insert(fingerprint);
                    }
                }
                index
            })
            .collect();
        Self { sources }
    }

    /// Whether an alert with `labels` is inhibited.
    pub fn mutes(&self, rules: &[InhibitRule], labels: &LabelSet) -> bool {
        self.inhibited_by(rules, labels).is_some()
    }

    /// The fingerprint of an alert inhibiting one with `labels`, if any.
    pub fn inhibited_by(&self, rules: &[InhibitRule], labels: &LabelSet) -> Option<u64> {
        rules.iter().zip(&self.sources).find_map(|(rule, index)| {
            if !rule.target_matchers.matches(labels) {
                return None;
            }
            let (any, not_target) = index.get(&equal_values(rule, labels))?;
            if rule.source_matchers.matches(labels) { *not_target } else { *any }
        })
    }
}
