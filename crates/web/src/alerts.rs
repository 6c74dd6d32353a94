//! The alerts page (`/alerts`): every pending and firing alert of the rule
//! engine, firing first and newest first, filtered by [`AlertFilter`], each
//! row linking to its alert page (by fingerprint) and its runbook entry.
//! With the journal, a firing alert whose current firing someone
//! acknowledged carries an "acknowledged by" badge, and the state filter
//! takes `acknowledged`; the caller reads the open acknowledgements once per
//! page ([`Acknowledgements`]), never per alert.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use askama::Template;
use rules::{AlertState, GroupStatus};

use crate::filter::{AlertFilter, FilterError, STATES};
use crate::html::{format_age, format_time, format_value, machine_time};
use crate::{Layout, Page};

/// What the alerts page reads.
pub struct AlertsInput<'a> {
    pub catalog: &'a catalog::Catalog,
    pub groups: &'a [Arc<GroupStatus>],
    /// The request's query string, undecoded.
    pub query: &'a str,
    /// Whether the journal is configured (the acknowledged count and filter option show).
    pub journal: bool,
    /// Who acknowledged which firing (see [`Acknowledgements`]).
    pub acknowledged: &'a Acknowledgements,
    pub viewer: &'a crate::Viewer,
    pub now_ms: i64,
}

/// The open acknowledgements by alert fingerprint: each as the start of
/// the firing it belongs to (the alert's `activeAt`) and who acknowledged it.
pub type Acknowledgements = HashMap<String, Vec<(i64, String)>>;

/// One alert of the table.
pub struct AlertRow {
    pub fingerprint: String,
    /// As the data says it: `firing`, `pending` (and whatever later states rows carry).
    pub state: String,
    pub alertname: String,
    pub runbook_id: Option<String>,
    pub route: String,
    /// Labels other than `alertname` and `route`.
    pub labels: Vec<(String, String)>,
    pub summary: String,
    pub active_since: String,
    pub active_since_machine: String,
    pub age: String,
    pub value: String,
    /// Who acknowledged this firing, if anyone did.
    pub acknowledged_by: Option<String>,
    active_at_ms: i64,
}

/// An `<option>` of a select.
pub struct SelectOption {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsTemplate<'a> {
    layout: Layout,
    filter: &'a AlertFilter,
    errors: &'a [FilterError],
    runbook_options: Vec<SelectOption>,
    route_options: Vec<SelectOption>,
    state_options: Vec<SelectOption>,
    rows: Vec<AlertRow>,
    firing: usize,
    pending: usize,
    acknowledged: usize,
    journal: bool,
    total: usize,
    self_url: String,
    updated: String,
}

/// The runbook ID an alert belongs to: its `runbook_id` annotation, else the
/// entry of its alertname.
pub fn runbook_id_of(
    catalog: &catalog::Catalog,
    alertname: &str,
    annotations: &BTreeMap<String, String>,
) -> Option<String> {
    annotations
        .get("runbook_id")
        .filter(|id| catalog.entry(id).is_some())
        .cloned()
        .or_else(|| catalog.entry(alertname).map(|entry| entry.id.clone()))
}

fn options(values: impl IntoIterator<Item = (String, String)>, selected: &str) -> Vec<SelectOption> {
    values.into_iter().map(|(value, label)| SelectOption { selected: value == selected, value, label }).collect()
}

/// Renders the alerts page; a refused filter makes it a bad request that
/// lists no alert.
pub fn render(input: &AlertsInput<'_>) -> Page {
    let (filter, errors) = AlertFilter::parse(input.query, input.catalog);
    let mut rows = Vec::new();
    let mut total = 0;
    for group in input.groups {
        for rule in &group.rules {
            for alert in rule.alerts.iter().filter(|alert| alert.state != AlertState::Inactive) {
                total += 1;
                if !errors.is_empty() {
                    continue;
                }
                let labels: BTreeMap<String, String> =
                    alert.labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect();
                let alertname = labels.get("alertname").cloned().unwrap_or_else(|| rule.name.clone());
                let runbook_id = runbook_id_of(input.catalog, &alertname, &alert.annotations);
                let state = alert.state.as_str();
                let fingerprint = notify::fingerprint(&labels);
                let acknowledged_by = if alert.state == AlertState::Firing {
                    input.acknowledged.get(&fingerprint).and_then(|episodes| {
                        episodes.iter().find(|(started, _)| *started == alert.active_at_ms).map(|(_, by)| by.clone())
                    })
                } else {
                    None
                };
                if !filter.keeps(&labels, runbook_id.as_deref(), state, acknowledged_by.is_some()) {
                    continue;
                }
                rows.push(AlertRow {
                    acknowledged_by,
                    fingerprint,
                    state: state.to_owned(),
                    route: labels.get("route").cloned().unwrap_or_default(),
                    labels: labels
                        .iter()
                        .filter(|(name, _)| *name != "alertname" && *name != "route")
                        .map(|(name, value)| (name.clone(), value.clone()))
                        .collect(),
                    alertname,
                    runbook_id,
                    summary: alert.annotations.get("summary").cloned().unwrap_or_default(),
                    active_since: format_time(alert.active_at_ms),
                    active_since_machine: machine_time(alert.active_at_ms),
                    age: format_age(input.now_ms, alert.active_at_ms),
                    value: format_value(alert.value),
                    active_at_ms: alert.active_at_ms,
                });
            }
        }
    }
    // Firing before pending, newest first, then by name for a stable order.
    rows.sort_by(|a, b| {
        (a.state != "firing", std::cmp::Reverse(a.active_at_ms), &a.alertname, &a.fingerprint).cmp(&(
            b.state != "firing",
            std::cmp::Reverse(b.active_at_ms),
            &b.alertname,
            &b.fingerprint,
        ))
    });
    let firing = rows.iter().filter(|row| row.state == "firing").count();
    let pending = rows.iter().filter(|row| row.state == "pending").count();
    let acknowledged = rows.iter().filter(|row| row.acknowledged_by.is_some()).count();
    let catalog = input.catalog;
    let title = if firing > 0 { format!("Alerts ({firing} firing)") } else { "Alerts".to_owned() };
    let template = AlertsTemplate {
        layout: Layout::for_viewer(title, "alerts", &catalog.title, input.viewer),
        runbook_options: options(
            catalog.entries.iter().map(|entry| (entry.id.clone(), format!("{} {}", entry.id, entry.alertname))),
            &filter.runbook,
        ),
        route_options: options(catalog.routes.iter().map(|route| (route.clone(), route.clone())), &filter.route),
        state_options: options(
            STATES
                .iter()
                .filter(|state| input.journal || **state != "acknowledged")
                .map(|state| ((*state).to_owned(), (*state).to_owned())),
            &filter.state,
        ),
        filter: &filter,
        errors: &errors,
        firing,
        pending,
        acknowledged,
        journal: input.journal,
        total,
        rows,
        self_url: if input.query.is_empty() { "/alerts".into() } else { format!("/alerts?{}", input.query) },
        updated: format_time(input.now_ms),
    };
    Page::from_template(&template, if errors.is_empty() { 200 } else { 400 })
}
