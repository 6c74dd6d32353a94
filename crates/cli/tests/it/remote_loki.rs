//! `alertbook run` with a remote Loki datasource bound to a log rule group:
//! a second alertbook serves the Loki API, lines pushed to it fire A7's
//! `SsoFallthrough` in the first, whose own log store never sees them; the
//! datasource's health is on /metrics, its errors name it once the remote
//! stops, and its password appears nowhere. And triage with `triage_logs`:
//! A3 fires over the embedded store, its log check reads a recorded Loki,
//! and the Loki's 500, malformed answer and timeout become failed checks
//! naming the datasource.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::postgres::{get, rule, start, wait_for};

const LOKI_PASSWORD: &str = "remote-loki-pw-3f9a";

/// The alerts of `alertname` in /api/v1/alerts: (summary, state).
fn alerts(
    client: &reqwest::blocking::Client,
    server: &super::durability::Server,
    alertname: &str,
) -> Vec<(String, String)> {
    let body: serde_json::Value = serde_json::from_str(&get(client, server, "/api/v1/alerts")).expect("JSON");
    let mut found: Vec<(String, String)> = body["data"]["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|alert| alert["labels"]["alertname"] == alertname)
        .map(|alert| {
            (
                alert["annotations"]["summary"].as_str().unwrap_or_default().to_owned(),
                alert["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

#[test]
fn run_with_a_remote_loki_fires_the_log_alert_from_lines_pushed_to_the_remote() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let directory = tempfile::tempdir().expect("temporary directory");
    let remote_directory = directory.path().join("remote");
    std::fs::create_dir_all(&remote_directory).expect("mkdir");
    let remote_config = remote_directory.join("alertbook.yaml");
    std::fs::write(
        &remote_config,
        format!("catalog: {}\nscrape_self: false\n", super::workspace_root().join("catalog/busflow").display()),
    )
    .expect("config");
    let (remote, remote_log) = start(&remote_directory, &remote_config);

    super::fast_catalog_at(&directory.path().join("catalog"), "logs.rules.yaml");
    std::fs::write(directory.path().join("loki-password"), format!("{LOKI_PASSWORD}\n")).expect("password file");
    let config = directory.path().join("alertbook.yaml");
    std::fs::write(
        &config,
        format!(
            "catalog: catalog\nscrape_self: false\ndatasources:\n  remote-loki:\n    type: loki\n    url: {}\n    tenant: busflow\n    timeout: 2s\n    basic_auth: {{username: alertbook, password_file: loki-password}}\nrule_datasources:\n  busflow-grafana-sso: remote-loki\n",
            remote.url
        ),
    )
    .expect("config");

    let check = super::alertbook(&["check", "--config", config.to_str().expect("utf-8")]);
    let check_output = format!("{}{}", super::stdout(&check), super::stderr(&check));
    assert!(check.status.success(), "{check_output}");
    assert!(check_output.contains(&format!("remote-loki (loki {}, tenant busflow)", remote.url)), "{check_output}");
    assert!(!check_output.contains(LOKI_PASSWORD), "{check_output}");

    let client = reqwest::blocking::Client::new();
    let (server, log) = start(directory.path(), &config);

    // Lines go to the remote only.
    let now_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as i64;
    let push = serde_json::json!({"streams": [{"stream": {"service_name": "busflow_grafana"}, "values": [
        // Grafana 11 logfmt (testdata/telemetry/grafana-11.logfmt): a JWT (SSO) failure counts,
        // a session failure does not.
        [(now_ns - 3_000_000_000).to_string(), r#"logger=authn.service t=2026-01-01T00:02:30.441180031Z level=warn msg="Failed to authenticate request" client=auth.client.jwt error="[auth.jwt.invalid] failed to verify JWT: square/go-jose/jwt: validation failed, token is expired (exp)""#],
        [(now_ns - 2_000_000_000).to_string(), r#"logger=authn.service t=2026-01-01T00:03:10.201772113Z level=warn msg="Failed to authenticate request" client=auth.client.session error="user token not found""#]
    ]}]});
    let pushed = client
        .post(format!("{}/loki/api/v1/push", remote.url))
        .header("content-type", "application/json")
        .body(push.to_string())
        .send()
        .expect("push");
    assert_eq!(pushed.status().as_u16(), 204);

    wait_for("SsoFallthrough firing", &log, || {
        alerts(&client, &server, "SsoFallthrough")
            == vec![(
                "1 requests reached Grafana with an SSO (JWT) claim it could not verify in 5 minutes".to_owned(),
                "firing".to_owned(),
            )]
    });
    assert_eq!(rule(&client, &server, "SsoFallthrough")["health"], "ok");
    let own: serde_json::Value = serde_json::from_str(&get(
        &client,
        &server,
        "/loki/api/v1/query_range?query=%7Bservice_name%3D%22busflow_grafana%22%7D",
    ))
    .expect("JSON");
    assert_eq!(own["data"]["result"], serde_json::json!([]), "the lines never reached the local store");
    // Groups not bound to the remote keep reading the embedded log store.
    wait_for("PiiLeakDetected evaluated over the embedded store", &log, || {
        rule(&client, &server, "PiiLeakDetected")["health"] == "ok"
    });
    let metrics = get(&client, &server, "/metrics");
    assert!(metrics.contains("alertbook_datasource_up{datasource=\"remote-loki\",type=\"loki\"} 1"), "{metrics}");

    // The remote stops: the rule's error names the datasource and it is down.
    drop(remote);
    wait_for("the remote error", &log, || {
        rule(&client, &server, "SsoFallthrough")["lastError"]
            .as_str()
            .is_some_and(|error| error.contains("loki datasource \"remote-loki\""))
    });
    assert_eq!(rule(&client, &server, "SsoFallthrough")["health"], "err");
    std::thread::sleep(Duration::from_millis(100));
    let metrics = get(&client, &server, "/metrics");
    assert!(metrics.contains("alertbook_datasource_up{datasource=\"remote-loki\",type=\"loki\"} 0"), "{metrics}");
    let answers = [get(&client, &server, "/api/v1/rules"), get(&client, &server, "/api/v1/status/config"), metrics];
    let log = log.lock().expect("log").clone();
    assert!(log.contains("loki datasource configured"), "{log}");
    for text in answers.iter().chain([&log, &remote_log.lock().expect("log").clone()]) {
        assert!(!text.contains(LOKI_PASSWORD), "the password leaked:\n{text}");
    }
}

/// How the recorded Loki answers.
const ANSWER: u8 = 0;
const SERVER_ERROR: u8 = 1;
const MALFORMED: u8 = 2;
const TOO_SLOW: u8 = 3;

/// A Loki query API replaying recorded answers (`testdata/loki/`): the
/// vector of `query-vector.json` relabelled by `pii_match_rule`, or, by
/// `mode`, a 500, the truncated body of `malformed-truncated.json`, or the
/// answer after 3 s. Each request's target and its tenant and authorization
/// headers are kept.
fn recorded_loki() -> (String, Arc<AtomicU8>, Arc<Mutex<Vec<String>>>) {
    let root = super::workspace_root().join("testdata/loki");
    let vector = std::fs::read_to_string(root.join("query-vector.json"))
        .expect("fixture")
        .replace(r#"{"tenant_id":"acme"}"#, r#"{"pii_match_rule":"email"}"#)
        .replace(r#"{"tenant_id":"globex"}"#, r#"{"pii_match_rule":"email,iban"}"#);
    let malformed = std::fs::read_to_string(root.join("malformed-truncated.json")).expect("fixture");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let mode = Arc::new(AtomicU8::new(ANSWER));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (answer_mode, requests) = (mode.clone(), seen.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let (mode, requests, vector, malformed) =
                (answer_mode.clone(), requests.clone(), vector.clone(), malformed.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                let mut request = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim_end().is_empty() {
                        break;
                    }
                    let lowercase = line.to_ascii_lowercase();
                    if request.is_empty()
                        || lowercase.starts_with("x-scope-orgid:")
                        || lowercase.starts_with("authorization:")
                    {
                        request.push_str(line.trim_end());
                        request.push('\n');
                    }
                }
                requests.lock().expect("requests").push(request.clone());
                let (status, body) = if !request.starts_with("GET /loki/api/v1/query?") {
                    (404, "404 page not found\n".to_owned())
                } else {
                    match mode.load(Ordering::SeqCst) {
                        SERVER_ERROR => (500, "rpc error: code = Unavailable desc = no ingesters available\n".into()),
                        MALFORMED => (200, malformed),
                        TOO_SLOW => {
                            std::thread::sleep(Duration::from_secs(3));
                            (200, vector)
                        }
                        _ => (200, vector),
                    }
                };
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json; charset=UTF-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let stream = reader.get_mut();
                let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(body.as_bytes()));
            });
        }
    });
    (url, mode, seen)
}

/// The step of the latest triage run that checked `result`, and the run.
fn latest_check(
    client: &reqwest::blocking::Client,
    server: &super::durability::Server,
    fingerprint: &str,
    result: &str,
) -> Option<(serde_json::Value, serde_json::Value)> {
    let record: serde_json::Value =
        serde_json::from_str(&get(client, server, &format!("/api/v1/triage?fingerprint={fingerprint}"))).ok()?;
    let run = record["data"]["runs"][0].clone();
    let step = run["steps"].as_array()?.iter().find(|step| step["check"]["result"] == result)?.clone();
    Some((run, step))
}

fn metric_line(client: &reqwest::blocking::Client, server: &super::durability::Server, prefix: &str) -> String {
    let metrics = get(client, server, "/metrics");
    metrics.lines().find(|line| line.starts_with(prefix)).unwrap_or_default().to_owned()
}

#[test]
fn run_triages_a_log_alert_with_checks_on_a_remote_loki_and_names_it_when_it_fails() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (url, mode, requests) = recorded_loki();
    let directory = tempfile::tempdir().expect("temporary directory");
    super::fast_catalog_at(&directory.path().join("catalog"), "logs.rules.yaml");
    std::fs::write(directory.path().join("loki-token"), format!("{LOKI_PASSWORD}\n")).expect("token file");
    let config = directory.path().join("alertbook.yaml");
    std::fs::write(
        &config,
        format!(
            "catalog: catalog\nscrape_self: false\ndatasources:\n  recorded-loki:\n    type: loki\n    url: {url}\n    tenant: busflow\n    timeout: 1s\n    bearer_token_file: loki-token\ntriage_logs: recorded-loki\n"
        ),
    )
    .expect("config");
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let (server, log) = start(directory.path(), &config);

    // Six Faro lines with an e-mail address: A3's rule fires over the embedded store.
    let now_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as i64;
    let values: Vec<[String; 2]> = (0..6)
        .map(|index| {
            [
                (now_ns - 1_000_000_000 + index).to_string(),
                format!("kind=log level=info message=\"login by jana{index}@example.com\""),
            ]
        })
        .collect();
    let push = serde_json::json!({"streams": [{"stream": {"job": "faro"}, "values": values}]});
    let pushed = client
        .post(format!("{}/loki/api/v1/push", server.url))
        .header("content-type", "application/json")
        .body(push.to_string())
        .send()
        .expect("push");
    assert_eq!(pushed.status().as_u16(), 204);
    let fingerprint = {
        let mut found = None;
        wait_for("PiiLeakDetected firing", &log, || {
            let body: serde_json::Value = serde_json::from_str(&get(&client, &server, "/api/v1/alerts")).expect("JSON");
            found = body["data"]["alerts"].as_array().expect("alerts").iter().find_map(|alert| {
                (alert["labels"]["alertname"] == "PiiLeakDetected" && alert["state"] == "firing")
                    .then(|| alert["fingerprint"].as_str().map(str::to_owned))
                    .flatten()
            });
            found.is_some()
        });
        found.expect("fingerprint")
    };

    // Its triage's log check read the recorded Loki: the vector by rule picks several-rules.
    wait_for("the first triage run", &log, || {
        latest_check(&client, &server, &fingerprint, "matches_by_rule").is_some()
    });
    let (run, step) = latest_check(&client, &server, &fingerprint, "matches_by_rule").expect("run");
    assert_eq!(step["status"], "ran", "{step}");
    assert_eq!(step["check"]["datasource"], "logs");
    assert_eq!(run["results"]["matches_by_rule"], serde_json::json!({"email": 3.0, "email,iban": 1.0}), "{run}");
    assert_eq!(run["path"], serde_json::json!(["several-rules"]), "{run}");
    let sent = requests.lock().expect("requests").clone();
    let query = sent.iter().find(|request| request.contains("pii_match_rule")).expect("the check's query was sent");
    assert!(query.starts_with("GET /loki/api/v1/query?query=sum+by+%28pii_match_rule%29"), "{query}");
    assert!(query.to_ascii_lowercase().contains("x-scope-orgid: busflow"), "{query}");
    assert!(query.contains(&format!("Bearer {LOKI_PASSWORD}")), "{query}");
    let up = "alertbook_datasource_up{datasource=\"recorded-loki\",type=\"loki\"}";
    assert_eq!(metric_line(&client, &server, up), format!("{up} 1"));

    // Each remote failure is a failed check naming the datasource; the run names the missing fact.
    let triage_url = format!("{}/api/v1/triage?fingerprint={fingerprint}", server.url);
    let port = server.url.rsplit(':').next().expect("port");
    let token = super::responder_token(&directory.path().join(format!("data-{port}")));
    for (failure, expected, up_after) in [
        (SERVER_ERROR, "HTTP 500: rpc error: code = Unavailable desc = no ingesters available", 0),
        (MALFORMED, "malformed answer", 1),
        (TOO_SLOW, "no answer within 1s", 0),
        (ANSWER, "", 1),
    ] {
        mode.store(failure, Ordering::SeqCst);
        let errors_before =
            metric_line(&client, &server, "alertbook_datasource_errors_total{datasource=\"recorded-loki\"");
        assert_eq!(client.post(&triage_url).bearer_auth(&token).send().expect("POST").status().as_u16(), 202);
        wait_for(&format!("a run after mode {failure}"), &log, || {
            latest_check(&client, &server, &fingerprint, "matches_by_rule").is_some_and(|(run, step)| {
                if expected.is_empty() {
                    step["status"] == "ran" && run["path"] == serde_json::json!(["several-rules"])
                } else {
                    step["status"] == "failed"
                        && step["check"]["error"].as_str().is_some_and(|error| error.contains(expected))
                }
            })
        });
        let (run, step) = latest_check(&client, &server, &fingerprint, "matches_by_rule").expect("run");
        if !expected.is_empty() {
            let error = step["check"]["error"].as_str().unwrap_or_default();
            assert!(error.contains("loki datasource \"recorded-loki\": "), "{step}");
            assert!(error.contains(expected), "{error}");
            assert_eq!(run["missing"], serde_json::json!(["matches_by_rule"]), "{run}");
            assert_eq!(run["path"], serde_json::json!([]), "{run}");
            assert_ne!(
                metric_line(&client, &server, "alertbook_datasource_errors_total{datasource=\"recorded-loki\""),
                errors_before
            );
        }
        assert_eq!(metric_line(&client, &server, up), format!("{up} {up_after}"), "after mode {failure}");
    }

    let log = log.lock().expect("log").clone();
    let answers = [
        get(&client, &server, "/api/v1/status/config"),
        get(&client, &server, &format!("/api/v1/triage?fingerprint={fingerprint}")),
    ];
    for text in answers.iter().chain([&log]) {
        assert!(!text.contains(LOKI_PASSWORD), "the token leaked:\n{text}");
    }
}
