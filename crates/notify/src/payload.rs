//! Alerts and the two wire formats they leave in: Alertmanager's API v2
//! `POST /api/v2/alerts` body, and the Alertmanager webhook payload (version 4).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

/// One alert as the rules engine hands it over. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at_ms: i64,
    /// Set when the alert resolved (or, while firing, when it will be considered
    /// resolved unless re-sent, as Prometheus does).
    pub ends_at_ms: Option<i64>,
    pub generator_url: String,
}

impl Alert {
    /// Resolved at `now_ms`: its end lies in the past.
    pub fn is_resolved(&self, now_ms: i64) -> bool {
        self.ends_at_ms.is_some_and(|ends| ends <= now_ms)
    }
}

/// RFC 3339 with milliseconds, UTC, as Alertmanager writes times.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Alertmanager's fingerprint of a label set: FNV-1a 64 over sorted `name\xffvalue\xff` pairs, hex.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for (name, value) in labels {
        for byte in name.bytes().chain([0xff]).chain(value.bytes()).chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    }
    format!("{hash:016x}")
}

/// The body of `POST /api/v2/alerts`.
pub fn alertmanager_payload(alerts: &[Alert]) -> String {
    let items: Vec<serde_json::Value> = alerts
        .iter()
        .map(|alert| {
            let mut item = json!({
                "labels": alert.labels,
                "annotations": alert.annotations,
                "startsAt": rfc3339(alert.starts_at_ms),
                "generatorURL": alert.generator_url,
            });
            if let Some(ends) = alert.ends_at_ms {
                item["endsAt"] = json!(rfc3339(ends));
            }
            item
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// The labels every alert of a group shares.
fn common(maps: &[&BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let Some((first, rest)) = maps.split_first() else { return BTreeMap::new() };
    first
        .iter()
        .filter(|(name, value)| rest.iter().all(|other| other.get(*name) == Some(value)))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// Alertmanager's webhook payload (version 4) for one group of alerts.
pub fn webhook_payload(
    receiver: &str,
    group_labels: &BTreeMap<String, String>,
    alerts: &[Alert],
    external_url: &str,
    now_ms: i64,
) -> String {
    let firing = alerts.iter().any(|alert| !alert.is_resolved(now_ms));
    let labels: Vec<&BTreeMap<String, String>> = alerts.iter().map(|alert| &alert.labels).collect();
    let annotations: Vec<&BTreeMap<String, String>> = alerts.iter().map(|alert| &alert.annotations).collect();
    let group_key = format!(
        "{{}}:{{{}}}",
        group_labels.iter().map(|(name, value)| format!("{name}={value:?}")).collect::<Vec<_>>().join(", ")
    );
    let items: Vec<serde_json::Value> = alerts
        .iter()
        .map(|alert| {
            json!({
                "status": if alert.is_resolved(now_ms) { "resolved" } else { "firing" },
                "labels": alert.labels,
                "annotations": alert.annotations,
                "startsAt": rfc3339(alert.starts_at_ms),
                "endsAt": alert.ends_at_ms.filter(|ends| *ends <= now_ms).map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), rfc3339),
                "generatorURL": alert.generator_url,
                "fingerprint": fingerprint(&alert.labels),
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common(&labels),
        "commonAnnotations": common(&annotations),
        "externalURL": external_url,
        "alerts": items,
    })
    .to_string()
}

/// Alertmanager's webhook payload (version 4) for a routed notification: its
/// group key, and at most `max_alerts` alerts (0: all), the rest counted in
/// `truncatedAlerts`.
pub fn routed_webhook_payload(
    notification: &crate::routing::Notification,
    max_alerts: u64,
    external_url: &str,
) -> String {
    let now_ms = notification.at_ms;
    let alerts = &notification.alerts;
    let firing = alerts.iter().any(|alert| !alert.is_resolved(now_ms));
    let labels: Vec<&BTreeMap<String, String>> = alerts.iter().map(|alert| &alert.labels).collect();
    let annotations: Vec<&BTreeMap<String, String>> = alerts.iter().map(|alert| &alert.annotations).collect();
    let limit = usize::try_from(max_alerts).unwrap_or(usize::MAX);
    let shown = if limit == 0 { alerts.len() } else { alerts.len().min(limit) };
    let items: Vec<serde_json::Value> = alerts[..shown]
        .iter()
        .map(|alert| {
            json!({
                "status": if alert.is_resolved(now_ms) { "resolved" } else { "firing" },
                "labels": alert.labels,
                "annotations": alert.annotations,
                "startsAt": rfc3339(alert.starts_at_ms),
                "endsAt": alert.ends_at_ms.map_or_else(|| "0001-01-01T00:00:00Z".to_owned(), rfc3339),
                "generatorURL": alert.generator_url,
                "fingerprint": fingerprint(&alert.labels),
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": alerts.len() - shown,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": notification.receiver,
        "groupLabels": notification.group_labels,
        "commonLabels": common(&labels),
        "commonAnnotations": common(&annotations),
        "externalURL": external_url,
        "alerts": items,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, ends: Option<i64>) -> Alert {
        Alert {
            labels: BTreeMap::from([("alertname".into(), name.into()), ("severity".into(), "page".into())]),
            annotations: BTreeMap::from([("summary".into(), format!("{name} is bad"))]),
            starts_at_ms: 1_700_000_000_000,
            ends_at_ms: ends,
            generator_url: "http://127.0.0.1:9099/graph".into(),
        }
    }

    #[test]
    fn alertmanager_body_has_the_v2_fields() {
        let body: serde_json::Value =
            serde_json::from_str(&alertmanager_payload(&[alert("A", None), alert("B", Some(1_700_000_060_500))]))
                .expect("JSON");
        assert_eq!(body[0]["startsAt"], "2023-11-14T22:13:20.000Z");
        assert!(body[0].get("endsAt").is_none());
        assert_eq!(body[1]["endsAt"], "2023-11-14T22:14:20.500Z");
        assert_eq!(body[1]["labels"]["alertname"], "B");
        assert_eq!(body[1]["generatorURL"], "http://127.0.0.1:9099/graph");
    }

    #[test]
    fn webhook_payload_has_alertmanagers_shape() {
        let group = BTreeMap::from([("alertname".to_owned(), "A".to_owned())]);
        let now = 1_700_000_100_000;
        let body: serde_json::Value = serde_json::from_str(&webhook_payload(
            "ops-oncall",
            &group,
            &[alert("A", None), alert("A", Some(now - 1))],
            "http://alertbook",
            now,
        ))
        .expect("JSON");
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["receiver"], "ops-oncall");
        assert_eq!(body["groupKey"], "{}:{alertname=\"A\"}");
        assert_eq!(body["commonLabels"]["severity"], "page");
        assert_eq!(body["alerts"][0]["status"], "firing");
        assert_eq!(body["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(body["alerts"][1]["status"], "resolved");
        assert_eq!(body["alerts"][0]["fingerprint"].as_str().map(str::len), Some(16));
    }

    #[test]
    fn fingerprint_is_stable_and_label_sensitive() {
        let a = BTreeMap::from([("alertname".to_owned(), "A".to_owned())]);
        let b = BTreeMap::from([("alertname".to_owned(), "B".to_owned())]);
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }
}
