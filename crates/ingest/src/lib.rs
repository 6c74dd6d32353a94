//! Getting samples into alertbook from text: the Prometheus text exposition
//! format 0.0.4 and OpenMetrics 1.0 text.
//!
//! [`exposition`] is a byte-oriented, allocation-free-per-line parser that turns
//! each line into a sample (labels borrowed from the line), a metadata record
//! (`# HELP`, `# TYPE`, `# UNIT`) or nothing, with typed errors that carry a
//! 1-based line and column. [`backfill`] streams a timestamped file through that
//! parser into a [`tsdb::MemStore`], the way `promtool tsdb
//! create-blocks-from-openmetrics` fills a Prometheus data directory, and
//! [`import`] writes the same input as blocks into a data directory that
//! `alertbook run --data` serves from disk (`promtool tsdb create-blocks-from
//! openmetrics`).
//!
//! [`remote_write`] decodes Prometheus remote-write 1.0 requests and appends
//! them.
//!
//! [`metadata`] keeps the `# TYPE`/`# HELP`/`# UNIT` of scraped and
//! remote-written families, [`exemplars`] a bounded ring of exemplars; both
//! in memory only, for the query API.
//!
//! This crate does no networking and never reads the wall clock: it parses what
//! it is given and appends what it parsed. Scraping lives elsewhere.

pub mod backfill;
pub mod durable;
pub mod exemplars;
pub mod exposition;
pub mod import;
pub mod metadata;
pub mod remote_write;

pub use backfill::{BackfillOptions, BackfillReport, load_file, load_reader};
pub use exposition::{Entry, Format, MetricType, ParseError, ParseErrorKind, Parser, SampleRef};
