//! Integration tests of the PromQL evaluator: the promqltest conformance
//! scripts under `testdata/promqltest` (with `KNOWN_FAILURES` kept honest in
//! both directions), focused checks of tricky semantics, and a property test
//! that range queries agree with instant queries step by step.

mod conformance;
mod range_consistency;
mod semantics;
