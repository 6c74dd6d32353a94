//! Exemplars (OpenMetrics `# {trace_id="…"} value timestamp` suffixes and
//! remote-write exemplars) in a bounded in-memory ring, for Prometheus's
//! `/api/v1/query_exemplars`.
//!
//! Key type: [`ExemplarStore`], modelled on Prometheus's circular exemplar
//! storage: one ring of `capacity` slots shared by every series (the oldest
//! exemplar is overwritten when it is full), an exemplar equal to the last
//! one of its series is a duplicate and ignored, one older than the last of
//! its series is out of order and refused. Exemplars are not written to the
//! write-ahead log: they are lost at restart (Prometheus keeps them in its
//! log; alertbook does not yet).

use std::collections::HashMap;

use parking_lot::RwLock;
use tsdb::{Labels, Matcher};

/// Prometheus's default `storage.exemplars.max-exemplars`.
pub const DEFAULT_CAPACITY: usize = 100_000;
/// OpenMetrics: the labels of one exemplar are at most 128 UTF-8 characters.
pub const MAX_LABELS_CHARACTERS: usize = 128;

/// One exemplar.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

/// Why an exemplar was not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExemplarError {
    #[error("duplicate exemplar")]
    Duplicate,
    #[error("out of order exemplar")]
    OutOfOrder,
    #[error("exemplar labels are {0} characters long, more than the 128 allowed")]
    LabelsTooLong(usize),
}

/// The exemplars of one series in a query answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesExemplars {
    pub series: Labels,
    pub exemplars: Vec<Exemplar>,
}

struct Slot {
    series: Labels,
    exemplar: Exemplar,
}

struct Ring {
    slots: Vec<Option<Slot>>,
    next: usize,
    /// The newest exemplar of each series still in the ring, and how many it has there.
    newest: HashMap<Labels, (Exemplar, usize)>,
}

/// The exemplar ring; see the module documentation.
pub struct ExemplarStore {
    ring: RwLock<Ring>,
    capacity: usize,
}

impl std::fmt::Debug for ExemplarStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ExemplarStore").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl Default for ExemplarStore {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl ExemplarStore {
    /// A ring of `capacity` exemplars; 0 stores nothing.
    pub fn new(capacity: usize) -> Self {
        let mut slots = Vec::new();
        slots.resize_with(capacity, || None);
        Self { ring: RwLock::new(Ring { slots, next: 0, newest: HashMap::new() }), capacity }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many exemplars the ring holds.
    pub fn len(&self) -> usize {
        self.ring.read().slots.iter().filter(|slot| slot.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores `exemplar` of `series` (the series' labels, `__name__` included).
    pub fn add(&self, series: &Labels, exemplar: Exemplar) -> Result<(), ExemplarError> {
        let characters: usize =
            exemplar.labels.iter().map(|label| label.name.chars().count() + label.value.chars().count()).sum();
        if characters > MAX_LABELS_CHARACTERS {
            return Err(ExemplarError::LabelsTooLong(characters));
        }
        if self.capacity == 0 {
            return Ok(());
        }
        let mut ring = self.ring.write();
        if let Some((newest, _)) = ring.newest.get(series) {
            if newest.timestamp == exemplar.timestamp
                && newest.labels == exemplar.labels
                && newest.value.to_bits() == exemplar.value.to_bits()
            {
                return Err(ExemplarError::Duplicate);
            }
            if exemplar.timestamp < newest.timestamp {
                return Err(ExemplarError::OutOfOrder);
            }
        }
        let index = ring.next;
        ring.next = (index + 1) % self.capacity;
        if let Some(evicted) = ring.slots[index].take()
            && let Some((_, count)) = ring.newest.get_mut(&evicted.series)
        {
            *count -= 1;
            if *count == 0 {
                ring.newest.remove(&evicted.series);
            }
        }
        let entry = ring.newest.entry(series.clone()).or_insert_with(|| (exemplar.clone(), 0));
        entry.0 = exemplar.clone();
        entry.1 += 1;
        ring.slots[index] = Some(Slot { series: series.clone(), exemplar });
        Ok(())
    }

    /// The exemplars in `[start, end]` (milliseconds, inclusive) of the series
    /// matching any of `selectors` (each a conjunction of matchers), grouped
    /// by series (sorted), each series' exemplars oldest first.
    pub fn select(&self, selectors: &[Vec<Matcher>], start: i64, end: i64) -> Vec<SeriesExemplars> {
        let ring = self.ring.read();
        let mut by_series: HashMap<&Labels, Vec<&Exemplar>> = HashMap::new();
        let oldest_first = ring.slots[ring.next..].iter().chain(ring.slots[..ring.next].iter()).flatten();
        for slot in oldest_first {
            if slot.exemplar.timestamp < start || slot.exemplar.timestamp > end {
                continue;
            }
            let matches = selectors.iter().any(|matchers| {
                matchers.iter().all(|matcher| matcher.matches(slot.series.get(&matcher.name).unwrap_or("")))
            });
            if matches {
                by_series.entry(&slot.series).or_default().push(&slot.exemplar);
            }
        }
        let mut result: Vec<SeriesExemplars> = by_series
            .into_iter()
            .map(|(series, exemplars)| SeriesExemplars {
                series: series.clone(),
                exemplars: exemplars.into_iter().cloned().collect(),
            })
            .collect();
        result.sort_by(|left, right| left.series.cmp(&right.series));
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exemplar(trace: &str, value: f64, timestamp: i64) -> Exemplar {
        Exemplar { labels: Labels::from_pairs([("trace_id", trace)]), value, timestamp }
    }

    #[test]
    fn the_ring_overwrites_the_oldest_and_refuses_duplicates_and_disorder() {
        let store = ExemplarStore::new(3);
        let a = Labels::from_pairs([("__name__", "latency_bucket"), ("le", "0.5")]);
        let b = Labels::from_pairs([("__name__", "latency_bucket"), ("le", "1")]);
        store.add(&a, exemplar("t1", 0.2, 1_000)).expect("stored");
        assert_eq!(store.add(&a, exemplar("t1", 0.2, 1_000)), Err(ExemplarError::Duplicate));
        assert_eq!(store.add(&a, exemplar("t0", 0.1, 500)), Err(ExemplarError::OutOfOrder));
        store.add(&b, exemplar("t2", 0.7, 2_000)).expect("stored");
        store.add(&a, exemplar("t3", 0.3, 3_000)).expect("stored");
        store.add(&b, exemplar("t4", 0.9, 4_000)).expect("stored"); // overwrites t1
        assert_eq!(store.len(), 3);
        let all = store.select(&[vec![Matcher::equal("__name__", "latency_bucket")]], 0, 10_000);
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].series, a);
        assert_eq!(all[0].exemplars, vec![exemplar("t3", 0.3, 3_000)]);
        assert_eq!(all[1].exemplars.len(), 2);
        let ranged = store.select(&[vec![Matcher::equal("le", "1")]], 3_000, 4_000);
        assert_eq!(ranged[0].exemplars, vec![exemplar("t4", 0.9, 4_000)]);
        let long = "x".repeat(130);
        assert!(matches!(store.add(&a, exemplar(&long, 1.0, 5_000)), Err(ExemplarError::LabelsTooLong(_))));
    }
}
