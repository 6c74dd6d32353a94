//! Label sets: sorted `(name, value)` pairs that identify a series.
//!
//! [`Labels`] is immutable and shared: cloning one bumps a reference count, and
//! its hash is computed once when it is built, so hash tables keyed by label
//! sets (the store's series tables, a query's grouping and de-duplication) hash
//! eight bytes instead of every name and value. Equality checks the shared
//! pointer and the hash before comparing pairs. [`LabelsBuilder`] is the mutable
//! counterpart.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use foldhash::fast::FixedState;

/// The label that holds a series' metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: String,
    pub value: String,
}

/// Seed of the label-set hash; fixed so equal sets hash alike in every table.
const LABELS_HASH_SEED: u64 = 0x6c61_6265_6c73_5f31;

/// The hash a [`Labels`] holding these pairs (sorted by unique name, no empty
/// value) has: [`Labels::precomputed_hash`], without building the set.
pub fn hash_sorted_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> u64 {
    let mut hasher = FixedState::with_seed(LABELS_HASH_SEED).build_hasher();
    for (name, value) in pairs {
        hasher.write(name.as_bytes());
        hasher.write_u8(0xff);
        hasher.write(value.as_bytes());
        hasher.write_u8(0xff);
    }
    hasher.finish()
}

/// A label set, sorted by name, names unique, no empty values. Cheap to clone.
#[derive(Clone)]
pub struct Labels {
    pairs: Arc<[Label]>,
    /// Hash of `pairs`, computed once at construction.
    hash: u64,
}

impl Default for Labels {
    fn default() -> Self {
        Self::from_sorted(Vec::new())
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Labels").field(&self.pairs).finish()
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.pairs, &other.pairs) || (self.hash == other.hash && self.pairs == other.pairs)
    }
}

impl Eq for Labels {}

impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Labels {
    fn cmp(&self, other: &Self) -> Ordering {
        if Arc::ptr_eq(&self.pairs, &other.pairs) {
            return Ordering::Equal;
        }
        self.pairs.cmp(&other.pairs)
    }
}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl Labels {
    /// Builds a label set from pairs; sorts them, drops empty values, and keeps
    /// the last value when a name repeats.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (N, V)>) -> Self {
        let mut builder = LabelsBuilder::default();
        for (name, value) in pairs {
            builder.set(name, value);
        }
        builder.build()
    }

    pub fn empty() -> Self {
        Self::default()
    }

    /// Wraps pairs that are already sorted by unique name, hashing them once.
    fn from_sorted(pairs: Vec<Label>) -> Self {
        debug_assert!(pairs.windows(2).all(|pair| pair[0].name < pair[1].name));
        let hash = hash_sorted_pairs(pairs.iter().map(|label| (label.name.as_str(), label.value.as_str())));
        Self { pairs: pairs.into(), hash }
    }

    /// Builds a label set from pairs already sorted by unique name with no
    /// empty value (what [`Labels::eq_pairs`] and `MemStore::find_series` take).
    pub fn from_sorted_pairs(pairs: &[(&str, &str)]) -> Self {
        debug_assert!(pairs.iter().all(|(_, value)| !value.is_empty()));
        Self::from_sorted(
            pairs.iter().map(|&(name, value)| Label { name: name.to_owned(), value: value.to_owned() }).collect(),
        )
    }

    /// Whether the set holds exactly `pairs`, in order.
    pub fn eq_pairs(&self, pairs: &[(&str, &str)]) -> bool {
        self.pairs.len() == pairs.len()
            && self.pairs.iter().zip(pairs).all(|(label, &(name, value))| label.name == name && label.value == value)
    }

    /// The hash computed when the set was built: equal sets have equal hashes.
    pub fn precomputed_hash(&self) -> u64 {
        self.hash
    }

    /// Whether both handles share one allocation (then they are equal).
    pub fn ptr_eq(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.pairs, &other.pairs)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .binary_search_by(|label| label.name.as_str().cmp(name))
            .ok()
            .map(|index| self.pairs[index].value.as_str())
    }

    /// The metric name, if the set has one. `__name__` sorts before every
    /// name that starts with a lowercase letter or a later `_…`, so it is
    /// nearly always first: that is checked before searching.
    pub fn metric_name(&self) -> Option<&str> {
        match self.pairs.first() {
            Some(first) if first.name == METRIC_NAME => Some(first.value.as_str()),
            _ => self.get(METRIC_NAME),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.pairs.iter()
    }

    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// A builder that starts from this set.
    pub fn to_builder(&self) -> LabelsBuilder {
        LabelsBuilder { labels: self.pairs.to_vec() }
    }

    /// The set without `__name__` (a shared handle when it has none).
    pub fn without_metric_name(&self) -> Labels {
        if self.metric_name().is_none() {
            return self.clone();
        }
        Labels::from_sorted(self.pairs.iter().filter(|label| label.name != METRIC_NAME).cloned().collect())
    }
}

impl fmt::Display for Labels {
    /// Prometheus's notation: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = self.metric_name() {
            f.write_str(name)?;
        }
        f.write_str("{")?;
        let mut first = true;
        for label in self.pairs.iter().filter(|label| label.name != METRIC_NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", label.name, label.value)?;
        }
        f.write_str("}")
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.pairs.iter()
    }
}

/// Mutable label set under construction.
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    /// Sets `name` to `value`; an empty value deletes the label.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        let name = name.into();
        let value = value.into();
        match self.labels.binary_search_by(|label| label.name.cmp(&name)) {
            Ok(index) if value.is_empty() => {
                self.labels.remove(index);
            }
            Ok(index) => self.labels[index].value = value,
            Err(_) if value.is_empty() => {}
            Err(index) => self.labels.insert(index, Label { name, value }),
        }
        self
    }

    pub fn delete(&mut self, name: &str) -> &mut Self {
        self.labels.retain(|label| label.name != name);
        self
    }

    /// Keeps only the labels whose names are in `names`.
    pub fn keep(&mut self, names: &[&str]) -> &mut Self {
        self.labels.retain(|label| names.contains(&label.name.as_str()));
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|label| label.name == name).map(|label| label.value.as_str())
    }

    pub fn build(&self) -> Labels {
        Labels::from_sorted(self.labels.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metric_name_is_found_first_or_after_names_that_sort_before_it() {
        let first = Labels::from_pairs([("job", "api"), ("__name__", "up")]);
        assert_eq!(first.metric_name(), Some("up"));
        // Uppercase letters and `_A…` sort before `__name__`.
        let later = Labels::from_pairs([("Zone", "eu"), ("_Shard", "1"), ("__name__", "up"), ("job", "api")]);
        assert_eq!(later.iter().next().map(|label| label.name.as_str()), Some("Zone"));
        assert_eq!(later.metric_name(), Some("up"));
        assert_eq!(Labels::from_pairs([("Zone", "eu"), ("job", "api")]).metric_name(), None);
        assert_eq!(Labels::empty().metric_name(), None);
    }
}
