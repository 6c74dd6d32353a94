//! The Grafana dashboards of `contrib/grafana` against the catalog: every
//! panel's query parses once Grafana has substituted its variables (PromQL
//! with the parser alertbook's `promql` crate evaluates, LogQL with alertbook's
//! `logql`), reads only series, labels and log fields the catalog's sources
//! write, shows only thresholds the catalog holds, and finds its datasource
//! in the provisioning files.

use std::collections::{BTreeMap, BTreeSet};

use promql_parser::parser as promql;
use serde_json::Value;

use super::grafana::{self, Dashboard, Intervals, Language, Purpose};
use super::shipped_catalog;
use super::telemetry::{log_problems, metric_problems};

fn dashboards() -> Vec<Dashboard> {
    let dashboards = grafana::dashboards(env!("CARGO_MANIFEST_DIR"));
    assert!(dashboards.len() >= 7, "only {} dashboards", dashboards.len());
    dashboards
}

/// Every query with its variables substituted as on a newly opened dashboard
/// (a 6-hour range at a 1-minute step), with where it is.
fn substituted_queries() -> Vec<(Language, Purpose, String, String)> {
    let intervals = Intervals { interval_seconds: 60, scrape_interval_seconds: 60, range_seconds: 6 * 3600 };
    let dashboards = dashboards();
    let mut out = Vec::new();
    for dashboard in &dashboards {
        let defaults = grafana::default_values(dashboard);
        for query in grafana::queries(std::slice::from_ref(dashboard)) {
            let expr = grafana::substitute(&query.expr, &intervals, &defaults);
            out.push((query.language, query.purpose, expr, query.place));
        }
    }
    out
}

#[test]
fn every_panel_and_variable_query_parses_after_grafanas_substitution() {
    let queries = substituted_queries();
    let mut problems = Vec::new();
    for (language, _, expr, place) in &queries {
        let leftover = expr
            .match_indices('$')
            .any(|(at, _)| expr[at + 1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '{'));
        if leftover || expr.contains("[[") {
            problems.push(format!("{place}: a variable no dashboard defines is left in {expr}"));
            continue;
        }
        let parsed = match language {
            Language::PromQl => promql::parse(expr).map(drop),
            Language::LogQl => logql::parse(expr).map(drop).map_err(|error| error.to_string()),
        };
        if let Err(error) = parsed {
            problems.push(format!("{place}: {error}\n  {expr}"));
        }
    }
    let logs = queries.iter().filter(|(language, ..)| *language == Language::LogQl).count();
    assert!(queries.len() >= 60 && logs >= 8, "{} queries, {logs} LogQL", queries.len());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn grafanas_datasource_health_checks_parse() {
    // "Save & test" of the provisioned datasources: Grafana's Prometheus
    // datasource sends the instant query `1+1`, its Loki datasource `vector(1)+vector(1)`.
    assert!(promql::parse("1+1").is_ok());
    assert!(logql::parse("vector(1)+vector(1)").is_ok());
}

#[test]
fn a_broken_dashboard_query_is_caught() {
    // The checks above must be able to fail: an unclosed selector and an unknown variable.
    let intervals = Intervals { interval_seconds: 60, scrape_interval_seconds: 15, range_seconds: 3600 };
    let variables = vec![("tenant_id".to_owned(), ".*".to_owned()), ("probe".to_owned(), "qdrant".to_owned())];
    let expr = grafana::substitute(
        r#"sum(rate(x{tenant_id=~"$tenant_id",p="${probe}",q="[[probe]]",g="$probe_group"}[$__rate_interval])) + $__interval"#,
        &intervals,
        &variables,
    );
    assert_eq!(expr, r#"sum(rate(x{tenant_id=~".*",p="qdrant",q="qdrant",g="$probe_group"}[75s])) + 60s"#);
    // A picked value goes into a regex matcher escaped as Grafana escapes it.
    let escaped = grafana::regex_escape("studio.busflow.app");
    assert_eq!(escaped, r"studio\\.busflow\\.app");
    assert!(promql::parse(&format!(r#"traefik_tls_certs_not_after{{cn=~"{escaped}"}}"#)).is_ok());
    assert!(promql::parse(r#"sum(rate(x{a="b"[5m]))"#).is_err());
    assert!(logql::parse(r#"sum(count_over_time({job="faro"} | json [5m])"#).is_err());
}

#[test]
fn every_series_label_and_log_field_the_dashboards_read_is_one_a_source_writes() {
    let mut metrics = Vec::new();
    let mut logs = Vec::new();
    for (language, purpose, expr, place) in substituted_queries() {
        match (language, purpose) {
            (Language::PromQl, Purpose::LabelValues { label, .. }) => {
                // The label a variable lists must be one the selected series carry.
                metrics.push((format!("count by ({label}) ({expr})"), place));
            }
            (Language::PromQl, Purpose::Panel { .. }) => metrics.push((expr, place)),
            (Language::LogQl, _) => logs.push((expr, place)),
        }
    }
    let (mut problems, read) = metric_problems(&metrics);
    let (log_problems, checked) = log_problems(&logs);
    problems.extend(log_problems);
    assert!(read >= 50 && checked >= 10, "only {read} selectors and {checked} log fields checked");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The binding expressions a panel's description gives for its thresholds,
/// in the order of the threshold steps: "Thresholds from the catalog: `a`; `b`."
fn threshold_bindings(description: &str) -> Vec<String> {
    let Some((_, list)) = description.split_once("Thresholds from the catalog:") else { return Vec::new() };
    list.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

#[test]
fn every_threshold_a_panel_shows_is_the_catalogs_value() {
    let catalog = catalog::load(&shipped_catalog()).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let mut problems = Vec::new();
    let mut bound = 0;
    for dashboard in dashboards() {
        for panel in dashboard.panels() {
            let place = format!("{}: panel {}", dashboard.file, panel["title"]);
            let steps: Vec<f64> = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|step| step["value"].as_f64())
                .collect();
            let bindings = threshold_bindings(panel["description"].as_str().unwrap_or_default());
            if steps.len() != bindings.len() {
                problems.push(format!(
                    "{place}: {} threshold step(s) {steps:?} but {} catalog binding(s) {bindings:?}",
                    steps.len(),
                    bindings.len()
                ));
                continue;
            }
            for (value, binding) in steps.iter().zip(&bindings) {
                bound += 1;
                if let Some((entry_id, condition)) =
                    binding.strip_prefix("runbook ").and_then(|rest| rest.split_once(": "))
                {
                    // A triage branch's condition: the entry must have it, and its number must be the step's.
                    let entry = catalog.entries.iter().find(|entry| entry.id == entry_id);
                    let found = entry.into_iter().flat_map(|entry| &entry.steps).any(|step| {
                        step.check
                            .iter()
                            .flat_map(|check| &check.branches)
                            .any(|branch| branch.when.as_ref().is_some_and(|when| when.text.trim() == condition))
                    });
                    let number = condition.rsplit(' ').next().and_then(|number| number.parse::<f64>().ok());
                    if !found || number != Some(*value) {
                        problems
                            .push(format!("{place}: no branch of {entry_id} is `{condition}` with the value {value}"));
                    }
                    continue;
                }
                for error in catalog::thresholds::bindings(&[*value], std::slice::from_ref(binding), &catalog.contracts)
                {
                    problems.push(format!("{place}: {}", error.message));
                }
            }
        }
    }
    assert!(bound >= 20, "only {bound} thresholds bound");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_threshold_that_drifted_from_its_contract_is_caught() {
    let catalog = catalog::load(&shipped_catalog()).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let binding = ["contracts.api-error-rate.spec.max_error_ratio".to_owned()];
    assert!(catalog::thresholds::bindings(&[0.02], &binding, &catalog.contracts).is_empty());
    assert!(!catalog::thresholds::bindings(&[0.05], &binding, &catalog.contracts).is_empty());
    assert_eq!(
        threshold_bindings("p95.\n\nThresholds from the catalog: `a.b`; `duration_seconds(c.d)`."),
        ["a.b", "duration_seconds(c.d)"]
    );
}

#[test]
fn dashboards_follow_grafanas_model_and_find_the_provisioned_datasources() {
    let directory = grafana::grafana_dir(env!("CARGO_MANIFEST_DIR"));
    let text =
        std::fs::read_to_string(directory.join("provisioning/datasources/datasources.yaml")).expect("datasources");
    let provisioning: Value = serde_saphyr::from_str(&text).expect("datasources.yaml parses");
    let provisioned: BTreeMap<String, String> = provisioning["datasources"]
        .as_array()
        .expect("datasources list")
        .iter()
        .map(|datasource| {
            (datasource["type"].as_str().unwrap().to_owned(), datasource["uid"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(provisioned.keys().collect::<Vec<_>>(), ["loki", "prometheus"]);
    let text = std::fs::read_to_string(directory.join("provisioning/dashboards/dashboards.yaml")).expect("dashboards");
    let providers: Value = serde_saphyr::from_str(&text).expect("dashboards.yaml parses");
    assert_eq!(providers["providers"][0]["type"], "file");

    let mut uids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for dashboard in dashboards() {
        let json = &dashboard.json;
        let file = &dashboard.file;
        assert_eq!(json["schemaVersion"], 39, "{file}");
        assert!(json["id"].is_null(), "{file}: a provisioned dashboard carries no database id");
        assert!(uids.insert(json["uid"].as_str().expect("uid").to_owned()), "{file}: uid used twice");
        assert!(titles.insert(dashboard.title().to_owned()), "{file}: title used twice");
        // Datasource variables default to the provisioned uids; panels and targets use the variables.
        let mut datasource_variables = BTreeMap::new();
        for variable in dashboard.variables().into_iter().filter(|variable| variable["type"] == "datasource") {
            let kind = variable["query"].as_str().expect("datasource type").to_owned();
            assert_eq!(variable["current"]["value"].as_str(), provisioned.get(&kind).map(String::as_str), "{file}");
            datasource_variables.insert(format!("${{{}}}", variable["name"].as_str().unwrap()), kind);
        }
        let mut ids = BTreeSet::new();
        for panel in dashboard.panels() {
            assert!(ids.insert(panel["id"].as_u64().expect("panel id")), "{file}: panel id used twice");
            let position = &panel["gridPos"];
            assert!(
                position["x"].as_u64().unwrap() + position["w"].as_u64().unwrap() <= 24,
                "{file}: {}",
                panel["title"]
            );
            for datasource in std::iter::once(&panel["datasource"])
                .chain(panel["targets"].as_array().into_iter().flatten().map(|target| &target["datasource"]))
            {
                let uid = datasource["uid"].as_str().expect("datasource uid");
                let kind = datasource["type"].as_str().expect("datasource type");
                assert_eq!(datasource_variables.get(uid).map(String::as_str), Some(kind), "{file}: {}", panel["title"]);
            }
        }
    }
}

#[test]
fn every_dashboard_the_runbook_names_ships() {
    let catalog = catalog::load(&shipped_catalog()).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let titles: BTreeSet<String> = dashboards().iter().map(|dashboard| dashboard.title().to_owned()).collect();
    let mut named = 0;
    for entry in &catalog.entries {
        for step in &entry.steps {
            for (_, rest) in step.text.match_indices("dashboard \"").map(|(at, _)| step.text.split_at(at + 11)) {
                let title = rest.split('"').next().unwrap_or_default();
                named += 1;
                assert!(
                    titles.contains(title),
                    "{} step {} names dashboard {title:?}; none ships",
                    entry.id,
                    step.number
                );
            }
        }
    }
    assert!(named >= 1, "the runbook names no dashboard");
    // A1 step 1 filters "API Errors" by tenant_id.
    let api_errors = dashboards().into_iter().find(|dashboard| dashboard.title() == "API Errors").expect("API Errors");
    let tenant =
        api_errors.variables().into_iter().find(|variable| variable["name"] == "tenant_id").expect("tenant_id");
    assert!(tenant["definition"].as_str().unwrap().starts_with("label_values("), "{tenant}");
}
