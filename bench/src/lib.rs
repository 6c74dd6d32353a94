//! Shared pieces of alertbook's side-by-side benchmarks: the dataset metadata the
//! generator writes and the query benchmark reads, a small seeded random
//! number generator so generated datasets are reproducible, and the
//! VictoriaMetrics arguments of the benchmarks that run it as a peer.
//!
//! The binaries are `gen-busflow` (writes a Busflow-like OpenMetrics file with
//! timestamps) and `promql-bench` (runs the same PromQL queries against alertbook
//! and Prometheus and prints latency ratios). `promql.sh` ties them together.
//! Nothing here is part of alertbook itself.

pub mod remote_write;

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// VictoriaMetrics as a peer: where it serves the same data, and its process
/// (for what `/proc` tells of it: resident memory, CPU seconds).
#[derive(Debug, Clone, clap::Args)]
pub struct VictoriaMetricsArguments {
    /// Base URL of VictoriaMetrics serving the same data, e.g.
    /// http://127.0.0.1:8428 (omit to leave it out).
    #[arg(long)]
    pub victoriametrics: Option<String>,
    /// Process id of VictoriaMetrics.
    #[arg(long)]
    pub victoriametrics_pid: Option<u32>,
}

/// What `gen-busflow` wrote, stored next to the data as `<file>.meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetMetadata {
    /// First sample time, Unix seconds.
    pub start: i64,
    /// Last sample time, Unix seconds.
    pub end: i64,
    /// Seconds between samples of a series.
    pub step: i64,
    pub series: u64,
    pub samples: u64,
    pub bytes: u64,
    pub seed: u64,
    pub series_scale: f64,
}

impl DatasetMetadata {
    /// The metadata path for a dataset file.
    pub fn path_for(data_file: &Path) -> std::path::PathBuf {
        let mut name = data_file.as_os_str().to_owned();
        name.push(".meta.json");
        name.into()
    }

    pub fn read(data_file: &Path) -> anyhow::Result<Self> {
        let path = Self::path_for(data_file);
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("invalid dataset metadata in {}", path.display()))
    }

    pub fn write(&self, data_file: &Path) -> anyhow::Result<()> {
        let path = Self::path_for(data_file);
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// SplitMix64: tiny, fast and good enough for synthetic data.
#[derive(Debug, Clone)]
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    /// One of `items`, uniformly.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next_u64() % items.len() as u64) as usize]
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `[low, high)`.
    pub fn range(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// Roughly normal (sum of uniforms), mean 0, standard deviation 1.
    pub fn normal(&mut self) -> f64 {
        (0..6).map(|_| self.unit()).sum::<f64>() * std::f64::consts::SQRT_2 - 6.0 * std::f64::consts::FRAC_1_SQRT_2
    }
}
