//! The alerts page's filters, from its GET query: `runbook` (an entry's ID or
//! alertname), `route`, `state`, `labels` (Alertmanager matchers such as
//! `tenant_id="t7", job=~"api|web"`, the syntax of amtool and Alertmanager's
//! UI) and `refresh` (seconds between automatic refreshes, 0 for none).
//!
//! Every value is validated against the catalog and the matcher grammar;
//! an invalid one is reported by parameter, and the value stays only as text
//! to show back in the form (escaped by the template), never as markup or a
//! query of anything.

use std::collections::BTreeMap;

use notify::routing::Matcher;

/// States an alert row can be filtered by; rows carry their state as data.
/// `acknowledged` keeps the firing alerts whose current firing someone
/// acknowledged (they count as firing too).
pub const STATES: &[&str] = &["firing", "pending", "acknowledged"];
/// Seconds between refreshes unless the query says otherwise.
pub const DEFAULT_REFRESH_SECONDS: u32 = 30;
const MIN_REFRESH_SECONDS: u32 = 5;
const MAX_REFRESH_SECONDS: u32 = 3600;
/// The longest value a parameter may have (a matcher list may be longer).
const MAX_VALUE_LENGTH: usize = 200;
const MAX_MATCHERS_LENGTH: usize = 2000;

/// One parameter the page refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    pub parameter: String,
    pub message: String,
}

/// The filters of the alerts page, as given (for the form) and as understood.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// The runbook entry's ID (normalised from an alertname), or empty.
    pub runbook: String,
    pub route: String,
    pub state: String,
    /// The label matchers as typed.
    pub labels: String,
    matchers: Vec<Matcher>,
    pub refresh_seconds: u32,
}

impl AlertFilter {
    /// Reads a query string; refused parameters are returned beside the
    /// filter, which then keeps their text but does not filter by them.
    pub fn parse(query: &str, catalog: &catalog::Catalog) -> (Self, Vec<FilterError>) {
        let mut filter = AlertFilter { refresh_seconds: DEFAULT_REFRESH_SECONDS, ..AlertFilter::default() };
        let mut errors = Vec::new();
        let mut seen = BTreeMap::new();
        let mut refuse = |parameter: &str, message: String| {
            errors.push(FilterError { parameter: parameter.to_owned(), message });
        };
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let name = name.as_ref();
            let value = value.trim();
            if let Some(count) = seen.get_mut(name) {
                *count += 1;
                if *count == 2 {
                    refuse(name, "given more than once".into());
                }
                continue;
            }
            seen.insert(name.to_owned(), 1);
            let limit = if name == "labels" { MAX_MATCHERS_LENGTH } else { MAX_VALUE_LENGTH };
            if value.len() > limit {
                refuse(name, format!("longer than {limit} bytes"));
                continue;
            }
            match name {
                "runbook" if value.is_empty() => {}
                "runbook" => match catalog.entry(value) {
                    Some(entry) => filter.runbook = entry.id.clone(),
                    None => {
                        filter.runbook = value.to_owned();
                        refuse(name, format!("no runbook entry has the ID or alertname {value:?}"));
                    }
                },
                "route" => {
                    filter.route = value.to_owned();
                    if !value.is_empty()
                        && !catalog.routes.is_empty()
                        && !catalog.routes.iter().any(|route| route == value)
                    {
                        refuse(
                            name,
                            format!("{value:?} is not a route of the catalog ({})", catalog.routes.join(", ")),
                        );
                    }
                }
                "state" => {
                    filter.state = value.to_owned();
                    if !value.is_empty() && !STATES.contains(&value) {
                        refuse(name, format!("{value:?} is not a state ({})", STATES.join(", ")));
                    }
                }
                "labels" => {
                    filter.labels = value.to_owned();
                    if !value.is_empty() {
                        match notify::routing::parse_matchers(value) {
                            Ok(matchers) => filter.matchers = matchers,
                            Err(message) => refuse(name, message),
                        }
                    }
                }
                "refresh" => match value.parse::<u32>() {
                    Ok(0) => filter.refresh_seconds = 0,
                    Ok(seconds) if (MIN_REFRESH_SECONDS..=MAX_REFRESH_SECONDS).contains(&seconds) => {
                        filter.refresh_seconds = seconds
                    }
                    _ => refuse(
                        name,
                        format!(
                            "{value:?} is not 0 or a number of seconds from {MIN_REFRESH_SECONDS} to {MAX_REFRESH_SECONDS}"
                        ),
                    ),
                },
                other => refuse(other, "not a filter of this page (runbook, route, state, labels, refresh)".into()),
            }
        }
        (filter, errors)
    }

    /// Whether any filter narrows the list.
    pub fn narrows(&self) -> bool {
        !self.runbook.is_empty() || !self.route.is_empty() || !self.state.is_empty() || !self.matchers.is_empty()
    }

    /// Whether an alert with these labels, runbook ID and state (and
    /// whether its firing is acknowledged) passes.
    pub fn keeps(
        &self,
        labels: &BTreeMap<String, String>,
        runbook_id: Option<&str>,
        state: &str,
        acknowledged: bool,
    ) -> bool {
        (self.runbook.is_empty() || runbook_id == Some(self.runbook.as_str()))
            && (self.route.is_empty() || labels.get("route").map(String::as_str) == Some(self.route.as_str()))
            && (self.state.is_empty() || self.state == state || (self.state == "acknowledged" && acknowledged))
            && self.matchers.iter().all(|matcher| matcher.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busflow() -> catalog::Catalog {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow");
        catalog::load(&root).unwrap_or_else(|diagnostics| panic!("{diagnostics}"))
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn filters_by_runbook_route_state_and_matchers() {
        let catalog = busflow();
        let (filter, errors) = AlertFilter::parse(
            "runbook=LokiCompactorBehind&route=ops-oncall&state=firing&labels=%7Bjob%3D~%22lo.*%22%2C+tier%21%3D%22x%22%7D&refresh=0",
            &catalog,
        );
        assert_eq!(errors, []);
        assert_eq!(filter.runbook, "A6");
        assert_eq!(filter.refresh_seconds, 0);
        assert!(filter.narrows());
        let alert = labels(&[("alertname", "LokiCompactorBehind"), ("route", "ops-oncall"), ("job", "loki")]);
        assert!(filter.keeps(&alert, Some("A6"), "firing", false));
        assert!(!filter.keeps(&alert, Some("A6"), "pending", false));
        assert!(!filter.keeps(&alert, Some("A9"), "firing", false));
        let other_job = labels(&[("route", "ops-oncall"), ("job", "mimir")]);
        assert!(!filter.keeps(&other_job, Some("A6"), "firing", false));
        let (acknowledged, errors) = AlertFilter::parse("state=acknowledged", &catalog);
        assert_eq!(errors, []);
        assert!(acknowledged.keeps(&alert, Some("A6"), "firing", true));
        assert!(!acknowledged.keeps(&alert, Some("A6"), "firing", false));
        let (empty, errors) = AlertFilter::parse("runbook=&route=&labels=", &catalog);
        assert_eq!(errors, []);
        assert!(!empty.narrows());
        assert_eq!(empty.refresh_seconds, DEFAULT_REFRESH_SECONDS);
    }

    #[test]
    fn hostile_and_invalid_values_are_refused_by_parameter() {
        let catalog = busflow();
        let query = "runbook=%3Cscript%3E&route=nobody&state=burning&labels=%3D%22x%22&refresh=1&x=1&route=again";
        let (filter, errors) = AlertFilter::parse(query, &catalog);
        let refused: Vec<&str> = errors.iter().map(|error| error.parameter.as_str()).collect();
        assert_eq!(refused, ["runbook", "route", "state", "labels", "refresh", "x", "route"]);
        assert!(errors[0].message.contains("\"<script>\""), "{errors:?}");
        assert_eq!(errors[6].message, "given more than once");
        // The text stays for the form; it filters by nothing.
        assert_eq!(filter.runbook, "<script>");
        assert_eq!(filter.labels, "=\"x\"");
        let long = format!("labels={}", "a".repeat(MAX_MATCHERS_LENGTH + 1));
        let (_, errors) = AlertFilter::parse(&long, &catalog);
        assert_eq!(errors[0].message, "longer than 2000 bytes");
        // A regular expression is anchored and matched, never executed as anything else.
        let (filter, errors) = AlertFilter::parse("labels=cn%3D~%22.*%27%3B+DROP+TABLE+alerts%3B--%22", &catalog);
        assert_eq!(errors, []);
        assert!(filter.keeps(&labels(&[("cn", "x'; DROP TABLE alerts;--")]), None, "firing", false));
        assert!(!filter.keeps(&labels(&[("cn", "x")]), None, "firing", false));
    }
}
