//! What the scrape manager knows of its targets right now, for Prometheus's
//! `/api/v1/targets` and `/api/v1/targets/metadata`.
//!
//! Key types: [`Targets`] (every scrape pool's active targets and the
//! discovered targets relabeling dropped), [`TargetStatus`] (one active
//! target: its labels, URL, interval, and [`TargetHealth`], updated after each
//! scrape with its time, duration, error and the metadata of its families).
//! The manager writes, readers take snapshots; nothing here does I/O.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ingest::exposition::FamilyMetadata;
use parking_lot::{Mutex, RwLock};
use tsdb::Labels;

use crate::discovery::Target;

/// A target's health as Prometheus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    #[default]
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// The outcome of a target's last scrape.
#[derive(Debug, Clone, Default)]
pub struct TargetHealth {
    pub health: Health,
    /// When the last scrape started, milliseconds since the epoch.
    pub last_scrape_ms: Option<i64>,
    pub last_duration: Duration,
    /// Empty when the last scrape succeeded.
    pub last_error: String,
    /// The metadata of the families the target exposed in its last successful scrape.
    pub metadata: Arc<BTreeMap<String, FamilyMetadata>>,
}

/// One active target.
#[derive(Debug)]
pub struct TargetStatus {
    pub scrape_pool: String,
    pub target: Target,
    health: Mutex<TargetHealth>,
}

impl TargetStatus {
    pub fn new(scrape_pool: &str, target: Target) -> Self {
        Self { scrape_pool: scrape_pool.to_owned(), target, health: Mutex::new(TargetHealth::default()) }
    }

    /// A copy of the target's health.
    pub fn health(&self) -> TargetHealth {
        self.health.lock().clone()
    }

    /// Records a scrape; `metadata` replaces the target's when given (a
    /// failed scrape keeps what the last good one exposed, as Prometheus's cache).
    pub fn record(
        &self,
        started_ms: i64,
        duration: Duration,
        error: Option<&str>,
        metadata: Option<BTreeMap<String, FamilyMetadata>>,
    ) {
        let mut health = self.health.lock();
        health.health = if error.is_some() { Health::Down } else { Health::Up };
        health.last_scrape_ms = Some(started_ms);
        health.last_duration = duration;
        health.last_error = error.unwrap_or_default().to_owned();
        if let Some(metadata) = metadata {
            health.metadata = Arc::new(metadata);
        }
    }
}

/// One scrape pool (a job).
#[derive(Debug, Default, Clone)]
pub struct Pool {
    pub active: Vec<Arc<TargetStatus>>,
    /// The labels of discovered targets relabeling dropped, before relabeling.
    pub dropped: Vec<Labels>,
}

/// Every pool's targets, by pool name.
#[derive(Debug, Default)]
pub struct Targets {
    pools: RwLock<BTreeMap<String, Pool>>,
}

impl Targets {
    /// Replaces a pool's targets.
    pub fn set_pool(&self, name: &str, pool: Pool) {
        self.pools.write().insert(name.to_owned(), pool);
    }

    /// Forgets a pool (its job stopped).
    pub fn remove_pool(&self, name: &str) {
        self.pools.write().remove(name);
    }

    /// A snapshot of every pool, by name.
    pub fn pools(&self) -> BTreeMap<String, Pool> {
        self.pools.read().clone()
    }
}
