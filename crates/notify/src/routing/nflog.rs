//! The notification log (Alertmanager's `nflog`): for each group key and
//! receiver integration, when it was last notified and which alerts were
//! firing and resolved then. The dedup stage reads it to decide whether a
//! flush needs a notification; entries expire after twice the repeat
//! interval.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// One entry: the last notification of a group to one integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub group_key: String,
    pub receiver: String,
    pub integration: String,
    pub index: usize,
    pub timestamp_ms: i64,
    pub firing: BTreeSet<u64>,
    pub resolved: BTreeSet<u64>,
    pub expires_at_ms: i64,
}

impl LogEntry {
    /// The key the log stores the entry under.
    pub fn key(&self) -> String {
        log_key(&self.receiver, &self.integration, self.index, &self.group_key)
    }
}

/// The key of a (receiver integration, group) pair.
pub fn log_key(receiver: &str, integration: &str, index: usize, group_key: &str) -> String {
    format!("{receiver}/{integration}/{index}:{group_key}")
}

/// The log, in memory; [`crate::routing::state`] persists it.
#[derive(Debug, Clone, Default)]
pub struct NotificationLog {
    entries: HashMap<String, LogEntry>,
}

impl NotificationLog {
    pub fn from_entries(entries: impl IntoIterator<Item = LogEntry>) -> Self {
        Self { entries: entries.into_iter().map(|entry| (entry.key(), entry)).collect() }
    }

    pub fn get(&self, key: &str) -> Option<&LogEntry> {
        self.entries.get(key)
    }

    pub fn insert(&mut self, entry: LogEntry) {
        self.entries.insert(entry.key(), entry);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &LogEntry> {
        self.entries.values()
    }

    /// Drops expired entries; returns their keys.
    pub fn collect_garbage(&mut self, now_ms: i64) -> Vec<String> {
        let gone: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, entry)| entry.expires_at_ms <= now_ms)
            .map(|(key, _)| key.clone())
            .collect();
        for key in &gone {
            self.entries.remove(key);
        }
        gone
    }
}

/// Alertmanager's `DedupStage.needsUpdate`: whether a flush with these firing
/// and resolved alerts must notify, given the last entry.
pub fn needs_update(
    entry: Option<&LogEntry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    repeat_interval_ms: i64,
    now_ms: i64,
) -> bool {
    let Some(entry) = entry else {
        // Never notified: only when something fires.
        return !firing.is_empty();
    };
    if !firing.is_subset(&entry.firing) {
        return true;
    }
    if firing.is_empty() {
        // Everything resolved: notify (even without send_resolved, to clear
        // the log) only if the receiver was told something was firing.
        return !entry.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&entry.resolved) {
        return true;
    }
    entry.timestamp_ms < now_ms - repeat_interval_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[u64]) -> BTreeSet<u64> {
        values.iter().copied().collect()
    }

    fn entry(firing: &[u64], resolved: &[u64], at: i64) -> LogEntry {
        LogEntry {
            group_key: "{}:{}".into(),
            receiver: "ops".into(),
            integration: "webhook".into(),
            index: 0,
            timestamp_ms: at,
            firing: set(firing),
            resolved: set(resolved),
            expires_at_ms: i64::MAX,
        }
    }

    #[test]
    fn follows_alertmanagers_dedup_rules() {
        assert!(needs_update(None, &set(&[1]), &set(&[]), true, 1000, 0));
        assert!(!needs_update(None, &set(&[]), &set(&[1]), true, 1000, 0), "only resolved, never notified");
        let sent = entry(&[1, 2], &[], 0);
        assert!(!needs_update(Some(&sent), &set(&[1]), &set(&[2]), false, 1000, 500), "resolved, not sent");
        assert!(needs_update(Some(&sent), &set(&[1]), &set(&[2]), true, 1000, 500), "resolved, sent");
        assert!(needs_update(Some(&sent), &set(&[1, 3]), &set(&[]), false, 1000, 500), "a new alert");
        assert!(!needs_update(Some(&sent), &set(&[1, 2]), &set(&[]), true, 1000, 1000), "repeat not due");
        assert!(needs_update(Some(&sent), &set(&[1, 2]), &set(&[]), true, 1000, 1001), "repeat due");
        assert!(needs_update(Some(&sent), &set(&[]), &set(&[1, 2]), false, 1000, 10), "all resolved clears");
        let cleared = entry(&[], &[1, 2], 0);
        assert!(!needs_update(Some(&cleared), &set(&[]), &set(&[1, 2]), true, 1000, 5000));
    }
}
