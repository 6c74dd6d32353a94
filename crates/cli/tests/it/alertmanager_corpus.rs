//! The differential tests against `amtool` 0.25 (Debian's
//! `prometheus-alertmanager`, which `scripts/test` installs), over the corpus
//! of `alertmanager.yml` files in `testdata/alertmanager/`:
//!
//! - `good/`: configurations as teams write them; `bad/`: the mistakes
//!   people make (YAML errors, unknown fields, bad matchers and regexes,
//!   undefined receivers and time intervals, missing required settings, bad
//!   durations, duplicate names, a broken template file, ...);
//!   `undeliverable/`: valid for Alertmanager but needing what alertbook does
//!   not deliver to (Opsgenie, Telegram, Discord, Webex, VictorOps, Pushover,
//!   WeChat, SNS, PagerDuty's Events API v1, `http_config.proxy_url`,
//!   `tls_config.server_name`).
//! - `alertbook check --config alertbook.yaml` (naming the file as
//!   `alerting.config_file`) and `alertbook check FILE` give the verdict
//!   `amtool check-config FILE` gives, except on `undeliverable/`, the one
//!   deliberate difference: amtool accepts those and alertbook refuses them
//!   saying what it does not deliver to. A refusal names the file with the
//!   line and column; where amtool names a line (YAML errors), alertbook names
//!   the same line.
//! - `alertbook routes test` answers what `amtool config routes test`
//!   answers for every good configuration and a set of label sets.
//!
//! Without amtool the tests fail, unless ALERTBOOK_SKIP_PEERS=1 is set.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{alertbook, stderr, stdout, workspace_root};

/// amtool's path, or `None` when peers may be skipped and it is missing.
fn amtool() -> Option<&'static str> {
    let found = Command::new("amtool").arg("--version").output().is_ok_and(|output| output.status.success());
    if found {
        return Some("amtool");
    }
    if std::env::var("ALERTBOOK_SKIP_PEERS").as_deref() == Ok("1") {
        eprintln!("amtool not found; skipped because ALERTBOOK_SKIP_PEERS=1");
        return None;
    }
    panic!(
        "amtool not found: install the Debian package `prometheus-alertmanager` (scripts/test does) or set ALERTBOOK_SKIP_PEERS=1"
    );
}

fn corpus() -> PathBuf {
    workspace_root().join("testdata/alertmanager").canonicalize().expect("testdata/alertmanager")
}

fn files(directory: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus().join(directory))
        .expect("corpus directory")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "testdata/alertmanager/{directory} holds too few files: {files:?}");
    files
}

/// `amtool check-config FILE`: accepted, and its output.
fn amtool_check(amtool: &str, file: &Path) -> (bool, String) {
    let output = Command::new(amtool).arg("check-config").arg(file).output().expect("amtool runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The lines amtool names for an error on a key (`  line 4: field group_wiat
/// not found in type config.plain`, `  line 7: cannot unmarshal ...`). Its
/// YAML syntax errors (`yaml: line 4: did not find expected ',' or ']'`) are
/// left out: each parser notices a syntax error where its grammar breaks
/// (go-yaml names line 4 for the unclosed quote alertbook shows on line 5,
/// column 27), so only located keys are compared.
fn amtool_key_lines(output: &str) -> Vec<usize> {
    output
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("line "))
        .filter_map(|rest| rest.split_once(':').and_then(|(number, _)| number.parse().ok()))
        .collect()
}

/// `alertbook check --config` on an alertbook.yaml naming `file` as its
/// `alerting.config_file`: accepted, and its standard error.
fn alertbook_check_config(file: &Path, work: &Path) -> (bool, String) {
    let catalog = workspace_root().join("catalog/busflow").canonicalize().expect("catalog");
    let config = work.join("alertbook.yaml");
    std::fs::write(&config, format!("catalog: {}\nalerting:\n  config_file: {}\n", catalog.display(), file.display()))
        .expect("write alertbook.yaml");
    let output = alertbook(&["check", "--config", config.to_str().expect("utf-8")]);
    (output.status.success(), format!("{}{}", stdout(&output), stderr(&output)))
}

/// The `file:line:col: error:` diagnostics in `output` as (file, line,
/// column): the alertmanager.yml's own, or a template file's it names.
fn located_errors(output: &str) -> Vec<(String, usize, usize)> {
    output
        .lines()
        .filter_map(|line| {
            let (head, _) = line.split_once(": error:")?;
            let mut parts = head.rsplitn(3, ':');
            let column = parts.next()?.parse().ok()?;
            let line = parts.next()?.parse().ok()?;
            Some((parts.next()?.to_owned(), line, column))
        })
        .collect()
}

/// Refusals about what a file lacks, with no line to point at: an empty
/// file, a file without `route`.
const FILE_LEVEL_REFUSALS: &[&str] = &["empty.yml", "no-route.yml"];

#[test]
fn check_gives_amtools_verdict_on_every_configuration_of_the_corpus() {
    let Some(amtool) = amtool() else { return };
    let work = tempfile::tempdir().expect("temporary directory");
    let mut disagreements = Vec::new();
    let mut checked = 0;
    for directory in ["good", "bad", "undeliverable"] {
        for file in files(directory) {
            checked += 1;
            let name = format!("{directory}/{}", file.file_name().expect("name").to_string_lossy());
            let (amtool_accepts, amtool_output) = amtool_check(amtool, &file);
            let (alertbook_accepts, alertbook_output) = alertbook_check_config(&file, work.path());
            // The corpus itself: good and undeliverable files are valid Alertmanager configurations.
            assert_eq!(amtool_accepts, directory != "bad", "{name}: amtool says\n{amtool_output}");
            if directory == "undeliverable" {
                if alertbook_accepts || !alertbook_output.contains("alertbook does not") {
                    disagreements.push(format!(
                        "{name}: alertbook must refuse what it cannot deliver, saying so; it said\n{alertbook_output}"
                    ));
                }
            } else if amtool_accepts != alertbook_accepts {
                disagreements.push(format!(
                    "{name}: amtool {}, alertbook {}\namtool:\n{amtool_output}\nalertbook:\n{alertbook_output}",
                    if amtool_accepts { "accepts" } else { "refuses" },
                    if alertbook_accepts { "accepts" } else { "refuses" },
                ));
            }
            if alertbook_accepts {
                assert!(
                    alertbook_output.contains(&format!("alerting: {}", file.display())),
                    "{name}: the summary names the alertmanager.yml:\n{alertbook_output}"
                );
                continue;
            }
            let located = located_errors(&alertbook_output);
            let file_level = FILE_LEVEL_REFUSALS.iter().any(|listed| name.ends_with(listed));
            if located.is_empty() && !file_level {
                disagreements.push(format!("{name}: no error at file:line:col in\n{alertbook_output}"));
            }
            for line in amtool_key_lines(&amtool_output) {
                let in_file = |(path, located_line, _): &(String, usize, usize)| {
                    Path::new(path) == file.as_path() && *located_line == line
                };
                if !located.iter().any(in_file) {
                    disagreements.push(format!(
                        "{name}: amtool names line {line}, alertbook {located:?}\namtool:\n{amtool_output}\nalertbook:\n{alertbook_output}"
                    ));
                }
            }
        }
    }
    assert!(checked >= 50, "the corpus holds {checked} files");
    assert!(disagreements.is_empty(), "{} disagreements:\n\n{}", disagreements.len(), disagreements.join("\n\n"));
}

#[test]
fn check_of_an_alertmanager_yml_alone_gives_the_same_verdicts() {
    let mut arguments = vec!["check".to_owned()];
    let mut expected = Vec::new();
    for directory in ["good", "bad", "undeliverable"] {
        // An empty file has no key saying it is an alertmanager.yml: `check
        // FILE` reads it as a rule file of 0 groups, as promtool does.
        for file in files(directory).into_iter().filter(|file| !file.ends_with("empty.yml")) {
            arguments.push(file.display().to_string());
            expected.push((file, directory == "good"));
        }
    }
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    let output = alertbook(&arguments);
    assert!(!output.status.success(), "the corpus has bad files");
    let (out, err) = (stdout(&output), stderr(&output));
    for (file, valid) in expected {
        let accepted =
            out.lines().any(|line| line.starts_with(&format!("{}: ", file.display())) && line.contains(" route"));
        let refused = err.lines().any(|line| {
            line.strip_prefix(&format!("{}: ", file.display()))
                .is_some_and(|rest| rest.ends_with(" error") || rest.ends_with(" errors"))
        });
        assert_eq!((accepted, refused), (valid, !valid), "{}:\nstdout:\n{out}\nstderr:\n{err}", file.display());
    }
}

/// Label sets routed through every good configuration: each names labels
/// some configuration of the corpus routes by.
const LABEL_SETS: &[&[&str]] = &[
    &[],
    &["alertname=Watchdog"],
    &["alertname=HighLatency", "team=payments", "severity=critical"],
    &["alertname=HighLatency", "team=payments", "severity=warning"],
    &["alertname=TableBloat", "team=data", "env=prod"],
    &["alertname=TableBloat", "team=data", "env=staging"],
    &["alertname=PodCrashLooping", "namespace=kube-system", "severity=warning"],
    &["alertname=PodCrashLooping", "namespace=monitoring", "severity=info"],
    &["alertname=ErrorBudgetBurn", "service=checkout", "region=eu-west-1"],
    &["alertname=QueueBacklog", "service=foo2", "severity=warning"],
    &["alertname=QueueBacklog", "service=foo1", "severity=critical"],
    &["alertname=DiskFull", "owner=team-y", "env=production"],
    &["alertname=JobFailed", "tier=batch", "severity=critical"],
    &["alertname=Breach", "team=security"],
    &["alertname=CertExpiry", "team=infra", "severity=page"],
    &["alertname=Latency", "service=api", "severity=warning"],
    &["alertname=Anything", "namespace=sandbox"],
];

#[test]
fn routes_test_answers_what_amtool_answers() {
    let Some(amtool) = amtool() else { return };
    let mut disagreements = Vec::new();
    for file in files("good") {
        for labels in LABEL_SETS {
            let amtool_output = Command::new(amtool)
                .args(["config", "routes", "test"])
                .arg(format!("--config.file={}", file.display()))
                .args(labels.iter())
                .output()
                .expect("amtool runs");
            assert!(amtool_output.status.success(), "amtool: {}", String::from_utf8_lossy(&amtool_output.stderr));
            let expected = String::from_utf8_lossy(&amtool_output.stdout).trim().to_owned();
            let mut arguments = vec!["routes", "test", "--config", file.to_str().expect("utf-8")];
            arguments.extend(labels.iter());
            let output = alertbook(&arguments);
            assert!(output.status.success(), "alertbook {arguments:?}: {}", stderr(&output));
            let answer = stdout(&output).trim().to_owned();
            if answer != expected {
                disagreements.push(format!("{} {labels:?}: amtool {expected:?}, alertbook {answer:?}", file.display()));
            }
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[test]
fn routes_test_verifies_receivers_and_refuses_a_bad_configuration() {
    let file = corpus().join("good/team-tree.yml");
    let file = file.to_str().expect("utf-8");
    let labels = ["team=payments", "severity=critical"];
    let mut arguments = vec!["routes", "test", "--config", file, "--verify.receivers", "payments-pager,payments-slack"];
    arguments.extend(labels);
    let output = alertbook(&arguments);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "payments-pager,payments-slack");

    let mut arguments = vec!["routes", "test", "--config", file, "--verify.receivers", "payments-slack"];
    arguments.extend(labels);
    let output = alertbook(&arguments);
    assert!(!output.status.success(), "a wrong expectation fails");
    assert!(stderr(&output).contains("did not match"), "{}", stderr(&output));

    let bad = corpus().join("bad/undefined-receiver.yml");
    let output = alertbook(&["routes", "test", "--config", bad.to_str().expect("utf-8"), "team=db"]);
    assert!(!output.status.success());
    assert!(
        stderr(&output)
            .contains(&format!("{}:5:17: error: undefined receiver \"dba-pager\" used in route", bad.display())),
        "{}",
        stderr(&output)
    );
}
