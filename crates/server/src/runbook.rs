//! The runbook over HTTP: `/runbook` (index), `/runbook/{id}` (one entry, by
//! ID or alertname), `/runbook.md` and `/runbook/{id}.md` (Markdown). HTML is
//! rendered from the same Markdown the CLI prints, so they cannot differ.
//! An entry's HTML page also links the live alert pages of its active
//! alerts (`/alerts/{fingerprint}`), which link back here.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| async { axum::response::Redirect::to("/runbook") }))
        .route("/runbook", get(index))
        .route("/runbook.md", get(index_markdown))
        .route("/runbook/{key}", get(entry))
}

fn markdown_response(text: String) -> Response {
    ([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], text).into_response()
}

fn page(title: &str, markdown: &str, live_alerts: &str) -> Html<String> {
    let mut body = String::new();
    let parser = pulldown_cmark::Parser::new_ext(markdown, pulldown_cmark::Options::ENABLE_TABLES);
    pulldown_cmark::html::push_html(&mut body, parser);
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
         pre{{background:#f4f4f4;padding:.75rem;overflow-x:auto}}code{{font-size:.9em}}</style></head>\
         <body><nav><a href=\"/runbook\">runbook</a> · <a href=\"/alerts\">alerts</a> · <a href=\"/health\">health</a></nav>\n{body}{live_alerts}</body></html>\n",
        escape_html(title)
    ))
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

async fn index(State(state): State<Arc<AppState>>) -> Html<String> {
    let current = state.catalog();
    page(&current.title, &catalog::markdown::render(&current), "")
}

async fn index_markdown(State(state): State<Arc<AppState>>) -> Response {
    markdown_response(catalog::markdown::render(&state.catalog()))
}

async fn entry(State(state): State<Arc<AppState>>, Path(key): Path<String>) -> Response {
    let (key, markdown) = match key.strip_suffix(".md") {
        Some(stripped) => (stripped.to_owned(), true),
        None => (key, false),
    };
    let current = state.catalog();
    let Some(entry) = current.entry(&key) else {
        let message = format!("no runbook entry with ID or alertname {key:?}\n");
        return (StatusCode::NOT_FOUND, message).into_response();
    };
    let text = catalog::markdown::render_entry(&current, entry);
    if markdown {
        markdown_response(text)
    } else {
        let live = web::runbook_live_alerts(&entry.id, &live_alerts(&state, entry));
        page(&format!("{} {}", entry.id, entry.alertname), &text, &live).into_response()
    }
}

/// The entry's active alerts: fingerprint, state and a one-line description.
fn live_alerts(state: &AppState, entry: &catalog::Entry) -> Vec<(String, String, String)> {
    let mut alerts = Vec::new();
    for group in state.rules().statuses() {
        for rule in group.rules.iter().filter(|rule| rule.name == entry.alertname) {
            for alert in rule.alerts.iter().filter(|alert| alert.state != rules::AlertState::Inactive) {
                let labels: std::collections::BTreeMap<String, String> =
                    alert.labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect();
                let description = labels
                    .iter()
                    .filter(|(name, _)| !matches!(name.as_str(), "alertname" | "severity" | "route"))
                    .map(|(name, value)| format!("{name}={value:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let description = if description.is_empty() { entry.alertname.clone() } else { description };
                alerts.push((notify::fingerprint(&labels), alert.state.as_str().to_owned(), description));
            }
        }
    }
    alerts
}
