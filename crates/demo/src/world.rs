//! The state of Busflow at a moment, as the script makes it: how much
//! traffic, which errors, which latency, which services are up. The
//! generators read the world; only the script changes it.

use crate::clock::{DAY_MS, HOUR_MS, MINUTE_MS};
use crate::script::{self, Cause, Episode};

/// Busflow's API routes: (method, route, share of traffic, success code, median latency in seconds, log-normal sigma).
pub const ROUTES: [(&str, &str, f64, &str, f64, f64); 5] = [
    ("GET", "/api/bookings", 0.30, "200", 0.11, 0.55),
    ("POST", "/api/bookings", 0.08, "201", 0.16, 0.50),
    ("GET", "/api/trips", 0.32, "200", 0.06, 0.50),
    ("GET", "/api/messages", 0.18, "200", 0.04, 0.60),
    ("POST", "/api/invoices", 0.12, "201", 0.20, 0.45),
];

/// busflow_api's requests per second at the top of the diurnal curve.
pub const PEAK_REQUESTS_PER_SECOND: f64 = 48.0;
/// The share of requests that fail on a good day.
pub const BASE_ERROR_RATIO: f64 = 0.003;
/// The studio stack's Uptime Kuma monitors: (name, URL), as contracts/studio-service-probes.yaml lists the services.
pub const MONITORS: [(&str, &str); 4] = [
    ("context-engine", "http://context-engine:8080/api/health/ready"),
    ("docs-hub", "http://docs-hub:3000/health"),
    ("landing", "http://landing:80/"),
    ("qdrant", "http://qdrant:6333/readyz"),
];
/// The external dependency probes: (name, prober, target, phase of the 5-minute check in seconds).
pub const DEPENDENCY_PROBES: [(&str, &str, &str, i64); 3] = [
    ("aws-ses", "smtp", "email-smtp.eu-west-1.amazonaws.com:587", 36),
    ("hetzner-object-storage", "s3", "https://fsn1.your-objectstorage.com", 102),
    ("llm-provider", "http", "https://api.anthropic.com/v1/models", 193),
];

/// Busflow's local hour when the scripted day starts: the day runs 07:00 to
/// 19:00 on Busflow's clock, whatever the wall time the demo starts at, so the
/// traffic curve (and every triage decision that reads it) is the same at any
/// hour. [`crate::DEFAULT_START_MS`] is 06:00 UTC, 07:00 in Busflow's UTC+1.
pub const DAY_START_LOCAL_HOUR: i64 = 7;

/// The script over a day that starts at `start_ms`.
#[derive(Debug, Clone)]
pub struct World {
    pub start_ms: i64,
    pub episodes: Vec<Episode>,
}

impl World {
    pub fn new(start_ms: i64, episodes: Vec<Episode>) -> Self {
        Self { start_ms, episodes }
    }

    /// Minutes since the start of the day (negative before it).
    pub fn minute(&self, time_ms: i64) -> f64 {
        (time_ms - self.start_ms) as f64 / MINUTE_MS as f64
    }

    /// The whole minute since the start of the day that `time_ms` falls in, as
    /// a noise index (two's complement before the day): noise keyed by it is
    /// the same whatever wall time the day starts at.
    pub fn minute_index(&self, time_ms: i64) -> u64 {
        (time_ms - self.start_ms).div_euclid(MINUTE_MS) as u64
    }

    pub fn at_minute(&self, minute: f64) -> i64 {
        self.start_ms + (minute * MINUTE_MS as f64).round() as i64
    }

    /// The episodes going on at `time_ms`.
    pub fn active(&self, time_ms: i64) -> impl Iterator<Item = &Episode> {
        let minute = self.minute(time_ms);
        self.episodes.iter().filter(move |episode| episode.active(minute))
    }

    /// The time of day on Busflow's clock at `time_ms`, in milliseconds since
    /// local midnight: [`DAY_START_LOCAL_HOUR`] at the day's start.
    pub fn local_time_of_day_ms(&self, time_ms: i64) -> i64 {
        (time_ms - self.start_ms + DAY_START_LOCAL_HOUR * HOUR_MS).rem_euclid(DAY_MS)
    }

    /// The diurnal traffic curve at `time_ms`, between about 0.15 (night) and 1
    /// (the morning and evening rush), on Busflow's clock.
    pub fn diurnal(&self, time_ms: i64) -> f64 {
        let hour = self.local_time_of_day_ms(time_ms) as f64 / HOUR_MS as f64;
        let bump = |center: f64, width: f64| (-((hour - center) / width).powi(2) / 2.0).exp();
        let daytime = 1.0 / (1.0 + (-(hour - 6.5) * 1.5).exp()) * (1.0 / (1.0 + ((hour - 21.0) * 1.2).exp()));
        (0.15 + 0.45 * daytime + 0.45 * bump(8.0, 1.2) + 0.4 * bump(17.0, 1.4)).min(1.0)
    }

    /// How much more traffic than usual (1 on a normal day).
    pub fn load_factor(&self, time_ms: i64) -> f64 {
        self.active(time_ms)
            .filter_map(|episode| match episode.cause {
                Cause::Load { factor, .. } => Some(factor),
                _ => None,
            })
            .fold(1.0, f64::max)
    }

    /// Whether a batch job holds the swarm's CPUs.
    pub fn nodes_busy(&self, time_ms: i64) -> bool {
        self.active(time_ms).any(|episode| matches!(episode.cause, Cause::Load { busy_nodes: true, .. }))
    }

    /// The share of a tenant's requests that answer 5xx.
    pub fn error_ratio(&self, tenant: &str, time_ms: i64) -> f64 {
        let mut ratio = BASE_ERROR_RATIO;
        for episode in self.active(time_ms) {
            match &episode.cause {
                Cause::TenantErrors { tenant: failing, error_ratio } if *failing == tenant => ratio += error_ratio,
                Cause::BroadErrors { error_ratio, .. } => ratio += error_ratio,
                _ => {}
            }
        }
        ratio.min(1.0)
    }

    /// How many times slower than usual a route answers.
    pub fn latency_factor(&self, route: &str, time_ms: i64) -> f64 {
        if route != "/api/bookings" {
            return 1.0;
        }
        self.active(time_ms)
            .map(|episode| match episode.cause {
                Cause::RegressedStatement => 4.5,
                Cause::Load { .. } => 3.6,
                Cause::SlowDependency => 3.8,
                _ => 1.0,
            })
            .fold(1.0, f64::max)
    }

    /// Sessions waiting on a lock in PostgreSQL.
    pub fn lock_waits(&self, time_ms: i64) -> u32 {
        self.active(time_ms)
            .map(|episode| match episode.cause {
                Cause::BroadErrors { lock_waits, .. } => lock_waits,
                Cause::CronFailures { message, .. } if message.contains("lock") => 1,
                _ => 0,
            })
            .sum()
    }

    /// busflow_api's desired replicas.
    pub fn api_replicas(&self, time_ms: i64) -> u32 {
        if self.minute(time_ms) >= script::API_SCALED_MINUTE as f64 { 6 } else { 4 }
    }

    /// The Unix time (ms) of the compactor's last successful run at `time_ms`:
    /// it runs every 10 minutes, except while stuck.
    pub fn compactor_last_success_ms(&self, time_ms: i64) -> i64 {
        let minute = self.minute(time_ms);
        let stuck_since = script::COMPACTOR_STUCK_SINCE_MINUTE as f64;
        let restart = script::COMPACTOR_RESTART_MINUTE as f64;
        if minute >= stuck_since && minute < restart {
            return self.at_minute(stuck_since);
        }
        // Runs at the restart and every 10 minutes from it (and before the stall, at the same phase).
        let since_restart = minute - restart;
        let last_run = restart + (since_restart / 10.0).floor() * 10.0;
        self.at_minute(last_run)
    }

    /// Bytes in MinIO's loki bucket: slow growth, daily retention, and the surge.
    pub fn loki_bucket_bytes(&self, time_ms: i64) -> f64 {
        let minute = self.minute(time_ms);
        let mut bytes = 389.4e9 + 0.11e9 * minute / 60.0;
        for episode in &self.episodes {
            if episode.cause != Cause::BucketSurge || minute < episode.from_minute as f64 {
                continue;
            }
            let into = minute - episode.from_minute as f64;
            if minute < episode.until_minute as f64 {
                // 40 GB over 50 minutes: 85 % of the 500 GB quota after BUCKET_SURGE_CROSSING_MINUTES.
                bytes += 40e9 * (into / 50.0).min(1.0);
            } else {
                // The retention sweep after the surge deletes what the surge wrote and some more.
                bytes -= 6e9;
            }
        }
        bytes
    }

    /// The tenant buckets a migration created, if one is going on.
    pub fn tenant_buckets(&self, time_ms: i64) -> usize {
        self.active(time_ms)
            .map(|episode| match episode.cause {
                Cause::TenantBuckets { count } => count,
                _ => 0,
            })
            .sum()
    }

    /// When the certificate of `cn` that Traefik serves at `time_ms` expires
    /// (Unix ms), and a generation number that changes with each renewal.
    pub fn certificate(&self, cn: &str, time_ms: i64) -> (i64, u32) {
        let Some((_, offset)) = script::CERT_EXPIRY_OFFSET_MINUTES.iter().find(|(name, _)| *name == cn) else {
            return (self.start_ms + 71 * 24 * HOUR_MS, 0);
        };
        let renewed = self
            .episodes
            .iter()
            .find(|episode| matches!(episode.cause, Cause::CertExpiring { cn: renewing } if renewing == cn));
        match renewed {
            Some(episode) if self.minute(time_ms) >= episode.until_minute as f64 => {
                (self.at_minute(episode.until_minute as f64) + 90 * 24 * HOUR_MS, 1)
            }
            _ => (self.at_minute(*offset as f64), 0),
        }
    }

    /// Whether the certificate of `cn` is failing to renew at `time_ms` (ACME errors in Traefik's log).
    pub fn renewal_failing(&self, cn: &str, time_ms: i64) -> bool {
        self.active(time_ms)
            .any(|episode| matches!(episode.cause, Cause::CertExpiring { cn: failing } if failing == cn))
    }

    /// The failure reason of an external dependency probe at `time_ms`, `None` when it succeeds.
    pub fn probe_failure(&self, probe: &str, time_ms: i64) -> Option<&'static str> {
        self.active(time_ms).find_map(|episode| match episode.cause {
            Cause::DependencyDown { probe: failing, reason } if failing == probe => Some(reason),
            _ => None,
        })
    }

    /// Whether a studio service fails its health check, and whether it is in maintenance.
    pub fn monitor(&self, monitor: &str, time_ms: i64) -> MonitorState {
        let mut state = MonitorState::Up;
        for episode in self.active(time_ms) {
            match &episode.cause {
                Cause::Maintenance { monitor: name } if *name == monitor => return MonitorState::Maintenance,
                Cause::QdrantDown if monitor == "qdrant" || monitor == "context-engine" => state = MonitorState::Down,
                Cause::CrashLoop { service } | Cause::WrongNetwork { service, .. } if *service == monitor => {
                    state = MonitorState::Down;
                }
                _ => {}
            }
        }
        state
    }

    /// The episode of `kind` going on at `time_ms`, if any.
    pub fn find(&self, time_ms: i64, kind: impl Fn(&Cause) -> bool) -> Option<&Episode> {
        self.active(time_ms).find(|episode| kind(&episode.cause))
    }

    /// The last episode of `kind` that began before `time_ms` (going on or over).
    pub fn latest(&self, time_ms: i64, kind: impl Fn(&Cause) -> bool) -> Option<&Episode> {
        let minute = self.minute(time_ms);
        self.episodes.iter().filter(|episode| episode.from_minute as f64 <= minute && kind(&episode.cause)).last()
    }
}

/// What Uptime Kuma sees of a monitored service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorState {
    Up,
    Down,
    Maintenance,
}
