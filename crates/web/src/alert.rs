//! The alert page (`/alerts/{fingerprint}`): one alert instance with its
//! runbook entry and the latest triage run inline (every step with its
//! status, the taken branch highlighted, skipped steps dimmed, guard rails in
//! a warning box, each check's expanded query, duration, result and a
//! sparkline per series), the facts triage could not establish, and a
//! timeline of state changes, triage runs, escalations and notifications.
//!
//! With the journal backend, the page also carries the journal's part
//! ([`JournalForm`]): who acknowledged the alert and when, the acknowledge
//! button, the close form with the catalog's closing fields (each refused
//! field's message next to its input, the submitted values kept), the
//! winning revision after a conflicting close, and the entry once written.
//! Who may do what is decided by the caller ([`JournalAccess`]).

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
    /// The alert's labels as the journal recorded them at its
    /// acknowledgement: the page still renders from them once the rule
    /// engine, triage and notifications have forgotten the alert (an
    /// acknowledged alert that resolved still needs its entry).
    pub journal_labels: Option<&'a BTreeMap<String, String>>,
    /// Who is looking (the layout's account area).
    pub viewer: &'a crate::Viewer,
    /// The status to answer with: 200, or 400/409 when the page shows a refused form.
    pub status: u16,
    pub now_ms: i64,
}

/// The journal part of the alert page, filled by the server when the
/// journal backend is configured: where the forms post, what the person
/// looking may do, the state of the alert's latest episode, and — after a
/// refused or conflicting close — what was submitted and why it was refused.
pub struct JournalForm {
    pub acknowledge_action: String,
    pub close_action: String,
    pub access: JournalAccess,
    /// The runbook ID the entry is written for (the `alert_id` field).
    pub alert_id: String,
    /// Whoever acknowledged the open (or the closed) episode, and when.
    pub acknowledged: Option<(String, i64)>,
    /// The episode's entry, once written.
    pub closed: Option<ClosedEntry>,
    /// The alert fires and this firing has no acknowledgement yet.
    pub can_acknowledge: bool,
    /// An acknowledged episode waits for its entry.
    pub can_close: bool,
    /// What a refused close submitted (kept in the form) — `None` for an empty form.
    pub submitted: Option<journal::ClosingForm>,
    /// The refused fields of that submission.
    pub errors: Vec<journal::FieldError>,
    /// Someone else wrote the entry first: their revision (the submitted
    /// text stays in the form, to be sent as a correction of it).
    pub conflict: Option<state::Revision>,
    /// A refusal that is not about one field (already acknowledged, not firing…).
    pub notice: Option<String>,
    /// The written entry's latest revision and its values: a responder may
    /// correct it (a new revision), from a form that starts folded.
    pub correctable: Option<(i64, journal::ClosingForm)>,
}

impl JournalForm {
    /// The form of the alert with `fingerprint` for `access`, before the
    /// journal says anything: no runbook ID, nothing acknowledged or
    /// closed, nothing allowed yet, nothing submitted.
    pub fn new(fingerprint: &str, access: JournalAccess) -> Self {
        JournalForm {
            acknowledge_action: format!("/alerts/{fingerprint}/acknowledge"),
            close_action: format!("/alerts/{fingerprint}/close"),
            access,
            alert_id: String::new(),
            acknowledged: None,
            closed: None,
            can_acknowledge: false,
            can_close: false,
            submitted: None,
            errors: Vec::new(),
            conflict: None,
            notice: None,
            correctable: None,
        }
    }
}

/// What the person looking at the alert page may do with the journal.
pub enum JournalAccess {
    /// Not logged in: a link to the login page (which comes back here).
    LogIn { login_url: String },
    /// Logged in as a viewer: the state, no buttons.
    ReadOnly { name: String, role: String },
    /// A responder or admin: the forms, with the session's CSRF token.
    Respond { csrf_token: String },
}

/// A written journal entry as the alert page mentions it.
pub struct ClosedEntry {
    pub entry_id: i64,
    pub closed_by: String,
    pub closed_at_ms: i64,
    pub revision: i64,
}

/// The closing fields alertbook renders, in the order it renders them
/// (the catalog's `closing.fields` order decides; `contract` follows
/// `contract_changed`).
const CONTRACT_FIELD: &str = "contract";

/// One field of the close form.
struct FieldView {
    name: String,
    label: String,
    help: String,
    required: bool,
    /// `readonly`, `text`, `url`, `yes_no` or `select`.
    kind: &'static str,
    maxlength: usize,
    value: String,
    options: Vec<(String, String, bool)>,
    error: Option<String>,
}

impl FieldView {
    fn describedby(&self) -> String {
        if self.error.is_some() {
            format!("journal-{0}-error journal-{0}-help", self.name)
        } else {
            format!("journal-{}-help", self.name)
        }
    }
}

struct ClosedView {
    entry_id: i64,
    closed_by: String,
    time: String,
    machine_time: String,
    revision: i64,
}

struct ConflictView {
    author: String,
    revision: i64,
    time: String,
    machine_time: String,
    root_cause: String,
    remediation: String,
    contract: String,
}

struct JournalView {
    acknowledge_action: String,
    close_action: String,
    login_url: Option<String>,
    read_only: Option<String>,
    csrf_token: String,
    acknowledged: Option<(String, String, String)>,
    closed: Option<ClosedView>,
    can_acknowledge: bool,
    show_close_form: bool,
    /// The form corrects the written entry, folded until opened.
    folded: bool,
    correction_of: Option<i64>,
    fields: Vec<FieldView>,
    errors: Vec<(String, String)>,
    conflict: Option<ConflictView>,
    notice: Option<String>,
}

fn submitted_value(form: Option<&journal::ClosingForm>, name: &str) -> Option<String> {
    let form = form?;
    match name {
        "alert_id" => form.alert_id.clone(),
        "root_cause" => form.root_cause.clone(),
        "remediation" => form.remediation.clone(),
        "contract_changed" => form.contract_changed.as_ref().map(|value| match value {
            serde_json::Value::String(text) => text.trim().to_ascii_lowercase(),
            serde_json::Value::Bool(true) => "yes".into(),
            serde_json::Value::Bool(false) => "no".into(),
            other => other.to_string(),
        }),
        CONTRACT_FIELD => form.contract.clone(),
        "contract_pr" => form.contract_pr.clone(),
        _ => None,
    }
}

fn capitalised(text: &str) -> String {
    let mut characters = text.chars();
    characters.next().map(|first| first.to_uppercase().chain(characters).collect()).unwrap_or_default()
}

/// The form's fields for the catalog's closing rule, with the submitted
/// values and each refused field's message.
fn closing_fields(catalog: &catalog::Catalog, form: &JournalForm) -> Vec<FieldView> {
    let submitted = form.submitted.as_ref();
    let error_of = |name: &str| {
        let messages: Vec<&str> =
            form.errors.iter().filter(|error| error.field == name).map(|error| error.message.as_str()).collect();
        (!messages.is_empty()).then(|| messages.join("; "))
    };
    let mut names: Vec<(String, String)> =
        catalog.closing.fields.iter().map(|field| (field.name.clone(), field.description.clone())).collect();
    if !names.iter().any(|(name, _)| name == CONTRACT_FIELD) {
        let at = names.iter().position(|(name, _)| name == "contract_changed").map_or(names.len(), |at| at + 1);
        names.insert(at, (CONTRACT_FIELD.to_owned(), "which catalog contract changed".to_owned()));
    }
    let mut fields = Vec::new();
    for (name, description) in names {
        let value = submitted_value(submitted, &name);
        let mut field = FieldView {
            label: String::new(),
            help: description.clone(),
            required: true,
            kind: "text",
            maxlength: 0,
            value: value.clone().unwrap_or_default(),
            options: Vec::new(),
            error: error_of(&name),
            name: name.clone(),
        };
        match name.as_str() {
            "alert_id" => {
                field.label = "Runbook ID".into();
                field.kind = "readonly";
                field.value = form.alert_id.clone();
                field.help = format!("This alert's runbook entry is {}.", form.alert_id);
            }
            "root_cause" => {
                field.label = "Root cause".into();
                field.maxlength = journal::closing::ROOT_CAUSE_MAX_CHARS;
                field.help = format!(
                    "{} (one line, at most {} characters).",
                    capitalised(&description),
                    journal::closing::ROOT_CAUSE_MAX_CHARS
                );
            }
            "remediation" => {
                field.label = "Remediation".into();
                field.maxlength = journal::closing::REMEDIATION_MAX_CHARS;
                field.help = format!(
                    "One of: the pull request's URL (https://…), \"{} <what changed>\" for a configuration change, or exactly \"{}\" when nothing was needed.",
                    journal::closing::CONFIG_PREFIX,
                    journal::closing::NO_OP_TRANSIENT
                );
            }
            "contract_changed" => {
                field.label = "Did a contract change?".into();
                field.kind = "yes_no";
                field.options = [("yes", "Yes"), ("no", "No")]
                    .iter()
                    .map(|(option, label)| {
                        ((*option).to_owned(), (*label).to_owned(), value.as_deref() == Some(*option))
                    })
                    .collect();
                field.help = format!("{}.", capitalised(&description));
            }
            CONTRACT_FIELD => {
                field.label = "Contract".into();
                field.kind = "select";
                field.required = false;
                field.options = std::iter::once((String::new(), "None changed".to_owned(), field.value.is_empty()))
                    .chain(catalog.contracts.keys().map(|contract| {
                        (contract.clone(), contract.clone(), value.as_deref().map(str::trim) == Some(contract.as_str()))
                    }))
                    .collect();
                field.help = "Required when a contract changed: which of the catalog's contracts.".into();
            }
            "contract_pr" => {
                field.label = "Contract pull request".into();
                field.kind = "url";
                field.required = false;
                field.help =
                    format!("{}: required exactly when a contract changed (https://…).", capitalised(&description));
            }
            // A field the catalog names but alertbook cannot store: the
            // server reports it at start; the form leaves it out.
            _ => continue,
        }
        fields.push(field);
    }
    fields
}

fn journal_view(catalog: &catalog::Catalog, mut form: JournalForm) -> JournalView {
    // A written entry, nothing submitted: the correction form, prefilled with the latest revision.
    let mut folded = false;
    let mut correction_of = form.conflict.as_ref().map(|revision| revision.revision);
    if let Some((revision, latest)) = form.correctable.take()
        && correction_of.is_none()
    {
        correction_of = Some(revision);
        if form.submitted.is_none() {
            form.submitted = Some(latest);
            folded = true;
        }
    }
    let fields = closing_fields(catalog, &form);
    let (login_url, read_only, csrf_token) = match &form.access {
        JournalAccess::LogIn { login_url } => (Some(login_url.clone()), None, String::new()),
        JournalAccess::ReadOnly { name, role } => (
            None,
            Some(format!("You are logged in as {name}, a {role}: acknowledging and closing need the responder role.")),
            String::new(),
        ),
        JournalAccess::Respond { csrf_token } => (None, None, csrf_token.clone()),
    };
    let responder = !csrf_token.is_empty();
    let contract_text = |changed: bool, contract: &Option<String>, pull_request: &Option<String>| {
        if changed {
            format!("{} ({})", contract.as_deref().unwrap_or("?"), pull_request.as_deref().unwrap_or("no pull request"))
        } else {
            "none changed".into()
        }
    };
    JournalView {
        acknowledge_action: form.acknowledge_action,
        close_action: form.close_action,
        login_url,
        read_only,
        acknowledged: form.acknowledged.map(|(by, at_ms)| (by, format_time(at_ms), machine_time(at_ms))),
        closed: form.closed.map(|closed| ClosedView {
            entry_id: closed.entry_id,
            closed_by: closed.closed_by,
            time: format_time(closed.closed_at_ms),
            machine_time: machine_time(closed.closed_at_ms),
            revision: closed.revision,
        }),
        can_acknowledge: responder && form.can_acknowledge,
        show_close_form: responder && (form.can_close || correction_of.is_some()),
        folded,
        correction_of,
        errors: form
            .errors
            .iter()
            .map(|error| {
                let label = fields
                    .iter()
                    .find(|field| field.name == error.field)
                    .map_or_else(|| error.field.to_owned(), |field| field.label.clone());
                (format!("journal-{}", error.field), format!("{label}: {}", error.message))
            })
            .collect(),
        conflict: form.conflict.map(|revision| ConflictView {
            contract: contract_text(revision.contract_changed, &revision.contract, &revision.contract_pr),
            author: revision.author,
            revision: revision.revision,
            time: format_time(revision.written_at_ms),
            machine_time: machine_time(revision.written_at_ms),
            root_cause: revision.root_cause,
            remediation: revision.remediation,
        }),
        notice: form.notice,
        csrf_token,
        fields,
    }
}

struct EntryView {
    id: String,
    alertname: String,
    title: String,
    intent: String,
    pages: String,
    background: String,
    /// The alert's `runbook_url` annotation: the link its notifications carry,
    /// under alertbook's external URL (empty when the alert has none).
    link: String,
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
    journal: Option<JournalView>,
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
    if let Some(journal) = &input.journal {
        if let Some((by, at_ms)) = &journal.acknowledged {
            events.push(event(*at_ms, "journal", format!("acknowledged by {by}"), String::new()));
        }
        if let Some(closed) = &journal.closed {
            events.push(event(
                closed.closed_at_ms,
                "journal",
                format!("closed by {}", closed.closed_by),
                format!("journal entry {}", closed.entry_id),
            ));
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
            None if input.journal_labels.is_some() => input.journal_labels.cloned().unwrap_or_default(),
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
        layout: Layout::for_viewer(format!("{alertname} ({state})"), "alerts", &catalog.title, input.viewer),
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
            link: annotations.get("runbook_url").cloned().unwrap_or_default(),
        }),
        triage_known: latest.is_some(),
        runs: input.record.map_or(0, |record| record.runs.len()),
        run,
        timeline,
        journal: input.journal.map(|form| journal_view(catalog, form)),
        alertname,
        state,
    };
    Page::from_template(&template, input.status)
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
            journal_labels: None,
            viewer: &crate::Viewer::default(),
            status: 200,
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

    fn form(access: JournalAccess) -> JournalForm {
        JournalForm { alert_id: "A6".into(), can_acknowledge: true, ..JournalForm::new("0123456789abcdef", access) }
    }

    fn render_form(journal: JournalForm, status: u16) -> String {
        let catalog = busflow();
        let record = record();
        let page = render(AlertInput {
            catalog: &catalog,
            fingerprint: "0123456789abcdef",
            alert: None,
            record: Some(&record),
            notifications: &[],
            journal: Some(journal),
            journal_labels: None,
            viewer: &crate::Viewer::default(),
            status,
            now_ms: NOW_MS,
        });
        assert_eq!(page.status, status);
        page.html
    }

    fn responder() -> JournalAccess {
        JournalAccess::Respond { csrf_token: "token\"><script>".into() }
    }

    #[test]
    fn a_responder_gets_the_acknowledge_button_then_the_close_form_with_the_catalogs_fields() {
        let html = render_form(form(responder()), 200);
        assert!(html.contains("<form method=\"post\" action=\"/alerts/0123456789abcdef/acknowledge\""), "{html}");
        assert!(html.contains("name=\"csrf_token\" value=\"token&#34;&#62;&#60;script&#62;\""), "{html}");
        assert!(!html.contains("/close\""), "no close form before the acknowledgement: {html}");

        let mut journal = form(responder());
        journal.can_acknowledge = false;
        journal.can_close = true;
        journal.acknowledged = Some(("rita".into(), NOW_MS - 60_000));
        let html = render_form(journal, 200);
        assert!(
            html.contains("Acknowledged by <strong>rita</strong> at <time datetime=\"2025-12-31T23:59:00Z\">"),
            "{html}"
        );
        assert!(!html.contains("/acknowledge\""), "{html}");
        assert!(html.contains("<form method=\"post\" action=\"/alerts/0123456789abcdef/close\""), "{html}");
        // The real kinds: a read-only runbook ID, a one-line root cause of at
        // most 200 characters, the remediation's forms explained, yes/no
        // radios, a select of the catalog's contracts, a URL input.
        assert!(
            html.contains("<input id=\"journal-alert_id\" name=\"alert_id\" type=\"text\" value=\"A6\" readonly"),
            "{html}"
        );
        assert!(html.contains("<label for=\"journal-root_cause\">Root cause (required)</label>"), "{html}");
        assert!(html.contains("name=\"root_cause\" type=\"text\" value=\"\" maxlength=\"200\""), "{html}");
        assert!(html.contains("exactly &#34;no-op, transient&#34; when nothing was needed"), "{html}");
        assert!(html.contains("<legend>Did a contract change? (required)</legend>"), "{html}");
        assert!(
            html.contains(
                "<input type=\"radio\" id=\"journal-contract_changed-yes\" name=\"contract_changed\" value=\"yes\">"
            ),
            "{html}"
        );
        assert!(html.contains("<select id=\"journal-contract\" name=\"contract\""), "{html}");
        assert!(html.contains("<option value=\"log-retention\">log-retention</option>"), "{html}");
        assert!(html.contains("name=\"contract_pr\" type=\"url\""), "{html}");
        // The catalog's order: contract follows contract_changed, contract_pr last.
        let order: Vec<usize> = [
            "journal-alert_id",
            "journal-root_cause",
            "journal-remediation",
            "journal-contract_changed",
            "journal-contract\"",
            "journal-contract_pr",
        ]
        .iter()
        .map(|id| html.find(&format!("id=\"{id}")).unwrap_or_else(|| panic!("{id}: {html}")))
        .collect();
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{order:?}");
    }

    #[test]
    fn refused_fields_are_shown_next_to_their_inputs_with_the_submitted_values() {
        let mut journal = form(responder());
        journal.can_acknowledge = false;
        journal.can_close = true;
        journal.submitted = Some(journal::ClosingForm {
            alert_id: Some("A6".into()),
            root_cause: Some("".into()),
            remediation: Some("restarted <script>alert(2)</script>".into()),
            contract_changed: Some(serde_json::Value::String("yes".into())),
            contract: Some("log-retention".into()),
            ..Default::default()
        });
        journal.errors = vec![
            journal::FieldError { field: "root_cause", message: "the root cause is required: one line".into() },
            journal::FieldError { field: "remediation", message: "\"restarted <script>\" is none of".into() },
            journal::FieldError { field: "contract_pr", message: "a contract changed: the link is required".into() },
        ];
        let html = render_form(journal, 400);
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(html.contains("The entry was refused; nothing was saved"), "{html}");
        assert!(
            html.contains(
                "<li><a href=\"#journal-root_cause\">Root cause: the root cause is required: one line</a></li>"
            ),
            "{html}"
        );
        assert!(
            html.contains(
                "aria-describedby=\"journal-root_cause-error journal-root_cause-help\" aria-invalid=\"true\""
            ),
            "{html}"
        );
        assert!(
            html.contains(
                "<p id=\"journal-root_cause-error\" class=\"field-error\">the root cause is required: one line</p>"
            ),
            "{html}"
        );
        assert!(
            html.contains("value=\"restarted &#60;script&#62;alert(2)&#60;/script&#62;\""),
            "kept and inert: {html}"
        );
        assert!(html.contains("value=\"yes\" checked>"), "{html}");
        assert!(html.contains("<option value=\"log-retention\" selected>"), "{html}");
        assert!(html.contains("<p id=\"journal-contract_pr-error\" class=\"field-error\">"), "{html}");
        // A field without an error is not marked invalid.
        assert!(
            html.contains(
                "<select id=\"journal-contract\" name=\"contract\" aria-describedby=\"journal-contract-help\">"
            ),
            "{html}"
        );
    }

    #[test]
    fn a_conflict_shows_the_winning_revision_and_keeps_the_users_text_as_a_correction() {
        let mut journal = form(responder());
        journal.can_acknowledge = false;
        journal.closed =
            Some(ClosedEntry { entry_id: 4, closed_by: "alice".into(), closed_at_ms: NOW_MS, revision: 1 });
        journal.submitted = Some(journal::ClosingForm { root_cause: Some("my view".into()), ..Default::default() });
        journal.conflict = Some(state::Revision {
            episode_id: 4,
            revision: 1,
            author: "alice".into(),
            written_at_ms: NOW_MS,
            alert_id: "A6".into(),
            root_cause: "quota <i>x</i>".into(),
            remediation: "no-op, transient".into(),
            contract_changed: false,
            contract: None,
            contract_pr: None,
            triage: serde_json::Value::Null,
            timeline: serde_json::Value::Null,
        });
        let html = render_form(journal, 409);
        assert!(html.contains("Closed by <strong>alice</strong>"), "{html}");
        assert!(html.contains("<a href=\"/journal/4\">journal entry 4</a>"), "{html}");
        assert!(html.contains("alice wrote revision 1 at"), "{html}");
        assert!(html.contains("<dd>quota &#60;i&#62;x&#60;/i&#62;</dd>"), "{html}");
        assert!(html.contains("value=\"my view\""), "{html}");
        assert!(html.contains("<input type=\"hidden\" name=\"revision\" value=\"1\">"), "{html}");
        assert!(html.contains("Save as a correction of revision 1"), "{html}");
    }

    #[test]
    fn a_written_entry_is_on_the_timeline_and_a_responder_may_correct_it() {
        let mut journal = form(responder());
        journal.can_acknowledge = false;
        journal.acknowledged = Some(("rita".into(), NOW_MS - 60_000));
        journal.closed = Some(ClosedEntry { entry_id: 3, closed_by: "rita".into(), closed_at_ms: NOW_MS, revision: 1 });
        journal.correctable = Some((
            1,
            journal::ClosingForm {
                alert_id: Some("A6".into()),
                root_cause: Some("quota".into()),
                remediation: Some("no-op, transient".into()),
                contract_changed: Some(serde_json::Value::String("no".into())),
                ..Default::default()
            },
        ));
        let html = render_form(journal, 200);
        assert!(html.contains("<details class=\"correction\"><summary>Correct this entry</summary>"), "{html}");
        assert!(html.contains("value=\"quota\""), "{html}");
        assert!(html.contains("value=\"no\" checked>"), "{html}");
        assert!(html.contains("<input type=\"hidden\" name=\"revision\" value=\"1\">"), "{html}");
        assert!(html.contains("Save as a correction of revision 1"), "{html}");
        assert!(html.contains("<strong>acknowledged by rita</strong>"), "{html}");
        assert!(
            html.contains("<strong>closed by rita</strong> <span class=\"muted\">journal entry 3</span>"),
            "{html}"
        );
    }

    #[test]
    fn an_acknowledged_alert_the_engines_forgot_renders_from_the_journals_labels() {
        let catalog = busflow();
        let labels = BTreeMap::from([
            ("alertname".to_owned(), "LokiCompactorBehind".to_owned()),
            ("job".to_owned(), "<script>x</script>".to_owned()),
        ]);
        let mut journal = form(responder());
        journal.can_acknowledge = false;
        journal.can_close = true;
        journal.acknowledged = Some(("rita".into(), NOW_MS));
        let page = render(AlertInput {
            catalog: &catalog,
            fingerprint: "0123456789abcdef",
            alert: None,
            record: None,
            notifications: &[],
            journal: Some(journal),
            journal_labels: Some(&labels),
            viewer: &crate::Viewer::default(),
            status: 200,
            now_ms: NOW_MS,
        });
        assert_eq!(page.status, 200, "{}", page.html);
        assert!(page.html.contains("<a href=\"/runbook/A6\">The full runbook entry A6"), "{}", page.html);
        assert!(page.html.contains("action=\"/alerts/0123456789abcdef/close\""), "{}", page.html);
        assert_eq!(page.html.matches("<script").count(), 1, "{}", page.html);
    }

    #[test]
    fn visitors_get_a_login_link_and_viewers_no_buttons() {
        let mut journal = form(JournalAccess::LogIn { login_url: "/login?next=%2Falerts%2F0123456789abcdef".into() });
        journal.acknowledged = Some(("rita".into(), NOW_MS));
        journal.can_acknowledge = false;
        journal.can_close = true;
        let html = render_form(journal, 200);
        assert!(
            html.contains("<a href=\"/login?next=%2Falerts%2F0123456789abcdef\">Log in to acknowledge</a> or close"),
            "{html}"
        );
        assert!(!html.contains("method=\"post\""), "{html}");
        assert!(!html.contains("csrf_token"), "{html}");

        let html = render_form(form(JournalAccess::ReadOnly { name: "vic".into(), role: "viewer".into() }), 200);
        assert!(html.contains("You are logged in as vic, a viewer"), "{html}");
        assert!(!html.contains("method=\"post\""), "{html}");
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
            journal_labels: None,
            viewer: &crate::Viewer::default(),
            status: 200,
            now_ms: NOW_MS,
        });
        assert_eq!(page.status, 404);
        assert!(page.html.contains("No alert with fingerprint 0123456789abcdef is known"), "{}", page.html);
        assert!(is_fingerprint("0123456789abcdef"));
        assert!(!is_fingerprint("0123456789ABCDEF") && !is_fingerprint("<script>") && !is_fingerprint("0123"));
    }
}
