//! The embedded metrics store: series identified by label sets, each holding
//! `(timestamp in milliseconds, f64 value)` samples and, apart from them,
//! native histogram samples ([`histogram`]).
//!
//! Key types: [`Labels`] (a sorted label set, `__name__` included), [`Sample`],
//! [`Matcher`] (the four PromQL label matchers), the [`Queryable`] trait that
//! query engines read through, and [`MemStore`], the in-memory implementation.
//!
//! Inside [`MemStore`], series get dense ids, a postings index maps each label
//! pair to the sorted ids carrying it (`postings`), and samples live in
//! Gorilla-compressed chunks ([`chunk`]). Bulk loaders take a [`SeriesRef`] per
//! series with [`MemStore::get_or_create_series`] and append through it, or hand
//! whole batches to [`MemStore::append_batch`].
//!
//! Persistence: [`block`] writes the sealed chunks a checkpoint covers to an
//! immutable, checksummed block file, reads its index and chunks back on
//! demand, and compacts blocks into longer ones ([`block::compact`]); the
//! durable store in the `ingest` crate decides when. [`MemStore::cut_for_checkpoint`]
//! and [`MemStore::commit_checkpoint`] hand the chunks a checkpoint covers
//! over from memory to a block, which [`disk::DiskBlocks`] then serves from
//! disk behind the same [`Queryable`] answers, with a bounded index cache.
//!
//! Staleness is a value, not a flag: [`STALE_NAN`] is the exact NaN bit pattern
//! Prometheus writes as a staleness marker; use [`is_stale_nan`] to recognise it.
//!
//! This crate knows nothing of PromQL evaluation, HTTP or the wall clock: every
//! timestamp is passed in by the caller.

pub mod block;
pub mod chunk;
pub mod disk;
mod fast_regex;
pub mod histogram;
mod label_order;
mod labels;
mod matcher;
mod memstore;
mod postings;

pub use histogram::{FloatHistogram, HistogramSample};
pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME, hash_sorted_pairs};
pub use matcher::{MatchOp, Matcher};
pub use memstore::{CHUNK_MAX_SAMPLES, CHUNK_MAX_SPAN_MS, HeadStats, MemStore, SHARD_COUNT, SeriesRef, Truncation};

/// The bit pattern of Prometheus's staleness marker (`value.StaleNaN`).
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
/// Prometheus's staleness marker as an `f64`.
pub const STALE_NAN: f64 = f64::from_bits(STALE_NAN_BITS);

/// True when `value` is exactly the staleness marker (not any other NaN).
pub fn is_stale_nan(value: f64) -> bool {
    value.to_bits() == STALE_NAN_BITS
}

/// One sample: a millisecond timestamp and a float value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub timestamp: i64,
    pub value: f64,
}

/// A series and its samples in a time range, as returned by [`Queryable::select`].
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    pub labels: Labels,
    /// Float samples sorted by timestamp, staleness markers included.
    pub samples: Vec<Sample>,
    /// Native histogram samples sorted by timestamp (a timestamp is in
    /// `samples` or here, never in both).
    pub histograms: Vec<HistogramSample>,
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("out of order sample: series {labels} has a sample at {last}, got {got}")]
    OutOfOrder { labels: String, last: i64, got: i64 },
    #[error("duplicate sample for timestamp {timestamp} with a different value in series {labels}")]
    DuplicateTimestamp { labels: String, timestamp: i64 },
    #[error("invalid regular expression {pattern:?}: {reason}")]
    InvalidRegex { pattern: String, reason: String },
    #[error("query would load more than {limit} samples")]
    TooManySamples { limit: usize },
    /// A block read for the query is damaged or unreadable.
    #[error(transparent)]
    Block(#[from] block::BlockError),
}

/// Read access to stored series; what a query engine evaluates against.
pub trait Queryable: Send + Sync {
    /// Every series matching all `matchers` with the samples whose timestamps
    /// lie in `[start, end]` (milliseconds, both inclusive). Series with no
    /// sample in the range are omitted. Results are sorted by labels.
    fn select(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<SeriesData>, Error>;

    /// Sorted, de-duplicated label names of the series matching `matchers`
    /// (all series when `matchers` is empty) that have samples in `[start, end]`.
    fn label_names(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, Error>;

    /// Sorted, de-duplicated values of label `name` across the matching series.
    fn label_values(&self, name: &str, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<String>, Error>;

    /// Label sets of the matching series that have samples in `[start, end]`.
    fn series(&self, matchers: &[Matcher], start: i64, end: i64) -> Result<Vec<Labels>, Error>;
}
