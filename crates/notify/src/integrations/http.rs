//! HTTP deliveries (webhook, Slack, PagerDuty) with Prometheus's
//! `http_config`: `basic_auth` (`password_file`), `authorization`
//! (`credentials_file`, type `Bearer` unless set), `bearer_token_file`, and
//! `tls_config` (`ca_file` as the only roots, `cert_file` + `key_file` as
//! the client identity, `insecure_skip_verify`), `follow_redirects`.
//! Secrets are read at each attempt; clients are cached per TLS setting.
//! `proxy_url` and `tls_config.server_name` are refused when the
//! configuration is checked ([`unsupported`]).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{SendOutcome, read_secret};
use crate::outbox::Delivery;
use crate::routing::config::HttpConfig;

/// An HTTP delivery's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpChannel {
    /// `webhook`, `slack` or `pagerduty`.
    pub integration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_config: Option<HttpConfig>,
    /// The URL is read from this file at each attempt (Slack's `api_url_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_file: Option<String>,
    /// The body's `routing_key` is read from this file at each attempt
    /// (PagerDuty's `routing_key_file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key_file: Option<String>,
}

impl HttpChannel {
    pub fn new(integration: &str, http_config: Option<HttpConfig>) -> Self {
        Self { integration: integration.to_owned(), http_config, url_file: None, routing_key_file: None }
    }
}

/// What of an `http_config` alertbook does not apply, if anything.
pub fn unsupported(config: &HttpConfig) -> Option<&'static str> {
    if config.proxy_url.is_some() {
        return Some("alertbook does not send through http_config.proxy_url");
    }
    if config.tls_config.as_ref().is_some_and(|tls| tls.server_name.is_some()) {
        return Some("alertbook does not apply http_config.tls_config.server_name");
    }
    None
}

type Clients = Mutex<HashMap<String, reqwest::Client>>;

fn clients() -> &'static Clients {
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    CLIENTS.get_or_init(Default::default)
}

/// A client for the TLS and redirect settings of `config` (cached).
fn client(config: &HttpConfig, timeout: Duration) -> Result<reqwest::Client, String> {
    crate::install_crypto_provider();
    let tls = config.tls_config.clone().unwrap_or_default();
    let follow = config.follow_redirects.unwrap_or(true);
    let key =
        format!("{:?}|{follow}|{timeout:?}", (&tls.ca_file, &tls.cert_file, &tls.key_file, tls.insecure_skip_verify));
    if let Some(client) = clients().lock().get(&key) {
        return Ok(client.clone());
    }
    let mut builder =
        reqwest::Client::builder().timeout(timeout).user_agent(concat!("alertbook/", env!("CARGO_PKG_VERSION")));
    if !follow {
        builder = builder.redirect(reqwest::redirect::Policy::none());
    }
    if let Some(ca_file) = &tls.ca_file {
        let pem =
            std::fs::read(ca_file).map_err(|error| format!("cannot read the CA file {ca_file}: {}", error.kind()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|_| format!("the CA file {ca_file} holds no PEM certificate"))?;
        builder = builder.tls_certs_only(certificates);
    }
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let mut pem = std::fs::read(cert_file)
                .map_err(|error| format!("cannot read the certificate file {cert_file}: {}", error.kind()))?;
            pem.extend(
                std::fs::read(key_file)
                    .map_err(|error| format!("cannot read the key file {key_file}: {}", error.kind()))?,
            );
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|_| format!("{cert_file} and {key_file} are not a PEM certificate and key"))?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => return Err("tls_config needs both cert_file and key_file".to_owned()),
    }
    if tls.insecure_skip_verify {
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    let client = builder.build().map_err(|error| format!("cannot build the HTTP client: {error}"))?;
    clients().lock().insert(key, client.clone());
    Ok(client)
}

/// The authorization of `config`, secrets read from their files.
enum Auth {
    Basic { username: String, password: String },
    Header(String),
}

fn authorization(config: &HttpConfig) -> Result<Option<Auth>, String> {
    if let Some(basic) = &config.basic_auth {
        let password = match (&basic.password, &basic.password_file) {
            (_, Some(path)) => read_secret(path, "basic_auth password")?,
            (Some(password), None) => password.clone(),
            (None, None) => String::new(),
        };
        return Ok(Some(Auth::Basic { username: basic.username.clone(), password }));
    }
    if let Some(authorization) = &config.authorization {
        let kind = authorization.kind.clone().unwrap_or_else(|| "Bearer".to_owned());
        let credentials = match (&authorization.credentials, &authorization.credentials_file) {
            (_, Some(path)) => read_secret(path, "authorization credentials")?,
            (Some(credentials), None) => credentials.clone(),
            (None, None) => return Ok(None),
        };
        return Ok(Some(Auth::Header(format!("{kind} {credentials}"))));
    }
    match (&config.bearer_token, &config.bearer_token_file) {
        (_, Some(path)) => Ok(Some(Auth::Header(format!("Bearer {}", read_secret(path, "bearer token")?)))),
        (Some(token), None) => Ok(Some(Auth::Header(format!("Bearer {token}")))),
        (None, None) => Ok(None),
    }
}

/// The body to send: the stored one, with PagerDuty's routing key set from its file.
fn body(delivery: &Delivery, channel: &HttpChannel) -> Result<String, String> {
    let Some(path) = &channel.routing_key_file else { return Ok(delivery.body.clone()) };
    let key = read_secret(path, "routing key")?;
    if key.is_empty() {
        return Err(format!("the routing key file {path} is empty"));
    }
    let mut event: serde_json::Value =
        serde_json::from_str(&delivery.body).map_err(|error| format!("the stored event is not JSON: {error}"))?;
    event["routing_key"] = serde_json::Value::String(key);
    Ok(event.to_string())
}

/// One attempt: POST the JSON body; 2xx is delivered, 429 and 5xx are
/// retried, other answers refused. Errors never carry the URL.
pub async fn send(delivery: &Delivery, channel: &HttpChannel, timeout: Duration) -> SendOutcome {
    let config = channel.http_config.clone().unwrap_or_default();
    let prepared = (|| {
        let client = client(&config, timeout)?;
        let url = match &channel.url_file {
            Some(path) => read_secret(path, "URL")?,
            None => delivery.url.clone(),
        };
        Ok::<_, String>((client, url, body(delivery, channel)?, authorization(&config)?))
    })();
    let (client, url, body, authorization) = match prepared {
        Ok(prepared) => prepared,
        Err(reason) => return SendOutcome::Retry(reason),
    };
    let mut request = client.post(&url).header("content-type", "application/json").body(body);
    match authorization {
        Some(Auth::Basic { username, password }) => request = request.basic_auth(username, Some(password)),
        Some(Auth::Header(value)) => request = request.header("authorization", value),
        None => {}
    }
    match request.send().await {
        Ok(response) => classify(response).await,
        Err(error) => SendOutcome::Retry(error.without_url().to_string()),
    }
}

async fn classify(response: reqwest::Response) -> SendOutcome {
    let status = response.status();
    if status.is_success() {
        return SendOutcome::Delivered;
    }
    let text: String = response.text().await.unwrap_or_default().chars().take(200).collect();
    let reason = format!("{status}: {}", text.trim());
    if status.as_u16() == 429 || status.is_server_error() {
        SendOutcome::Retry(reason)
    } else {
        SendOutcome::Refused(reason)
    }
}

/// Clients are shared; tests may drop them to pick up a new CA file.
#[doc(hidden)]
pub fn forget_clients() {
    clients().lock().clear();
}
