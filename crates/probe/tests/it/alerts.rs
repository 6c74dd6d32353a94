//! A9, A10 and A11 from live probes: the shipped catalog's rules, evaluated
//! by the rules manager at the catalog's intervals on a test clock, over
//! samples that real checks of loopback servers wrote through the durable
//! ingest path.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::support::{self, HttpServer, Pki, target};

struct Harness {
    manager: rules::Manager,
    sink: probe::schedule::DurableSink,
}

impl Harness {
    fn new() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../catalog/busflow");
        let catalog = catalog::load(&root).unwrap_or_else(|diagnostics| panic!("{diagnostics}"));
        let store = Arc::new(tsdb::MemStore::new());
        let durable = Arc::new(ingest::durable::DurableStore::in_memory(store.clone()));
        let datasource = rules::EmbeddedDatasource::new(store, promql::Engine::default());
        let manager = rules::Manager::new(&catalog.rule_files, rules::ManagerOptions::embedded(datasource));
        Self { manager, sink: probe::schedule::DurableSink { durable, admit: Arc::new(|_| true) } }
    }

    /// Runs one check stamped `time_ms` and stores its series.
    async fn check(&self, probe: &mut probe::Probe, time_ms: i64) -> probe::Outcome {
        let (outcome, batch) = probe.run_series(time_ms).await;
        probe::schedule::Sink::append(&self.sink, &batch).expect("stored");
        outcome
    }

    /// Evaluates the group `name` at `time_ms`; the alerts of `alertname` it sends.
    fn evaluate(&self, name: &str, time_ms: i64, alertname: &str) -> Vec<rules::Notification> {
        let index = self.manager.statuses().iter().position(|group| group.name == name).expect("group");
        let (notifications, errors) = self.manager.evaluate_group(index, time_ms);
        assert!(errors.is_empty(), "{errors:?}");
        notifications.into_iter().filter(|notification| notification.labels["alertname"] == alertname).collect()
    }
}

fn contract_probe(
    group: &str,
    name: &str,
    mut options: catalog::probes::ProbeTarget,
    interval: Duration,
) -> probe::Probe {
    options.name = name.into();
    options.timeout = Some("2s".into());
    probe::Probe::new(probe::Check::new(group, &options, interval, Path::new(".")).expect("valid check"))
}

/// A start on the interval's grid, near the wall clock (A9 compares with time()).
fn start_ms(interval: Duration) -> i64 {
    let step = interval.as_millis() as i64;
    support::now_seconds() * 1000 / step * step
}

/// Fails `failures` checks in a row after one success, then succeeds: the
/// alert fires at the third failure, not before, with the reason, and
/// resolves at the next success.
async fn fires_after_three_failures(
    harness: &Harness,
    probe: &mut probe::Probe,
    interval: Duration,
    flip: &dyn Fn(bool),
    alertname: &str,
    expected_reason: &str,
) {
    let step = interval.as_millis() as i64;
    // The five checks straddle the wall clock (S3 refuses signatures more than 15 minutes off).
    let start = start_ms(interval) - 2 * step;
    let mut fired_at = None;
    for index in 0..=4 {
        let time_ms = start + index * step;
        flip(index == 0 || index == 4);
        let outcome = harness.check(probe, time_ms).await;
        assert_eq!(outcome.success(), index == 0 || index == 4, "check {index}: {outcome:?}");
        let sent = harness.evaluate("busflow-probes", time_ms, alertname);
        match index {
            0..=2 => assert!(sent.is_empty(), "{alertname} sent after {index} failures: {sent:?}"),
            3 => {
                let alert = sent.first().unwrap_or_else(|| panic!("{alertname} did not fire after three failures"));
                assert_eq!(alert.ends_at_ms, None);
                assert_eq!(alert.labels["probe"], probe.check.labels.probe);
                assert_eq!(alert.annotations["failure_reason"], expected_reason, "{:?}", alert.annotations);
                fired_at = Some(time_ms);
            }
            _ => {
                let alert = sent.first().unwrap_or_else(|| panic!("{alertname} did not resolve"));
                assert_eq!(alert.ends_at_ms, Some(time_ms), "{alert:?}");
            }
        }
    }
    assert_eq!(fired_at, Some(start + 3 * step));
}

#[tokio::test]
async fn a11_fires_after_three_failed_30s_checks_of_an_http_service_and_resolves() {
    let harness = Harness::new();
    let server = HttpServer::start("ok", Duration::ZERO, None).await;
    let interval = Duration::from_secs(30);
    let mut probe = contract_probe("studio-service-probes", "qdrant", target("http", &server.url("/readyz")), interval);
    let flip = |healthy: bool| server.set_status(if healthy { 200 } else { 503 });
    fires_after_three_failures(&harness, &mut probe, interval, &flip, "StudioServiceDown", "status").await;
}

#[tokio::test]
async fn a10_fires_after_three_failed_5m_checks_of_an_http_dependency_and_resolves() {
    let harness = Harness::new();
    let server = HttpServer::start("{\"data\":[]}", Duration::ZERO, None).await;
    let interval = Duration::from_secs(300);
    let mut options = target("http", &server.url("/v1/models"));
    options.body_regex = Some("\"data\"".into());
    let mut probe = contract_probe("external-dependency-probes", "llm-provider", options, interval);
    let flip = |healthy: bool| server.set_status(if healthy { 200 } else { 401 });
    fires_after_three_failures(&harness, &mut probe, interval, &flip, "ExternalDependencyDown", "status").await;
}

#[tokio::test]
async fn a9_fires_from_the_tls_prober_on_a_certificate_ten_days_from_expiry() {
    let harness = Harness::new();
    let pki = Pki::new();
    let interval = Duration::from_secs(300);
    let tls_target = |address: std::net::SocketAddr| {
        let mut options = target("tls", &address.to_string());
        options.server_name = Some("localhost".into());
        options.ca_file = Some(pki.ca_file.to_string_lossy().into_owned());
        options
    };
    let healthy = support::tls_server(&pki.valid_for_days(&["localhost"], 60)).await;
    let expiring = support::tls_server(&pki.valid_for_days(&["localhost"], 10)).await;
    let mut far = contract_probe("tls-certificates", "app", tls_target(healthy), interval);
    let mut near = contract_probe("tls-certificates", "grafana", tls_target(expiring), interval);
    let time_ms = start_ms(interval);
    assert!(harness.check(&mut far, time_ms).await.success());
    assert!(harness.check(&mut near, time_ms).await.success());
    let sent = harness.evaluate("busflow-tls", time_ms, "TlsCertExpiringSoon");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].labels["probe"], "grafana");
    let summary = &sent[0].annotations["summary"];
    assert!(summary.starts_with(&format!("certificate {expiring} expires in ")), "{summary}");
    assert!(summary.contains(" expires in 10d "), "{summary}");
}

#[tokio::test]
async fn a10_fires_after_three_failed_smtp_logins_with_the_reason_auth_and_resolves() {
    if !super::smtp::available() {
        return;
    }
    let harness = Harness::new();
    let pki = Pki::new();
    let files = super::smtp::files(&pki);
    let server = super::smtp::start(&files, true);
    let interval = Duration::from_secs(300);
    let options = super::smtp::smtp_target(&server, &pki, &files);
    let mut probe = contract_probe("external-dependency-probes", "aws-ses", options, interval);
    // The credentials in the file go stale (the server knows only the first).
    let good = std::fs::read_to_string(&files.password).expect("password");
    let flip = |healthy: bool| {
        std::fs::write(&files.password, if healthy { good.as_str() } else { "stale\n" }).expect("write")
    };
    fires_after_three_failures(&harness, &mut probe, interval, &flip, "ExternalDependencyDown", "auth").await;
}

#[tokio::test]
async fn a10_fires_after_three_failed_s3_listings_with_the_reason_auth_and_resolves() {
    let harness = Harness::new();
    let storage = super::s3::storage().await;
    let interval = Duration::from_secs(300);
    let options = super::s3::s3_target(&storage, "busflow-offsite");
    let mut probe = contract_probe("external-dependency-probes", "hetzner-object-storage", options, interval);
    // The secret key in the file is replaced by one the storage does not know.
    let flip = |healthy: bool| {
        let secret = if healthy { super::s3::SECRET_ACCESS_KEY } else { "rotated-elsewhere" };
        std::fs::write(&storage.secret_access_key_file, secret).expect("write");
    };
    fires_after_three_failures(&harness, &mut probe, interval, &flip, "ExternalDependencyDown", "auth").await;
}
