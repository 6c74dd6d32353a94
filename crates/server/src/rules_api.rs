//! Prometheus's rule and alert API: `/api/v1/rules` (every group with its
//! rules, their health, last error, evaluation time and alerts; `type=alert`
//! or `type=record`, `rule_name[]`, `rule_group[]`, `file[]` and
//! `exclude_alerts` filters) and `/api/v1/alerts` (pending and firing alerts),
//! in Prometheus's JSON. Reads the rule manager's published status and never
//! waits for an evaluation.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rules::{Alert, AlertState, GroupStatus, RuleKind, RuleStatus};

use crate::AppState;
use crate::json::write_string;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/rules", get(list_rules).post(list_rules)).route("/api/v1/alerts", get(list_alerts))
}

fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Go's `strconv.FormatFloat(value, 'e', -1, 64)`, as Prometheus renders alert values.
fn format_alert_value(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let text = format!("{value:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

/// RFC 3339 with nanoseconds trimmed, UTC; Go's zero time when unset.
fn format_time(time_ms: Option<i64>) -> String {
    let Some(time_ms) = time_ms else {
        return "0001-01-01T00:00:00Z".into();
    };
    match chrono::DateTime::from_timestamp_millis(time_ms) {
        Some(time) => time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

fn write_map(out: &mut String, map: &BTreeMap<String, String>) {
    out.push('{');
    for (index, (name, value)) in map.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(out, name);
        out.push(':');
        write_string(out, value);
    }
    out.push('}');
}

fn write_alert(out: &mut String, alert: &Alert) {
    out.push_str("{\"labels\":");
    crate::json::write_labels(out, &alert.labels);
    out.push_str(",\"annotations\":");
    write_map(out, &alert.annotations);
    out.push_str(",\"state\":");
    write_string(out, alert.state.as_str());
    out.push_str(",\"activeAt\":");
    write_string(out, &format_time(Some(alert.active_at_ms)));
    if let Some(since) = alert.keep_firing_since_ms {
        out.push_str(",\"keepFiringSince\":");
        write_string(out, &format_time(Some(since)));
    }
    out.push_str(",\"value\":");
    write_string(out, &format_alert_value(alert.value));
    // alertbook's addition (Prometheus clients ignore it): the key of `/api/v1/triage`.
    out.push_str(",\"fingerprint\":");
    let labels = alert.labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect();
    write_string(out, &triage::fingerprint(&labels));
    out.push('}');
}

fn active_alerts(rule: &RuleStatus) -> impl Iterator<Item = &Alert> {
    rule.alerts.iter().filter(|alert| alert.state != AlertState::Inactive)
}

fn write_rule(out: &mut String, group: &GroupStatus, rule: &RuleStatus, exclude_alerts: bool) {
    out.push('{');
    if rule.kind == RuleKind::Alerting {
        let state = active_alerts(rule).map(|alert| alert.state).max().unwrap_or(AlertState::Inactive);
        out.push_str("\"state\":");
        write_string(out, state.as_str());
        out.push(',');
    }
    out.push_str("\"name\":");
    write_string(out, &rule.name);
    out.push_str(",\"query\":");
    write_string(out, &rule.query);
    if rule.kind == RuleKind::Alerting {
        let _ = write!(
            out,
            ",\"duration\":{},\"keepFiringFor\":{}",
            rule.for_duration.as_secs_f64(),
            rule.keep_firing_for.as_secs_f64()
        );
    }
    out.push_str(",\"labels\":");
    write_map(out, &rule.labels);
    if rule.kind == RuleKind::Alerting {
        out.push_str(",\"annotations\":");
        write_map(out, &rule.annotations);
        if !exclude_alerts {
            out.push_str(",\"alerts\":[");
            for (index, alert) in active_alerts(rule).enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_alert(out, alert);
            }
            out.push(']');
        }
    }
    out.push_str(",\"health\":");
    write_string(out, rule.health.as_str());
    out.push_str(",\"lastError\":");
    let not_here;
    let last_error = if group.evaluated_here {
        rule.last_error.as_deref().unwrap_or("")
    } else {
        not_here = format!("no {} datasource configured", group.datasource.as_str());
        &not_here
    };
    write_string(out, last_error);
    let _ = write!(out, ",\"evaluationTime\":{}", rule.evaluation_duration.as_secs_f64());
    out.push_str(",\"lastEvaluation\":");
    write_string(out, &format_time(rule.last_evaluation_ms));
    out.push_str(",\"type\":");
    write_string(out, if rule.kind == RuleKind::Alerting { "alerting" } else { "recording" });
    out.push('}');
}

/// The filters of `/api/v1/rules`, as Prometheus takes them.
#[derive(Default)]
struct RuleFilter {
    kind: Option<RuleKind>,
    rule_names: Vec<String>,
    group_names: Vec<String>,
    files: Vec<String>,
    exclude_alerts: bool,
}

impl RuleFilter {
    fn parse(query: &str) -> Result<Self, String> {
        let mut filter = RuleFilter::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "type" => {
                    filter.kind = match value.as_ref() {
                        "alert" => Some(RuleKind::Alerting),
                        "record" => Some(RuleKind::Recording),
                        other => return Err(format!("unsupported type {other:?}: use alert or record")),
                    }
                }
                "rule_name[]" => filter.rule_names.push(value.into_owned()),
                "rule_group[]" => filter.group_names.push(value.into_owned()),
                "file[]" => filter.files.push(value.into_owned()),
                "exclude_alerts" => {
                    filter.exclude_alerts = match value.as_ref() {
                        "true" | "1" => true,
                        "false" | "0" | "" => false,
                        other => {
                            return Err(format!("invalid parameter \"exclude_alerts\": {other:?} is not a boolean"));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(filter)
    }

    /// Whether any filter narrows the listing (then groups left without rules are omitted).
    fn narrows(&self) -> bool {
        self.kind.is_some() || !self.rule_names.is_empty()
    }

    fn keeps_group(&self, group: &GroupStatus) -> bool {
        (self.group_names.is_empty() || self.group_names.contains(&group.name))
            && (self.files.is_empty() || self.files.contains(&group.file))
    }

    fn keeps_rule(&self, rule: &RuleStatus) -> bool {
        self.kind.is_none_or(|kind| rule.kind == kind)
            && (self.rule_names.is_empty() || self.rule_names.contains(&rule.name))
    }
}

async fn list_rules(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    let filter = match RuleFilter::parse(&query.unwrap_or_default()) {
        Ok(filter) => filter,
        Err(message) => {
            let mut body = String::from("{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":");
            write_string(&mut body, &message);
            body.push('}');
            return (axum::http::StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json")], body)
                .into_response();
        }
    };
    let mut out = String::from("{\"status\":\"success\",\"data\":{\"groups\":[");
    let mut first_group = true;
    for group in state.rules().statuses().into_iter().filter(|group| filter.keeps_group(group)) {
        let rules: Vec<&RuleStatus> = group.rules.iter().filter(|rule| filter.keeps_rule(rule)).collect();
        if filter.narrows() && rules.is_empty() {
            continue;
        }
        if !first_group {
            out.push(',');
        }
        first_group = false;
        out.push_str("{\"name\":");
        write_string(&mut out, &group.name);
        out.push_str(",\"file\":");
        write_string(&mut out, &group.file);
        out.push_str(",\"rules\":[");
        for (index, rule) in rules.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            write_rule(&mut out, &group, rule, filter.exclude_alerts);
        }
        let _ = write!(
            out,
            "],\"interval\":{},\"limit\":{},\"evaluationTime\":{},\"lastEvaluation\":",
            group.interval_ms as f64 / 1000.0,
            group.limit,
            group.evaluation_duration.as_secs_f64()
        );
        write_string(&mut out, &format_time(group.last_evaluation_ms));
        out.push('}');
    }
    out.push_str("]}}");
    json_response(out)
}

async fn list_alerts(State(state): State<Arc<AppState>>) -> Response {
    let mut out = String::from("{\"status\":\"success\",\"data\":{\"alerts\":[");
    let mut first = true;
    for group in state.rules().statuses() {
        for rule in &group.rules {
            for alert in active_alerts(rule) {
                if !first {
                    out.push(',');
                }
                first = false;
                write_alert(&mut out, alert);
            }
        }
    }
    out.push_str("]}}");
    json_response(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_times_render_like_prometheus() {
        assert_eq!(format_alert_value(1.0), "1e+00");
        assert_eq!(format_alert_value(0.025), "2.5e-02");
        assert_eq!(format_time(None), "0001-01-01T00:00:00Z");
        assert_eq!(format_time(Some(1_700_000_000_000)), "2023-11-14T22:13:20Z");
    }
}
