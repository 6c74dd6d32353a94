//! Redaction of personal data (PII) from log lines at ingest, before anything
//! reaches disk.
//!
//! The rules are catalog data (`catalog/busflow/pii-rules.yaml`), loaded with
//! [`RuleSet::from_yaml`]; a [`Redactor`] built from them and the reviewed
//! false positives ([`Exclusion`], from the `pii-exclusions` contract) turns
//! each line into a [`Redaction`]: the line with every match replaced by its
//! rule's replacement (`[REDACTED:<id>]` by default) and the list of
//! [`Match`]es. Excluded matches are redacted like any other; they only do not
//! count.
//!
//! The scan is built for lines that mostly carry no PII: one SIMD literal
//! search (Aho-Corasick) for the rules' literal hints, and one word-at-a-time
//! pass over the digits that finds numeric runs and hex/colon clusters; a
//! rule's regex runs only on the small windows its prefilter selects, with
//! look-around evaluated against the whole line, so a window search finds
//! exactly what a search of the whole line finds there. See [`scan`].
//!
//! This crate does no I/O, reads no clock and never prints; it does not know
//! where lines come from (the Loki push path) or where the rules file lives
//! (the catalog loader passes its text in).

mod classify;
mod error;
mod rules;
mod scan;
mod stream;
pub mod validate;

pub use error::{Error, RuleProblem};
pub use rules::{Rule, RuleSet};
pub use scan::{Exclusion, Match, Redaction, Redactor};
pub use stream::{DEFAULT_STREAMS, EXCLUDED, MATCH_RULE, StreamRedaction};
pub use validate::Validator;
