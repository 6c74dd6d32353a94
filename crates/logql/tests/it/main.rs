//! Integration tests of the LogQL crate: parsing, log queries, metric queries,
//! the alerts alertbook ships, and bad input, over an in-memory [`LogSource`].

mod alerts;
mod errors;
mod logs;
mod metrics;

use std::ops::ControlFlow;

use logql::{Direction, Engine, Entry, LogSource, QueryValue, SourceError, StreamMatcher};
use tsdb::Labels;

/// 2026-11-26T00:00:00Z.
pub const T0: i64 = 1_795_651_200_000_000_000;
pub const SECOND: i64 = 1_000_000_000;

/// `T0 + seconds`.
pub fn at(seconds: i64) -> i64 {
    T0 + seconds * SECOND
}

/// One stored entry: timestamp, line, structured metadata.
pub type StoredEntry = (i64, String, Vec<(String, String)>);

/// A log store in a vector: streams with entries in time order.
#[derive(Default)]
pub struct MemSource {
    pub streams: Vec<(Labels, Vec<StoredEntry>)>,
}

impl MemSource {
    pub fn push(&mut self, labels: &[(&str, &str)], timestamp_ns: i64, line: &str) {
        self.push_with_metadata(labels, timestamp_ns, line, &[]);
    }

    pub fn push_with_metadata(
        &mut self,
        labels: &[(&str, &str)],
        timestamp_ns: i64,
        line: &str,
        metadata: &[(&str, &str)],
    ) {
        let labels = Labels::from_pairs(labels.iter().copied());
        let metadata = metadata.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        match self.streams.iter_mut().find(|(existing, _)| *existing == labels) {
            Some((_, entries)) => {
                entries.push((timestamp_ns, line.to_string(), metadata));
                entries.sort_by_key(|entry| entry.0);
            }
            None => self.streams.push((labels, vec![(timestamp_ns, line.to_string(), metadata)])),
        }
    }
}

impl LogSource for MemSource {
    fn select(
        &self,
        matchers: &[StreamMatcher],
        start_ns: i64,
        end_ns: i64,
        visit: &mut dyn FnMut(&Labels, Entry<'_>) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        for (labels, entries) in &self.streams {
            if !matchers.iter().all(|matcher| matcher.matches_labels(labels)) {
                continue;
            }
            for (timestamp_ns, line, metadata) in entries {
                if *timestamp_ns >= start_ns
                    && *timestamp_ns < end_ns
                    && visit(labels, Entry { timestamp_ns: *timestamp_ns, line, metadata }).is_break()
                {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

/// A store that always fails.
pub struct BrokenSource;

impl LogSource for BrokenSource {
    fn select(
        &self,
        _: &[StreamMatcher],
        _: i64,
        _: i64,
        _: &mut dyn FnMut(&Labels, Entry<'_>) -> ControlFlow<()>,
    ) -> Result<(), SourceError> {
        Err(SourceError::Storage("disk on fire".to_string()))
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

/// An instant metric query's vector, or a panic naming the query.
pub fn vector(source: &MemSource, query: &str, time_ns: i64) -> Vec<(Labels, f64)> {
    match Engine::default().instant_query(source, query, time_ns, 100, Direction::Backward) {
        Ok(QueryValue::Vector(vector)) => vector,
        other => panic!("{query}: expected a vector, got {other:?}"),
    }
}

/// A log query's streams, or a panic naming the query.
pub fn streams(
    source: &MemSource,
    query: &str,
    start_ns: i64,
    end_ns: i64,
    limit: usize,
    direction: Direction,
) -> Vec<logql::Stream> {
    match Engine::default().range_query(source, query, start_ns, end_ns, SECOND, limit, direction) {
        Ok(QueryValue::Streams(streams)) => streams,
        other => panic!("{query}: expected streams, got {other:?}"),
    }
}

/// The lines of a log query in result order, streams concatenated.
pub fn lines(source: &MemSource, query: &str) -> Vec<String> {
    streams(source, query, at(0), at(100_000), 1000, Direction::Forward)
        .into_iter()
        .flat_map(|stream| stream.entries.into_iter().map(|entry| entry.line))
        .collect()
}

pub fn query_error(source: &MemSource, query: &str) -> logql::Error {
    match Engine::default().instant_query(source, query, at(1000), 100, Direction::Backward) {
        Ok(value) => panic!("{query}: expected an error, got {value:?}"),
        Err(error) => error,
    }
}
