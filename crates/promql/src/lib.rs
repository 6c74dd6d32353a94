//! The PromQL evaluator (Prometheus 3 semantics) over the `promql-parser` AST.
//!
//! Entry points: [`Engine`] with [`EngineOptions`]; [`Engine::instant_query`]
//! and [`Engine::range_query`] (plus `_expr` variants for parsed queries)
//! return a [`QueryResult`]: a [`Value`] and the warning/info [`Annotation`]s.
//! [`promqltest`] runs Prometheus's promqltest scripts against the engine.
//!
//! Evaluation is synchronous CPU work over a [`tsdb::Queryable`]; callers in
//! async code must run it off the event loop.
//!
//! Native histograms ([`tsdb::FloatHistogram`]) flow through selectors, the
//! arithmetic Prometheus defines on them, `sum`/`avg`/`count`-style
//! aggregations and the `histogram_*` functions; float-only operations drop
//! them. Range functions (`rate` and the `*_over_time` family) and subqueries
//! read float samples only for now. [`notation`] parses the `{{…}}` text of
//! promqltest and promtool.

mod aggregate;
mod engine;
mod error;
mod functions;
mod hash;
mod histogram;
mod literals;
pub mod notation;
mod position;
pub mod promqltest;
mod selector;
mod value;

pub use engine::{Engine, EngineOptions, parse};
pub use error::Error;
pub use selector::{format_query, query_selectors, selector_matchers};
pub use tsdb::FloatHistogram;
pub use value::{Annotation, AnnotationKind, InstantSample, QueryResult, Value};
