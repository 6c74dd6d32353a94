//! The email receiver against a real SMTP server: aiosmtpd (Debian's
//! python3-aiosmtpd, installed by scripts/peers/smtp.sh) on loopback,
//! requiring STARTTLS and AUTH, started by `scripts/peers/smtp-mailbox.py`,
//! which reports every message it accepts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::Value;

use super::receivers::{Setup, busflow_alert};

const T0: i64 = 1_700_000_000_000;

/// Whether aiosmtpd is there; without it the tests fail, unless ALERTBOOK_SKIP_PEERS=1.
fn available() -> bool {
    let found = Command::new("/usr/bin/python3")
        .args(["-c", "import aiosmtpd"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        return true;
    }
    if std::env::var("ALERTBOOK_SKIP_PEERS").as_deref() == Ok("1") {
        eprintln!("skipped: no aiosmtpd for /usr/bin/python3 and ALERTBOOK_SKIP_PEERS=1");
        return false;
    }
    panic!(
        "no aiosmtpd for /usr/bin/python3: run scripts/peers/smtp.sh (scripts/test does), or set ALERTBOOK_SKIP_PEERS=1"
    );
}

/// A running aiosmtpd and the messages it accepted, stopped when dropped.
struct Mailbox {
    child: Child,
    port: u16,
    messages: mpsc::Receiver<Value>,
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Mailbox {
    fn next(&self) -> Value {
        self.messages.recv_timeout(Duration::from_secs(10)).expect("a message reached the SMTP server")
    }
}

/// Writes a CA, the server's certificate for `localhost` and the
/// credentials into `directory/smtp`, and starts the server.
fn start(directory: &Path) -> Mailbox {
    let files = directory.join("smtp");
    std::fs::create_dir_all(&files).expect("mkdir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "alertbook test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let leaf =
        CertificateParams::new(vec!["localhost".to_owned()]).expect("parameters").signed_by(&key, &ca).expect("sign");
    std::fs::write(directory.join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(files.join("cert.pem"), leaf.pem()).expect("write");
    std::fs::write(files.join("key.pem"), key.serialize_pem()).expect("write");
    std::fs::write(files.join("username"), "busflow\n").expect("write");
    std::fs::write(files.join("password"), "smtp-s3cret-pass\n").expect("write");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/peers/smtp-mailbox.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .args(["cert.pem", "key.pem", "username", "password"].map(|name| files.join(name)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the SMTP server starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = lines.next().and_then(Result::ok).unwrap_or_default();
    let port = ready
        .strip_prefix("ready ")
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("SMTP server said {ready:?}"));
    let (sender, messages) = mpsc::channel();
    std::thread::spawn(move || read_messages(lines, sender));
    Mailbox { child, port, messages }
}

fn read_messages(lines: std::io::Lines<BufReader<ChildStdout>>, sender: mpsc::Sender<Value>) {
    for line in lines.map_while(Result::ok) {
        if let Ok(message) = serde_json::from_str(&line) {
            let _ = sender.send(message);
        }
    }
}

/// The headers of a message (unfolded) and its body.
fn split_message(data: &str) -> (Vec<(String, String)>, String) {
    let data = data.replace("\r\n", "\n");
    let (head, body) = data.split_once("\n\n").unwrap_or((&data, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
    }
    (headers, body.to_owned())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
}

/// Decodes quoted-printable text.
fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'='
            && let Some(byte) = joined.get(index + 1..index + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            decoded.push(byte);
            index += 3;
            continue;
        }
        decoded.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The decoded parts of a multipart body: (content type, text).
fn parts(content_type: &str, body: &str) -> Vec<(String, String)> {
    let boundary = content_type
        .split(';')
        .find_map(|parameter| parameter.trim().strip_prefix("boundary="))
        .map(|boundary| boundary.trim_matches('"').to_owned())
        .expect("a boundary");
    body.split(&format!("--{boundary}"))
        .filter(|part| !part.trim().is_empty() && !part.starts_with("--"))
        .map(|part| {
            let (headers, text) = split_message(part.trim_start_matches('\n'));
            let kind = header(&headers, "Content-Type").unwrap_or_default().to_owned();
            let encoding = header(&headers, "Content-Transfer-Encoding").unwrap_or_default();
            assert_eq!(encoding, "quoted-printable", "as Alertmanager encodes parts");
            (kind, quoted_printable(&text))
        })
        .collect()
}

fn config(port: u16, password_file: &str) -> String {
    format!(
        r#"
global:
  smtp_smarthost: 127.0.0.1:{port}
  smtp_from: 'alertbook <alertbook@busflow.example>'
  smtp_hello: alertbook.test
templates: ['templates/*.tmpl']
route:
  receiver: mail
  group_by: [alertname]
  group_wait: 0s
receivers:
  - name: mail
    email_configs:
      - to: 'ops@busflow.example, Security On-Call <security@busflow.example>'
        auth_username: busflow
        auth_password_file: $DIR/smtp/{password_file}
        tls_config:
          ca_file: $DIR/ca.pem
          server_name: localhost
        headers:
          Subject: '{{{{ template "email.busflow.subject" . }}}}'
          X-Busflow-Route: '{{{{ .CommonLabels.job }}}}'
        text: '{{{{ template "email.busflow.text" . }}}}'
        send_resolved: true
"#
    )
}

#[tokio::test]
async fn email_goes_through_starttls_and_auth_with_text_and_html_parts() {
    if !available() {
        return;
    }
    let setup = Setup::new("route: {receiver: x}\nreceivers: [{name: x}]\n", &[]);
    let mailbox = start(setup.directory.path());
    std::fs::write(setup.directory.path().join("alertmanager.yml"), {
        config(mailbox.port, "password").replace("$DIR", &setup.directory.path().to_string_lossy())
    })
    .expect("write config");
    let (service, dispatcher) = setup.open(T0);
    service.put(vec![busflow_alert("PiiLeakDetected", "api-1", None)], T0);
    assert_eq!(service.tick(T0).expect("tick"), 1);
    assert!(!setup.stored_text().contains("smtp-s3cret"), "the password is read at send time");
    let stats = dispatcher.deliver_due(T0).await.expect("deliver");
    assert_eq!(stats.delivered, 1, "{:?}", service.history(1));

    let message = mailbox.next();
    assert_eq!(message["tls"], true, "STARTTLS before the transaction");
    assert_eq!(message["login"], "busflow");
    assert_eq!(message["from"], "alertbook@busflow.example");
    assert_eq!(message["to"], serde_json::json!(["ops@busflow.example", "security@busflow.example"]));
    let (headers, body) = split_message(message["data"].as_str().expect("data"));
    assert_eq!(header(&headers, "Subject"), Some("[FIRING:1] PiiLeakDetected"));
    assert_eq!(header(&headers, "X-Busflow-Route"), Some("ingest"));
    assert_eq!(header(&headers, "From"), Some("alertbook <alertbook@busflow.example>"));
    assert_eq!(header(&headers, "To"), Some("ops@busflow.example, Security On-Call <security@busflow.example>"));
    assert_eq!(header(&headers, "MIME-Version"), Some("1.0"));
    assert!(header(&headers, "Message-ID").is_some_and(|id| id.ends_with("@alertbook.test>")), "{headers:?}");
    assert_eq!(header(&headers, "Date"), Some("Tue, 14 Nov 2023 22:13:20 +0000"));
    let content_type = header(&headers, "Content-Type").expect("content type");
    assert!(content_type.starts_with("multipart/alternative"), "{content_type}");
    let parts = parts(content_type, &body);
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(parts[0].0.starts_with("text/plain; charset=utf-8"), "{parts:?}");
    assert_eq!(
        parts[0].1.trim_end(),
        "PiiLeakDetected on api-1: PiiLeakDetected on api-1\nRunbook: https://runbook.busflow.example/PiiLeakDetected"
    );
    assert!(parts[1].0.starts_with("text/html; charset=utf-8"), "{parts:?}");
    let html = &parts[1].1;
    assert!(html.contains("<title>[FIRING:1] PiiLeakDetected</title>"), "{html}");
    assert!(
        html.contains(r#"Runbook: <a href="https://runbook.busflow.example/PiiLeakDetected">"#),
        "the runbook link: {html}"
    );
    assert!(html.contains("Triage path: broad<br>"), "{html}");
    assert!(html.contains("Triage summary: top_tenant_share = 0.18<br>"), "{html}");
    assert!(
        html.contains(r#"<a href="http://alertbook.test:9099/#/silences/new?filter=%7Balertname%3D%22PiiLeakDetected%22%7D">Silence this group</a>"#),
        "{html}"
    );
    assert!(html.contains("<code>instance=api-1</code>"), "{html}");
}

#[tokio::test]
async fn a_refused_login_is_reported_without_the_password() {
    if !available() {
        return;
    }
    let setup = Setup::new("route: {receiver: x}\nreceivers: [{name: x}]\n", &[]);
    let mailbox = start(setup.directory.path());
    std::fs::write(setup.directory.path().join("smtp/wrong-password"), "wrong-pa55word-value\n").expect("write");
    std::fs::write(
        setup.directory.path().join("alertmanager.yml"),
        config(mailbox.port, "wrong-password").replace("$DIR", &setup.directory.path().to_string_lossy()),
    )
    .expect("write config");
    let (service, dispatcher) = setup.open(T0);
    service.put(vec![busflow_alert("PiiLeakDetected", "api-1", None)], T0);
    service.tick(T0).expect("tick");
    let stats = dispatcher.deliver_due(T0).await.expect("deliver");
    assert_eq!(stats.dropped, 1, "535 is a permanent refusal");
    let history = service.history(1);
    let error = history[0].error.clone().expect("an error");
    assert!(error.contains("535"), "{error}");
    let all = serde_json::to_string(&history).expect("JSON") + &setup.stored_text();
    assert!(!all.contains("wrong-pa55word"), "{all}");
    assert!(mailbox.messages.try_recv().is_err(), "nothing was delivered");
}
