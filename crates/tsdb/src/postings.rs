//! The inverted index from labels to series: for each label name and value, the
//! sorted list ("postings") of the ids of the series carrying that pair.
//!
//! Key types: [`PostingsIndex`], which resolves a conjunction of [`Matcher`]s to a
//! sorted list of [`SeriesId`]s, and the sorted-list operations it is built on
//! (intersection, disjoint union, difference).
//!
//! A missing label matches as the empty string, so a matcher that accepts `""` is
//! answered by subtraction: all series minus those whose value it rejects. A
//! matcher that rejects `""` is answered by the union of the postings of the values
//! it accepts. Equality and literal alternations (`a|b|c`) look values up directly;
//! other regexes scan the values of their label, or, when the other matchers have
//! already narrowed the candidates below the number of values, test the candidates'
//! own labels. This module stores ids only; it knows nothing of samples or locks.

use std::borrow::Borrow;
use std::collections::HashMap;

use crate::matcher::ValuePredicate;
use crate::{Labels, Matcher};

/// Dense identifier of a series inside one store. Ids of removed series are reused.
pub type SeriesId = u32;

/// Label name -> label value -> sorted series ids, plus the sorted list of all ids.
#[derive(Debug, Default)]
pub struct PostingsIndex {
    by_label: HashMap<String, HashMap<String, Vec<SeriesId>>>,
    all: Vec<SeriesId>,
}

/// What one matcher contributes to a selection.
enum Selection {
    /// Only these series (sorted) can match.
    Include(Vec<SeriesId>),
    /// These series (sorted) cannot match; every other one can.
    Exclude(Vec<SeriesId>),
}

impl PostingsIndex {
    /// Adds series `id` under each of its labels.
    pub fn add(&mut self, id: SeriesId, labels: &Labels) {
        insert_sorted(&mut self.all, id);
        for label in labels {
            let values = match self.by_label.get_mut(label.name.as_str()) {
                Some(values) => values,
                None => self.by_label.entry(label.name.clone()).or_default(),
            };
            let list = match values.get_mut(label.value.as_str()) {
                Some(list) => list,
                None => values.entry(label.value.clone()).or_default(),
            };
            insert_sorted(list, id);
        }
    }

    /// Removes the given series. `removed` lists each series' id and labels.
    pub fn remove<'a>(&mut self, removed: impl IntoIterator<Item = (SeriesId, &'a Labels)>) {
        let mut ids = Vec::new();
        let mut touched: Vec<(&str, &str)> = Vec::new();
        for (id, labels) in removed {
            ids.push(id);
            touched.extend(labels.iter().map(|label| (label.name.as_str(), label.value.as_str())));
        }
        if ids.is_empty() {
            return;
        }
        ids.sort_unstable();
        ids.dedup();
        touched.sort_unstable();
        touched.dedup();
        self.all = difference(&self.all, &ids);
        for (name, value) in touched {
            let Some(values) = self.by_label.get_mut(name) else {
                continue;
            };
            if let Some(list) = values.get_mut(value) {
                *list = difference(list, &ids);
                if list.is_empty() {
                    values.remove(value);
                }
            }
            if values.is_empty() {
                self.by_label.remove(name);
            }
        }
    }

    /// Number of series indexed.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Every indexed id, sorted.
    #[cfg(test)]
    pub fn all(&self) -> &[SeriesId] {
        &self.all
    }

    /// Sorted ids of the series with label `name` set to `value`.
    #[cfg(test)]
    pub fn get(&self, name: &str, value: &str) -> &[SeriesId] {
        self.by_label.get(name).and_then(|values| values.get(value)).map_or(&[], Vec::as_slice)
    }

    /// An estimate of the heap bytes the index holds.
    pub fn memory_bytes(&self) -> usize {
        const MAP_ENTRY_OVERHEAD: usize = 8;
        let mut bytes = self.all.capacity() * size_of::<SeriesId>();
        bytes += self.by_label.capacity() * (size_of::<(String, HashMap<String, Vec<SeriesId>>)>() + 1);
        for (name, values) in &self.by_label {
            bytes += name.capacity();
            bytes += values.capacity() * (size_of::<(String, Vec<SeriesId>)>() + 1);
            for (value, list) in values {
                bytes += value.capacity() + list.capacity() * size_of::<SeriesId>() + MAP_ENTRY_OVERHEAD;
            }
        }
        bytes
    }

    /// Sorted ids of the series satisfying every matcher. `labels_of` gives the
    /// labels of an indexed id (borrowed, or decoded on demand); it is used to
    /// test few candidates directly instead of scanning many label values.
    pub fn select<L: Borrow<Labels>>(
        &self,
        matchers: &[Matcher],
        labels_of: impl Fn(SeriesId) -> Option<L>,
    ) -> Vec<SeriesId> {
        // Cheap matchers first: those answered by direct look-ups narrow the
        // candidates before any value scan.
        let mut ordered: Vec<(&Matcher, ValuePredicate<'_>)> =
            matchers.iter().map(|matcher| (matcher, matcher.value_predicate())).collect();
        ordered.sort_by_key(|(matcher, predicate)| !self.is_lookup(matcher, predicate));

        let mut candidates: Option<Vec<SeriesId>> = None;
        let mut exclusions: Vec<Vec<SeriesId>> = Vec::new();
        for (matcher, predicate) in &ordered {
            if let Some(current) = candidates.as_mut()
                && !self.is_lookup(matcher, predicate)
                && current.len() < self.value_count(&matcher.name)
            {
                current.retain(|&id| labels_of(id).is_some_and(|labels| matcher.matches_labels(labels.borrow())));
                continue;
            }
            match self.resolve(matcher, predicate) {
                Selection::Include(ids) => {
                    let narrowed = match candidates.take() {
                        Some(current) => intersect(&current, &ids),
                        None => ids,
                    };
                    if narrowed.is_empty() {
                        return Vec::new();
                    }
                    candidates = Some(narrowed);
                }
                Selection::Exclude(ids) => {
                    if !ids.is_empty() {
                        exclusions.push(ids);
                    }
                }
            }
        }
        let mut result = candidates.unwrap_or_else(|| self.all.clone());
        for excluded in &exclusions {
            if result.is_empty() {
                break;
            }
            result = difference(&result, excluded);
        }
        result
    }

    fn value_count(&self, name: &str) -> usize {
        self.by_label.get(name).map_or(0, HashMap::len)
    }

    /// Whether resolving the matcher needs only direct look-ups (no value scan).
    fn is_lookup(&self, matcher: &Matcher, predicate: &ValuePredicate<'_>) -> bool {
        match predicate {
            ValuePredicate::OneOf(_) => !matcher.matches_empty(),
            ValuePredicate::NoneOf(_) => matcher.matches_empty(),
            ValuePredicate::Regex => false,
        }
    }

    fn resolve(&self, matcher: &Matcher, predicate: &ValuePredicate<'_>) -> Selection {
        let Some(values) = self.by_label.get(matcher.name.as_str()) else {
            // Every series lacks the label, so each one sees the empty string.
            return if matcher.matches_empty() {
                Selection::Exclude(Vec::new())
            } else {
                Selection::Include(Vec::new())
            };
        };
        // With `accepted` the matcher's verdict on a stored value, collect the
        // postings of the values whose verdict equals `wanted`.
        let wanted = !matcher.matches_empty();
        let lists: Vec<&[SeriesId]> = match (predicate, wanted) {
            (ValuePredicate::OneOf(literals), true) | (ValuePredicate::NoneOf(literals), false) => {
                let mut literals: Vec<&str> = literals.to_vec();
                literals.sort_unstable();
                literals.dedup();
                literals.iter().filter_map(|literal| values.get(*literal).map(Vec::as_slice)).collect()
            }
            (ValuePredicate::OneOf(literals), false) | (ValuePredicate::NoneOf(literals), true) => values
                .iter()
                .filter(|(value, _)| !literals.contains(&value.as_str()))
                .map(|(_, list)| list.as_slice())
                .collect(),
            (ValuePredicate::Regex, _) => values
                .iter()
                .filter(|(value, _)| matcher.matches(value) == wanted)
                .map(|(_, list)| list.as_slice())
                .collect(),
        };
        let ids = union_disjoint(&lists);
        if wanted { Selection::Include(ids) } else { Selection::Exclude(ids) }
    }
}

/// Inserts `id` into the sorted list, keeping it sorted and free of duplicates.
pub fn insert_sorted(list: &mut Vec<SeriesId>, id: SeriesId) {
    match list.last() {
        None => list.push(id),
        Some(&last) if last < id => list.push(id),
        Some(_) => {
            if let Err(position) = list.binary_search(&id) {
                list.insert(position, id);
            }
        }
    }
}

/// Intersection of two sorted lists.
pub fn intersect(left: &[SeriesId], right: &[SeriesId]) -> Vec<SeriesId> {
    let (small, large) = if left.len() <= right.len() { (left, right) } else { (right, left) };
    let mut result = Vec::with_capacity(small.len());
    // Much shorter list: binary-search into the longer one; otherwise merge.
    if small.len() * 16 < large.len() {
        let mut rest = large;
        for &id in small {
            match rest.binary_search(&id) {
                Ok(position) => {
                    result.push(id);
                    rest = &rest[position + 1..];
                }
                Err(position) => rest = &rest[position..],
            }
        }
        return result;
    }
    let (mut left_index, mut right_index) = (0, 0);
    while left_index < small.len() && right_index < large.len() {
        let (left_id, right_id) = (small[left_index], large[right_index]);
        if left_id == right_id {
            result.push(left_id);
            left_index += 1;
            right_index += 1;
        } else if left_id < right_id {
            left_index += 1;
        } else {
            right_index += 1;
        }
    }
    result
}

/// Ids of sorted `left` that are not in sorted `right`.
pub fn difference(left: &[SeriesId], right: &[SeriesId]) -> Vec<SeriesId> {
    let mut result = Vec::with_capacity(left.len());
    let mut right_index = 0;
    for &id in left {
        while right_index < right.len() && right[right_index] < id {
            right_index += 1;
        }
        if right.get(right_index) != Some(&id) {
            result.push(id);
        }
    }
    result
}

/// Union of sorted lists that share no id (the postings of one label's values).
pub fn union_disjoint(lists: &[&[SeriesId]]) -> Vec<SeriesId> {
    match lists {
        [] => Vec::new(),
        [only] => only.to_vec(),
        _ => {
            let mut result: Vec<SeriesId> = lists.iter().flat_map(|list| list.iter().copied()).collect();
            result.sort_unstable();
            debug_assert!(result.windows(2).all(|pair| pair[0] < pair[1]), "postings overlap");
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::MatchOp;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        Labels::from_pairs(pairs.iter().copied())
    }

    fn index_of(series: &[Labels]) -> PostingsIndex {
        let mut index = PostingsIndex::default();
        for (id, labels) in series.iter().enumerate() {
            index.add(id as SeriesId, labels);
        }
        index
    }

    fn select(index: &PostingsIndex, series: &[Labels], matchers: &[Matcher]) -> Vec<SeriesId> {
        index.select(matchers, |id| series.get(id as usize))
    }

    fn matcher(op: MatchOp, name: &str, value: &str) -> Matcher {
        Matcher::new(op, name, value).expect("valid matcher")
    }

    fn sample_series() -> Vec<Labels> {
        vec![
            labels(&[("__name__", "up"), ("job", "api"), ("env", "prod")]),
            labels(&[("__name__", "up"), ("job", "db")]),
            labels(&[("__name__", "up"), ("job", "web"), ("env", "dev")]),
            labels(&[("__name__", "errors"), ("job", "api"), ("env", "prod")]),
        ]
    }

    #[test]
    fn list_operations() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[3, 4, 5, 8]), vec![3, 5]);
        let long: Vec<SeriesId> = (0..1000).collect();
        assert_eq!(intersect(&[5, 500, 2000], &long), vec![5, 500]);
        assert_eq!(difference(&[1, 2, 3, 4], &[2, 4, 6]), vec![1, 3]);
        assert_eq!(union_disjoint(&[&[1, 5], &[2, 3], &[4]]), vec![1, 2, 3, 4, 5]);
        let mut list = vec![1, 4];
        insert_sorted(&mut list, 6);
        insert_sorted(&mut list, 2);
        insert_sorted(&mut list, 4);
        assert_eq!(list, vec![1, 2, 4, 6]);
    }

    #[test]
    fn equality_intersects_postings() {
        let series = sample_series();
        let index = index_of(&series);
        let up = Matcher::equal("__name__", "up");
        assert_eq!(select(&index, &series, std::slice::from_ref(&up)), vec![0, 1, 2]);
        assert_eq!(select(&index, &series, &[up, Matcher::equal("job", "api")]), vec![0]);
        assert!(select(&index, &series, &[Matcher::equal("job", "nope")]).is_empty());
        assert_eq!(select(&index, &series, &[]), vec![0, 1, 2, 3]);
    }

    #[test]
    fn missing_label_matches_the_empty_string() {
        let series = sample_series();
        let index = index_of(&series);
        assert_eq!(select(&index, &series, &[Matcher::equal("env", "")]), vec![1]);
        assert_eq!(select(&index, &series, &[matcher(MatchOp::NotEqual, "env", "")]), vec![0, 2, 3]);
        assert_eq!(select(&index, &series, &[matcher(MatchOp::NotEqual, "env", "prod")]), vec![1, 2]);
        assert_eq!(select(&index, &series, &[matcher(MatchOp::Regex, "env", "prod|")]), vec![0, 1, 3]);
        assert_eq!(select(&index, &series, &[matcher(MatchOp::NotRegex, "env", "prod|")]), vec![2]);
        assert_eq!(select(&index, &series, &[matcher(MatchOp::Regex, "absent", "")]), vec![0, 1, 2, 3]);
        assert!(select(&index, &series, &[matcher(MatchOp::Regex, "absent", ".+")]).is_empty());
    }

    #[test]
    fn regex_fast_paths_and_general_regexes() {
        let series = sample_series();
        let index = index_of(&series);
        assert_eq!(select(&index, &series, &[matcher(MatchOp::Regex, "job", "api|db")]), vec![0, 1, 3]);
        assert_eq!(select(&index, &series, &[matcher(MatchOp::NotRegex, "job", "api|db")]), vec![2]);
        assert_eq!(select(&index, &series, &[matcher(MatchOp::Regex, "env", ".*")]), vec![0, 1, 2, 3]);
        assert_eq!(select(&index, &series, &[matcher(MatchOp::Regex, "env", ".+")]), vec![0, 2, 3]);
        assert_eq!(select(&index, &series, &[matcher(MatchOp::NotRegex, "env", ".+")]), vec![1]);
        assert!(select(&index, &series, &[matcher(MatchOp::NotRegex, "env", ".*")]).is_empty());
        assert_eq!(select(&index, &series, &[matcher(MatchOp::Regex, "job", "(?i)API")]), vec![0, 3]);
        assert_eq!(select(&index, &series, &[matcher(MatchOp::Regex, "job", "[a-d].*")]), vec![0, 1, 3]);
        // The candidate-filtering path: one series left, three job values to scan.
        let narrowed = [Matcher::equal("__name__", "errors"), matcher(MatchOp::Regex, "job", "a.i")];
        assert_eq!(select(&index, &series, &narrowed), vec![3]);
    }

    #[test]
    fn removal_updates_every_list_and_ids_are_reusable() {
        let series = sample_series();
        let mut index = index_of(&series);
        index.remove([(0, &series[0]), (3, &series[3])]);
        assert_eq!(index.all(), &[1, 2]);
        assert!(index.get("job", "api").is_empty());
        assert_eq!(select(&index, &series, &[Matcher::equal("env", "prod")]), Vec::<SeriesId>::new());
        assert_eq!(index.value_count("env"), 1);
        index.add(0, &series[3]);
        assert_eq!(index.all(), &[0, 1, 2]);
        assert_eq!(select(&index, &series, &[Matcher::equal("job", "api")]), vec![0]);
    }

    fn arbitrary_label_set() -> impl Strategy<Value = Labels> {
        let value = prop_oneof![Just(""), Just("a"), Just("b"), Just("ab")];
        (value.clone(), value.clone(), value).prop_map(|(x, y, z)| labels(&[("x", x), ("y", y), ("z", z)]))
    }

    proptest! {
        #[test]
        fn selection_equals_a_linear_scan(
            series in prop::collection::vec(arbitrary_label_set(), 0..40),
            picks in prop::collection::vec((0usize..4, 0usize..4, 0usize..8), 0..4),
        ) {
            let index = index_of(&series);
            let names = ["x", "y", "z", "w"];
            let ops = [MatchOp::Equal, MatchOp::NotEqual, MatchOp::Regex, MatchOp::NotRegex];
            let values = ["", "a", "b", "a|b", ".*", ".+", "a.*", "|ab"];
            let matchers: Vec<Matcher> = picks
                .iter()
                .map(|&(name, op, value)| matcher(ops[op], names[name], values[value]))
                .collect();
            let expected: Vec<SeriesId> = series
                .iter()
                .enumerate()
                .filter(|(_, labels)| matchers.iter().all(|matcher| matcher.matches_labels(labels)))
                .map(|(id, _)| id as SeriesId)
                .collect();
            prop_assert_eq!(select(&index, &series, &matchers), expected);
        }
    }
}
