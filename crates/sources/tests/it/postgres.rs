//! The PostgreSQL datasource against a real PostgreSQL 15 with pg_cron
//! (`scripts/peers/postgres.sh`): the shared cluster's superuser DSN comes in
//! `ALERTBOOK_TEST_POSTGRES_URL`; the test that stops its server starts a
//! cluster of its own with the same script. pg_cron's tables exist once per
//! cluster, so each test names its jobs with its own prefix and looks only at
//! the alerts of those jobs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rules::{AlertState, Datasource as _};
use sources::health::{DatasourceType, HealthMetrics};
use sources::sql::{PostgresDatasource, PostgresOptions, SqlError};
use sqlx::Connection as _;

const SHARED_URL: &str = "ALERTBOOK_TEST_POSTGRES_URL";
/// The read-only role the datasource logs in as, and its password.
const READER: &str = "alertbook_reader";
const READER_PASSWORD: &str = "reader-pw-7f3c9d21";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared cluster's superuser DSN; `None` (skip) only when ALERTBOOK_SKIP_PEERS=1.
fn shared_url() -> Option<String> {
    if let Ok(url) = std::env::var(SHARED_URL) {
        return Some(url);
    }
    if std::env::var("ALERTBOOK_SKIP_PEERS").as_deref() == Ok("1") {
        eprintln!("skipped: ALERTBOOK_SKIP_PEERS=1 and no PostgreSQL");
        return None;
    }
    panic!(
        "{SHARED_URL} is not set: these tests need a real PostgreSQL with pg_cron; run scripts/test, or \
         `source scripts/peers/postgres.sh` in the shell before cargo test (ALERTBOOK_SKIP_PEERS=1 skips them)"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Runs `sql` (one or more statements) as the superuser.
fn admin(url: &str, sql: &str) {
    runtime().block_on(async {
        let mut connection = sqlx::PgConnection::connect(url).await.expect("connect as superuser");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
    });
}

/// One value of `sql` as text, as the superuser.
fn admin_value(url: &str, sql: &str) -> Option<String> {
    runtime().block_on(async {
        let mut connection = sqlx::PgConnection::connect(url).await.expect("connect as superuser");
        sqlx::query_scalar::<_, Option<String>>(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut connection)
            .await
            .unwrap_or_else(|error| panic!("{sql}: {error}"))
    })
}

/// The read-only role: pg_cron's tables have row-level security (each user
/// sees its own jobs), so a monitoring role needs BYPASSRLS to see them all.
fn create_reader(url: &str) {
    admin(
        url,
        &format!(
            "DO $$ BEGIN
               IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER}') THEN
                 CREATE ROLE {READER} LOGIN BYPASSRLS PASSWORD '{READER_PASSWORD}';
               END IF;
             END $$;
             GRANT USAGE ON SCHEMA cron TO {READER};
             GRANT SELECT ON cron.job, cron.job_run_details TO {READER};"
        ),
    );
}

/// The shared cluster, with the reader role created once per test process.
fn shared() -> Option<String> {
    static READY: OnceLock<String> = OnceLock::new();
    let url = shared_url()?;
    Some(
        READY
            .get_or_init(|| {
                create_reader(&url);
                url
            })
            .clone(),
    )
}

/// `url` with the reader's credentials instead of the superuser's.
fn reader_url(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("scheme");
    let host = rest.rsplit_once('@').expect("userinfo").1;
    format!("{scheme}://{READER}:{password}@{host}")
}

fn options(url: &str) -> PostgresOptions {
    let mut options = PostgresOptions::from_url("sql", &reader_url(url, READER_PASSWORD), None).expect("options");
    options.connect_timeout = Duration::from_secs(2);
    options.initial_backoff = Duration::from_millis(200);
    options.max_backoff = Duration::from_millis(800);
    options
}

fn datasource(url: &str, metrics: &HealthMetrics) -> Arc<PostgresDatasource> {
    let health = metrics.datasource("sql", DatasourceType::Postgres);
    Arc::new(PostgresDatasource::new(options(url), health).expect("datasource"))
}

/// Schedules a job pg_cron never runs (February 31st) and returns its id.
fn never_run_job(url: &str, name: &str) -> i64 {
    admin_value(url, &format!("SELECT cron.schedule('{name}', '0 0 31 2 *', 'SELECT 1')::text"))
        .expect("jobid")
        .parse()
        .expect("numeric jobid")
}

/// Records one finished run of `jobid`, `age_seconds` ago.
fn record_run(url: &str, jobid: i64, status: &str, age_seconds: i64) {
    let message = if status == "failed" { "ERROR:  canceling statement due to lock timeout" } else { "DELETE 12" };
    admin(
        url,
        &format!(
            "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status, return_message, start_time, end_time)
             VALUES ({jobid}, 4242, 'postgres', 'postgres', 'CALL scrub()', '{status}', '{message}',
                     now() - interval '{age_seconds} seconds', now() - interval '{age_seconds} seconds' + interval '2 seconds')"
        ),
    );
}

fn unschedule_prefix(url: &str, prefix: &str) {
    admin(
        url,
        &format!(
            "DELETE FROM cron.job_run_details WHERE jobid IN (SELECT jobid FROM cron.job WHERE jobname LIKE '{prefix}%');
             SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname LIKE '{prefix}%';"
        ),
    );
}

/// The catalog's SQL rules with `datasource` resolved for their groups.
fn manager(datasource: Arc<PostgresDatasource>) -> rules::Manager {
    let path = workspace_root().join("catalog/busflow/rules/sql.rules.yaml");
    let files = catalog::load_rules(&[path]).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
    let store = Arc::new(tsdb::MemStore::new());
    let mut options = rules::ManagerOptions::embedded(rules::EmbeddedDatasource::new(store, promql::Engine::default()));
    options.resolve_datasource = Some(Arc::new(move |_file: &str, group: &catalog::RuleGroup| {
        (group.datasource == catalog::Datasource::Sql).then(|| datasource.clone() as Arc<dyn rules::Datasource>)
    }));
    rules::Manager::new(&files, options)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as i64
}

/// Evaluates the PgCronJobFailed group and returns its rule status, with only
/// the alerts of jobs named with `prefix`.
fn evaluate_a4(manager: &rules::Manager, prefix: &str) -> rules::RuleStatus {
    manager.evaluate_group(0, now_ms());
    let status = manager.statuses()[0].clone();
    assert_eq!(status.name, "busflow-pg-cron");
    let mut rule = status.rules.iter().find(|rule| rule.name == "PgCronJobFailed").expect("rule").clone();
    rule.alerts.retain(|alert| alert.labels.get("jobname").is_some_and(|name| name.starts_with(prefix)));
    rule
}

fn firing_jobs(rule: &rules::RuleStatus) -> Vec<String> {
    let mut names: Vec<String> = rule
        .alerts
        .iter()
        .filter(|alert| alert.state == AlertState::Firing)
        .filter_map(|alert| alert.labels.get("jobname").map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[test]
fn a4_fires_for_two_failed_scrub_runs_and_resolves_after_a_success() {
    let Some(url) = shared() else { return };
    let prefix = "tenant_scrub_it_rows_";
    unschedule_prefix(&url, prefix);
    let twice = never_run_job(&url, "tenant_scrub_it_rows_eu");
    record_run(&url, twice, "succeeded", 600);
    record_run(&url, twice, "failed", 300);
    record_run(&url, twice, "failed", 60);
    let once = never_run_job(&url, "tenant_scrub_it_rows_us");
    record_run(&url, once, "succeeded", 300);
    record_run(&url, once, "failed", 60);
    let recovered = never_run_job(&url, "tenant_scrub_it_rows_apac");
    record_run(&url, recovered, "failed", 300);
    record_run(&url, recovered, "succeeded", 60);
    let never_failed = never_run_job(&url, "tenant_scrub_it_rows_latam");
    record_run(&url, never_failed, "succeeded", 60);

    let metrics = HealthMetrics::new();
    let datasource = datasource(&url, &metrics);
    let manager = manager(datasource.clone());
    let rule = evaluate_a4(&manager, prefix);
    assert_eq!(rule.health, rules::Health::Ok, "{:?}", rule.last_error);
    assert_eq!(firing_jobs(&rule), vec!["tenant_scrub_it_rows_eu"], "{:?}", rule.alerts);
    let alert = &rule.alerts[0];
    assert_eq!(alert.labels.get("alertname"), Some("PgCronJobFailed"));
    assert_eq!(alert.labels.get("severity"), Some("page"));
    assert_eq!(alert.labels.get("route"), Some("ops-oncall"));
    assert_eq!(alert.labels.get("jobid"), Some(twice.to_string().as_str()));
    assert_eq!(alert.value, 2.0, "failed_runs is the value");
    assert_eq!(alert.annotations["summary"], "pg_cron job tenant_scrub_it_rows_eu failed its last two runs");
    assert_eq!(datasource.health().up(), 1);

    // A run that started but has not finished does not count either way.
    admin(
        &url,
        &format!(
            "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status, start_time)
             VALUES ({twice}, 4243, 'postgres', 'postgres', 'CALL scrub()', 'running', now())"
        ),
    );
    assert_eq!(firing_jobs(&evaluate_a4(&manager, prefix)), vec!["tenant_scrub_it_rows_eu"]);

    record_run(&url, twice, "succeeded", 0);
    let rule = evaluate_a4(&manager, prefix);
    assert!(firing_jobs(&rule).is_empty(), "{:?}", rule.alerts);
    let resolved = rule.alerts.iter().find(|alert| alert.labels.get("jobname") == Some("tenant_scrub_it_rows_eu"));
    assert!(resolved.is_some_and(|alert| alert.state == AlertState::Inactive && alert.resolved_at_ms.is_some()));
    unschedule_prefix(&url, prefix);
}

#[test]
fn pg_cron_itself_runs_a_failing_scrub_job_and_a4_fires() {
    let Some(url) = shared() else { return };
    let prefix = "tenant_scrub_it_live_";
    unschedule_prefix(&url, prefix);
    // pg_cron 1.4 schedules by the minute: two failures take up to two minutes.
    admin(
        &url,
        "SELECT cron.schedule('tenant_scrub_it_live_eu', '* * * * *',
           $cmd$DO $b$ BEGIN RAISE EXCEPTION 'scrub of tenant eu hit a lock timeout'; END $b$$cmd$)",
    );
    let metrics = HealthMetrics::new();
    let manager = manager(datasource(&url, &metrics));
    let deadline = Instant::now() + Duration::from_secs(200);
    let rule = loop {
        let rule = evaluate_a4(&manager, prefix);
        assert_eq!(rule.health, rules::Health::Ok, "{:?}", rule.last_error);
        if !firing_jobs(&rule).is_empty() {
            break rule;
        }
        assert!(Instant::now() < deadline, "pg_cron did not fail the job twice within 200s");
        std::thread::sleep(Duration::from_secs(5));
    };
    assert_eq!(firing_jobs(&rule), vec!["tenant_scrub_it_live_eu"]);
    let failures = admin_value(
        &url,
        "SELECT count(*)::text FROM cron.job_run_details d JOIN cron.job j USING (jobid)
         WHERE j.jobname = 'tenant_scrub_it_live_eu' AND d.status = 'failed' AND d.return_message LIKE '%lock timeout%'",
    );
    assert!(failures.is_some_and(|count| count.parse::<i64>().unwrap_or(0) >= 2), "pg_cron recorded the failures");
    unschedule_prefix(&url, prefix);
}

#[test]
fn a_wrong_password_names_the_datasource_never_the_password() {
    let Some(url) = shared() else { return };
    let wrong = "wrong-pw-4a8e11";
    let metrics = HealthMetrics::new();
    let health = metrics.datasource("busflow-ro", DatasourceType::Postgres);
    let mut options = PostgresOptions::from_url("busflow-ro", &reader_url(&url, wrong), None).expect("options");
    options.connect_timeout = Duration::from_secs(2);
    let datasource = PostgresDatasource::new(options, health.clone()).expect("datasource");
    let error = datasource.query("SELECT 1 AS up", now_ms()).expect_err("wrong password");
    let message = error.to_string();
    assert!(matches!(error, rules::DatasourceError::Unavailable(_)), "{error:?}");
    assert!(message.contains("postgres datasource \"busflow-ro\""), "{message}");
    assert!(message.contains("password authentication failed"), "{message}");
    assert!(message.contains(&format!("{READER}@127.0.0.1")), "{message}");
    assert!(!message.contains(wrong) && !message.contains(READER_PASSWORD), "{message}");
    assert_eq!((health.up(), health.errors()), (0, 1));

    // The password from a file (url + password_file) is kept out the same way.
    let without = reader_url(&url, "x").replacen(":x@", "@", 1);
    let options = PostgresOptions::from_url("busflow-ro", &without, Some(wrong)).expect("options");
    let error = PostgresDatasource::new(options, health).expect("datasource").query_samples("SELECT 1 AS up");
    let message = error.expect_err("wrong password").to_string();
    assert!(message.contains("password authentication failed") && !message.contains(wrong), "{message}");
}

#[test]
fn a_query_that_writes_is_refused_by_the_server() {
    let Some(url) = shared() else { return };
    let prefix = "tenant_scrub_it_write_";
    unschedule_prefix(&url, prefix);
    never_run_job(&url, "tenant_scrub_it_write_eu");
    // Even a role allowed to write (here the superuser) cannot write through the datasource.
    let mut superuser = PostgresOptions::from_url("sql", &url, None).expect("options");
    superuser.connect_timeout = Duration::from_secs(2);
    let datasource =
        PostgresDatasource::new(superuser, sources::health::DatasourceHealth::detached()).expect("datasource");
    // Each passes the catalog's static check (one statement starting with SELECT or WITH).
    let writes = [
        "WITH gone AS (DELETE FROM cron.job WHERE jobname = 'tenant_scrub_it_write_eu' RETURNING jobid) SELECT count(*) AS n FROM gone",
        "SELECT cron.schedule('tenant_scrub_it_write_us', '* * * * *', 'SELECT 1') AS n",
        "SELECT nextval('cron.jobid_seq') AS n",
    ];
    for query in writes {
        catalog::queries::validate(catalog::Datasource::Sql, query).expect("passes the static check");
        let error = datasource.query(query, now_ms()).expect_err(query);
        let message = error.to_string();
        assert!(matches!(error, rules::DatasourceError::Query(_)), "{query}: {error:?}");
        assert!(message.contains("read-only transaction") && message.contains("SQLSTATE 25006"), "{message}");
    }
    // Undoing read-only for the session does not outlive the query's transaction.
    datasource
        .query("SELECT set_config('default_transaction_read_only', 'off', false) AS setting, 1 AS n", now_ms())
        .expect("set_config reads nothing");
    let error = datasource.query(writes[0], now_ms()).expect_err("still read-only");
    assert!(error.to_string().contains("read-only transaction"), "{error}");
    let remaining = admin_value(&url, "SELECT count(*)::text FROM cron.job WHERE jobname = 'tenant_scrub_it_write_eu'");
    assert_eq!(remaining.as_deref(), Some("1"), "the job is still there");
    assert_eq!(datasource.health().up(), 1, "a refused query is not an unreachable server");
    unschedule_prefix(&url, prefix);
}

#[test]
fn column_types_become_labels_and_the_last_numeric_column_the_value() {
    let Some(url) = shared() else { return };
    let metrics = HealthMetrics::new();
    let datasource = datasource(&url, &metrics);
    let samples = datasource
        .query_samples(
            "SELECT 'tenant_scrub_eu'::name AS jobname, 7::bigint AS jobid, 3::smallint AS attempts, true AS active,
                    NULL::text AS note, timestamptz '2026-12-02 12:00:00.5+01' AS started,
                    0.25::float4 AS ratio, 12.50::numeric AS amount, 'x'::varchar AS tail",
        )
        .expect("samples");
    assert_eq!(samples.len(), 1);
    let (labels, value) = &samples[0];
    assert_eq!(*value, 12.5);
    assert_eq!(
        *labels,
        tsdb::Labels::from_pairs([
            ("jobname", "tenant_scrub_eu"),
            ("jobid", "7"),
            ("attempts", "3"),
            ("active", "true"),
            ("started", "2026-12-02T11:00:00.500Z"),
            ("ratio", "0.25"),
            ("tail", "x"),
        ])
    );
    let rows = datasource.query_samples("SELECT g::text AS n, g * 1.5::float8 AS v FROM generate_series(1, 3) AS g");
    assert_eq!(rows.expect("rows").iter().map(|(_, value)| *value).collect::<Vec<_>>(), vec![1.5, 3.0, 4.5]);

    let cases = [
        ("SELECT '{}'::jsonb AS payload, 1 AS n", "column \"payload\" has type JSONB"),
        ("SELECT 'a' AS jobname", "no numeric column"),
        ("SELECT 'a', 1 AS n", "column \"?column?\" is not a valid label name"),
        ("SELECT 'a' AS jobname, NULL::int AS failed_runs", "row 1: the value column \"failed_runs\" is NULL"),
    ];
    for (query, expected) in cases {
        let error = datasource.query(query, now_ms()).expect_err(query).to_string();
        assert!(error.contains(expected) && error.contains("\"sql\""), "{query}: {error}");
    }
    // No rows: no alert, but the columns are still checked.
    assert_eq!(datasource.query_samples("SELECT 'a' AS jobname, 1 AS n WHERE false"), Ok(Vec::new()));
    let error = datasource.query("SELECT '{}'::json AS payload, 1 AS n WHERE false", now_ms());
    assert!(error.is_err_and(|error| error.to_string().contains("payload")));
}

#[test]
fn triage_rows_come_back_as_they_are_read_only() {
    let Some(url) = shared() else { return };
    let metrics = HealthMetrics::new();
    let datasource = datasource(&url, &metrics);
    let rows = datasource
        .query_rows(
            "SELECT 'communications.messages' AS source, 3::bigint AS pending, NULL::text AS note
             UNION ALL SELECT 'operations.incidents', 0, 'quiet'",
        )
        .expect("rows");
    assert_eq!(
        serde_json::Value::Array(rows.into_iter().map(serde_json::Value::Object).collect()),
        serde_json::json!([
            {"source": "communications.messages", "pending": 3, "note": null},
            {"source": "operations.incidents", "pending": 0, "note": "quiet"}
        ])
    );
    // A row without a numeric column is fine for triage; a write is still refused by the server.
    let rows =
        datasource.query_rows("SELECT count(*) AS lock_waits FROM pg_stat_activity WHERE wait_event_type = 'Lock'");
    assert_eq!(rows.expect("rows").len(), 1);
    let error = datasource.query_rows("CREATE TABLE triage_must_not_write (x int)").expect_err("read-only");
    assert!(error.to_string().contains("read-only"), "{error}");
}

#[test]
fn statement_timeout_cancels_a_slow_query() {
    let Some(url) = shared() else { return };
    let mut options = options(&url);
    options.statement_timeout = Duration::from_millis(300);
    let datasource =
        PostgresDatasource::new(options, sources::health::DatasourceHealth::detached()).expect("datasource");
    let started = Instant::now();
    let error = datasource.query_samples("SELECT pg_sleep(5)::text AS slept, 1 AS n").expect_err("timeout");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(matches!(&error, SqlError::Query { message, .. } if message.contains("statement timeout")), "{error}");
}

/// A cluster of the test's own, stopped and removed when dropped.
struct OwnCluster {
    directory: tempfile::TempDir,
    url: String,
}

impl OwnCluster {
    fn start() -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        make_traversable(directory.path());
        let output = std::process::Command::new(workspace_root().join("scripts/peers/postgres.sh"))
            .arg("start")
            .arg(directory.path().join("cluster"))
            .output()
            .expect("run scripts/peers/postgres.sh");
        assert!(output.status.success(), "cluster start failed: {}", String::from_utf8_lossy(&output.stderr));
        let url = String::from_utf8(output.stdout).expect("utf-8").trim().to_owned();
        Self { directory, url }
    }

    fn control(&self, verb: &str) {
        let status = std::process::Command::new(workspace_root().join("scripts/peers/postgres.sh"))
            .arg(verb)
            .arg(self.directory.path().join("cluster"))
            .status()
            .expect("run scripts/peers/postgres.sh");
        assert!(status.success(), "postgres.sh {verb} failed");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        self.control("stop");
    }
}

/// The cluster's owner (`postgres` when the tests run as root) must reach its directory.
fn make_traversable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

#[test]
fn postgres_stopped_mid_run_is_a_rule_error_and_recovers_by_itself() {
    if shared().is_none() {
        return;
    }
    let cluster = OwnCluster::start();
    create_reader(&cluster.url);
    let metrics = HealthMetrics::new();
    let datasource = datasource(&cluster.url, &metrics);
    let manager = manager(datasource.clone());
    let rule = evaluate_a4(&manager, "tenant_scrub_");
    assert_eq!(rule.health, rules::Health::Ok, "{:?}", rule.last_error);
    assert_eq!(datasource.health().up(), 1);

    cluster.control("stop");
    let rule = evaluate_a4(&manager, "tenant_scrub_");
    assert_eq!(rule.health, rules::Health::Err);
    let error = rule.last_error.clone().expect("last error");
    assert!(error.contains("postgres datasource \"sql\"") && error.contains(READER), "{error}");
    assert!(!error.contains(READER_PASSWORD), "{error}");
    assert_eq!(datasource.health().up(), 0);
    let errors_while_down = datasource.health().errors();
    assert!(errors_while_down >= 1);
    // Within the backoff the server is not asked again, and it is still an error.
    let rule = evaluate_a4(&manager, "tenant_scrub_");
    assert_eq!(rule.health, rules::Health::Err);

    cluster.control("restart");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rule = evaluate_a4(&manager, "tenant_scrub_");
        if rule.health == rules::Health::Ok {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover: {:?}", rule.last_error);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(datasource.health().up(), 1);
    assert!(datasource.health().errors() >= errors_while_down);
}

/// Every SQL check of the shipped catalog plans on a real PostgreSQL 15 with
/// pg_cron and pg_stat_statements: its tables, columns and types are the real
/// ones (pg_cron 1.4's cron.job and cron.job_run_details, pg_stat_statements'
/// queryid, calls and total_exec_time, pg_stat_activity), and Busflow's own
/// tables as the catalog documents them. Template actions (`{{ $labels.jobname }}`)
/// stand for a plain value.
#[test]
fn every_sql_check_of_the_catalog_plans_on_real_postgres() {
    let Some(url) = shared() else { return };
    admin(
        &url,
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
         CREATE SCHEMA IF NOT EXISTS ops;
         CREATE TABLE IF NOT EXISTS ops.pg_stat_statements_snapshots (
           captured_at timestamptz NOT NULL, queryid bigint NOT NULL, calls bigint NOT NULL,
           total_exec_time double precision NOT NULL);
         CREATE SCHEMA IF NOT EXISTS communications;
         CREATE TABLE IF NOT EXISTS communications.messages (status text, created_at timestamptz);
         CREATE SCHEMA IF NOT EXISTS operations;
         CREATE TABLE IF NOT EXISTS operations.incidents (opened_at timestamptz);",
    );
    let catalog = catalog::load(&workspace_root().join("catalog/busflow")).unwrap_or_else(|errors| panic!("{errors}"));
    let mut planned = 0;
    for entry in &catalog.entries {
        for step in &entry.steps {
            let Some(check) = step.check.as_ref().filter(|check| check.datasource == catalog::Datasource::Sql) else {
                continue;
            };
            let mut query = check.query.clone();
            while let Some(start) = query.find("{{") {
                let end = query[start..].find("}}").map_or(query.len(), |end| start + end + 2);
                query.replace_range(start..end, "x");
            }
            let plan = admin_value(&url, &format!("EXPLAIN {query}"));
            assert!(plan.is_some(), "{} step {}: no plan", entry.id, step.number);
            planned += 1;
        }
    }
    assert!(planned >= 8, "only {planned} SQL checks planned");
}
