//! Integration tests of the sources crate against the real systems that
//! `scripts/test` starts (see `scripts/peers/`).

mod postgres;
