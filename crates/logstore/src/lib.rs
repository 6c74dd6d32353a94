//! alertbook's embedded log store and the Loki push decoders.
//!
//! - [`push`] decodes Loki push bodies (JSON, snappy protobuf; gzip or
//!   deflate on top) into [`PushStream`]s, with errors that carry Loki's status
//!   codes.
//! - [`LogStore`] holds streams of entries: write-ahead log before every
//!   acknowledgement, per-stream heads sealed into compressed chunks, a label
//!   index, checkpoints into immutable block files, [`compact`]ion of
//!   closed blocks into longer ones, retention by time and size, replay at
//!   start. It implements [`logql::LogSource`] for the LogQL
//!   evaluator and answers Loki's labels and series endpoints.
//!
//! No HTTP, no clock in the storage path except [`LogStore::append`]'s
//! default (use [`LogStore::append_at`] to pass time in), no printing:
//! the server crate receives and maps errors to responses, the CLI schedules
//! [`LogStore::maintain`]. Personal data is redacted by the caller before
//! `append`; the store writes exactly what it is given and keeps no copy of
//! request bodies.

pub mod block;
mod chunk;
mod codec;
pub mod compact;
pub mod push;
mod store;

pub use block::{BlockError, BlockMeta};
pub use push::{DecodeOptions, PushEntry, PushError, PushStream};
pub use store::{
    AppendStats, CompactionReport, Error, IndexStats, LogStore, LogStoreOptions, LogStoreStats, MaintainReport,
    RejectReason, Rejection, ReplayStats,
};
pub use wal::FsyncPolicy;
