//! `alertbook test rules` on Prometheus's own promtool fixtures, and `alertbook replay`.

use super::{alertbook, stderr, stdout, workspace_root};

/// Every row of testdata/promtool/EXPECTED.tsv: the exit status promtool gives.
#[test]
fn promtool_fixtures_give_promtool_exit_statuses() {
    let directory = workspace_root().join("testdata/promtool");
    let table = std::fs::read_to_string(directory.join("EXPECTED.tsv")).expect("EXPECTED.tsv");
    let mut rows = 0;
    for line in table.lines().skip(1).filter(|line| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [file, flags, expected, _note] = fields[..] else { panic!("malformed row {line:?}") };
        let path = directory.join(file);
        let path = path.to_str().expect("utf-8 path");
        let mut arguments = vec!["test", "rules"];
        arguments.extend(flags.split_whitespace());
        arguments.push(path);
        let output = alertbook(&arguments);
        let expected: i32 = expected.parse().expect("exit status");
        assert_eq!(
            output.status.code(),
            Some(expected),
            "{file} {flags}: stdout:\n{}\nstderr:\n{}",
            stdout(&output),
            stderr(&output)
        );
        rows += 1;
    }
    assert_eq!(rows, 18);
}

/// A native histogram that differs is printed as promtool prints it.
#[test]
fn histogram_mismatches_print_test_expressions() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("histograms.yml");
    let text = r#"tests:
  - interval: 1m
    input_series:
      - series: h
        values: "{{sum:3 count:2 buckets:[2]}}+{{sum:1 count:1 buckets:[0 1]}}x1"
    promql_expr_test:
      - expr: h
        eval_time: 1m
        exp_samples:
          - labels: "h"
            histogram: "{{count:3 sum:4 buckets:[2 1]}}"
"#;
    std::fs::write(&path, text).expect("test file written");
    let output = alertbook(&["test", "rules", path.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains(
            "exp: {__name__=\"h\"} {{count:3 sum:4 buckets:[2 1]}}\n        got: {__name__=\"h\"} {{count:3 sum:4 counter_reset_hint:not_reset buckets:[2 1]}}"
        ),
        "{text}"
    );
}

#[test]
fn failures_show_expected_and_got_and_junit_is_written() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let junit = directory.path().join("report.xml");
    let fixture = workspace_root().join("testdata/promtool/failing.yml");
    let output = alertbook(&[
        "test",
        "rules",
        "--junit",
        junit.to_str().expect("utf-8 path"),
        fixture.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("  FAILED:"), "{text}");
    assert!(text.contains("    expr: \"test\", time: 0s,\n        exp: {__name__=\"test\"} 1E+00\n        got: {__name__=\"test\"} 0E+00"), "{text}");
    assert!(text.contains("alertname: AlwaysFiring, time: 5m"), "{text}");
    assert!(text.ends_with("0 passed, 2 failed\n"), "{text}");
    let xml = std::fs::read_to_string(&junit).expect("junit report");
    assert!(xml.contains("<testsuite name=") && xml.contains("failures=\"2\""), "{xml}");
    assert!(xml.contains("<testcase name=\"Failing test\"><failure"), "{xml}");
}

#[test]
fn the_catalog_rules_pass_their_unit_tests() {
    let directory = workspace_root().join("catalog/busflow/tests");
    let mut files: Vec<String> = std::fs::read_dir(&directory)
        .expect("catalog/busflow/tests")
        .filter_map(Result::ok)
        .map(|entry| entry.path().to_string_lossy().into_owned())
        .filter(|path| path.ends_with(".yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    let mut arguments = vec!["test", "rules"];
    arguments.extend(files.iter().map(String::as_str));
    let output = alertbook(&arguments);
    assert!(output.status.success(), "{}\n{}", stdout(&output), stderr(&output));
    assert!(stdout(&output).ends_with(" passed, 0 failed\n"));
}

#[test]
fn replay_prints_each_state_change_as_a_json_line() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let rules = directory.path().join("down.rules.yaml");
    std::fs::write(
        &rules,
        "groups:\n  - name: g\n    interval: 1m\n    rules:\n      - alert: Down\n        expr: up == 0\n        for: 2m\n",
    )
    .expect("write rules");
    let data = directory.path().join("data.om");
    let mut text = String::from("# TYPE up gauge\n");
    // Down from minute 1 to minute 5, up again from minute 6.
    for minute in 0..10 {
        let value = if (1..6).contains(&minute) { 0 } else { 1 };
        text.push_str(&format!("up{{job=\"api\"}} {value} {}\n", 1_700_000_000 + minute * 60));
    }
    text.push_str("# EOF\n");
    std::fs::write(&data, text).expect("write data");
    let output = alertbook(&[
        "replay",
        "--data",
        data.to_str().expect("utf-8 path"),
        "--rules",
        rules.to_str().expect("utf-8 path"),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            r#"{"time": 1700000060, "alertname": "Down", "labels": {"alertname":"Down","job":"api"}, "state": "pending", "value": 0.0}"#,
            r#"{"time": 1700000180, "alertname": "Down", "labels": {"alertname":"Down","job":"api"}, "state": "firing", "value": 0.0}"#,
            r#"{"time": 1700000360, "alertname": "Down", "labels": {"alertname":"Down","job":"api"}, "state": "resolved", "value": 0.0}"#,
        ]
    );
}

#[test]
fn replay_takes_logs_as_loki_push_json_redacted_as_at_ingest() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let data = directory.path().join("faro.json");
    let start_ns: i64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z
    // Six Faro lines with an e-mail address, one a minute: the sixth makes A3 page.
    let values: Vec<serde_json::Value> = (0..6)
        .map(|minute| {
            serde_json::json!([
                (start_ns + minute * 60_000_000_000).to_string(),
                format!(r#"{{"kind":"log","message":"booking failed for guest{minute}@busflow-kunde.de"}}"#)
            ])
        })
        .collect();
    let body = serde_json::json!({"streams": [{"stream": {"job": "faro"}, "values": values}]});
    std::fs::write(&data, body.to_string()).expect("write data");
    let output = alertbook(&[
        "replay",
        "--data",
        data.to_str().expect("utf-8 path"),
        "--to",
        "2026-01-02T00:10:00Z",
        "--step",
        "1m",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    let labels = r#"{"alertname":"PiiLeakDetected","route":"ops-oncall","severity":"page"}"#;
    assert_eq!(
        lines,
        [
            format!(
                r#"{{"time": 1767225900, "alertname": "PiiLeakDetected", "labels": {labels}, "state": "firing", "value": 6.0}}"#
            ),
            // Its triage ran on the replayed logs: the redaction's rule ids, one rule.
            format!(
                r#"{{"time": 1767225900, "alertname": "PiiLeakDetected", "labels": {labels}, "state": "triage", "runbook_id": "A3", "path": ["one-rule"], "results": {{"matches_by_rule":{{"email":6.0}}}}, "missing": []}}"#
            ),
            // The first line leaves the 24h window at 2026-01-02T00:00:00Z.
            format!(
                r#"{{"time": 1767312000, "alertname": "PiiLeakDetected", "labels": {labels}, "state": "resolved", "value": 6.0}}"#
            ),
        ]
    );
}

/// Counters of busflow_api requests for three tenants over 20 minutes, every
/// tenant answering 10 % of its requests with 503: a broad error rate.
fn broad_api_errors() -> String {
    let mut text = String::from("# TYPE http_server_request_duration_seconds counter\n");
    for tenant in ["t1", "t2", "t3"] {
        for (code, per_second) in [("200", 9.0), ("503", 1.0)] {
            for minute in 0..=20 {
                text.push_str(&format!(
                    "http_server_request_duration_seconds_count{{service_name=\"busflow_api\",tenant_id=\"{tenant}\",http_response_status_code=\"{code}\"}} {} {}\n",
                    per_second * 60.0 * f64::from(minute),
                    1_767_225_600 + minute * 60
                ));
            }
        }
    }
    text.push_str("# EOF\n");
    text
}

#[test]
fn replay_triage_lists_checks_it_has_no_datasource_for_unless_fixtures_record_them() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let data = directory.path().join("api.om");
    std::fs::write(&data, broad_api_errors()).expect("write data");
    let replay = |extra: &[&str]| {
        let mut arguments = vec!["replay", "--data", data.to_str().expect("utf-8 path"), "--step", "1m"];
        arguments.extend_from_slice(extra);
        let output = alertbook(&arguments);
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output)
            .lines()
            .filter(|line| line.contains("\"triage\""))
            .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON line"))
            .collect::<Vec<_>>()
    };
    let runs = replay(&[]);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["runbook_id"], "A1");
    assert_eq!(runs[0]["path"], serde_json::json!(["broad"]));
    let share = runs[0]["results"]["top_tenant_share"].as_f64().expect("share");
    assert!((share - 1.0 / 3.0).abs() < 1e-9, "{share}");
    assert_eq!(runs[0]["missing"], serde_json::json!(["lock_waits"]));

    let fixtures = directory.path().join("fixtures.yaml");
    std::fs::write(&fixtures, "lock_waits: 0\n").expect("write fixtures");
    let runs = replay(&["--fixtures", fixtures.to_str().expect("utf-8 path")]);
    assert_eq!(runs[0]["path"], serde_json::json!(["broad", "not-postgres"]));
    assert_eq!(runs[0]["results"]["lock_waits"], 0);
    assert_eq!(runs[0]["missing"], serde_json::json!([]));

    std::fs::write(&fixtures, "- not a map\n").expect("write fixtures");
    let output = alertbook(&[
        "replay",
        "--data",
        data.to_str().expect("utf-8"),
        "--fixtures",
        fixtures.to_str().expect("utf-8"),
    ]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("not a map of result names to values"), "{}", stderr(&output));
}

#[test]
fn check_coverage_lists_the_branches_without_a_triage_test() {
    let catalog = workspace_root().join("catalog/busflow");
    let output = alertbook(&["check", "--coverage", catalog.to_str().expect("utf-8 path")]);
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = stdout(&output);
    let line = printed.lines().find(|line| line.starts_with("triage coverage: ")).expect("coverage line");
    let numbers: Vec<usize> = line.split_whitespace().filter_map(|word| word.parse().ok()).collect();
    let listed = printed.lines().filter(|line| line.starts_with("  no triage_test: ")).count();
    assert_eq!(numbers[1] - numbers[0], listed, "{printed}");
    // A1's branches all have triage tests (catalog/busflow/tests/A1-triage.yaml).
    assert!(!printed.contains("no triage_test: A1 "), "{printed}");
}
