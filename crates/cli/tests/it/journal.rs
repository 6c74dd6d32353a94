//! The on-call journal from `alertbook run`, with the default SQLite store
//! and with the real PostgreSQL of `scripts/peers/postgres.sh` (a fresh
//! database per test): users and tokens made with `alertbook user add` and
//! `alertbook token create`, A6 firing on remote-written data, a viewer
//! refused, a responder acknowledging, closes refused field by field with
//! nothing saved, a proper close, the entry in `alertbook journal list`,
//! `show` and `export`, and still there after a restart. And the reminder: a
//! webhook receives `JournalEntryDue` with `acknowledged_by` once an
//! acknowledged alert goes `journal.remind_after` without an entry.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::durability::{Server, free_port, start_with};

const ALICE_PASSWORD: &str = "alice-correct-horse-1";
const VICTOR_PASSWORD: &str = "victor-battery-staple-2";

/// A test's directory: the fast catalog, the configuration and the data directory.
struct Setup {
    work: tempfile::TempDir,
    config: PathBuf,
    data: PathBuf,
}

impl Setup {
    /// `extra` is appended to the configuration (`state:`, `journal:`, `alerting:`).
    fn new(extra: &str) -> Setup {
        let work = tempfile::tempdir().expect("temporary directory");
        super::fast_catalog_at(&work.path().join("catalog"), "metrics.rules.yaml");
        let config = work.path().join("alertbook.yaml");
        std::fs::write(&config, format!("catalog: catalog\nscrape_self: false\n{extra}")).expect("alertbook.yaml");
        let data = work.path().join("data");
        Setup { work, config, data }
    }

    fn store_arguments(&self) -> Vec<String> {
        vec!["--config".into(), self.config.display().to_string(), "--data".into(), self.data.display().to_string()]
    }

    /// `alertbook ARGUMENTS --config … --data …` with `stdin` as its standard input.
    fn alertbook(&self, arguments: &[&str], stdin: &str) -> Output {
        let mut all: Vec<String> = arguments.iter().map(|argument| (*argument).to_owned()).collect();
        all.extend(self.store_arguments());
        super::alertbook_with_stdin(&all, stdin)
    }

    fn start(&self, extra: &[&str]) -> Server {
        let config = self.config.display().to_string();
        let mut arguments = vec!["--config", config.as_str()];
        arguments.extend_from_slice(extra);
        start_with(&self.data, free_port(), &arguments)
    }
}

fn output_text(output: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", output.status.code(), super::stdout(output), super::stderr(output))
}

/// Adds alice (responder) and victor (viewer) and returns their tokens; checks
/// the refusals of `user add` and `token create` on the way.
fn users_and_tokens(setup: &Setup) -> (String, String) {
    let added = setup.alertbook(&["user", "add", "alice", "--role", "responder"], &format!("{ALICE_PASSWORD}\n"));
    assert!(added.status.success(), "{}", output_text(&added));
    let added = setup.alertbook(&["user", "add", "victor", "--role", "viewer"], &format!("{VICTOR_PASSWORD}\n"));
    assert!(added.status.success(), "{}", output_text(&added));

    let short = setup.alertbook(&["user", "add", "shorty", "--role", "viewer"], "short\n");
    assert_eq!(short.status.code(), Some(2), "{}", output_text(&short));
    assert!(super::stderr(&short).contains("at least 12 characters"), "{}", output_text(&short));
    let empty = setup.alertbook(&["user", "add", "nobody", "--role", "viewer"], "");
    assert_eq!(empty.status.code(), Some(2), "{}", output_text(&empty));
    let bad_role = setup.alertbook(&["user", "add", "carol", "--role", "root"], &format!("{ALICE_PASSWORD}\n"));
    assert_eq!(bad_role.status.code(), Some(2), "{}", output_text(&bad_role));
    assert!(super::stderr(&bad_role).contains("viewer, responder, admin"), "{}", output_text(&bad_role));
    let again = setup.alertbook(&["user", "add", "alice", "--role", "admin"], &format!("{ALICE_PASSWORD}\n"));
    assert_eq!(again.status.code(), Some(1), "{}", output_text(&again));
    assert!(super::stderr(&again).contains("user alice exists already"), "{}", output_text(&again));

    let listed = setup.alertbook(&["user", "list"], "");
    assert!(listed.status.success(), "{}", output_text(&listed));
    let text = super::stdout(&listed);
    assert!(text.contains("alice   responder") && text.contains("victor  viewer"), "{text}");
    assert!(!text.contains(ALICE_PASSWORD) && !text.contains("argon2"), "{text}");

    let unknown = setup.alertbook(&["token", "create", "mallory"], "");
    assert_eq!(unknown.status.code(), Some(1), "{}", output_text(&unknown));
    assert!(super::stderr(&unknown).contains("no user \"mallory\""), "{}", output_text(&unknown));
    assert!(super::stdout(&unknown).is_empty());

    let token = |name: &str| {
        let created = setup.alertbook(&["token", "create", name], "");
        assert!(created.status.success(), "{}", output_text(&created));
        let text = super::stdout(&created);
        assert_eq!(text.lines().count(), 1, "only the token on stdout: {text}");
        let token = text.trim().to_owned();
        assert!(token.starts_with("abt_") && token.len() > 40, "{token}");
        token
    };
    (token("alice"), token("victor"))
}

fn client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

/// The fingerprint of A6 once it fires (the one `/api/v1/alerts/{fingerprint}/ack` takes).
fn wait_for_a6(client: &reqwest::blocking::Client, server: &Server) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let body: serde_json::Value = client
            .get(format!("{}/api/v1/alerts", server.url))
            .send()
            .and_then(|response| response.json())
            .unwrap_or_default();
        let firing = body["data"]["alerts"].as_array().and_then(|alerts| {
            alerts
                .iter()
                .find(|alert| alert["labels"]["alertname"] == "LokiCompactorBehind" && alert["state"] == "firing")
                .cloned()
        });
        if let Some(alert) = firing {
            let labels: std::collections::BTreeMap<String, String> =
                serde_json::from_value(alert["labels"].clone()).expect("labels");
            let fingerprint = alert["fingerprint"].as_str().expect("a fingerprint").to_owned();
            assert_eq!(fingerprint, triage::fingerprint(&labels));
            return fingerprint;
        }
        assert!(Instant::now() < deadline, "A6 never fired: {body}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn post(
    client: &reqwest::blocking::Client,
    server: &Server,
    path: &str,
    token: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = client
        .post(format!("{}{path}", server.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .unwrap_or_else(|error| panic!("POST {path}: {error}"));
    let status = response.status().as_u16();
    (status, response.json().unwrap_or_default())
}

fn get(client: &reqwest::blocking::Client, server: &Server, path: &str, token: &str) -> (u16, serde_json::Value) {
    let response = client
        .get(format!("{}{path}", server.url))
        .bearer_auth(token)
        .send()
        .unwrap_or_else(|error| panic!("GET {path}: {error}"));
    let status = response.status().as_u16();
    (status, response.json().unwrap_or_default())
}

/// The whole flow over the store `setup`'s configuration names.
fn acknowledge_close_list_export_and_restart(setup: &Setup) {
    let (alice, victor) = users_and_tokens(setup);
    let client = client();
    let server = setup.start(&[]);
    super::alerting::write_stale_compactor(&server, &client);
    let fingerprint = wait_for_a6(&client, &server);

    // Without a token: 401; a viewer: 403; the responder acknowledges.
    let response = client.post(format!("{}/api/v1/alerts/{fingerprint}/ack", server.url)).send().expect("ack");
    assert_eq!(response.status().as_u16(), 401);
    let ack = format!("/api/v1/alerts/{fingerprint}/ack");
    let (status, body) = post(&client, &server, &ack, &victor, serde_json::json!({}));
    assert_eq!(status, 403, "a viewer cannot acknowledge: {body}");
    let (status, body) = post(&client, &server, &ack, &alice, serde_json::json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["acknowledged_by"], "alice");
    assert_eq!(body["data"]["alert_id"], "A6");
    let (status, body) = get(&client, &server, "/api/v1/acknowledgements", &victor);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["acknowledged"][0]["acknowledged_by"], "alice", "{body}");

    // Refused closes save nothing.
    let close = format!("/api/v1/alerts/{fingerprint}/close");
    let (status, body) = post(
        &client,
        &server,
        &close,
        &alice,
        serde_json::json!({"alert_id": "A6", "remediation": "no-op, transient", "contract_changed": "no"}),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["fields"][0]["field"], "root_cause", "{body}");
    let (status, body) = post(
        &client,
        &server,
        &close,
        &alice,
        serde_json::json!({
            "alert_id": "A6", "root_cause": "compactor disk full", "remediation": "no-op, transient",
            "contract_changed": "yes", "contract": "log-retention",
        }),
    );
    assert_eq!(status, 400, "a contract change without its pull request: {body}");
    let refused: Vec<&str> =
        body["fields"].as_array().expect("fields").iter().filter_map(|field| field["field"].as_str()).collect();
    assert_eq!(refused, ["contract_pr"], "{body}");
    let (status, body) = get(&client, &server, "/api/v1/journal", &victor);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["entries"], serde_json::json!([]), "nothing was saved: {body}");

    // A viewer cannot close; the responder can.
    let proper = serde_json::json!({
        "alert_id": "A6", "root_cause": "compactor disk full on loki-0", "remediation": "config: loki-0 volume 50Gi",
        "contract_changed": "no",
    });
    let (status, _) = post(&client, &server, &close, &victor, proper.clone());
    assert_eq!(status, 403);
    let (status, body) = post(&client, &server, &close, &alice, proper);
    assert_eq!(status, 200, "{body}");
    let entry = body["data"]["id"].as_i64().expect("entry id");
    assert_eq!(body["data"]["closed_by"], "alice");
    assert_eq!(body["data"]["remediation"], "config: loki-0 volume 50Gi");

    // The CLI reads the same store while the server runs.
    let listed = setup.alertbook(&["journal", "list", "--id", "A6", "--since", "1h"], "");
    assert!(listed.status.success(), "{}", output_text(&listed));
    let text = super::stdout(&listed);
    assert!(text.starts_with("ENTRY  ALERT  ALERTNAME"), "{text}");
    assert!(text.contains("A6     LokiCompactorBehind") && text.contains("compactor disk full on loki-0"), "{text}");
    let none = setup.alertbook(&["journal", "list", "--contract-changed", "yes"], "");
    assert!(none.status.success() && super::stdout(&none).is_empty(), "{}", output_text(&none));
    let exported = setup.alertbook(&["journal", "export", "--format", "md", "--since", "1h"], "");
    assert!(exported.status.success(), "{}", output_text(&exported));
    let markdown = super::stdout(&exported);
    assert!(markdown.starts_with("# On-call journal"), "{markdown}");
    assert!(markdown.contains(&format!("## A6 LokiCompactorBehind (entry {entry}), closed ")), "{markdown}");
    assert!(markdown.contains("compactor disk full on loki\\-0"), "{markdown}");
    let shown = setup.alertbook(&["journal", "show", &entry.to_string()], "");
    assert!(shown.status.success(), "{}", output_text(&shown));
    let text = super::stdout(&shown);
    assert!(text.contains(&format!("Entry {entry}: A6 LokiCompactorBehind")), "{text}");
    assert!(text.contains("  revision 1 by alice at ") && text.contains("contract changed: no"), "{text}");
    let missing = setup.alertbook(&["journal", "show", "999999"], "");
    assert_eq!(missing.status.code(), Some(1), "{}", output_text(&missing));
    let bad = setup.alertbook(&["journal", "export", "--format", "pdf"], "");
    assert_eq!(bad.status.code(), Some(2), "{}", output_text(&bad));
    let bad = setup.alertbook(&["journal", "list", "--since", "last tuesday"], "");
    assert_eq!(bad.status.code(), Some(2), "{}", output_text(&bad));
    assert!(super::stderr(&bad).contains("--since"), "{}", output_text(&bad));

    // A restart keeps the entry, the users and the tokens.
    drop(server);
    let server = setup.start(&[]);
    let (status, body) = get(&client, &server, &format!("/api/v1/journal/{entry}"), &victor);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["entry"]["root_cause"], "compactor disk full on loki-0", "{body}");
    assert_eq!(body["data"]["revisions"].as_array().map(Vec::len), Some(1), "{body}");
    let (status, body) = get(&client, &server, "/api/v1/acknowledgements", &alice);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["acknowledged"], serde_json::json!([]), "the closed episode is no longer open: {body}");
    terminate(server);
    let wal = setup.data.join("state.sqlite-wal");
    if setup.data.join("state.sqlite").exists() {
        let left = std::fs::metadata(&wal).map_or(0, |metadata| metadata.len());
        assert_eq!(left, 0, "the store was closed at shutdown: its write-ahead log is checkpointed away");
    }
    let exported = setup.alertbook(&["journal", "export", "--format", "json"], "");
    assert!(exported.status.success(), "{}", output_text(&exported));
    let entries: serde_json::Value = serde_json::from_slice(&exported.stdout).expect("JSON");
    assert_eq!(entries[0]["id"], entry, "{entries}");
}

/// Stops `alertbook run` as a service manager does (SIGTERM) and checks it exits 0.
fn terminate(mut server: Server) {
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            assert!(status.success(), "alertbook run exited with {status:?} on SIGTERM");
            return;
        }
        assert!(Instant::now() < deadline, "alertbook run did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_journal_works_from_alertbook_run_with_the_default_sqlite_store() {
    let setup = Setup::new("");
    acknowledge_close_list_export_and_restart(&setup);
    assert!(setup.data.join("state.sqlite").is_file(), "the store lives under --data");
}

/// The superuser URL of the test cluster; a missing one fails the test unless
/// peers are explicitly skipped (as the other PostgreSQL tests decide), and
/// always under CI.
fn superuser_url() -> Option<String> {
    if let Ok(url) = std::env::var("ALERTBOOK_TEST_POSTGRES_URL") {
        return Some(url);
    }
    let under_ci = std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false");
    if !under_ci && std::env::var("ALERTBOOK_SKIP_PEERS").as_deref() == Ok("1") {
        eprintln!("skipped: ALERTBOOK_SKIP_PEERS=1 and no PostgreSQL");
        return None;
    }
    panic!(
        "ALERTBOOK_TEST_POSTGRES_URL is not set: this test needs a real PostgreSQL; run scripts/test, or \
         `source scripts/peers/postgres.sh` in the shell before cargo test (ALERTBOOK_SKIP_PEERS=1 skips it outside CI)"
    );
}

fn psql(url: &str, sql: &str) {
    let psql = Path::new("/usr/lib/postgresql/15/bin/psql");
    let program = if psql.exists() { psql.as_os_str() } else { "psql".as_ref() };
    let output =
        Command::new(program).args([url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql]).output().expect("psql runs");
    assert!(output.status.success(), "{sql}: {}", String::from_utf8_lossy(&output.stderr));
}

/// A database of its own for one test, dropped at the end.
struct Database {
    superuser: String,
    name: String,
    url: String,
}

impl Database {
    fn create(superuser: &str) -> Database {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!("alertbook_journal_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        psql(superuser, &format!("DROP DATABASE IF EXISTS {name}"));
        psql(superuser, &format!("CREATE DATABASE {name}"));
        let (base, _) = superuser.rsplit_once('/').expect("a URL with a database");
        let (base, query) = match superuser.split_once('?') {
            Some((_, query)) => (base.to_owned(), format!("?{query}")),
            None => (base.to_owned(), String::new()),
        };
        Database { superuser: superuser.to_owned(), url: format!("{base}/{name}{query}"), name }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(&self.superuser, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

#[test]
fn the_journal_works_from_alertbook_run_with_postgresql() {
    let Some(superuser) = superuser_url() else { return };
    let database = Database::create(&superuser);
    let setup = Setup::new("state:\n  type: postgres\n  url_file: state-dsn\n");
    std::fs::write(setup.work.path().join("state-dsn"), format!("{}\n", database.url)).expect("dsn file");
    acknowledge_close_list_export_and_restart(&setup);
    assert!(!setup.data.join("state.sqlite").exists(), "nothing went to SQLite");

    // A store that cannot open stops the start with a clear error, no password in it.
    let password = database
        .url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':').map(|(_, password)| password.to_owned()));
    let unreachable = database.url.replacen(&format!("/{}", database.name), "/alertbook_no_such_database", 1);
    std::fs::write(setup.work.path().join("state-dsn"), format!("{unreachable}\n")).expect("dsn file");
    let output = Command::new(env!("CARGO_BIN_EXE_alertbook"))
        .args(["run", "--no-probes", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(setup.store_arguments())
        .output()
        .expect("alertbook runs");
    let text = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("cannot open the state store (postgres, url_file "), "{text}");
    assert!(text.contains("alertbook_no_such_database"), "the database is named: {text}");
    if let Some(password) = password.filter(|password| !password.is_empty()) {
        assert!(!text.contains(&password), "the password leaked: {text}");
    }
}

#[test]
fn whoever_acknowledged_is_reminded_through_the_alerts_receivers() {
    let (hook, received) = super::routing::timed_receiver();
    let setup = Setup::new("journal:\n  remind_after: 2s\nalerting:\n  config_file: alertmanager.yml\n");
    // A team routes reminders to the person who acknowledged: here alice's own receiver.
    std::fs::write(
        setup.work.path().join("alertmanager.yml"),
        format!(
            "route:\n  receiver: ops-oncall\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             \x20 routes:\n    - matchers: ['alertname=\"JournalEntryDue\"', 'acknowledged_by=\"alice\"']\n      receiver: alice\n\
             receivers:\n  - name: ops-oncall\n  - name: alice\n    webhook_configs:\n      - url: {hook}\n"
        ),
    )
    .expect("alertmanager.yml");
    let added = setup.alertbook(&["user", "add", "alice", "--role", "responder"], &format!("{ALICE_PASSWORD}\n"));
    assert!(added.status.success(), "{}", output_text(&added));
    let created = setup.alertbook(&["token", "create", "alice"], "");
    assert!(created.status.success(), "{}", output_text(&created));
    let alice = super::stdout(&created).trim().to_owned();

    let client = client();
    let server = setup.start(&["--journal.reminder-interval", "200ms"]);
    super::alerting::write_stale_compactor(&server, &client);
    let fingerprint = wait_for_a6(&client, &server);
    let (status, body) =
        post(&client, &server, &format!("/api/v1/alerts/{fingerprint}/ack"), &alice, serde_json::json!({}));
    assert_eq!(status, 200, "{body}");
    let acknowledged = Instant::now();

    let reminder = || {
        received.lock().expect("bodies").iter().find_map(|(at, body)| {
            body["alerts"]
                .as_array()?
                .iter()
                .find(|alert| alert["labels"]["alertname"] == "JournalEntryDue")
                .map(|alert| (*at, body["receiver"].clone(), alert.clone()))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (at, receiver, alert) = loop {
        if let Some(found) = reminder() {
            break found;
        }
        assert!(Instant::now() < deadline, "no JournalEntryDue reached the webhook");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(at.duration_since(acknowledged) >= Duration::from_millis(1500), "reminded before remind_after");
    assert_eq!(receiver, "alice");
    let labels = &alert["labels"];
    assert_eq!(labels["acknowledged_by"], "alice", "{alert}");
    assert_eq!(labels["alert_id"], "A6", "{alert}");
    assert_eq!(labels["route"], "ops-oncall", "the alert's route is kept: {alert}");
    assert_eq!(labels["severity"], "page", "{alert}");
    let summary = alert["annotations"]["summary"].as_str().unwrap_or_default();
    assert!(summary.starts_with("A6 LokiCompactorBehind acknowledged by alice at "), "{summary}");
    assert!(summary.ends_with(" has no journal entry"), "{summary}");
    let link = alert["annotations"]["alert_url"].as_str().unwrap_or_default();
    assert!(link.ends_with(&format!("/alerts/{fingerprint}")), "{link}");

    // Closing stops the reminders.
    let (status, body) = post(
        &client,
        &server,
        &format!("/api/v1/alerts/{fingerprint}/close"),
        &alice,
        serde_json::json!({"root_cause": "compactor disk full", "remediation": "no-op, transient", "contract_changed": "no"}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&client, &server, "/api/v1/acknowledgements", &alice);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["acknowledged"], serde_json::json!([]), "{body}");
    drop(server);
}
