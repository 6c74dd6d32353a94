//! Slack incoming webhooks: the message Alertmanager 0.25's Slack notifier
//! posts (`channel`, `username`, `icon_emoji`, `icon_url`, `link_names`
//! and one attachment: `title` (at most 1024 characters), `title_link`,
//! `pretext`, `text`, `fallback`, `callback_id`, `fields`, `actions`,
//! `image_url`, `thumb_url`, `footer`, `color`, `mrkdwn_in`), with
//! Alertmanager's defaults for every unset field (`slack.default.*`
//! templates, `danger`/`good` colour). Empty optional fields are left out
//! as Go's `omitempty` leaves them out.

use serde_json::{Map, Value, json};

use super::http::HttpChannel;
use super::{Channel, Rendered, field};
use crate::routing::config::SlackConfig;
use crate::templates::{TemplateData, Templates};

/// Slack's limit on an attachment title, in characters.
pub const MAX_TITLE_CHARACTERS: usize = 1024;

fn or_default<'a>(value: &'a Option<String>, default: &'a str) -> &'a str {
    value.as_deref().unwrap_or(default)
}

fn insert_non_empty(object: &mut Map<String, Value>, key: &str, value: String) {
    if !value.is_empty() {
        object.insert(key.to_owned(), Value::String(value));
    }
}

/// The Slack message for `data`.
pub fn render(config: &SlackConfig, templates: &Templates, data: &TemplateData) -> Result<Rendered, String> {
    let value = data.to_value();
    let text = |name: &str, template: &str| field(templates, &value, name, template);
    let title: String = text("title", or_default(&config.title, r#"{{ template "slack.default.title" . }}"#))?
        .chars()
        .take(MAX_TITLE_CHARACTERS)
        .collect();
    let mut attachment = Map::new();
    insert_non_empty(&mut attachment, "title", title);
    insert_non_empty(
        &mut attachment,
        "title_link",
        text("title_link", or_default(&config.title_link, r#"{{ template "slack.default.titlelink" . }}"#))?,
    );
    insert_non_empty(
        &mut attachment,
        "pretext",
        text("pretext", or_default(&config.pretext, r#"{{ template "slack.default.pretext" . }}"#))?,
    );
    attachment.insert(
        "text".into(),
        Value::String(text("text", or_default(&config.text, r#"{{ template "slack.default.text" . }}"#))?),
    );
    attachment.insert(
        "fallback".into(),
        Value::String(text("fallback", or_default(&config.fallback, r#"{{ template "slack.default.fallback" . }}"#))?),
    );
    attachment.insert(
        "callback_id".into(),
        Value::String(text(
            "callback_id",
            or_default(&config.callback_id, r#"{{ template "slack.default.callbackid" . }}"#),
        )?),
    );
    if !config.fields.is_empty() {
        let mut fields = Vec::new();
        for slack_field in &config.fields {
            let mut rendered = Map::new();
            insert_non_empty(&mut rendered, "title", text("fields.title", &slack_field.title)?);
            insert_non_empty(&mut rendered, "value", text("fields.value", &slack_field.value)?);
            rendered.insert("short".into(), Value::Bool(slack_field.short.unwrap_or(config.short_fields)));
            fields.push(Value::Object(rendered));
        }
        attachment.insert("fields".into(), Value::Array(fields));
    }
    if !config.actions.is_empty() {
        let mut actions = Vec::new();
        for action in &config.actions {
            let mut rendered = Map::new();
            insert_non_empty(&mut rendered, "type", text("actions.type", &action.kind)?);
            insert_non_empty(&mut rendered, "text", text("actions.text", &action.text)?);
            insert_non_empty(&mut rendered, "url", text("actions.url", &action.url)?);
            insert_non_empty(&mut rendered, "style", text("actions.style", &action.style)?);
            insert_non_empty(&mut rendered, "name", text("actions.name", &action.name)?);
            insert_non_empty(&mut rendered, "value", text("actions.value", &action.value)?);
            if let Some(confirm) = &action.confirm {
                let mut confirmation = Map::new();
                insert_non_empty(&mut confirmation, "text", text("actions.confirm.text", &confirm.text)?);
                insert_non_empty(&mut confirmation, "title", text("actions.confirm.title", &confirm.title)?);
                insert_non_empty(&mut confirmation, "ok_text", text("actions.confirm.ok_text", &confirm.ok_text)?);
                insert_non_empty(
                    &mut confirmation,
                    "dismiss_text",
                    text("actions.confirm.dismiss_text", &confirm.dismiss_text)?,
                );
                rendered.insert("confirm".into(), Value::Object(confirmation));
            }
            actions.push(Value::Object(rendered));
        }
        attachment.insert("actions".into(), Value::Array(actions));
    }
    insert_non_empty(&mut attachment, "image_url", text("image_url", or_default(&config.image_url, ""))?);
    insert_non_empty(&mut attachment, "thumb_url", text("thumb_url", or_default(&config.thumb_url, ""))?);
    attachment.insert(
        "footer".into(),
        Value::String(text("footer", or_default(&config.footer, r#"{{ template "slack.default.footer" . }}"#))?),
    );
    insert_non_empty(
        &mut attachment,
        "color",
        text("color", or_default(&config.color, r#"{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}"#))?,
    );
    let markdown_in: Vec<String> = if config.mrkdwn_in.is_empty() {
        vec!["fallback".into(), "pretext".into(), "text".into()]
    } else {
        config.mrkdwn_in.clone()
    };
    attachment.insert("mrkdwn_in".into(), json!(markdown_in));

    let mut message = Map::new();
    insert_non_empty(&mut message, "channel", text("channel", or_default(&config.channel, ""))?);
    insert_non_empty(
        &mut message,
        "username",
        text("username", or_default(&config.username, r#"{{ template "slack.default.username" . }}"#))?,
    );
    insert_non_empty(
        &mut message,
        "icon_emoji",
        text("icon_emoji", or_default(&config.icon_emoji, r#"{{ template "slack.default.iconemoji" . }}"#))?,
    );
    insert_non_empty(
        &mut message,
        "icon_url",
        text("icon_url", or_default(&config.icon_url, r#"{{ template "slack.default.iconurl" . }}"#))?,
    );
    if config.link_names {
        message.insert("link_names".into(), Value::Bool(true));
    }
    message.insert("attachments".into(), Value::Array(vec![Value::Object(attachment)]));

    let mut channel = HttpChannel::new("slack", config.http_config.clone());
    let url = match (&config.api_url, &config.api_url_file) {
        (Some(url), _) => url.clone(),
        (None, Some(path)) => {
            channel.url_file = Some(path.clone());
            String::new()
        }
        (None, None) => return Err("no Slack API URL set".to_owned()),
    };
    Ok(Rendered { url, body: Value::Object(message).to_string(), channel: Some(Channel::Http(channel)) })
}
