//! The probers and their schedule against real endpoints on loopback,
//! started by the tests.

mod alerts;
mod probers;
pub mod s3;
mod schedule;
pub mod smtp;
mod support;
mod uptime_kuma;
