//! Triage evidence as HTML: a check's bound result (the JSON value the
//! runbook's predicates read) rendered as what it is: a number, a table of
//! rows, a list of log lines, a map of series to values, or nested facts.
//!
//! Every string in a value (label values, log lines, SQL cells) is escaped
//! with [`escape_into`]; nothing in a value becomes markup. Large values are
//! cut (rows, lines, nesting) with a note saying how much was left out.

use serde_json::{Map, Value};

use crate::html::{escape_into, format_value};

/// The most rows of a table or lines of a list shown.
const MAX_ITEMS: usize = 50;
/// How deep nested objects are shown before they are printed as JSON.
const MAX_DEPTH: usize = 3;

/// The HTML of a bound result.
pub fn render(value: &Value) -> String {
    let mut out = String::new();
    render_into(&mut out, value, 0);
    out
}

fn scalar(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("<span class=\"muted\">none</span>"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() => escape_into(out, &format_value(float)),
            _ => escape_into(out, &number.to_string()),
        },
        Value::String(text) => escape_into(out, text),
        other => {
            out.push_str("<code>");
            escape_into(out, &other.to_string());
            out.push_str("</code>");
        }
    }
}

fn is_scalar(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

fn more(out: &mut String, left: usize, what: &str) {
    if left > 0 {
        out.push_str("<p class=\"muted\">… ");
        escape_into(out, &format!("{left} more {what} not shown"));
        out.push_str("</p>");
    }
}

fn render_into(out: &mut String, value: &Value, depth: usize) {
    match value {
        value if is_scalar(value) => scalar(out, value),
        _ if depth >= MAX_DEPTH => {
            out.push_str("<code>");
            escape_into(out, &value.to_string());
            out.push_str("</code>");
        }
        Value::Array(items) if items.is_empty() => out.push_str("<span class=\"muted\">empty</span>"),
        Value::Array(items) if items.iter().all(Value::is_object) => table(out, items, depth),
        Value::Array(items) => {
            // Log lines (newest first) and other lists: one item per line.
            out.push_str("<ol class=\"lines\">");
            for item in items.iter().take(MAX_ITEMS) {
                out.push_str("<li>");
                render_into(out, item, depth + 1);
                out.push_str("</li>");
            }
            out.push_str("</ol>");
            more(out, items.len().saturating_sub(MAX_ITEMS), "items");
        }
        Value::Object(map) if map.is_empty() => out.push_str("<span class=\"muted\">empty</span>"),
        Value::Object(map) if map.values().all(is_scalar) => key_value_table(out, map),
        Value::Object(map) => {
            out.push_str("<dl class=\"facts\">");
            for (key, item) in map.iter().take(MAX_ITEMS) {
                out.push_str("<dt>");
                escape_into(out, key);
                out.push_str("</dt><dd>");
                render_into(out, item, depth + 1);
                out.push_str("</dd>");
            }
            out.push_str("</dl>");
            more(out, map.len().saturating_sub(MAX_ITEMS), "entries");
        }
        _ => scalar(out, value),
    }
}

/// A map of scalars (a vector keyed by series, one table row): two columns.
fn key_value_table(out: &mut String, map: &Map<String, Value>) {
    out.push_str("<div class=\"table-scroll\"><table><thead><tr><th scope=\"col\">Key</th><th scope=\"col\">Value</th></tr></thead><tbody>");
    for (key, item) in map.iter().take(MAX_ITEMS) {
        out.push_str("<tr><th scope=\"row\"><code>");
        escape_into(out, key);
        out.push_str("</code></th><td>");
        scalar(out, item);
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table></div>");
    more(out, map.len().saturating_sub(MAX_ITEMS), "entries");
}

/// Rows (SQL results, traces): one column per key any row has, in first-seen order.
fn table(out: &mut String, rows: &[Value], depth: usize) {
    let mut columns: Vec<&String> = Vec::new();
    for row in rows.iter().take(MAX_ITEMS) {
        if let Value::Object(map) = row {
            for key in map.keys() {
                if !columns.contains(&key) {
                    columns.push(key);
                }
            }
        }
    }
    out.push_str("<div class=\"table-scroll\"><table><thead><tr>");
    for column in &columns {
        out.push_str("<th scope=\"col\">");
        escape_into(out, column);
        out.push_str("</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows.iter().take(MAX_ITEMS) {
        out.push_str("<tr>");
        for column in &columns {
            out.push_str("<td>");
            match row.get(column.as_str()) {
                Some(cell) => render_into(out, cell, depth + 1),
                None => out.push_str("<span class=\"muted\">none</span>"),
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    more(out, rows.len().saturating_sub(MAX_ITEMS), "rows");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scalars_maps_rows_and_lines_render_as_what_they_are() {
        assert_eq!(render(&json!(0.25)), "0.25");
        assert_eq!(render(&json!(18000)), "18000");
        assert_eq!(render(&Value::Null), "<span class=\"muted\">none</span>");
        let vector = render(&json!({"email": 3, "iban": 2}));
        assert!(vector.contains("<tr><th scope=\"row\"><code>email</code></th><td>3</td></tr>"), "{vector}");
        let rows = render(&json!([{"jobid": 7, "status": "failed"}, {"jobid": 8, "return_message": "lock"}]));
        assert!(
            rows.contains(
                "<th scope=\"col\">jobid</th><th scope=\"col\">status</th><th scope=\"col\">return_message</th>"
            ),
            "{rows}"
        );
        assert!(rows.contains("<td>8</td><td><span class=\"muted\">none</span></td><td>lock</td>"), "{rows}");
        let lines = render(&json!(["newest line", "older line"]));
        assert_eq!(lines, "<ol class=\"lines\"><li>newest line</li><li>older line</li></ol>");
        let nested = render(&json!({"count": 1, "traces": [{"trace_id": "ab"}]}));
        assert!(
            nested.starts_with(
                "<dl class=\"facts\"><dt>count</dt><dd>1</dd><dt>traces</dt><dd><div class=\"table-scroll\">"
            ),
            "{nested}"
        );
    }

    #[test]
    fn markup_in_values_and_keys_is_escaped() {
        let html = render(&json!({
            "<b>key</b>": "<script>alert(1)</script>",
            "rows": [{"<i>": "<img src=x onerror=alert(1)>"}],
            "lines": ["</ol><script>x()</script>"]
        }));
        assert!(
            !html.contains("<script") && !html.contains("<img") && !html.contains("<b>") && !html.contains("<i>"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("&lt;/ol&gt;&lt;script&gt;x()&lt;/script&gt;"), "{html}");
    }

    #[test]
    fn long_values_are_cut_with_a_note() {
        let lines: Vec<Value> = (0..60).map(|index| json!(format!("line {index}"))).collect();
        let html = render(&Value::Array(lines));
        assert_eq!(html.matches("<li>").count(), 50);
        assert!(html.contains("… 10 more items not shown"), "{html}");
    }
}
