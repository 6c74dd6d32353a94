//! One-line renderings of a run, for notifications: `triage_path` and
//! `triage_summary` annotations.

use serde_json::Value;

use crate::model::{Run, StepStatus};

/// Longest rendering of one value in a summary line.
const MAX_VALUE: usize = 160;

/// `triage_path`: the branch names taken, comma-separated.
pub fn path(run: &Run) -> String {
    run.path.join(",")
}

/// `triage_summary`: one line per check on the path, `name = value`, or
/// `name missing (why)` for a check that failed or timed out.
pub fn summary(run: &Run) -> String {
    let mut lines = Vec::new();
    for step in &run.steps {
        let Some(check) = &step.check else { continue };
        match (&step.status, &check.value) {
            (StepStatus::Ran, Some(value)) => lines.push(format!("{} = {}", check.result, render(value))),
            (StepStatus::Failed | StepStatus::TimedOut, _) => lines.push(format!(
                "{} missing ({})",
                check.result,
                check.error.as_deref().unwrap_or(step.status.as_str())
            )),
            _ => {}
        }
        for (name, value) in &step.computed {
            lines.push(format!("{name} = {}", render(value)));
        }
    }
    lines.join("\n")
}

/// A value in a few characters: numbers with at most four significant
/// decimals, strings as they are, maps and lists as compact JSON, cut short.
pub fn render(value: &Value) -> String {
    let text = match value {
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() => format_number(float),
            _ => number.to_string(),
        },
        Value::String(text) => text.clone(),
        Value::Null => "null".into(),
        Value::Bool(flag) => flag.to_string(),
        Value::Object(_) | Value::Array(_) => compact(value),
    };
    if text.chars().count() > MAX_VALUE {
        let cut: String = text.chars().take(MAX_VALUE - 1).collect();
        format!("{cut}…")
    } else {
        text
    }
}

fn compact(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let items: Vec<String> = map.iter().map(|(key, value)| format!("{key}: {}", render(value))).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(render).collect();
            format!("[{}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{}", value as i64);
    }
    let rounded = format!("{value:.4}");
    rounded.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_render_short() {
        assert_eq!(render(&json!(0.940_000_1)), "0.94");
        assert_eq!(render(&json!(3.0)), "3");
        assert_eq!(render(&json!({"email": 3.0, "iban": 2.0})), "{email: 3, iban: 2}");
        assert_eq!(render(&json!(["a", "b"])), "[a, b]");
        // Booleans, alone and nested (a computed `any`/`all` is one).
        assert_eq!(render(&json!(true)), "true");
        assert_eq!(render(&json!({"drifted": false, "nodes": [true, null]})), "{drifted: false, nodes: [true, null]}");
        assert_eq!(render(&json!("x".repeat(500))).chars().count(), MAX_VALUE);
    }
}
