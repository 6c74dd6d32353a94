//! The alert page (`/alerts/{fingerprint}`): one alert instance with its
//! runbook entry and the latest triage run inline (every step with its
//! status, the taken branch highlighted, skipped steps dimmed, guard rails in
//! a warning box, each check's expanded query, duration, result and a
//! sparkline per series), the facts triage could not establish, and a
//! timeline of state changes, triage runs, escalations and notifications.
//!
//! The acknowledge/close form has its place here ([`JournalForm`]): it is
//! rendered only when the caller passes one, which the journal backend does.

use std::collections::BTreeMap;

use askama::Template;

use crate::html::{format_age, format_time, format_value, machine_time};
use crate::sparkline::Sparkline;
use crate::{Layout, Page};

/// What the alert page reads; the caller finds each piece by the fingerprint.
pub struct AlertInput<'a> {
    pub catalog: &'a catalog::Catalog,
    pub fingerprint: &'a str,
    /// The rule engine's alert, while it is active or retained after resolving.
    pub alert: Option<&'a rules::Alert>,
    /// Its triage record, runs newest first (as `Runner::runs` gives it).
    pub record: Option<&'a triage::runner::Record>,
    /// Notifications that carried it, newest first.
    pub notifications: &'a [notify::HistoryRecord],
    /// The acknowledge/close form, when the journal backend is present.
    pub journal: Option<JournalForm>,
    pub now_ms: i64,
}

/// The journal's acknowledge and close form, filled by the journal backend:
/// where the forms post, the CSRF token they carry, and the catalog's
/// closing fields.
pub struct JournalForm {
    pub acknowledge_action: String,
    pub close_action: String,
    pub csrf_token: String,
    /// Who acknowledged it and when, once someone has.
    pub acknowledged: Option<String>,
    pub fields: Vec<JournalField>,
}

/// One closing field (`closing.fields` of the catalog).
pub struct JournalField {
    pub name: String,
    pub description: String,
    pub required: bool,
}

struct EntryView {
    id: String,
    alertname: String,
    title: String,
    intent: String,
    pages: String,
    background: String,
}

struct CheckView {
    datasource: String,
    query: String,
    result: String,
    duration: String,
    value_html: Option<String>,
    sparklines: Vec<Sparkline>,
    branch: Option<String>,
    candidates: String,
    error: Option<String>,
}

struct StepView {
    number: usize,
    kind: String,
    text: String,
    branch: Option<String>,
    branch_taken: bool,
    status: String,
    classes: String,
    reason: Option<String>,
    check: Option<CheckView>,
    computed: Vec<(String, String)>,
    guard_rail: bool,
    holds: Option<bool>,
    forbids: Vec<String>,
    escalation: Option<String>,
}

struct RunView {
    time: String,
    machine_time: String,
    age: String,
    trigger: String,
    duration: String,
    path: Vec<String>,
    previous_path: Option<String>,
    missing: Vec<String>,
    steps: Vec<StepView>,
    violated: usize,
}

struct TimelineEvent {
    time_ms: i64,
    time: String,
    machine_time: String,
    kind: &'static str,
    text: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "alert.html")]
struct AlertTemplate {
    layout: Layout,
    fingerprint: String,
    alertname: String,
    state: String,
    summary: String,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    since: Option<(String, String, String)>,
    value: Option<String>,
    entry: Option<EntryView>,
    run: Option<RunView>,
    runs: usize,
    timeline: Vec<TimelineEvent>,
    journal: Option<JournalForm>,
    triage_known: bool,
}

#[derive(Template)]
#[template(path = "not_found.html")]
struct NotFoundTemplate {
    layout: Layout,
    message: String,
}

/// A page saying what was not found (404).
pub fn not_found(catalog: &catalog::Catalog, message: String) -> Page {
    Page::from_template(&NotFoundTemplate { layout: Layout::new("Not found", "alerts", &catalog.title), message }, 404)
}

/// Whether `text` is an alert fingerprint: 16 lowercase hexadecimal digits.
pub fn is_fingerprint(text: &str) -> bool {
    text.len() == 16 && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(name, value)| format!("{name}={value:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

fn step_view(step: &triage::StepReport, run: &triage::Run, entry: Option<&catalog::Entry>) -> StepView {
    let branch_taken = step.branch.as_ref().is_some_and(|branch| run.path.contains(branch));
    let on_path = step.status != triage::StepStatus::Skipped;
    let guard_rail = step.kind == "guard_rail";
    let mut classes = vec![format!("step step-{}", step.status.as_str())];
    if branch_taken || (on_path && step.check.as_ref().is_some_and(|check| check.branch.is_some())) {
        classes.push("step-taken".into());
    }
    if guard_rail {
        classes.push("guard-rail".into());
        if step.holds == Some(false) {
            classes.push("guard-rail-violated".into());
        }
    }
    let check = step.check.as_ref().map(|check| CheckView {
        datasource: check.datasource.clone(),
        query: check.query.clone(),
        result: check.result.clone(),
        duration: format!("{} ms", check.duration_ms),
        value_html: check.value.as_ref().map(crate::evidence::render),
        sparklines: check
            .series
            .iter()
            .filter_map(|series| Sparkline::new(labels_text(&series.labels), &series.points))
            .collect(),
        branch: check.branch.clone(),
        candidates: check.candidates.join(", "),
        error: check.error.clone(),
    });
    let forbids = entry
        .and_then(|entry| entry.steps.iter().find(|catalog_step| catalog_step.number == step.number))
        .map(|catalog_step| catalog_step.forbids.clone())
        .unwrap_or_default();
    StepView {
        number: step.number,
        kind: step.kind.replace('_', " "),
        text: step.text.clone(),
        branch: step.branch.clone(),
        branch_taken,
        status: step.status.as_str().replace('_', " "),
        classes: classes.join(" "),
        reason: step.reason.clone(),
        check,
        computed: step.computed.iter().map(|(name, value)| (name.clone(), crate::evidence::render(value))).collect(),
        guard_rail,
        holds: step.holds,
        forbids,
        escalation: step.escalation.as_ref().map(|escalation| {
            let due = if escalation.due { "due" } else { "not due" };
            let manual = if escalation.manual { ", a person decides" } else { "" };
            format!("page {}: {due}{manual} ({})", escalation.to, escalation.reason)
        }),
    }
}

/// Steps of an entry that has not been triaged: its text, nothing run.
fn catalog_step_view(step: &catalog::Step) -> StepView {
    let guard_rail = step.kind == catalog::StepKind::GuardRail;
    StepView {
        number: step.number,
        kind: step.kind.as_str().to_owned(),
        text: step.text.clone(),
        branch: step.branch.clone(),
        branch_taken: false,
        status: "not run".into(),
        classes: if guard_rail { "step guard-rail".into() } else { "step".into() },
        reason: None,
        check: step.check.as_ref().map(|check| CheckView {
            datasource: check.datasource.as_str().to_owned(),
            query: check.query.clone(),
            result: check.result.clone(),
            duration: String::new(),
            value_html: None,
            sparklines: Vec::new(),
            branch: None,
            candidates: String::new(),
            error: None,
        }),
        computed: Vec::new(),
        guard_rail,
        holds: None,
        forbids: step.forbids.clone(),
        escalation: step.escalate_to.as_ref().map(|route| format!("page {route}")),
    }
}

fn run_view(run: &triage::Run, entry: Option<&catalog::Entry>, now_ms: i64) -> RunView {
    let steps: Vec<StepView> = run.steps.iter().map(|step| step_view(step, run, entry)).collect();
    RunView {
        time: format_time(run.time_ms),
        machine_time: machine_time(run.time_ms),
        age: format_age(now_ms, run.time_ms),
        trigger: run.trigger.replace('_', " "),
        duration: format!("{} ms", run.duration_ms),
        path: run.path.clone(),
        previous_path: run.previous_path.as_ref().map(|path| path.join(", ")),
        missing: run.missing.clone(),
        violated: run.violated_guard_rails().count(),
        steps,
    }
}

fn event(time_ms: i64, kind: &'static str, text: String, detail: String) -> TimelineEvent {
    TimelineEvent { time_ms, time: format_time(time_ms), machine_time: machine_time(time_ms), kind, text, detail }
}

fn timeline(input: &AlertInput<'_>) -> Vec<TimelineEvent> {
    let mut events = Vec::new();
    if let Some(alert) = input.alert {
        events.push(event(alert.active_at_ms, "state", "became active (pending)".into(), String::new()));
        if let Some(fired) = alert.fired_at_ms {
            events.push(event(fired, "state", "started firing".into(), format!("value {}", format_value(alert.value))));
        }
        if let Some(resolved) = alert.resolved_at_ms {
            events.push(event(resolved, "state", "resolved".into(), String::new()));
        }
    } else if let Some(record) = input.record {
        events.push(event(record.alert.firing_since_ms, "state", "started firing".into(), String::new()));
        if let Some(resolved) = record.resolved_at_ms {
            events.push(event(resolved, "state", "resolved".into(), String::new()));
        }
    }
    if let Some(record) = input.record {
        for run in &record.runs {
            let path = if run.path.is_empty() { "no branch decided".to_owned() } else { run.path.join(", ") };
            let mut detail = format!("{} run, {} ms", run.trigger.replace('_', " "), run.duration_ms);
            if let Some(previous) = &run.previous_path {
                detail.push_str(&format!("; branch changed from {}", previous.join(", ")));
            }
            if !run.missing.is_empty() {
                detail.push_str(&format!("; missing {}", run.missing.join(", ")));
            }
            events.push(event(run.time_ms, "triage", format!("triage took {path}"), detail));
        }
        for (step, started) in &record.escalation_started_ms {
            let route = record
                .runs
                .iter()
                .flat_map(|run| run.steps.iter())
                .find(|report| report.number == *step)
                .and_then(|report| report.escalation.as_ref())
                .map_or_else(String::new, |escalation| escalation.to.clone());
            events.push(event(*started, "escalation", format!("escalated to {route} (step {step})"), String::new()));
        }
    }
    for record in input.notifications {
        let status = record
            .alerts
            .iter()
            .find(|alert| alert.fingerprint == input.fingerprint)
            .map_or("", |alert| alert.status.as_str());
        let mut detail = format!("{} via {}, {}", record.state, record.integration, plural(record.attempts, "attempt"));
        if let Some(error) = &record.error {
            detail.push_str(": ");
            detail.push_str(error);
        }
        events.push(event(
            record.created_ms,
            "notification",
            format!("notified {} ({status})", record.receiver),
            detail,
        ));
    }
    events.sort_by_key(|event| std::cmp::Reverse(event.time_ms));
    events
}

fn plural(count: u32, noun: &str) -> String {
    if count == 1 { format!("1 {noun}") } else { format!("{count} {noun}s") }
}

/// Renders the alert page; a 404 page when nothing is known of the fingerprint.
pub fn render(input: AlertInput<'_>) -> Page {
    let catalog = input.catalog;
    let labels: BTreeMap<String, String> = match (input.alert, input.record) {
        (Some(alert), _) => alert.labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect(),
        (None, Some(record)) => record.alert.labels.clone(),
        (None, None) => match input
            .notifications
            .iter()
            .flat_map(|record| &record.alerts)
            .find(|alert| alert.fingerprint == input.fingerprint)
        {
            Some(alert) => alert.labels.clone(),
            None => {
                return not_found(
                    catalog,
                    format!(
                        "No alert with fingerprint {} is known: it is not active, was never triaged, and no notification names it.",
                        input.fingerprint
                    ),
                );
            }
        },
    };
    let empty = BTreeMap::new();
    let annotations = match (input.alert, input.record) {
        (Some(alert), _) => &alert.annotations,
        (None, Some(record)) => &record.alert.annotations,
        _ => &empty,
    };
    let alertname = labels.get("alertname").cloned().unwrap_or_default();
    let state = match (input.alert, input.record) {
        (Some(alert), _) if alert.state == rules::AlertState::Inactive => "resolved".to_owned(),
        (Some(alert), _) => alert.state.as_str().to_owned(),
        (None, Some(record)) if record.firing => "firing".to_owned(),
        _ => "resolved".to_owned(),
    };
    let runbook_id = crate::alerts::runbook_id_of(catalog, &alertname, annotations);
    let entry = runbook_id.as_deref().and_then(|id| catalog.entry(id));
    let latest = input.record.and_then(|record| record.runs.front());
    let run = latest.map(|run| run_view(run, entry, input.now_ms)).or_else(|| {
        entry.map(|entry| RunView {
            time: String::new(),
            machine_time: String::new(),
            age: String::new(),
            trigger: String::new(),
            duration: String::new(),
            path: Vec::new(),
            previous_path: None,
            missing: Vec::new(),
            violated: 0,
            steps: entry.steps.iter().map(catalog_step_view).collect(),
        })
    });
    let since = input.alert.map(|alert| {
        let since = alert.fired_at_ms.unwrap_or(alert.active_at_ms);
        (format_age(input.now_ms, since), format_time(since), machine_time(since))
    });
    let timeline = timeline(&input);
    let template = AlertTemplate {
        layout: Layout::new(format!("{alertname} ({state})"), "alerts", &catalog.title),
        fingerprint: input.fingerprint.to_owned(),
        summary: annotations.get("summary").cloned().unwrap_or_default(),
        labels: labels.iter().filter(|(name, _)| *name != "alertname").map(|(n, v)| (n.clone(), v.clone())).collect(),
        annotations: annotations
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "summary" | "runbook_id" | "runbook_url"))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        since,
        value: input.alert.map(|alert| format_value(alert.value)),
        entry: entry.map(|entry| EntryView {
            id: entry.id.clone(),
            alertname: entry.alertname.clone(),
            title: entry.title.clone(),
            intent: entry.intent.clone(),
            pages: entry.page.join(", "),
            background: entry.background.clone().unwrap_or_default(),
        }),
        triage_known: latest.is_some(),
        runs: input.record.map_or(0, |record| record.runs.len()),
        run,
        timeline,
        journal: input.journal,
        alertname,
        state,
    };
    Page::from_template(&template, 200)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn busflow() -> catalog::Catalog {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow");
        catalog::load(&root).unwrap_or_else(|diagnostics| panic!("{diagnostics}"))
    }

    const NOW_MS: i64 = 1_767_225_600_000;

    /// An A6 record as `/api/v1/triage` shows it: the compactor is five
    /// hours behind, Docker is not configured, and a label holds a script.
    fn record() -> triage::runner::Record {
        let labels =
            json!({"alertname": "LokiCompactorBehind", "job": "<script>alert(1)</script>", "route": "ops-oncall"});
        let run = json!({
            "runbook_id": "A6", "alertname": "LokiCompactorBehind", "fingerprint": "0123456789abcdef",
            "labels": labels, "time_ms": NOW_MS - 60_000, "firing_since_ms": NOW_MS - 600_000, "duration_ms": 12,
            "path": ["compactor-unhealthy"], "trigger": "firing", "branch_since_ms": {"compactor-unhealthy": NOW_MS - 60_000},
            "results": {"compactor_lag_seconds": 18000.0}, "missing": ["compactor_replicas"],
            "steps": [
                {"number": 1, "kind": "check", "text": "Check the compactor's health", "status": "ran",
                 "check": {"datasource": "metrics", "query": "time() - max(x)", "result": "compactor_lag_seconds", "duration_ms": 3,
                           "value": 18000.0, "branch": "compactor-unhealthy",
                           "series": [{"labels": {"job": "loki"}, "points": [[NOW_MS - 120_000, 17880.0], [NOW_MS - 60_000, 17940.0], [NOW_MS, 18000.0]]}]}},
                {"number": 2, "kind": "instruction", "text": "Restart the loki_compactor service", "branch": "compactor-unhealthy", "status": "listed"},
                {"number": 3, "kind": "guard_rail", "text": "Never scale the compactor up", "status": "failed",
                 "reason": "no docker datasource configured",
                 "check": {"datasource": "docker", "query": "service loki_compactor replicas", "result": "compactor_replicas", "duration_ms": 0,
                           "error": "no docker datasource configured"}},
                {"number": 4, "kind": "check", "text": "Measure the bucket", "branch": "compactor-healthy", "status": "skipped",
                 "reason": "branch compactor-healthy not taken"},
                {"number": 5, "kind": "instruction", "text": "Open a ticket", "branch": "compactor-healthy", "status": "skipped"},
                {"number": 6, "kind": "guard_rail", "text": "Never fix this with MinIO lifecycle rules", "status": "listed", "holds": false}
            ]
        });
        serde_json::from_value(json!({
            "fingerprint": "0123456789abcdef",
            "alert": {"labels": labels, "annotations": {"summary": "compactor <b>behind</b>"}, "value": 18000.0, "firing_since_ms": NOW_MS - 600_000},
            "firing": true, "runs": [run], "sent_escalations": [], "escalation_started_ms": {}
        }))
        .expect("record")
    }

    fn notifications() -> Vec<notify::HistoryRecord> {
        let alert = notify::HistoryAlert {
            fingerprint: "0123456789abcdef".into(),
            labels: BTreeMap::new(),
            status: "firing".into(),
        };
        vec![notify::HistoryRecord {
            id: 7,
            receiver: "ops-oncall".into(),
            integration: "webhook".into(),
            group_key: "{}:{}".into(),
            alerts: vec![alert],
            created_ms: NOW_MS - 30_000,
            state: "failed".into(),
            attempts: 3,
            error: Some("HTTP 500: <html>oops</html>".into()),
            finished_ms: Some(NOW_MS - 20_000),
        }]
    }

    #[test]
    fn the_latest_run_shows_inline_with_the_taken_branch_and_guard_rails() {
        let catalog = busflow();
        let record = record();
        let notifications = notifications();
        let page = render(AlertInput {
            catalog: &catalog,
            fingerprint: "0123456789abcdef",
            alert: None,
            record: Some(&record),
            notifications: &notifications,
            journal: None,
            now_ms: NOW_MS,
        });
        assert_eq!(page.status, 200);
        let html = page.html;
        // Nothing from the data becomes markup.
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(!html.contains("<b>behind") && !html.contains("<html>oops"), "{html}");
        // The entry, linked to the runbook page.
        assert!(html.contains("<a href=\"/runbook/A6\">The full runbook entry A6 (LokiCompactorBehind)</a>"), "{html}");
        // The path, the taken branch highlighted, skipped steps dimmed, guard rails boxed.
        assert!(
            html.contains("<ol class=\"path\" aria-label=\"Branches taken\"><li>compactor-unhealthy</li></ol>"),
            "{html}"
        );
        assert!(html.contains("<li class=\"step step-ran step-taken\" id=\"step-1\">"), "{html}");
        assert!(html.contains("<li class=\"step step-listed step-taken\" id=\"step-2\">"), "{html}");
        assert!(html.contains("branch compactor-unhealthy (taken)"), "{html}");
        assert!(html.contains("<li class=\"step step-failed guard-rail\" id=\"step-3\">"), "{html}");
        assert!(html.contains("<li class=\"step step-skipped\" id=\"step-4\">"), "{html}");
        assert!(
            html.contains("<li class=\"step step-listed guard-rail guard-rail-violated\" id=\"step-6\">"),
            "{html}"
        );
        assert!(html.contains("1 guard rail does not hold."), "{html}");
        assert!(html.contains("<code>\\bmc\\s+ilm\\s+(rule\\s+)?(add|import|edit)\\b</code>"), "{html}");
        // Evidence: the value, the query, a sparkline of the series, the missing fact.
        assert!(html.contains("<dt><code>compactor_lag_seconds</code></dt><dd>18000</dd>"), "{html}");
        assert!(html.contains("<pre><code>time() - max(x)</code></pre>"), "{html}");
        assert!(html.contains("<path class=\"spark-line\" d=\"M2.0 38.0 L100.0 20.0 L198.0 2.0\"/>"), "{html}");
        assert!(html.contains("role=\"img\" aria-label=\"{job=&#34;loki&#34;}: 3 points from"), "{html}");
        assert!(html.contains("<li><code>compactor_replicas</code></li>"), "{html}");
        assert!(html.contains("no docker datasource configured"), "{html}");
        // The timeline: the firing, the run, the failed notification with its error.
        assert!(html.contains("<strong>triage took compactor-unhealthy</strong>"), "{html}");
        assert!(html.contains("<strong>notified ops-oncall (firing)</strong> <span class=\"muted\">failed via webhook, 3 attempts: HTTP 500: &#60;html&#62;oops"), "{html}");
        assert!(html.contains("<strong>started firing</strong>"), "{html}");
        // No journal backend: no form, no placeholder.
        assert!(!html.contains("<form method=\"post\"") && !html.contains("journal-slot"), "{html}");
    }

    #[test]
    fn the_journal_form_renders_when_the_backend_passes_one() {
        let catalog = busflow();
        let record = record();
        let journal = JournalForm {
            acknowledge_action: "/alerts/0123456789abcdef/ack".into(),
            close_action: "/alerts/0123456789abcdef/close".into(),
            csrf_token: "token\"><script>".into(),
            acknowledged: None,
            fields: vec![JournalField { name: "root_cause".into(), description: "one line".into(), required: true }],
        };
        let page = render(AlertInput {
            catalog: &catalog,
            fingerprint: "0123456789abcdef",
            alert: None,
            record: Some(&record),
            notifications: &[],
            journal: Some(journal),
            now_ms: NOW_MS,
        });
        assert!(page.html.contains("<label for=\"journal-root_cause\">root_cause (required)</label>"), "{}", page.html);
        assert!(page.html.contains("name=\"csrf_token\" value=\"token&#34;&#62;&#60;script&#62;\""), "{}", page.html);
    }

    #[test]
    fn unknown_and_malformed_fingerprints() {
        let catalog = busflow();
        let page = render(AlertInput {
            catalog: &catalog,
            fingerprint: "0123456789abcdef",
            alert: None,
            record: None,
            notifications: &[],
            journal: None,
            now_ms: NOW_MS,
        });
        assert_eq!(page.status, 404);
        assert!(page.html.contains("No alert with fingerprint 0123456789abcdef is known"), "{}", page.html);
        assert!(is_fingerprint("0123456789abcdef"));
        assert!(!is_fingerprint("0123456789ABCDEF") && !is_fingerprint("<script>") && !is_fingerprint("0123"));
    }
}
