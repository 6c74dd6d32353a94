//! Integration tests of the sources crate: against the real systems that
//! `scripts/test` starts (see `scripts/peers/`), recorded Docker Engine API
//! answers and a stand-in Engine over TCP.

mod docker;
mod postgres;
