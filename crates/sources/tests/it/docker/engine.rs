//! The client against a stand-in Engine on a TCP port that answers with the
//! recorded bodies (refusing API versions above 1.41, as Engine 20.10 does):
//! the tcp:// path, and the Engine's
//! 503 answer on a node that is not a swarm manager.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, StreamOwned};
use sources::docker::{DockerDatasource, DockerError, DockerOptions, TlsFiles};

use super::{a8_condition, fixtures};

/// Serves one HTTP/1.1 answer per connection: `/version` from the recording,
/// the list endpoints from `set` or, when `swarm` is false, the Engine's 503.
/// With `tls`, connections are TLS and must present a client certificate.
fn start_engine_with(
    set: &'static str,
    swarm: Arc<AtomicBool>,
    tls: Option<Arc<ServerConfig>>,
    api_version: &'static str,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            match &tls {
                None => answer(stream, set, &swarm, api_version),
                Some(config) => {
                    let connection = ServerConnection::new(config.clone()).expect("TLS connection");
                    answer(StreamOwned::new(connection, stream), set, &swarm, api_version);
                }
            }
        }
    });
    format!("tcp://{address}")
}

fn start_engine(set: &'static str, swarm: Arc<AtomicBool>) -> String {
    start_engine_with(set, swarm, None, "1.41")
}

fn answer(stream: impl Read + Write, set: &str, swarm: &AtomicBool, api_version: &str) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header == "\r\n" || header.is_empty() {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_owned();
    let endpoint = path.split('?').next().unwrap_or_default().rsplit('/').next().unwrap_or_default();
    let (status, body) = if endpoint == "version" {
        let recorded = std::fs::read_to_string(fixtures().join(set).join("version.json")).expect("version");
        (
            "200 OK",
            recorded.replace(r#""ApiVersion": "1.41""#, &format!(r#""ApiVersion": "{api_version}""#)).into_bytes(),
        )
    } else if !swarm.load(Ordering::SeqCst) {
        ("503 Service Unavailable", std::fs::read(fixtures().join("not-swarm-manager.json")).expect("503"))
    } else if too_new(&path) {
        let message = r#"{"message":"client version is too new. Maximum supported API version is 1.41"}"#;
        ("400 Bad Request", message.as_bytes().to_vec())
    } else {
        match std::fs::read(fixtures().join(set).join(format!("{endpoint}.json"))) {
            Ok(body) => ("200 OK", body),
            Err(_) => ("404 Not Found", br#"{"message":"page not found"}"#.to_vec()),
        }
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let stream = reader.get_mut();
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&body)).and_then(|()| stream.flush());
}

/// A versioned path above 1.41, which Engine 20.10 refuses (unversioned paths get its own version).
fn too_new(path: &str) -> bool {
    let Some(version) = path.strip_prefix("/v").and_then(|rest| rest.split('/').next()) else { return false };
    let mut parts = version.split('.').map(|part| part.parse::<u32>().unwrap_or(u32::MAX));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) > (1, 41)
}

#[test]
fn a_tcp_engine_is_read() {
    let host = start_engine("busflow", Arc::new(AtomicBool::new(true)));
    let mut options = DockerOptions::new("remote", host);
    options.cache_ttl = std::time::Duration::ZERO;
    let datasource = DockerDatasource::connect(&options).expect("connect");
    let reading = datasource.reading(1_000).expect("reading");
    assert_eq!(reading.snapshot.services.len(), 5);
    assert_eq!(reading.snapshot.services["busflow_api"].replicas, 3);
    assert_eq!(rules::Datasource::query(&datasource, &a8_condition(), 1_000).expect("query"), Vec::new());
    assert_eq!(datasource.reads(), 1, "the rule reused the reading of its evaluation time");
    rules::Datasource::query(&datasource, &a8_condition(), 2_000).expect("query");
    assert_eq!(datasource.reads(), 2, "a new evaluation time reads again once the cache expired");
}

#[test]
fn a_node_outside_a_swarm_is_a_clear_error_until_it_joins() {
    let swarm = Arc::new(AtomicBool::new(false));
    let host = start_engine("busflow", swarm.clone());
    let mut options = DockerOptions::new("docker", host.clone());
    options.cache_ttl = std::time::Duration::ZERO;
    let datasource = DockerDatasource::connect(&options).expect("connect");

    let error = datasource.reading(1_000).expect_err("not a swarm manager");
    assert!(matches!(error, DockerError::NotSwarmManager { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "docker datasource `docker`: the Docker Engine at {host} is not a swarm manager (run `docker swarm \
             init`, or point the datasource at a manager node): This node is not a swarm manager. Use \"docker \
             swarm init\" or \"docker swarm join\" to connect this node to swarm and try again."
        )
    );
    let rule_error = rules::Datasource::query(&datasource, &a8_condition(), 2_000).expect_err("unavailable");
    assert!(matches!(rule_error, rules::DatasourceError::Unavailable(_)), "{rule_error:?}");

    // After `docker swarm init` the next evaluation reads the swarm.
    swarm.store(true, Ordering::SeqCst);
    assert!(datasource.reading(3_000).is_ok());
}

#[test]
fn a_closed_port_is_unreachable() {
    let port = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let options = DockerOptions::new("docker", format!("tcp://127.0.0.1:{port}"));
    let error = DockerDatasource::connect(&options).expect("connect").reading(1_000).expect_err("closed");
    let message = error.to_string();
    assert!(matches!(error, DockerError::Unreachable { .. }), "{error:?}");
    assert!(
        message.starts_with(&format!(
            "docker datasource `docker`: cannot reach the Docker Engine at tcp://127.0.0.1:{port}"
        )),
        "{message}"
    );
}

/// A server that trusts the test CA for client certificates.
fn tls_server_config() -> Arc<ServerConfig> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let directory = fixtures().join("tls");
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(directory.join("ca.pem")).expect("ca")).expect("add ca");
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots)).build().expect("client verifier");
    let chain = vec![CertificateDer::from_pem_file(directory.join("server.pem")).expect("server certificate")];
    let key = PrivateKeyDer::from_pem_file(directory.join("server-key.pem")).expect("server key");
    Arc::new(ServerConfig::builder().with_client_cert_verifier(verifier).with_single_cert(chain, key).expect("server"))
}

fn tls_files(ca: &str, cert: &str, key: &str) -> TlsFiles {
    let directory = fixtures().join("tls");
    TlsFiles { ca_file: directory.join(ca), cert_file: directory.join(cert), key_file: directory.join(key) }
}

#[test]
fn a_tls_engine_is_read_with_the_client_certificate() {
    let host = start_engine_with("busflow", Arc::new(AtomicBool::new(true)), Some(tls_server_config()), "1.41");
    let mut options = DockerOptions::new("remote-tls", host.clone());
    options.tls = Some(tls_files("ca.pem", "cert.pem", "key.pem"));
    let datasource = DockerDatasource::connect(&options).expect("connect");
    let reading = datasource.reading(1_000).expect("reading over TLS");
    assert_eq!(reading.snapshot.services["stateful_worker"].replicas, 2);

    // A CA that did not sign the server's certificate: the handshake fails, naming the host.
    options.tls = Some(tls_files("cert.pem", "cert.pem", "key.pem"));
    let error = DockerDatasource::connect(&options).expect("connect").reading(1_000).expect_err("untrusted server");
    assert!(matches!(error, DockerError::Unreachable { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with(&format!("docker datasource `remote-tls`: cannot reach the Docker Engine at {host}")),
        "{error}"
    );

    // A key file that holds no key fails at startup, naming the file only.
    options.tls = Some(tls_files("ca.pem", "cert.pem", "ca.pem"));
    let error = DockerDatasource::connect(&options).expect_err("bad key").to_string();
    assert!(error.contains("cannot use TLS file") && error.contains("tls/ca.pem: holds no PEM private key"), "{error}");
    assert!(!error.contains("BEGIN"), "{error}");
}

#[test]
fn an_engine_older_than_api_1_41_is_refused_by_name() {
    let host = start_engine_with("busflow", Arc::new(AtomicBool::new(true)), None, "1.40");
    let datasource = DockerDatasource::connect(&DockerOptions::new("old", host.clone())).expect("connect");
    let error = datasource.reading(1_000).expect_err("too old");
    assert_eq!(
        error.to_string(),
        format!(
            "docker datasource `old`: the Engine API at {host} supports version 1.40; alertbook needs 1.41 or newer"
        )
    );
}
