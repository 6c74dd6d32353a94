//! Renders the runbook as Markdown, from the entries: the one source of truth
//! is `runbook/*.yaml`; `runbook.md` is this module's output, checked in so the
//! runbook stays flat and greppable, and verified by `alertbook check`.

use std::fmt::Write;

use crate::model::{Catalog, Entry, RuleKind, StepKind};

/// The whole runbook: a header, one section per entry, the closing rule.
pub fn render(catalog: &Catalog) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "<!-- generated from runbook/*.yaml by `alertbook runbook --markdown`; do not edit -->");
    let _ = writeln!(out, "# {}\n", catalog.title);
    if !catalog.description.is_empty() {
        let _ = writeln!(out, "{}\n", catalog.description.trim());
    }
    for entry in &catalog.entries {
        let _ = writeln!(out, "- [{} {}](#{})", entry.id, entry.alertname, anchor(entry));
    }
    out.push('\n');
    for entry in &catalog.entries {
        out.push_str(&render_entry(catalog, entry));
        out.push('\n');
    }
    let _ = writeln!(out, "## Closing an alert\n");
    let _ = writeln!(out, "{}\n", catalog.closing.summary.trim());
    for field in &catalog.closing.fields {
        match &field.required_when {
            Some(when) => {
                let _ = writeln!(out, "- **{}**: {} (required when `{when}`)", field.name, field.description.trim());
            }
            None => {
                let _ = writeln!(out, "- **{}**: {}", field.name, field.description.trim());
            }
        }
    }
    out
}

fn anchor(entry: &Entry) -> String {
    format!("{}--{}", entry.id, entry.alertname).to_lowercase()
}

/// One entry's section, as printed by `alertbook runbook <ID>`.
pub fn render_entry(catalog: &Catalog, entry: &Entry) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {} — {}\n", entry.id, entry.alertname);
    let _ = writeln!(out, "**{}.** {}\n", entry.title, entry.intent);
    let _ = writeln!(out, "- ID: `{}`; alertname: `{}`", entry.id, entry.alertname);
    let _ =
        writeln!(out, "- Pages: {}", entry.page.iter().map(|route| format!("@{route}")).collect::<Vec<_>>().join(", "));
    for (file, group, rule) in catalog.alert_rules() {
        if matches!(&rule.kind, RuleKind::Alert(name) if *name == entry.alertname) {
            let relative = file.path.strip_prefix(&catalog.root).unwrap_or(&file.path);
            let _ = write!(
                out,
                "- Detection ({}): rule `{}` in `{}`, group `{}`",
                group.datasource.as_str(),
                entry.alertname,
                relative.display(),
                group.name
            );
            if !rule.for_duration.is_zero() {
                let _ = write!(out, ", for {}", format_duration(rule.for_duration));
            }
            out.push('\n');
        }
    }
    if !entry.thresholds.is_empty() {
        let bound: Vec<String> = entry.thresholds.iter().map(|binding| format!("`{}`", binding.text)).collect();
        let _ = writeln!(out, "- Thresholds, from the contracts: {}", bound.join(", "));
    }
    out.push('\n');
    if let Some(background) = &entry.background {
        let _ = writeln!(out, "{background}\n");
    }
    let _ = writeln!(out, "### Triage\n");
    for step in &entry.steps {
        let mut tags = vec![step.kind.as_str().to_owned()];
        if let Some(check) = &step.check {
            tags.push(check.datasource.as_str().to_owned());
        }
        if let Some(branch) = &step.branch {
            tags.push(format!("branch {branch}"));
        }
        if let Some(route) = &step.escalate_to {
            tags.push(format!("page @{route}"));
        }
        let _ = writeln!(out, "{}. [{}] {}", step.number, tags.join(" · "), indent_continuation(&step.text));
        if let Some(check) = &step.check {
            let language = match check.datasource.as_str() {
                "metrics" => "promql",
                "logs" => "logql",
                "sql" => "sql",
                "traces" => "traceql",
                _ => "text",
            };
            let _ = writeln!(out, "\n   ```{language}");
            for line in check.query.lines() {
                let _ = writeln!(out, "   {line}");
            }
            let _ = writeln!(out, "   ```\n");
            let _ = writeln!(out, "   Result: `{}`.", check.result);
            for branch in &check.branches {
                match &branch.when {
                    Some(when) => {
                        let _ = writeln!(out, "   - when `{}`: branch **{}**", when.text.trim(), branch.branch);
                    }
                    None => {
                        let _ = writeln!(out, "   - otherwise: branch **{}**", branch.branch);
                    }
                }
            }
        }
        for computed in &step.compute {
            let _ = writeln!(out, "   - computes `{} = {}`", computed.name, computed.predicate.text.trim());
        }
        for pattern in &step.forbids {
            let _ = writeln!(out, "   - forbidden command: `{pattern}`");
        }
        let condition = &step.condition;
        if condition.manual {
            let _ = writeln!(out, "   - sent by a person, never by triage");
        }
        if let Some(when) = &condition.when {
            let _ = writeln!(out, "   - pages only when `{}`", when.text.trim());
        }
        if let Some(after) = condition.after {
            let _ = writeln!(out, "   - pages only after the alert fired {} on this branch", format_duration(after));
        }
        if let Some(holds) = &step.holds {
            let _ = writeln!(out, "   - must hold: `{}`", holds.text.trim());
        }
        if !step.contracts.is_empty() {
            let names: Vec<String> = step.contracts.iter().map(|name| format!("`{name}`")).collect();
            let _ = writeln!(out, "   - contracts: {}", names.join(", "));
        }
        if step.kind == StepKind::Check || step.check.is_some() {
            out.push('\n');
        }
    }
    if !out.ends_with("\n\n") {
        out.push('\n');
    }
    if let Some(escalation) = &entry.escalation {
        let _ = writeln!(out, "### Escalation\n\n{escalation}\n");
    }
    let _ = writeln!(out, "### Closing\n");
    if let Some(closing) = &entry.closing {
        let _ = writeln!(out, "{closing}\n");
    }
    let fields: Vec<&str> = catalog.closing.fields.iter().map(|field| field.name.as_str()).collect();
    let _ = writeln!(out, "Close in the journal with {} (alert ID `{}`).", fields.join(", "), entry.id);
    out
}

fn indent_continuation(text: &str) -> String {
    text.lines().collect::<Vec<_>>().join("\n   ")
}

/// A duration in Prometheus notation (`5m`, `1h30m`).
pub fn format_duration(duration: std::time::Duration) -> String {
    let mut ms = duration.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)] {
        if ms >= size {
            let _ = write!(out, "{}{unit}", ms / size);
            ms %= size;
        }
    }
    out
}
