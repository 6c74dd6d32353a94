//! Email over SMTP (lettre), as Alertmanager 0.25's email notifier sends
//! it: `from` and `to` are templates (`to` may list several addresses),
//! the headers are the configured `headers` plus `Subject`
//! (`email.default.subject`), `To` and `From`, then `Message-Id` and `Date`;
//! the body is `multipart/alternative` with a `text/plain` part (`text:`)
//! and a `text/html` part (`html:`, default `email.default.html`), each
//! quoted-printable. alertbook also sends its `email.default.text` as the
//! plain part when `text:` is unset (Alertmanager sends none).
//!
//! The transaction: EHLO with `hello`; STARTTLS required when
//! `require_tls` (the default), with `tls_config` (`ca_file` added to the
//! system roots, `insecure_skip_verify`); TLS from the first byte on port
//! 465; AUTH PLAIN or LOGIN when `auth_username` is set, the password read
//! from `auth_password_file` at each attempt. Transient SMTP replies (4xx)
//! and connection failures are retried; permanent ones (5xx) refuse the
//! delivery.

use std::time::Duration;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailboxes, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};

use super::{Channel, Rendered, SendOutcome, field, read_secret};
use crate::outbox::Delivery;
use crate::routing::config::{EmailConfig, TlsConfig};
use crate::templates::{TemplateData, Templates};

/// An SMTP delivery's settings; the body is the formatted message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailChannel {
    /// `host:port`.
    pub smarthost: String,
    pub hello: String,
    /// The envelope's sender.
    pub envelope_from: String,
    /// The envelope's recipients.
    pub envelope_to: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password: Option<String>,
    pub require_tls: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
}

fn header_value(name: &str, value: String) -> Result<HeaderValue, String> {
    let name = HeaderName::new_from_ascii(name.to_owned()).map_err(|_| format!("invalid header name {name:?}"))?;
    Ok(HeaderValue::new(name, value))
}

/// The message for `data`, formatted, and how to send it.
pub fn render(
    config: &EmailConfig,
    templates: &Templates,
    data: &TemplateData,
    now_ms: i64,
) -> Result<Rendered, String> {
    let value = data.to_value();
    let text = |name: &str, template: &str| field(templates, &value, name, template);
    let from = text("from", &config.from)?;
    let to = text("to", &config.to)?;
    let from_mailboxes: Mailboxes = from.parse().map_err(|error| format!("parse 'from' addresses: {error}"))?;
    let from_addresses: Vec<Address> = from_mailboxes.iter().map(|mailbox| mailbox.email.clone()).collect();
    let [sender] = from_addresses.as_slice() else {
        return Err(format!("must be exactly one 'from' address (got: {})", from_addresses.len()));
    };
    let to_mailboxes: Mailboxes = to.parse().map_err(|error| format!("parse 'to' addresses: {error}"))?;
    let recipients: Vec<Address> = to_mailboxes.iter().map(|mailbox| mailbox.email.clone()).collect();
    if recipients.is_empty() {
        return Err("no 'to' address".into());
    }

    // Alertmanager's header defaults: Subject, To and From, unless configured.
    let mut headers: Vec<(String, String)> = Vec::new();
    let configured = |name: &str| config.headers.keys().any(|key| key.eq_ignore_ascii_case(name));
    for (name, template) in &config.headers {
        headers.push((name.clone(), text(&format!("headers.{name}"), template)?));
    }
    if !configured("Subject") {
        headers.push(("Subject".into(), text("headers.Subject", r#"{{ template "email.default.subject" . }}"#)?));
    }
    if !configured("To") {
        headers.push(("To".into(), to.clone()));
    }
    if !configured("From") {
        headers.push(("From".into(), from.clone()));
    }
    let mut builder = lettre::Message::builder();
    for (name, value) in headers {
        builder = builder.raw_header(header_value(&name, value)?);
    }
    if !configured("Message-Id") {
        let host = config.hello.clone();
        let nonce = getrandom::u64().unwrap_or_default();
        builder = builder.message_id(Some(format!("<{}.{nonce}@{host}>", now_ms.saturating_mul(1_000_000))));
    }
    let date = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(now_ms).unwrap_or_default());
    builder = builder.date(date);

    let plain = text("text", config.text.as_deref().unwrap_or(r#"{{ template "email.default.text" . }}"#))?;
    let html = text("html", config.html.as_deref().unwrap_or(r#"{{ template "email.default.html" . }}"#))?;
    let mut alternative = MultiPart::alternative().build();
    if !plain.is_empty() {
        alternative = alternative.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .header(ContentTransferEncoding::QuotedPrintable)
                .body(plain),
        );
    }
    if !html.is_empty() {
        alternative = alternative.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .header(ContentTransferEncoding::QuotedPrintable)
                .body(html),
        );
    }
    let message = builder.multipart(alternative).map_err(|error| format!("cannot build the message: {error}"))?;
    let body = String::from_utf8(message.formatted()).map_err(|_| "the formatted message is not UTF-8".to_owned())?;

    let channel = EmailChannel {
        smarthost: config.smarthost.clone(),
        hello: config.hello.clone(),
        envelope_from: sender.to_string(),
        envelope_to: recipients.iter().map(ToString::to_string).collect(),
        auth_username: config.auth_username.clone(),
        auth_password_file: config.auth_password_file.clone(),
        auth_password: config.auth_password.clone(),
        require_tls: config.require_tls.unwrap_or(true),
        tls_config: config.tls_config.clone(),
    };
    Ok(Rendered { url: format!("smtp://{}", config.smarthost), body, channel: Some(Channel::Email(channel)) })
}

fn split_smarthost(smarthost: &str) -> Result<(String, u16), String> {
    let (host, port) = smarthost.rsplit_once(':').ok_or_else(|| format!("the smarthost {smarthost:?} has no port"))?;
    let port = port.parse().map_err(|_| format!("the smarthost {smarthost:?} has no valid port"))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port))
}

fn tls_parameters(host: &str, tls: Option<&TlsConfig>) -> Result<TlsParameters, String> {
    let tls = tls.cloned().unwrap_or_default();
    let server_name = tls.server_name.clone().unwrap_or_else(|| host.to_owned());
    let mut builder = TlsParameters::builder(server_name);
    if let Some(ca_file) = &tls.ca_file {
        let pem =
            std::fs::read(ca_file).map_err(|error| format!("cannot read the CA file {ca_file}: {}", error.kind()))?;
        let certificate =
            Certificate::from_pem(&pem).map_err(|_| format!("the CA file {ca_file} holds no PEM certificate"))?;
        builder = builder.add_root_certificate(certificate);
    }
    if tls.insecure_skip_verify {
        builder = builder.dangerous_accept_invalid_certs(true);
    }
    builder.build_rustls().map_err(|error| format!("TLS configuration: {error}"))
}

/// One SMTP transaction for the delivery.
pub async fn send(delivery: &Delivery, channel: &EmailChannel, timeout: Duration) -> SendOutcome {
    crate::install_crypto_provider();
    let prepared = (|| {
        let (host, port) = split_smarthost(&channel.smarthost)?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
            .port(port)
            .timeout(Some(timeout))
            .hello_name(ClientId::Domain(channel.hello.clone()));
        builder = if port == 465 {
            builder.tls(Tls::Wrapper(tls_parameters(&host, channel.tls_config.as_ref())?))
        } else if channel.require_tls {
            builder.tls(Tls::Required(tls_parameters(&host, channel.tls_config.as_ref())?))
        } else {
            builder.tls(Tls::None)
        };
        if !channel.auth_username.is_empty() {
            let password = match (&channel.auth_password_file, &channel.auth_password) {
                (Some(path), _) => read_secret(path, "SMTP password")?,
                (None, Some(password)) => password.clone(),
                (None, None) => String::new(),
            };
            builder = builder.credentials(Credentials::new(channel.auth_username.clone(), password));
        }
        let from: Address = channel.envelope_from.parse().map_err(|error| format!("envelope sender: {error}"))?;
        let to: Result<Vec<Address>, String> = channel
            .envelope_to
            .iter()
            .map(|address| address.parse().map_err(|error| format!("envelope recipient: {error}")))
            .collect();
        let envelope = lettre::address::Envelope::new(Some(from), to?).map_err(|error| format!("envelope: {error}"))?;
        Ok::<_, String>((builder.build(), envelope))
    })();
    let (transport, envelope) = match prepared {
        Ok(prepared) => prepared,
        Err(reason) => return SendOutcome::Retry(reason),
    };
    match transport.send_raw(&envelope, delivery.body.as_bytes()).await {
        Ok(_) => SendOutcome::Delivered,
        Err(error) if error.is_permanent() => SendOutcome::Refused(format!("SMTP {}: {error}", channel.smarthost)),
        Err(error) => SendOutcome::Retry(format!("SMTP {}: {error}", channel.smarthost)),
    }
}
