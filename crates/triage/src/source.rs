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
}

/// The datasources of a triage run, by kind (`metrics`, `logs`, `sql`,
/// `docker`, `probe`), and the timeout of each check.
#[derive(Clone)]
pub struct Sources {
    by_kind: BTreeMap<&'static str, Arc<dyn CheckSource>>,
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
        Self { by_kind: BTreeMap::new(), timeout, fixtures: BTreeMap::new() }
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
