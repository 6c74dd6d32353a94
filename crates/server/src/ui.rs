//! The web UI's routes:
//! - `GET /alerts` (the alerts page, filtered by its GET query; with the
//!   journal, acknowledged firings are badged and `state=acknowledged` filters);
//! - `GET /alerts/{fingerprint}` (one alert: runbook entry, triage evidence,
//!   timeline and, with the journal, its acknowledge/close part);
//! - `POST /alerts/{fingerprint}/acknowledge` and `POST /alerts/{fingerprint}/close`
//!   (plain HTML forms, `application/x-www-form-urlencoded`, each with the
//!   session's `csrf_token`; responder or admin). Success answers 303 to the
//!   alert page; refused fields re-render it with 400, a lost race with 409
//!   (the winning revision and the submitted text), a missing or stale CSRF
//!   token or a viewer's post 403, no session 401;
//! - `GET /journal` (entries newest first; `id`, `since`, `until`,
//!   `contract_changed`, `limit` as the JSON API parses them, dates such as
//!   2026-12-01 accepted, and `q`, words searched in root causes and
//!   remediations among the newest [`SEARCH_SCAN_LIMIT`] entries the other
//!   filters keep), `GET /journal/{entry}` (one entry with every revision),
//!   `GET /journal/export?format=md|csv|json&<filters>` (a download); the
//!   journal pages need a session or token (any role) and send visitors to
//!   the login page;
//! - `GET /health` (rules, datasources, errors, failed deliveries) and the
//!   two static files every page loads (`/static/ui.css`, `/static/ui.js`).
//!
//! With `auth.require_for_read: true` the alert and health pages also send
//! visitors to the login page; otherwise they are open, like the read APIs.
//!
//! The pages are rendered by the `web` crate from the same in-process state
//! the JSON handlers read, and the forms call the same `journal::Journal`
//! methods as the JSON API; this module only gathers that state, passes the
//! time in and maps the answer onto HTTP.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use journal::{ClosingForm, JournalError};

use crate::AppState;
use crate::auth::{FormPrincipal, Principal, Role};
use crate::journal_api::{JournalService, filter_of_pairs, find_alert, triage_runs};

pub(crate) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/alerts", get(alerts))
        .route("/alerts/{fingerprint}", get(alert))
        .route("/alerts/{fingerprint}/acknowledge", post(acknowledge))
        .route("/alerts/{fingerprint}/close", post(close))
        .route("/journal", get(journal_list))
        .route("/journal/export", get(journal_export))
        .route("/journal/{entry}", get(journal_entry))
        .route("/health", get(health))
        .route("/static/ui.css", get(|| async { asset("text/css; charset=utf-8", web::STYLESHEET) }))
        .route("/static/ui.js", get(|| async { asset("text/javascript; charset=utf-8", web::SCRIPT) }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "max-age=300")], body).into_response()
}

/// The headers every UI answer carries: no caching, no framing, no sniffing,
/// and a policy that lets only alertbook's own script and style run.
fn secure_headers(response: &mut Response) {
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
}

/// A page with the UI's headers.
pub(crate) fn page(page: web::Page) -> Response {
    let status = StatusCode::from_u16(page.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page.html).into_response();
    secure_headers(&mut response);
    response
}

/// Who is looking at a page, for the layout: the principal of the
/// request's session or token, when the journal (and with it accounts) is
/// configured. `here` is the page's path and query, for the login link.
async fn viewer(state: &AppState, headers: &HeaderMap, here: String) -> (web::Viewer, Option<Principal>) {
    let accounts = state.journal().is_some();
    let principal = if accounts { crate::auth::page_principal(state, headers).await } else { None };
    let user = principal.as_ref().map(|principal| web::User {
        name: principal.name.clone(),
        role: principal.role.to_string(),
        csrf_token: crate::auth::csrf_token(principal).unwrap_or_default().to_owned(),
    });
    (web::Viewer { accounts, user, here }, principal)
}

fn path_and_query(uri: &axum::http::Uri) -> String {
    uri.path_and_query().map_or_else(|| uri.path().to_owned(), |path| path.as_str().to_owned())
}

/// A one-message page (`web::message_page`) with the UI's headers.
fn message(state: &AppState, viewer: &web::Viewer, status: StatusCode, heading: &str, text: String) -> Response {
    page(web::message_page(&state.catalog(), viewer, heading, text, Vec::new(), status.as_u16()))
}

fn message_with_links(
    state: &AppState,
    viewer: &web::Viewer,
    status: StatusCode,
    heading: &str,
    text: String,
    links: Vec<(String, String)>,
) -> Response {
    page(web::message_page(&state.catalog(), viewer, heading, text, links, status.as_u16()))
}

fn journal_not_configured(state: &AppState, viewer: &web::Viewer) -> Response {
    message(
        state,
        viewer,
        StatusCode::NOT_FOUND,
        "No journal",
        "The on-call journal is not configured on this server (the journal: section of alertbook.yaml).".into(),
    )
}

/// With `auth.require_for_read: true`, the pages answer only logged-in
/// viewers too: a visitor is sent to the login page.
fn reads_closed(state: &AppState, principal: Option<&Principal>) -> bool {
    principal.is_none() && state.journal().is_some_and(|service| service.require_for_read)
}

async fn alerts(State(state): State<Arc<AppState>>, headers: HeaderMap, OriginalUri(uri): OriginalUri) -> Response {
    let (viewer, principal) = viewer(&state, &headers, path_and_query(&uri)).await;
    if reads_closed(&state, principal.as_ref()) {
        return log_in_first(&viewer);
    }
    let groups = state.rules().statuses();
    let query = uri.query().unwrap_or_default();
    let service = state.journal();
    // One query of the open acknowledgements per page, never one per alert.
    let mut acknowledged = web::alerts::Acknowledgements::new();
    if let Some(service) = &service {
        match service.journal.store().open_episodes().await {
            Ok(open) => {
                for episode in open {
                    acknowledged
                        .entry(episode.fingerprint)
                        .or_default()
                        .push((episode.started_at_ms, episode.acknowledged_by));
                }
            }
            Err(error) => tracing::error!(error = %error, "reading the acknowledgements failed"),
        }
    }
    page(web::alerts::render(&web::alerts::AlertsInput {
        catalog: &state.catalog(),
        groups: &groups,
        query,
        journal: service.is_some(),
        acknowledged: &acknowledged,
        viewer: &viewer,
        now_ms: state.now_ms(),
    }))
}

/// What a refused acknowledgement or close puts on the re-rendered alert page.
struct Outcome {
    status: StatusCode,
    submitted: Option<ClosingForm>,
    errors: Vec<journal::FieldError>,
    conflict: Option<state::Revision>,
    notice: Option<String>,
}

impl Outcome {
    fn plain() -> Self {
        Outcome { status: StatusCode::OK, submitted: None, errors: Vec::new(), conflict: None, notice: None }
    }

    fn notice(status: StatusCode, notice: String, submitted: Option<ClosingForm>) -> Self {
        Outcome { status, notice: Some(notice), submitted, ..Outcome::plain() }
    }
}

async fn alert(
    State(state): State<Arc<AppState>>,
    Path(fingerprint): Path<String>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let (viewer, principal) = viewer(&state, &headers, path_and_query(&uri)).await;
    if reads_closed(&state, principal.as_ref()) {
        return log_in_first(&viewer);
    }
    render_alert(&state, &fingerprint, &viewer, principal.as_ref(), Outcome::plain()).await
}

fn not_a_fingerprint(state: &AppState, viewer: &web::Viewer, fingerprint: &str) -> Response {
    message(
        state,
        viewer,
        StatusCode::BAD_REQUEST,
        "Not found",
        format!("{fingerprint:?} is not an alert fingerprint (16 hexadecimal digits, as /api/v1/alerts gives them)."),
    )
}

/// The alert page, with the journal's part when the journal is configured.
async fn render_alert(
    state: &AppState,
    fingerprint: &str,
    viewer: &web::Viewer,
    principal: Option<&Principal>,
    outcome: Outcome,
) -> Response {
    if !web::alert::is_fingerprint(fingerprint) {
        return not_a_fingerprint(state, viewer, fingerprint);
    }
    let groups = state.rules().statuses();
    let alert = groups.iter().flat_map(|group| group.rules.iter()).flat_map(|rule| rule.alerts.iter()).find(|alert| {
        let labels = alert.labels.iter().map(|label| (label.name.clone(), label.value.clone())).collect();
        notify::fingerprint(&labels) == fingerprint
    });
    let record = state.triage().and_then(|runner| runner.runs(fingerprint));
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
    let (journal, journal_labels) = match state.journal() {
        Some(service) => {
            let (form, labels) = journal_form(state, &service, fingerprint, viewer, principal).await;
            (Some(form), labels)
        }
        None => (None, None),
    };
    let journal = journal.map(|mut form| {
        form.submitted = outcome.submitted;
        form.errors = outcome.errors;
        form.conflict = outcome.conflict;
        form.notice = outcome.notice.or(form.notice);
        form
    });
    page(web::alert::render(web::alert::AlertInput {
        catalog: &state.catalog(),
        fingerprint,
        alert,
        record: record.as_ref(),
        notifications: &notifications,
        journal,
        journal_labels: journal_labels.as_ref(),
        viewer,
        status: outcome.status.as_u16(),
        now_ms: state.now_ms(),
    }))
}

/// The journal's part of the alert page: the latest episode's state and
/// what the person looking may do with it, and the labels the episode
/// recorded (the page renders from them once the engines forgot the alert).
async fn journal_form(
    state: &AppState,
    service: &JournalService,
    fingerprint: &str,
    viewer: &web::Viewer,
    principal: Option<&Principal>,
) -> (web::alert::JournalForm, Option<std::collections::BTreeMap<String, String>>) {
    let access = match principal {
        None => web::alert::JournalAccess::LogIn { login_url: viewer.login_url() },
        Some(principal) if principal.role < Role::Responder => {
            web::alert::JournalAccess::ReadOnly { name: principal.name.clone(), role: principal.role.to_string() }
        }
        Some(principal) => web::alert::JournalAccess::Respond {
            csrf_token: crate::auth::csrf_token(principal).unwrap_or_default().to_owned(),
        },
    };
    let mut form = web::alert::JournalForm::new(fingerprint, access);
    let (_, firing) = find_alert(state, fingerprint);
    if let Some(firing) = &firing {
        form.alert_id = firing.alert_id.clone();
    }
    let episode = match service.journal.latest_episode(fingerprint).await {
        Ok(episode) => episode,
        Err(error) => {
            tracing::error!(error = %error, "reading the alert's acknowledgement failed");
            form.notice = Some("The journal store failed; see the server log.".into());
            return (form, None);
        }
    };
    let Some(episode) = episode else {
        form.can_acknowledge = firing.is_some();
        return (form, None);
    };
    let labels = Some(episode.labels.clone());
    let fired_again = firing.as_ref().is_some_and(|firing| firing.started_at_ms > episode.started_at_ms);
    if episode.latest_revision == 0 {
        form.alert_id = episode.alert_id.clone();
        form.acknowledged = Some((episode.acknowledged_by.clone(), episode.acknowledged_at_ms));
        form.can_close = true;
        form.can_acknowledge = fired_again;
        return (form, labels);
    }
    if fired_again {
        // The closed episode was an earlier firing: this one needs its own acknowledgement.
        form.can_acknowledge = true;
        return (form, labels);
    }
    form.alert_id = episode.alert_id.clone();
    form.acknowledged = Some((episode.acknowledged_by.clone(), episode.acknowledged_at_ms));
    match service.journal.store().revisions(episode.id).await {
        Ok(revisions) => {
            if let (Some(first), Some(latest)) = (revisions.first(), revisions.last()) {
                form.closed = Some(web::alert::ClosedEntry {
                    entry_id: episode.id,
                    closed_by: first.author.clone(),
                    closed_at_ms: first.written_at_ms,
                    revision: latest.revision,
                });
                form.correctable = Some((latest.revision, latest_values(latest)));
            }
        }
        Err(error) => tracing::error!(error = %error, "reading the alert's journal entry failed"),
    }
    (form, labels)
}

/// A revision's fields as the close form carries them, to correct it.
fn latest_values(revision: &state::Revision) -> ClosingForm {
    ClosingForm {
        alert_id: Some(revision.alert_id.clone()),
        root_cause: Some(revision.root_cause.clone()),
        remediation: Some(revision.remediation.clone()),
        contract_changed: Some(serde_json::Value::String(
            if revision.contract_changed { "yes" } else { "no" }.to_owned(),
        )),
        contract: revision.contract.clone(),
        contract_pr: revision.contract_pr.clone(),
        ..ClosingForm::default()
    }
}

/// The principal of a journal form post, once its CSRF token matches and
/// its role allows responding; otherwise the page that says why (401 with
/// a login link, 403).
// Rejects with a ready `Response`, as axum's extractors do.
#[allow(clippy::result_large_err)]
fn form_principal(
    state: &AppState,
    fingerprint: &str,
    principal: Result<FormPrincipal, Response>,
    csrf_token: Option<&str>,
    what: &str,
) -> Result<Principal, Response> {
    let here = format!("/alerts/{fingerprint}");
    let visitor = web::Viewer { accounts: true, user: None, here: here.clone() };
    let principal = principal.map_err(|rejection| {
        if rejection.status() == StatusCode::UNAUTHORIZED {
            message_with_links(
                state,
                &visitor,
                StatusCode::UNAUTHORIZED,
                "Log in first",
                format!("Log in to {what} this alert; nothing was changed."),
                vec![(visitor.login_url(), "Log in".into()), (here.clone(), "Back to the alert".into())],
            )
        } else {
            rejection
        }
    })?;
    let principal = principal.verify_csrf(csrf_token).map_err(|_| {
        message_with_links(
            state,
            &visitor,
            StatusCode::FORBIDDEN,
            "Refused",
            "The form's CSRF token is missing or stale: reload the alert page and submit again. Nothing was changed."
                .into(),
            vec![(here.clone(), "Back to the alert".into())],
        )
    })?;
    if principal.require(Role::Responder).is_err() {
        let viewer = web::Viewer {
            accounts: true,
            user: Some(web::User {
                name: principal.name.clone(),
                role: principal.role.to_string(),
                csrf_token: crate::auth::csrf_token(&principal).unwrap_or_default().to_owned(),
            }),
            here: here.clone(),
        };
        return Err(message_with_links(
            state,
            &viewer,
            StatusCode::FORBIDDEN,
            "Refused",
            format!(
                "{} is a {}: to {what} an alert needs the responder role. Nothing was changed.",
                principal.name, principal.role
            ),
            vec![(here, "Back to the alert".into())],
        ));
    }
    Ok(principal)
}

fn viewer_of(principal: &Principal, here: String) -> web::Viewer {
    web::Viewer {
        accounts: true,
        user: Some(web::User {
            name: principal.name.clone(),
            role: principal.role.to_string(),
            csrf_token: crate::auth::csrf_token(principal).unwrap_or_default().to_owned(),
        }),
        here,
    }
}

fn journal_store_failed(state: &AppState, viewer: &web::Viewer, error: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %error, "journal store failed");
    message(
        state,
        viewer,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Journal error",
        "The journal store failed; see the server log. Nothing was changed.".into(),
    )
}

/// What an alert page's form post checks first, in this order: the journal
/// is configured, the path holds a fingerprint, and the poster is logged in
/// and sent the form's CSRF token ([`form_principal`]). Gives the journal,
/// the poster and the page's viewer, or the page that refuses the post.
#[allow(clippy::result_large_err)] // rejects with a ready page, as axum does
fn journal_post(
    state: &AppState,
    fingerprint: &str,
    principal: Result<FormPrincipal, Response>,
    csrf_token: Option<&str>,
    what: &str,
) -> Result<(Arc<JournalService>, Principal, web::Viewer), Response> {
    let here = format!("/alerts/{fingerprint}");
    let visitor = web::Viewer { accounts: state.journal().is_some(), user: None, here: here.clone() };
    let Some(service) = state.journal() else { return Err(journal_not_configured(state, &visitor)) };
    if !web::alert::is_fingerprint(fingerprint) {
        return Err(not_a_fingerprint(state, &visitor, fingerprint));
    }
    let principal = form_principal(state, fingerprint, principal, csrf_token, what)?;
    let viewer = viewer_of(&principal, here);
    Ok((service, principal, viewer))
}

/// `POST /alerts/{fingerprint}/acknowledge` (form: `csrf_token`).
async fn acknowledge(
    State(state): State<Arc<AppState>>,
    Path(fingerprint): Path<String>,
    principal: Result<FormPrincipal, Response>,
    body: Bytes,
) -> Response {
    let csrf_token =
        form_urlencoded::parse(&body).filter(|(name, _)| name == "csrf_token").map(|(_, value)| value).last();
    let (service, principal, viewer) =
        match journal_post(&state, &fingerprint, principal, csrf_token.as_deref(), "acknowledge") {
            Ok(checked) => checked,
            Err(response) => return response,
        };
    let (known, firing) = find_alert(&state, &fingerprint);
    if !known {
        return message(
            &state,
            &viewer,
            StatusCode::NOT_FOUND,
            "Not found",
            format!("No active alert has fingerprint {fingerprint}; nothing was acknowledged."),
        );
    }
    let outcome = match service.journal.acknowledge(firing.as_ref(), &principal.name, state.now_ms()).await {
        Ok(_) => return Redirect::to(&format!("/alerts/{fingerprint}")).into_response(),
        Err(JournalError::State(error)) => return journal_store_failed(&state, &viewer, &error),
        Err(error) => Outcome::notice(StatusCode::CONFLICT, format!("Not acknowledged: {error}."), None),
    };
    render_alert(&state, &fingerprint, &viewer, Some(&principal), outcome).await
}

/// The close form of a post body: every field alertbook stores, the CSRF
/// token, and `revision` for a correction; any other field is refused.
fn closing_form(body: &[u8]) -> Result<ClosingForm, String> {
    let mut form = ClosingForm::default();
    for (name, value) in form_urlencoded::parse(body) {
        let value = value.into_owned();
        match name.as_ref() {
            "csrf_token" => form.csrf_token = Some(value),
            "alert_id" => form.alert_id = Some(value),
            "root_cause" => form.root_cause = Some(value),
            "remediation" => form.remediation = Some(value),
            "contract_changed" => form.contract_changed = Some(serde_json::Value::String(value)),
            "contract" => form.contract = Some(value),
            "contract_pr" => form.contract_pr = Some(value),
            "revision" if value.trim().is_empty() => {}
            "revision" => {
                form.revision = Some(
                    value
                        .trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|revision| *revision > 0)
                        .ok_or_else(|| format!("the field \"revision\" is {value:?}, not a revision number"))?,
                )
            }
            other => {
                return Err(format!(
                    "the form has a field {other:?}, which is none of alert_id, root_cause, remediation, contract_changed, contract, contract_pr, revision"
                ));
            }
        }
    }
    // The page's contract select keeps its choice when a responder switches
    // back to "no": with no contract changed, that choice is not a claim.
    // (A pull request URL typed anyway still is, and is refused.)
    if matches!(&form.contract_changed, Some(serde_json::Value::String(changed)) if changed == "no") {
        form.contract = None;
    }
    Ok(form)
}

/// `POST /alerts/{fingerprint}/close` (form: the closing fields, `csrf_token`,
/// and `revision` to correct an entry).
async fn close(
    State(state): State<Arc<AppState>>,
    Path(fingerprint): Path<String>,
    principal: Result<FormPrincipal, Response>,
    body: Bytes,
) -> Response {
    let form = closing_form(&body);
    let csrf_token = form.as_ref().ok().and_then(|form| form.csrf_token.clone());
    let (service, principal, viewer) =
        match journal_post(&state, &fingerprint, principal, csrf_token.as_deref(), "close") {
            Ok(checked) => checked,
            Err(response) => return response,
        };
    let mut form = match form {
        Ok(form) => form,
        Err(refusal) => {
            return message(
                &state,
                &viewer,
                StatusCode::BAD_REQUEST,
                "Refused",
                format!("{refusal}. Nothing was saved."),
            );
        }
    };
    form.csrf_token = None;
    let (_, firing) = find_alert(&state, &fingerprint);
    let runs = triage_runs(&state, &fingerprint);
    let outcome =
        match service.journal.close(&fingerprint, firing.as_ref(), &form, &principal.name, state.now_ms(), &runs).await
        {
            Ok(_) => return Redirect::to(&format!("/alerts/{fingerprint}")).into_response(),
            Err(JournalError::Invalid(errors)) => {
                Outcome { status: StatusCode::BAD_REQUEST, submitted: Some(form), errors, ..Outcome::plain() }
            }
            Err(JournalError::Conflict { current, submitted }) => Outcome {
                status: StatusCode::CONFLICT,
                submitted: Some(*submitted),
                conflict: Some(*current),
                ..Outcome::plain()
            },
            Err(JournalError::State(error)) => return journal_store_failed(&state, &viewer, &error),
            Err(JournalError::NoEntry(id)) => {
                return message(&state, &viewer, StatusCode::NOT_FOUND, "Not found", format!("No journal entry {id}."));
            }
            Err(error) => {
                Outcome::notice(StatusCode::CONFLICT, format!("Not closed, nothing was saved: {error}."), Some(form))
            }
        };
    render_alert(&state, &fingerprint, &viewer, Some(&principal), outcome).await
}

/// How many entries a search looks through (the newest matching the other filters).
pub const SEARCH_SCAN_LIMIT: i64 = 10_000;
/// How many entries a page or export lists unless `limit` says otherwise.
const DEFAULT_LIMIT: i64 = 1000;

/// A date (`2026-12-01`) as the start (`since`) or the end (`until`) of that
/// day in UTC; any other value is left to the shared parser.
fn expand_date(name: &str, value: &str) -> String {
    match chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(_) if value.len() == 10 && name == "since" => format!("{value}T00:00:00Z"),
        Ok(_) if value.len() == 10 && name == "until" => format!("{value}T23:59:59.999Z"),
        _ => value.to_owned(),
    }
}

/// The journal filters of a page's query: the API's filters (parsed by the
/// same parser; empty form fields ignored, dates expanded), the free-text
/// search `q`, and `format` when `with_format` (the export). Refused
/// parameters come back by name.
fn journal_query(
    query: &str,
    with_format: bool,
) -> (state::EntryFilter, String, Option<String>, Vec<web::filter::FilterError>) {
    let mut search = String::new();
    let mut format = None;
    let mut shared = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = value.trim().to_owned();
        match name.as_ref() {
            "q" => search = value,
            "format" if with_format => format = Some(value),
            _ if value.is_empty() => {}
            "since" | "until" => {
                let expanded = expand_date(&name, &value);
                shared.push((name, std::borrow::Cow::Owned(expanded)));
            }
            _ => shared.push((name, std::borrow::Cow::Owned(value))),
        }
    }
    let (filter, errors) = match filter_of_pairs(shared) {
        Ok(filter) => (filter, Vec::new()),
        Err(refused) => (
            state::EntryFilter::default(),
            refused.into_iter().map(|(parameter, message)| web::filter::FilterError { parameter, message }).collect(),
        ),
    };
    (filter, search, format, errors)
}

/// The entries of `filter` whose root cause or remediation matches `search`.
async fn search_entries(
    service: &JournalService,
    mut filter: state::EntryFilter,
    search: &str,
) -> Result<Vec<journal::Entry>, JournalError> {
    let wanted = usize::try_from(filter.limit.unwrap_or(DEFAULT_LIMIT)).unwrap_or(usize::MAX);
    if search.is_empty() {
        return service.journal.entries(&filter).await;
    }
    filter.limit = Some(SEARCH_SCAN_LIMIT);
    let mut entries = service.journal.entries(&filter).await?;
    entries.retain(|entry| web::journal::matches_search(entry, search));
    entries.truncate(wanted);
    Ok(entries)
}

/// Journal pages need a session (any role), like the journal's JSON API.
fn log_in_first(viewer: &web::Viewer) -> Response {
    let mut response = Redirect::to(&viewer.login_url()).into_response();
    secure_headers(&mut response);
    response
}

/// `GET /journal`: the entries, newest first, filtered.
async fn journal_list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let (viewer, principal) = viewer(&state, &headers, path_and_query(&uri)).await;
    let Some(service) = state.journal() else { return journal_not_configured(&state, &viewer) };
    if principal.is_none() {
        return log_in_first(&viewer);
    }
    let query = uri.query().unwrap_or_default();
    let values = web::journal::FilterValues::from_query(query);
    let (filter, search, _, errors) = journal_query(query, false);
    let entries = if errors.is_empty() {
        match search_entries(&service, filter, &search).await {
            Ok(entries) => entries,
            Err(error) => return journal_store_failed(&state, &viewer, &error),
        }
    } else {
        Vec::new()
    };
    let waiting = match service.journal.store().open_episodes().await {
        Ok(open) => open,
        Err(error) => return journal_store_failed(&state, &viewer, &error),
    };
    page(web::journal::render_list(&web::journal::ListInput {
        catalog: &state.catalog(),
        viewer: &viewer,
        entries: &entries,
        values: &values,
        errors: &errors,
        waiting: &waiting,
        now_ms: state.now_ms(),
    }))
}

/// `GET /journal/{entry}`: one entry with every revision.
async fn journal_entry(
    State(state): State<Arc<AppState>>,
    Path(entry): Path<String>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let (viewer, principal) = viewer(&state, &headers, path_and_query(&uri)).await;
    let Some(service) = state.journal() else { return journal_not_configured(&state, &viewer) };
    if principal.is_none() {
        return log_in_first(&viewer);
    }
    let Some(id) = entry.parse::<i64>().ok().filter(|id| *id > 0) else {
        return message(
            &state,
            &viewer,
            StatusCode::BAD_REQUEST,
            "Not found",
            format!("{entry:?} is not a journal entry number."),
        );
    };
    match service.journal.entry(id).await {
        Ok(Some((entry, revisions))) => page(web::journal::render_entry(&state.catalog(), &viewer, &entry, &revisions)),
        Ok(None) => {
            message(&state, &viewer, StatusCode::NOT_FOUND, "Not found", format!("There is no journal entry {id}."))
        }
        Err(error) => journal_store_failed(&state, &viewer, &error),
    }
}

/// `GET /journal/export?format=md|csv|json&<filters>`: the filtered entries as a download.
async fn journal_export(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> Response {
    let (viewer, principal) = viewer(&state, &headers, path_and_query(&uri)).await;
    let Some(service) = state.journal() else { return journal_not_configured(&state, &viewer) };
    if principal.is_none() {
        return log_in_first(&viewer);
    }
    let (filter, search, format, mut errors) = journal_query(uri.query().unwrap_or_default(), true);
    let format = match format.as_deref().unwrap_or("").parse::<journal::export::Format>() {
        Ok(format) => Some(format),
        Err(message) => {
            let message = if format.as_deref().unwrap_or("").is_empty() {
                "missing: md, csv or json".to_owned()
            } else {
                message
            };
            errors.insert(0, web::filter::FilterError { parameter: "format".into(), message });
            None
        }
    };
    let Some(format) = format.filter(|_| errors.is_empty()) else {
        let text = errors.iter().map(|error| format!("{}: {}", error.parameter, error.message)).collect::<Vec<_>>();
        return message_with_links(
            &state,
            &viewer,
            StatusCode::BAD_REQUEST,
            "Export refused",
            format!("Some parameters were refused — {}.", text.join("; ")),
            vec![("/journal".into(), "Back to the journal".into())],
        );
    };
    let entries = match search_entries(&service, filter, &search).await {
        Ok(entries) => entries,
        Err(error) => return journal_store_failed(&state, &viewer, &error),
    };
    let (content_type, extension) = match format {
        journal::export::Format::Markdown => ("text/markdown; charset=utf-8", "md"),
        journal::export::Format::Csv => ("text/csv; charset=utf-8", "csv"),
        journal::export::Format::Json => ("application/json", "json"),
    };
    let body = journal::export::render(&entries, format);
    let disposition = format!("attachment; filename=\"alertbook-journal.{extension}\"");
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    secure_headers(&mut response);
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        response.headers_mut().insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

async fn health(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let (viewer, principal) = viewer(&state, &headers, "/health".into()).await;
    if reads_closed(&state, principal.as_ref()) {
        return log_in_first(&viewer);
    }
    let groups = state.rules().statuses();
    let datasources = datasource_health(&state);
    let history = state.routing().map(|routing| routing.history(notify::state_history_limit())).unwrap_or_default();
    let runs = state.triage().map(|runner| runner.recent(200)).unwrap_or_default();
    page(web::health::render(&web::health::HealthInput {
        catalog: &state.catalog(),
        groups: &groups,
        datasources: &datasources,
        history: &history,
        runs: &runs,
        viewer: &viewer,
        now_ms: state.now_ms(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_close_form_drops_the_contract_choice_when_no_contract_changed() {
        let form =
            closing_form(b"root_cause=disk&contract_changed=no&contract=log-retention&contract_pr=").expect("form");
        assert_eq!(form.contract, None);
        assert_eq!(form.contract_pr.as_deref(), Some(""));
        let form = closing_form(b"contract_changed=yes&contract=log-retention").expect("form");
        assert_eq!(form.contract.as_deref(), Some("log-retention"));
        assert!(closing_form(b"root_cause=x&admin=1").expect_err("unknown field").contains("\"admin\""));
        assert!(closing_form(b"revision=-1").expect_err("bad revision").contains("revision"));
    }
}
