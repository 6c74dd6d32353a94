//! What the triage checks and the SQL and Docker rules read at a moment,
//! beyond metrics and logs: the swarm as the Docker Engine API lists it,
//! PostgreSQL's answers to the catalog's queries, and Tempo's trace search.
//!
//! - [`Facts::docker`]: the Engine API 1.41+ list answers (`/services`,
//!   `/tasks`, `/secrets`, `/networks`, `/nodes`) as JSON, in the shapes a
//!   real daemon returns (recorded answers in
//!   `crates/sources/tests/fixtures/docker/`); secrets carry metadata only.
//! - [`Facts::sql_rule`] and [`Facts::sql_check`]: the rows PostgreSQL (with
//!   pg_cron 1.4's `cron.job` and `cron.job_run_details`, `pg_stat_activity`,
//!   the snapshot table of pg_stat_statements) returns for the catalog's
//!   queries, keyed by the rule's alertname or the check's `result` name,
//!   with the columns and PostgreSQL types each query selects. The simulated
//!   database has no SQL engine: each answer is computed from the simulated
//!   tables (the pg_cron runs of every job every 15 minutes, the sessions
//!   waiting on locks, the statement means) with the meaning of the query
//!   that reads it. The crate's test finds each check by the catalog's
//!   query text, so a SQL check the simulation does not answer fails it.
//! - [`Facts::tempo_search`]: Tempo's `/api/search` answer for the slow
//!   /api/bookings traces.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::clock::{self, DAY_MS, MINUTE_MS, SECOND_MS};
use crate::noise::Noise;
use crate::script::Cause;
use crate::world::World;

/// The image busflow_api runs (also cAdvisor's `image` label).
pub const API_IMAGE: &str = "registry.busflow.internal/api:2026.11.3";

const ID_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A swarm object's ID (25 characters, as swarmkit makes them), stable for a name.
pub fn object_id(noise: &Noise, kind: &str, name: &str) -> String {
    noise.word(&format!("id/{kind}/{name}"), 0, 25, ID_ALPHABET)
}

/// A task's ID: one per (service, slot, generation).
pub fn task_id(noise: &Noise, service: &str, slot: u32, generation: u32) -> String {
    noise.word(&format!("id/task/{service}"), u64::from(slot) * 1000 + u64::from(generation), 25, ID_ALPHABET)
}

/// A PostgreSQL result: columns with their type names (as sqlx reports them:
/// `TEXT`, `INT4`, `INT8`, `FLOAT8`, `TIMESTAMPTZ`) and rows of cells in
/// column order (`null` for NULL, RFC 3339 text for times).
#[derive(Debug, Clone, PartialEq)]
pub struct SqlResult {
    pub columns: Vec<(String, &'static str)>,
    pub rows: Vec<Vec<Value>>,
}

impl SqlResult {
    fn new(columns: &[(&str, &'static str)]) -> Self {
        Self { columns: columns.iter().map(|(name, kind)| ((*name).to_owned(), *kind)).collect(), rows: Vec::new() }
    }

    fn push(&mut self, row: Vec<Value>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// The rows as objects by column name, as the PostgreSQL check source returns them.
    pub fn objects(&self) -> Vec<Map<String, Value>> {
        self.rows
            .iter()
            .map(|row| self.columns.iter().map(|(name, _)| name.clone()).zip(row.iter().cloned()).collect())
            .collect()
    }
}

/// The Docker Engine API's list answers at a moment.
#[derive(Debug, Clone, PartialEq)]
pub struct DockerState {
    pub services: Value,
    pub tasks: Value,
    pub secrets: Value,
    pub networks: Value,
    pub nodes: Value,
}

/// The facts at one moment of the day.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub(crate) world: &'a World,
    pub(crate) noise: &'a Noise,
    pub time_ms: i64,
}

/// pg_cron's jobs: (jobid, jobname, schedule, command, run duration in ms).
const CRON_JOBS: [(i64, &str, &str, &str, i64); 6] = [
    (1, "tenant_scrub_t1", "*/15 * * * *", "CALL ops.scrub_tenant('t1')", 38_000),
    (2, "tenant_scrub_t3", "*/15 * * * *", "CALL ops.scrub_tenant('t3')", 41_000),
    (3, "refresh_trip_stats", "*/15 * * * *", "REFRESH MATERIALIZED VIEW CONCURRENTLY reporting.trip_stats", 21_000),
    (
        4,
        "refresh_booking_counts",
        "*/15 * * * *",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY reporting.booking_counts",
        9_000,
    ),
    (
        5,
        "snapshot_pg_stat_statements",
        "*/15 * * * *",
        "INSERT INTO ops.pg_stat_statements_snapshots SELECT now(), queryid, calls, total_exec_time FROM pg_stat_statements",
        1_200,
    ),
    (6, "nightly_analyze", "30 2 * * *", "ANALYZE", 540_000),
];

/// One run of a pg_cron job (a row of `cron.job_run_details`).
#[derive(Debug, Clone, PartialEq)]
struct CronRun {
    jobid: i64,
    jobname: &'static str,
    runid: i64,
    job_pid: i64,
    status: &'static str,
    return_message: Option<String>,
    start_ms: i64,
    end_ms: Option<i64>,
}

impl<'a> Facts<'a> {
    /// Every run started by `self.time_ms`, newest first (by start time, then runid).
    fn cron_runs(&self) -> Vec<CronRun> {
        let world = self.world;
        let mut runs = Vec::new();
        // Every 15 minutes from 8 hours before the day (the last runs of the night) until now.
        let first_slot = -(8 * 60 / 15);
        let last_slot = (self.time_ms - world.start_ms).div_euclid(15 * MINUTE_MS);
        for slot in first_slot..=last_slot {
            let boundary_ms = world.start_ms + slot * 15 * MINUTE_MS;
            for (jobid, jobname, schedule, _, duration_ms) in CRON_JOBS {
                let nightly = schedule != "*/15 * * * *";
                if nightly {
                    // 02:30 UTC: only the run of the night before.
                    let of_day = boundary_ms.rem_euclid(DAY_MS);
                    if of_day != 2 * 3_600_000 + 30 * MINUTE_MS {
                        continue;
                    }
                }
                let start_ms = boundary_ms + 3 * jobid;
                if start_ms > self.time_ms {
                    continue;
                }
                let failure = world
                    .find(boundary_ms, |cause| matches!(cause, Cause::CronFailures { job, .. } if *job == jobname))
                    .and_then(|episode| match episode.cause {
                        Cause::CronFailures { message, .. } => Some(message),
                        _ => None,
                    });
                // A failed run ends when its statement is cancelled (lock_timeout, statement_timeout: 10 s).
                let end_ms = start_ms + if failure.is_some() { 10_000 } else { duration_ms };
                let (status, message) = if end_ms > self.time_ms {
                    ("running", None)
                } else if let Some(message) = failure {
                    ("failed", Some(message.to_owned()))
                } else {
                    let message = match jobname {
                        name if name.starts_with("tenant_scrub_") => "CALL".to_owned(),
                        name if name.starts_with("refresh_") => "REFRESH MATERIALIZED VIEW".to_owned(),
                        "snapshot_pg_stat_statements" => {
                            format!("INSERT 0 {}", 400 + self.noise.below("cron/rows", slot as u64, 30))
                        }
                        _ => "ANALYZE".to_owned(),
                    };
                    ("succeeded", Some(message))
                };
                runs.push(CronRun {
                    jobid,
                    jobname,
                    runid: 48_000 + (slot - first_slot) * 8 + jobid,
                    job_pid: 20_000 + self.noise.below("cron/pid", (slot * 8 + jobid) as u64, 40_000) as i64,
                    status,
                    return_message: message,
                    start_ms,
                    end_ms: (status != "running").then_some(end_ms),
                });
            }
        }
        runs.sort_by(|a, b| b.start_ms.cmp(&a.start_ms).then(b.runid.cmp(&a.runid)));
        runs
    }

    /// The rows of a `datasource: sql` rule's query, by its alertname.
    pub fn sql_rule(&self, alertname: &str) -> Option<SqlResult> {
        match alertname {
            "PgCronJobFailed" => {
                // The last two finished runs of a job, both failed.
                let runs = self.cron_runs();
                let mut result = SqlResult::new(&[("jobname", "TEXT"), ("jobid", "INT8"), ("failed_runs", "INT8")]);
                for (jobid, jobname, ..) in CRON_JOBS {
                    let finished: Vec<&CronRun> = runs
                        .iter()
                        .filter(|run| run.jobid == jobid && matches!(run.status, "succeeded" | "failed"))
                        .take(2)
                        .collect();
                    if finished.len() == 2 && finished.iter().all(|run| run.status == "failed") {
                        result.push(vec![json!(jobname), json!(jobid), json!(2)]);
                    }
                }
                Some(result)
            }
            _ => None,
        }
    }

    /// The rows of a triage check's SQL query, by the check's `result` name,
    /// for the alert with `labels` (checks may name `$labels.jobname`).
    pub fn sql_check(&self, result: &str, labels: &BTreeMap<String, String>) -> Option<SqlResult> {
        let world = self.world;
        let time_ms = self.time_ms;
        let jobname = labels.get("jobname").map(String::as_str).unwrap_or_default();
        let answer = match result {
            "tenant_backpressure" => {
                let flooded = world.find(time_ms, |cause| matches!(cause, Cause::TenantErrors { .. })).is_some();
                let mut result = SqlResult::new(&[("source", "TEXT"), ("pending", "INT8")]);
                let pending =
                    if flooded { 1840 } else { 12 } + self.noise.below("sql/pending", world.minute_index(time_ms), 9);
                result.push(vec![json!("communications.messages"), json!(pending)]);
                result.push(vec![json!("operations.incidents"), json!(if flooded { 3 } else { 0 })]);
                result
            }
            "lock_waits" => {
                let mut result = SqlResult::new(&[("lock_waits", "INT8")]);
                result.push(vec![json!(world.lock_waits(time_ms))]);
                result
            }
            "blockers" => {
                let mut result =
                    SqlResult::new(&[("blocked_pid", "INT4"), ("blocking_pid", "INT4"), ("blocking_query", "TEXT")]);
                let waits = world.lock_waits(time_ms);
                for waiter in 0..waits {
                    result.push(vec![json!(4200 + waiter * 17), json!(4100), json!("VACUUM FULL tenants.bookings")]);
                }
                result
            }
            "disabled_scrubs" => {
                let mut result = SqlResult::new(&[("disabled", "INT8")]);
                result.push(vec![json!(0)]);
                result
            }
            "recent_runs" => {
                let mut result = SqlResult::new(&[
                    ("jobname", "TEXT"),
                    ("status", "TEXT"),
                    ("start_time", "TIMESTAMPTZ"),
                    ("end_time", "TIMESTAMPTZ"),
                    ("return_message", "TEXT"),
                ]);
                for run in self.cron_runs().into_iter().take(20) {
                    result.push(vec![
                        json!(run.jobname),
                        json!(run.status),
                        json!(clock::rfc3339_micros(run.start_ms)),
                        run.end_ms.map_or(Value::Null, |end| json!(clock::rfc3339_micros(end))),
                        run.return_message.map_or(Value::Null, Value::String),
                    ]);
                }
                result
            }
            "failed_job" | "last_failure" => {
                let last = self.cron_runs().into_iter().find(|run| run.jobname == jobname && run.status == "failed");
                let mut result = if result == "failed_job" {
                    SqlResult::new(&[("jobname", "TEXT"), ("return_message", "TEXT")])
                } else {
                    SqlResult::new(&[("return_message", "TEXT")])
                };
                if let Some(run) = last {
                    let message = run.return_message.map_or(Value::Null, Value::String);
                    if result.columns.len() == 2 {
                        result.push(vec![json!(run.jobname), message]);
                    } else {
                        result.push(vec![message]);
                    }
                }
                result
            }
            "statement_regressions" => self.statement_regressions(),
            _ => return None,
        };
        Some(answer)
    }

    /// pg_stat_statements against its snapshots: each statement's mean over
    /// the last hour and over the week before, slowest-down first.
    fn statement_regressions(&self) -> SqlResult {
        let mut result = SqlResult::new(&[
            ("queryid", "TEXT"),
            ("recent_mean_ms", "FLOAT8"),
            ("baseline_mean_ms", "FLOAT8"),
            ("slowdown", "FLOAT8"),
        ]);
        let regressed = self
            .world
            .latest(self.time_ms, |cause| *cause == Cause::RegressedStatement)
            .is_some_and(|episode| self.world.minute(self.time_ms) < episode.until_minute as f64 + 60.0);
        let statements = [
            ("-4263913428394772321", 3.9, regressed),
            ("8812034455128873310", 1.2, false),
            ("-118273645502938111", 0.41, false),
            ("2290017736410094532", 12.7, false),
            ("7001923847561029384", 0.09, false),
        ];
        let mut rows: Vec<(String, f64, f64)> = statements
            .iter()
            .enumerate()
            .map(|(index, (queryid, baseline, slow))| {
                let drift = 0.9
                    + 0.35 * self.noise.uniform("sql/drift", self.world.minute_index(self.time_ms) * 8 + index as u64);
                let recent = baseline * if *slow { 6.4 } else { drift };
                ((*queryid).to_owned(), (recent * 1000.0).round() / 1000.0, *baseline)
            })
            .collect();
        rows.sort_by(|a, b| (b.1 / b.2).total_cmp(&(a.1 / a.2)));
        for (queryid, recent, baseline) in rows {
            result.push(vec![
                json!(queryid),
                json!(recent),
                json!(baseline),
                json!(((recent / baseline) * 1000.0).round() / 1000.0),
            ]);
        }
        result
    }

    /// Tempo's `/api/search` answer for slow /api/bookings requests: ten
    /// traces with their `db.statement` spans while bookings are slow, none otherwise.
    pub fn tempo_search(&self) -> Value {
        let factor = self.world.latency_factor("/api/bookings", self.time_ms);
        let regressed = self.world.find(self.time_ms, |cause| *cause == Cause::RegressedStatement).is_some();
        let mut traces = Vec::new();
        if factor > 1.0 {
            for index in 0..10u64 {
                let key = (self.time_ms / MINUTE_MS) as u64 * 16 + index;
                let duration_ms = (800.0 + 900.0 * self.noise.uniform("tempo/duration", key)).round() as i64;
                let start_ns = (self.time_ms - (index as i64 + 1) * 20 * SECOND_MS) * 1_000_000;
                let statement = if regressed {
                    "SELECT b.id, b.seat_id, b.status FROM bookings b WHERE b.tenant_id = $1 AND b.trip_id = $2"
                } else if self.world.find(self.time_ms, |cause| *cause == Cause::SlowDependency).is_some() {
                    "SELECT s.id, s.row, s.col FROM seats s WHERE s.trip_id = $1"
                } else {
                    "SELECT b.id, b.seat_id FROM bookings b JOIN seats s ON s.id = b.seat_id WHERE b.trip_id = $1 FOR UPDATE"
                };
                let span = json!({
                    "spanID": self.noise.hex("tempo/span", key, 16),
                    "name": "GET /api/bookings",
                    "startTimeUnixNano": start_ns.to_string(),
                    "durationNanos": (duration_ms * 1_000_000).to_string(),
                    "attributes": [
                        {"key": "http.route", "value": {"stringValue": "/api/bookings"}},
                        {"key": "db.statement", "value": {"stringValue": statement}}
                    ]
                });
                traces.push(json!({
                    "traceID": self.noise.hex("tempo/trace", key, 32),
                    "rootServiceName": "busflow_api",
                    "rootTraceName": "GET /api/bookings",
                    "startTimeUnixNano": start_ns.to_string(),
                    "durationMs": duration_ms,
                    "spanSet": {"spans": [span.clone()], "matched": 1},
                    "spanSets": [{"spans": [span], "matched": 1}]
                }));
            }
        }
        json!({
            "traces": traces,
            "metrics": {"inspectedTraces": 3100, "inspectedBytes": "630188", "totalBlocks": 13, "completedJobs": 13, "totalJobs": 13}
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::{Day, MINUTE_MS};

    fn failing_jobs(day: &Day, minute: f64) -> Vec<String> {
        let at = day.start_ms() + (minute * MINUTE_MS as f64) as i64;
        let result = day.facts_at(at).sql_rule("PgCronJobFailed").expect("answered");
        assert_eq!(
            result.columns.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
            ["jobname", "jobid", "failed_runs"]
        );
        result.rows.iter().map(|row| row[0].as_str().unwrap_or_default().to_owned()).collect()
    }

    #[test]
    fn a_job_fails_the_rule_after_its_second_failed_run_and_clears_after_a_success() {
        let day = Day::busflow();
        // tenant_scrub_t3 fails its runs at +60, +75 and +90 minutes and succeeds at +105.
        assert!(failing_jobs(&day, 74.0).is_empty(), "one failed run is not enough");
        // The run of +75 is still running for its first 10 seconds.
        assert!(failing_jobs(&day, 75.0 + 5.0 / 60.0).is_empty());
        assert_eq!(failing_jobs(&day, 76.0), ["tenant_scrub_t3"]);
        assert_eq!(failing_jobs(&day, 104.0), ["tenant_scrub_t3"]);
        assert!(failing_jobs(&day, 106.0).is_empty(), "a success clears it");

        let labels = [("jobname".to_owned(), "tenant_scrub_t3".to_owned())].into_iter().collect();
        let facts = day.facts_at(day.start_ms() + 80 * MINUTE_MS);
        let failed = facts.sql_check("failed_job", &labels).expect("answered").objects();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0]["return_message"], "ERROR:  canceling statement due to lock timeout");
        let blockers = facts.sql_check("blockers", &labels).expect("answered");
        assert!(!blockers.rows.is_empty(), "a lock episode has a blocker to capture");
        let recent = facts.sql_check("recent_runs", &labels).expect("answered").objects();
        assert_eq!(recent.len(), 20);
        assert!(recent.windows(2).all(|pair| pair[0]["start_time"].as_str() >= pair[1]["start_time"].as_str()));
        assert!(facts.sql_check("no_such_result", &labels).is_none());
    }

    #[test]
    fn the_swarm_follows_the_script() {
        let day = Day::busflow();
        let exporter = |minute: i64| {
            let swarm = day.facts_at(day.start_ms() + minute * MINUTE_MS).docker();
            let services = swarm.services.as_array().cloned().unwrap_or_default();
            let service = services
                .into_iter()
                .find(|service| service["Spec"]["Name"] == "busflow_postgres_exporter")
                .expect("the exporter service is listed");
            let secrets: Vec<String> = swarm
                .secrets
                .as_array()
                .into_iter()
                .flatten()
                .map(|secret| secret["Spec"]["Name"].as_str().unwrap_or_default().to_owned())
                .collect();
            (
                service["Spec"]["Mode"]["Replicated"]["Replicas"].as_u64(),
                service["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"].clone(),
                secrets,
            )
        };
        let (replicas, attached, _) = exporter(60);
        assert_eq!(replicas, Some(0));
        assert!(attached.is_null());
        let (replicas, attached, secrets) = exporter(90);
        assert_eq!(replicas, Some(1), "scaled up before its secret exists");
        assert!(attached.is_null());
        assert!(!secrets.contains(&"pgexporter_dsn".to_owned()));
        let (replicas, attached, secrets) = exporter(350);
        assert_eq!(replicas, Some(1));
        assert_eq!(attached[0]["SecretName"], "pgexporter_dsn");
        assert!(secrets.contains(&"pgexporter_dsn".to_owned()));
    }
}
