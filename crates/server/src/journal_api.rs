//! The on-call journal's JSON API:
//! - `POST /api/v1/alerts/{fingerprint}/ack`: acknowledge a firing alert
//!   (responder or admin);
//! - `POST /api/v1/alerts/{fingerprint}/close`: close it with the closing
//!   fields as a JSON object (`alert_id`, `root_cause`, `remediation`,
//!   `contract_changed`, `contract`, `contract_pr`; `revision` to correct an
//!   entry); refused fields come back one by one (400, `fields`), a close
//!   that lost a race comes back as 409 with the winning revision and the
//!   refused submission;
//! - `GET /api/v1/journal` (`id` = runbook ID, `since`, `until` as RFC 3339
//!   or Unix seconds, `contract_changed` yes/no, `limit`) and
//!   `GET /api/v1/journal/{entry}` (with every revision), any role;
//! - `GET /api/v1/acknowledgements`: acknowledged alerts still without an entry.
//!
//! Every route needs a [`Principal`] (a session with its CSRF token for
//! POSTs, or a bearer token). The fingerprint is the one `/api/v1/alerts`
//! lists. The handlers map requests onto `journal::Journal` and its errors
//! onto status codes, nothing more.

// Handlers and extractors reject with a ready `Response`, as axum does.
#![allow(clippy::result_large_err)]
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use journal::{ClosingForm, FiringAlert, JournalError, LinkedRun};

use crate::AppState;
use crate::auth::{Principal, Role};

/// The journal and the accounts behind it, with the server's auth settings;
/// the CLI builds it and sets it with [`AppState::set_journal`].
#[derive(Debug)]
pub struct JournalService {
    pub journal: journal::Journal,
    pub accounts: accounts::Accounts,
    /// `auth.require_for_read`: close the Prometheus and Loki read APIs to anonymous requests.
    pub require_for_read: bool,
    /// Mark cookies `Secure` (served over TLS).
    pub secure_cookies: bool,
}

/// The wall clock in Unix milliseconds: sessions and login limits (the
/// journal's times are the server's clock, [`AppState::now_ms`]).
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A JSON error as the Prometheus API shapes them.
pub fn error_json(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({"status": "error", "errorType": error_type, "error": message});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn success(data: serde_json::Value) -> Response {
    let body = serde_json::json!({"status": "success", "data": data});
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/alerts/{fingerprint}/ack", post(acknowledge))
        .route("/api/v1/alerts/{fingerprint}/close", post(close))
        .route("/api/v1/journal", get(list))
        .route("/api/v1/journal/{entry}", get(show))
        .route("/api/v1/acknowledgements", get(acknowledgements))
}

pub(crate) fn service(state: &AppState) -> Result<Arc<JournalService>, Response> {
    state.journal().ok_or_else(|| {
        error_json(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the journal and accounts are not configured")
    })
}

/// The alert instance with this fingerprint as the rules see it: whether it
/// is known at all, and its firing state.
pub(crate) fn find_alert(state: &AppState, fingerprint: &str) -> (bool, Option<FiringAlert>) {
    let mut known = false;
    for group in state.rules().statuses() {
        for rule in &group.rules {
            for alert in rule.alerts.iter().filter(|alert| alert.state != rules::AlertState::Inactive) {
                let labels: std::collections::BTreeMap<String, String> =
                    alert.labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect();
                if triage::fingerprint(&labels) != fingerprint {
                    continue;
                }
                known = true;
                if alert.state != rules::AlertState::Firing {
                    continue;
                }
                let alertname = labels.get("alertname").cloned().unwrap_or_else(|| rule.name.clone());
                let alert_id = state
                    .catalog()
                    .entries
                    .iter()
                    .find(|entry| entry.alertname == alertname)
                    .map_or_else(|| alertname.clone(), |entry| entry.id.clone());
                return (
                    true,
                    Some(FiringAlert {
                        fingerprint: fingerprint.to_owned(),
                        started_at_ms: alert.active_at_ms,
                        alert_id,
                        alertname,
                        labels,
                    }),
                );
            }
        }
    }
    (known, None)
}

/// The alert's triage runs, for the entry's links.
pub(crate) fn triage_runs(state: &AppState, fingerprint: &str) -> Vec<LinkedRun> {
    let Some(record) = state.triage().and_then(|runner| runner.runs(fingerprint)) else { return Vec::new() };
    record
        .runs
        .iter()
        .map(|run| LinkedRun {
            time_ms: run.time_ms,
            path: triage::summary::path(run),
            summary: triage::summary::summary(run),
        })
        .collect()
}

fn journal_error(error: JournalError) -> Response {
    match error {
        JournalError::Invalid(fields) => {
            let message = error_message(&fields);
            let body = serde_json::json!({
                "status": "error", "errorType": "bad_data", "error": message, "fields": fields,
            });
            (StatusCode::BAD_REQUEST, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        JournalError::Conflict { current, submitted } => {
            let body = serde_json::json!({
                "status": "error", "errorType": "conflict",
                "error": format!("the entry was written meanwhile by {} (revision {}): resubmit with \"revision\": {} to correct it", current.author, current.revision, current.revision),
                "current": current, "submitted": submitted,
            });
            (StatusCode::CONFLICT, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
        }
        JournalError::AlreadyAcknowledged { .. } | JournalError::Lifecycle(_) => {
            error_json(StatusCode::CONFLICT, "conflict", &error.to_string())
        }
        JournalError::NoEntry(_) => error_json(StatusCode::NOT_FOUND, "not_found", &error.to_string()),
        JournalError::State(error) => {
            tracing::error!(error = %error, "journal store failed");
            error_json(StatusCode::INTERNAL_SERVER_ERROR, "internal", "the journal store failed; see the server log")
        }
    }
}

fn error_message(fields: &[journal::FieldError]) -> String {
    let parts: Vec<String> = fields.iter().map(|field| format!("{}: {}", field.field, field.message)).collect();
    format!("the entry is refused, nothing was saved: {}", parts.join("; "))
}

async fn acknowledge(
    State(state): State<Arc<AppState>>,
    Path(fingerprint): Path<String>,
    principal: Principal,
) -> Response {
    if let Err(response) = principal.require(Role::Responder) {
        return response;
    }
    let service = match service(&state) {
        Ok(service) => service,
        Err(response) => return response,
    };
    let (known, firing) = find_alert(&state, &fingerprint);
    if !known {
        return error_json(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no active alert has fingerprint {fingerprint}"),
        );
    }
    match service.journal.acknowledge(firing.as_ref(), &principal.name, state.now_ms()).await {
        Ok(episode) => success(serde_json::json!({
            "fingerprint": episode.fingerprint,
            "alert_id": episode.alert_id,
            "alertname": episode.alertname,
            "fired_at": journal::format_time(episode.started_at_ms),
            "acknowledged_by": episode.acknowledged_by,
            "acknowledged_at": journal::format_time(episode.acknowledged_at_ms),
        })),
        Err(error) => journal_error(error),
    }
}

async fn close(
    State(state): State<Arc<AppState>>,
    Path(fingerprint): Path<String>,
    principal: Principal,
    body: Bytes,
) -> Response {
    if let Err(response) = principal.require(Role::Responder) {
        return response;
    }
    let service = match service(&state) {
        Ok(service) => service,
        Err(response) => return response,
    };
    let form: ClosingForm = match serde_json::from_slice(&body) {
        Ok(form) => form,
        Err(error) => {
            return error_json(
                StatusCode::BAD_REQUEST,
                "bad_data",
                &format!("the body is not a closing form: {error}"),
            );
        }
    };
    let (_, firing) = find_alert(&state, &fingerprint);
    let runs = triage_runs(&state, &fingerprint);
    match service.journal.close(&fingerprint, firing.as_ref(), &form, &principal.name, state.now_ms(), &runs).await {
        Ok(entry) => success(serde_json::to_value(&entry).unwrap_or_default()),
        Err(error) => journal_error(error),
    }
}

/// A time parameter: RFC 3339 or Unix seconds (with a fraction), as Prometheus takes them.
fn parse_time(name: &str, text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
    {
        return Ok((seconds * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_millis())
        .map_err(|_| format!("invalid parameter {name:?}: {text:?} is neither RFC 3339 nor Unix seconds"))
}

/// The journal filters of a query string; every value stays a value (bound, never spliced into SQL).
pub(crate) fn parse_filter(query: Option<&str>) -> Result<state::EntryFilter, Response> {
    filter_of_pairs(form_urlencoded::parse(query.unwrap_or("").as_bytes()))
        .map_err(|refused| error_json(StatusCode::BAD_REQUEST, "bad_data", &refused[0].1))
}

/// The journal filters of decoded parameters, or every refused one as
/// (parameter, message); shared by the JSON API and the web UI.
pub(crate) fn filter_of_pairs<'a>(
    pairs: impl IntoIterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
) -> Result<state::EntryFilter, Vec<(String, String)>> {
    let mut filter = state::EntryFilter::default();
    let mut refused = Vec::new();
    for (name, value) in pairs {
        let mut bad = |message: String| refused.push((name.clone().into_owned(), message));
        match name.as_ref() {
            "id" => filter.alert_id = Some(value.into_owned()).filter(|id| !id.is_empty()),
            "since" => match parse_time("since", &value) {
                Ok(time) => filter.since_ms = Some(time),
                Err(message) => bad(message),
            },
            "until" => match parse_time("until", &value) {
                Ok(time) => filter.until_ms = Some(time),
                Err(message) => bad(message),
            },
            "contract_changed" => {
                filter.contract_changed = match value.as_ref() {
                    "yes" | "true" => Some(true),
                    "no" | "false" => Some(false),
                    "" => None,
                    other => {
                        bad(format!("invalid parameter \"contract_changed\": {other:?} is not yes or no"));
                        None
                    }
                }
            }
            "limit" => match value.parse::<i64>().ok().filter(|limit| *limit > 0) {
                Some(limit) => filter.limit = Some(limit),
                None => bad(format!("invalid parameter \"limit\": {value:?} is not a positive integer")),
            },
            other => bad(format!("unknown parameter {other:?}: expected id, since, until, contract_changed or limit")),
        }
    }
    if refused.is_empty() { Ok(filter) } else { Err(refused) }
}

async fn list(State(state): State<Arc<AppState>>, _principal: Principal, RawQuery(query): RawQuery) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(response) => return response,
    };
    let filter = match parse_filter(query.as_deref()) {
        Ok(filter) => filter,
        Err(response) => return response,
    };
    match service.journal.entries(&filter).await {
        Ok(entries) => success(serde_json::json!({"entries": entries})),
        Err(error) => journal_error(error),
    }
}

async fn show(State(state): State<Arc<AppState>>, _principal: Principal, Path(entry): Path<String>) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(response) => return response,
    };
    let Ok(id) = entry.parse::<i64>() else {
        return error_json(StatusCode::BAD_REQUEST, "bad_data", &format!("{entry:?} is not an entry number"));
    };
    match service.journal.entry(id).await {
        Ok(Some((entry, revisions))) => success(serde_json::json!({"entry": entry, "revisions": revisions})),
        Ok(None) => error_json(StatusCode::NOT_FOUND, "not_found", &format!("no journal entry {id}")),
        Err(error) => journal_error(error),
    }
}

async fn acknowledgements(State(state): State<Arc<AppState>>, _principal: Principal) -> Response {
    let service = match service(&state) {
        Ok(service) => service,
        Err(response) => return response,
    };
    match service.journal.store().open_episodes().await {
        Ok(open) => {
            let open: Vec<serde_json::Value> = open
                .iter()
                .map(|episode| {
                    serde_json::json!({
                        "fingerprint": episode.fingerprint,
                        "alert_id": episode.alert_id,
                        "alertname": episode.alertname,
                        "labels": episode.labels,
                        "fired_at": journal::format_time(episode.started_at_ms),
                        "acknowledged_by": episode.acknowledged_by,
                        "acknowledged_at": journal::format_time(episode.acknowledged_at_ms),
                        "resolved_at": episode.resolved_at_ms.map(journal::format_time),
                    })
                })
                .collect();
            success(serde_json::json!({"acknowledged": open}))
        }
        Err(error) => journal_error(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_bad_ones_are_named() {
        let filter =
            parse_filter(Some("id=A6&since=2025-12-01T00:00:00Z&until=1764633600.5&contract_changed=yes&limit=5"))
                .expect("valid");
        assert_eq!(filter.alert_id.as_deref(), Some("A6"));
        assert_eq!(filter.since_ms, Some(1_764_547_200_000));
        assert_eq!(filter.until_ms, Some(1_764_633_600_500));
        assert_eq!((filter.contract_changed, filter.limit), (Some(true), Some(5)));
        let hostile = parse_filter(Some("id=A6%27%20OR%20%271%27%3D%271")).expect("a value like any other");
        assert_eq!(hostile.alert_id.as_deref(), Some("A6' OR '1'='1"));
        for bad in ["since=yesterday", "contract_changed=maybe", "limit=-1", "order=1;DROP"] {
            let response = parse_filter(Some(bad)).expect_err(bad);
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
