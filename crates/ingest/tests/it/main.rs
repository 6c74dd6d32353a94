//! Integration tests of the ingest crate: the exposition parser (unit cases and
//! a property-based round trip through both formats) and the backfill loader.

mod backfill;
mod exposition;
mod import;
mod roundtrip;
