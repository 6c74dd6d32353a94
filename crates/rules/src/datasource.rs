//! Where a group's queries go and where its results are written.
//!
//! [`Datasource`] answers instant queries with a vector; [`EmbeddedDatasource`]
//! runs them with alertbook's PromQL engine over the embedded store and
//! [`LogsDatasource`] runs LogQL metric queries over a log store. A remote
//! Prometheus-compatible API implements the same trait (per group, through
//! [`crate::ManagerOptions::resolve_datasource`]). [`SeriesSink`] takes the
//! samples of recording rules and the `ALERTS`/`ALERTS_FOR_STATE` series.

use std::sync::Arc;

use tsdb::{Labels, MemStore};

/// A datasource failed to answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DatasourceError {
    /// The query is invalid or failed to evaluate; the message is the engine's.
    #[error("{0}")]
    Query(String),
    /// The query returned a range vector or a string.
    #[error("rule result is not a vector or scalar")]
    NotAVector,
    /// The datasource could not be reached.
    #[error("datasource unavailable: {0}")]
    Unavailable(String),
}

/// Answers instant PromQL queries.
pub trait Datasource: Send + Sync {
    /// The instant vector of `query` at `time_ms`; a scalar result is one
    /// sample with no labels, as Prometheus's rule engine treats it.
    fn query(&self, query: &str, time_ms: i64) -> Result<Vec<(Labels, f64)>, DatasourceError>;
}

/// Takes the samples rules produce.
pub trait SeriesSink: Send + Sync {
    /// Appends one sample; out-of-order and duplicate samples are rejected with a message.
    fn append(&self, labels: &Labels, time_ms: i64, value: f64) -> Result<(), String>;
}

/// The embedded metrics store queried through alertbook's PromQL engine.
#[derive(Debug, Clone)]
pub struct EmbeddedDatasource {
    pub store: Arc<MemStore>,
    pub engine: promql::Engine,
}

impl EmbeddedDatasource {
    pub fn new(store: Arc<MemStore>, engine: promql::Engine) -> Self {
        Self { store, engine }
    }
}

impl Datasource for EmbeddedDatasource {
    fn query(&self, query: &str, time_ms: i64) -> Result<Vec<(Labels, f64)>, DatasourceError> {
        let result = self
            .engine
            .instant_query(self.store.as_ref(), query, time_ms)
            .map_err(|error| DatasourceError::Query(error.to_string()))?;
        match result.value {
            promql::Value::Vector(samples) => {
                // Rules record floats only: native histogram results are left out.
                Ok(samples
                    .into_iter()
                    .filter(|(_, sample)| sample.histogram.is_none())
                    .map(|(labels, sample)| (labels, sample.value))
                    .collect())
            }
            promql::Value::Scalar(_, value) => Ok(vec![(Labels::empty(), value)]),
            _ => Err(DatasourceError::NotAVector),
        }
    }
}

impl SeriesSink for EmbeddedDatasource {
    fn append(&self, labels: &Labels, time_ms: i64, value: f64) -> Result<(), String> {
        self.store.append(labels, time_ms, value).map_err(|error| error.to_string())
    }
}

/// A log store queried through alertbook's LogQL engine: the datasource of
/// `datasource: logs` groups. Their alerts and recorded series go to the
/// manager's sink like those of any other group.
#[derive(Clone)]
pub struct LogsDatasource {
    pub source: Arc<dyn logql::LogSource>,
    pub engine: logql::Engine,
}

impl LogsDatasource {
    pub fn new(source: Arc<dyn logql::LogSource>, engine: logql::Engine) -> Self {
        Self { source, engine }
    }
}

impl Datasource for LogsDatasource {
    fn query(&self, query: &str, time_ms: i64) -> Result<Vec<(Labels, f64)>, DatasourceError> {
        let time_ns = time_ms.saturating_mul(1_000_000);
        let limit = self.engine.limits.max_entries;
        let value = self
            .engine
            .instant_query(self.source.as_ref(), query, time_ns, limit, logql::Direction::Backward)
            .map_err(|error| DatasourceError::Query(error.to_string()))?;
        match value {
            logql::QueryValue::Vector(samples) => Ok(samples),
            logql::QueryValue::Scalar(value) => Ok(vec![(Labels::empty(), value)]),
            logql::QueryValue::Streams(_) | logql::QueryValue::Matrix(_) => Err(DatasourceError::NotAVector),
        }
    }
}
