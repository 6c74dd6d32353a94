//! The installed binary: `--version` with the commit, shell completions, the
//! built-in catalog (checked and run from a directory without a catalog,
//! exported for editing, run from the export), as `cargo install --path
//! crates/cli` leaves it.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use super::durability::{free_port, start_in};
use super::{stderr, stdout};

/// Runs `alertbook` from `directory`.
fn alertbook_in(directory: &Path, arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alertbook"))
        .args(arguments)
        .current_dir(directory)
        .output()
        .expect("alertbook runs")
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let output = alertbook_in(directory.path(), &["--version"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let commit = text
        .trim()
        .strip_prefix(&format!("alertbook {} (commit ", env!("CARGO_PKG_VERSION")))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("not `alertbook VERSION (commit COMMIT)`: {text}"));
    // The build took it from ALERTBOOK_GIT_COMMIT, else from git, else it says so.
    let expected = match std::env::var("ALERTBOOK_GIT_COMMIT") {
        Ok(commit) if !commit.trim().is_empty() => commit.trim().to_owned(),
        _ => Command::new("git")
            .args(["rev-parse", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map_or_else(|| "unknown".to_owned(), |output| stdout(&output).trim().to_owned()),
    };
    assert_eq!(commit, expected, "{text}");
}

#[test]
fn completions_for_bash_zsh_and_fish_parse_and_name_the_subcommands() {
    let directory = tempfile::tempdir().expect("temporary directory");
    for (shell, marker) in
        [("bash", "complete -F _alertbook"), ("zsh", "#compdef alertbook"), ("fish", "complete -c alertbook")]
    {
        let output = alertbook_in(directory.path(), &["completions", shell]);
        assert!(output.status.success(), "{shell}: {}", stderr(&output));
        let script = stdout(&output);
        assert!(script.contains(marker), "{shell} script lacks {marker:?}");
        for subcommand in ["run", "check", "runbook", "replay", "triage", "catalog", "export", "completions"] {
            assert!(script.contains(subcommand), "the {shell} script does not complete {subcommand}");
        }
        assert!(script.contains("web.external-url"), "the {shell} script does not complete run's flags");
        // Each shell parses its script without running it (scripts/test installs zsh and fish).
        let path = directory.path().join(format!("alertbook.{shell}"));
        std::fs::write(&path, &script).expect("write the script");
        let check = if shell == "fish" { "--no-execute" } else { "-n" };
        let parsed = Command::new(shell)
            .arg(check)
            .arg(&path)
            .output()
            .unwrap_or_else(|error| panic!("{shell} is installed (scripts/test installs it): {error}"));
        assert!(parsed.status.success(), "{shell} {check} refuses the script: {}", stderr(&parsed));
    }
    let output = alertbook_in(directory.path(), &["completions", "powershell"]);
    assert_eq!(output.status.code(), Some(2), "an unknown shell is a usage error");
}

#[test]
fn the_built_in_catalog_checks_exports_and_runs_from_a_directory_without_one() {
    let work = tempfile::tempdir().expect("temporary directory");
    assert!(!work.path().join("catalog").exists());

    // `check` without a path checks the built-in catalog, named as such.
    let output = alertbook_in(work.path(), &["check"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("<built-in>/catalog/busflow: 13 alerts, "), "{}", stdout(&output));
    let listed = stdout(&alertbook_in(work.path(), &["runbook"]));
    assert_eq!(listed.lines().count(), 14, "{listed}");

    // Exported, it is a catalog directory like any other.
    let exported = work.path().join("my-catalog");
    let output = alertbook_in(work.path(), &["catalog", "export", "my-catalog"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("wrote the built-in catalog"), "{}", stdout(&output));
    let output = alertbook_in(work.path(), &["check", "my-catalog"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).starts_with("my-catalog: 13 alerts, "), "{}", stdout(&output));
    let shipped = std::fs::read_to_string(super::workspace_root().join("catalog/busflow/rules/metrics.rules.yaml"))
        .expect("the shipped rules");
    assert_eq!(std::fs::read_to_string(exported.join("rules/metrics.rules.yaml")).expect("exported"), shipped);

    // An edit to the export is what `check` then reads, located in the export.
    let rules = exported.join("rules/metrics.rules.yaml");
    std::fs::write(&rules, shipped.replacen("runbook_id: A1", "runbook_id: A2", 1)).expect("edit");
    let output = alertbook_in(work.path(), &["check", "my-catalog"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("my-catalog/rules/metrics.rules.yaml:"), "{}", stderr(&output));
    assert!(stderr(&output).contains("runbook_id \"A2\" does not match"), "{}", stderr(&output));
    std::fs::write(&rules, &shipped).expect("restore");

    // `alertbook run` from here: the built-in catalog, served.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let server = start_in(work.path(), &work.path().join("data"), free_port(), &[]);
    let runbook = client.get(format!("{}/runbook", server.url)).send().expect("runbook").text().expect("text");
    for id in 1..=12 {
        assert!(runbook.contains(&format!("A{id}")), "/runbook lacks A{id}");
    }
    let entry = client.get(format!("{}/runbook/A3.md", server.url)).send().expect("entry");
    assert!(entry.status().is_success());
    assert!(entry.text().expect("text").starts_with("## A3 — PiiLeakDetected"));
    drop(server);

    // And from the export, named with --catalog.
    let server = start_in(work.path(), &work.path().join("data2"), free_port(), &["--catalog", "my-catalog"]);
    let ready = client.get(format!("{}/-/ready", server.url)).send().expect("ready");
    assert!(ready.status().is_success());
}

#[test]
fn export_refuses_a_non_empty_directory_unless_forced() {
    let work = tempfile::tempdir().expect("temporary directory");
    let target = work.path().join("catalog");
    std::fs::create_dir_all(&target).expect("mkdir");
    std::fs::write(target.join("notes.txt"), "my notes").expect("write");
    let output = alertbook_in(work.path(), &["catalog", "export", "catalog"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("error: catalog is not empty: export into a new or empty directory, or pass --force"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read_dir(&target).expect("read").count(), 1, "a refused export writes nothing");

    let output = alertbook_in(work.path(), &["catalog", "export", "catalog", "--force"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(target.join("notes.txt")).expect("kept"), "my notes");
    assert!(alertbook_in(work.path(), &["check", "catalog"]).status.success());

    // A file in the way is refused too.
    std::fs::write(work.path().join("file"), "x").expect("write");
    let output = alertbook_in(work.path(), &["catalog", "export", "file"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("not a directory") || stderr(&output).contains("is not empty"),
        "{}",
        stderr(&output)
    );
}
