//! TLS for every prober, and the `tls` prober itself.
//!
//! [`RecordingVerifier`] wraps rustls's WebPKI verifier: it keeps the chain
//! the peer presented and the verdict, before answering the handshake. So the
//! earliest `notAfter` of the chain is known even when the chain is expired,
//! untrusted or for another name, which is exactly when an SRE needs it
//! (blackbox_exporter reports nothing then, its issue 1119). With
//! `tls_verify: false` the chain is recorded and accepted.
//!
//! Roots are the system's (`rustls-native-certs`, loaded once), or the PEM
//! certificates of `ca_file` in their place.

use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::check::Check;
use crate::outcome::{Failure, Reason};

/// What the last handshake through a verifier showed.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// The peer's certificates, end entity first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Why verification failed, when it did.
    pub error: Option<String>,
}

impl Seen {
    /// The earliest `notAfter` among the chain's certificates, Unix seconds.
    pub fn earliest_expiry(&self) -> Option<f64> {
        earliest_expiry(&self.chain)
    }
}

/// The earliest `notAfter` of `chain` (certificates that do not parse are skipped).
pub fn earliest_expiry(chain: &[CertificateDer<'_>]) -> Option<f64> {
    chain
        .iter()
        .filter_map(|der| x509_parser::parse_x509_certificate(der.as_ref()).ok())
        .map(|(_, certificate)| certificate.validity().not_after.timestamp())
        .min()
        .map(|seconds| seconds as f64)
}

/// A certificate verifier that records what it saw.
#[derive(Debug)]
pub struct RecordingVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    seen: Mutex<Seen>,
}

impl RecordingVerifier {
    /// Takes what the last handshake recorded, leaving nothing behind.
    pub fn take(&self) -> Seen {
        std::mem::take(&mut *self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = match &self.inner {
            Some(inner) => inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
            None => Ok(ServerCertVerified::assertion()),
        };
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        seen.chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|certificate| certificate.clone().into_owned())
            .collect();
        seen.error = verdict.as_ref().err().map(ToString::to_string);
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: OnceLock<Arc<rustls::crypto::CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())).clone()
}

fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::warn!(error = %error, "a system CA certificate could not be loaded");
            }
            let (added, ignored) = roots.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "system CA certificates loaded");
            Arc::new(roots)
        })
        .clone()
}

/// A client configuration for `check` and the verifier that records its handshakes.
pub fn client_config(check: &Check) -> Result<(rustls::ClientConfig, Arc<RecordingVerifier>), Failure> {
    let provider = provider();
    let verify = check.options.tls_verify.unwrap_or(true);
    let inner = if verify {
        let roots = match &check.options.ca_file {
            Some(path) => {
                let resolved = check.resolve(path);
                let mut roots = RootCertStore::empty();
                let certificates: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_file_iter(&resolved).and_then(Iterator::collect).map_err(|error| {
                        Failure::new(Reason::Config, format!("cannot read ca_file {}: {error}", resolved.display()))
                    })?;
                let (added, _) = roots.add_parsable_certificates(certificates);
                if added == 0 {
                    return Err(Failure::new(
                        Reason::Config,
                        format!("ca_file {} holds no CA certificate", resolved.display()),
                    ));
                }
                Arc::new(roots)
            }
            None => system_roots(),
        };
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|error| Failure::new(Reason::Config, format!("cannot build the certificate verifier: {error}")))?;
        Some(verifier)
    } else {
        None
    };
    let verifier = Arc::new(RecordingVerifier { inner, provider: provider.clone(), seen: Mutex::default() });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Failure::new(Reason::Config, format!("cannot configure TLS: {error}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    Ok((config, verifier))
}

/// The name to ask for: `server_name`, else the target's host.
pub fn server_name(check: &Check) -> Result<ServerName<'static>, Failure> {
    let name = check.options.server_name.clone().unwrap_or_else(|| check.endpoint.host().to_owned());
    ServerName::try_from(name.clone())
        .map_err(|_| Failure::new(Reason::Config, format!("{name:?} is not a valid TLS server name")))
}

/// Runs a TLS handshake over `stream`. The verdict and chain are read from
/// `verifier` by the caller, also when the handshake fails.
pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    config: rustls::ClientConfig,
    name: ServerName<'static>,
    verifier: &RecordingVerifier,
) -> Result<tokio_rustls::client::TlsStream<S>, Failure> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    connector.connect(name, stream).await.map_err(|error| {
        let seen = verifier.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let message = seen.error.clone().unwrap_or_else(|| error.to_string());
        Failure::new(Reason::Tls, format!("TLS handshake failed: {message}"))
    })
}

/// The `tls` prober: connect, handshake, verify the chain and the name.
pub async fn probe(check: &Check, outcome: &mut crate::Outcome) -> Result<(), Failure> {
    let (config, verifier) = client_config(check)?;
    let name = server_name(check)?;
    let stream = crate::tcp::connect(check).await?;
    let result = handshake(stream, config, name, &verifier).await;
    outcome.earliest_cert_expiry = verifier.take().earliest_expiry();
    let stream = result?;
    let (_, session) = stream.get_ref();
    tracing::trace!(target = %check.labels.target, version = ?session.protocol_version(), "tls handshake done");
    Ok(())
}
