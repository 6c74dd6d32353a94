//! A parser for the Prometheus text exposition format 0.0.4 and OpenMetrics 1.0
//! text, one line at a time.
//!
//! Key types: [`Parser`], which keeps the little state the formats need (the
//! current metric family, whether `# EOF` was seen) and reusable buffers;
//! [`Entry`], what one line turned out to be; [`SampleRef`], a sample whose
//! metric name and labels borrow from the line (or, when a value held escapes,
//! from the parser's scratch buffer), so parsing a line allocates nothing; and
//! [`ParseError`], which carries a 1-based line and column and a typed
//! [`ParseErrorKind`].
//!
//! Both formats are handled: metric and label names in the legacy charset or as
//! UTF-8 quoted strings (`{"my.metric", "my.label"="v"}`), label value escapes
//! (`\\`, `\"`, `\n`), values `NaN`, `+Inf`, `-Inf` and decimal floats,
//! timestamps (integer milliseconds in the text format, float seconds in
//! OpenMetrics, both reported in milliseconds), and OpenMetrics exemplars, which
//! are validated and skipped. The parser is strict where Prometheus is: invalid
//! names, duplicate label names, unknown escapes, malformed values and
//! timestamps, repeated metadata, and in OpenMetrics blank lines, unknown
//! comments, a missing `# EOF` ([`Parser::finish`]) and anything after it.
//!
//! It does not check the semantics of families (that a histogram's buckets are
//! cumulative, or that a counter only grows), and it does not build label sets:
//! [`SampleRef::to_labels`] does that on request, so a caller that caches series
//! by [`SampleRef::series_text`] pays for it once per series.

use std::collections::BTreeMap;
use std::fmt;

use tsdb::{Labels, METRIC_NAME};

/// The text format of an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// The Prometheus text exposition format 0.0.4 (`text/plain; version=0.0.4`).
    PrometheusText,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    /// The format a `Content-Type` header value announces; anything that is not
    /// OpenMetrics is read as the Prometheus text format, as Prometheus does.
    pub fn from_content_type(content_type: &str) -> Self {
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
            Self::OpenMetrics
        } else {
            Self::PrometheusText
        }
    }
}

/// The type of a metric family, from its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    Info,
    StateSet,
    /// `unknown` in OpenMetrics, `untyped` in the text format, or no `# TYPE` line.
    #[default]
    Unknown,
}

impl MetricType {
    /// The type named `word` in `format`, if that format knows it.
    pub fn parse(word: &str, format: Format) -> Option<Self> {
        let metric_type = match word {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "summary" => Self::Summary,
            "untyped" if format == Format::PrometheusText => Self::Unknown,
            "unknown" if format == Format::OpenMetrics => Self::Unknown,
            "gaugehistogram" if format == Format::OpenMetrics => Self::GaugeHistogram,
            "info" if format == Format::OpenMetrics => Self::Info,
            "stateset" if format == Format::OpenMetrics => Self::StateSet,
            _ => return None,
        };
        Some(metric_type)
    }

    /// The OpenMetrics spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::GaugeHistogram => "gaugehistogram",
            Self::Summary => "summary",
            Self::Info => "info",
            Self::StateSet => "stateset",
            Self::Unknown => "unknown",
        }
    }

    /// Suffixes a sample name may add to the family name for this type.
    fn sample_suffixes(self) -> &'static [&'static str] {
        match self {
            Self::Counter => &["_total", "_created"],
            Self::Histogram => &["_bucket", "_count", "_sum", "_created"],
            Self::GaugeHistogram => &["_bucket", "_gcount", "_gsum"],
            Self::Summary => &["_count", "_sum", "_created"],
            Self::Info => &["_info"],
            Self::Gauge | Self::StateSet | Self::Unknown => &[],
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is known about one metric family from its metadata lines.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FamilyMetadata {
    pub metric_type: MetricType,
    pub help: Option<String>,
    pub unit: Option<String>,
}

/// A parse error at a 1-based line and column (columns count characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct ParseError {
    pub line: u64,
    pub column: usize,
    pub kind: ParseErrorKind,
}

/// What went wrong in a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    #[error("invalid metric name")]
    InvalidMetricName,
    #[error("invalid label name")]
    InvalidLabelName,
    #[error("empty quoted name")]
    EmptyQuotedName,
    #[error("missing metric name")]
    MissingMetricName,
    #[error("metric name given twice")]
    DuplicateMetricName,
    #[error("expected '=' after label name")]
    ExpectedEquals,
    #[error("expected '\"' to start the label value")]
    ExpectedLabelValue,
    #[error("expected ',' or '}}' after label value")]
    ExpectedCommaOrBrace,
    #[error("unterminated quoted string")]
    UnterminatedString,
    #[error("unterminated label set")]
    UnterminatedLabelSet,
    #[error("invalid escape sequence '\\{0}' (allowed: \\\\, \\\", \\n)")]
    InvalidEscape(char),
    #[error("duplicate label {0:?}")]
    DuplicateLabel(String),
    #[error("expected a space before the value")]
    ExpectedSpace,
    #[error("missing value")]
    MissingValue,
    #[error("invalid value {0:?}")]
    InvalidValue(String),
    #[error("invalid timestamp {0:?}")]
    InvalidTimestamp(String),
    #[error("unexpected text after the sample")]
    TrailingText,
    #[error("exemplars are only allowed in OpenMetrics")]
    ExemplarNotAllowed,
    #[error("invalid exemplar: {0}")]
    InvalidExemplar(&'static str),
    #[error("exemplar labels are {0} characters long, more than the 128 allowed")]
    ExemplarLabelsTooLong(usize),
    #[error("invalid metric type {0:?}")]
    InvalidMetricType(String),
    #[error("missing metric type")]
    MissingMetricType,
    #[error("second {kind} line for metric family {family:?}")]
    DuplicateMetadata { kind: &'static str, family: String },
    #[error("metric family {0:?} is not contiguous: metadata after its samples or a second group of its lines")]
    FamilyNotContiguous(String),
    #[error("empty line (not allowed in OpenMetrics)")]
    EmptyLine,
    #[error("unknown comment (OpenMetrics allows only # HELP, # TYPE, # UNIT and # EOF)")]
    InvalidComment,
    #[error("content after # EOF")]
    ContentAfterEof,
    #[error("missing # EOF at the end of the input")]
    MissingEof,
}

/// Where a borrowed string lives: in the line, or in the parser's scratch buffer
/// (when escapes had to be resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    in_scratch: bool,
    start: u32,
    end: u32,
}

impl Piece {
    fn line(start: usize, end: usize) -> Self {
        Self { in_scratch: false, start: start as u32, end: end as u32 }
    }

    fn resolve<'a>(self, line: &'a str, scratch: &'a str) -> &'a str {
        let source = if self.in_scratch { scratch } else { line };
        &source[self.start as usize..self.end as usize]
    }
}

/// One sample, borrowing its names and label values.
#[derive(Clone, Copy)]
pub struct SampleRef<'a> {
    line: &'a str,
    scratch: &'a str,
    name: Piece,
    labels: &'a [(Piece, Piece)],
    series_end: usize,
    /// Milliseconds since the epoch, when the line had a timestamp.
    pub timestamp: Option<i64>,
    pub value: f64,
    /// The type of the family the sample belongs to (`Unknown` when the
    /// sample's name does not belong to the family of the last `# TYPE` line).
    pub metric_type: MetricType,
    /// The OpenMetrics exemplar of the line, if it had one.
    pub exemplar: Option<&'a ParsedExemplar>,
}

/// An OpenMetrics exemplar (`# {trace_id="..."} value [timestamp]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedExemplar {
    pub labels: Labels,
    pub value: f64,
    /// Milliseconds since the epoch, when the exemplar had a timestamp.
    pub timestamp: Option<i64>,
}

impl<'a> SampleRef<'a> {
    /// The metric name (the value of `__name__`).
    pub fn metric_name(&self) -> &'a str {
        self.name.resolve(self.line, self.scratch)
    }

    /// The labels other than `__name__`, in the order written.
    pub fn labels(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + 'a {
        let (line, scratch) = (self.line, self.scratch);
        self.labels.iter().map(move |(name, value)| (name.resolve(line, scratch), value.resolve(line, scratch)))
    }

    /// The text of the line that names the series (metric name and label set, as
    /// written). Equal texts mean equal series, so it makes a cheap cache key.
    pub fn series_text(&self) -> &'a str {
        &self.line[..self.series_end]
    }

    /// True for an OpenMetrics `_created` sample of a counter, histogram or
    /// summary: the family's creation time rather than a series of its own.
    pub fn is_created(&self) -> bool {
        matches!(self.metric_type, MetricType::Counter | MetricType::Histogram | MetricType::Summary)
            && self.metric_name().ends_with("_created")
    }

    /// The full label set, `__name__` included. Labels with empty values are
    /// dropped, as Prometheus does.
    pub fn to_labels(&self) -> Labels {
        Labels::from_pairs(std::iter::once((METRIC_NAME, self.metric_name())).chain(self.labels()))
    }
}

impl fmt::Debug for SampleRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SampleRef")
            .field("name", &self.metric_name())
            .field("labels", &self.labels().collect::<Vec<_>>())
            .field("timestamp", &self.timestamp)
            .field("value", &self.value)
            .finish()
    }
}

/// What one line held.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'a> {
    Sample(SampleRef<'a>),
    /// `# HELP family text`, the text unescaped.
    Help {
        family: &'a str,
        help: &'a str,
    },
    /// `# TYPE family type`.
    Type {
        family: &'a str,
        metric_type: MetricType,
    },
    /// `# UNIT family unit` (OpenMetrics only).
    Unit {
        family: &'a str,
        unit: &'a str,
    },
    /// `# EOF` (OpenMetrics only).
    Eof,
    /// A blank line or a comment that carries nothing (text format only).
    Nothing,
}

/// A failure inside a line: byte offset and kind; the line number and column
/// are added by [`Parser::parse_line`].
type LineResult<T> = Result<T, (usize, ParseErrorKind)>;

/// The family metadata lines seen so far apply to.
#[derive(Debug, Default)]
struct CurrentFamily {
    name: String,
    metric_type: MetricType,
    has_type: bool,
    has_help: bool,
    has_unit: bool,
    has_samples: bool,
}

/// A line-at-a-time parser; see the module documentation.
#[derive(Debug)]
pub struct Parser {
    format: Format,
    line_number: u64,
    seen_eof: bool,
    family: CurrentFamily,
    /// Families whose metadata is complete (OpenMetrics only: a family must not reappear).
    finished_families: hashbrown::HashSet<String>,
    labels: Vec<(Piece, Piece)>,
    exemplar_labels: Vec<(Piece, Piece)>,
    /// The exemplar of the line last parsed.
    exemplar: Option<ParsedExemplar>,
    scratch: String,
}

impl Parser {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            line_number: 0,
            seen_eof: false,
            family: CurrentFamily::default(),
            finished_families: hashbrown::HashSet::new(),
            labels: Vec::with_capacity(16),
            exemplar_labels: Vec::new(),
            exemplar: None,
            scratch: String::new(),
        }
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The 1-based number of the last line handed to [`Parser::parse_line`].
    pub fn line_number(&self) -> u64 {
        self.line_number
    }

    /// True once an OpenMetrics `# EOF` line was parsed.
    pub fn seen_eof(&self) -> bool {
        self.seen_eof
    }

    /// Parses the next line, given without its `\n`. Lines are numbered from 1
    /// in the order given; a failed line still counts.
    pub fn parse_line<'p>(&'p mut self, line: &'p [u8]) -> Result<Entry<'p>, ParseError> {
        self.line_number += 1;
        let line_number = self.line_number;
        let text = match std::str::from_utf8(line) {
            Ok(text) => text,
            Err(error) => {
                let valid = std::str::from_utf8(&line[..error.valid_up_to()]).unwrap_or("");
                return Err(ParseError {
                    line: line_number,
                    column: valid.chars().count() + 1,
                    kind: ParseErrorKind::InvalidUtf8,
                });
            }
        };
        let text = match self.format {
            Format::PrometheusText => text.strip_suffix('\r').unwrap_or(text),
            Format::OpenMetrics => text,
        };
        match self.parse_text_line(text) {
            Ok(kind) => Ok(self.entry(text, kind)),
            Err((offset, kind)) => Err(ParseError { line: line_number, column: column_of(text, offset), kind }),
        }
    }

    /// Checks the end of the input: OpenMetrics requires `# EOF`.
    pub fn finish(&self) -> Result<(), ParseError> {
        if self.format == Format::OpenMetrics && !self.seen_eof {
            return Err(ParseError { line: self.line_number + 1, column: 1, kind: ParseErrorKind::MissingEof });
        }
        Ok(())
    }

    /// Builds the borrowed entry once the mutable parsing work is done.
    fn entry<'p>(&'p self, line: &'p str, parsed: ParsedLine) -> Entry<'p> {
        let scratch = self.scratch.as_str();
        match parsed {
            ParsedLine::Sample { name, series_end, timestamp, value, metric_type } => Entry::Sample(SampleRef {
                line,
                scratch,
                name,
                labels: &self.labels,
                series_end,
                timestamp,
                value,
                metric_type,
                exemplar: self.exemplar.as_ref(),
            }),
            ParsedLine::Help { family, help } => {
                Entry::Help { family: family.resolve(line, scratch), help: help.resolve(line, scratch) }
            }
            ParsedLine::Type { family, metric_type } => {
                Entry::Type { family: family.resolve(line, scratch), metric_type }
            }
            ParsedLine::Unit { family, unit } => {
                Entry::Unit { family: family.resolve(line, scratch), unit: unit.resolve(line, scratch) }
            }
            ParsedLine::Eof => Entry::Eof,
            ParsedLine::Nothing => Entry::Nothing,
        }
    }

    fn parse_text_line(&mut self, line: &str) -> LineResult<ParsedLine> {
        if self.seen_eof {
            return Err((0, ParseErrorKind::ContentAfterEof));
        }
        self.scratch.clear();
        self.labels.clear();
        self.exemplar = None;
        let bytes = line.as_bytes();
        let start = match self.format {
            Format::PrometheusText => skip_blanks(bytes, 0),
            Format::OpenMetrics => 0,
        };
        if start == bytes.len() {
            return match self.format {
                Format::PrometheusText => Ok(ParsedLine::Nothing),
                Format::OpenMetrics => Err((0, ParseErrorKind::EmptyLine)),
            };
        }
        if bytes[start] == b'#' {
            return self.parse_comment(line, start);
        }
        self.parse_sample(line, start)
    }

    fn parse_comment(&mut self, line: &str, start: usize) -> LineResult<ParsedLine> {
        let bytes = line.as_bytes();
        if self.format == Format::OpenMetrics {
            if line == "# EOF" {
                self.seen_eof = true;
                return Ok(ParsedLine::Eof);
            }
            let keyword = line.get(..7);
            let kind = match keyword {
                Some("# HELP ") => MetadataKind::Help,
                Some("# TYPE ") => MetadataKind::Type,
                Some("# UNIT ") => MetadataKind::Unit,
                _ => return Err((0, ParseErrorKind::InvalidComment)),
            };
            return self.parse_metadata(line, 7, kind);
        }
        // Text format: `#`, blanks, then HELP or TYPE and a blank; anything else is a comment.
        let keyword_start = skip_blanks(bytes, start + 1);
        if keyword_start == start + 1 {
            return Ok(ParsedLine::Nothing);
        }
        let keyword_end = scan_while(bytes, keyword_start, |byte| byte != b' ' && byte != b'\t');
        let kind = match &line[keyword_start..keyword_end] {
            "HELP" => MetadataKind::Help,
            "TYPE" => MetadataKind::Type,
            _ => return Ok(ParsedLine::Nothing),
        };
        let name_start = skip_blanks(bytes, keyword_end);
        if name_start == keyword_end {
            return Ok(ParsedLine::Nothing);
        }
        self.parse_metadata(line, name_start, kind)
    }

    fn parse_metadata(&mut self, line: &str, name_start: usize, kind: MetadataKind) -> LineResult<ParsedLine> {
        let bytes = line.as_bytes();
        let (family, after_name) = if bytes.get(name_start) == Some(&b'"') {
            let (piece, end) = parse_quoted(line, name_start, &mut self.scratch)?;
            if piece.start == piece.end {
                return Err((name_start, ParseErrorKind::EmptyQuotedName));
            }
            (piece, end)
        } else {
            let end = scan_metric_name(bytes, name_start);
            if end == name_start {
                return Err((name_start, ParseErrorKind::InvalidMetricName));
            }
            (Piece::line(name_start, end), end)
        };
        // The rest of the line after one separator (OpenMetrics) or any blanks (text).
        let rest_start = match self.format {
            Format::OpenMetrics => match bytes.get(after_name) {
                None => after_name,
                Some(b' ') => after_name + 1,
                Some(_) => return Err((after_name, ParseErrorKind::InvalidMetricName)),
            },
            Format::PrometheusText => {
                if after_name < bytes.len() && !is_blank(bytes[after_name]) {
                    return Err((after_name, ParseErrorKind::InvalidMetricName));
                }
                skip_blanks(bytes, after_name)
            }
        };
        let family_name = family.resolve(line, &self.scratch).to_owned();
        self.enter_family(&family_name, kind, name_start)?;
        match kind {
            MetadataKind::Help => {
                let help = unescape_help(line, rest_start, self.format, &mut self.scratch);
                Ok(ParsedLine::Help { family, help })
            }
            MetadataKind::Unit => Ok(ParsedLine::Unit { family, unit: Piece::line(rest_start, bytes.len()) }),
            MetadataKind::Type => {
                let word = match self.format {
                    Format::OpenMetrics => &line[rest_start..],
                    Format::PrometheusText => line[rest_start..].trim_end_matches([' ', '\t']),
                };
                if word.is_empty() {
                    return Err((rest_start, ParseErrorKind::MissingMetricType));
                }
                let metric_type = MetricType::parse(word, self.format)
                    .ok_or_else(|| (rest_start, ParseErrorKind::InvalidMetricType(word.to_owned())))?;
                self.family.metric_type = metric_type;
                Ok(ParsedLine::Type { family, metric_type })
            }
        }
    }

    /// Makes `name` the current family for a metadata line, rejecting repeated
    /// metadata and (in OpenMetrics) a family that reappears.
    fn enter_family(&mut self, name: &str, kind: MetadataKind, offset: usize) -> LineResult<()> {
        let openmetrics = self.format == Format::OpenMetrics;
        if self.family.name != name {
            if openmetrics {
                if self.finished_families.contains(name) {
                    return Err((offset, ParseErrorKind::FamilyNotContiguous(name.to_owned())));
                }
                if !self.family.name.is_empty() {
                    self.finished_families.insert(std::mem::take(&mut self.family.name));
                }
            }
            self.family = CurrentFamily { name: name.to_owned(), ..CurrentFamily::default() };
        } else if openmetrics && self.family.has_samples {
            return Err((offset, ParseErrorKind::FamilyNotContiguous(name.to_owned())));
        }
        let seen = match kind {
            MetadataKind::Help => std::mem::replace(&mut self.family.has_help, true),
            MetadataKind::Type => std::mem::replace(&mut self.family.has_type, true),
            MetadataKind::Unit => std::mem::replace(&mut self.family.has_unit, true),
        };
        if seen {
            return Err((offset, ParseErrorKind::DuplicateMetadata { kind: kind.keyword(), family: name.to_owned() }));
        }
        Ok(())
    }

    fn parse_sample(&mut self, line: &str, start: usize) -> LineResult<ParsedLine> {
        let bytes = line.as_bytes();
        let mut name = None;
        let mut position = start;
        if bytes[start] != b'{' {
            let end = scan_metric_name(bytes, start);
            if end == start {
                return Err((start, ParseErrorKind::InvalidMetricName));
            }
            name = Some(Piece::line(start, end));
            position = end;
            if self.format == Format::PrometheusText {
                let after_blanks = skip_blanks(bytes, position);
                if bytes.get(after_blanks) == Some(&b'{') {
                    position = after_blanks;
                }
            }
        }
        if bytes.get(position) == Some(&b'{') {
            position = parse_label_set(line, position + 1, Some(&mut name), &mut self.labels, &mut self.scratch)?;
        }
        let Some(name) = name else {
            return Err((start, ParseErrorKind::MissingMetricName));
        };
        if name.start == name.end {
            return Err((start, ParseErrorKind::MissingMetricName));
        }
        let series_end = position;

        let (value, timestamp) = match self.format {
            Format::PrometheusText => self.parse_text_tail(line, position)?,
            Format::OpenMetrics => self.parse_openmetrics_tail(line, position)?,
        };

        let metric_type = Self::sample_family_type(&mut self.family, name.resolve(line, &self.scratch));
        Ok(ParsedLine::Sample { name, series_end, timestamp, value, metric_type })
    }

    /// `value [timestamp]` after blanks, text format.
    fn parse_text_tail(&mut self, line: &str, position: usize) -> LineResult<(f64, Option<i64>)> {
        let bytes = line.as_bytes();
        let value_start = skip_blanks(bytes, position);
        if value_start == position {
            if position == bytes.len() {
                return Err((position, ParseErrorKind::MissingValue));
            }
            return Err((position, ParseErrorKind::ExpectedSpace));
        }
        if value_start == bytes.len() {
            return Err((value_start, ParseErrorKind::MissingValue));
        }
        let value_end = scan_while(bytes, value_start, |byte| !is_blank(byte));
        let value_text = &line[value_start..value_end];
        let value = parse_float(value_text)
            .ok_or_else(|| (value_start, ParseErrorKind::InvalidValue(value_text.to_owned())))?;
        let timestamp_start = skip_blanks(bytes, value_end);
        if timestamp_start == bytes.len() {
            return Ok((value, None));
        }
        if bytes[timestamp_start] == b'#' {
            return Err((timestamp_start, ParseErrorKind::ExemplarNotAllowed));
        }
        let timestamp_end = scan_while(bytes, timestamp_start, |byte| !is_blank(byte));
        let timestamp_text = &line[timestamp_start..timestamp_end];
        let timestamp = parse_integer_timestamp(timestamp_text)
            .ok_or_else(|| (timestamp_start, ParseErrorKind::InvalidTimestamp(timestamp_text.to_owned())))?;
        let end = skip_blanks(bytes, timestamp_end);
        if end != bytes.len() {
            return Err((end, ParseErrorKind::TrailingText));
        }
        Ok((value, Some(timestamp)))
    }

    /// ` value [ timestamp][ # exemplar]`, OpenMetrics: single spaces.
    fn parse_openmetrics_tail(&mut self, line: &str, position: usize) -> LineResult<(f64, Option<i64>)> {
        let bytes = line.as_bytes();
        match bytes.get(position) {
            Some(b' ') => {}
            None => return Err((position, ParseErrorKind::MissingValue)),
            Some(_) => return Err((position, ParseErrorKind::ExpectedSpace)),
        }
        let value_start = position + 1;
        let value_end = scan_while(bytes, value_start, |byte| byte != b' ');
        let value_text = &line[value_start..value_end];
        if value_text.is_empty() {
            return Err((value_start, ParseErrorKind::MissingValue));
        }
        let value = parse_float(value_text)
            .ok_or_else(|| (value_start, ParseErrorKind::InvalidValue(value_text.to_owned())))?;
        if value_end == bytes.len() {
            return Ok((value, None));
        }
        let next = value_end + 1;
        if bytes.get(next) == Some(&b'#') {
            self.parse_exemplar(line, next)?;
            return Ok((value, None));
        }
        let timestamp_end = scan_while(bytes, next, |byte| byte != b' ');
        let timestamp_text = &line[next..timestamp_end];
        let timestamp = parse_seconds_timestamp(timestamp_text)
            .ok_or_else(|| (next, ParseErrorKind::InvalidTimestamp(timestamp_text.to_owned())))?;
        if timestamp_end == bytes.len() {
            return Ok((value, Some(timestamp)));
        }
        if bytes.get(timestamp_end + 1) == Some(&b'#') {
            self.parse_exemplar(line, timestamp_end + 1)?;
            return Ok((value, Some(timestamp)));
        }
        Err((timestamp_end, ParseErrorKind::TrailingText))
    }

    /// `# {labels} value [timestamp]`, starting at the `#`; validated and kept
    /// for the line's sample.
    fn parse_exemplar(&mut self, line: &str, start: usize) -> LineResult<()> {
        let bytes = line.as_bytes();
        if bytes.get(start + 1) != Some(&b' ') || bytes.get(start + 2) != Some(&b'{') {
            return Err((start, ParseErrorKind::InvalidExemplar("expected '# {' to start it")));
        }
        let mut labels = std::mem::take(&mut self.exemplar_labels);
        labels.clear();
        let result = parse_label_set(line, start + 3, None, &mut labels, &mut self.scratch);
        let length: usize = labels
            .iter()
            .map(|(name, value)| {
                name.resolve(line, &self.scratch).chars().count() + value.resolve(line, &self.scratch).chars().count()
            })
            .sum();
        self.exemplar_labels = labels;
        let labels_end = result?;
        if length > 128 {
            return Err((start + 2, ParseErrorKind::ExemplarLabelsTooLong(length)));
        }
        if bytes.get(labels_end) != Some(&b' ') {
            return Err((labels_end, ParseErrorKind::InvalidExemplar("expected a space before its value")));
        }
        let value_start = labels_end + 1;
        let value_end = scan_while(bytes, value_start, |byte| byte != b' ');
        let Some(value) = parse_float(&line[value_start..value_end]) else {
            return Err((value_start, ParseErrorKind::InvalidExemplar("invalid value")));
        };
        let timestamp = if value_end == bytes.len() {
            None
        } else {
            let timestamp_start = value_end + 1;
            let Some(timestamp) = parse_seconds_timestamp(&line[timestamp_start..]) else {
                return Err((timestamp_start, ParseErrorKind::InvalidExemplar("invalid timestamp")));
            };
            Some(timestamp)
        };
        let labels = Labels::from_pairs(
            self.exemplar_labels
                .iter()
                .map(|(name, value)| (name.resolve(line, &self.scratch), value.resolve(line, &self.scratch))),
        );
        self.exemplar = Some(ParsedExemplar { labels, value, timestamp });
        Ok(())
    }

    /// The type of the current family when `name` is one of its sample names.
    fn sample_family_type(family: &mut CurrentFamily, name: &str) -> MetricType {
        if family.name.is_empty() {
            return MetricType::Unknown;
        }
        let Some(suffix) = name.strip_prefix(family.name.as_str()) else {
            return MetricType::Unknown;
        };
        if suffix.is_empty() || family.metric_type.sample_suffixes().contains(&suffix) {
            family.has_samples = true;
            return family.metric_type;
        }
        MetricType::Unknown
    }
}

/// A parsed line before its pieces are resolved into borrowed strings.
enum ParsedLine {
    Sample { name: Piece, series_end: usize, timestamp: Option<i64>, value: f64, metric_type: MetricType },
    Help { family: Piece, help: Piece },
    Type { family: Piece, metric_type: MetricType },
    Unit { family: Piece, unit: Piece },
    Eof,
    Nothing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetadataKind {
    Help,
    Type,
    Unit,
}

impl MetadataKind {
    fn keyword(self) -> &'static str {
        match self {
            Self::Help => "HELP",
            Self::Type => "TYPE",
            Self::Unit => "UNIT",
        }
    }
}

/// Parses label pairs after a `{` up to and including the `}`; returns the
/// offset after it. With `metric_name` given, a quoted string that is not
/// followed by `=` (or a `__name__` label) names the metric.
fn parse_label_set(
    line: &str,
    mut position: usize,
    mut metric_name: Option<&mut Option<Piece>>,
    labels: &mut Vec<(Piece, Piece)>,
    scratch: &mut String,
) -> LineResult<usize> {
    let bytes = line.as_bytes();
    loop {
        position = skip_blanks(bytes, position);
        match bytes.get(position) {
            None => return Err((position, ParseErrorKind::UnterminatedLabelSet)),
            Some(b'}') => return Ok(position + 1),
            Some(_) => {}
        }
        let name_start = position;
        let quoted = bytes[position] == b'"';
        let label_name = if quoted {
            let (piece, end) = parse_quoted(line, position, scratch)?;
            if piece.start == piece.end {
                return Err((name_start, ParseErrorKind::EmptyQuotedName));
            }
            position = end;
            piece
        } else {
            let end = scan_label_name(bytes, position);
            if end == position {
                return Err((position, ParseErrorKind::InvalidLabelName));
            }
            position = end;
            Piece::line(name_start, end)
        };
        let name_end = position;
        position = skip_blanks(bytes, position);
        if quoted && bytes.get(position) != Some(&b'=') && metric_name.is_some() {
            set_metric_name(metric_name.as_deref_mut(), label_name, name_start)?;
        } else {
            if bytes.get(position) != Some(&b'=') {
                let glued = bytes.get(name_end).is_some_and(|&byte| !matches!(byte, b',' | b'}' | b' ' | b'\t'));
                if !quoted && glued {
                    return Err((name_end, ParseErrorKind::InvalidLabelName));
                }
                return Err((position, ParseErrorKind::ExpectedEquals));
            }
            position = skip_blanks(bytes, position + 1);
            if bytes.get(position) != Some(&b'"') {
                return Err((position, ParseErrorKind::ExpectedLabelValue));
            }
            let (value, end) = parse_quoted(line, position, scratch)?;
            position = end;
            let name_text = label_name.resolve(line, scratch);
            if name_text == METRIC_NAME && metric_name.is_some() {
                set_metric_name(metric_name.as_deref_mut(), value, name_start)?;
            } else {
                let length = label_name.end - label_name.start;
                let duplicate = labels.iter().any(|(existing, _)| {
                    existing.end - existing.start == length && existing.resolve(line, scratch) == name_text
                });
                if duplicate {
                    return Err((name_start, ParseErrorKind::DuplicateLabel(name_text.to_owned())));
                }
                labels.push((label_name, value));
            }
        }
        position = skip_blanks(bytes, position);
        match bytes.get(position) {
            Some(b',') => position += 1,
            Some(b'}') => return Ok(position + 1),
            None => return Err((position, ParseErrorKind::UnterminatedLabelSet)),
            Some(_) => return Err((position, ParseErrorKind::ExpectedCommaOrBrace)),
        }
    }
}

fn set_metric_name(slot: Option<&mut Option<Piece>>, name: Piece, offset: usize) -> LineResult<()> {
    match slot {
        Some(slot @ None) => {
            *slot = Some(name);
            Ok(())
        }
        _ => Err((offset, ParseErrorKind::DuplicateMetricName)),
    }
}

/// Parses a `"`-quoted string starting at `start` (the opening quote); returns
/// its content and the offset after the closing quote. Content without escapes
/// is borrowed from the line; otherwise it is unescaped into `scratch`.
fn parse_quoted(line: &str, start: usize, scratch: &mut String) -> LineResult<(Piece, usize)> {
    let bytes = line.as_bytes();
    debug_assert_eq!(bytes[start], b'"');
    let content_start = start + 1;
    let Some(found) = memchr::memchr2(b'"', b'\\', &bytes[content_start..]) else {
        return Err((start, ParseErrorKind::UnterminatedString));
    };
    let mut position = content_start + found;
    if bytes[position] == b'"' {
        return Ok((Piece::line(content_start, position), position + 1));
    }
    let scratch_start = scratch.len();
    scratch.push_str(&line[content_start..position]);
    loop {
        // `position` is at a backslash.
        let unescaped = match bytes.get(position + 1) {
            Some(b'\\') => '\\',
            Some(b'"') => '"',
            Some(b'n') => '\n',
            Some(_) => {
                let escaped = line[position + 1..].chars().next().unwrap_or('?');
                return Err((position, ParseErrorKind::InvalidEscape(escaped)));
            }
            None => return Err((start, ParseErrorKind::UnterminatedString)),
        };
        scratch.push(unescaped);
        position += 2;
        let Some(found) = memchr::memchr2(b'"', b'\\', &bytes[position..]) else {
            return Err((start, ParseErrorKind::UnterminatedString));
        };
        scratch.push_str(&line[position..position + found]);
        position += found;
        if bytes[position] == b'"' {
            let piece = Piece { in_scratch: true, start: scratch_start as u32, end: scratch.len() as u32 };
            return Ok((piece, position + 1));
        }
    }
}

/// Unescapes a `# HELP` text: `\\` and `\n` (and `\"` in OpenMetrics); other
/// backslashes are kept as written.
fn unescape_help(line: &str, start: usize, format: Format, scratch: &mut String) -> Piece {
    let text = &line[start..];
    if !text.contains('\\') {
        return Piece::line(start, line.len());
    }
    let scratch_start = scratch.len();
    let mut chars = text.chars();
    while let Some(character) = chars.next() {
        if character != '\\' {
            scratch.push(character);
            continue;
        }
        match chars.clone().next() {
            Some('\\') => scratch.push('\\'),
            Some('n') => scratch.push('\n'),
            Some('"') if format == Format::OpenMetrics => scratch.push('"'),
            _ => {
                scratch.push('\\');
                continue;
            }
        }
        chars.next();
    }
    Piece { in_scratch: true, start: scratch_start as u32, end: scratch.len() as u32 }
}

/// Parses a sample value: decimal floats and integers, and (case-insensitively,
/// as Go's `strconv.ParseFloat`) `NaN`, `Inf` and `Infinity` with an optional sign.
pub fn parse_float(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    let (negative, digits) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    // Fast path: up to 15 digits convert exactly.
    if !digits.is_empty() && digits.len() <= 15 && digits.iter().all(u8::is_ascii_digit) {
        let integer = digits.iter().fold(0u64, |accumulator, digit| accumulator * 10 + u64::from(digit - b'0'));
        let value = integer as f64;
        return Some(if negative { -value } else { value });
    }
    if digits.eq_ignore_ascii_case(b"inf") || digits.eq_ignore_ascii_case(b"infinity") {
        return Some(if negative { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    if bytes.eq_ignore_ascii_case(b"nan") {
        return Some(f64::NAN);
    }
    let well_formed = !digits.is_empty()
        && digits.iter().any(u8::is_ascii_digit)
        && bytes.iter().all(|byte| byte.is_ascii_digit() || matches!(byte, b'.' | b'e' | b'E' | b'+' | b'-'));
    if !well_formed {
        return None;
    }
    text.parse::<f64>().ok()
}

/// A text-format timestamp: integer milliseconds.
fn parse_integer_timestamp(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok()
}

/// An OpenMetrics timestamp: float seconds, returned in milliseconds (truncated
/// toward zero). Plain decimals convert exactly; exponent forms go through f64.
pub fn parse_seconds_timestamp(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    let (negative, mut index) = match bytes.first() {
        Some(b'-') => (true, 1),
        Some(b'+') => (false, 1),
        _ => (false, 0),
    };
    let mut seconds: i64 = 0;
    let mut integer_digits = 0;
    while let Some(digit) = bytes.get(index).filter(|byte| byte.is_ascii_digit()) {
        seconds = seconds.checked_mul(10)?.checked_add(i64::from(digit - b'0'))?;
        integer_digits += 1;
        index += 1;
    }
    let mut millis: i64 = 0;
    let mut fraction_digits = 0;
    if bytes.get(index) == Some(&b'.') {
        index += 1;
        while let Some(digit) = bytes.get(index).filter(|byte| byte.is_ascii_digit()) {
            if fraction_digits < 3 {
                millis = millis * 10 + i64::from(digit - b'0');
            }
            fraction_digits += 1;
            index += 1;
        }
    }
    if index == bytes.len() && integer_digits + fraction_digits > 0 {
        for _ in fraction_digits.min(3)..3 {
            millis *= 10;
        }
        let total = seconds.checked_mul(1000)?.checked_add(millis)?;
        return Some(if negative { -total } else { total });
    }
    let seconds = parse_float(text)?;
    let millis = seconds * 1000.0;
    if !millis.is_finite() || millis.abs() >= 9.2e18 {
        return None;
    }
    Some(millis as i64)
}

/// Renders a millisecond timestamp as OpenMetrics float seconds, exactly.
pub fn format_seconds_timestamp(millis: i64) -> String {
    let sign = if millis < 0 { "-" } else { "" };
    let magnitude = millis.unsigned_abs();
    format!("{sign}{}.{:03}", magnitude / 1000, magnitude % 1000)
}

/// Renders a value as both formats spell it (`NaN`, `+Inf`, `-Inf`, or the
/// shortest decimal that round-trips).
pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{value:?}")
    }
}

const fn byte_class(extra: &[u8], digits: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let character = byte as u8;
        table[byte] = character.is_ascii_alphabetic() || character == b'_' || (digits && character.is_ascii_digit());
        byte += 1;
    }
    let mut index = 0;
    while index < extra.len() {
        table[extra[index] as usize] = true;
        index += 1;
    }
    table
}

const METRIC_NAME_FIRST: [bool; 256] = byte_class(b":", false);
const METRIC_NAME_REST: [bool; 256] = byte_class(b":", true);
const LABEL_NAME_FIRST: [bool; 256] = byte_class(b"", false);
const LABEL_NAME_REST: [bool; 256] = byte_class(b"", true);

/// The end of a legacy metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`) starting at `start`.
fn scan_metric_name(bytes: &[u8], start: usize) -> usize {
    match bytes.get(start) {
        Some(&byte) if METRIC_NAME_FIRST[byte as usize] => {
            scan_while(bytes, start + 1, |byte| METRIC_NAME_REST[byte as usize])
        }
        _ => start,
    }
}

/// The end of a legacy label name (`[a-zA-Z_][a-zA-Z0-9_]*`) starting at `start`.
fn scan_label_name(bytes: &[u8], start: usize) -> usize {
    match bytes.get(start) {
        Some(&byte) if LABEL_NAME_FIRST[byte as usize] => {
            scan_while(bytes, start + 1, |byte| LABEL_NAME_REST[byte as usize])
        }
        _ => start,
    }
}

fn scan_while(bytes: &[u8], start: usize, accept: impl Fn(u8) -> bool) -> usize {
    let mut position = start;
    while position < bytes.len() && accept(bytes[position]) {
        position += 1;
    }
    position
}

fn is_blank(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

fn skip_blanks(bytes: &[u8], start: usize) -> usize {
    scan_while(bytes, start, is_blank)
}

/// The 1-based character column of byte `offset` in `line`.
fn column_of(line: &str, offset: usize) -> usize {
    let offset = offset.min(line.len());
    match line.get(..offset) {
        Some(prefix) => prefix.chars().count() + 1,
        None => offset + 1,
    }
}

/// One sample with an owned label set, as [`parse`] returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// The label set, `__name__` included.
    pub labels: Labels,
    /// Milliseconds since the epoch.
    pub timestamp: Option<i64>,
    pub value: f64,
}

/// A whole parsed input: its samples in order and its families' metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub samples: Vec<ParsedSample>,
    pub families: BTreeMap<String, FamilyMetadata>,
}

/// Parses a whole in-memory input (for scrapes and tests; files go through
/// [`Parser`] line by line, see [`crate::backfill`]). Stops at the first error.
pub fn parse(input: &[u8], format: Format) -> Result<Exposition, ParseError> {
    let mut parser = Parser::new(format);
    let mut exposition = Exposition::default();
    for_each_line(input, |line| {
        match parser.parse_line(line)? {
            Entry::Sample(sample) => exposition.samples.push(ParsedSample {
                labels: sample.to_labels(),
                timestamp: sample.timestamp,
                value: sample.value,
            }),
            Entry::Help { family, help } => {
                exposition.families.entry(family.to_owned()).or_default().help = Some(help.to_owned());
            }
            Entry::Type { family, metric_type } => {
                exposition.families.entry(family.to_owned()).or_default().metric_type = metric_type;
            }
            Entry::Unit { family, unit } => {
                exposition.families.entry(family.to_owned()).or_default().unit = Some(unit.to_owned());
            }
            Entry::Eof | Entry::Nothing => {}
        }
        Ok(())
    })?;
    parser.finish()?;
    Ok(exposition)
}

/// Calls `visit` with each `\n`-terminated line of `input` (the last line may
/// lack the `\n`), stopping at the first error.
pub fn for_each_line<E>(input: &[u8], mut visit: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
    let mut rest = input;
    while !rest.is_empty() {
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(end) => (&rest[..end], &rest[end + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        visit(line)?;
        rest = next;
    }
    Ok(())
}
