//! LogQL: alertbook's own parser and evaluator for Loki's query language.
//!
//! [`source`] is the contract with the log store: [`LogSource`] hands out the
//! entries of the streams a selector matches. The evaluator reads through it and
//! knows nothing of chunks, files or HTTP.

pub mod source;

pub use source::{Entry, LogSource, MatchOp, SourceError, StreamMatcher};
pub mod value;

pub use value::{Direction, QueryValue, Series, Stream, StreamEntry};
