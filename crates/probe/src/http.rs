//! The `http` prober: one request (method, headers, header values from
//! files), the status among the expected codes (default any 2xx), the body
//! against `body_regex`. HTTPS answers also report the peer chain's earliest
//! expiry, as blackbox_exporter's http prober does.
//!
//! Each probe keeps one client whose connections are not reused, so every
//! check connects and handshakes afresh and measures what a new client sees.

use std::sync::Arc;

use crate::check::Check;
use crate::outcome::{Failure, Outcome, Reason};
use crate::tls::RecordingVerifier;

/// The most body bytes read for `body_regex`.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// An HTTP client for one probe and the verifier of its handshakes.
#[derive(Debug, Clone)]
pub struct HttpClient {
    pub client: reqwest::Client,
    pub verifier: Arc<RecordingVerifier>,
}

impl HttpClient {
    pub fn new(check: &Check) -> Result<Self, Failure> {
        let (mut config, verifier) = crate::tls::client_config(check)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .pool_max_idle_per_host(0)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::limited(10))
            .user_agent(concat!("alertbook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| Failure::new(Reason::Config, format!("cannot build the HTTP client: {error}")))?;
        Ok(Self { client, verifier })
    }
}

/// The failure of a request that got no answer.
pub fn request_failure(error: &reqwest::Error, seen: &crate::tls::Seen) -> Failure {
    if error.is_timeout() {
        return Failure::new(Reason::Timeout, "the request timed out");
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut chain = Vec::new();
    let mut reason = None;
    while let Some(current) = source {
        chain.push(current.to_string());
        if reason.is_none() {
            if let Some(io) = current.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::ConnectionRefused {
                    reason = Some(Reason::Refused);
                }
                if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
                    reason = Some(Reason::Tls);
                }
            }
            if current.is::<rustls::Error>() {
                reason = Some(Reason::Tls);
            }
        }
        source = current.source();
    }
    let text = chain.join(": ");
    let reason = reason.unwrap_or(if text.contains("dns error") {
        Reason::Dns
    } else if text.contains("certificate") || text.contains("tls") || text.contains("TLS") {
        Reason::Tls
    } else {
        Reason::Connect
    });
    let message = match (reason, seen.error.clone()) {
        (Reason::Tls, Some(verification)) => format!("TLS handshake failed: {verification}"),
        _ => text,
    };
    Failure::new(reason, message)
}

/// The failure when `status` is not expected.
pub fn check_status(status: u16, valid: &[u16]) -> Result<(), Failure> {
    let ok = if valid.is_empty() { (200..300).contains(&status) } else { valid.contains(&status) };
    if ok {
        return Ok(());
    }
    let expected = if valid.is_empty() {
        "2xx".to_owned()
    } else {
        valid.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
    };
    Err(Failure::new(Reason::Status, format!("status {status} is not among the expected {expected}")))
}

/// Reads at most `limit` bytes of the body.
pub async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, Failure> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| Failure::new(Reason::Protocol, format!("cannot read the body: {error}")))?
    {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// The `http` prober.
pub async fn probe(check: &Check, client: &HttpClient, outcome: &mut Outcome) -> Result<(), Failure> {
    let options = &check.options;
    let method = options.method.as_deref().unwrap_or("GET");
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| Failure::new(Reason::Config, format!("{method:?} is not an HTTP method")))?;
    let mut request = client.client.request(method, &check.labels.target).timeout(check.timeout);
    for (name, value) in &options.headers {
        request = request.header(name, value);
    }
    for (name, path) in &options.header_files {
        let value = check.read_secret(&format!("header_files.{name}"), path)?;
        let mut value = reqwest::header::HeaderValue::from_str(&value).map_err(|_| {
            Failure::new(Reason::Config, format!("header_files.{name}: the file's content is not a valid header value"))
        })?;
        value.set_sensitive(true);
        request = request.header(name, value);
    }
    client.verifier.take();
    let sent = request.send().await;
    let response = match sent {
        Ok(response) => response,
        Err(error) => {
            let seen = client.verifier.take();
            outcome.earliest_cert_expiry = seen.earliest_expiry();
            return Err(request_failure(&error, &seen));
        }
    };
    outcome.earliest_cert_expiry = client.verifier.take().earliest_expiry();
    let status = response.status().as_u16();
    outcome.http_status = Some(status);
    check_status(status, &options.valid_status_codes)?;
    if let Some(pattern) = &options.body_regex {
        let regex = regex::bytes::Regex::new(pattern)
            .map_err(|error| Failure::new(Reason::Config, format!("body_regex: {error}")))?;
        let body = read_body(response, MAX_BODY).await?;
        if !regex.is_match(&body) {
            return Err(Failure::new(Reason::Body, format!("the body does not match {pattern:?}")));
        }
    }
    Ok(())
}
