//! `alertbook run` with a PostgreSQL datasource, against the real PostgreSQL
//! 15 + pg_cron that `scripts/peers/postgres.sh` starts (its superuser DSN in
//! `ALERTBOOK_TEST_POSTGRES_URL`): A4 fires from pg_cron's tables and shows in
//! /api/v1/alerts, the datasource's health is on /metrics, and no password
//! reaches the logs, the API or `check`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::durability::{Server, free_port};

const READER: &str = "alertbook_cli_reader";
const READER_PASSWORD: &str = "cli-reader-pw-5d61b0";
const WRONG_PASSWORD: &str = "cli-wrong-pw-8c2e47";
const JOB: &str = "tenant_scrub_cli_e2e";

fn superuser_url() -> Option<String> {
    if let Ok(url) = std::env::var("ALERTBOOK_TEST_POSTGRES_URL") {
        return Some(url);
    }
    if std::env::var("ALERTBOOK_SKIP_PEERS").as_deref() == Ok("1") {
        eprintln!("skipped: ALERTBOOK_SKIP_PEERS=1 and no PostgreSQL");
        return None;
    }
    panic!(
        "ALERTBOOK_TEST_POSTGRES_URL is not set: this test needs a real PostgreSQL with pg_cron; run scripts/test, \
         or `source scripts/peers/postgres.sh` in the shell before cargo test (ALERTBOOK_SKIP_PEERS=1 skips it)"
    );
}

/// Runs SQL as the superuser through psql; returns its unaligned output.
fn psql(url: &str, sql: &str) -> String {
    let psql = Path::new("/usr/lib/postgresql/15/bin/psql");
    let program = if psql.exists() { psql.as_os_str() } else { "psql".as_ref() };
    let output =
        Command::new(program).args([url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql]).output().expect("psql runs");
    assert!(output.status.success(), "{sql}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Host and port of the cluster, from the superuser's URL.
fn host_port(url: &str) -> String {
    let authority = url.split_once("://").expect("scheme").1.rsplit_once('@').expect("userinfo").1;
    authority.split('/').next().expect("host").to_owned()
}

fn clean(url: &str) {
    psql(
        url,
        &format!(
            "DELETE FROM cron.job_run_details WHERE jobid IN (SELECT jobid FROM cron.job WHERE jobname = '{JOB}');
             SELECT count(cron.unschedule(jobid)) FROM cron.job WHERE jobname = '{JOB}';"
        ),
    );
}

fn record_run(url: &str, jobid: &str, status: &str, age_seconds: u32) {
    psql(
        url,
        &format!(
            "INSERT INTO cron.job_run_details (jobid, job_pid, database, username, command, status, return_message, start_time, end_time)
             VALUES ({jobid}, 4242, 'postgres', 'postgres', 'CALL scrub()', '{status}', '{status}',
                     now() - interval '{age_seconds} seconds', now() - interval '{age_seconds} seconds' + interval '1 second')"
        ),
    );
}

/// Starts `alertbook run --config`, keeping everything it logs.
pub(super) fn start(directory: &Path, config: &Path) -> (Server, Arc<Mutex<String>>) {
    start_with(directory, config, &[])
}

/// [`start`] with more arguments for `alertbook run` (the catalog's probes do not run).
pub(super) fn start_with(directory: &Path, config: &Path, extra: &[&str]) -> (Server, Arc<Mutex<String>>) {
    launch(directory, config, &[&["--no-probes"], extra].concat())
}

/// Starts `alertbook run --config` with `extra` arguments, keeping everything it logs.
pub(super) fn launch(directory: &Path, config: &Path, extra: &[&str]) -> (Server, Arc<Mutex<String>>) {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_alertbook"))
        .args(["run", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(directory.join(format!("data-{port}")))
        .arg("--config")
        .arg(config)
        .args(extra)
        .env("RUST_LOG", "debug,hyper=info,reqwest=info,sqlx=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("alertbook starts");
    // The log goes to stdout; stderr is kept too.
    let log = Arc::new(Mutex::new(String::new()));
    let outputs: [Box<dyn std::io::Read + Send>; 2] =
        [Box::new(child.stdout.take().expect("stdout")), Box::new(child.stderr.take().expect("stderr"))];
    for output in outputs {
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                let mut log = sink.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    let server = Server { child, url: format!("http://127.0.0.1:{port}") };
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client.get(format!("{}/-/ready", server.url)).send().is_ok_and(|response| response.status().is_success()) {
            return (server, log);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("alertbook did not become ready: {}", log.lock().expect("log"));
}

pub(super) fn get(client: &reqwest::blocking::Client, server: &Server, path: &str) -> String {
    client.get(format!("{}{path}", server.url)).send().expect(path).text().expect("body")
}

/// The state of A4 for the test's job in /api/v1/alerts, if listed.
fn a4_state(client: &reqwest::blocking::Client, server: &Server) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(&get(client, server, "/api/v1/alerts")).expect("JSON");
    body["data"]["alerts"].as_array().expect("alerts").iter().find_map(|alert| {
        (alert["labels"]["alertname"] == "PgCronJobFailed" && alert["labels"]["jobname"] == JOB)
            .then(|| alert["state"].as_str().unwrap_or_default().to_owned())
    })
}

/// The rule `name` of /api/v1/rules.
pub(super) fn rule(client: &reqwest::blocking::Client, server: &Server, name: &str) -> serde_json::Value {
    let body: serde_json::Value = serde_json::from_str(&get(client, server, "/api/v1/rules")).expect("JSON");
    body["data"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().expect("rules").iter())
        .find(|rule| rule["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no rule {name}"))
}

pub(super) fn wait_for(what: &str, log: &Mutex<String>, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}; log:\n{}", log.lock().expect("log"));
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn run_with_a_postgres_datasource_fires_a4_and_never_shows_the_password() {
    let Some(url) = superuser_url() else { return };
    psql(
        &url,
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
    clean(&url);
    let jobid = psql(&url, &format!("SELECT cron.schedule('{JOB}', '0 0 31 2 *', 'CALL scrub()')"));
    record_run(&url, &jobid, "failed", 120);
    record_run(&url, &jobid, "failed", 60);

    let directory = tempfile::tempdir().expect("temporary directory");
    super::fast_catalog_at(&directory.path().join("catalog"), "sql.rules.yaml");
    std::fs::write(directory.path().join("pg-password"), format!("{READER_PASSWORD}\n")).expect("password file");
    std::fs::write(directory.path().join("wrong-password"), format!("{WRONG_PASSWORD}\n")).expect("password file");
    let config_text = |password_file: &str| {
        format!(
            "catalog: catalog\nscrape_self: false\ndatasources:\n  sql:\n    type: postgres\n    url: postgres://{READER}@{}/postgres\n    password_file: {password_file}\n    statement_timeout: 5s\n",
            host_port(&url)
        )
    };
    let config = directory.path().join("alertbook.yaml");
    std::fs::write(&config, config_text("pg-password")).expect("config");

    let check = super::alertbook(&["check", "--config", config.to_str().expect("utf-8")]);
    let check_output = format!("{}{}", super::stdout(&check), super::stderr(&check));
    assert!(check.status.success(), "{check_output}");
    assert!(check_output.contains(&format!("sql (postgres {READER}@{}/postgres)", host_port(&url))), "{check_output}");
    assert!(!check_output.contains(READER_PASSWORD), "{check_output}");

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::new();
    {
        let (server, log) = start(directory.path(), &config);
        wait_for("A4 firing", &log, || a4_state(&client, &server).as_deref() == Some("firing"));
        let metrics = get(&client, &server, "/metrics");
        assert!(metrics.contains("alertbook_datasource_up{datasource=\"sql\",type=\"postgres\"} 1"), "{metrics}");
        let docker = rule(&client, &server, "PostgresExporterDsnGateOpen");
        assert_eq!(docker["lastError"], "no docker datasource configured");
        assert_eq!(rule(&client, &server, "PgCronJobFailed")["health"], "ok");

        // A successful run resolves it.
        record_run(&url, &jobid, "succeeded", 0);
        wait_for("A4 resolved", &log, || a4_state(&client, &server).as_deref() != Some("firing"));
        let log = log.lock().expect("log").clone();
        assert!(log.contains("postgres datasource configured"), "{log}");
        assert!(!log.contains(READER_PASSWORD), "the password is in the log:\n{log}");
    }

    // A wrong password: the rule errors, the datasource is down, the password appears nowhere.
    std::fs::write(&config, config_text("wrong-password")).expect("config");
    {
        let (server, log) = start(directory.path(), &config);
        wait_for("the rule error", &log, || {
            rule(&client, &server, "PgCronJobFailed")["lastError"]
                .as_str()
                .is_some_and(|error| error.contains("password authentication failed"))
        });
        let a4 = rule(&client, &server, "PgCronJobFailed");
        assert_eq!(a4["health"], "err");
        let error = a4["lastError"].as_str().unwrap_or_default();
        assert!(error.contains("postgres datasource \"sql\"") && error.contains(READER), "{error}");
        let metrics = get(&client, &server, "/metrics");
        assert!(metrics.contains("alertbook_datasource_up{datasource=\"sql\",type=\"postgres\"} 0"), "{metrics}");
        assert!(
            metrics.contains("alertbook_datasource_errors_total{datasource=\"sql\",type=\"postgres\"}"),
            "{metrics}"
        );
        let answers = [get(&client, &server, "/api/v1/rules"), get(&client, &server, "/api/v1/alerts"), metrics];
        let log = log.lock().expect("log").clone();
        for text in answers.iter().chain([&log]) {
            assert!(!text.contains(WRONG_PASSWORD) && !text.contains(READER_PASSWORD), "a password leaked:\n{text}");
        }
        assert!(log.contains("password authentication failed"), "the failure is logged:\n{log}");
    }
    clean(&url);
}
