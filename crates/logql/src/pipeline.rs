//! Running a log pipeline over one entry.
//!
//! [`Pipeline`] applies the stages of a [`LogExpr`](crate::ast::LogExpr) in
//! order to an entry and its [`Row`] of labels (stream labels, then structured
//! metadata, then whatever parsers add). It follows Loki's rules: a parsed label
//! that clashes with a stream label is renamed `<name>_extracted`; a failing
//! parser or conversion sets `__error__` (and `__error_details__`) and keeps
//! the entry; numeric, duration and byte filters let errored entries through
//! (only string filters such as `__error__=""` remove them); `unwrap` turns a
//! label into a sample value and removes it from the labels.
//!
//! Structured metadata labels its entry in results (log and metric), as in
//! Loki: `sum by (pii_match_rule) (count_over_time(...))` groups by it. A
//! pipeline of line filters only builds no row for an entry without
//! metadata: the entry keeps its stream labels untouched, which is the fast
//! path of `count_over_time` with `|=`.

use std::borrow::Cow;
use std::sync::LazyLock;

use tsdb::Labels;

use crate::ast::*;
use crate::parsers;
use crate::source::Entry;
use crate::template::Data;
use crate::units::{parse_bytes, parse_duration};

pub const ERROR_LABEL: &str = "__error__";
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";

static ANSI_ESCAPES: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]").unwrap_or_else(|_| unreachable!("constant regex"))
});

/// The labels of an entry while it runs through the pipeline, sorted by name.
#[derive(Debug, Default, Clone)]
pub struct Row {
    labels: Vec<(String, String)>,
}

impl Row {
    /// Starts from a stream's labels and an entry's structured metadata.
    fn reset(&mut self, stream: &Labels, metadata: &[(String, String)]) {
        self.labels.clear();
        self.labels.extend(stream.iter().map(|label| (label.name.clone(), label.value.clone())));
        for (name, value) in metadata {
            let name = if stream.get(name).is_some() { format!("{name}_extracted") } else { name.clone() };
            self.set(name, value.clone());
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|(label, _)| label.as_str().cmp(name))
            .ok()
            .map(|index| self.labels[index].1.as_str())
    }

    /// Sets a label; an empty value removes it.
    pub fn set(&mut self, name: String, value: String) {
        match self.labels.binary_search_by(|(label, _)| label.as_str().cmp(&name)) {
            Ok(index) if value.is_empty() => {
                self.labels.remove(index);
            }
            Ok(index) => self.labels[index].1 = value,
            Err(_) if value.is_empty() => {}
            Err(index) => self.labels.insert(index, (name, value)),
        }
    }

    pub fn delete(&mut self, name: &str) {
        if let Ok(index) = self.labels.binary_search_by(|(label, _)| label.as_str().cmp(name)) {
            self.labels.remove(index);
        }
    }

    pub fn has_error(&self) -> bool {
        self.get(ERROR_LABEL).is_some()
    }

    fn set_error(&mut self, error: &str, details: String) {
        self.set(ERROR_LABEL.to_string(), error.to_string());
        self.set(ERROR_DETAILS_LABEL.to_string(), details);
    }

    /// The labels, sorted by name.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.labels
    }

    pub fn to_labels(&self) -> Labels {
        Labels::from_pairs(self.labels.iter().map(|(name, value)| (name.clone(), value.clone())))
    }
}

/// What an entry looks like after the pipeline.
#[derive(Debug)]
pub struct Processed<'l> {
    pub line: Cow<'l, str>,
    /// Whether the row's labels label the result (otherwise the stream's do).
    pub use_row: bool,
    /// The unwrapped value, when the pipeline ends with `unwrap`.
    pub value: f64,
}

/// A pipeline ready to run; borrows the parsed query.
pub struct Pipeline<'q> {
    stages: &'q [Stage],
    unwrap: Option<&'q Unwrap>,
    needs_row: bool,
    labels_change: bool,
    /// When set, `json` and `logfmt` extract only these labels (Loki's parser
    /// label hints): the caller keeps only some labels and no stage reads the others.
    hints: Option<Vec<String>>,
}

impl<'q> Pipeline<'q> {
    pub fn new(stages: &'q [Stage], unwrap: Option<&'q Unwrap>) -> Self {
        let needs_row = unwrap.is_some() || stages.iter().any(|stage| !matches!(stage, Stage::LineFilter(_)));
        let labels_change = unwrap.is_some() || stages.iter().any(Stage::changes_labels);
        Self { stages, unwrap, needs_row, labels_change, hints: None }
    }

    /// Restricts parsers to the labels a metric query grouped `by (kept)`
    /// can observe: `kept`, the labels filters and `unwrap` read, and the error
    /// labels. Does nothing when a stage could read or move any label.
    pub fn with_hints(mut self, kept: &[String]) -> Self {
        let simple = self.stages.iter().all(|stage| {
            matches!(
                stage,
                Stage::LineFilter(_)
                    | Stage::LabelFilter(_)
                    | Stage::Parser(ParserStage::Json(_))
                    | Stage::Parser(ParserStage::Logfmt { .. })
            )
        });
        if !simple {
            return self;
        }
        let mut names: Vec<String> = kept.to_vec();
        names.push(ERROR_LABEL.to_string());
        names.push(ERROR_DETAILS_LABEL.to_string());
        for stage in self.stages {
            if let Stage::LabelFilter(filter) = stage {
                filter_names(filter, &mut names);
            }
        }
        if let Some(unwrap) = self.unwrap {
            names.push(unwrap.label.clone());
            for filter in &unwrap.filters {
                filter_names(filter, &mut names);
            }
        }
        let stripped: Vec<String> =
            names.iter().filter_map(|name| name.strip_suffix("_extracted")).map(str::to_string).collect();
        names.extend(stripped);
        names.sort();
        names.dedup();
        self.hints = Some(names);
        self
    }

    /// Whether every entry keeps its stream labels (no row is ever built).
    pub fn keeps_stream_labels(&self) -> bool {
        !self.needs_row
    }

    /// Runs the pipeline; `None` when a filter drops the entry.
    pub fn process<'l>(&self, stream: &Labels, entry: &Entry<'l>, row: &mut Row) -> Option<Processed<'l>> {
        let mut line: Cow<'l, str> = Cow::Borrowed(entry.line);
        // Structured metadata labels the entry, as in Loki: a row is built for it.
        let has_metadata = !entry.metadata.is_empty();
        if self.needs_row || has_metadata {
            row.reset(stream, entry.metadata);
        }
        for stage in self.stages {
            match stage {
                Stage::LineFilter(filter) => {
                    if !line_filter_matches(filter, &line) {
                        return None;
                    }
                }
                Stage::Parser(parser) => {
                    if let Some(replaced) = run_parser(parser, stream, &line, row, self.hints.as_deref()) {
                        line = Cow::Owned(replaced);
                    }
                }
                Stage::LabelFilter(filter) => {
                    if !label_filter_matches(filter, row) {
                        return None;
                    }
                }
                Stage::LineFormat(template) => {
                    let rendered = {
                        let lookup = |name: &str| row.get(name).map(str::to_string);
                        let data = Data { label: &lookup, line: &line, timestamp_ns: entry.timestamp_ns };
                        template.render(&data)
                    };
                    match rendered {
                        Ok(text) => line = Cow::Owned(text),
                        Err(message) => row.set_error("TemplateFormatErr", message),
                    }
                }
                Stage::LabelFormat(formats) => {
                    for format in formats {
                        match format {
                            LabelFormat::Rename { to, from } => {
                                let value = row.get(from).unwrap_or("").to_string();
                                row.delete(from);
                                row.set(to.clone(), value);
                            }
                            LabelFormat::Template { name, template } => {
                                let rendered = {
                                    let lookup = |label: &str| row.get(label).map(str::to_string);
                                    let data = Data { label: &lookup, line: &line, timestamp_ns: entry.timestamp_ns };
                                    template.render(&data)
                                };
                                match rendered {
                                    Ok(value) => row.set(name.clone(), value),
                                    Err(message) => row.set_error("TemplateFormatErr", message),
                                }
                            }
                        }
                    }
                }
                Stage::Drop(specs) => {
                    for spec in specs {
                        let drop = match (&spec.matcher, row.get(&spec.name)) {
                            (_, None) => false,
                            (None, Some(_)) => true,
                            (Some(matcher), Some(value)) => matcher.matches(value),
                        };
                        if drop {
                            row.delete(&spec.name);
                        }
                    }
                }
                Stage::Keep(specs) => {
                    let kept: Vec<(String, String)> = row
                        .labels
                        .iter()
                        .filter(|(name, value)| {
                            specs.iter().any(|spec| {
                                spec.name == *name && spec.matcher.as_ref().is_none_or(|matcher| matcher.matches(value))
                            })
                        })
                        .cloned()
                        .collect();
                    row.labels = kept;
                }
                Stage::Decolorize => {
                    if line.contains('\u{1b}') {
                        line = Cow::Owned(ANSI_ESCAPES.replace_all(&line, "").into_owned());
                    }
                }
            }
        }
        let mut value = 0.0;
        if let Some(unwrap) = self.unwrap {
            let text = row.get(&unwrap.label).unwrap_or("");
            let converted = match unwrap.conversion {
                Conversion::Float => text.trim().parse::<f64>().ok(),
                Conversion::Duration => parse_duration(text.trim()).map(|nanoseconds| nanoseconds as f64 / 1e9),
                Conversion::Bytes => parse_bytes(text),
            };
            match converted {
                Some(converted) => value = converted,
                None => {
                    let details = format!("cannot convert {text:?} of label {:?}", unwrap.label);
                    row.set_error("SampleExtractionErr", details);
                }
            }
            for filter in &unwrap.filters {
                if !label_filter_matches(filter, row) {
                    return None;
                }
            }
            row.delete(&unwrap.label);
        }
        let use_row = has_metadata || (self.needs_row && (self.labels_change || row.has_error()));
        Some(Processed { line, use_row, value })
    }
}

fn line_filter_matches(filter: &LineFilter, line: &str) -> bool {
    match filter.op {
        LineFilterOp::Contains => filter.values.iter().any(|value| line.contains(value.as_str())),
        LineFilterOp::NotContains => !filter.values.iter().any(|value| line.contains(value.as_str())),
        LineFilterOp::Match => filter.regexes.iter().any(|regex| regex.is_match(line)),
        LineFilterOp::NotMatch => !filter.regexes.iter().any(|regex| regex.is_match(line)),
    }
}

/// Runs a parser; returns a replacement line (`unpack`'s `_entry`).
fn run_parser(
    parser: &ParserStage,
    stream: &Labels,
    line: &str,
    row: &mut Row,
    hints: Option<&[String]>,
) -> Option<String> {
    let wanted = |name: &str| hints.is_none_or(|hints| hints.binary_search_by(|hint| hint.as_str().cmp(name)).is_ok());
    let mut parsed: Vec<(String, String)> = Vec::new();
    let mut emit = |name: String, value: String| {
        if wanted(&name) {
            parsed.push((name, value));
        }
    };
    let mut replacement = None;
    let result = match parser {
        ParserStage::Json(fields) if fields.is_empty() => {
            parsers::json_wanted(line, &wanted, &mut emit).map_err(|error| ("JSONParserErr", error))
        }
        ParserStage::Json(fields) => {
            parsers::json_fields(line, fields, &mut emit).map_err(|error| ("JSONParserErr", error))
        }
        ParserStage::Logfmt { strict, keep_empty, fields } => {
            if fields.is_empty() {
                parsers::logfmt(line, *strict, *keep_empty, &mut emit).map_err(|error| ("LogfmtParserErr", error))
            } else {
                let mut selected = |key: String, value: String| {
                    for (label, field) in fields {
                        if parsers::sanitize_label_name(field) == key {
                            emit(label.clone(), value.clone());
                        }
                    }
                };
                parsers::logfmt(line, *strict, *keep_empty, &mut selected).map_err(|error| ("LogfmtParserErr", error))
            }
        }
        ParserStage::Regexp(regex) => {
            if let Some(captures) = regex.captures(line) {
                for name in regex.capture_names().flatten() {
                    if let Some(found) = captures.name(name) {
                        emit(name.to_string(), found.as_str().to_string());
                    }
                }
            }
            Ok(())
        }
        ParserStage::Pattern(pattern) => {
            pattern.matches(line, &mut emit);
            Ok(())
        }
        ParserStage::Unpack => match parsers::unpack(line, &mut emit) {
            Ok(entry) => {
                replacement = entry;
                Ok(())
            }
            Err(error) => Err(("JSONParserErr", error)),
        },
    };
    if let Err((error, details)) = result {
        row.set_error(error, details);
        return None;
    }
    for (name, value) in parsed {
        let name = if stream.get(&name).is_some() { format!("{name}_extracted") } else { name };
        if value.is_empty() {
            if let Ok(index) = row.labels.binary_search_by(|(label, _)| label.as_str().cmp(&name)) {
                row.labels.remove(index);
            }
            continue;
        }
        row.set(name, value);
    }
    replacement
}

/// Adds the label names a filter reads.
fn filter_names(filter: &LabelFilter, names: &mut Vec<String>) {
    match filter {
        LabelFilter::And(left, right) | LabelFilter::Or(left, right) => {
            filter_names(left, names);
            filter_names(right, names);
        }
        LabelFilter::String(matcher) => names.push(matcher.name.clone()),
        LabelFilter::Number { name, .. }
        | LabelFilter::Duration { name, .. }
        | LabelFilter::Bytes { name, .. }
        | LabelFilter::Ip { name, .. } => names.push(name.clone()),
    }
}

/// Evaluates a label filter with Loki's error rules.
pub fn label_filter_matches(filter: &LabelFilter, row: &mut Row) -> bool {
    match filter {
        LabelFilter::And(left, right) => label_filter_matches(left, row) && label_filter_matches(right, row),
        LabelFilter::Or(left, right) => label_filter_matches(left, row) || label_filter_matches(right, row),
        LabelFilter::String(matcher) => matcher.matches(row.get(&matcher.name).unwrap_or("")),
        LabelFilter::Ip { name, negated, matcher } => match row.get(name) {
            None => false,
            Some(value) => matcher.matches(value) != *negated,
        },
        LabelFilter::Number { name, op, value } => {
            compare(row, name, *op, *value, |text| text.trim().parse::<f64>().ok())
        }
        LabelFilter::Duration { name, op, seconds } => compare(row, name, *op, *seconds, |text| {
            parse_duration(text.trim()).map(|nanoseconds| nanoseconds as f64 / 1e9)
        }),
        LabelFilter::Bytes { name, op, bytes } => compare(row, name, *op, *bytes, parse_bytes),
    }
}

fn compare(row: &mut Row, name: &str, op: CompareOp, right: f64, convert: impl Fn(&str) -> Option<f64>) -> bool {
    if row.has_error() {
        return true;
    }
    let Some(text) = row.get(name) else { return false };
    match convert(text) {
        Some(left) => op.holds(left, right),
        None => {
            let details = format!("cannot compare {text:?} of label {name:?}");
            row.set_error("LabelFilterErr", details);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Expr;

    type Outcome = (String, Vec<(String, String)>, bool);

    fn run(query: &str, line: &str, metadata: &[(String, String)]) -> Option<Outcome> {
        let Ok(Expr::Log(log)) = crate::parse(query) else { panic!("log query {query}") };
        let pipeline = Pipeline::new(&log.stages, None);
        let stream = Labels::from_pairs([("job", "app"), ("level", "x")]);
        let entry = Entry { timestamp_ns: 1, line, metadata };
        let mut row = Row::default();
        let processed = pipeline.process(&stream, &entry, &mut row)?;
        Some((processed.line.into_owned(), row.pairs().to_vec(), processed.use_row))
    }

    fn label<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
        pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn parsed_labels_clash_with_stream_labels() {
        let (_, labels, use_row) = run(r#"{job="app"} | json"#, r#"{"level":"info","n":3}"#, &[]).expect("kept");
        assert_eq!(label(&labels, "level_extracted"), Some("info"));
        assert_eq!(label(&labels, "level"), Some("x"));
        assert!(use_row);
    }

    #[test]
    fn errors_and_numeric_filters() {
        let (_, labels, _) =
            run(r#"{job="app"} | json | n > 2"#, "not json", &[]).expect("errors pass numeric filters");
        assert_eq!(label(&labels, ERROR_LABEL), Some("JSONParserErr"));
        assert!(run(r#"{job="app"} | json | __error__="" "#, "not json", &[]).is_none());
        assert!(run(r#"{job="app"} | json | n > 5"#, r#"{"n":3}"#, &[]).is_none());
        let (_, labels, _) = run(r#"{job="app"} | json | n > 5"#, r#"{"n":"x"}"#, &[]).expect("kept");
        assert_eq!(label(&labels, ERROR_LABEL), Some("LabelFilterErr"));
    }

    #[test]
    fn metadata_is_visible_to_filters_and_labels_the_entry() {
        let metadata = vec![("rule".to_string(), "email".to_string())];
        let (_, labels, use_row) = run(r#"{job="app"} | rule != """#, "x", &metadata).expect("kept");
        assert!(use_row);
        assert_eq!(label(&labels, "rule"), Some("email"));
        let (_, _, use_row) = run(r#"{job="app"} |= "x""#, "x", &metadata).expect("kept");
        assert!(use_row);
        assert!(run(r#"{job="app"} | rule != """#, "x", &[]).is_none());
    }

    #[test]
    fn formatting_stages() {
        let (line, labels, _) = run(
            r#"{job="app"} | logfmt | line_format "{{.msg | ToUpper}}" | label_format who=user, lvl="{{.level}}!" | drop msg | keep who, lvl, job"#,
            "msg=hi user=bob",
            &[],
        )
        .expect("kept");
        assert_eq!(line, "HI");
        assert_eq!(
            labels,
            vec![("job".into(), "app".into()), ("lvl".into(), "x!".into()), ("who".into(), "bob".into())]
        );
        let (line, _, _) = run(r#"{job="app"} | decolorize"#, "\u{1b}[31mred\u{1b}[0m", &[]).expect("kept");
        assert_eq!(line, "red");
    }
}
