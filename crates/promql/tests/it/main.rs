//! Integration tests of the PromQL evaluator: the promqltest conformance
//! scripts under `testdata/promqltest` (with `KNOWN_FAILURES` kept honest in
//! both directions) and focused checks of tricky semantics.

mod conformance;
mod semantics;
