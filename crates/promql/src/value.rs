//! Query results and annotations.
//!
//! [`Value`] is what a query returns (scalar, string, instant vector or range
//! vector), [`QueryResult`] pairs it with the [`Annotation`]s (Prometheus's
//! warnings and infos) raised while evaluating. Nothing here evaluates.

use std::fmt;
use std::sync::Arc;

use tsdb::{FloatHistogram, Labels, SeriesData};

/// One element of an instant vector: a float, or a native histogram (then
/// `value` is 0).
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub timestamp: i64,
    pub value: f64,
    pub histogram: Option<Arc<FloatHistogram>>,
}

impl InstantSample {
    /// A float sample.
    pub fn float(timestamp: i64, value: f64) -> Self {
        Self { timestamp, value, histogram: None }
    }
}

/// The value of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A scalar at a timestamp (milliseconds).
    Scalar(i64, f64),
    /// A string literal.
    String(String),
    /// An instant vector: one sample per series, stamped with the evaluation time.
    Vector(Vec<(Labels, InstantSample)>),
    /// A range vector (range selectors in instant queries, and every range
    /// query); each series carries float and histogram samples.
    Matrix(Vec<SeriesData>),
}

/// Whether an annotation is a warning or an info.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnnotationKind {
    Warning,
    Info,
}

/// One annotation, rendered as Prometheus's API does:
/// `PromQL warning: <message> (<line>:<column>)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Annotation {
    pub kind: AnnotationKind,
    pub message: String,
    /// 1-based line and column of the expression the annotation is about,
    /// located heuristically in the query text.
    pub position: Option<(usize, usize)>,
}

impl fmt::Display for Annotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.kind {
            AnnotationKind::Warning => "PromQL warning",
            AnnotationKind::Info => "PromQL info",
        };
        write!(f, "{prefix}: {}", self.message)?;
        if let Some((line, column)) = self.position {
            write!(f, " ({line}:{column})")?;
        }
        Ok(())
    }
}

/// A query's value and the annotations raised while computing it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    /// Warnings, de-duplicated, in the order first raised.
    pub warnings: Vec<Annotation>,
    /// Infos, de-duplicated, in the order first raised.
    pub infos: Vec<Annotation>,
}
