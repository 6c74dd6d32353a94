//! Real endpoints on loopback for the probers: HTTP(S) servers whose health
//! the test flips, TLS servers with certificates generated here (a test CA,
//! valid, expiring, expired, wrong host, self-signed), and helpers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A target of `prober` with no options.
pub fn target(prober: &str, text: &str) -> catalog::probes::ProbeTarget {
    catalog::probes::ProbeTarget { name: "t".into(), prober: prober.into(), target: text.into(), ..Default::default() }
}

/// A probe of `target` at a 30 s interval with a 3 s timeout.
pub fn probe(mut target: catalog::probes::ProbeTarget, base: &Path) -> probe::Probe {
    target.timeout.get_or_insert_with(|| "3s".into());
    let check = probe::Check::new("tests", &target, Duration::from_secs(30), base).expect("valid check");
    probe::Probe::new(check)
}

pub fn now_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_secs() as i64
}

/// A test certificate authority, its PEM in a file.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    pub directory: tempfile::TempDir,
    pub ca_file: PathBuf,
}

/// A certificate chain and its key, for a server.
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: Vec<u8>,
    /// The leaf and its key in PEM, for servers that read files.
    pub cert_pem: String,
    pub key_pem: String,
    /// The leaf's notAfter, Unix seconds.
    pub not_after: i64,
}

fn params(names: &[&str], not_before: i64, not_after: i64) -> CertificateParams {
    let mut params = CertificateParams::new(names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>())
        .expect("certificate parameters");
    params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).expect("time");
    params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).expect("time");
    params
}

impl Pki {
    pub fn new() -> Self {
        let now = now_seconds();
        let mut ca_params = params(&[], now - 86_400, now + 3_650 * 86_400);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "alertbook test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("CA");
        let directory = tempfile::tempdir().expect("temporary directory");
        let ca_file = directory.path().join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write CA");
        Self { ca, directory, ca_file }
    }

    /// A leaf for `names` signed by the CA, valid from `not_before` to `not_after` (Unix seconds).
    pub fn leaf(&self, names: &[&str], not_before: i64, not_after: i64) -> Identity {
        let key = KeyPair::generate().expect("key");
        let certificate = params(names, not_before, not_after).signed_by(&key, &self.ca).expect("sign");
        Identity {
            chain: vec![certificate.der().clone()],
            key: key.serialize_der(),
            cert_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
            not_after,
        }
    }

    /// A leaf valid for `days` more days.
    pub fn valid_for_days(&self, names: &[&str], days: i64) -> Identity {
        let now = now_seconds();
        self.leaf(names, now - 86_400, now + days * 86_400)
    }
}

/// A self-signed certificate for `names`.
pub fn self_signed(names: &[&str], days: i64) -> Identity {
    let now = now_seconds();
    let key = KeyPair::generate().expect("key");
    let certificate = params(names, now - 86_400, now + days * 86_400).self_signed(&key).expect("self-sign");
    Identity {
        chain: vec![certificate.der().clone()],
        key: key.serialize_der(),
        cert_pem: certificate.pem(),
        key_pem: key.serialize_pem(),
        not_after: now + days * 86_400,
    }
}

pub fn acceptor(identity: &Identity) -> tokio_rustls::TlsAcceptor {
    install_provider();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key.clone()));
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), key)
        .expect("server certificate");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// What an HTTP server received.
#[derive(Debug, Default)]
pub struct Seen {
    pub requests: Mutex<Vec<String>>,
    pub active: AtomicUsize,
    pub most_active: AtomicUsize,
}

/// An HTTP/1.1 server answering every request with `status` (changeable)
/// and `body`, after `delay`; over TLS when `tls` is given.
pub struct HttpServer {
    pub address: std::net::SocketAddr,
    pub status: Arc<AtomicU16>,
    pub seen: Arc<Seen>,
}

impl HttpServer {
    pub async fn start(body: &'static str, delay: Duration, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let status = Arc::new(AtomicU16::new(200));
        let seen = Arc::new(Seen::default());
        let (answer, record) = (status.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (answer, record, tls) = (answer.clone(), record.clone(), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_http(stream, &answer, &record, body, delay).await;
                            }
                        }
                        None => serve_http(stream, &answer, &record, body, delay).await,
                    }
                });
            }
        });
        Self { address, status, seen }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

async fn serve_http<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    status: &AtomicU16,
    seen: &Seen,
    body: &str,
    delay: Duration,
) {
    let active = seen.active.fetch_add(1, Ordering::SeqCst) + 1;
    seen.most_active.fetch_max(active, Ordering::SeqCst);
    let mut reader = BufReader::new(stream);
    let mut request = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line.trim_end().is_empty() {
            break;
        }
        request.push_str(&line);
    }
    seen.requests.lock().expect("requests").push(request);
    tokio::time::sleep(delay).await;
    let status = status.load(Ordering::SeqCst);
    let answer = format!(
        "HTTP/1.1 {status} Status\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = reader.get_mut().write_all(answer.as_bytes()).await;
    let _ = reader.get_mut().shutdown().await;
    seen.active.fetch_sub(1, Ordering::SeqCst);
}

/// A TLS server that completes handshakes and closes.
pub async fn tls_server(identity: &Identity) -> std::net::SocketAddr {
    let acceptor = acceptor(identity);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut stream) = acceptor.accept(stream).await {
                    let _ = stream.shutdown().await;
                }
            });
        }
    });
    address
}

/// A listener that accepts connections and never answers.
pub async fn silent_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    address
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

/// An S3 server (s3s-fs, which validates SigV4 signatures) on loopback over
/// the directory `root` (a bucket is a directory), accepting one key pair.
pub async fn s3_server(root: &Path, access_key_id: &str, secret_access_key: &str) -> std::net::SocketAddr {
    let filesystem = s3s_fs::FileSystem::new(root).expect("s3s-fs root");
    let mut builder = s3s::service::S3ServiceBuilder::new(filesystem);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(access_key_id, secret_access_key));
    let service = builder.build();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let server = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
        while let Ok((socket, _)) = listener.accept().await {
            let connection =
                server.serve_connection(hyper_util::rt::TokioIo::new(socket), service.clone()).into_owned();
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
    });
    address
}
