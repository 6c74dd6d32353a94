//! What can go wrong reading the Docker Engine; every message names the datasource.

use std::path::PathBuf;

/// A Docker datasource error. Messages never carry environment values or
/// secret material (the Engine never returns secret values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DockerError {
    #[error("docker datasource `{datasource}`: invalid host {host:?}: {reason}")]
    InvalidHost { datasource: String, host: String, reason: String },
    #[error("docker datasource `{datasource}`: cannot use TLS file {}: {reason}", path.display())]
    TlsFile { datasource: String, path: PathBuf, reason: String },
    #[error("docker datasource `{datasource}`: cannot reach the Docker Engine at {host}: {reason}")]
    Unreachable { datasource: String, host: String, reason: String },
    #[error(
        "docker datasource `{datasource}`: the Docker Engine at {host} is not a swarm manager \
         (run `docker swarm init`, or point the datasource at a manager node): {message}"
    )]
    NotSwarmManager { datasource: String, host: String, message: String },
    #[error(
        "docker datasource `{datasource}`: the Engine API at {host} supports version {found}; alertbook needs 1.41 or newer"
    )]
    OldEngine { datasource: String, host: String, found: String },
    #[error("docker datasource `{datasource}`: GET {endpoint} failed with status {status}: {message}")]
    Api { datasource: String, endpoint: String, status: u16, message: String },
    #[error("docker datasource `{datasource}`: cannot decode the answer of GET {endpoint}: {reason}")]
    Decode { datasource: String, endpoint: String, reason: String },
    #[error("docker datasource `{datasource}`: {message} (at byte {offset} of {text:?})")]
    Condition { datasource: String, text: String, offset: usize, message: String },
}

impl DockerError {
    /// True when the Engine could not be read at all (as opposed to a bad condition or check).
    pub fn is_unavailable(&self) -> bool {
        !matches!(self, DockerError::Condition { .. })
    }
}
