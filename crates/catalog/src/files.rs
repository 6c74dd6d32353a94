//! Where a catalog's files come from: a directory on disk, or files built into
//! the binary ([`BuiltIn`]). The loader reads, lists and globs through
//! [`CatalogFiles`] only, so both load the same way and report errors the
//! same way: a built-in file is named by its place under a root such as
//! `<built-in>/catalog/busflow`, e.g. `<built-in>/catalog/busflow/rules/metrics.rules.yaml:12:9`.
//!
//! This module only reads: it does not decide which catalog is the default,
//! nor write a built-in catalog out; the binary does both.

use std::path::{Path, PathBuf};

use crate::diagnostic::Diagnostic;
use crate::source::SourceFile;

/// A catalog compiled into the binary: its display root and every file, as
/// `(path relative to the root with '/' separators, content)`, sorted by path.
#[derive(Debug, Clone, Copy)]
pub struct BuiltIn {
    /// How paths of this catalog are shown, such as `<built-in>/catalog/busflow`.
    pub root: &'static str,
    pub files: &'static [(&'static str, &'static str)],
}

impl BuiltIn {
    /// The content of the file at `relative` (`rules/metrics.rules.yaml`).
    pub fn file(&self, relative: &str) -> Option<&'static str> {
        self.files.iter().find(|(path, _)| *path == relative).map(|(_, text)| *text)
    }

    /// The path of a full (displayed) path relative to the root, with '/' separators.
    fn relative(&self, path: &Path) -> Option<String> {
        let relative = path.strip_prefix(self.root).ok()?;
        let parts: Vec<&str> = relative.components().map(|part| part.as_os_str().to_str()).collect::<Option<_>>()?;
        Some(parts.join("/"))
    }
}

/// The files a catalog is loaded from.
#[derive(Debug, Clone)]
pub enum CatalogFiles {
    /// A catalog directory.
    Directory(PathBuf),
    /// A catalog built into the binary.
    BuiltIn(BuiltIn),
}

impl CatalogFiles {
    /// The catalog's root: the directory, or the built-in catalog's display root.
    pub fn root(&self) -> PathBuf {
        match self {
            Self::Directory(root) => root.clone(),
            Self::BuiltIn(built_in) => PathBuf::from(built_in.root),
        }
    }

    /// Whether this is a built-in catalog.
    pub fn is_built_in(&self) -> bool {
        matches!(self, Self::BuiltIn(_))
    }

    /// Reads the file at `path` (a path under [`Self::root`]).
    pub fn read(&self, path: &Path) -> Result<SourceFile, Diagnostic> {
        match self {
            Self::Directory(_) => SourceFile::read(path),
            Self::BuiltIn(built_in) => built_in
                .relative(path)
                .and_then(|relative| built_in.file(&relative))
                .map(|text| SourceFile { path: path.to_owned(), text: text.to_owned() })
                .ok_or_else(|| Diagnostic::file(path, "cannot read file: not in the built-in catalog")),
        }
    }

    /// Whether `path` names a file.
    pub fn is_file(&self, path: &Path) -> bool {
        match self {
            Self::Directory(_) => path.is_file(),
            Self::BuiltIn(built_in) => {
                built_in.relative(path).is_some_and(|relative| built_in.file(&relative).is_some())
            }
        }
    }

    /// The YAML files directly in `directory`, sorted by name.
    pub fn yaml_files(&self, directory: &Path) -> Vec<PathBuf> {
        let is_yaml = |path: &Path| path.extension().is_some_and(|extension| extension == "yaml" || extension == "yml");
        let mut files: Vec<PathBuf> = match self {
            Self::Directory(_) => std::fs::read_dir(directory)
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .map(|entry| entry.path())
                .filter(|path| is_yaml(path))
                .collect(),
            Self::BuiltIn(built_in) => {
                let Some(prefix) = built_in.relative(directory) else { return Vec::new() };
                built_in
                    .files
                    .iter()
                    .filter_map(|(relative, _)| {
                        let name = if prefix.is_empty() {
                            *relative
                        } else {
                            relative.strip_prefix(&prefix)?.strip_prefix('/')?
                        };
                        (!name.contains('/')).then(|| directory.join(name))
                    })
                    .filter(|path| is_yaml(path))
                    .collect()
            }
        };
        files.sort();
        files
    }

    /// The files matching a glob pattern of full paths, sorted; as `glob::glob`
    /// on disk, `*` does not cross a `/`.
    pub fn glob(&self, pattern: &Path) -> Result<Vec<PathBuf>, glob::PatternError> {
        match self {
            Self::Directory(_) => Ok(glob::glob(&pattern.to_string_lossy())?.filter_map(Result::ok).collect()),
            Self::BuiltIn(built_in) => {
                let Some(relative) = built_in.relative(pattern) else { return Ok(Vec::new()) };
                let matcher = glob::Pattern::new(&relative)?;
                let options = glob::MatchOptions { require_literal_separator: true, ..glob::MatchOptions::new() };
                Ok(built_in
                    .files
                    .iter()
                    .filter(|(path, _)| matcher.matches_with(path, options))
                    .map(|(path, _)| Path::new(built_in.root).join(path))
                    .collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILES: &[(&str, &str)] = &[
        ("catalog.yaml", "name: x\n"),
        ("contracts/a.yaml", "kind: a\n"),
        ("contracts/b.yml", "kind: b\n"),
        ("contracts/notes.txt", "not yaml\n"),
        ("rules/deep/c.rules.yaml", "groups: []\n"),
        ("rules/m.rules.yaml", "groups: []\n"),
    ];
    const BUILT_IN: CatalogFiles = CatalogFiles::BuiltIn(BuiltIn { root: "<built-in>/catalog/x", files: FILES });

    #[test]
    fn built_in_files_read_under_the_display_root() {
        let source = BUILT_IN.read(Path::new("<built-in>/catalog/x/contracts/a.yaml")).expect("present");
        assert_eq!(source.text, "kind: a\n");
        assert_eq!(source.path, Path::new("<built-in>/catalog/x/contracts/a.yaml"));
        let missing = BUILT_IN.read(Path::new("<built-in>/catalog/x/nope.yaml")).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "<built-in>/catalog/x/nope.yaml: error: cannot read file: not in the built-in catalog"
        );
        assert!(BUILT_IN.is_file(Path::new("<built-in>/catalog/x/catalog.yaml")));
        assert!(!BUILT_IN.is_file(Path::new("<built-in>/catalog/x/contracts")));
    }

    #[test]
    fn built_in_listing_and_glob_match_the_disk_semantics() {
        let listed = BUILT_IN.yaml_files(Path::new("<built-in>/catalog/x/contracts"));
        assert_eq!(
            listed,
            vec![
                PathBuf::from("<built-in>/catalog/x/contracts/a.yaml"),
                PathBuf::from("<built-in>/catalog/x/contracts/b.yml")
            ]
        );
        let globbed = BUILT_IN.glob(Path::new("<built-in>/catalog/x/rules/*.rules.yaml")).expect("valid");
        assert_eq!(globbed, vec![PathBuf::from("<built-in>/catalog/x/rules/m.rules.yaml")]);
    }

    #[test]
    fn a_directory_of_the_same_files_lists_and_globs_the_same() {
        let directory = tempfile::tempdir().expect("temporary directory");
        for (relative, text) in FILES {
            let path = directory.path().join(relative);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        let on_disk = CatalogFiles::Directory(directory.path().to_owned());
        let listed = on_disk.yaml_files(&directory.path().join("contracts"));
        assert_eq!(listed.len(), 2);
        let globbed = on_disk.glob(&directory.path().join("rules/*.rules.yaml")).expect("valid");
        assert_eq!(globbed, vec![directory.path().join("rules/m.rules.yaml")]);
    }
}
