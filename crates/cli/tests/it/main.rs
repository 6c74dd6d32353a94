//! The `alertbook` binary as a user runs it: exit statuses and output.

mod alerting;
mod alertmanager_corpus;
mod blocks_import;
mod browser;
mod demo;
mod docker;
mod durability;
mod external_url;
mod journal;
mod logs;
mod packaging;
mod postgres;
mod probes;
mod reload;
mod remote_loki;
mod routing;
mod rules_corpus;
mod scraping;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod test_rules;
mod tls;
mod triage;

fn alertbook(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alertbook"))
        .args(arguments)
        .current_dir(workspace_root())
        .output()
        .expect("alertbook runs")
}

/// Runs `alertbook` with `stdin` as its standard input, whatever its exit.
fn alertbook_with_stdin(arguments: &[String], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_alertbook"))
        .args(arguments)
        .current_dir(workspace_root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("alertbook runs");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("alertbook exits")
}

/// Runs `alertbook` with `stdin` as its standard input; it must succeed.
/// Returns its standard output.
fn alertbook_with_input(arguments: &[&str], stdin: &str) -> String {
    let arguments: Vec<String> = arguments.iter().map(|argument| (*argument).to_owned()).collect();
    let output = alertbook_with_stdin(&arguments, stdin);
    assert!(output.status.success(), "alertbook {arguments:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("utf-8")
}

/// A new responder's API token in the state store under `data` (`alertbook
/// user add` and `token create`), for the requests that need one, such as
/// asking for a triage run.
fn responder_token(data: &Path) -> String {
    let data = data.to_str().expect("utf-8");
    alertbook_with_input(
        &["user", "add", "triager", "--role", "responder", "--data", data],
        "a responder's long password\n",
    );
    alertbook_with_input(&["token", "create", "triager", "--data", data], "").trim().to_owned()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Copies the Busflow catalog to `to`, with the groups of `rules_file` (under
/// `rules/`) evaluating every second instead of every 1m or 5m.
fn fast_catalog_at(to: &Path, rules_file: &str) {
    copy_tree(&workspace_root().join("catalog/busflow"), to);
    let rules = to.join("rules").join(rules_file);
    let text = std::fs::read_to_string(&rules).expect("rules");
    std::fs::write(&rules, text.replace("interval: 1m", "interval: 1s").replace("interval: 5m", "interval: 1s"))
        .expect("write rules");
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn version_and_help() {
    let output = alertbook(&["--version"]);
    assert!(output.status.success());
    assert!(stdout(&output).starts_with(&format!("alertbook {} (commit ", env!("CARGO_PKG_VERSION"))));
    for command in ["run", "check", "runbook", "probe"] {
        let output = alertbook(&[command, "--help"]);
        assert!(output.status.success(), "{command} --help");
        assert!(stdout(&output).len() > 200, "{command} --help is too short: {}", stdout(&output));
    }
}

#[test]
fn check_of_the_shipped_catalog_prints_the_summary() {
    let output = alertbook(&["check", "catalog/busflow"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.starts_with("catalog/busflow: 13 alerts, "), "{text}");
    assert!(text.contains("triage steps (") && text.contains(" checks), 16 contracts"), "{text}");
    // Without arguments the default catalog is checked.
    let output = alertbook(&["check"]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn check_of_a_broken_rule_file_exits_1_with_a_located_error() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("bad.rules.yaml");
    std::fs::write(&path, "groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: sum(\n").expect("write");
    let output = alertbook(&["check", path.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(text.contains("bad.rules.yaml:5:19: error: group \"g\", rule 1, \"X\": could not parse expression: 1:5: parse error: unclosed left parenthesis"), "{text}");
    assert!(text.contains("5 |         expr: sum("), "{text}");
}

#[test]
fn check_of_a_broken_catalog_exits_1() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let root = directory.path();
    std::fs::create_dir_all(root.join("runbook")).expect("mkdir");
    std::fs::write(
        root.join("catalog.yaml"),
        "name: x\ntitle: X\nrunbook_url: http://x/{id}\nroutes: [ops]\nrule_files: [rules/*.yaml]\nclosing: {summary: s, fields: [{name: a, description: b}]}\n",
    )
    .expect("write");
    let output = alertbook(&["check", root.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("no rule file matches \"rules/*.yaml\""), "{}", stderr(&output));
}

#[test]
fn runbook_by_id_and_by_alertname_print_the_same_entry() {
    let by_id = alertbook(&["runbook", "A3"]);
    let by_name = alertbook(&["runbook", "PiiLeakDetected"]);
    assert!(by_id.status.success() && by_name.status.success());
    assert_eq!(stdout(&by_id), stdout(&by_name));
    assert!(stdout(&by_id).starts_with("## A3 — PiiLeakDetected"));
    let unknown = alertbook(&["runbook", "A99"]);
    assert_eq!(unknown.status.code(), Some(1));
}

#[test]
fn runbook_lists_every_alert_and_renders_the_checked_in_markdown() {
    let list = stdout(&alertbook(&["runbook"]));
    assert_eq!(list.lines().count(), 14, "{list}");
    assert!(list.contains("A12  StudioTraefikMultiNetworkRouting"));
    let markdown = stdout(&alertbook(&["runbook", "--markdown"]));
    let checked_in = std::fs::read_to_string(workspace_root().join("catalog/busflow/runbook.md")).expect("runbook.md");
    assert_eq!(markdown, checked_in);
}

#[test]
fn check_of_a_config_file_validates_it() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("alertbook.yaml");
    std::fs::write(&path, "listen: nowhere\ncatalogue: x\n").expect("write");
    let output = alertbook(&["check", path.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("alertbook.yaml:2:1: error: unknown field `catalogue`"), "{}", stderr(&output));
}

#[test]
fn test_promql_runs_scripts_and_reports_failures() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("mine.test");
    std::fs::write(
        &path,
        "load 1m\n  metric{job=\"a\"} 1+1x10\n\neval instant at 5m metric\n  metric{job=\"a\"} 6\n\neval instant at 5m metric\n  metric{job=\"a\"} 7\n",
    )
    .expect("write");
    let output = alertbook(&["test", "promql", path.to_str().expect("utf-8 path")]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(text.contains("mine.test: 1 passed, 1 failed, 0 skipped"), "{text}");
    assert!(text.contains("FAIL mine.test:7: metric"), "{text}");
    assert_eq!(text.lines().last(), Some("1 passed, 1 failed, 0 skipped"));

    let output = alertbook(&["test", "promql", "--quiet", "testdata/promqltest/literals.test"]);
    assert!(output.status.success(), "{}", stdout(&output));
}
