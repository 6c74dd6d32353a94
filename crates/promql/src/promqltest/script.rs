//! Parsing of promqltest scripts into commands.
//!
//! Understands `load`/`load_with_nhcb`, `clear`, `eval instant`/`eval range`
//! (and the legacy `eval_fail`/`eval_warn`/`eval_info`/`eval_ordered`), the
//! `expect` lines, expected series with Prometheus's expanding value notation
//! (`1+2x10`, `_x3`, `stale`, `-2-3x4`, native histograms `{{…}}` with `xN`
//! and `+{{…}}xN`, see [`crate::notation`]), and durations such as `1h5m` or
//! `10s53ms`. It only parses; running is in the sibling `runner` module.

use std::sync::Arc;

use regex::Regex;
use tsdb::{FloatHistogram, Labels, LabelsBuilder, STALE_NAN};

use crate::histogram::parse_go_float;

/// One value of an expanded series: a float, a native histogram, or a gap.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SequenceValue {
    Value(f64),
    Histogram(Arc<FloatHistogram>),
    Omitted,
}

/// A series line: labels and expanded values.
#[derive(Debug, Clone)]
pub(crate) struct SeriesLine {
    pub labels: Labels,
    pub values: Vec<SequenceValue>,
}

/// What an eval line expects besides the series.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MessageMatch {
    Any,
    Exact(String),
    Pattern(String),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Expectations {
    pub fail: Vec<MessageMatch>,
    pub warn: Vec<MessageMatch>,
    pub info: Vec<MessageMatch>,
    pub no_warn: bool,
    pub no_info: bool,
    pub ordered: bool,
    pub string: Option<String>,
    /// `expect range vector from .. to .. step ..`, in milliseconds.
    pub range_vector: Option<(i64, i64, i64)>,
}

#[derive(Debug, Clone)]
pub(crate) enum EvalKind {
    Instant { time: i64 },
    Range { start: i64, end: i64, step: i64 },
}

#[derive(Debug, Clone)]
pub(crate) struct EvalCommand {
    pub line: usize,
    pub query: String,
    pub kind: EvalKind,
    pub expectations: Expectations,
    /// Expected series; a scalar expectation has empty labels and `scalar` set.
    pub series: Vec<SeriesLine>,
    pub scalar: Option<f64>,
    /// Set when the expected output cannot be represented.
    pub unsupported: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Command {
    Load {
        line: usize,
        interval: i64,
        series: Vec<SeriesLine>,
        with_nhcb: bool,
    },
    Clear,
    Eval(Box<EvalCommand>),
    /// A line the parser could not understand.
    Invalid {
        line: usize,
        text: String,
        reason: String,
    },
}

/// Parses a Prometheus duration (`1h30m`, `10s53ms`, `0`) or plain seconds, to milliseconds.
pub(crate) fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if body.is_empty() {
        return None;
    }
    if let Ok(seconds) = body.parse::<f64>() {
        let milliseconds = (seconds * 1000.0).round() as i64;
        return Some(if negative { -milliseconds } else { milliseconds });
    }
    let mut total: i64 = 0;
    let mut rest = body;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return None;
        }
        let number: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_length = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_alphabetic()).len();
        let unit = &rest[..unit_length];
        rest = &rest[unit_length..];
        let factor = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total = total.checked_add(number.checked_mul(factor)?)?;
    }
    Some(if negative { -total } else { total })
}

/// Parses a float as PromQL test files write them (`Inf`, `-Inf`, `NaN`, `1e3`, `0x1f`).
fn parse_number(text: &str) -> Option<f64> {
    let (sign, body) = match text.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, text.strip_prefix('+').unwrap_or(text)),
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    parse_go_float(body).map(|value| sign * value)
}

/// Splits `a+b`/`a-b` (the increment part of `a+bxN`); `b` keeps its sign.
fn split_increment(text: &str) -> Option<(f64, f64)> {
    let bytes = text.as_bytes();
    for index in (1..bytes.len()).rev() {
        let character = bytes[index];
        if (character == b'+' || character == b'-') && !matches!(bytes[index - 1], b'e' | b'E' | b'+' | b'-') {
            let start = parse_number(&text[..index])?;
            let increment_text = &text[index..];
            let increment = parse_number(increment_text.strip_prefix('+').unwrap_or(increment_text))?;
            return Some((start, increment));
        }
    }
    None
}

/// Expands the value notation of one series line.
pub(crate) fn parse_values(text: &str) -> Result<(Vec<SequenceValue>, bool), String> {
    let mut values = Vec::new();
    let mut native = false;
    for token in crate::notation::tokens(text) {
        let token = token.as_str();
        if token.starts_with("{{") {
            native = true;
            let histograms = crate::notation::expand_histograms(token)?;
            values.extend(histograms.into_iter().map(|histogram| SequenceValue::Histogram(Arc::new(histogram))));
            continue;
        }
        if token == "_" {
            values.push(SequenceValue::Omitted);
            continue;
        }
        if let Some(count) = token.strip_prefix("_x") {
            let count: usize = count.parse().map_err(|_| format!("invalid repetition in {token:?}"))?;
            values.extend(std::iter::repeat_n(SequenceValue::Omitted, count));
            continue;
        }
        if token == "stale" {
            values.push(SequenceValue::Value(STALE_NAN));
            continue;
        }
        if let Some(number) = parse_number(token) {
            values.push(SequenceValue::Value(number));
            continue;
        }
        let Some((head, count)) = token.rsplit_once('x') else {
            return Err(format!("invalid value {token:?}"));
        };
        let count: u64 = count.parse().map_err(|_| format!("invalid repetition in {token:?}"))?;
        let (mut current, increment) = match parse_number(head) {
            Some(value) => (value, 0.0),
            None => split_increment(head).ok_or_else(|| format!("invalid value {token:?}"))?,
        };
        for _ in 0..=count {
            values.push(SequenceValue::Value(current));
            current += increment;
        }
    }
    Ok((values, native))
}

/// Reads a quoted string (`"…"`, `'…'` or `` `…` ``) at the start of `text`;
/// returns the unescaped value and the rest.
fn read_quoted(text: &str) -> Result<(String, &str), String> {
    let mut characters = text.char_indices();
    let Some((_, quote)) = characters.next() else {
        return Err("expected a quoted string".to_owned());
    };
    if !matches!(quote, '"' | '\'' | '`') {
        return Err(format!("expected a quoted string at {text:?}"));
    }
    let mut value = String::new();
    while let Some((index, character)) = characters.next() {
        if character == quote {
            return Ok((value, &text[index + character.len_utf8()..]));
        }
        if character == '\\' && quote != '`' {
            let Some((_, escaped)) = characters.next() else {
                break;
            };
            match escaped {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'r' => value.push('\r'),
                '\\' => value.push('\\'),
                '"' => value.push('"'),
                '\'' => value.push('\''),
                'u' => {
                    let hex: String = characters.by_ref().take(4).map(|(_, c)| c).collect();
                    let code = u32::from_str_radix(&hex, 16).map_err(|_| "invalid \\u escape".to_owned())?;
                    value.push(char::from_u32(code).ok_or("invalid \\u escape")?);
                }
                other => {
                    value.push('\\');
                    value.push(other);
                }
            }
            continue;
        }
        value.push(character);
    }
    Err(format!("unterminated string in {text:?}"))
}

fn read_name(text: &str) -> (&str, &str) {
    let length =
        text.len() - text.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':').len();
    (&text[..length], &text[length..])
}

/// Parses `metric{a="b"}` (either part optional) at the start of `text`;
/// returns the labels and the rest of the line.
pub(crate) fn parse_series_descriptor(text: &str) -> Result<(Labels, &str), String> {
    let mut builder = LabelsBuilder::default();
    let (name, mut rest) = read_name(text);
    if !name.is_empty() {
        builder.set(tsdb::METRIC_NAME, name);
    }
    if let Some(inside) = rest.strip_prefix('{') {
        rest = inside.trim_start();
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label_name, after_name) = if rest.starts_with(['"', '\'', '`']) {
                let (quoted, after) = read_quoted(rest)?;
                (quoted, after)
            } else {
                let (plain, after) = read_name(rest);
                (plain.to_owned(), after)
            };
            let after_name = after_name.trim_start();
            let Some(after_equals) = after_name.strip_prefix('=') else {
                // A bare quoted name is the metric name: {"metric.name", a="b"}.
                builder.set(tsdb::METRIC_NAME, label_name);
                rest = after_name.trim_start().strip_prefix(',').unwrap_or(after_name).trim_start();
                continue;
            };
            let (value, after_value) = read_quoted(after_equals.trim_start())?;
            builder.set(label_name, value);
            rest = after_value.trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        }
    }
    if name.is_empty() && !text.starts_with('{') {
        return Err(format!("invalid series descriptor {text:?}"));
    }
    Ok((builder.build(), rest))
}

fn parse_series_line(text: &str) -> Result<SeriesLine, String> {
    let (labels, rest) = parse_series_descriptor(text)?;
    let (values, _) = parse_values(rest)?;
    Ok(SeriesLine { labels, values })
}

fn parse_message_match(rest: &str) -> Result<MessageMatch, String> {
    let rest = rest.trim();
    if rest.is_empty() {
        return Ok(MessageMatch::Any);
    }
    let (kind, message) = rest.split_once(':').ok_or_else(|| format!("invalid expect line {rest:?}"))?;
    let message = message.trim();
    let message = match message.strip_prefix('"').and_then(|inner| inner.strip_suffix('"')) {
        Some(unquoted) => unquoted,
        None => message,
    };
    match kind.trim() {
        "msg" => Ok(MessageMatch::Exact(message.to_owned())),
        "regex" => Ok(MessageMatch::Pattern(message.to_owned())),
        other => Err(format!("unknown expect match type {other:?}")),
    }
}

/// Applies one `expect ...` line.
fn parse_expect(line: &str, expectations: &mut Expectations) -> Result<(), String> {
    let rest = line.strip_prefix("expect").unwrap_or(line).trim_start();
    let (kind, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let (kind, rest) = match kind.split_once(':') {
        Some((kind, message)) => (kind, format!("msg:{message}{rest}")),
        None => (kind, rest.to_owned()),
    };
    match kind {
        "fail" => expectations.fail.push(parse_message_match(&rest)?),
        "warn" => expectations.warn.push(parse_message_match(&rest)?),
        "info" => expectations.info.push(parse_message_match(&rest)?),
        "no_warn" => expectations.no_warn = true,
        "no_info" => expectations.no_info = true,
        "ordered" => expectations.ordered = true,
        "string" => {
            let (value, _) = read_quoted(rest.trim())?;
            expectations.string = Some(value);
        }
        "range" => {
            let pattern =
                Regex::new(r"^vector\s+from\s+(\S+)\s+to\s+(\S+)\s+step\s+(\S+)$").map_err(|e| e.to_string())?;
            let captures = pattern.captures(rest.trim()).ok_or_else(|| format!("invalid expect line {line:?}"))?;
            let duration =
                |index: usize| parse_duration(&captures[index]).ok_or_else(|| format!("invalid duration in {line:?}"));
            expectations.range_vector = Some((duration(1)?, duration(2)?, duration(3)?));
        }
        other => return Err(format!("unknown expectation {other:?}")),
    }
    Ok(())
}

/// Parses a whole script.
pub(crate) fn parse_script(text: &str) -> Vec<Command> {
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let trimmed = line.trim();
            if trimmed.starts_with('#') { String::new() } else { trimmed.to_owned() }
        })
        .collect();
    let instant = Regex::new(r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$").ok();
    let range =
        Regex::new(r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$").ok();
    let mut commands = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let line = &lines[index];
        let line_number = index + 1;
        index += 1;
        if line.is_empty() {
            continue;
        }
        let mut block = Vec::new();
        let starts_command = |text: &str| text == "clear" || text.starts_with("eval") || text.starts_with("load");
        while index < lines.len() && !lines[index].is_empty() && !starts_command(&lines[index]) {
            block.push((index + 1, lines[index].clone()));
            index += 1;
        }
        if line == "clear" {
            commands.push(Command::Clear);
            continue;
        }
        if let Some(rest) = line.strip_prefix("load") {
            let (with_nhcb, interval_text) = match rest.strip_prefix("_with_nhcb") {
                Some(interval) => (true, interval),
                None => (false, rest),
            };
            let Some(interval) = parse_duration(interval_text) else {
                commands.push(Command::Invalid {
                    line: line_number,
                    text: line.clone(),
                    reason: "invalid load interval".to_owned(),
                });
                continue;
            };
            let mut series = Vec::new();
            for (number, text) in &block {
                match parse_series_line(text) {
                    Ok(parsed) => series.push(parsed),
                    Err(reason) => commands.push(Command::Invalid { line: *number, text: text.clone(), reason }),
                }
            }
            commands.push(Command::Load { line: line_number, interval, series, with_nhcb });
            continue;
        }
        let mut expectations = Expectations::default();
        let parsed_kind = if let Some(captures) = instant.as_ref().and_then(|pattern| pattern.captures(line)) {
            let modifier = captures.get(1).map(|m| m.as_str().to_owned());
            let time = captures.get(2).map_or(Some(0), |m| parse_duration(m.as_str()));
            time.map(|time| (modifier, EvalKind::Instant { time }, captures[3].to_owned()))
        } else if let Some(captures) = range.as_ref().and_then(|pattern| pattern.captures(line)) {
            let modifier = captures.get(1).map(|m| m.as_str().to_owned());
            match (parse_duration(&captures[2]), parse_duration(&captures[3]), parse_duration(&captures[4])) {
                (Some(start), Some(end), Some(step)) => {
                    Some((modifier, EvalKind::Range { start, end, step }, captures[5].to_owned()))
                }
                _ => None,
            }
        } else {
            None
        };
        let Some((modifier, kind, query)) = parsed_kind else {
            commands.push(Command::Invalid {
                line: line_number,
                text: line.clone(),
                reason: "unknown command".to_owned(),
            });
            continue;
        };
        match modifier.as_deref() {
            Some("fail") => expectations.fail.push(MessageMatch::Any),
            Some("warn") => expectations.warn.push(MessageMatch::Any),
            Some("info") => expectations.info.push(MessageMatch::Any),
            Some("ordered") => expectations.ordered = true,
            _ => {}
        }
        let mut command = EvalCommand {
            line: line_number,
            query,
            kind,
            expectations,
            series: Vec::new(),
            scalar: None,
            unsupported: None,
        };
        for (number, text) in &block {
            let result = if text.starts_with("expect ") || text == "expect" {
                parse_expect(text, &mut command.expectations)
            } else if let Some(message) = text.strip_prefix("expected_fail_message") {
                command.expectations.fail = vec![MessageMatch::Exact(message.trim().to_owned())];
                Ok(())
            } else if let Some(pattern) = text.strip_prefix("expected_fail_regexp") {
                command.expectations.fail = vec![MessageMatch::Pattern(pattern.trim().to_owned())];
                Ok(())
            } else if let Some(value) = parse_number(text) {
                command.scalar = Some(value);
                Ok(())
            } else {
                parse_series_line(text).map(|series| command.series.push(series))
            };
            if let Err(reason) = result {
                commands.push(Command::Invalid { line: *number, text: text.clone(), reason });
            }
        }
        commands.push(Command::Eval(Box::new(command)));
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(text: &str) -> Vec<f64> {
        parse_values(text)
            .expect("valid values")
            .0
            .into_iter()
            .map(|value| match value {
                SequenceValue::Value(value) => value,
                SequenceValue::Histogram(_) => -1.0,
                SequenceValue::Omitted => -999.0,
            })
            .collect()
    }

    #[test]
    fn expands_series_notation() {
        assert_eq!(floats("1+2x3"), vec![1.0, 3.0, 5.0, 7.0]);
        assert_eq!(floats("-2-3x2"), vec![-2.0, -5.0, -8.0]);
        assert_eq!(floats("5x2"), vec![5.0, 5.0, 5.0]);
        assert_eq!(floats("_x2 1 _"), vec![-999.0, -999.0, 1.0, -999.0]);
        assert_eq!(floats("1e3 -Inf"), vec![1000.0, f64::NEG_INFINITY]);
    }

    #[test]
    fn stale_marker_is_exact() {
        let (values, _) = parse_values("stale").expect("valid values");
        assert!(matches!(values[0], SequenceValue::Value(value) if tsdb::is_stale_nan(value)));
    }

    #[test]
    fn native_histograms_are_flagged() {
        let (values, native) = parse_values("1 {{schema:1 sum:3 count:22 buckets:[5 10 7]}} 2").expect("valid values");
        assert!(native);
        assert_eq!(values.len(), 3);
        assert!(matches!(&values[1], SequenceValue::Histogram(histogram) if histogram.count == 22.0));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h5m"), Some(3_900_000));
        assert_eq!(parse_duration("10s53ms"), Some(10_053));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("-1m"), Some(-60_000));
    }

    #[test]
    fn series_descriptor_with_commas_in_values() {
        let (labels, rest) = parse_series_descriptor(r#"m{a="x, y",b='z'} 1 2"#).expect("valid descriptor");
        assert_eq!(labels.get("a"), Some("x, y"));
        assert_eq!(labels.get("b"), Some("z"));
        assert_eq!(labels.metric_name(), Some("m"));
        assert_eq!(rest.trim(), "1 2");
    }
}
