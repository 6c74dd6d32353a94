//! alertbook's HTTP server: the only crate that speaks HTTP and JSON.
//!
//! Key items: [`AppState`] (what handlers read), [`router`] (every route),
//! [`serve`] (binds and runs until shutdown) and [`serve_tls`] (the same over
//! HTTPS, with a [`ServerTls`] loaded from [`TlsFiles`]). It serves the health endpoints,
//! the runbook (HTML or Markdown), Prometheus's query API, its rule and
//! alert API, its status and discovery API (metadata, exemplars, targets,
//! status, `/federate`; [`ServerStatus`]), remote write, Loki's push, query
//! and exploration API with the live tail ([`LogService`]), and alertbook's
//! own metrics (`/metrics`, [`metrics::Metrics`]), and Prometheus's lifecycle
//! endpoint `/-/reload` ([`lifecycle`]).
//!
//! The ingest endpoints (remote write, Loki push) are open unless
//! [`AppState::set_write_token`] sets a token; then they take
//! `Authorization: Bearer <token>`, or the API token of a responder or admin
//! ([`WriteAuthorized`]).
//!
//! It owns no domain logic: it maps requests onto the catalog and the engines
//! and their results onto HTTP, one error-to-status mapping for all.

mod alertmanager_api;
pub mod auth;
mod federate;
pub mod journal_api;
mod json;
pub mod lifecycle;
mod loki_api;
mod loki_explore;
pub mod metrics;
mod params;
mod prometheus_api;
mod remote_write_api;
mod rules_api;
mod runbook;
mod status_api;
mod tls;
mod triage_api;
mod ui;
mod write_auth;

pub use tls::{ServerTls, TlsError, TlsFiles};
pub use write_auth::WriteAuthorized;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use catalog::Catalog;

/// How many pushes a live tail may fall behind before it misses some.
const TAIL_BACKLOG: usize = 1024;

/// Shared, read-mostly state of the server.
#[derive(Debug)]
pub struct AppState {
    /// The catalog in force; a reload replaces it ([`AppState::set_catalog`]).
    catalog: std::sync::RwLock<Arc<Catalog>>,
    pub store: Arc<tsdb::MemStore>,
    /// The store behind its write-ahead log: where ingest appends.
    pub durable: Arc<ingest::durable::DurableStore>,
    pub engine: promql::Engine,
    /// The most active series ingest may create; 0: no limit.
    pub max_series: AtomicUsize,
    /// alertbook's own metrics (`/metrics`).
    pub metrics: metrics::Metrics,
    /// The rule groups and their alerts (`/api/v1/rules`, `/api/v1/alerts`).
    rules: std::sync::RwLock<Arc<rules::Manager>>,
    /// The log store and its query engine (`/loki/api/v1/...`); `None` until set.
    logs: std::sync::RwLock<Option<Arc<LogService>>>,
    ready: AtomicBool,
    /// Metric metadata from scrapes and remote write (`/api/v1/metadata`).
    pub metadata: Arc<ingest::metadata::MetadataStore>,
    /// Exemplars from scrapes and remote write (`/api/v1/query_exemplars`).
    pub exemplars: Arc<ingest::exemplars::ExemplarStore>,
    /// The scrape pools' targets (`/api/v1/targets`, `/api/v1/targets/metadata`).
    pub targets: Arc<scrape::status::Targets>,
    /// Configuration, flags and start time (`/api/v1/status/...`).
    status: std::sync::RwLock<Arc<ServerStatus>>,
    /// Triage runs (`/api/v1/triage`); `None` until set.
    triage: std::sync::RwLock<Option<Arc<triage::runner::Runner>>>,
    /// Pushed streams, as stored (redacted), for `/loki/api/v1/tail`.
    tails: tokio::sync::broadcast::Sender<Arc<Vec<logstore::PushStream>>>,
    /// alertbook's routing (Alertmanager's API v2, `/api/v1/notifications`); `None` until set.
    routing: std::sync::RwLock<Option<Arc<notify::RoutingService>>>,
    /// The on-call journal and accounts (`/api/v1/journal`, ack, close, login); `None` until set.
    journal: std::sync::RwLock<Option<Arc<journal_api::JournalService>>>,
    /// The bearer token ingest endpoints require; `None`: they are open.
    write_token: std::sync::RwLock<Option<write_auth::WriteToken>>,
    /// The time of the alerts' world: queries' default time, the web UI's
    /// "now", acknowledgements, closes and silences. The wall's unless set.
    clock: std::sync::RwLock<Arc<dyn clock::Clock>>,
    /// `--web.enable-lifecycle`: `/-/reload` answers.
    lifecycle: AtomicBool,
    /// Where `/-/reload` asks for a reload; `None` until set.
    reloads: std::sync::RwLock<Option<tokio::sync::mpsc::Sender<lifecycle::ReloadReply>>>,
    /// Whether the last configuration load succeeded (`reloadConfigSuccess`).
    reload_successful: AtomicBool,
}

/// What the status endpoints report about the running server; the CLI fills it.
#[derive(Debug, Clone)]
pub struct ServerStatus {
    /// The effective configuration as YAML, secrets already replaced by `<secret>`.
    pub config_yaml: String,
    /// Every command-line flag and its value, as strings.
    pub flags: std::collections::BTreeMap<String, String>,
    /// The Alertmanager alert endpoints alerts are sent to.
    pub alertmanagers: Vec<String>,
    pub start_time: chrono::DateTime<chrono::Utc>,
    /// When the configuration was loaded.
    pub config_time: chrono::DateTime<chrono::Utc>,
    /// Metrics retention, as `--storage.retention.time` says it (`""` when unbounded).
    pub storage_retention: String,
    /// `global.external_labels`, added by `/federate` to series that lack them.
    pub external_labels: tsdb::Labels,
}

impl Default for ServerStatus {
    fn default() -> Self {
        let now = chrono::Utc::now();
        Self {
            config_yaml: String::new(),
            flags: std::collections::BTreeMap::new(),
            alertmanagers: Vec::new(),
            start_time: now,
            config_time: now,
            storage_retention: String::new(),
            external_labels: tsdb::Labels::empty(),
        }
    }
}

/// What the Loki API serves: the log store, the LogQL engine, and the
/// redaction applied to pushed streams before they are stored.
pub struct LogService {
    pub store: Arc<logstore::LogStore>,
    pub engine: logql::Engine,
    /// Personal data redaction of the streams it covers; `None` stores lines as pushed.
    pub redaction: Option<pii::StreamRedaction>,
    pub decode: logstore::push::DecodeOptions,
}

impl std::fmt::Debug for LogService {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("LogService").field("redaction", &self.redaction.is_some()).finish_non_exhaustive()
    }
}

impl LogService {
    /// Redacts the pushed streams the policy covers, in place; returns how many
    /// entries held personal data.
    pub fn redact(&self, streams: &mut [logstore::push::PushStream]) -> usize {
        let Some(redaction) = &self.redaction else { return 0 };
        streams
            .iter_mut()
            .map(|stream| {
                redaction.redact_stream(
                    &stream.labels,
                    stream.entries.iter_mut().map(|entry| (&mut entry.line, &mut entry.metadata)),
                )
            })
            .sum()
    }
}

impl AppState {
    pub fn new(catalog: Catalog, durable: Arc<ingest::durable::DurableStore>, engine: promql::Engine) -> Arc<Self> {
        let store = durable.store().clone();
        let datasource = rules::EmbeddedDatasource::new(store.clone(), engine.clone());
        let rules = Arc::new(rules::Manager::new(&[], rules::ManagerOptions::embedded(datasource)));
        let state = Arc::new(Self {
            catalog: std::sync::RwLock::new(Arc::new(catalog)),
            store,
            durable,
            engine,
            max_series: AtomicUsize::new(0),
            metrics: metrics::Metrics::new(),
            rules: std::sync::RwLock::new(rules),
            logs: std::sync::RwLock::new(None),
            routing: std::sync::RwLock::new(None),
            journal: std::sync::RwLock::new(None),
            write_token: std::sync::RwLock::new(None),
            ready: AtomicBool::new(false),
            metadata: Arc::default(),
            exemplars: Arc::default(),
            targets: Arc::default(),
            status: std::sync::RwLock::new(Arc::default()),
            triage: std::sync::RwLock::new(None),
            tails: tokio::sync::broadcast::channel(TAIL_BACKLOG).0,
            clock: std::sync::RwLock::new(Arc::new(clock::SystemClock)),
            lifecycle: AtomicBool::new(false),
            reloads: std::sync::RwLock::new(None),
            reload_successful: AtomicBool::new(true),
        });
        // The configuration was loaded before the state exists: that load counts.
        state.record_reload(true, chrono::Utc::now().timestamp_millis());
        state
    }

    /// The catalog in force.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Puts a new catalog in force (a reload).
    pub fn set_catalog(&self, catalog: Arc<Catalog>) {
        *self.catalog.write().unwrap_or_else(std::sync::PoisonError::into_inner) = catalog;
    }

    /// Sets the clock the rules, triage and routing read (`alertbook demo`
    /// runs them faster than the wall), so that answers and pages agree with
    /// them. Sessions and login limits stay on the wall's clock.
    pub fn set_clock(&self, clock: Arc<dyn clock::Clock>) {
        *self.clock.write().unwrap_or_else(std::sync::PoisonError::into_inner) = clock;
    }

    /// Unix milliseconds now, on the server's clock.
    pub fn now_ms(&self) -> i64 {
        self.clock.read().unwrap_or_else(std::sync::PoisonError::into_inner).now_ms()
    }

    /// Unix nanoseconds now, on the server's clock (Loki's default times).
    pub(crate) fn now_ns(&self) -> i64 {
        self.now_ms().saturating_mul(1_000_000)
    }

    /// Whether any live tail listens.
    pub(crate) fn has_tails(&self) -> bool {
        self.tails.receiver_count() > 0
    }

    /// Hands stored streams to the live tails.
    pub(crate) fn publish_to_tails(&self, streams: Vec<logstore::PushStream>) {
        let _ = self.tails.send(Arc::new(streams));
    }

    /// A receiver of every push from now on.
    pub(crate) fn subscribe_to_pushes(&self) -> tokio::sync::broadcast::Receiver<Arc<Vec<logstore::PushStream>>> {
        self.tails.subscribe()
    }

    /// Sets what the status endpoints report.
    pub fn set_status(&self, status: ServerStatus) {
        *self.status.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(status);
    }

    /// What the status endpoints report.
    pub fn status(&self) -> Arc<ServerStatus> {
        self.status.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Sets the rule manager whose groups the rule and alert API show.
    pub fn set_rules(&self, manager: Arc<rules::Manager>) {
        *self.rules.write().unwrap_or_else(std::sync::PoisonError::into_inner) = manager;
    }

    /// The rule manager.
    pub fn rules(&self) -> Arc<rules::Manager> {
        self.rules.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Sets the log service behind the Loki API.
    pub fn set_logs(&self, logs: Arc<LogService>) {
        *self.logs.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(logs);
    }

    /// The log service, once set.
    pub fn logs(&self) -> Option<Arc<LogService>> {
        self.logs.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Sets the triage runner behind `/api/v1/triage`.
    pub fn set_triage(&self, runner: Arc<triage::runner::Runner>) {
        *self.triage.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(runner);
    }

    /// The triage runner, once set.
    pub fn triage(&self) -> Option<Arc<triage::runner::Runner>> {
        self.triage.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Sets the routing service behind Alertmanager's API v2 and the notification history.
    pub fn set_routing(&self, routing: Arc<notify::RoutingService>) {
        *self.routing.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(routing);
    }

    /// The routing service, once set.
    pub fn routing(&self) -> Option<Arc<notify::RoutingService>> {
        self.routing.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Sets the journal and accounts behind the journal API, login and `auth.require_for_read`.
    pub fn set_journal(&self, journal: Arc<journal_api::JournalService>) {
        *self.journal.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(journal);
    }

    /// The journal and accounts, once set.
    pub fn journal(&self) -> Option<Arc<journal_api::JournalService>> {
        self.journal.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Sets the bearer token remote write and Loki push require
    /// (`auth.write_token_file`); `None` leaves them open. An empty token
    /// matches no request (only responders' API tokens then write): callers
    /// should refuse an empty token file before they get here.
    pub fn set_write_token(&self, token: Option<String>) {
        let token = token.map(write_auth::WriteToken::new);
        *self.write_token.write().unwrap_or_else(std::sync::PoisonError::into_inner) = token;
    }

    /// Whether ingest endpoints require a token.
    pub fn write_token_required(&self) -> bool {
        self.write_token.read().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
    }

    fn write_token(&self) -> Option<write_auth::WriteToken> {
        self.write_token.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Marks the server ready to take traffic (`/-/ready` answers 200).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }
}

/// Every route of the server.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/ready", get(ready))
        .merge(runbook::routes())
        .merge(prometheus_api::routes())
        .merge(status_api::routes())
        .merge(federate::routes())
        .merge(rules_api::routes())
        .merge(triage_api::routes())
        .merge(remote_write_api::routes())
        .merge(loki_api::routes())
        .merge(metrics::routes())
        .merge(alertmanager_api::routes())
        .merge(journal_api::routes().merge(auth::routes()))
        .merge(ui::routes())
        .merge(lifecycle::routes())
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_for_read))
        .with_state(state)
}

async fn healthy() -> &'static str {
    "alertbook is Healthy.\n"
}

async fn ready(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> impl IntoResponse {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "alertbook is Ready.\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "alertbook is not ready.\n")
    }
}

/// Errors of the server's lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// Binds `address` and serves plain HTTP until `shutdown` completes.
pub async fn serve(
    address: SocketAddr,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|source| Error::Bind { address, source })?;
    serve_listener(listener, state, shutdown).await
}

/// Serves plain HTTP on an already bound listener until `shutdown` completes.
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let local = listener.local_addr().map_err(Error::Serve)?;
    tracing::info!(address = %local, tls = false, "listening");
    state.set_ready();
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)
}

/// Binds `address` and serves HTTPS with `tls` (see [`ServerTls::load`])
/// until `shutdown` completes; then stops accepting and lets open
/// connections finish. Plain HTTP on this port fails the handshake.
///
/// Session cookies get `Secure` only when the journal service says so: the
/// caller sets `JournalService::secure_cookies` when it serves TLS.
pub async fn serve_tls(
    address: SocketAddr,
    state: Arc<AppState>,
    tls: ServerTls,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|source| Error::Bind { address, source })?;
    serve_tls_listener(listener, state, tls, shutdown).await
}

/// Serves HTTPS on an already bound listener until `shutdown` completes.
pub async fn serve_tls_listener(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    tls: ServerTls,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let local = listener.local_addr().map_err(Error::Serve)?;
    tracing::info!(address = %local, tls = true, "listening");
    state.set_ready();
    tls::serve(listener, router(state), tls, shutdown).await.map_err(Error::Serve)
}
