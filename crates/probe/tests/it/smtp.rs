//! The smtp prober against a real SMTP server: aiosmtpd (Debian's
//! python3-aiosmtpd, installed by scripts/peers/smtp.sh) on loopback with
//! STARTTLS and AUTH, started by `scripts/peers/smtp-server.py`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use probe::Reason;

use super::support::{Pki, probe, target};

/// A running aiosmtpd, stopped when dropped.
pub struct SmtpServer {
    child: Child,
    pub address: String,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether aiosmtpd is there; without it the tests fail, unless ALERTBOOK_SKIP_PEERS=1.
pub fn available() -> bool {
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

/// Credentials and the server's certificate, in files under the CA's directory.
pub struct Files {
    pub username: PathBuf,
    pub password: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

pub fn files(pki: &Pki) -> Files {
    let directory = pki.directory.path();
    let identity = pki.valid_for_days(&["localhost"], 45);
    let files = Files {
        username: directory.join("smtp-username"),
        password: directory.join("smtp-password"),
        cert: directory.join("smtp-cert.pem"),
        key: directory.join("smtp-key.pem"),
    };
    std::fs::write(&files.username, "busflow\n").expect("write");
    std::fs::write(&files.password, "s3cret-smtp-pass\n").expect("write");
    std::fs::write(&files.cert, &identity.cert_pem).expect("write");
    std::fs::write(&files.key, &identity.key_pem).expect("write");
    files
}

pub fn start(files: &Files, starttls: bool) -> SmtpServer {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/peers/smtp-server.py");
    let mut command = Command::new("/usr/bin/python3");
    command.arg(script).args([&files.cert, &files.key, &files.username, &files.password]);
    if !starttls {
        command.arg("--no-starttls");
    }
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("the SMTP server starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
    let port = line.trim().strip_prefix("ready ").unwrap_or_else(|| panic!("SMTP server said {line:?}"));
    SmtpServer { address: format!("127.0.0.1:{port}"), child }
}

pub fn smtp_target(server: &SmtpServer, pki: &Pki, files: &Files) -> catalog::probes::ProbeTarget {
    let mut options = target("smtp", &server.address);
    options.server_name = Some("localhost".into());
    options.ca_file = Some(pki.ca_file.to_string_lossy().into_owned());
    options.username_file = Some(files.username.to_string_lossy().into_owned());
    options.password_file = Some(files.password.to_string_lossy().into_owned());
    options
}

fn failure(outcome: &probe::Outcome) -> (Reason, String) {
    let failure = outcome.failure.as_ref().unwrap_or_else(|| panic!("the check succeeded: {outcome:?}"));
    (failure.reason, failure.message.clone())
}

#[tokio::test]
async fn smtp_checks_banner_ehlo_starttls_and_auth() {
    if !available() {
        return;
    }
    let pki = Pki::new();
    let files = files(&pki);
    let server = start(&files, true);
    let base = pki.directory.path();

    let outcome = probe(smtp_target(&server, &pki, &files), base).run(0).await;
    assert!(outcome.success(), "{outcome:?}");
    let expiry = outcome.earliest_cert_expiry.expect("the STARTTLS chain's expiry");
    let left = expiry - super::support::now_seconds() as f64;
    assert!((44.0 * 86_400.0..=45.1 * 86_400.0).contains(&left), "{left}");

    // Without credentials: banner, EHLO and STARTTLS only.
    let mut anonymous = smtp_target(&server, &pki, &files);
    anonymous.username_file = None;
    anonymous.password_file = None;
    assert!(probe(anonymous, base).run(0).await.success());

    // A rotated password that the server does not know yet: auth, and the password is never shown.
    std::fs::write(&files.password, "expired-pass\n").expect("write");
    let (reason, message) = failure(&probe(smtp_target(&server, &pki, &files), base).run(0).await);
    assert_eq!(reason, Reason::Auth, "{message}");
    assert!(message.starts_with("AUTH: 535"), "{message}");
    assert!(!message.contains("expired-pass") && !message.contains("s3cret"), "{message}");

    // The server's certificate is not trusted by the system's roots.
    let mut untrusted = smtp_target(&server, &pki, &files);
    untrusted.ca_file = None;
    let (reason, message) = failure(&probe(untrusted, base).run(0).await);
    assert_eq!(reason, Reason::Tls, "{message}");
    assert!(message.contains("UnknownIssuer"), "{message}");

    // A missing credential file is the probe's own configuration.
    let mut missing = smtp_target(&server, &pki, &files);
    missing.password_file = Some("no-such-file".into());
    let (reason, _) = failure(&probe(missing, base).run(0).await);
    assert_eq!(reason, Reason::Config);
}

#[tokio::test]
async fn smtp_without_starttls_on_offer_is_a_tls_failure_unless_not_asked_for() {
    if !available() {
        return;
    }
    let pki = Pki::new();
    let files = files(&pki);
    let server = start(&files, false);
    let base = pki.directory.path();
    let (reason, message) = failure(&probe(smtp_target(&server, &pki, &files), base).run(0).await);
    assert_eq!((reason, message.as_str()), (Reason::Tls, "the server does not offer STARTTLS"));
    let mut plain = smtp_target(&server, &pki, &files);
    plain.starttls = Some(false);
    plain.ca_file = None;
    plain.server_name = None;
    let outcome = probe(plain, base).run(0).await;
    assert!(outcome.success(), "{outcome:?}");
    assert_eq!(outcome.earliest_cert_expiry, None);

    // Something that is not SMTP at all.
    let http = super::support::HttpServer::start("", Duration::ZERO, None).await;
    let mut wrong = target("smtp", &http.address.to_string());
    wrong.timeout = Some("1s".into());
    let (reason, _) = failure(&probe(wrong, base).run(0).await);
    assert!(matches!(reason, Reason::Protocol | Reason::Timeout), "{reason}");
}
