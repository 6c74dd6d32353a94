//! A probe ready to run: the validated target of a `kind: probes` contract
//! (or of `alertbook probe`'s flags), its labels, interval and timeout, with
//! relative credential paths resolved against the contract's directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use catalog::probes::{Endpoint, ProbeTarget};

use crate::outcome::ProbeLabels;

/// Which prober runs a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prober {
    Http,
    Tcp,
    Tls,
    Smtp,
    S3,
}

impl Prober {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "http" => Prober::Http,
            "tcp" => Prober::Tcp,
            "tls" => Prober::Tls,
            "smtp" => Prober::Smtp,
            "s3" => Prober::S3,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Prober::Http => "http",
            Prober::Tcp => "tcp",
            Prober::Tls => "tls",
            Prober::Smtp => "smtp",
            Prober::S3 => "s3",
        }
    }

    /// Whether the prober's checks write `probe_http_status_code`.
    pub fn reports_http_status(self) -> bool {
        matches!(self, Prober::Http | Prober::S3)
    }
}

/// One probe with everything a check needs.
#[derive(Debug, Clone)]
pub struct Check {
    pub labels: ProbeLabels,
    pub prober: Prober,
    pub endpoint: Endpoint,
    pub interval: Duration,
    pub timeout: Duration,
    pub options: Arc<ProbeTarget>,
    /// Where relative paths in the options (`ca_file`, `*_file`) start.
    pub base: PathBuf,
}

/// Why a target cannot become a check (the catalog has validated contract
/// targets already; this covers targets built elsewhere).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckError(pub String);

impl Check {
    /// A check of `target` in `group` at `interval`; `base` resolves relative paths.
    pub fn new(group: &str, target: &ProbeTarget, interval: Duration, base: &Path) -> Result<Self, CheckError> {
        let errors = catalog::probes::validate_target(target, interval);
        if let Some(first) = errors.first() {
            return Err(CheckError(first.message.clone()));
        }
        let prober =
            Prober::parse(&target.prober).ok_or_else(|| CheckError(format!("unknown prober {:?}", target.prober)))?;
        let endpoint = catalog::probes::parse_endpoint(&target.prober, &target.target).map_err(CheckError)?;
        Ok(Self {
            labels: ProbeLabels {
                probe: target.name.clone(),
                probe_group: group.to_owned(),
                prober: target.prober.clone(),
                target: target.target.clone(),
            },
            prober,
            endpoint,
            interval,
            timeout: catalog::probes::effective_timeout(target, interval),
            options: Arc::new(target.clone()),
            base: base.to_owned(),
        })
    }

    /// Every check of the catalog's `kind: probes` contracts.
    pub fn from_catalog(catalog: &catalog::Catalog) -> Result<Vec<Self>, CheckError> {
        let mut checks = Vec::new();
        for (name, contract) in &catalog.contracts {
            let catalog::ContractKind::Probes(probes) = &contract.kind else { continue };
            let base = contract.path.parent().unwrap_or(Path::new("."));
            for target in &probes.targets {
                checks.push(Self::new(name, target, probes.interval_duration, base)?);
            }
        }
        Ok(checks)
    }

    /// `path` as written, or relative to the contract's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() { path.to_owned() } else { self.base.join(path) }
    }

    /// Reads a credential file, trimmed of its trailing newline. The error
    /// names the option, not the content.
    pub fn read_secret(&self, option: &str, path: &str) -> Result<String, crate::Failure> {
        let resolved = self.resolve(path);
        std::fs::read_to_string(&resolved).map(|text| text.trim_end_matches(['\n', '\r']).to_owned()).map_err(|error| {
            crate::Failure::new(
                crate::Reason::Config,
                format!("cannot read {option} {}: {}", resolved.display(), error.kind()),
            )
        })
    }

    /// A stable hash of the probe's identity, for its phase in the interval.
    pub fn identity_hash(&self) -> u64 {
        // FNV-1a: stable across processes and releases, unlike DefaultHasher's seed.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for part in [&self.labels.probe_group, &self.labels.probe, &self.labels.prober, &self.labels.target] {
            for byte in part.bytes().chain([0xff]) {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash
    }
}
