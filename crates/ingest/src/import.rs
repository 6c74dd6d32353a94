//! Building blocks from a timestamped exposition file, as `promtool tsdb
//! create-blocks-from openmetrics` does for Prometheus: the same input as
//! [`crate::backfill`] (OpenMetrics with float-second timestamps and `# EOF`,
//! or the Prometheus text format with millisecond timestamps), written as
//! blocks of the durable store's format (`tsdb::block`) into the `blocks`
//! directory of a data directory, where `alertbook run --data` serves them
//! from disk.
//!
//! Key entry point: [`create_blocks`], configured by [`ImportOptions`],
//! returning an [`ImportReport`] or an [`ImportError`].
//!
//! Blocks cover aligned windows `[k * d, (k + 1) * d)` of the block duration
//! `d` (2 h by default), as Prometheus aligns its blocks. Memory holds one
//! window's samples at a time, whatever the input's size or order, at the cost
//! of reading the input once per window, as promtool does: the first pass
//! checks every line, finds the input's time range and keeps the window of the
//! first sample; each further pass keeps the samples of one more window. A
//! window's samples go into a fresh [`tsdb::MemStore`] and are written by the
//! same block writer a checkpoint uses, so the import has no encoder of its own.
//!
//! All or nothing: any bad line (a parse error, a sample without a timestamp,
//! a sample older than its series' previous one in its window, or a second
//! value for a timestamp) stops the import with an error naming the file, the
//! line and why. Blocks are written to a staging directory next to `blocks`
//! (`blocks.import.tmp`), each fsynced, and moved into `blocks` only once all
//! are written; a failed import deletes the staging directory and leaves the
//! data directory as it was. A new block overlapping a block already in the
//! data directory is refused, not merged. Imported blocks name write-ahead log
//! segment 0, so they never hide a log segment from the replay at start.
//!
//! This module reads the input and writes the data directory; it logs nothing
//! and never reads the wall clock.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tsdb::block::{BlockError, BlockFile, BlockMeta};
use tsdb::{MemStore, SeriesRef};

use crate::backfill::{LinesError, for_each_line};
use crate::exposition::{Entry, Format, Parser};

/// Name of the staging directory, beside `blocks` in the data directory.
pub const STAGING_DIRECTORY: &str = "blocks.import.tmp";

/// Staged blocks are numbered from here, above any sequence a data directory
/// reaches, so renaming them to their final sequences never meets another.
const STAGED_SEQUENCES: u64 = 1 << 48;

/// How to import a file.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The input's format [default: OpenMetrics].
    pub format: Format,
    /// Length of each block's aligned window, milliseconds [default: 2 h].
    pub block_duration_ms: i64,
    /// Size of the read blocks; lines longer than this grow the buffer [default: 4 MiB].
    pub read_buffer_bytes: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self { format: Format::OpenMetrics, block_duration_ms: 2 * 60 * 60 * 1000, read_buffer_bytes: 4 << 20 }
    }
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Lines of the input.
    pub lines: u64,
    /// Bytes of the input.
    pub bytes: u64,
    /// Samples written (an exact repeat of a series' last sample is stored once).
    pub samples: u64,
    /// OpenMetrics `_created` samples skipped, as Prometheus does not keep them as series.
    pub created_skipped: u64,
    /// Earliest and latest sample timestamp, milliseconds.
    pub min_time: i64,
    pub max_time: i64,
    /// Times the input was read: one per window holding samples.
    pub passes: u32,
    /// Most samples held in memory at once (one window's).
    pub peak_samples_in_memory: u64,
    /// The blocks added to the data directory, oldest first.
    pub blocks: Vec<BlockMeta>,
}

/// Why an import failed; the data directory is then as it was.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {path} after line {line}: {source}")]
    Read {
        path: PathBuf,
        line: u64,
        #[source]
        source: io::Error,
    },
    #[error("{path}:{line}{}: {message}", column.map(|column| format!(":{column}")).unwrap_or_default())]
    Line { path: PathBuf, line: u64, column: Option<usize>, message: String },
    #[error("{path} holds no samples")]
    Empty { path: PathBuf },
    #[error(
        "the block for {new_min}..{new_max} (ms) overlaps block {existing} ({existing_min}..{existing_max}) already in {directory}: overlapping blocks are refused, not merged"
    )]
    Overlap { directory: PathBuf, new_min: i64, new_max: i64, existing: String, existing_min: i64, existing_max: i64 },
    #[error("block duration must be positive, not {0} ms")]
    BlockDuration(i64),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Block(#[from] BlockError),
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ImportError + '_ {
    move |source| ImportError::Io { path: path.to_owned(), source }
}

/// The aligned window holding `timestamp`: `[start, start + duration)`.
fn window_start(timestamp: i64, duration: i64) -> i64 {
    timestamp.div_euclid(duration).saturating_mul(duration)
}

/// Imports `input` into `data_directory` (created if missing); see the module
/// documentation.
pub fn create_blocks(
    input: &Path,
    data_directory: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    if options.block_duration_ms <= 0 {
        return Err(ImportError::BlockDuration(options.block_duration_ms));
    }
    fs::File::open(input).map_err(|source| ImportError::Open { path: input.to_owned(), source })?;
    let blocks_directory = data_directory.join("blocks");
    let existing = existing_blocks(&blocks_directory)?;
    let created_data_directory = !data_directory.exists();
    fs::create_dir_all(data_directory).map_err(io_error(data_directory))?;
    let staging = data_directory.join(STAGING_DIRECTORY);
    if staging.exists() {
        // What an interrupted import left; never served.
        fs::remove_dir_all(&staging).map_err(io_error(&staging))?;
    }
    fs::create_dir(&staging).map_err(io_error(&staging))?;
    let result = write_staged(input, &staging, &existing, &blocks_directory, options)
        .and_then(|report| publish(&staging, &blocks_directory, data_directory, &report).map(|()| report));
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
        if created_data_directory {
            let _ = fs::remove_dir(data_directory);
        }
    }
    result
}

/// The blocks already in `directory` (their headers only).
fn existing_blocks(directory: &Path) -> Result<Vec<BlockMeta>, ImportError> {
    let listing = tsdb::block::list_blocks(directory)?;
    listing.blocks.iter().map(|(sequence, path)| Ok(*BlockFile::open(path, *sequence)?.meta())).collect()
}

/// Reads `input` once per window and writes each window's block into `staging`.
fn write_staged(
    input: &Path,
    staging: &Path,
    existing: &[BlockMeta],
    blocks_directory: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    let duration = options.block_duration_ms;
    let mut report = ImportReport::default();
    let first = read_pass(input, options, None, &mut report)?;
    let (Some(first_window), Some((min_time, max_time))) = (first.window, first.time_range) else {
        return Err(ImportError::Empty { path: input.to_owned() });
    };
    report.min_time = min_time;
    report.max_time = max_time;
    // Staged under the window's number; published under the data directory's next sequences.
    let first_start = window_start(min_time, duration);
    let sequence_of = |window: i64| STAGED_SEQUENCES + ((window - first_start) / duration) as u64;
    write_window(first, sequence_of(first_window), staging, existing, blocks_directory, &mut report)?;
    let mut window = first_start;
    while window <= max_time {
        if window != first_window {
            let pass = read_pass(input, options, Some(window), &mut report)?;
            write_window(pass, sequence_of(window), staging, existing, blocks_directory, &mut report)?;
        }
        window = window.saturating_add(duration);
    }
    report.blocks.sort_by_key(|meta| meta.min_time);
    let next_sequence = existing.iter().map(|meta| meta.sequence).max().unwrap_or(0) + 1;
    let mut renames = Vec::with_capacity(report.blocks.len());
    for (meta, sequence) in report.blocks.iter_mut().zip(next_sequence..) {
        let to = tsdb::block::block_path(staging, sequence);
        renames.push((tsdb::block::block_path(staging, meta.sequence), to));
        meta.sequence = sequence;
    }
    for (from, to) in &renames {
        fs::rename(from, to).map_err(io_error(to))?;
    }
    Ok(report)
}

/// Writes a pass's window as block `sequence` in `staging`, refusing one that overlaps an existing block.
fn write_window(
    pass: Pass,
    sequence: u64,
    staging: &Path,
    existing: &[BlockMeta],
    blocks_directory: &Path,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    report.peak_samples_in_memory = report.peak_samples_in_memory.max(pass.samples_in_window);
    if pass.samples_in_window == 0 {
        return Ok(());
    }
    report.passes += 1;
    pass.store.cut_for_checkpoint();
    let Some(meta) = tsdb::block::write_block(staging, sequence, 0, &pass.store)? else { return Ok(()) };
    if let Some(other) =
        existing.iter().find(|other| other.min_time <= meta.max_time && meta.min_time <= other.max_time)
    {
        return Err(ImportError::Overlap {
            directory: blocks_directory.to_owned(),
            new_min: meta.min_time,
            new_max: meta.max_time,
            existing: tsdb::block::block_path(blocks_directory, other.sequence).display().to_string(),
            existing_min: other.min_time,
            existing_max: other.max_time,
        });
    }
    report.samples += meta.samples;
    report.blocks.push(meta);
    Ok(())
}

/// Moves the staged blocks into `blocks_directory`: the staging directory is
/// renamed whole when there is no blocks directory yet, else each block is.
fn publish(
    staging: &Path,
    blocks_directory: &Path,
    data_directory: &Path,
    report: &ImportReport,
) -> Result<(), ImportError> {
    tsdb::block::sync_directory(staging)?;
    if !blocks_directory.exists() {
        fs::rename(staging, blocks_directory).map_err(io_error(blocks_directory))?;
        tsdb::block::sync_directory(data_directory)?;
        return Ok(());
    }
    for meta in &report.blocks {
        let from = tsdb::block::block_path(staging, meta.sequence);
        let to = tsdb::block::block_path(blocks_directory, meta.sequence);
        fs::rename(&from, &to).map_err(io_error(&to))?;
    }
    tsdb::block::sync_directory(blocks_directory)?;
    fs::remove_dir(staging).map_err(io_error(staging))?;
    tsdb::block::sync_directory(data_directory)?;
    Ok(())
}

/// One read of the input, keeping the samples of one window.
struct Pass {
    store: MemStore,
    parser: Parser,
    series: hashbrown::HashMap<Box<str>, SeriesRef>,
    duration: i64,
    /// Start of the window kept; the first pass takes the first sample's.
    window: Option<i64>,
    /// Smallest and largest timestamp of every sample read.
    time_range: Option<(i64, i64)>,
    samples_in_window: u64,
    created_skipped: u64,
}

/// Reads `input` whole, keeping the samples of `window` (the first pass: of
/// the first sample's window, checking the end of the input as well).
fn read_pass(
    input: &Path,
    options: &ImportOptions,
    window: Option<i64>,
    report: &mut ImportReport,
) -> Result<Pass, ImportError> {
    let first_pass = window.is_none();
    let file = fs::File::open(input).map_err(|source| ImportError::Open { path: input.to_owned(), source })?;
    let mut pass = Pass {
        store: MemStore::new(),
        parser: Parser::new(options.format),
        series: hashbrown::HashMap::new(),
        duration: options.block_duration_ms,
        window,
        time_range: None,
        samples_in_window: 0,
        created_skipped: 0,
    };
    let bytes = for_each_line(file, options.read_buffer_bytes, |line| pass.read_line(line, input)).map_err(
        |error| match error {
            LinesError::Read(source) => {
                ImportError::Read { path: input.to_owned(), line: pass.parser.line_number(), source }
            }
            LinesError::Visit(error) => error,
        },
    )?;
    if first_pass {
        pass.parser.finish().map_err(|error| ImportError::Line {
            path: input.to_owned(),
            line: error.line,
            column: Some(error.column),
            message: error.kind.to_string(),
        })?;
        report.lines = pass.parser.line_number();
        report.bytes = bytes;
        report.created_skipped = pass.created_skipped;
    }
    pass.series = hashbrown::HashMap::new();
    Ok(pass)
}

impl Pass {
    fn read_line(&mut self, line: &[u8], path: &Path) -> Result<(), ImportError> {
        let line_number = self.parser.line_number() + 1;
        let refused =
            |message: String| ImportError::Line { path: path.to_owned(), line: line_number, column: None, message };
        let sample = match self.parser.parse_line(line) {
            Ok(Entry::Sample(sample)) => sample,
            Ok(_) => return Ok(()),
            Err(error) => {
                return Err(ImportError::Line {
                    path: path.to_owned(),
                    line: error.line,
                    column: Some(error.column),
                    message: error.kind.to_string(),
                });
            }
        };
        if sample.is_created() {
            self.created_skipped += 1;
            return Ok(());
        }
        let Some(timestamp) = sample.timestamp else {
            return Err(refused("sample has no timestamp (blocks are built from timestamped samples only)".into()));
        };
        self.time_range = Some(match self.time_range {
            Some((min, max)) => (min.min(timestamp), max.max(timestamp)),
            None => (timestamp, timestamp),
        });
        let window = *self.window.get_or_insert_with(|| window_start(timestamp, self.duration));
        if window_start(timestamp, self.duration) != window {
            return Ok(());
        }
        let key = sample.series_text();
        let series = match self.series.get(key) {
            Some(series) => series,
            None => {
                let series = self.store.get_or_create_series(&sample.to_labels());
                self.series.entry(Box::from(key)).or_insert(series)
            }
        };
        self.store.append_ref(series, timestamp, sample.value).map_err(|error| refused(error.to_string()))?;
        self.samples_in_window += 1;
        Ok(())
    }
}
