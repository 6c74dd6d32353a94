//! Loki's push API bodies, decoded into [`PushStream`]s.
//!
//! Two formats, as Loki's distributor accepts them and as Promtail, Grafana
//! Alloy, Fluent Bit's `loki` output and Vector's `loki` sink send them:
//!
//! - JSON (`Content-Type: application/json`):
//!   `{"streams":[{"stream":{"job":"x"},"values":[["<unix ns>","line",{"trace_id":"abc"}]]}]}`,
//!   the optional third element of a value being its structured metadata;
//! - protobuf `logproto.PushRequest`, snappy block compressed
//!   (`Content-Type: application/x-protobuf`, also assumed when the header is
//!   missing, as Loki does), each stream's labels a selector text such as
//!   `{job="x", a="b"}` (parsed by [`parse_labels`]).
//!
//! Either may also carry `Content-Encoding: gzip` or `deflate` (`snappy` and
//! none mean the body is as described above). Bodies and their decompressed
//! forms are bounded by [`DecodeOptions::max_body_bytes`].
//!
//! Every failure is a [`PushError`] that says where (stream and entry index)
//! and what, and maps to the status code Loki answers with
//! ([`PushError::status_code`]). This module only decodes: it does no I/O,
//! keeps no copy of the body, and leaves line size, timestamp range and stream
//! limits to the store. One deliberate difference from Loki: an unknown
//! content type is refused with 415 instead of being tried as protobuf.

use std::io::Read;

use prost::Message;
use tsdb::{Labels, LabelsBuilder};

/// One stream of a push request: its labels and its entries in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushStream {
    pub labels: Labels,
    pub entries: Vec<PushEntry>,
}

/// One log entry of a push request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEntry {
    /// Nanoseconds since the Unix epoch.
    pub timestamp_ns: i64,
    pub line: String,
    /// Structured metadata, `(name, value)` in request order.
    pub metadata: Vec<(String, String)>,
}

/// Limits of decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// The largest body accepted, before and after decompression (413 beyond).
    pub max_body_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self { max_body_bytes: 64 << 20 }
    }
}

/// Why a push body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("request body too large: {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("unsupported content type {0:?}: expected application/json or application/x-protobuf")]
    UnsupportedContentType(String),
    #[error("unsupported content encoding {0:?}: expected gzip, deflate or snappy")]
    UnsupportedContentEncoding(String),
    #[error("invalid {encoding} body: {reason}")]
    Decompression { encoding: &'static str, reason: String },
    #[error("invalid snappy body: {0}")]
    Snappy(String),
    #[error("invalid protobuf body: {0}")]
    Protobuf(String),
    #[error("invalid json body: {0}")]
    Json(String),
    /// A problem with one stream as a whole (its labels).
    #[error("stream {stream}: {reason}")]
    Stream { stream: usize, reason: String },
    /// A problem with one entry.
    #[error("stream {stream}, entry {entry}: {reason}")]
    Entry { stream: usize, entry: usize, reason: String },
}

impl PushError {
    /// The HTTP status Loki answers with: 413 for a body over the limit, 415
    /// for an unsupported content type or encoding, 400 for everything else.
    pub fn status_code(&self) -> u16 {
        match self {
            PushError::TooLarge { .. } => 413,
            PushError::UnsupportedContentType(_) | PushError::UnsupportedContentEncoding(_) => 415,
            _ => 400,
        }
    }

    /// The plain-text message for the response body, as Loki writes it.
    pub fn loki_message(&self) -> String {
        self.to_string()
    }
}

/// The body format a content type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Protobuf,
}

impl Format {
    /// The format for a `Content-Type` header value (parameters such as
    /// `charset` ignored); a missing or empty header means protobuf, as in Loki.
    pub fn from_content_type(content_type: Option<&str>) -> Result<Format, PushError> {
        let essence = content_type.unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Ok(Format::Json),
            "" | "application/x-protobuf" => Ok(Format::Protobuf),
            _ => Err(PushError::UnsupportedContentType(content_type.unwrap_or("").to_owned())),
        }
    }
}

/// Decodes a push body given its `Content-Type` and `Content-Encoding` headers.
pub fn decode(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
    options: &DecodeOptions,
) -> Result<Vec<PushStream>, PushError> {
    let format = Format::from_content_type(content_type)?;
    let limit = options.max_body_bytes;
    if body.len() > limit {
        return Err(PushError::TooLarge { size: body.len(), limit });
    }
    let encoding = content_encoding.unwrap_or("").trim().to_ascii_lowercase();
    let inflated;
    let body = match encoding.as_str() {
        "" | "identity" | "snappy" => body,
        "gzip" | "x-gzip" => {
            inflated = read_limited(flate2::read::MultiGzDecoder::new(body), "gzip", limit)?;
            inflated.as_slice()
        }
        "deflate" => {
            inflated = read_limited(flate2::read::DeflateDecoder::new(body), "deflate", limit)?;
            inflated.as_slice()
        }
        _ => return Err(PushError::UnsupportedContentEncoding(content_encoding.unwrap_or("").to_owned())),
    };
    match format {
        Format::Json => decode_json(body),
        Format::Protobuf => decode_protobuf(body, options),
    }
}

/// Reads a decompressing reader to its end, refusing more than `limit` bytes.
fn read_limited(reader: impl Read, encoding: &'static str, limit: usize) -> Result<Vec<u8>, PushError> {
    let mut out = Vec::new();
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|error| PushError::Decompression { encoding, reason: error.to_string().to_lowercase() })?;
    if out.len() > limit {
        return Err(PushError::TooLarge { size: out.len(), limit });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// JSON

/// Decodes an uncompressed JSON push body.
pub fn decode_json(body: &[u8]) -> Result<Vec<PushStream>, PushError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|error| PushError::Json(error.to_string()))?;
    let serde_json::Value::Object(mut top) = value else {
        return Err(PushError::Json(format!("expected an object, found {}", kind(&value))));
    };
    let streams = match top.remove("streams") {
        None | Some(serde_json::Value::Null) => return Ok(Vec::new()),
        Some(serde_json::Value::Array(streams)) => streams,
        Some(other) => return Err(PushError::Json(format!("\"streams\" must be an array, found {}", kind(&other)))),
    };
    streams.into_iter().enumerate().map(|(index, stream)| json_stream(index, stream)).collect()
}

fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn json_stream(stream: usize, value: serde_json::Value) -> Result<PushStream, PushError> {
    let stream_error = |reason: String| PushError::Stream { stream, reason };
    let serde_json::Value::Object(mut object) = value else {
        return Err(stream_error(format!("expected an object, found {}", kind(&value))));
    };
    let labels_object = match object.remove("stream") {
        Some(serde_json::Value::Object(labels)) => labels,
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(other) => return Err(stream_error(format!("\"stream\" must be an object, found {}", kind(&other)))),
    };
    let mut pairs = Vec::with_capacity(labels_object.len());
    for (name, value) in labels_object {
        match value {
            serde_json::Value::String(value) => pairs.push((name, value)),
            other => return Err(stream_error(format!("label {name:?} must be a string, found {}", kind(&other)))),
        }
    }
    let labels = validated_labels(pairs).map_err(stream_error)?;
    let values = match object.remove("values") {
        Some(serde_json::Value::Array(values)) => values,
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(other) => return Err(stream_error(format!("\"values\" must be an array, found {}", kind(&other)))),
    };
    let entries = values
        .into_iter()
        .enumerate()
        .map(|(entry, value)| json_entry(value).map_err(|reason| PushError::Entry { stream, entry, reason }))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PushStream { labels, entries })
}

fn json_entry(value: serde_json::Value) -> Result<PushEntry, String> {
    let serde_json::Value::Array(parts) = value else {
        return Err(format!(
            "expected an array [timestamp, line] or [timestamp, line, metadata], found {}",
            kind(&value)
        ));
    };
    if !(2..=3).contains(&parts.len()) {
        return Err(format!(
            "expected an array [timestamp, line] or [timestamp, line, metadata], found {} elements",
            parts.len()
        ));
    }
    let mut parts = parts.into_iter();
    let timestamp_ns = match parts.next() {
        Some(serde_json::Value::String(text)) => parse_timestamp(&text)?,
        Some(other) => return Err(format!("timestamp must be a string of unix nanoseconds, found {}", kind(&other))),
        None => return Err("missing timestamp".to_owned()),
    };
    let line = match parts.next() {
        Some(serde_json::Value::String(line)) => line,
        Some(other) => return Err(format!("line must be a string, found {}", kind(&other))),
        None => return Err("missing line".to_owned()),
    };
    let metadata = match parts.next() {
        None | Some(serde_json::Value::Null) => Vec::new(),
        Some(serde_json::Value::Object(object)) => {
            let mut metadata = Vec::with_capacity(object.len());
            for (name, value) in object {
                match value {
                    serde_json::Value::String(value) => metadata.push((name, value)),
                    other => {
                        return Err(format!("structured metadata {name:?} must be a string, found {}", kind(&other)));
                    }
                }
            }
            validate_metadata(&metadata)?;
            metadata
        }
        Some(other) => return Err(format!("structured metadata must be an object, found {}", kind(&other))),
    };
    Ok(PushEntry { timestamp_ns, line, metadata })
}

/// Parses a decimal string of unix nanoseconds.
fn parse_timestamp(text: &str) -> Result<i64, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(format!("invalid timestamp {text:?}: expected unix nanoseconds as a decimal string"));
    }
    text.parse::<i64>().map_err(|_| format!("invalid timestamp {text:?}: out of range"))
}

// ---------------------------------------------------------------------------
// protobuf

/// `logproto.PushRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<StreamAdapter>,
}

/// `logproto.StreamAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StreamAdapter {
    /// A selector text such as `{job="x", a="b"}`.
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<EntryAdapter>,
    #[prost(uint64, tag = "3")]
    pub hash: u64,
}

/// `logproto.EntryAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EntryAdapter {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<LabelPairAdapter>,
}

/// `logproto.LabelPairAdapter`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelPairAdapter {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `google.protobuf.Timestamp`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

impl Timestamp {
    /// The timestamp of `timestamp_ns` nanoseconds since the epoch.
    pub fn from_nanos(timestamp_ns: i64) -> Self {
        Self { seconds: timestamp_ns.div_euclid(1_000_000_000), nanos: timestamp_ns.rem_euclid(1_000_000_000) as i32 }
    }
}

/// Encodes a push request the way Promtail and Alloy send it: protobuf, then
/// snappy block compression. For tests, benchmarks and clients.
pub fn encode_protobuf(request: &PushRequest) -> Vec<u8> {
    let bytes = request.encode_to_vec();
    snap::raw::Encoder::new().compress_vec(&bytes).unwrap_or_default()
}

/// Decodes a snappy-compressed protobuf push body.
pub fn decode_protobuf(body: &[u8], options: &DecodeOptions) -> Result<Vec<PushStream>, PushError> {
    let length = snap::raw::decompress_len(body).map_err(|error| PushError::Snappy(error.to_string()))?;
    if length > options.max_body_bytes {
        return Err(PushError::TooLarge { size: length, limit: options.max_body_bytes });
    }
    let bytes = snap::raw::Decoder::new().decompress_vec(body).map_err(|error| PushError::Snappy(error.to_string()))?;
    let request = PushRequest::decode(bytes.as_slice()).map_err(|error| PushError::Protobuf(error.to_string()))?;
    request.streams.into_iter().enumerate().map(|(index, stream)| protobuf_stream(index, stream)).collect()
}

fn protobuf_stream(stream: usize, adapter: StreamAdapter) -> Result<PushStream, PushError> {
    let labels = parse_labels(&adapter.labels).map_err(|reason| PushError::Stream {
        stream,
        reason: format!("invalid labels {:?}: {reason}", adapter.labels),
    })?;
    let entries = adapter
        .entries
        .into_iter()
        .enumerate()
        .map(|(entry, adapter)| protobuf_entry(adapter).map_err(|reason| PushError::Entry { stream, entry, reason }))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PushStream { labels, entries })
}

fn protobuf_entry(adapter: EntryAdapter) -> Result<PushEntry, String> {
    let timestamp = adapter.timestamp.unwrap_or_default();
    if !(0..1_000_000_000).contains(&timestamp.nanos) {
        return Err(format!("invalid timestamp: nanos {} outside 0..999999999", timestamp.nanos));
    }
    let timestamp_ns = timestamp
        .seconds
        .checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(i64::from(timestamp.nanos)))
        .ok_or_else(|| format!("invalid timestamp: {} seconds is out of range", timestamp.seconds))?;
    let metadata: Vec<(String, String)> =
        adapter.structured_metadata.into_iter().map(|pair| (pair.name, pair.value)).collect();
    validate_metadata(&metadata)?;
    Ok(PushEntry { timestamp_ns, line: adapter.line, metadata })
}

// ---------------------------------------------------------------------------
// labels

/// Whether `name` is a valid label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_'))
        && bytes.all(|byte| matches!(byte, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_'))
}

fn validate_metadata(metadata: &[(String, String)]) -> Result<(), String> {
    for (name, _) in metadata {
        if !is_valid_label_name(name) {
            return Err(format!("invalid structured metadata name {name:?}"));
        }
    }
    Ok(())
}

/// Builds stream labels from pairs, checking names, duplicates and emptiness.
fn validated_labels(pairs: Vec<(String, String)>) -> Result<Labels, String> {
    let mut builder = LabelsBuilder::default();
    let mut seen: Vec<&str> = Vec::with_capacity(pairs.len());
    for (name, _) in &pairs {
        if !is_valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if seen.contains(&name.as_str()) {
            return Err(format!("duplicate label name {name:?}"));
        }
        seen.push(name);
    }
    for (name, value) in pairs {
        builder.set(name, value);
    }
    let labels = builder.build();
    if labels.is_empty() {
        return Err("at least one label pair is required per stream".to_owned());
    }
    Ok(labels)
}

/// Parses a stream's labels written as a selector with `=` matchers only, as
/// in the protobuf `labels` field: `{job="x", a="b"}`. Values are Go-quoted
/// (double quotes with backslash escapes) or raw (backticks).
pub fn parse_labels(text: &str) -> Result<Labels, String> {
    let mut parser = SelectorParser { bytes: text.as_bytes(), text, position: 0 };
    let pairs = parser.selector()?;
    validated_labels(pairs)
}

struct SelectorParser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    position: usize,
}

impl SelectorParser<'_> {
    fn skip_space(&mut self) {
        while self.bytes.get(self.position).is_some_and(|byte| byte.is_ascii_whitespace()) {
            self.position += 1;
        }
    }

    fn expect(&mut self, wanted: u8) -> Result<(), String> {
        self.skip_space();
        match self.bytes.get(self.position) {
            Some(&byte) if byte == wanted => {
                self.position += 1;
                Ok(())
            }
            Some(_) => Err(format!("expected {:?} at offset {}", wanted as char, self.position)),
            None => Err(format!("expected {:?} at the end", wanted as char)),
        }
    }

    fn selector(&mut self) -> Result<Vec<(String, String)>, String> {
        self.expect(b'{')?;
        let mut pairs = Vec::new();
        self.skip_space();
        if self.bytes.get(self.position) == Some(&b'}') {
            self.position += 1;
        } else {
            loop {
                let name = self.name()?;
                self.expect(b'=')?;
                if matches!(self.bytes.get(self.position), Some(b'~' | b'=')) {
                    return Err(format!("only = is allowed in stream labels, at offset {}", self.position - 1));
                }
                let value = self.value()?;
                pairs.push((name, value));
                self.skip_space();
                match self.bytes.get(self.position) {
                    Some(b',') => self.position += 1,
                    Some(b'}') => {
                        self.position += 1;
                        break;
                    }
                    Some(_) => return Err(format!("expected ',' or '}}' at offset {}", self.position)),
                    None => return Err("expected '}' at the end".to_owned()),
                }
            }
        }
        self.skip_space();
        if self.position != self.bytes.len() {
            return Err(format!("unexpected text after '}}' at offset {}", self.position));
        }
        Ok(pairs)
    }

    fn name(&mut self) -> Result<String, String> {
        self.skip_space();
        let start = self.position;
        while self.bytes.get(self.position).is_some_and(|&byte| byte.is_ascii_alphanumeric() || byte == b'_') {
            self.position += 1;
        }
        if start == self.position {
            return Err(format!("expected a label name at offset {start}"));
        }
        Ok(self.text[start..self.position].to_owned())
    }

    fn value(&mut self) -> Result<String, String> {
        self.skip_space();
        let start = self.position;
        match self.bytes.get(self.position) {
            Some(b'`') => {
                let rest = &self.text[start + 1..];
                let end = rest.find('`').ok_or_else(|| format!("unterminated raw string at offset {start}"))?;
                self.position = start + 1 + end + 1;
                Ok(rest[..end].to_owned())
            }
            Some(b'"') => self.quoted(),
            _ => Err(format!("expected a quoted label value at offset {start}")),
        }
    }

    /// A Go double-quoted string, the opening quote at the current position.
    fn quoted(&mut self) -> Result<String, String> {
        let start = self.position;
        let mut out = String::new();
        let mut chars = self.text[start + 1..].char_indices();
        while let Some((offset, character)) = chars.next() {
            match character {
                '"' => {
                    self.position = start + 1 + offset + 1;
                    return Ok(out);
                }
                '\n' => return Err(format!("newline in quoted label value at offset {}", start + 1 + offset)),
                '\\' => {
                    let escape_at = start + 1 + offset;
                    let Some((_, escape)) = chars.next() else { break };
                    let simple = match escape {
                        'a' => Some('\x07'),
                        'b' => Some('\x08'),
                        'f' => Some('\x0c'),
                        'n' => Some('\n'),
                        'r' => Some('\r'),
                        't' => Some('\t'),
                        'v' => Some('\x0b'),
                        '\\' => Some('\\'),
                        '"' => Some('"'),
                        '\'' => Some('\''),
                        _ => None,
                    };
                    if let Some(character) = simple {
                        out.push(character);
                        continue;
                    }
                    let digits = match escape {
                        'x' => 2,
                        'u' => 4,
                        'U' => 8,
                        _ => return Err(format!("invalid escape \\{escape} at offset {escape_at}")),
                    };
                    let mut code = 0u32;
                    for _ in 0..digits {
                        let digit = chars
                            .next()
                            .and_then(|(_, digit)| digit.to_digit(16))
                            .ok_or_else(|| format!("invalid escape at offset {escape_at}"))?;
                        code = code * 16 + digit;
                    }
                    let character = char::from_u32(code)
                        .filter(|_| escape != 'x' || code < 0x80)
                        .ok_or_else(|| format!("invalid escape at offset {escape_at}: not a unicode character"))?;
                    out.push(character);
                }
                other => out.push(other),
            }
        }
        Err(format!("unterminated quoted label value at offset {start}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_with_spaces_escapes_and_raw_strings() {
        let labels = parse_labels(r#" { job = "a\"b\\c\n" , path=`C:\x`,z="\u00e9"} "#).unwrap();
        assert_eq!(labels.get("job"), Some("a\"b\\c\n"));
        assert_eq!(labels.get("path"), Some("C:\\x"));
        assert_eq!(labels.get("z"), Some("é"));
    }

    #[test]
    fn labels_errors_say_what_and_where() {
        for (text, expected) in [
            ("{}", "at least one label pair is required per stream"),
            ("", "expected '{' at the end"),
            ("{a=\"b\"", "expected '}' at the end"),
            ("{a=~\"b\"}", "only = is allowed"),
            ("{a=\"b\",a=\"c\"}", "duplicate label name \"a\""),
            ("{1a=\"b\"}", "invalid label name \"1a\""),
            ("{a=\"b}", "unterminated quoted label value"),
            ("{a=\"\\q\"}", "invalid escape \\q"),
            ("{a=\"b\"} x", "unexpected text"),
            ("{a=b}", "expected a quoted label value at offset 3"),
        ] {
            let error = parse_labels(text).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn empty_values_are_dropped_and_an_all_empty_set_is_refused() {
        assert_eq!(parse_labels(r#"{a="", b="x"}"#).unwrap(), Labels::from_pairs([("b", "x")]));
        assert!(parse_labels(r#"{a=""}"#).is_err());
    }

    #[test]
    fn timestamp_round_trips_through_seconds_and_nanos() {
        for ns in [0i64, 1, 999_999_999, 1_700_000_000_123_456_789, -1, -1_000_000_001] {
            let timestamp = Timestamp::from_nanos(ns);
            assert!((0..1_000_000_000).contains(&timestamp.nanos));
            assert_eq!(timestamp.seconds * 1_000_000_000 + i64::from(timestamp.nanos), ns);
        }
    }

    #[test]
    fn content_type_parameters_are_ignored() {
        assert_eq!(Format::from_content_type(Some("application/json; charset=utf-8")), Ok(Format::Json));
        assert_eq!(Format::from_content_type(None), Ok(Format::Protobuf));
        assert_eq!(Format::from_content_type(Some("text/plain")).unwrap_err().status_code(), 415);
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Quotes a value the way Go's `strconv.Quote` does for printable text.
        fn quote(value: &str) -> String {
            let mut out = String::from("\"");
            for character in value.chars() {
                match character {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    other => out.push(other),
                }
            }
            out.push('"');
            out
        }

        proptest! {
            #[test]
            fn selector_text_round_trips(pairs in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,8}", "[^\\p{C}]{1,12}|[\t\n\"\\\\ a-z]{1,6}", 1..6)) {
                let text = format!(
                    "{{{}}}",
                    pairs.iter().map(|(name, value)| format!("{name}={}", quote(value))).collect::<Vec<_>>().join(", ")
                );
                let labels = parse_labels(&text).map_err(|error| TestCaseError::fail(format!("{text}: {error}")))?;
                prop_assert_eq!(labels, Labels::from_pairs(pairs));
            }

            #[test]
            fn arbitrary_text_never_panics(text in "\\PC{0,40}|[{}=\",`\\\\a-z ]{0,40}") {
                let _ = parse_labels(&text);
            }

            #[test]
            fn arbitrary_json_never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
                let _ = decode_json(&body);
                let _ = decode_protobuf(&body, &DecodeOptions::default());
            }
        }
    }
}
