//! Triage runs of the Busflow catalog's entries over real stores, with
//! recorded fixtures for the datasources a test has no server for.

mod engine;
mod remote;
mod runner;
