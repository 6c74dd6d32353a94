//! Structural comparison of an answer with a documented example answer: the
//! same keys with the same JSON types, each array element shaped like one of
//! the example's elements, and, at the paths named as maps, any keys whose
//! values are shaped like the example's first value.

use serde_json::Value;

/// Loads a documented example answer from `fixtures/`.
pub fn fixture(path: &str) -> Value {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures").join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|error| panic!("{}: {error}", full.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", full.display()))
}

/// Panics with the first difference between the shapes of `documented` and
/// `actual`. `maps` lists the paths (`data`, `data[].seriesLabels`) of objects
/// whose keys are data rather than field names.
pub fn assert_same_shape(documented: &Value, actual: &Value, maps: &[&str]) {
    if let Err(difference) = compare(documented, actual, "", maps) {
        panic!("answer differs from the documented shape: {difference}\nanswer: {actual}");
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn compare(documented: &Value, actual: &Value, path: &str, maps: &[&str]) -> Result<(), String> {
    let shown = if path.is_empty() { "(top)" } else { path };
    if type_name(documented) != type_name(actual) {
        return Err(format!("{shown}: documented {}, answered {}", type_name(documented), type_name(actual)));
    }
    match (documented, actual) {
        (Value::Object(documented), Value::Object(actual)) if maps.contains(&path) => {
            let Some(example) = documented.values().next() else { return Ok(()) };
            for (key, value) in actual {
                compare(example, value, &format!("{path}.*"), maps)
                    .map_err(|error| format!("{error} (key {key:?})"))?;
            }
            Ok(())
        }
        (Value::Object(documented), Value::Object(actual)) => {
            for (key, value) in documented {
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                let Some(answered) = actual.get(key) else {
                    return Err(format!("{child}: documented, missing from the answer"));
                };
                compare(value, answered, &child, maps)?;
            }
            Ok(())
        }
        (Value::Array(documented), Value::Array(actual)) => {
            if documented.is_empty() {
                return Ok(());
            }
            // Each answered element must be shaped like one of the documented ones.
            for value in actual {
                let mut first_difference = None;
                for example in documented {
                    match compare(example, value, &format!("{path}[]"), maps) {
                        Ok(()) => {
                            first_difference = None;
                            break;
                        }
                        Err(difference) => {
                            first_difference.get_or_insert(difference);
                        }
                    }
                }
                if let Some(difference) = first_difference {
                    return Err(difference);
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[test]
fn shapes_differ_when_a_key_or_type_differs() {
    let documented = serde_json::json!({"data": [{"labels": {"job": "a"}, "value": "1"}]});
    let same = serde_json::json!({"data": [{"labels": {"instance": "x"}, "value": "2", "extra": 1}]});
    assert!(compare(&documented, &same, "", &["data[].labels"]).is_ok());
    let missing = serde_json::json!({"data": [{"labels": {}}]});
    assert!(compare(&documented, &missing, "", &["data[].labels"]).is_err());
    let wrong_type = serde_json::json!({"data": [{"labels": {}, "value": 2}]});
    assert!(compare(&documented, &wrong_type, "", &["data[].labels"]).is_err());
    let wrong_label = serde_json::json!({"data": [{"labels": {"job": 1}, "value": "1"}]});
    assert!(compare(&documented, &wrong_label, "", &["data[].labels"]).is_err());
}
