//! The PromQL evaluator (Prometheus 3 semantics) over the `promql-parser` AST.
//!
//! Entry points: [`Engine`] with [`EngineOptions`]; [`Engine::instant_query`]
//! and [`Engine::range_query`] (plus `_expr` variants for parsed queries)
//! return a [`QueryResult`]: a [`Value`] and the warning/info [`Annotation`]s.
//! [`promqltest`] runs Prometheus's promqltest scripts against the engine.
//!
//! Evaluation is synchronous CPU work over a [`tsdb::Queryable`]; callers in
//! async code must run it off the event loop. Native histograms are not
//! supported: the store holds floats only.

mod aggregate;
mod engine;
mod error;
mod functions;
mod hash;
mod histogram;
mod position;
pub mod promqltest;
mod selector;
mod value;

pub use engine::{Engine, EngineOptions, parse};
pub use error::Error;
pub use selector::selector_matchers;
pub use value::{Annotation, AnnotationKind, QueryResult, Value};
