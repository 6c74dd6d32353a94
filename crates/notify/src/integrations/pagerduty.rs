//! PagerDuty Events API v2: the event Alertmanager 0.25's PagerDuty notifier
//! sends (`routing_key`, `event_action` `trigger` or `resolve`, `dedup_key`
//! the SHA-256 of the group key in hex, `client`, `client_url`, `images`,
//! `links`, and `payload` with `summary` (at most 1024 characters),
//! `source`, `severity` (default `error`), `class`, `component`, `group`
//! and `custom_details`: the configured `details` plus Alertmanager's
//! defaults `firing`, `resolved`, `num_firing`, `num_resolved`). An event
//! over 512 kB loses its custom details for an error note, as in
//! Alertmanager. The Events API v1 (`service_key`) is not sent.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::http::HttpChannel;
use super::{Channel, Rendered, field};
use crate::routing::config::{DEFAULT_PAGERDUTY_URL, PagerdutyConfig};
use crate::templates::{TemplateData, Templates};

/// PagerDuty's limit on a summary, in characters.
pub const MAX_SUMMARY_CHARACTERS: usize = 1024;
/// PagerDuty's limit on an event, in bytes.
pub const MAX_EVENT_BYTES: usize = 512_000;

/// Alertmanager's default `details`.
const DEFAULT_DETAILS: &[(&str, &str)] = &[
    ("firing", r#"{{ template "pagerduty.default.instances" .Alerts.Firing }}"#),
    ("resolved", r#"{{ template "pagerduty.default.instances" .Alerts.Resolved }}"#),
    ("num_firing", "{{ .Alerts.Firing | len }}"),
    ("num_resolved", "{{ .Alerts.Resolved | len }}"),
];

/// Alertmanager's `Key.Hash`: the group key's SHA-256, lower-case hex.
pub fn dedup_key(group_key: &str) -> String {
    Sha256::digest(group_key.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn insert_non_empty(object: &mut Map<String, Value>, key: &str, value: String) {
    if !value.is_empty() {
        object.insert(key.to_owned(), Value::String(value));
    }
}

/// The Events API v2 event for `data`.
pub fn render(
    config: &PagerdutyConfig,
    templates: &Templates,
    data: &TemplateData,
    group_key: &str,
) -> Result<Rendered, String> {
    if config.service_key.is_some() || config.service_key_file.is_some() {
        return Err("alertbook sends PagerDuty Events API v2 only: use routing_key_file instead of service_key".into());
    }
    let value = data.to_value();
    let text = |name: &str, template: &str| field(templates, &value, name, template);
    let client_template = config.client.as_deref().unwrap_or(r#"{{ template "pagerduty.default.client" . }}"#);
    let source_template = config.source.as_deref().filter(|source| !source.is_empty()).unwrap_or(client_template);

    let mut details: BTreeMap<String, String> = BTreeMap::new();
    for (name, template) in &config.details {
        details.insert(name.clone(), text(&format!("details.{name}"), template)?);
    }
    for (name, template) in DEFAULT_DETAILS {
        if !config.details.contains_key(*name) {
            details.insert((*name).to_owned(), text(&format!("details.{name}"), template)?);
        }
    }

    let summary: String = text(
        "description",
        config.description.as_deref().unwrap_or(r#"{{ template "pagerduty.default.description" .}}"#),
    )?
    .chars()
    .take(MAX_SUMMARY_CHARACTERS)
    .collect();
    let mut payload = Map::new();
    payload.insert("summary".into(), Value::String(summary));
    payload.insert("source".into(), Value::String(text("source", source_template)?));
    payload.insert(
        "severity".into(),
        Value::String(text("severity", config.severity.as_deref().filter(|s| !s.is_empty()).unwrap_or("error"))?),
    );
    insert_non_empty(&mut payload, "class", text("class", config.class.as_deref().unwrap_or(""))?);
    insert_non_empty(&mut payload, "component", text("component", config.component.as_deref().unwrap_or(""))?);
    insert_non_empty(&mut payload, "group", text("group", config.group.as_deref().unwrap_or(""))?);
    if !details.is_empty() {
        payload.insert("custom_details".into(), json!(details));
    }

    let mut event = Map::new();
    let mut channel = HttpChannel::new("pagerduty", config.http_config.clone());
    match (&config.routing_key, &config.routing_key_file) {
        (Some(key), _) if !key.is_empty() => {
            let key = text("routing_key", key)?;
            if key.is_empty() {
                return Err("routing key cannot be empty".into());
            }
            event.insert("routing_key".into(), Value::String(key));
        }
        (_, Some(path)) => channel.routing_key_file = Some(path.clone()),
        _ => return Err("missing routing key in PagerDuty config".into()),
    }
    event.insert("dedup_key".into(), Value::String(dedup_key(group_key)));
    event.insert(
        "event_action".into(),
        Value::String(if data.status == "resolved" { "resolve" } else { "trigger" }.into()),
    );
    insert_non_empty(&mut event, "client", text("client", client_template)?);
    insert_non_empty(
        &mut event,
        "client_url",
        text(
            "client_url",
            config.client_url.as_deref().unwrap_or(r#"{{ template "pagerduty.default.clientURL" . }}"#),
        )?,
    );
    let mut images = Vec::new();
    for image in &config.images {
        let src = text("images.src", &image.src)?;
        if !src.is_empty() {
            images.push(
                json!({"src": src, "alt": text("images.alt", &image.alt)?, "href": text("images.href", &image.href)?}),
            );
        }
    }
    if !images.is_empty() {
        event.insert("images".into(), Value::Array(images));
    }
    let mut links = Vec::new();
    for link in &config.links {
        let href = text("links.href", &link.href)?;
        if !href.is_empty() {
            links.push(json!({"href": href, "text": text("links.text", &link.text)?}));
        }
    }
    if !links.is_empty() {
        event.insert("links".into(), Value::Array(links));
    }
    event.insert("payload".into(), Value::Object(payload));

    let mut body = Value::Object(event.clone()).to_string();
    if body.len() > MAX_EVENT_BYTES {
        tracing::warn!(
            bytes = body.len(),
            limit = MAX_EVENT_BYTES,
            "PagerDuty event too large; custom details dropped"
        );
        if let Some(Value::Object(payload)) = event.get_mut("payload") {
            payload.insert(
                "custom_details".into(),
                json!({"error": "Custom details have been removed because the original event exceeds the maximum size of 512kB"}),
            );
        }
        body = Value::Object(event).to_string();
    }
    let url = config.url.clone().unwrap_or_else(|| DEFAULT_PAGERDUTY_URL.to_owned());
    Ok(Rendered { url, body, channel: Some(Channel::Http(channel)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_key_is_the_sha256_of_the_group_key() {
        // echo -n '{}:{alertname="A"}' | sha256sum
        assert_eq!(dedup_key(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(dedup_key("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
