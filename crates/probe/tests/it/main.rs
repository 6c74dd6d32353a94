//! The probers and their schedule against real endpoints on loopback,
//! started by the tests.

mod alerts;
mod probers;
mod schedule;
pub mod smtp;
mod support;
