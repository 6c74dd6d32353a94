//! alertbook as an Alertmanager over HTTP: the notification history
//! (`GET /api/v1/notifications`: who was notified, when, about which alerts,
//! delivered or failed with the error), and Alertmanager's API v2 as
//! `amtool` and Prometheus call it. Handlers map requests onto
//! [`notify::RoutingService`]; the routing itself lives in `notify`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/api/v1/notifications", get(notifications))
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
