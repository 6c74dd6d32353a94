//! The web UI's routes: `/alerts` (the alerts page, filtered by its GET
//! query), `/alerts/{fingerprint}` (one alert: runbook entry, triage evidence,
//! timeline), `/health` (rules, datasources, errors, failed deliveries) and
//! the two static files every page loads (`/static/ui.css`,
//! `/static/ui.js`). The pages are rendered by the `web` crate from the same
//! in-process state the JSON handlers read; this module only gathers that
//! state, passes the time in and maps the answer onto HTTP.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/alerts", get(alerts))
        .route("/alerts/{fingerprint}", get(alert))
        .route("/health", get(health))
        .route("/static/ui.css", get(|| async { asset("text/css; charset=utf-8", web::STYLESHEET) }))
        .route("/static/ui.js", get(|| async { asset("text/javascript; charset=utf-8", web::SCRIPT) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}

/// A page with the headers every UI page carries: no caching, no framing,
/// and a policy that lets only alertbook's own script and style run.
fn page(page: web::Page) -> Response {
    let status = StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page.html).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn alerts(State(state): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Response {
    let groups = state.rules().statuses();
    let query = query.unwrap_or_default();
    page(web::alerts::render(&web::alerts::AlertsInput {
        catalog: &state.catalog,
        groups: &groups,
        query: &query,
        now_ms: now_ms(),
    }))
}

async fn alert(State(state): State<Arc<AppState>>, Path(fingerprint): Path<String>) -> Response {
    if !web::alert::is_fingerprint(&fingerprint) {
        let mut refused = web::alert::not_found(
            &state.catalog,
            format!(
                "{fingerprint:?} is not an alert fingerprint (16 hexadecimal digits, as /api/v1/alerts gives them)."
            ),
        );
        refused.status = 400;
        return page(refused);
    }
    let groups = state.rules().statuses();
    let alert = groups.iter().flat_map(|group| group.rules.iter()).flat_map(|rule| rule.alerts.iter()).find(|alert| {
        let labels = alert.labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect();
        notify::fingerprint(&labels) == fingerprint
    });
    let record = state.triage().and_then(|runner| runner.runs(&fingerprint));
    let notifications: Vec<notify::HistoryRecord> = state
        .routing()
        .map(|routing| {
            routing
                .history(notify::state_history_limit())
                .into_iter()
                .filter(|record| record.alerts.iter().any(|alert| alert.fingerprint == fingerprint))
                .collect()
        })
        .unwrap_or_default();
    page(web::alert::render(web::alert::AlertInput {
        catalog: &state.catalog,
        fingerprint: &fingerprint,
        alert,
        record: record.as_ref(),
        notifications: &notifications,
        // The journal backend passes its acknowledge/close form here once it is wired in.
        journal: None,
        now_ms: now_ms(),
    }))
}

async fn health(State(state): State<Arc<AppState>>) -> Response {
    let groups = state.rules().statuses();
    let datasources = datasource_health(&state);
    let history = state.routing().map(|routing| routing.history(notify::state_history_limit())).unwrap_or_default();
    let runs = state.triage().map(|runner| runner.recent(200)).unwrap_or_default();
    page(web::health::render(&web::health::HealthInput {
        catalog: &state.catalog,
        groups: &groups,
        datasources: &datasources,
        history: &history,
        runs: &runs,
        now_ms: now_ms(),
    }))
}

/// Every datasource's `alertbook_datasource_up` and
/// `alertbook_datasource_errors_total`, read from the process's own metrics
/// as `/metrics` encodes them (the datasources report into that registry).
fn datasource_health(state: &AppState) -> Vec<web::health::DatasourceHealth> {
    let logs = state.logs();
    let Ok(text) = state.metrics.encode(&state.store, &state.durable, logs.as_ref().map(|logs| logs.store.as_ref()))
    else {
        return Vec::new();
    };
    let mut found: std::collections::BTreeMap<(String, String), web::health::DatasourceHealth> = Default::default();
    let mut parser = ingest::exposition::Parser::new(ingest::exposition::Format::OpenMetrics);
    for line in text.lines() {
        let Ok(ingest::exposition::Entry::Sample(sample)) = parser.parse_line(line.as_bytes()) else { continue };
        let name = sample.metric_name();
        if name != "alertbook_datasource_up" && name != "alertbook_datasource_errors_total" {
            continue;
        }
        let label =
            |wanted: &str| sample.labels().find(|(label, _)| *label == wanted).map(|(_, value)| value.to_owned());
        let (Some(datasource), Some(kind)) = (label("datasource"), label("type")) else { continue };
        let entry = found.entry((datasource.clone(), kind.clone())).or_insert(web::health::DatasourceHealth {
            name: datasource,
            kind,
            up: false,
            errors: 0.0,
        });
        if name == "alertbook_datasource_up" {
            entry.up = sample.value == 1.0;
        } else {
            entry.errors = sample.value;
        }
    }
    found.into_values().collect()
}
