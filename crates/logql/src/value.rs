//! What a LogQL query returns.
//!
//! Log queries return [`QueryValue::Streams`]; metric queries return a vector
//! (instant), a matrix (range) or a scalar, with Loki's result types. Time is in
//! nanoseconds since the Unix epoch throughout, as Loki's API speaks it.

use tsdb::Labels;

/// Order of entries in a log query's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Newest first (Loki's default).
    #[default]
    Backward,
    Forward,
}

/// One entry of a log query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub timestamp_ns: i64,
    pub line: String,
    /// Structured metadata of the entry, as pushed.
    pub metadata: Vec<(String, String)>,
}

/// The entries of one stream (the stream labels after the pipeline: parsed
/// labels and `label_format` change them, as in Loki).
#[derive(Debug, Clone, PartialEq)]
pub struct Stream {
    pub labels: Labels,
    pub entries: Vec<StreamEntry>,
}

/// One series of a range query's result: `(timestamp_ns, value)` points in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Labels,
    pub points: Vec<(i64, f64)>,
}

/// The result of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryValue {
    /// `resultType: "streams"`.
    Streams(Vec<Stream>),
    /// `resultType: "vector"`: one value per series at the query time.
    Vector(Vec<(Labels, f64)>),
    /// `resultType: "matrix"`.
    Matrix(Vec<Series>),
    /// `resultType: "scalar"`.
    Scalar(f64),
}
