//! Located errors: `file:line:col: message` followed by the offending source line
//! and a caret, compiler style, so that every error can be grepped and jumped to.
//!
//! Loading never stops at the first problem: callers collect [`Diagnostic`]s into
//! a [`Diagnostics`] list and report all of them at once.

use std::fmt;
use std::path::{Path, PathBuf};

/// One error at a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based line; 0 when the error concerns the whole file.
    pub line: usize,
    /// 1-based column (in characters); 0 when unknown.
    pub column: usize,
    pub message: String,
    /// The source line the error points at, when known.
    pub snippet: Option<String>,
}

impl Diagnostic {
    /// An error about a whole file (missing, unreadable).
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        Self { path: path.to_owned(), line: 0, column: 0, message: message.into(), snippet: None }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: error: {}", self.path.display(), self.message);
        }
        writeln!(f, "{}:{}:{}: error: {}", self.path.display(), self.line, self.column, self.message)?;
        if let Some(snippet) = &self.snippet {
            let gutter = self.line.to_string().len();
            writeln!(f, "{:gutter$} |", "")?;
            writeln!(f, "{} | {}", self.line, snippet)?;
            let caret_indent: String = snippet
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|character| if character == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "{:gutter$} | {caret_indent}^", "")?;
        }
        Ok(())
    }
}

/// A collection of diagnostics, in the order they were found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.0.push(diagnostic);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            writeln!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}
