//! What Grafana's Logs Drilldown asks Loki to detect: the fields of log lines
//! (`/loki/api/v1/detected_fields`) and the stream labels worth offering
//! (`/loki/api/v1/detected_labels`).
//!
//! Key types: [`FieldDetector`] (feed entries; each line is parsed as JSON,
//! else as logfmt, as Loki does, and structured metadata counts too; every
//! field keeps its distinct values, the parsers that found it and a type
//! inferred from all its values: `int`, `float`, `boolean`, `duration`,
//! `bytes` or `string`) and [`detect_labels`] (each label's cardinality,
//! leaving out labels whose values are all identifiers, numbers or UUIDs,
//! unless they are boolean-like or one of Loki's static labels `cluster`,
//! `namespace`, `instance`, `pod`). Cardinalities are exact distinct counts
//! (Loki estimates them with a sketch). Pure CPU work: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet};

use tsdb::Labels;

/// One detected field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedField {
    pub label: String,
    /// `string`, `int`, `float`, `boolean`, `duration` or `bytes`.
    pub field_type: &'static str,
    pub cardinality: u64,
    /// `json`, `logfmt`; empty for structured metadata.
    pub parsers: Vec<&'static str>,
}

#[derive(Default)]
struct FieldValues {
    values: BTreeSet<String>,
    parsers: BTreeSet<&'static str>,
}

/// Collects fields from entries; see the module documentation.
pub struct FieldDetector {
    limit: usize,
    fields: BTreeMap<String, FieldValues>,
}

/// The narrowest type every value fits, in Loki's order of preference.
fn value_type(values: &BTreeSet<String>) -> &'static str {
    let all = |check: &dyn Fn(&str) -> bool| !values.is_empty() && values.iter().all(|value| check(value));
    if all(&|value| value.parse::<i64>().is_ok()) {
        "int"
    } else if all(&|value| value.parse::<f64>().is_ok()) {
        "float"
    } else if all(&|value| {
        matches!(value, "true" | "false" | "TRUE" | "FALSE" | "True" | "False" | "t" | "f" | "T" | "F")
    }) {
        "boolean"
    } else if all(&|value| crate::units::parse_duration(value).is_some()) {
        "duration"
    } else if all(&|value| crate::units::parse_bytes(value).is_some()) {
        "bytes"
    } else {
        "string"
    }
}

impl FieldDetector {
    /// A detector keeping at most `limit` fields (Loki's `limit`, default 1000).
    pub fn new(limit: usize) -> Self {
        Self { limit, fields: BTreeMap::new() }
    }

    fn insert(&mut self, name: String, value: String, parser: Option<&'static str>) {
        let full = self.fields.len() >= self.limit;
        let field = match self.fields.get_mut(&name) {
            Some(field) => field,
            None if full => return,
            None => self.fields.entry(name).or_default(),
        };
        field.values.insert(value);
        if let Some(parser) = parser {
            field.parsers.insert(parser);
        }
    }

    /// Adds one entry: its structured metadata and the fields of its line.
    pub fn add(&mut self, line: &str, metadata: &[(String, String)]) {
        for (name, value) in metadata {
            self.insert(name.clone(), value.clone(), None);
        }
        let mut parsed: Vec<(String, String)> = Vec::new();
        let trimmed = line.trim_start();
        let json_ok = trimmed.starts_with('{')
            && crate::parsers::json_all(line, &mut |name, value| parsed.push((name, value))).is_ok();
        let parser = if json_ok {
            "json"
        } else {
            parsed.clear();
            if crate::parsers::logfmt(line, true, false, &mut |name, value| parsed.push((name, value))).is_err() {
                return;
            }
            "logfmt"
        };
        for (name, value) in parsed {
            self.insert(name, value, Some(parser));
        }
    }

    /// The fields found, by name.
    pub fn fields(&self) -> Vec<DetectedField> {
        self.fields
            .iter()
            .map(|(label, field)| DetectedField {
                label: label.clone(),
                field_type: value_type(&field.values),
                cardinality: field.values.len() as u64,
                parsers: field.parsers.iter().copied().collect(),
            })
            .collect()
    }
}

/// Labels Loki always offers when they have values.
const STATIC_LABELS: [&str; 4] = ["cluster", "namespace", "instance", "pod"];

fn is_identifier(value: &str) -> bool {
    if value.parse::<f64>().is_ok() {
        return true;
    }
    let hex: Vec<&str> = value.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    hex.len() == 5
        && hex
            .iter()
            .zip(lengths)
            .all(|(part, length)| part.len() == length && part.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether a label whose values are `values` is left out: no values, or
/// identifiers only (a label whose values are only `0` and `1` is kept).
fn rejected(values: &BTreeSet<&str>) -> bool {
    if values.is_empty() {
        return true;
    }
    if values.len() <= 2 && values.iter().all(|value| matches!(*value, "0" | "1")) {
        return false;
    }
    values.iter().all(|value| is_identifier(value))
}

/// `(label, cardinality)` of the labels of `streams` worth offering, by name.
pub fn detect_labels<'a>(streams: impl IntoIterator<Item = &'a Labels>) -> Vec<(String, u64)> {
    let mut values: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for labels in streams {
        for label in labels {
            values.entry(label.name.as_str()).or_default().insert(label.value.as_str());
        }
    }
    values
        .into_iter()
        .filter(|(name, values)| (STATIC_LABELS.contains(name) && !values.is_empty()) || !rejected(values))
        .map(|(name, values)| (name.to_owned(), values.len() as u64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_logfmt_fields_are_typed() {
        let mut detector = FieldDetector::new(100);
        detector.add(r#"{"status":200,"path":"/api","ok":true,"took":"15ms"}"#, &[]);
        detector.add(r#"{"status":404,"path":"/api","ok":false,"took":"2s"}"#, &[]);
        detector.add("level=info latency=0.25 size=10KB user=jana", &[("trace_id".into(), "abc".into())]);
        detector.add("level=warn latency=1 size=2MB user=petr", &[]);
        detector.add("not a structured line at all", &[]);
        let fields: BTreeMap<String, DetectedField> =
            detector.fields().into_iter().map(|field| (field.label.clone(), field)).collect();
        assert_eq!(fields["status"].field_type, "int");
        assert_eq!(fields["status"].cardinality, 2);
        assert_eq!(fields["status"].parsers, ["json"]);
        assert_eq!(fields["ok"].field_type, "boolean");
        assert_eq!(fields["took"].field_type, "duration");
        assert_eq!(fields["latency"].field_type, "float");
        assert_eq!(fields["size"].field_type, "bytes");
        assert_eq!(fields["level"].field_type, "string");
        assert_eq!(fields["level"].parsers, ["logfmt"]);
        assert!(fields["trace_id"].parsers.is_empty());
        assert!(!fields.contains_key("not"));
        let mut limited = FieldDetector::new(1);
        limited.add("a=1 b=2", &[]);
        assert_eq!(limited.fields().len(), 1);
    }

    #[test]
    fn identifier_labels_are_left_out_unless_static() {
        let streams = [
            Labels::from_pairs([("app", "api"), ("pod", "1"), ("request_id", "17"), ("canary", "0")]),
            Labels::from_pairs([("app", "db"), ("pod", "2"), ("request_id", "18"), ("canary", "1")]),
            Labels::from_pairs([("app", "db"), ("trace", "3f2504e0-4f89-11d3-9a0c-0305e82c3301")]),
        ];
        let labels = detect_labels(streams.iter());
        assert_eq!(
            labels,
            [("app".to_owned(), 2), ("canary".to_owned(), 2), ("pod".to_owned(), 2)],
            "request_id and trace hold identifiers only"
        );
    }
}
