//! Receiver integrations end to end: an `alertmanager.yml` with Slack,
//! PagerDuty and webhook receivers, template files, and secrets in files;
//! alerts go through the routing service and the dispatcher to local HTTP
//! endpoints, whose requests are checked field by field against Slack's
//! incoming-webhook message and PagerDuty's Events API v2 as Alertmanager
//! 0.25 sends them. No secret may appear in the outbox, the history or an
//! error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use notify::{Alert, Dispatcher, DispatcherOptions, Outbox, RoutingService};
use parking_lot::Mutex;
use serde_json::Value;
use sha2::Digest;

const T0: i64 = 1_700_000_000_000;
const SECOND: i64 = 1000;

/// One request a capture endpoint received.
#[derive(Debug, Clone)]
pub struct Captured {
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: String,
}

impl Captured {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("{error}: {}", self.body))
    }
}

/// An HTTP endpoint on loopback that answers the given statuses in turn (then
/// 200) and records every request.
pub async fn capture(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<Captured>>>) {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let recorded = requests.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap, body: String| {
        let calls = calls.clone();
        let recorded = recorded.clone();
        let statuses = statuses.clone();
        async move {
            let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
            recorded.lock().push(Captured {
                path: uri.path().to_owned(),
                authorization: header("authorization"),
                content_type: header("content-type"),
                body,
            });
            let call = calls.fetch_add(1, Ordering::SeqCst);
            let status = statuses.get(call).copied().unwrap_or(200);
            (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), "ok")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, requests)
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/templates").join(name)
}

/// A directory with `alertmanager.yml`, the template fixtures under
/// `templates/` and the secret files under `secrets/`.
pub struct Setup {
    pub directory: tempfile::TempDir,
}

impl Setup {
    pub fn new(config: &str, secrets: &[(&str, &str)]) -> Self {
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir_all(directory.path().join("templates")).expect("mkdir");
        std::fs::create_dir_all(directory.path().join("secrets")).expect("mkdir");
        for name in ["slack-community.tmpl", "pagerduty-ops.tmpl", "email-ops.tmpl"] {
            std::fs::copy(fixture(name), directory.path().join("templates").join(name)).expect("copy fixture");
        }
        for (name, content) in secrets {
            std::fs::write(directory.path().join("secrets").join(name), format!("{content}\n")).expect("write secret");
        }
        let config = config.replace("$DIR", &directory.path().to_string_lossy());
        std::fs::write(directory.path().join("alertmanager.yml"), config).expect("write config");
        Self { directory }
    }

    pub fn open(&self, now: i64) -> (Arc<RoutingService>, Arc<Dispatcher>) {
        self.open_with_clock(now, Arc::new(notify::clock::SystemClock))
    }

    /// As [`Setup::open`], the dispatcher's and the service's loops reading `clock`.
    pub fn open_with_clock(
        &self,
        now: i64,
        clock: Arc<dyn notify::clock::Clock>,
    ) -> (Arc<RoutingService>, Arc<Dispatcher>) {
        let path = self.directory.path().join("alertmanager.yml");
        let config = match notify::routing::config::load(&path) {
            Ok(config) => Arc::new(config),
            Err(errors) => panic!("config refused:\n{errors}"),
        };
        let options = DispatcherOptions {
            timeout: Duration::from_secs(5),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            external_url: "http://alertbook.test:9099".into(),
            ..DispatcherOptions::default()
        };
        let outbox = Outbox::open(&self.directory.path().join("outbox")).expect("outbox");
        let dispatcher = Dispatcher::with_clock(outbox, Vec::new(), options, clock).expect("dispatcher");
        let service =
            RoutingService::open(config, &self.directory.path().join("notify"), dispatcher.clone(), now).expect("open");
        (service, dispatcher)
    }

    /// Every byte alertbook keeps on disk (outbox and state).
    pub fn stored_text(&self) -> String {
        let mut text = String::new();
        for sub in ["outbox", "notify"] {
            let Ok(entries) = std::fs::read_dir(self.directory.path().join(sub)) else { continue };
            for entry in entries.flatten() {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        text
    }
}

pub fn busflow_alert(alertname: &str, instance: &str, ends_at_ms: Option<i64>) -> Alert {
    Alert {
        labels: BTreeMap::from([
            ("alertname".to_owned(), alertname.to_owned()),
            ("instance".to_owned(), instance.to_owned()),
            ("job".to_owned(), "ingest".to_owned()),
            ("severity".to_owned(), "critical".to_owned()),
        ]),
        annotations: BTreeMap::from([
            ("summary".to_owned(), format!("{alertname} on {instance}")),
            ("description".to_owned(), "5xx above 2% for 10m".to_owned()),
            ("runbook_url".to_owned(), format!("https://runbook.busflow.example/{alertname}")),
            ("triage_path".to_owned(), "broad".to_owned()),
            ("triage_summary".to_owned(), "top_tenant_share = 0.18".to_owned()),
        ]),
        starts_at_ms: T0 - 60 * SECOND,
        ends_at_ms,
        generator_url: "http://alertbook.test:9099/graph?g0.expr=up".into(),
    }
}

const SLACK_CONFIG: &str = r#"
templates: ['templates/*.tmpl']
route:
  receiver: slack-ops
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: slack-ops
    slack_configs:
      - api_url_file: $DIR/secrets/slack-url
        channel: '#ops'
        send_resolved: true
        title: '{{ template "slack.busflow.title" . }}'
        title_link: '{{ template "slack.busflow.runbook" . }}'
        text: '{{ template "slack.busflow.text" . }}'
        short_fields: true
        fields:
          - title: Severity
            value: '{{ .CommonLabels.severity }}'
          - title: Firing
            value: '{{ len .Alerts.Firing }}'
            short: false
        actions:
          - type: button
            text: 'Runbook :green_book:'
            url: '{{ (index .Alerts 0).Annotations.runbook_url }}'
          - type: button
            text: 'Silence :no_bell:'
            url: '{{ .SilenceURL }}'
            style: danger
"#;

#[tokio::test]
async fn slack_messages_have_alertmanagers_shape_and_the_url_stays_secret() {
    let (base, requests) = capture(vec![]).await;
    let secret_path = "/services/T0BUSFLOW/B0OPS/xoxb-secret-slack-token";
    let setup = Setup::new(SLACK_CONFIG, &[("slack-url", &format!("{base}{secret_path}"))]);
    let (service, dispatcher) = setup.open(T0);
    service.put(
        vec![busflow_alert("HighApiErrorRate", "api-1", None), busflow_alert("HighApiErrorRate", "api-2", None)],
        T0,
    );
    assert_eq!(service.tick(T0).expect("tick"), 1);
    assert!(!setup.stored_text().contains("xoxb-secret"), "the URL file's content is not stored");
    assert_eq!(dispatcher.deliver_due(T0).await.expect("deliver").delivered, 1);

    let request = requests.lock()[0].clone();
    assert_eq!(request.path, secret_path, "posted to the URL read from api_url_file");
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    let message = request.json();
    let object = message.as_object().expect("object");
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(keys, ["attachments", "channel", "username"], "empty fields are left out");
    assert_eq!(message["channel"], "#ops");
    assert_eq!(message["username"], "alertbook", "slack.default.username");
    let attachments = message["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1);
    let attachment = &attachments[0];
    assert_eq!(attachment["title"], "[FIRING:2] HighApiErrorRate for ingest (job=\"ingest\", severity=\"critical\")");
    assert_eq!(attachment["title_link"], "https://runbook.busflow.example/HighApiErrorRate");
    let text = attachment["text"].as_str().expect("text");
    assert!(text.contains("*Alert:* HighApiErrorRate on api-1 - `critical`"), "{text}");
    assert!(text.contains("*Alert:* HighApiErrorRate on api-2"), "{text}");
    assert!(text.contains(" • *instance:* `api-2`"), "{text}");
    assert_eq!(
        attachment["fallback"],
        "[FIRING:2] HighApiErrorRate (ingest critical) | http://alertbook.test:9099/#/alerts?receiver=slack-ops",
        "slack.default.fallback: title and link"
    );
    assert_eq!(attachment["callback_id"], "");
    assert_eq!(attachment["footer"], "");
    assert_eq!(attachment["color"], "danger");
    assert_eq!(attachment["mrkdwn_in"], serde_json::json!(["fallback", "pretext", "text"]));
    assert!(attachment.get("pretext").is_none() && attachment.get("image_url").is_none());
    assert_eq!(
        attachment["fields"],
        serde_json::json!([
            {"title": "Severity", "value": "critical", "short": true},
            {"title": "Firing", "value": "2", "short": false},
        ])
    );
    assert_eq!(attachment["actions"][0]["type"], "button");
    assert_eq!(attachment["actions"][0]["url"], "https://runbook.busflow.example/HighApiErrorRate");
    assert_eq!(
        attachment["actions"][1]["url"],
        "http://alertbook.test:9099/#/silences/new?filter=%7Balertname%3D%22HighApiErrorRate%22%7D"
    );
    assert_eq!(attachment["actions"][1]["style"], "danger");
    assert!(attachment["actions"][0].get("style").is_none());

    // Both resolve: the resolved message is sent (send_resolved), green.
    let later = T0 + 2 * 60 * SECOND;
    service.put(
        vec![
            busflow_alert("HighApiErrorRate", "api-1", Some(later - SECOND)),
            busflow_alert("HighApiErrorRate", "api-2", Some(later - SECOND)),
        ],
        later,
    );
    assert_eq!(service.tick(later).expect("tick"), 1);
    dispatcher.deliver_due(later).await.expect("deliver");
    let resolved = requests.lock()[1].json();
    assert_eq!(resolved["attachments"][0]["color"], "good");
    assert!(resolved["attachments"][0]["title"].as_str().expect("title").starts_with("[RESOLVED] HighApiErrorRate"));

    let history = serde_json::to_string(&service.history(10)).expect("JSON");
    assert!(history.contains("\"delivered\""), "{history}");
    assert!(!history.contains("xoxb-secret"), "{history}");
}

#[tokio::test]
async fn alertbooks_default_slack_text_carries_runbook_triage_and_silence() {
    let (base, requests) = capture(vec![]).await;
    let config = format!(
        "route:\n  receiver: s\n  group_by: [alertname]\n  group_wait: 0s\nreceivers:\n  - name: s\n    slack_configs:\n      - api_url: {base}/hook\n"
    );
    let setup = Setup::new(&config, &[]);
    let (service, dispatcher) = setup.open(T0);
    service.put(vec![busflow_alert("TenantLagHigh", "worker-1", None)], T0);
    service.tick(T0).expect("tick");
    dispatcher.deliver_due(T0).await.expect("deliver");
    let message = requests.lock()[0].json();
    let attachment = &message["attachments"][0];
    assert_eq!(attachment["title"], "[FIRING:1] TenantLagHigh (worker-1 ingest critical)");
    assert_eq!(attachment["title_link"], "http://alertbook.test:9099/#/alerts?receiver=s");
    assert_eq!(
        attachment["text"],
        "Firing:\n• TenantLagHigh on worker-1\n  Runbook: https://runbook.busflow.example/TenantLagHigh\n  Triage path: broad\n  Triage: top_tenant_share = 0.18\nSilence: http://alertbook.test:9099/#/silences/new?filter=%7Balertname%3D%22TenantLagHigh%22%7D"
    );
}

const PAGERDUTY_CONFIG: &str = r#"
templates: ['templates/*.tmpl']
route:
  receiver: security-oncall
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: security-oncall
    pagerduty_configs:
      - routing_key_file: $DIR/secrets/pagerduty-key
        url: $BASE/v2/enqueue
        description: '{{ template "pagerduty.busflow.description" . }}'
        severity: '{{ if eq .CommonLabels.severity "critical" }}critical{{ else }}warning{{ end }}'
        class: '{{ .CommonLabels.job }}'
        component: busflow-api
        group: '{{ .CommonLabels.alertname }}'
        details:
          since: '{{ template "pagerduty.busflow.firing" . }}'
          triage: '{{ .CommonAnnotations.triage_summary }}'
        links:
          - href: '{{ .CommonAnnotations.runbook_url }}'
            text: Runbook
          - href: ''
            text: dropped, as Alertmanager drops links without href
"#;

#[tokio::test]
async fn pagerduty_events_follow_the_events_api_v2() {
    let (base, requests) = capture(vec![]).await;
    let key = "R0UT1NGKEY0123456789abcdefSECRET";
    let setup = Setup::new(&PAGERDUTY_CONFIG.replace("$BASE", &base), &[("pagerduty-key", key)]);
    let (service, dispatcher) = setup.open(T0);
    service.put(vec![busflow_alert("PiiLeakDetected", "api-1", None)], T0);
    service.tick(T0).expect("tick");
    assert!(!setup.stored_text().contains(key), "the routing key is read at send time, not stored");
    dispatcher.deliver_due(T0).await.expect("deliver");

    let request = requests.lock()[0].clone();
    assert_eq!(request.path, "/v2/enqueue");
    let event = request.json();
    let group_key = service.history(1)[0].group_key.clone();
    assert_eq!(group_key, "{}:{alertname=\"PiiLeakDetected\"}");
    let expected_dedup: String =
        sha2::Sha256::digest(group_key.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect();
    assert_eq!(event["routing_key"], key);
    assert_eq!(event["dedup_key"], expected_dedup.as_str());
    assert_eq!(event["event_action"], "trigger");
    assert_eq!(event["client"], "alertbook");
    assert_eq!(event["client_url"], "http://alertbook.test:9099/#/alerts?receiver=security-oncall");
    assert_eq!(
        event["links"],
        serde_json::json!([{"href": "https://runbook.busflow.example/PiiLeakDetected", "text": "Runbook"}])
    );
    assert!(event.get("images").is_none());
    let payload = &event["payload"];
    assert_eq!(payload["summary"], "PiiLeakDetected: PiiLeakDetected on api-1");
    assert_eq!(payload["source"], "alertbook", "source defaults to client");
    assert_eq!(payload["severity"], "critical");
    assert_eq!(payload["class"], "ingest");
    assert_eq!(payload["component"], "busflow-api");
    assert_eq!(payload["group"], "PiiLeakDetected");
    assert!(payload.get("timestamp").is_none());
    let details = &payload["custom_details"];
    assert_eq!(details["since"], "api-1 since 2023-11-14T22:12:20Z\n");
    assert_eq!(details["triage"], "top_tenant_share = 0.18");
    assert_eq!(details["num_firing"], "1");
    assert_eq!(details["num_resolved"], "0");
    assert_eq!(details["resolved"], "");
    let firing = details["firing"].as_str().expect("firing");
    assert!(firing.starts_with("Labels:\n - alertname = PiiLeakDetected\n - instance = api-1\n"), "{firing}");
    assert!(firing.contains("Runbook: https://runbook.busflow.example/PiiLeakDetected\n"), "{firing}");
    assert!(firing.contains("Source: http://alertbook.test:9099/graph?g0.expr=up\n"), "{firing}");

    let later = T0 + 2 * 60 * SECOND;
    service.put(vec![busflow_alert("PiiLeakDetected", "api-1", Some(later - SECOND))], later);
    service.tick(later).expect("tick");
    dispatcher.deliver_due(later).await.expect("deliver");
    let resolve = requests.lock()[1].json();
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(resolve["dedup_key"], expected_dedup.as_str(), "the same incident");
    assert_eq!(resolve["payload"]["custom_details"]["num_resolved"], "1");
}

#[tokio::test]
async fn failures_name_no_secret() {
    // A closed port behind a secret URL, a refused PagerDuty event, a missing key file.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_url = format!("http://{}/services/xoxb-closed-secret", closed.local_addr().expect("address"));
    drop(closed);
    let (base, _requests) = capture(vec![400]).await;
    let config = format!(
        r#"
route:
  receiver: all
  group_wait: 0s
receivers:
  - name: all
    slack_configs:
      - api_url_file: $DIR/secrets/slack-url
    pagerduty_configs:
      - routing_key_file: $DIR/secrets/pagerduty-key
        url: {base}/v2/enqueue
      - routing_key_file: $DIR/secrets/missing-key
        url: {base}/v2/enqueue
"#
    );
    let setup = Setup::new(&config, &[("slack-url", &closed_url), ("pagerduty-key", "PDKEY-very-secret-routing-key")]);
    let (service, dispatcher) = setup.open(T0);
    service.put(vec![busflow_alert("HighApiErrorRate", "api-1", None)], T0);
    assert_eq!(service.tick(T0).expect("tick"), 3);
    let stats = dispatcher.deliver_due(T0).await.expect("deliver");
    assert_eq!((stats.delivered, stats.retried, stats.dropped), (0, 2, 1), "{stats:?}");
    let history = service.history(10);
    let errors: Vec<String> = history.iter().filter_map(|record| record.error.clone()).collect();
    assert_eq!(errors.len(), 3, "{history:?}");
    let all = serde_json::to_string(&history).expect("JSON") + &setup.stored_text();
    for secret in ["xoxb-closed-secret", "PDKEY-very-secret"] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
    assert!(errors.iter().any(|error| error.contains("missing-key")), "the missing file is named: {errors:?}");
    assert!(errors.iter().any(|error| error.starts_with("400")), "{errors:?}");
}

#[tokio::test]
async fn webhook_http_config_authenticates_from_files_and_max_alerts_truncates() {
    let (base, requests) = capture(vec![]).await;
    let config = format!(
        r#"
route:
  receiver: hooks
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: hooks
    webhook_configs:
      - url: {base}/basic
        max_alerts: 2
        http_config:
          basic_auth:
            username: alertbook
            password_file: $DIR/secrets/hook-password
      - url: {base}/bearer
        http_config:
          authorization:
            credentials_file: $DIR/secrets/hook-token
      - url: {base}/custom
        http_config:
          authorization:
            type: Token
            credentials_file: $DIR/secrets/hook-token
"#
    );
    let setup = Setup::new(&config, &[("hook-password", "pa55-w0rd-secret"), ("hook-token", "tok-3n-secret")]);
    let (service, dispatcher) = setup.open(T0);
    let alerts: Vec<Alert> =
        (1..=3).map(|index| busflow_alert("HighApiErrorRate", &format!("api-{index}"), None)).collect();
    service.put(alerts, T0);
    assert_eq!(service.tick(T0).expect("tick"), 3);
    let stored = setup.stored_text();
    assert!(stored.contains("hook-password") && !stored.contains("pa55-w0rd"), "the file is stored, not the secret");
    assert!(!stored.contains("tok-3n"), "credentials are read at send time");
    assert_eq!(dispatcher.deliver_due(T0).await.expect("deliver").delivered, 3);
    let mut requests = requests.lock().clone();
    requests.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: Vec<&str> = requests.iter().map(|request| request.path.as_str()).collect();
    assert_eq!(paths, ["/basic", "/bearer", "/custom"]);
    // base64("alertbook:pa55-w0rd-secret")
    assert_eq!(requests[0].authorization.as_deref(), Some("Basic YWxlcnRib29rOnBhNTUtdzByZC1zZWNyZXQ="));
    assert_eq!(requests[1].authorization.as_deref(), Some("Bearer tok-3n-secret"));
    assert_eq!(requests[2].authorization.as_deref(), Some("Token tok-3n-secret"));
    let truncated = requests[0].json();
    assert_eq!(truncated["alerts"].as_array().map(Vec::len), Some(2));
    assert_eq!(truncated["truncatedAlerts"], 1);
    assert_eq!(requests[1].json()["alerts"].as_array().map(Vec::len), Some(3));
    assert_eq!(requests[1].json()["truncatedAlerts"], 0);
}

#[tokio::test]
async fn the_flush_and_delivery_loops_run_on_a_clock_faster_than_the_wall() {
    use notify::clock::{Clock, ScaledClock};
    // The first attempt fails, the retry is accepted.
    let (base, requests) = capture(vec![503]).await;
    let config = format!(
        r#"
route:
  receiver: hooks
  group_by: [alertname]
  group_wait: 2m
  group_interval: 5m
receivers:
  - name: hooks
    webhook_configs:
      - url: {base}/hook
"#
    );
    let setup = Setup::new(&config, &[]);
    // Twelve virtual hours at 600 times the wall's pace; a virtual minute is 0.1 s.
    let wall = notify::clock::SystemClock.now_ms();
    let clock = Arc::new(ScaledClock::catching_up(wall, 12 * 3_600_000, 600));
    let start = clock.now_ms();
    assert!(start < wall - 11 * 3_600_000, "the day is played before the wall's now");
    let (service, dispatcher) = setup.open_with_clock(start, clock.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait_for_stop = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    tokio::spawn(service.clone().run(wait_for_stop(stopped.clone())));
    tokio::spawn(dispatcher.clone().run(wait_for_stop(stopped)));
    // A fresh alert (an old one would skip group_wait).
    let alert = Alert { starts_at_ms: start, ..busflow_alert("HighApiErrorRate", "api-1", None) };
    service.put(vec![alert], start);
    // On the wall's clock group_wait alone would take two minutes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let history = service.history(10);
        if let Some(record) = history.iter().find(|record| record.state == "delivered") {
            break record.clone();
        }
        assert!(tokio::time::Instant::now() < deadline, "not delivered: {history:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.send(true).expect("stop");
    assert_eq!(requests.lock().len(), 2, "one refused attempt, one accepted retry");
    assert_eq!(delivered.attempts, 2);
    assert!(delivered.created_ms >= start + 2 * 60 * SECOND, "group_wait is virtual time: {delivered:?}");
    let finished = delivered.finished_ms.expect("finished");
    assert!(finished >= delivered.created_ms + SECOND, "the retry waited its backoff in virtual time");
    assert!(finished < wall, "history times are the clock's: {delivered:?}");
}

/// An HTTPS endpoint with a certificate for 127.0.0.1 signed by a fresh CA
/// (written to `ca_file`); counts the requests it answers with 200.
async fn https_endpoint(ca_file: &Path) -> (String, Arc<AtomicUsize>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    notify::install_crypto_provider();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let leaf =
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("parameters").signed_by(&key, &ca).expect("sign");
    std::fs::write(ca_file, ca.pem()).expect("write CA");
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("https://{}/hook", listener.local_addr().expect("address"));
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(stream).await else { return };
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while let Ok(read) = stream.read(&mut buffer).await {
                    if read == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|line| {
                                line.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                            })
                            .and_then(|value| value.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            break;
                        }
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (url, served)
}

#[tokio::test]
async fn webhook_tls_config_trusts_its_ca_file_or_skips_verification_when_told() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let ca_file = directory.path().join("ca.pem");
    let (url, served) = https_endpoint(&ca_file).await;
    notify::integrations::http::forget_clients();
    let config = format!(
        r#"
route:
  receiver: hooks
  group_wait: 0s
receivers:
  - name: hooks
    webhook_configs:
      - url: {url}
        http_config: {{tls_config: {{ca_file: {ca}}}}}
      - url: {url}
        http_config: {{follow_redirects: true}}
      - url: {url}
        http_config: {{tls_config: {{insecure_skip_verify: true}}}}
"#,
        ca = ca_file.display()
    );
    let setup = Setup::new(&config, &[]);
    let (service, dispatcher) = setup.open(T0);
    service.put(vec![busflow_alert("HighApiErrorRate", "api-1", None)], T0);
    assert_eq!(service.tick(T0).expect("tick"), 3);
    let stats = dispatcher.deliver_due(T0).await.expect("deliver");
    assert_eq!((stats.delivered, stats.retried), (2, 1), "{:?}", service.history(3));
    assert_eq!(served.load(Ordering::SeqCst), 2);
    let failed: Vec<_> = service.history(3).into_iter().filter(|record| record.error.is_some()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].integration, "webhook");
}
