//! The Grafana dashboards of `contrib/grafana/dashboards` as their queries:
//! every panel target and every `label_values` variable, with the template
//! variables substituted as Grafana does before it sends a query to its
//! Prometheus or Loki datasource. Shared by the catalog's dashboard tests and
//! the demo's (which runs the queries against the simulated day).

use std::path::{Path, PathBuf};

use serde_json::Value;

/// `contrib/grafana` of this repository, found from a crate's manifest directory.
pub fn grafana_dir(manifest_dir: &str) -> PathBuf {
    Path::new(manifest_dir).join("../../contrib/grafana")
}

/// One dashboard file, parsed.
pub struct Dashboard {
    pub file: String,
    pub json: Value,
}

impl Dashboard {
    pub fn title(&self) -> &str {
        self.json["title"].as_str().unwrap_or_default()
    }

    /// The panels, rows' nested panels included, rows themselves left out.
    pub fn panels(&self) -> Vec<&Value> {
        fn collect<'a>(panels: &'a Value, out: &mut Vec<&'a Value>) {
            for panel in panels.as_array().into_iter().flatten() {
                if panel["type"] == "row" {
                    collect(&panel["panels"], out);
                } else {
                    out.push(panel);
                }
            }
        }
        let mut out = Vec::new();
        collect(&self.json["panels"], &mut out);
        out
    }

    pub fn variables(&self) -> Vec<&Value> {
        self.json["templating"]["list"].as_array().into_iter().flatten().collect()
    }
}

pub fn dashboards(manifest_dir: &str) -> Vec<Dashboard> {
    let directory = grafana_dir(manifest_dir).join("dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("dashboard file");
            let json = serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
            Dashboard { file: path.file_name().expect("file name").to_string_lossy().into_owned(), json }
        })
        .collect()
}

/// Which datasource a query goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    PromQl,
    LogQl,
}

/// What a query is for: a panel's target or a variable's `label_values`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// A panel target; `instant` when the panel asks for one value per series.
    Panel { instant: bool },
    /// The `label_values(selector, label)` of the variable `variable`: `expr` is the selector.
    LabelValues { variable: String, label: String },
}

/// One query of a dashboard, its variables still in it.
#[derive(Debug, Clone)]
pub struct Query {
    /// `file: panel "title" refId` or `file: variable name`, for messages.
    pub place: String,
    pub language: Language,
    pub purpose: Purpose,
    pub expr: String,
}

fn language(datasource: &Value, place: &str) -> Language {
    match datasource["type"].as_str() {
        Some("prometheus") => Language::PromQl,
        Some("loki") => Language::LogQl,
        other => panic!("{place}: datasource type {other:?} is neither prometheus nor loki"),
    }
}

/// Every query of every dashboard: panel targets, then `label_values` variables.
pub fn queries(dashboards: &[Dashboard]) -> Vec<Query> {
    let mut queries = Vec::new();
    for dashboard in dashboards {
        for panel in dashboard.panels() {
            let title = panel["title"].as_str().unwrap_or_default();
            for target in panel["targets"].as_array().into_iter().flatten() {
                let place = format!("{}: panel {title:?} {}", dashboard.file, target["refId"].as_str().unwrap_or("?"));
                let datasource =
                    if target["datasource"].is_object() { &target["datasource"] } else { &panel["datasource"] };
                let expr = target["expr"].as_str().unwrap_or_else(|| panic!("{place}: no expr")).to_owned();
                let instant = target["instant"] == true || target["queryType"] == "instant";
                queries.push(Query {
                    language: language(datasource, &place),
                    purpose: Purpose::Panel { instant },
                    expr,
                    place,
                });
            }
        }
        for variable in dashboard.variables().into_iter().filter(|variable| variable["type"] == "query") {
            let name = variable["name"].as_str().unwrap_or("?").to_owned();
            let place = format!("{}: variable {name}", dashboard.file);
            let text = variable["query"]["query"].as_str().or(variable["query"].as_str()).unwrap_or_default();
            let (selector, label) =
                label_values(text).unwrap_or_else(|| panic!("{place}: not label_values(…): {text}"));
            queries.push(Query {
                language: language(&variable["datasource"], &place),
                purpose: Purpose::LabelValues { variable: name, label },
                expr: selector,
                place,
            });
        }
    }
    queries
}

/// Grafana's `label_values(selector, label)` (or `label_values(label)`, any series).
fn label_values(text: &str) -> Option<(String, String)> {
    let inner = text.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    match inner.rsplit_once(',') {
        Some((selector, label)) => Some((selector.trim().to_owned(), label.trim().to_owned())),
        None => Some((format!("{{{}!=\"\"}}", inner.trim()), inner.trim().to_owned())),
    }
}

/// What Grafana puts in for its built-in interval variables, in seconds.
pub struct Intervals {
    /// `$__interval`: the query's step.
    pub interval_seconds: u64,
    /// The datasource's `timeInterval` (the scrape interval), which `$__rate_interval` builds on.
    pub scrape_interval_seconds: u64,
    /// `$__range`: the dashboard's time range.
    pub range_seconds: u64,
}

/// The dashboard's variables set to their defaults, as a newly opened dashboard has them.
pub fn default_values(dashboard: &Dashboard) -> Vec<(String, String)> {
    dashboard
        .variables()
        .into_iter()
        .filter_map(|variable| {
            let name = variable["name"].as_str()?.to_owned();
            let current = &variable["current"]["value"];
            let value = match current {
                Value::Array(values) if values.iter().any(|value| value == "$__all") => {
                    variable["allValue"].as_str().unwrap_or(".*").to_owned()
                }
                Value::Array(values) => {
                    let values: Vec<String> = values.iter().filter_map(Value::as_str).map(regex_escape).collect();
                    format!("({})", values.join("|"))
                }
                Value::String(value) => value.clone(),
                _ => return None,
            };
            Some((name, value))
        })
        .collect()
}

/// A value of a multi-value variable as Grafana's Prometheus datasource
/// writes it into a regex matcher: each regex metacharacter behind an escaped
/// backslash (`a.b` becomes `a\\.b` in the query's string).
pub fn regex_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if r"\^$*+?.()|[]{}".contains(c) {
            out.push_str(r"\\");
        }
        out.push(c);
    }
    out
}

/// Substitutes `$__rate_interval`, `$__interval`, `$__range` (Grafana's
/// Prometheus and Loki datasources write them in whole seconds,
/// `$__rate_interval` being max(`$__interval` + scrape interval, 4 × scrape
/// interval)) and the dashboard's variables, written `${name}`, `$name` or
/// `[[name]]`.
pub fn substitute(expr: &str, intervals: &Intervals, variables: &[(String, String)]) -> String {
    let rate_interval =
        (intervals.interval_seconds + intervals.scrape_interval_seconds).max(4 * intervals.scrape_interval_seconds);
    let mut values: Vec<(String, String)> = vec![
        ("__rate_interval".to_owned(), format!("{rate_interval}s")),
        ("__interval".to_owned(), format!("{}s", intervals.interval_seconds)),
        ("__range".to_owned(), format!("{}s", intervals.range_seconds)),
    ];
    values.extend(variables.iter().cloned());
    // Longest names first, so that `$probe` does not eat the start of `$probe_group`.
    values.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    let mut out = expr.to_owned();
    for (name, value) in &values {
        out = out.replace(&format!("${{{name}}}"), value).replace(&format!("[[{name}]]"), value);
        let bare = format!("${name}");
        let mut replaced = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(&bare) {
            let after = &rest[at + bare.len()..];
            replaced.push_str(&rest[..at]);
            if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                replaced.push_str(&bare);
            } else {
                replaced.push_str(value);
            }
            rest = after;
        }
        replaced.push_str(rest);
        out = replaced;
    }
    out
}
