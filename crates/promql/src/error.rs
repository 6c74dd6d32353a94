//! The evaluator's error type.
//!
//! [`Error`] separates parse errors (with a best-effort position, since the
//! parser reports none), evaluation errors carrying Prometheus's own messages,
//! and the resource limits (loaded samples, deadline). It does not decide how
//! an error is shown to a user: the CLI and the HTTP server map it.

/// Errors returned by the engine.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The query text does not parse. The position is derived heuristically
    /// from the parser's message and may point near, not at, the culprit.
    #[error("parse error at line {line}, column {column} (best-effort position): {message}")]
    Parse {
        message: String,
        /// 1-based line of the best-effort position.
        line: usize,
        /// 1-based column (in characters) of the best-effort position.
        column: usize,
        /// Byte offset of the best-effort position in the query text.
        offset: usize,
    },
    /// Evaluation failed; the message is Prometheus's wording where one exists.
    #[error("{0}")]
    Execution(String),
    /// The query would hold more samples in memory than the configured limit.
    #[error("query processing would load too many samples into memory in {stage}")]
    TooManySamples { stage: &'static str },
    /// The query ran past its deadline.
    #[error("query timed out in {stage}")]
    Timeout { stage: &'static str },
    /// A PromQL feature the evaluator does not implement.
    #[error("unsupported PromQL feature: {0}")]
    Unsupported(String),
    /// The metrics store failed.
    #[error("storage error: {0}")]
    Storage(String),
}

impl Error {
    pub(crate) fn execution(message: impl Into<String>) -> Self {
        Error::Execution(message.into())
    }
}

impl From<tsdb::Error> for Error {
    fn from(error: tsdb::Error) -> Self {
        match error {
            tsdb::Error::InvalidRegex { pattern, reason } => {
                Error::Execution(format!("invalid regular expression {pattern:?}: {reason}"))
            }
            tsdb::Error::TooManySamples { .. } => Error::TooManySamples { stage: "query execution" },
            other => Error::Storage(other.to_string()),
        }
    }
}
