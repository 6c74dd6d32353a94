//! HTTPS serving: the certificate and key of `--web.tls-cert-file` and
//! `--web.tls-key-file`, loaded once at start ([`ServerTls::load`]), and the
//! accept loop that runs the router over TLS ([`crate::serve_tls`]).
//!
//! TLS is rustls with the `ring` provider, TLS 1.3 and 1.2, ALPN `h2` and
//! `http/1.1`. Each connection's handshake runs on its own task with a
//! timeout, so a client that stalls it costs nothing but its socket; the
//! router sees the client's address as `ConnectInfo<SocketAddr>`, as over
//! plain HTTP. Plain HTTP to a TLS port fails the handshake and is closed.
//!
//! Errors name the file and what is wrong with it; they never quote its
//! content, so no key material reaches a message or a log.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower::ServiceExt;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PEM files a TLS server reads at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first (`--web.tls-cert-file`).
    pub cert: PathBuf,
    /// Its private key: PKCS#8, PKCS#1 (RSA) or SEC1 (EC) (`--web.tls-key-file`).
    pub key: PathBuf,
}

/// Why the TLS certificate or key cannot be used; never quotes the files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate file {path}: {source}")]
    ReadCert { path: PathBuf, source: std::io::Error },
    #[error("cannot read the TLS key file {path}: {source}")]
    ReadKey { path: PathBuf, source: std::io::Error },
    #[error("TLS certificate file {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("TLS key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("TLS certificate {cert} and key {key} cannot be used together: {reason}")]
    Pair { cert: PathBuf, key: PathBuf, reason: String },
}

/// A loaded server certificate and key, ready to accept connections.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ServerTls").field("alpn", &self.config.alpn_protocols.len()).finish_non_exhaustive()
    }
}

/// What is wrong with a PEM file, in words that quote none of it.
fn pem_reason(error: &pem::Error, what: &str) -> String {
    match error {
        pem::Error::NoItemsFound => format!("no {what} in it (expected PEM)"),
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".into(),
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64".into(),
        pem::Error::SectionTooLarge => "a PEM section is too large".into(),
        pem::Error::Io(error) => error.kind().to_string(),
        _ => "not a valid PEM file".into(),
    }
}

impl ServerTls {
    /// Reads and checks the certificate chain and key of `files`: both must
    /// be PEM, the chain non-empty and the key the certificate's.
    pub fn load(files: &TlsFiles) -> Result<Self, TlsError> {
        let cert_pem =
            std::fs::read(&files.cert).map_err(|source| TlsError::ReadCert { path: files.cert.clone(), source })?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TlsError::Cert { path: files.cert.clone(), reason: pem_reason(&error, "certificate") })?;
        if chain.is_empty() {
            return Err(TlsError::Cert {
                path: files.cert.clone(),
                reason: "no certificate in it (expected PEM with BEGIN CERTIFICATE)".into(),
            });
        }
        let key_pem =
            std::fs::read(&files.key).map_err(|source| TlsError::ReadKey { path: files.key.clone(), source })?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| TlsError::Key {
            path: files.key.clone(),
            reason: pem_reason(
                &error,
                "private key (BEGIN PRIVATE KEY, BEGIN RSA PRIVATE KEY or BEGIN EC PRIVATE KEY)",
            ),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Pair {
                cert: files.cert.clone(),
                key: files.key.clone(),
                reason: error.to_string(),
            })?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|error| TlsError::Pair {
                cert: files.cert.clone(),
                key: files.key.clone(),
                reason: pair_reason(&error),
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self { config: Arc::new(config) })
    }
}

/// rustls's reason a certificate and key do not go together, in plain words.
fn pair_reason(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InconsistentKeys(_) => "the private key is not the certificate's".into(),
        rustls::Error::General(message) if message.contains("key") => {
            "the private key is not usable (unsupported or damaged)".into()
        }
        other => other.to_string(),
    }
}

/// Accepts TLS connections on `listener` and serves `router` on each until
/// `shutdown` completes; then stops accepting and waits for the open
/// connections to finish their requests.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    tls: ServerTls,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), std::io::Error> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let stream = tokio::select! {
                finished = handshake => match finished {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(client = %peer, error = %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(client = %peer, "TLS handshake timed out");
                        return;
                    }
                },
                _ = stopped.wait_for(|stopped| *stopped) => return,
            };
            let service = router.map_request(move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection =
                builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(error) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(client = %peer, error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A CA, and a leaf for localhost signed by it, as PEM files in a directory.
    struct Pki {
        directory: tempfile::TempDir,
        ca_der: CertificateDer<'static>,
        key_pem: String,
    }

    impl Pki {
        fn new() -> Self {
            let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let ca =
                rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().expect("key")).expect("CA");
            let key = rcgen::KeyPair::generate().expect("key");
            let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("leaf parameters")
                .signed_by(&key, &ca)
                .expect("sign");
            let directory = tempfile::tempdir().expect("temporary directory");
            std::fs::write(directory.path().join("cert.pem"), leaf.pem()).expect("write");
            std::fs::write(directory.path().join("key.pem"), key.serialize_pem()).expect("write");
            Self { directory, ca_der: ca.der().clone(), key_pem: key.serialize_pem() }
        }

        fn files(&self) -> TlsFiles {
            TlsFiles { cert: self.directory.path().join("cert.pem"), key: self.directory.path().join("key.pem") }
        }

        fn connector(&self) -> tokio_rustls::TlsConnector {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca_der.clone()).expect("root");
            let config =
                rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                    .with_safe_default_protocol_versions()
                    .expect("versions")
                    .with_root_certificates(roots)
                    .with_no_client_auth();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        }
    }

    async fn peer(ConnectInfo(address): ConnectInfo<SocketAddr>) -> String {
        address.to_string()
    }

    /// One HTTP/1.1 request on `stream`; the answer as text, up to the end of the body.
    async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        stream: &mut S,
        path: &str,
        close: bool,
    ) -> std::io::Result<String> {
        let connection = if close { "close" } else { "keep-alive" };
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: {connection}\r\n\r\n").as_bytes())
            .await?;
        let mut answer = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let read = stream.read(&mut buffer).await?;
            if read == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..read]);
            let text = String::from_utf8_lossy(&answer);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                    .and_then(|length| length.trim().parse::<usize>().ok());
                if length.is_some_and(|length| body.len() >= length) {
                    break;
                }
            }
        }
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }

    #[tokio::test]
    async fn https_serves_with_the_client_address_refuses_plain_http_and_shuts_down() {
        let pki = Pki::new();
        let tls = ServerTls::load(&pki.files()).expect("load");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let router = axum::Router::new().route("/peer", axum::routing::get(peer));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, router, tls, async move {
            let _ = stopped.await;
        }));

        let tcp = tokio::net::TcpStream::connect(address).await.expect("connect");
        let client = tcp.local_addr().expect("client address");
        let mut stream =
            pki.connector().connect(ServerName::try_from("localhost").expect("name"), tcp).await.expect("handshake");
        let answer = exchange(&mut stream, "/peer", false).await.expect("exchange");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(&client.to_string()), "the handler sees the client's address: {answer}");

        // Plain HTTP to the TLS port gets no HTTP answer.
        let mut plain = tokio::net::TcpStream::connect(address).await.expect("connect");
        let answer = exchange(&mut plain, "/peer", true).await.unwrap_or_default();
        assert!(!answer.contains("HTTP/1.1"), "{answer:?}");

        // Shutdown with an idle keep-alive connection open: it is closed, the server returns.
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("shut down in time")
            .expect("server task")
            .expect("server");
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "the idle connection was closed");
        assert!(tokio::net::TcpStream::connect(address).await.is_err(), "no longer listening");
    }

    fn message(result: Result<ServerTls, TlsError>) -> String {
        result.expect_err("refused").to_string()
    }

    #[test]
    fn bad_files_are_refused_by_name_without_their_content() {
        let pki = Pki::new();
        let files = pki.files();
        let directory = pki.directory.path();
        let key_line = pki.key_pem.lines().nth(1).expect("a base64 line").to_owned();

        let missing = TlsFiles { cert: directory.join("nope.pem"), ..files.clone() };
        let text = message(ServerTls::load(&missing));
        assert!(text.starts_with("cannot read the TLS certificate file ") && text.contains("nope.pem"), "{text}");

        std::fs::write(directory.join("garbage.pem"), "not a certificate\n").expect("write");
        let garbage = TlsFiles { cert: directory.join("garbage.pem"), ..files.clone() };
        let text = message(ServerTls::load(&garbage));
        assert!(text.contains("garbage.pem") && text.contains("no certificate"), "{text}");

        // The certificate given as the key: no private key in it.
        let swapped = TlsFiles { cert: files.cert.clone(), key: files.cert.clone() };
        let text = message(ServerTls::load(&swapped));
        assert!(text.starts_with("TLS key file ") && text.contains("no private key"), "{text}");

        // A damaged key: the message says so and quotes nothing of it.
        let damaged = pki.key_pem.replace(&key_line, &format!("{key_line}!!"));
        std::fs::write(directory.join("damaged.pem"), &damaged).expect("write");
        let text = message(ServerTls::load(&TlsFiles { key: directory.join("damaged.pem"), ..files.clone() }));
        assert!(text.contains("damaged.pem"), "{text}");
        assert!(!text.contains(&key_line[..20]), "{text}");

        // Another key: it is not the certificate's.
        let other = rcgen::KeyPair::generate().expect("key");
        std::fs::write(directory.join("other.pem"), other.serialize_pem()).expect("write");
        let text = message(ServerTls::load(&TlsFiles { key: directory.join("other.pem"), ..files.clone() }));
        assert!(text.contains("cannot be used together") && text.contains("not the certificate's"), "{text}");

        assert!(ServerTls::load(&files).is_ok());
    }
}
