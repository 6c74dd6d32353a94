//! The log store's integration tests: push bodies as Loki and real shippers
//! send them, durability across restarts, checkpoints, crashes and retention,
//! concurrency, query order and compaction.

mod compact;
mod kill;
mod push;
mod store;

use logql::{LogSource, MatchOp, StreamMatcher};
use logstore::{LogStore, LogStoreOptions, PushEntry, PushStream};
use tsdb::Labels;

/// A fixed "now" for tests: 2026-11-26T00:00:00Z in nanoseconds.
pub const NOW: i64 = 1_795_651_200_000_000_000;

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

pub fn entry(timestamp_ns: i64, line: &str) -> PushEntry {
    PushEntry { timestamp_ns, line: line.to_owned(), metadata: Vec::new() }
}

pub fn stream(pairs: &[(&str, &str)], entries: Vec<PushEntry>) -> PushStream {
    PushStream { labels: labels(pairs), entries }
}

pub fn equal(name: &str, value: &str) -> StreamMatcher {
    StreamMatcher::new(name, MatchOp::Equal, value).expect("equal matcher")
}

/// Every entry of the streams matching `matchers`, as `(labels, timestamp, line)` in visit order.
pub fn select_all(store: &LogStore, matchers: &[StreamMatcher]) -> Vec<(Labels, i64, String)> {
    let mut out = Vec::new();
    store
        .select(matchers, i64::MIN, i64::MAX, &mut |labels, entry| {
            out.push((labels.clone(), entry.timestamp_ns, entry.line.to_owned()));
            std::ops::ControlFlow::Continue(())
        })
        .expect("select");
    out
}

pub fn open(directory: &std::path::Path, options: LogStoreOptions) -> (LogStore, logstore::ReplayStats) {
    LogStore::open(directory, options).expect("open store")
}
