//! Integration tests of the sources crate: recorded Engine API answers, a
//! stand-in Engine over TCP, and the real Docker daemon.

mod docker;
