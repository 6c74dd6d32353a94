//! Where checks send their queries: one [`CheckSource`] per datasource kind,
//! gathered in [`Sources`], each call bounded by a timeout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::AlertInstance;

/// One sample of a vector result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One log line of a log query's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub time_ns: i64,
    pub labels: BTreeMap<String, String>,
    pub line: String,
}

/// Points of one series, for a sparkline: `[unix ms, value]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(i64, f64)>,
}

/// What a check returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type", content = "data")]
pub enum Found {
    Scalar(f64),
    Vector(Vec<Sample>),
    /// Rows, each column by name.
    Table(Vec<serde_json::Map<String, Value>>),
    /// Newest first.
    Lines(Vec<LogLine>),
    /// Docker facts, probe results: already a value.
    Value(Value),
}

/// A check's answer: the result, and series points where a range is natural.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    pub found: Option<Found>,
    pub series: Vec<Series>,
}

impl Answer {
    pub fn of(found: Found) -> Self {
        Self { found: Some(found), series: Vec::new() }
    }
}

/// What a check is run for.
#[derive(Debug, Clone)]
pub struct CheckContext {
    pub time_ms: i64,
    pub alert: AlertInstance,
}

/// Runs check queries of one datasource kind. Implementations only read.
pub trait CheckSource: Send + Sync {
    fn run(&self, query: &str, context: &CheckContext) -> Result<Answer, String>;

    /// Whether an answer depends on nothing but the query and the time (not
    /// on the alert's labels or active period, not on a store that changes
    /// between two reads a second apart in a way triage cares about). Such
    /// answers are shared by the runs of a burst: a run asking the same
    /// query of the same kind within [`SHARE_WINDOW_MS`] of an earlier
    /// answer gets that answer instead of a new query. Off by default.
    fn shareable(&self) -> bool {
        false
    }
}

/// How far apart in time two runs' identical queries may be for the later
/// one to reuse the earlier answer (see [`CheckSource::shareable`]).
pub const SHARE_WINDOW_MS: i64 = 1_000;

/// How many answers are kept for sharing; the oldest goes first.
const SHARED_ANSWERS: usize = 64;

/// Recent answers of shareable sources: (kind, query, time, answer).
#[derive(Default)]
struct SharedAnswers {
    answers: std::collections::VecDeque<(&'static str, String, i64, Answer)>,
}

impl SharedAnswers {
    fn find(&self, kind: &str, query: &str, time_ms: i64) -> Option<Answer> {
        self.answers
            .iter()
            .rev()
            .find(|(shared_kind, shared_query, shared_time, _)| {
                *shared_kind == kind && shared_query == query && (time_ms - shared_time).abs() <= SHARE_WINDOW_MS
            })
            .map(|(_, _, _, answer)| answer.clone())
    }

    fn keep(&mut self, kind: &'static str, query: &str, time_ms: i64, answer: &Answer) {
        if self.answers.len() >= SHARED_ANSWERS {
            self.answers.pop_front();
        }
        self.answers.push_back((kind, query.to_owned(), time_ms, answer.clone()));
    }
}

/// The datasources of a triage run, by kind (`metrics`, `logs`, `sql`,
/// `docker`, `probe`), and the timeout of each check.
#[derive(Clone)]
pub struct Sources {
    by_kind: BTreeMap<&'static str, Arc<dyn CheckSource>>,
    /// Answers of shareable sources, shared by every clone (every run).
    shared: Arc<parking_lot::Mutex<SharedAnswers>>,
    pub timeout: Duration,
    /// Recorded results by result name (replay's `--fixtures`, rule tests):
    /// a check whose result is here is answered with it, as predicates read it.
    pub fixtures: BTreeMap<String, Value>,
}

impl Default for Sources {
    fn default() -> Self {
        Self::new(Duration::from_secs(10))
    }
}

impl std::fmt::Debug for Sources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sources").field("kinds", &self.by_kind.keys()).field("timeout", &self.timeout).finish()
    }
}

/// The outcome of one bounded check call.
#[derive(Debug)]
pub(crate) enum Outcome {
    Answered(Answer),
    Failed(String),
    TimedOut,
    NoSource,
}

impl Sources {
    pub fn new(timeout: Duration) -> Self {
        Self { by_kind: BTreeMap::new(), shared: Arc::default(), timeout, fixtures: BTreeMap::new() }
    }

    /// The same sources without the answers shared so far, sharing with no
    /// other clone: for a run someone asked for, which must read afresh.
    pub fn unshared(&self) -> Self {
        Self { shared: Arc::default(), ..self.clone() }
    }

    /// Adds (or replaces) the source of `kind`.
    pub fn with(mut self, kind: catalog::Datasource, source: Arc<dyn CheckSource>) -> Self {
        self.by_kind.insert(kind.as_str(), source);
        self
    }

    pub fn set(&mut self, kind: catalog::Datasource, source: Arc<dyn CheckSource>) {
        self.by_kind.insert(kind.as_str(), source);
    }

    pub fn has(&self, kind: catalog::Datasource) -> bool {
        self.by_kind.contains_key(kind.as_str())
    }

    pub fn get(&self, kind: catalog::Datasource) -> Option<Arc<dyn CheckSource>> {
        self.by_kind.get(kind.as_str()).cloned()
    }

    /// Runs `query` on the source of `kind`, on its own thread, waiting at
    /// most the timeout; a late answer is dropped when it comes.
    pub(crate) fn call(&self, kind: catalog::Datasource, result: &str, query: &str, context: &CheckContext) -> Outcome {
        if let Some(recorded) = self.fixtures.get(result) {
            return Outcome::Answered(Answer::of(Found::Value(recorded.clone())));
        }
        let Some(source) = self.get(kind) else {
            return Outcome::NoSource;
        };
        let shareable = source.shareable();
        if shareable && let Some(answer) = self.shared.lock().find(kind.as_str(), query, context.time_ms) {
            return Outcome::Answered(answer);
        }
        let outcome = self.call_source(source, kind, query, context);
        if shareable && let Outcome::Answered(answer) = &outcome {
            self.shared.lock().keep(kind.as_str(), query, context.time_ms, answer);
        }
        outcome
    }

    /// One query of `source`, on a thread of its own, bounded by the timeout.
    fn call_source(
        &self,
        source: Arc<dyn CheckSource>,
        kind: catalog::Datasource,
        query: &str,
        context: &CheckContext,
    ) -> Outcome {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let query = query.to_owned();
        let context = context.clone();
        let spawned = std::thread::Builder::new().name(format!("triage-{}", kind.as_str())).spawn(move || {
            let _ = sender.send(source.run(&query, &context));
        });
        if let Err(error) = spawned {
            return Outcome::Failed(format!("cannot start the check: {error}"));
        }
        match receiver.recv_timeout(self.timeout) {
            Ok(Ok(answer)) => Outcome::Answered(answer),
            Ok(Err(message)) => Outcome::Failed(message),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Outcome::TimedOut,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Outcome::Failed("the check panicked".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts its queries; answers with the count, or fails on "fail".
    struct Counting {
        calls: AtomicUsize,
        shareable: bool,
    }

    impl CheckSource for Counting {
        fn run(&self, query: &str, _context: &CheckContext) -> Result<Answer, String> {
            let calls = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if query == "fail" {
                return Err("down".into());
            }
            Ok(Answer::of(Found::Scalar(calls as f64)))
        }

        fn shareable(&self) -> bool {
            self.shareable
        }
    }

    fn context(time_ms: i64, instance: &str) -> CheckContext {
        CheckContext {
            time_ms,
            alert: AlertInstance {
                labels: BTreeMap::from([("instance".to_owned(), instance.to_owned())]),
                annotations: BTreeMap::new(),
                value: 1.0,
                firing_since_ms: time_ms,
                active_since_ms: None,
            },
        }
    }

    fn scalar(outcome: Outcome) -> f64 {
        match outcome {
            Outcome::Answered(Answer { found: Some(Found::Scalar(value)), .. }) => value,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_burst_shares_the_answers_of_identical_queries_within_a_second() {
        let source = Arc::new(Counting { calls: AtomicUsize::new(0), shareable: true });
        let sources = Sources::new(Duration::from_secs(5)).with(catalog::Datasource::Metrics, source.clone());
        let clone = sources.clone();
        let metrics = catalog::Datasource::Metrics;
        assert_eq!(scalar(sources.call(metrics, "r", "up", &context(10_000, "a"))), 1.0);
        // Another alert of the burst, another run (a clone), half a second later: shared.
        assert_eq!(scalar(clone.call(metrics, "r", "up", &context(10_500, "b"))), 1.0);
        assert_eq!(scalar(clone.call(metrics, "r", "up", &context(9_000, "c"))), 1.0);
        // A second and a half later, or another query: asked again.
        assert_eq!(scalar(sources.call(metrics, "r", "up", &context(11_500, "a"))), 2.0);
        assert_eq!(scalar(sources.call(metrics, "r", "rate(x[5m])", &context(11_500, "a"))), 3.0);
        // Failures are never shared: each run asks.
        assert!(matches!(sources.call(metrics, "r", "fail", &context(12_000, "a")), Outcome::Failed(_)));
        assert!(matches!(sources.call(metrics, "r", "fail", &context(12_000, "b")), Outcome::Failed(_)));
        assert_eq!(source.calls.load(Ordering::SeqCst), 5);
    }

    #[test]
    fn an_unshared_clone_asks_afresh() {
        let source = Arc::new(Counting { calls: AtomicUsize::new(0), shareable: true });
        let sources = Sources::new(Duration::from_secs(5)).with(catalog::Datasource::Metrics, source.clone());
        let metrics = catalog::Datasource::Metrics;
        assert_eq!(scalar(sources.call(metrics, "r", "up", &context(10_000, "a"))), 1.0);
        assert_eq!(scalar(sources.unshared().call(metrics, "r", "up", &context(10_000, "a"))), 2.0);
        assert_eq!(scalar(sources.call(metrics, "r", "up", &context(10_000, "a"))), 1.0, "the shared answer stays");
    }

    #[test]
    fn sources_that_read_the_alert_never_share() {
        let source = Arc::new(Counting { calls: AtomicUsize::new(0), shareable: false });
        let sources = Sources::new(Duration::from_secs(5)).with(catalog::Datasource::Probe, source.clone());
        for instance in ["a", "b", "c"] {
            sources.call(catalog::Datasource::Probe, "r", "probes x", &context(10_000, instance));
        }
        assert_eq!(source.calls.load(Ordering::SeqCst), 3);
    }
}
