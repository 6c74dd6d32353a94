//! How a check's result is seen by predicates, computed facts and the
//! `results` of a run: every [`Found`] becomes one JSON value.
//!
//! - a scalar is a number;
//! - a vector of one sample without labels is its number; any other vector
//!   is a map from the series to its value, keyed by the label's value when
//!   the series have one label or differ in one (`{"email": 3, "iban": 2}`), else
//!   by the Prometheus notation of the labels (`{a="x", b="y"}`); `count()`,
//!   `max()`, `sum()` and `contains()` read it; an empty vector is `null`;
//! - table rows: one row of one column is that cell, one row is the row (an
//!   object by column name), otherwise the list of rows;
//! - log lines are the list of lines, newest first;
//! - a value (Docker facts, probe results) stays as it is.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::source::Found;

/// The value predicates read for `found`.
pub fn bind(found: &Found) -> Value {
    match found {
        Found::Scalar(value) => number(*value),
        Found::Vector(samples) => match samples.as_slice() {
            [] => Value::Null,
            [only] if only.labels.is_empty() => number(only.value),
            _ => {
                let names: BTreeSet<&String> = samples.iter().flat_map(|sample| sample.labels.keys()).collect();
                let varying: Vec<&String> = names
                    .iter()
                    .copied()
                    .filter(|name| {
                        let first = samples[0].labels.get(*name);
                        samples.iter().any(|sample| sample.labels.get(*name) != first)
                    })
                    .collect();
                let mut map = Map::new();
                for sample in samples {
                    let only_name = (names.len() == 1).then(|| names.iter().next().copied()).flatten();
                    let key = match (only_name, varying.as_slice()) {
                        (Some(one), _) => sample.labels.get(one).cloned().unwrap_or_default(),
                        (None, [one]) => sample.labels.get(*one).cloned().unwrap_or_default(),
                        _ => {
                            let pairs: Vec<String> =
                                sample.labels.iter().map(|(name, value)| format!("{name}={value:?}")).collect();
                            format!("{{{}}}", pairs.join(", "))
                        }
                    };
                    map.insert(key, number(sample.value));
                }
                Value::Object(map)
            }
        },
        Found::Table(rows) => match rows.as_slice() {
            [row] if row.len() == 1 => row.values().next().cloned().unwrap_or(Value::Null),
            [row] => Value::Object(row.clone()),
            _ => Value::Array(rows.iter().cloned().map(Value::Object).collect()),
        },
        Found::Lines(lines) => Value::Array(lines.iter().map(|line| Value::String(line.line.clone())).collect()),
        Found::Value(value) => value.clone(),
    }
}

/// A JSON number; NaN and infinities (which JSON cannot hold) become their names as strings.
pub(crate) fn number(value: f64) -> Value {
    serde_json::Number::from_f64(value).map_or_else(|| Value::String(format_special(value)), Value::Number)
}

fn format_special(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::source::{LogLine, Sample};

    fn sample(labels: &[(&str, &str)], value: f64) -> Sample {
        Sample { labels: labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(), value }
    }

    #[test]
    fn shapes() {
        assert_eq!(bind(&Found::Scalar(0.5)), json!(0.5));
        assert_eq!(bind(&Found::Vector(vec![sample(&[], 0.94)])), json!(0.94));
        assert_eq!(bind(&Found::Vector(vec![])), Value::Null);
        let by_rule = Found::Vector(vec![
            sample(&[("pii_match_rule", "email"), ("job", "faro")], 3.0),
            sample(&[("pii_match_rule", "iban"), ("job", "faro")], 2.0),
        ]);
        assert_eq!(bind(&by_rule), json!({"email": 3.0, "iban": 2.0}));
        let one = Found::Vector(vec![sample(&[("pii_match_rule", "email")], 6.0)]);
        assert_eq!(bind(&one), json!({"email": 6.0}));
        let two = Found::Vector(vec![sample(&[("a", "1"), ("b", "x")], 1.0), sample(&[("a", "2"), ("b", "y")], 2.0)]);
        assert_eq!(bind(&two), json!({"{a=\"1\", b=\"x\"}": 1.0, "{a=\"2\", b=\"y\"}": 2.0}));
        let row =
            |pairs: &[(&str, Value)]| pairs.iter().map(|(n, v)| (n.to_string(), v.clone())).collect::<Map<_, _>>();
        assert_eq!(bind(&Found::Table(vec![row(&[("lock_waits", json!(2))])])), json!(2));
        assert_eq!(
            bind(&Found::Table(vec![row(&[("jobname", json!("refresh_x")), ("return_message", json!("boom"))])])),
            json!({"jobname": "refresh_x", "return_message": "boom"})
        );
        assert_eq!(bind(&Found::Table(vec![])), json!([]));
        let line = LogLine { time_ns: 1, labels: BTreeMap::new(), line: "acme: error".into() };
        assert_eq!(bind(&Found::Lines(vec![line])), json!(["acme: error"]));
        assert_eq!(bind(&Found::Scalar(f64::NAN)), json!("NaN"));
    }
}
