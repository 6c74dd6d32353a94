//! Bulk loading of a timestamped exposition file into a [`tsdb::MemStore`]: the
//! input `promtool tsdb create-blocks-from-openmetrics` takes (OpenMetrics with
//! float-second timestamps and `# EOF`), or the Prometheus text format with
//! millisecond timestamps.
//!
//! Key entry points: [`load_file`] and [`load_reader`], configured by
//! [`BackfillOptions`], returning a [`BackfillReport`]. The input is streamed in
//! large blocks and parsed in place, one line at a time, so memory does not grow
//! with the file; what does grow is the series cache, one entry per distinct
//! series text mapping it to its [`tsdb::SeriesRef`], so a series' labels are
//! built and looked up in the store once, not once per sample.
//!
//! A bad line does not stop the load: parse errors, samples without timestamps
//! and samples the store refuses (out of order, or a second value for a
//! timestamp) are counted, and the first few are kept with their line numbers.
//! Only I/O errors abort. OpenMetrics `_created` samples are skipped unless asked
//! for, as Prometheus does not keep them as series.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use tsdb::{MemStore, SeriesRef};

use crate::exposition::{Entry, Format, ParseError, Parser};

/// How to load a file.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// The input's format [default: OpenMetrics].
    pub format: Format,
    /// How many line errors the report keeps in full [default: 20].
    pub max_reported_errors: usize,
    /// Store OpenMetrics `_created` samples as series of their own [default: false].
    pub include_created_series: bool,
    /// Size of the read blocks; lines longer than this grow the buffer [default: 4 MiB].
    pub read_buffer_bytes: usize,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        Self {
            format: Format::OpenMetrics,
            max_reported_errors: 20,
            include_created_series: false,
            read_buffer_bytes: 4 << 20,
        }
    }
}

/// One refused line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: u64,
    /// 1-based column, for parse errors.
    pub column: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.column {
            Some(column) => write!(f, "line {}, column {}: {}", self.line, column, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Lines read, blank and metadata lines included.
    pub lines: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Samples the store accepted (an exact repeat of a series' last sample is
    /// accepted and stored once).
    pub samples: u64,
    /// Distinct series in the input (by their text as written).
    pub series: usize,
    /// Samples refused for being older than their series' last sample.
    pub out_of_order: u64,
    /// Samples refused for giving a second, different value for a timestamp.
    pub duplicate_timestamps: u64,
    /// Samples refused for having no timestamp.
    pub missing_timestamps: u64,
    /// Lines that did not parse (and a missing OpenMetrics `# EOF`).
    pub parse_errors: u64,
    /// OpenMetrics `_created` samples skipped.
    pub created_skipped: u64,
    /// Earliest accepted timestamp, milliseconds.
    pub min_timestamp: Option<i64>,
    /// Latest accepted timestamp, milliseconds.
    pub max_timestamp: Option<i64>,
    /// The first [`BackfillOptions::max_reported_errors`] refused lines.
    pub errors: Vec<LineError>,
}

impl BackfillReport {
    /// Every refused line or sample.
    pub fn rejected(&self) -> u64 {
        self.out_of_order + self.duplicate_timestamps + self.missing_timestamps + self.parse_errors
    }
}

/// Errors that stop a load.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the input after line {line}: {source}")]
    Read {
        line: u64,
        #[source]
        source: io::Error,
    },
}

/// Loads the file at `path` into `store`; see the module documentation.
pub fn load_file(path: &Path, store: &MemStore, options: &BackfillOptions) -> Result<BackfillReport, Error> {
    let file = std::fs::File::open(path).map_err(|source| Error::Open { path: path.to_owned(), source })?;
    load_reader(file, store, options)
}

/// Loads everything `reader` yields into `store`. The reader is read in large
/// blocks; wrapping it in a `BufReader` gains nothing.
pub fn load_reader(reader: impl Read, store: &MemStore, options: &BackfillOptions) -> Result<BackfillReport, Error> {
    let mut loader = Loader::new(store, options);
    let bytes = for_each_line(reader, options.read_buffer_bytes, |line| {
        loader.load_line(line);
        Ok::<(), Error>(())
    })
    .map_err(|error| match error {
        LinesError::Read(source) => Error::Read { line: loader.parser.line_number(), source },
        LinesError::Visit(error) => error,
    })?;
    loader.report.bytes = bytes;
    Ok(loader.finish())
}

/// Why [`for_each_line`] stopped.
pub(crate) enum LinesError<E> {
    Read(io::Error),
    Visit(E),
}

/// Calls `visit` with each line `reader` yields (without its `\n`), reading in
/// blocks of `buffer_bytes` (at least 64 KiB; a longer line grows the buffer),
/// until the input ends or `visit` fails. Returns the bytes read.
pub(crate) fn for_each_line<E>(
    mut reader: impl Read,
    buffer_bytes: usize,
    mut visit: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<u64, LinesError<E>> {
    let mut buffer = vec![0u8; buffer_bytes.max(64 << 10)];
    let mut filled = 0;
    let mut total = 0u64;
    loop {
        let read = match reader.read(&mut buffer[filled..]) {
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(LinesError::Read(source)),
        };
        total += read as u64;
        let end_of_input = read == 0;
        filled += read;
        let mut start = 0;
        while let Some(length) = memchr::memchr(b'\n', &buffer[start..filled]) {
            visit(&buffer[start..start + length]).map_err(LinesError::Visit)?;
            start += length + 1;
        }
        if end_of_input {
            if start < filled {
                visit(&buffer[start..filled]).map_err(LinesError::Visit)?;
            }
            return Ok(total);
        }
        buffer.copy_within(start..filled, 0);
        filled -= start;
        if filled == buffer.len() {
            buffer.resize(buffer.len() * 2, 0);
        }
    }
}

/// The state of one load.
struct Loader<'s> {
    store: &'s MemStore,
    options: &'s BackfillOptions,
    parser: Parser,
    series: hashbrown::HashMap<Box<str>, SeriesRef>,
    report: BackfillReport,
}

impl<'s> Loader<'s> {
    fn new(store: &'s MemStore, options: &'s BackfillOptions) -> Self {
        Self {
            store,
            options,
            parser: Parser::new(options.format),
            series: hashbrown::HashMap::new(),
            report: BackfillReport::default(),
        }
    }

    fn load_line(&mut self, line: &[u8]) {
        self.report.lines += 1;
        let line_number = self.parser.line_number() + 1;
        let sample = match self.parser.parse_line(line) {
            Ok(Entry::Sample(sample)) => sample,
            Ok(_) => return,
            Err(error) => {
                self.report.parse_errors += 1;
                record_parse_error(&mut self.report, self.options, error);
                return;
            }
        };
        if sample.is_created() && !self.options.include_created_series {
            self.report.created_skipped += 1;
            return;
        }
        let Some(timestamp) = sample.timestamp else {
            self.report.missing_timestamps += 1;
            record(
                &mut self.report,
                self.options,
                LineError {
                    line: line_number,
                    column: None,
                    message: "sample has no timestamp (backfill needs one on every sample)".to_owned(),
                },
            );
            return;
        };
        let key = sample.series_text();
        let series = match self.series.get(key) {
            Some(series) => series,
            None => {
                let series = self.store.get_or_create_series(&sample.to_labels());
                self.series.entry(Box::from(key)).or_insert(series)
            }
        };
        match self.store.append_ref(series, timestamp, sample.value) {
            Ok(()) => {
                self.report.samples += 1;
                self.report.min_timestamp = Some(self.report.min_timestamp.map_or(timestamp, |min| min.min(timestamp)));
                self.report.max_timestamp = Some(self.report.max_timestamp.map_or(timestamp, |max| max.max(timestamp)));
            }
            Err(error) => {
                match error {
                    tsdb::Error::OutOfOrder { .. } => self.report.out_of_order += 1,
                    _ => self.report.duplicate_timestamps += 1,
                }
                record(
                    &mut self.report,
                    self.options,
                    LineError { line: line_number, column: None, message: error.to_string() },
                );
            }
        }
    }

    fn finish(mut self) -> BackfillReport {
        if let Err(error) = self.parser.finish() {
            self.report.parse_errors += 1;
            record_parse_error(&mut self.report, self.options, error);
        }
        self.report.series = self.series.len();
        self.report
    }
}

fn record_parse_error(report: &mut BackfillReport, options: &BackfillOptions, error: ParseError) {
    record(
        report,
        options,
        LineError { line: error.line, column: Some(error.column), message: error.kind.to_string() },
    );
}

fn record(report: &mut BackfillReport, options: &BackfillOptions, error: LineError) {
    if report.errors.len() < options.max_reported_errors {
        report.errors.push(error);
    }
}
