//! The Busflow simulator behind `alertbook demo`: a scripted 12-hour Busflow
//! day on a virtual clock, with one incident for every alert of the Busflow
//! catalog (A1 to A12) and both sides of the runbook's branches.
//!
//! [`Day::busflow`] builds the day: the metrics the catalog's rules and
//! checks read ([`Day::samples_between`]), the log streams
//! ([`Day::logs_between`]), the PostgreSQL, Docker and Tempo answers of any
//! moment ([`Day::facts_at`]), and the script's [`Incident`]s, each with the
//! alert it must page, when, and the triage path its facts imply
//! ([`Day::incidents`]). Every value is real-format telemetry (the samples in
//! `testdata/telemetry/` are the reference), realistic (a diurnal traffic
//! curve, noise from a seeded deterministic generator) and a pure function of
//! the seed, the start time and the virtual time asked for.
//!
//! The crate is pure: it reads no clock, starts no thread and does no I/O.
//! It does not store, redact or evaluate anything: the caller pushes the
//! samples and lines into its stores (redacting the Faro stream as live
//! ingest does) and evaluates the rules; [`adapters`] answers SQL, Docker
//! and trace rules and checks from the facts, as the real datasources would.
//!
//! How to drive it (what `crates/demo/tests/day.rs` does):
//! - append [`Day::samples_between`] from [`Day::first_sample_ms`] (the
//!   week-ago baseline A2's `offset 1w` reads, then the lead-in) up to the
//!   virtual now ([`Day::virtual_time`]: the day's start when the demo
//!   begins), and keep appending as the clock advances; [`STALE_NAN`]
//!   values are Prometheus stale markers;
//! - push [`Day::logs_between`] likewise, through the catalog's PII redaction;
//! - evaluate recording groups before alerting groups at the same instant
//!   (the `uptime-kuma-probes` recording of `probe_success` feeds
//!   `StudioServiceDown`);
//! - answer `datasource: sql` and `docker` rules and the SQL, Docker and
//!   trace checks with [`adapters`] (over [`Facts::sql_rule`],
//!   [`Facts::sql_check`], [`Facts::docker`], the Engine API's list answers,
//!   and [`Facts::tempo_search`]).

pub mod adapters;
mod clock;
mod docker;
mod facts;
mod logs;
mod metrics;
mod noise;
pub mod script;
mod world;

pub use clock::{DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, WEEK_MS};
pub use facts::{DockerState, Facts, SqlResult};
pub use metrics::{BASELINE_INTERVAL_MS, PROBE_INTERVAL_MS, SCRAPE_INTERVAL_MS};
pub use script::{ExpectedTriage, Incident};

/// A label set: (name, value) pairs sorted by name; metric series carry `__name__`.
pub type Labels = Vec<(String, String)>;

/// Prometheus's stale marker (the NaN with bits `0x7ff0000000000002`).
pub const STALE_NAN: f64 = f64::from_bits(0x7ff0_0000_0000_0002);

/// How long the scripted day lasts.
pub const DAY_LENGTH_MS: i64 = 12 * HOUR_MS;
/// The default speed of the virtual clock: 12 virtual hours in 15 wall minutes.
pub const DEFAULT_SPEED: f64 = 48.0;
/// How long before the day's start the data begins (rates need history at the first minute).
pub const LEAD_IN_MS: i64 = HOUR_MS;
/// The default start: Monday 2026-01-05 06:00 UTC.
pub const DEFAULT_START_MS: i64 = 1_767_592_800_000;
/// The default seed of the noise.
pub const DEFAULT_SEED: u64 = 0x0b05_f10e;

/// One metric sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'a> {
    pub labels: &'a Labels,
    pub time_ms: i64,
    pub value: f64,
}

/// One log line of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub stream: Labels,
    pub time_ns: i64,
    pub line: String,
}

/// Builds a label set from pairs, sorted by name.
pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut labels: Labels = pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
    labels.sort();
    labels
}

/// The scripted Busflow day.
#[derive(Debug, Clone)]
pub struct Day {
    world: world::World,
    noise: noise::Noise,
    metrics: metrics::Metrics,
    logs: Vec<LogEntry>,
    incidents: Vec<Incident>,
}

impl Day {
    /// The day at [`DEFAULT_START_MS`] with [`DEFAULT_SEED`].
    pub fn busflow() -> Self {
        Self::busflow_at(DEFAULT_START_MS, DEFAULT_SEED)
    }

    /// The day starting at `start_ms` (rounded down to a quarter hour, where
    /// pg_cron's `*/15` jobs run), with noise from `seed`.
    pub fn busflow_at(start_ms: i64, seed: u64) -> Self {
        let start_ms = start_ms - start_ms.rem_euclid(15 * MINUTE_MS);
        let world = world::World::new(start_ms, script::episodes());
        let noise = noise::Noise::new(seed);
        let end_ms = start_ms + DAY_LENGTH_MS;
        let metrics = metrics::build(&world, &noise, start_ms - LEAD_IN_MS, end_ms);
        let logs = logs::build(&world, &noise, start_ms - LEAD_IN_MS, end_ms);
        let incidents = script::incidents(&world.episodes, start_ms, DAY_LENGTH_MS);
        Self { world, noise, metrics, logs, incidents }
    }

    /// When the scripted day begins.
    pub fn start_ms(&self) -> i64 {
        self.world.start_ms
    }

    /// When the scripted day ends.
    pub fn end_ms(&self) -> i64 {
        self.world.start_ms + DAY_LENGTH_MS
    }

    /// The first sample of the data: the week-ago baseline's.
    pub fn first_sample_ms(&self) -> i64 {
        self.world.start_ms - LEAD_IN_MS - WEEK_MS
    }

    /// The first sample and log line of the day itself ([`LEAD_IN_MS`] before the start).
    pub fn data_start_ms(&self) -> i64 {
        self.world.start_ms - LEAD_IN_MS
    }

    /// Every sample with a time in `[from_ms, to_ms)`, in time order (then by series).
    pub fn samples_between(&self, from_ms: i64, to_ms: i64) -> Vec<Sample<'_>> {
        let mut samples = Vec::new();
        for series in &self.metrics.series {
            series.samples(from_ms, to_ms, |time_ms, value| {
                samples.push(Sample { labels: &series.labels, time_ms, value });
            });
        }
        for points in &self.metrics.points {
            let first = points.points.partition_point(|(time_ms, _)| *time_ms < from_ms);
            for (time_ms, value) in &points.points[first..] {
                if *time_ms >= to_ms {
                    break;
                }
                samples.push(Sample { labels: &points.labels, time_ms: *time_ms, value: *value });
            }
        }
        samples.sort_by_key(|sample| sample.time_ms);
        samples
    }

    /// Every log entry with a time in `[from_ms, to_ms)`, in time order.
    pub fn logs_between(&self, from_ms: i64, to_ms: i64) -> &[LogEntry] {
        let from_ns = from_ms.saturating_mul(1_000_000);
        let to_ns = to_ms.saturating_mul(1_000_000);
        let first = self.logs.partition_point(|entry| entry.time_ns < from_ns);
        let last = self.logs.partition_point(|entry| entry.time_ns < to_ns);
        &self.logs[first..last.max(first)]
    }

    /// The PostgreSQL, Docker and Tempo facts at `time_ms`.
    pub fn facts_at(&self, time_ms: i64) -> Facts<'_> {
        Facts { world: &self.world, noise: &self.noise, time_ms }
    }

    /// The incidents of the script, by the time they start firing.
    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// The virtual time at `wall_elapsed_ms` after the demo started at
    /// `speed`: the demo begins at the start of the day, with everything
    /// before it (the lead-in and the week-ago baseline) loaded at once.
    pub fn virtual_time(&self, wall_elapsed_ms: i64, speed: f64) -> i64 {
        self.start_ms() + (wall_elapsed_ms as f64 * speed) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_day_and_another_seed_another() {
        let one = Day::busflow();
        let again = Day::busflow();
        let other = Day::busflow_at(DEFAULT_START_MS, DEFAULT_SEED + 1);
        let window = (one.start_ms() + 3 * HOUR_MS, one.start_ms() + 3 * HOUR_MS + 10 * MINUTE_MS);
        let values = |day: &Day| -> Vec<(Labels, i64, u64)> {
            day.samples_between(window.0, window.1)
                .iter()
                .map(|sample| (sample.labels.clone(), sample.time_ms, sample.value.to_bits()))
                .collect()
        };
        assert_eq!(values(&one), values(&again));
        assert_ne!(values(&one), values(&other));
        assert_eq!(one.logs_between(window.0, window.1), again.logs_between(window.0, window.1));
        assert_ne!(one.logs_between(window.0, window.1), other.logs_between(window.0, window.1));
        assert_eq!(one.incidents(), other.incidents(), "the script does not depend on the noise");
        let facts = |day: &Day| day.facts_at(window.1).docker();
        assert_eq!(facts(&one), facts(&again));
    }

    /// The demo's day starts whenever the demo does; what it shows (and so every
    /// triage branch) must not depend on the wall's hour: a day started at night
    /// holds the same samples, shifted, with timestamps as values shifted too.
    #[test]
    fn a_day_started_at_another_hour_is_the_same_day_shifted() {
        let morning = Day::busflow();
        let shift_ms = 19 * HOUR_MS + 45 * MINUTE_MS;
        let night = Day::busflow_at(DEFAULT_START_MS + shift_ms, DEFAULT_SEED);
        assert_eq!(night.start_ms(), morning.start_ms() + shift_ms);
        let mut compared = 0;
        // The week-ago baseline's first hour, the lead-in, and two hours of the day.
        for (from_hour, to_hour) in [(-7 * 24 - 1, -7 * 24), (-1, 0), (0, 1), (10, 11)] {
            let from_ms = morning.start_ms() + from_hour * HOUR_MS;
            let to_ms = morning.start_ms() + to_hour * HOUR_MS;
            let key = |sample: &Sample<'_>, shift_ms: i64| (sample.labels.clone(), sample.time_ms - shift_ms);
            let night_samples: std::collections::HashMap<(Labels, i64), f64> = night
                .samples_between(from_ms + shift_ms, to_ms + shift_ms)
                .iter()
                .map(|sample| (key(sample, shift_ms), sample.value))
                .collect();
            let morning_samples = morning.samples_between(from_ms, to_ms);
            assert_eq!(morning_samples.len(), night_samples.len());
            for sample in &morning_samples {
                let other = night_samples[&key(sample, 0)];
                let difference = other - sample.value;
                let same = other.to_bits() == sample.value.to_bits()
                    || [shift_ms as f64, shift_ms as f64 / 1000.0]
                        .iter()
                        .any(|shift| (difference - shift).abs() < 1e-3);
                assert!(
                    same,
                    "{:?} at {}: {} in the morning, {other} at night",
                    sample.labels, sample.time_ms, sample.value
                );
                compared += 1;
            }
        }
        assert!(compared > 100_000, "{compared} samples compared");
        assert_eq!(morning.incidents().len(), night.incidents().len());
    }

    #[test]
    fn slices_of_the_day_add_up_to_the_whole() {
        let day = Day::busflow();
        let (from, to) = (day.start_ms(), day.start_ms() + HOUR_MS);
        let whole = day.samples_between(from, to).len();
        let mut parts = 0;
        let mut time_ms = from;
        while time_ms < to {
            parts += day.samples_between(time_ms, (time_ms + 7 * SECOND_MS).min(to)).len();
            time_ms += 7 * SECOND_MS;
        }
        assert_eq!(parts, whole);
        let logs = day.logs_between(from, to).len();
        let halves = day.logs_between(from, from + HOUR_MS / 2).len() + day.logs_between(from + HOUR_MS / 2, to).len();
        assert_eq!(logs, halves);
        assert!(logs > 300, "{logs} lines in an hour");
    }

    #[test]
    fn counters_never_decrease_and_histograms_are_cumulative() {
        let day = Day::busflow();
        let mut last: std::collections::HashMap<&Labels, f64> = std::collections::HashMap::new();
        for sample in day.samples_between(day.data_start_ms(), day.end_ms()) {
            let name = &sample.labels[0].1;
            // MinIO names some gauges `_total`; they are not counters.
            let counter = !name.starts_with("minio_")
                && (name.ends_with("_total") || name.ends_with("_count") || name.ends_with("_bucket"));
            if !counter || sample.value.is_nan() {
                continue;
            }
            if let Some(previous) = last.insert(sample.labels, sample.value) {
                assert!(sample.value >= previous, "{:?} went from {previous} to {}", sample.labels, sample.value);
            }
        }
        // At one instant, each histogram's buckets grow with `le` and +Inf equals the count.
        let at = day.start_ms() + 2 * HOUR_MS;
        let samples = day.samples_between(at, at + SCRAPE_INTERVAL_MS);
        let bookings: Vec<&Sample> = samples
            .iter()
            .filter(|sample| {
                sample.labels.iter().any(|(n, v)| n == "http_route" && v == "/api/bookings")
                    && sample.labels.iter().any(|(n, v)| n == "tenant_id" && v == "t1")
                    && sample.labels.iter().any(|(n, v)| n == "http_response_status_code" && v == "200")
            })
            .collect();
        let label = |sample: &Sample, name: &str| {
            sample.labels.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).unwrap_or_default()
        };
        let mut buckets: Vec<(f64, f64)> = bookings
            .iter()
            .filter(|sample| label(sample, "__name__").ends_with("_bucket"))
            .map(|sample| (label(sample, "le").parse::<f64>().unwrap_or(f64::INFINITY), sample.value))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(buckets.len(), metrics::LATENCY_BUCKETS.len() + 1);
        assert!(buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1), "{buckets:?}");
        let count = bookings.iter().find(|sample| label(sample, "__name__").ends_with("_count")).map(|s| s.value);
        assert_eq!(count, buckets.last().map(|bucket| bucket.1));
    }

    #[test]
    fn every_alert_of_the_catalog_has_an_incident_and_the_day_fits_fifteen_minutes() {
        let day = Day::busflow();
        for id in ["A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8", "A9", "A10", "A11", "A12"] {
            assert!(day.incidents().iter().any(|incident| incident.alert_id == id), "no incident for {id}");
        }
        let fifteen_minutes = day.virtual_time(15 * MINUTE_MS, DEFAULT_SPEED);
        for incident in day.incidents() {
            assert!(incident.fires_by_ms <= fifteen_minutes, "{} fires too late", incident.name);
            assert!(incident.fires_from_ms >= day.start_ms(), "{} fires before the day", incident.name);
            assert!(!incident.triage.is_empty());
        }
    }
}
