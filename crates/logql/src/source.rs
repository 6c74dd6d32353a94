//! The contract between LogQL and a log store.
//!
//! A store implements [`LogSource`]: given the label matchers of a stream
//! selector and a time range, it calls back once per entry of every matching
//! stream, streams one after another, each stream's entries in timestamp order.
//! Stream labels are [`tsdb::Labels`], so metric queries over logs produce the
//! same label sets as PromQL and flow into the rules engine unchanged.

use std::ops::ControlFlow;

use tsdb::Labels;

/// How a stream matcher compares a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

/// One matcher of a stream selector: `name op "value"`. Regexes are anchored
/// at both ends, as in Loki and Prometheus; a missing label matches as `""`.
#[derive(Debug, Clone)]
pub struct StreamMatcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    /// The anchored regex of `=~` and `!~`; `None` for `=` and `!=`.
    pub regex: Option<regex::Regex>,
}

impl StreamMatcher {
    /// A matcher; fails when a regex matcher's value is not a valid regex.
    pub fn new(name: impl Into<String>, op: MatchOp, value: impl Into<String>) -> Result<Self, regex::Error> {
        let value = value.into();
        let regex = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => Some(regex::Regex::new(&format!("^(?:{value})$"))?),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Self { name: name.into(), op, value, regex })
    }

    /// Whether a label value (`""` when the label is missing) satisfies the matcher.
    pub fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::RegexMatch, Some(regex)) => regex.is_match(value),
            (MatchOp::RegexNoMatch, Some(regex)) => !regex.is_match(value),
            (MatchOp::RegexMatch | MatchOp::RegexNoMatch, None) => {
                debug_assert!(false, "regex matcher without a compiled regex");
                false
            }
        }
    }

    /// Whether a stream's label set satisfies the matcher.
    pub fn matches_labels(&self, labels: &Labels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }
}

/// One log entry as the evaluator sees it.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    /// Nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
    pub line: &'a str,
    /// Structured metadata attached at push time (`name`, `value` pairs); LogQL
    /// exposes them as labels to the pipeline.
    pub metadata: &'a [(String, String)],
}

/// A store could not answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    /// The query would read more than the store allows.
    #[error("{0}")]
    Limit(String),
    /// The store failed to read its data.
    #[error("log store: {0}")]
    Storage(String),
}

/// Where LogQL reads log entries from.
pub trait LogSource: Send + Sync {
    /// Calls `visit` for every entry with `start_ns <= timestamp_ns < end_ns` of
    /// every stream matching all `matchers`: stream after stream, each stream's
    /// entries in timestamp order (equal timestamps in push order). When `visit`
    /// answers [`ControlFlow::Break`], the store stops reading and returns `Ok`.
    fn select(
        &self,
        matchers: &[StreamMatcher],
        start_ns: i64,
        end_ns: i64,
        visit: &mut dyn FnMut(&Labels, Entry<'_>) -> ControlFlow<()>,
    ) -> Result<(), SourceError>;
}
