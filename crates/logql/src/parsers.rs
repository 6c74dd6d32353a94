//! The log parsers of a pipeline: `json`, `logfmt`, `pattern`, `unpack` (and
//! the label-name sanitising they share).
//!
//! Each parser reads a line and emits `(name, value)` pairs through a callback;
//! the pipeline decides what a pair does to the entry's labels (the
//! `_extracted` suffix on a clash with a stream label, errors as `__error__`).
//! `regexp` needs no code of its own beyond the `regex` crate.

use crate::ast::{JsonField, JsonPathStep};

/// Loki's label-name sanitising: characters outside `[a-zA-Z0-9_]` become `_`,
/// and a name starting with a digit gets a leading `_`.
pub fn sanitize_label_name(key: &str) -> String {
    let key = key.trim();
    let mut name = String::with_capacity(key.len() + 1);
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        name.push('_');
    }
    name.extend(key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }));
    name
}

/// `| json`: every scalar field, nested objects flattened with `_`; arrays are
/// skipped. Streams through the line without building a JSON tree.
pub fn json_all(line: &str, emit: &mut dyn FnMut(String, String)) -> Result<(), String> {
    json_wanted(line, &|_| true, emit)
}

/// [`json_all`] emitting only the fields whose label name `wanted` accepts
/// (the others are parsed but never copied).
pub fn json_wanted(
    line: &str,
    wanted: &dyn Fn(&str) -> bool,
    emit: &mut dyn FnMut(String, String),
) -> Result<(), String> {
    use serde::de::DeserializeSeed;
    let mut deserializer = serde_json::Deserializer::from_str(line);
    Flatten { prefix: "", wanted, emit }.deserialize(&mut deserializer).map_err(|error| error.to_string())?;
    deserializer.end().map_err(|error| error.to_string())
}

/// Visits a JSON object, emitting its scalar fields under `prefix`.
struct Flatten<'p, 'e> {
    prefix: &'p str,
    wanted: &'e dyn Fn(&str) -> bool,
    emit: &'e mut dyn FnMut(String, String),
}

impl<'de> serde::de::DeserializeSeed<'de> for Flatten<'_, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Flatten<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a json object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let sanitized = sanitize_label_name(&key);
            let name = if self.prefix.is_empty() { sanitized } else { format!("{}_{sanitized}", self.prefix) };
            map.next_value_seed(Field { name, wanted: self.wanted, emit: &mut *self.emit })?;
        }
        Ok(())
    }
}

/// Visits one field's value: scalars are emitted, objects recursed, arrays skipped.
struct Field<'e> {
    name: String,
    wanted: &'e dyn Fn(&str) -> bool,
    emit: &'e mut dyn FnMut(String, String),
}

impl Field<'_> {
    fn emit(self, value: impl FnOnce() -> String) {
        if (self.wanted)(&self.name) {
            (self.emit)(self.name, value());
        }
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Field<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Field<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a json value")
    }

    fn visit_str<E>(self, value: &str) -> Result<(), E> {
        self.emit(|| value.to_string());
        Ok(())
    }

    fn visit_string<E>(self, value: String) -> Result<(), E> {
        self.emit(|| value);
        Ok(())
    }

    fn visit_bool<E>(self, value: bool) -> Result<(), E> {
        self.emit(|| value.to_string());
        Ok(())
    }

    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        self.emit(|| value.to_string());
        Ok(())
    }

    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        self.emit(|| value.to_string());
        Ok(())
    }

    fn visit_f64<E>(self, value: f64) -> Result<(), E> {
        self.emit(|| value.to_string());
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut sequence: A) -> Result<(), A::Error> {
        while sequence.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        Flatten { prefix: &self.name, wanted: self.wanted, emit: self.emit }.visit_map(map)
    }
}

fn scalar_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `| json a="x.y"`: the selected fields; objects and arrays come out as JSON text.
pub fn json_fields(line: &str, fields: &[JsonField], emit: &mut dyn FnMut(String, String)) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|error| error.to_string())?;
    for field in fields {
        let mut current = Some(&value);
        for step in &field.path {
            current = match (step, current) {
                (JsonPathStep::Key(key), Some(serde_json::Value::Object(object))) => object.get(key),
                (JsonPathStep::Index(index), Some(serde_json::Value::Array(array))) => array.get(*index),
                _ => None,
            };
        }
        if let Some(found) = current {
            emit(field.label.clone(), scalar_text(found));
        }
    }
    Ok(())
}

/// `| unpack`: string fields of a JSON object become labels; `_entry` replaces the line.
pub fn unpack(line: &str, emit: &mut dyn FnMut(String, String)) -> Result<Option<String>, String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|error| error.to_string())?;
    let serde_json::Value::Object(object) = value else {
        return Err("expected a json object".to_string());
    };
    let mut entry = None;
    for (key, value) in object {
        let serde_json::Value::String(text) = value else { continue };
        if key == "_entry" {
            entry = Some(text);
        } else {
            emit(sanitize_label_name(&key), text);
        }
    }
    Ok(entry)
}

/// `| logfmt`: `key=value`, `key="quoted value"`, bare `key`. Lenient mode skips
/// malformed pairs; strict mode fails on the first.
pub fn logfmt(line: &str, strict: bool, keep_empty: bool, emit: &mut dyn FnMut(String, String)) -> Result<(), String> {
    let bytes = line.as_bytes();
    let mut position = 0;
    while position < bytes.len() {
        while position < bytes.len() && bytes[position].is_ascii_whitespace() {
            position += 1;
        }
        if position >= bytes.len() {
            break;
        }
        let key_start = position;
        while position < bytes.len() && !bytes[position].is_ascii_whitespace() && bytes[position] != b'=' {
            position += 1;
        }
        let key = &line[key_start..position];
        let malformed_key = key.is_empty() || key.contains('"');
        let mut value = String::new();
        let mut malformed = malformed_key;
        if position < bytes.len() && bytes[position] == b'=' {
            position += 1;
            if position < bytes.len() && bytes[position] == b'"' {
                position += 1;
                let mut closed = false;
                let mut characters = line[position..].char_indices();
                while let Some((index, character)) = characters.next() {
                    match character {
                        '"' => {
                            position += index + 1;
                            closed = true;
                            break;
                        }
                        '\\' => match characters.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, 't')) => value.push('\t'),
                            Some((_, 'r')) => value.push('\r'),
                            Some((_, other)) => value.push(other),
                            None => break,
                        },
                        other => value.push(other),
                    }
                }
                if !closed {
                    if strict {
                        return Err(format!("logfmt syntax error at pos {}: unterminated quoted value", position));
                    }
                    break;
                }
            } else {
                let value_start = position;
                while position < bytes.len() && !bytes[position].is_ascii_whitespace() {
                    position += 1;
                }
                let bare = &line[value_start..position];
                if bare.contains('"') {
                    malformed = true;
                }
                value.push_str(bare);
            }
        }
        if malformed {
            if strict {
                return Err(format!("logfmt syntax error at pos {}: unexpected character", key_start + 1));
            }
            continue;
        }
        if value.is_empty() && !keep_empty {
            continue;
        }
        emit(sanitize_label_name(key), value);
    }
    Ok(())
}

/// A compiled `| pattern` expression.
#[derive(Debug, Clone)]
pub struct Pattern {
    parts: Vec<PatternPart>,
}

#[derive(Debug, Clone, PartialEq)]
enum PatternPart {
    Literal(String),
    /// A capture; `None` for `<_>`.
    Capture(Option<String>),
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts: Vec<PatternPart> = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('<') {
                let name_length = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                let name = &after[..name_length];
                let valid = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && after[name_length..].starts_with('>');
                if valid {
                    if !literal.is_empty() {
                        parts.push(PatternPart::Literal(std::mem::take(&mut literal)));
                    }
                    if matches!(parts.last(), Some(PatternPart::Capture(_))) {
                        return Err("found consecutive capture: captures must be separated by literals".to_string());
                    }
                    let capture = if name == "_" { None } else { Some(name.to_string()) };
                    if capture.is_some() && parts.contains(&PatternPart::Capture(capture.clone())) {
                        return Err(format!("duplicate capture name {name:?}"));
                    }
                    parts.push(PatternPart::Capture(capture));
                    rest = &after[name_length + 1..];
                    continue;
                }
            }
            let mut characters = rest.chars();
            if let Some(character) = characters.next() {
                literal.push(character);
            }
            rest = characters.as_str();
        }
        if !literal.is_empty() {
            parts.push(PatternPart::Literal(literal));
        }
        if !parts.iter().any(|part| matches!(part, PatternPart::Capture(Some(_)))) {
            return Err("at least one named capture must be supplied".to_string());
        }
        Ok(Pattern { parts })
    }

    /// Emits the named captures of `line` (Loki's matcher: the leading literal
    /// must start the line, each capture runs to the next literal's first
    /// occurrence, and a missing literal ends the match with the rest of the line).
    pub fn matches(&self, line: &str, emit: &mut dyn FnMut(String, String)) {
        let mut input = line;
        let mut parts = self.parts.as_slice();
        if let Some(PatternPart::Literal(literal)) = parts.first() {
            if !input.starts_with(literal.as_str()) {
                return;
            }
            input = &input[literal.len()..];
            parts = &parts[1..];
        }
        while let Some(PatternPart::Capture(name)) = parts.first() {
            let Some(PatternPart::Literal(literal)) = parts.get(1) else {
                if let Some(name) = name {
                    emit(name.clone(), input.to_string());
                }
                return;
            };
            let Some(index) = input.find(literal.as_str()) else {
                if let Some(name) = name {
                    emit(name.clone(), input.to_string());
                }
                return;
            };
            if let Some(name) = name {
                emit(name.clone(), input[..index].to_string());
            }
            input = &input[index + literal.len()..];
            parts = &parts[2..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(run: impl FnOnce(&mut dyn FnMut(String, String))) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        run(&mut |name, value| pairs.push((name, value)));
        pairs
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn json_flattens_and_sanitizes() {
        let found = collect(|emit| {
            json_all(r#"{"a":{"b":1,"c-d":"x"},"list":[1],"ok":true,"1st":"y","n":null}"#, emit).expect("json")
        });
        assert_eq!(found, pairs(&[("a_b", "1"), ("a_c_d", "x"), ("ok", "true"), ("_1st", "y")]));
        let escaped = collect(|emit| json_all(r#"{"k\"ey":"v\n","f":2.5}"#, emit).expect("json"));
        assert_eq!(escaped, pairs(&[("k_ey", "v\n"), ("f", "2.5")]));
        assert!(json_all(r#"{"a":1} trailing"#, &mut |_, _| {}).is_err());
        assert!(json_all("not json", &mut |_, _| {}).is_err());
        assert!(json_all("[1]", &mut |_, _| {}).is_err());
    }

    #[test]
    fn logfmt_pairs() {
        let found = collect(|emit| {
            logfmt(r#"level=info msg="hello \"world\"" bare empty= x=1"#, false, false, emit).expect("logfmt")
        });
        assert_eq!(found, pairs(&[("level", "info"), ("msg", "hello \"world\""), ("x", "1")]));
        let kept = collect(|emit| logfmt("a= b", false, true, emit).expect("logfmt"));
        assert_eq!(kept, pairs(&[("a", ""), ("b", "")]));
        assert!(logfmt(r#"a="open"#, true, false, &mut |_, _| {}).is_err());
        assert!(logfmt(r#"=x a=1"#, true, false, &mut |_, _| {}).is_err());
        let lenient = collect(|emit| logfmt(r#"=x a=1"#, false, false, emit).expect("lenient"));
        assert_eq!(lenient, pairs(&[("a", "1")]));
    }

    #[test]
    fn patterns() {
        let pattern = Pattern::parse("<ip> - <_> [<ts>] \"<method> <path> <_>\" <status>").expect("pattern");
        let found = collect(|emit| pattern.matches(r#"1.2.3.4 - - [now] "GET /x HTTP/1.1" 200"#, emit));
        assert_eq!(
            found,
            pairs(&[("ip", "1.2.3.4"), ("ts", "now"), ("method", "GET"), ("path", "/x"), ("status", "200")])
        );
        assert!(Pattern::parse("<a><b>").is_err());
        assert!(Pattern::parse("<_> x").is_err());
        assert!(Pattern::parse("<a> <a>").is_err());
        assert_eq!(Pattern::parse("x <a>").expect("pattern").parts.len(), 2);
        let anchored = Pattern::parse("x <a>").expect("pattern");
        assert!(collect(|emit| anchored.matches("y x 1", emit)).is_empty());
    }

    #[test]
    fn unpack_entry() {
        let mut found = Vec::new();
        let entry = unpack(r#"{"_entry":"line","app":"a","n":1}"#, &mut |n, v| found.push((n, v))).expect("unpack");
        assert_eq!(entry.as_deref(), Some("line"));
        assert_eq!(found, pairs(&[("app", "a")]));
    }
}
