//! The default routing tree over the catalog's contacts (`contacts.yaml`),
//! used when no `alertmanager.yml` is configured: an alert or escalation
//! whose `route` label names a contact goes to that contact's receiver (a
//! `--notify.webhook` name), per label value for contacts that depend on
//! the alert (`by`); everything else, and a contact whose receiver is no
//! configured webhook, goes to `default` (every webhook).

use catalog::contacts::{ContactTarget, Contacts};
use catalog::{Diagnostics, SourceFile};

use crate::routing::RoutingConfig;

/// The tree as `alertmanager.yml` text.
pub fn default_config_text(webhooks: &[(String, String)], contacts: &Contacts) -> String {
    let every: Vec<String> = webhooks.iter().map(|(_, url)| url.clone()).collect();
    default_config_text_to(webhooks, contacts, &every)
}

/// [`default_config_text`] with the `default` receiver (alerts no contact
/// routes) posting to `default_urls` instead of every webhook.
pub fn default_config_text_to(webhooks: &[(String, String)], contacts: &Contacts, default_urls: &[String]) -> String {
    let quote = |text: &str| serde_json::to_string(text).unwrap_or_default();
    let known = |receiver: &str| webhooks.iter().any(|(name, _)| name == receiver);
    let mut text = String::from(
        "# alertbook's default routing over the catalog's contacts (no alerting.config_file configured)\nroute:\n  receiver: default\n  group_by: [alertname]\n  group_wait: 0s\n  group_interval: 5s\n  repeat_interval: 4h\n",
    );
    let mut used: Vec<&str> = Vec::new();
    let mut routes = String::new();
    for (name, contact) in &contacts.contacts {
        let matcher = quote(&format!("route={}", quote(name)));
        match &contact.target {
            ContactTarget::Receiver(receiver) if known(receiver) => {
                routes.push_str(&format!("    - matchers: [{matcher}]\n      receiver: {}\n", quote(receiver)));
                used.push(receiver);
            }
            ContactTarget::Receiver(_) => {}
            ContactTarget::ByLabel { by, receivers, default } => {
                let fallback = default.as_deref().filter(|receiver| known(receiver)).unwrap_or("default");
                routes.push_str(&format!("    - matchers: [{matcher}]\n      receiver: {}\n", quote(fallback)));
                if fallback != "default" {
                    used.push(fallback);
                }
                let children: Vec<(&String, &String)> =
                    receivers.iter().filter(|(_, receiver)| known(receiver)).collect();
                if !children.is_empty() {
                    routes.push_str("      routes:\n");
                    for (value, receiver) in children {
                        let matcher = quote(&format!("{by}={}", quote(value)));
                        routes.push_str(&format!(
                            "        - matchers: [{matcher}]\n          receiver: {}\n",
                            quote(receiver)
                        ));
                        used.push(receiver);
                    }
                }
            }
        }
    }
    if !routes.is_empty() {
        text.push_str("  routes:\n");
        text.push_str(&routes);
    }
    text.push_str("receivers:\n  - name: default\n");
    if !default_urls.is_empty() {
        text.push_str("    webhook_configs:\n");
        for url in default_urls {
            text.push_str(&format!("      - url: {}\n", quote(url)));
        }
    }
    used.sort_unstable();
    used.dedup();
    for receiver in used {
        if let Some((_, url)) = webhooks.iter().find(|(name, _)| name == receiver) {
            text.push_str(&format!(
                "  - name: {}\n    webhook_configs:\n      - url: {}\n",
                quote(receiver),
                quote(url)
            ));
        }
    }
    text
}

/// [`default_config_text_to`], parsed.
pub fn default_config_to(
    webhooks: &[(String, String)],
    contacts: &Contacts,
    default_urls: &[String],
) -> Result<RoutingConfig, Diagnostics> {
    let source = SourceFile {
        path: std::path::PathBuf::from("<default routing over contacts.yaml>"),
        text: default_config_text_to(webhooks, contacts, default_urls),
    };
    crate::routing::config::parse(&source)
}

/// [`default_config_text`], parsed.
pub fn default_config(webhooks: &[(String, String)], contacts: &Contacts) -> Result<RoutingConfig, Diagnostics> {
    let every: Vec<String> = webhooks.iter().map(|(_, url)| url.clone()).collect();
    default_config_to(webhooks, contacts, &every)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use catalog::contacts::Contact;

    use super::*;

    #[test]
    fn contacts_route_alerts_and_escalations_to_their_receivers() {
        let mut contacts = Contacts::default();
        let mut add = |name: &str, target: ContactTarget| {
            contacts.contacts.insert(name.into(), Contact { name: name.into(), description: String::new(), target });
        };
        add("security-oncall", ContactTarget::Receiver("security".into()));
        add("infra-oncall", ContactTarget::Receiver("not-a-webhook".into()));
        add(
            "tenant-csm",
            ContactTarget::ByLabel {
                by: "tenant_id".into(),
                receivers: BTreeMap::from([("t-1".into(), "csm-north".into())]),
                default: Some("csm-desk".into()),
            },
        );
        let webhooks: Vec<(String, String)> = ["security", "csm-north", "csm-desk", "ops"]
            .iter()
            .map(|name| ((*name).to_owned(), format!("http://127.0.0.1:9/{name}")))
            .collect();
        let config = default_config(&webhooks, &contacts).unwrap_or_else(|errors| panic!("{errors}"));
        let receivers = |pairs: &[(&str, &str)]| -> Vec<String> {
            let labels: BTreeMap<String, String> =
                pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
            config.route.matching(&labels).iter().map(|index| config.route.get(*index).receiver.clone()).collect()
        };
        assert_eq!(receivers(&[("alertname", "A3"), ("route", "security-oncall")]), ["security"]);
        assert_eq!(receivers(&[("route", "tenant-csm"), ("tenant_id", "t-1")]), ["csm-north"]);
        assert_eq!(receivers(&[("route", "tenant-csm"), ("tenant_id", "t-9")]), ["csm-desk"]);
        assert_eq!(receivers(&[("route", "infra-oncall")]), ["default"], "no such webhook: the default");
        assert_eq!(receivers(&[("alertname", "A1")]), ["default"]);
    }
}
