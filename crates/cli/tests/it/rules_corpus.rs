//! The differential test against `promtool check rules` (Debian's `prometheus`
//! package, which `scripts/test` installs): every file of
//! `testdata/rules-corpus/` (real-world rule files from public projects, listed
//! in its SOURCES.tsv, plus the quirk cases of `cases/`) gets the same verdict
//! from `alertbook check`, and where both refuse, alertbook names the line
//! promtool names. `promtool check config` with the file under `rule_files`
//! agrees too.
//!
//! Without promtool the test fails, unless ALERTBOOK_SKIP_PEERS=1 is set.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{alertbook, stderr, stdout, workspace_root};

/// promtool's path, or `None` when peers may be skipped and it is missing.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool").arg("--version").output().is_ok_and(|output| output.status.success());
    if found {
        return Some("promtool");
    }
    if std::env::var("ALERTBOOK_SKIP_PEERS").as_deref() == Ok("1") {
        eprintln!("promtool not found; skipped because ALERTBOOK_SKIP_PEERS=1");
        return None;
    }
    panic!(
        "promtool not found: install the Debian package `prometheus` (scripts/test does) or set ALERTBOOK_SKIP_PEERS=1"
    );
}

fn corpus_files(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(directory).expect("corpus directory").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(corpus_files(&path));
        } else if path.extension().is_some_and(|extension| extension == "yml" || extension == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn corpus() -> PathBuf {
    workspace_root().join("testdata/rules-corpus")
}

/// The (file line, line within the expression) of each located promtool error:
/// `file: 5:11: group "a", rule 1, "X": could not parse expression: 3:1: ...`.
fn promtool_positions(output: &str) -> Vec<(usize, Option<usize>)> {
    let mut positions = Vec::new();
    for line in output.lines() {
        // YAML errors: `file: yaml: line 5: mapping values are not allowed in this context`,
        // `  line 3: field labels not found in type rulefmt.RuleGroup`.
        let yaml_line =
            line.split_once("yaml: line ").map(|(_, rest)| rest).or_else(|| line.trim_start().strip_prefix("line "));
        if let Some(number) =
            yaml_line.and_then(|rest| rest.split_once(':')).and_then(|(number, _)| number.parse().ok())
        {
            positions.push((number, None));
            continue;
        }
        let Some((_, rest)) = line.split_once(": ") else { continue };
        let Some((position, message)) = rest.split_once(": ") else { continue };
        let Some((line_number, _)) = position.split_once(':') else { continue };
        let Ok(line_number) = line_number.parse::<usize>() else { continue };
        if line_number == 0 {
            continue;
        }
        let inner = message
            .split_once("could not parse expression: ")
            .and_then(|(_, rest)| rest.split_once(':'))
            .and_then(|(inner_line, _)| inner_line.parse::<usize>().ok());
        positions.push((line_number, inner));
    }
    positions
}

/// The file lines of alertbook's diagnostics for `file`.
fn alertbook_lines(output: &str, file: &str) -> Vec<usize> {
    output
        .lines()
        .filter_map(|line| line.strip_prefix(file)?.strip_prefix(':')?.split(':').next()?.parse().ok())
        .collect()
}

#[test]
fn alertbook_check_agrees_with_promtool_on_every_corpus_file() {
    let Some(promtool) = promtool() else { return };
    let root = corpus();
    let files: Vec<PathBuf> =
        corpus_files(&root).into_iter().filter(|path| !path.starts_with(root.join("prometheus3"))).collect();
    let real_world = files.iter().filter(|path| !path.starts_with(root.join("cases"))).count();
    assert!(real_world >= 150, "the corpus holds {real_world} real-world files; at least 150 are needed");
    let mut disagreements = Vec::new();
    let mut refused_by_both = 0;
    for path in &files {
        let relative = path.strip_prefix(workspace_root()).unwrap_or(path).to_string_lossy().into_owned();
        let promtool_output =
            Command::new(promtool).args(["check", "rules", &relative]).current_dir(workspace_root()).output();
        let promtool_output = promtool_output.expect("promtool runs");
        let ours = alertbook(&["check", &relative]);
        let promtool_text = format!("{}{}", stdout(&promtool_output), stderr(&promtool_output));
        let our_text = stderr(&ours);
        if promtool_output.status.success() != ours.status.success() {
            disagreements.push(format!(
                "{relative}: promtool {} but alertbook {}\npromtool: {promtool_text}\nalertbook: {our_text}",
                verdict(promtool_output.status.success()),
                verdict(ours.status.success())
            ));
            continue;
        }
        if promtool_output.status.success() {
            continue;
        }
        refused_by_both += 1;
        let text = std::fs::read_to_string(path).expect("corpus file");
        let our_lines = alertbook_lines(&our_text, &relative);
        for (line, inner) in promtool_positions(&promtool_text) {
            // A PromQL error is named at its line in the file: the expression's
            // line plus its line within the expression (a block scalar starts a line later).
            let expected = match inner {
                Some(inner) => {
                    let key_line = text.lines().nth(line - 1).unwrap_or_default().trim_end();
                    let block = key_line.ends_with(['|', '>', '-', '+']);
                    // An error at the end of input past the file's last newline is named on the last line.
                    (line + inner - 1 + usize::from(block)).min(text.lines().count())
                }
                None => line,
            };
            if !our_lines.contains(&expected) {
                disagreements.push(format!(
                    "{relative}: promtool names line {expected}, alertbook names {our_lines:?}\npromtool: {promtool_text}\nalertbook: {our_text}"
                ));
            }
        }
    }
    assert!(refused_by_both >= 10, "only {refused_by_both} files are refused by both: the refusal cases are missing");
    assert!(disagreements.is_empty(), "{} disagreements:\n{}", disagreements.len(), disagreements.join("\n"));
}

fn verdict(accepted: bool) -> &'static str {
    if accepted { "accepts" } else { "refuses" }
}

#[test]
fn promtool_check_config_rule_files_agree_with_alertbook_check() {
    let Some(promtool) = promtool() else { return };
    let root = corpus();
    let directory = tempfile::tempdir().expect("temporary directory");
    // The quirk cases and every tenth real-world file, each as a Prometheus configuration's rule_files.
    let files: Vec<PathBuf> = corpus_files(&root)
        .into_iter()
        .filter(|path| !path.starts_with(root.join("prometheus3")))
        .enumerate()
        .filter(|(index, path)| path.starts_with(root.join("cases")) || index % 10 == 0)
        .map(|(_, path)| path)
        .collect();
    for path in files {
        let configuration = directory.path().join("prometheus.yml");
        std::fs::write(&configuration, format!("rule_files:\n  - {:?}\n", path.display().to_string()))
            .expect("write configuration");
        let config_check =
            Command::new(promtool).args(["check", "config"]).arg(&configuration).output().expect("promtool runs");
        let ours = alertbook(&["check", path.to_str().expect("utf-8 path")]);
        assert_eq!(
            config_check.status.success(),
            ours.status.success(),
            "{}: promtool check config {} its rule file, alertbook check {} it\npromtool: {}{}\nalertbook: {}",
            path.display(),
            verdict(config_check.status.success()),
            verdict(ours.status.success()),
            stdout(&config_check),
            stderr(&config_check),
            stderr(&ours)
        );
    }
}

#[test]
fn alert_names_are_label_values_not_metric_names() {
    let output = alertbook(&["check", "testdata/rules-corpus/cases/issue_alert_names_and_empty_rules.yml"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains(": 3 rules"), "{}", stdout(&output));
    let output = alertbook(&["check", "testdata/rules-corpus/awesome-prometheus-alerts/mysql__mysqld-exporter.yml"]);
    assert!(output.status.success(), "{}", stderr(&output));
    // Recording rule names are still metric names.
    let output = alertbook(&["check", "testdata/rules-corpus/cases/utf8_record.yml"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("utf8_record.yml:4:13: error: group \"a\", rule 1, \"foo-bar\": invalid recording rule name: foo-bar; Prometheus 3 accepts it under the utf8 name validation scheme"), "{}", stderr(&output));
}

#[test]
fn empty_rules_list_is_a_group_of_zero_rules() {
    for file in ["empty_rules.yml", "null_groups.yml", "empty.yml", "null.yml", "obj.yml"] {
        let output = alertbook(&["check", &format!("testdata/rules-corpus/cases/{file}")]);
        assert!(output.status.success(), "{file}: {}", stderr(&output));
        assert!(stdout(&output).ends_with(": 0 rules\n"), "{file}: {}", stdout(&output));
    }
}

#[test]
fn utf8_names_are_accepted_under_the_utf8_scheme() {
    for file in ["utf8_record.yml", "utf8_label.yml"] {
        let path = format!("testdata/rules-corpus/cases/{file}");
        let output = alertbook(&["check", "--name-validation-scheme", "utf8", &path]);
        assert!(output.status.success(), "{file}: {}", stderr(&output));
        assert_eq!(alertbook(&["check", &path]).status.code(), Some(1), "{file} under the legacy scheme");
    }
    // Braces in a recording rule's name are refused under both schemes, as Prometheus 3 does.
    let output =
        alertbook(&["check", "--name-validation-scheme", "utf8", "testdata/rules-corpus/cases/brace_record.yml"]);
    assert!(stderr(&output).contains("braces present in the recording rule name"), "{}", stderr(&output));
}

#[test]
fn fields_newer_than_debian_promtool_are_accepted() {
    // Group `labels` and `query_offset` came with Prometheus 2.53 and 2.52; Debian's promtool 2.42 refuses them.
    let path = "testdata/rules-corpus/prometheus3/group_labels_and_query_offset.yml";
    let output = alertbook(&["check", path]);
    assert!(output.status.success(), "{}", stderr(&output));
    let Some(promtool) = promtool() else { return };
    let old = Command::new(promtool).args(["check", "rules", path]).current_dir(workspace_root()).output();
    let old = old.expect("promtool runs");
    let text = format!("{}{}", stdout(&old), stderr(&old));
    if !old.status.success() {
        assert!(text.contains("field labels not found") && text.contains("field query_offset not found"), "{text}");
    }
}

/// Expressions whose error position differs from Prometheus's, and why.
const KNOWN_POSITION_DIFFERENCES: &[(&str, &str)] = &[
    ("rate(x)", "a type error: Prometheus points at the argument, alertbook at the function name the message quotes"),
    ("avg_over_time(x[5m:1m:1m])", "`5m:1m:1m` reads as one token, as a metric name with colons would"),
    ("x)", "Prometheus's lexer reports a stray `)` one column after it"),
];

/// The `L:C` promtool or alertbook gives inside the expression.
fn expression_position(output: &str) -> Option<String> {
    let (_, rest) = output.split_once("could not parse expression: ")?;
    let mut parts = rest.splitn(3, ':');
    Some(format!("{}:{}", parts.next()?, parts.next()?))
}

#[test]
fn promql_parse_errors_are_at_prometheus_positions() {
    let Some(promtool) = promtool() else { return };
    let expressions = std::fs::read_to_string(workspace_root().join("testdata/promql-parse-errors/expressions.txt"))
        .expect("expressions");
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join("bad.rules.yml");
    let path_text = path.to_str().expect("utf-8 path");
    let mut agreeing = 0;
    let mut differences = Vec::new();
    for expression in expressions.lines().filter(|line| !line.is_empty()) {
        // The file keeps `\n` as written: a double-quoted YAML string reads it as a newline.
        let quoted = expression.replace('"', "\\\"");
        std::fs::write(&path, format!("groups:\n- name: a\n  rules:\n  - alert: X\n    expr: \"{quoted}\"\n"))
            .expect("write rule file");
        let theirs = Command::new(promtool).args(["check", "rules", path_text]).output().expect("promtool runs");
        let ours = alertbook(&["check", path_text]);
        assert!(!theirs.status.success() && !ours.status.success(), "{expression}: both must refuse it");
        let theirs = expression_position(&format!("{}{}", stdout(&theirs), stderr(&theirs)));
        let ours = expression_position(&stderr(&ours));
        assert!(theirs.is_some() && ours.is_some(), "{expression}: promtool {theirs:?}, alertbook {ours:?}");
        if KNOWN_POSITION_DIFFERENCES.iter().any(|(known, _)| *known == expression) {
            continue;
        }
        if theirs == ours {
            agreeing += 1;
        } else {
            differences.push(format!("{expression}: promtool {theirs:?}, alertbook {ours:?}"));
        }
    }
    assert!(differences.is_empty(), "positions differ:\n{}", differences.join("\n"));
    assert!(agreeing >= 20, "only {agreeing} expressions compared");
}

#[test]
fn only_the_first_yaml_document_of_a_rule_file_counts() {
    // The second document does not even parse; Prometheus reads the first only.
    let output = alertbook(&["check", "testdata/rules-corpus/cases/multidoc_bad.yml"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).ends_with(": 1 rules\n"), "{}", stdout(&output));
    assert!(
        stderr(&output).contains("multidoc_bad.yml:6:1: warning: only the first YAML document of a rule file is read"),
        "{}",
        stderr(&output)
    );
    // A leading `---` starts the first document and `...` ends it: no warning.
    let output = alertbook(&["check", "testdata/rules-corpus/cases/leading_document_marker.yml"]);
    assert!(output.status.success() && !stderr(&output).contains("warning"), "{}", stderr(&output));
}
