//! The http, tcp and tls probers against real servers on loopback.

use std::time::Duration;

use probe::Reason;

use super::support::{self, HttpServer, Pki, probe, target};

fn reason(outcome: &probe::Outcome) -> Option<Reason> {
    outcome.failure.as_ref().map(|failure| failure.reason)
}

#[tokio::test]
async fn http_follows_a_server_whose_health_flips() {
    let server = HttpServer::start("ready", Duration::ZERO, None).await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let mut check = probe(target("http", &server.url("/readyz")), directory.path());
    let (outcome, batch) = check.run_series(1_000).await;
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.http_status, Some(200));
    let names: Vec<String> = batch.iter().map(|(labels, _)| labels.metric_name().unwrap_or("").to_owned()).collect();
    assert_eq!(names, ["probe_success", "probe_duration_seconds", "probe_http_status_code"]);

    server.set_status(503);
    let (outcome, batch) = check.run_series(2_000).await;
    assert_eq!(reason(&outcome), Some(Reason::Status));
    assert_eq!(outcome.http_status, Some(503));
    let failure =
        batch.iter().find(|(labels, _)| labels.metric_name() == Some("probe_failure_reason")).expect("reason");
    assert_eq!(failure.0.get("reason"), Some("status"));
    assert_eq!(failure.0.get("probe_group"), Some("tests"));
    assert_eq!(failure.1, [(2_000, 1.0)]);

    server.set_status(200);
    let (outcome, batch) = check.run_series(3_000).await;
    assert!(outcome.success());
    let stale = batch.iter().find(|(labels, _)| labels.metric_name() == Some("probe_failure_reason")).expect("marker");
    assert!(tsdb::is_stale_nan(stale.1[0].1));
}

#[tokio::test]
async fn http_sends_method_and_headers_and_checks_codes_and_body() {
    let server = HttpServer::start("{\"status\":\"green\"}", Duration::ZERO, None).await;
    let directory = tempfile::tempdir().expect("temporary directory");
    std::fs::write(directory.path().join("api-key"), "sk-test-secret\n").expect("write key");
    let mut options = target("http", &server.url("/v1/models"));
    options.method = Some("POST".into());
    options.headers.insert("anthropic-version".into(), "2023-06-01".into());
    options.header_files.insert("x-api-key".into(), "api-key".into());
    options.valid_status_codes = vec![200, 204];
    options.body_regex = Some("\"status\":\"green\"".into());
    let mut check = probe(options.clone(), directory.path());
    let outcome = check.run(0).await;
    assert!(outcome.success(), "{outcome:?}");
    let request = server.seen.requests.lock().expect("requests")[0].clone();
    assert!(request.starts_with("POST /v1/models HTTP/1.1\r\n"), "{request}");
    assert!(request.contains("anthropic-version: 2023-06-01\r\n"), "{request}");
    assert!(request.contains("x-api-key: sk-test-secret\r\n"), "{request}");

    options.body_regex = Some("\"status\":\"red\"".into());
    let outcome = probe(options.clone(), directory.path()).run(0).await;
    assert_eq!(reason(&outcome), Some(Reason::Body));

    options.body_regex = None;
    options.valid_status_codes = vec![204];
    let outcome = probe(options.clone(), directory.path()).run(0).await;
    assert_eq!(reason(&outcome), Some(Reason::Status));
    assert!(outcome.failure.as_ref().expect("failure").message.contains("status 200 is not among the expected 204"));

    // A missing credential file is a configuration failure naming the file, never the content.
    options.header_files.insert("x-api-key".into(), "missing-key".into());
    options.valid_status_codes = vec![];
    let outcome = probe(options, directory.path()).run(0).await;
    assert_eq!(reason(&outcome), Some(Reason::Config));
    let message = &outcome.failure.as_ref().expect("failure").message;
    assert!(message.contains("missing-key") && !message.contains("sk-test"), "{message}");
}

#[tokio::test]
async fn http_and_tcp_report_refused_and_timeout() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let port = support::closed_port();
    let outcome = probe(target("http", &format!("http://127.0.0.1:{port}/")), directory.path()).run(0).await;
    assert_eq!(reason(&outcome), Some(Reason::Refused), "{outcome:?}");
    let outcome = probe(target("tcp", &format!("127.0.0.1:{port}")), directory.path()).run(0).await;
    assert_eq!(reason(&outcome), Some(Reason::Refused), "{outcome:?}");

    let silent = support::silent_server().await;
    let mut options = target("http", &format!("http://{silent}/"));
    options.timeout = Some("300ms".into());
    let outcome = probe(options, directory.path()).run(0).await;
    assert_eq!(reason(&outcome), Some(Reason::Timeout), "{outcome:?}");
    assert!(outcome.duration >= Duration::from_millis(300));

    let outcome = probe(target("http", "http://name.invalid/"), directory.path()).run(0).await;
    assert_eq!(reason(&outcome), Some(Reason::Dns), "{outcome:?}");
}

#[tokio::test]
async fn tcp_connects_sends_and_expects() {
    let server = HttpServer::start("", Duration::ZERO, None).await;
    let directory = tempfile::tempdir().expect("temporary directory");
    let outcome = probe(target("tcp", &server.address.to_string()), directory.path()).run(0).await;
    assert!(outcome.success(), "{outcome:?}");
    let mut options = target("tcp", &server.address.to_string());
    options.send = Some("GET / HTTP/1.0\r\n".into());
    options.expect = Some("^HTTP/1\\.1 200".into());
    let outcome = probe(options.clone(), directory.path()).run(0).await;
    assert!(outcome.success(), "{outcome:?}");
    options.expect = Some("^SSH-2.0".into());
    let outcome = probe(options, directory.path()).run(0).await;
    assert_eq!(reason(&outcome), Some(Reason::Expect), "{outcome:?}");
}

#[tokio::test]
async fn tls_reports_the_chain_expiry_for_valid_and_invalid_certificates() {
    let pki = Pki::new();
    let now = support::now_seconds();
    let directory = pki.directory.path().to_owned();
    let tls_probe = |address: std::net::SocketAddr, name: &str, ca: bool| {
        let mut options = target("tls", &address.to_string());
        options.server_name = Some(name.into());
        if ca {
            options.ca_file = Some("ca.pem".into());
        }
        probe(options, &directory)
    };

    // Valid for a year.
    let valid = pki.valid_for_days(&["localhost"], 365);
    let address = support::tls_server(&valid).await;
    let outcome = tls_probe(address, "localhost", true).run(0).await;
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.earliest_cert_expiry, Some(valid.not_after as f64));

    // Ten days left: the check succeeds and the expiry says so (A9 reads it).
    let expiring = pki.valid_for_days(&["localhost"], 10);
    let address = support::tls_server(&expiring).await;
    let outcome = tls_probe(address, "localhost", true).run(0).await;
    assert!(outcome.success(), "{outcome:?}");
    let left = outcome.earliest_cert_expiry.expect("expiry") - now as f64;
    assert!((9.9 * 86_400.0..=10.1 * 86_400.0).contains(&left), "{left}");

    // Expired: a failure, and the expiry is still reported, in the past.
    let expired = pki.leaf(&["localhost"], now - 90 * 86_400, now - 2 * 86_400);
    let address = support::tls_server(&expired).await;
    let outcome = tls_probe(address, "localhost", true).run(0).await;
    assert_eq!(reason(&outcome), Some(Reason::Tls));
    let message = &outcome.failure.as_ref().expect("failure").message;
    assert!(message.contains("expired"), "{message}");
    assert_eq!(outcome.earliest_cert_expiry, Some(expired.not_after as f64));

    // Another host's certificate.
    let address = support::tls_server(&valid).await;
    let outcome = tls_probe(address, "busflow.example", true).run(0).await;
    assert_eq!(reason(&outcome), Some(Reason::Tls));
    let message = &outcome.failure.as_ref().expect("failure").message;
    assert!(message.contains("not valid for name"), "{message}");
    assert_eq!(outcome.earliest_cert_expiry, Some(valid.not_after as f64));

    // Self-signed: unknown issuer, against the test CA and against the system's roots.
    let own = support::self_signed(&["localhost"], 30);
    let address = support::tls_server(&own).await;
    for ca in [true, false] {
        let outcome = tls_probe(address, "localhost", ca).run(0).await;
        assert_eq!(reason(&outcome), Some(Reason::Tls));
        let message = &outcome.failure.as_ref().expect("failure").message;
        assert!(message.contains("UnknownIssuer"), "{message}");
        assert_eq!(outcome.earliest_cert_expiry, Some(own.not_after as f64));
    }

    // Nothing listening: refused, no expiry.
    let outcome =
        tls_probe(format!("127.0.0.1:{}", support::closed_port()).parse().expect("address"), "localhost", true)
            .run(0)
            .await;
    assert_eq!(reason(&outcome), Some(Reason::Refused));
    assert_eq!(outcome.earliest_cert_expiry, None);
}

#[tokio::test]
async fn https_verifies_unless_told_not_to_and_reports_the_expiry() {
    let pki = Pki::new();
    let own = support::self_signed(&["localhost"], 30);
    let server = HttpServer::start("ok", Duration::ZERO, Some(support::acceptor(&own))).await;
    let url = format!("https://localhost:{}/health", server.address.port());
    let outcome = probe(target("http", &url), pki.directory.path()).run(0).await;
    assert_eq!(reason(&outcome), Some(Reason::Tls), "{outcome:?}");
    assert!(outcome.failure.as_ref().expect("failure").message.contains("UnknownIssuer"));
    assert_eq!(outcome.earliest_cert_expiry, Some(own.not_after as f64));
    assert_eq!(outcome.http_status, None);

    let mut unverified = target("http", &url);
    unverified.tls_verify = Some(false);
    let outcome = probe(unverified, pki.directory.path()).run(0).await;
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.earliest_cert_expiry, Some(own.not_after as f64));

    let valid = pki.valid_for_days(&["localhost"], 60);
    let server = HttpServer::start("ok", Duration::ZERO, Some(support::acceptor(&valid))).await;
    let mut trusted = target("http", &format!("https://localhost:{}/", server.address.port()));
    trusted.ca_file = Some(pki.ca_file.to_string_lossy().into_owned());
    let outcome = probe(trusted, pki.directory.path()).run(0).await;
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.earliest_cert_expiry, Some(valid.not_after as f64));
}
