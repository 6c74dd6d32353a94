//! The catalog against real telemetry: every metric, label and log field a
//! Busflow rule or check reads must be one its source writes, as the samples
//! under `testdata/telemetry/` (one per source, see `sources.yaml`) show.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use promql_parser::parser::{self as promql, Expr as PromExpr};
use serde::Deserialize;

use super::shipped_catalog;

#[derive(Debug, Deserialize)]
struct Manifest {
    sources: Vec<Source>,
    not_covered: Vec<NotCovered>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Source {
    name: String,
    source: String,
    version: String,
    documentation: String,
    fixture: String,
    kind: String,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    stream: BTreeMap<String, String>,
    /// Labels the scraper attaches to every series of a scraped source (`job`, `instance`).
    #[serde(default)]
    target_labels: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct NotCovered {
    prefix: String,
    reason: String,
}

fn telemetry_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/telemetry")
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(telemetry_dir().join("sources.yaml")).expect("sources.yaml");
    serde_saphyr::from_str(&text).expect("sources.yaml parses")
}

/// One sample of a Prometheus text exposition: name and label names.
fn exposition_samples(text: &str) -> Vec<(String, BTreeSet<String>)> {
    let mut samples = Vec::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
        let name_end = line.find(['{', ' ']).expect("sample has a value");
        let name = line[..name_end].to_owned();
        let mut labels = BTreeSet::new();
        if line[name_end..].starts_with('{') {
            let mut rest = &line[name_end + 1..];
            while let Some(equals) = rest.find("=\"") {
                labels.insert(rest[..equals].trim_start_matches(',').trim().to_owned());
                // Skip the quoted value, escapes included.
                let mut chars = rest[equals + 2..].char_indices();
                let mut end = None;
                while let Some((index, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => {
                            end = Some(equals + 2 + index + 1);
                            break;
                        }
                        _ => {}
                    }
                }
                rest = &rest[end.expect("closed label value")..];
            }
        }
        samples.push((name, labels));
    }
    samples
}

/// The fields of a log line: top-level JSON keys (nested objects flattened with
/// `_`, as Loki's `| json` does) or logfmt keys.
fn line_fields(format: &str, line: &str) -> BTreeSet<String> {
    fn flatten(prefix: &str, value: &serde_json::Value, fields: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}_{key}") };
                    flatten(&name, value, fields);
                }
            }
            _ => {
                fields.insert(prefix.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_"));
            }
        }
    }
    let mut fields = BTreeSet::new();
    match format {
        "json" => flatten("", &serde_json::from_str(line).expect("fixture line is JSON"), &mut fields),
        "logfmt" => {
            let mut rest = line;
            while let Some(equals) = rest.find('=') {
                fields.insert(rest[..equals].trim().to_owned());
                let after = &rest[equals + 1..];
                let skip = if let Some(quoted) = after.strip_prefix('"') {
                    let mut escaped = false;
                    quoted
                        .char_indices()
                        .find(|&(_, c)| {
                            let done = c == '"' && !escaped;
                            escaped = c == '\\' && !escaped;
                            done
                        })
                        .map(|(index, _)| index + 2)
                        .expect("closed quote")
                } else {
                    after.find(' ').unwrap_or(after.len())
                };
                rest = after[skip..].trim_start();
            }
        }
        other => panic!("unknown format {other}"),
    }
    fields
}

/// Every (query, where) of the catalog for a datasource: rules and checks.
fn queries(catalog: &catalog::Catalog, datasource: catalog::Datasource) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for file in &catalog.rule_files {
        for group in file.groups.iter().filter(|group| group.datasource == datasource) {
            for rule in &group.rules {
                queries.push((rule.expr.clone(), format!("{}:{}", file.path.display(), rule.line)));
            }
        }
    }
    for entry in &catalog.entries {
        for step in &entry.steps {
            if let Some(check) = step.check.as_ref().filter(|check| check.datasource == datasource) {
                queries.push((check.query.clone(), format!("{} step {}", entry.id, step.number)));
            }
        }
    }
    queries
}

struct Selectors(Vec<(Option<String>, Vec<String>)>, Vec<String>);

impl promql_parser::util::ExprVisitor for Selectors {
    type Error = ();
    fn pre_visit(&mut self, expr: &PromExpr) -> Result<bool, ()> {
        let selector = match expr {
            PromExpr::VectorSelector(selector) => Some(selector),
            PromExpr::MatrixSelector(matrix) => Some(&matrix.vs),
            _ => None,
        };
        if let Some(selector) = selector {
            let name = selector.name.clone().or_else(|| {
                selector
                    .matchers
                    .matchers
                    .iter()
                    .find(|m| m.name == "__name__" && m.op == promql_parser::label::MatchOp::Equal)
                    .map(|m| m.value.clone())
            });
            let labels = selector.matchers.matchers.iter().map(|m| m.name.clone()).filter(|n| n != "__name__");
            self.0.push((name, labels.collect()));
        }
        if let PromExpr::Aggregate(aggregate) = expr
            && let Some(promql_parser::parser::LabelModifier::Include(labels)) = &aggregate.modifier
        {
            self.1.extend(labels.labels.iter().cloned());
        }
        Ok(true)
    }
}

#[test]
fn every_metric_and_label_the_catalog_reads_is_one_its_source_writes() {
    let catalog = catalog::load(&shipped_catalog()).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let (problems, read) = metric_problems(&queries(&catalog, catalog::Datasource::Metrics));
    assert!(read >= 10, "only {read} metric selectors read");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What is wrong with PromQL queries (query, where) against the sources:
/// each metric a selector names and each label it matches or groups by must
/// be one the metric's source writes. Also the number of selectors checked.
pub(crate) fn metric_problems(queries: &[(String, String)]) -> (Vec<String>, usize) {
    let manifest = manifest();
    let mut written: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for source in manifest.sources.iter().filter(|source| source.kind == "metrics") {
        let text = std::fs::read_to_string(telemetry_dir().join(&source.fixture)).expect("fixture");
        for (name, labels) in exposition_samples(&text) {
            let known = written.entry(name).or_default();
            known.extend(labels);
            known.extend(source.target_labels.iter().cloned());
        }
    }
    assert!(written.contains_key("traefik_tls_certs_not_after"), "fixtures read");
    let mut problems = Vec::new();
    let mut read = 0;
    for (query, place) in queries {
        let expr = promql::parse(query).unwrap_or_else(|error| panic!("{place}: {error}"));
        let mut selectors = Selectors(Vec::new(), Vec::new());
        promql_parser::util::walk_expr(&mut selectors, &expr).expect("walk");
        let mut selected_labels = BTreeSet::new();
        for (name, labels) in selectors.0 {
            let Some(name) = name else { continue };
            if manifest.not_covered.iter().any(|exempt| name.starts_with(&exempt.prefix)) {
                continue;
            }
            read += 1;
            let Some(known) = written.get(&name) else {
                problems.push(format!("{place}: metric {name} is written by no source in testdata/telemetry"));
                continue;
            };
            selected_labels.extend(known.iter().cloned());
            for label in labels.iter().filter(|label| !known.contains(*label)) {
                problems.push(format!("{place}: {name} has no label {label} in its source"));
            }
        }
        for label in selectors.1.iter().filter(|label| !selected_labels.is_empty() && !selected_labels.contains(*label))
        {
            if label != "metric" {
                problems.push(format!("{place}: grouping label {label} is on none of the selected metrics"));
            }
        }
    }
    (problems, read)
}

/// The labels a log pipeline's label filters and groupings read after a parser.
fn fields_read(expr: &logql::Expr) -> Vec<(Vec<logql::StreamMatcher>, BTreeSet<String>)> {
    fn filter_names(filter: &logql::ast::LabelFilter, names: &mut BTreeSet<String>) {
        use logql::ast::LabelFilter::*;
        match filter {
            And(left, right) | Or(left, right) => {
                filter_names(left, names);
                filter_names(right, names);
            }
            String(matcher) => {
                names.insert(matcher.name.clone());
            }
            Number { name, .. } | Duration { name, .. } | Bytes { name, .. } | Ip { name, .. } => {
                names.insert(name.clone());
            }
        }
    }
    fn log(log: &logql::LogExpr, groupings: &BTreeSet<String>) -> (Vec<logql::StreamMatcher>, BTreeSet<String>) {
        let mut names = BTreeSet::new();
        let mut produced = BTreeSet::new();
        let mut parsed = false;
        for stage in &log.stages {
            match stage {
                logql::ast::Stage::Parser(_) => parsed = true,
                logql::ast::Stage::LabelFilter(filter) if parsed => filter_names(filter, &mut names),
                logql::ast::Stage::LabelFormat(formats) => {
                    for format in formats {
                        match format {
                            logql::ast::LabelFormat::Rename { to, .. } => produced.insert(to.clone()),
                            logql::ast::LabelFormat::Template { name, .. } => produced.insert(name.clone()),
                        };
                    }
                }
                _ => {}
            }
        }
        if parsed {
            names.extend(groupings.iter().cloned());
        }
        let names = names.into_iter().filter(|name| !produced.contains(name) && !name.starts_with("__")).collect();
        (log.matchers.clone(), names)
    }
    fn metric(
        expr: &logql::MetricExpr,
        groupings: &BTreeSet<String>,
        out: &mut Vec<(Vec<logql::StreamMatcher>, BTreeSet<String>)>,
    ) {
        use logql::MetricExpr::*;
        match expr {
            Range { log: inner, grouping, .. } => {
                let mut all = groupings.clone();
                if let Some(grouping) = grouping.as_ref().filter(|grouping| !grouping.without) {
                    all.extend(grouping.labels.iter().cloned());
                }
                out.push(log(inner, &all));
            }
            Aggregate { grouping, expr, .. } => {
                let mut all = groupings.clone();
                if let Some(grouping) = grouping.as_ref().filter(|grouping| !grouping.without) {
                    all.extend(grouping.labels.iter().cloned());
                }
                metric(expr, &all, out);
            }
            Binary { lhs, rhs, .. } => {
                metric(lhs, groupings, out);
                metric(rhs, groupings, out);
            }
            LabelReplace { expr, .. } => metric(expr, groupings, out),
            Number(_) | Vector(_) => {}
        }
    }
    let mut out = Vec::new();
    match expr {
        logql::Expr::Log(inner) => out.push(log(inner, &BTreeSet::new())),
        logql::Expr::Metric(inner) => metric(inner, &BTreeSet::new(), &mut out),
    }
    out
}

#[test]
fn every_log_field_the_catalog_reads_is_one_its_source_writes() {
    let catalog = catalog::load(&shipped_catalog()).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let (problems, checked) = log_problems(&queries(&catalog, catalog::Datasource::Logs));
    assert!(checked >= 5, "only {checked} fields checked");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// What is wrong with LogQL queries (query, where) against the sources: each
/// stream must be one a source writes, and each field a parsed pipeline
/// filters or groups by one that source's lines have. Also the number of
/// fields checked.
pub(crate) fn log_problems(queries: &[(String, String)]) -> (Vec<String>, usize) {
    let manifest = manifest();
    let mut problems = Vec::new();
    let mut checked = 0;
    for (query, place) in queries {
        let expr = logql::parse(query).unwrap_or_else(|error| panic!("{place}: {error}"));
        for (matchers, fields) in fields_read(&expr) {
            let source = manifest.sources.iter().filter(|source| source.kind == "logs").find(|source| {
                matchers.iter().all(|matcher| {
                    matcher.op != logql::MatchOp::Equal || source.stream.get(&matcher.name) == Some(&matcher.value)
                })
            });
            let Some(source) = source else {
                problems.push(format!("{place}: no source in testdata/telemetry/sources.yaml writes this stream"));
                continue;
            };
            let format = source.format.as_deref().expect("logs sources name their format");
            let text = std::fs::read_to_string(telemetry_dir().join(&source.fixture)).expect("fixture");
            let written: BTreeSet<String> = text.lines().flat_map(|line| line_fields(format, line)).collect();
            for field in &fields {
                checked += 1;
                if !written.contains(field) {
                    problems.push(format!("{place}: {} ({}) writes no field {field}", source.name, source.version));
                }
            }
        }
    }
    (problems, checked)
}

#[test]
fn a_v1_field_is_caught() {
    // The regression this test exists for: Traefik v1's BackendAddr is not in a v3 access log.
    let expr = logql::parse(r#"sum by (BackendAddr) (count_over_time({job="traefik", log_type="access"} | json | DownstreamStatus = 504 [5m]))"#)
        .expect("parses");
    let fields = fields_read(&expr);
    let text = std::fs::read_to_string(telemetry_dir().join("traefik-v3-access.jsonl")).expect("fixture");
    let written: BTreeSet<String> = text.lines().flat_map(|line| line_fields("json", line)).collect();
    assert!(fields[0].1.contains("BackendAddr"));
    assert!(!written.contains("BackendAddr"));
    assert!(written.contains("ServiceAddr") && written.contains("DownstreamStatus"));
}

#[test]
fn every_source_names_a_fixture_and_its_documentation() {
    let manifest = manifest();
    let readme = std::fs::read_to_string(telemetry_dir().join("README.md")).expect("README.md");
    for source in &manifest.sources {
        let path = telemetry_dir().join(&source.fixture);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{} is missing", path.display()));
        assert!(text.lines().count() >= 2, "{}: a sample needs lines", source.fixture);
        assert!(source.documentation.starts_with("https://"), "{}", source.name);
        assert!(readme.contains(&source.fixture), "README.md does not list {}", source.fixture);
    }
}

#[test]
fn a9_pages_for_exactly_the_acme_certificates_of_the_contract() {
    let catalog = catalog::load(&shipped_catalog()).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let contract = &catalog.contracts["traefik-acme"];
    let domains: BTreeSet<String> =
        contract.tree["spec"]["certificates"].as_object().expect("certificates").keys().cloned().collect();
    let (_, _, rule) = catalog
        .alert_rules()
        .find(|(_, _, rule)| matches!(&rule.kind, catalog::RuleKind::Alert(name) if name == "TlsCertExpiringSoon"))
        .expect("A9 rule");
    let expr = promql::parse(&rule.expr).expect("parses");
    let PromExpr::Binary(comparison) = &expr else { panic!("a comparison") };
    let mut matchers = Vec::new();
    struct Cn<'a>(&'a mut Vec<promql_parser::label::Matcher>);
    impl promql_parser::util::ExprVisitor for Cn<'_> {
        type Error = ();
        fn pre_visit(&mut self, expr: &PromExpr) -> Result<bool, ()> {
            if let PromExpr::VectorSelector(selector) = expr {
                self.0.extend(selector.matchers.matchers.iter().filter(|m| m.name == "cn").cloned());
            }
            Ok(true)
        }
    }
    promql_parser::util::walk_expr(&mut Cn(&mut matchers), &comparison.lhs).expect("walk");
    let [matcher] = matchers.as_slice() else { panic!("one cn matcher: {matchers:?}") };
    assert_eq!(matcher.op.to_string(), "=~");
    // The regex, anchored as Prometheus anchors it, matches the contract's domains and nothing else.
    let regex = regex::Regex::new(&format!("^(?:{})$", matcher.value)).expect("regex");
    for domain in &domains {
        assert!(regex.is_match(domain), "the rule misses ACME certificate {domain}");
    }
    let alternatives: BTreeSet<String> = matcher.value.split('|').map(|part| part.replace("\\.", ".")).collect();
    assert_eq!(alternatives, domains, "the rule's cn alternatives are the contract's certificates");
    for other in ["TRAEFIK DEFAULT CERT", "studio.busflow.app.evil.example", "internal.busflow.lan"] {
        assert!(!regex.is_match(other), "{other}");
    }
}
