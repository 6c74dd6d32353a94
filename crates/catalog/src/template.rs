//! Prometheus's alert templates: Go `text/template` syntax (through `gotmpl`)
//! with Prometheus's variables and function map, so that labels and
//! annotations of alerting rules expand as they do in Prometheus.
//!
//! Every template is run behind Prometheus's header
//! `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}`,
//! with the data [`TemplateData`]. The functions are Prometheus's: `humanize`,
//! `humanize1024`, `humanizeDuration`, `humanizePercentage`,
//! `humanizeTimestamp`, `toTime`, `toDuration`, `title`, `toUpper`, `toLower`,
//! `match`, `reReplaceAll`, `stripPort`, `stripDomain`, `parseDuration`,
//! `safeHtml`, `args`, `query`, `first`, `label`, `value`, `strvalue`,
//! `sortByLabel`, `externalURL`, `pathPrefix`, `graphLink`, `tableLink`.
//!
//! This module runs no query itself: `query` calls the [`QueryFunction`] the
//! caller passes in ([`check`] passes one that returns a single empty sample).
//! Known differences from Go: a missing label reads as the empty string only
//! when it is named literally (`$labels.name`, `.Labels.name`); floats print
//! with Rust's shortest form, which differs from Go's `%v` beyond 1e21 and
//! below 1e-4; `tmpl` is not provided.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{MissingKey, Template, TemplateError, Value};

/// The header Prometheus puts before every alert template.
pub const HEADER: &str =
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// One sample of a `query` result, as templates see it (`.Labels`, `.Value`).
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Runs a PromQL query for the `query` template function, at the expansion time.
pub type QueryFunction = Arc<dyn Fn(&str) -> Result<Vec<QuerySample>, String> + Send + Sync>;

/// What a template can read.
#[derive(Clone, Default)]
pub struct TemplateData {
    pub labels: BTreeMap<String, String>,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    pub value: f64,
}

/// An error of a template, located within the template text (1-based; 0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ExpandError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Expands `text` as Prometheus expands an alert's label or annotation.
pub fn expand(
    name: &str,
    text: &str,
    data: &TemplateData,
    query: Option<QueryFunction>,
) -> Result<String, ExpandError> {
    // Fast path: no action, nothing to expand.
    if !text.contains("{{") {
        return Ok(text.to_owned());
    }
    let source = format!("{HEADER}{text}");
    let template = Template::new(name)
        .missing_key(MissingKey::ZeroValue)
        .funcs(function_map(data, query))
        .parse(&source)
        .map_err(|error| located(error, HEADER.len()))?;
    let root = template_data(data, text);
    template.execute_to_string(&root).map_err(|error| located(error, HEADER.len()))
}

/// Parses `text` behind the header with Prometheus's function map, as a
/// load-time check: Prometheus's `ParseTest`, which `promtool check rules`
/// runs. Syntax errors and undefined functions are refused; a call with the
/// wrong number of arguments (`{{ value }}`) parses and fails only when the
/// alert fires, as in Prometheus.
pub fn check(name: &str, text: &str) -> Result<(), ExpandError> {
    if !text.contains("{{") {
        return Ok(());
    }
    let query: QueryFunction = Arc::new(|_| Ok(vec![QuerySample { labels: BTreeMap::new(), value: 0.0 }]));
    let functions = function_map(&TemplateData::default(), Some(query));
    let known = |word: &str| functions.contains_key(word) || GO_BUILTINS.contains(&word);
    undefined_function(text, known).map_or(Ok(()), Err)?;
    undefined_variable(text).map_or(Ok(()), Err)?;
    Template::new(name)
        .missing_key(MissingKey::ZeroValue)
        .funcs(functions.clone())
        .parse(&format!("{HEADER}{text}"))
        .map(|_| ())
        .map_err(|error| located(error, HEADER.len()))
}

/// The first `$name` a template reads that neither the header nor the
/// template declares (`$x :=`, `range $i, $e :=`), as Go's parser refuses it.
fn undefined_variable(original: &str) -> Option<ExpandError> {
    // Only actions declare and read variables: blank the text around them, keeping offsets.
    let mut text = String::with_capacity(original.len());
    let mut inside = false;
    let mut rest = original;
    while !rest.is_empty() {
        let marker = if inside { "}}" } else { "{{" };
        let (part, next) = match rest.find(marker) {
            Some(index) => (&rest[..index + marker.len()], &rest[index + marker.len()..]),
            None => (rest, ""),
        };
        if inside {
            // String literals in an action hold no variables: `{{ printf "$%s" }}`.
            let mut quote: Option<char> = None;
            let mut escaped = false;
            for character in part.chars() {
                let blank = match quote {
                    Some(open) => {
                        if escaped {
                            escaped = false;
                        } else if character == '\\' && open == '"' {
                            escaped = true;
                        } else if character == open {
                            quote = None;
                        }
                        true
                    }
                    None if character == '"' || character == '`' => {
                        quote = Some(character);
                        true
                    }
                    None => false,
                };
                if blank && character != '\n' {
                    text.push_str(&" ".repeat(character.len_utf8()));
                } else {
                    text.push(character);
                }
            }
        } else {
            text.extend(part.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
            // Keep byte offsets: a multi-byte character becomes as many spaces.
            let blanked: usize = part.chars().map(|c| c.len_utf8() - 1).sum();
            text.push_str(&" ".repeat(blanked));
        }
        inside = !inside;
        rest = next;
    }
    let text = text.as_str();
    let variables: Vec<(usize, &str)> = text
        .match_indices('$')
        .map(|(index, _)| {
            let name_length = text[index + 1..]
                .char_indices()
                .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
                .map_or(text.len() - index - 1, |(length, _)| length);
            (index, &text[index + 1..index + 1 + name_length])
        })
        .filter(|(_, name)| !name.is_empty())
        .collect();
    let declared: Vec<&str> = variables
        .iter()
        .filter(|(index, name)| {
            let after = text[index + 1 + name.len()..].trim_start();
            after.starts_with(":=") || after.starts_with('=') || after.starts_with(',')
        })
        .map(|(_, name)| *name)
        .chain(["labels", "externalLabels", "externalURL", "value"])
        .collect();
    let (index, name) = variables.into_iter().find(|(_, name)| !declared.contains(name))?;
    let line = text[..index].matches('\n').count() + 1;
    let column = text[..index].rsplit('\n').next().unwrap_or("").chars().count() + 1;
    Some(ExpandError { line, column, message: format!("undefined variable \"${name}\"") })
}

/// Go's predefined template functions and the words of its action syntax.
const GO_BUILTINS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "html", "js", "urlquery", "call", "eq",
    "ne", "lt", "le", "gt", "ge", "if", "else", "end", "range", "with", "define", "template", "block", "break",
    "continue", "nil", "true", "false",
];

/// The first bare word inside an action that names no function, as Go's
/// template parser refuses it (`function "x" not defined`); words inside
/// strings, fields (`.x`) and variables (`$x`) are not function names.
fn undefined_function(text: &str, known: impl Fn(&str) -> bool) -> Option<ExpandError> {
    let mut rest = text;
    let mut consumed = 0;
    while let Some(start) = rest.find("{{") {
        let action_start = consumed + start + 2;
        let action = &text[action_start..];
        let end = action.find("}}").unwrap_or(action.len());
        let action = &action[..end];
        let mut characters = action.char_indices().peekable();
        let mut previous = ' ';
        while let Some((index, character)) = characters.next() {
            if character == '"' || character == '`' {
                let mut escaped = false;
                for (_, inner) in characters.by_ref() {
                    if character == '"' && inner == '\\' && !escaped {
                        escaped = true;
                        continue;
                    }
                    if inner == character && !escaped {
                        break;
                    }
                    escaped = false;
                }
                previous = character;
                continue;
            }
            if character.is_alphabetic() || character == '_' {
                let mut word_end = index + character.len_utf8();
                while let Some(&(next_index, next)) = characters.peek() {
                    if !(next.is_alphanumeric() || next == '_') {
                        break;
                    }
                    word_end = next_index + next.len_utf8();
                    characters.next();
                }
                let word = &action[index..word_end];
                let is_field_or_variable = previous == '.' || previous == '$' || previous.is_alphanumeric();
                if !is_field_or_variable && !known(word) {
                    let position = action_start + index;
                    let line = text[..position].matches('\n').count() + 1;
                    let column = text[..position].rsplit('\n').next().unwrap_or("").chars().count() + 1;
                    return Some(ExpandError { line, column, message: format!("function {word:?} not defined") });
                }
                previous = 'a';
                continue;
            }
            previous = character;
        }
        consumed = action_start + end;
        rest = &text[consumed.min(text.len())..];
    }
    None
}

fn located(error: TemplateError, header_length: usize) -> ExpandError {
    match error {
        TemplateError::Parse { line, col, message, .. } | TemplateError::Lex { line, col, message, .. } => {
            let column = if line == 1 { col.saturating_sub(header_length).max(1) } else { col };
            ExpandError { line, column, message }
        }
        other => ExpandError { line: 0, column: 0, message: other.to_string() },
    }
}

fn string_map(map: &BTreeMap<String, String>, referenced: &[String]) -> Value {
    let mut entries: BTreeMap<Arc<str>, Value> =
        map.iter().map(|(name, value)| (Arc::from(name.as_str()), Value::String(Arc::from(value.as_str())))).collect();
    // Go's missingkey=zero reads a missing label of a map[string]string as "".
    for name in referenced {
        entries.entry(Arc::from(name.as_str())).or_insert_with(|| Value::String(Arc::from("")));
    }
    Value::Map(Arc::new(entries))
}

/// Label names a template reads literally: `$labels.x`, `.Labels.x` and the like.
fn referenced_names(text: &str, prefixes: &[&str]) -> Vec<String> {
    let mut names = Vec::new();
    for prefix in prefixes {
        let mut rest = text;
        while let Some(index) = rest.find(prefix) {
            rest = &rest[index + prefix.len()..];
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

fn template_data(data: &TemplateData, text: &str) -> Value {
    let labels = referenced_names(text, &["$labels.", ".Labels."]);
    let external = referenced_names(text, &["$externalLabels.", ".ExternalLabels."]);
    let mut root = BTreeMap::new();
    root.insert(Arc::from("Labels"), string_map(&data.labels, &labels));
    root.insert(Arc::from("ExternalLabels"), string_map(&data.external_labels, &external));
    root.insert(Arc::from("ExternalURL"), Value::String(Arc::from(data.external_url.as_str())));
    root.insert(Arc::from("Value"), Value::Float(data.value));
    Value::Map(Arc::new(root))
}

fn exec_error(message: impl Into<String>) -> TemplateError {
    TemplateError::Exec(message.into())
}

fn string_value(text: impl AsRef<str>) -> Value {
    Value::String(Arc::from(text.as_ref()))
}

/// Go's `convertToFloat`: numbers and numeric strings.
fn to_float(value: &Value) -> Result<f64, TemplateError> {
    match value {
        Value::Float(number) => Ok(*number),
        Value::Int(number) => Ok(*number as f64),
        Value::Uint(number) => Ok(*number as f64),
        Value::String(text) => {
            parse_go_float(text).ok_or_else(|| exec_error(format!("can't convert {text:?} to float")))
        }
        other => Err(exec_error(format!("can't convert {} to float", other.type_name()))),
    }
}

fn parse_go_float(text: &str) -> Option<f64> {
    match text.trim() {
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

fn one_argument<'a>(name: &str, arguments: &'a [Value]) -> Result<&'a Value, TemplateError> {
    match arguments {
        [argument] => Ok(argument),
        _ => Err(TemplateError::ArgCount { name: name.into(), expected: 1, got: arguments.len() }),
    }
}

fn string_argument(name: &str, value: &Value) -> Result<String, TemplateError> {
    match value {
        Value::String(text) => Ok(text.to_string()),
        Value::Nil => Ok(String::new()),
        other => Err(exec_error(format!("{name}: expected a string, got {}", other.type_name()))),
    }
}

/// Go's `fmt.Sprintf("%.<precision>g", value)`.
pub fn format_go_g(value: f64, precision: usize) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let precision = precision.max(1);
    let scientific = format!("{:.*e}", precision - 1, value);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if exponent < -4 || exponent >= precision as i32 {
        let mantissa = trim_fraction(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        let decimals = (precision as i32 - 1 - exponent).max(0) as usize;
        trim_fraction(&format!("{value:.decimals$}")).to_owned()
    }
}

fn trim_fraction(text: &str) -> &str {
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { text }
}

fn humanize(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format_go_g(value, 4);
    }
    let mut value = value;
    let mut prefix = "";
    if value.abs() >= 1.0 {
        for candidate in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if value.abs() < 1000.0 {
                break;
            }
            prefix = candidate;
            value /= 1000.0;
        }
    } else {
        for candidate in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if value.abs() >= 1.0 {
                break;
            }
            prefix = candidate;
            value *= 1000.0;
        }
    }
    format!("{}{prefix}", format_go_g(value, 4))
}

fn humanize_1024(value: f64) -> String {
    if value.abs() <= 1.0 || !value.is_finite() {
        return format_go_g(value, 4);
    }
    let mut value = value;
    let mut prefix = "";
    for candidate in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if value.abs() < 1024.0 {
            break;
        }
        prefix = candidate;
        value /= 1024.0;
    }
    format!("{}{prefix}", format_go_g(value, 4))
}

/// Prometheus's `humanizeDuration` of a number of seconds.
pub fn humanize_duration(value: f64) -> String {
    if !value.is_finite() {
        return format_go_g(value, 4);
    }
    if value == 0.0 {
        return "0s".into();
    }
    if value.abs() >= 1.0 {
        let sign = if value < 0.0 { "-" } else { "" };
        let value = value.abs();
        let total = value as i64;
        let seconds = total % 60;
        let minutes = (total / 60) % 60;
        let hours = (total / 3600) % 24;
        let days = total / 86_400;
        return if days != 0 {
            format!("{sign}{days}d {hours}h {minutes}m {seconds}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {minutes}m {seconds}s")
        } else if minutes != 0 {
            format!("{sign}{minutes}m {seconds}s")
        } else {
            format!("{sign}{}s", format_go_g(value, 4))
        };
    }
    let mut value = value;
    let mut prefix = "";
    for candidate in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if value.abs() >= 1.0 {
            break;
        }
        prefix = candidate;
        value *= 1000.0;
    }
    format!("{}{prefix}s", format_go_g(value, 4))
}

/// Go's `time.Time.String()` of a Unix time in seconds, in UTC.
pub fn format_go_time(seconds: f64) -> Result<String, String> {
    if !seconds.is_finite() || seconds.abs() > 1e15 {
        return Err(format!("{seconds} cannot be represented as a time"));
    }
    let whole = seconds.floor() as i64;
    let nanos = ((seconds - seconds.floor()) * 1e9).round() as i64;
    let (whole, nanos) = if nanos >= 1_000_000_000 { (whole + 1, nanos - 1_000_000_000) } else { (whole, nanos) };
    let days = whole.div_euclid(86_400);
    let of_day = whole.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut text =
        format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", of_day / 3600, (of_day / 60) % 60, of_day % 60);
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push_str(" +0000 UTC");
    Ok(text)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Go's `time.Duration.String()` of a number of seconds.
pub fn format_go_duration(seconds: f64) -> String {
    let nanos = (seconds * 1e9).round() as i128;
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let nanos = nanos.abs();
    if nanos < 1_000_000_000 {
        let (unit, divisor) = if nanos < 1_000 {
            ("ns", 1.0)
        } else if nanos < 1_000_000 {
            ("µs", 1e3)
        } else {
            ("ms", 1e6)
        };
        return format!("{sign}{}{unit}", nanos as f64 / divisor);
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = (nanos / 60_000_000_000) % 60;
    let seconds = (nanos % 60_000_000_000) as f64 / 1e9;
    let mut text = String::from(sign);
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    text.push_str(&format!("{seconds}s"));
    text
}

/// Go's `url.QueryEscape`.
pub fn query_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => escaped.push(byte as char),
            b' ' => escaped.push('+'),
            other => escaped.push_str(&format!("%{other:02X}")),
        }
    }
    escaped
}

fn split_host_port(host_port: &str) -> Option<(&str, &str)> {
    if let Some(rest) = host_port.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = host_port.rsplit_once(':')?;
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

fn sample_value(sample: &QuerySample) -> Value {
    let mut entries = BTreeMap::new();
    let labels = sample.labels.iter().map(|(name, value)| (Arc::from(name.as_str()), string_value(value))).collect();
    entries.insert(Arc::from("Labels"), Value::Map(Arc::new(labels)));
    entries.insert(Arc::from("Value"), Value::Float(sample.value));
    Value::Map(Arc::new(entries))
}

fn sample_labels(sample: &Value) -> Result<BTreeMap<Arc<str>, Value>, TemplateError> {
    match sample.field("Labels") {
        Some(Value::Map(map)) => Ok((**map).clone()),
        _ => Err(exec_error("expected a sample from query")),
    }
}

fn function_map(data: &TemplateData, query: Option<QueryFunction>) -> gotmpl::FuncMap {
    let mut functions = gotmpl::FuncMap::new();
    let mut add = |name: &str, function: gotmpl::ValueFunc| {
        functions.insert(name.to_owned(), function);
    };
    add("humanize", Arc::new(|arguments| Ok(string_value(humanize(to_float(one_argument("humanize", arguments)?)?)))));
    add(
        "humanize1024",
        Arc::new(|arguments| Ok(string_value(humanize_1024(to_float(one_argument("humanize1024", arguments)?)?)))),
    );
    add(
        "humanizeDuration",
        Arc::new(|arguments| {
            Ok(string_value(humanize_duration(to_float(one_argument("humanizeDuration", arguments)?)?)))
        }),
    );
    add(
        "humanizePercentage",
        Arc::new(|arguments| {
            let value = to_float(one_argument("humanizePercentage", arguments)?)?;
            Ok(string_value(format!("{}%", format_go_g(value * 100.0, 4))))
        }),
    );
    add(
        "humanizeTimestamp",
        Arc::new(|arguments| {
            let value = to_float(one_argument("humanizeTimestamp", arguments)?)?;
            if !value.is_finite() {
                return Ok(string_value(format_go_g(value, 4)));
            }
            format_go_time(value).map(string_value).map_err(exec_error)
        }),
    );
    add(
        "toTime",
        Arc::new(|arguments| {
            let value = to_float(one_argument("toTime", arguments)?)?;
            format_go_time(value).map(string_value).map_err(exec_error)
        }),
    );
    add(
        "toDuration",
        Arc::new(|arguments| {
            let value = to_float(one_argument("toDuration", arguments)?)?;
            Ok(string_value(format_go_duration(value)))
        }),
    );
    add(
        "title",
        Arc::new(|arguments| {
            let text = string_argument("title", one_argument("title", arguments)?)?;
            let mut previous_is_letter = false;
            let titled: String = text
                .chars()
                .map(|character| {
                    let mapped = if previous_is_letter {
                        character
                    } else {
                        character.to_uppercase().next().unwrap_or(character)
                    };
                    previous_is_letter = character.is_alphanumeric() || character == '_' || character == '\'';
                    mapped
                })
                .collect();
            Ok(string_value(titled))
        }),
    );
    add(
        "toUpper",
        Arc::new(|arguments| {
            Ok(string_value(string_argument("toUpper", one_argument("toUpper", arguments)?)?.to_uppercase()))
        }),
    );
    add(
        "toLower",
        Arc::new(|arguments| {
            Ok(string_value(string_argument("toLower", one_argument("toLower", arguments)?)?.to_lowercase()))
        }),
    );
    add(
        "match",
        Arc::new(|arguments| {
            let [pattern, text] = arguments else {
                return Err(TemplateError::ArgCount { name: "match".into(), expected: 2, got: arguments.len() });
            };
            let regex =
                regex::Regex::new(&string_argument("match", pattern)?).map_err(|e| exec_error(e.to_string()))?;
            Ok(Value::Bool(regex.is_match(&string_argument("match", text)?)))
        }),
    );
    add(
        "reReplaceAll",
        Arc::new(|arguments| {
            let [pattern, replacement, text] = arguments else {
                return Err(TemplateError::ArgCount { name: "reReplaceAll".into(), expected: 3, got: arguments.len() });
            };
            let regex =
                regex::Regex::new(&string_argument("reReplaceAll", pattern)?).map_err(|e| exec_error(e.to_string()))?;
            let replacement = string_argument("reReplaceAll", replacement)?;
            let text = string_argument("reReplaceAll", text)?;
            Ok(string_value(regex.replace_all(&text, replacement.as_str())))
        }),
    );
    add(
        "stripPort",
        Arc::new(|arguments| {
            let text = string_argument("stripPort", one_argument("stripPort", arguments)?)?;
            Ok(string_value(split_host_port(&text).map_or(text.as_str(), |(host, _)| host)))
        }),
    );
    add(
        "stripDomain",
        Arc::new(|arguments| {
            let text = string_argument("stripDomain", one_argument("stripDomain", arguments)?)?;
            let (host, port) = split_host_port(&text).unwrap_or((text.as_str(), ""));
            if host.parse::<std::net::IpAddr>().is_ok() {
                return Ok(string_value(&text));
            }
            let short = host.split('.').next().unwrap_or(host);
            Ok(string_value(if port.is_empty() { short.to_owned() } else { format!("{short}:{port}") }))
        }),
    );
    add(
        "parseDuration",
        Arc::new(|arguments| {
            let text = string_argument("parseDuration", one_argument("parseDuration", arguments)?)?;
            let duration = crate::duration::parse_duration(&text).map_err(exec_error)?;
            Ok(Value::Float(duration.as_secs_f64()))
        }),
    );
    add(
        "safeHtml",
        Arc::new(|arguments| Ok(string_value(string_argument("safeHtml", one_argument("safeHtml", arguments)?)?))),
    );
    add(
        "args",
        Arc::new(|arguments| {
            let map = arguments
                .iter()
                .enumerate()
                .map(|(index, value)| (Arc::from(format!("arg{index}").as_str()), value.clone()))
                .collect();
            Ok(Value::Map(Arc::new(map)))
        }),
    );
    add(
        "first",
        Arc::new(|arguments| match one_argument("first", arguments)? {
            Value::List(items) => {
                items.first().cloned().ok_or_else(|| exec_error("first() called on vector with no elements"))
            }
            _ => Err(exec_error("first() expects the result of query")),
        }),
    );
    add(
        "label",
        Arc::new(|arguments| {
            let [name, sample] = arguments else {
                return Err(TemplateError::ArgCount { name: "label".into(), expected: 2, got: arguments.len() });
            };
            let name = string_argument("label", name)?;
            let labels = sample_labels(sample)?;
            Ok(labels.get(name.as_str()).cloned().unwrap_or_else(|| string_value("")))
        }),
    );
    add(
        "value",
        Arc::new(|arguments| {
            let sample = one_argument("value", arguments)?;
            sample.field("Value").cloned().ok_or_else(|| exec_error("value() expects a sample from query"))
        }),
    );
    add(
        "strvalue",
        Arc::new(|arguments| {
            let labels = sample_labels(one_argument("strvalue", arguments)?)?;
            Ok(labels.get("__value__").cloned().unwrap_or_else(|| string_value("")))
        }),
    );
    add(
        "sortByLabel",
        Arc::new(|arguments| {
            let [name, samples] = arguments else {
                return Err(TemplateError::ArgCount { name: "sortByLabel".into(), expected: 2, got: arguments.len() });
            };
            let name = string_argument("sortByLabel", name)?;
            let Value::List(items) = samples else {
                return Err(exec_error("sortByLabel expects the result of query"));
            };
            let mut sorted: Vec<Value> = items.to_vec();
            let key = |sample: &Value| {
                sample_labels(sample).ok().and_then(|labels| labels.get(name.as_str()).map(|value| value.to_string()))
            };
            sorted.sort_by_key(|sample| key(sample).unwrap_or_default());
            Ok(Value::List(sorted.into()))
        }),
    );
    let external_url = data.external_url.clone();
    add("externalURL", Arc::new(move |_| Ok(string_value(&external_url))));
    let path_prefix = url_path(&data.external_url);
    add("pathPrefix", Arc::new(move |_| Ok(string_value(&path_prefix))));
    add(
        "graphLink",
        Arc::new(|arguments| {
            let expression = string_argument("graphLink", one_argument("graphLink", arguments)?)?;
            Ok(string_value(format!("/graph?g0.expr={}&g0.tab=0", query_escape(&expression))))
        }),
    );
    add(
        "tableLink",
        Arc::new(|arguments| {
            let expression = string_argument("tableLink", one_argument("tableLink", arguments)?)?;
            Ok(string_value(format!("/graph?g0.expr={}&g0.tab=1", query_escape(&expression))))
        }),
    );
    add(
        "query",
        Arc::new(move |arguments| {
            let text = string_argument("query", one_argument("query", arguments)?)?;
            let Some(query) = &query else {
                return Err(exec_error("query is not available here"));
            };
            let samples = query(&text).map_err(exec_error)?;
            Ok(Value::List(samples.iter().map(sample_value).collect::<Vec<_>>().into()))
        }),
    );
    functions
}

/// The path of a URL (`http://host:9090/prefix` gives `/prefix`).
fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    after_scheme.find('/').map_or(String::new(), |index| after_scheme[index..].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(labels: &[(&str, &str)], value: f64) -> TemplateData {
        TemplateData {
            labels: labels.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
            value,
            ..TemplateData::default()
        }
    }

    #[test]
    fn expands_prometheus_variables_and_functions() {
        let data = data(&[("instance", "web-1:9100")], 0.0234);
        let expanded = |text: &str| expand("t", text, &data, None);
        assert_eq!(expanded("{{ $labels.instance }} down").as_deref(), Ok("web-1:9100 down"));
        assert_eq!(expanded("[{{ $labels.missing }}]").as_deref(), Ok("[]"));
        assert_eq!(expanded("{{ $value | humanizePercentage }}").as_deref(), Ok("2.34%"));
        assert_eq!(expanded("{{ $labels.instance | stripPort | toUpper }}").as_deref(), Ok("WEB-1"));
        assert_eq!(expanded("{{ 1234567.0 | humanize }}").as_deref(), Ok("1.235M"));
        assert_eq!(expanded("{{ 2048.0 | humanize1024 }}").as_deref(), Ok("2ki"));
        assert_eq!(expanded("{{ 90061.0 | humanizeDuration }}").as_deref(), Ok("1d 1h 1m 1s"));
        assert_eq!(expanded("{{ 0.25 | humanizeDuration }}").as_deref(), Ok("250ms"));
        assert_eq!(expanded("{{ 1704067200 | humanizeTimestamp }}").as_deref(), Ok("2024-01-01 00:00:00 +0000 UTC"));
        assert_eq!(expanded("{{ \"1h30m\" | parseDuration }}").as_deref(), Ok("5400"));
        assert_eq!(expanded("{{ graphLink \"up == 0\" }}").as_deref(), Ok("/graph?g0.expr=up+%3D%3D+0&g0.tab=0"));
    }

    #[test]
    fn undefined_variables_and_syntax_errors_are_reported() {
        assert!(check("t", "Instance {{ $label.foo }} down").is_err());
        assert!(check("t", "costs $5: {{ printf \"$%.2f\" $value }}").is_ok());
        assert!(check("t", "{{ range $i, $e := query \"up\" }}{{ $e.Labels.job }}{{ end }}").is_ok());
        assert!(check("t", "{{ value }}").is_ok(), "an argument count is checked when the alert fires");
        let error = check("t", "ok {{ nosuchfunc 1 }}").expect_err("undefined function");
        assert_eq!((error.line, error.column, error.message.as_str()), (1, 7, "function \"nosuchfunc\" not defined"));
        let error = check("t", "{{ $labels.x ").expect_err("unclosed action");
        assert_eq!(error.line, 1);
        assert!(check("t", "{{ with query \"up\" }}{{ . | first | value | humanize }}{{ end }}").is_ok());
    }

    #[test]
    fn go_number_formatting() {
        assert_eq!(format_go_g(12345.0, 4), "1.234e+04");
        assert_eq!(format_go_g(0.00001, 4), "1e-05");
        assert_eq!(format_go_g(100.0, 4), "100");
        assert_eq!(format_go_g(f64::NAN, 4), "NaN");
    }
}
