//! The in-memory store.
//!
//! This first version keeps each series' samples in a plain vector under one
//! lock; it is the reference behaviour the indexed, compressed store must keep.

use std::collections::BTreeMap;

use parking_lot::RwLock;

use crate::{Error, Labels, Matcher, Queryable, Sample, SeriesData};

/// Series and samples held in memory.
#[derive(Debug, Default)]
pub struct MemStore {
    series: RwLock<BTreeMap<Labels, Vec<Sample>>>,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one sample. Timestamps must grow within a series; a repeated
    /// timestamp with the same value is accepted and ignored.
    pub fn append(&self, labels: &Labels, timestamp: i64, value: f64) -> Result<(), Error> {
        let mut series = self.series.write();
        let samples = series.entry(labels.clone()).or_default();
        if let Some(last) = samples.last() {
            if timestamp < last.timestamp {
                return Err(Error::OutOfOrder {
                    labels: labels.to_string(),
                    last: last.timestamp,
                    got: timestamp,
                });
            }
            if timestamp == last.timestamp {
                if last.value.to_bits() == value.to_bits() {
                    return Ok(());
                }
                return Err(Error::DuplicateTimestamp {
                    labels: labels.to_string(),
                    timestamp,
                });
            }
        }
        samples.push(Sample { timestamp, value });
        Ok(())
    }

    /// Number of series held.
    pub fn series_count(&self) -> usize {
        self.series.read().len()
    }

    fn matching<'a>(
        series: &'a BTreeMap<Labels, Vec<Sample>>,
        matchers: &'a [Matcher],
        start: i64,
        end: i64,
    ) -> impl Iterator<Item = (&'a Labels, &'a [Sample])> + 'a {
        series.iter().filter_map(move |(labels, samples)| {
            if !matchers.iter().all(|matcher| matcher.matches_labels(labels)) {
                return None;
            }
            let from = samples.partition_point(|sample| sample.timestamp < start);
            let to = samples.partition_point(|sample| sample.timestamp <= end);
            (from < to).then(|| (labels, &samples[from..to]))
        })
    }
}

impl Queryable for MemStore {
    fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<SeriesData>, Error> {
        let series = self.series.read();
        Ok(Self::matching(&series, matchers, start, end)
            .map(|(labels, samples)| SeriesData {
                labels: labels.clone(),
                samples: samples.to_vec(),
            })
            .collect())
    }

    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, Error> {
        let series = self.series.read();
        let mut names: Vec<String> = Self::matching(&series, matchers, start, end)
            .flat_map(|(labels, _)| labels.iter().map(|label| label.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(&self, name: &str, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, Error> {
        let series = self.series.read();
        let mut values: Vec<String> = Self::matching(&series, matchers, start, end)
            .filter_map(|(labels, _)| labels.get(name).map(str::to_owned))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }

    fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Labels>, Error> {
        let series = self.series.read();
        Ok(Self::matching(&series, matchers, start, end)
            .map(|(labels, _)| labels.clone())
            .collect())
    }
}
