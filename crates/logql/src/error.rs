//! Errors of parsing and evaluating LogQL.
//!
//! [`ParseError`] carries the byte offset of the fault and renders as Loki does,
//! `parse error at line 1, col 14: ...`. [`Error`] is what the engine returns;
//! [`Error::is_bad_request`] tells the HTTP layer whether the caller (400) or the
//! store (500) is at fault, [`Error::is_timeout`] whether the query ran out of time. Nothing here knows HTTP status codes themselves.

use crate::source::SourceError;

/// A query that does not parse: the message and where in the query it went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parse error at line {line}, col {column}: {message}")]
pub struct ParseError {
    /// Byte offset in the query.
    pub offset: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    pub message: String,
}

impl ParseError {
    /// An error at `offset` of `query`; line and column are derived from the offset.
    pub fn at(query: &str, offset: usize, message: impl Into<String>) -> Self {
        let offset = offset.min(query.len());
        let mut line = 1;
        let mut column = 1;
        for (index, character) in query.char_indices() {
            if index >= offset {
                break;
            }
            if character == '\n' {
                line += 1;
                column = 1;
            } else {
                column += 1;
            }
        }
        Self { offset, line, column, message: message.into() }
    }
}

/// Why a query failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A metric query produced series with an `__error__` label (Loki's pipeline error).
    #[error(
        "pipeline error: '{error}' for series: '{series}'. use a label filter to intentionally skip this error (e.g. | __error__!=\"{error}\"); to skip all potential errors match empty errors (e.g. | __error__=\"\")"
    )]
    Pipeline { error: String, series: String },
    /// The query is well-formed but cannot be run as asked (bad step, wrong query kind).
    #[error("{0}")]
    InvalidQuery(String),
    /// The query exceeded one of the engine's limits.
    #[error("{0}")]
    Limit(String),
    /// The query ran longer than the engine's timeout.
    #[error("{0}")]
    Timeout(String),
    /// The log store failed.
    #[error(transparent)]
    Source(#[from] SourceError),
}

impl Error {
    /// Whether the caller is at fault (HTTP 400) rather than the server (HTTP 500).
    pub fn is_bad_request(&self) -> bool {
        match self {
            Error::Parse(_) | Error::Pipeline { .. } | Error::InvalidQuery(_) | Error::Limit(_) => true,
            Error::Source(SourceError::Limit(_)) => true,
            Error::Source(SourceError::Storage(_)) | Error::Timeout(_) => false,
        }
    }

    /// Whether the query ran out of time (HTTP 503, as Prometheus answers a timeout).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let error = ParseError::at("ab\ncdé f", 8, "boom");
        assert_eq!((error.line, error.column), (2, 5));
        assert_eq!(error.to_string(), "parse error at line 2, col 5: boom");
    }

    #[test]
    fn store_failures_are_not_bad_requests() {
        assert!(!Error::Source(SourceError::Storage("disk".into())).is_bad_request());
        assert!(Error::InvalidQuery("x".into()).is_bad_request());
    }
}
