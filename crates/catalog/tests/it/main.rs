//! Catalog loading: the shipped catalog loads, and each kind of breakage is
//! reported at its file, line and column, all errors at once.

use std::path::{Path, PathBuf};

use catalog::Diagnostics;

mod contacts;
mod dashboards;
mod grafana;
mod telemetry;

fn shipped_catalog() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow")
}

/// A writable copy of the shipped catalog.
fn copy_catalog() -> tempfile::TempDir {
    let directory = tempfile::tempdir().expect("temporary directory");
    copy_tree(&shipped_catalog(), directory.path());
    directory
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create directory");
    for entry in std::fs::read_dir(from).expect("read directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

fn edit(root: &Path, file: &str, from: &str, to: &str) {
    let path = root.join(file);
    let text = std::fs::read_to_string(&path).expect("read file");
    assert!(text.contains(from), "{file} does not contain {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).expect("write file");
}

fn errors_of(root: &Path) -> Diagnostics {
    catalog::load(root).expect_err("the catalog should be rejected")
}

/// Finds the diagnostic whose message contains `needle`; asserts its place.
fn assert_error(diagnostics: &Diagnostics, file: &str, line: usize, column: usize, needle: &str) {
    let found = diagnostics.iter().find(|diagnostic| diagnostic.message.contains(needle));
    let Some(diagnostic) = found else {
        panic!("no error containing {needle:?} in:\n{diagnostics}");
    };
    assert!(diagnostic.path.ends_with(file), "error {needle:?} is in {}, expected {file}", diagnostic.path.display());
    assert_eq!((diagnostic.line, diagnostic.column), (line, column), "position of {needle:?}:\n{diagnostic}");
    let rendered = diagnostic.to_string();
    assert!(rendered.contains(&format!("{file}:{line}:{column}: error: ")), "rendered: {rendered}");
    assert!(diagnostic.snippet.is_some(), "error {needle:?} has no snippet");
}

fn line_of(root: &Path, file: &str, needle: &str) -> usize {
    let text = std::fs::read_to_string(root.join(file)).expect("read file");
    text.lines().position(|line| line.contains(needle)).expect("needle present") + 1
}

#[test]
fn shipped_catalog_loads() {
    let catalog = catalog::load(&shipped_catalog()).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let summary = catalog.summary();
    assert_eq!(summary.alerts, 13);
    assert_eq!(summary.contracts, 16);
    assert!(summary.checks >= 20, "{summary}");
    let ids: Vec<&str> = catalog.entries.iter().map(|entry| entry.id.as_str()).collect();
    assert_eq!(ids, ["A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9", "A10", "A11", "A12", "S1"]);
    assert_eq!(catalog.entry("a3").map(|entry| entry.alertname.as_str()), Some("PiiLeakDetected"));
    assert_eq!(catalog.entry("PiiLeakDetected").map(|entry| entry.id.as_str()), Some("A3"));
    // Every alert rule links back to its entry.
    for (_, _, rule) in catalog.alert_rules() {
        let id = &rule.annotations["runbook_id"];
        let catalog::RuleKind::Alert(name) = &rule.kind else { unreachable!() };
        assert_eq!(&catalog.entry(id).expect("entry").alertname, name);
    }
}

#[test]
fn guard_rails_name_the_forbidden_commands_of_a_remediation() {
    let catalog = catalog::load(&shipped_catalog()).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let a5 = catalog.entry("A5").expect("A5");
    let found = a5.forbidden_commands(
        "curl -X POST 'http://mimir:8080/prometheus/api/v1/admin/tsdb/delete_series?match[]=busflow_bookings_total'",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].rail.starts_with("Never delete series by hand"), "{found:?}");
    assert_eq!(found[0].matched, "/api/v1/admin/tsdb/delete_series");
    let relabel = a5.forbidden_commands("added metric_relabel_configs to the Mimir distributor to drop route_id");
    assert_eq!(relabel.len(), 1, "{relabel:?}");
    assert!(relabel[0].rail.contains("never at Mimir"), "{relabel:?}");
    // The remediation the rail asks for is not forbidden.
    assert!(a5.forbidden_commands("https://git.busflow.app/ops/catalog/pull/812 raises the budget").is_empty());
    assert!(a5.forbidden_commands("no-op, transient").is_empty());
    // Every guard rail of the catalog forbids something or holds over a check.
    for entry in &catalog.entries {
        for step in entry.steps.iter().filter(|step| step.kind == catalog::StepKind::GuardRail) {
            assert!(step.holds.is_some() || !step.forbids.is_empty(), "{} step {}", entry.id, step.number);
        }
    }
}

#[test]
fn a_step_contradicting_its_entrys_guard_rail_is_located() {
    let root = copy_catalog();
    edit(
        root.path(),
        "runbook/A5.yaml",
        "text: Raise the budget only once",
        "text: Delete the series with /api/v1/admin/tsdb/delete_series, or raise the budget only once",
    );
    let diagnostics = errors_of(root.path());
    let line = line_of(root.path(), "runbook/A5.yaml", "Delete the series with");
    assert_error(&diagnostics, "runbook/A5.yaml", line - 1, 11, "which the guard rail of step");
}

#[test]
fn broken_yaml_is_located() {
    let root = copy_catalog();
    edit(root.path(), "runbook/A5.yaml", "title: Cardinality explosion", "title: [Cardinality explosion");
    let diagnostics = errors_of(root.path());
    let line = line_of(root.path(), "runbook/A5.yaml", "title: [");
    let diagnostic = diagnostics.iter().find(|d| d.path.ends_with("runbook/A5.yaml")).expect("A5 error");
    assert_eq!(diagnostic.line, line, "{diagnostic}");
    assert!(diagnostic.column > 0);
}

#[test]
fn unknown_field_is_located() {
    let root = copy_catalog();
    edit(root.path(), "runbook/A7.yaml", "intent:", "intnet:");
    let diagnostics = errors_of(root.path());
    let line = line_of(root.path(), "runbook/A7.yaml", "intnet:");
    assert_error(&diagnostics, "runbook/A7.yaml", line, 1, "unknown field `intnet`");
}

#[test]
fn missing_runbook_entry_is_reported_at_the_rule() {
    let root = copy_catalog();
    std::fs::remove_file(root.path().join("runbook/A3.yaml")).expect("remove entry");
    let diagnostics = errors_of(root.path());
    let line = line_of(root.path(), "rules/logs.rules.yaml", "alert: PiiLeakDetected");
    assert_error(&diagnostics, "rules/logs.rules.yaml", line, 16, "has no runbook entry");
}

#[test]
fn entry_without_rule_is_reported() {
    let root = copy_catalog();
    edit(root.path(), "rules/docker.rules.yaml", "alert: PostgresExporterDsnGateOpen", "alert: Renamed");
    let diagnostics = errors_of(root.path());
    assert_error(&diagnostics, "runbook/A8.yaml", 2, 1, "has no alerting rule named");
    assert_error(&diagnostics, "rules/docker.rules.yaml", 7, 16, "has no runbook entry");
}

#[test]
fn duplicate_id_is_reported() {
    let root = copy_catalog();
    let text = std::fs::read_to_string(root.path().join("runbook/A4.yaml")).expect("read");
    std::fs::write(
        root.path().join("runbook/A44.yaml"),
        text.replace("id: A4", "id: A4\n# copy")
            .replace("alertname: PgCronJobFailed", "alertname: PgCronJobFailedAgain"),
    )
    .expect("write");
    let diagnostics = errors_of(root.path());
    assert_error(&diagnostics, "runbook/A44.yaml", 1, 5, "duplicate ID \"A4\"");
}

#[test]
fn dangling_contract_reference_is_reported() {
    let root = copy_catalog();
    edit(root.path(), "runbook/A2.yaml", "contracts: [scaling-ceiling]", "contracts: [latency-objective]");
    edit(
        root.path(),
        "runbook/A6.yaml",
        "bucket_bytes / contracts.loki-storage-quota.spec.quota_bytes",
        "bucket_bytes / contracts.loki-storage-quota.spec.quota",
    );
    let diagnostics = errors_of(root.path());
    let line = line_of(root.path(), "runbook/A2.yaml", "latency-objective");
    assert_error(&diagnostics, "runbook/A2.yaml", line, 17, "unknown contract \"latency-objective\"");
    let line = line_of(root.path(), "runbook/A6.yaml", "quota_share:");
    let diagnostic = diagnostics.iter().find(|d| d.message.contains("has no field `quota`")).expect("field error");
    assert_eq!(diagnostic.line, line);
    // The column points at the reference inside the expression.
    let source_line = diagnostic.snippet.as_deref().expect("snippet");
    assert_eq!(
        source_line[diagnostic.column - 1..].split_whitespace().next(),
        Some("contracts.loki-storage-quota.spec.quota")
    );
}

#[test]
fn exclusion_without_reviewer_is_reported() {
    let root = copy_catalog();
    edit(root.path(), "contracts/pii-exclusions.yaml", "    reviewer: security-oncall\n", "");
    let diagnostics = errors_of(root.path());
    let line = line_of(root.path(), "contracts/pii-exclusions.yaml", "- rule_id: payment_card");
    assert_error(&diagnostics, "contracts/pii-exclusions.yaml", line, 5, "has no reviewer");
}

#[test]
fn invalid_promql_in_a_rule_is_located() {
    let root = copy_catalog();
    edit(root.path(), "rules/metrics.rules.yaml", "> 0.02", "> > 0.02");
    let diagnostics = errors_of(root.path());
    let diagnostic =
        diagnostics.iter().find(|d| d.message.contains("could not parse expression")).expect("PromQL error");
    assert!(diagnostic.path.ends_with("rules/metrics.rules.yaml"));
    // At the second `>`, where Prometheus stops: `3:5: parse error: unexpected <op:>>` within the expression.
    assert_eq!(diagnostic.line, line_of(root.path(), "rules/metrics.rules.yaml", "> > 0.02"));
    assert_eq!(diagnostic.column, 15);
    assert!(diagnostic.message.contains("could not parse expression: 3:5: parse error: "), "{}", diagnostic.message);
}

#[test]
fn stale_markdown_is_reported() {
    let root = copy_catalog();
    edit(
        root.path(),
        "runbook/A9.yaml",
        "title: TLS certificate expiring soon",
        "title: TLS certificate about to expire",
    );
    let diagnostics = errors_of(root.path());
    let line = line_of(root.path(), "runbook.md", "**TLS certificate expiring soon.**");
    assert_error(&diagnostics, "runbook.md", line, 1, "runbook.md differs");
}

#[test]
fn every_error_is_reported_at_once() {
    let root = copy_catalog();
    edit(root.path(), "runbook/A7.yaml", "intent:", "intnet:");
    edit(root.path(), "contracts/pii-exclusions.yaml", "    reviewer: security-oncall\n", "");
    edit(root.path(), "runbook/A1.yaml", "branch: one-tenant\n    text: Look", "branch: one-tenantt\n    text: Look");
    let diagnostics = errors_of(root.path());
    assert!(diagnostics.len() >= 3, "{diagnostics}");
    assert!(diagnostics.iter().any(|d| d.message.contains("not picked by any earlier check")), "{diagnostics}");
}

#[test]
fn invalid_pii_rule_is_located_at_its_id() {
    let root = copy_catalog();
    edit(root.path(), "pii-rules.yaml", "    validate: luhn\n", "    validate: crc32\n");
    let diagnostics = errors_of(root.path());
    let line = line_of(root.path(), "pii-rules.yaml", "- id: payment_card");
    assert_error(&diagnostics, "pii-rules.yaml", line, 9, "PII rule \"payment_card\"");
}

#[test]
fn exclusion_of_an_unknown_pii_rule_is_reported() {
    let root = copy_catalog();
    edit(root.path(), "contracts/pii-exclusions.yaml", "rule_id: payment_card", "rule_id: payment_cards");
    let diagnostics = errors_of(root.path());
    let line = line_of(root.path(), "contracts/pii-exclusions.yaml", "rule_id: payment_cards");
    assert_error(&diagnostics, "contracts/pii-exclusions.yaml", line, 14, "unknown PII rule \"payment_cards\"");
}

#[test]
fn log_rule_with_invalid_logql_or_a_log_query_is_located() {
    let root = copy_catalog();
    edit(root.path(), "rules/logs.rules.yaml", "| logfmt |", "| logfmt | |");
    edit(
        root.path(),
        "rules/logs.rules.yaml",
        r#"sum by (ServiceName, ServiceAddr) (count_over_time({job="traefik", log_type="access"} | json | DownstreamStatus = 504 | ServiceAddr != "" | label_format backend_ip=`{{ regexReplaceAll ":[0-9]+$" .ServiceAddr "" }}` | backend_ip != ip("10.0.1.0/24") [5m])) > 0"#,
        r#"{job="traefik", log_type="access"} | json"#,
    );
    let diagnostics = errors_of(root.path());
    assert!(diagnostics.iter().any(|d| d.message.contains("invalid LogQL")), "{diagnostics}");
    assert!(diagnostics.iter().any(|d| d.message.contains("needs a metric query")), "{diagnostics}");
}

#[test]
fn guard_rails_enforce_something_and_their_patterns_are_regexes() {
    let root = copy_catalog();
    edit(root.path(), "runbook/A7.yaml", "'docker\\s+(exec|cp|commit)\\b.*grafana'", "'docker\\s+(exec'");
    edit(
        root.path(),
        "runbook/A5.yaml",
        "    forbids:\n      - '(?i)/api/v1/admin/tsdb/delete_series'\n      - '(?i)/purger/delete_tenant'\n      - '(?i)mimirtool\\s+.*delete' \n",
        "",
    );
    let diagnostics = errors_of(root.path());
    let line = line_of(root.path(), "runbook/A7.yaml", "docker\\s+(exec");
    assert_error(&diagnostics, "runbook/A7.yaml", line, 9, "forbidden-command pattern is not a regex");
    let line = line_of(root.path(), "runbook/A5.yaml", "Never delete series by hand") - 1;
    assert_error(&diagnostics, "runbook/A5.yaml", line, 11, "a guard rail needs something to enforce");
}

#[test]
fn acme_contract_names_known_resolvers_and_challenges() {
    let root = copy_catalog();
    edit(root.path(), "contracts/traefik-acme.yaml", "challenge: http-01", "challenge: http");
    edit(
        root.path(),
        "contracts/traefik-acme.yaml",
        "grafana.busflow.app: letsencrypt-http",
        "grafana.busflow.app: letsencrypt",
    );
    let diagnostics = errors_of(root.path());
    assert_error(&diagnostics, "contracts/traefik-acme.yaml", 1, 7, "uses unknown challenge \"http\"");
    assert_error(&diagnostics, "contracts/traefik-acme.yaml", 1, 7, "names unknown resolver \"letsencrypt\"");
}

#[test]
fn a_rule_threshold_that_differs_from_its_contract_is_refused_where_it_is_bound() {
    let root = copy_catalog();
    edit(root.path(), "contracts/latency-slo.yaml", "page_threshold_seconds: 0.8", "page_threshold_seconds: 0.9");
    edit(root.path(), "contracts/log-retention.yaml", "max_compaction_lag: 3h", "max_compaction_lag: 4h");
    // A rule literal changed without its contract.
    edit(root.path(), "rules/metrics.rules.yaml", "<= 14 * 86400", "<= 21 * 86400");
    let diagnostics = errors_of(root.path());
    let line = line_of(root.path(), "runbook/A2.yaml", "  - contracts.latency-slo.spec.page_threshold_seconds");
    assert_error(&diagnostics, "runbook/A2.yaml", line, 5, "threshold 0.8 (1st) differs from its contract");
    assert!(diagnostics.iter().any(|d| d.message.contains("page_threshold_seconds is 0.9")), "{diagnostics}");
    let line = line_of(root.path(), "runbook/A6.yaml", "max_compaction_lag)");
    assert_error(&diagnostics, "runbook/A6.yaml", line, 5, "threshold 10800 (1st) differs from its contract");
    let line = line_of(root.path(), "runbook/A9.yaml", "page_before_expiry)");
    assert_error(&diagnostics, "runbook/A9.yaml", line, 5, "threshold 1.8144e+06 (1st) differs");
    assert_eq!(diagnostics.iter().filter(|d| d.message.contains("differs from its contract")).count(), 3);
}

#[test]
fn a_rule_threshold_no_contract_backs_is_refused() {
    let root = copy_catalog();
    edit(root.path(), "runbook/A3.yaml", "thresholds:\n  - contracts.pii-budget.spec.max_matches\n", "");
    edit(
        root.path(),
        "runbook/A6.yaml",
        "  - contracts.loki-storage-quota.spec.alert_ratio * contracts.loki-storage-quota.spec.quota_bytes\n",
        "",
    );
    edit(
        root.path(),
        "runbook/A1.yaml",
        "contracts.api-error-rate.spec.max_error_ratio",
        "contracts.api-error-rate.spec.max_ratio",
    );
    let diagnostics = errors_of(root.path());
    let line = line_of(root.path(), "runbook/A3.yaml", "alertname:");
    assert_error(&diagnostics, "runbook/A3.yaml", line, 1, "threshold(s) 5 are literals no contract backs");
    let line = line_of(root.path(), "runbook/A6.yaml", "alertname:");
    assert_error(
        &diagnostics,
        "runbook/A6.yaml",
        line,
        1,
        "binds 1 value(s) but its rule compares against 2 threshold(s) (10800, 4.25e+11)",
    );
    let line = line_of(root.path(), "runbook/A1.yaml", "max_ratio");
    assert_error(&diagnostics, "runbook/A1.yaml", line, 5, "unknown name `contracts.api-error-rate.spec.max_ratio`");
}

#[test]
fn trace_checks_get_a_traceql_sanity_check_and_no_rule_group_reads_traces() {
    let root = copy_catalog();
    edit(root.path(), "runbook/A2.yaml", r#"duration > 800ms }"#, r#"duration > 800ms "#);
    edit(root.path(), "rules/logs.rules.yaml", "datasource: logs", "datasource: traces");
    let diagnostics = errors_of(root.path());
    let query_line = line_of(root.path(), "runbook/A2.yaml", "span.http.route");
    assert_error(&diagnostics, "runbook/A2.yaml", query_line, 15, "unclosed `{`");
    let group_line = line_of(root.path(), "rules/logs.rules.yaml", "datasource: traces");
    assert_error(
        &diagnostics,
        "rules/logs.rules.yaml",
        group_line,
        17,
        "trace search answers triage checks, not rules",
    );
}

#[test]
fn unknown_prober_and_unparsable_probe_targets_are_located() {
    let root = copy_catalog();
    let file = "contracts/studio-service-probes.yaml";
    edit(
        root.path(),
        file,
        "      prober: http\n      target: http://docs-hub:3000/health",
        "      prober: ping\n      target: docs-hub",
    );
    edit(root.path(), file, "target: http://qdrant:6333/readyz", "target: qdrant:6333/readyz");
    edit(root.path(), file, "target: http://landing:80/", "target: http://landing:80/\n      send: hello");
    let diagnostics = errors_of(root.path());
    let prober = line_of(root.path(), file, "prober: ping");
    assert_error(
        &diagnostics,
        file,
        prober,
        15,
        "uses unknown prober \"ping\"; expected one of: http, tcp, tls, smtp, s3",
    );
    let target = line_of(root.path(), file, "target: qdrant:6333/readyz");
    assert_error(&diagnostics, file, target, 15, "target \"qdrant:6333/readyz\" is not an http:// or https:// URL");
    let send = line_of(root.path(), file, "send: hello");
    assert_error(&diagnostics, file, send, 13, "option send does not apply to the http prober");
}

#[test]
fn probe_options_load_typed() {
    let catalog = catalog::load(&shipped_catalog()).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let contract = &catalog.contracts["studio-service-probes"];
    let catalog::ContractKind::Probes(probes) = &contract.kind else { panic!("not probes") };
    assert_eq!(probes.interval_duration, std::time::Duration::from_secs(30));
    assert_eq!(probes.failures, 3);
    assert!(probes.targets.iter().any(|target| target.name == "qdrant" && target.prober == "http"));
}

#[test]
fn escalation_conditions_load_and_misuse_is_located() {
    let catalog = catalog::load(&shipped_catalog()).expect("loads");
    let a1 = catalog.entry("A1").expect("A1");
    let csm = a1.steps.iter().find(|step| step.escalate_to.as_deref() == Some("tenant-csm")).expect("csm step");
    assert_eq!(csm.condition.after, Some(std::time::Duration::from_secs(30 * 60)));
    let a3 = catalog.entry("A3").expect("A3");
    let conditions: Vec<(bool, Option<&str>)> = a3
        .steps
        .iter()
        .filter(|step| step.escalate_to.is_some())
        .map(|step| (step.condition.manual, step.condition.when.as_ref().map(|when| when.text.as_str())))
        .collect();
    assert_eq!(conditions, vec![(true, None), (false, Some("distinct(split(keys(matches_by_rule), \",\")) > 1"))]);

    let copy = copy_catalog();
    let root = copy.path();
    edit(root, "runbook/A1.yaml", "    after: 30m\n", "    after: half an hour\n");
    edit(
        root,
        "runbook/A3.yaml",
        "when: distinct(split(keys(matches_by_rule), \",\")) > 1",
        "when: distinct(split(keys(unknown_fact), \",\")) > 1",
    );
    edit(
        root,
        "runbook/A6.yaml",
        "  - kind: instruction\n    branch: compactor-unhealthy\n",
        "  - kind: instruction\n    after: 5m\n    branch: compactor-unhealthy\n",
    );
    let diagnostics = errors_of(root);
    let line = line_of(root, "runbook/A1.yaml", "after: half an hour");
    assert_error(&diagnostics, "runbook/A1.yaml", line, 12, "invalid duration");
    let line = line_of(root, "runbook/A3.yaml", "unknown_fact");
    assert_error(&diagnostics, "runbook/A3.yaml", line, 31, "unknown name `unknown_fact`");
    let line = line_of(root, "runbook/A6.yaml", "after: 5m");
    assert_error(&diagnostics, "runbook/A6.yaml", line, 12, "only escalation steps have `after`");
}
