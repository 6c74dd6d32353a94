//! The persisted state of every rule's alerts, so that a restart loses no
//! alert state: pending alerts keep their start, firing alerts stay firing and
//! are not sent again as new, `keep_firing_for` keeps its deadline.
//!
//! A [`Snapshot`] is plain data (JSON on disk). It is written atomically
//! (temporary file, fsync, rename, fsync of the directory) by
//! [`Snapshot::write_atomically`]; these two functions are the crate's only file I/O.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, AlertState};

/// Errors reading or writing a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("cannot write the rule state {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot read the rule state {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the rule state {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The active alerts of every alerting rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub groups: Vec<GroupSnapshot>,
}

/// The alerts of one group's rules, by rule position and name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    pub file: String,
    pub name: String,
    pub rules: Vec<RuleSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSnapshot {
    pub index: usize,
    pub name: String,
    pub alerts: Vec<AlertSnapshot>,
}

/// One alert as persisted; times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSnapshot {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    /// The last value, as text so that NaN and infinities survive JSON.
    pub value: String,
    pub active_at_ms: i64,
    pub fired_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub last_sent_at_ms: Option<i64>,
    pub valid_until_ms: Option<i64>,
    pub keep_firing_since_ms: Option<i64>,
    /// When `keep_firing_for` stops keeping the alert firing (informational).
    pub keep_firing_until_ms: Option<i64>,
}

impl AlertSnapshot {
    pub fn from_alert(alert: &Alert, keep_firing_for_ms: i64) -> Self {
        Self {
            labels: alert.labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect(),
            annotations: alert.annotations.clone(),
            state: alert.state,
            value: alert.value.to_string(),
            active_at_ms: alert.active_at_ms,
            fired_at_ms: alert.fired_at_ms,
            resolved_at_ms: alert.resolved_at_ms,
            last_sent_at_ms: alert.last_sent_at_ms,
            valid_until_ms: alert.valid_until_ms,
            keep_firing_since_ms: alert.keep_firing_since_ms,
            keep_firing_until_ms: alert.keep_firing_since_ms.map(|since| since + keep_firing_for_ms),
        }
    }

    pub fn to_alert(&self) -> Alert {
        Alert {
            labels: tsdb::Labels::from_pairs(self.labels.iter().map(|(name, value)| (name.as_str(), value.as_str()))),
            annotations: self.annotations.clone(),
            state: self.state,
            value: parse_value(&self.value),
            active_at_ms: self.active_at_ms,
            fired_at_ms: self.fired_at_ms,
            resolved_at_ms: self.resolved_at_ms,
            last_sent_at_ms: self.last_sent_at_ms,
            valid_until_ms: self.valid_until_ms,
            keep_firing_since_ms: self.keep_firing_since_ms,
        }
    }
}

fn parse_value(text: &str) -> f64 {
    match text {
        "inf" | "+Inf" => f64::INFINITY,
        "-inf" | "-Inf" => f64::NEG_INFINITY,
        other => other.parse().unwrap_or(f64::NAN),
    }
}

impl Snapshot {
    pub const VERSION: u32 = 1;

    /// Writes the snapshot to `path` atomically: temporary file, fsync, rename, directory fsync.
    pub fn write_atomically(&self, path: &Path) -> Result<(), SnapshotError> {
        let error = |source| SnapshotError::Write { path: path.to_owned(), source };
        let json = serde_json::to_vec_pretty(self).map_err(|e| error(std::io::Error::other(e)))?;
        let temporary = path.with_extension("json.tmp");
        {
            let mut file = std::fs::File::create(&temporary).map_err(error)?;
            file.write_all(&json).map_err(error)?;
            file.sync_all().map_err(error)?;
        }
        std::fs::rename(&temporary, path).map_err(error)?;
        if let Some(directory) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            // Persist the rename itself; not every platform can open a directory.
            if let Ok(directory) = std::fs::File::open(directory) {
                let _ = directory.sync_all();
            }
        }
        Ok(())
    }

    /// Reads a snapshot; a missing file is an empty snapshot.
    pub fn read(path: &Path) -> Result<Self, SnapshotError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => return Err(SnapshotError::Read { path: path.to_owned(), source }),
        };
        serde_json::from_slice(&bytes)
            .map_err(|error| SnapshotError::Invalid { path: path.to_owned(), message: error.to_string() })
    }
}
