//! Metric metadata (`# TYPE`, `# HELP`, `# UNIT` of scraped families and the
//! `metadata` of remote-write requests), kept in memory for Prometheus's
//! `/api/v1/metadata`.
//!
//! Key type: [`MetadataStore`], a map from metric family name to the distinct
//! [`MetricMetadata`] seen for it (targets may disagree; Prometheus lists
//! every variant). The store is bounded: at most [`MAX_VARIANTS_PER_FAMILY`]
//! variants per family and `max_families` families; past that, new entries
//! are dropped and counted. Nothing is written to disk: metadata is re-learnt
//! from the next scrape or remote-write request after a restart, as in
//! Prometheus, whose metadata lives in the scrape cache.

use std::collections::BTreeMap;

use parking_lot::RwLock;

use crate::exposition::{FamilyMetadata, MetricType};

/// At most this many distinct metadata variants are kept for one family.
pub const MAX_VARIANTS_PER_FAMILY: usize = 16;
/// The default bound on the number of families.
pub const DEFAULT_MAX_FAMILIES: usize = 200_000;

/// One variant of a family's metadata, as `/api/v1/metadata` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MetricMetadata {
    pub metric_type: MetricType,
    pub help: String,
    pub unit: String,
}

impl From<&FamilyMetadata> for MetricMetadata {
    fn from(family: &FamilyMetadata) -> Self {
        Self {
            metric_type: family.metric_type,
            help: family.help.clone().unwrap_or_default(),
            unit: family.unit.clone().unwrap_or_default(),
        }
    }
}

impl PartialOrd for MetricType {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for MetricType {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// The metadata of every family seen; see the module documentation.
#[derive(Debug)]
pub struct MetadataStore {
    families: RwLock<BTreeMap<String, Vec<MetricMetadata>>>,
    max_families: usize,
    dropped: std::sync::atomic::AtomicU64,
}

impl Default for MetadataStore {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FAMILIES)
    }
}

impl MetadataStore {
    pub fn new(max_families: usize) -> Self {
        Self { families: RwLock::new(BTreeMap::new()), max_families, dropped: Default::default() }
    }

    /// Records `metadata` for `family`; a variant already known changes nothing.
    pub fn record(&self, family: &str, metadata: MetricMetadata) {
        if family.is_empty() {
            return;
        }
        {
            let families = self.families.read();
            if families.get(family).is_some_and(|variants| variants.contains(&metadata)) {
                return;
            }
        }
        let mut families = self.families.write();
        let full = families.len() >= self.max_families;
        match families.get_mut(family) {
            Some(variants) if variants.contains(&metadata) => {}
            Some(variants) if variants.len() < MAX_VARIANTS_PER_FAMILY => {
                variants.push(metadata);
                variants.sort();
            }
            None if !full => {
                families.insert(family.to_owned(), vec![metadata]);
            }
            _ => {
                self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Families by name, each with its variants: `metric` picks one family,
    /// `limit` caps the families and `limit_per_metric` the variants of each
    /// (Prometheus's parameters; `None` is no limit).
    pub fn select(
        &self,
        metric: Option<&str>,
        limit: Option<usize>,
        limit_per_metric: Option<usize>,
    ) -> Vec<(String, Vec<MetricMetadata>)> {
        let families = self.families.read();
        let selected: Box<dyn Iterator<Item = (&String, &Vec<MetricMetadata>)>> = match metric {
            Some(name) => Box::new(families.get_key_value(name).into_iter()),
            None => Box::new(families.iter()),
        };
        selected
            .take(limit.unwrap_or(usize::MAX))
            .map(|(name, variants)| {
                (name.clone(), variants.iter().take(limit_per_metric.unwrap_or(usize::MAX)).cloned().collect())
            })
            .collect()
    }

    /// How many families are known.
    pub fn len(&self) -> usize {
        self.families.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries dropped because a bound was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The metric type of remote write's `MetricMetadata.type` enum.
pub fn remote_write_type(code: i32) -> MetricType {
    match code {
        1 => MetricType::Counter,
        2 => MetricType::Gauge,
        3 => MetricType::Histogram,
        4 => MetricType::GaugeHistogram,
        5 => MetricType::Summary,
        6 => MetricType::Info,
        7 => MetricType::StateSet,
        _ => MetricType::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variant(metric_type: MetricType, help: &str) -> MetricMetadata {
        MetricMetadata { metric_type, help: help.into(), unit: String::new() }
    }

    #[test]
    fn variants_are_distinct_and_limits_apply() {
        let store = MetadataStore::new(2);
        store.record("up", variant(MetricType::Gauge, "target is up"));
        store.record("up", variant(MetricType::Gauge, "target is up"));
        store.record("up", variant(MetricType::Gauge, "another help"));
        store.record("http_requests_total", variant(MetricType::Counter, "requests"));
        store.record("third", variant(MetricType::Counter, "over the family bound"));
        assert_eq!(store.len(), 2);
        assert_eq!(store.dropped(), 1);
        let all = store.select(None, None, None);
        assert_eq!(all[1].0, "up");
        assert_eq!(all[1].1.len(), 2);
        assert_eq!(store.select(None, Some(1), None).len(), 1);
        assert_eq!(store.select(Some("up"), None, Some(1))[0].1.len(), 1);
        assert!(store.select(Some("absent"), None, None).is_empty());
    }
}
