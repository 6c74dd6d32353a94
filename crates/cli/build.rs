//! Build script of the `alertbook` binary: embeds the default catalog
//! (`catalog/busflow`, every file) and records the git commit for `--version`.
//!
//! The commit comes from `ALERTBOOK_GIT_COMMIT` when set (builds without
//! `.git`, such as a container build from a source archive), else from
//! `git rev-parse HEAD`, else it is `unknown`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_directory = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let catalog = manifest_directory.join("../../catalog/busflow");
    embed_catalog(&catalog);
    record_commit(&manifest_directory);
}

/// Writes `$OUT_DIR/builtin_catalog.rs`: `FILES`, every file of the catalog as
/// `(relative path, include_str!(absolute path))`, sorted by path.
fn embed_catalog(catalog: &Path) {
    // A directory here makes cargo rerun this script when any file under it changes or is added.
    println!("cargo:rerun-if-changed={}", catalog.display());
    let catalog = catalog.canonicalize().expect("catalog/busflow exists next to crates/");
    let mut files = Vec::new();
    collect(&catalog, &catalog, &mut files);
    files.sort();
    let mut code = String::from("pub const FILES: &[(&str, &str)] = &[\n");
    for relative in &files {
        let absolute = catalog.join(relative);
        writeln!(code, "    ({relative:?}, include_str!({:?})),", absolute.display().to_string()).expect("string");
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("builtin_catalog.rs"), code).expect("OUT_DIR is writable");
}

fn collect(root: &Path, directory: &Path, files: &mut Vec<String>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(directory)
        .expect("readable catalog directory")
        .map(|entry| entry.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).expect("under the root");
            let parts: Vec<&str> =
                relative.components().map(|part| part.as_os_str().to_str().expect("UTF-8 path")).collect();
            files.push(parts.join("/"));
        }
    }
}

/// Sets `ALERTBOOK_COMMIT` for `env!`.
fn record_commit(manifest_directory: &Path) {
    println!("cargo:rerun-if-env-changed=ALERTBOOK_GIT_COMMIT");
    let from_environment = std::env::var("ALERTBOOK_GIT_COMMIT").ok().filter(|commit| !commit.trim().is_empty());
    let commit = from_environment.map(|commit| commit.trim().to_owned()).or_else(|| {
        // Rerun when HEAD moves: a commit appends to logs/HEAD, a checkout rewrites HEAD.
        for name in ["HEAD", "logs/HEAD"] {
            if let Some(path) = git(manifest_directory, &["rev-parse", "--git-path", name]) {
                let path = manifest_directory.join(path);
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
        git(manifest_directory, &["rev-parse", "HEAD"])
    });
    println!("cargo:rustc-env=ALERTBOOK_COMMIT={}", commit.unwrap_or_else(|| "unknown".to_owned()));
}

fn git(directory: &Path, arguments: &[&str]) -> Option<String> {
    let output = Command::new("git").args(arguments).current_dir(directory).output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}
