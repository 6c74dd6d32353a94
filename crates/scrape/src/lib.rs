//! Prometheus-compatible scraping: alertbook pulls the metrics of HTTP targets
//! into its store as Prometheus's scraper does.
//!
//! Modules: [`config`] (the `scrape_configs` section, raw then validated, errors
//! at `file:line:col`), [`relabel`] (relabeling, pure), [`discovery`] (static
//! and file-SD target groups to [`discovery::Target`]s), [`scraper`] (one
//! target: fetch, parse, label, limit, append, stale markers, the `up` and
//! `scrape_*` report series), [`status`] (what the targets API reads: each
//! pool's active and dropped targets and their last scrape), [`manager`] (the tokio tasks that run every job
//! on its interval) and [`metrics`] (the scraper's own metrics).
//!
//! Samples are appended through [`ingest::durable::DurableStore`], so scraped
//! data is in the write-ahead log like remote-written data. Timestamps come
//! from an injected [`manager::Clock`]. The crate knows no HTTP server and does
//! not serve anything: it is a client only.

pub mod config;
pub mod discovery;
pub mod manager;
pub mod metrics;
pub mod relabel;
pub mod scraper;
pub mod status;

pub use config::{ScrapeConfig, ScrapeDefaults};
pub use manager::{Applied, Clock, ScrapeHandle, SystemClock, spawn};
pub use metrics::ScrapeMetrics;
pub use scraper::{Admit, ScrapeContext, ScrapeReport, TargetScraper};

/// Errors setting up scraping.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Installs the process-wide TLS crypto provider (ring) once; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
