//! Series sorted by their label sets with integer comparisons.
//!
//! Every selection from the memory store answers its series sorted by label
//! set (the merge with the blocks on disk and the engine's answers rely on
//! it). Comparing label sets costs several string comparisons each, and a
//! rule that selects thousands of series every interval paid them at every
//! evaluation. Instead the store ranks all its series by label set now and
//! then, and keeps each series' rank beside it: a selection sorts the ranked
//! series by rank and merges the few series created since the last ranking
//! (sorted by label set) into them. Both orders are the label sets' order, so
//! the answer is the same as a plain sort by label set.
//!
//! A rank is valid only in the epoch it was given in; a new ranking gives
//! every live series a new rank and then advances the epoch, so a selection
//! that reads the epoch once sees either the old ranks or the new ones, never
//! a mix. The store ranks again when a selection meets unranked series and
//! the series created since the last ranking are at least a sixteenth of
//! all: the ranking's `n log n` comparisons are paid once per `n / 16` new
//! series.

use std::cmp::Ordering as CmpOrdering;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::Labels;

/// Fewer unranked series than this in a selection never start a ranking.
const MIN_UNRANKED_TO_RANK: usize = 64;

/// The rank of one series and the epoch it was given in, packed for one
/// atomic load: `epoch << 32 | rank`. Zero: never ranked.
#[derive(Debug, Default)]
pub(crate) struct RankSlot(AtomicU64);

impl RankSlot {
    fn get(&self, epoch: u32) -> Option<u32> {
        let packed = self.0.load(Ordering::Relaxed);
        (epoch != 0 && (packed >> 32) as u32 == epoch).then_some(packed as u32)
    }

    fn set(&self, epoch: u32, rank: u32) {
        self.0.store(u64::from(epoch) << 32 | u64::from(rank), Ordering::Relaxed);
    }
}

/// Something the order sorts: a label set and its rank slot.
pub(crate) trait Ranked {
    fn labels(&self) -> &Labels;
    fn rank_slot(&self) -> &RankSlot;
}

/// The store's ranking: its epoch and how many series came since.
#[derive(Debug, Default)]
pub(crate) struct LabelOrder {
    /// The epoch whose ranks are valid; 0 before the first ranking.
    epoch: AtomicU32,
    /// Series created since the last ranking began.
    created_since: AtomicUsize,
    /// Held while ranking, so that two selections do not rank at once.
    ranking: Mutex<()>,
}

impl LabelOrder {
    /// Counts a new series (unranked until the next ranking).
    pub(crate) fn created(&self) {
        self.created_since.fetch_add(1, Ordering::Relaxed);
    }

    /// Sorts `items` by label set. Returns whether the store should rank its
    /// series again ([`LabelOrder::rank`]), which the caller does after
    /// answering, outside its locks.
    pub(crate) fn sort<T: Ranked>(&self, items: &mut Vec<T>, store_series: usize) -> bool {
        let epoch = self.epoch.load(Ordering::Acquire);
        let mut ranked: Vec<(u32, T)> = Vec::with_capacity(items.len());
        let mut unranked: Vec<T> = Vec::new();
        for item in items.drain(..) {
            match item.rank_slot().get(epoch) {
                Some(rank) => ranked.push((rank, item)),
                None => unranked.push(item),
            }
        }
        ranked.sort_unstable_by_key(|(rank, _)| *rank);
        if unranked.is_empty() {
            items.extend(ranked.into_iter().map(|(_, item)| item));
            return false;
        }
        unranked.sort_unstable_by(|left, right| left.labels().cmp(right.labels()));
        let rank_again = unranked.len() >= MIN_UNRANKED_TO_RANK
            && (epoch == 0 || self.created_since.load(Ordering::Relaxed).saturating_mul(16) >= store_series);
        // Merge the two sorted runs by label set.
        let mut ranked = ranked.into_iter().map(|(_, item)| item).peekable();
        let mut unranked = unranked.into_iter().peekable();
        loop {
            let take_ranked = match (ranked.peek(), unranked.peek()) {
                (Some(left), Some(right)) => left.labels().cmp(right.labels()) != CmpOrdering::Greater,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_ranked { ranked.next() } else { unranked.next() };
            items.extend(next);
        }
        rank_again
    }

    /// Ranks `series` (every live series of the store) by label set under a
    /// new epoch. Returns without ranking when another ranking is running.
    pub(crate) fn rank<T: Ranked>(&self, mut series: Vec<T>) {
        let Some(_ranking) = self.ranking.try_lock() else { return };
        let created_before = self.created_since.load(Ordering::Relaxed);
        series.sort_unstable_by(|left, right| left.labels().cmp(right.labels()));
        let epoch = match self.epoch.load(Ordering::Acquire).wrapping_add(1) {
            0 => 1,
            epoch => epoch,
        };
        for (rank, item) in series.iter().enumerate() {
            item.rank_slot().set(epoch, u32::try_from(rank).unwrap_or(u32::MAX));
        }
        // Series created while ranking stay counted for the next one.
        self.created_since.fetch_sub(created_before, Ordering::Relaxed);
        self.epoch.store(epoch, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug)]
    struct Item(Labels, RankSlot);

    impl Ranked for std::sync::Arc<Item> {
        fn labels(&self) -> &Labels {
            &self.0
        }
        fn rank_slot(&self) -> &RankSlot {
            &self.1
        }
    }

    fn item(values: &(u8, u8)) -> std::sync::Arc<Item> {
        let labels = Labels::from_pairs([("__name__", format!("m{}", values.0)), ("a", format!("{}", values.1))]);
        std::sync::Arc::new(Item(labels, RankSlot::default()))
    }

    fn sorted_by_labels(items: &[std::sync::Arc<Item>]) -> Vec<Labels> {
        let mut labels: Vec<Labels> = items.iter().map(|item| item.0.clone()).collect();
        labels.sort();
        labels
    }

    proptest! {
        /// Whatever was ranked when, a sort answers the label sets' order.
        #[test]
        fn sorting_with_ranks_equals_sorting_by_labels(
            first in proptest::collection::btree_set((0u8..6, 0u8..40), 0..120),
            later in proptest::collection::btree_set((6u8..9, 0u8..40), 0..120),
            take in proptest::collection::vec(any::<bool>(), 240),
            rank_twice in any::<bool>(),
        ) {
            let order = LabelOrder::default();
            let all_first: Vec<_> = first.iter().map(item).collect();
            for _ in &all_first {
                order.created();
            }
            order.rank(all_first.clone());
            if rank_twice {
                order.rank(all_first.clone());
            }
            let all_later: Vec<_> = later.iter().map(item).collect();
            for _ in &all_later {
                order.created();
            }
            let mut selection: Vec<_> = all_first
                .iter()
                .chain(&all_later)
                .zip(take.iter().cycle())
                .filter(|(_, taken)| **taken)
                .map(|(item, _)| item.clone())
                .collect();
            selection.reverse();
            let expected = sorted_by_labels(&selection);
            let total = all_first.len() + all_later.len();
            order.sort(&mut selection, total);
            let got: Vec<Labels> = selection.iter().map(|item| item.0.clone()).collect();
            prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn a_ranking_keeps_the_series_created_meanwhile_counted() {
        let order = LabelOrder::default();
        let items: Vec<_> = (0..100u8).map(|value| item(&(0, value))).collect();
        for _ in &items {
            order.created();
        }
        let mut selection = items.clone();
        assert!(order.sort(&mut selection, items.len()), "100 unranked series of 100 ask for a ranking");
        order.rank(items.clone());
        assert_eq!(order.created_since.load(Ordering::Relaxed), 0);
        let mut selection: Vec<_> = items.iter().rev().cloned().collect();
        assert!(!order.sort(&mut selection, items.len()), "all ranked: nothing to do");
        assert_eq!(selection.iter().map(|item| item.0.clone()).collect::<Vec<_>>(), sorted_by_labels(&items));
    }
}
