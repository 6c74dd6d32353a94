//! The journal's pages: `/journal` (entries newest first, with a filter
//! form — runbook ID, closed since/until, whether a contract changed, a
//! free-text search over root cause and remediation — and export links
//! carrying the same filters) and `/journal/{entry}` (one entry with every
//! revision as an audit trail, its triage runs and timeline, linked to the
//! alert page and the runbook entry).
//!
//! The filters are parsed by the server (the same parser as the JSON API);
//! this module shows them back as typed, with each refused one named.

use askama::Template;

use crate::filter::FilterError;
use crate::html::{format_time, machine_time};
use crate::{Layout, Page, Viewer};

/// The journal filters as typed, for the form and the export links.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterValues {
    /// The runbook ID (`id`).
    pub id: String,
    pub since: String,
    pub until: String,
    /// `yes`, `no` or empty.
    pub contract_changed: String,
    /// Free text searched in root causes and remediations (`q`).
    pub q: String,
    pub limit: String,
}

impl FilterValues {
    /// The values of a query string (unknown parameters are the parser's to refuse).
    pub fn from_query(query: &str) -> Self {
        let mut values = FilterValues::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let slot = match name.as_ref() {
                "id" => &mut values.id,
                "since" => &mut values.since,
                "until" => &mut values.until,
                "contract_changed" => &mut values.contract_changed,
                "q" => &mut values.q,
                "limit" => &mut values.limit,
                _ => continue,
            };
            *slot = value.trim().to_owned();
        }
        values
    }

    /// The non-empty filters as a query string (`id=A6&q=quota`), for links.
    pub fn query(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("id", &self.id),
            ("since", &self.since),
            ("until", &self.until),
            ("contract_changed", &self.contract_changed),
            ("q", &self.q),
            ("limit", &self.limit),
        ] {
            if !value.is_empty() {
                out.append_pair(name, value);
            }
        }
        out.finish()
    }

    fn narrows(&self) -> bool {
        *self != FilterValues::default()
    }
}

/// Whether `entry`'s root cause or remediation contains every word of
/// `search`, ignoring case (an empty search keeps every entry).
pub fn matches_search(entry: &journal::Entry, search: &str) -> bool {
    let haystack = format!("{}\n{}", entry.root_cause, entry.remediation).to_lowercase();
    search.split_whitespace().all(|word| haystack.contains(&word.to_lowercase()))
}

/// What the journal list reads.
pub struct ListInput<'a> {
    pub catalog: &'a catalog::Catalog,
    pub viewer: &'a Viewer,
    /// The entries to show, newest close first (already filtered).
    pub entries: &'a [journal::Entry],
    pub values: &'a FilterValues,
    /// Refused filters: the page answers 400 and lists nothing.
    pub errors: &'a [FilterError],
    /// Acknowledged alerts still waiting for their entry, oldest first.
    pub waiting: &'a [state::Episode],
    pub now_ms: i64,
}

struct WaitingRow {
    fingerprint: String,
    alert_id: String,
    alertname: String,
    labels: String,
    acknowledged_by: String,
    age: String,
    resolved: bool,
}

struct EntryRow {
    id: i64,
    alert_id: String,
    alertname: String,
    labels: String,
    root_cause: String,
    remediation: String,
    remediation_link: bool,
    contract: String,
    closed_by: String,
    closed_at: String,
    acknowledged_by: String,
    revision: i64,
}

struct RunbookOption {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "journal.html")]
struct ListTemplate<'a> {
    layout: Layout,
    values: &'a FilterValues,
    errors: &'a [FilterError],
    runbook_options: Vec<RunbookOption>,
    rows: Vec<EntryRow>,
    waiting: Vec<WaitingRow>,
    export_query: String,
    narrows: bool,
}

/// The labels worth showing beside an alert name.
fn labels_summary(labels: &std::collections::BTreeMap<String, String>) -> String {
    labels
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "alertname" | "severity" | "route"))
        .map(|(name, value)| format!("{name}={value:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn contract_text(changed: bool, contract: Option<&str>, pull_request: Option<&str>) -> String {
    if changed {
        format!("{} ({})", contract.unwrap_or("?"), pull_request.unwrap_or("no pull request"))
    } else {
        "no".into()
    }
}

/// An RFC 3339 time of an entry as the pages show times.
fn readable(time: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(time)
        .map(|parsed| format_time(parsed.timestamp_millis()))
        .unwrap_or_else(|_| time.to_owned())
}

/// Renders the journal list; 400 when a filter was refused.
pub fn render_list(input: &ListInput<'_>) -> Page {
    let rows = if input.errors.is_empty() {
        input
            .entries
            .iter()
            .map(|entry| EntryRow {
                id: entry.id,
                alert_id: entry.alert_id.clone(),
                alertname: entry.alertname.clone(),
                labels: labels_summary(&entry.labels),
                root_cause: entry.root_cause.clone(),
                remediation_link: journal::closing::is_web_url(&entry.remediation),
                remediation: entry.remediation.clone(),
                contract: contract_text(
                    entry.contract_changed,
                    entry.contract.as_deref(),
                    entry.contract_pr.as_deref(),
                ),
                closed_by: entry.closed_by.clone(),
                closed_at: readable(&entry.closed_at),
                acknowledged_by: entry.acknowledged_by.clone(),
                revision: entry.revision,
            })
            .collect()
    } else {
        Vec::new()
    };
    let template = ListTemplate {
        layout: Layout::for_viewer("Journal", "journal", &input.catalog.title, input.viewer),
        runbook_options: input
            .catalog
            .entries
            .iter()
            .map(|entry| RunbookOption {
                value: entry.id.clone(),
                label: format!("{} {}", entry.id, entry.alertname),
                selected: entry.id == input.values.id,
            })
            .collect(),
        export_query: {
            let query = input.values.query();
            if query.is_empty() { query } else { format!("&{query}") }
        },
        narrows: input.values.narrows(),
        waiting: input
            .waiting
            .iter()
            .filter(|episode| input.values.id.is_empty() || episode.alert_id == input.values.id)
            .map(|episode| WaitingRow {
                fingerprint: episode.fingerprint.clone(),
                alert_id: episode.alert_id.clone(),
                alertname: episode.alertname.clone(),
                labels: labels_summary(&episode.labels),
                acknowledged_by: episode.acknowledged_by.clone(),
                age: crate::html::format_age(input.now_ms, episode.acknowledged_at_ms),
                resolved: episode.resolved_at_ms.is_some(),
            })
            .collect(),
        values: input.values,
        errors: input.errors,
        rows,
    };
    Page::from_template(&template, if input.errors.is_empty() { 200 } else { 400 })
}

struct RevisionRow {
    revision: i64,
    author: String,
    time: String,
    machine_time: String,
    alert_id: String,
    root_cause: String,
    remediation: String,
    contract: String,
}

struct RunRow {
    time: String,
    machine_time: String,
    path: String,
    summary: String,
}

struct EventRow {
    time: String,
    machine_time: String,
    event: String,
    by: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "journal_entry.html")]
struct EntryTemplate {
    layout: Layout,
    id: i64,
    alert_id: String,
    alertname: String,
    fingerprint: String,
    runbook_known: bool,
    labels: Vec<(String, String)>,
    fired_at: String,
    acknowledged: String,
    resolved_at: Option<String>,
    closed: String,
    revision: i64,
    root_cause: String,
    remediation: String,
    remediation_link: bool,
    contract: String,
    contract_pr_link: Option<String>,
    /// The runbook entry's guard rails the remediation breaks: (step, rail, matched).
    guard_rails_broken: Vec<(usize, String, String)>,
    revisions: Vec<RevisionRow>,
    runs: Vec<RunRow>,
    timeline: Vec<EventRow>,
}

/// Renders one journal entry with its audit trail.
pub fn render_entry(
    catalog: &catalog::Catalog,
    viewer: &Viewer,
    entry: &journal::Entry,
    revisions: &[state::Revision],
) -> Page {
    let template = EntryTemplate {
        layout: Layout::for_viewer(
            format!("Journal entry {}: {} {}", entry.id, entry.alert_id, entry.alertname),
            "journal",
            &catalog.title,
            viewer,
        ),
        id: entry.id,
        alert_id: entry.alert_id.clone(),
        alertname: entry.alertname.clone(),
        fingerprint: entry.fingerprint.clone(),
        runbook_known: catalog.entry(&entry.alert_id).is_some(),
        labels: entry.labels.iter().map(|(name, value)| (name.clone(), value.clone())).collect(),
        fired_at: readable(&entry.fired_at),
        acknowledged: format!("{} by {}", readable(&entry.acknowledged_at), entry.acknowledged_by),
        resolved_at: entry.resolved_at.as_deref().map(readable),
        closed: format!("{} by {}", readable(&entry.closed_at), entry.closed_by),
        revision: entry.revision,
        root_cause: entry.root_cause.clone(),
        remediation_link: journal::closing::is_web_url(&entry.remediation),
        guard_rails_broken: entry
            .guard_rails_broken
            .iter()
            .map(|broken| (broken.step, broken.rail.clone(), broken.matched.clone()))
            .collect(),
        remediation: entry.remediation.clone(),
        contract: contract_text(entry.contract_changed, entry.contract.as_deref(), entry.contract_pr.as_deref()),
        contract_pr_link: entry.contract_pr.clone().filter(|url| journal::closing::is_web_url(url)),
        revisions: revisions
            .iter()
            .rev()
            .map(|revision| RevisionRow {
                revision: revision.revision,
                author: revision.author.clone(),
                time: format_time(revision.written_at_ms),
                machine_time: machine_time(revision.written_at_ms),
                alert_id: revision.alert_id.clone(),
                root_cause: revision.root_cause.clone(),
                remediation: revision.remediation.clone(),
                contract: contract_text(
                    revision.contract_changed,
                    revision.contract.as_deref(),
                    revision.contract_pr.as_deref(),
                ),
            })
            .collect(),
        runs: entry
            .triage_runs
            .iter()
            .map(|run| RunRow {
                time: format_time(run.time_ms),
                machine_time: machine_time(run.time_ms),
                path: run.path.clone(),
                summary: run.summary.clone(),
            })
            .collect(),
        timeline: entry
            .timeline
            .iter()
            .map(|event| EventRow {
                time: format_time(event.at_ms),
                machine_time: machine_time(event.at_ms),
                event: event.event.clone(),
                by: event.by.clone().unwrap_or_default(),
                detail: event.detail.clone().unwrap_or_default(),
            })
            .collect(),
    };
    Page::from_template(&template, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busflow() -> catalog::Catalog {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow");
        catalog::load(&root).unwrap_or_else(|diagnostics| panic!("{diagnostics}"))
    }

    const HOSTILE: &str = "<script>alert(1)</script>";

    fn entry() -> journal::Entry {
        journal::Entry {
            id: 7,
            alert_id: "A6".into(),
            alertname: "LokiCompactorBehind".into(),
            fingerprint: "0123456789abcdef".into(),
            labels: [
                ("alertname".to_owned(), "LokiCompactorBehind".to_owned()),
                ("job".to_owned(), HOSTILE.to_owned()),
            ]
            .into(),
            fired_at: "2026-01-01T00:00:00Z".into(),
            acknowledged_by: "rita".into(),
            acknowledged_at: "2026-01-01T00:05:00Z".into(),
            resolved_at: None,
            closed_by: "rita".into(),
            closed_at: "2026-01-01T01:00:00Z".into(),
            revision: 2,
            revised_by: "bob".into(),
            revised_at: "2026-01-01T02:00:00Z".into(),
            root_cause: format!("quota {HOSTILE}"),
            remediation: "https://git.example/pull/9".into(),
            contract_changed: true,
            contract: Some("log-retention".into()),
            contract_pr: Some("https://git.example/pull/10".into()),
            triage_runs: vec![journal::LinkedRun {
                time_ms: 1_767_225_700_000,
                path: "compactor-unhealthy".into(),
                summary: "lag 5h".into(),
            }],
            timeline: vec![journal::TimelineEvent {
                at_ms: 1_767_225_600_000,
                event: "fired".into(),
                by: None,
                detail: Some(HOSTILE.into()),
            }],
            links: journal::Links { runbook: "/runbook/A6.md".into(), triage: String::new() },
            guard_rails_broken: Vec::new(),
        }
    }

    fn waiting() -> state::Episode {
        state::Episode {
            id: 8,
            fingerprint: "fedcba9876543210".into(),
            started_at_ms: 1_767_225_000_000,
            alert_id: "A6".into(),
            alertname: "LokiCompactorBehind".into(),
            labels: [("job".to_owned(), "loki".to_owned())].into(),
            acknowledged_by: "vic".into(),
            acknowledged_at_ms: 1_767_225_600_000,
            resolved_at_ms: Some(1_767_226_000_000),
            reminded_at_ms: None,
            latest_revision: 0,
        }
    }

    fn revision(number: i64, author: &str, root_cause: &str) -> state::Revision {
        state::Revision {
            episode_id: 7,
            revision: number,
            author: author.into(),
            written_at_ms: 1_767_229_200_000 + number * 1000,
            alert_id: "A6".into(),
            root_cause: root_cause.into(),
            remediation: "no-op, transient".into(),
            contract_changed: false,
            contract: None,
            contract_pr: None,
            triage: serde_json::Value::Null,
            timeline: serde_json::Value::Null,
        }
    }

    #[test]
    fn the_list_shows_entries_inert_with_filters_and_export_links() {
        let catalog = busflow();
        let values = FilterValues::from_query("id=A6&q=quota&contract_changed=yes&since=");
        assert_eq!(values.query(), "id=A6&contract_changed=yes&q=quota");
        let entries = [entry()];
        let page = render_list(&ListInput {
            catalog: &catalog,
            viewer: &Viewer::default(),
            entries: &entries,
            values: &values,
            errors: &[],
            waiting: &[waiting()],
            now_ms: 1_767_229_200_000,
        });
        assert_eq!(page.status, 200);
        let html = page.html;
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(html.contains("quota &#60;script&#62;"), "{html}");
        assert!(html.contains("<a href=\"/journal/7\">7</a>"), "{html}");
        assert!(html.contains("<option value=\"A6\" selected>A6 LokiCompactorBehind</option>"), "{html}");
        assert!(html.contains("value=\"quota\""), "{html}");
        assert!(
            html.contains("href=\"/journal/export?format=md&#38;id=A6&#38;contract_changed=yes&#38;q=quota\""),
            "{html}"
        );
        assert!(html.contains("href=\"/journal/export?format=csv&#38;"), "{html}");
        assert!(html.contains("<a href=\"https://git.example/pull/9\" rel=\"noopener noreferrer\">"), "{html}");
        assert!(html.contains("<label for=\"journal-filter-q\">"), "{html}");
        assert!(
            html.contains("<li><a href=\"/alerts/fedcba9876543210\">A6 LokiCompactorBehind</a> job=&#34;loki&#34;: acknowledged by vic 1h 0m ago, resolved since</li>"),
            "{html}"
        );

        let errors = [FilterError { parameter: "since".into(), message: "\"<b>\" is not a time".into() }];
        let page = render_list(&ListInput {
            catalog: &catalog,
            viewer: &Viewer::default(),
            entries: &entries,
            values: &FilterValues::from_query("since=%3Cb%3E"),
            errors: &errors,
            waiting: &[],
            now_ms: 1_767_229_200_000,
        });
        assert_eq!(page.status, 400);
        assert!(page.html.contains("<code>since</code>: &#34;&#60;b&#62;&#34; is not a time"), "{}", page.html);
        assert!(!page.html.contains("/journal/7"), "nothing is listed: {}", page.html);
    }

    #[test]
    fn search_matches_every_word_in_root_cause_or_remediation() {
        let entry = entry();
        assert!(matches_search(&entry, ""));
        assert!(matches_search(&entry, "QUOTA git.example"));
        assert!(!matches_search(&entry, "quota compactor"));
    }

    #[test]
    fn the_entry_page_shows_every_revision_and_links_both_ways() {
        let catalog = busflow();
        let entry = entry();
        let revisions = [revision(1, "rita", "quota"), revision(2, "bob", &format!("quota {HOSTILE}"))];
        let html = render_entry(&catalog, &Viewer::default(), &entry, &revisions).html;
        assert_eq!(html.matches("<script").count(), 1, "{html}");
        assert!(html.contains("<a href=\"/alerts/0123456789abcdef\">"), "{html}");
        assert!(html.contains("<a href=\"/runbook/A6\">"), "{html}");
        assert!(html.contains("<td data-label=\"Revision\">1</td>"), "{html}");
        assert!(html.contains("<td data-label=\"Revision\">2</td>"), "{html}");
        assert!(html.contains("<td data-label=\"Author\">bob</td>"), "{html}");
        assert!(html.contains("compactor-unhealthy"), "{html}");
        assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "{html}");
        assert!(html.contains("log-retention (https://git.example/pull/10)"), "{html}");
    }

    #[test]
    fn a_broken_guard_rail_is_shown_on_the_entry_page() {
        let catalog = busflow();
        let mut entry = entry();
        let html = render_entry(&catalog, &Viewer::default(), &entry, &[]).html;
        assert!(!html.contains("guard-rails-broken"), "{html}");
        entry.guard_rails_broken = vec![journal::BrokenGuardRail {
            step: 3,
            rail: "Never scale the compactor".into(),
            matched: format!("docker service scale loki_compactor=3 {HOSTILE}"),
        }];
        let html = render_entry(&catalog, &Viewer::default(), &entry, &[]).html;
        assert!(html.contains("class=\"notice notice-warning guard-rails-broken\""), "{html}");
        assert!(html.contains("Step 3: Never scale the compactor"), "{html}");
        assert!(html.contains("<code>docker service scale loki_compactor=3 &#60;script&#62;"), "{html}");
    }
}
