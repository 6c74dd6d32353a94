//! A loaded source file and the bridge from YAML locations to [`Diagnostic`]s.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::{Location, Spanned};

use crate::diagnostic::Diagnostic;

/// A file read into memory, kept for snippets.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn read(path: &Path) -> Result<Self, Diagnostic> {
        std::fs::read_to_string(path)
            .map(|text| Self { path: path.to_owned(), text })
            .map_err(|error| Diagnostic::file(path, format!("cannot read file: {error}")))
    }

    /// The text of 1-based line `line`, without its newline.
    pub fn line_text(&self, line: usize) -> Option<String> {
        line.checked_sub(1).and_then(|index| self.text.lines().nth(index)).map(str::to_owned)
    }

    /// A diagnostic at a 1-based line and column.
    pub fn error_at(&self, line: usize, column: usize, message: impl Into<String>) -> Diagnostic {
        Diagnostic { path: self.path.clone(), line, column, message: message.into(), snippet: self.line_text(line) }
    }

    /// A diagnostic at a YAML location.
    pub fn error_at_location(&self, location: &Location, message: impl Into<String>) -> Diagnostic {
        if *location == Location::UNKNOWN {
            return Diagnostic::file(&self.path, message);
        }
        self.error_at(location.line() as usize, location.column() as usize, message)
    }

    /// A diagnostic at the place a spanned value was written.
    pub fn error_at_value<T>(&self, spanned: &Spanned<T>, message: impl Into<String>) -> Diagnostic {
        self.error_at_location(&spanned.referenced, message)
    }

    /// A diagnostic inside a spanned string value, `offset` bytes into it.
    ///
    /// Plain and quoted scalars on one line map the offset to a column; for block
    /// scalars the offset's line within the value is added to the value's line.
    pub fn error_in_value(&self, spanned: &Spanned<String>, offset: usize, message: impl Into<String>) -> Diagnostic {
        let location = &spanned.referenced;
        if *location == Location::UNKNOWN {
            return Diagnostic::file(&self.path, message);
        }
        let line = location.line() as usize;
        let column = location.column() as usize;
        let before = &spanned.value[..offset.min(spanned.value.len())];
        let newlines = before.matches('\n').count();
        let source_line = self.line_text(line).unwrap_or_default();
        let block_scalar = source_line.trim_end().ends_with(['|', '>']) || source_line.trim_end().ends_with("|-");
        if block_scalar || newlines > 0 {
            // Block scalar: the value starts on the next line, indented.
            let first_line = if block_scalar { line + 1 } else { line };
            let target = first_line + newlines;
            // A block scalar's lines keep what they are indented beyond its first line.
            // (The value's location is its `key: |` line or its first content line.)
            let after_indicator = line
                .checked_sub(1)
                .and_then(|previous| self.line_text(previous))
                .is_some_and(|previous| previous.trim_end().ends_with(['|', '>', '-', '+']));
            let indent_line = if block_scalar || after_indicator { first_line } else { target };
            let text = self.line_text(indent_line).unwrap_or_default();
            let indent = text.len() - text.trim_start().len();
            let within = before.rsplit('\n').next().unwrap_or("").chars().count();
            return self.error_at(target, indent + within + 1, message);
        }
        let quoted = source_line.chars().nth(column.saturating_sub(1)).is_some_and(|c| c == '"' || c == '\'');
        let shift = usize::from(quoted);
        self.error_at(line, column + shift + before.chars().count(), message)
    }

    /// Parses the file as YAML into `T`, mapping parse errors to a located diagnostic.
    pub fn parse_yaml<T: DeserializeOwned>(&self) -> Result<T, Diagnostic> {
        serde_saphyr::from_str(&self.text).map_err(|error| {
            let message = yaml_error_message(&error);
            match error.location() {
                Some(location) if location != Location::UNKNOWN => self.error_at_location(&location, message),
                _ => Diagnostic::file(&self.path, message),
            }
        })
    }
}

/// The message of a YAML error without the location and snippet the library adds.
fn yaml_error_message(error: &serde_saphyr::Error) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    let mut without_prefix = first.strip_prefix("error: ").unwrap_or(first);
    // Drop a leading "line X column Y: ": the diagnostic already says where.
    if let Some(rest) = without_prefix.strip_prefix("line ")
        && let Some((position, message)) = rest.split_once(": ")
        && position.split(" column ").all(|number| number.bytes().all(|byte| byte.is_ascii_digit()))
    {
        without_prefix = message;
    }
    // The library appends " at line X, column Y"; the diagnostic already says where.
    match without_prefix.find(" at line ") {
        Some(index) => without_prefix[..index].to_owned(),
        None => without_prefix.to_owned(),
    }
}
