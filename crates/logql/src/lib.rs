//! LogQL: alertbook's own parser and evaluator for Loki's query language.
//!
//! [`source`] is the contract with the log store: [`LogSource`] hands out the
//! entries of the streams a selector matches. The evaluator reads through it and
//! knows nothing of chunks, files or HTTP.
//!
//! [`parse`] turns a query into an [`Expr`] (or a [`ParseError`] with a line and
//! column); [`Engine`] runs instant and range queries over a [`LogSource`] and
//! returns a [`QueryValue`]. [`selectors`] lists the stream selectors of a
//! query, for the `series` endpoint and the rule checker. [`patterns`] mines
//! log patterns (Drain) and [`detect`] finds fields and offerable labels, for
//! Loki's `patterns`, `detected_fields` and `detected_labels` endpoints. The
//! crate does no I/O
//! and never reads a clock: every time is passed in.
//!
//! Supported: stream selectors; line filters `|= != |~ !~` (with `or`);
//! parsers `json` (all fields or `name="a.b[0]"` paths), `logfmt` (`--strict`,
//! `--keep-empty`, selected fields), `regexp`, `pattern`, `unpack`; label
//! filters on strings, numbers, durations, byte sizes and `ip(...)`, joined
//! with `and`, `or`, `,` and parentheses; `line_format`, `label_format`,
//! `drop`, `keep`, `decolorize`; `unwrap` (plain, `duration()`, `bytes()`) with
//! filters after it; every range aggregation of Loki but `rate_counter`; the
//! vector aggregations `sum avg min max count stddev stdvar topk bottomk sort
//! sort_desc`; PromQL's binary operators and vector matching; `vector()`,
//! `label_replace()`, number literals and `#` comments.
//!
//! Not supported (a parse error says so): the `|>`/`!>` pattern line filters,
//! `ip()` line filters, `line_format`'s `range`/`with`/variables, `approx_topk`,
//! `rate_counter`, subqueries, `label_join`, `absent`, `@` modifiers, and
//! `__preserve_error__`.

pub mod ast;
pub mod detect;
pub mod error;
pub mod eval;
pub mod ip;
pub mod lexer;
pub mod parser;
pub mod parsers;
pub mod patterns;
pub mod pipeline;
pub mod source;
pub mod template;
pub mod units;
pub mod value;

pub use ast::{Expr, LogExpr, MetricExpr};
pub use error::{Error, ParseError};
pub use eval::{Engine, Limits};
pub use parser::parse;
pub use source::{Entry, LogSource, MatchOp, SourceError, StreamMatcher};
pub use value::{Direction, QueryValue, Series, Stream, StreamEntry};

/// The stream selectors of a query, in the order they appear.
pub fn selectors(expr: &Expr) -> Vec<Vec<StreamMatcher>> {
    fn metric(expr: &MetricExpr, out: &mut Vec<Vec<StreamMatcher>>) {
        match expr {
            MetricExpr::Range { log, .. } => out.push(log.matchers.clone()),
            MetricExpr::Aggregate { expr, .. } | MetricExpr::LabelReplace { expr, .. } => metric(expr, out),
            MetricExpr::Binary { lhs, rhs, .. } => {
                metric(lhs, out);
                metric(rhs, out);
            }
            MetricExpr::Number(_) | MetricExpr::Vector(_) => {}
        }
    }
    let mut out = Vec::new();
    match expr {
        Expr::Log(log) => out.push(log.matchers.clone()),
        Expr::Metric(expr) => metric(expr, &mut out),
    }
    out
}
