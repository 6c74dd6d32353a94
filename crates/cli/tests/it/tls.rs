//! HTTPS: `alertbook run --web.tls-cert-file … --web.tls-key-file …` serves
//! over TLS with a certificate made here, refuses plain HTTP on that port and
//! stops cleanly on SIGTERM; flags given alone or unusable files stop the
//! start with a message naming the file.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::durability::free_port;

/// A CA and a leaf for localhost and 127.0.0.1 it signed, written to
/// `directory` as `ca.pem`, `cert.pem` and `key.pem`; the key's PEM.
fn write_pki(directory: &Path) -> String {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "alertbook test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().expect("key")).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf parameters")
        .signed_by(&key, &ca)
        .expect("sign");
    std::fs::write(directory.join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(directory.join("cert.pem"), leaf.pem()).expect("write");
    std::fs::write(directory.join("key.pem"), key.serialize_pem()).expect("write");
    key.serialize_pem()
}

/// A child process killed when dropped (also when an assertion fails).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(arguments: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_alertbook"))
        .arg("run")
        .args(arguments)
        .current_dir(super::workspace_root())
        .output()
        .expect("alertbook runs")
}

/// The log line without its terminal colour sequences (`ESC [ … m`).
fn without_colours(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('\u{1b}') {
        plain.push_str(&rest[..start]);
        rest = &rest[start..];
        rest = rest.find('m').map_or("", |end| &rest[end + 1..]);
    }
    plain.push_str(rest);
    plain
}

#[test]
fn https_serves_with_the_given_certificate_and_plain_http_fails() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let directory = tempfile::tempdir().expect("temporary directory");
    write_pki(directory.path());
    let port = free_port();
    let data = directory.path().join("data");
    let child = Command::new(env!("CARGO_BIN_EXE_alertbook"))
        .args(["run", "--no-probes", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(&data)
        .arg("--web.tls-cert-file")
        .arg(directory.path().join("cert.pem"))
        .arg("--web.tls-key-file")
        .arg(directory.path().join("key.pem"))
        .current_dir(super::workspace_root())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("alertbook starts");
    let mut child = KillOnDrop(child);
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    // The log goes to standard output.
    let stdout = child.0.stdout.take().expect("stdout");
    let lines = log.clone();
    let drained = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            lines.lock().expect("lock").push(line);
        }
    });

    let ca = std::fs::read(directory.path().join("ca.pem")).expect("read");
    let client = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).expect("CA certificate")])
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let url = format!("https://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut ready = None;
    while Instant::now() < deadline {
        match client.get(format!("{url}/-/ready")).send() {
            Ok(response) if response.status().is_success() => {
                ready = Some(response.text().expect("body"));
                break;
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let log_text = || log.lock().expect("lock").join("\n");
    assert_eq!(ready.as_deref(), Some("alertbook is Ready.\n"), "{}", log_text());
    // The name in the certificate works as well as the address.
    let by_name = client.get(format!("https://localhost:{port}/-/healthy")).send().expect("GET by name");
    assert!(by_name.status().is_success());

    // Plain HTTP to the TLS port: no HTTP answer.
    let plain = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let answer = plain.get(format!("http://127.0.0.1:{port}/-/ready")).send();
    assert!(answer.is_err(), "plain HTTP got an answer: {answer:?}");
    // A client that does not trust the test CA fails the handshake.
    assert!(plain.get(format!("{url}/-/ready")).send().is_err());

    // SIGTERM: a clean stop.
    let stopped = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().expect("kill");
    assert!(stopped.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "alertbook did not stop: {}", log_text());
        std::thread::sleep(Duration::from_millis(50));
    };
    drained.join().expect("log reader");
    let text = without_colours(&log_text());
    assert!(status.success(), "{status:?}: {text}");
    assert!(text.contains("listening") && text.contains("tls=true"), "{text}");
    assert!(text.contains("the self-scrape is off under TLS"), "{text}");
}

#[test]
fn tls_flags_go_together_and_bad_files_stop_the_start() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let key_pem = write_pki(directory.path());
    let path = |name: &str| directory.path().join(name).to_string_lossy().into_owned();
    let data = path("data");

    let output = run(&["--data", &data, "--web.tls-cert-file", &path("cert.pem")]);
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(text.contains("--web.tls-key-file"), "{text}");
    let output = run(&["--data", &data, "--web.tls-key-file", &path("key.pem")]);
    assert!(!output.status.success());
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(text.contains("--web.tls-cert-file"), "{text}");

    // A key file that holds no key (the certificate given twice).
    let output =
        run(&["--data", &data, "--web.tls-cert-file", &path("cert.pem"), "--web.tls-key-file", &path("cert.pem")]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(text.contains(&format!("TLS key file {}: no private key", path("cert.pem"))), "{text}");

    // A missing certificate file.
    let output =
        run(&["--data", &data, "--web.tls-cert-file", &path("nope.pem"), "--web.tls-key-file", &path("key.pem")]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(text.contains(&format!("cannot read the TLS certificate file {}", path("nope.pem"))), "{text}");

    // The CA certificate with the leaf's key: they do not go together; no key material is shown.
    let output =
        run(&["--data", &data, "--web.tls-cert-file", &path("ca.pem"), "--web.tls-key-file", &path("key.pem")]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(text.contains("not the certificate's"), "{text}");
    for line in key_pem.lines().filter(|line| !line.starts_with("-----")) {
        assert!(!text.contains(line), "{text}");
    }
    assert!(!Path::new(&data).exists(), "nothing was created before the refusal");
}
