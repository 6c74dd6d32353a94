//! Notification delivery: alerts out of alertbook, at least once.
//!
//! Key types: [`Alert`] (what the rules engine hands over), [`Target`] (an
//! Alertmanager, through its API v2, or a webhook receiving Alertmanager's
//! webhook payload), [`Outbox`] (deliveries persisted on disk before any
//! attempt, removed only once a target accepted them) and [`Dispatcher`]
//! (turns alerts into deliveries and runs the retrying delivery loop).
//!
//! A delivery survives restarts: it is written and fsynced before it is sent,
//! retried with exponential backoff on network errors and 5xx or 429 answers,
//! and dropped (with an error log) only on a permanent 4xx refusal.
//!
//! [`routing`] is the Alertmanager-compatible core: `alertmanager.yml`, the
//! route tree, aggregation groups, inhibition, silences and the notification
//! log, pure and clock-injected. The loops that drive it ([`RoutingService::run`],
//! [`Dispatcher::run`]) read the [`clock::Clock`] the dispatcher is built with.

pub mod contacts;
mod dispatcher;
pub mod integrations;
mod outbox;
mod payload;
pub mod routing;
mod service;
mod state;
pub mod templates;

pub use clock;
pub use dispatcher::{DeliveryObserver, DeliveryStats, Dispatcher, DispatcherOptions, Target};
pub use outbox::{Delivery, Outbox};
pub use payload::{Alert, alertmanager_payload, fingerprint, rfc3339, routed_webhook_payload, webhook_payload};
pub use service::{COUNTED_INTEGRATIONS, NotificationCount, PreparedRouting, RoutingService, SilenceFailure};
pub use state::{HistoryAlert, HistoryRecord, StateStore};

/// How many notifications the history keeps.
pub fn state_history_limit() -> usize {
    state::HISTORY_LIMIT
}

/// Errors of notification delivery.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("outbox {path}: {source}")]
    Outbox { path: std::path::PathBuf, source: std::io::Error },
    #[error("outbox entry {path} is unreadable: {reason}")]
    CorruptEntry { path: std::path::PathBuf, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("notification templates: {0}")]
    Templates(String),
}

/// Installs the process-wide TLS crypto provider (ring) once; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
