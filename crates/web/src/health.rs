//! The health page (`/health`): is alertbook itself working? Its datasources
//! (`alertbook_datasource_up` and the error counts, as `/metrics` reports
//! them), every rule with its last evaluation and error, the recent errors
//! in one list (rule errors, triage checks that failed or timed out), and
//! the notifications whose delivery failed or is being retried.

use std::sync::Arc;

use askama::Template;
use rules::{GroupStatus, Health};

use crate::html::{format_age, format_time, format_value, machine_time};
use crate::{Layout, Page};

/// One datasource as its health metrics report it.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasourceHealth {
    pub name: String,
    /// `postgres`, `docker`, `prometheus`, `loki`, `tempo`.
    pub kind: String,
    pub up: bool,
    pub errors: f64,
}

/// What the health page reads.
pub struct HealthInput<'a> {
    pub catalog: &'a catalog::Catalog,
    pub groups: &'a [Arc<GroupStatus>],
    pub datasources: &'a [DatasourceHealth],
    /// The notification history, newest first.
    pub history: &'a [notify::HistoryRecord],
    /// Recent triage runs, newest first.
    pub runs: &'a [triage::Run],
    pub viewer: &'a crate::Viewer,
    pub now_ms: i64,
}

struct RuleRow {
    group: String,
    file: String,
    name: String,
    kind: &'static str,
    health: &'static str,
    last_evaluation: String,
    last_evaluation_title: String,
    duration: String,
    error: String,
}

struct ErrorRow {
    time: String,
    machine_time: String,
    source: String,
    link: Option<String>,
    message: String,
    time_ms: i64,
}

struct DeliveryRow {
    time: String,
    machine_time: String,
    receiver: String,
    integration: String,
    alerts: Vec<(String, String)>,
    state: String,
    attempts: u32,
    error: String,
}

#[derive(Template)]
#[template(path = "health.html")]
struct HealthTemplate<'a> {
    layout: Layout,
    datasources: Vec<(&'a DatasourceHealth, String)>,
    datasources_down: usize,
    rules: Vec<RuleRow>,
    rules_failing: usize,
    errors: Vec<ErrorRow>,
    deliveries: Vec<DeliveryRow>,
    deliveries_failed: usize,
    notifications: usize,
}

/// The most errors and failed deliveries listed.
const MAX_ROWS: usize = 100;

/// Renders the health page.
pub fn render(input: &HealthInput<'_>) -> Page {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for group in input.groups {
        for rule in &group.rules {
            let error = if group.evaluated_here {
                rule.last_error.clone().unwrap_or_default()
            } else {
                format!("no {} datasource configured", group.datasource.as_str())
            };
            let health = match (group.evaluated_here, rule.health) {
                (false, _) => "unknown",
                (true, Health::Err) => "err",
                (true, Health::Ok) => "ok",
                (true, Health::Unknown) => "unknown",
            };
            if group.evaluated_here && !error.is_empty() {
                let time_ms = rule.last_evaluation_ms.unwrap_or(0);
                errors.push(ErrorRow {
                    time: format_time(time_ms),
                    machine_time: machine_time(time_ms),
                    source: format!("rule {} ({})", rule.name, group.name),
                    link: None,
                    message: error.clone(),
                    time_ms,
                });
            }
            rules.push(RuleRow {
                group: group.name.clone(),
                file: group.file.clone(),
                name: rule.name.clone(),
                kind: if rule.kind == rules::RuleKind::Alerting { "alerting" } else { "recording" },
                health,
                last_evaluation: rule
                    .last_evaluation_ms
                    .map_or_else(|| "never".into(), |time| format_age(input.now_ms, time)),
                last_evaluation_title: rule.last_evaluation_ms.map(format_time).unwrap_or_default(),
                duration: format!("{} ms", format_value(rule.evaluation_duration.as_secs_f64() * 1000.0)),
                error,
            });
        }
    }
    for run in input.runs {
        for step in &run.steps {
            let Some(check) = &step.check else { continue };
            let Some(error) = &check.error else { continue };
            errors.push(ErrorRow {
                time: format_time(run.time_ms),
                machine_time: machine_time(run.time_ms),
                source: format!("triage {} step {} ({})", run.runbook_id, step.number, check.result),
                link: Some(format!("/alerts/{}", run.fingerprint)),
                message: error.clone(),
                time_ms: run.time_ms,
            });
        }
    }
    errors.sort_by_key(|error| std::cmp::Reverse(error.time_ms));
    errors.truncate(MAX_ROWS);
    let deliveries: Vec<DeliveryRow> = input
        .history
        .iter()
        .filter(|record| record.state == "failed" || record.error.is_some())
        .take(MAX_ROWS)
        .map(|record| DeliveryRow {
            time: format_time(record.created_ms),
            machine_time: machine_time(record.created_ms),
            receiver: record.receiver.clone(),
            integration: record.integration.clone(),
            alerts: record
                .alerts
                .iter()
                .map(|alert| {
                    let name = alert.labels.get("alertname").cloned().unwrap_or_else(|| alert.fingerprint.clone());
                    (alert.fingerprint.clone(), format!("{name} ({})", alert.status))
                })
                .collect(),
            state: if record.state == "failed" { "failed".into() } else { format!("{}, retrying", record.state) },
            attempts: record.attempts,
            error: record.error.clone().unwrap_or_default(),
        })
        .collect();
    let template = HealthTemplate {
        layout: Layout::for_viewer("Health", "health", &input.catalog.title, input.viewer),
        datasources: input.datasources.iter().map(|datasource| (datasource, format_value(datasource.errors))).collect(),
        datasources_down: input.datasources.iter().filter(|datasource| !datasource.up).count(),
        rules_failing: rules.iter().filter(|rule| rule.health == "err").count(),
        rules,
        errors,
        deliveries_failed: input.history.iter().filter(|record| record.state == "failed").count(),
        deliveries,
        notifications: input.history.len(),
    };
    Page::from_template(&template, 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasources_errors_and_failed_deliveries_are_listed_escaped() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow");
        let catalog = catalog::load(&root).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let datasources = [
            DatasourceHealth { name: "sql".into(), kind: "postgres".into(), up: false, errors: 4.0 },
            DatasourceHealth { name: "busflow-loki".into(), kind: "loki".into(), up: true, errors: 0.0 },
        ];
        let history = [notify::HistoryRecord {
            id: 1,
            receiver: "ops-oncall".into(),
            integration: "webhook".into(),
            group_key: "{}".into(),
            alerts: vec![notify::HistoryAlert {
                fingerprint: "0123456789abcdef".into(),
                labels: [("alertname".to_owned(), "PgCronJobFailed".to_owned())].into(),
                status: "firing".into(),
            }],
            created_ms: 1_767_225_600_000,
            state: "failed".into(),
            attempts: 5,
            error: Some("HTTP 400: <script>alert(1)</script>".into()),
            finished_ms: None,
        }];
        let page = render(&HealthInput {
            catalog: &catalog,
            groups: &[],
            datasources: &datasources,
            history: &history,
            runs: &[],
            viewer: &crate::Viewer::default(),
            now_ms: 1_767_225_660_000,
        });
        let html = page.html;
        assert!(html.contains("<td data-label=\"State\"><span class=\"state state-down\">down</span></td>"), "{html}");
        assert!(html.contains("<strong>1</strong> of 2 datasources down"), "{html}");
        assert!(html.contains("<a href=\"/alerts/0123456789abcdef\">PgCronJobFailed (firing)</a>"), "{html}");
        assert!(html.contains("HTTP 400: &#60;script&#62;"), "{html}");
        assert_eq!(html.matches("<script").count(), 1, "{html}");
    }
}
