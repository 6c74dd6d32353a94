//! Inhibition (Alertmanager's `inhibit` package): an alert matching a rule's
//! target matchers is muted while a firing alert matches its source matchers
//! and has the same values for the `equal` labels (a label missing on both
//! counts as equal). An alert matching both sides is muted only by a source
//! that does not match the target side itself.

use std::collections::HashMap;

use super::config::InhibitRule;
use super::matcher::LabelSet;

/// The firing source alerts of each rule, indexed by their `equal` values.
#[derive(Debug, Default)]
pub struct Inhibitor {
    /// Per rule: equal-label values → (some source, some source not matching the target side).
    sources: Vec<HashMap<Vec<String>, (bool, bool)>>,
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
                let mut index: HashMap<Vec<String>, (bool, bool)> = HashMap::new();
                for labels in firing.clone().filter(|labels| rule.source_matchers.matches(labels)) {
                    let slot = index.entry(equal_values(rule, labels)).or_default();
                    slot.0 = true;
                    slot.1 |= !rule.target_matchers.matches(labels);
                }
                index
            })
            .collect();
        Self { sources }
    }

    /// Whether an alert with `labels` is inhibited.
    pub fn mutes(&self, rules: &[InhibitRule], labels: &LabelSet) -> bool {
        rules.iter().zip(&self.sources).any(|(rule, index)| {
            if !rule.target_matchers.matches(labels) {
                return false;
            }
            let Some((any, not_target)) = index.get(&equal_values(rule, labels)) else { return false };
            if rule.source_matchers.matches(labels) { *not_target } else { *any }
        })
    }
}
