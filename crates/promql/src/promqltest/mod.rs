//! A runner for Prometheus's promqltest scripts (`*.test`).
//!
//! [`run_script`] parses a script and runs each `eval` against a fresh
//! [`tsdb::MemStore`] per `load`/`clear` block, returning a [`FileReport`]:
//! passed count, failures (line, query, expected, got) and skipped cases with
//! their reason (unsupported features). [`run_file`] and
//! [`run_files`] wrap it for paths; [`Summary`] aggregates many files.
//!
//! Values are compared with Prometheus's `almost.Equal` (epsilon 1e-6).
//! The step-invariance re-run Prometheus performs (appending `@` to each
//! selector) is not repeated here. This module does no printing.

mod runner;
mod script;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::EngineOptions;

pub use runner::run_script_with_options;

/// One failing case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseFailure {
    pub file: String,
    /// 1-based line of the `eval` command (or of the invalid line).
    pub line: usize,
    pub query: String,
    pub expected: String,
    pub got: String,
}

impl fmt::Display for CaseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}\n  expected: {}\n  got:      {}",
            self.file, self.line, self.query, self.expected, self.got
        )
    }
}

/// One skipped case and why.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseSkip {
    pub file: String,
    pub line: usize,
    pub query: String,
    pub reason: String,
}

impl fmt::Display for CaseSkip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {} (skipped: {})", self.file, self.line, self.query, self.reason)
    }
}

/// The outcome of one script.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileReport {
    pub file: String,
    pub passed: usize,
    pub failures: Vec<CaseFailure>,
    pub skips: Vec<CaseSkip>,
}

impl FileReport {
    pub fn failed(&self) -> usize {
        self.failures.len()
    }

    pub fn skipped(&self) -> usize {
        self.skips.len()
    }
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} passed, {} failed, {} skipped", self.file, self.passed, self.failed(), self.skipped())
    }
}

/// The outcome of many scripts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub files: Vec<FileReport>,
}

impl Summary {
    pub fn passed(&self) -> usize {
        self.files.iter().map(|file| file.passed).sum()
    }

    pub fn failed(&self) -> usize {
        self.files.iter().map(FileReport::failed).sum()
    }

    pub fn skipped(&self) -> usize {
        self.files.iter().map(FileReport::skipped).sum()
    }

    pub fn failures(&self) -> impl Iterator<Item = &CaseFailure> {
        self.files.iter().flat_map(|file| file.failures.iter())
    }

    pub fn skips(&self) -> impl Iterator<Item = &CaseSkip> {
        self.files.iter().flat_map(|file| file.skips.iter())
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for file in &self.files {
            writeln!(f, "{file}")?;
        }
        write!(f, "total: {} passed, {} failed, {} skipped", self.passed(), self.failed(), self.skipped())
    }
}

/// Errors of the runner itself (not of the cases).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs one script given as text; `name` labels the report.
pub fn run_script(name: &str, text: &str) -> FileReport {
    run_script_with_options(name, text, &EngineOptions::default())
}

/// Reads and runs one script file.
pub fn run_file(path: &Path) -> Result<FileReport, RunError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunError::Read { path: path.to_owned(), source })?;
    let name = path.file_name().map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned());
    Ok(run_script(&name, &text))
}

/// Runs many script files, in the order given.
pub fn run_files(paths: &[PathBuf]) -> Result<Summary, RunError> {
    let mut summary = Summary::default();
    for path in paths {
        summary.files.push(run_file(path)?);
    }
    Ok(summary)
}

/// The `*.test` files of a directory, sorted by name.
pub fn test_files(directory: &Path) -> Result<Vec<PathBuf>, RunError> {
    let entries =
        std::fs::read_dir(directory).map_err(|source| RunError::Read { path: directory.to_owned(), source })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "test"))
        .collect();
    paths.sort();
    Ok(paths)
}
