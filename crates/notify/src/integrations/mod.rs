//! Receiver integrations: how a routed [`Notification`] becomes a delivery
//! for its integration, and how that delivery is sent.
//!
//! [`render`] runs at flush time, in the routing service: it expands the
//! integration's templates over Alertmanager's template data and returns the
//! outbox delivery (URL, body, and the [`Channel`] that says how to send it).
//! [`send`] runs in the dispatcher's delivery loop, once per attempt.
//!
//! - `webhook`: Alertmanager's webhook payload (`max_alerts` honoured), with
//!   the receiver's `http_config`.
//! - [`slack`]: an incoming-webhook message with one attachment, as
//!   Alertmanager 0.25 builds it.
//! - [`pagerduty`]: an Events API v2 event (`trigger`/`resolve`, `dedup_key`
//!   the SHA-256 of the group key).
//! - [`email`]: a MIME message (text and HTML alternatives) over SMTP with
//!   STARTTLS and AUTH (lettre).
//!
//! Secrets (`*_file` settings, Slack's `api_url_file`, PagerDuty's
//! `routing_key_file`, SMTP and HTTP passwords and credentials) are read from
//! their files at each attempt: the outbox holds the file's path, never the
//! secret, and no error, log line or history record carries a secret or a
//! secret URL. Inline secrets (`routing_key:`, `api_url:`, `password:`), which
//! Alertmanager also accepts, are used as given; prefer the files.

pub mod email;
pub mod http;
pub mod pagerduty;
pub mod slack;

use serde::{Deserialize, Serialize};

use crate::outbox::Delivery;
use crate::payload::routed_webhook_payload;
use crate::routing::{IntegrationSettings, Notification};
use crate::templates::{TemplateData, Templates};

/// How a delivery is sent (persisted with it in the outbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Channel {
    /// An HTTP POST of the JSON body.
    Http(http::HttpChannel),
    /// An SMTP transaction carrying the body, a formatted MIME message.
    Email(email::EmailChannel),
}

/// A notification rendered for its integration.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Where it goes (for email, `smtp://host:port`; empty when the URL is read from a file at send time).
    pub url: String,
    pub body: String,
    /// How to send it; `None` for a webhook without `http_config`, which the
    /// dispatcher posts with its shared client.
    pub channel: Option<Channel>,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    Delivered,
    /// Worth retrying (network errors, 5xx, 429, transient SMTP replies).
    Retry(String),
    /// Refused for good (4xx, permanent SMTP replies, a missing secret file is retried).
    Refused(String),
}

/// Renders `notification` for its integration at `notification.at_ms`.
/// Errors (a template that fails, an address that does not parse) name the
/// field, never a secret.
pub fn render(notification: &Notification, templates: &Templates, external_url: &str) -> Result<Rendered, String> {
    // Only the templated integrations read the template data; a webhook's
    // payload is built from the notification directly.
    let data = || {
        TemplateData::new(
            &notification.receiver,
            &notification.group_labels,
            &notification.alerts,
            external_url,
            notification.at_ms,
        )
    };
    let http_config = match &notification.integration.settings {
        IntegrationSettings::Webhook(webhook) => webhook.http_config.as_ref(),
        IntegrationSettings::Slack(slack) => slack.http_config.as_ref(),
        IntegrationSettings::Pagerduty(pagerduty) => pagerduty.http_config.as_ref(),
        IntegrationSettings::Email(_) => None,
    };
    if let Some(reason) = http_config.and_then(http::unsupported) {
        return Err(reason.to_owned());
    }
    match &notification.integration.settings {
        IntegrationSettings::Webhook(webhook) => {
            let url = webhook.url.clone().filter(|url| !url.is_empty()).ok_or("the webhook has no url")?;
            Ok(Rendered {
                url,
                body: routed_webhook_payload(notification, webhook.max_alerts, external_url),
                channel: webhook
                    .http_config
                    .clone()
                    .filter(|config| *config != crate::routing::config::HttpConfig::default())
                    .map(|config| Channel::Http(http::HttpChannel::new("webhook", Some(config)))),
            })
        }
        IntegrationSettings::Slack(slack) => slack::render(slack, templates, &data()),
        IntegrationSettings::Pagerduty(pagerduty) => {
            pagerduty::render(pagerduty, templates, &data(), &notification.group_key)
        }
        IntegrationSettings::Email(email) => email::render(email, templates, &data(), notification.at_ms),
    }
}

/// Sends one delivery through its channel.
pub async fn send(delivery: &Delivery, channel: &Channel, timeout: std::time::Duration) -> SendOutcome {
    match channel {
        Channel::Http(http) => http::send(delivery, http, timeout).await,
        Channel::Email(email) => email::send(delivery, email, timeout).await,
    }
}

/// Renders one template field, naming the field in the error.
pub(crate) fn field(templates: &Templates, data: &gotmpl::Value, name: &str, text: &str) -> Result<String, String> {
    templates.render(text, data).map_err(|error| format!("{name}: template failed: {error}"))
}

/// Reads a secret from its file, trimmed as Alertmanager trims it. The
/// error names the file, never its content.
pub(crate) fn read_secret(path: &str, what: &str) -> Result<String, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(error) => Err(format!("cannot read the {what} file {path}: {}", error.kind())),
    }
}
