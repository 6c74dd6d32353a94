//! Triage runs over HTTP, in the Prometheus API's envelope
//! (`{"status":"success","data":...}`):
//!
//! - `GET /api/v1/triage?fingerprint=F`: the alert instance (labels, whether
//!   it fires, escalations sent) and its runs, newest first, every step with
//!   its status, expanded query, duration, result and sparkline points;
//! - `GET /api/v1/triage` (no fingerprint; `limit`, default 50): the latest
//!   runs over every alert;
//! - `POST /api/v1/triage?fingerprint=F`: runs it again now (202; 404 when
//!   no such alert has been triaged).
//!
//! Fingerprints are those of `/api/v1/alerts` (Alertmanager's, over the
//! alert's labels). Without triage configured, every call answers 404.
//!
//! Once accounts are configured (`AppState::set_journal`), a re-run needs a
//! responder or admin (`auth::Principal`: an API token, or a session with its
//! CSRF token): 401 without credentials, 403 for a viewer. Without accounts,
//! the server has no users and re-runs stay open, as reads are.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::AppState;
use crate::auth::{Principal, Role};
use crate::prometheus_api::ApiError;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/triage", get(show).post(rerun))
}

#[derive(Debug, serde::Deserialize)]
struct Parameters {
    fingerprint: Option<String>,
    limit: Option<String>,
}

fn success(data: serde_json::Value, status: StatusCode) -> Response {
    let body = json!({"status": "success", "data": data}).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn not_found(message: String) -> Response {
    let body = json!({"status": "error", "errorType": "not_found", "error": message}).to_string();
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn show(State(state): State<Arc<AppState>>, Query(parameters): Query<Parameters>) -> Response {
    let Some(runner) = state.triage() else {
        return not_found("triage is not running".into());
    };
    match parameters.fingerprint {
        Some(fingerprint) => match runner.runs(&fingerprint) {
            Some(record) => success(serde_json::to_value(record).unwrap_or_default(), StatusCode::OK),
            None => not_found(format!("no triage runs for fingerprint {fingerprint:?}")),
        },
        None => {
            let limit = match parameters.limit.as_deref().map(str::parse::<usize>) {
                None => 50,
                Some(Ok(limit)) => limit,
                Some(Err(_)) => return ApiError::invalid_parameter("limit", "not a number").into_response(),
            };
            success(json!({"runs": runner.recent(limit)}), StatusCode::OK)
        }
    }
}

async fn rerun(State(state): State<Arc<AppState>>, Query(parameters): Query<Parameters>, request: Request) -> Response {
    if state.journal().is_some() {
        let (mut parts, _) = request.into_parts();
        let principal = match Principal::from_request_parts(&mut parts, &state).await {
            Ok(principal) => principal,
            Err(response) => return response,
        };
        if let Err(response) = principal.require(Role::Responder) {
            return response;
        }
    }
    let Some(runner) = state.triage() else {
        return not_found("triage is not running".into());
    };
    let Some(fingerprint) = parameters.fingerprint else {
        return ApiError::bad_data("missing parameter \"fingerprint\"").into_response();
    };
    if runner.trigger(&fingerprint) {
        success(json!({"fingerprint": fingerprint, "queued": true}), StatusCode::ACCEPTED)
    } else {
        not_found(format!("no triaged alert with fingerprint {fingerprint:?}"))
    }
}
