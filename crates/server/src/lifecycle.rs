//! Prometheus's lifecycle API: `POST /-/reload` (and `PUT`) asks the process
//! to reload its configuration and answers when it is done.
//!
//! The server does not reload anything itself: it hands a [`ReloadReply`] to
//! whoever set [`AppState::set_reloads`] (the CLI's reload task, which also
//! serves `SIGHUP`, so reloads run one at a time) and maps the answer onto
//! Prometheus's responses: 200 with an empty body, or 500 with `failed to
//! reload config: <error>`. As in Prometheus the endpoint answers only with
//! `--web.enable-lifecycle` ([`AppState::enable_lifecycle`]); otherwise 403
//! `Lifecycle API is not enabled.`. Once local accounts exist it also needs an
//! admin (an API token, or a session with its CSRF token).
//!
//! [`AppState::record_reload`] publishes each outcome: the
//! `alertbook_config_last_reload_*` gauges and the runtime information's
//! `reloadConfigSuccess` and `lastConfigTime`.

// Handlers reject with a ready `Response`, as axum does.
#![allow(clippy::result_large_err)]
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::AppState;
use crate::auth::{Principal, Role};

/// Where the outcome of one reload goes: `Err` carries the error text.
pub type ReloadReply = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Prometheus's answer when the lifecycle API is off.
pub const NOT_ENABLED: &str = "Lifecycle API is not enabled.";

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/-/reload", post(reload).put(reload))
}

impl AppState {
    /// Opens the lifecycle API (`--web.enable-lifecycle`).
    pub fn enable_lifecycle(&self) {
        self.lifecycle.store(true, Ordering::Release);
    }

    /// Sets where `/-/reload` sends its requests.
    pub fn set_reloads(&self, reloads: tokio::sync::mpsc::Sender<ReloadReply>) {
        *self.reloads.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reloads);
    }

    /// Publishes the outcome of a configuration load at `at`: the reload
    /// gauges, and the runtime information's `reloadConfigSuccess` and, on
    /// success, `lastConfigTime`.
    pub fn record_reload(&self, successful: bool, at: chrono::DateTime<chrono::Utc>) {
        self.reload_successful.store(successful, Ordering::Release);
        self.metrics.config_last_reload_successful.set(i64::from(successful));
        if successful {
            self.metrics.config_last_reload_success_timestamp.set(at.timestamp_millis() as f64 / 1000.0);
            let mut status = (*self.status()).clone();
            status.config_time = at;
            self.set_status(status);
        }
    }

    /// Whether the last configuration load succeeded.
    pub fn last_reload_successful(&self) -> bool {
        self.reload_successful.load(Ordering::Acquire)
    }

    fn reloads(&self) -> Option<tokio::sync::mpsc::Sender<ReloadReply>> {
        self.reloads.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

fn text(status: StatusCode, body: String) -> Response {
    (status, body).into_response()
}

/// Refuses the request unless it comes from an admin, when accounts exist.
async fn require_admin(state: &Arc<AppState>, request: Request) -> Result<(), Response> {
    let Some(service) = state.journal() else { return Ok(()) };
    match service.accounts.users().await {
        Ok(users) if users.is_empty() => return Ok(()),
        Ok(_) => {}
        Err(error) => {
            tracing::error!(error = %error, "reading the accounts failed");
            return Err(text(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the accounts\n".into()));
        }
    }
    let (mut parts, _) = request.into_parts();
    let principal = Principal::from_request_parts(&mut parts, state).await?;
    principal.require(Role::Admin)
}

async fn reload(State(state): State<Arc<AppState>>, request: Request) -> Response {
    if !state.lifecycle.load(Ordering::Acquire) {
        return text(StatusCode::FORBIDDEN, NOT_ENABLED.into());
    }
    if let Err(response) = require_admin(&state, request).await {
        return response;
    }
    let Some(reloads) = state.reloads() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "reloading is not available\n".into());
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if reloads.send(reply).await.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "reloading is not available: shutting down\n".into());
    }
    match answer.await {
        Ok(Ok(())) => StatusCode::OK.into_response(),
        // Prometheus's http.Error text, with its newline.
        Ok(Err(error)) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload config: {error}\n")),
        Err(_) => text(StatusCode::SERVICE_UNAVAILABLE, "reloading is not available: shutting down\n".into()),
    }
}
