//! The journal as Markdown, CSV (RFC 4180) or JSON text. Pure: entries in,
//! text out; the CLI prints it and the server serves it.

use std::fmt::Write as _;

use crate::Entry;

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Csv,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "md" | "markdown" => Ok(Format::Markdown),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            other => Err(format!("unknown format {other:?}: expected md, csv or json")),
        }
    }
}

/// `entries` in `format`.
pub fn render(entries: &[Entry], format: Format) -> String {
    match format {
        Format::Markdown => markdown(entries),
        Format::Csv => csv(entries),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(entries).unwrap_or_else(|_| "[]".into());
            text.push('\n');
            text
        }
    }
}

/// Text from responders, made inert in Markdown: characters with a meaning
/// (emphasis, links, HTML, headings, tables) are backslash-escaped.
fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        if "\\`*_{}[]()<>#+-!|~".contains(character) {
            out.push('\\');
        }
        if character.is_control() {
            out.push(' ');
        } else {
            out.push(character);
        }
    }
    out
}

/// The journal as Markdown: one section per entry, newest first.
pub fn markdown(entries: &[Entry]) -> String {
    let mut out = String::from("# On-call journal\n\n");
    if entries.is_empty() {
        out.push_str("No entries.\n");
    }
    for entry in entries {
        let _ = writeln!(
            out,
            "## {} {} (entry {}), closed {} by {}\n",
            escape_markdown(&entry.alert_id),
            escape_markdown(&entry.alertname),
            entry.id,
            entry.closed_at,
            escape_markdown(&entry.closed_by)
        );
        let _ = writeln!(out, "- Fired: {}", entry.fired_at);
        let _ =
            writeln!(out, "- Acknowledged: {} by {}", entry.acknowledged_at, escape_markdown(&entry.acknowledged_by));
        if let Some(resolved) = &entry.resolved_at {
            let _ = writeln!(out, "- Resolved: {resolved}");
        }
        let _ = writeln!(out, "- Root cause: {}", escape_markdown(&entry.root_cause));
        let _ = writeln!(out, "- Remediation: {}", escape_markdown(&entry.remediation));
        for broken in &entry.guard_rails_broken {
            let _ = writeln!(
                out,
                "- Guard rail broken: step {}, {} (`{}`)",
                broken.step,
                escape_markdown(&broken.rail),
                broken.matched.replace('`', "'")
            );
        }
        match (&entry.contract, &entry.contract_pr) {
            (Some(contract), Some(pull_request)) if entry.contract_changed => {
                let _ = writeln!(
                    out,
                    "- Contract changed: yes, {} ({})",
                    escape_markdown(contract),
                    escape_markdown(pull_request)
                );
            }
            _ => out.push_str("- Contract changed: no\n"),
        }
        if entry.triage_runs.is_empty() {
            out.push_str("- Triage: no run\n");
        } else {
            let paths: Vec<String> = entry.triage_runs.iter().map(|run| escape_markdown(&run.path)).collect();
            let _ = writeln!(out, "- Triage: {} run(s), paths {}", entry.triage_runs.len(), paths.join(", "));
        }
        if entry.revision > 1 {
            let _ = writeln!(
                out,
                "- Revision {} by {} at {}",
                entry.revision,
                escape_markdown(&entry.revised_by),
                entry.revised_at
            );
        }
        out.push('\n');
    }
    out
}

/// One CSV field: quoted when needed (RFC 4180); a leading `=`, `+`, `-` or
/// `@` is prefixed with `'` so spreadsheets do not run it as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) { format!("'{text}") } else { text.to_owned() };
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text }
}

/// The journal as CSV with a header line.
pub fn csv(entries: &[Entry]) -> String {
    let mut out = String::from(
        "id,alert_id,alertname,fired_at,acknowledged_by,acknowledged_at,resolved_at,closed_by,closed_at,revision,\
         root_cause,remediation,contract_changed,contract,contract_pr,triage_runs\r\n",
    );
    for entry in entries {
        let fields = [
            entry.id.to_string(),
            entry.alert_id.clone(),
            entry.alertname.clone(),
            entry.fired_at.clone(),
            entry.acknowledged_by.clone(),
            entry.acknowledged_at.clone(),
            entry.resolved_at.clone().unwrap_or_default(),
            entry.closed_by.clone(),
            entry.closed_at.clone(),
            entry.revision.to_string(),
            entry.root_cause.clone(),
            entry.remediation.clone(),
            if entry.contract_changed { "yes".into() } else { "no".into() },
            entry.contract.clone().unwrap_or_default(),
            entry.contract_pr.clone().unwrap_or_default(),
            entry.triage_runs.len().to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|field| csv_field(field)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LinkedRun, Links};

    fn entry() -> Entry {
        Entry {
            id: 7,
            alert_id: "A6".into(),
            alertname: "LokiCompactorBehind".into(),
            fingerprint: "abc".into(),
            labels: Default::default(),
            fired_at: "2026-12-02T10:00:00Z".into(),
            acknowledged_by: "alice".into(),
            acknowledged_at: "2026-12-02T10:05:00Z".into(),
            resolved_at: None,
            closed_by: "alice".into(),
            closed_at: "2026-12-02T11:00:00Z".into(),
            revision: 1,
            revised_by: "alice".into(),
            revised_at: "2026-12-02T11:00:00Z".into(),
            root_cause: "compactor <script>alert(1)</script>, \"OOM\"".into(),
            remediation: "no-op, transient".into(),
            contract_changed: true,
            contract: Some("log-retention".into()),
            contract_pr: Some("https://git.example/pull/3".into()),
            triage_runs: vec![LinkedRun { time_ms: 1, path: "compactor-unhealthy".into(), summary: String::new() }],
            timeline: Vec::new(),
            links: Links { runbook: "/runbook/A6.md".into(), triage: "/api/v1/triage?fingerprint=abc".into() },
            guard_rails_broken: Vec::new(),
        }
    }

    #[test]
    fn markdown_shows_the_closing_fields_with_responder_text_inert() {
        let text = markdown(&[entry()]);
        assert!(text.contains("## A6 LokiCompactorBehind (entry 7), closed 2026-12-02T11:00:00Z by alice"), "{text}");
        assert!(text.contains("- Root cause: compactor \\<script\\>alert\\(1\\)\\</script\\>, \"OOM\""), "{text}");
        assert!(text.contains("- Remediation: no\\-op, transient"), "{text}");
        assert!(text.contains("- Contract changed: yes, log\\-retention (https://git.example/pull/3)"), "{text}");
        assert!(text.contains("- Triage: 1 run(s), paths compactor\\-unhealthy"), "{text}");
        assert_eq!(markdown(&[]), "# On-call journal\n\nNo entries.\n");
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut formula = entry();
        formula.root_cause = "=HYPERLINK(\"x\")".into();
        let text = csv(&[entry(), formula]);
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert!(lines[0].starts_with("id,alert_id,alertname,"));
        assert!(lines[1].contains(",\"compactor <script>alert(1)</script>, \"\"OOM\"\"\","), "{}", lines[1]);
        assert!(
            lines[1].contains(",\"no-op, transient\",yes,log-retention,https://git.example/pull/3,1"),
            "{}",
            lines[1]
        );
        assert!(lines[2].contains(",\"'=HYPERLINK(\"\"x\"\")\","), "{}", lines[2]);
    }

    #[test]
    fn json_round_trips_and_formats_parse() {
        let text = render(&[entry()], Format::Json);
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value[0]["contract_pr"], "https://git.example/pull/3");
        assert_eq!("md".parse::<Format>(), Ok(Format::Markdown));
        assert!("xml".parse::<Format>().is_err());
    }
}
