//! The Docker Engine datasource: swarm state for `datasource: docker` rules
//! and the runbook's Docker checks.
//!
//! [`DockerDatasource::connect`] takes [`DockerOptions`] (a `unix://` socket,
//! or `tcp://HOST:PORT` with or without a TLS client certificate). Each
//! evaluation reads one [`Snapshot`] of the swarm (services with
//! `status=true`, tasks, secrets, networks, nodes: five `GET`s sent together)
//! and evaluates the rule's condition over it ([`condition`]). Rules of one
//! group evaluation share the snapshot: it is reused for the same evaluation
//! time and for `cache_ttl` after it was read, so a group costs one API round,
//! not one per rule. The datasource implements [`rules::Datasource`]: a true
//! condition is one sample without labels and value 1, false is no sample.
//!
//! On connecting (the first read, and again after the connection was lost)
//! `GET /version` gives the Engine's API version, which must be 1.41 or newer
//! (Docker 20.10); bollard 0.21 sends the list requests without a version
//! prefix, which the Engine answers at its own version. A missing socket, a refused connection
//! or a node that is not a swarm manager is an error naming the datasource and
//! the host; the next evaluation retries. Every read is reported to the
//! [`HealthHook`] (one call per API round, not per rule).
//!
//! It only reads: no call here creates, updates or removes anything in the
//! swarm, and secret values are never requested (the Engine API does not
//! return them). The client is blocking, like the [`rules::Datasource`]
//! trait: the datasource owns a one-thread runtime for bollard, and callers
//! query it from blocking threads (the rules scheduler's `spawn_blocking`,
//! `alertbook test rules`), never from an async worker thread.

pub mod condition;
mod error;
pub mod snapshot;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::ListServicesOptions;
use parking_lot::Mutex;
use rules::{Datasource, DatasourceError};
use serde_json::Value;
use tsdb::Labels;

pub use error::DockerError;
pub use snapshot::Snapshot;

/// The oldest Engine API version alertbook reads (Docker 20.10).
pub const MINIMUM_API_VERSION: (usize, usize) = (1, 41);
/// The per-request timeout when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a snapshot is reused when none is configured.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);

/// A client certificate for `tcp://` hosts, as `docker --tlsverify` takes it (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// How to reach one Docker Engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerOptions {
    /// The datasource's name in the configuration, used in every error and health report.
    pub name: String,
    /// `unix:///var/run/docker.sock` or `tcp://HOST:PORT`.
    pub host: String,
    /// TLS with a client certificate for a `tcp://` host; `None` speaks plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Limit on each Engine API request and on a whole snapshot.
    pub timeout: Duration,
    /// How long a snapshot is reused by later evaluations.
    pub cache_ttl: Duration,
}

impl DockerOptions {
    /// Options with the default timeout and cache lifetime.
    pub fn new(name: impl Into<String>, host: impl Into<String>) -> Self {
        Self { name: name.into(), host: host.into(), tls: None, timeout: DEFAULT_TIMEOUT, cache_ttl: DEFAULT_CACHE_TTL }
    }
}

/// Told about every read of the Engine, to export the datasource's health
/// (`alertbook_datasource_up`, `alertbook_datasource_errors_total`).
pub trait HealthHook: Send + Sync {
    fn succeeded(&self);
    fn failed(&self, error: &DockerError);
}

#[derive(Debug, Clone)]
enum Endpoint {
    Unix(PathBuf),
    Http(String),
    Tls(String, TlsFiles),
}

/// A snapshot and the JSON tree conditions read, built once per read.
pub struct Reading {
    pub snapshot: Snapshot,
    pub bindings: Value,
}

impl std::fmt::Debug for Reading {
    /// The snapshot only: the tree holds environment values, which are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reading").field("snapshot", &self.snapshot).finish_non_exhaustive()
    }
}

struct Cache {
    client: Option<Docker>,
    last: Option<(i64, Instant, Result<Arc<Reading>, DockerError>)>,
}

/// The Docker Engine as a rules datasource.
pub struct DockerDatasource {
    options: DockerOptions,
    endpoint: Endpoint,
    /// Always `Some` until dropped (see the `Drop` impl).
    runtime: Option<tokio::runtime::Runtime>,
    cache: Mutex<Cache>,
    health: Option<Arc<dyn HealthHook>>,
    reads: AtomicU64,
}

impl std::fmt::Debug for DockerDatasource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerDatasource").field("options", &self.options).finish_non_exhaustive()
    }
}

impl DockerDatasource {
    /// Checks the host and the TLS files; the daemon is first contacted by the
    /// first read, so alertbook starts while the daemon is down and recovers
    /// when it comes up.
    pub fn connect(options: &DockerOptions) -> Result<Self, DockerError> {
        let endpoint = parse_host(options)?;
        if let Endpoint::Tls(_, files) = &endpoint {
            check_tls_files(&options.name, files)?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|error| {
            DockerError::Unreachable {
                datasource: options.name.clone(),
                host: options.host.clone(),
                reason: format!("cannot start the client runtime: {error}"),
            }
        })?;
        let datasource = Self {
            options: options.clone(),
            endpoint,
            runtime: Some(runtime),
            cache: Mutex::new(Cache { client: None, last: None }),
            health: None,
            reads: AtomicU64::new(0),
        };
        if let Endpoint::Tls(..) = &datasource.endpoint {
            // Loads and parses the certificates now, so a bad file fails at startup.
            datasource.client()?;
        }
        Ok(datasource)
    }

    /// Reports every read to `hook`.
    pub fn with_health(mut self, hook: Arc<dyn HealthHook>) -> Self {
        self.health = Some(hook);
        self
    }

    pub fn name(&self) -> &str {
        &self.options.name
    }

    /// How many times the Engine has been read (each read is one API round).
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// The swarm as of the evaluation at `time_ms`: the cached reading when it
    /// was taken for the same time or within `cache_ttl`, otherwise a new one.
    pub fn reading(&self, time_ms: i64) -> Result<Arc<Reading>, DockerError> {
        let mut cache = self.cache.lock();
        if let Some((cached_time, taken, result)) = &cache.last {
            let fresh = taken.elapsed() < self.options.cache_ttl && result.is_ok();
            if *cached_time == time_ms || fresh {
                return result.clone();
            }
        }
        let result = self.read(&mut cache);
        self.reads.fetch_add(1, Ordering::Relaxed);
        match (&result, &self.health) {
            (Ok(_), Some(hook)) => hook.succeeded(),
            (Err(error), Some(hook)) => hook.failed(error),
            _ => {}
        }
        if let Err(error) = &result {
            tracing::warn!(datasource = %self.options.name, error = %error, "docker read failed");
        }
        cache.last = Some((time_ms, Instant::now(), result.clone()));
        result
    }

    /// Reads the swarm now, bypassing the cache.
    pub fn read_now(&self) -> Result<Snapshot, DockerError> {
        let mut cache = self.cache.lock();
        self.read(&mut cache).map(|reading| reading.snapshot.clone())
    }

    /// Runs a runbook check query (`service <name> <field>`, `services`, `secret <name>`).
    pub fn check(&self, query: &str, time_ms: i64) -> Result<Value, DockerError> {
        let reading = self.reading(time_ms)?;
        condition::check(query, &reading.bindings).map_err(|error| self.condition_error(query, error))
    }

    fn condition_error(&self, text: &str, error: condition::ConditionError) -> DockerError {
        DockerError::Condition {
            datasource: self.options.name.clone(),
            text: text.to_owned(),
            offset: error.offset,
            message: error.message,
        }
    }

    fn unreachable(&self, reason: impl Into<String>) -> DockerError {
        DockerError::Unreachable {
            datasource: self.options.name.clone(),
            host: self.options.host.clone(),
            reason: reason.into(),
        }
    }

    fn client(&self) -> Result<Docker, DockerError> {
        let timeout = self.options.timeout.as_secs().max(1);
        let version = bollard::API_DEFAULT_VERSION;
        let built = match &self.endpoint {
            Endpoint::Unix(path) => {
                if !path.exists() {
                    return Err(self.unreachable(format!("no socket at {}", path.display())));
                }
                Docker::connect_with_unix(&path.to_string_lossy(), timeout, version)
            }
            Endpoint::Http(address) => Docker::connect_with_http(address, timeout, version),
            Endpoint::Tls(address, files) => {
                Docker::connect_with_ssl(address, &files.key_file, &files.cert_file, &files.ca_file, timeout, version)
            }
        };
        built.map_err(|error| match error {
            bollard::errors::Error::CertPathError { path }
            | bollard::errors::Error::CertParseError { path }
            | bollard::errors::Error::CertMultipleKeys { path, .. } => DockerError::TlsFile {
                datasource: self.options.name.clone(),
                path,
                reason: "not a readable PEM certificate or key".into(),
            },
            other => self.unreachable(describe(&other)),
        })
    }

    fn read(&self, cache: &mut Cache) -> Result<Arc<Reading>, DockerError> {
        let docker = match &cache.client {
            Some(client) => client.clone(),
            None => {
                let client = self.client()?;
                let client = self.block_on(self.negotiate(client))?;
                cache.client = Some(client.clone());
                client
            }
        };
        let result = self.block_on(async {
            tokio::time::timeout(self.options.timeout, fetch(&docker))
                .await
                .unwrap_or(Err(("/services", bollard::errors::Error::RequestTimeoutError)))
        });
        match result {
            Ok((services, tasks, secrets, networks, nodes)) => {
                let snapshot = Snapshot::from_engine(services, tasks, secrets, networks, nodes);
                let bindings = snapshot.bindings();
                Ok(Arc::new(Reading { snapshot, bindings }))
            }
            Err((endpoint, error)) => {
                let error = self.api_error(endpoint, error);
                if matches!(error, DockerError::Unreachable { .. }) {
                    // Reconnect (and negotiate again) next time: the daemon may have been replaced.
                    cache.client = None;
                }
                Err(error)
            }
        }
    }

    fn block_on<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.runtime.as_ref().expect("the runtime lives until drop").block_on(future)
    }

    async fn negotiate(&self, client: Docker) -> Result<Docker, DockerError> {
        let negotiated = tokio::time::timeout(self.options.timeout, client.negotiate_version())
            .await
            .unwrap_or(Err(bollard::errors::Error::RequestTimeoutError))
            .map_err(|error| self.api_error("/version", error))?;
        let version = negotiated.client_version();
        if (version.major_version, version.minor_version) < MINIMUM_API_VERSION {
            return Err(DockerError::OldEngine {
                datasource: self.options.name.clone(),
                host: self.options.host.clone(),
                found: version.to_string(),
            });
        }
        Ok(negotiated)
    }

    fn api_error(&self, endpoint: &str, error: bollard::errors::Error) -> DockerError {
        use bollard::errors::Error;
        let datasource = self.options.name.clone();
        match error {
            Error::DockerResponseServerError { status_code: 503, message } if message.contains("swarm") => {
                DockerError::NotSwarmManager { datasource, host: self.options.host.clone(), message }
            }
            Error::DockerResponseServerError { status_code, message } => {
                DockerError::Api { datasource, endpoint: endpoint.to_owned(), status: status_code, message }
            }
            Error::JsonDataError { message, .. } => {
                DockerError::Decode { datasource, endpoint: endpoint.to_owned(), reason: message }
            }
            Error::JsonSerdeError { err } => {
                DockerError::Decode { datasource, endpoint: endpoint.to_owned(), reason: err.to_string() }
            }
            Error::APIVersionParseError {} => DockerError::Decode {
                datasource,
                endpoint: endpoint.to_owned(),
                reason: "the answer has no API version".into(),
            },
            Error::RequestTimeoutError => {
                self.unreachable(format!("no answer within {}", humantime(self.options.timeout)))
            }
            Error::SocketNotFoundError(path) => self.unreachable(format!("no socket at {path}")),
            other => self.unreachable(describe(&other)),
        }
    }
}

impl Drop for DockerDatasource {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics on an async thread (the server
        // may drop the last rules manager there); this shuts it down without waiting.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

type Lists = (
    Vec<bollard::models::Service>,
    Vec<bollard::models::Task>,
    Vec<bollard::models::Secret>,
    Vec<bollard::models::Network>,
    Vec<bollard::models::Node>,
);

/// The five list requests of a snapshot, sent together.
async fn fetch(docker: &Docker) -> Result<Lists, (&'static str, bollard::errors::Error)> {
    let services_options = ListServicesOptions { status: Some(true), ..Default::default() };
    tokio::try_join!(
        async { docker.list_services(Some(services_options)).await.map_err(|error| ("/services", error)) },
        async { docker.list_tasks(None).await.map_err(|error| ("/tasks", error)) },
        async { docker.list_secrets(None).await.map_err(|error| ("/secrets", error)) },
        async { docker.list_networks(None).await.map_err(|error| ("/networks", error)) },
        async { docker.list_nodes(None).await.map_err(|error| ("/nodes", error)) },
    )
}

impl Datasource for DockerDatasource {
    fn query(&self, query: &str, time_ms: i64) -> Result<Vec<(Labels, f64)>, DatasourceError> {
        // A bad condition costs no API round.
        let parsed = condition::parse(query)
            .map_err(|error| DatasourceError::Query(self.condition_error(query, error).to_string()))?;
        let reading = self.reading(time_ms).map_err(|error| DatasourceError::Unavailable(error.to_string()))?;
        condition::evaluate(&parsed, &reading.bindings)
            .map_err(|error| DatasourceError::Query(self.condition_error(query, error).to_string()))
    }
}

fn parse_host(options: &DockerOptions) -> Result<Endpoint, DockerError> {
    let invalid = |reason: &str| DockerError::InvalidHost {
        datasource: options.name.clone(),
        host: options.host.clone(),
        reason: reason.to_owned(),
    };
    if let Some(path) = options.host.strip_prefix("unix://") {
        if options.tls.is_some() {
            return Err(invalid("TLS files apply to tcp:// hosts only"));
        }
        if !path.starts_with('/') {
            return Err(invalid("a unix:// host needs an absolute socket path, as in unix:///var/run/docker.sock"));
        }
        return Ok(Endpoint::Unix(PathBuf::from(path)));
    }
    if let Some(address) = options.host.strip_prefix("tcp://") {
        let address = address.trim_end_matches('/');
        let Some((host, port)) = address.rsplit_once(':') else {
            return Err(invalid("a tcp:// host needs a port, as in tcp://10.0.0.5:2376"));
        };
        if host.is_empty() || port.parse::<u16>().is_err() || address.contains('/') {
            return Err(invalid("expected tcp://HOST:PORT"));
        }
        return Ok(match &options.tls {
            Some(files) => Endpoint::Tls(format!("https://{address}"), files.clone()),
            None => Endpoint::Http(format!("http://{address}")),
        });
    }
    Err(invalid("expected unix:///path/to/docker.sock or tcp://HOST:PORT"))
}

/// Reads the CA, the client certificate and its key now, so that a bad file
/// fails at startup (bollard loads the key only during the handshake). The
/// error names the file and the reason, never its content.
fn check_tls_files(datasource: &str, files: &TlsFiles) -> Result<(), DockerError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls_error = |path: &Path, reason: String| DockerError::TlsFile {
        datasource: datasource.to_owned(),
        path: path.to_owned(),
        reason,
    };
    let read_certificates = |path: &Path| -> Result<(), DockerError> {
        let bytes = std::fs::read(path).map_err(|error| tls_error(path, error.kind().to_string()))?;
        let certificates = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| tls_error(path, "not a PEM certificate file".into()))?;
        if certificates.is_empty() {
            return Err(tls_error(path, "holds no PEM certificate".into()));
        }
        Ok(())
    };
    read_certificates(&files.ca_file)?;
    read_certificates(&files.cert_file)?;
    let path = files.key_file.as_path();
    let bytes = std::fs::read(path).map_err(|error| tls_error(path, error.kind().to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|_| tls_error(path, "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".into()))?;
    // bollard signs with the process-wide provider; ring is the one alertbook builds.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let provider = rustls::crypto::CryptoProvider::get_default()
        .ok_or_else(|| tls_error(path, "no TLS crypto provider is installed".into()))?;
    provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| tls_error(path, "the private key is of an unsupported type".into()))?;
    Ok(())
}

/// An error with its causes, which hold the useful part (connection refused, no such file).
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn humantime(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}

/// The shared health metrics as a Docker datasource's hook: an Engine that
/// cannot be read is down; a condition error on a readable Engine keeps it up.
impl HealthHook for crate::health::DatasourceHealth {
    fn succeeded(&self) {
        self.record_success();
    }

    fn failed(&self, error: &DockerError) {
        self.record_error(!error.is_unavailable());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(host: &str) -> DockerOptions {
        DockerOptions::new("docker", host)
    }

    #[test]
    fn hosts_are_parsed_or_rejected_with_the_reason() {
        assert!(matches!(parse_host(&options("unix:///var/run/docker.sock")), Ok(Endpoint::Unix(_))));
        assert!(
            matches!(parse_host(&options("tcp://10.0.0.5:2375")), Ok(Endpoint::Http(url)) if url == "http://10.0.0.5:2375")
        );
        let error = parse_host(&options("tcp://10.0.0.5")).unwrap_err().to_string();
        assert!(error.contains("docker datasource `docker`") && error.contains("needs a port"), "{error}");
        let error = parse_host(&options("ssh://host")).unwrap_err().to_string();
        assert!(error.contains("expected unix://"), "{error}");
        assert!(parse_host(&options("unix://relative.sock")).is_err());
    }

    #[tokio::test]
    async fn dropping_on_an_async_thread_does_not_panic() {
        let datasource = DockerDatasource::connect(&options("unix:///nonexistent.sock")).expect("connect");
        drop(datasource);
    }

    #[test]
    fn missing_tls_files_fail_at_connect_naming_the_file() {
        let mut options = options("tcp://127.0.0.1:2376");
        options.tls = Some(TlsFiles {
            ca_file: "/nonexistent/ca.pem".into(),
            cert_file: "/nonexistent/cert.pem".into(),
            key_file: "/nonexistent/key.pem".into(),
        });
        let error = DockerDatasource::connect(&options).unwrap_err().to_string();
        assert!(error.contains("docker datasource `docker`: cannot use TLS file /nonexistent/ca.pem"), "{error}");
    }
}
