//! The Docker datasource: over recorded answers and over the real daemon.

mod engine;
mod live;
mod recorded;

use std::path::{Path, PathBuf};

use sources::docker::Snapshot;

/// The directory of the recorded Engine API answers.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docker")
}

/// The catalog's directory.
pub fn catalog_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow")
}

fn read<T: serde::de::DeserializeOwned>(directory: &Path, name: &str) -> T {
    let path = directory.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// A snapshot built from one recorded set of list answers.
pub fn recorded_snapshot(set: &str) -> Snapshot {
    let directory = fixtures().join(set);
    Snapshot::from_engine(
        read(&directory, "services.json"),
        read(&directory, "tasks.json"),
        read(&directory, "secrets.json"),
        read(&directory, "networks.json"),
        read(&directory, "nodes.json"),
    )
}

/// The A8 rule's condition, as the catalog writes it.
pub fn a8_condition() -> String {
    let files = catalog::load_rules(&[catalog_root().join("rules/docker.rules.yaml")])
        .unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    files[0].groups[0]
        .rules
        .iter()
        .find(|rule| matches!(&rule.kind, catalog::RuleKind::Alert(name) if name == "PostgresExporterDsnGateOpen"))
        .expect("A8 rule")
        .expr
        .clone()
}
