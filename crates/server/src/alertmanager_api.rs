//! alertbook as an Alertmanager over HTTP: the notification history
//! (`GET /api/v1/notifications`: who was notified, when, about which alerts,
//! delivered or failed with the error), and Alertmanager's API v2 as
//! `amtool` and Prometheus call it. Handlers map requests onto
//! [`notify::RoutingService`]; the routing itself lives in `notify`.

// Parsing helpers return the error answer itself, ready for the handler.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/notifications", get(notifications)).merge(v2_routes())
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"status": "error", "errorType": "unavailable", "error": "routing is not running"})),
    )
        .into_response()
}

#[derive(Debug, Deserialize)]
struct HistoryParams {
    limit: Option<usize>,
}

/// `GET /api/v1/notifications?limit=N`: newest first, 100 by default.
async fn notifications(State(state): State<Arc<AppState>>, Query(params): Query<HistoryParams>) -> Response {
    let Some(routing) = state.routing() else { return unavailable() };
    let records: Vec<serde_json::Value> = routing
        .history(params.limit.unwrap_or(100).min(notify::state_history_limit()))
        .into_iter()
        .map(|record| {
            json!({
                "id": record.id,
                "receiver": record.receiver,
                "integration": record.integration,
                "groupKey": record.group_key,
                "createdAt": notify::rfc3339(record.created_ms),
                "state": record.state,
                "attempts": record.attempts,
                "error": record.error,
                "finishedAt": record.finished_ms.map(notify::rfc3339),
                "alerts": record.alerts.iter().map(|alert| json!({
                    "fingerprint": alert.fingerprint,
                    "labels": alert.labels,
                    "status": alert.status,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(json!({"status": "success", "data": records})).into_response()
}

// ------------------------------------------------------------ API v2

/// The version alertbook answers as in `/api/v2/status` (the Alertmanager
/// whose API it speaks).
const ALERTMANAGER_VERSION: &str = "0.25.0";

pub(crate) fn v2_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v2/status", get(status))
        .route("/api/v2/receivers", get(receivers))
        .route("/api/v2/alerts", get(get_alerts).post(post_alerts))
        .route("/api/v2/alerts/groups", get(alert_groups))
        .route("/api/v2/silences", get(get_silences).post(post_silence))
        .route("/api/v2/silence/{id}", get(get_silence).delete(delete_silence))
}

/// A go-swagger error answer: the message as a JSON string.
fn error_string(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(serde_json::Value::String(message.into()))).into_response()
}

/// The values of a repeated query parameter (`filter=a&filter=b`).
fn repeated(query: Option<&str>, name: &str) -> Vec<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .collect()
}

fn single(query: Option<&str>, name: &str) -> Option<String> {
    repeated(query, name).into_iter().next()
}

fn flag(query: Option<&str>, name: &str) -> Result<bool, Response> {
    match single(query, name).as_deref() {
        None => Ok(true),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => {
            Err(error_string(StatusCode::BAD_REQUEST, format!("{name} in query must be of type boolean: {other:?}")))
        }
    }
}

/// Matchers from `filter` parameters, Alertmanager's parser.
fn filters(query: Option<&str>) -> Result<Vec<notify::routing::Matcher>, Response> {
    let mut matchers = Vec::new();
    for filter in repeated(query, "filter") {
        match notify::routing::parse_matchers(&filter) {
            Ok(parsed) => matchers.extend(parsed),
            Err(message) => return Err(error_string(StatusCode::BAD_REQUEST, message)),
        }
    }
    Ok(matchers)
}

/// Secrets a configuration may hold inline, shown as `<secret>` as Alertmanager does.
const SECRET_KEYS: &[&str] = &[
    "password",
    "auth_password",
    "auth_secret",
    "smtp_auth_password",
    "smtp_auth_secret",
    "service_key",
    "routing_key",
    "api_url",
    "slack_api_url",
    "api_key",
    "opsgenie_api_key",
    "victorops_api_key",
    "wechat_api_secret",
    "api_secret",
    "bearer_token",
    "credentials",
    "token",
    "user_key",
    "bot_token",
    "webhook_url",
];

fn mask_secrets(original: &str) -> String {
    original
        .lines()
        .map(|line| {
            let trimmed = line.trim_start().trim_start_matches("- ");
            let Some((key, value)) = trimmed.split_once(':') else { return line.to_owned() };
            if SECRET_KEYS.contains(&key.trim()) && !value.trim().is_empty() {
                let prefix = &line[..line.len() - trimmed.len()];
                format!("{prefix}{key}: <secret>")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn status(State(state): State<Arc<AppState>>) -> Response {
    let Some(routing) = state.routing() else { return unavailable() };
    let config = routing.config();
    axum::Json(json!({
        "cluster": {"status": "disabled", "peers": []},
        "versionInfo": {
            "version": ALERTMANAGER_VERSION,
            "revision": concat!("alertbook-", env!("CARGO_PKG_VERSION")),
            "branch": "alertbook",
            "buildUser": "alertbook",
            "buildDate": "",
            "goVersion": "none (alertbook is written in Rust)",
        },
        "config": {"original": mask_secrets(&config.original)},
        "uptime": notify::rfc3339(routing.started_ms()),
    }))
    .into_response()
}

async fn receivers(State(state): State<Arc<AppState>>) -> Response {
    let Some(routing) = state.routing() else { return unavailable() };
    let config = routing.config();
    let names: Vec<serde_json::Value> =
        config.receivers.iter().map(|receiver| json!({"name": receiver.name})).collect();
    axum::Json(names).into_response()
}

fn gettable_alert(
    stored: &notify::routing::StoredAlert,
    status: &notify::routing::AlertStatus,
    receivers: &[String],
) -> serde_json::Value {
    let suppressed = !status.silenced_by.is_empty() || status.inhibited;
    json!({
        "labels": stored.alert.labels,
        "annotations": stored.alert.annotations,
        "startsAt": notify::rfc3339(stored.alert.starts_at_ms),
        "endsAt": stored.alert.ends_at_ms.map_or_else(|| "0001-01-01T00:00:00.000Z".to_owned(), notify::rfc3339),
        "updatedAt": notify::rfc3339(stored.updated_at_ms),
        "generatorURL": stored.alert.generator_url,
        "fingerprint": format!("{:016x}", stored.fingerprint),
        "receivers": receivers.iter().map(|name| json!({"name": name})).collect::<Vec<_>>(),
        "status": {
            "state": if suppressed { "suppressed" } else { "active" },
            "silencedBy": status.silenced_by,
            "inhibitedBy": status.inhibited_by.iter().map(|fingerprint| format!("{fingerprint:016x}")).collect::<Vec<_>>(),
        },
    })
}

/// Which alerts a listing shows: Alertmanager's `filter`, `receiver`,
/// `silenced`, `inhibited` and `active` parameters.
struct AlertFilter {
    matchers: Vec<notify::routing::Matcher>,
    receiver: Option<regex::Regex>,
    silenced: bool,
    inhibited: bool,
    active: bool,
}

impl AlertFilter {
    fn parse(query: Option<&str>) -> Result<Self, Response> {
        let receiver = match single(query, "receiver") {
            Some(pattern) => Some(regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|error| {
                error_string(StatusCode::BAD_REQUEST, format!("failed to parse receiver param: {error}"))
            })?),
            None => None,
        };
        Ok(Self {
            matchers: filters(query)?,
            receiver,
            silenced: flag(query, "silenced")?,
            inhibited: flag(query, "inhibited")?,
            active: flag(query, "active")?,
        })
    }

    fn keeps(
        &self,
        stored: &notify::routing::StoredAlert,
        status: &notify::routing::AlertStatus,
        receivers: &[String],
    ) -> bool {
        if !self.matchers.iter().all(|matcher| matcher.matches(&stored.alert.labels)) {
            return false;
        }
        if let Some(receiver) = &self.receiver
            && !receivers.iter().any(|name| receiver.is_match(name))
        {
            return false;
        }
        let silenced = !status.silenced_by.is_empty();
        if (!self.silenced && silenced) || (!self.inhibited && status.inhibited) {
            return false;
        }
        if !self.active && !silenced && !status.inhibited {
            return false;
        }
        true
    }
}

async fn get_alerts(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    let Some(routing) = state.routing() else { return unavailable() };
    let filter = match AlertFilter::parse(query.as_deref()) {
        Ok(filter) => filter,
        Err(response) => return response,
    };
    let now = state.now_ms();
    let alerts: Vec<serde_json::Value> = routing.with_router(|router| {
        let mut held: Vec<&notify::routing::StoredAlert> =
            router.alerts().filter(|alert| !alert.is_resolved(now)).collect();
        held.sort_by_key(|alert| alert.fingerprint);
        let statuses = router.statuses(held.iter().map(|alert| &alert.alert.labels), now);
        held.iter()
            .zip(&statuses)
            .filter_map(|(alert, status)| {
                let receivers = router.receivers_of(&alert.alert.labels);
                filter.keeps(alert, status, &receivers).then(|| gettable_alert(alert, status, &receivers))
            })
            .collect()
    });
    axum::Json(alerts).into_response()
}

#[derive(Debug, Deserialize)]
struct PostableAlert {
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
    #[serde(rename = "startsAt", default)]
    starts_at: Option<String>,
    #[serde(rename = "endsAt", default)]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL", default)]
    generator_url: Option<String>,
}

fn parse_time(text: Option<&str>, field: &str) -> Result<Option<i64>, String> {
    match text {
        None | Some("") | Some("0001-01-01T00:00:00Z") | Some("0001-01-01T00:00:00.000Z") => Ok(None),
        Some(text) => chrono::DateTime::parse_from_rfc3339(text)
            .map(|time| Some(time.timestamp_millis()))
            .map_err(|_| format!("{field} in body must be of type date-time: {text:?}")),
    }
}

/// `POST /api/v2/alerts`: as Alertmanager, the valid alerts are taken even
/// when others are refused; the refusals are listed in the 400 answer.
async fn post_alerts(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let Some(routing) = state.routing() else { return unavailable() };
    let alerts: Vec<PostableAlert> = match serde_json::from_slice(&body) {
        Ok(alerts) => alerts,
        Err(error) => return error_string(StatusCode::BAD_REQUEST, format!("parsing alerts body failed: {error}")),
    };
    let now = state.now_ms();
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for posted in alerts {
        let starts = parse_time(posted.starts_at.as_deref(), "startsAt");
        let ends = parse_time(posted.ends_at.as_deref(), "endsAt");
        let (starts, ends) = match (starts, ends) {
            (Ok(starts), Ok(ends)) => (starts, ends),
            (Err(error), _) | (_, Err(error)) => {
                errors.push(error);
                continue;
            }
        };
        let mut labels = posted.labels;
        labels.retain(|_, value| !value.is_empty());
        if labels.is_empty() {
            errors.push("at least one label pair required".into());
            continue;
        }
        if let Some(name) = labels.keys().find(|name| !notify::routing::matcher::is_label_name(name)) {
            errors.push(format!("invalid label set: invalid name {name:?}"));
            continue;
        }
        // A missing start is the end if one is given, else now.
        let starts = starts.or(ends).unwrap_or(now);
        if let Some(ends) = ends
            && ends < starts
        {
            errors.push("start time must be before end time".into());
            continue;
        }
        valid.push(notify::Alert {
            labels,
            annotations: posted.annotations,
            starts_at_ms: starts,
            ends_at_ms: ends,
            generator_url: posted.generator_url.unwrap_or_default(),
        });
    }
    routing.put(valid, now);
    if !errors.is_empty() {
        return error_string(StatusCode::BAD_REQUEST, errors.join("; "));
    }
    StatusCode::OK.into_response()
}

async fn alert_groups(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    let Some(routing) = state.routing() else { return unavailable() };
    let filter = match AlertFilter::parse(query.as_deref()) {
        Ok(filter) => filter,
        Err(response) => return response,
    };
    let now = state.now_ms();
    let groups: Vec<serde_json::Value> = routing.with_router(|router| {
        router
            .groups()
            .into_iter()
            .filter(|(receiver, _, _)| filter.receiver.as_ref().is_none_or(|pattern| pattern.is_match(receiver)))
            .filter_map(|(receiver, labels, alerts)| {
                let alerts: Vec<&notify::routing::StoredAlert> =
                    alerts.into_iter().filter(|alert| !alert.is_resolved(now)).collect();
                let statuses = router.statuses(alerts.iter().map(|alert| &alert.alert.labels), now);
                let shown: Vec<serde_json::Value> = alerts
                    .iter()
                    .zip(&statuses)
                    .filter_map(|(alert, status)| {
                        let receivers = router.receivers_of(&alert.alert.labels);
                        let keep =
                            AlertFilter { receiver: None, matchers: filter.matchers.clone(), ..filter.copy_flags() }
                                .keeps(alert, status, &receivers);
                        keep.then(|| gettable_alert(alert, status, &receivers))
                    })
                    .collect();
                (!shown.is_empty()).then(|| json!({"labels": labels, "receiver": {"name": receiver}, "alerts": shown}))
            })
            .collect()
    });
    axum::Json(groups).into_response()
}

impl AlertFilter {
    fn copy_flags(&self) -> Self {
        Self {
            matchers: Vec::new(),
            receiver: None,
            silenced: self.silenced,
            inhibited: self.inhibited,
            active: self.active,
        }
    }
}

fn gettable_silence(silence: &notify::routing::Silence, now: i64) -> serde_json::Value {
    json!({
        "id": silence.id,
        "status": {"state": silence.state(now).as_str()},
        "updatedAt": notify::rfc3339(silence.updated_at_ms),
        "matchers": silence.matchers.iter().map(|matcher| json!({
            "name": matcher.name,
            "value": matcher.value,
            "isRegex": matcher.is_regex,
            "isEqual": matcher.is_equal,
        })).collect::<Vec<_>>(),
        "startsAt": notify::rfc3339(silence.starts_at_ms),
        "endsAt": notify::rfc3339(silence.ends_at_ms),
        "createdBy": silence.created_by,
        "comment": silence.comment,
    })
}

/// Alertmanager lists silences active first, then pending, then expired.
fn state_rank(state: notify::routing::SilenceState) -> u8 {
    match state {
        notify::routing::SilenceState::Active => 0,
        notify::routing::SilenceState::Pending => 1,
        notify::routing::SilenceState::Expired => 2,
    }
}

async fn get_silences(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    let Some(routing) = state.routing() else { return unavailable() };
    let matchers = match filters(query.as_deref()) {
        Ok(matchers) => matchers,
        Err(response) => return response,
    };
    let now = state.now_ms();
    let silences: Vec<serde_json::Value> = routing.with_router(|router| {
        let mut listed: Vec<&notify::routing::Silence> = router
            .silences()
            .iter()
            .filter(|silence| {
                // A silence is listed when every filter matcher equals one of its matchers
                // or matches the value of its equality matcher on that label.
                matchers.iter().all(|filter| {
                    silence.matchers.iter().any(|matcher| {
                        matcher.name == filter.name
                            && ((matcher.is_equal && !matcher.is_regex && filter.matches_value(&matcher.value))
                                || (matcher.value == filter.value && matcher.match_type() == filter.match_type))
                    })
                })
            })
            .collect();
        listed.sort_by(|a, b| {
            let (state_a, state_b) = (a.state(now), b.state(now));
            state_rank(state_a).cmp(&state_rank(state_b)).then_with(|| match state_a {
                notify::routing::SilenceState::Active => a.ends_at_ms.cmp(&b.ends_at_ms),
                notify::routing::SilenceState::Pending => a.starts_at_ms.cmp(&b.starts_at_ms),
                notify::routing::SilenceState::Expired => b.ends_at_ms.cmp(&a.ends_at_ms),
            })
        });
        listed.into_iter().map(|silence| gettable_silence(silence, now)).collect()
    });
    axum::Json(silences).into_response()
}

#[derive(Debug, Deserialize)]
struct PostableMatcher {
    name: Option<String>,
    value: Option<String>,
    #[serde(rename = "isRegex")]
    is_regex: Option<bool>,
    #[serde(rename = "isEqual")]
    is_equal: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct PostableSilence {
    #[serde(default)]
    id: String,
    matchers: Option<Vec<PostableMatcher>>,
    #[serde(rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(rename = "createdBy")]
    created_by: Option<String>,
    comment: Option<String>,
}

/// go-swagger's answer to a body missing a required field (422, code 602).
fn required(field: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({"code": 602, "message": format!("{field} in body is required")})),
    )
        .into_response()
}

async fn post_silence(State(state): State<Arc<AppState>>, body: axum::body::Bytes) -> Response {
    let Some(routing) = state.routing() else { return unavailable() };
    let posted: PostableSilence = match serde_json::from_slice(&body) {
        Ok(silence) => silence,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(
                    json!({"code": 400, "message": format!("parsing silence body from \"\" failed, because {error}")}),
                ),
            )
                .into_response();
        }
    };
    let Some(created_by) = posted.created_by else { return required("createdBy") };
    let Some(comment) = posted.comment else { return required("comment") };
    let Some(starts_at) = posted.starts_at else { return required("startsAt") };
    let Some(ends_at) = posted.ends_at else { return required("endsAt") };
    let Some(posted_matchers) = posted.matchers else { return required("matchers") };
    if posted_matchers.is_empty() {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"code": 612, "message": "matchers in body should have at least 1 items"})),
        )
            .into_response();
    }
    let mut matchers = Vec::new();
    for (index, matcher) in posted_matchers.into_iter().enumerate() {
        let (Some(name), Some(value)) = (matcher.name, matcher.value) else {
            return required(&format!("matchers.{index}.name"));
        };
        matchers.push(notify::routing::SilenceMatcher {
            name,
            value,
            is_regex: matcher.is_regex.unwrap_or(false),
            is_equal: matcher.is_equal.unwrap_or(true),
        });
    }
    let parse = |text: &str, field: &str| {
        chrono::DateTime::parse_from_rfc3339(text).map(|time| time.timestamp_millis()).map_err(|_| {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(
                    json!({"code": 601, "message": format!("{field} in body must be of type date-time: {text:?}")}),
                ),
            )
                .into_response()
        })
    };
    let starts = match parse(&starts_at, "startsAt") {
        Ok(time) => time,
        Err(response) => return response,
    };
    let ends = match parse(&ends_at, "endsAt") {
        Ok(time) => time,
        Err(response) => return response,
    };
    let now = state.now_ms();
    if starts >= ends {
        return error_string(StatusCode::BAD_REQUEST, "Failed to create silence: start time must be before end time");
    }
    if ends < now {
        return error_string(StatusCode::BAD_REQUEST, "Failed to create silence: end time can't be in the past");
    }
    let silence = notify::routing::Silence {
        id: posted.id,
        matchers,
        starts_at_ms: starts,
        ends_at_ms: ends,
        updated_at_ms: now,
        created_by,
        comment,
    };
    match routing.set_silence(silence, now) {
        Ok(id) => axum::Json(json!({"silenceID": id})).into_response(),
        Err(notify::SilenceFailure::Refused(notify::routing::SilenceError::NotFound)) => {
            error_string(StatusCode::NOT_FOUND, "silence not found")
        }
        Err(notify::SilenceFailure::Refused(error)) => error_string(StatusCode::BAD_REQUEST, error.to_string()),
        Err(notify::SilenceFailure::Storage(error)) => {
            tracing::error!(error = %error, "silence could not be stored");
            error_string(StatusCode::INTERNAL_SERVER_ERROR, "the silence could not be stored")
        }
    }
}

async fn get_silence(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let Some(routing) = state.routing() else { return unavailable() };
    let now = state.now_ms();
    match routing.with_router(|router| router.silences().get(&id).map(|silence| gettable_silence(silence, now))) {
        Some(silence) => axum::Json(silence).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn delete_silence(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    let Some(routing) = state.routing() else { return unavailable() };
    match routing.expire_silence(&id, state.now_ms()) {
        Ok(()) => StatusCode::OK.into_response(),
        // Alertmanager 0.25 answers an unknown id with 500 and the error.
        Err(notify::SilenceFailure::Refused(error)) => {
            error_string(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
        }
        Err(error) => {
            tracing::error!(error = %error, "silence could not be expired");
            error_string(StatusCode::INTERNAL_SERVER_ERROR, "the silence could not be expired")
        }
    }
}
