//! What the binary carries so that it runs from any directory: the default
//! catalog (every file of `catalog/busflow`, embedded by `build.rs` and
//! rebuilt when one changes), and `alertbook catalog export`, which writes
//! it out for editing.
//!
//! The other files alertbook needs at run time are compiled in by their own
//! crates (notification templates in `notify`, the web UI's stylesheet and
//! script in `web`, the journal's migrations in `state`); the catalog's PII
//! rules and contacts are catalog files and come with it.

use std::path::{Path, PathBuf};

use anyhow::Context;

mod generated {
    include!(concat!(env!("OUT_DIR"), "/builtin_catalog.rs"));
}

/// How the built-in catalog's files are named in messages.
pub const ROOT: &str = "<built-in>/catalog/busflow";

/// The Busflow catalog, built in.
pub const CATALOG: catalog::BuiltIn = catalog::BuiltIn { root: ROOT, files: generated::FILES };

/// `alertbook --version`: the package version and the git commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("ALERTBOOK_COMMIT"), ")");

/// The files of the catalog in `directory`, or of the built-in one.
pub fn catalog_files(directory: Option<&Path>) -> catalog::CatalogFiles {
    match directory {
        Some(directory) => catalog::CatalogFiles::Directory(directory.to_owned()),
        None => catalog::CatalogFiles::BuiltIn(CATALOG),
    }
}

/// How a catalog location is shown: its directory, or [`ROOT`].
pub fn describe(directory: Option<&Path>) -> String {
    directory.map_or_else(|| ROOT.to_owned(), |directory| directory.display().to_string())
}

/// Loads and validates the catalog in `directory`, or the built-in one.
pub fn load_catalog(directory: Option<&Path>) -> Result<catalog::Catalog, catalog::Diagnostics> {
    load_catalog_with(directory, catalog::LoadOptions::default())
}

/// [`load_catalog`] with `options`.
pub fn load_catalog_with(
    directory: Option<&Path>,
    options: catalog::LoadOptions,
) -> Result<catalog::Catalog, catalog::Diagnostics> {
    catalog::load_files(&catalog_files(directory), options)
}

/// `alertbook catalog export DIR [--force]`: writes the built-in catalog into
/// `directory`. A directory that exists and is not empty is refused unless
/// `force`, and then only the built-in catalog's files are overwritten.
pub fn export(directory: &Path, force: bool) -> anyhow::Result<usize> {
    if !force && is_non_empty_directory(directory)? {
        anyhow::bail!(
            "{} is not empty: export into a new or empty directory, or pass --force to overwrite the catalog's files in it",
            directory.display()
        );
    }
    if directory.exists() && !directory.is_dir() {
        anyhow::bail!("{} exists and is not a directory", directory.display());
    }
    for (relative, text) in CATALOG.files {
        let path = directory.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(CATALOG.files.len())
}

/// Whether `directory` exists and holds anything (an error when it is a file or unreadable).
pub(crate) fn is_non_empty_directory(directory: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(directory) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => {
            anyhow::bail!("{} exists and is not a directory", directory.display())
        }
        Err(error) => Err(error).with_context(|| format!("cannot read {}", directory.display())),
    }
}

/// The subcommands of `alertbook catalog`.
#[derive(Debug, clap::Subcommand)]
pub enum CatalogCommand {
    /// Write the built-in catalog (catalog/busflow) into DIR for editing.
    ///
    /// The exported directory passes `alertbook check DIR` and runs with `alertbook run
    /// --catalog DIR` (or `catalog: DIR` in alertbook.yaml). A DIR that exists and is not
    /// empty is refused unless --force.
    Export {
        /// The directory to write (created if missing).
        #[arg(value_name = "DIR")]
        directory: PathBuf,
        /// Write into a non-empty directory, overwriting the catalog's files there.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `alertbook catalog ...`.
pub fn catalog_command(command: &CatalogCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        CatalogCommand::Export { directory, force } => {
            let written = export(directory, *force)?;
            println!("wrote the built-in catalog ({written} files) to {}", directory.display());
            println!(
                "check it with `alertbook check {0}`; run it with `alertbook run --catalog {0}`",
                directory.display()
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

/// Which shells `alertbook completions` writes for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `alertbook completions SHELL`: the completion script of `command` on standard output.
pub fn completions(shell: Shell, command: &mut clap::Command) -> std::process::ExitCode {
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(generator, command, "alertbook", &mut std::io::stdout());
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_catalog_is_every_file_of_catalog_busflow() {
        let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow");
        for (relative, text) in CATALOG.files {
            let on_disk = std::fs::read_to_string(directory.join(relative)).expect("the file exists on disk");
            assert_eq!(&on_disk, text, "{relative} differs from the built-in copy");
        }
        // And no file of the directory is missing from it.
        fn count(directory: &Path) -> usize {
            std::fs::read_dir(directory)
                .expect("readable")
                .map(|entry| entry.expect("entry").path())
                .map(|path| if path.is_dir() { count(&path) } else { 1 })
                .sum()
        }
        assert_eq!(CATALOG.files.len(), count(&directory), "a file of catalog/busflow is not built in");
        assert!(CATALOG.file("catalog.yaml").is_some());
        assert!(CATALOG.file("pii-rules.yaml").is_some());
        assert!(CATALOG.files.iter().any(|(path, _)| path.starts_with("runbook/")));
    }

    #[test]
    fn the_built_in_catalog_loads_with_built_in_paths() {
        let catalog = load_catalog(None).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        assert_eq!(catalog.root, Path::new(ROOT));
        assert_eq!(catalog.entries.len(), 13);
        assert!(catalog.entries.iter().all(|entry| entry.path.starts_with(ROOT)));
        assert!(catalog.pii_rules.is_some() && catalog.contacts.is_some());
    }

    #[test]
    fn export_refuses_a_non_empty_directory_without_force() {
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::write(directory.path().join("notes.txt"), "mine").expect("written");
        let error = export(directory.path(), false).unwrap_err().to_string();
        assert!(error.contains("is not empty") && error.contains("--force"), "{error}");
        assert!(!directory.path().join("catalog.yaml").exists(), "nothing is written when refused");
        export(directory.path(), true).expect("forced");
        assert_eq!(std::fs::read_to_string(directory.path().join("notes.txt")).expect("kept"), "mine");
        catalog::load(directory.path()).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    }
}
