//! Integration tests of the sources crate: against the real systems that
//! `scripts/test` starts (see `scripts/peers/`), recorded Docker Engine API
//! answers and a stand-in Engine over TCP, recorded Loki answers replayed from
//! loopback servers and alertbook's own Loki API, and recorded Tempo search
//! answers.

mod docker;
mod loki;
mod postgres;
mod replay;
mod tempo;
