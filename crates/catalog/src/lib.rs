//! The catalog: a team's alerts as data. Runbook entries with machine-readable
//! triage steps, the contracts those steps rely on, and the Prometheus-format
//! rule files that detect each alert; loaded from a directory or from files
//! built into the binary ([`files::CatalogFiles`]), validated and cross-linked.
//!
//! Key types: [`Catalog`] (the validated whole), [`Entry`] and [`Step`] (the
//! runbook), [`Contract`] (budgets, SLOs, ceilings...), [`RuleFile`], and
//! [`Diagnostics`] (every error found, each at `file:line:col`).
//!
//! This crate reads files and nothing else: it runs no query, talks to no
//! datasource and never reads the clock. Triage execution lives elsewhere and
//! evaluates the [`expr`] trees this crate validated.

pub mod contacts;
pub mod contracts;
mod diagnostic;
pub mod docker_shape;
pub mod duration;
pub mod expr;
pub mod files;
mod load;
pub mod markdown;
mod model;
pub mod probes;
pub mod queries;
mod raw;
mod source;
pub mod template;
pub mod thresholds;

pub use contracts::{Contract, ContractKind};
pub use diagnostic::{Diagnostic, Diagnostics};
pub use files::{BuiltIn, CatalogFiles};
pub use load::{
    DuplicateRule, LoadOptions, NameValidation, RuleFileOptions, duplicate_rules, load, load_files, load_rules,
    load_rules_with, load_with, second_document_line,
};
pub use model::*;
pub use source::SourceFile;
