//! The script of the Busflow day: what goes wrong, when, and what each
//! incident must make alertbook do.
//!
//! An [`Episode`] is a cause with a time window (minutes from the start of
//! the day): a tenant's errors, a stuck compactor, a Grafana deploy that
//! drifted its environment. The generators ([`crate::metrics`],
//! [`crate::logs`], [`crate::facts`]) ask the script what is going on at a
//! time and write telemetry to match; nothing else is scripted. Each episode
//! gives the [`Incident`]s it should page for: which alert (by runbook ID and
//! alertname, with the labels that tell its instance), when it must start
//! firing, when it must have stopped, and the triage path its facts imply.
//!
//! The episodes cover every alert A1 to A12 and both sides of the runbook's
//! branches where the data can show them: A1 on one tenant, then broad (lock
//! waits inside the 72 h warm-rollback window, lock waits after it, and no
//! lock waits); A2 a regressed statement, load with room to scale, load at
//! the replica ceiling, load without spare CPU, and neither; A3 one rule,
//! then several (reached by a triage re-run while the 24 h window keeps it
//! firing); A4 a scrub job on a lock, a refresh job, and another job; A6 an
//! unhealthy compactor and a full bucket; A7 a drifted environment and a
//! correct one; A8 a missing and a stub secret; A9 the DNS and the HTTP
//! challenge; A10 each provider; A11 a crash loop, wrong-network timeouts
//! and Qdrant down; A12 a backend on the wrong network.

use crate::clock::MINUTE_MS;

/// Busflow's tenants and their share of API traffic.
pub const TENANTS: [(&str, f64); 6] =
    [("t1", 0.24), ("t2", 0.18), ("t3", 0.15), ("t4", 0.20), ("t5", 0.13), ("t6", 0.10)];

/// What goes wrong in an episode.
#[derive(Debug, Clone, PartialEq)]
pub enum Cause {
    /// One tenant's requests fail (its integration floods the messages queue).
    TenantErrors { tenant: &'static str, error_ratio: f64 },
    /// Every tenant's requests fail; `lock_waits` sessions wait on locks in PostgreSQL.
    BroadErrors { error_ratio: f64, lock_waits: u32 },
    /// A statement of /api/bookings regressed (a migration dropped an index).
    RegressedStatement,
    /// More traffic than usual; `busy_nodes`: a batch job also holds the swarm's CPUs.
    Load { factor: f64, busy_nodes: bool },
    /// /api/bookings waits on a slower dependency, neither load nor a statement.
    SlowDependency,
    /// Faro lines carrying personal data, each matched by the given PII rule.
    PiiLeak { rules: &'static [&'static str] },
    /// The runs of a pg_cron job fail with `message`.
    CronFailures { job: &'static str, message: &'static str },
    /// A tenant migration creates one MinIO bucket per tenant.
    TenantBuckets { count: usize },
    /// The Loki compactor stopped compacting (since before the day began).
    CompactorStuck,
    /// An ingest surge fills the loki bucket; the compactor is fine.
    BucketSurge,
    /// Grafana refuses JWTs; `env_drift`: a deploy changed its cookie settings.
    JwtFailures { env_drift: bool },
    /// The postgres exporter runs without its DSN secret (`stub`: with a stub one).
    ExporterGate { stub: bool },
    /// A Traefik ACME certificate is not renewed.
    CertExpiring { cn: &'static str },
    /// An external dependency's probe fails with `reason`.
    DependencyDown { probe: &'static str, reason: &'static str },
    /// Qdrant is down (OOM-killed, its replacement cannot be scheduled).
    QdrantDown,
    /// context-engine crash-loops on a missing environment variable.
    CrashLoop { service: &'static str },
    /// A studio service joined a second overlay network without `traefik.swarm.network`.
    WrongNetwork { service: &'static str, address: &'static str },
    /// Uptime Kuma's maintenance window for a monitor (pages nothing).
    Maintenance { monitor: &'static str },
}

/// A cause between two offsets from the start of the day, in minutes.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub name: &'static str,
    pub from_minute: i64,
    pub until_minute: i64,
    pub cause: Cause,
}

impl Episode {
    pub fn active(&self, minute: f64) -> bool {
        minute >= self.from_minute as f64 && minute < self.until_minute as f64
    }
}

/// When the Postgres cutover happened, in minutes from the start of the day:
/// the 72 h warm-rollback window closes 6 hours into the day.
pub const CUTOVER_MINUTE: i64 = -66 * 60;
/// The compactor's last successful run before it got stuck (minutes from the start).
pub const COMPACTOR_STUCK_SINCE_MINUTE: i64 = -172;
/// The minute the operator restarts the compactor.
pub const COMPACTOR_RESTART_MINUTE: i64 = 40;
/// Minutes from the start at which each certificate Traefik holds stops being valid,
/// until it is renewed at the episode's end (then 90 days later).
pub const CERT_EXPIRY_OFFSET_MINUTES: [(&str, i64); 2] =
    [("studio.busflow.app", 14 * 24 * 60 + 25), ("grafana.busflow.app", 14 * 24 * 60 + 380)];
/// The minute the operator scales busflow_api from 4 to 6 replicas (the end of the scale-up incident).
pub const API_SCALED_MINUTE: i64 = 285;

/// Every episode of the day, in order of start.
pub fn episodes() -> Vec<Episode> {
    use Cause::*;
    let episode = |name, from_minute, until_minute, cause| Episode { name, from_minute, until_minute, cause };
    vec![
        episode("a6-compactor-stuck", COMPACTOR_STUCK_SINCE_MINUTE, COMPACTOR_RESTART_MINUTE, CompactorStuck),
        episode("a9-studio-certificate", -60, 80, CertExpiring { cn: "studio.busflow.app" }),
        episode("a1-one-tenant", 30, 62, TenantErrors { tenant: "t4", error_ratio: 0.18 }),
        episode("a10-ses", 50, 95, DependencyDown { probe: "aws-ses", reason: "auth" }),
        episode(
            "a4-scrub-lock",
            58,
            100,
            CronFailures { job: "tenant_scrub_t3", message: "ERROR:  canceling statement due to lock timeout" },
        ),
        episode("a8-secret-missing", 85, 115, ExporterGate { stub: false }),
        episode("a2-regressed-statement", 100, 140, RegressedStatement),
        episode("a7-grafana-env-drift", 125, 150, JwtFailures { env_drift: true }),
        episode("a11-qdrant-down", 145, 175, QdrantDown),
        episode("a3-one-rule", 160, 186, PiiLeak { rules: &["email"; 7] }),
        episode("a1-broad-warm-rollback", 180, 215, BroadErrors { error_ratio: 0.05, lock_waits: 7 }),
        episode("landing-maintenance", 200, 230, Maintenance { monitor: "landing" }),
        episode("a5-tenant-buckets", 205, 245, TenantBuckets { count: 110 }),
        episode("a2-load-scale-up", 240, API_SCALED_MINUTE, Load { factor: 1.9, busy_nodes: false }),
        episode("a10-object-storage", 270, 320, DependencyDown { probe: "hetzner-object-storage", reason: "timeout" }),
        episode("a6-bucket-surge", 290, 350, BucketSurge),
        episode("a11-a12-docs-hub-network", 300, 330, WrongNetwork { service: "docs-hub", address: "10.0.3.9:3000" }),
        episode(
            "a4-refresh",
            328,
            370,
            CronFailures {
                job: "refresh_trip_stats",
                message: "ERROR:  could not resize shared memory segment \"/PostgreSQL.1450109744\" to 8388608 bytes: No space left on device",
            },
        ),
        episode("a8-secret-stub", 340, 370, ExporterGate { stub: true }),
        episode("a9-grafana-certificate", 300, 420, CertExpiring { cn: "grafana.busflow.app" }),
        episode("a2-slow-dependency", 385, 425, SlowDependency),
        episode("a3-several-rules", 400, 416, PiiLeak { rules: &["iban", "phone_e164", "iban", "phone_e164"] }),
        episode("a7-idp-key-rotated", 440, 465, JwtFailures { env_drift: false }),
        episode("a11-crash-loop", 450, 480, CrashLoop { service: "context-engine" }),
        episode("a1-broad-p1", 490, 525, BroadErrors { error_ratio: 0.06, lock_waits: 9 }),
        episode("a2-load-at-ceiling", 530, 575, Load { factor: 1.9, busy_nodes: false }),
        episode("a1-broad-not-postgres", 580, 615, BroadErrors { error_ratio: 0.045, lock_waits: 0 }),
        episode("a10-llm-provider", 600, 650, DependencyDown { probe: "llm-provider", reason: "status" }),
        episode("a2-load-no-spare-capacity", 620, 665, Load { factor: 1.8, busy_nodes: true }),
        episode(
            "a4-other-job",
            658,
            700,
            CronFailures {
                job: "snapshot_pg_stat_statements",
                message: "ERROR:  permission denied for table pg_stat_statements_snapshots",
            },
        ),
    ]
}

/// A triage run the incident implies: at the first firing (`at_ms` `None`)
/// or at a re-run at `at_ms`, the branches taken in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedTriage {
    pub at_ms: Option<i64>,
    pub path: Vec<&'static str>,
}

/// One alert the day must page for.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    /// The episode's name (`a1-one-tenant`).
    pub name: &'static str,
    /// The runbook ID (`A1`).
    pub alert_id: &'static str,
    pub alertname: &'static str,
    /// Labels that tell this alert instance from others of the alertname (a subset of its labels).
    pub labels: Vec<(String, String)>,
    /// What happens, in one line.
    pub story: &'static str,
    /// When the cause begins and ends.
    pub cause_from_ms: i64,
    pub cause_until_ms: i64,
    /// The alert must start firing in `[fires_from_ms, fires_by_ms]`…
    pub fires_from_ms: i64,
    pub fires_by_ms: i64,
    /// …and fire no later than `resolves_by_ms`.
    pub resolves_by_ms: i64,
    pub triage: Vec<ExpectedTriage>,
}

impl Incident {
    /// Whether an alert with these labels is this incident's instance.
    pub fn matches(&self, alertname: &str, labels: &[(String, String)]) -> bool {
        alertname == self.alertname
            && self.labels.iter().all(|(name, value)| labels.iter().any(|(n, v)| n == name && v == value))
    }
}

/// The incidents of `episodes` for a day starting at `start_ms` and lasting `length_ms`.
pub fn incidents(episodes: &[Episode], start_ms: i64, length_ms: i64) -> Vec<Incident> {
    let at = |minute: f64| start_ms + (minute * MINUTE_MS as f64) as i64;
    let end_of_day = start_ms + length_ms;
    let mut incidents = Vec::new();
    for episode in episodes {
        let (from, until) = (episode.from_minute as f64, episode.until_minute as f64);
        let mut push = |alert_id: &'static str,
                        alertname: &'static str,
                        labels: &[(&str, &str)],
                        story: &'static str,
                        fires: (f64, f64),
                        resolves_by: f64,
                        triage: Vec<ExpectedTriage>| {
            incidents.push(Incident {
                name: episode.name,
                alert_id,
                alertname,
                labels: labels.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect(),
                story,
                cause_from_ms: at(from),
                cause_until_ms: at(until),
                fires_from_ms: at(fires.0),
                fires_by_ms: at(fires.1),
                resolves_by_ms: at(resolves_by).min(end_of_day),
                triage,
            });
        };
        let first = |path: &[&'static str]| vec![ExpectedTriage { at_ms: None, path: path.to_vec() }];
        match &episode.cause {
            Cause::TenantErrors { .. } => push(
                "A1",
                "HighApiErrorRate",
                &[],
                "tenant t4's integration floods communications.messages; its requests answer 500",
                (from + 5.0, from + 14.0),
                until + 12.0,
                first(&["one-tenant"]),
            ),
            Cause::BroadErrors { lock_waits, .. } => {
                let cutover_closes = (CUTOVER_MINUTE + 72 * 60) as f64;
                let path: &[&str] = if *lock_waits == 0 {
                    &["broad", "not-postgres"]
                } else if from < cutover_closes {
                    &["broad", "postgres-rooted", "warm-rollback"]
                } else {
                    &["broad", "postgres-rooted", "p1-incident"]
                };
                let story = if *lock_waits == 0 {
                    "Hasura's metadata went inconsistent after a deploy; every tenant gets 500s, PostgreSQL is fine"
                } else {
                    "a long migration holds locks on bookings; requests of every tenant time out and answer 500"
                };
                push("A1", "HighApiErrorRate", &[], story, (from + 5.0, from + 14.0), until + 12.0, first(path))
            }
            Cause::RegressedStatement => push(
                "A2",
                "LatencySloBreach",
                &[],
                "a migration dropped an index; the bookings lookup is six times slower than last week",
                (from + 10.0, from + 20.0),
                until + 10.0,
                first(&["regressed-query"]),
            ),
            Cause::Load { busy_nodes, .. } => {
                let (story, path): (&'static str, &[&str]) = if *busy_nodes {
                    (
                        "an afternoon booking rush while a reporting batch holds the swarm's CPUs",
                        &["no-regression", "load-driven", "no-spare-capacity"],
                    )
                } else if from < API_SCALED_MINUTE as f64 {
                    (
                        "a school-holiday booking rush; four busflow_api replicas are saturated and the swarm has room",
                        &["no-regression", "load-driven", "spare-capacity", "scale-up"],
                    )
                } else {
                    (
                        "another booking rush; busflow_api already runs at the replica ceiling",
                        &["no-regression", "load-driven", "spare-capacity", "at-ceiling"],
                    )
                };
                push("A2", "LatencySloBreach", &[], story, (from + 10.0, from + 20.0), until + 10.0, first(path))
            }
            Cause::SlowDependency => push(
                "A2",
                "LatencySloBreach",
                &[],
                "the seat-map service answers slowly; no statement regressed and the load is as last week",
                (from + 10.0, from + 20.0),
                until + 10.0,
                first(&["no-regression", "not-load-driven"]),
            ),
            Cause::PiiLeak { rules } if rules.iter().all(|rule| *rule == rules[0]) => {
                // The sixth match in 24 h fires: the matches come every 3.5 minutes.
                let sixth = from + 5.0 * pii_spacing(episode) + 1.0;
                let mut triage = first(&["one-rule"]);
                if let Some(later) = episodes.iter().find(|other| {
                    other.from_minute > episode.from_minute
                        && matches!(&other.cause, Cause::PiiLeak { rules } if rules.iter().any(|rule| *rule != rules[0]))
                }) {
                    triage.push(ExpectedTriage {
                        at_ms: Some(at(later.until_minute as f64 + 5.0)),
                        path: vec!["several-rules"],
                    });
                }
                push(
                    "A3",
                    "PiiLeakDetected",
                    &[],
                    "the booking form logs the customer's e-mail address to Faro; later IBANs and phone numbers follow",
                    (sixth - 1.0, sixth + 2.0),
                    // The 24 h window keeps it firing for the rest of the day.
                    (length_ms / MINUTE_MS) as f64,
                    triage,
                )
            }
            Cause::PiiLeak { .. } => {}
            Cause::CronFailures { job, message } => {
                let class = if job.starts_with("tenant_scrub_") {
                    "scrub"
                } else if job.starts_with("refresh_") {
                    "refresh"
                } else {
                    "other-job"
                };
                let lock = if message.contains("lock") { "hot-lock" } else { "not-a-lock" };
                let story = match class {
                    "scrub" => "the GDPR scrub of tenant t3 runs into a lock held by a long VACUUM FULL",
                    "refresh" => "the trip statistics refresh runs out of shared memory in its container",
                    _ => "a role change took the snapshot job's permission on its table",
                };
                // Runs every 15 minutes from the start; the second failed run's end fires.
                let first_run = (from / 15.0).ceil() * 15.0;
                push(
                    "A4",
                    "PgCronJobFailed",
                    &[("jobname", job)],
                    story,
                    (first_run + 15.0, first_run + 18.0),
                    (until / 15.0).ceil() * 15.0 + 3.0,
                    first(&[class, lock]),
                )
            }
            Cause::TenantBuckets { .. } => push(
                "A5",
                "CardinalityExplosion",
                &[("metric", "minio_bucket_usage_total_bytes")],
                "a tenant migration creates one MinIO bucket per tenant; the bucket label explodes",
                (from, from + 3.0),
                until + 3.0,
                first(&[]),
            ),
            Cause::CompactorStuck => push(
                "A6",
                "LokiCompactorBehind",
                &[],
                "the Loki compactor is stuck on a corrupt table since before dawn; restarted at 06:40",
                (from + 180.0, from + 183.0),
                until + 3.0,
                first(&["compactor-unhealthy"]),
            ),
            Cause::BucketSurge => {
                let crossing = from + BUCKET_SURGE_CROSSING_MINUTES;
                push(
                    "A6",
                    "LokiCompactorBehind",
                    &[],
                    "a debug log level left on in production fills the loki bucket past 85 % of its quota",
                    // MinIO's scanner updates the usage every few minutes.
                    (crossing - 1.0, crossing + 5.0),
                    until + 3.0,
                    first(&["compactor-healthy"]),
                )
            }
            Cause::JwtFailures { env_drift } => push(
                "A7",
                "SsoFallthrough",
                &[],
                if *env_drift {
                    "a Grafana redeploy set GF_SECURITY_COOKIE_SAMESITE=lax; embedded dashboards lose their SSO session"
                } else {
                    "tenant t2's IdP rotated its signing key; Grafana cannot verify its JWTs"
                },
                (from, from + 3.0),
                until + 7.0,
                first(&[if *env_drift { "env-drift" } else { "env-correct" }]),
            ),
            Cause::ExporterGate { stub } => push(
                "A8",
                "PostgresExporterDsnGateOpen",
                &[],
                if *stub {
                    "the bootstrap re-created pgexporter_dsn as a stub and the exporter picked it up"
                } else {
                    "busflow_postgres_exporter was scaled to 1 before secrets-sync populated pgexporter_dsn"
                },
                (from, from + 2.0),
                until + 2.0,
                first(if *stub { &["secret-attached", "secret-stub"] } else { &["secret-missing"] }),
            ),
            Cause::CertExpiring { cn } => {
                let expiry = CERT_EXPIRY_OFFSET_MINUTES
                    .iter()
                    .find(|(name, _)| name == cn)
                    .map_or(0, |(_, minutes)| *minutes - 14 * 24 * 60) as f64;
                let challenge = if *cn == "studio.busflow.app" { "dns-challenge" } else { "http-challenge" };
                push(
                    "A9",
                    "TlsCertExpiringSoon",
                    &[("cn", cn)],
                    if *cn == "studio.busflow.app" {
                        "the Cloudflare token of the DNS challenge was revoked; studio.busflow.app is not renewed"
                    } else {
                        "a redirect middleware swallows /.well-known/acme-challenge/; grafana.busflow.app is not renewed"
                    },
                    (expiry, expiry + 6.0),
                    until + 6.0,
                    first(&[challenge]),
                )
            }
            Cause::DependencyDown { probe, .. } => {
                let branch = match *probe {
                    "aws-ses" => "ses",
                    "hetzner-object-storage" => "object-storage",
                    _ => "llm-provider",
                };
                push(
                    "A10",
                    "ExternalDependencyDown",
                    &[("probe", probe)],
                    match *probe {
                        "aws-ses" => "the SES SMTP credentials expired",
                        "hetzner-object-storage" => "Hetzner's object storage in fsn1 times out",
                        _ => "the LLM provider is overloaded and answers 529",
                    },
                    // Three failed checks 5 minutes apart.
                    (from + 10.0, from + 16.0),
                    until + 6.0,
                    first(&[branch]),
                )
            }
            Cause::QdrantDown => {
                let path = ["tasks-stable", "no-gateway-timeouts", "qdrant-down"];
                for probe in ["qdrant", "context-engine"] {
                    push(
                        "A11",
                        "StudioServiceDown",
                        &[("probe", probe)],
                        if probe == "qdrant" {
                            "Qdrant was OOM-killed and its replacement cannot be scheduled (its volume's node is drained)"
                        } else {
                            "context-engine reports not ready while Qdrant is down"
                        },
                        (from + 1.0, from + 4.0),
                        until + 3.0,
                        first(&path),
                    );
                }
            }
            Cause::CrashLoop { service } => push(
                "A11",
                "StudioServiceDown",
                &[("probe", service)],
                "context-engine was redeployed without GEMINI_API_KEY and crash-loops",
                (from + 1.0, from + 4.0),
                until + 3.0,
                first(&["crash-loop", "no-gateway-timeouts", "qdrant-running"]),
            ),
            Cause::WrongNetwork { service, .. } => {
                push(
                    "A11",
                    "StudioServiceDown",
                    &[("probe", service)],
                    "docs-hub joined a second overlay network; Traefik and Uptime Kuma reach it on the wrong one",
                    (from + 1.0, from + 4.0),
                    until + 3.0,
                    first(&["tasks-stable", "gateway-timeouts", "multi-network", "qdrant-running"]),
                );
                let service_name = format!("{service}@swarm");
                push(
                    "A12",
                    "StudioTraefikMultiNetworkRouting",
                    &[("ServiceName", service_name.as_str())],
                    "Traefik dials docs-hub's address on its internal network and times out (504)",
                    (from, from + 3.0),
                    until + 7.0,
                    first(&["wrong-network"]),
                );
            }
            Cause::Maintenance { .. } => {}
        }
    }
    incidents.sort_by_key(|incident| (incident.fires_from_ms, incident.alert_id));
    incidents
}

/// Minutes between two lines of a PII leak episode.
pub fn pii_spacing(episode: &Episode) -> f64 {
    match &episode.cause {
        Cause::PiiLeak { rules } => (episode.until_minute - episode.from_minute) as f64 / rules.len() as f64,
        _ => 0.0,
    }
}

/// Minutes into a bucket surge at which the loki bucket reaches 85 % of its quota.
pub const BUCKET_SURGE_CROSSING_MINUTES: f64 = 43.75;
